//! The nftables mode (upstream's `pkg/proxy/nftables/proxier.go`, GA in 1.33): everything lives in
//! one `ip kube-proxy` table, applied with `nft -f` as one transaction.
//!
//! - Base chains hook prerouting/output (`services`: DNAT), postrouting (`masquerading`) and the
//!   filter hooks (`service-endpoints-check`, `nodeport-endpoints-check`, `cluster-ips-check`: reject
//!   or drop traffic for ports without endpoints).
//! - Lookups are verdict maps and sets, not rule lists: `service-ips` (`ip . proto . port` → `goto
//!   service-…`) and `service-nodeports` (`proto . port` → `goto external-…`), so a packet costs one
//!   hash lookup whatever the number of Services (the iptables mode walks `KUBE-SERVICES` linearly).
//!   Traffic from outside the pod network to a ClusterIP is marked for masquerade by a rule in the
//!   chain that picks its endpoint, as upstream's Service chains do (for ports with chains of their
//!   own, by one rule over the `masq-service-ips` set).
//! - Endpoints are picked with `numgen random` (an equal share each). The common shape (no ClientIP
//!   affinity, no Local external policy) has no chain of its own: its verdict map entries go to a
//!   chain shared by every port with the same protocol and number of endpoints (`pick-tcp-3`,
//!   `external-pick-tcp-3`, `nodeport-pick-tcp-3`), whose one rule DNATs through the endpoint maps
//!   (`tcp-service-endpoints`: `ip . port . index` → `endpoint ip . port`; `tcp-nodeport-endpoints`:
//!   `node port . index` → …). So an endpoint replaced is two map elements, not a rule rewritten:
//!   any rule or verdict element written makes the kernel re-validate every chain reachable from the
//!   base chains (about 25 ms at 10,000 Services here), and `nft` lists every chain before it writes
//!   a rule. See [`Pick`].
//! - Ports with ClientIP affinity or the Local external policy keep upstream's shape:
//!   `service-<hash>-ns/name/proto/port` picks and DNATs in its own rules (affinity sets remember a
//!   client's endpoint), `external-…` chains handle node ports and external IPs, `local-…` the
//!   Local policies. Where upstream has one chain per endpoint and an anonymous vmap per Service,
//!   this writes neither (see [`endpoint_picks`]): a pod reaching itself through its Service is
//!   masqueraded by the `hairpin-endpoints` set in postrouting instead of a per-endpoint rule.
//!
//! Each Service port renders to a [`Fragment`] (its chains, sets, map elements and the shared
//! chains it uses), kept with the port it came from. A sync ([`sync`]) re-renders only the ports
//! that changed and sends only the difference (chains flushed and rewritten, map elements added and
//! deleted, stale chains deleted), so one endpoint change costs a handful of commands and no
//! re-rendering of the others, whatever the cluster's size; a full sync recreates the table.
//!
//! Why so few rules: `nft`'s cost is per rule and per chain (about 20 µs each on this machine's
//! kernel, parsing and commit), and per element much less.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::iptables::Options;
use super::service_map::{Endpoint, ServicePort};

pub const TABLE: &str = "ip kube-proxy";
const MASQ_MARK: &str = "0x4000";

/// The fixed maps and sets Service ports add elements to, in the order a transaction writes them.
const MAPS: [&str; 13] = [
    "cluster-ips",
    "masq-service-ips",
    "hairpin-endpoints",
    "tcp-service-endpoints",
    "udp-service-endpoints",
    "sctp-service-endpoints",
    "tcp-nodeport-endpoints",
    "udp-nodeport-endpoints",
    "sctp-nodeport-endpoints",
    "service-ips",
    "service-nodeports",
    "no-endpoint-services",
    "no-endpoint-nodeports",
];

/// The protocols with endpoint maps: (protocol, its `…-service-endpoints`, its
/// `…-nodeport-endpoints`).
const ENDPOINT_MAPS: [(&str, &str, &str); 3] = [
    ("tcp", "tcp-service-endpoints", "tcp-nodeport-endpoints"),
    ("udp", "udp-service-endpoints", "udp-nodeport-endpoints"),
    ("sctp", "sctp-service-endpoints", "sctp-nodeport-endpoints"),
];

/// Which traffic a shared pick chain handles, so which key it looks its endpoint up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PickKind {
    /// To a ClusterIP under the Cluster policy: `daddr . port`, masqueraded when from outside the
    /// pod network (upstream's rule in each Service's chain).
    Service,
    /// To a ClusterIP under the Local internal policy: `daddr . port`, not masqueraded.
    LocalService,
    /// To an external IP: `daddr . port`, masqueraded.
    External,
    /// To a node port: `port`, masqueraded.
    NodePort,
}

/// A chain shared by every Service port of one protocol and number of endpoints: one rule that
/// DNATs to `numgen random mod n`'s entry of the port's endpoints in the protocol's endpoint map.
///
/// Why shared and why maps: a port's endpoints then live in map elements, which the kernel adds and
/// deletes cheaply, and the few rules bound to each map keep element insertion cheap too (every
/// element added is checked against every rule bound to its map: one `numgen … map` rule per
/// Service made 30,000 endpoints take 6 s). The protocol is in the map (`tcp dport`) because a DNAT
/// to a port needs the protocol known, and `nft` adds that match itself from the map's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pick {
    pub kind: PickKind,
    /// Index into [`ENDPOINT_MAPS`].
    proto: usize,
    pub n: usize,
}

impl Pick {
    pub fn name(&self) -> String {
        let proto = ENDPOINT_MAPS[self.proto].0;
        let n = self.n;
        match self.kind {
            PickKind::Service => format!("pick-{proto}-{n}"),
            PickKind::LocalService => format!("local-pick-{proto}-{n}"),
            PickKind::External => format!("external-pick-{proto}-{n}"),
            PickKind::NodePort => format!("nodeport-pick-{proto}-{n}"),
        }
    }

    fn rules(&self, opts: &Options) -> Vec<String> {
        let (proto, services, nodeports) = ENDPOINT_MAPS[self.proto];
        let n = self.n;
        let by_address =
            format!("dnat ip to ip daddr . {proto} dport . numgen random mod {n} map @{services}");
        match self.kind {
            PickKind::Service => match (&opts.cluster_cidr, opts.masquerade_all) {
                (_, true) => vec!["jump mark-for-masquerade".into(), by_address],
                (Some(cidr), false) => vec![
                    format!("ip saddr != {cidr} jump mark-for-masquerade"),
                    by_address,
                ],
                (None, false) => vec![by_address],
            },
            PickKind::LocalService => vec![by_address],
            PickKind::External => vec!["jump mark-for-masquerade".into(), by_address],
            PickKind::NodePort => vec![
                "jump mark-for-masquerade".into(),
                format!("dnat ip to {proto} dport . numgen random mod {n} map @{nodeports}"),
            ],
        }
    }
}

/// One Service port's share of the table (pure; the unit tests pin it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Regular chains: name and rules.
    pub chains: Vec<(String, Vec<String>)>,
    /// Affinity sets: name and declaration.
    pub sets: Vec<(String, String)>,
    /// Elements of the fixed maps and sets: map, key, value ("" in a set).
    pub elements: Vec<(&'static str, String, String)>,
    /// The shared chains its map elements go to.
    pub picks: Vec<Pick>,
}

/// A fixed map's element key.
type ElementKey = (&'static str, String);

/// A hash map with a fast hasher: a 10,000-Service sync hashes 50,000 keys, and the keys are
/// the cluster's own names, not an attacker's choice.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The values fragments give one element key, each with how many fragments give it, by value
/// (nearly always one).
#[derive(Debug, Default)]
struct Holders(Vec<(String, usize)>);

impl Holders {
    /// The value the table holds: the smallest, when fragments disagree.
    fn effective(&self) -> Option<&String> {
        self.0.first().map(|(v, _)| v)
    }

    fn add(&mut self, value: &str) {
        match self.0.binary_search_by(|(v, _)| v.as_str().cmp(value)) {
            Ok(i) => self.0[i].1 += 1,
            Err(i) => self.0.insert(i, (value.to_string(), 1)),
        }
    }

    fn remove(&mut self, value: &str) {
        if let Ok(i) = self.0.binary_search_by(|(v, _)| v.as_str().cmp(value)) {
            self.0[i].1 -= 1;
            if self.0[i].1 == 0 {
                self.0.remove(i);
            }
        }
    }
}

/// The table's per-Service content as last applied (the fixed skeleton is written on full syncs).
#[derive(Debug, Default)]
pub struct State {
    /// Per Service port (by `ns/name/proto/port`): the port as rendered and its fragment.
    ports: FastMap<String, (ServicePort, Fragment)>,
    /// For each element key, the values fragments give it and how many give each. Keys are shared
    /// (a ClusterIP of several ports, an endpoint of several Services in `hairpin-endpoints`, an
    /// external IP two Services claim): the key is in the table while any fragment holds it, with
    /// the smallest value when they disagree.
    elements: FastMap<ElementKey, Holders>,
    /// The shared pick chains and how many fragments use each: a chain is in the table while any
    /// does.
    picks: FastMap<Pick, usize>,
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

/// Whether traffic from outside the pod network to a ClusterIP is masqueraded (upstream's
/// `masqueradeAll`, else a known cluster CIDR).
fn masquerades(opts: &Options) -> bool {
    opts.masquerade_all || opts.cluster_cidr.is_some()
}

/// The verdict that sends traffic matched by `key` (`daddr . port`, or the node port) to `eps`: in
/// the common shape (`shared`: the protocol's index in [`ENDPOINT_MAPS`]) the shared pick chain,
/// with `eps` written as the key's entries of the endpoint map; else the port's own chain `own`.
fn send_to(
    f: &mut Fragment,
    shared: Option<usize>,
    kind: PickKind,
    key: &str,
    eps: &[&Endpoint],
    own: &str,
) -> String {
    let Some(proto) = shared else {
        return format!("goto {own}");
    };
    let (_, services, nodeports) = ENDPOINT_MAPS[proto];
    let map = if kind == PickKind::NodePort {
        nodeports
    } else {
        services
    };
    for (i, e) in eps.iter().enumerate() {
        f.elements.push((
            map,
            format!("{key} . {i}"),
            format!("{} . {}", e.ip, e.port),
        ));
    }
    let pick = Pick {
        kind,
        proto,
        n: eps.len(),
    };
    let verdict = format!("goto {}", pick.name());
    f.picks.push(pick);
    verdict
}

/// One Service port's chains, sets and elements.
fn fragment(p: &ServicePort, opts: &Options) -> Fragment {
    let mut f = Fragment::default();
    let proto = &p.protocol;
    // Affinity needs a set and rules per endpoint, and the Local external policy rules that
    // short-circuit to the cluster-wide endpoints: those ports keep chains of their own.
    let shared = if p.affinity_seconds.is_none() && !p.external_local {
        ENDPOINT_MAPS.iter().position(|(name, ..)| name == proto)
    } else {
        None
    };
    // The port's own chains, named only when it has them.
    let b = match shared {
        Some(_) => String::new(),
        None => hashed(&base(p)),
    };
    let svc = format!("service-{b}");
    let local_chain = format!("local-{b}");
    let ext = format!("external-{b}");
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

    f.elements
        .push(("cluster-ips", p.cluster_ip.to_string(), String::new()));
    let key = format!("{} . {proto} . {}", p.cluster_ip, p.port);
    if !internal.is_empty() {
        // Upstream marks in the cluster policy chain: a Local internal policy is not masqueraded.
        // The shared pick chains mark in their rule; ports with chains of their own are marked by
        // the one rule over this set.
        if !p.internal_local && masquerades(opts) && shared.is_none() {
            f.elements
                .push(("masq-service-ips", key.clone(), String::new()));
        }
        let at = format!("{} . {}", p.cluster_ip, p.port);
        let kind = if p.internal_local {
            PickKind::LocalService
        } else {
            PickKind::Service
        };
        let to = send_to(&mut f, shared, kind, &at, &internal, internal_chain);
        f.elements.push(("service-ips", key, to));
    } else {
        f.elements
            .push(("no-endpoint-services", key, no_endpoints(p.internal_local)));
    }
    for ip in &p.external_ips {
        let key = format!("{ip} . {proto} . {}", p.port);
        let value = if !external.is_empty() {
            let at = format!("{ip} . {}", p.port);
            send_to(&mut f, shared, PickKind::External, &at, &external, &ext)
        } else {
            no_endpoints(p.external_local)
        };
        let map = if external.is_empty() {
            "no-endpoint-services"
        } else {
            "service-ips"
        };
        f.elements.push((map, key, value));
    }
    if let Some(np) = p.node_port {
        let key = format!("{proto} . {np}");
        if !external.is_empty() {
            let to = send_to(
                &mut f,
                shared,
                PickKind::NodePort,
                &np.to_string(),
                &external,
                &ext,
            );
            f.elements.push(("service-nodeports", key, to));
        } else {
            f.elements
                .push(("no-endpoint-nodeports", key, no_endpoints(p.external_local)));
        }
    }
    for e in p.reachable_endpoints() {
        f.elements.push((
            "hairpin-endpoints",
            format!("{} . {}", e.ip, e.ip),
            String::new(),
        ));
        if let Some(seconds) = p.affinity_seconds {
            f.sets.push((
                affinity_set(p, e),
                format!("{{ type ipv4_addr ; flags dynamic,timeout ; timeout {seconds}s ; }}"),
            ));
        }
    }
    if shared.is_some() {
        return f;
    }

    if !cluster.is_empty() {
        let mut rules = Vec::new();
        endpoint_picks(&mut rules, p, &cluster);
        f.chains.push((svc.clone(), rules));
    }
    if !local.is_empty() {
        let mut rules = Vec::new();
        endpoint_picks(&mut rules, p, &local);
        f.chains.push((local_chain.clone(), rules));
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
        f.chains.push((ext, rules));
    }
    f
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
/// 60 ms with one chain per Service port. One shared map of endpoints (`numgen random mod n offset
/// k map @endpoints`) is worse still: every element added is checked against every rule bound to
/// the map (6 s for 30,000 endpoints), and a named map per Service costs 13 s.
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
fn skeleton(out: &mut String, opts: &Options) {
    let t = TABLE;
    let mut lines = vec![
        format!("add table {t} {{ comment \"rules for kube-proxy\" ; }}"),
        format!("add set {t} cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"),
        format!("add set {t} masq-service-ips {{ type ipv4_addr . inet_proto . inet_service ; comment \"ClusterIP ports whose traffic from outside the pod network is masqueraded\" ; }}"),
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
    ];
    for (proto, services, nodeports) in ENDPOINT_MAPS {
        // `typeof` because `numgen`'s value has no named type; `{proto} dport` in the value, not
        // `th dport`, which `nft` 1.0 cannot read back from the kernel beside `ip daddr`.
        lines.push(format!("add map {t} {services} {{ typeof ip daddr . {proto} dport . numgen random mod 1 : ip daddr . {proto} dport ; comment \"ClusterIP or external IP . port . index: endpoint\" ; }}"));
        lines.push(format!("add map {t} {nodeports} {{ typeof {proto} dport . numgen random mod 1 : ip daddr . {proto} dport ; comment \"node port . index: endpoint\" ; }}"));
    }
    if opts.masquerade_all {
        lines.push(format!("add rule {t} services ip daddr . meta l4proto . th dport @masq-service-ips jump mark-for-masquerade"));
    } else if let Some(cidr) = &opts.cluster_cidr {
        lines.push(format!("add rule {t} services ip saddr != {cidr} ip daddr . meta l4proto . th dport @masq-service-ips jump mark-for-masquerade"));
    }
    lines.extend([
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
    ]);
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
}

/// A transaction in the making: what changed, gathered over the fragments that changed, written
/// out in the order `nft` needs.
#[derive(Default)]
struct Changes<'a> {
    sets_added: Vec<&'a (String, String)>,
    sets_gone: Vec<&'a str>,
    /// Chains to create (`true`) or flush (`false`) and rewrite.
    chains: Vec<(bool, &'a (String, Vec<String>))>,
    chains_gone: Vec<&'a str>,
    /// Element keys touched, with the value the table held before (`None`: a full sync, where the
    /// table held none and every key is written).
    touched: Option<FastMap<ElementKey, Option<String>>>,
    /// Shared pick chains touched, with how many fragments used each before.
    picks_touched: FastMap<Pick, usize>,
}

impl<'a> Changes<'a> {
    /// Records `before` → `after` for one port (an empty fragment: added or removed) and adjusts the
    /// element counts.
    fn replace(
        &mut self,
        before: &'a Fragment,
        after: &'a Fragment,
        elements: &mut FastMap<ElementKey, Holders>,
        picks: &mut FastMap<Pick, usize>,
    ) {
        for (add, frag) in [(false, before), (true, after)] {
            for pick in &frag.picks {
                let users = picks.entry(*pick).or_default();
                self.picks_touched.entry(*pick).or_insert(*users);
                if add {
                    *users += 1;
                } else {
                    *users = users.saturating_sub(1);
                }
            }
        }
        for s in &after.sets {
            if !before.sets.contains(s) {
                self.sets_added.push(s);
            }
        }
        for (name, _) in &before.sets {
            if !after.sets.iter().any(|(n, _)| n == name) {
                self.sets_gone.push(name);
            }
        }
        for c in &after.chains {
            match before.chains.iter().find(|(n, _)| *n == c.0) {
                Some(old) if old.1 == c.1 => {}
                Some(_) => self.chains.push((false, c)),
                None => self.chains.push((true, c)),
            }
        }
        for (name, _) in &before.chains {
            if !after.chains.iter().any(|(n, _)| n == name) {
                self.chains_gone.push(name);
            }
        }
        for (add, frag) in [(false, before), (true, after)] {
            for (map, key, value) in &frag.elements {
                let k: ElementKey = (map, key.clone());
                let holders = elements.entry(k).or_default();
                if let Some(touched) = &mut self.touched {
                    touched
                        .entry((map, key.clone()))
                        .or_insert_with(|| holders.effective().cloned());
                }
                if add {
                    holders.add(value);
                } else {
                    holders.remove(value);
                }
            }
        }
    }

    /// The `nft -f` input; drops keys no fragment holds any more from `elements`, and pick chains
    /// no fragment uses from `picks`.
    fn write(
        self,
        opts: &Options,
        out: &mut String,
        elements: &mut FastMap<ElementKey, Holders>,
        picks: &mut FastMap<Pick, usize>,
    ) {
        let t = TABLE;
        for (name, decl) in &self.sets_added {
            let _ = writeln!(out, "add set {t} {name} {decl}");
        }
        let (mut picks_added, mut picks_gone): (Vec<Pick>, Vec<Pick>) = (Vec::new(), Vec::new());
        if self.touched.is_none() {
            picks_added.extend(picks.iter().filter(|(_, n)| **n > 0).map(|(p, _)| *p));
        } else {
            for (pick, before) in &self.picks_touched {
                let after = picks.get(pick).copied().unwrap_or_default();
                if before == &0 && after > 0 {
                    picks_added.push(*pick);
                } else if *before > 0 && after == 0 {
                    picks_gone.push(*pick);
                }
            }
        }
        picks.retain(|_, n| *n > 0);
        picks_added.sort();
        picks_gone.sort();
        let picks_added: Vec<(String, Vec<String>)> = picks_added
            .iter()
            .map(|p| (p.name(), p.rules(opts)))
            .collect();
        for (create, (name, _)) in &self.chains {
            let verb = if *create { "add" } else { "flush" };
            let _ = writeln!(out, "{verb} chain {t} {name}");
        }
        for (name, _) in &picks_added {
            let _ = writeln!(out, "add chain {t} {name}");
        }
        let rules = self.chains.iter().map(|(_, c)| *c).chain(&picks_added);
        for (name, rules) in rules {
            for r in rules {
                let _ = writeln!(out, "add rule {t} {name} {r}");
            }
        }
        // One statement per map and direction: parsing 10,000 one-element statements costs more.
        let mut removed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut added: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let element = |key: &str, value: &str| {
            if value.is_empty() {
                key.to_string()
            } else {
                format!("{key} : {value}")
            }
        };
        match self.touched {
            None => {
                // Every element, written straight from the state: a full sync of 10,000 Services
                // has about 100,000.
                elements.retain(|_, h| h.effective().is_some());
                let mut by_map: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
                for ((map, key), holders) in elements.iter() {
                    if let Some(value) = holders.effective() {
                        by_map.entry(map).or_default().push((key, value));
                    }
                }
                for map in MAPS {
                    let Some(list) = by_map.get_mut(map) else {
                        continue;
                    };
                    list.sort_unstable();
                    let _ = write!(out, "add element {t} {map} {{ ");
                    for (i, (key, value)) in list.iter().enumerate() {
                        out.push_str(if i == 0 { "" } else { ", " });
                        out.push_str(key);
                        if !value.is_empty() {
                            out.push_str(" : ");
                            out.push_str(value);
                        }
                    }
                    out.push_str(" }\n");
                }
            }
            Some(touched) => {
                for (k, before) in touched {
                    let after = elements.get(&k).and_then(|h| h.effective().cloned());
                    if after.is_none() {
                        elements.remove(&k);
                    }
                    if before == after {
                        continue;
                    }
                    let (map, key) = k;
                    if let Some(value) = after {
                        added.entry(map).or_default().push(element(&key, &value));
                    }
                    if before.is_some() {
                        removed.entry(map).or_default().push(key);
                    }
                }
            }
        }
        for map in MAPS {
            for (verb, list) in [
                ("delete", removed.get_mut(map)),
                ("add", added.get_mut(map)),
            ] {
                if let Some(list) = list {
                    list.sort();
                    let _ = writeln!(out, "{verb} element {t} {map} {{ {} }}", list.join(", "));
                }
            }
        }
        // Chains that are gone: flushed first, deleted once nothing points at them, then the
        // affinity sets their rules used.
        let picks_gone: Vec<String> = picks_gone.iter().map(Pick::name).collect();
        let gone = || {
            self.chains_gone
                .iter()
                .copied()
                .chain(picks_gone.iter().map(String::as_str))
        };
        for name in gone() {
            let _ = writeln!(out, "flush chain {t} {name}");
        }
        for name in gone() {
            let _ = writeln!(out, "delete chain {t} {name}");
        }
        for name in &self.sets_gone {
            let _ = writeln!(out, "delete set {t} {name}");
        }
    }
}

/// The `nft -f` input that brings the table from `old` (the state last applied; `None`: recreate
/// the table) to `ports`, and the state it leaves. Only ports that differ from the ones `old` was
/// rendered from are rendered again. Order matters inside the transaction: chains exist before
/// rules and map elements point at them, and a chain is deleted only after the elements and rules
/// that jumped to it.
pub fn sync(ports: &[ServicePort], opts: &Options, old: Option<State>) -> (State, String) {
    let mut out = String::new();
    let mut changes = Changes {
        touched: old.is_some().then(FastMap::default),
        ..Changes::default()
    };
    let mut old = match old {
        Some(o) => o,
        None => {
            // Recreate: `add` first so that `delete` cannot fail on a missing table.
            let _ = writeln!(out, "add table {TABLE}");
            let _ = writeln!(out, "delete table {TABLE}");
            skeleton(&mut out, opts);
            State::default()
        }
    };
    let mut elements = std::mem::take(&mut old.elements);
    let mut picks = std::mem::take(&mut old.picks);
    // Fragments rendered for changed ports, and the ones they replace.
    let mut rendered: Vec<(String, ServicePort, Fragment, Fragment)> = Vec::new();
    let mut kept = FastMap::with_capacity_and_hasher(ports.len(), Default::default());
    let mut seen = std::collections::HashSet::with_capacity_and_hasher(
        ports.len(),
        foldhash::fast::RandomState::default(),
    );
    for p in ports {
        let key = base(p);
        if !seen.insert(key.clone()) {
            continue; // the same port twice: the first wins
        }
        match old.ports.remove(&key) {
            Some((prev, frag)) if prev == *p => {
                kept.insert(key, (prev, frag));
            }
            prev => {
                let before = prev.map(|(_, f)| f).unwrap_or_default();
                rendered.push((key, p.clone(), fragment(p, opts), before));
            }
        }
    }
    let gone: Vec<Fragment> = old.ports.into_values().map(|(_, f)| f).collect();
    let empty = Fragment::default();
    for (_, _, after, before) in &rendered {
        changes.replace(before, after, &mut elements, &mut picks);
    }
    for before in &gone {
        changes.replace(before, &empty, &mut elements, &mut picks);
    }
    changes.write(opts, &mut out, &mut elements, &mut picks);
    for (key, port, after, _) in rendered {
        kept.insert(key, (port, after));
    }
    (
        State {
            ports: kept,
            elements,
            picks,
        },
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::service_map::build;
    use crate::proxy::service_map::tests::{opts, service, slice};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
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

    /// Every port's fragment in one.
    fn render(ports: &[ServicePort], opts: &Options) -> Fragment {
        let mut all = Fragment::default();
        for p in ports {
            let f = fragment(p, opts);
            all.chains.extend(f.chains);
            all.sets.extend(f.sets);
            all.elements.extend(f.elements);
            all.picks.extend(f.picks);
        }
        all
    }

    /// A fragment's elements of one map, as key → value.
    fn elements(f: &Fragment, map: &str) -> BTreeMap<String, String> {
        f.elements
            .iter()
            .filter(|(m, ..)| *m == map)
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn chain<'a>(f: &'a Fragment, name: &str) -> &'a [String] {
        &f.chains.iter().find(|(n, _)| n == name).expect(name).1
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
        assert_eq!(
            elements(&st, "service-ips"),
            BTreeMap::from([(
                "172.30.0.41 . tcp . 80".to_string(),
                "goto pick-tcp-2".to_string()
            )])
        );
        // Masqueraded by the pick chain's rule, not through the set.
        assert_eq!(elements(&st, "masq-service-ips"), BTreeMap::new());
        assert_eq!(
            elements(&st, "service-nodeports"),
            BTreeMap::from([(
                "tcp . 30080".to_string(),
                "goto nodeport-pick-tcp-2".to_string()
            )])
        );
        let endpoints = |key: &str| {
            BTreeMap::from([
                (format!("{key} . 0"), "10.88.0.2 . 8080".to_string()),
                (format!("{key} . 1"), "10.88.0.3 . 8080".to_string()),
            ])
        };
        assert_eq!(
            elements(&st, "tcp-service-endpoints"),
            endpoints("172.30.0.41 . 80")
        );
        assert_eq!(elements(&st, "tcp-nodeport-endpoints"), endpoints("30080"));
        assert_eq!(
            elements(&st, "no-endpoint-services"),
            BTreeMap::from([(
                "172.30.0.42 . tcp . 80".to_string(),
                "goto reject-chain".to_string()
            )])
        );
        // The common shape has no chain of its own.
        assert!(st.chains.is_empty(), "{:?}", st.chains);
        assert_eq!(
            elements(&st, "hairpin-endpoints")
                .keys()
                .collect::<Vec<_>>(),
            vec!["10.88.0.2 . 10.88.0.2", "10.88.0.3 . 10.88.0.3"]
        );
        let (_, full) = sync(&build(&[&svc, &empty], &[&eps], "n1"), &opts(), None);
        assert!(full.contains("add rule ip kube-proxy services ip saddr != 10.88.0.0/16 ip daddr . meta l4proto . th dport @masq-service-ips jump mark-for-masquerade\n"), "{full}");
        for rule in [
            "pick-tcp-2 ip saddr != 10.88.0.0/16 jump mark-for-masquerade",
            "pick-tcp-2 dnat ip to ip daddr . tcp dport . numgen random mod 2 map @tcp-service-endpoints",
            "nodeport-pick-tcp-2 jump mark-for-masquerade",
            "nodeport-pick-tcp-2 dnat ip to tcp dport . numgen random mod 2 map @tcp-nodeport-endpoints",
        ] {
            assert!(full.contains(&format!("\nadd rule ip kube-proxy {rule}\n")), "{rule}: {full}");
        }
    }

    #[test]
    fn local_internal_policy_picks_this_nodes_endpoints_unmasqueraded() {
        let svc = service(
            "ns1",
            "svc1",
            json!({"clusterIP": "172.30.0.41", "internalTrafficPolicy": "Local",
                   "ports": [{"name": "http", "port": 80}]}),
        );
        let eps = slice(
            "ns1",
            "svc1",
            8080,
            &[("10.88.0.2", true, "n2"), ("10.88.0.3", true, "n1")],
        );
        let ports = build(&[&svc], &[&eps], "n1");
        let st = render(&ports, &opts());
        assert_eq!(
            elements(&st, "service-ips"),
            BTreeMap::from([(
                "172.30.0.41 . tcp . 80".to_string(),
                "goto local-pick-tcp-1".to_string()
            )])
        );
        assert_eq!(
            elements(&st, "tcp-service-endpoints"),
            BTreeMap::from([(
                "172.30.0.41 . 80 . 0".to_string(),
                "10.88.0.3 . 8080".to_string()
            )])
        );
        let (_, full) = sync(&ports, &opts(), None);
        let rules: Vec<&str> = full
            .lines()
            .filter(|l| l.starts_with("add rule ip kube-proxy local-pick-tcp-1 "))
            .collect();
        assert_eq!(
            rules,
            ["add rule ip kube-proxy local-pick-tcp-1 dnat ip to ip daddr . tcp dport . numgen random mod 1 map @tcp-service-endpoints"]
        );
    }

    #[test]
    fn local_external_policy_keeps_chains_of_its_own() {
        let svc = service(
            "ns1",
            "svc1",
            json!({"clusterIP": "172.30.0.41", "type": "NodePort", "externalTrafficPolicy": "Local",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        );
        let eps = slice(
            "ns1",
            "svc1",
            8080,
            &[("10.88.0.2", true, "n1"), ("10.88.0.3", true, "n2")],
        );
        let st = render(&build(&[&svc], &[&eps], "n1"), &opts());
        let b = hashed("ns1/svc1/tcp/http");
        assert_eq!(
            elements(&st, "service-ips"),
            BTreeMap::from([(
                "172.30.0.41 . tcp . 80".to_string(),
                format!("goto service-{b}")
            )])
        );
        assert_eq!(
            elements(&st, "service-nodeports"),
            BTreeMap::from([("tcp . 30080".to_string(), format!("goto external-{b}"))])
        );
        assert_eq!(
            chain(&st, &format!("service-{b}")),
            [
                "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.88.0.2:8080".to_string(),
                "meta l4proto tcp dnat to 10.88.0.3:8080".to_string(),
            ]
        );
        assert_eq!(
            chain(&st, &format!("local-{b}")),
            ["meta l4proto tcp dnat to 10.88.0.2:8080".to_string()]
        );
        assert_eq!(
            chain(&st, &format!("external-{b}")),
            [
                format!("ip saddr 10.88.0.0/16 goto service-{b} comment \"short-circuit pod traffic\""),
                "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"".to_string(),
                format!("fib saddr type local goto service-{b} comment \"short-circuit local traffic\""),
                format!("goto local-{b}"),
            ]
        );
        assert!(st.picks.is_empty());
    }

    /// `n` Services of one port, each with endpoints 10.88.0.2 and 10.88.0.3.
    fn fleet(n: usize) -> (Vec<Service>, Vec<EndpointSlice>) {
        let svcs = (0..n)
            .map(|i| service("ns", &format!("s{i}"), json!({"clusterIP": format!("10.96.1.{i}"), "ports": [{"name": "http", "port": 80}]})))
            .collect();
        let slices = (0..n)
            .map(|i| {
                slice(
                    "ns",
                    &format!("s{i}"),
                    80,
                    &[("10.88.0.2", true, "n1"), ("10.88.0.3", true, "n1")],
                )
            })
            .collect();
        (svcs, slices)
    }

    #[test]
    fn one_endpoint_change_is_a_small_transaction() {
        let (svcs, slices) = fleet(50);
        let refs: Vec<_> = svcs.iter().collect();
        let mut srefs: Vec<_> = slices.iter().collect();
        let (before, full) = sync(&build(&refs, &srefs, "n1"), &opts(), None);
        assert!(full.starts_with("add table ip kube-proxy\ndelete table ip kube-proxy\n"));
        // All of a map's elements in one statement.
        let statements: Vec<&str> = full
            .lines()
            .filter(|l| l.starts_with("add element ip kube-proxy service-ips { "))
            .collect();
        assert_eq!(statements.len(), 1, "{full}");
        assert!(statements[0].contains(", 10.96.1.7 . tcp . 80 : goto pick-tcp-2"));

        // One endpoint replaced: two elements of the endpoint map, no rule and no verdict.
        let moved = slice(
            "ns",
            "s7",
            80,
            &[("10.88.0.2", true, "n1"), ("10.88.0.4", true, "n1")],
        );
        srefs[7] = &moved;
        let (before, tx) = sync(&build(&refs, &srefs, "n1"), &opts(), Some(before));
        // The other Services still use 10.88.0.3, so the hairpin set keeps it.
        assert_eq!(
            tx,
            "add element ip kube-proxy hairpin-endpoints { 10.88.0.4 . 10.88.0.4 }\n\
             delete element ip kube-proxy tcp-service-endpoints { 10.96.1.7 . 80 . 1 }\n\
             add element ip kube-proxy tcp-service-endpoints { 10.96.1.7 . 80 . 1 : 10.88.0.4 . 80 }\n"
        );
        // One endpoint fewer: the port goes to the one-endpoint pick chain, created for it.
        let one = slice("ns", "s7", 80, &[("10.88.0.2", true, "n1")]);
        srefs[7] = &one;
        let ports = build(&refs, &srefs, "n1");
        let (after, tx) = sync(&ports, &opts(), Some(before));
        assert_eq!(
            tx,
            "add chain ip kube-proxy pick-tcp-1\n\
             add rule ip kube-proxy pick-tcp-1 ip saddr != 10.88.0.0/16 jump mark-for-masquerade\n\
             add rule ip kube-proxy pick-tcp-1 dnat ip to ip daddr . tcp dport . numgen random mod 1 map @tcp-service-endpoints\n\
             delete element ip kube-proxy hairpin-endpoints { 10.88.0.4 . 10.88.0.4 }\n\
             delete element ip kube-proxy tcp-service-endpoints { 10.96.1.7 . 80 . 1 }\n\
             delete element ip kube-proxy service-ips { 10.96.1.7 . tcp . 80 }\n\
             add element ip kube-proxy service-ips { 10.96.1.7 . tcp . 80 : goto pick-tcp-1 }\n"
        );
        let (_, again) = sync(&ports, &opts(), Some(after));
        assert_eq!(again, "");
    }

    #[test]
    fn shared_elements_leave_with_their_last_holder() {
        let (svcs, slices) = fleet(2);
        let refs: Vec<_> = svcs.iter().collect();
        let srefs: Vec<_> = slices.iter().collect();
        let (st, _) = sync(&build(&refs, &srefs, "n1"), &opts(), None);
        // s0 goes: its map entries leave; the endpoints and the pick chain s1 still uses stay.
        let (st, tx) = sync(&build(&refs[1..], &srefs[1..], "n1"), &opts(), Some(st));
        assert_eq!(
            tx,
            "delete element ip kube-proxy cluster-ips { 10.96.1.0 }\n\
             delete element ip kube-proxy tcp-service-endpoints { 10.96.1.0 . 80 . 0, 10.96.1.0 . 80 . 1 }\n\
             delete element ip kube-proxy service-ips { 10.96.1.0 . tcp . 80 }\n"
        );
        // s1 goes too: now the endpoints leave the hairpin set, and the pick chain goes after the
        // elements that pointed at it.
        let (st, tx) = sync(&[], &opts(), Some(st));
        assert!(
            tx.contains("delete element ip kube-proxy hairpin-endpoints { 10.88.0.2 . 10.88.0.2, 10.88.0.3 . 10.88.0.3 }\n"),
            "{tx}"
        );
        assert!(
            tx.ends_with(
                "flush chain ip kube-proxy pick-tcp-2\ndelete chain ip kube-proxy pick-tcp-2\n"
            ),
            "{tx}"
        );
        assert!(st.ports.is_empty() && st.elements.is_empty() && st.picks.is_empty());
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
        let ports = build(&[&svc], &[&eps], "n1");
        let st = render(&ports, &opts());
        let e = hashed("ns/sticky/tcp/http__10.88.0.2/80");
        assert_eq!(
            st.sets,
            [(
                format!("affinity-{e}"),
                "{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }".to_string()
            )]
        );
        let b = hashed("ns/sticky/tcp/http");
        assert_eq!(
            chain(&st, &format!("service-{b}")),
            [
                format!("ip saddr @affinity-{e} meta l4proto tcp dnat to 10.88.0.2:80"),
                format!(
                    "update @affinity-{e} {{ ip saddr }} meta l4proto tcp dnat to 10.88.0.2:80"
                ),
            ]
        );
        let (applied, _) = sync(&ports, &opts(), None);
        let (_, tx) = sync(&[], &opts(), Some(applied));
        assert!(
            tx.ends_with(&format!("delete set ip kube-proxy affinity-{e}\n")),
            "{tx}"
        );
    }
}
