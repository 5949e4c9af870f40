//! The IPVS mode (upstream's `pkg/proxy/ipvs/proxier.go`): each cluster IP, external IP and node
//! port becomes an IPVS virtual server whose real servers are the ready endpoints; the cluster IPs
//! are bound to the `kube-ipvs0` dummy interface so the kernel accepts them as local; ipsets plus a
//! few iptables rules do what IPVS cannot (masquerade, hairpin).
//!
//! The kernel state is programmed with the stock tools in their batch forms (`ipvsadm -R`,
//! `ipset restore`, `iptables-restore`), diffed against the last applied state like the other
//! modes. **This machine's kernel has no IPVS** (no `/proc/net/ip_vs`, no module to load): the mode
//! fails fast there ([`check_kernel`]), and the programmed state is pinned by unit tests only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::iptables::{Chains, Options, Ruleset};
use super::service_map::ServicePort;

/// The dummy interface holding the cluster IPs.
pub const DUMMY: &str = "kube-ipvs0";

/// One IPVS virtual server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VirtualServer {
    /// "tcp", "udp" or "sctp".
    pub protocol: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub scheduler: String,
    /// ClientIP affinity: persistence timeout in seconds.
    pub persistent: Option<i32>,
}

impl VirtualServer {
    /// `-t 10.96.0.1:443` style service address for ipvsadm.
    fn service(&self) -> String {
        let flag = match self.protocol.as_str() {
            "udp" => "-u",
            "sctp" => "--sctp-service",
            _ => "-t",
        };
        format!("{flag} {}:{}", self.ip, self.port)
    }
}

/// What the IPVS mode programs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Virtual servers → real servers (`ip:port`).
    pub services: BTreeMap<VirtualServer, BTreeSet<String>>,
    /// Addresses bound to `kube-ipvs0`.
    pub addresses: BTreeSet<Ipv4Addr>,
    /// ipset name → entries.
    pub sets: BTreeMap<&'static str, BTreeSet<String>>,
    pub rules: Ruleset,
}

/// The ipsets upstream's IPVS mode keeps (name, type), those this proxier fills.
pub const SETS: &[(&str, &str)] = &[
    ("KUBE-CLUSTER-IP", "hash:ip,port"),
    ("KUBE-EXTERNAL-IP", "hash:ip,port"),
    ("KUBE-LOOP-BACK", "hash:ip,port,ip"),
    ("KUBE-NODE-PORT-TCP", "bitmap:port range 0-65535"),
    ("KUBE-NODE-PORT-UDP", "bitmap:port range 0-65535"),
];

/// The state for `ports`; `node_ips` are the addresses node ports listen on.
pub fn render(
    ports: &[ServicePort],
    opts: &Options,
    node_ips: &[Ipv4Addr],
    scheduler: &str,
) -> State {
    let mut st = State::default();
    for (name, _) in SETS {
        st.sets.insert(name, BTreeSet::new());
    }
    let vs = |st: &mut State, p: &ServicePort, ip: Ipv4Addr, port: u16, local: bool| {
        let reals = if local {
            p.local_endpoints()
        } else {
            p.cluster_endpoints()
        };
        st.services.insert(
            VirtualServer {
                protocol: p.protocol.clone(),
                ip,
                port,
                scheduler: scheduler.to_string(),
                persistent: p.affinity_seconds,
            },
            reals.iter().map(|e| e.addr()).collect(),
        );
    };
    for p in ports {
        let entry = |ip: Ipv4Addr, port: u16| format!("{ip},{}:{port}", p.protocol);
        vs(&mut st, p, p.cluster_ip, p.port, p.internal_local);
        st.addresses.insert(p.cluster_ip);
        set(&mut st, "KUBE-CLUSTER-IP", entry(p.cluster_ip, p.port));
        for ip in &p.external_ips {
            vs(&mut st, p, *ip, p.port, p.external_local);
            st.addresses.insert(*ip);
            set(&mut st, "KUBE-EXTERNAL-IP", entry(*ip, p.port));
        }
        if let Some(np) = p.node_port {
            for ip in node_ips {
                vs(&mut st, p, *ip, np, p.external_local);
            }
            match p.protocol.as_str() {
                "tcp" => set(&mut st, "KUBE-NODE-PORT-TCP", np.to_string()),
                "udp" => set(&mut st, "KUBE-NODE-PORT-UDP", np.to_string()),
                _ => {}
            }
        }
        // A pod reaching itself through its Service needs masquerade (hairpin).
        for e in p.reachable_endpoints() {
            set(
                &mut st,
                "KUBE-LOOP-BACK",
                format!("{},{}:{},{}", e.ip, p.protocol, e.port, e.ip),
            );
        }
    }
    st.rules = rules(opts);
    st
}

fn set(st: &mut State, name: &'static str, entry: String) {
    st.sets.entry(name).or_default().insert(entry);
}

/// The iptables glue (upstream's ipvs `writeIptablesRules`, the part this proxier needs).
fn rules(opts: &Options) -> Ruleset {
    let mut nat = Chains::new();
    let mut filter = Chains::new();
    let push = |t: &mut Chains, chain: &str, rule: &str| {
        t.entry(chain.to_string())
            .or_default()
            .push(format!("-A {chain} {rule}"));
    };
    let masq_source = if opts.masquerade_all {
        String::new()
    } else {
        opts.cluster_cidr
            .as_ref()
            .map(|c| format!(" ! -s {c}"))
            .unwrap_or_default()
    };
    push(&mut nat, "KUBE-SERVICES", &format!("-m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP dst,dst{masq_source} -j KUBE-MARK-MASQ"));
    push(&mut nat, "KUBE-SERVICES", "-m comment --comment \"Kubernetes service external ip + port for masquerade and filter purpose\" -m set --match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ");
    push(
        &mut nat,
        "KUBE-SERVICES",
        "-m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
    );
    push(
        &mut nat,
        "KUBE-SERVICES",
        "-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
    );
    push(&mut nat, "KUBE-NODE-PORT", "-p tcp -m comment --comment \"Kubernetes nodeport TCP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ");
    push(&mut nat, "KUBE-NODE-PORT", "-p udp -m comment --comment \"Kubernetes nodeport UDP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ");
    push(&mut nat, "KUBE-POSTROUTING", "-m comment --comment \"Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose\" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE");
    push(
        &mut nat,
        "KUBE-POSTROUTING",
        "-m mark ! --mark 0x4000/0x4000 -j RETURN",
    );
    push(&mut nat, "KUBE-POSTROUTING", "-j MARK --xor-mark 0x4000");
    push(&mut nat, "KUBE-POSTROUTING", "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully");
    push(&mut nat, "KUBE-MARK-MASQ", "-j MARK --or-mark 0x4000");
    nat.insert(super::CANARY.to_string(), Vec::new());
    push(&mut filter, "KUBE-FORWARD", "-m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT");
    push(&mut filter, "KUBE-FORWARD", "-m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
    Ruleset { filter, nat }
}

/// `ipvsadm -R` input from `old` to `new`: virtual servers added, changed (edited) and deleted, real
/// servers added and deleted (masquerading forwarding, weight 1, as upstream).
pub fn ipvsadm_restore(new: &State, old: &State) -> String {
    let mut out = String::new();
    let key = |v: &VirtualServer| (v.protocol.clone(), v.ip, v.port);
    let old_by_key: BTreeMap<_, _> = old.services.iter().map(|(v, r)| (key(v), (v, r))).collect();
    let new_keys: BTreeSet<_> = new.services.keys().map(key).collect();
    let empty = BTreeSet::new();
    for (v, reals) in &new.services {
        let flags = match v.persistent {
            Some(t) => format!(" -s {} -p {t}", v.scheduler),
            None => format!(" -s {}", v.scheduler),
        };
        let before = match old_by_key.get(&key(v)) {
            None => {
                let _ = writeln!(out, "-A {}{flags}", v.service());
                &empty
            }
            Some((ov, oreals)) => {
                if *ov != v {
                    let _ = writeln!(out, "-E {}{flags}", v.service());
                }
                *oreals
            }
        };
        for r in before.difference(reals) {
            let _ = writeln!(out, "-d {} -r {r}", v.service());
        }
        for r in reals.difference(before) {
            let _ = writeln!(out, "-a {} -r {r} -m -w 1", v.service());
        }
    }
    for (k, (v, _)) in &old_by_key {
        if !new_keys.contains(k) {
            let _ = writeln!(out, "-D {}", v.service());
        }
    }
    out
}

/// `ipset restore -exist` input from `old` to `new`.
pub fn ipset_restore(new: &State, old: &State) -> String {
    let mut out = String::new();
    let empty = BTreeSet::new();
    for (name, kind) in SETS {
        let _ = writeln!(out, "create {name} {kind}");
        let now = new.sets.get(name).unwrap_or(&empty);
        let was = old.sets.get(name).unwrap_or(&empty);
        for e in was.difference(now) {
            let _ = writeln!(out, "del {name} {e}");
        }
        for e in now.difference(was) {
            let _ = writeln!(out, "add {name} {e}");
        }
    }
    out
}

/// The clear error for a kernel without IPVS, checked before anything is programmed.
pub fn kernel_error(proc_net_ip_vs_exists: bool) -> Option<String> {
    (!proc_net_ip_vs_exists).then(|| {
        "the IPVS proxy mode needs the kernel's IPVS (ip_vs) support, and this kernel has none \
         (/proc/net/ip_vs is missing and no ip_vs module can be loaded): use --proxy-mode iptables \
         or --proxy-mode nftables"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::service_map::build;
    use crate::proxy::service_map::tests::{service, slice};
    use serde_json::json;

    #[test]
    fn programs_virtual_servers_sets_and_addresses() {
        let svc = service(
            "ns",
            "web",
            json!({"clusterIP": "10.96.0.20", "type": "NodePort", "sessionAffinity": "ClientIP",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        );
        let eps = slice(
            "ns",
            "web",
            8080,
            &[("10.88.0.2", true, "n1"), ("10.88.0.3", true, "n1")],
        );
        let node = "192.0.2.2".parse().expect("ip");
        let st = render(
            &build(&[&svc], &[&eps], "n1"),
            &Options::default(),
            &[node],
            "rr",
        );
        assert_eq!(
            st.addresses,
            BTreeSet::from(["10.96.0.20".parse().expect("ip")])
        );
        assert_eq!(st.services.len(), 2, "cluster IP and node port");
        assert_eq!(
            st.sets["KUBE-CLUSTER-IP"],
            BTreeSet::from(["10.96.0.20,tcp:80".to_string()])
        );
        assert_eq!(
            st.sets["KUBE-NODE-PORT-TCP"],
            BTreeSet::from(["30080".to_string()])
        );
        assert!(st.sets["KUBE-LOOP-BACK"].contains("10.88.0.2,tcp:8080,10.88.0.2"));
        let text = ipvsadm_restore(&st, &State::default());
        assert_eq!(
            text,
            "-A -t 10.96.0.20:80 -s rr -p 10800\n\
             -a -t 10.96.0.20:80 -r 10.88.0.2:8080 -m -w 1\n\
             -a -t 10.96.0.20:80 -r 10.88.0.3:8080 -m -w 1\n\
             -A -t 192.0.2.2:30080 -s rr -p 10800\n\
             -a -t 192.0.2.2:30080 -r 10.88.0.2:8080 -m -w 1\n\
             -a -t 192.0.2.2:30080 -r 10.88.0.3:8080 -m -w 1\n"
        );
        // One endpoint gone: only its real servers are deleted.
        let one = slice("ns", "web", 8080, &[("10.88.0.2", true, "n1")]);
        let after = render(
            &build(&[&svc], &[&one], "n1"),
            &Options::default(),
            &[node],
            "rr",
        );
        assert_eq!(
            ipvsadm_restore(&after, &st),
            "-d -t 10.96.0.20:80 -r 10.88.0.3:8080\n-d -t 192.0.2.2:30080 -r 10.88.0.3:8080\n"
        );
        assert!(ipset_restore(&after, &st)
            .contains("del KUBE-LOOP-BACK 10.88.0.3,tcp:8080,10.88.0.3\n"));
        // The Service gone: its virtual servers are deleted.
        let none = render(&[], &Options::default(), &[node], "rr");
        assert_eq!(
            ipvsadm_restore(&none, &after),
            "-D -t 10.96.0.20:80\n-D -t 192.0.2.2:30080\n"
        );
    }

    #[test]
    fn missing_kernel_support_is_a_clear_error() {
        assert!(kernel_error(false).is_some_and(|m| m.contains("--proxy-mode iptables")));
        assert!(kernel_error(true).is_none());
    }
}
