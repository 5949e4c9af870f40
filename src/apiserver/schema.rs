//! Structural facts about the built-in kinds' schemas, for patching and server-side apply: what a
//! field holds (object, list, map, scalar) and how lists and maps merge (upstream's
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`,
//! `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`).
//!
//! INTERFACE STUB: the implementation is being written (from the generated protobuf field table plus
//! the markers in upstream's type comments). Until then every lookup answers `None`.

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

/// The top-level type of a kind, e.g. ("apps/v1", "Deployment").
pub fn root(_api_version: &str, _kind: &str) -> Option<TypeRef> {
    None
}

impl TypeRef {
    /// The field `json_name` of this object type.
    pub fn field(self, _json_name: &str) -> Option<Field> {
        None
    }
}
