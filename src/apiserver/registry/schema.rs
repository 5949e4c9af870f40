//! Structural facts about the built-in kinds' schemas, for patching and server-side apply: what a
//! field holds (object, list, map, scalar) and how lists and maps merge (upstream's
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`,
//! `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`).
//!
//! The facts come from the same place upstream's OpenAPI extensions come from: the `+patchStrategy`,
//! `+patchMergeKey`, `+listType`, `+listMapKey`, `+mapType` and `+structType` markers in the Go types'
//! comments, which k8s-pb keeps on its generated messages. `protobuf/gen.rs` reads them (with the JSON
//! field names it already derives for the protobuf codec) into `schema_table.rs`, a static table, so a
//! lookup costs two binary searches and nothing is built at startup. The OpenAPI documents
//! (`crate::apiserver::openapi`) read their extensions from here too, so patching and clients agree.

/// The table generator, for the tests that check generated tables are up to date (here and in
/// `openapi`); `protobuf` includes it for its own table.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "../wire/protobuf/gen.rs"]
pub(crate) mod gen;
#[path = "schema_table.rs"]
mod table;

/// How a field's lists/maps merge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldFacts {
    /// `x-kubernetes-patch-strategy`: "merge", "retainKeys", "merge,retainKeys" or "replace".
    pub patch_strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`, e.g. "name" for containers, "containerPort" for ports.
    pub patch_merge_key: Option<&'static str>,
    /// `x-kubernetes-list-type`: "atomic", "set" or "map".
    pub list_type: Option<&'static str>,
    /// `x-kubernetes-list-map-keys` when `list_type` is "map".
    pub list_map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type`: "atomic" or "granular".
    pub map_type: Option<&'static str>,
}

/// An object type of the schema, e.g. "io.k8s.api.core.v1.PodSpec".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeRef(pub &'static str);

/// What a field's value is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    Object(TypeRef),
    /// A list; the element's shape.
    List(Box<Shape>),
    /// A map with string keys; the value's shape.
    Map(Box<Shape>),
    Scalar,
    /// Free-form JSON (RawExtension, JSON, FieldsV1): no structure to merge by.
    Untyped,
}

/// One field of an object type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub facts: FieldFacts,
    pub shape: Shape,
}

/// The generated table's form of a shape: `Obj` indexes `table::TYPES`.
#[derive(Debug)]
enum Sh {
    Obj(u16),
    List(&'static Sh),
    Map(&'static Sh),
    Scalar,
    Untyped,
}

/// One field row of the generated table; empty strings stand for "no marker".
#[derive(Debug)]
struct Fd {
    name: &'static str,
    shape: Sh,
    patch_strategy: &'static str,
    patch_merge_key: &'static str,
    list_type: &'static str,
    list_map_keys: &'static [&'static str],
    map_type: &'static str,
}

/// One object type of the generated table, fields sorted by JSON name.
#[derive(Debug)]
struct Ty {
    name: &'static str,
    /// `+structType=atomic`: the object is replaced as a whole (`x-kubernetes-map-type: atomic`).
    atomic: bool,
    fields: &'static [Fd],
}

const fn fd(
    name: &'static str,
    shape: Sh,
    patch_strategy: &'static str,
    patch_merge_key: &'static str,
    list_type: &'static str,
    list_map_keys: &'static [&'static str],
    map_type: &'static str,
) -> Fd {
    Fd {
        name,
        shape,
        patch_strategy,
        patch_merge_key,
        list_type,
        list_map_keys,
        map_type,
    }
}

fn non_empty(s: &'static str) -> Option<&'static str> {
    (!s.is_empty()).then_some(s)
}

fn ty(name: &str) -> Option<&'static Ty> {
    table::TYPES
        .binary_search_by(|t| t.name.cmp(name))
        .ok()
        .map(|i| &table::TYPES[i])
}

fn shape(sh: &'static Sh) -> Shape {
    match sh {
        Sh::Obj(i) => match table::TYPES.get(usize::from(*i)) {
            Some(t) => Shape::Object(TypeRef(t.name)),
            None => Shape::Untyped,
        },
        Sh::List(e) => Shape::List(Box::new(shape(e))),
        Sh::Map(e) => Shape::Map(Box::new(shape(e))),
        Sh::Scalar => Shape::Scalar,
        Sh::Untyped => Shape::Untyped,
    }
}

/// The top-level type of a kind, e.g. ("apps/v1", "Deployment").
pub fn root(api_version: &str, kind: &str) -> Option<TypeRef> {
    let i = table::ROOTS
        .binary_search_by(|(av, k, _)| (*av, *k).cmp(&(api_version, kind)))
        .ok()?;
    table::TYPES
        .get(usize::from(table::ROOTS[i].2))
        .map(|t| TypeRef(t.name))
}

impl TypeRef {
    /// The field `json_name` of this object type.
    pub fn field(self, json_name: &str) -> Option<Field> {
        let t = ty(self.0)?;
        let f = &t.fields[t.fields.binary_search_by(|f| f.name.cmp(json_name)).ok()?];
        Some(Field {
            facts: facts(f),
            shape: shape(&f.shape),
        })
    }

    /// Whether the type is `+structType=atomic` (upstream's `x-kubernetes-map-type: atomic` on the
    /// definition): apply and merge replace it whole.
    pub fn atomic(self) -> bool {
        ty(self.0).is_some_and(|t| t.atomic)
    }

    /// The type's JSON field names with their facts (embedded structs flattened), sorted by name.
    pub fn fields(self) -> impl Iterator<Item = (&'static str, Field)> {
        ty(self.0)
            .map(|t| t.fields)
            .unwrap_or_default()
            .iter()
            .map(|f| {
                (
                    f.name,
                    Field {
                        facts: facts(f),
                        shape: shape(&f.shape),
                    },
                )
            })
    }
}

fn facts(f: &'static Fd) -> FieldFacts {
    FieldFacts {
        patch_strategy: non_empty(f.patch_strategy),
        patch_merge_key: non_empty(f.patch_merge_key),
        list_type: non_empty(f.list_type),
        list_map_keys: f.list_map_keys,
        map_type: non_empty(f.map_type),
    }
}

/// Every object type the table knows, by upstream definition name.
pub fn type_names() -> impl Iterator<Item = TypeRef> {
    table::TYPES.iter().map(|t| TypeRef(t.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(av: &str, kind: &str, fields: &[&str]) -> Field {
        let mut t = root(av, kind).expect("root");
        let mut last = None;
        for (i, name) in fields.iter().enumerate() {
            let f = t
                .field(name)
                .unwrap_or_else(|| panic!("{kind}: no field {name}"));
            if i + 1 < fields.len() {
                t = match &f.shape {
                    Shape::Object(t) => *t,
                    Shape::List(e) => match e.as_ref() {
                        Shape::Object(t) => *t,
                        s => panic!("{name}: {s:?}"),
                    },
                    s => panic!("{name}: {s:?}"),
                };
            }
            last = Some(f);
        }
        last.expect("a field")
    }

    #[test]
    fn pod_containers() {
        assert_eq!(root("v1", "Pod"), Some(TypeRef("io.k8s.api.core.v1.Pod")));
        let f = path("v1", "Pod", &["spec", "containers"]);
        assert_eq!(
            f.shape,
            Shape::List(Box::new(Shape::Object(TypeRef(
                "io.k8s.api.core.v1.Container"
            ))))
        );
        assert_eq!(f.facts.patch_merge_key, Some("name"));
        assert_eq!(f.facts.patch_strategy, Some("merge"));
        assert_eq!(f.facts.list_type, Some("map"));
        assert_eq!(f.facts.list_map_keys, &["name"]);
        let p = path("v1", "Pod", &["spec", "containers", "ports"]);
        assert_eq!(p.facts.patch_merge_key, Some("containerPort"));
        assert_eq!(p.facts.list_map_keys, &["containerPort", "protocol"]);
    }

    #[test]
    fn metadata() {
        let f = path("v1", "Pod", &["metadata", "finalizers"]);
        assert_eq!(f.facts.patch_strategy, Some("merge"));
        assert_eq!(f.facts.list_type, Some("set"));
        assert_eq!(f.shape, Shape::List(Box::new(Shape::Scalar)));
        let l = path("v1", "ConfigMap", &["metadata", "labels"]);
        assert_eq!(l.shape, Shape::Map(Box::new(Shape::Scalar)));
        let o = path("apps/v1", "Deployment", &["metadata", "ownerReferences"]);
        assert_eq!(o.facts.patch_merge_key, Some("uid"));
        assert_eq!(
            path("v1", "Pod", &["metadata", "managedFields", "fieldsV1"]).shape,
            Shape::Untyped
        );
        assert_eq!(
            path("v1", "Pod", &["metadata", "creationTimestamp"]).shape,
            Shape::Scalar
        );
    }

    #[test]
    fn pod_spec_maps_and_inline_fields() {
        let n = path("v1", "Pod", &["spec", "nodeSelector"]);
        assert_eq!(n.facts.map_type, Some("atomic"));
        assert_eq!(n.shape, Shape::Map(Box::new(Shape::Scalar)));
        // Volume embeds VolumeSource: its fields sit at the volume's level.
        let cm = path("v1", "Pod", &["spec", "volumes", "configMap"]);
        assert_eq!(
            cm.shape,
            Shape::Object(TypeRef("io.k8s.api.core.v1.ConfigMapVolumeSource"))
        );
        // Probe embeds ProbeHandler; its port is an IntOrString.
        let port = path(
            "v1",
            "Pod",
            &["spec", "containers", "livenessProbe", "httpGet", "port"],
        );
        assert_eq!(port.shape, Shape::Scalar);
        let res = path("v1", "Pod", &["spec", "containers", "resources", "limits"]);
        assert_eq!(res.shape, Shape::Map(Box::new(Shape::Scalar)));
        assert!(TypeRef("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector").atomic());
        assert!(!TypeRef("io.k8s.api.core.v1.PodSpec").atomic());
    }

    #[test]
    fn deployment_volumes_and_service_ports() {
        let v = path(
            "apps/v1",
            "Deployment",
            &["spec", "template", "spec", "volumes"],
        );
        assert_eq!(v.facts.patch_merge_key, Some("name"));
        assert_eq!(v.facts.patch_strategy, Some("merge,retainKeys"));
        let p = path("v1", "Service", &["spec", "ports"]);
        assert_eq!(p.facts.list_map_keys, &["port", "protocol"]);
        assert_eq!(p.facts.patch_merge_key, Some("port"));
        assert!(root("apiextensions.k8s.io/v1", "CustomResourceDefinition").is_some());
        assert!(root("apiregistration.k8s.io/v1", "APIService").is_some());
        assert_eq!(root("v1", "NoSuchKind"), None);
        assert_eq!(TypeRef("io.k8s.api.core.v1.Pod").field("nope"), None);
    }

    #[test]
    fn table_is_up_to_date() {
        use super::gen;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
        let pb = gen::find_crate(
            "k8s-pb",
            &gen::locked_version(&lock, "k8s-pb").expect("locked"),
        )
        .expect("k8s-pb");
        let oa = gen::find_crate(
            "k8s-openapi",
            &gen::locked_version(&lock, "k8s-openapi").expect("locked"),
        )
        .expect("k8s-openapi");
        let fresh = gen::generate_schema(&pb, &oa).expect("generate");
        assert!(
            fresh == include_str!("schema_table.rs"),
            "src/apiserver/registry/schema_table.rs is stale: run `cargo run --release --example gen_pb_table`"
        );
    }
}
