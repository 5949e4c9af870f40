//! Services and Endpoints (upstream's `pkg/registry/core/service/strategy.go` and its REST's
//! allocators, `endpoint/strategy.go`).

use rand::Rng;
use serde_json::{json, Value};

use super::{keep_status, Printer, Strategy};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::store::Registry;
use crate::apiserver::registry::validation::{resources, service, NameRule};
use crate::apiserver::status::Cause;

/// Services: DNS-1035 names, a cluster IP and node ports allocated on create and kept on update when
/// the new spec omits them, an empty load-balancer status, the deleted Service returned.
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
    fn begin_create(&self, registry: &Registry, info: &ResourceInfo, obj: &mut Value) {
        allocate(registry, info, obj);
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

/// Gives a new Service its cluster IP (from 10.96.0.0/16) and node ports (30000-32767), as upstream's
/// allocators do, avoiding the ones in use.
fn allocate(registry: &Registry, info: &ResourceInfo, svc: &mut Value) {
    let Some(cache) = registry.cache.resource(&info.storage_prefix) else {
        return;
    };
    let (existing, _) = cache.list(&info.storage_prefix, 0);
    let used_ips: std::collections::HashSet<String> = existing
        .iter()
        .filter_map(|s| {
            s.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    let used_ports: std::collections::HashSet<i64> = existing
        .iter()
        .flat_map(|s| {
            s.pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .collect();
    let ty = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if ty != "ExternalName" {
        let ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ip = if ip.is_empty() {
            let mut rng = rand::rng();
            let mut pick = String::new();
            for _ in 0..1000 {
                let n: u32 = rng.random_range(11..65534);
                let candidate = format!("10.96.{}.{}", n / 256, n % 256);
                if !used_ips.contains(&candidate) && !candidate.ends_with(".0") {
                    pick = candidate;
                    break;
                }
            }
            pick
        } else {
            ip
        };
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        if ip != "None" {
            spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
        }
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        let mut rng = rand::rng();
        let mut taken = used_ports;
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                if p.get("nodePort").and_then(Value::as_i64).is_some() {
                    continue;
                }
                for _ in 0..5000 {
                    let n: i64 = rng.random_range(30000..=32767);
                    if taken.insert(n) {
                        p["nodePort"] = json!(n);
                        break;
                    }
                }
            }
        }
    }
}

/// On update a Service keeps the addresses and node ports it was allocated when the new spec omits them.
fn keep_allocations(new: &mut Value, old: &Value) {
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
