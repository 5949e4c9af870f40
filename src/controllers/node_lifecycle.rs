//! Upstream's node lifecycle controller and taint-based eviction: a node whose kubelet stops
//! heartbeating is marked `Unknown` and tainted, and pods that do not tolerate the taint leave it.
//!
//! Heartbeats are the node's Lease in `kube-node-lease` and its `Ready` condition's heartbeat; like
//! upstream, the controller judges them by when *it* saw them change (never by the kubelet's clock).
//! Every monitor period (5 s) it looks at each node: when nothing changed for the grace period
//! (`--node-monitor-grace-period`, 40 s) its conditions become `Unknown` (`NodeStatusUnknown`,
//! "Kubelet stopped posting node status.") and it gets the `node.kubernetes.io/unreachable` taints
//! (`NoSchedule` and `NoExecute`); a node reporting `Ready=False` gets the `not-ready` ones; a healthy
//! node loses them. A node reporting `MemoryPressure`, `DiskPressure` or `PIDPressure` gets the
//! matching `NoSchedule` taint (`node.kubernetes.io/disk-pressure`, ...) while it lasts, as upstream's
//! TaintNodesByCondition. Pods on a node with a `NoExecute` taint they do not tolerate are deleted (upstream's
//! taint-eviction controller), at once or after their toleration's `tolerationSeconds`.
//! It runs as `system:serviceaccount:kube-system:node-controller` (upstream's role: nodes, their
//! status, pods' deletion), watching with the controller manager's identity.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::ResourceExt;

use super::Clients;

const MONITOR_PERIOD: Duration = Duration::from_secs(5);
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(40);
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The NoSchedule taint each pressure condition gives a node while it is True (upstream's
/// nodeConditionToTaintKeyStatusMap).
const PRESSURE_TAINTS: [(&str, &str); 3] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
];
const MANAGER: &str = "node-lifecycle-controller";

/// When this controller last saw each node's heartbeat change, and what it saw.
#[derive(Default)]
struct Heartbeats(HashMap<String, (String, Instant)>);

impl Heartbeats {
    /// Records the node's current heartbeat (lease renew time and Ready heartbeat); returns how long
    /// ago it last changed.
    fn observe(&mut self, node: &str, beat: String) -> Duration {
        let now = Instant::now();
        let entry = self
            .0
            .entry(node.to_string())
            .or_insert((beat.clone(), now));
        if entry.0 != beat {
            *entry = (beat, now);
        }
        entry.1.elapsed()
    }
}

pub async fn run(clients: Clients, grace: Duration) {
    let nodes = clients.informers.store::<Node>();
    let leases = super::common::store(Api::<Lease>::namespaced(
        clients.reader.clone(),
        "kube-node-lease",
    ));
    let pods = clients.informers.store::<Pod>();
    use super::common::ready;
    tokio::join!(ready(&nodes), ready(&leases), ready(&pods));
    let mut beats = Heartbeats::default();
    let mut tick = tokio::time::interval(MONITOR_PERIOD);
    loop {
        tick.tick().await;
        // One pass over each store per period: with thousands of nodes, looking up each node's
        // lease or pods by scanning the whole store made a period quadratic.
        let renewals: HashMap<String, String> = leases
            .state()
            .iter()
            .filter_map(|l| {
                let t = l.spec.as_ref()?.renew_time.as_ref()?;
                Some((l.name_any(), format!("{:?}", t.0)))
            })
            .collect();
        let nodes = nodes.state();
        let tainted: HashSet<&str> = nodes
            .iter()
            .filter(|n| !no_execute_taints(n).is_empty())
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        let mut pods_on: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        if !tainted.is_empty() {
            for pod in pods.state() {
                let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
                if let Some(node) = node.filter(|n| tainted.contains(n)) {
                    pods_on.entry(node.to_string()).or_default().push(pod);
                }
            }
        }
        for node in &nodes {
            let name = node.name_any();
            let lease = renewals.get(&name);
            let ready_beat = condition(node, "Ready")
                .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| format!("{:?}", t.0)));
            let silent = beats.observe(&name, format!("{lease:?}/{ready_beat:?}"));
            if let Err(e) = monitor(&clients, node, silent > grace).await {
                tracing::debug!("node lifecycle {name}: {e}");
            }
            if let Some(pods) = pods_on.get(&name) {
                evict(&clients, node, pods).await;
            }
        }
    }
}

/// The node's `NoExecute` taints.
fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect()
}

fn condition<'a>(node: &'a Node, ty: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
}

/// Marks a silent node `Unknown` and keeps its taints in line with its Ready condition.
async fn monitor(clients: &Clients, node: &Node, silent: bool) -> Result<(), kube::Error> {
    let name = node.name_any();
    let api = Api::<Node>::all(clients.writer.clone());
    let ready = condition(node, "Ready").map(|c| c.status.clone());
    if silent && ready.as_deref() != Some("Unknown") && ready.is_some() {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let conditions: Vec<NodeCondition> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                if c.status != "Unknown" {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(now.clone());
                }
                c
            })
            .collect();
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await?;
        tracing::info!("node {name} stopped posting status: marked Unknown");
        return Ok(()); // the taints follow on the next period, from the condition now stored
    }
    // Ready's taints (both effects: NoExecute evicts), and upstream's TaintNodesByCondition:
    // NoSchedule taints for pressure conditions, so nothing new is scheduled there.
    let mut wanted: Vec<(&str, &[&str])> = match ready.as_deref() {
        Some("Unknown") => vec![(UNREACHABLE, &["NoSchedule", "NoExecute"])],
        Some("False") => vec![(NOT_READY, &["NoSchedule", "NoExecute"])],
        _ => vec![],
    };
    for (ty, key) in PRESSURE_TAINTS {
        if condition(node, ty).is_some_and(|c| c.status == "True") {
            wanted.push((key, &["NoSchedule"]));
        }
    }
    let managed = |key: &str| {
        key == UNREACHABLE || key == NOT_READY || PRESSURE_TAINTS.iter().any(|(_, k)| *k == key)
    };
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut kept: Vec<Taint> = taints
        .iter()
        .filter(|t| {
            !managed(&t.key)
                || wanted
                    .iter()
                    .any(|(k, effects)| *k == t.key && effects.contains(&t.effect.as_str()))
        })
        .cloned()
        .collect();
    for (key, effects) in &wanted {
        for effect in effects.iter() {
            if !kept.iter().any(|t| t.key == *key && t.effect == *effect) {
                kept.push(Taint {
                    key: key.to_string(),
                    effect: effect.to_string(),
                    time_added: (*effect == "NoExecute")
                        .then(|| Time(k8s_openapi::jiff::Timestamp::now())),
                    value: None,
                });
            }
        }
    }
    if kept != taints {
        let patch = serde_json::json!({"spec": {"taints": kept}});
        api.patch(&name, &PatchParams::apply(MANAGER), &Patch::Merge(patch))
            .await?;
    }
    Ok(())
}

/// Deletes the pods on `node` (`pods`, those bound to it) that do not tolerate one of its
/// `NoExecute` taints (or whose `tolerationSeconds` have run out since the taint was added).
async fn evict(clients: &Clients, node: &Node, pods: &[Arc<Pod>]) {
    let taints = no_execute_taints(node);
    if taints.is_empty() {
        return;
    }
    let name = node.name_any();
    let now = k8s_openapi::jiff::Timestamp::now();
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let due = taints.iter().any(|taint| {
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            let matching = tolerations.iter().find(|t| tolerates(t, taint));
            match matching {
                None => true,
                Some(t) => match (t.toleration_seconds, &taint.time_added) {
                    (None, _) => false,
                    (Some(secs), Some(added)) => {
                        now.as_second() >= added.0.as_second() + secs.max(0)
                    }
                    (Some(_), None) => true,
                },
            }
        });
        if due {
            let api = Api::<Pod>::namespaced(
                clients.writer.clone(),
                &pod.namespace().unwrap_or_default(),
            );
            match api.delete(&pod.name_any(), &DeleteParams::default()).await {
                Ok(_) => tracing::info!(
                    "evicted {}/{} from tainted node {name}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any()
                ),
                Err(e) => tracing::debug!("evicting {}: {e}", pod.name_any()),
            }
        }
    }
}

/// Upstream's `Toleration.ToleratesTaint`.
fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "Exists" => true,
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}
