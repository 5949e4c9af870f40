//! One object as the watch cache keeps it: its JSON as served, and a small view of it for selectors.
//!
//! A pod decoded into a `serde_json::Value` tree takes several times its JSON's size, and the cache
//! holds every object of every resource plus a window of their recent versions. So the cache keeps
//! each version as the JSON it is served as (resourceVersion in place: a JSON list or watch frame
//! copies the bytes as they are) and a *view*: a tree of only what label and field selectors read
//! (`apiVersion`, `kind`, `metadata.name|namespace|labels` and the resource's selectable fields).
//! The whole tree is decoded only when a consumer needs one (Tables, conversions, the server's own
//! lookups); while anyone holds a decoded tree, every other asking shares it, so a change sent to a
//! thousand watchers is decoded at most once while it is recent. The protobuf encoding is made the
//! first time a protobuf list or watch asks for it, and kept with the version (about half the JSON's
//! size), so client-go's lists and watches encode each version once.
//!
//! [`Obj`] is what lists and watch events carry: such a cached object, or a tree of the response's
//! own (read from storage, converted, a bookmark).

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::{Map, Value};

use super::selectors::{field_sources, lookup};
use crate::apiserver::wire::protobuf;

/// The selectable fields a resource's views hold.
#[derive(Debug, Default)]
pub struct ViewFields {
    /// Field selector names (besides `metadata.name` and `metadata.namespace`, always held).
    fields: Vec<String>,
    /// The paths those fields are read from.
    paths: Vec<String>,
}

impl ViewFields {
    pub fn new<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> Arc<Self> {
        let mut v = ViewFields::default();
        v.add(fields);
        Arc::new(v)
    }

    /// These fields and `other`'s.
    pub fn union(&self, other: &ViewFields) -> Arc<Self> {
        let mut v = ViewFields {
            fields: self.fields.clone(),
            paths: self.paths.clone(),
        };
        v.add(&other.fields);
        Arc::new(v)
    }

    fn add<S: AsRef<str>>(&mut self, fields: impl IntoIterator<Item = S>) {
        for f in fields {
            let f = f.as_ref();
            if self.covers(f) {
                continue;
            }
            self.fields.push(f.to_string());
            for p in field_sources(f) {
                if !self.paths.iter().any(|q| q == p) {
                    self.paths.push(p.to_string());
                }
            }
        }
    }

    /// Whether a view holds what field selector `field` reads.
    pub fn covers(&self, field: &str) -> bool {
        field == "metadata.name"
            || field == "metadata.namespace"
            || self.fields.iter().any(|f| f == field)
    }
}

/// One version of one object in the watch cache.
#[derive(Debug)]
pub struct CachedObject {
    /// The object as served in JSON (resourceVersion included).
    json: Box<[u8]>,
    /// What selectors read of it (see the module doc).
    view: Value,
    fields: Arc<ViewFields>,
    /// The object's resourceVersion.
    revision: i64,
    /// The decoded tree while anyone holds it.
    tree: Mutex<Weak<Value>>,
    /// The protobuf message ([`protobuf::encode_message`]), once one was asked for.
    protobuf: OnceLock<Result<Box<[u8]>, String>>,
}

impl CachedObject {
    /// Keeps `tree` (already stamped with `revision`) as its JSON and view; the tree itself is shared
    /// for as long as the caller (or anyone it hands it to) holds it.
    pub fn new(tree: &Arc<Value>, revision: i64, fields: &Arc<ViewFields>) -> Self {
        // Serializing a Value can't fail (its map keys are strings).
        let json = serde_json::to_vec(&**tree).unwrap_or_default();
        CachedObject {
            json: json.into_boxed_slice(),
            view: view_of(tree, &fields.paths),
            fields: fields.clone(),
            revision,
            tree: Mutex::new(Arc::downgrade(tree)),
            protobuf: OnceLock::new(),
        }
    }

    /// The object's protobuf message: encoded by the first to ask, then kept.
    pub fn protobuf_message(&self) -> Result<&[u8], String> {
        self.protobuf
            .get_or_init(|| protobuf::encode_message(&self.tree()).map(Vec::into_boxed_slice))
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The object as served in JSON.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// `apiVersion`, `kind`, `metadata.name|namespace|labels` and the selectable fields.
    pub fn view(&self) -> &Value {
        &self.view
    }

    /// The view when it holds every field in `fields` (field selector names); else `None`, and the
    /// caller needs the [`tree`](Self::tree) (a field the resource did not have when this was cached).
    pub fn view_for<'a>(&self, mut fields: impl Iterator<Item = &'a str>) -> Option<&Value> {
        fields.all(|f| self.fields.covers(f)).then_some(&self.view)
    }

    /// The whole object: shared with whoever holds it already, else decoded from its JSON.
    pub fn tree(&self) -> Arc<Value> {
        let mut weak = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = weak.upgrade() {
            return t;
        }
        let t = Arc::new(serde_json::from_slice(&self.json).unwrap_or_else(|e| {
            // The bytes were written by serde_json from a tree: only memory corruption gets here.
            tracing::error!("watch cache: a cached object does not decode: {e}");
            Value::Null
        }));
        *weak = Arc::downgrade(&t);
        t
    }
}

/// The tree of what selectors read of `obj` (see the module doc).
fn view_of(obj: &Value, paths: &[String]) -> Value {
    let mut view = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = obj.get(key) {
            view.insert(key.into(), v.clone());
        }
    }
    if let Some(meta) = obj.get("metadata").and_then(Value::as_object) {
        let mut m = Map::new();
        for key in ["name", "namespace", "labels"] {
            if let Some(v) = meta.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
        view.insert("metadata".into(), Value::Object(m));
    }
    for path in paths {
        let Some(v) = lookup(obj, path) else {
            continue;
        };
        let mut at = &mut view;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                at.insert(part.into(), v.clone());
                break;
            }
            let next = at.entry(part).or_insert_with(|| Value::Object(Map::new()));
            match next {
                Value::Object(m) => at = m,
                // A scalar already copied on the way (`a` then `a.b`): `a.b` reads nothing there.
                _ => break,
            }
        }
    }
    Value::Object(view)
}

/// An object in a list or a watch event: the cache's (decoded only when needed), or a tree of the
/// response's own.
#[derive(Clone, Debug)]
pub enum Obj {
    Cached(Arc<CachedObject>),
    Tree(Arc<Value>),
}

impl Obj {
    /// The whole object.
    pub fn tree(&self) -> Arc<Value> {
        match self {
            Obj::Cached(c) => c.tree(),
            Obj::Tree(t) => t.clone(),
        }
    }

    /// What a selector or a conversion check reads: the cached view, or the tree.
    pub fn view(&self) -> &Value {
        match self {
            Obj::Cached(c) => c.view(),
            Obj::Tree(t) => t,
        }
    }

    /// The object's protobuf message (kept with a cached object, encoded for a tree).
    pub fn protobuf_message(&self) -> Result<Cow<'_, [u8]>, String> {
        match self {
            Obj::Cached(c) => c.protobuf_message().map(Cow::Borrowed),
            Obj::Tree(t) => protobuf::encode_message(t).map(Cow::Owned),
        }
    }

    /// Appends the object's JSON (copied as cached, or serialized).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Obj::Cached(c) => out.extend_from_slice(c.json()),
            Obj::Tree(t) => {
                let _ = serde_json::to_writer(out, &**t);
            }
        }
    }
}

impl From<Value> for Obj {
    fn from(v: Value) -> Self {
        Obj::Tree(Arc::new(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Arc<Value> {
        Arc::new(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                         "annotations": {"big": "x"}, "resourceVersion": "7"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}], "hostIP": "1.2.3.4"}}))
    }

    #[test]
    fn view_holds_what_selectors_read_and_json_is_the_served_form() {
        let fields =
            ViewFields::new(["spec.nodeName", "status.phase", "status.podIP", "spec.host"]);
        let tree = pod();
        let c = CachedObject::new(&tree, 7, &fields);
        assert_eq!(
            c.view(),
            &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"nodeName": "n1"},
                "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}})
        );
        assert_eq!(c.json(), serde_json::to_vec(&*tree).unwrap().as_slice());
        assert!(c
            .view_for(["spec.nodeName", "metadata.name"].into_iter())
            .is_some());
        assert!(c.view_for(["status.hostIP"].into_iter()).is_none());
    }

    #[test]
    fn tree_is_shared_while_held_and_decoded_again_after() {
        let fields = ViewFields::new(Vec::<String>::new());
        let tree = pod();
        let c = CachedObject::new(&tree, 7, &fields);
        assert!(Arc::ptr_eq(&c.tree(), &tree));
        drop(tree);
        let again = c.tree();
        assert_eq!(*again, *pod());
        assert!(Arc::ptr_eq(&c.tree(), &again));
    }

    #[test]
    fn protobuf_message_is_encoded_once_and_kept() {
        let fields = ViewFields::new(Vec::<String>::new());
        let tree = pod();
        let c = CachedObject::new(&tree, 7, &fields);
        let first = c.protobuf_message().unwrap();
        assert_eq!(first, protobuf::encode_message(&tree).unwrap().as_slice());
        assert_eq!(first.as_ptr(), c.protobuf_message().unwrap().as_ptr());
        let envelope = protobuf::encode(&tree).unwrap();
        assert!(envelope.ends_with(&[first, &[0x1a, 0, 0x22, 0][..]].concat()));
    }

    #[test]
    fn fields_union() {
        let a = ViewFields::new(["spec.nodeName"]);
        let b = a.union(&ViewFields::new(["status.phase", "spec.nodeName"]));
        assert!(b.covers("spec.nodeName") && b.covers("status.phase"));
        assert!(!a.covers("status.phase"));
        assert_eq!(b.paths, ["spec.nodeName", "status.phase"]);
    }
}
