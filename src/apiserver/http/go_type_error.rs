//! Go's typed-decode errors, word for word, for bodies whose JSON has a value of the wrong type:
//! `json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type []v1.Container`.
//!
//! Why: upstream decodes a body into its Go struct with `encoding/json` (sigs.k8s.io/json's fork), which
//! names the innermost struct, the field's path from the object's root (list indexes and map keys
//! left out) and the Go type it wanted; kubectl prints that text and scripts match on it. serde's
//! wording (`invalid type: string "x", expected a sequence`) is not it. Go's decoder goes on after
//! such an error and reports the first one in document order, so this walks the body in order against
//! the kind's OpenAPI schema (k8s-openapi's, the same one `/openapi/v2` serves). It runs only once
//! serde has refused a body, so it costs nothing on the good path.
//!
//! The Go type comes from the schema, which knows structs, lists, maps and scalars but not Go's named
//! types: a field declared as a named string (`v1.Protocol`) or map (`v1.ResourceList`) is reported as
//! `string` or `map[string]resource.Quantity`. Types with their own decoders (Quantity, Time,
//! IntOrString, raw JSON) are not judged here; an error inside one leaves serde's message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

use crate::apiserver::openapi::definition_ref as reference;

/// Go's name for a JSON value's type in `json: cannot unmarshal X into ...`.
pub fn go_json_kind(v: &Value) -> String {
    match v {
        Value::String(_) => "string".into(),
        Value::Bool(_) => "bool".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Number(n) => format!("number {n}"),
        Value::Null => "null".into(),
    }
}

/// Go's `json: cannot unmarshal` message for `v` going into `field` of `owner` (a Go struct) of Go
/// type `ty`.
pub fn type_error(v: &Value, owner: &str, field: &str, ty: &str) -> String {
    let numeric = matches!(
        ty,
        "int"
            | "int8"
            | "int16"
            | "int32"
            | "int64"
            | "uint"
            | "uint8"
            | "uint16"
            | "uint32"
            | "uint64"
            | "float32"
            | "float64"
    );
    let kind = match v {
        // Go says "number 1.5" when a number does not fit a numeric field, plain "number" when a
        // number went where no number goes.
        Value::Number(_) if !numeric => "number".to_string(),
        other => go_json_kind(other),
    };
    format!("json: cannot unmarshal {kind} into Go struct field {owner}.{field} of type {ty}")
}

/// The first type error in `obj` as upstream's decoder reports it, for the built-in kind `kind` of
/// `api_version`; `None` when there is none this can name (or the first is in a type with its own
/// decoder).
pub fn first(api_version: &str, kind: &str, obj: &Value) -> Option<String> {
    let schema = schema_of(api_version, kind)?;
    let (root, defs) = &*schema;
    let walker = Walker { defs };
    let mut path = Vec::new();
    match walker.object(root, obj.as_object()?, &mut path) {
        Found::Error(e) => Some(e),
        Found::Nothing | Found::Unjudged => None,
    }
}

/// A kind's schema, generated on its first bad body and kept: a client sending bad bodies in a loop
/// must not make the server generate schemas in a loop.
fn schema_of(api_version: &str, kind: &str) -> Option<Arc<(String, Map<String, Value>)>> {
    type Schemas = Mutex<HashMap<(String, String), Option<Arc<(String, Map<String, Value>)>>>>;
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    let mut all = SCHEMAS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    all.entry((api_version.to_string(), kind.to_string()))
        .or_insert_with(|| {
            crate::apiserver::openapi::kind_definitions(api_version, kind).map(Arc::new)
        })
        .clone()
}

enum Found {
    Nothing,
    Error(String),
    /// A value only its type's own decoder can judge: what comes after it is not looked at.
    Unjudged,
}

/// Definitions whose Go types decode themselves (`UnmarshalJSON`).
const OWN_DECODERS: [&str; 8] = [
    "io.k8s.apimachinery.pkg.api.resource.Quantity",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Duration",
];

struct Walker<'a> {
    defs: &'a Map<String, Value>,
}

impl Walker<'_> {
    /// The fields of `value` at `path`, decoded into the definition `name` (a Go struct).
    fn object(&self, name: &str, fields: &Map<String, Value>, path: &mut Vec<String>) -> Found {
        let Some(def) = self.defs.get(name) else {
            return Found::Unjudged;
        };
        let properties = def.get("properties").and_then(Value::as_object);
        let owner = name.rsplit('.').next().unwrap_or(name);
        for (key, v) in fields {
            // Unknown fields are not the typed decoder's business (strict decoding reports them).
            let Some(schema) = properties.and_then(|p| p.get(key)) else {
                continue;
            };
            path.push(key.clone());
            let found = self.value(owner, schema, v, path);
            path.pop();
            if !matches!(found, Found::Nothing) {
                return found;
            }
        }
        Found::Nothing
    }

    /// `value` at `path` (a field of the struct `owner`) decoded by `schema`.
    fn value(&self, owner: &str, schema: &Value, value: &Value, path: &mut Vec<String>) -> Found {
        if value.is_null() {
            // null leaves a Go value as it is, whatever its type.
            return Found::Nothing;
        }
        if let Some(name) = reference(schema) {
            if OWN_DECODERS.contains(&name) || !self.defs.contains_key(name) {
                return Found::Unjudged;
            }
            return match value {
                Value::Object(fields) => self.object(name, fields, path),
                other => Found::Error(type_error(
                    other,
                    owner,
                    &path.join("."),
                    &go_type_of_definition(name),
                )),
            };
        }
        let ty = go_type(schema);
        let Some(ty) = ty else {
            return Found::Unjudged;
        };
        let wrong = |found: &Value| Found::Error(type_error(found, owner, &path.join("."), &ty));
        match (schema.get("type").and_then(Value::as_str), value) {
            // A list's items and a map's values each decode into the element type, at the same path.
            (Some("array"), Value::Array(items)) => {
                self.each(owner, schema.get("items"), items, path)
            }
            (Some("object"), Value::Object(entries)) => self.each(
                owner,
                schema.get("additionalProperties"),
                entries.values(),
                path,
            ),
            (Some("array" | "object"), _) => wrong(value),
            (Some("string"), Value::String(_))
            | (Some("boolean"), Value::Bool(_))
            | (Some("number"), Value::Number(_)) => Found::Nothing,
            (Some("integer"), _) if fits(value, &ty) => Found::Nothing,
            (Some("string" | "boolean" | "number" | "integer"), _) => wrong(value),
            _ => Found::Unjudged,
        }
    }

    /// The first error among `values`, each decoded by `item` (`None`: a schema without one).
    fn each<'v>(
        &self,
        owner: &str,
        item: Option<&Value>,
        values: impl IntoIterator<Item = &'v Value>,
        path: &mut Vec<String>,
    ) -> Found {
        let Some(item) = item else {
            return Found::Unjudged;
        };
        for v in values {
            let found = self.value(owner, item, v, path);
            if !matches!(found, Found::Nothing) {
                return found;
            }
        }
        Found::Nothing
    }
}

/// `io.k8s.api.core.v1.Container` → `v1.Container` (Go's package name and type).
fn go_type_of_definition(name: &str) -> String {
    let mut parts = name.rsplit('.');
    let ty = parts.next().unwrap_or(name);
    match parts.next() {
        Some(package) => format!("{package}.{ty}"),
        None => ty.to_string(),
    }
}

/// The Go type a schema decodes into, as Go's `reflect.Type.String()` prints it.
fn go_type(schema: &Value) -> Option<String> {
    if let Some(name) = reference(schema) {
        return Some(go_type_of_definition(name));
    }
    let format = schema.get("format").and_then(Value::as_str);
    Some(match schema.get("type").and_then(Value::as_str)? {
        "string" if format == Some("byte") => "[]uint8".to_string(),
        "string" => "string".to_string(),
        "boolean" => "bool".to_string(),
        "number" => "float64".to_string(),
        "integer" if format == Some("int32") => "int32".to_string(),
        "integer" => "int64".to_string(),
        "array" => format!("[]{}", go_type(schema.get("items")?)?),
        "object" => format!(
            "map[string]{}",
            go_type(schema.get("additionalProperties")?)?
        ),
        _ => return None,
    })
}

/// Whether `value` decodes into the Go integer type `ty`.
fn fits(value: &Value, ty: &str) -> bool {
    let Some(n) = value.as_i64() else {
        return false;
    };
    ty != "int32" || i32::try_from(n).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_error(obj: Value) -> Option<String> {
        first("v1", "Pod", &obj)
    }

    #[test]
    fn names_struct_path_and_go_type() {
        assert_eq!(
            pod_error(json!({"spec": {"containers": "x"}})).as_deref(),
            Some("json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type []v1.Container")
        );
        assert_eq!(
            pod_error(json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]}})).as_deref(),
            Some("json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32")
        );
        assert_eq!(
            pod_error(json!({"metadata": {"labels": {"a": 1}}})).as_deref(),
            Some("json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string")
        );
        assert_eq!(
            pod_error(json!({"spec": {"hostNetwork": "yes"}})).as_deref(),
            Some("json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool")
        );
        assert_eq!(
            pod_error(json!({"spec": {"activeDeadlineSeconds": 1.5}})).as_deref(),
            Some("json: cannot unmarshal number 1.5 into Go struct field PodSpec.spec.activeDeadlineSeconds of type int64")
        );
        assert_eq!(
            pod_error(json!({"spec": "x"})).as_deref(),
            Some("json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec")
        );
        assert_eq!(
            first("apps/v1", "Deployment", &json!({"spec": {"replicas": "3"}})).as_deref(),
            Some("json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32")
        );
        assert_eq!(
            first("v1", "Secret", &json!({"data": {"a": 5}})).as_deref(),
            Some("json: cannot unmarshal number into Go struct field Secret.data of type []uint8")
        );
    }

    #[test]
    fn first_in_document_order_and_what_it_leaves() {
        // The first error in the body's order wins, as Go's decoder reports the first it saved.
        assert_eq!(
            pod_error(json!({"spec": {"hostNetwork": "yes", "containers": "x"}})).as_deref(),
            Some("json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool")
        );
        // An int32 out of range.
        assert_eq!(
            pod_error(json!({"spec": {"containers": [{"ports": [{"containerPort": 4294967296u64}]}]}})).as_deref(),
            Some("json: cannot unmarshal number 4294967296 into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32")
        );
        // Nothing wrong, nulls, unknown fields: nothing to name.
        assert_eq!(
            pod_error(json!({"spec": {"containers": null, "nope": 1}})),
            None
        );
        // A type with its own decoder comes first: serde's message stays.
        assert_eq!(
            pod_error(json!({"metadata": {"creationTimestamp": 5}, "spec": {"containers": "x"}})),
            None
        );
        assert_eq!(first("v1", "NoSuchKind", &json!({})), None);
    }
}
