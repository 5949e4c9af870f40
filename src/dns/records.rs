//! The records the cluster domain answers, as upstream CoreDNS's `kubernetes` plugin computes them
//! (plugin/kubernetes: parse.go, kubernetes.go `findServices`/`findPods`, reverse.go; and the
//! generic answer shaping of plugin/backend_lookup.go).
//!
//! [`Index`] is an immutable snapshot of the Services, EndpointSlices and Namespaces the watchers
//! hold (rebuilt by [`super::watch`] when they change); [`Index::lookup`] is a pure function from a
//! question to a [`Reply`], so the unit tests below exercise exactly what the server answers.
//!
//! Names (with `cluster.local` the cluster domain):
//! - `svc.ns.svc.cluster.local` A/AAAA: the ClusterIPs; for a headless Service the ready endpoint
//!   addresses; for an ExternalName Service a CNAME to the external name.
//! - `host.svc.ns.svc.cluster.local`: the endpoint whose hostname is `host` (or, without one, whose
//!   address with dashes is `host`, e.g. `10-1-2-3`).
//! - `_port._proto.svc.ns.svc.cluster.local` SRV (and SRV of `svc.ns.svc.cluster.local` for every
//!   port): targets are the Service name (ClusterIP) or each endpoint's name (headless), with the
//!   target's A record in the additional section.
//! - `1-2-3-4.ns.pod.cluster.local` A: the address in the name (upstream's `pods insecure`, the
//!   kubeadm default), when the namespace exists.
//! - PTR of a ClusterIP or an endpoint address under in-addr.arpa / ip6.arpa.
//! - Anything else under the domain: NXDOMAIN (a name that does not exist) or NODATA (a name that
//!   exists without records of that type), both with the zone's SOA in the authority section, and
//!   SERVFAIL instead of NXDOMAIN until the watchers have listed everything once.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label naming an EndpointSlice's Service (discovery.LabelServiceName).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// CoreDNS's `ttl` default for the kubernetes plugin (kubernetes.go defaultTTL).
pub const DEFAULT_TTL: u32 = 5;
/// How many CNAMEs inside the zone are followed (backend_lookup.go maxCnameChainLength).
const MAX_CNAME_CHAIN: usize = 10;

/// A Service port (or an EndpointSlice port); `port` -1 stands for "no ports" as upstream's
/// sentinel, which answers A queries but no SRV.
#[derive(Clone, Debug, PartialEq)]
struct Port {
    name: String,
    protocol: String,
    port: i32,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    External(String),
}

#[derive(Clone, Debug)]
struct Svc {
    kind: Kind,
    ports: Vec<Port>,
}

#[derive(Clone, Debug)]
struct Address {
    ip: IpAddr,
    hostname: Option<String>,
}

/// One EndpointSlice's ready endpoints.
#[derive(Clone, Debug)]
struct Slice {
    ports: Vec<Port>,
    addresses: Vec<Address>,
}

/// What a name resolves to before it becomes records: an address or a name (ExternalName), the
/// port (SRV), and the labels of the record's own name under the zone (SRV targets).
#[derive(Clone, Debug)]
struct Item {
    host: Host,
    port: i32,
    key: Vec<String>,
}

#[derive(Clone, Debug)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Why a name has no records: upstream's errNoItems / errNsNotExposed / errInvalidRequest, which
/// all answer NXDOMAIN.
#[derive(Debug, PartialEq)]
struct NameError;

/// The answer to one question.
#[derive(Debug, Default)]
pub struct Reply {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    /// The zone's SOA, on NXDOMAIN and NODATA.
    pub soa: Vec<Record>,
    pub additionals: Vec<Record>,
    /// A CNAME (already in `answers`) points out of the cluster domain: the server resolves this
    /// name upstream and appends what it gets (as CoreDNS's `b.Lookup`).
    pub chase: Option<Name>,
}

/// What the server does with a question.
#[derive(Debug)]
pub enum Outcome {
    /// Answered from the cluster's objects.
    Reply(Reply),
    /// Not the cluster's: forward it (names outside the zone, reverse names of unknown addresses).
    Forward,
}

/// An immutable view of the cluster's Services, EndpointSlices and Namespaces.
pub struct Index {
    zone: Vec<String>,
    zone_name: Name,
    ttl: u32,
    /// The watchers have listed everything at least once (before that a missing name is SERVFAIL,
    /// as CoreDNS answers while its informers have not synced).
    pub synced: bool,
    /// The SOA serial: when the index was built (CoreDNS: the last modification time).
    serial: u32,
    namespaces: HashSet<String>,
    services: HashMap<(String, String), Svc>,
    /// EndpointSlices by (namespace, Service name).
    slices: HashMap<(String, String), Vec<Slice>>,
}

/// The labels of `name`, lower-cased (DNS names compare case-insensitively; CoreDNS folds case
/// the same way when it matches objects).
fn labels_of(name: &Name) -> Vec<String> {
    name.iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect()
}

/// A fully-qualified name from labels (None when one is not a valid label, e.g. too long).
fn name_from(labels: &[String]) -> Option<Name> {
    let mut name = Name::from_labels(labels.iter().map(|l| l.as_bytes())).ok()?;
    name.set_fqdn(true);
    Some(name)
}

fn port_of(name: Option<&String>, protocol: Option<&String>, port: Option<i32>) -> Port {
    Port {
        name: name.cloned().unwrap_or_default(),
        protocol: protocol.cloned().unwrap_or_else(|| "TCP".into()),
        port: port.unwrap_or(-1),
    }
}

/// The name of an endpoint under its Service: its hostname, else its address with dashes (upstream's
/// endpointHostname without endpoint_pod_names).
fn endpoint_hostname(a: &Address) -> String {
    if let Some(h) = a.hostname.as_ref().filter(|h| !h.is_empty()) {
        return h.to_ascii_lowercase();
    }
    match a.ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let s = v6.to_string().replace(':', "-");
            if s.ends_with('-') {
                format!("{s}0")
            } else {
                s
            }
        }
    }
}

/// The address a pod name stands for (`1-2-3-4` → 1.2.3.4; an IPv6 with dashes for colons).
fn pod_ip(podname: &str) -> Option<IpAddr> {
    let text = if podname.matches('-').count() == 3 && !podname.contains("--") {
        podname.replace('-', ".")
    } else {
        podname.replace('-', ":")
    };
    IpAddr::from_str(&text).ok()
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa.`, nibbles under ip6.arpa) stands for.
fn reverse_ip(labels: &[String]) -> Option<IpAddr> {
    let n = labels.len();
    if n == 6 && labels[4] == "in-addr" && labels[5] == "arpa" {
        let mut octets = [0u8; 4];
        for (i, l) in labels[..4].iter().rev().enumerate() {
            octets[i] = l.parse().ok()?;
        }
        return Some(IpAddr::from(octets));
    }
    if n == 34 && labels[32] == "ip6" && labels[33] == "arpa" {
        let mut bytes = [0u8; 16];
        for (i, l) in labels[..32].iter().rev().enumerate() {
            let nibble = u8::from_str_radix(l, 16).ok().filter(|_| l.len() == 1)?;
            bytes[i / 2] |= if i % 2 == 0 { nibble << 4 } else { nibble };
        }
        return Some(IpAddr::from(bytes));
    }
    None
}

fn is_reverse(labels: &[String]) -> bool {
    let n = labels.len();
    n >= 2 && labels[n - 1] == "arpa" && (labels[n - 2] == "in-addr" || labels[n - 2] == "ip6")
}

/// A parsed question under the zone (upstream's recordRequest).
#[derive(Debug, Default, PartialEq)]
struct Request {
    pod: bool,
    namespace: String,
    service: String,
    endpoint: String,
    port: String,
    protocol: String,
}

impl Index {
    /// An index of the given objects for `domain` (e.g. `cluster.local`).
    pub fn build<'a>(
        domain: &str,
        ttl: u32,
        synced: bool,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        namespaces: impl IntoIterator<Item = &'a Namespace>,
    ) -> Index {
        let zone: Vec<String> = domain
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
            .map(|l| l.to_ascii_lowercase())
            .collect();
        let zone_name = name_from(&zone).unwrap_or_else(Name::root);
        let mut index = Index {
            zone,
            zone_name,
            ttl,
            synced,
            serial: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(0),
            namespaces: namespaces
                .into_iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect(),
            services: HashMap::new(),
            slices: HashMap::new(),
        };
        for s in services {
            let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) else {
                continue;
            };
            let spec = s.spec.clone().unwrap_or_default();
            let kind = if spec.type_.as_deref() == Some("ExternalName") {
                Kind::External(spec.external_name.clone().unwrap_or_default())
            } else if spec.cluster_ip.as_deref() == Some("None") {
                Kind::Headless
            } else {
                let ips = match &spec.cluster_ips {
                    Some(ips) if !ips.is_empty() => ips.clone(),
                    _ => spec.cluster_ip.iter().cloned().collect(),
                };
                Kind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect())
            };
            let mut ports: Vec<Port> = spec
                .ports
                .iter()
                .flatten()
                .map(|p| port_of(p.name.as_ref(), p.protocol.as_ref(), Some(p.port)))
                .collect();
            if ports.is_empty() {
                ports.push(port_of(None, None, None));
            }
            index
                .services
                .insert((ns.clone(), name.clone()), Svc { kind, ports });
        }
        for es in slices {
            let (Some(ns), Some(service)) = (
                &es.metadata.namespace,
                es.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL)),
            ) else {
                continue;
            };
            if es.address_type == "FQDN" {
                continue;
            }
            let mut ports: Vec<Port> = es
                .ports
                .iter()
                .flatten()
                .map(|p| port_of(p.name.as_ref(), p.protocol.as_ref(), p.port))
                .collect();
            if ports.is_empty() {
                ports.push(port_of(None, None, None));
            }
            let mut addresses = Vec::new();
            for e in &es.endpoints {
                // Ready unset counts as ready (upstream's endpointsliceReady).
                let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for a in &e.addresses {
                    if let Ok(ip) = a.parse() {
                        addresses.push(Address {
                            ip,
                            hostname: e.hostname.clone(),
                        });
                    }
                }
            }
            index
                .slices
                .entry((ns.clone(), service.clone()))
                .or_default()
                .push(Slice { ports, addresses });
        }
        index
    }

    /// The cluster domain, fully qualified.
    pub fn zone_name(&self) -> &Name {
        &self.zone_name
    }

    /// How many Services the index holds.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The zone's SOA record (plugin.SOA: ns.dns.<zone>, hostmaster.<zone>, TTL min(ttl, 300)).
    pub fn soa(&self) -> Vec<Record> {
        let mut ns = vec!["ns".to_string(), "dns".to_string()];
        ns.extend(self.zone.iter().cloned());
        let mut mbox = vec!["hostmaster".to_string()];
        mbox.extend(self.zone.iter().cloned());
        let (Some(ns), Some(mbox)) = (name_from(&ns), name_from(&mbox)) else {
            return Vec::new();
        };
        let soa = SOA::new(ns, mbox, self.serial, 7200, 1800, 86400, self.ttl);
        vec![Record::from_rdata(
            self.zone_name.clone(),
            self.ttl.min(300),
            RData::SOA(soa),
        )]
    }

    /// The labels of `name` below the zone, or None when `name` is outside it.
    fn relative<'a>(&self, labels: &'a [String]) -> Option<&'a [String]> {
        let n = labels.len();
        let z = self.zone.len();
        (n >= z && labels[n - z..] == self.zone[..]).then(|| &labels[..n - z])
    }

    /// Answers `qtype` for `qname` (the name as asked, kept as the owner of the answers).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Outcome {
        let labels = labels_of(qname);
        let Some(base) = self.relative(&labels) else {
            if qtype == RecordType::PTR && is_reverse(&labels) {
                return self.reverse(qname, &labels);
            }
            return Outcome::Forward;
        };
        let mut reply = Reply::default();
        let result = match qtype {
            RecordType::A | RecordType::AAAA => {
                self.addresses(qname, base, qtype, 0, &mut reply.answers, &mut reply.chase)
            }
            RecordType::CNAME => self.cnames(qname, base, &mut reply.answers),
            RecordType::SRV => self.srv(qname, base, &mut reply),
            RecordType::SOA if base.is_empty() => {
                reply.answers = self.soa();
                Ok(())
            }
            // SOA below the apex, and NS (CoreDNS answers NS at the apex with its own Service;
            // rkube's clients never ask): NODATA, as CoreDNS's SOA case does.
            RecordType::SOA => Ok(()),
            // Every other type: does the name exist? (CoreDNS's "fake A lookup".)
            _ => self.find(base).map(|_| ()),
        };
        match result {
            Err(NameError) => {
                reply = Reply {
                    rcode: if self.synced {
                        ResponseCode::NXDomain
                    } else {
                        ResponseCode::ServFail
                    },
                    soa: self.soa(),
                    ..Default::default()
                };
            }
            Ok(()) if reply.answers.is_empty() && reply.chase.is_none() => {
                // NODATA: the name exists, no records of this type.
                reply.soa = self.soa();
                reply.additionals.clear();
            }
            Ok(()) => {}
        }
        Outcome::Reply(reply)
    }

    /// upstream's parseRequest: `[endpoint|_port._proto].service.namespace.(svc|pod)`.
    fn parse(base: &[String]) -> Result<Option<Request>, NameError> {
        // The apex, `svc.<zone>` and `pod.<zone>` exist without records.
        if base.is_empty() || (base.len() == 1 && (base[0] == "svc" || base[0] == "pod")) {
            return Ok(None);
        }
        let mut segs = base.iter().rev();
        let mut r = Request::default();
        match segs.next().map(String::as_str) {
            Some("svc") => {}
            Some("pod") => r.pod = true,
            _ => return Err(NameError),
        }
        r.namespace = segs.next().cloned().unwrap_or_default();
        r.service = segs.next().cloned().unwrap_or_default();
        let rest: Vec<&String> = segs.collect();
        match rest.len() {
            0 => {}
            1 => r.endpoint = rest[0].clone(),
            2 => {
                r.protocol = rest[0].trim_start_matches('_').to_string();
                r.port = rest[1].trim_start_matches('_').to_string();
            }
            _ => return Err(NameError),
        }
        Ok(Some(r))
    }

    /// What the name resolves to (upstream's Records → findServices / findPods); Ok(empty) is a
    /// name that exists without records.
    fn find(&self, base: &[String]) -> Result<Vec<Item>, NameError> {
        let Some(r) = Self::parse(base)? else {
            return Ok(Vec::new());
        };
        if !self.namespaces.contains(&r.namespace) {
            return Err(NameError);
        }
        if r.service.is_empty() {
            return Ok(Vec::new());
        }
        if r.pod {
            if !r.endpoint.is_empty() || !r.port.is_empty() {
                return Err(NameError);
            }
            let ip = pod_ip(&r.service).ok_or(NameError)?;
            return Ok(vec![Item {
                host: Host::Ip(ip),
                port: -1,
                key: vec![r.service.clone(), r.namespace.clone(), "pod".into()],
            }]);
        }
        let Some(svc) = self.services.get(&(r.namespace.clone(), r.service.clone())) else {
            return Err(NameError);
        };
        let matches = |p: &Port| {
            (r.port.is_empty() || r.port.eq_ignore_ascii_case(&p.name))
                && (r.protocol.is_empty() || r.protocol.eq_ignore_ascii_case(&p.protocol))
        };
        let svc_key = vec![r.service.clone(), r.namespace.clone(), "svc".to_string()];
        if let Kind::External(target) = &svc.kind {
            // No endpoints, no port pseudo-names under an ExternalName Service.
            if !r.endpoint.is_empty() || !r.port.is_empty() || !r.protocol.is_empty() {
                return Err(NameError);
            }
            if target.is_empty() || target.parse::<IpAddr>().is_ok() {
                return Err(NameError);
            }
            return Ok(vec![Item {
                host: Host::Name(target.clone()),
                port: 0,
                key: svc_key,
            }]);
        }
        let mut found = false;
        let mut items = Vec::new();
        if svc.kind == Kind::Headless || !r.endpoint.is_empty() {
            // The endpoints: a headless Service's addresses, or one endpoint by name.
            for slice in self
                .slices
                .get(&(r.namespace.clone(), r.service.clone()))
                .into_iter()
                .flatten()
            {
                for a in &slice.addresses {
                    let host = endpoint_hostname(a);
                    if !r.endpoint.is_empty() && r.endpoint != host {
                        continue;
                    }
                    for p in slice.ports.iter().filter(|p| matches(p)) {
                        found = true;
                        let mut key = vec![host.clone()];
                        key.extend(svc_key.iter().cloned());
                        items.push(Item {
                            host: Host::Ip(a.ip),
                            port: p.port,
                            key,
                        });
                    }
                }
            }
        } else if let Kind::ClusterIp(ips) = &svc.kind {
            for p in svc.ports.iter().filter(|p| matches(p)) {
                found = true;
                for ip in ips {
                    items.push(Item {
                        host: Host::Ip(*ip),
                        port: p.port,
                        key: svc_key.clone(),
                    });
                }
            }
        }
        if found {
            Ok(items)
        } else {
            Err(NameError)
        }
    }

    fn record(&self, owner: &Name, rdata: RData) -> Record {
        Record::from_rdata(owner.clone(), self.ttl, rdata)
    }

    /// A/AAAA answers (backend_lookup.go `A`): addresses of the matching family, CNAMEs of
    /// ExternalName Services followed inside the zone or left to the server (`chase`) outside it.
    fn addresses(
        &self,
        owner: &Name,
        base: &[String],
        qtype: RecordType,
        depth: usize,
        out: &mut Vec<Record>,
        chase: &mut Option<Name>,
    ) -> Result<(), NameError> {
        let items = self.find(base)?;
        let mut seen = HashSet::new();
        for item in items {
            match item.host {
                Host::Ip(IpAddr::V4(v4)) if qtype == RecordType::A => {
                    if seen.insert(IpAddr::V4(v4)) {
                        out.push(self.record(owner, RData::A(A(v4))));
                    }
                }
                Host::Ip(IpAddr::V6(v6)) if qtype == RecordType::AAAA => {
                    if seen.insert(IpAddr::V6(v6)) {
                        out.push(self.record(owner, RData::AAAA(AAAA(v6))));
                    }
                }
                Host::Ip(_) => {}
                Host::Name(target) => {
                    let Ok(mut target) = Name::from_ascii(&target) else {
                        continue;
                    };
                    target.set_fqdn(true);
                    // x CNAME x is a loop.
                    if target.eq_case(owner) || labels_of(&target) == labels_of(owner) {
                        continue;
                    }
                    let cname = self.record(owner, RData::CNAME(CNAME(target.clone())));
                    let target_labels = labels_of(&target);
                    match self.relative(&target_labels) {
                        Some(inner) if depth < MAX_CNAME_CHAIN => {
                            let mut next = Vec::new();
                            if self
                                .addresses(&target, inner, qtype, depth + 1, &mut next, chase)
                                .is_ok()
                                && (!next.is_empty() || chase.is_some())
                            {
                                out.push(cname);
                                out.extend(next);
                            }
                        }
                        Some(_) => {}
                        None => {
                            out.push(cname);
                            *chase = Some(target);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// CNAME answers: the ExternalName of the Service.
    fn cnames(
        &self,
        owner: &Name,
        base: &[String],
        out: &mut Vec<Record>,
    ) -> Result<(), NameError> {
        for item in self.find(base)? {
            if let Host::Name(target) = item.host {
                if let Ok(mut target) = Name::from_ascii(&target) {
                    target.set_fqdn(true);
                    out.push(self.record(owner, RData::CNAME(CNAME(target))));
                }
            }
        }
        Ok(())
    }

    /// SRV answers (backend_lookup.go `SRV`): priority 0, weights splitting 100 evenly, targets the
    /// Service's or each endpoint's name, whose addresses go in the additional section.
    fn srv(&self, owner: &Name, base: &[String], reply: &mut Reply) -> Result<(), NameError> {
        let items = self.find(base)?;
        let count = items.len().max(1) as u64;
        let weight = u16::try_from((100 / count).max(1)).unwrap_or(1);
        let mut seen_srv = HashSet::new();
        let mut seen_extra = HashSet::new();
        for item in items {
            if item.port < 0 {
                continue;
            }
            let port = u16::try_from(item.port).unwrap_or(0);
            match item.host {
                Host::Name(target) => {
                    let Ok(mut target) = Name::from_ascii(&target) else {
                        continue;
                    };
                    target.set_fqdn(true);
                    reply.answers.push(
                        self.record(owner, RData::SRV(SRV::new(0, weight, port, target.clone()))),
                    );
                }
                Host::Ip(ip) => {
                    let mut labels = item.key.clone();
                    labels.extend(self.zone.iter().cloned());
                    let Some(target) = name_from(&labels) else {
                        continue;
                    };
                    if seen_srv.insert((labels.clone(), port)) {
                        reply.answers.push(
                            self.record(
                                owner,
                                RData::SRV(SRV::new(0, weight, port, target.clone())),
                            ),
                        );
                    }
                    if seen_extra.insert((labels, ip)) {
                        let rdata = match ip {
                            IpAddr::V4(v4) => RData::A(A(v4)),
                            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                        };
                        reply.additionals.push(self.record(&target, rdata));
                    }
                }
            }
        }
        Ok(())
    }

    /// PTR of a ClusterIP (the Service's name) or else of endpoint addresses (each endpoint's
    /// name); unknown addresses go on to the forwarder (kubeadm's `fallthrough in-addr.arpa
    /// ip6.arpa`).
    fn reverse(&self, qname: &Name, labels: &[String]) -> Outcome {
        let Some(ip) = reverse_ip(labels) else {
            return Outcome::Forward;
        };
        let mut targets: Vec<Vec<String>> = Vec::new();
        // Sorted for a stable answer when (wrongly) two Services share an address.
        let mut services: Vec<_> = self.services.iter().collect();
        services.sort_by(|a, b| a.0.cmp(b.0));
        if let Some(((ns, name), _)) = services
            .iter()
            .find(|(_, s)| matches!(&s.kind, Kind::ClusterIp(ips) if ips.contains(&ip)))
        {
            targets.push(vec![name.clone(), ns.clone(), "svc".into()]);
        } else {
            let mut keys: Vec<_> = self.slices.keys().collect();
            keys.sort();
            for key in keys {
                for slice in self.slices.get(key).into_iter().flatten() {
                    for a in slice.addresses.iter().filter(|a| a.ip == ip) {
                        let t = vec![
                            endpoint_hostname(a),
                            key.1.clone(),
                            key.0.clone(),
                            "svc".into(),
                        ];
                        if !targets.contains(&t) {
                            targets.push(t);
                        }
                    }
                }
            }
        }
        if targets.is_empty() {
            return Outcome::Forward;
        }
        let mut reply = Reply::default();
        for mut t in targets {
            t.extend(self.zone.iter().cloned());
            if let Some(target) = name_from(&t) {
                reply
                    .answers
                    .push(self.record(qname, RData::PTR(PTR(target))));
            }
        }
        Outcome::Reply(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("service fixture")
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).expect("slice fixture")
    }

    fn ns(name: &str) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace fixture")
    }

    fn index() -> Index {
        let services = [
            svc(json!({"metadata": {"name": "web", "namespace": "prod"},
                "spec": {"clusterIP": "10.96.1.10", "clusterIPs": ["10.96.1.10"],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                   {"name": "dns", "port": 53, "protocol": "UDP"}]}})),
            svc(json!({"metadata": {"name": "db", "namespace": "prod"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
            svc(json!({"metadata": {"name": "empty", "namespace": "prod"},
                "spec": {"clusterIP": "None"}})),
            svc(json!({"metadata": {"name": "ext", "namespace": "prod"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}})),
            svc(json!({"metadata": {"name": "alias", "namespace": "prod"},
                "spec": {"type": "ExternalName", "externalName": "web.prod.svc.cluster.local"}})),
        ];
        let slices = [
            slice(json!({"metadata": {"name": "db-abc", "namespace": "prod",
                                      "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.88.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                    {"addresses": ["10.88.0.6"], "conditions": {}},
                    {"addresses": ["10.88.0.7"], "conditions": {"ready": false}}]})),
            slice(json!({"metadata": {"name": "web-xyz", "namespace": "prod",
                                      "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.88.0.9"], "conditions": {"ready": true}}]})),
        ];
        let namespaces = [ns("prod"), ns("default")];
        Index::build(
            "cluster.local",
            DEFAULT_TTL,
            true,
            &services,
            &slices,
            &namespaces,
        )
    }

    fn ask(index: &Index, name: &str, qtype: RecordType) -> Reply {
        let name = Name::from_ascii(name).expect("test name");
        match index.lookup(&name, qtype) {
            Outcome::Reply(r) => r,
            Outcome::Forward => panic!("{name} was forwarded"),
        }
    }

    fn rdata(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn cluster_ip_service_a() {
        let r = ask(&index(), "web.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NoError);
        assert_eq!(rdata(&r.answers), ["10.96.1.10"]);
        assert_eq!(r.answers[0].ttl, 5);
        assert!(r.soa.is_empty());
        // Case-insensitive, owner kept as asked.
        let r = ask(&index(), "WEB.Prod.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&r.answers), ["10.96.1.10"]);
        assert_eq!(r.answers[0].name.to_string(), "WEB.Prod.svc.cluster.local.");
    }

    #[test]
    fn aaaa_of_ipv4_service_is_nodata_with_soa() {
        let r = ask(&index(), "web.prod.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(r.rcode, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(r.soa.len(), 1);
        assert_eq!(
            r.soa[0].data.to_string(),
            format!(
                "ns.dns.cluster.local. hostmaster.cluster.local. {} 7200 1800 86400 5",
                index().serial
            )
        );
    }

    #[test]
    fn headless_service_answers_ready_endpoints() {
        let r = ask(&index(), "db.prod.svc.cluster.local.", RecordType::A);
        let mut ips = rdata(&r.answers);
        ips.sort();
        assert_eq!(
            ips,
            ["10.88.0.5", "10.88.0.6"],
            "not-ready 10.88.0.7 left out"
        );
        let r = ask(&index(), "db-0.db.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&r.answers), ["10.88.0.5"]);
        let r = ask(
            &index(),
            "10-88-0-6.db.prod.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(rdata(&r.answers), ["10.88.0.6"]);
        let r = ask(&index(), "db-9.db.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NXDomain);
        // A headless Service without ready endpoints is NXDOMAIN, as CoreDNS answers.
        let r = ask(&index(), "empty.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn srv_for_named_ports() {
        let r = ask(
            &index(),
            "_http._tcp.web.prod.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(rdata(&r.answers), ["0 100 80 web.prod.svc.cluster.local."]);
        assert_eq!(rdata(&r.additionals), ["10.96.1.10"]);
        assert_eq!(
            r.additionals[0].name.to_string(),
            "web.prod.svc.cluster.local."
        );
        let r = ask(
            &index(),
            "_dns._udp.web.prod.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(rdata(&r.answers), ["0 100 53 web.prod.svc.cluster.local."]);
        // Wrong protocol: no such port name.
        let r = ask(
            &index(),
            "_dns._tcp.web.prod.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(r.rcode, ResponseCode::NXDomain);
        // The bare Service name: one SRV per port.
        let r = ask(&index(), "web.prod.svc.cluster.local.", RecordType::SRV);
        let mut srv = rdata(&r.answers);
        srv.sort();
        assert_eq!(
            srv,
            [
                "0 50 53 web.prod.svc.cluster.local.",
                "0 50 80 web.prod.svc.cluster.local."
            ]
        );
        assert_eq!(rdata(&r.additionals), ["10.96.1.10"]);
        // Headless: one target per endpoint.
        let r = ask(
            &index(),
            "_pg._tcp.db.prod.svc.cluster.local.",
            RecordType::SRV,
        );
        let mut srv = rdata(&r.answers);
        srv.sort();
        assert_eq!(
            srv,
            [
                "0 50 5432 10-88-0-6.db.prod.svc.cluster.local.",
                "0 50 5432 db-0.db.prod.svc.cluster.local."
            ]
        );
        assert_eq!(r.additionals.len(), 2);
    }

    #[test]
    fn external_name_is_a_cname() {
        let r = ask(&index(), "ext.prod.svc.cluster.local.", RecordType::CNAME);
        assert_eq!(rdata(&r.answers), ["example.com."]);
        // A: the CNAME, and the target is left to the forwarder.
        let r = ask(&index(), "ext.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&r.answers), ["example.com."]);
        assert_eq!(
            r.chase.map(|n| n.to_string()).as_deref(),
            Some("example.com.")
        );
        // A CNAME inside the zone is followed.
        let r = ask(&index(), "alias.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(
            rdata(&r.answers),
            ["web.prod.svc.cluster.local.", "10.96.1.10"]
        );
        assert!(r.chase.is_none());
        let r = ask(
            &index(),
            "_http._tcp.ext.prod.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(r.rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn unknown_names_are_nxdomain_with_soa() {
        for name in [
            "nope.prod.svc.cluster.local.",
            "web.nope.svc.cluster.local.",
            "web.prod.nope.cluster.local.",
            "a.b.c.web.prod.svc.cluster.local.",
            "nope.svc.cluster.local.",
        ] {
            let r = ask(&index(), name, RecordType::A);
            assert_eq!(r.rcode, ResponseCode::NXDomain, "{name}");
            assert_eq!(r.soa.len(), 1, "{name}");
            assert!(r.answers.is_empty(), "{name}");
        }
        // Existing names without records of the type: NODATA.
        for name in [
            "cluster.local.",
            "svc.cluster.local.",
            "prod.svc.cluster.local.",
        ] {
            let r = ask(&index(), name, RecordType::A);
            assert_eq!(r.rcode, ResponseCode::NoError, "{name}");
            assert!(r.answers.is_empty(), "{name}");
            assert_eq!(r.soa.len(), 1, "{name}");
        }
        // Other types: NXDOMAIN or NODATA by whether the name exists.
        let r = ask(&index(), "web.prod.svc.cluster.local.", RecordType::TXT);
        assert_eq!((r.rcode, r.answers.len()), (ResponseCode::NoError, 0));
        let r = ask(&index(), "nope.prod.svc.cluster.local.", RecordType::MX);
        assert_eq!(r.rcode, ResponseCode::NXDomain);
        // The apex SOA.
        let r = ask(&index(), "cluster.local.", RecordType::SOA);
        assert_eq!(r.answers.len(), 1);
    }

    #[test]
    fn before_sync_a_missing_name_is_servfail() {
        let mut idx = index();
        idx.synced = false;
        let r = ask(&idx, "nope.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::ServFail);
    }

    #[test]
    fn pod_records() {
        let r = ask(
            &index(),
            "10-88-0-42.prod.pod.cluster.local.",
            RecordType::A,
        );
        assert_eq!(rdata(&r.answers), ["10.88.0.42"]);
        let r = ask(
            &index(),
            "10-88-0-42.nope.pod.cluster.local.",
            RecordType::A,
        );
        assert_eq!(r.rcode, ResponseCode::NXDomain, "unknown namespace");
        let r = ask(&index(), "not-an-ip.prod.pod.cluster.local.", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NXDomain);
    }

    #[test]
    fn reverse_lookups() {
        let r = ask(&index(), "10.1.96.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdata(&r.answers), ["web.prod.svc.cluster.local."]);
        let r = ask(&index(), "5.0.88.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdata(&r.answers), ["db-0.db.prod.svc.cluster.local."]);
        let unknown = Name::from_ascii("1.2.0.192.in-addr.arpa.").expect("name");
        assert!(matches!(
            index().lookup(&unknown, RecordType::PTR),
            Outcome::Forward
        ));
    }

    #[test]
    fn outside_names_are_forwarded() {
        let name = Name::from_ascii("example.com.").expect("name");
        assert!(matches!(
            index().lookup(&name, RecordType::A),
            Outcome::Forward
        ));
        // A suffix that only looks like the zone is not in it.
        let name = Name::from_ascii("xcluster.local.").expect("name");
        assert!(matches!(
            index().lookup(&name, RecordType::A),
            Outcome::Forward
        ));
    }

    #[test]
    fn reverse_name_parsing() {
        let l = |s: &str| labels_of(&Name::from_ascii(s).expect("name"));
        assert_eq!(
            reverse_ip(&l("4.3.2.1.in-addr.arpa.")),
            Some("1.2.3.4".parse().expect("ip"))
        );
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
        assert_eq!(reverse_ip(&l(v6)), Some("2001:db8::1".parse().expect("ip")));
        assert_eq!(reverse_ip(&l("300.3.2.1.in-addr.arpa.")), None);
        assert_eq!(pod_ip("fd00--1"), Some("fd00::1".parse().expect("ip")));
    }
}
