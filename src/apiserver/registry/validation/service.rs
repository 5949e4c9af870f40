//! Services: types, ports, addresses, and what may not change once set.
//!
//! Follows upstream's `ValidateService` / `ValidateServiceUpdate` (pkg/apis/core/validation), in its order
//! and with its messages. Upstream validates after defaulting and after the REST layer has allocated
//! addresses and normalized `clusterIP`/`clusterIPs`; fields whose upstream default rkube does not apply
//! (sessionAffinityConfig, allocateLoadBalancerNodePorts, healthCheckNodePort, ...) are accepted when
//! absent rather than reported as required, so nothing upstream accepts is rejected here.
//!
//! [`prepare_update`] is upstream's update-time normalization (`normalizeClusterIPs` and the strategy's
//! `dropTypeDependentFields`) for the registry to apply before validation.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::apiserver::registry::validation::fields::{
    arr_at, go_ptr_str, go_strings, invalid_raw, is_update, is_v6, labels_causes,
    non_special_ip_causes, parse_cidr, parse_ip, port_name_errors, present, same, spec, str_at,
    CIDR_MSG, IP_MSG, PORT_RANGE_MSG, PROTOCOLS,
};
use crate::apiserver::registry::validation::{name_errors, qualified_name_errors, NameRule};
use crate::apiserver::status::Cause;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const MAX_AFFINITY_SECONDS: i64 = 86400;

/// The service type, as defaulting leaves it ("" and absent are ClusterIP).
fn service_type(s: &Value) -> &str {
    match str_at(s, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn strings(s: &Value, key: &str) -> Vec<String> {
    arr_at(s, key)
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
}

/// `clusterIPs` as upstream sees it on create: initialized from `clusterIP` when only that is set.
fn cluster_ips(s: &Value) -> Vec<String> {
    let ips = strings(s, "clusterIPs");
    match str_at(s, "clusterIP") {
        "" => ips,
        ip if ips.is_empty() => vec![ip.to_string()],
        _ => ips,
    }
}

/// Upstream's `normalizeClusterIPs` on update: what `clusterIPs` becomes given the stored service.
fn normalized_ips(new: &Value, old: &Value) -> Vec<String> {
    let (ns, os) = (spec(new), spec(old));
    let old_ips = strings(os, "clusterIPs");
    let mut new_ips = strings(ns, "clusterIPs");
    let (oc, nc) = (str_at(os, "clusterIP"), str_at(ns, "clusterIP"));
    if !old_ips.is_empty() && new_ips.is_empty() && oc == nc {
        new_ips = old_ips.clone();
    }
    if oc != nc {
        if !oc.is_empty() && nc.is_empty() {
            if new_ips == old_ips {
                new_ips.clear();
            }
        } else if new_ips == old_ips {
            new_ips = vec![nc.to_string()];
        }
    }
    new_ips
}

fn is_headless(ips: &[String]) -> bool {
    ips.len() == 1 && ips[0] == "None"
}

fn needs_node_port(ty: &str) -> bool {
    matches!(ty, "NodePort" | "LoadBalancer")
}

fn externally_accessible(s: &Value) -> bool {
    let ty = service_type(s);
    needs_node_port(ty) || (ty == "ClusterIP" && !arr_at(s, "externalIPs").is_empty())
}

fn needs_health_check(s: &Value) -> bool {
    service_type(s) == "LoadBalancer" && str_at(s, "externalTrafficPolicy") == "Local"
}

fn node_port(p: &Value) -> i64 {
    p.get("nodePort").and_then(Value::as_i64).unwrap_or(0)
}

/// Create (and status updates): `ValidateService`. An update of the service itself is judged whole by
/// [`validate_update`], which knows the stored object, in upstream's order (update rules first).
pub fn validate(obj: &Value, causes: &mut Vec<Cause>) {
    if !is_update(obj) {
        check(obj, None, causes);
    }
}

/// `ValidateService`; with `old` (an update) values left over, unchanged, from the previous type are
/// tolerated where upstream's strategy would have dropped them, and `clusterIPs` is judged as upstream
/// re-syncs it.
fn check(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    let os = old.map(spec);
    let ty = service_type(s);
    let ips = match old {
        Some(o) => normalized_ips(obj, o),
        None => cluster_ips(s),
    };
    let headless = is_headless(&ips);
    let ports = arr_at(s, "ports");

    // Node port ranges and conflicts are the allocator's (`service_alloc`), which runs before this.
    if ports.is_empty() && !headless && ty != "ExternalName" {
        causes.push(Cause::required("spec.ports"));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            &json!("None"),
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            external_name_addresses(s, &ips, os, causes);
            let name = str_at(s, "externalName");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                causes.push(Cause::required("spec.externalName"));
            } else {
                for e in name_errors(cname, NameRule::Subdomain) {
                    causes.push(Cause::invalid("spec.externalName", &json!(cname), &e));
                }
            }
        }
        _ => {}
    }

    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        port_causes(
            p,
            ports.len() > 1,
            &mut names,
            &format!("spec.ports[{i}]"),
            causes,
        );
    }

    if present(s, "selector") {
        labels_causes(s.get("selector"), "spec.selector", causes);
    }

    let affinity = match str_at(s, "sessionAffinity") {
        "" => "None",
        a => a,
    };
    match affinity {
        "ClientIP" => {
            let timeout = s.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds");
            if let Some(t) = timeout.filter(|t| !t.is_null()) {
                let t = t.as_i64().unwrap_or(0);
                if t <= 0 || t > MAX_AFFINITY_SECONDS {
                    causes.push(Cause::invalid(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        &json!(t),
                        &format!("must be greater than 0 and less than {MAX_AFFINITY_SECONDS}"),
                    ));
                }
            }
        }
        "None" => {
            if present(s, "sessionAffinityConfig") {
                causes.push(Cause::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => causes.push(Cause::unsupported(
            "spec.sessionAffinity",
            &json!(other),
            &["ClientIP", "None"],
        )),
    }

    if ty != "ExternalName" {
        let clusterip = str_at(s, "clusterIP");
        if clusterip.is_empty() && !ips.is_empty() {
            causes.push(invalid_raw(
                "spec.clusterIPs",
                &go_strings("[]string", &ips),
                "must be empty when `clusterIP` is not specified",
            ));
        } else if ips.first().is_some_and(|f| f != clusterip) {
            causes.push(invalid_raw(
                "spec.clusterIPs",
                &go_strings("[]string", &ips),
                "first value must match `clusterIP`",
            ));
        }
        cluster_ips_causes(s, &ips, causes);
    }

    for (i, ip) in arr_at(s, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        let field = format!("spec.externalIPs[{i}]");
        if parse_ip(ip).is_none() {
            causes.push(Cause::invalid(&field, &json!(ip), IP_MSG));
        } else {
            non_special_ip_causes(&field, ip, causes);
        }
    }

    if !TYPES.contains(&ty) {
        causes.push(Cause::unsupported("spec.type", &json!(ty), TYPES));
    }

    cluster_ip_node_ports(s, os, causes);

    let protocol = |p: &Value| match str_at(p, "protocol") {
        "" => "TCP".to_string(),
        x => x.to_string(),
    };
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let np = node_port(p);
        if np != 0 && !node_ports.insert((protocol(p), np)) {
            causes.push(Cause::duplicate(
                &format!("spec.ports[{i}].nodePort"),
                &json!(np),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        let proto = protocol(p);
        if !seen.insert((proto.clone(), port)) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!(
                    "Duplicate value: core.ServicePort{{Name:\"\", Protocol:{proto:?}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
                ),
                field: format!("spec.ports[{i}]"),
            });
        }
    }

    let ranges = arr_at(s, "loadBalancerSourceRanges");
    let range_annotation = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("service.beta.kubernetes.io/load-balancer-source-ranges"))
        .and_then(Value::as_str);
    if !ranges.is_empty() {
        // Upstream's path really is capitalized here.
        let path = "spec.LoadBalancerSourceRanges";
        if ty != "LoadBalancer" {
            causes.push(Cause::forbidden(
                path,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.as_str().unwrap_or("").trim();
            if parse_cidr(r).is_none() {
                causes.push(Cause::invalid(&format!("{path}[{i}]"), &json!(r), CIDR_MSG));
            }
        }
    } else if let Some(val) = range_annotation {
        let path = "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]";
        if ty != "LoadBalancer" {
            causes.push(Cause::forbidden(
                path,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let val = val.trim();
        if !val.is_empty() {
            for r in val.split(',').map(str::trim) {
                if parse_cidr(r).is_none() {
                    causes.push(Cause::invalid(path, &json!(r), CIDR_MSG));
                }
            }
        }
    }

    load_balancer_only(s, os, causes);
    if let Some(class) = s.get("loadBalancerClass").and_then(Value::as_str) {
        if ty == "LoadBalancer" {
            for e in qualified_name_errors(class) {
                causes.push(Cause::invalid("spec.loadBalancerClass", &json!(class), &e));
            }
        }
    }

    let etp = str_at(s, "externalTrafficPolicy");
    if !externally_accessible(s) {
        external_policy_only(s, os, causes);
    } else if !etp.is_empty() && !matches!(etp, "Cluster" | "Local") {
        causes.push(Cause::unsupported(
            "spec.externalTrafficPolicy",
            &json!(etp),
            &["Cluster", "Local"],
        ));
    }
    let hc = s
        .get("healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if !needs_health_check(s) {
        health_check_only(s, os, causes);
    } else if hc != 0 && !(1..=65535).contains(&hc) {
        causes.push(Cause::invalid(
            "spec.healthCheckNodePort",
            &json!(hc),
            PORT_RANGE_MSG,
        ));
    }

    if let Some(itp) = s.get("internalTrafficPolicy").and_then(Value::as_str) {
        if !matches!(itp, "Cluster" | "Local") {
            causes.push(Cause::unsupported(
                "spec.internalTrafficPolicy",
                &json!(itp),
                &["Cluster", "Local"],
            ));
        }
    }
    if let Some(td) = s.get("trafficDistribution").and_then(Value::as_str) {
        if td != "PreferClose" {
            causes.push(Cause::unsupported(
                "spec.trafficDistribution",
                &json!(td),
                &["PreferClose"],
            ));
        }
    }
}

/// `validateServicePort`.
fn port_causes(
    p: &Value,
    require_name: bool,
    names: &mut HashSet<String>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let name = str_at(p, "name");
    if require_name && name.is_empty() {
        causes.push(Cause::required(&format!("{path}.name")));
    } else if !name.is_empty() {
        for e in name_errors(name, NameRule::Label) {
            causes.push(Cause::invalid(&format!("{path}.name"), &json!(name), &e));
        }
        if !names.insert(name.to_string()) {
            causes.push(Cause::duplicate(&format!("{path}.name"), &json!(name)));
        }
    }
    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
    if !(1..=65535).contains(&port) {
        causes.push(Cause::invalid(
            &format!("{path}.port"),
            &json!(port),
            PORT_RANGE_MSG,
        ));
    }
    // An empty protocol is defaulted to TCP upstream.
    let proto = str_at(p, "protocol");
    if !proto.is_empty() && !PROTOCOLS.contains(&proto) {
        causes.push(Cause::unsupported(
            &format!("{path}.protocol"),
            &json!(proto),
            PROTOCOLS,
        ));
    }
    // targetPort 0 or "" is defaulted to `port` upstream.
    match p.get("targetPort") {
        Some(Value::String(t)) if !t.is_empty() => {
            for e in port_name_errors(t) {
                causes.push(Cause::invalid(&format!("{path}.targetPort"), &json!(t), &e));
            }
        }
        Some(n @ Value::Number(_)) => {
            let n = n.as_i64().unwrap_or(-1);
            if n != 0 && !(1..=65535).contains(&n) {
                causes.push(Cause::invalid(
                    &format!("{path}.targetPort"),
                    &json!(n),
                    PORT_RANGE_MSG,
                ));
            }
        }
        _ => {}
    }
    if let Some(ap) = p.get("appProtocol").and_then(Value::as_str) {
        for e in qualified_name_errors(ap) {
            causes.push(Cause::invalid(
                &format!("{path}.appProtocol"),
                &json!(ap),
                &e,
            ));
        }
    }
}

/// The stand-alone checks of `ValidateServiceClusterIPsRelatedFields` (the clusterIP/clusterIPs sync is
/// judged by the caller).
fn cluster_ips_causes(s: &Value, ips: &[String], causes: &mut Vec<Cause>) {
    let families = strings(s, "ipFamilies");
    let mut seen = HashSet::new();
    for (i, f) in families.iter().enumerate() {
        let field = format!("spec.ipFamilies[{i}]");
        if !matches!(f.as_str(), "IPv4" | "IPv6") {
            causes.push(Cause::unsupported(&field, &json!(f), &["IPv4", "IPv6"]));
        }
        if !seen.insert(f.clone()) {
            causes.push(Cause::duplicate(&field, &json!(f)));
        }
    }
    if let Some(p) = s.get("ipFamilyPolicy").and_then(Value::as_str) {
        if !matches!(p, "SingleStack" | "PreferDualStack" | "RequireDualStack") {
            causes.push(Cause::unsupported(
                "spec.ipFamilyPolicy",
                &json!(p),
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    let shown = go_strings("[]string", ips);
    let mut invalid = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                invalid = true;
                causes.push(invalid_raw(
                    "spec.clusterIPs",
                    &shown,
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if parse_ip(ip).is_none() {
            invalid = true;
            causes.push(Cause::invalid(
                &format!("spec.clusterIPs[{i}]"),
                &json!(ip),
                IP_MSG,
            ));
        }
    }
    if ips.len() > 2 {
        causes.push(invalid_raw(
            "spec.clusterIPs",
            &shown,
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return;
    }
    if ips.len() > 1 {
        let fams: Vec<bool> = ips
            .iter()
            .filter_map(|ip| parse_ip(ip))
            .map(|ip| is_v6(&ip))
            .collect();
        if !(fams.len() == 2 && fams[0] != fams[1]) {
            causes.push(invalid_raw(
                "spec.clusterIPs",
                &shown,
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(ips) && !ips.is_empty() && !families.is_empty() {
        for (i, ip) in ips.iter().enumerate() {
            let Some(fam) = families.get(i) else { break };
            let v6 = parse_ip(ip).is_some_and(|a| is_v6(&a));
            let want = match fam.as_str() {
                "IPv4" if v6 => "IPv4",
                "IPv6" if !v6 => "IPv6",
                _ => continue,
            };
            causes.push(Cause::invalid(
                &format!("spec.clusterIPs[{i}]"),
                &json!(ip),
                &format!("expected an {want} value as indicated by `ipFamilies[{i}]`"),
            ));
        }
    }
}

/// Whether `field` holds what the stored spec holds (absent, null and empty alike).
fn kept(s: &Value, old: Option<&Value>, field: &str) -> bool {
    old.is_some_and(|o| same(s.get(field), o.get(field)))
}

/// ExternalName services hold no addresses (unless left over, unchanged, from the previous type).
fn external_name_addresses(
    s: &Value,
    ips: &[String],
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
) {
    if !ips.is_empty() && old.is_none_or(|o| cluster_ips(o) != ips) {
        causes.push(Cause::forbidden(
            "spec.clusterIPs",
            "may not be set for ExternalName services",
        ));
    }
    if !arr_at(s, "ipFamilies").is_empty() && !kept(s, old, "ipFamilies") {
        causes.push(Cause::forbidden(
            "spec.ipFamilies",
            "may not be set for ExternalName services",
        ));
    }
    if present(s, "ipFamilyPolicy") && !kept(s, old, "ipFamilyPolicy") {
        causes.push(Cause::forbidden(
            "spec.ipFamilyPolicy",
            "may not be set for ExternalName services",
        ));
    }
}

fn sorted_node_ports(s: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = arr_at(s, "ports")
        .iter()
        .map(node_port)
        .filter(|n| *n != 0)
        .collect();
    v.sort_unstable();
    v
}

/// ClusterIP services use no node ports.
fn cluster_ip_node_ports(s: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    if service_type(s) != "ClusterIP"
        || old.is_some_and(|o| sorted_node_ports(o) == sorted_node_ports(s))
    {
        return;
    }
    for (i, p) in arr_at(s, "ports").iter().enumerate() {
        if node_port(p) != 0 {
            causes.push(Cause::forbidden(
                &format!("spec.ports[{i}].nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
}

/// allocateLoadBalancerNodePorts and loadBalancerClass belong to LoadBalancer services.
fn load_balancer_only(s: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    if service_type(s) == "LoadBalancer" {
        return;
    }
    for f in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
        if present(s, f) && !kept(s, old, f) {
            causes.push(Cause::forbidden(
                &format!("spec.{f}"),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }
}

/// externalTrafficPolicy belongs to externally-accessible services.
fn external_policy_only(s: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let etp = str_at(s, "externalTrafficPolicy");
    if !externally_accessible(s) && !etp.is_empty() && !kept(s, old, "externalTrafficPolicy") {
        causes.push(Cause::invalid(
            "spec.externalTrafficPolicy",
            &json!(etp),
            "may only be set for externally-accessible services",
        ));
    }
}

/// healthCheckNodePort belongs to LoadBalancer services with the Local policy.
fn health_check_only(s: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let hc = s
        .get("healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if !needs_health_check(s) && hc != 0 && !kept(s, old, "healthCheckNodePort") {
        causes.push(Cause::invalid(
            "spec.healthCheckNodePort",
            &json!(hc),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
}

/// `ValidateServiceUpdate`: what may not change, then `ValidateService` of the new object.
pub fn validate_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (ns, os) = (spec(new), spec(old));
    let (nt, ot) = (service_type(ns), service_type(os));
    let new_ips = normalized_ips(new, old);
    let old_ips = cluster_ips(os);
    if nt != "ExternalName" && ot != "ExternalName" {
        upgrade_downgrade_ips(ns, &new_ips, &old_ips, causes);
        upgrade_downgrade_families(ns, os, &new_ips, &old_ips, causes);
    }
    if nt == "LoadBalancer" && ot == "LoadBalancer" {
        let (nc, oc) = (ns.get("loadBalancerClass"), os.get("loadBalancerClass"));
        if nc.and_then(Value::as_str) != oc.and_then(Value::as_str) {
            causes.push(invalid_raw(
                "spec.loadBalancerClass",
                &go_ptr_str(nc),
                "may not change once set",
            ));
        }
    }
    if needs_health_check(ns) && needs_health_check(os) {
        let hc = |s: &Value| {
            s.get("healthCheckNodePort")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        // rkube allocates none; an absent value on either side is not a change.
        if hc(ns) != 0 && hc(os) != 0 && hc(ns) != hc(os) {
            causes.push(Cause::forbidden(
                "spec.healthCheckNodePort",
                "field is immutable",
            ));
        }
    }
    check(new, Some(old), causes);
}

/// `validateUpgradeDowngradeClusterIPs`.
fn upgrade_downgrade_ips(ns: &Value, new: &[String], old: &[String], causes: &mut Vec<Cause>) {
    if is_headless(new) && is_headless(old) {
        return;
    }
    let shown = if new.is_empty() {
        "[]string(nil)".to_string()
    } else {
        go_strings("[]string", new)
    };
    let changed = |i: usize| {
        invalid_raw(
            &format!("spec.clusterIPs[{i}]"),
            &shown,
            "may not change once set",
        )
    };
    if old.len() == new.len() {
        for (i, (o, n)) in old.iter().zip(new).enumerate() {
            if o != n {
                causes.push(changed(i));
            }
        }
    } else if old.len() > new.len() {
        if new.is_empty() {
            causes.push(invalid_raw(
                "spec.clusterIPs[0]",
                &shown,
                "primary clusterIP can not be unset",
            ));
        }
        if !old.is_empty() && !new.is_empty() && new[0] != old[0] {
            causes.push(changed(0));
        }
        if new.len() == 1 && str_at(ns, "ipFamilyPolicy") != "SingleStack" {
            causes.push(invalid_raw(
                "spec.ipFamilyPolicy",
                &go_ptr_str(ns.get("ipFamilyPolicy")),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old.is_empty() && new[0] != old[0] {
        causes.push(changed(0));
    }
}

/// `validateUpgradeDowngradeIPFamilies`.
fn upgrade_downgrade_families(
    ns: &Value,
    os: &Value,
    new_ips: &[String],
    old_ips: &[String],
    causes: &mut Vec<Cause>,
) {
    if is_headless(new_ips) || is_headless(old_ips) {
        return;
    }
    let (new, old) = (strings(ns, "ipFamilies"), strings(os, "ipFamilies"));
    let fams = go_strings("[]core.IPFamily", &new);
    let ips = go_strings("[]string", new_ips);
    if old.len() == new.len() {
        for (o, n) in old.iter().zip(&new) {
            if o != n {
                causes.push(invalid_raw(
                    "spec.ipFamilies[0]",
                    &fams,
                    "may not change once set",
                ));
            }
        }
    } else if old.len() > new.len() {
        if new_ips.is_empty() {
            causes.push(invalid_raw(
                "spec.ipFamilies[0]",
                &fams,
                "primary ipFamily can not be unset",
            ));
        }
        if !new.is_empty() && new[0] != old[0] {
            causes.push(invalid_raw(
                "spec.ipFamilies[0]",
                &ips,
                "may not change once set",
            ));
        }
        if new.len() == 1 && str_at(ns, "ipFamilyPolicy") != "SingleStack" {
            causes.push(invalid_raw(
                "spec.ipFamilyPolicy",
                &go_ptr_str(ns.get("ipFamilyPolicy")),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !old.is_empty() && !new.is_empty() && new[0] != old[0] {
        causes.push(invalid_raw(
            "spec.ipFamilies[0]",
            &ips,
            "may not change once set",
        ));
    }
}

/// Upstream's update-time preparation of a Service, for the registry to run after carrying over the
/// allocations (`strategy::keep_service_allocations`) and before validation:
///
/// - `normalizeClusterIPs`: a client that changed only `clusterIP` gets `clusterIPs` re-synced to it (so
///   the change is reported as `spec.clusterIPs[0]: ... may not change once set`, as upstream does);
/// - `dropTypeDependentFields`: switching to a type that does not use a field drops the unchanged value
///   (cluster IPs and families for ExternalName, node ports for ClusterIP, external traffic policy,
///   load balancer fields), so `kubectl patch svc s -p '{"spec":{"type":"ClusterIP"}}'` on a NodePort
///   service succeeds as upstream.
pub fn prepare_update(new: &mut Value, old: &Value) {
    let ips = normalized_ips(new, old);
    let os = spec(old).clone();
    let Some(ns) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if !str_at(&os, "clusterIP").is_empty() || ns.contains_key("clusterIPs") || !ips.is_empty() {
        if ips.is_empty() {
            ns.remove("clusterIPs");
        } else {
            ns.insert("clusterIPs".into(), json!(ips));
        }
    }
    let snapshot = Value::Object(ns.clone());
    let (nt, ot) = (service_type(&snapshot), service_type(&os));
    let same =
        |f: &str| snapshot.get(f).filter(|v| !v.is_null()) == os.get(f).filter(|v| !v.is_null());
    if ot != "ExternalName" && nt == "ExternalName" {
        if same("clusterIPs") && str_at(&snapshot, "clusterIP") == str_at(&os, "clusterIP") {
            ns.remove("clusterIP");
            ns.remove("clusterIPs");
        }
        if same("ipFamilies") {
            ns.remove("ipFamilies");
        }
        if same("ipFamilyPolicy") {
            ns.remove("ipFamilyPolicy");
        }
    }
    let node_ports = |s: &Value| -> Vec<i64> {
        let mut v: Vec<i64> = arr_at(s, "ports")
            .iter()
            .map(node_port)
            .filter(|n| *n != 0)
            .collect();
        v.sort_unstable();
        v
    };
    if needs_node_port(ot) && !needs_node_port(nt) && node_ports(&snapshot) == node_ports(&os) {
        if let Some(ports) = ns.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    if needs_health_check(&os) && !needs_health_check(&snapshot) && same("healthCheckNodePort") {
        ns.remove("healthCheckNodePort");
    }
    if ot == "LoadBalancer" && nt != "LoadBalancer" {
        if same("allocateLoadBalancerNodePorts") {
            ns.remove("allocateLoadBalancerNodePorts");
        }
        if same("loadBalancerClass") {
            ns.remove("loadBalancerClass");
        }
    }
    if externally_accessible(&os)
        && !externally_accessible(&snapshot)
        && same("externalTrafficPolicy")
    {
        ns.remove("externalTrafficPolicy");
    }
    if nt != "LoadBalancer" {
        if let Some(st) = new.get_mut("status").and_then(Value::as_object_mut) {
            st.insert("loadBalancer".into(), json!({}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(obj: Value) -> Vec<String> {
        let mut c = Vec::new();
        validate(&obj, &mut c);
        c.iter().map(Cause::display).collect()
    }

    /// As the registry runs it: the new object carries the current resourceVersion.
    fn run_update(mut new: Value, old: Value) -> Vec<String> {
        if let Some(m) = new.as_object_mut() {
            let meta = m.entry("metadata").or_insert(json!({}));
            meta["resourceVersion"] = json!("7");
        }
        let mut c = Vec::new();
        validate(&new, &mut c);
        validate_update(&new, &old, &mut c);
        c.iter().map(Cause::display).collect()
    }

    /// A ClusterIP service as stored after defaults and allocation.
    fn stored() -> Value {
        json!({"metadata": {"name": "s"}, "spec": {
            "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}})
    }

    #[test]
    fn valid_services() {
        assert!(run(stored()).is_empty());
        let np = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Local", "clusterIP": "10.96.0.11",
            "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80, "protocol": "UDP", "targetPort": "dns", "nodePort": 30053},
            {"name": "b", "port": 80, "protocol": "TCP", "nodePort": 30053}]}});
        assert_eq!(run(np), vec!["spec.ports[0].name: Required value"]);
        let lb = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster", "clusterIP": "10.96.0.12",
            "ports": [{"port": 443}], "loadBalancerSourceRanges": ["10.0.0.0/8"], "allocateLoadBalancerNodePorts": true,
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}});
        assert!(run(lb).is_empty());
        let headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"}}});
        assert!(run(headless).is_empty());
        let ext = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com."}});
        assert!(run(ext).is_empty());
        // odd JSON never panics
        for v in [
            json!(null),
            json!({"spec": []}),
            json!({"spec": {"ports": [null, 1, "x"], "clusterIPs": [1]}}),
        ] {
            let mut c = Vec::new();
            validate(&v, &mut c);
            validate_update(&v, &v, &mut c);
            let mut n = v.clone();
            prepare_update(&mut n, &v);
        }
    }

    #[test]
    fn invalid_services() {
        assert_eq!(
            run(json!({"spec": {"type": "Magic", "clusterIP": "10.96.0.1", "ports": []}})),
            vec![
                "spec.ports: Required value",
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ]
        );
        assert_eq!(
            run(json!({"spec": {"clusterIP": "10.96.0.1", "ports": [
                {"name": "a", "port": 0, "protocol": "ICMP", "targetPort": 70000},
                {"name": "a", "port": 81, "targetPort": "8080"},
                {"name": "Bad", "port": 81, "nodePort": 30001}]}})),
            vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ports[1].name: Duplicate value: \"a\"",
                "spec.ports[1].targetPort: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "spec.ports[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.ports[2].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                "spec.ports[2]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:81, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
            ]
        );
        assert_eq!(
            run(
                json!({"spec": {"type": "ExternalName", "clusterIP": "10.0.0.1", "ipFamilyPolicy": "SingleStack"}})
            ),
            vec![
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
                "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services",
                "spec.externalName: Required value"
            ]
        );
        assert_eq!(
            run(json!({"spec": {"type": "NodePort", "clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}})),
            vec!["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"]
        );
        assert_eq!(
            run(json!({"spec": {"clusterIP": "10.0.0.300", "clusterIPs": ["10.0.0.300"], "ports": [{"port": 80}],
                "sessionAffinity": "Sticky", "externalTrafficPolicy": "Local"}})),
            vec![
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
                "spec.clusterIPs[0]: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"
            ]
        );
        assert_eq!(
            run(json!({"spec": {"clusterIP": "10.0.0.3", "ports": [{"port": 80}], "sessionAffinity": "None",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}, "externalIPs": ["127.0.0.1"]}})),
            vec![
                "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None",
                "spec.externalIPs[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
            ]
        );
    }

    #[test]
    fn updates() {
        let old = stored();
        assert!(run_update(old.clone(), old.clone()).is_empty());
        // A client patching only clusterIP (clusterIPs carried over, stale).
        let mut patched = old.clone();
        patched["spec"]["clusterIP"] = json!("10.96.0.99");
        assert_eq!(
            run_update(patched.clone(), old.clone()),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.99\"}: may not change once set"]
        );
        // The same after the registry ran prepare_update.
        let mut prepared = patched;
        prepare_update(&mut prepared, &old);
        assert_eq!(prepared["spec"]["clusterIPs"], json!(["10.96.0.99"]));
        assert_eq!(
            run_update(prepared, old.clone()),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.99\"}: may not change once set"]
        );
        // Changing both inconsistently.
        let mut both = old.clone();
        both["spec"]["clusterIP"] = json!("10.96.0.99");
        both["spec"]["clusterIPs"] = json!(["10.96.0.98"]);
        assert_eq!(
            run_update(both, old.clone()),
            vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.98\"}: may not change once set",
                "spec.clusterIPs: Invalid value: []string{\"10.96.0.98\"}: first value must match `clusterIP`"
            ]
        );
        // To and from ExternalName the addresses may change.
        let ext = json!({"spec": {"type": "ExternalName", "externalName": "x.example.com", "sessionAffinity": "None"}});
        let mut to_ext = ext.clone();
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            to_ext["spec"][f] = old["spec"][f].clone();
        }
        prepare_update(&mut to_ext, &old);
        assert!(run_update(to_ext, old.clone()).is_empty());
        let mut from_ext = old.clone();
        from_ext["spec"]["clusterIP"] = json!("10.96.0.50");
        from_ext["spec"]["clusterIPs"] = json!(["10.96.0.50"]);
        assert!(run_update(from_ext, ext).is_empty());
        // NodePort -> ClusterIP keeps nothing it may not.
        let np = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster", "sessionAffinity": "None",
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30080}]}});
        let mut to_cip = np.clone();
        to_cip["spec"]["type"] = json!("ClusterIP");
        // Left-over values of the old type are tolerated, whether or not the registry dropped them.
        assert!(run_update(to_cip.clone(), np.clone()).is_empty());
        let mut dropped = to_cip.clone();
        prepare_update(&mut dropped, &np);
        assert!(dropped["spec"]["ports"][0].get("nodePort").is_none());
        assert!(dropped["spec"].get("externalTrafficPolicy").is_none());
        assert!(run_update(dropped.clone(), np.clone()).is_empty());
        assert!(run_update(to_cip.clone(), to_cip.clone()).is_empty());
        // A node port or policy newly given to a ClusterIP service is not.
        let mut added = dropped.clone();
        added["spec"]["ports"][0]["nodePort"] = json!(30081);
        added["spec"]["externalTrafficPolicy"] = json!("Local");
        assert_eq!(
            run_update(added, dropped),
            vec![
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"
            ]
        );
        let mut to_ext2 = old.clone();
        to_ext2["spec"]["type"] = json!("ExternalName");
        to_ext2["spec"]["externalName"] = json!("x.example.com");
        assert!(run_update(to_ext2, old.clone()).is_empty());
        let mut ext_ip = json!({"spec": {"type": "ExternalName", "externalName": "x.example.com"}});
        let ext_old = ext_ip.clone();
        ext_ip["spec"]["clusterIP"] = json!("10.96.0.3");
        assert_eq!(
            run_update(ext_ip, ext_old),
            vec!["spec.clusterIPs: Forbidden: may not be set for ExternalName services"]
        );
        // A headless service stays headless; families of IPs may not change.
        let mut fam = np.clone();
        fam["spec"]["ipFamilies"] = json!(["IPv6"]);
        assert_eq!(
            run_update(fam, np).first().cloned(),
            Some("spec.ipFamilies[0]: Invalid value: []core.IPFamily{\"IPv6\"}: may not change once set".to_string())
        );
        let lb = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
            "externalTrafficPolicy": "Cluster", "loadBalancerClass": "a.io/lb", "ports": [{"port": 80, "nodePort": 30001}]}});
        let mut lb2 = lb.clone();
        lb2["spec"]["loadBalancerClass"] = json!("b.io/lb");
        assert_eq!(
            run_update(lb2, lb),
            vec!["spec.loadBalancerClass: Invalid value: \"b.io/lb\": may not change once set"]
        );
    }
}
