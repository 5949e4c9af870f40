//! The remaining kinds: ConfigMaps, Secrets, Namespaces, Nodes, ServiceAccounts, RBAC, Ingress, PVCs/PVs,
//! PriorityClasses, Leases.

use serde_json::{json, Value};

use crate::apiserver::status::Cause;

pub fn validate(group: &str, plural: &str, obj: &Value, causes: &mut Vec<Cause>) {
    if let ("", "configmaps" | "secrets") = (group, plural) {
        data_causes(plural, obj, causes)
    }
}

pub fn validate_update(
    _group: &str,
    _plural: &str,
    _new: &Value,
    _old: &Value,
    _causes: &mut Vec<Cause>,
) {
}

/// Upstream's limit on the data a ConfigMap or Secret holds.
const MAX_DATA_BYTES: usize = 1024 * 1024;

/// ConfigMap and Secret data: valid keys, no key in both maps, and at most 1 MiB in all.
fn data_causes(plural: &str, obj: &Value, causes: &mut Vec<Cause>) {
    let is_secret = plural == "secrets";
    let maps: &[&str] = if is_secret {
        &["data"]
    } else {
        &["data", "binaryData"]
    };
    let mut total = 0usize;
    let mut seen = std::collections::HashSet::new();
    for field in maps {
        let Some(m) = obj.get(*field).and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in m {
            let valid = !k.is_empty()
                && k.len() <= 253
                && k.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
            if !valid || k == "." || k == ".." {
                causes.push(Cause::invalid(
                    &format!("{field}[{k}]"),
                    &json!(k),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
            if !seen.insert(k.clone()) {
                causes.push(Cause::duplicate(&format!("{field}[{k}]"), &json!(k)));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_DATA_BYTES {
        let (field, message) = if is_secret {
            (
                "data",
                format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
            )
        } else {
            (
                "[]",
                format!("Too long: may not be more than {MAX_DATA_BYTES} bytes"),
            )
        };
        causes.push(Cause {
            reason: "FieldValueTooLong",
            message,
            field: field.into(),
        });
    }
}

