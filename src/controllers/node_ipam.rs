//! Upstream's node IPAM controller (the `RangeAllocator` of `--allocate-node-cidrs`): every Node without
//! a `spec.podCIDR` gets the next free subnet of `--node-cidr-mask-size` bits from `--cluster-cidr`, so
//! no two nodes' pods share addresses. Kubelets (and hollow nodes) wait for it and configure their pod
//! network from it.
//!
//! The free set is the cluster range minus every Node's podCIDRs in the controller's cache, minus the
//! subnets it handed out that the cache does not show yet (upstream marks them in its bitmap at once the
//! same way), so two nodes reconciled before the watch catches up never get one subnet. A deleted Node's
//! subnet is free again as soon as the cache drops it. Like upstream, the search starts after the last
//! subnet handed out, so a just-freed subnet is not reused at once. When the range is full the Node gets
//! upstream's `CIDRNotAvailable` event and is retried later. Runs as `node-controller`, whose default
//! role may patch Nodes.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::common::{self, Recorder};
use super::Clients;

/// The pods' range: 8,192 node subnets of /24, enough for the 5,000 hollow nodes of the scheduling
/// benchmark (upstream has no default; kind's 10.244.0.0/16 holds 256 nodes), clear of the Service range
/// (10.96.0.0/12) and containerd's own 10.88.0.0/16.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.128.0.0/11";
/// upstream's `--node-cidr-mask-size` for IPv4.
pub const DEFAULT_NODE_MASK: u8 = 24;

/// The cluster range cut into node subnets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CidrSet {
    base: u32,
    cluster_bits: u8,
    node_bits: u8,
}

impl CidrSet {
    /// `cluster` as `a.b.c.d/n`, node subnets of `node_bits` (n ≤ node_bits ≤ 30, at most 2^20 subnets).
    pub fn new(cluster: &str, node_bits: u8) -> Result<CidrSet, String> {
        let (ip, bits) = parse_cidr(cluster).ok_or_else(|| {
            format!("invalid --cluster-cidr {cluster:?}: want an IPv4 CIDR such as 10.244.0.0/16")
        })?;
        if node_bits < bits || node_bits > 30 || node_bits - bits > 20 {
            return Err(format!(
                "--node-cidr-mask-size {node_bits} does not fit --cluster-cidr {cluster} (between {bits} and 30, and at most 20 more bits than it)"
            ));
        }
        Ok(CidrSet {
            base: ip & mask(bits),
            cluster_bits: bits,
            node_bits,
        })
    }

    /// How many node subnets the range holds.
    fn len(&self) -> u32 {
        1 << (self.node_bits - self.cluster_bits)
    }

    /// The `i`-th subnet as `a.b.c.d/n`.
    pub fn subnet(&self, i: u32) -> String {
        let ip = self.base + (i << (32 - self.node_bits));
        format!("{}/{}", Ipv4Addr::from(ip), self.node_bits)
    }

    /// Which subnet `cidr` is, when it is exactly one of this range's (a node's podCIDR set by hand may
    /// be anything; one outside the range occupies nothing here, as upstream logs and ignores it).
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        let (ip, bits) = parse_cidr(cidr)?;
        if bits != self.node_bits || ip & mask(self.cluster_bits) != self.base {
            return None;
        }
        Some((ip - self.base) >> (32 - self.node_bits))
    }

    /// The first free subnet after `after` (wrapping around), if any.
    pub fn next_free(&self, used: &BTreeSet<u32>, after: Option<u32>) -> Option<u32> {
        let n = self.len();
        let start = after.map_or(0, |a| (a + 1) % n);
        (0..n).map(|k| (start + k) % n).find(|i| !used.contains(i))
    }
}

fn mask(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    }
}

fn parse_cidr(cidr: &str) -> Option<(u32, u8)> {
    let (ip, bits) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    (bits <= 32).then_some((u32::from(ip), bits))
}

/// What the allocator remembers between reconciles.
#[derive(Default)]
struct Handed {
    /// Node name → subnet handed out that the cache may not show yet.
    pending: HashMap<String, u32>,
    last: Option<u32>,
}

struct Ctx {
    clients: Clients,
    set: CidrSet,
    nodes: Store<Node>,
    handed: Mutex<Handed>,
    recorder: Recorder,
}

pub async fn run(clients: Clients, set: CidrSet) {
    let (nodes, changes) = clients.informers.watched::<Node>();
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), "node-controller"),
        clients,
        set,
        nodes: nodes.clone(),
        handed: Mutex::default(),
    });
    Controller::for_stream(changes, nodes)
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("node-ipam controller: {e}");
            }
        })
        .await;
}

fn retry_later(_node: Arc<Node>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("node-ipam controller: {error}");
    Action::requeue(Duration::from_secs(5))
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("allocator state poisoned")]
    Poisoned,
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pod_cidr(&node).is_some() || node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = node.name_any();
    let chosen = {
        let mut handed = ctx.handed.lock().map_err(|_| Error::Poisoned)?;
        let cached = ctx.nodes.state();
        // What the cache now shows (or no longer has) needs no remembering.
        handed.pending.retain(|n, _| {
            let current = ctx.nodes.get(&ObjectRef::new(n));
            current.is_some_and(|c| pod_cidr(&c).is_none())
        });
        let mut used: BTreeSet<u32> = cached
            .iter()
            .filter_map(|n| pod_cidr(n).and_then(|c| ctx.set.index_of(c)))
            .collect();
        used.extend(handed.pending.values().copied());
        match handed.pending.get(&name) {
            Some(i) => Some(*i),
            None => {
                let i = ctx.set.next_free(&used, handed.last);
                if let Some(i) = i {
                    handed.pending.insert(name.clone(), i);
                    handed.last = Some(i);
                }
                i
            }
        }
    };
    let Some(i) = chosen else {
        common::record(
            &ctx.recorder,
            node.as_ref(),
            EventType::Normal,
            "CIDRNotAvailable",
            "CIDRNotAvailable",
            format!("Node {name} status is now: CIDRNotAvailable"),
        )
        .await;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let cidr = ctx.set.subnet(i);
    let api: Api<Node> = Api::all(ctx.clients.writer.clone());
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node = %name, %cidr, "node-ipam: podCIDR assigned");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {
            if let Ok(mut handed) = ctx.handed.lock() {
                handed.pending.remove(&name);
            }
            Ok(Action::await_change())
        }
        Err(e) => {
            // Keep the subnet reserved for this node: the retry patches the same one.
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_of_a_16() {
        let set = CidrSet::new("10.244.0.0/16", 24).expect("valid");
        assert_eq!(set.len(), 256);
        assert_eq!(set.subnet(0), "10.244.0.0/24");
        assert_eq!(set.subnet(255), "10.244.255.0/24");
        assert_eq!(set.index_of("10.244.7.0/24"), Some(7));
        assert_eq!(set.index_of("10.88.0.0/16"), None, "outside the range");
        assert_eq!(set.index_of("10.244.7.0/25"), None, "another size");
    }

    #[test]
    fn next_free_wraps_and_skips_used() {
        let set = CidrSet::new("10.0.0.0/22", 24).expect("valid");
        let used: BTreeSet<u32> = [0, 2].into();
        assert_eq!(set.next_free(&used, None), Some(1));
        assert_eq!(set.next_free(&used, Some(1)), Some(3));
        assert_eq!(set.next_free(&used, Some(3)), Some(1), "wraps around");
        let full: BTreeSet<u32> = (0..4).collect();
        assert_eq!(set.next_free(&full, Some(0)), None);
    }

    #[test]
    fn refuses_bad_flags() {
        assert!(CidrSet::new("10.244.0.0", 24).is_err());
        assert!(CidrSet::new("10.244.0.0/16", 8).is_err());
        assert!(CidrSet::new("10.244.0.0/16", 31).is_err());
        assert!(CidrSet::new("10.0.0.0/8", 30).is_err(), "2^22 subnets");
        // Host bits in the cluster range are ignored, as net.ParseCIDR does.
        let set = CidrSet::new("10.244.3.4/16", 24).expect("valid");
        assert_eq!(set.subnet(1), "10.244.1.0/24");
    }
}
