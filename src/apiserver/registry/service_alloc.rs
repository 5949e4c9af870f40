//! Service ClusterIP and NodePort allocation, exact as upstream v1.33 (`pkg/registry/core/service/
//! ipallocator`, `portallocator`, `storage/alloc.go`).
//!
//! Why a module of its own: a Service's cluster IP and node ports must be unique cluster-wide, and
//! uniqueness must hold when two creates race — on one apiserver or on two apiservers sharing one etcd.
//! A snapshot of the cache cannot give that; storage can:
//!
//! - **Cluster IPs are `networking.k8s.io/v1` IPAddress objects** named by the address (upstream's
//!   MultiCIDRServiceAllocator, GA in 1.33). Allocating = creating `IPAddress/<ip>` with the Service as
//!   its `parentRef`; the storage create fails when the key exists, so of two creates of one address
//!   (from any apiserver on the same storage) exactly one wins, and the loser tries the next address.
//!   Releasing = deleting the object. A random pick starts in the upper part of the range; the lower
//!   part (`calculateRangeOffset`, 16..256 addresses) is left for static requests and used last.
//! - **Node ports are a bitmap** persisted at `/registry/ranges/servicenodeports` (upstream's
//!   RangeAllocation, same key), changed only by a write guarded by the key's mod revision
//!   (compare-and-swap): a concurrent change makes the write fail and the operation is redone on the
//!   fresh bitmap. All the ports of one Service are taken in one write.
//!
//! The store drives this through [`Allocations`] (the strategy's hook): allocate before validation and
//! the write, then commit (deferred releases happen) when the write succeeded or revert (what was
//! allocated is released) when anything failed — upstream's `beginCreate`/`beginUpdate` transactions.
//! [`repair`] runs at start-up: Services stored before this allocator existed get their IPAddress
//! objects and their node ports marked in the bitmap.
//!
//! Where to start: [`ServiceAllocations`] (the hooks), then [`Cidr`] and [`PortBitmap`] (the pure pick
//! logic, unit-tested below).

use std::net::IpAddr;

use async_trait::async_trait;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};

use crate::apiserver::registry::store::{DeleteOptions, Registry};
use crate::apiserver::registry::strategy::{AllocationTxn, Allocations};
use crate::apiserver::status::{ApiError, ApiResult, Cause};
use crate::storage::StoreError;

/// Upstream's RangeAllocation key for node ports.
pub const NODE_PORTS_KEY: &str = "/registry/ranges/servicenodeports";
/// Upstream's `ipallocator.ControllerName`, the IPAddress objects' `managed-by` label.
pub const IP_ALLOCATOR: &str = "ipallocator.k8s.io";
/// The default ServiceCIDR's name (upstream's `DefaultServiceCIDRName`).
pub const DEFAULT_SERVICE_CIDR: &str = "kubernetes";

/// `--service-cluster-ip-range` and `--service-node-port-range`.
#[derive(Clone, Debug)]
pub struct ServiceRanges {
    pub cidr: Cidr,
    pub node_ports: PortRange,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cidr: Cidr {
                base: u128::from(u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0))),
                prefix: 16,
                v6: false,
            },
            node_ports: PortRange {
                base: 30000,
                size: 2768,
            },
        }
    }
}

/// An IP prefix, as numbers (IPv4 in the low 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: u128,
    prefix: u32,
    v6: bool,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, bits) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {s:?}"))?;
        let ip: IpAddr = ip.parse().map_err(|_| format!("invalid CIDR {s:?}"))?;
        let prefix: u32 = bits.parse().map_err(|_| format!("invalid CIDR {s:?}"))?;
        let (v6, width) = (ip.is_ipv6(), if ip.is_ipv6() { 128 } else { 32 });
        if prefix > width || (v6 && prefix < 64) || (!v6 && prefix > 30) {
            return Err(format!("invalid service CIDR {s:?}"));
        }
        let host_bits = width - prefix;
        let mask = if host_bits >= 128 {
            0
        } else {
            !((1u128 << host_bits) - 1)
        };
        Ok(Cidr {
            base: to_u128(ip) & mask,
            prefix,
            v6,
        })
    }
    fn host_bits(&self) -> u32 {
        (if self.v6 { 128 } else { 32 }) - self.prefix
    }
    /// The number of addresses in the prefix (capped for huge IPv6 ranges).
    fn range_size(&self) -> u128 {
        1u128 << self.host_bits().min(64)
    }
    /// The first address handed out (the network address never is).
    pub fn first(&self) -> u128 {
        self.base + 1
    }
    /// The last address handed out (IPv4's broadcast address never is).
    pub fn last(&self) -> u128 {
        let broadcast = self.base + (self.range_size() - 1);
        if self.v6 {
            broadcast
        } else {
            broadcast - 1
        }
    }
    /// Upstream's `PrefixContainsIP`: in the prefix, not the network address, not IPv4's broadcast.
    pub fn contains_host(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.v6 && (self.first()..=self.last()).contains(&to_u128(ip))
    }
    /// Upstream's `calculateRangeOffset`: min(max(16, size/16), 256) addresses at the bottom of the
    /// range are kept for static allocation (KEP-3070).
    pub fn range_offset(&self) -> u128 {
        let size = self.range_size();
        if size <= 16 {
            0
        } else {
            (size / 16).clamp(16, 256)
        }
    }
    pub fn addr(&self, n: u128) -> IpAddr {
        if self.v6 {
            IpAddr::V6(std::net::Ipv6Addr::from(n))
        } else {
            IpAddr::V4(std::net::Ipv4Addr::from(n as u32))
        }
    }
    pub fn family(&self) -> &'static str {
        if self.v6 {
            "IPv6"
        } else {
            "IPv4"
        }
    }
    /// Every address a random allocation may get, in the order it tries them: the upper subrange from
    /// `upper_start` (wrapping), then the lower one from `lower_start` (upstream's
    /// `allocateNextService`: random offsets, each subrange scanned once).
    pub fn candidates(&self, upper_start: u128, lower_start: u128) -> impl Iterator<Item = u128> {
        let offset = self.range_offset();
        let (first, last) = (self.first(), self.last());
        let upper_first = first + offset;
        let upper_len = (last + 1).saturating_sub(upper_first);
        let upper = (0..upper_len).map(move |i| upper_first + (upper_start + i) % upper_len);
        let lower = (0..offset).map(move |i| first + (lower_start + i) % offset);
        upper.chain(lower)
    }
    /// Random starts for [`Cidr::candidates`].
    pub fn random_starts(&self) -> (u128, u128) {
        let mut rng = rand::rng();
        let offset = self.range_offset();
        let upper_len = (self.last() + 1)
            .saturating_sub(self.first() + offset)
            .max(1);
        (
            rng.random_range(0..upper_len),
            rng.random_range(0..offset.max(1)),
        )
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr(self.base), self.prefix)
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A node port range, `30000-32767`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub base: i64,
    pub size: i64,
}

impl PortRange {
    /// Upstream's `net.ParsePortRange`: `a-b` or `a+n` (a single port is a range of one).
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let bad = || format!("invalid port range {s:?}");
        let (base, size) = if let Some((a, b)) = s.split_once('-') {
            let (a, b): (i64, i64) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            (a, b - a + 1)
        } else if let Some((a, n)) = s.split_once('+') {
            let (a, n): (i64, i64) = (
                a.trim().parse().map_err(|_| bad())?,
                n.trim().parse().map_err(|_| bad())?,
            );
            (a, n + 1)
        } else {
            (s.trim().parse().map_err(|_| bad())?, 1)
        };
        if !(1..=65535).contains(&base) || size < 1 || base + size - 1 > 65535 {
            return Err(bad());
        }
        Ok(PortRange { base, size })
    }
    pub fn contains(&self, port: i64) -> bool {
        (self.base..self.base + self.size).contains(&port)
    }
    /// Upstream's port `calculateRangeOffset`: min(max(16, size/32), 128).
    pub fn range_offset(&self) -> i64 {
        if self.size <= 16 {
            0
        } else {
            (self.size / 32).clamp(16, 128)
        }
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.base, self.base + self.size - 1)
    }
}

/// Why a port could not be taken (upstream's portallocator errors; the texts are its messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    NotInRange(PortRange),
    Allocated,
    Full,
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::NotInRange(r) => write!(
                f,
                "provided port is not in the valid range. The range of valid ports is {r}"
            ),
            PortError::Allocated => write!(f, "provided port is already allocated"),
            PortError::Full => write!(f, "range is full"),
        }
    }
}

/// The node port bitmap: bit `i` is port `base + i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBitmap {
    pub range: PortRange,
    bits: Vec<bool>,
}

impl PortBitmap {
    pub fn new(range: PortRange) -> Self {
        PortBitmap {
            range,
            bits: vec![false; range.size as usize],
        }
    }
    pub fn has(&self, port: i64) -> bool {
        self.range.contains(port) && self.bits[(port - self.range.base) as usize]
    }
    pub fn allocate(&mut self, port: i64) -> Result<(), PortError> {
        if !self.range.contains(port) {
            return Err(PortError::NotInRange(self.range));
        }
        let bit = &mut self.bits[(port - self.range.base) as usize];
        if *bit {
            return Err(PortError::Allocated);
        }
        *bit = true;
        Ok(())
    }
    /// Releasing a free port or one out of range is a no-op, as upstream.
    pub fn release(&mut self, port: i64) {
        if self.range.contains(port) {
            self.bits[(port - self.range.base) as usize] = false;
        }
    }
    /// Upstream's `randomScanStrategyWithOffset`: a random start in the upper subrange, scanning
    /// forward (wrapping); when that is full, the same in the lower one.
    pub fn allocate_next_from(&mut self, upper_start: i64, lower_start: i64) -> Option<i64> {
        let (max, offset) = (self.range.size, self.range.range_offset());
        let upper = max - offset;
        let upper_scan = (0..upper).map(|i| offset + (upper_start + i) % upper);
        let lower_scan = (0..offset).map(|i| (lower_start + i) % offset);
        let at = upper_scan
            .chain(lower_scan)
            .find(|&i| !self.bits[i as usize])?;
        self.bits[at as usize] = true;
        Some(self.range.base + at)
    }
    pub fn allocate_next(&mut self) -> Result<i64, PortError> {
        let mut rng = rand::rng();
        let (max, offset) = (self.range.size, self.range.range_offset());
        let upper = rng.random_range(0..(max - offset).max(1));
        let lower = rng.random_range(0..offset.max(1));
        self.allocate_next_from(upper, lower).ok_or(PortError::Full)
    }
    pub fn used(&self) -> Vec<i64> {
        (0..self.range.size)
            .filter(|&i| self.bits[i as usize])
            .map(|i| self.range.base + i)
            .collect()
    }
    /// Upstream's snapshot data: the big-endian bytes of the big.Int whose bit `i` is offset `i`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = self.bits.len().div_ceil(8);
        let mut out = vec![0u8; len];
        for (i, b) in self.bits.iter().enumerate() {
            if *b {
                out[len - 1 - i / 8] |= 1 << (i % 8);
            }
        }
        let first = out.iter().position(|b| *b != 0).unwrap_or(out.len());
        out.split_off(first)
    }
    pub fn from_bytes(range: PortRange, data: &[u8]) -> Self {
        let mut bm = PortBitmap::new(range);
        for (k, byte) in data.iter().rev().enumerate() {
            for bit in 0..8 {
                let i = k * 8 + bit;
                if byte & (1 << bit) != 0 && i < bm.bits.len() {
                    bm.bits[i] = true;
                }
            }
        }
        bm
    }
}

/// The stored RangeAllocation: `{range, data}` as upstream's (data base64 as JSON encodes bytes).
fn encode_range(bm: &PortBitmap) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(bm.to_bytes());
    json!({"kind": "RangeAllocation", "apiVersion": "v1", "metadata": {"name": ""},
           "range": bm.range.to_string(), "data": data})
    .to_string()
    .into_bytes()
}

/// The stored bitmap, or an empty one when there is none or it was for another range (the
/// [`repair`] at start-up marks the Services' ports again).
fn decode_range(range: PortRange, value: &[u8]) -> PortBitmap {
    let v: Value = serde_json::from_slice(value).unwrap_or(Value::Null);
    if v.get("range").and_then(Value::as_str) != Some(range.to_string().as_str()) {
        return PortBitmap::new(range);
    }
    let data = v
        .get("data")
        .and_then(Value::as_str)
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .unwrap_or_default();
    PortBitmap::from_bytes(range, &data)
}

/// Changes the stored bitmap with `f`, compare-and-swap: a concurrent writer makes the guarded write
/// fail and `f` runs again on the bitmap it wrote. `f`'s error leaves storage untouched.
async fn update_ports<T>(
    registry: &Registry,
    mut f: impl FnMut(&mut PortBitmap) -> ApiResult<T>,
) -> ApiResult<T> {
    let range = registry.service_ranges.node_ports;
    for _ in 0..1000 {
        let (kv, _) = registry.store.get(NODE_PORTS_KEY).await?;
        let mut bm = match &kv {
            Some(kv) => decode_range(range, &kv.value),
            None => PortBitmap::new(range),
        };
        let before = bm.clone();
        let out = f(&mut bm)?;
        if bm == before && kv.is_some() {
            return Ok(out);
        }
        let written = match &kv {
            Some(kv) => {
                registry
                    .store
                    .update(NODE_PORTS_KEY, encode_range(&bm), kv.mod_revision)
                    .await
            }
            None => {
                registry
                    .store
                    .create(NODE_PORTS_KEY, encode_range(&bm))
                    .await
            }
        };
        match written {
            Ok(_) => return Ok(out),
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists | StoreError::NotFound) => {
                continue
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(
        "failed to allocate a nodePort: too many concurrent updates",
    ))
}

async fn release_ports(registry: &Registry, ports: &[i64]) {
    if ports.is_empty() {
        return;
    }
    let r = update_ports(registry, |bm| {
        for p in ports {
            bm.release(*p);
        }
        Ok(())
    })
    .await;
    if let Err(e) = r {
        tracing::warn!("releasing node ports {ports:?}: {}", e.message);
    }
}

fn ip_addresses(registry: &Registry) -> ApiResult<crate::apiserver::catalog::ResourceInfo> {
    registry
        .catalog
        .find("networking.k8s.io", "v1", "ipaddresses")
        .ok_or_else(|| ApiError::internal("no ipaddresses resource"))
}

/// Creates `IPAddress/<ip>` for the Service `ns/name` (upstream's `createIPAddress`): storage's create
/// is the reservation. `Ok(false)`: someone holds it.
async fn create_ip_address(
    registry: &Registry,
    family: &str,
    ip: &str,
    ns: &str,
    name: &str,
) -> ApiResult<bool> {
    let info = ip_addresses(registry)?;
    let obj = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": ip, "labels": {
            "ipaddress.kubernetes.io/ip-family": family,
            "ipaddress.kubernetes.io/managed-by": IP_ALLOCATOR}},
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": ns, "name": name}}
    });
    match registry.create(&info, None, obj, false).await {
        Ok(_) => Ok(true),
        Err(e) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes `IPAddress/<ip>` (upstream's `Release`: errors are only logged).
async fn release_ip(registry: &Registry, ip: &str) {
    let Ok(info) = ip_addresses(registry) else {
        return;
    };
    match registry
        .delete(&info, None, ip, &DeleteOptions::default())
        .await
    {
        Ok(_) => {}
        Err(e) if e.code == 404 => {}
        Err(e) => tracing::warn!("releasing IPAddress {ip}: {}", e.message),
    }
}

fn service_type(svc: &Value) -> &str {
    match svc.pointer("/spec/type").and_then(Value::as_str) {
        None | Some("") => "ClusterIP",
        Some(t) => t,
    }
}

fn needs_node_port(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

/// Upstream's `shouldAllocateNodePorts`: LoadBalancers may opt out of node ports.
fn should_allocate_node_ports(svc: &Value) -> bool {
    match service_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        _ => false,
    }
}

/// Upstream's `NeedsHealthCheck`: a LoadBalancer with `externalTrafficPolicy: Local`.
fn needs_health_check(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer"
        && svc
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .filter(|n| *n != 0)
                .collect()
        })
        .unwrap_or_default()
}

fn health_check_port(svc: &Value) -> i64 {
    svc.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The cluster IPs a Service holds (none for ExternalName and headless ones).
fn held_ips(svc: &Value) -> Vec<String> {
    if service_type(svc) == "ExternalName" {
        return Vec::new();
    }
    let mut ips: Vec<String> = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if ips.is_empty() {
        if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str) {
            ips.push(ip.to_string());
        }
    }
    ips.retain(|ip| !ip.is_empty() && ip != "None");
    ips
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A 422 for the Service `name`, as upstream's `errors.NewInvalid(api.Kind("Service"), ...)`.
fn invalid_service(
    services: Option<&crate::apiserver::catalog::ResourceInfo>,
    name: &str,
    causes: Vec<Cause>,
) -> ApiError {
    match services {
        Some(info) => ApiError::invalid(info, name, causes),
        None => ApiError::internal("no services resource"),
    }
}

/// What one Service write allocated (released on revert) and will release (on commit).
#[derive(Default)]
pub struct ServiceTxn {
    dry_run: bool,
    allocated_ips: Vec<String>,
    allocated_ports: Vec<i64>,
    release_ips: Vec<String>,
    release_ports: Vec<i64>,
}

#[async_trait]
impl AllocationTxn for ServiceTxn {
    /// The write landed: what the old object held and the new one does not is freed.
    async fn commit(self: Box<Self>, registry: &Registry) {
        if !self.dry_run {
            release(registry, &self.release_ips, &self.release_ports).await;
        }
    }
    /// The write failed: what this write took is freed.
    async fn revert(self: Box<Self>, registry: &Registry) {
        if !self.dry_run {
            release(registry, &self.allocated_ips, &self.allocated_ports).await;
        }
    }
}

async fn release(registry: &Registry, ips: &[String], ports: &[i64]) {
    for ip in ips {
        release_ip(registry, ip).await;
    }
    release_ports(registry, ports).await;
}

/// The Service strategy's allocation hooks.
pub struct ServiceAllocations;

impl ServiceAllocations {
    /// Gives `svc` its cluster IP (upstream's `allocClusterIPs`): the requested one if it is in range
    /// and free, else a random free one. Records what it took in `txn`.
    async fn alloc_cluster_ip(
        &self,
        registry: &Registry,
        svc: &mut Value,
        txn: &mut ServiceTxn,
    ) -> ApiResult<()> {
        let cidr = registry.service_ranges.cidr;
        let (ns, name) = (
            meta_str(svc, "namespace").to_string(),
            meta_str(svc, "name").to_string(),
        );
        let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let requested_ips: Vec<String> = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let requested = match spec.get("clusterIP").and_then(Value::as_str) {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => requested_ips.first().cloned().unwrap_or_default(),
        };
        if requested == "None" {
            // Headless: no address (upstream's allocClusterIPs returns nothing).
            spec.insert("clusterIP".into(), json!("None"));
            spec.insert("clusterIPs".into(), json!(["None"]));
            spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
            return Ok(());
        }
        let ip = if requested.is_empty() {
            if txn.dry_run {
                // Upstream's dry-run allocator answers the range's base address.
                cidr.addr(cidr.first() - 1).to_string()
            } else {
                allocate_next_ip(registry, &cidr, &ns, &name).await?
            }
        } else {
            let Ok(parsed) = requested.parse::<IpAddr>() else {
                // Malformed: validation answers it.
                return Ok(());
            };
            let shown = if requested_ips.is_empty() {
                vec![requested.clone()]
            } else {
                requested_ips.clone()
            };
            let services = registry.catalog.find("", "v1", "services");
            let fail = |why: &str| {
                invalid_service(
                    services.as_ref(),
                    &name,
                    vec![crate::apiserver::registry::validation::fields::invalid_raw(
                        "spec.clusterIPs",
                        &crate::apiserver::registry::validation::fields::go_strings(
                            "[]string", &shown,
                        ),
                        &format!("failed to allocate IP {requested}: {why}"),
                    )],
                )
            };
            if !cidr.contains_host(parsed) {
                return Err(fail(
                    "the provided network does not match the current range",
                ));
            }
            if !txn.dry_run {
                if !create_ip_address(registry, cidr.family(), &parsed.to_string(), &ns, &name)
                    .await?
                {
                    return Err(fail("provided IP is already allocated"));
                }
                txn.allocated_ips.push(parsed.to_string());
            }
            requested.clone()
        };
        if !txn.dry_run && requested.is_empty() {
            txn.allocated_ips.push(ip.clone());
        }
        spec.insert("clusterIP".into(), json!(ip));
        let mut ips = requested_ips;
        if ips.is_empty() {
            ips.push(ip.clone());
        } else {
            ips[0] = ip;
        }
        spec.insert("clusterIPs".into(), json!(ips));
        spec.entry("ipFamilies").or_insert(json!([cidr.family()]));
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        Ok(())
    }

    /// Node ports for `new` (and its health check port), taken in one guarded write; the ones `old`
    /// held that `new` no longer does are released on commit (upstream's `txnUpdateNodePorts`).
    async fn alloc_node_ports(
        &self,
        registry: &Registry,
        new: &mut Value,
        old: Option<&Value>,
        txn: &mut ServiceTxn,
    ) -> ApiResult<()> {
        let name = meta_str(new, "name").to_string();
        let old_ports: Vec<i64> = old
            .filter(|o| needs_node_port(o))
            .map(node_ports)
            .unwrap_or_default();
        let old_hc = old
            .filter(|o| needs_health_check(o))
            .map(health_check_port)
            .unwrap_or(0);
        let wants_ports = needs_node_port(new);
        let allocate_missing = should_allocate_node_ports(new);
        let wants_hc = needs_health_check(new);
        let ports: Vec<(i64, i64)> = new
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p.get("port").and_then(Value::as_i64).unwrap_or(0),
                            p.get("nodePort").and_then(Value::as_i64).unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let hc = health_check_port(new);
        let dry_run = txn.dry_run;
        let services = registry.catalog.find("", "v1", "services");
        // (assigned node ports by index, health check port, newly taken ports)
        let plan = |bm: &mut PortBitmap| -> ApiResult<(Vec<i64>, i64, Vec<i64>)> {
            let mut taken: Vec<i64> = Vec::new();
            let take =
                |bm: &mut PortBitmap, taken: &mut Vec<i64>, port: i64| -> Result<(), PortError> {
                    if dry_run {
                        if bm.has(port) || taken.contains(&port) {
                            return Err(PortError::Allocated);
                        }
                    } else {
                        bm.allocate(port)?;
                    }
                    taken.push(port);
                    Ok(())
                };
            let mut assigned = Vec::with_capacity(ports.len());
            let mut by_port: std::collections::HashMap<i64, i64> = Default::default();
            let mut dry_next = 32768;
            if wants_ports {
                for (i, (port, np)) in ports.iter().enumerate() {
                    if *np == 0 && !allocate_missing {
                        assigned.push(0);
                        continue;
                    }
                    let invalid = |e: PortError, np: i64| {
                        invalid_service(
                            services.as_ref(),
                            &name,
                            vec![Cause::invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                &json!(np),
                                &e.to_string(),
                            )],
                        )
                    };
                    let got = if *np != 0 {
                        let already = old_ports.contains(np)
                            || taken.contains(np)
                            || by_port.get(port) == Some(np);
                        if !already {
                            take(bm, &mut taken, *np).map_err(|e| invalid(e, *np))?;
                        }
                        *np
                    } else if let Some(same) = by_port.get(port) {
                        // One node port per service port number, as upstream's svcPortToNodePort.
                        *same
                    } else if dry_run {
                        dry_next += 1;
                        dry_next
                    } else {
                        let n = bm.allocate_next().map_err(|e| {
                            ApiError::internal(format!("failed to allocate a nodePort: {e}"))
                        })?;
                        taken.push(n);
                        n
                    };
                    by_port.entry(*port).or_insert(got);
                    assigned.push(got);
                }
            }
            let mut hc_port = 0;
            if wants_hc {
                hc_port = if hc != 0 {
                    if hc != old_hc {
                        take(bm, &mut taken, hc).map_err(|e| {
                            ApiError::internal(format!(
                                "failed to allocate requested HealthCheck NodePort {hc}: {e}"
                            ))
                        })?;
                    }
                    hc
                } else if old_hc != 0 {
                    old_hc
                } else if dry_run {
                    dry_next + 1
                } else {
                    let n = bm.allocate_next().map_err(|e| {
                        ApiError::internal(format!(
                            "failed to allocate a HealthCheck NodePort 0: {e}"
                        ))
                    })?;
                    taken.push(n);
                    n
                };
            }
            Ok((assigned, hc_port, taken))
        };
        let (assigned, hc_port, taken) = if dry_run {
            let (kv, _) = registry.store.get(NODE_PORTS_KEY).await?;
            let range = registry.service_ranges.node_ports;
            let mut bm = kv
                .map(|kv| decode_range(range, &kv.value))
                .unwrap_or_else(|| PortBitmap::new(range));
            plan(&mut bm)?
        } else if wants_ports || wants_hc {
            update_ports(registry, plan).await?
        } else {
            (Vec::new(), 0, Vec::new())
        };
        txn.allocated_ports.extend(taken);
        if wants_ports {
            if let Some(ps) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for (p, np) in ps.iter_mut().zip(&assigned) {
                    if *np != 0 {
                        p["nodePort"] = json!(np);
                    }
                }
            }
        }
        if wants_hc {
            new["spec"]["healthCheckNodePort"] = json!(hc_port);
        }
        let kept: Vec<i64> = if wants_ports {
            node_ports(new)
        } else {
            Vec::new()
        };
        txn.release_ports
            .extend(old_ports.iter().filter(|p| !kept.contains(p)));
        if old_hc != 0 && (!wants_hc || hc_port != old_hc) && !kept.contains(&old_hc) {
            txn.release_ports.push(old_hc);
        }
        Ok(())
    }
}

/// A random free address: candidates in upstream's order, skipping what the cache knows is taken;
/// a create that loses a race (AlreadyExists) moves on to the next address.
async fn allocate_next_ip(
    registry: &Registry,
    cidr: &Cidr,
    ns: &str,
    name: &str,
) -> ApiResult<String> {
    let info = ip_addresses(registry)?;
    let known: std::collections::HashSet<String> = registry
        .cache
        .resource(&info.storage_prefix)
        .map(|c| {
            c.list_cached(&info.storage_prefix, 0)
                .0
                .iter()
                .map(|o| meta_str(o.view(), "name").to_string())
                .collect()
        })
        .unwrap_or_default();
    let (upper, lower) = cidr.random_starts();
    for n in cidr.candidates(upper, lower) {
        let ip = cidr.addr(n).to_string();
        if known.contains(&ip) {
            continue;
        }
        if create_ip_address(registry, cidr.family(), &ip, ns, name).await? {
            return Ok(ip);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a serviceIP: range is full",
    ))
}

#[async_trait]
impl Allocations for ServiceAllocations {
    async fn allocate_create(
        &self,
        registry: &Registry,
        obj: &mut Value,
        dry_run: bool,
    ) -> ApiResult<Box<dyn AllocationTxn>> {
        let mut txn = ServiceTxn {
            dry_run,
            ..Default::default()
        };
        let res = async {
            if service_type(obj) != "ExternalName" {
                self.alloc_cluster_ip(registry, obj, &mut txn).await?;
            }
            self.alloc_node_ports(registry, obj, None, &mut txn).await
        }
        .await;
        match res {
            Ok(()) => Ok(Box::new(txn)),
            Err(e) => {
                Box::new(txn).revert(registry).await;
                Err(e)
            }
        }
    }

    async fn allocate_update(
        &self,
        registry: &Registry,
        new: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> ApiResult<Box<dyn AllocationTxn>> {
        let mut txn = ServiceTxn {
            dry_run,
            ..Default::default()
        };
        let (ot, nt) = (service_type(old), service_type(new).to_string());
        let res = async {
            if ot == "ExternalName" && nt != "ExternalName" {
                self.alloc_cluster_ip(registry, new, &mut txn).await?;
            } else if ot != "ExternalName" && nt == "ExternalName" {
                txn.release_ips.extend(held_ips(old));
            }
            self.alloc_node_ports(registry, new, Some(old), &mut txn)
                .await
        }
        .await;
        match res {
            Ok(()) => Ok(Box::new(txn)),
            Err(e) => {
                Box::new(txn).revert(registry).await;
                Err(e)
            }
        }
    }

    async fn release(&self, registry: &Registry, obj: &Value) {
        let (ns, name) = (meta_str(obj, "namespace"), meta_str(obj, "name"));
        if let Ok(info) = ip_addresses(registry) {
            for ip in held_ips(obj) {
                // Only the Service's own address: another owner's stays.
                let owned = registry.get(&info, None, &ip).await.is_ok_and(|a| {
                    a.pointer("/spec/parentRef/namespace")
                        .and_then(Value::as_str)
                        == Some(ns)
                        && a.pointer("/spec/parentRef/name").and_then(Value::as_str) == Some(name)
                });
                if owned {
                    release_ip(registry, &ip).await;
                }
            }
        }
        let mut ports = if needs_node_port(obj) {
            node_ports(obj)
        } else {
            Vec::new()
        };
        if needs_health_check(obj) && health_check_port(obj) != 0 {
            ports.push(health_check_port(obj));
        }
        release_ports(registry, &ports).await;
    }
}

/// Start-up repair (the part of upstream's repair loops that matters here): every stored Service's
/// cluster IP has its IPAddress object and its node ports are marked in the bitmap — Services written
/// before this allocator existed, or while the node port range was different. Only adds: a leaked
/// allocation stays leaked (upstream's loop frees those after a grace period; not done here).
pub async fn repair(registry: &Registry) -> anyhow::Result<()> {
    let services = registry
        .catalog
        .find("", "v1", "services")
        .ok_or_else(|| anyhow::anyhow!("no services resource"))?;
    let listed = registry
        .store
        .range(&services.storage_prefix, None, 0, 0)
        .await?;
    let cidr = registry.service_ranges.cidr;
    let mut ports = Vec::new();
    for kv in &listed.kvs {
        let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let (ns, name) = (meta_str(&svc, "namespace"), meta_str(&svc, "name"));
        for ip in held_ips(&svc) {
            match ip.parse::<IpAddr>() {
                Ok(parsed) if cidr.contains_host(parsed) => {
                    let created =
                        create_ip_address(registry, cidr.family(), &parsed.to_string(), ns, name)
                            .await
                            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
                    if created {
                        tracing::info!("repair: IPAddress {parsed} created for Service {ns}/{name}");
                    }
                }
                _ => tracing::warn!(
                    "repair: Service {ns}/{name}'s cluster IP {ip} is not in the service range {cidr}"
                ),
            }
        }
        if needs_node_port(&svc) {
            ports.extend(node_ports(&svc));
        }
        if needs_health_check(&svc) && health_check_port(&svc) != 0 {
            ports.push(health_check_port(&svc));
        }
    }
    update_ports(registry, |bm| {
        for p in &ports {
            if registry.service_ranges.node_ports.contains(*p) {
                let _ = bm.allocate(*p);
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(())
}

/// Upstream's defaultservicecidr controller: the ServiceCIDR `kubernetes` naming the configured range,
/// Ready once it matches.
pub async fn ensure_default_service_cidr(registry: &Registry) -> anyhow::Result<()> {
    let info = registry
        .catalog
        .find("networking.k8s.io", "v1", "servicecidrs")
        .ok_or_else(|| anyhow::anyhow!("no servicecidrs resource"))?;
    let cidr = registry.service_ranges.cidr.to_string();
    let current = match registry.get(&info, None, DEFAULT_SERVICE_CIDR).await {
        Ok(c) => c,
        Err(e) if e.code == 404 => {
            let obj = json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                "metadata": {"name": DEFAULT_SERVICE_CIDR}, "spec": {"cidrs": [cidr]}});
            match registry.create(&info, None, obj, false).await {
                Ok(c) => c,
                Err(e) if e.code == 409 => registry
                    .get(&info, None, DEFAULT_SERVICE_CIDR)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?,
                Err(e) => anyhow::bail!("creating the default ServiceCIDR: {}", e.message),
            }
        }
        Err(e) => anyhow::bail!("reading the default ServiceCIDR: {}", e.message),
    };
    let has_ready = current
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready"));
    if has_ready || current.pointer("/spec/cidrs") != Some(&json!([cidr])) {
        if current.pointer("/spec/cidrs") != Some(&json!([cidr])) {
            tracing::warn!(
                "the default ServiceCIDR names {} but --service-cluster-ip-range is {cidr}",
                current.pointer("/spec/cidrs").cloned().unwrap_or_default()
            );
        }
        return Ok(());
    }
    let mut updated = current.clone();
    updated["status"] = json!({"conditions": [{
        "type": "Ready", "status": "True", "reason": "",
        "message": "Kubernetes default Service CIDR is ready",
        "lastTransitionTime": crate::apiserver::registry::store::now_rfc3339()}]});
    match registry
        .update(
            &info,
            None,
            DEFAULT_SERVICE_CIDR,
            updated,
            Some("status"),
            false,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => anyhow::bail!("marking the default ServiceCIDR ready: {}", e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_bounds_and_offset() {
        let c = Cidr::parse("10.96.0.0/16").unwrap();
        assert_eq!(c.addr(c.first()).to_string(), "10.96.0.1");
        assert_eq!(c.addr(c.last()).to_string(), "10.96.255.254");
        assert_eq!(c.range_offset(), 256);
        assert!(!c.contains_host("10.96.0.0".parse().unwrap()));
        assert!(!c.contains_host("10.96.255.255".parse().unwrap()));
        assert!(c.contains_host("10.96.0.10".parse().unwrap()));
        assert!(!c.contains_host("10.0.0.5".parse().unwrap()));
        assert_eq!(c.to_string(), "10.96.0.0/16");
        // Small ranges: 16 at least (a /24: 256/16 = 16), none below /28.
        assert_eq!(Cidr::parse("10.0.0.0/24").unwrap().range_offset(), 16);
        assert_eq!(Cidr::parse("10.0.0.0/28").unwrap().range_offset(), 0);
        assert_eq!(
            Cidr::parse("10.1.2.3/24").unwrap().to_string(),
            "10.1.2.0/24"
        );
        assert!(Cidr::parse("10.0.0.0").is_err());
    }

    #[test]
    fn candidates_cover_every_host_once_upper_first() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        let all: Vec<u128> = c.candidates(100, 5).collect();
        assert_eq!(all.len(), 254);
        let set: std::collections::HashSet<u128> = all.iter().copied().collect();
        assert_eq!(set.len(), 254);
        assert!(!set.contains(&c.base) && !set.contains(&(c.base + 255)));
        // The 238 upper addresses (10.0.0.17..254) come first, from the random start on.
        assert_eq!(c.addr(all[0]).to_string(), "10.0.0.117");
        assert!(all[..238].iter().all(|n| *n >= c.first() + 16));
        assert_eq!(c.addr(all[238]).to_string(), "10.0.0.6");
        assert!(all[238..].iter().all(|n| *n < c.first() + 16));
    }

    #[test]
    fn port_range_parse_and_offset() {
        let r = PortRange::parse("30000-32767").unwrap();
        assert_eq!((r.base, r.size), (30000, 2768));
        assert_eq!(r.to_string(), "30000-32767");
        assert_eq!(r.range_offset(), 86);
        assert_eq!(
            PortRange::parse("30000+9").unwrap().to_string(),
            "30000-30009"
        );
        assert!(PortRange::parse("0-5").is_err());
        assert!(PortRange::parse("x").is_err());
    }

    #[test]
    fn bitmap_allocates_upper_first_then_lower_then_full() {
        let r = PortRange::parse("100-163").unwrap(); // 64 ports, offset 16
        let mut bm = PortBitmap::new(r);
        assert_eq!(bm.allocate(100), Ok(()));
        assert_eq!(bm.allocate(100), Err(PortError::Allocated));
        assert_eq!(
            bm.allocate(99).unwrap_err().to_string(),
            "provided port is not in the valid range. The range of valid ports is 100-163"
        );
        let mut got = Vec::new();
        while let Ok(p) = bm.allocate_next() {
            got.push(p);
        }
        assert_eq!(got.len(), 63);
        assert!(got[..48].iter().all(|p| *p >= 116));
        assert!(got[48..].iter().all(|p| *p < 116));
        assert_eq!(bm.allocate_next(), Err(PortError::Full));
        bm.release(130);
        assert_eq!(bm.allocate_next(), Ok(130));
    }

    #[test]
    fn bitmap_snapshot_roundtrip_is_bigint_bytes() {
        let r = PortRange::parse("30000-32767").unwrap();
        let mut bm = PortBitmap::new(r);
        assert!(bm.to_bytes().is_empty());
        bm.allocate(30000).unwrap();
        bm.allocate(30009).unwrap();
        // big.Int with bits 0 and 9: 0x0201.
        assert_eq!(bm.to_bytes(), vec![0x02, 0x01]);
        bm.allocate(32767).unwrap();
        let back = PortBitmap::from_bytes(r, &bm.to_bytes());
        assert_eq!(back, bm);
        assert_eq!(back.used(), vec![30000, 30009, 32767]);
        assert_eq!(decode_range(r, &encode_range(&bm)), bm);
        // Stored for another range: starts empty (the repair refills it).
        let other = PortRange::parse("30000-30100").unwrap();
        assert_eq!(
            decode_range(other, &encode_range(&bm)).used(),
            Vec::<i64>::new()
        );
    }
}
