//! Clearing UDP conntrack entries after a sync (upstream's `pkg/proxy/conntrack/cleanup.go`).
//!
//! NAT is decided on a flow's first packet and remembered by conntrack; UDP has no connection end,
//! so a client that keeps sending (a DNS resolver's fixed source port) would keep reaching an
//! endpoint that is gone, or keep being rejected after the Service gained its first endpoint. After
//! each sync the entries of removed endpoints, and of UDP ports that had no endpoints, are deleted.

use std::collections::BTreeSet;

use super::exec::Runner;
use super::service_map::ServicePort;

/// The `conntrack -D` argument lists that clear the flows `old` → `new` made stale.
pub fn stale_udp_filters(old: &[ServicePort], new: &[ServicePort]) -> Vec<Vec<String>> {
    let mut filters = Vec::new();
    let key = |p: &ServicePort| (p.namespace.clone(), p.name.clone(), p.port_name.clone());
    for n in new.iter().filter(|p| p.protocol == "udp") {
        let before = old.iter().find(|o| key(o) == key(n) && o.protocol == "udp");
        let now: BTreeSet<_> = n.reachable_endpoints().iter().map(|e| e.ip).collect();
        let was: BTreeSet<_> = before
            .map(|b| b.reachable_endpoints().iter().map(|e| e.ip).collect())
            .unwrap_or_default();
        if was.is_empty() && !now.is_empty() {
            // Flows cached while the port rejected everything.
            filters.push(args(&[
                "--orig-dst",
                &n.cluster_ip.to_string(),
                "--orig-port-dst",
                &n.port.to_string(),
            ]));
        }
        for ip in was.difference(&now) {
            filters.push(args(&[
                "--orig-dst",
                &n.cluster_ip.to_string(),
                "--orig-port-dst",
                &n.port.to_string(),
                "--dst-nat",
                &ip.to_string(),
            ]));
            if let Some(np) = n.node_port {
                filters.push(args(&[
                    "--orig-port-dst",
                    &np.to_string(),
                    "--dst-nat",
                    &ip.to_string(),
                ]));
            }
        }
    }
    // Ports removed altogether: their endpoints' flows go too.
    for o in old.iter().filter(|p| p.protocol == "udp") {
        if new.iter().any(|n| key(n) == key(o) && n.protocol == "udp") {
            continue;
        }
        for e in o.reachable_endpoints() {
            filters.push(args(&[
                "--orig-dst",
                &o.cluster_ip.to_string(),
                "--orig-port-dst",
                &o.port.to_string(),
                "--dst-nat",
                &e.ip.to_string(),
            ]));
        }
    }
    filters
}

fn args(filter: &[&str]) -> Vec<String> {
    ["-D", "-p", "udp"]
        .iter()
        .chain(filter)
        .map(|s| s.to_string())
        .collect()
}

/// Deletes the stale flows; `conntrack` exits 1 when nothing matched, which is not an error.
pub async fn clear(runner: &Runner, old: &[ServicePort], new: &[ServicePort]) {
    for f in stale_udp_filters(old, new) {
        let args: Vec<&str> = f.iter().map(String::as_str).collect();
        match runner.output("conntrack", &args, None).await {
            Ok((true, _, _)) => {}
            Ok((false, _, err)) if err.contains("0 flow entries") => {}
            Ok((false, _, err)) => tracing::debug!("conntrack {}: {}", f.join(" "), err.trim()),
            Err(e) => tracing::debug!("conntrack: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::service_map::build;
    use crate::proxy::service_map::tests::service;
    use serde_json::json;

    fn udp_slice(ips: &[&str]) -> k8s_openapi::api::discovery::v1::EndpointSlice {
        let endpoints: Vec<_> = ips
            .iter()
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "dns-x", "labels": {"kubernetes.io/service-name": "dns"}},
            "addressType": "IPv4",
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
            "endpoints": endpoints,
        }))
        .expect("slice")
    }

    #[test]
    fn removed_udp_endpoints_and_first_endpoints_are_cleared() {
        let svc = service(
            "ns",
            "dns",
            json!({"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
        );
        let none = build(&[&svc], &[], "n");
        let two = build(&[&svc], &[&udp_slice(&["10.88.0.2", "10.88.0.3"])], "n");
        let one = build(&[&svc], &[&udp_slice(&["10.88.0.2"])], "n");
        assert_eq!(
            stale_udp_filters(&none, &two),
            vec![args(&["--orig-dst", "10.96.0.10", "--orig-port-dst", "53"])]
        );
        assert_eq!(
            stale_udp_filters(&two, &one),
            vec![args(&[
                "--orig-dst",
                "10.96.0.10",
                "--orig-port-dst",
                "53",
                "--dst-nat",
                "10.88.0.3"
            ])]
        );
        assert!(stale_udp_filters(&one, &one).is_empty());
    }
}
