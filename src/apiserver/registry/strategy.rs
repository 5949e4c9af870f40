//! Per-kind strategies: the small part of each resource's behaviour that the generic registry can't know.
//!
//! As in upstream's registry, a strategy only says what differs: how names are validated, what is reset or
//! defaulted on create, what a spec update may not touch (status) and what a status update may not touch
//! (everything else), whether the kind tracks `metadata.generation`, and the kind's own validation.

use serde_json::{json, Map, Value};

use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::validation::{self, validate_object_meta, NameRule};
use crate::apiserver::status::Cause;

fn key(info: &ResourceInfo) -> (&str, &str) {
    (info.group.as_str(), info.plural.as_str())
}

pub fn name_rule(info: &ResourceInfo) -> NameRule {
    match key(info) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Dns1035,
        // StatefulSet pods are named `<set>-<ordinal>` and carry it as a hostname label.
        ("apps", "statefulsets") => NameRule::Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        ("flowcontrol.apiserver.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Whether the kind has a status that only the `/status` subresource may change.
pub fn has_status_subresource(info: &ResourceInfo) -> bool {
    info.subresource("status").is_some()
}

/// Kinds whose spec changes bump `metadata.generation` (upstream sets it on these; pods and configmaps have none).
pub fn tracks_generation(info: &ResourceInfo) -> bool {
    matches!(
        info.group.as_str(),
        "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "networking.k8s.io"
            | "apiextensions.k8s.io"
            | "admissionregistration.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "scheduling.k8s.io"
    ) || matches!(key(info), ("", "replicationcontrollers"))
        // Custom resources always carry a generation (upstream's CR strategy).
        || info.custom().is_some()
}

/// Whether PUT on a missing object creates it (upstream: true for a handful of kinds).
pub fn allow_create_on_update(info: &ResourceInfo) -> bool {
    matches!(
        key(info),
        ("", "endpoints")
            | ("", "events")
            | ("events.k8s.io", "events")
            | ("coordination.k8s.io", "leases")
            | ("rbac.authorization.k8s.io", _)
    ) || info.group == "apiregistration.k8s.io"
}

/// Whether a finished delete answers with the deleted object (else a `Status` of success).
pub fn returns_deleted_object(info: &ResourceInfo) -> bool {
    matches!(
        key(info),
        ("", "pods") | ("", "services") | ("", "namespaces") | ("apiextensions.k8s.io", _)
    )
}

fn obj_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Resets and defaults on create, before validation.
pub fn prepare_for_create(info: &ResourceInfo, obj: &mut Value) {
    match key(info) {
        ("", "namespaces") => {
            namespace_name_label(obj);
            obj["status"] = json!({"phase": "Active"});
            let spec = obj.get("spec").cloned().unwrap_or(json!({}));
            if spec.get("finalizers").is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        ("", "pods") => {
            obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj)});
        }
        ("", "services") => {
            obj["status"] = json!({"loadBalancer": {}});
        }
        ("", "persistentvolumeclaims") | ("", "persistentvolumes") => {
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "nodes") | ("certificates.k8s.io", _) | ("apiextensions.k8s.io", _) => {}
        _ => {
            if has_status_subresource(info) {
                if let Some(m) = obj_mut(obj) {
                    m.remove("status");
                }
            }
        }
    }
}

/// Every namespace carries `kubernetes.io/metadata.name: <name>` (upstream sets it on each write).
fn namespace_name_label(ns: &mut Value) {
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

/// Upstream's QoS class from the containers' requests and limits.
fn qos_class(pod: &Value) -> &'static str {
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

/// The parts of an object a status update may not change are taken from `old`; the status from `new`.
pub fn status_update(new: &Value, old: &Value) -> Value {
    let mut out = old.clone();
    match new.get("status") {
        Some(s) => out["status"] = s.clone(),
        None => {
            if let Some(m) = out.as_object_mut() {
                m.remove("status");
            }
        }
    }
    out
}

/// A spec update keeps the stored status.
pub fn spec_update(info: &ResourceInfo, new: &mut Value, old: &Value) {
    if has_status_subresource(info) || key(info) == ("", "namespaces") {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if key(info) == ("", "namespaces") {
        namespace_name_label(new);
        // spec.finalizers only change through /finalize.
        match old.get("spec") {
            Some(s) => new["spec"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("spec");
                }
            }
        }
    }
}

/// The kind's validation on create and update: metadata for all kinds, then the kind's own rules.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = validate_object_meta(obj, name_rule(info), info.namespaced);
    validation::validate_kind(&info.group, &info.plural, obj, &mut causes);
    causes
}

/// What an update may not change, beyond [`validate`]'s rules for the new object.
pub fn validate_update(info: &ResourceInfo, new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validation::validate_kind_update(&info.group, &info.plural, new, old, &mut causes);
    causes
}

/// Jobs get a selector of their own uid and the matching template labels, unless `manualSelector`.
pub fn job_selector(obj: &mut Value) {
    if obj.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(json!(""));
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert(json!({}));
    if !template.get("metadata").is_some_and(Value::is_object) {
        template["metadata"] = json!({});
    }
    let meta = &mut template["metadata"];
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta["labels"] = json!({});
    }
    let labels = &mut meta["labels"];
    labels["batch.kubernetes.io/controller-uid"] = uid.clone();
    labels["batch.kubernetes.io/job-name"] = name.clone();
    labels["controller-uid"] = uid;
    labels["job-name"] = name;
}

/// On update a Service keeps the addresses and node ports it was allocated when the new spec omits them.
pub fn keep_service_allocations(new: &mut Value, old: &Value) {
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        let missing = new
            .pointer(&format!("/spec/{f}"))
            .is_none_or(|v| v.is_null() || v == "");
        if missing {
            if let (Some(v), Some(spec)) = (
                old.pointer(&format!("/spec/{f}")),
                new.get_mut("spec").and_then(Value::as_object_mut),
            ) {
                spec.insert(f.into(), v.clone());
            }
        }
    }
    let old_ports: Vec<Value> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            if p.get("nodePort").is_some_and(|n| !n.is_null()) {
                continue;
            }
            let same = old_ports
                .iter()
                .find(|o| o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol"));
            if let Some(np) = same.and_then(|o| o.get("nodePort")) {
                p["nodePort"] = np.clone();
            }
        }
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
