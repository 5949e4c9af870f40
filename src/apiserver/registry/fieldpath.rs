//! Field paths and field sets, as structured-merge-diff models them, plus the schema walk both patching
//! and server-side apply need.
//!
//! Why this exists: server-side apply records *who owns which field* (`metadata.managedFields`,
//! `fieldsV1`), detects conflicts between owners and prunes fields an applier stopped sending. All of
//! that works on sets of paths whose elements are upstream's: a field name (`f:spec`), a list item by its
//! keys (`k:{"name":"c"}`), a set member by value (`v:"x"`) or, rarely, an index (`i:0`). We keep a path
//! as the list of those FieldsV1 keys, so a set serializes to FieldsV1 without translation and sorts
//! the way upstream prints it.
//!
//! How lists and maps behave (map-list keyed by merge keys, set, atomic) comes from [`crate::apiserver::registry::schema`]
//! through the [`Facts`] trait, so the algorithms can be tested with a small in-test schema; for a
//! custom resource it comes from its CRD version's schema ([`crate::apiserver::registry::crd_facts`],
//! upstream's rules for CRDs, where a list without a list type is atomic). When the built-in schema
//! knows nothing about a field we fall back to what holds for nearly every built-in list: a list of
//! objects that all carry a `name` is keyed by `name`, anything else is atomic.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::apiserver::registry::crd_facts;
use crate::apiserver::registry::schema::{Field, FieldFacts, Shape, TypeRef};

/// Where schema facts come from: the built-in kinds' table, or a test's own.
pub trait Facts: Sync {
    fn root(&self, api_version: &str, kind: &str) -> Option<TypeRef>;
    fn field(&self, ty: TypeRef, name: &str) -> Option<Field>;
    /// Whether an object type is `+structType=atomic` (replaced whole, owned as one leaf).
    fn atomic(&self, _ty: TypeRef) -> bool {
        false
    }
}

/// The built-in kinds' facts ([`crate::apiserver::registry::schema`]).
pub struct Builtin;

impl Facts for Builtin {
    fn root(&self, api_version: &str, kind: &str) -> Option<TypeRef> {
        crate::apiserver::registry::schema::root(api_version, kind)
    }
    fn field(&self, ty: TypeRef, name: &str) -> Option<Field> {
        ty.field(name)
    }
    fn atomic(&self, ty: TypeRef) -> bool {
        ty.atomic()
    }
}

/// Map fields (string → value) we recognise by name when the schema has no facts, so that a newly
/// added map is owned as a whole (`.`) like upstream does for maps but not for structs.
const FALLBACK_MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "nodeSelector",
    "matchLabels",
];

/// How a list's items are identified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Items are objects identified by these key fields.
    Map(Vec<String>),
    /// Items are scalars identified by value.
    Set,
    /// The list is one value.
    Atomic,
}

/// A position in an object: what the schema says about the value found there.
#[derive(Clone)]
pub struct Pos<'a> {
    facts: &'a dyn Facts,
    at: At<'a>,
}

/// Where a position's facts come from.
#[derive(Clone)]
enum At<'a> {
    /// A built-in kind (or a test's schema): the [`Facts`] table.
    Table {
        shape: Option<Shape>,
        field: FieldFacts,
        /// The field name that led here (for the no-facts fallbacks).
        name: Option<String>,
    },
    /// A custom resource: a node of its CRD version's schema ([`crd_facts`]). Its `metadata` is the
    /// built-in ObjectMeta, a `Table` position again.
    Crd(crd_facts::Node<'a>),
}

/// Upstream's type of every object's `metadata`, in the built-in table.
const OBJECT_META: TypeRef = TypeRef("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");

impl<'a> Pos<'a> {
    /// The top of an object of `kind`.
    pub fn root(facts: &'a dyn Facts, api_version: &str, kind: &str) -> Pos<'a> {
        Pos {
            facts,
            at: At::Table {
                shape: facts.root(api_version, kind).map(Shape::Object),
                field: FieldFacts::default(),
                name: None,
            },
        }
    }

    /// The top of a custom resource whose CRD version has `schema` (`openAPIV3Schema`).
    pub fn custom_root(schema: Option<&'a Value>) -> Pos<'a> {
        Pos {
            facts: &Builtin,
            at: At::Crd(crd_facts::Node::root(schema)),
        }
    }

    /// A position nothing is known about.
    pub fn unknown(facts: &'a dyn Facts) -> Pos<'a> {
        Pos {
            facts,
            at: At::Table {
                shape: None,
                field: FieldFacts::default(),
                name: None,
            },
        }
    }

    fn table(&self, shape: Option<Shape>, field: FieldFacts, name: Option<String>) -> Pos<'a> {
        Pos {
            facts: self.facts,
            at: At::Table { shape, field, name },
        }
    }

    /// The field or map entry `key` of the object here.
    pub fn child(&self, key: &str) -> Pos<'a> {
        let shape = match &self.at {
            At::Table { shape, .. } => shape,
            At::Crd(n) => {
                return match n.child(key) {
                    crd_facts::Step::Node(n) => Pos {
                        facts: self.facts,
                        at: At::Crd(n),
                    },
                    crd_facts::Step::ObjectMeta => Pos {
                        facts: &Builtin,
                        at: At::Table {
                            shape: Some(Shape::Object(OBJECT_META)),
                            field: FieldFacts::default(),
                            name: Some(key.to_string()),
                        },
                    },
                }
            }
        };
        let name = Some(key.to_string());
        match shape {
            Some(Shape::Object(t)) => match self.facts.field(*t, key) {
                Some(f) => self.table(Some(f.shape), f.facts, name),
                None => self.table(None, FieldFacts::default(), name),
            },
            Some(Shape::Map(v)) => self.table(Some((**v).clone()), FieldFacts::default(), name),
            _ => self.table(None, FieldFacts::default(), name),
        }
    }

    /// An item of the list here.
    pub fn elem(&self) -> Pos<'a> {
        match &self.at {
            At::Table {
                shape: Some(Shape::List(e)),
                ..
            } => self.table(Some((**e).clone()), FieldFacts::default(), None),
            At::Table { .. } => self.table(None, FieldFacts::default(), None),
            At::Crd(n) => Pos {
                facts: self.facts,
                at: At::Crd(n.elem()),
            },
        }
    }

    /// The strategic-merge facts of the field here (none for a custom resource's fields: upstream
    /// refuses strategic merge patches on custom resources).
    pub fn facts(&self) -> FieldFacts {
        match &self.at {
            At::Table { field, .. } => *field,
            At::Crd(_) => FieldFacts::default(),
        }
    }

    /// Whether the schema knows what is here (a CRD schema always answers: deduced, if nothing else).
    pub fn known(&self) -> bool {
        match &self.at {
            At::Table { shape, .. } => shape.is_some(),
            At::Crd(_) => true,
        }
    }

    /// A value treated as one leaf: free-form JSON, atomic maps and structs.
    pub fn is_atomic_object(&self) -> bool {
        match &self.at {
            At::Table {
                shape: Some(Shape::Untyped | Shape::Scalar),
                ..
            } => true,
            At::Table {
                shape: Some(Shape::Object(t)),
                ..
            } if self.facts.atomic(*t) => true,
            At::Table { field, .. } => field.map_type == Some("atomic"),
            At::Crd(n) => n.atomic_object(),
        }
    }

    /// Whether the object here is a map (string keys chosen by users) rather than a struct.
    pub fn is_map(&self) -> bool {
        match &self.at {
            At::Table {
                shape: Some(Shape::Map(_)),
                ..
            } => true,
            At::Table { shape: Some(_), .. } => false,
            At::Table {
                shape: None, name, ..
            } => name
                .as_deref()
                .is_some_and(|n| FALLBACK_MAP_FIELDS.contains(&n)),
            At::Crd(n) => n.is_map(),
        }
    }

    /// Whether upstream's "live" object on create already has the structs here: a built-in kind's is
    /// its zero-valued Go struct, a custom resource's an empty unstructured object (so a custom
    /// resource's `spec` appears as a whole, `.`, in the creating manager's set).
    fn zero_value_has_structs(&self) -> bool {
        matches!(self.at, At::Table { .. })
    }

    /// The value a map-list item (the list's `elem()` position) takes for a key field it omits.
    fn key_default(&self, key: &str) -> Option<Value> {
        match &self.at {
            // Built-in lists keyed by protocol default it to TCP (as upstream's defaulted keys do).
            At::Table { .. } => (key == "protocol").then(|| Value::String("TCP".into())),
            At::Crd(n) => n.key_default(key),
        }
    }

    /// How server-side apply identifies the items of the list here (`items`, for the fallback).
    pub fn list_kind(&self, items: &[Value]) -> ListKind {
        let (shape, f) = match &self.at {
            At::Table { shape, field, .. } => (shape, *field),
            At::Crd(n) => return n.list_kind(),
        };
        if matches!(shape, Some(Shape::Untyped)) {
            return ListKind::Atomic;
        }
        match f.list_type {
            Some("map") if !f.list_map_keys.is_empty() => {
                return ListKind::Map(f.list_map_keys.iter().map(|s| s.to_string()).collect())
            }
            Some("set") => return ListKind::Set,
            Some("atomic") => return ListKind::Atomic,
            _ => {}
        }
        if let Some(strategy) = f.patch_strategy {
            if strategy.split(',').any(|s| s == "merge") {
                return match f.patch_merge_key {
                    Some(k) => ListKind::Map(vec![k.to_string()]),
                    None => ListKind::Set,
                };
            }
        }
        if self.known() {
            return ListKind::Atomic;
        }
        if !items.is_empty()
            && items
                .iter()
                .all(|i| i.get("name").is_some_and(Value::is_string))
        {
            ListKind::Map(vec!["name".into()])
        } else {
            ListKind::Atomic
        }
    }
}

/// A path: FieldsV1 keys from the root (`["f:spec", "k:{\"name\":\"c\"}", "f:image"]`).
pub type Path = Vec<String>;

/// A set of paths. A path is a *member* when the node itself is owned (a leaf, or `.` of a compound).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeSet<Path>);

impl FieldSet {
    pub fn new() -> Self {
        FieldSet::default()
    }
    pub fn insert(&mut self, p: Path) {
        self.0.insert(p);
    }
    pub fn contains(&self, p: &Path) -> bool {
        self.0.contains(p)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }
    pub fn union(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&o.0).cloned().collect())
    }
    pub fn difference(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&o.0).cloned().collect())
    }
    pub fn intersection(&self, o: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&o.0).cloned().collect())
    }
    /// Drops every path equal to or under one of `prefixes`.
    pub fn without_prefixes(&self, prefixes: &FieldSet) -> FieldSet {
        FieldSet(
            self.0
                .iter()
                .filter(|p| !prefixes.iter().any(|q| p.starts_with(q)))
                .cloned()
                .collect(),
        )
    }
    /// Whether `p` or anything under it is in the set.
    pub fn has_at_or_under(&self, p: &Path) -> bool {
        self.0
            .range(p.clone()..)
            .next()
            .is_some_and(|q| q.starts_with(p))
    }

    /// FieldsV1: nested objects keyed by path elements, `.` marking a member that also has children.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        let mut root = Node::default();
        for p in &self.0 {
            let mut n = &mut root;
            for e in p {
                n = n.children.entry(e.clone()).or_default();
            }
            n.member = true;
        }
        fn emit(n: &Node) -> Value {
            let mut m = Map::new();
            if n.member && !n.children.is_empty() {
                m.insert(".".into(), Value::Object(Map::new()));
            }
            for (k, c) in &n.children {
                m.insert(k.clone(), emit(c));
            }
            Value::Object(m)
        }
        emit(&root)
    }

    /// Parses FieldsV1; anything that isn't an object of objects is ignored.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) {
            let Some(m) = v.as_object() else { return };
            for (k, c) in m {
                if k == "." {
                    if !path.is_empty() {
                        out.insert(path.clone());
                    }
                    continue;
                }
                path.push(k.clone());
                if c.as_object().is_none_or(|o| o.is_empty()) {
                    out.insert(path.clone());
                } else {
                    walk(c, path, out);
                }
                path.pop();
            }
        }
        let mut out = FieldSet::new();
        walk(v, &mut Vec::new(), &mut out);
        out
    }
}

/// `f:name`.
pub fn field_pe(name: &str) -> String {
    format!("f:{name}")
}

/// The key path element of a map-list item: `k:{"containerPort":80,"protocol":"TCP"}`, keys sorted.
/// A key the item omits takes its default from `elem`, the items' position (TCP for a built-in
/// `protocol`, the key property's `default` in a CRD schema).
pub fn key_pe(item: &Value, keys: &[String], elem: &Pos) -> Option<String> {
    let mut m = BTreeMap::new();
    for k in keys {
        match item.get(k) {
            Some(v) if !v.is_null() => {
                m.insert(k.clone(), v.clone());
            }
            _ => {
                if let Some(d) = elem.key_default(k) {
                    m.insert(k.clone(), d);
                }
            }
        }
    }
    if m.is_empty() {
        return None;
    }
    let obj: Map<String, Value> = m.into_iter().collect();
    Some(format!("k:{}", Value::Object(obj)))
}

/// `v:<json>` for a set member.
pub fn value_pe(v: &Value) -> String {
    format!("v:{v}")
}

/// Upstream's `Path.String()`: `.spec.containers[name="c"].image`, `.metadata.finalizers[="x"]`.
pub fn display(p: &Path) -> String {
    let mut s = String::new();
    for e in p {
        if let Some(f) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = e.strip_prefix("k:") {
            let parsed: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let parts: Vec<String> = parsed
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = e.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = e.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// The path elements of a list's items, in order (None for an item that can't be identified).
fn item_pes(items: &[Value], kind: &ListKind, elem: &Pos) -> Vec<Option<String>> {
    items
        .iter()
        .enumerate()
        .map(|(i, it)| match kind {
            ListKind::Map(keys) => key_pe(it, keys, elem),
            ListKind::Set => Some(value_pe(it)),
            ListKind::Atomic => Some(format!("i:{i}")),
        })
        .collect()
}

fn is_empty_compound(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Visits every node below the root once, telling whether upstream's field sets count it as a member
/// (`ToFieldSet`): leaves, atomic values and list items are; structs, maps and non-atomic lists only
/// through their children. The walk that both [`set_of`] and [`all_nodes`] are.
fn visit(v: &Value, pos: &Pos, path: &mut Path, is_item: bool, f: &mut impl FnMut(&Path, bool)) {
    let mut emit = |path: &Path, member: bool| {
        if !path.is_empty() {
            f(path, member);
        }
    };
    match v {
        Value::Object(m) if !pos.is_atomic_object() => {
            emit(path, is_item);
            for (k, c) in m {
                path.push(field_pe(k));
                visit(c, &pos.child(k), path, false, f);
                path.pop();
            }
        }
        Value::Array(items) => {
            let kind = pos.list_kind(items);
            if kind == ListKind::Atomic {
                emit(path, true);
                return;
            }
            emit(path, is_item);
            let elem = pos.elem();
            for (it, pe) in items.iter().zip(item_pes(items, &kind, &elem)) {
                let Some(pe) = pe else { continue };
                path.push(pe);
                visit(it, &elem, path, true, f);
                path.pop();
            }
        }
        _ => emit(path, true),
    }
}

/// Upstream's `ToFieldSet`: the fields an applied configuration sets. Leaves and atomic values are
/// members; structs and maps only through their fields; list items are members themselves (`.`).
pub fn set_of(v: &Value, pos: &Pos) -> FieldSet {
    let mut out = FieldSet::new();
    visit(v, pos, &mut Vec::new(), false, &mut |p, member| {
        if member {
            out.insert(p.clone());
        }
    });
    out
}

/// What changed between two versions of an object (upstream's `Compare`).
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// Added or modified.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares `old` with `new`. With `creating`, structs count as already present (as in upstream's
/// zero-valued "live" object on create), so only maps and list items newly appear as wholes.
pub fn compare(old: &Value, new: &Value, pos: &Pos, creating: bool) -> Comparison {
    let mut c = Comparison::default();
    walk_compare(Some(old), Some(new), pos, &mut Vec::new(), &mut c, creating);
    c
}

fn walk_compare(
    old: Option<&Value>,
    new: Option<&Value>,
    pos: &Pos,
    path: &mut Path,
    c: &mut Comparison,
    creating: bool,
) {
    let both_empty = is_empty_compound(old) && is_empty_compound(new);
    let leaf = |v: Option<&Value>| match v {
        None => true,
        Some(Value::Object(_)) => pos.is_atomic_object(),
        Some(Value::Array(items)) => pos.list_kind(items) == ListKind::Atomic,
        Some(_) => true,
    };
    // A node is a leaf when neither side has structure to descend into (or they disagree on the kind).
    let kinds_agree = match (old, new) {
        (Some(a), Some(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
        _ => true,
    };
    if both_empty || !kinds_agree || (leaf(old) && leaf(new)) {
        if path.is_empty() {
            return;
        }
        match (old, new) {
            // An empty struct exists in upstream's zero-valued object already.
            (None, Some(n))
                if creating && is_empty_compound(Some(n)) && pre_exists_on_create(n, pos, path) => {
            }
            (None, Some(_)) => c.added.insert(path.clone()),
            (Some(_), None) => c.removed.insert(path.clone()),
            (Some(a), Some(b)) if a != b => c.modified.insert(path.clone()),
            _ => {}
        }
        return;
    }
    match (old.or(new), new.or(old)) {
        (Some(Value::Object(_)), _) => {
            let om = old.and_then(Value::as_object);
            let nm = new.and_then(Value::as_object);
            let mut keys: Vec<&String> = om.map(|m| m.keys().collect()).unwrap_or_default();
            for k in nm.map(|m| m.keys().collect::<Vec<_>>()).unwrap_or_default() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            for k in keys {
                path.push(field_pe(k));
                walk_compare(
                    om.and_then(|m| m.get(k)),
                    nm.and_then(|m| m.get(k)),
                    &pos.child(k),
                    path,
                    c,
                    creating,
                );
                path.pop();
            }
        }
        (Some(Value::Array(_)), _) => {
            let empty = Vec::new();
            let oa = old.and_then(Value::as_array).unwrap_or(&empty);
            let na = new.and_then(Value::as_array).unwrap_or(&empty);
            let all: Vec<Value> = oa.iter().chain(na.iter()).cloned().collect();
            let kind = pos.list_kind(&all);
            let elem = pos.elem();
            let opes = item_pes(oa, &kind, &elem);
            let npes = item_pes(na, &kind, &elem);
            let find = |pes: &[Option<String>], items: &'_ [Value], pe: &str| -> Option<usize> {
                pes.iter()
                    .position(|p| p.as_deref() == Some(pe))
                    .filter(|i| *i < items.len())
            };
            let mut seen = BTreeSet::new();
            for pe in opes.iter().chain(npes.iter()).flatten() {
                if !seen.insert(pe.clone()) {
                    continue;
                }
                let o = find(&opes, oa, pe).map(|i| &oa[i]);
                let n = find(&npes, na, pe).map(|i| &na[i]);
                path.push(pe.clone());
                walk_compare(o, n, &elem, path, c, creating);
                path.pop();
            }
        }
        _ => {}
    }
    if path.is_empty() {
        return;
    }
    match (old, new) {
        (None, Some(n)) if !(creating && pre_exists_on_create(n, pos, path)) => {
            c.added.insert(path.clone())
        }
        (Some(_), None) => c.removed.insert(path.clone()),
        _ => {}
    }
}

/// Whether upstream's zero-valued object (the "live" side of a create) already has this node: its
/// structs (not maps, which are omitted when empty) and PodSpec's `containers` (serialized as null).
fn pre_exists_on_create(n: &Value, pos: &Pos, path: &Path) -> bool {
    if !pos.zero_value_has_structs() {
        return false;
    }
    match path.last().and_then(|e| e.strip_prefix("f:")) {
        Some("containers") => true,
        Some(_) => n.is_object() && !pos.is_map(),
        None => false,
    }
}

/// Upstream's apply merge: `config` over `live`. Objects merge field by field, map-lists item by item
/// (live order kept, new items placed where the config puts them), sets by value, anything else is
/// replaced. A `null` in the config removes the field.
pub fn apply_merge(live: &Value, config: &Value, pos: &Pos) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(cfg)) if !pos.is_atomic_object() => {
            let mut out = l.clone();
            for (k, v) in cfg {
                if v.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match l.get(k) {
                    Some(lv) => apply_merge(lv, v, &pos.child(k)),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(cfg)) => {
            let all: Vec<Value> = l.iter().chain(cfg.iter()).cloned().collect();
            let kind = pos.list_kind(&all);
            if kind == ListKind::Atomic {
                return config.clone();
            }
            let elem = pos.elem();
            let lpes = item_pes(l, &kind, &elem);
            let cpes = item_pes(cfg, &kind, &elem);
            let mut out = Vec::new();
            let mut used_live = vec![false; l.len()];
            let (mut i, mut j) = (0, 0);
            while i < l.len() || j < cfg.len() {
                if i < l.len() && (used_live[i] || lpes[i].is_none() || !cpes.contains(&lpes[i])) {
                    if !used_live[i] {
                        out.push(l[i].clone());
                    }
                    i += 1;
                    continue;
                }
                if j >= cfg.len() {
                    i += 1;
                    continue;
                }
                let pe = &cpes[j];
                match lpes.iter().position(|p| p.is_some() && p == pe) {
                    Some(li) if !used_live[li] => {
                        used_live[li] = true;
                        out.push(apply_merge(&l[li], &cfg[j], &elem));
                    }
                    Some(_) => {}
                    None => out.push(cfg[j].clone()),
                }
                j += 1;
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// Navigates to `p` (below the object), returning the parent container and the last element.
fn remove_path(obj: &mut Value, p: &[String], pos: &Pos) -> bool {
    let Some((first, rest)) = p.split_first() else {
        return false;
    };
    if let Some(f) = first.strip_prefix("f:") {
        let Some(m) = obj.as_object_mut() else {
            return false;
        };
        if rest.is_empty() {
            return m.remove(f).is_some();
        }
        let child = pos.child(f);
        return m.get_mut(f).is_some_and(|c| remove_path(c, rest, &child));
    }
    let Some(items) = obj.as_array_mut() else {
        return false;
    };
    let kind = pos.list_kind(items);
    let elem = pos.elem();
    let idx = item_pes(items, &kind, &elem)
        .iter()
        .position(|pe| pe.as_deref() == Some(first.as_str()))
        .or_else(|| {
            first
                .strip_prefix("i:")
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i < items.len())
        });
    let Some(idx) = idx else { return false };
    if rest.is_empty() {
        items.remove(idx);
        return true;
    }
    remove_path(&mut items[idx], rest, &elem)
}

/// Removes the nodes at `paths` (a parent before its children; children of a removed node are skipped).
pub fn remove_paths(obj: &mut Value, paths: &FieldSet, pos: &Pos) {
    let mut removed: Vec<&Path> = Vec::new();
    for p in paths.iter() {
        if removed.iter().any(|r| p.starts_with(r)) {
            continue;
        }
        if remove_path(obj, p, pos) {
            removed.push(p);
        }
    }
}

/// Every node path present in `v` (struct fields, map entries, list items and leaves): what prune
/// may consider removing.
pub fn all_nodes(v: &Value, pos: &Pos) -> FieldSet {
    let mut out = FieldSet::new();
    visit(v, pos, &mut Vec::new(), false, &mut |p, _| {
        out.insert(p.clone());
    });
    out
}

#[cfg(test)]
pub mod testschema {
    //! A small schema for tests: a Pod-like kind with containers (keyed by name), ports (keyed by
    //! containerPort+protocol), finalizers (a set), args (atomic) and labels (a map).
    use super::*;

    pub struct TestFacts;

    const SCALAR: Shape = Shape::Scalar;

    fn f(shape: Shape) -> Option<Field> {
        Some(Field {
            facts: FieldFacts::default(),
            shape,
        })
    }

    impl Facts for TestFacts {
        fn root(&self, _api_version: &str, kind: &str) -> Option<TypeRef> {
            (kind == "Pod" || kind == "ConfigMap").then_some(TypeRef("Root"))
        }
        fn field(&self, ty: TypeRef, name: &str) -> Option<Field> {
            match (ty.0, name) {
                ("Root", "metadata") => f(Shape::Object(TypeRef("Meta"))),
                ("Root", "spec") => f(Shape::Object(TypeRef("Spec"))),
                ("Root", "data") => f(Shape::Map(Box::new(SCALAR))),
                ("Root", "apiVersion" | "kind") => f(SCALAR),
                ("Meta", "labels" | "annotations") => f(Shape::Map(Box::new(SCALAR))),
                ("Meta", "name" | "namespace") => f(SCALAR),
                ("Meta", "finalizers") => Some(Field {
                    facts: FieldFacts {
                        patch_strategy: Some("merge"),
                        list_type: Some("set"),
                        ..Default::default()
                    },
                    shape: Shape::List(Box::new(SCALAR)),
                }),
                ("Spec", "containers") => Some(Field {
                    facts: FieldFacts {
                        patch_strategy: Some("merge"),
                        patch_merge_key: Some("name"),
                        list_type: Some("map"),
                        list_map_keys: &["name"],
                        ..Default::default()
                    },
                    shape: Shape::List(Box::new(Shape::Object(TypeRef("Container")))),
                }),
                ("Spec", "replicas" | "nodeName") => f(SCALAR),
                ("Spec", "volumes") => Some(Field {
                    facts: FieldFacts {
                        patch_strategy: Some("merge,retainKeys"),
                        patch_merge_key: Some("name"),
                        list_type: Some("map"),
                        list_map_keys: &["name"],
                        ..Default::default()
                    },
                    shape: Shape::List(Box::new(Shape::Object(TypeRef("Volume")))),
                }),
                ("Volume", "name") => f(SCALAR),
                ("Volume", "hostPath" | "emptyDir") => f(Shape::Untyped),
                ("Spec", "strategy") => Some(Field {
                    facts: FieldFacts {
                        patch_strategy: Some("retainKeys"),
                        ..Default::default()
                    },
                    shape: Shape::Object(TypeRef("Strategy")),
                }),
                ("Strategy", "type") => f(SCALAR),
                ("Strategy", "rollingUpdate") => f(Shape::Untyped),
                ("Container", "name" | "image") => f(SCALAR),
                ("Container", "args") => f(Shape::List(Box::new(SCALAR))),
                ("Container", "ports") => Some(Field {
                    facts: FieldFacts {
                        patch_strategy: Some("merge"),
                        patch_merge_key: Some("containerPort"),
                        list_type: Some("map"),
                        list_map_keys: &["containerPort", "protocol"],
                        ..Default::default()
                    },
                    shape: Shape::List(Box::new(Shape::Object(TypeRef("Port")))),
                }),
                ("Port", "containerPort" | "protocol" | "name") => f(SCALAR),
                _ => None,
            }
        }
    }

    pub fn pod_pos() -> Pos<'static> {
        Pos::root(&TestFacts, "v1", "Pod")
    }
}

/// Checks against the built-in schema facts ([`super::schema`]): they hold once its table is generated.
#[cfg(test)]
mod builtin_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_lists_from_schema() {
        let pod = Pos::root(&Builtin, "v1", "Pod");
        let containers = pod.child("spec").child("containers");
        assert_eq!(
            containers.list_kind(&[]),
            ListKind::Map(vec!["name".into()])
        );
        let ports = containers.elem().child("ports");
        assert_eq!(
            ports.list_kind(&[]),
            ListKind::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            pod.child("metadata").child("finalizers").list_kind(&[]),
            ListKind::Set
        );
        assert_eq!(
            containers.elem().child("args").list_kind(&[json!("a")]),
            ListKind::Atomic
        );
        assert!(pod.child("metadata").child("labels").is_map());
        assert!(!pod.child("spec").is_map());
    }

    #[test]
    fn deployment_selector_is_atomic() {
        let d = Pos::root(&Builtin, "apps/v1", "Deployment");
        let cfg = json!({"spec": {"selector": {"matchLabels": {"app": "x"}}}});
        assert_eq!(
            set_of(&cfg, &d).to_fields_v1(),
            json!({"f:spec": {"f:selector": {}}})
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testschema::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_roundtrip_and_shape() {
        let obj = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let s = set_of(&obj, &pod_pos());
        let v1 = s.to_fields_v1();
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), s);
    }

    #[test]
    fn display_paths() {
        let p: Path = vec![
            "f:spec".into(),
            "k:{\"name\":\"c\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(display(&p), ".spec[name=\"c\"].image");
        let p: Path = vec!["f:metadata".into(), "f:finalizers".into(), "v:\"x\"".into()];
        assert_eq!(display(&p), ".metadata.finalizers[=\"x\"]");
    }

    #[test]
    fn port_keys_default_protocol() {
        assert_eq!(
            key_pe(
                &json!({"containerPort": 80}),
                &["containerPort".into(), "protocol".into()],
                &pod_pos()
            )
            .as_deref(),
            Some("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
        );
    }

    #[test]
    fn compare_marks_new_maps_and_items_not_structs_on_create() {
        let new =
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "c"}]}});
        let c = compare(&json!({}), &new, &pod_pos(), true);
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}}}}})
        );
        let c = compare(&json!({}), &json!({"spec": {}}), &pod_pos(), true);
        assert!(c.added.is_empty());
        let old = new.clone();
        let mut newer = new.clone();
        newer["spec"]["containers"][0]["image"] = json!("x");
        newer["metadata"]["labels"] = json!({});
        let c = compare(&old, &newer, &pod_pos(), false);
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {"f:image": {}}}}})
        );
        assert!(c
            .removed
            .contains(&vec!["f:metadata".into(), "f:labels".into(), "f:a".into()]));
    }

    #[test]
    fn apply_merge_keyed_and_atomic() {
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1", "args": ["x"]}, {"name": "b", "image": "2"}]}});
        let cfg = json!({"spec": {"containers": [{"name": "b", "image": "3"}, {"name": "c", "image": "4"}, {"name": "a", "args": ["y"]}]}});
        let out = apply_merge(&live, &cfg, &pod_pos());
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "b", "image": "3"}, {"name": "c", "image": "4"}, {"name": "a", "image": "1", "args": ["y"]}]}})
        );
        let live = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = apply_merge(
            &live,
            &json!({"metadata": {"finalizers": ["c", "a"]}}),
            &pod_pos(),
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["c", "a", "b"]}}));
    }

    #[test]
    fn remove_nodes() {
        let mut v = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let mut s = FieldSet::new();
        s.insert(vec!["f:metadata".into(), "f:labels".into(), "f:a".into()]);
        s.insert(vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"b\"}".into(),
        ]);
        remove_paths(&mut v, &s, &pod_pos());
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"containers": [{"name": "a"}]}})
        );
    }
}
