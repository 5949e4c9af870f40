//! What the proxy programs: every Service port with its endpoints, built from the Services and
//! EndpointSlices the proxy watches (upstream's `servicechangetracker.go`, `endpointslicecache.go`
//! and `topology.go` in `pkg/proxy`). The proxy modes only ever see this model, so their rule
//! generators are pure functions of it (and unit-tested on fixed inputs).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that hands a Service to another proxy (upstream's `service.kubernetes.io/service-proxy-name`).
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// The label the EndpointSlice controller puts on slices of headless Services, which no proxy programs.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// One port of one Service, as upstream's `ServicePortName` + `ServicePort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name ("" for a Service's single unnamed port).
    pub port_name: String,
    /// "tcp", "udp" or "sctp", lower case as upstream hashes it.
    pub protocol: String,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<Ipv4Addr>,
    /// ClientIP session affinity's timeout in seconds.
    pub affinity_seconds: Option<i32>,
    /// externalTrafficPolicy: Local (only meaningful with node ports or external IPs).
    pub external_local: bool,
    /// internalTrafficPolicy: Local.
    pub internal_local: bool,
    /// Every endpoint of the port, in a stable order (by address, then port).
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint address of a Service port (upstream's `BaseEndpointInfo`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this proxy's node.
    pub local: bool,
}

impl Endpoint {
    /// `ip:port`, the string upstream hashes into endpoint chain names.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

impl ServicePort {
    /// `ns/name:port` (or `ns/name` for an unnamed port), upstream's `ServicePortName.String()`, used in
    /// rule comments and hashed into chain names.
    pub fn port_name_string(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }

    /// Whether traffic from outside (node ports, external IPs) reaches this port.
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }

    /// Whether any policy of the port is Local, so local endpoints are computed.
    fn any_local(&self) -> bool {
        self.internal_local || (self.external_local && self.has_external())
    }

    /// Whether cluster-wide endpoints are used: under a Cluster policy, and also for a port reachable
    /// from outside with the Local policy, whose traffic from pods and the node itself still goes
    /// cluster-wide (upstream's `UsesClusterEndpoints`).
    fn any_cluster(&self) -> bool {
        !self.internal_local || self.has_external()
    }

    /// The endpoints traffic under the Cluster policy goes to: the ready ones, or when none is ready,
    /// the serving terminating ones (upstream's `CategorizeEndpoints`: a rolling update's last
    /// terminating pods keep serving rather than dropping connections).
    pub fn cluster_endpoints(&self) -> Vec<&Endpoint> {
        if !self.any_cluster() {
            return Vec::new();
        }
        pick(self.endpoints.iter())
    }

    /// The endpoints traffic under the Local policy goes to: this node's, chosen the same way.
    pub fn local_endpoints(&self) -> Vec<&Endpoint> {
        if !self.any_local() {
            return Vec::new();
        }
        pick(self.endpoints.iter().filter(|e| e.local))
    }

    /// The endpoints traffic from inside the cluster (to the cluster IP) goes to.
    pub fn internal_endpoints(&self) -> Vec<&Endpoint> {
        if self.internal_local {
            self.local_endpoints()
        } else {
            self.cluster_endpoints()
        }
    }

    /// The endpoints traffic from outside (node port, external IP) goes to.
    pub fn external_endpoints(&self) -> Vec<&Endpoint> {
        if self.external_local {
            self.local_endpoints()
        } else {
            self.cluster_endpoints()
        }
    }

    /// Every endpoint some rule may send traffic to (for endpoint chains).
    pub fn reachable_endpoints(&self) -> Vec<&Endpoint> {
        let mut all: BTreeSet<&Endpoint> = self.cluster_endpoints().into_iter().collect();
        all.extend(self.local_endpoints());
        all.into_iter().collect()
    }
}

fn pick<'a>(endpoints: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.filter(|e| e.serving && e.terminating).collect()
}

/// The Service ports the proxy programs, from the watched objects: Services without a cluster IP
/// (headless, ExternalName) or handed to another proxy are skipped, as are non-IPv4 slices.
/// `node` is this proxy's node name, for Local traffic policies.
pub fn build(services: &[&Service], slices: &[&EndpointSlice], node: &str) -> Vec<ServicePort> {
    // Slices by owning Service (namespace, name).
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let labels = slice.metadata.labels.as_ref();
        if slice.address_type != "IPv4" || labels.is_some_and(|l| l.contains_key(HEADLESS)) {
            continue;
        }
        let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME)) else {
            continue;
        };
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        by_service.entry((ns, svc.clone())).or_default().push(slice);
    }
    let mut out = Vec::new();
    for svc in services {
        let meta = &svc.metadata;
        if meta
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME))
        {
            continue;
        }
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue; // headless ("None"), not yet allocated or IPv6
        };
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let svc_slices = by_service
            .get(&(namespace.clone(), name.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(10800)
        });
        for p in spec.ports.iter().flatten() {
            let port_name = p.name.clone().unwrap_or_default();
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_uppercase();
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            let endpoints = endpoints_of(svc_slices, &port_name, &protocol, node);
            out.push(ServicePort {
                namespace: namespace.clone(),
                name: name.clone(),
                port_name,
                protocol: protocol.to_ascii_lowercase(),
                cluster_ip,
                port,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
                external_ips: external_ips.clone(),
                affinity_seconds,
                external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                endpoints,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.namespace, &a.name, &a.port_name, &a.protocol).cmp(&(
            &b.namespace,
            &b.name,
            &b.port_name,
            &b.protocol,
        ))
    });
    out
}

/// The endpoints of one Service port across its slices: slice ports match by name and protocol,
/// duplicates (an address in two slices during a controller's update) count once, as upstream's
/// endpointSliceCache merges them.
fn endpoints_of(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: &str,
    node: &str,
) -> Vec<Endpoint> {
    let mut found: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && p.protocol
                    .as_deref()
                    .unwrap_or("TCP")
                    .eq_ignore_ascii_case(protocol)
        }) else {
            continue;
        };
        let Some(port) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let c = ep.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            found.entry((ip, port)).or_insert(Endpoint {
                ip,
                port,
                ready,
                serving: c.and_then(|c| c.serving).unwrap_or(ready),
                terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                local: ep.node_name.as_deref() == Some(node),
            });
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The rule options the modes' tests render with: pods in 10.88.0.0/16.
    pub fn opts() -> crate::proxy::iptables::Options {
        crate::proxy::iptables::Options {
            cluster_cidr: Some("10.88.0.0/16".into()),
            masquerade_all: false,
        }
    }

    pub fn service(ns: &str, name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
            .expect("service")
    }

    /// A slice of `svc` with port `port_name`=`port` and endpoints (ip, ready, node).
    pub fn slice(ns: &str, svc: &str, port: u16, eps: &[(&str, bool, &str)]) -> EndpointSlice {
        let endpoints: Vec<_> = eps
            .iter()
            .map(|(ip, ready, node)| {
                json!({"addresses": [ip], "conditions": {"ready": ready, "serving": ready, "terminating": !ready}, "nodeName": node})
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": format!("{svc}-abc"),
                         "labels": {SERVICE_NAME: svc}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .expect("slice")
    }

    #[test]
    fn builds_ports_with_merged_endpoints() {
        let svc = service(
            "ns1",
            "web",
            json!({"clusterIP": "10.96.0.20", "type": "NodePort",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        );
        let headless = service(
            "ns1",
            "h",
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
        );
        let a = slice(
            "ns1",
            "web",
            8080,
            &[("10.88.0.2", true, "n1"), ("10.88.0.3", false, "n2")],
        );
        let b = slice("ns1", "web", 8080, &[("10.88.0.2", true, "n1")]);
        let ports = build(&[&svc, &headless], &[&a, &b], "n1");
        assert_eq!(ports.len(), 1);
        let p = &ports[0];
        assert_eq!(p.port_name_string(), "ns1/web:http");
        assert_eq!(p.protocol, "tcp");
        assert_eq!(p.node_port, Some(30080));
        assert_eq!(p.endpoints.len(), 2);
        assert_eq!(p.cluster_endpoints().len(), 1, "only the ready endpoint");
        assert!(p.local_endpoints().is_empty(), "no Local policy");
    }

    #[test]
    fn terminating_endpoints_serve_when_none_is_ready() {
        let svc = service(
            "ns",
            "s",
            json!({"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}]}),
        );
        let mut s = slice("ns", "s", 80, &[("10.88.0.5", false, "n1")]);
        // Not serving yet: nothing to send traffic to.
        assert!(build(&[&svc], &[&s], "n1")[0]
            .cluster_endpoints()
            .is_empty());
        if let Some(c) = s.endpoints[0].conditions.as_mut() {
            c.serving = Some(true);
        }
        let ports = build(&[&svc], &[&s], "n1");
        let eps = ports[0].cluster_endpoints();
        assert_eq!(eps.len(), 1);
        assert!(eps[0].terminating);
    }

    #[test]
    fn local_policy_keeps_this_nodes_endpoints() {
        let svc = service(
            "ns",
            "s",
            json!({"clusterIP": "10.96.0.9", "internalTrafficPolicy": "Local",
                   "ports": [{"name": "http", "port": 80}]}),
        );
        let s = slice(
            "ns",
            "s",
            80,
            &[("10.88.0.5", true, "n1"), ("10.88.0.6", true, "n2")],
        );
        let ports = build(&[&svc], &[&s], "n1");
        let eps = ports[0].internal_endpoints();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].ip.to_string(), "10.88.0.5");
        assert!(ports[0].cluster_endpoints().is_empty());
    }

    #[test]
    fn services_of_another_proxy_are_skipped() {
        let mut svc = service(
            "ns",
            "s",
            json!({"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}),
        );
        svc.metadata.labels = Some([(SERVICE_PROXY_NAME.to_string(), "other".to_string())].into());
        assert!(build(&[&svc], &[], "n1").is_empty());
    }
}
