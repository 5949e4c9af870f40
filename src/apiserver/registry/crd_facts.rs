//! How a custom resource's lists and maps merge, read from its CRD version's `openAPIV3Schema`.
//!
//! Why this exists: server-side apply, managedFields and the apply merge learn from
//! [`crate::apiserver::registry::fieldpath::Pos`] whether a list is keyed, a set or atomic and whether
//! an object is granular or one leaf. For the built-in kinds that comes from a static table; a custom
//! resource's answers live in its CRD's structural schema, so upstream (the CRD OpenAPI builder, then
//! kube-openapi's `schemaconv.ToSchemaFromOpenAPI`) turns that schema into a structured-merge-diff
//! schema. We walk the JSON schema node by node instead of building anything, with the same results:
//!
//! - `x-kubernetes-list-type: map` keys items by `x-kubernetes-list-map-keys` (a key an item omits
//!   takes the key property's `default`), `set` identifies items by value, `atomic` — and, unlike the
//!   built-in kinds' fallback, a CRD list with no `x-kubernetes-list-type` at all — is one value;
//! - objects are granular unless `x-kubernetes-map-type: atomic`; `properties` name a struct's fields,
//!   `additionalProperties` makes a map of that schema;
//! - content the schema doesn't describe (`x-kubernetes-preserve-unknown-fields`, an object without
//!   properties, no schema at all) is upstream's "deduced" type: objects granular all the way down,
//!   lists atomic with atomic items;
//! - the top of the object and every `x-kubernetes-embedded-resource` have upstream's `apiVersion`
//!   and `kind` (strings) and `metadata` (the built-in ObjectMeta), whatever the schema says there;
//! - `x-kubernetes-int-or-string` nodes (no `type`) hold scalars, leaves like any other.

use serde_json::Value;

use crate::apiserver::registry::fieldpath::ListKind;

/// A position in a custom resource, as the CRD schema describes it.
#[derive(Clone, Copy, Debug)]
pub enum Node<'a> {
    /// The object's top, with its version's schema.
    Root(&'a Value),
    /// A node of the schema.
    Schema(&'a Value),
    /// Upstream's `__untyped_deduced_`: what no schema describes. Objects are granular maps of deduced
    /// values; lists are atomic.
    Deduced,
    /// Upstream's `__untyped_atomic_` (the items of a deduced or item-less list): one value.
    Untyped,
    /// `apiVersion` / `kind`: strings.
    Scalar,
}

/// Where a step from a node leads.
#[derive(Debug)]
pub enum Step<'a> {
    Node(Node<'a>),
    /// The object's (or an embedded resource's) `metadata`: the built-in ObjectMeta.
    ObjectMeta,
}

impl<'a> Node<'a> {
    /// The top of a custom resource whose version has `schema`. Without one upstream's builder gives
    /// the kind a bare `type: object`, so everything (metadata too) is deduced.
    pub fn root(schema: Option<&'a Value>) -> Node<'a> {
        match schema {
            Some(s) => Node::Root(s),
            None => Node::Deduced,
        }
    }

    fn schema(self) -> Option<&'a Value> {
        match self {
            Node::Root(s) | Node::Schema(s) => Some(s),
            _ => None,
        }
    }

    /// The field or map entry `key` of the object here.
    pub fn child(self, key: &str) -> Step<'a> {
        let s = match self {
            Node::Root(s) | Node::Schema(s) => s,
            Node::Deduced => return Step::Node(Node::Deduced),
            Node::Untyped | Node::Scalar => return Step::Node(Node::Untyped),
        };
        // The builder sets these three on the kind and on embedded resources, over the CRD's own.
        if matches!(self, Node::Root(_)) || flag(s, "x-kubernetes-embedded-resource") {
            match key {
                "metadata" => return Step::ObjectMeta,
                "apiVersion" | "kind" => return Step::Node(Node::Scalar),
                _ => {}
            }
        }
        if let Some(p) = s.get("properties").and_then(|p| p.get(key)) {
            return Step::Node(Node::Schema(p));
        }
        Step::Node(match s.get("additionalProperties") {
            Some(ap @ Value::Object(_)) => Node::Schema(ap),
            // `additionalProperties: true`, preserve-unknown-fields or an object without properties:
            // deduced, as upstream. (A field a struct doesn't declare is pruned before it is stored.)
            _ => Node::Deduced,
        })
    }

    /// An item of the list here.
    pub fn elem(self) -> Node<'a> {
        match self.schema().and_then(|s| s.get("items")) {
            Some(i @ Value::Object(_)) => Node::Schema(i),
            _ => Node::Untyped,
        }
    }

    /// How the list here identifies its items.
    pub fn list_kind(self) -> ListKind {
        let Some(s) = self.schema() else {
            return ListKind::Atomic;
        };
        match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let keys: Vec<String> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect();
                // CRD validation requires keys; without them upstream's conversion fails, and a
                // keyless "map" can only be treated as one value.
                if keys.is_empty() {
                    ListKind::Atomic
                } else {
                    ListKind::Map(keys)
                }
            }
            Some("set") => ListKind::Set,
            // Upstream's default for a list without a list type is atomic (CRD schemas cannot carry
            // the patch strategy the built-in kinds fall back to).
            _ => ListKind::Atomic,
        }
    }

    /// Whether an object here is one leaf: `x-kubernetes-map-type: atomic`, or inside an atomic value.
    pub fn atomic_object(self) -> bool {
        match self {
            Node::Root(s) | Node::Schema(s) => {
                s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
            }
            Node::Deduced => false,
            Node::Untyped | Node::Scalar => true,
        }
    }

    /// Whether the object here is a map (keys chosen by users) rather than a struct.
    pub fn is_map(self) -> bool {
        match self {
            Node::Root(_) => false,
            Node::Schema(s) => s
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(|p| p.is_empty()),
            Node::Deduced => true,
            Node::Untyped | Node::Scalar => false,
        }
    }

    /// The value a map-list item (this node) has for key field `key` when it omits it: the key
    /// property's `default` (structured-merge-diff's rule; with neither, the item has no key).
    pub fn key_default(self, key: &str) -> Option<Value> {
        self.schema()?
            .get("properties")?
            .get(key)?
            .get("default")
            .filter(|d| !d.is_null())
            .cloned()
    }
}

fn flag(s: &Value, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::registry::fieldpath::{set_of, Pos};
    use crate::apiserver::registry::managed_fields::{apply, decode, record_update, Ctx};

    /// A CRD version's schema with one field of each kind server-side apply tells apart.
    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["port", "protocol"],
                          "items": {"type": "object", "required": ["port"], "properties": {
                              "port": {"type": "integer"},
                              "protocol": {"type": "string", "default": "TCP"},
                              "name": {"type": "string"}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                             "properties": {"app": {"type": "string"}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                             "x-kubernetes-preserve-unknown-fields": true},
                "target": {"x-kubernetes-int-or-string": true},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}})
    }

    fn ctx(schema: &Value) -> Ctx<'_> {
        Ctx {
            pos: Pos::custom_root(Some(schema)),
            api_version: "example.com/v1".into(),
            subresource: String::new(),
            has_status: true,
        }
    }

    fn cr(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
    }

    fn owned(obj: &Value, manager: &str) -> Value {
        decode(obj)
            .into_iter()
            .find(|e| e.manager == manager)
            .map(|e| e.set.to_fields_v1())
            .unwrap_or(Value::Null)
    }

    #[test]
    fn map_list_with_two_keys_keeps_each_appliers_item() {
        let s = schema();
        let c = ctx(&s);
        let a = apply(
            &c,
            None,
            &cr(json!({"ports": [{"port": 80, "protocol": "TCP", "name": "a"}]})),
            "A",
            false,
        )
        .expect("A applies");
        let b = apply(
            &c,
            Some(&a),
            &cr(json!({"ports": [{"port": 80, "protocol": "UDP", "name": "b"}]})),
            "B",
            false,
        )
        .expect("B applies");
        assert_eq!(
            b["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "name": "a"}, {"port": 80, "protocol": "UDP", "name": "b"}])
        );
        assert_eq!(
            owned(&b, "A"),
            json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}}}}})
        );
        assert_eq!(
            owned(&b, "B"),
            json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"UDP\"}": {".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}}}}})
        );
        // B changing A's item conflicts on that item's field, named by both keys.
        let err = apply(
            &c,
            Some(&b),
            &cr(json!({"ports": [{"port": 80, "protocol": "TCP", "name": "x"}]})),
            "B",
            false,
        )
        .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"A\": .spec.ports[port=80,protocol=\"TCP\"].name"
        );
        // A stopping to apply its item removes it, and only it.
        let a2 = apply(&c, Some(&b), &cr(json!({})), "A", false).expect("A drops its port");
        assert_eq!(
            a2["spec"]["ports"],
            json!([{"port": 80, "protocol": "UDP", "name": "b"}])
        );
    }

    #[test]
    fn map_list_key_defaults_from_the_schema() {
        let s = schema();
        let out = apply(
            &ctx(&s),
            None,
            &cr(json!({"ports": [{"port": 443}]})),
            "A",
            false,
        )
        .expect("apply");
        assert_eq!(
            owned(&out, "A"),
            json!({"f:spec": {"f:ports": {"k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}}})
        );
    }

    #[test]
    fn set_list_merges_by_value() {
        let s = schema();
        let c = ctx(&s);
        let a = apply(&c, None, &cr(json!({"tags": ["x", "y"]})), "A", false).expect("A");
        let b = apply(&c, Some(&a), &cr(json!({"tags": ["z"]})), "B", false).expect("B");
        assert_eq!(b["spec"]["tags"], json!(["x", "y", "z"]));
        assert_eq!(
            owned(&b, "B"),
            json!({"f:spec": {"f:tags": {"v:\"z\"": {}}}})
        );
        assert_eq!(
            owned(&b, "A"),
            json!({"f:spec": {"f:tags": {"v:\"x\"": {}, "v:\"y\"": {}}}})
        );
    }

    #[test]
    fn list_without_list_type_is_atomic() {
        let s = schema();
        let c = ctx(&s);
        assert_eq!(
            Pos::custom_root(Some(&s))
                .child("spec")
                .child("args")
                .list_kind(&[]),
            ListKind::Atomic
        );
        let a = apply(&c, None, &cr(json!({"args": ["x", "y"]})), "A", false).expect("A");
        assert_eq!(owned(&a, "A"), json!({"f:spec": {"f:args": {}}}));
        let err =
            apply(&c, Some(&a), &cr(json!({"args": ["z"]})), "B", false).expect_err("conflict");
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"A\": .spec.args"
        );
        let b = apply(&c, Some(&a), &cr(json!({"args": ["z"]})), "B", true).expect("forced");
        assert_eq!(
            b["spec"]["args"],
            json!(["z"]),
            "replaced whole, not merged"
        );
        assert_eq!(owned(&b, "B"), json!({"f:spec": {"f:args": {}}}));
        assert_eq!(owned(&b, "A"), Value::Null, "A owned nothing else");
    }

    #[test]
    fn granular_and_atomic_maps() {
        let s = schema();
        let c = ctx(&s);
        let a = apply(
            &c,
            None,
            &cr(json!({"labels": {"a": "1"}, "selector": {"app": "x"}})),
            "A",
            false,
        )
        .expect("A");
        assert_eq!(
            owned(&a, "A"),
            json!({"f:spec": {"f:labels": {"f:a": {}}, "f:selector": {}}})
        );
        let b = apply(&c, Some(&a), &cr(json!({"labels": {"b": "2"}})), "B", false).expect("B");
        assert_eq!(b["spec"]["labels"], json!({"a": "1", "b": "2"}));
        let err = apply(
            &c,
            Some(&b),
            &cr(json!({"selector": {"app": "y"}})),
            "B",
            false,
        )
        .expect_err("conflict");
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"A\": .spec.selector"
        );
    }

    #[test]
    fn unknown_content_is_deduced_and_embedded_resources_have_object_meta() {
        let s = schema();
        let root = Pos::custom_root(Some(&s));
        let cfg = cr(json!({
            "extra": {"x": {"y": 1}, "l": [1, 2]},
            "target": "80%",
            "template": {"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"labels": {"a": "1"}, "finalizers": ["f"]},
                         "spec": {"containers": [{"name": "c"}]}}}));
        assert_eq!(
            set_of(&cfg["spec"], &root.child("spec")).to_fields_v1(),
            json!({
                "f:extra": {"f:l": {}, "f:x": {"f:y": {}}},
                "f:target": {},
                "f:template": {"f:apiVersion": {}, "f:kind": {},
                               "f:metadata": {"f:finalizers": {"v:\"f\"": {}}, "f:labels": {"f:a": {}}},
                               "f:spec": {"f:containers": {}}}})
        );
        // The object's own metadata is the built-in ObjectMeta too.
        let meta = root.child("metadata");
        assert_eq!(meta.child("finalizers").list_kind(&[]), ListKind::Set);
        assert_eq!(
            meta.child("ownerReferences").list_kind(&[]),
            ListKind::Map(vec!["uid".into()])
        );
    }

    #[test]
    fn without_a_schema_everything_is_deduced() {
        let root = Pos::custom_root(None);
        let cfg = json!({"spec": {"m": {"k": "v"}, "items": [{"name": "a"}]}});
        assert_eq!(
            set_of(&cfg, &root).to_fields_v1(),
            json!({"f:spec": {"f:items": {}, "f:m": {"f:k": {}}}})
        );
    }

    /// Upstream's "live" object on a custom resource's create is an empty unstructured object, so the
    /// creating manager owns `spec` itself too (`.`), unlike a built-in kind's zero-valued struct.
    #[test]
    fn create_owns_the_spec_struct() {
        let s = schema();
        let mut obj = cr(json!({"args": ["a"]}));
        record_update(&ctx(&s), None, &mut obj, Vec::new(), "kubectl-create");
        assert_eq!(
            owned(&obj, "kubectl-create"),
            json!({"f:spec": {".": {}, "f:args": {}}})
        );
    }
}
