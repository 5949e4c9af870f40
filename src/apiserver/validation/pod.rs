//! Pods and pod templates: the pod spec wherever it appears, and what a pod update may change.

use serde_json::{json, Value};

use super::NameRule;
use crate::apiserver::status::Cause;

/// `pods` and `podtemplates`.
pub fn validate(plural: &str, obj: &Value, causes: &mut Vec<Cause>) {
    match plural {
        "pods" => validate_pod_spec(obj.get("spec"), "spec", causes),
        _ => validate_pod_spec(obj.pointer("/template/spec"), "template.spec", causes),
    }
}

/// Pod updates may change little beyond images, tolerations additions and deadlines.
pub fn validate_update(_plural: &str, _new: &Value, _old: &Value, _causes: &mut Vec<Cause>) {}

/// A pod spec at `path` (e.g. `spec.template.spec`), as used by every workload's template.
pub fn validate_pod_spec(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    containers_causes(spec, path, causes);
}

fn containers_causes(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(&format!("{path}.containers"))),
        Some(list) if list.is_empty() => {
            causes.push(Cause::required(&format!("{path}.containers")))
        }
        Some(list) => {
            let mut seen = std::collections::HashSet::new();
            for (i, c) in list.iter().enumerate() {
                let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                let field = format!("{path}.containers[{i}]");
                if name.is_empty() {
                    causes.push(Cause::required(&format!("{field}.name")));
                } else if !seen.insert(name.to_string()) {
                    causes.push(Cause::duplicate(&format!("{field}.name"), &json!(name)));
                } else {
                    for e in super::name_errors(name, NameRule::Label) {
                        causes.push(Cause::invalid(&format!("{field}.name"), &json!(name), &e));
                    }
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    causes.push(Cause::required(&format!("{field}.image")));
                }
            }
        }
    }
}

