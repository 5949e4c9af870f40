//! Pods and PodTemplates (upstream's `pkg/registry/core/pod/strategy.go`, `podtemplate/strategy.go`).

use serde_json::{json, Map, Value};

use super::{keep_field, Printer, Strategy};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::{defaults, validation::pod};
use crate::apiserver::status::Cause;

/// A pods/status write (upstream's podStatusStrategy): the request's status and metadata (labels
/// and annotations may change there, which is why NodeRestriction refuses a kubelet's label changes),
/// the stored spec, and the stored owner references (old kubelets corrupted them).
fn pod_status_update(new: &Value, old: &Value) -> Value {
    let mut out = new.clone();
    keep_field(&mut out, old, "spec");
    if let (Some(m), Some(om)) = (
        out.get_mut("metadata").and_then(Value::as_object_mut),
        old.get("metadata"),
    ) {
        match om.get("ownerReferences") {
            Some(refs) => m.insert("ownerReferences".into(), refs.clone()),
            None => m.remove("ownerReferences"),
        };
    }
    out
}

/// Pods: start `Pending` with their QoS class, are deleted gracefully once a node runs them, and
/// answer a delete with the deleted pod.
pub struct Pods;

impl Strategy for Pods {
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::Pod
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::pod_defaults(obj);
    }
    fn prepare_for_create(&self, _info: &ResourceInfo, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj)});
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        pod::pod(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        pod::pod_update(new, old, causes);
    }
    /// `status` with the request's metadata ([`pod_status_update`]); `ephemeralcontainers` (what `kubectl debug` writes) takes only
    /// `spec.ephemeralContainers` from the request, defaulted as a pod's containers are (upstream's
    /// dropNonEphemeralContainerUpdates).
    fn subresource_update(&self, subresource: &str, obj: &Value, old: &Value) -> Option<Value> {
        match subresource {
            "status" => Some(pod_status_update(obj, old)),
            "ephemeralcontainers" => {
                let mut requested = obj.clone();
                defaults::pod_defaults(&mut requested);
                let mut out = old.clone();
                match requested.pointer("/spec/ephemeralContainers") {
                    Some(e) if out.get("spec").is_some_and(Value::is_object) => {
                        out["spec"]["ephemeralContainers"] = e.clone();
                    }
                    _ => {
                        if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
                            spec.remove("ephemeralContainers");
                        }
                    }
                }
                Some(out)
            }
            _ => None,
        }
    }
    fn validate_subresource_update(
        &self,
        subresource: &str,
        new: &Value,
        old: &Value,
        causes: &mut Vec<Cause>,
    ) {
        if subresource == "ephemeralcontainers" {
            pod::ephemeral_containers_update(new, old, causes);
        }
    }
    fn graceful_delete_period(&self, obj: &Value, requested: Option<i64>) -> Option<i64> {
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        Some(requested.unwrap_or(default))
    }
    /// A pod in graceful termination stays until its kubelet confirms (grace period 0).
    fn deletion_complete(&self, obj: &Value) -> bool {
        obj.pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
    }
}

/// PodTemplates: a pod spec held for others to copy.
pub struct PodTemplates;

impl Strategy for PodTemplates {
    fn printer(&self) -> Printer {
        Printer::PodTemplate
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::pod_template(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        pod::pod_template(obj, causes);
    }
}

/// Upstream's QoS class from the containers' requests and limits.
pub(crate) fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let has = |m: Option<&Map<String, Value>>, r: &str| m.is_some_and(|m| m.contains_key(r));
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let request_differs =
                has(req, r) && req.and_then(|m| m.get(r)) != lim.and_then(|m| m.get(r));
            if !has(lim, r) || request_differs {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{"name": "a"}]}})),
            "BestEffort"
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
