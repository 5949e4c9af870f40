//! The iptables mode (upstream's `pkg/proxy/iptables/proxier.go`): Service ports become upstream's
//! chain shape in the `nat` and `filter` tables, written with one `iptables-restore --noflush` per
//! sync, so the kernel switches from the old rule set to the new one atomically.
//!
//! - `KUBE-SERVICES` matches cluster IPs and external IPs and jumps to a per-port `KUBE-SVC-<hash>`
//!   (or `KUBE-SVL-<hash>` for internalTrafficPolicy Local), which picks one `KUBE-SEP-<hash>` endpoint
//!   chain with `statistic` probabilities 1/n, 1/(n-1), ... so each endpoint gets an equal share;
//!   the endpoint chain DNATs.
//! - Node ports go through `KUBE-NODEPORTS` (the last rule of `KUBE-SERVICES`, for local addresses)
//!   to `KUBE-EXT-<hash>`, which marks for masquerade (Cluster policy) or keeps the client's address
//!   and uses this node's endpoints only (Local policy).
//! - `KUBE-MARK-MASQ` sets mark 0x4000; `KUBE-POSTROUTING` masquerades marked packets.
//! - The filter table rejects traffic to ports with no endpoints (`KUBE-SERVICES`,
//!   `KUBE-EXTERNAL-SERVICES`) and lets marked traffic be forwarded (`KUBE-FORWARD`).
//!
//! Chain names hash the port's name and protocol (and the endpoint) exactly as upstream does, so the
//! rules read like upstream's in `iptables-save`. Only the chains whose rules changed since the last
//! successful sync are written (upstream's partial sync); a full sync writes every chain and deletes
//! the stale `KUBE-*` chains it finds in the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::service_map::{Endpoint, ServicePort};

/// The mark `KUBE-MARK-MASQ` sets (upstream's `--iptables-masquerade-bit` 14).
const MASQ_MARK: &str = "0x4000";

/// Rule-generation settings shared by the modes.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The cluster's pod range (`--cluster-cidr`): traffic to a cluster IP from outside it is
    /// masqueraded (upstream's ClusterCIDR local-traffic detector).
    pub cluster_cidr: Option<String>,
    /// Masquerade all traffic to cluster IPs (`--masquerade-all`).
    pub masquerade_all: bool,
}

/// One table's chains: name → rules, each rule the whole `-A CHAIN ...` line.
pub type Chains = BTreeMap<String, Vec<String>>;

/// The rule set kube-proxy owns in both tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub filter: Chains,
    pub nat: Chains,
}

/// The jumps from the built-in chains into kube-proxy's (upstream's `iptablesJumpChains`), kept
/// outside the restore input because `--noflush` would append them again on every sync.
pub const JUMPS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "filter",
        "INPUT",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-SERVICES",
        "kubernetes service portals",
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
        "",
    ),
    (
        "nat",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        "",
    ),
    (
        "nat",
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
        "",
    ),
    (
        "nat",
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "kubernetes postrouting rules",
        "",
    ),
];

/// Prefixes of the per-Service chains: one in the kernel that the new rule set lacks is stale.
const PER_SERVICE: &[&str] = &[
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-EXT-",
    "KUBE-SEP-",
    "KUBE-FW-",
];

/// The first 16 characters of base32(sha256(s)), upstream's chain-name hash.
pub fn hash16(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let mut encoded = data_encoding::BASE32.encode(digest.as_ref());
    encoded.truncate(16);
    encoded
}

/// `-m comment --comment C`, quoted as upstream writes it when the comment has spaces.
fn comment(c: &str) -> String {
    if c.contains(' ') {
        format!("-m comment --comment \"{c}\"")
    } else {
        format!("-m comment --comment {c}")
    }
}

/// Upstream's probability format: ten decimals.
fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

struct Names {
    svc: String,
    svl: String,
    ext: String,
}

fn names(p: &ServicePort) -> Names {
    let h = hash16(&format!("{}{}", p.port_name_string(), p.protocol));
    Names {
        svc: format!("KUBE-SVC-{h}"),
        svl: format!("KUBE-SVL-{h}"),
        ext: format!("KUBE-EXT-{h}"),
    }
}

fn endpoint_chain(p: &ServicePort, e: &Endpoint) -> String {
    format!(
        "KUBE-SEP-{}",
        hash16(&format!(
            "{}{}{}",
            p.port_name_string(),
            p.protocol,
            e.addr()
        ))
    )
}

fn push(chains: &mut Chains, chain: &str, rule: String) {
    chains
        .entry(chain.to_string())
        .or_default()
        .push(format!("-A {chain} {rule}"));
}

/// The whole rule set for `ports` (a pure function: the unit tests pin its output).
pub fn render(ports: &[ServicePort], opts: &Options) -> Ruleset {
    let mut filter = Chains::new();
    let mut nat = Chains::new();
    for c in [
        "KUBE-SERVICES",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
    ] {
        filter.insert(c.into(), Vec::new());
    }
    for c in [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
        super::CANARY,
    ] {
        nat.insert(c.into(), Vec::new());
    }
    push(
        &mut filter,
        "KUBE-FORWARD",
        "-m conntrack --ctstate INVALID -j DROP".into(),
    );
    push(
        &mut filter,
        "KUBE-FORWARD",
        format!(
            "{} -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
            comment("kubernetes forwarding rules")
        ),
    );
    push(
        &mut filter,
        "KUBE-FORWARD",
        format!(
            "{} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            comment("kubernetes forwarding conntrack rule")
        ),
    );
    push(
        &mut nat,
        "KUBE-POSTROUTING",
        format!("-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"),
    );
    push(
        &mut nat,
        "KUBE-POSTROUTING",
        format!("-j MARK --xor-mark {MASQ_MARK}"),
    );
    push(
        &mut nat,
        "KUBE-POSTROUTING",
        format!(
            "{} -j MASQUERADE --random-fully",
            comment("kubernetes service traffic requiring SNAT")
        ),
    );
    push(
        &mut nat,
        "KUBE-MARK-MASQ",
        format!("-j MARK --or-mark {MASQ_MARK}"),
    );

    for p in ports {
        service_port(&mut filter, &mut nat, p, opts);
    }
    push(
        &mut nat,
        "KUBE-SERVICES",
        format!(
            "{} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
            comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
        ),
    );
    Ruleset { filter, nat }
}

fn service_port(filter: &mut Chains, nat: &mut Chains, p: &ServicePort, opts: &Options) {
    let n = names(p);
    let name = p.port_name_string();
    let proto = &p.protocol;
    let m = format!("-m {proto} -p {proto}");
    let cluster = p.cluster_endpoints();
    let local = p.local_endpoints();
    let internal = p.internal_endpoints();
    let external = p.external_endpoints();
    let internal_chain = if p.internal_local { &n.svl } else { &n.svc };
    let external_chain = if p.external_local { &n.svl } else { &n.svc };
    // What traffic hits when a policy has no endpoints: REJECT when the Service has none at all,
    // DROP when only this node lacks them (upstream: the client should not retry elsewhere here).
    let no_endpoints = |policy_local: bool| {
        if policy_local && !cluster.is_empty() {
            (format!("{name} has no local endpoints"), "DROP")
        } else {
            (format!("{name} has no endpoints"), "REJECT")
        }
    };

    // The cluster IP.
    if !internal.is_empty() {
        push(
            nat,
            "KUBE-SERVICES",
            format!(
                "{} {m} -d {} --dport {} -j {internal_chain}",
                comment(&format!("{name} cluster IP")),
                p.cluster_ip,
                p.port
            ),
        );
    } else {
        let (c, target) = no_endpoints(p.internal_local);
        push(
            filter,
            "KUBE-SERVICES",
            format!(
                "{} {m} -d {} --dport {} -j {target}",
                comment(&c),
                p.cluster_ip,
                p.port
            ),
        );
    }
    // External IPs and the node port.
    for ip in &p.external_ips {
        if !external.is_empty() {
            push(
                nat,
                "KUBE-SERVICES",
                format!(
                    "{} {m} -d {ip} --dport {} -j {}",
                    comment(&format!("{name} external IP")),
                    p.port,
                    n.ext
                ),
            );
        } else {
            let (c, target) = no_endpoints(p.external_local);
            push(
                filter,
                "KUBE-EXTERNAL-SERVICES",
                format!("{} {m} -d {ip} --dport {} -j {target}", comment(&c), p.port),
            );
        }
    }
    if let Some(np) = p.node_port {
        if !external.is_empty() {
            push(
                nat,
                "KUBE-NODEPORTS",
                format!("{} {m} --dport {np} -j {}", comment(&name), n.ext),
            );
        } else {
            let (c, target) = no_endpoints(p.external_local);
            push(
                filter,
                "KUBE-EXTERNAL-SERVICES",
                format!(
                    "{} -m addrtype --dst-type LOCAL {m} --dport {np} -j {target}",
                    comment(&c)
                ),
            );
        }
    }

    // The per-policy chains.
    if !cluster.is_empty() {
        let masq = if opts.masquerade_all {
            Some(String::new())
        } else {
            opts.cluster_cidr.as_ref().map(|c| format!(" ! -s {c}"))
        };
        if let Some(source) = masq {
            push(
                nat,
                &n.svc,
                format!(
                    "{} {m} -d {} --dport {}{source} -j KUBE-MARK-MASQ",
                    comment(&format!("{name} cluster IP")),
                    p.cluster_ip,
                    p.port
                ),
            );
        }
        endpoint_jumps(nat, p, &n.svc, &cluster);
    }
    if !local.is_empty() {
        endpoint_jumps(nat, p, &n.svl, &local);
    }
    if p.has_external() && !external.is_empty() {
        if !p.external_local {
            push(
                nat,
                &n.ext,
                format!(
                    "{} -j KUBE-MARK-MASQ",
                    comment(&format!(
                        "masquerade traffic for {name} external destinations"
                    ))
                ),
            );
        } else {
            // Local policy keeps the client's address, except for traffic from pods and from the
            // node itself, which goes cluster-wide (it would otherwise be dropped on a node
            // without local endpoints).
            if let (Some(cidr), false) = (&opts.cluster_cidr, cluster.is_empty()) {
                push(
                    nat,
                    &n.ext,
                    format!(
                        "{} -s {cidr} -j {}",
                        comment(&format!("pod traffic for {name} external destinations")),
                        n.svc
                    ),
                );
            }
            push(
                nat,
                &n.ext,
                format!(
                    "{} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
                    comment(&format!(
                        "masquerade LOCAL traffic for {name} external destinations"
                    ))
                ),
            );
            if !cluster.is_empty() {
                push(
                    nat,
                    &n.ext,
                    format!(
                        "{} -m addrtype --src-type LOCAL -j {}",
                        comment(&format!(
                            "route LOCAL traffic for {name} external destinations"
                        )),
                        n.svc
                    ),
                );
            }
        }
        push(nat, &n.ext, format!("-j {external_chain}"));
    }

    // The endpoint chains.
    for e in p.reachable_endpoints() {
        let chain = endpoint_chain(p, e);
        push(
            nat,
            &chain,
            format!("{} -s {} -j KUBE-MARK-MASQ", comment(&name), e.ip),
        );
        let affinity = if p.affinity_seconds.is_some() {
            format!(" -m recent --name {chain} --mask 255.255.255.255 --set")
        } else {
            String::new()
        };
        push(
            nat,
            &chain,
            format!(
                "{}{affinity} {m} -j DNAT --to-destination {}",
                comment(&name),
                e.addr()
            ),
        );
    }
}

/// A policy chain's jumps to its endpoints: affinity checks first, then equal-share picks.
fn endpoint_jumps(nat: &mut Chains, p: &ServicePort, chain: &str, endpoints: &[&Endpoint]) {
    let name = p.port_name_string();
    if let Some(seconds) = p.affinity_seconds {
        for e in endpoints {
            let sep = endpoint_chain(p, e);
            push(
                nat,
                chain,
                format!(
                    "{} -m recent --name {sep} --mask 255.255.255.255 --rcheck --seconds {seconds} --reap -j {sep}",
                    comment(&format!("{name} -> {}", e.addr()))
                ),
            );
        }
    }
    let n = endpoints.len();
    for (i, e) in endpoints.iter().enumerate() {
        let sep = endpoint_chain(p, e);
        let c = comment(&format!("{name} -> {}", e.addr()));
        if i + 1 < n {
            push(
                nat,
                chain,
                format!(
                    "{c} -m statistic --mode random --probability {} -j {sep}",
                    probability(n - i)
                ),
            );
        } else {
            push(nat, chain, format!("{c} -j {sep}"));
        }
    }
}

/// The chains of one table found in the kernel (from `iptables-save -t T`): `:NAME ...` lines.
pub fn saved_chains(save: &str) -> BTreeSet<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The `iptables-restore --noflush` input that brings the kernel from `old` (the last rule set
/// applied, `None` for a full sync) to `new`. `existing` lists each table's chains in the kernel, so a
/// full sync also deletes per-Service chains left by an earlier run.
pub fn restore_input(
    new: &Ruleset,
    old: Option<&Ruleset>,
    existing: &BTreeMap<&str, BTreeSet<String>>,
) -> String {
    let mut out = String::new();
    for (table, chains, before) in [
        ("filter", &new.filter, old.map(|o| &o.filter)),
        ("nat", &new.nat, old.map(|o| &o.nat)),
    ] {
        let changed: Vec<(&String, &Vec<String>)> = chains
            .iter()
            .filter(|(name, rules)| before.is_none_or(|b| b.get(*name) != Some(*rules)))
            .collect();
        let mut stale: BTreeSet<&String> = BTreeSet::new();
        if let Some(b) = before {
            stale.extend(b.keys().filter(|c| !chains.contains_key(*c)));
        } else if let Some(found) = existing.get(table) {
            stale.extend(
                found
                    .iter()
                    .filter(|c| PER_SERVICE.iter().any(|p| c.starts_with(p)))
                    .filter(|c| !chains.contains_key(*c)),
            );
        }
        if changed.is_empty() && stale.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{table}");
        // Declaring a chain creates it or flushes it; a stale chain is flushed first so that its
        // rules' references are gone before it is deleted.
        for (name, _) in &changed {
            let _ = writeln!(out, ":{name} - [0:0]");
        }
        for name in &stale {
            let _ = writeln!(out, ":{name} - [0:0]");
        }
        for (_, rules) in &changed {
            for r in rules.iter() {
                out.push_str(r);
                out.push('\n');
            }
        }
        for name in &stale {
            let _ = writeln!(out, "-X {name}");
        }
        out.push_str("COMMIT\n");
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
    fn hash_matches_upstream() {
        assert_eq!(hash16("ns1/svc1:p80tcp").len(), 16);
        assert_eq!(hash16("ns1/svc1:p80tcp"), hash16("ns1/svc1:p80tcp"));
        assert_ne!(hash16("ns1/svc1:p80tcp"), hash16("ns1/svc1:p80udp"));
        // The chain names of upstream's own iptables proxier tests (KUBE-SVC-XPGD46QRK7WJZT7O is
        // ns1/svc1:p80, KUBE-SEP-SXIVWICOYRO3J4NJ its endpoint 10.180.0.1:80).
        assert_eq!(hash16("ns1/svc1:p80tcp"), "XPGD46QRK7WJZT7O");
        assert_eq!(hash16("ns1/svc1:p80tcp10.180.0.1:80"), "SXIVWICOYRO3J4NJ");
    }

    #[test]
    fn renders_upstreams_chain_shape() {
        let svc = service(
            "ns1",
            "svc1",
            json!({"clusterIP": "172.30.0.41", "type": "NodePort",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        );
        let eps = slice(
            "ns1",
            "svc1",
            8080,
            &[
                ("10.88.0.2", true, "n1"),
                ("10.88.0.3", true, "n2"),
                ("10.88.0.4", true, "n2"),
            ],
        );
        let ports = build(&[&svc], &[&eps], "n1");
        let r = render(&ports, &opts());
        let svc_chain = format!("KUBE-SVC-{}", hash16("ns1/svc1:httptcp"));
        let sep = |ip: &str| format!("KUBE-SEP-{}", hash16(&format!("ns1/svc1:httptcp{ip}:8080")));
        let ext_chain = format!("KUBE-EXT-{}", hash16("ns1/svc1:httptcp"));
        let expected_services = vec![
            format!("-A KUBE-SERVICES -m comment --comment \"ns1/svc1:http cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j {svc_chain}"),
            "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS".to_string(),
        ];
        assert_eq!(r.nat["KUBE-SERVICES"], expected_services);
        assert_eq!(
            r.nat[&svc_chain],
            vec![
                format!("-A {svc_chain} -m comment --comment \"ns1/svc1:http cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.88.0.0/16 -j KUBE-MARK-MASQ"),
                format!("-A {svc_chain} -m comment --comment \"ns1/svc1:http -> 10.88.0.2:8080\" -m statistic --mode random --probability 0.3333333333 -j {}", sep("10.88.0.2")),
                format!("-A {svc_chain} -m comment --comment \"ns1/svc1:http -> 10.88.0.3:8080\" -m statistic --mode random --probability 0.5000000000 -j {}", sep("10.88.0.3")),
                format!("-A {svc_chain} -m comment --comment \"ns1/svc1:http -> 10.88.0.4:8080\" -j {}", sep("10.88.0.4")),
            ]
        );
        assert_eq!(
            r.nat[&sep("10.88.0.2")],
            vec![
                format!("-A {} -m comment --comment ns1/svc1:http -s 10.88.0.2 -j KUBE-MARK-MASQ", sep("10.88.0.2")),
                format!("-A {} -m comment --comment ns1/svc1:http -m tcp -p tcp -j DNAT --to-destination 10.88.0.2:8080", sep("10.88.0.2")),
            ]
        );
        assert_eq!(
            r.nat["KUBE-NODEPORTS"],
            vec![format!("-A KUBE-NODEPORTS -m comment --comment ns1/svc1:http -m tcp -p tcp --dport 30080 -j {ext_chain}")]
        );
        assert_eq!(
            r.nat[&ext_chain],
            vec![
                format!("-A {ext_chain} -m comment --comment \"masquerade traffic for ns1/svc1:http external destinations\" -j KUBE-MARK-MASQ"),
                format!("-A {ext_chain} -j {svc_chain}"),
            ]
        );
        assert!(r.filter["KUBE-SERVICES"].is_empty());
    }

    #[test]
    fn no_endpoints_rejects_and_local_without_local_endpoints_drops() {
        let svc = service(
            "ns",
            "empty",
            json!({"clusterIP": "10.96.0.5", "type": "NodePort",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30001}]}),
        );
        let local = service(
            "ns",
            "local",
            json!({"clusterIP": "10.96.0.6", "type": "NodePort", "externalTrafficPolicy": "Local",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30002}]}),
        );
        let eps = slice("ns", "local", 80, &[("10.88.0.9", true, "elsewhere")]);
        let r = render(&build(&[&svc, &local], &[&eps], "n1"), &opts());
        assert_eq!(
            r.filter["KUBE-SERVICES"],
            vec!["-A KUBE-SERVICES -m comment --comment \"ns/empty:http has no endpoints\" -m tcp -p tcp -d 10.96.0.5 --dport 80 -j REJECT"]
        );
        assert_eq!(
            r.filter["KUBE-EXTERNAL-SERVICES"],
            vec![
                "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns/empty:http has no endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30001 -j REJECT",
                "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns/local:http has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30002 -j DROP",
            ]
        );
        // The cluster IP of the Local-external Service still reaches the remote endpoint.
        assert!(r.nat["KUBE-SERVICES"][0].contains("10.96.0.6 "));
    }

    #[test]
    fn session_affinity_uses_recent() {
        let svc = service(
            "ns",
            "sticky",
            json!({"clusterIP": "10.96.0.7", "sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                   "ports": [{"name": "http", "port": 80}]}),
        );
        let eps = slice("ns", "sticky", 80, &[("10.88.0.2", true, "n1")]);
        let r = render(&build(&[&svc], &[&eps], "n1"), &opts());
        let svc_chain = format!("KUBE-SVC-{}", hash16("ns/sticky:httptcp"));
        assert!(r.nat[&svc_chain][1].contains("--rcheck --seconds 60 --reap"));
        let sep = format!("KUBE-SEP-{}", hash16("ns/sticky:httptcp10.88.0.2:80"));
        assert!(r.nat[&sep][1].contains(&format!(
            "-m recent --name {sep} --mask 255.255.255.255 --set"
        )));
    }

    #[test]
    fn partial_restore_writes_only_changed_chains_and_deletes_stale() {
        let svc = service(
            "ns",
            "s",
            json!({"clusterIP": "10.96.0.8", "ports": [{"name": "http", "port": 80}]}),
        );
        let two = slice(
            "ns",
            "s",
            80,
            &[("10.88.0.2", true, "n1"), ("10.88.0.3", true, "n1")],
        );
        let one = slice("ns", "s", 80, &[("10.88.0.2", true, "n1")]);
        let before = render(&build(&[&svc], &[&two], "n1"), &opts());
        let after = render(&build(&[&svc], &[&one], "n1"), &opts());
        let text = restore_input(&after, Some(&before), &BTreeMap::new());
        let gone = format!("KUBE-SEP-{}", hash16("ns/s:httptcp10.88.0.3:80"));
        let svc_chain = format!("KUBE-SVC-{}", hash16("ns/s:httptcp"));
        assert!(!text.contains("*filter"), "filter is unchanged: {text}");
        assert!(text.contains(&format!(":{svc_chain} - [0:0]")));
        assert!(text.contains(&format!("-X {gone}")));
        assert!(
            !text.contains(":KUBE-SERVICES "),
            "KUBE-SERVICES is unchanged: {text}"
        );
        // Nothing changed: nothing to write.
        assert_eq!(restore_input(&after, Some(&after), &BTreeMap::new()), "");
        // A full sync deletes stale chains found in the kernel and keeps others' chains.
        let existing = BTreeMap::from([(
            "nat",
            BTreeSet::from([gone.clone(), "DOCKER".to_string(), svc_chain.clone()]),
        )]);
        let full = restore_input(&after, None, &existing);
        assert!(full.contains(&format!("-X {gone}")));
        assert!(!full.contains("DOCKER"));
        assert!(full.contains(":KUBE-SERVICES - [0:0]"));
    }
}
