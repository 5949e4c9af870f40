//! One scheduling cycle: the PreFilter plugins (VolumeBinding may rule the pod out everywhere), then
//! filter the nodes (in parallel, stopping once enough feasible nodes are found as upstream's
//! percentageOfNodesToScore), score the feasible ones with the default weights, pick the best (ties
//! broken at random); or, when none fits, try preemption ([`super::preemption`]) and explain the
//! failure in upstream's FitError words.
//!
//! Filters run with the nominated pods ([`super::nominator`]) as upstream's
//! RunFilterPluginsWithNominatedPods: on a node where pods of at least the pod's priority are
//! nominated, the node must pass both with them placed there and without them. A pod that is
//! itself nominated tries its nominated node first (upstream's evaluateNominatedNode).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::cache::{Cache, NodeInfo, PodInfo};
use super::nominator::Nominator;
use super::objects::Objects;
use super::plugins::{
    self, default_selector, inter_pod_affinity, pod_topology_spread, volume_binding, FilterResult,
    Rejection,
};
use super::preemption::{self, priority, Verdict};

/// What a cycle reads: the nodes and their pods, the nominations, the other API objects.
pub struct Snapshot<'a> {
    pub cache: &'a Cache,
    pub nominator: &'a Nominator,
    pub objects: &'a Objects,
}

pub enum Outcome {
    /// The node, and the volume decisions to carry out before binding (VolumeBinding's plan).
    Fits {
        node: String,
        volumes: Option<volume_binding::Plan>,
    },
    /// The FitError message (upstream's words, with preemption's verdict); `clear_nomination`
    /// when preemption found no candidate (upstream then clears the pod's nominatedNodeName).
    Unschedulable {
        message: String,
        clear_nomination: bool,
    },
    /// No node fits, but evicting `victims` from `node` makes room (the message omits preemption,
    /// as upstream's when its PostFilter succeeds).
    Preempt {
        message: String,
        node: String,
        victims: Vec<std::sync::Arc<PodInfo>>,
    },
}

/// What the PreFilter plugins computed for one pod.
#[derive(Clone)]
struct PreFiltered {
    spread: pod_topology_spread::State,
    ipa: inter_pod_affinity::State,
    volumes: volume_binding::State,
}

fn run_filters(pod: &PodInfo, pre: &PreFiltered, node: &NodeInfo) -> FilterResult {
    // The default profile's filter order.
    plugins::node_unschedulable::filter(pod, node)?;
    plugins::node_name::filter(pod, node)?;
    plugins::taint_toleration::filter(pod, node)?;
    plugins::node_affinity::filter(pod, node)?;
    plugins::node_ports::filter(pod, node)?;
    plugins::node_resources_fit::filter(pod, node)?;
    volume_binding::filter(&pre.volumes, node)?;
    pod_topology_spread::filter(&pre.spread, node)?;
    inter_pod_affinity::filter(&pre.ipa, node)
}

/// Upstream's RunFilterPluginsWithNominatedPods: where pods of at least `pod`'s priority (other
/// than itself) are nominated to `node`, the node must fit `pod` with them placed there
/// (resources, ports, spread and affinity counts) and also without them (affinity to them must
/// not be what makes it fit: they may yet go elsewhere).
fn filter_with_nominated(
    pod: &PodInfo,
    pre: &PreFiltered,
    node: &NodeInfo,
    nominator: &Nominator,
) -> FilterResult {
    if nominator.is_empty() {
        return run_filters(pod, pre, node);
    }
    let own = priority(pod);
    let mut nominated = nominator
        .on_node(&node.name)
        .iter()
        .filter(|p| priority(p) >= own && p.key != pod.key)
        .peekable();
    if nominated.peek().is_none() {
        return run_filters(pod, pre, node);
    }
    let mut with = node.clone();
    let mut pre_with = pre.clone();
    for p in nominated {
        with.add_pod(p.clone());
        pre_with.spread.add_pod(pod, p, &with);
        pre_with.ipa.add_pod(pod, p, &with);
    }
    run_filters(pod, &pre_with, &with)?;
    run_filters(pod, pre, node)
}

/// upstream's numFeasibleNodesToFind with the adaptive percentage (50% − nodes/125, at least 5%),
/// never fewer than 100 nodes.
fn num_feasible_to_find(all: usize) -> usize {
    if all < 100 {
        return all;
    }
    let pct = (50i64 - all as i64 / 125).max(5) as usize;
    (all * pct / 100).max(100)
}

pub struct Framework {
    /// Where the next cycle starts its scan (upstream's nextStartNodeIndex), so pods spread.
    next_start: usize,
    threads: usize,
}

impl Framework {
    pub fn new() -> Framework {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Framework {
            next_start: 0,
            threads,
        }
    }

    pub fn schedule(&mut self, pod: &PodInfo, snap: &Snapshot) -> Outcome {
        let cache = snap.cache;
        let nodes: Vec<&NodeInfo> = cache.nodes.values().collect();
        let n = nodes.len();
        if n == 0 {
            return Outcome::Unschedulable {
                message: "no nodes available to schedule pods".into(),
                clear_nomination: false,
            };
        }
        let volumes = match volume_binding::pre_filter(pod, snap.objects) {
            Ok(v) => v,
            Err(r) => return self.rejected_by_pre_filter(pod, snap, &nodes, r),
        };
        let pre = PreFiltered {
            spread: pod_topology_spread::pre_filter(pod, cache),
            ipa: inter_pod_affinity::pre_filter(pod, cache),
            volumes,
        };
        let nominator = snap.nominator;
        // A nominated pod goes where its victims made room, if it still fits there.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .and_then(|name| cache.nodes.get(name));
        if let Some(node) = nominated {
            if filter_with_nominated(pod, &pre, node, nominator).is_ok() {
                return self.fits(&pre, node);
            }
        }
        let want = num_feasible_to_find(n);
        let start = self.next_start % n;
        let next = AtomicUsize::new(0);
        let found = AtomicUsize::new(0);
        let feasible: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
        let rejected: Mutex<Vec<(usize, Rejection)>> = Mutex::new(Vec::new());
        let work = || {
            let mut ok = Vec::new();
            let mut bad = Vec::new();
            loop {
                if found.load(Ordering::Relaxed) >= want {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let idx = (start + i) % n;
                match filter_with_nominated(pod, &pre, nodes[idx], nominator) {
                    Ok(()) => {
                        found.fetch_add(1, Ordering::Relaxed);
                        ok.push((i, idx));
                    }
                    Err(r) => bad.push((idx, r)),
                }
            }
            if let Ok(mut f) = feasible.lock() {
                f.extend(ok);
            }
            if let Ok(mut r) = rejected.lock() {
                r.extend(bad);
            }
        };
        // Small clusters are filtered inline: spawning threads costs more than the filters.
        if self.threads > 1 && n >= 256 {
            std::thread::scope(|s| {
                for _ in 0..self.threads {
                    s.spawn(work);
                }
            });
        } else {
            work();
        }
        let mut feasible: Vec<(usize, usize)> = feasible.into_inner().unwrap_or_default();
        feasible.sort_unstable();
        feasible.truncate(want);
        let processed = feasible.last().map(|(i, _)| i + 1).unwrap_or(n);
        self.next_start = (start + processed) % n;
        let feasible: Vec<usize> = feasible.into_iter().map(|(_, idx)| idx).collect();
        if feasible.is_empty() {
            let mut rejected = rejected.into_inner().unwrap_or_default();
            rejected.sort_by_key(|(idx, _)| *idx);
            let message = format!(
                "0/{n} nodes are available: {}.",
                histogram(
                    rejected
                        .iter()
                        .flat_map(|(_, r)| r.reasons.iter().map(String::as_str))
                )
            );
            let fits = |node: &NodeInfo| filter_with_nominated(pod, &pre, node, nominator);
            return preempt(pod, snap, &nodes, &rejected, message, fits);
        }
        let chosen = if feasible.len() == 1 {
            feasible[0]
        } else {
            self.pick(pod, snap, &nodes, &feasible)
        };
        self.fits(&pre, nodes[chosen])
    }

    /// The pod fits `node`: with VolumeBinding's decisions for it, if it has claims to bind.
    fn fits(&self, pre: &PreFiltered, node: &NodeInfo) -> Outcome {
        let volumes = if pre.volumes.is_empty() {
            None
        } else {
            // Filter passed, so this finds the same plan it found then.
            volume_binding::find(&pre.volumes, node).ok()
        };
        Outcome::Fits {
            node: node.name.clone(),
            volumes,
        }
    }

    /// A PreFilter plugin ruled the pod out: every node carries that status (upstream's FitError
    /// then gives the PreFilter message alone), and preemption still runs (and cannot help).
    fn rejected_by_pre_filter(
        &self,
        pod: &PodInfo,
        snap: &Snapshot,
        nodes: &[&NodeInfo],
        r: Rejection,
    ) -> Outcome {
        let message = format!(
            "0/{} nodes are available: {}.",
            nodes.len(),
            r.reasons.join(", ")
        );
        let rejected: Vec<(usize, Rejection)> = (0..nodes.len()).map(|i| (i, r.clone())).collect();
        let code = r.code;
        preempt(pod, snap, nodes, &rejected, message, |_: &NodeInfo| {
            Err(Rejection::new(code, ""))
        })
    }

    fn pick(
        &self,
        pod: &PodInfo,
        snap: &Snapshot,
        nodes: &[&NodeInfo],
        feasible: &[usize],
    ) -> usize {
        let cache = snap.cache;
        let mut taint: Vec<i64> = feasible
            .iter()
            .map(|&i| plugins::taint_toleration::score(pod, nodes[i]))
            .collect();
        plugins::default_normalize(&mut taint, true);
        let mut affinity: Vec<i64> = feasible
            .iter()
            .map(|&i| plugins::node_affinity::score(pod, nodes[i]))
            .collect();
        plugins::default_normalize(&mut affinity, false);
        let feasible_nodes: Vec<&NodeInfo> = feasible.iter().map(|&i| nodes[i]).collect();
        let spread = pod_topology_spread::scores(pod, cache, &feasible_nodes, || {
            default_selector::for_pod(pod, snap.objects)
        });
        let pod_affinity = inter_pod_affinity::scores(pod, cache, &feasible_nodes);
        let mut best = (i64::MIN, feasible[0]);
        let mut ties = 0u32;
        for (k, &i) in feasible.iter().enumerate() {
            let total = plugins::node_resources_fit::score(pod, nodes[i])
                * plugins::node_resources_fit::WEIGHT
                + plugins::balanced_allocation::score(pod, nodes[i])
                    * plugins::balanced_allocation::WEIGHT
                + taint[k] * plugins::taint_toleration::WEIGHT
                + affinity[k] * plugins::node_affinity::WEIGHT
                + spread.as_ref().map_or(0, |s| s[k]) * pod_topology_spread::WEIGHT
                + pod_affinity.as_ref().map_or(0, |s| s[k]) * inter_pod_affinity::WEIGHT;
            if total > best.0 {
                best = (total, i);
                ties = 1;
            } else if total == best.0 {
                // Reservoir sampling among equal scores, as upstream's selectHost.
                ties += 1;
                if rand::random::<u32>().is_multiple_of(ties) {
                    best = (total, i);
                }
            }
        }
        best.1
    }
}

/// PostFilter: preemption, and the FitError message with its verdict.
fn preempt(
    pod: &PodInfo,
    snap: &Snapshot,
    nodes: &[&NodeInfo],
    rejected: &[(usize, Rejection)],
    message: String,
    fits: impl Fn(&NodeInfo) -> FilterResult,
) -> Outcome {
    let n = nodes.len();
    let pdbs: Vec<Arc<_>> = snap.objects.pdbs.all().cloned().collect();
    match preemption::find(pod, snap.cache, nodes, rejected, &pdbs, fits) {
        Verdict::Preempt(c) => Outcome::Preempt {
            message,
            node: c.node,
            victims: c.victims,
        },
        // Not eligible: a nomination stays (upstream's PostFilter returns no result).
        Verdict::NotEligible(why) => Outcome::Unschedulable {
            message: format!("{message} preemption: {why}"),
            clear_nomination: false,
        },
        Verdict::Unhelpful(reasons) => Outcome::Unschedulable {
            message: format!(
                "{message} preemption: 0/{n} nodes are available: {}.",
                histogram(reasons.iter().map(String::as_str))
            ),
            clear_nomination: true,
        },
    }
}

impl Default for Framework {
    fn default() -> Self {
        Self::new()
    }
}

/// "N reason, M reason" sorted as upstream's FitError (reason strings sorted).
fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r).or_default() += 1;
    }
    let mut parts: Vec<String> = counts
        .into_iter()
        .map(|(r, c)| format!("{c} {r}"))
        .collect();
    parts.sort();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::objects::ObjectEvent;
    use kube::runtime::watcher::Event;
    use serde_json::{json, Value};

    fn pod(name: &str, priority: i32, cpu: &str, extra: Value) -> Arc<PodInfo> {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": name, "labels": {"app": name}},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}});
        if let (Some(a), Value::Object(b)) = (p.as_object_mut(), extra) {
            for (k, v) in b {
                match (a.get_mut(&k), v) {
                    (Some(Value::Object(x)), Value::Object(y)) => x.extend(y),
                    (_, v) => {
                        a.insert(k, v);
                    }
                }
            }
        }
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(p).expect("pod"),
        )))
    }

    fn cache(nodes: &[&str]) -> Cache {
        let mut c = Cache::default();
        for name in nodes {
            let node = serde_json::from_value(json!({"metadata": {"name": name,
                    "labels": {"kubernetes.io/hostname": name}},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
            .expect("node");
            c.upsert_node(Arc::new(node));
        }
        c
    }

    fn run(pod: &PodInfo, cache: &Cache, nominator: &Nominator, objects: &Objects) -> Outcome {
        let snap = Snapshot {
            cache,
            nominator,
            objects,
        };
        Framework::new().schedule(pod, &snap)
    }

    fn node_of(o: Outcome) -> Option<String> {
        match o {
            Outcome::Fits { node, .. } => Some(node),
            _ => None,
        }
    }

    fn message(o: Outcome) -> String {
        match o {
            Outcome::Unschedulable { message, .. } => message,
            Outcome::Preempt { message, .. } => format!("preempt: {message}"),
            Outcome::Fits { node, .. } => format!("fits {node}"),
        }
    }

    #[test]
    fn nominated_pods_hold_their_room() {
        let c = cache(&["n0"]);
        let objects = Objects::default();
        let mut nominator = Nominator::default();
        let held = pod("held", 100, "3", json!({}));
        nominator.add(held.clone(), "n0");
        // A pod of lower priority may not take the room: the node is full with `held` placed.
        let low = pod(
            "low",
            10,
            "2",
            json!({"spec": {"preemptionPolicy": "Never"}}),
        );
        assert_eq!(
            message(run(&low, &c, &nominator, &objects)),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
        );
        // One of higher priority may (upstream adds only pods of equal or higher priority).
        let high = pod("high", 1000, "2", json!({}));
        assert_eq!(
            node_of(run(&high, &c, &nominator, &objects)).as_deref(),
            Some("n0")
        );
        // The nominated pod itself is not in its own way, and goes to its nominated node.
        let mut own = (*held.pod).clone();
        own.status = serde_json::from_value(json!({"nominatedNodeName": "n0"})).ok();
        let own = PodInfo::new(Arc::new(own));
        assert_eq!(
            node_of(run(&own, &c, &nominator, &objects)).as_deref(),
            Some("n0")
        );
        // Affinity to a nominated pod does not count: it must also fit without it.
        let follower = pod(
            "follower",
            10,
            "100m",
            json!({"spec": {"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "held"}},
                "topologyKey": "kubernetes.io/hostname"}]}}}}),
        );
        let mut room = cache(&["n0"]);
        room.place("n0", pod("other", 0, "0", json!({})));
        let mut n2 = Nominator::default();
        n2.add(pod("held", 100, "100m", json!({})), "n0");
        assert!(node_of(run(&follower, &room, &n2, &objects)).is_none());
    }

    #[test]
    fn volume_binding_messages() {
        let c = cache(&["n0", "n1"]);
        let mut objects = Objects::default();
        for v in [
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "ns"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "local", "namespace": "ns"},
                   "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}}}}),
        ] {
            objects.apply(ObjectEvent::PersistentVolumeClaim(Event::Apply(
                serde_json::from_value(v).expect("pvc"),
            )));
        }
        objects.apply(ObjectEvent::StorageClass(Event::Apply(
            serde_json::from_value(json!({"metadata": {"name": "local"},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer"}))
            .expect("class"),
        )));
        let with_claim = |claim: &str| {
            pod(
                "p",
                0,
                "100m",
                json!({"spec": {"volumes": [
                {"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}}),
            )
        };
        let nominator = Nominator::default();
        assert_eq!(
            message(run(&with_claim("data"), &c, &nominator, &objects)),
            "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            message(run(&with_claim("missing"), &c, &nominator, &objects)),
            "0/2 nodes are available: persistentvolumeclaim \"missing\" not found. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            message(run(&with_claim("local"), &c, &nominator, &objects)),
            "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        // A volume on n1 makes n1 the node, with the binding planned.
        objects.apply(ObjectEvent::PersistentVolume(Event::Apply(
            serde_json::from_value(json!({"metadata": {"name": "pv1"},
                "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                         "capacity": {"storage": "1Gi"},
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}},
                "status": {"phase": "Available"}}))
            .expect("pv"),
        )));
        match run(&with_claim("local"), &c, &nominator, &objects) {
            Outcome::Fits { node, volumes } => {
                assert_eq!(node, "n1");
                let plan = volumes.expect("plan");
                assert_eq!(plan.static_bindings.len(), 1);
            }
            o => panic!("expected a fit, got {}", message(o)),
        }
    }

    #[test]
    fn system_default_spread_follows_the_replica_set() {
        let mut c = cache(&["n0", "n1"]);
        let mut objects = Objects::default();
        objects.apply(ObjectEvent::ReplicaSet(Event::Apply(
            serde_json::from_value(json!({"metadata": {"name": "rs", "namespace": "ns"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}}}))
            .expect("rs"),
        )));
        let replica = |name: &str| {
            pod(
                name,
                0,
                "0",
                json!({"metadata": {"labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                     "uid": "rs", "controller": true}]}}),
            )
        };
        // n1 is emptier by resources (n0 carries a 3-cpu pod of another app)...
        c.place("n0", pod("big", 0, "3", json!({})));
        // ...but already holds three replicas: spreading wins over LeastAllocated.
        for i in 0..3 {
            c.place("n1", replica(&format!("r{i}")));
        }
        let nominator = Nominator::default();
        let new = replica("new");
        for _ in 0..5 {
            assert_eq!(
                node_of(run(&new, &c, &nominator, &objects)).as_deref(),
                Some("n0")
            );
        }
        // Without the ReplicaSet nothing selects the pod: resources decide.
        let bare = Objects::default();
        assert_eq!(
            node_of(run(&new, &c, &nominator, &bare)).as_deref(),
            Some("n1")
        );
    }
}
