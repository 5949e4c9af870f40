//! Services and Endpoints (upstream's `pkg/registry/core/service/strategy.go`, `endpoint/strategy.go`);
//! a Service's cluster IPs and node ports are allocated by [`ServiceAllocations`].

use serde_json::{json, Value};

use super::{keep_status, Allocations, Printer, Strategy};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::service_alloc::ServiceAllocations;
use crate::apiserver::registry::validation::{resources, service, NameRule};
use crate::apiserver::status::Cause;

/// Services: DNS-1035 names, a cluster IP and node ports allocated (and released) by
/// [`ServiceAllocations`] and kept on update when the new spec omits them, an empty load-balancer
/// status, the deleted Service returned.
pub struct Services;

impl Strategy for Services {
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035
    }
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::Service
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::service_defaults(obj);
    }
    fn prepare_for_create(&self, _info: &ResourceInfo, obj: &mut Value) {
        obj["status"] = json!({"loadBalancer": {}});
    }
    fn allocations(&self) -> Option<&dyn Allocations> {
        Some(&ServiceAllocations)
    }
    fn prepare_for_update(&self, info: &ResourceInfo, new: &mut Value, old: &Value) {
        keep_status(info, new, old);
        keep_allocations(new, old);
        service::prepare_update(new, old);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        service::validate(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        service::validate_update(new, old, causes);
    }
}

/// Endpoints: written by the endpoints controller with PUT, which creates them.
pub struct Endpoints;

impl Strategy for Endpoints {
    fn allow_create_on_update(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::Endpoints
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::endpoints(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::endpoints(obj, causes);
    }
}

/// Upstream's `patchAllocatedValues`: on update a Service keeps the cluster IPs, node ports (matched
/// by port name, unless another port now uses that number) and health check port it was allocated when
/// the new spec omits them and its type still needs them.
fn keep_allocations(new: &mut Value, old: &Value) {
    let ty = |s: &Value| match s.pointer("/spec/type").and_then(Value::as_str) {
        None | Some("") => "ClusterIP".to_string(),
        Some(t) => t.to_string(),
    };
    let (nt, ot) = (ty(new), ty(old));
    let needs_ip = |t: &str| t != "ExternalName";
    let needs_node_port = |t: &str| t == "NodePort" || t == "LoadBalancer";
    let hc = |s: &Value, t: &str| {
        t == "LoadBalancer"
            && s.pointer("/spec/externalTrafficPolicy")
                .and_then(Value::as_str)
                == Some("Local")
    };
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if needs_ip(&ot) && needs_ip(&nt) {
        let empty = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v == "" || v == &json!([]));
        if empty(spec.get("clusterIP")) {
            if let Some(v) = old.pointer("/spec/clusterIP") {
                spec.insert("clusterIP".into(), v.clone());
            }
        }
        // ipFamilies/ipFamilyPolicy: upstream's initIPFamilyFields adopts the old ones.
        for f in ["clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if empty(spec.get(f)) {
                if let Some(v) = old
                    .pointer(&format!("/spec/{f}"))
                    .filter(|v| !empty(Some(v)))
                {
                    spec.insert(f.into(), v.clone());
                }
            }
        }
    }
    if needs_node_port(&ot) && needs_node_port(&nt) {
        let ports_of = |s: Option<&Value>| -> Vec<Value> {
            s.and_then(Value::as_array).cloned().unwrap_or_default()
        };
        let old_ports = ports_of(old.pointer("/spec/ports"));
        let np = |p: &Value| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        let new_used: Vec<i64> = ports_of(spec.get("ports")).iter().map(np).collect();
        // Numbers in both old and new: they can't be patched in elsewhere.
        let used: Vec<i64> = old_ports
            .iter()
            .map(np)
            .filter(|n| *n != 0 && new_used.contains(n))
            .collect();
        let by_name: std::collections::HashMap<String, i64> = old_ports
            .iter()
            .map(|p| {
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                (name.to_string(), np(p))
            })
            .collect();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                if np(p) != 0 {
                    continue;
                }
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some(old_val) = by_name.get(name).filter(|v| **v != 0 && !used.contains(v)) {
                    p["nodePort"] = json!(old_val);
                }
            }
        }
    }
    let snapshot = Value::Object(spec.clone());
    if hc(old, &ot) && hc(&json!({"spec": snapshot}), &nt) {
        let missing = spec
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0;
        if missing {
            if let Some(v) = old.pointer("/spec/healthCheckNodePort") {
                spec.insert("healthCheckNodePort".into(), v.clone());
            }
        }
    }
}
