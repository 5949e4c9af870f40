//! Applying a mutating webhook's answer (upstream's `mutating/dispatcher.go` after the call): a
//! JSONPatch on the object as the webhook saw it, with the json-patch crate the PATCH verb uses. The
//! patched object goes on through the rest of admission and the kind's validation.

use serde_json::Value;

use super::errors::{CallError, HookError};
use crate::apiserver::status::ApiError;

/// Applies `patch` (of `patch_type`) from webhook `name` to `obj` (`None` on a delete, which has
/// no object to change). Returns whether the object changed.
pub fn apply(
    name: &str,
    obj: Option<&mut Value>,
    patch: &[u8],
    patch_type: &str,
    is_update: bool,
) -> Result<bool, HookError> {
    if patch_type != "JSONPatch" {
        return Err(HookError::Call(CallError::new(
            name,
            format!("unsupported patch type {patch_type:?}"),
        )));
    }
    let ops: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| {
        HookError::Call(CallError::new(
            name,
            format!("received undecodable patch in webhook response: {e}"),
        ))
    })?;
    if ops.0.is_empty() {
        return Ok(false);
    }
    let Some(obj) = obj else {
        return Err(HookError::Denied(ApiError::internal(format!(
            "admission webhook {name:?} attempted to modify the object, which is not supported for this operation"
        ))));
    };
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &ops.0)
        .map_err(|e| HookError::Denied(ApiError::internal(e.to_string())))?;
    if !patched.is_object() {
        return Err(HookError::Denied(ApiError::internal(format!(
            "admission webhook {name:?} patched the object into a non-object"
        ))));
    }
    // The object stays what the request is about: its type, namespace and (on an update, whose
    // URL names it) its name cannot be patched away (upstream's decode into the request's kind and
    // its namespace and name checks after admission).
    for f in ["apiVersion", "kind"] {
        match obj.get(f) {
            Some(v) => patched[f] = v.clone(),
            None => {
                if let Some(m) = patched.as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
    let meta = |o: &Value, f: &str| {
        o.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if meta(&patched, "namespace") != meta(obj, "namespace") {
        return Err(HookError::Denied(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )));
    }
    if is_update && meta(&patched, "name") != meta(obj, "name") {
        return Err(HookError::Denied(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta(&patched, "name"),
            meta(obj, "name")
        ))));
    }
    let changed = patched != *obj;
    *obj = patched;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}})
    }

    #[test]
    fn adds_a_label() {
        let mut obj = cm();
        let p = br#"[{"op":"add","path":"/metadata/labels","value":{"webhook":"yes"}}]"#;
        assert!(apply("w", Some(&mut obj), p, "JSONPatch", false).unwrap());
        assert_eq!(obj["metadata"]["labels"]["webhook"], "yes");
        // The same patch again changes nothing (a replace with an equal value).
        let p = br#"[{"op":"replace","path":"/metadata/labels","value":{"webhook":"yes"}}]"#;
        assert!(!apply("w", Some(&mut obj), p, "JSONPatch", false).unwrap());
        assert!(!apply("w", Some(&mut obj), b"[]", "JSONPatch", false).unwrap());
    }

    #[test]
    fn refusals() {
        let mut obj = cm();
        match apply("w", Some(&mut obj), b"[]", "MergePatch", false) {
            Err(HookError::Call(e)) => {
                assert_eq!(e.reason, "unsupported patch type \"MergePatch\"")
            }
            other => panic!("{other:?}"),
        }
        match apply("w", Some(&mut obj), b"{", "JSONPatch", false) {
            Err(HookError::Call(e)) => {
                assert!(e
                    .reason
                    .starts_with("received undecodable patch in webhook response: "))
            }
            other => panic!("{other:?}"),
        }
        // A patch that does not apply fails the request whatever the failure policy.
        let bad = br#"[{"op":"remove","path":"/spec/missing"}]"#;
        assert!(matches!(
            apply("w", Some(&mut obj), bad, "JSONPatch", false),
            Err(HookError::Denied(e)) if e.code == 500
        ));
        assert_eq!(obj, cm(), "a failed patch leaves the object alone");
        let p = br#"[{"op":"add","path":"/data","value":{}}]"#;
        match apply("w", None, p, "JSONPatch", false) {
            Err(HookError::Denied(e)) => assert_eq!(e.message, "Internal error occurred: admission webhook \"w\" attempted to modify the object, which is not supported for this operation"),
            other => panic!("{other:?}"),
        }
        let ns = br#"[{"op":"replace","path":"/metadata/namespace","value":"other"}]"#;
        assert!(matches!(
            apply("w", Some(&mut obj), ns, "JSONPatch", false),
            Err(HookError::Denied(e)) if e.code == 400
        ));
        let name = br#"[{"op":"replace","path":"/metadata/name","value":"d"}]"#;
        assert!(apply("w", Some(&mut obj.clone()), name, "JSONPatch", false).unwrap());
        assert!(apply("w", Some(&mut obj), name, "JSONPatch", true).is_err());
        let kind = br#"[{"op":"replace","path":"/kind","value":"Secret"}]"#;
        assert!(!apply("w", Some(&mut obj), kind, "JSONPatch", false).unwrap());
        assert_eq!(obj["kind"], "ConfigMap");
    }
}
