//! The nftables mode (upstream's `pkg/proxy/nftables/proxier.go`, GA in 1.33): everything lives in
//! one `ip kube-proxy` table, applied with `nft -f` as one transaction.
//!
//! - Base chains hook prerouting/output (`services`: DNAT), postrouting (`masquerading`) and the
//!   filter hooks (`service-endpoints-check`, `nodeport-endpoints-check`, `cluster-ips-check`: reject
//!   or drop traffic for ports without endpoints).
//! - Lookups are verdict maps, not rule lists: `service-ips` (`ip . proto . port` → `goto
//!   service-…`) and `service-nodeports` (`proto . port` → `goto external-…`), so a packet costs one
//!   hash lookup whatever the number of Services (the iptables mode walks `KUBE-SERVICES` linearly).
//! - A port's `service-<hash>-ns/name/proto/port` chain picks an endpoint with `numgen random` and
//!   DNATs to it in the same rule; `external-…` chains handle node ports, `local-…` the Local traffic
//!   policies, and `affinity-…` sets (dynamic, with timeout) ClientIP affinity. Where upstream has
//!   one chain per endpoint and an anonymous vmap per Service, this writes neither (see
//!   [`endpoint_picks`]): a pod reaching itself through its Service is masqueraded by the
//!   `hairpin-endpoints` set in postrouting instead of a per-endpoint rule.
//!
//! A sync diffs the new state against the last applied one and sends only the difference (chains
//! flushed and rewritten, map elements added and deleted, stale chains deleted), so one endpoint
//! change is a handful of commands whatever the cluster's size; a full sync recreates the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::iptables::Options;
use super::service_map::{Endpoint, ServicePort};

pub const TABLE: &str = "ip kube-proxy";
const MASQ_MARK: &str = "0x4000";

/// The table's per-Service content (the fixed skeleton is written on full syncs only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Regular chains: name → rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets: name → declaration.
    pub sets: BTreeMap<String, String>,
    /// Elements of the fixed maps and sets: map → key → value ("" in a set).
    pub elements: BTreeMap<&'static str, BTreeMap<String, String>>,
}

/// upstream's `hashAndTruncate`: the first 8 characters of base32(sha256(name)), a dash, the name.
fn hashed(name: &str) -> String {
    let mut h = super::iptables::hash16(name);
    h.truncate(8);
    let full = format!("{h}-{name}");
    // nft's limit is 256 bytes; upstream cuts long names the same way.
    if full.len() > 200 {
        format!("{}...", &full[..197])
    } else {
        full
    }
}

fn base(p: &ServicePort) -> String {
    format!("{}/{}/{}/{}", p.namespace, p.name, p.protocol, p.port_name)
}

fn endpoint_base(p: &ServicePort, e: &Endpoint) -> String {
    format!("{}__{}/{}", base(p), e.ip, e.port)
}

/// The per-Service state for `ports` (pure; the unit tests pin it).
pub fn render(ports: &[ServicePort], opts: &Options) -> State {
    let mut st = State::default();
    for m in [
        "cluster-ips",
        "service-ips",
        "service-nodeports",
        "no-endpoint-services",
        "no-endpoint-nodeports",
        "hairpin-endpoints",
    ] {
        st.elements.insert(m, BTreeMap::new());
    }
    for p in ports {
        service_port(&mut st, p, opts);
    }
    st
}

fn elem(st: &mut State, map: &'static str, key: String, value: String) {
    st.elements.entry(map).or_default().insert(key, value);
}

fn service_port(st: &mut State, p: &ServicePort, opts: &Options) {
    let b = hashed(&base(p));
    let svc = format!("service-{b}");
    let local_chain = format!("local-{b}");
    let ext = format!("external-{b}");
    let proto = &p.protocol;
    let cluster = p.cluster_endpoints();
    let local = p.local_endpoints();
    let internal = p.internal_endpoints();
    let external = p.external_endpoints();
    let internal_chain = if p.internal_local { &local_chain } else { &svc };
    let external_chain = if p.external_local { &local_chain } else { &svc };
    let no_endpoints = |policy_local: bool| {
        // A verdict map cannot hold `reject`: upstream jumps to a chain that rejects.
        if policy_local && !cluster.is_empty() {
            "drop".to_string()
        } else {
            "goto reject-chain".to_string()
        }
    };

    elem(st, "cluster-ips", p.cluster_ip.to_string(), String::new());
    let key = format!("{} . {proto} . {}", p.cluster_ip, p.port);
    if !internal.is_empty() {
        elem(st, "service-ips", key, format!("goto {internal_chain}"));
    } else {
        elem(
            st,
            "no-endpoint-services",
            key,
            no_endpoints(p.internal_local),
        );
    }
    for ip in &p.external_ips {
        let key = format!("{ip} . {proto} . {}", p.port);
        if !external.is_empty() {
            elem(st, "service-ips", key, format!("goto {ext}"));
        } else {
            elem(
                st,
                "no-endpoint-services",
                key,
                no_endpoints(p.external_local),
            );
        }
    }
    if let Some(np) = p.node_port {
        let key = format!("{proto} . {np}");
        if !external.is_empty() {
            elem(st, "service-nodeports", key, format!("goto {ext}"));
        } else {
            elem(
                st,
                "no-endpoint-nodeports",
                key,
                no_endpoints(p.external_local),
            );
        }
    }

    if !cluster.is_empty() {
        let mut rules = Vec::new();
        let masq = if opts.masquerade_all {
            Some(String::new())
        } else {
            opts.cluster_cidr
                .as_ref()
                .map(|c| format!(" ip saddr != {c}"))
        };
        if let Some(source) = masq {
            rules.push(format!(
                "ip daddr {} {proto} dport {}{source} jump mark-for-masquerade",
                p.cluster_ip, p.port
            ));
        }
        endpoint_picks(&mut rules, p, &cluster);
        st.chains.insert(svc.clone(), rules);
    }
    if !local.is_empty() {
        let mut rules = Vec::new();
        endpoint_picks(&mut rules, p, &local);
        st.chains.insert(local_chain.clone(), rules);
    }
    if p.has_external() && !external.is_empty() {
        let mut rules = Vec::new();
        if !p.external_local {
            rules.push("jump mark-for-masquerade".to_string());
        } else {
            if let (Some(cidr), false) = (&opts.cluster_cidr, cluster.is_empty()) {
                rules.push(format!(
                    "ip saddr {cidr} goto {svc} comment \"short-circuit pod traffic\""
                ));
            }
            rules.push(
                "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\""
                    .to_string(),
            );
            if !cluster.is_empty() {
                rules.push(format!(
                    "fib saddr type local goto {svc} comment \"short-circuit local traffic\""
                ));
            }
        }
        rules.push(format!("goto {external_chain}"));
        st.chains.insert(ext, rules);
    }
    for e in p.reachable_endpoints() {
        elem(
            st,
            "hairpin-endpoints",
            format!("{} . {}", e.ip, e.ip),
            String::new(),
        );
        if let Some(seconds) = p.affinity_seconds {
            st.sets.insert(
                affinity_set(p, e),
                format!("{{ type ipv4_addr ; flags dynamic,timeout ; timeout {seconds}s ; }}"),
            );
        }
    }
}

fn affinity_set(p: &ServicePort, e: &Endpoint) -> String {
    format!("affinity-{}", hashed(&endpoint_base(p, e)))
}

/// A policy chain's picks: affinity lookups first, then one endpoint with an equal share each (rule
/// i matches `numgen random mod (n-i) == 0`, the last always, as the iptables mode's probabilities),
/// each DNATing in the rule itself.
///
/// Upstream writes `numgen random mod n vmap { i : goto endpoint-… }` and a chain per endpoint. Both
/// cost too much at 10,000 Services here: every anonymous vmap is a kernel set whose name
/// allocation scans all the table's sets (a full sync took 17 s), and every `nft` run loads the
/// table's chain list into its cache, so 40,000 chains made one endpoint change take 160 ms against
/// 60 ms with one chain per Service port.
fn endpoint_picks(rules: &mut Vec<String>, p: &ServicePort, endpoints: &[&Endpoint]) {
    let dnat = |e: &Endpoint| format!("meta l4proto {} dnat to {}", p.protocol, e.addr());
    if p.affinity_seconds.is_some() {
        for e in endpoints {
            rules.push(format!("ip saddr @{} {}", affinity_set(p, e), dnat(e)));
        }
    }
    let n = endpoints.len();
    for (i, e) in endpoints.iter().enumerate() {
        let pick = if i + 1 < n {
            format!("numgen random mod {} == 0 ", n - i)
        } else {
            String::new()
        };
        let remember = if p.affinity_seconds.is_some() {
            format!("update @{} {{ ip saddr }} ", affinity_set(p, e))
        } else {
            String::new()
        };
        rules.push(format!("{pick}{remember}{}", dnat(e)));
    }
}

/// The fixed part of the table: base chains, maps and the chains that consult them.
fn skeleton(out: &mut String) {
    let t = TABLE;
    let lines = [
        format!("add table {t} {{ comment \"rules for kube-proxy\" ; }}"),
        format!("add set {t} cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"),
        format!("add set {t} hairpin-endpoints {{ type ipv4_addr . ipv4_addr ; comment \"endpoint . endpoint: a pod reaching itself through a Service\" ; }}"),
        format!("add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}"),
        format!("add map {t} service-nodeports {{ type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }}"),
        format!("add map {t} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }}"),
        format!("add map {t} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }}"),
        format!("add chain {t} reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}"),
        format!("add rule {t} reject-chain reject"),
        format!("add chain {t} mark-for-masquerade"),
        format!("add rule {t} mark-for-masquerade mark set mark or {MASQ_MARK}"),
        format!("add chain {t} masquerading"),
        format!("add rule {t} masquerading ct status dnat ip saddr . ip daddr @hairpin-endpoints jump mark-for-masquerade"),
        format!("add rule {t} masquerading mark and {MASQ_MARK} == 0 return"),
        format!("add rule {t} masquerading mark set mark xor {MASQ_MARK}"),
        format!("add rule {t} masquerading masquerade fully-random"),
        format!("add chain {t} services"),
        format!("add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips"),
        format!("add rule {t} services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"),
        format!("add chain {t} service-endpoints-check"),
        format!("add rule {t} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services"),
        format!("add chain {t} nodeport-endpoints-check"),
        format!("add rule {t} nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"),
        format!("add chain {t} cluster-ips-check"),
        format!("add rule {t} cluster-ips-check ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\""),
        format!("add chain {t} filter-input {{ type filter hook input priority -110 ; }}"),
        format!("add rule {t} filter-input ct state new jump nodeport-endpoints-check"),
        format!("add rule {t} filter-input ct state new jump service-endpoints-check"),
        format!("add chain {t} filter-forward {{ type filter hook forward priority -110 ; }}"),
        format!("add rule {t} filter-forward ct state new jump service-endpoints-check"),
        format!("add rule {t} filter-forward ct state new jump cluster-ips-check"),
        format!("add chain {t} filter-output {{ type filter hook output priority -110 ; }}"),
        format!("add rule {t} filter-output ct state new jump service-endpoints-check"),
        format!("add chain {t} filter-output-post-dnat {{ type filter hook output priority -90 ; }}"),
        format!("add rule {t} filter-output-post-dnat ct state new jump cluster-ips-check"),
        format!("add chain {t} nat-prerouting {{ type nat hook prerouting priority -100 ; }}"),
        format!("add rule {t} nat-prerouting jump services"),
        format!("add chain {t} nat-output {{ type nat hook output priority -100 ; }}"),
        format!("add rule {t} nat-output jump services"),
        format!("add chain {t} nat-postrouting {{ type nat hook postrouting priority 100 ; }}"),
        format!("add rule {t} nat-postrouting jump masquerading"),
    ];
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
}

/// `key` in a set, `key : verdict` in a map.
fn element(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key} : {value}")
    }
}

/// The `nft -f` input that brings the table from `old` (the last state applied; `None`: recreate the
/// table) to `new`. Order matters inside the transaction: chains exist before rules and map
/// elements point at them, and a chain is deleted only after the elements and rules that jumped to it.
pub fn transaction(new: &State, old: Option<&State>) -> String {
    let t = TABLE;
    let mut out = String::new();
    let empty = State::default();
    let old = match old {
        Some(o) => o,
        None => {
            // Recreate: `add` first so that `delete` cannot fail on a missing table.
            let _ = writeln!(out, "add table {t}");
            let _ = writeln!(out, "delete table {t}");
            skeleton(&mut out);
            &empty
        }
    };
    for (name, decl) in &new.sets {
        if old.sets.get(name) != Some(decl) {
            let _ = writeln!(out, "add set {t} {name} {decl}");
        }
    }
    let changed: Vec<(&String, &Vec<String>)> = new
        .chains
        .iter()
        .filter(|(name, rules)| old.chains.get(*name) != Some(*rules))
        .collect();
    for (name, _) in &changed {
        if old.chains.contains_key(*name) {
            let _ = writeln!(out, "flush chain {t} {name}");
        } else {
            let _ = writeln!(out, "add chain {t} {name}");
        }
    }
    for (name, rules) in &changed {
        for r in rules.iter() {
            let _ = writeln!(out, "add rule {t} {name} {r}");
        }
    }
    // One statement per map and direction: parsing 10,000 one-element statements costs more.
    let no_elements = BTreeMap::new();
    for (map, elements) in &new.elements {
        let before = old.elements.get(map).unwrap_or(&no_elements);
        let removed: Vec<&str> = before
            .iter()
            .filter(|(key, value)| elements.get(*key) != Some(*value))
            .map(|(key, _)| key.as_str())
            .collect();
        if !removed.is_empty() {
            let _ = writeln!(out, "delete element {t} {map} {{ {} }}", removed.join(", "));
        }
        let added: Vec<String> = elements
            .iter()
            .filter(|(key, value)| before.get(*key) != Some(*value))
            .map(|(key, value)| element(key, value))
            .collect();
        if !added.is_empty() {
            let _ = writeln!(out, "add element {t} {map} {{ {} }}", added.join(", "));
        }
    }
    // Chains that are gone: flushed first, deleted once nothing points at them, then the affinity
    // sets their rules used.
    let gone: Vec<&String> = old
        .chains
        .keys()
        .filter(|c| !new.chains.contains_key(*c))
        .collect();
    for name in &gone {
        let _ = writeln!(out, "flush chain {t} {name}");
    }
    for name in &gone {
        let _ = writeln!(out, "delete chain {t} {name}");
    }
    for name in old.sets.keys().filter(|s| !new.sets.contains_key(*s)) {
        let _ = writeln!(out, "delete set {t} {name}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::service_map::build;
    use crate::proxy::service_map::tests::{opts, service, slice};
    use serde_json::json;

    #[test]
    fn names_follow_upstream() {
        let h = super::super::iptables::hash16("ns1/svc1/tcp/p80");
        assert_eq!(
            hashed("ns1/svc1/tcp/p80"),
            format!("{}-ns1/svc1/tcp/p80", &h[..8])
        );
        // upstream's nftables proxier tests name ns1/svc1's p80 chain service-ULMVA6XW-ns1/svc1/tcp/p80.
        assert_eq!(hashed("ns1/svc1/tcp/p80"), "ULMVA6XW-ns1/svc1/tcp/p80");
    }

    #[test]
    fn renders_maps_and_chains() {
        let svc = service(
            "ns1",
            "svc1",
            json!({"clusterIP": "172.30.0.41", "type": "NodePort",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        );
        let empty = service(
            "ns1",
            "empty",
            json!({"clusterIP": "172.30.0.42", "ports": [{"name": "http", "port": 80}]}),
        );
        let eps = slice(
            "ns1",
            "svc1",
            8080,
            &[("10.88.0.2", true, "n1"), ("10.88.0.3", true, "n1")],
        );
        let st = render(&build(&[&svc, &empty], &[&eps], "n1"), &opts());
        let b = hashed("ns1/svc1/tcp/http");
        assert_eq!(
            st.elements["service-ips"],
            BTreeMap::from([(
                "172.30.0.41 . tcp . 80".to_string(),
                format!("goto service-{b}")
            )])
        );
        assert_eq!(
            st.elements["service-nodeports"],
            BTreeMap::from([("tcp . 30080".to_string(), format!("goto external-{b}"))])
        );
        assert_eq!(
            st.elements["no-endpoint-services"],
            BTreeMap::from([(
                "172.30.0.42 . tcp . 80".to_string(),
                "goto reject-chain".to_string()
            )])
        );
        assert_eq!(
            st.chains[&format!("service-{b}")],
            vec![
                "ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.88.0.0/16 jump mark-for-masquerade".to_string(),
                "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.88.0.2:8080".to_string(),
                "meta l4proto tcp dnat to 10.88.0.3:8080".to_string(),
            ]
        );
        assert_eq!(
            st.elements["hairpin-endpoints"].keys().collect::<Vec<_>>(),
            vec!["10.88.0.2 . 10.88.0.2", "10.88.0.3 . 10.88.0.3"]
        );
        assert_eq!(
            st.chains[&format!("external-{b}")],
            vec![
                "jump mark-for-masquerade".to_string(),
                format!("goto service-{b}")
            ]
        );
    }

    #[test]
    fn one_endpoint_change_is_a_small_transaction() {
        let svcs: Vec<_> = (0..50)
            .map(|i| service("ns", &format!("s{i}"), json!({"clusterIP": format!("10.96.1.{i}"), "ports": [{"name": "http", "port": 80}]})))
            .collect();
        let slices: Vec<_> = (0..50)
            .map(|i| {
                slice(
                    "ns",
                    &format!("s{i}"),
                    80,
                    &[("10.88.0.2", true, "n1"), ("10.88.0.3", true, "n1")],
                )
            })
            .collect();
        let refs: Vec<_> = svcs.iter().collect();
        let mut srefs: Vec<_> = slices.iter().collect();
        let before = render(&build(&refs, &srefs, "n1"), &opts());
        let one = slice("ns", "s7", 80, &[("10.88.0.2", true, "n1")]);
        srefs[7] = &one;
        let after = render(&build(&refs, &srefs, "n1"), &opts());
        let tx = transaction(&after, Some(&before));
        let b = hashed("ns/s7/tcp/http");
        // The other Services still use 10.88.0.3, so the hairpin set keeps it.
        assert_eq!(
            tx,
            format!(
                "flush chain ip kube-proxy service-{b}\n\
                 add rule ip kube-proxy service-{b} ip daddr 10.96.1.7 tcp dport 80 ip saddr != 10.88.0.0/16 jump mark-for-masquerade\n\
                 add rule ip kube-proxy service-{b} meta l4proto tcp dnat to 10.88.0.2:80\n"
            )
        );
        assert_eq!(transaction(&after, Some(&after)), "");
        let full = transaction(&after, None);
        assert!(full.starts_with("add table ip kube-proxy\ndelete table ip kube-proxy\n"));
        // All of a map's elements in one statement.
        let elements: Vec<&str> = full
            .lines()
            .filter(|l| l.starts_with("add element ip kube-proxy service-ips { "))
            .collect();
        assert_eq!(elements.len(), 1, "{full}");
        assert!(elements[0].contains(", 10.96.1.7 . tcp . 80 : goto service-"));
    }

    #[test]
    fn affinity_sets_come_and_go_with_their_endpoints() {
        let svc = service(
            "ns",
            "sticky",
            json!({"clusterIP": "10.96.0.7", "sessionAffinity": "ClientIP",
                   "ports": [{"name": "http", "port": 80}]}),
        );
        let eps = slice("ns", "sticky", 80, &[("10.88.0.2", true, "n1")]);
        let st = render(&build(&[&svc], &[&eps], "n1"), &opts());
        let e = hashed("ns/sticky/tcp/http__10.88.0.2/80");
        assert_eq!(
            st.sets[&format!("affinity-{e}")],
            "{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }"
        );
        let b = hashed("ns/sticky/tcp/http");
        assert_eq!(
            st.chains[&format!("service-{b}")][1..],
            [
                format!("ip saddr @affinity-{e} meta l4proto tcp dnat to 10.88.0.2:80"),
                format!(
                    "update @affinity-{e} {{ ip saddr }} meta l4proto tcp dnat to 10.88.0.2:80"
                ),
            ]
        );
        let tx = transaction(&State::default(), Some(&st));
        assert!(
            tx.ends_with(&format!("delete set ip kube-proxy affinity-{e}\n")),
            "{tx}"
        );
    }
}
