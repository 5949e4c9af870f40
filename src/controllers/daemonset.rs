//! Upstream's DaemonSet controller (pkg/controller/daemon, v1.33): one pod per eligible node.
//!
//! A node is eligible by upstream's daemon predicates ([`should_run`]): the template's nodeName,
//! nodeSelector and required node affinity must match it and its NoSchedule/NoExecute taints must be
//! tolerated (with the tolerations every daemon pod gets, [`add_daemon_tolerations`]); a node whose
//! only untolerated taints are NoSchedule keeps the pod it has. Pods are created like upstream's: a
//! required node affinity `matchFields metadata.name In [node]` rather than `spec.nodeName`, so the
//! scheduler binds them (and accounts for their resources); labels `controller-revision-hash` and
//! `pod-template-generation`.
//!
//! Start at [`reconcile`]: claim pods, construct the revision history (a ControllerRevision per
//! template, see `history`), `manage` (create on nodes lacking a pod, delete from nodes that must not
//! run one, extras, failed pods), then the rolling update (maxUnavailable, or maxSurge), history
//! cleanup and status. Expectations keep a sync from acting again before its cache has caught up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use serde_json::json;

use super::common::{self, Expectations, Recorder};
use super::history::{self, HASH_LABEL};
use super::replicaset::{is_available, pod_from_template, ready_since};
use super::Clients;
use crate::scheduler::plugins::node_requirement_matches;
use crate::scheduler::plugins::taint_toleration::tolerates;

/// The pod label carrying the DaemonSet's template generation (extensions.DaemonSetTemplateGenerationKey).
pub const GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation the apiserver keeps the template generation in on apps/v1 DaemonSets.
const GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// Upstream's BurstReplicas for DaemonSets.
const BURST_REPLICAS: usize = 250;

struct Ctx {
    clients: Clients,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    recorder: Recorder,
}

pub async fn run(clients: Clients) {
    let sets = Api::<DaemonSet>::all(clients.reader.clone());
    let (pods, pod_events) = clients.informers.watched::<Pod>();
    let (nodes, node_events) = clients.informers.watched::<Node>();
    let (revisions, revision_events) = clients.informers.watched::<ControllerRevision>();
    let controller = Controller::new(sets, Default::default());
    let by_pod = controller.store();
    let by_node = controller.store();
    let node_seen: std::sync::Mutex<HashMap<String, String>> = Default::default();
    let node_store = nodes.clone();
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), "daemonset-controller"),
        clients,
        pods,
        nodes,
        revisions,
        expectations: Expectations::default(),
    });
    controller
        .watches_stream(pod_events, move |pod: Pod| owners_to_wake(&by_pod, &pod))
        // A node that appears or changes what daemons care about (labels, taints, cordon) can
        // change where every DaemonSet runs; heartbeats and status changes cannot (upstream's
        // shouldIgnoreNodeUpdate), so they wake nothing.
        .watches_stream(node_events, move |node: Node| {
            let mut seen = node_seen.lock().unwrap_or_else(|e| e.into_inner());
            // The store is updated before the event reaches us: a node missing from it was deleted.
            if node_store.get(&ObjectRef::from_obj(&node)).is_none() {
                seen.remove(&node.name_any());
            } else {
                let shape = placement_shape(&node);
                if seen.insert(node.name_any(), shape.clone()) == Some(shape) {
                    return vec![];
                }
            }
            by_node
                .state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(revision_events, |rev: ControllerRevision| {
            let ns = rev.namespace().unwrap_or_default();
            common::controller_of(&rev)
                .filter(|r| r.kind == "DaemonSet")
                .map(|r| ObjectRef::<DaemonSet>::new(&r.name).within(&ns))
        })
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("daemonset controller: {e}");
            }
        })
        .await;
}

/// What of a node decides daemon placement: labels, taints, and cordon (which decides nothing for
/// daemons, as they tolerate it, but upstream compares the whole spec).
fn placement_shape(node: &Node) -> String {
    serde_json::to_string(&(&node.metadata.labels, &node.spec)).unwrap_or_default()
}

fn owners_to_wake(sets: &Store<DaemonSet>, pod: &Pod) -> Vec<ObjectRef<DaemonSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = common::controller_of(pod) {
        if r.kind == "DaemonSet" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return vec![];
    }
    sets.state()
        .iter()
        .filter(|ds| ds.namespace().as_deref() == Some(ns.as_str()) && selects(ds, pod))
        .map(|ds| ObjectRef::from_obj(ds.as_ref()))
        .collect()
}

fn selector_of(ds: &DaemonSet) -> Option<Selector> {
    common::controller_selector(&ds.spec.as_ref()?.selector)
}

fn selects(ds: &DaemonSet, pod: &Pod) -> bool {
    selector_of(ds).is_some_and(|s| s.matches(pod.labels()))
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Upstream's AddOrUpdateDaemonPodTolerations: daemons keep running through node conditions that
/// evict or repel other pods (not-ready, unreachable, pressure, cordon; network for host-network pods).
/// A toleration with the same key and effect is replaced, as AddOrUpdateTolerationInPodSpec does.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    for t in wanted {
        if let Some(existing) = tols
            .iter_mut()
            .find(|e| e.key == t.key && e.effect == t.effect)
        {
            *existing = t;
        } else {
            tols.push(t);
        }
    }
}

/// Upstream's required node affinity match: the nodeSelector and any one required term.
fn affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_ok = spec
        .node_selector
        .as_ref()
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let name: BTreeMap<String, String> = [("metadata.name".to_string(), node.name_any())].into();
    let term_ok = |t: &NodeSelectorTerm| {
        let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
        let fields = t.match_fields.as_deref().unwrap_or(&[]);
        // An empty term matches nothing.
        (!exprs.is_empty() || !fields.is_empty())
            && exprs.iter().all(|r| node_requirement_matches(r, &labels))
            && fields.iter().all(|r| node_requirement_matches(r, &name))
    };
    let required_ok = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|req| req.node_selector_terms.iter().any(term_ok));
    selector_ok && required_ok
}

/// Upstream's NodeShouldRunDaemonPod: (should a daemon pod run here, may an existing one stay).
pub fn should_run(ds: &DaemonSet, node: &Node) -> (bool, bool) {
    let Some(mut spec) = ds.spec.as_ref().and_then(|s| s.template.spec.clone()) else {
        return (false, false);
    };
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node.name_any())
    {
        return (false, false);
    }
    add_daemon_tolerations(&mut spec);
    if !affinity_matches(&spec, node) {
        return (false, false);
    }
    let taints: &[Taint] = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tols = spec.tolerations.as_deref().unwrap_or(&[]);
    let untolerated = |effects: &[&str]| {
        taints.iter().any(|t| {
            effects.contains(&t.effect.as_str()) && !tols.iter().any(|tol| tolerates(tol, t))
        })
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        // A pod already there may stay unless a NoExecute taint would evict it.
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

/// The node a daemon pod is for: its nodeName, or the single `metadata.name` of its node affinity
/// (upstream's GetTargetNodeName).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.as_ref()?.iter().find_map(|r| {
            let values = r.values.as_deref().unwrap_or(&[]);
            (r.key == "metadata.name" && r.operator == "In" && values.len() == 1)
                .then(|| values[0].clone())
        })
    })
}

/// Upstream's ReplaceDaemonSetPodNodeNameNodeAffinity: the required node affinity becomes the
/// single term `metadata.name In [node]` (other affinity kinds are kept).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
            match_expressions: None,
        }],
    };
    let mut a = affinity.unwrap_or_default();
    let na = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(selector);
    a
}

/// The template generation (the apiserver's annotation; our apiserver does not write it yet, so the
/// object's generation stands in: it moves on every template change too, so a pod labelled with the
/// current one was made from the current template).
fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.annotations()
        .get(GENERATION_ANNOTATION)
        .and_then(|g| g.parse().ok())
        .or(ds.metadata.generation)
}

/// Upstream's IsPodUpdated: the pod carries the current hash or template generation.
fn is_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let labels = pod.labels();
    let gen_ok = generation.is_some_and(|g| labels.get(GENERATION_LABEL) == Some(&g.to_string()));
    let hash_ok = !hash.is_empty() && labels.get(HASH_LABEL).map(String::as_str) == Some(hash);
    hash_ok || gen_ok
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Upstream's podByCreationTimestampAndPhase: running before not, then oldest first.
fn sort_oldest_first(pods: &mut [Arc<Pod>]) {
    pods.sort_by_key(|p| {
        (
            phase(p) != "Running",
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.name_any(),
        )
    });
}

fn int_or_percent(v: Option<&IntOrString>, default: i32, total: i32) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        // Upstream rounds DaemonSet percentages up.
        Some(IntOrString::String(s)) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            ((p * total as i64 + 99) / 100) as i32
        }
        None => default,
    }
}

/// (maxSurge, maxUnavailable) for `desired` nodes (upstream's SurgeCount / UnavailableCount, with the
/// 0/0 guard of updatedDesiredNodeCounts).
fn fenceposts(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = int_or_percent(ru.and_then(|r| r.max_surge.as_ref()), 0, desired);
    let mut unavailable = int_or_percent(ru.and_then(|r| r.max_unavailable.as_ref()), 1, desired);
    if desired > 0 && surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn is_rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let key = common::key_of(ds.as_ref());
    if selector_of(&ds).is_none() {
        common::record(
            &ctx.recorder,
            ds.as_ref(),
            EventType::Warning,
            "SelectingAll",
            "Sync",
            "This daemon set is selecting all pods. A non-empty selector is required.".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let nodes: Vec<Arc<Node>> = ctx.nodes.state();
    let owned = claim_pods(&ds, &ctx).await;
    let Some((hash, old_revs)) = construct_history(&ds, &ctx).await? else {
        // A hash collision bumped collisionCount: the status event brings us back.
        return Ok(Action::await_change());
    };

    let names: HashSet<String> = owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect();
    if ctx.expectations.satisfied(&key, |n| names.contains(n)) {
        let (delete, create) = manage(&ds, &ctx, &nodes, &owned, &hash).await;
        sync_nodes(&ds, &ctx, &key, delete, create, &hash).await;
        if ctx.expectations.satisfied(&key, |n| names.contains(n)) && is_rolling(&ds) {
            let (delete, create) = rolling_update(&ds, &nodes, &owned, &hash);
            sync_nodes(&ds, &ctx, &key, delete, create, &hash).await;
        }
        cleanup_history(&ds, &ctx, &owned, old_revs).await;
    }
    update_status(&ds, &ctx, &nodes, &owned, &hash).await
}

/// Owned pods that match stay, matching orphans are adopted, owned pods that stopped matching are
/// released (upstream's ControllerRefManager).
async fn claim_pods(ds: &DaemonSet, ctx: &Ctx) -> Vec<Arc<Pod>> {
    let ns = ds.namespace().unwrap_or_default();
    let uid = ds.uid().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    let mut owned = Vec::new();
    for pod in ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
    {
        let ours = common::controller_of(pod.as_ref()).map(|r| r.uid == uid);
        let matches = selects(ds, &pod);
        let refs = match (ours, matches) {
            (Some(true), true) => {
                owned.push(pod);
                continue;
            }
            (Some(true), false) => pod
                .owner_references()
                .iter()
                .filter(|r| r.uid != uid)
                .cloned()
                .collect::<Vec<_>>(),
            (None, true) if pod.metadata.deletion_timestamp.is_none() => {
                let mut refs = pod.owner_references().to_vec();
                refs.push(common::controller_ref(ds));
                refs
            }
            _ => continue,
        };
        // The uid makes the patch fail if the pod was replaced under the same name.
        let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.uid()}});
        if let Ok(p) = api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            if ours.is_none() {
                owned.push(Arc::new(p));
            }
        }
    }
    owned
}

/// Upstream's constructHistory: the revision of the current template (created, or renumbered to be
/// the newest) and the others. Returns the current revision's hash, or None after a name collision.
async fn construct_history(
    ds: &DaemonSet,
    ctx: &Ctx,
) -> Result<Option<(String, Vec<Arc<ControllerRevision>>)>, kube::Error> {
    let ns = ds.namespace().unwrap_or_default();
    let uid = ds.uid().unwrap_or_default();
    let api = Api::<ControllerRevision>::namespaced(ctx.clients.writer.clone(), &ns);
    let Some(template) = ds.spec.as_ref().map(|s| s.template.clone()) else {
        return Ok(None);
    };
    let patch = history::template_patch(&template);
    let revs = history::owned(&ctx.revisions, &ns, &uid);
    let (mut current, old): (Vec<_>, Vec<_>) =
        revs.into_iter().partition(|r| history::holds(r, &patch));
    let max_old = old.iter().map(|r| r.revision).max().unwrap_or(0);
    // Duplicates of the current template (dedupCurHistory): keep the newest.
    current.sort_by_key(|r| r.revision);
    let keep = current.pop();
    for dup in current {
        let _ = api.delete(&dup.name_any(), &DeleteParams::default()).await;
    }
    let cur = match keep {
        Some(cur) if cur.revision > max_old => cur.as_ref().clone(),
        Some(cur) => {
            let body = json!({"revision": max_old + 1});
            api.patch(
                &cur.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await?
        }
        None => {
            let collision = ds.status.as_ref().and_then(|s| s.collision_count);
            let hash = super::deployment::template_hash(&template, collision);
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(HASH_LABEL.into(), hash.clone());
            let rev = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(format!("{}-{hash}", ds.name_any())),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: ds.metadata.annotations.clone(),
                    owner_references: Some(vec![common::controller_ref(ds)]),
                    ..Default::default()
                },
                data: Some(RawExtension(patch.clone())),
                revision: max_old + 1,
            };
            match api.create(&PostParams::default(), &rev).await {
                Ok(r) => r,
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let existing = api.get(&rev.name_any()).await?;
                    if history::holds(&existing, &patch)
                        && common::controller_of(&existing).is_some_and(|r| r.uid == uid)
                    {
                        existing
                    } else {
                        // Another template hashed to this name: bump collisionCount (upstream).
                        let sets = Api::<DaemonSet>::namespaced(ctx.clients.writer.clone(), &ns);
                        let mut status = ds.status.clone().unwrap_or_default();
                        status.collision_count = Some(collision.unwrap_or(0) + 1);
                        common::write_status(&sets, ds, status, |d, s| d.status = Some(s)).await?;
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    let hash = cur.labels().get(HASH_LABEL).cloned().unwrap_or_default();
    Ok(Some((hash, old)))
}

/// Pods grouped by the node they are for; terminal pods already being deleted are left out
/// (upstream's getNodesToDaemonPods).
fn by_node(owned: &[Arc<Pod>]) -> HashMap<String, Vec<Arc<Pod>>> {
    let mut map: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for p in owned {
        let terminal = matches!(phase(p), "Succeeded" | "Failed");
        if terminal && p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(p) {
            map.entry(node).or_default().push(p.clone());
        }
    }
    map
}

/// Upstream's manage / podsShouldBeOnNode: (pods to delete, nodes needing a pod).
async fn manage(
    ds: &DaemonSet,
    ctx: &Ctx,
    nodes: &[Arc<Node>],
    owned: &[Arc<Pod>],
    hash: &str,
) -> (Vec<Arc<Pod>>, Vec<String>) {
    let mut map = by_node(owned);
    let surge = fenceposts(ds, 1).0 > 0 && is_rolling(ds);
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let now = Timestamp::now();
    let mut delete: Vec<Arc<Pod>> = Vec::new();
    let mut create = Vec::new();
    for node in nodes {
        let name = node.name_any();
        let (run, keep) = should_run(ds, node);
        let pods = map.remove(&name);
        match pods {
            None if run => create.push(name),
            Some(pods) if keep => {
                let mut running = Vec::new();
                for p in pods {
                    if p.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    match phase(&p) {
                        "Failed" => {
                            common::record(
                                &ctx.recorder,
                                ds,
                                EventType::Warning,
                                "FailedDaemonPod",
                                "Sync",
                                format!(
                                    "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                                    p.namespace().unwrap_or_default(),
                                    p.name_any()
                                ),
                            )
                            .await;
                            delete.push(p);
                        }
                        "Succeeded" => delete.push(p),
                        _ => running.push(p),
                    }
                }
                if running.len() <= 1 {
                    continue;
                }
                sort_oldest_first(&mut running);
                if !surge {
                    // Without surge a node keeps only its oldest daemon pod.
                    delete.extend(running.into_iter().skip(1));
                    continue;
                }
                // With surge a node may hold one new and one old pod while the new one comes up.
                let (mut oldest_new, mut oldest_old) = (None, None);
                for p in running {
                    let is_new = p.labels().get(HASH_LABEL).map(String::as_str) == Some(hash);
                    let slot = if is_new {
                        &mut oldest_new
                    } else {
                        &mut oldest_old
                    };
                    if slot.is_none() {
                        *slot = Some(p);
                    } else {
                        delete.push(p);
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                    if ready_since(&old).is_none() || is_available(&new, min_ready, now) {
                        delete.push(old);
                    }
                }
            }
            Some(pods) if !keep => delete.extend(
                pods.into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none()),
            ),
            _ => {}
        }
    }
    // Pods for nodes that no longer exist (upstream's getUnscheduledPodsWithoutNode, for pods
    // the scheduler has not bound yet; bound pods on vanished nodes are the pod GC's).
    for pods in map.into_values() {
        delete.extend(pods.into_iter().filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()
        }));
    }
    (delete, create)
}

/// Upstream's rollingUpdate: (old pods to delete, nodes to surge onto).
fn rolling_update(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    owned: &[Arc<Pod>],
    hash: &str,
) -> (Vec<Arc<Pod>>, Vec<String>) {
    let mut map = by_node(owned);
    let mut desired = 0;
    for node in nodes {
        if should_run(ds, node).0 {
            desired += 1;
            map.entry(node.name_any()).or_default();
        }
    }
    let (max_surge, max_unavailable) = fenceposts(ds, desired);
    let generation = template_generation(ds);
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let now = Timestamp::now();
    let available = |p: &Pod| is_available(p, min_ready, now);
    // findUpdatedPodsOnNode: None when a node has more than one of either kind.
    type OldNew = (Option<Arc<Pod>>, Option<Arc<Pod>>);
    let split = |pods: &[Arc<Pod>]| -> Option<OldNew> {
        let (mut new, mut old) = (None, None);
        for p in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let slot = if is_updated(p, hash, generation) {
                &mut new
            } else {
                &mut old
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(p.clone());
        }
        Some((new, old))
    };
    let mut entries: Vec<(String, Vec<Arc<Pod>>)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut allowed = Vec::new();
        let mut candidates = Vec::new();
        for (_, pods) in &entries {
            match split(pods) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(&new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(&old) {
                        allowed.push(old);
                    } else if unavailable < max_unavailable {
                        candidates.push(old);
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).max(0) as usize;
        allowed.extend(candidates.into_iter().take(room));
        return (allowed, vec![]);
    }
    let mut surged = 0;
    let mut delete = Vec::new();
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    for (node, pods) in &entries {
        match split(pods) {
            None => surged += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) => {
                if !available(&old) {
                    allowed.push(node.clone());
                } else if surged < max_surge {
                    candidates.push(node.clone());
                }
            }
            Some((Some(new), Some(old))) => {
                if available(&new) {
                    delete.push(old);
                } else {
                    surged += 1;
                }
            }
        }
    }
    let room = (max_surge - surged).max(0) as usize;
    allowed.extend(candidates.into_iter().take(room));
    (delete, allowed)
}

/// The template daemon pods are made from (upstream's CreatePodTemplate).
fn pod_template(ds: &DaemonSet, hash: &str) -> Option<PodTemplateSpec> {
    let mut t = ds.spec.as_ref()?.template.clone();
    if let Some(spec) = t.spec.as_mut() {
        add_daemon_tolerations(spec);
    }
    let labels = t
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    if let Some(g) = template_generation(ds) {
        labels.insert(GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(HASH_LABEL.into(), hash.into());
    }
    Some(t)
}

/// Upstream's syncNodes: deletes, then creates in slow-start batches, each with expectations and
/// SuccessfulCreate / SuccessfulDelete events.
async fn sync_nodes(
    ds: &DaemonSet,
    ctx: &Ctx,
    key: &str,
    mut delete: Vec<Arc<Pod>>,
    mut create: Vec<String>,
    hash: &str,
) {
    delete.truncate(BURST_REPLICAS);
    create.truncate(BURST_REPLICAS);
    let ns = ds.namespace().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    if !delete.is_empty() {
        ctx.expectations
            .expect(key, vec![], delete.iter().map(|p| p.name_any()).collect());
        common::delete_pods(&api, &ctx.recorder, ds, &delete).await;
    }
    if create.is_empty() {
        return;
    }
    let Some(template) = pod_template(ds, hash) else {
        return;
    };
    let mut batch = 1;
    let mut next = 0;
    while next < create.len() {
        let chunk = &create[next..(next + batch).min(create.len())];
        next += chunk.len();
        batch *= 2;
        let results = futures::future::join_all(chunk.iter().map(|node| {
            let mut pod = pod_from_template(&template, ds, format!("{}-", ds.name_any()));
            if let Some(spec) = pod.spec.as_mut() {
                spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
            }
            let api = api.clone();
            async move { api.create(&PostParams::default(), &pod).await }
        }))
        .await;
        let created: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|p| p.name_any()))
            .collect();
        ctx.expectations.expect(key, created.clone(), vec![]);
        for name in created {
            common::record(
                &ctx.recorder,
                ds,
                EventType::Normal,
                "SuccessfulCreate",
                "Create",
                format!("Created pod: {name}"),
            )
            .await;
        }
        if let Some(e) = results.into_iter().find_map(|r| r.err()) {
            let msg = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            common::record(
                &ctx.recorder,
                ds,
                EventType::Warning,
                "FailedCreate",
                "Create",
                format!("Error creating: {msg}"),
            )
            .await;
            // Upstream stops at the first failing batch (the rest would likely fail too).
            return;
        }
    }
}

/// Upstream's cleanupHistory: old revisions no live pod carries, oldest first, beyond the limit.
async fn cleanup_history(
    ds: &DaemonSet,
    ctx: &Ctx,
    owned: &[Arc<Pod>],
    old: Vec<Arc<ControllerRevision>>,
) {
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(history::DEFAULT_HISTORY_LIMIT);
    let live: HashSet<&str> = owned
        .iter()
        .filter_map(|p| p.labels().get(HASH_LABEL).map(String::as_str))
        .collect();
    let candidates: Vec<Arc<ControllerRevision>> = old
        .into_iter()
        .filter(|r| {
            r.labels()
                .get(HASH_LABEL)
                .is_none_or(|h| !live.contains(h.as_str()))
        })
        .collect();
    let api = Api::<ControllerRevision>::namespaced(
        ctx.clients.writer.clone(),
        &ds.namespace().unwrap_or_default(),
    );
    history::truncate(&api, &candidates, limit).await;
}

/// Upstream's updateDaemonSetStatus.
async fn update_status(
    ds: &DaemonSet,
    ctx: &Ctx,
    nodes: &[Arc<Node>],
    owned: &[Arc<Pod>],
    hash: &str,
) -> Result<Action, kube::Error> {
    let map = by_node(owned);
    let generation = template_generation(ds);
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let now = Timestamp::now();
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut available, mut updated) = (0, 0, 0);
    for node in nodes {
        let (run, _) = should_run(ds, node);
        let pods = map.get(&node.name_any()).filter(|p| !p.is_empty());
        if !run {
            misscheduled += pods.is_some() as i32;
            continue;
        }
        desired += 1;
        let Some(pods) = pods else { continue };
        current += 1;
        let mut pods = pods.clone();
        sort_oldest_first(&mut pods);
        let pod = &pods[0];
        if ready_since(pod).is_some() {
            ready += 1;
            available += is_available(pod, min_ready, now) as i32;
        }
        updated += is_updated(pod, hash, generation) as i32;
    }
    let old = ds.status.clone().unwrap_or_default();
    let status = DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_misscheduled: misscheduled,
        number_ready: ready,
        number_available: Some(available),
        number_unavailable: Some(desired - available),
        updated_number_scheduled: Some(updated),
        observed_generation: ds.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
    };
    if ds.status.as_ref() != Some(&status) {
        let api = Api::<DaemonSet>::namespaced(
            ctx.clients.writer.clone(),
            &ds.namespace().unwrap_or_default(),
        );
        common::write_status(&api, ds, status, |d, s| d.status = Some(s)).await?;
    }
    if min_ready > 0 && ready != available {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

fn retry_later(_ds: Arc<DaemonSet>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("daemonset controller: {error}");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "n", "generation": 3},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}}
        }))
        .unwrap()
    }

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}
        }))
        .unwrap()
    }

    fn plain() -> serde_json::Value {
        json!({"containers": [{"name": "c", "image": "i"}]})
    }

    #[test]
    fn every_untainted_node_runs_a_daemon() {
        assert_eq!(
            should_run(&ds(plain()), &node("n1", json!({}), json!([]))),
            (true, true)
        );
    }

    #[test]
    fn node_selector_and_required_affinity_filter_nodes() {
        let mut spec = plain();
        spec["nodeSelector"] = json!({"disk": "ssd"});
        let d = ds(spec);
        assert_eq!(
            should_run(&d, &node("n1", json!({"disk": "ssd"}), json!([]))),
            (true, true)
        );
        assert_eq!(
            should_run(&d, &node("n2", json!({}), json!([]))),
            (false, false)
        );
        let mut spec = plain();
        spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}});
        let d = ds(spec);
        assert_eq!(
            should_run(&d, &node("n1", json!({}), json!([]))),
            (false, false)
        );
        assert_eq!(
            should_run(&d, &node("n2", json!({}), json!([]))),
            (true, true)
        );
        let mut spec = plain();
        spec["nodeName"] = "n2".into();
        assert_eq!(
            should_run(&ds(spec), &node("n1", json!({}), json!([]))),
            (false, false)
        );
    }

    #[test]
    fn taints_repel_but_no_schedule_keeps_running_pods() {
        let d = ds(plain());
        let no_schedule = node(
            "n",
            json!({}),
            json!([{"key": "k", "effect": "NoSchedule"}]),
        );
        assert_eq!(should_run(&d, &no_schedule), (false, true));
        let no_execute = node("n", json!({}), json!([{"key": "k", "effect": "NoExecute"}]));
        assert_eq!(should_run(&d, &no_execute), (false, false));
        let prefer = node(
            "n",
            json!({}),
            json!([{"key": "k", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(should_run(&d, &prefer), (true, true));
        let mut spec = plain();
        spec["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
        assert_eq!(should_run(&ds(spec), &no_execute), (true, true));
    }

    #[test]
    fn daemons_tolerate_node_conditions_and_cordons() {
        let d = ds(plain());
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            let n = node("n", json!({}), json!([{"key": key, "effect": effect}]));
            assert_eq!(should_run(&d, &n), (true, true), "{key}");
        }
        let net = node(
            "n",
            json!({}),
            json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
        );
        assert_eq!(should_run(&d, &net), (false, true));
        let mut spec = plain();
        spec["hostNetwork"] = true.into();
        assert_eq!(should_run(&ds(spec), &net), (true, true));
    }

    #[test]
    fn tolerations_are_added_once() {
        let mut spec: PodSpec = serde_json::from_value(plain()).unwrap();
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        assert_eq!(spec.tolerations.as_ref().map(Vec::len), Some(6));
    }

    #[test]
    fn pods_are_pinned_by_node_affinity_and_found_again() {
        let a = pin_to_node(None, "n7");
        let pod = Pod {
            spec: Some(PodSpec {
                affinity: Some(a.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(target_node(&pod), Some("n7".into()));
        // An existing required affinity is replaced by the pin, preferred terms stay.
        let existing: Affinity = serde_json::from_value(json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "x", "operator": "Exists"}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "y", "operator": "Exists"}]}}]}}))
        .unwrap();
        let pinned = pin_to_node(Some(existing), "n1");
        let na = pinned.node_affinity.unwrap();
        assert_eq!(
            na.required_during_scheduling_ignored_during_execution,
            a.node_affinity
                .unwrap()
                .required_during_scheduling_ignored_during_execution
                .map(|mut s| {
                    s.node_selector_terms[0].match_fields.as_mut().unwrap()[0].values =
                        Some(vec!["n1".into()]);
                    s
                })
        );
        assert!(na
            .preferred_during_scheduling_ignored_during_execution
            .is_some());
    }

    #[test]
    fn fenceposts_default_to_one_unavailable() {
        let d = ds(plain());
        assert_eq!(fenceposts(&d, 3), (0, 1));
        let mut d2 = d.clone();
        d2.spec.as_mut().unwrap().update_strategy = serde_json::from_value(json!({
            "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%", "maxSurge": 0}}))
        .unwrap();
        assert_eq!(fenceposts(&d2, 3), (0, 2));
        d2.spec.as_mut().unwrap().update_strategy = serde_json::from_value(json!({
            "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}))
        .unwrap();
        assert_eq!(fenceposts(&d2, 3), (0, 1));
    }

    #[test]
    fn pod_is_updated_by_hash_or_generation() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"labels": {
            HASH_LABEL: "abc", GENERATION_LABEL: "2"}}}))
        .unwrap();
        assert!(is_updated(&pod, "abc", Some(1)));
        assert!(is_updated(&pod, "xyz", Some(2)));
        assert!(!is_updated(&pod, "xyz", Some(3)));
    }
}
