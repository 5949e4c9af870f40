//! Namespaces (upstream's `pkg/registry/core/namespace/strategy.go` and its REST's delete).

use serde_json::{json, Value};

use super::{keep_field, keep_status, status_update, Printer, Strategy};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::validation::{resources, NameRule};
use crate::apiserver::registry::{bootstrap, defaults};
use crate::apiserver::status::Cause;

/// Namespaces: DNS-label names carried as a label, `Active` on create, `spec.finalizers` written only
/// through `/finalize` and holding a delete until the namespace is empty, the system namespaces never
/// deleted.
pub struct Namespaces;

impl Strategy for Namespaces {
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::Namespace
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::namespace(obj);
    }
    fn prepare_for_create(&self, _info: &ResourceInfo, obj: &mut Value) {
        name_label(obj);
        obj["status"] = json!({"phase": "Active"});
        let spec = obj.get("spec").cloned().unwrap_or(json!({}));
        if spec.get("finalizers").is_none() {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
        }
    }
    fn prepare_for_update(&self, info: &ResourceInfo, new: &mut Value, old: &Value) {
        keep_status(info, new, old);
        name_label(new);
        // spec.finalizers only change through /finalize.
        keep_field(new, old, "spec");
    }
    fn subresource_update(&self, subresource: &str, obj: &Value, old: &Value) -> Option<Value> {
        match subresource {
            "status" => Some(status_update(obj, old)),
            "finalize" => {
                let mut n = old.clone();
                n["spec"]["finalizers"] = obj
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([]));
                Some(n)
            }
            _ => None,
        }
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::namespace(obj, causes);
    }
    fn delete_forbidden(&self, name: &str) -> Option<&'static str> {
        bootstrap::IMMORTAL_NAMESPACES
            .contains(&name)
            .then_some("this namespace may not be deleted")
    }
    fn holds_deletion(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    }
    fn begin_delete(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
    }
}

/// Every namespace carries `kubernetes.io/metadata.name: <name>` (upstream sets it on each write).
fn name_label(ns: &mut Value) {
    let name = ns.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    if !ns.get("metadata").is_some_and(Value::is_object) {
        ns["metadata"] = json!({});
    }
    let meta = &mut ns["metadata"];
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta["labels"] = json!({});
    }
    meta["labels"]["kubernetes.io/metadata.name"] = name;
}
