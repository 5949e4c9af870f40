//! Upstream's StatefulSet controller (pkg/controller/statefulset, v1.33): pods with stable names
//! `<set>-<ordinal>`, hostnames and claims, created, deleted and updated in ordinal order.
//!
//! Start at [`reconcile`]: claim pods (owned, selected, and named like members), resolve the current
//! and update revisions (ControllerRevisions named `<set>-<hash>`, see `history`), then
//! [`update_set`], which follows upstream's updateStatefulSet: every ordinal in `[start, start+replicas)`
//! gets a pod (its PersistentVolumeClaims from `volumeClaimTemplates` first), pods outside that range
//! are condemned and deleted highest first, and a RollingUpdate deletes the highest ordinal at or
//! above the partition whose revision is not the update revision (it comes back at the new one).
//! With `podManagementPolicy: OrderedReady` every step waits for the pods before it to be Running and
//! Ready; `Parallel` does not wait. Status and history truncation follow.
//!
//! Upstream has no expectations here (a pod name can only be created once); we add them so a sync
//! triggered by our own status write, before the pod cache has seen a creation, neither re-creates
//! nor re-deletes (which would only fail, but would record duplicate events).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
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

/// The pod label naming the pod (apps.StatefulSetPodNameLabel).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label with its ordinal (apps.PodIndexLabel).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label a StatefulSet's revisions carry their hash in (history.ControllerRevisionHashLabel).
const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

struct Ctx {
    clients: Clients,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    expectations: Expectations,
    recorder: Recorder,
}

pub async fn run(clients: Clients) {
    let sets = Api::<StatefulSet>::all(clients.reader.clone());
    let (pods, pod_events) = clients.informers.watched::<Pod>();
    let (revisions, revision_events) = clients.informers.watched::<ControllerRevision>();
    let claims = clients.informers.store::<PersistentVolumeClaim>();
    let controller = Controller::new(sets, Default::default());
    let set_store = controller.store();
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), "statefulset-controller"),
        clients,
        pods,
        revisions,
        claims,
        expectations: Expectations::default(),
    });
    controller
        .watches_stream(pod_events, move |pod: Pod| owners_to_wake(&set_store, &pod))
        .watches_stream(revision_events, |rev: ControllerRevision| {
            let ns = rev.namespace().unwrap_or_default();
            common::controller_of(&rev)
                .filter(|r| r.kind == "StatefulSet")
                .map(|r| ObjectRef::<StatefulSet>::new(&r.name).within(&ns))
        })
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("statefulset controller: {e}");
            }
        })
        .await;
}

fn owners_to_wake(sets: &Store<StatefulSet>, pod: &Pod) -> Vec<ObjectRef<StatefulSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = common::controller_of(pod) {
        if r.kind == "StatefulSet" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return vec![];
    }
    sets.state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()) && selects(s, pod))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn selects(set: &StatefulSet, pod: &Pod) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| Selector::try_from(s.selector.clone()).ok())
        .is_some_and(|s| s.matches(pod.labels()))
}

/// Upstream's getParentNameAndOrdinal: `<parent>-<ordinal>`, the ordinal a non-negative int32.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod.metadata.name.as_deref()?).map(|(_, o)| o)
}

fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

/// The first ordinal (`spec.ordinals.start`, upstream's getStartOrdinal).
fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

fn in_range(set: &StatefulSet, ord: i32) -> bool {
    let start = start_ordinal(set);
    ord >= start && ord < start + replicas(set)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && ready_since(pod).is_some()
}

fn running_and_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    phase(pod) == "Running" && is_available(pod, min_ready, now)
}

fn healthy(pod: &Pod) -> bool {
    running_and_ready(pod) && !terminating(pod)
}

fn pod_revision(pod: &Pod) -> Option<&str> {
    pod.labels().get(HASH_LABEL).map(String::as_str)
}

/// `<claim>-<set>-<ordinal>` claims from the templates (upstream's getPersistentVolumeClaims), in
/// template order, labelled with the set's selector labels.
pub fn claims_for(set: &StatefulSet, ord: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let Some(spec) = set.spec.as_ref() else {
        return vec![];
    };
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let template_name = t.name_any();
            let mut claim = t.clone();
            claim.metadata.name = Some(format!("{template_name}-{}-{ord}", set.name_any()));
            claim.metadata.namespace = set.namespace();
            let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(selector_labels.clone());
            claim.status = None;
            (template_name, claim)
        })
        .collect()
}

/// The pod for `ord` from `set`'s template at `revision` (upstream's newStatefulSetPod with
/// initIdentity, updateStorage and setPodRevision).
pub fn new_pod(set: &StatefulSet, ord: i32, revision: &str) -> Pod {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let name = format!("{}-{ord}", set.name_any());
    let mut pod = pod_from_template(&template, set, String::new());
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = set.namespace();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
    labels.insert(HASH_LABEL.into(), revision.into());
    let service = set.spec.as_ref().and_then(|s| s.service_name.clone());
    let claims = claims_for(set, ord);
    if let Some(spec) = pod.spec.as_mut() {
        spec.hostname = Some(name);
        spec.subdomain = service.filter(|s| !s.is_empty());
        // Claim volumes first, then the template's own volumes a claim does not replace.
        let mut volumes: Vec<Volume> = claims
            .iter()
            .map(|(template, claim)| Volume {
                name: template.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.name_any(),
                    read_only: Some(false),
                }),
                ..Default::default()
            })
            .collect();
        for v in spec.volumes.take().unwrap_or_default() {
            if !claims.iter().any(|(t, _)| *t == v.name) {
                volumes.push(v);
            }
        }
        spec.volumes = (!volumes.is_empty()).then_some(volumes);
    }
    pod
}

/// The owner references a claim should have under the retention policy (upstream's
/// updateClaimOwnerRefForSetAndPod); `scaled_down` when the pod's ordinal is out of range.
pub fn claim_refs(
    refs: &[OwnerReference],
    set: &StatefulSet,
    pod: &Pod,
    scaled_down: bool,
) -> Vec<OwnerReference> {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    let when_deleted = delete(policy.and_then(|p| p.when_deleted.as_ref()));
    let when_scaled = delete(policy.and_then(|p| p.when_scaled.as_ref()));
    let set_uid = set.uid().unwrap_or_default();
    let pod_uid = pod.uid().unwrap_or_default();
    let (want_set, want_pod) = match (when_scaled, when_deleted) {
        (false, false) => (false, false),
        (false, true) => (true, false),
        (true, false) => (false, scaled_down),
        (true, true) => (!scaled_down, scaled_down),
    };
    let mut out: Vec<OwnerReference> = refs
        .iter()
        .filter(|r| r.uid != set_uid && (pod_uid.is_empty() || r.uid != pod_uid))
        .cloned()
        .collect();
    // Plain (non-controller) references, as upstream's setOwnerRef writes them.
    let plain = |api_version: &str, kind: &str, name: String, uid: String| OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name,
        uid,
        ..Default::default()
    };
    if want_set {
        out.push(plain("apps/v1", "StatefulSet", set.name_any(), set_uid));
    }
    if want_pod && !pod_uid.is_empty() {
        out.push(plain("v1", "Pod", pod.name_any(), pod_uid));
    }
    out
}

/// A replica slot: a pod from the cache, or one to create.
struct Slot {
    pod: Pod,
    created: bool,
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let key = common::key_of(set.as_ref());
    let pods = claim_pods(&set, &ctx).await;
    let Some((current, update, collision)) = revisions(&set, &ctx).await? else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let live: HashSet<String> = pods
        .iter()
        .filter(|p| !terminating(p))
        .map(|p| p.name_any())
        .collect();
    let act = set.metadata.deletion_timestamp.is_none()
        && ctx.expectations.satisfied(&key, |n| live.contains(n));
    let (status, retry) =
        update_set(&set, &ctx, &key, &pods, &current, &update, collision, act).await?;
    write_status(&set, &ctx, status.clone()).await?;

    // Truncate history: revisions neither current, update, nor carried by a pod.
    let mut keep: HashSet<String> = pods
        .iter()
        .filter_map(|p| pod_revision(p).map(String::from))
        .collect();
    keep.insert(status.current_revision.clone().unwrap_or_default());
    keep.insert(current.name_any());
    keep.insert(update.name_any());
    let ns = set.namespace().unwrap_or_default();
    let old: Vec<Arc<ControllerRevision>> =
        history::owned(&ctx.revisions, &ns, &set.uid().unwrap_or_default())
            .into_iter()
            .filter(|r| !keep.contains(&r.name_any()))
            .collect();
    let limit = set
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(history::DEFAULT_HISTORY_LIMIT);
    let api = Api::<ControllerRevision>::namespaced(ctx.clients.writer.clone(), &ns);
    history::truncate(&api, &old, limit).await;

    if retry {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let min_ready = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if min_ready > 0 && status.available_replicas != Some(replicas(&set)) {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

/// Owned members stay; matching orphans named `<set>-<n>` are adopted; owned pods that no longer
/// match or are not members are released (upstream's getPodsForStatefulSet with isMemberOf).
async fn claim_pods(set: &StatefulSet, ctx: &Ctx) -> Vec<Arc<Pod>> {
    let ns = set.namespace().unwrap_or_default();
    let uid = set.uid().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    let name = set.name_any();
    let mut owned = Vec::new();
    for pod in ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
    {
        let member = pod
            .metadata
            .name
            .as_deref()
            .and_then(parent_and_ordinal)
            .is_some_and(|(p, _)| p == name);
        let wanted = member && selects(set, &pod);
        let ours = common::controller_of(pod.as_ref()).map(|r| r.uid == uid);
        let refs = match (ours, wanted) {
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
            (None, true) if set.metadata.deletion_timestamp.is_none() && !terminating(&pod) => {
                let mut refs = pod.owner_references().to_vec();
                refs.push(common::controller_ref(set));
                refs
            }
            _ => continue,
        };
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

/// Upstream's getStatefulSetRevisions: (current, update, collisionCount); None when the status
/// write for a collision must land first.
async fn revisions(
    set: &StatefulSet,
    ctx: &Ctx,
) -> Result<Option<(ControllerRevision, ControllerRevision, i32)>, kube::Error> {
    let ns = set.namespace().unwrap_or_default();
    let api = Api::<ControllerRevision>::namespaced(ctx.clients.writer.clone(), &ns);
    let revs = history::owned(&ctx.revisions, &ns, &set.uid().unwrap_or_default());
    let mut collision = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let patch = history::template_patch(&template);
    let next = history::next_revision(&revs);
    let equal: Vec<&Arc<ControllerRevision>> =
        revs.iter().filter(|r| history::holds(r, &patch)).collect();
    let update = match (equal.last(), revs.last()) {
        // The newest revision already holds this template.
        (Some(e), Some(last)) if e.name_any() == last.name_any() => last.as_ref().clone(),
        // An older one does (a rollback): it becomes the newest.
        (Some(e), _) => {
            let body = json!({"revision": next});
            api.patch(&e.name_any(), &PatchParams::default(), &Patch::Merge(&body))
                .await?
        }
        (None, _) => {
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            let mut rev = ControllerRevision {
                metadata: Default::default(),
                data: Some(RawExtension(patch.clone())),
                revision: next,
            };
            // Upstream's CreateControllerRevision: a name taken by other data bumps the
            // collision count into the hash and tries again.
            loop {
                let hash = history::revision_hash(&patch, Some(collision));
                labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
                rev.metadata = kube::api::ObjectMeta {
                    name: Some(history::revision_name(&set.name_any(), &hash)),
                    namespace: Some(ns.clone()),
                    labels: Some(labels.clone()),
                    annotations: set.metadata.annotations.clone(),
                    owner_references: Some(vec![common::controller_ref(set)]),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &rev).await {
                    Ok(r) => break r,
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let existing = api.get(&rev.name_any()).await?;
                        if history::holds(&existing, &patch) {
                            break existing;
                        }
                        collision += 1;
                        if collision > 1000 {
                            return Ok(None);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };
    let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
    let current = revs
        .iter()
        .find(|r| Some(r.name_any()) == current_name)
        .map(|r| r.as_ref().clone())
        .unwrap_or_else(|| update.clone());
    Ok(Some((current, update, collision)))
}

/// `set` with the template a revision holds (upstream's ApplyRevision).
fn at_revision(set: &StatefulSet, rev: &ControllerRevision) -> StatefulSet {
    let mut s = set.clone();
    if let (Some(spec), Some(t)) = (s.spec.as_mut(), history::template_of(rev)) {
        spec.template = t;
    }
    s
}

/// `spec.updateStrategy.rollingUpdate.partition` when rollingUpdate is set.
fn partition(set: &StatefulSet) -> Option<i32> {
    let strategy = set.spec.as_ref()?.update_strategy.as_ref()?;
    Some(strategy.rolling_update.as_ref()?.partition.unwrap_or(0))
}

/// RollingUpdate is the default strategy; OnDelete leaves replacement to whoever deletes pods.
fn rolling(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete")
}

/// Upstream's updateStatus over the replica and condemned pods.
fn count(
    status: &mut StatefulSetStatus,
    pods: &[&Pod],
    min_ready: i32,
    current: &str,
    update: &str,
) {
    let now = Timestamp::now();
    let (mut total, mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0, 0);
    for p in pods {
        let created = !phase(p).is_empty();
        total += created as i32;
        if running_and_ready(p) {
            ready += 1;
            available += running_and_available(p, min_ready, now) as i32;
        }
        if created && !terminating(p) {
            cur += (pod_revision(p) == Some(current)) as i32;
            upd += (pod_revision(p) == Some(update)) as i32;
        }
    }
    status.replicas = total;
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(cur);
    status.updated_replicas = Some(upd);
}

/// Upstream's updateStatefulSet: returns the status to write and whether to retry soon (a claim
/// could not be created); acts only when `act`.
#[allow(clippy::too_many_arguments)]
async fn update_set(
    set: &StatefulSet,
    ctx: &Ctx,
    key: &str,
    pods: &[Arc<Pod>],
    current: &ControllerRevision,
    update: &ControllerRevision,
    collision: i32,
    act: bool,
) -> Result<(StatefulSetStatus, bool), kube::Error> {
    let current_set = at_revision(set, current);
    let update_set = at_revision(set, update);
    let (cur_name, upd_name) = (current.name_any(), update.name_any());
    let min_ready = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(cur_name.clone()),
        update_revision: Some(upd_name.clone()),
        collision_count: Some(collision),
        ..Default::default()
    };
    let start = start_ordinal(set);
    let n = replicas(set);
    let mut slots: Vec<Option<Slot>> = (0..n).map(|_| None).collect();
    let mut condemned: Vec<Arc<Pod>> = Vec::new();
    for p in pods {
        match ordinal(p) {
            Some(o) if in_range(set, o) => {
                slots[(o - start) as usize] = Some(Slot {
                    pod: p.as_ref().clone(),
                    created: true,
                })
            }
            Some(_) => condemned.push(p.clone()),
            None => {}
        }
    }
    // Missing ordinals get a pod at the current revision below the partition, else the update one
    // (upstream's newVersionedStatefulSetPod).
    let cur_replicas = set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let mut members: Vec<Slot> = Vec::with_capacity(n as usize);
    for (i, slot) in slots.into_iter().enumerate() {
        let ord = start + i as i32;
        members.push(slot.unwrap_or_else(|| {
            let below = match partition(set) {
                Some(p) => ord < start + p,
                None => rolling(set) && ord < start + cur_replicas,
            };
            let pod = if below {
                new_pod(&current_set, ord, &cur_name)
            } else {
                new_pod(&update_set, ord, &upd_name)
            };
            Slot {
                pod,
                created: false,
            }
        }));
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    let all: Vec<&Pod> = members
        .iter()
        .map(|s| &s.pod)
        .chain(condemned.iter().map(|p| p.as_ref()))
        .collect();
    count(&mut status, &all, min_ready, &cur_name, &upd_name);
    if !act {
        return Ok((status, false));
    }
    let first_unhealthy: Option<String> = members
        .iter()
        .map(|s| &s.pod)
        .chain(condemned.iter().rev().map(|p| p.as_ref()))
        .find(|p| !healthy(p))
        .map(|p| p.name_any());
    let monotonic = set
        .spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        != Some("Parallel");
    let now = Timestamp::now();
    let ns = set.namespace().unwrap_or_default();
    let pods_api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);

    // Living replicas, in ordinal order (processReplica).
    for slot in &members {
        let pod = &slot.pod;
        if matches!(phase(pod), "Failed" | "Succeeded") {
            // Finished pods are deleted and recreated on a later sync.
            if !terminating(pod) {
                delete_pod(set, ctx, key, pod).await?;
            }
            if monotonic {
                return Ok((status, false));
            }
            continue;
        }
        if !slot.created {
            match create_pod(set, ctx, key, pod).await? {
                Created::Yes if !monotonic => {}
                Created::Retry => return Ok((status, true)),
                _ => return Ok((status, false)),
            }
            continue;
        }
        if phase(pod) == "Pending" {
            if let Err(e) = create_claims(set, ctx, pod).await {
                tracing::debug!("statefulset {key}: {e}");
                return Ok((status, true));
            }
        }
        if monotonic && (!running_and_ready(pod) || !running_and_available(pod, min_ready, now)) {
            return Ok((status, false));
        }
        // Identity: the pod-name label (the rest of a pod's identity cannot change after creation).
        if pod.labels().get(POD_NAME_LABEL) != Some(&pod.name_any()) {
            let patch = json!({"metadata": {"labels": {POD_NAME_LABEL: pod.name_any()}}});
            let r = pods_api
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
            pod_event(set, ctx, "update", pod, r.err().map(|e| api_message(&e))).await;
        }
        fix_claims(&update_set, ctx, pod, false).await;
    }
    for p in &condemned {
        fix_claims(&update_set, ctx, p, true).await;
    }
    // Condemned pods, highest ordinal first (processCondemned).
    for p in &condemned {
        if terminating(p) {
            if monotonic {
                return Ok((status, false));
            }
            continue;
        }
        let first = first_unhealthy.as_deref() == Some(p.name_any().as_str());
        if monotonic
            && !first
            && (!running_and_ready(p) || !running_and_available(p, min_ready, now))
        {
            return Ok((status, false));
        }
        delete_pod(set, ctx, key, p).await?;
        if monotonic {
            return Ok((status, false));
        }
    }
    if !rolling(set) {
        // OnDelete: pods are replaced when someone deletes them.
        return Ok((status, false));
    }
    let partition = partition(set).unwrap_or(0);
    // RollingUpdate: the highest ordinal at or above the partition not at the update revision is
    // deleted (it is recreated at the update revision); wait while one is unhealthy.
    for slot in members
        .iter()
        .rev()
        .take((n - partition.max(0)).max(0) as usize)
    {
        let pod = &slot.pod;
        if pod_revision(pod) != Some(upd_name.as_str()) && !terminating(pod) {
            delete_pod(set, ctx, key, pod).await?;
            status.current_replicas = Some(status.current_replicas.unwrap_or(0) - 1);
            return Ok((status, false));
        }
        if !healthy(pod) {
            return Ok((status, false));
        }
    }
    Ok((status, false))
}

/// Upstream's recordPodEvent; `err` is the failure's message.
async fn pod_event(set: &StatefulSet, ctx: &Ctx, verb: &str, pod: &Pod, err: Option<String>) {
    let title = format!("{}{}", verb[..1].to_uppercase(), &verb[1..]);
    let (type_, reason, note) = match err {
        None => (
            EventType::Normal,
            format!("Successful{title}"),
            format!(
                "{verb} Pod {} in StatefulSet {} successful",
                pod.name_any(),
                set.name_any()
            ),
        ),
        Some(e) => (
            EventType::Warning,
            format!("Failed{title}"),
            format!(
                "{verb} Pod {} in StatefulSet {} failed error: {}",
                pod.name_any(),
                set.name_any(),
                e
            ),
        ),
    };
    common::record(&ctx.recorder, set, type_, &reason, &title, note).await;
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The pod's claims, created when missing (upstream's createPersistentVolumeClaims).
async fn create_claims(set: &StatefulSet, ctx: &Ctx, pod: &Pod) -> Result<(), String> {
    let ns = set.namespace().unwrap_or_default();
    let api = Api::<PersistentVolumeClaim>::namespaced(ctx.clients.writer.clone(), &ns);
    let Some(ord) = ordinal(pod) else {
        return Ok(());
    };
    for (_, mut claim) in claims_for(set, ord) {
        let name = claim.name_any();
        let cached = ctx.claims.get(&ObjectRef::new(&name).within(&ns));
        if let Some(c) = cached {
            if c.metadata.deletion_timestamp.is_some() {
                return Err(format!("pvc {name} is being deleted"));
            }
            continue;
        }
        // The set's reference is there from the start under a whenDeleted: Delete policy.
        let refs = claim_refs(&[], set, pod, false);
        claim.metadata.owner_references = (!refs.is_empty()).then_some(refs);
        let r = api.create(&PostParams::default(), &claim).await;
        let err = match r {
            Ok(_) => None,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => Some(e),
        };
        let (type_, reason, note) = match &err {
            None => (
                EventType::Normal,
                "SuccessfulCreate",
                format!(
                    "create Claim {name} Pod {} in StatefulSet {} success",
                    pod.name_any(),
                    set.name_any()
                ),
            ),
            Some(e) => (
                EventType::Warning,
                "FailedCreate",
                format!(
                    "create Claim {name} for Pod {} in StatefulSet {} failed error: {}",
                    pod.name_any(),
                    set.name_any(),
                    api_message(e)
                ),
            ),
        };
        // Its own action: kube-runtime's recorder folds events with equal type, reason, action and
        // object into one series, which would hide the pod's SuccessfulCreate behind the claim's.
        common::record(&ctx.recorder, set, type_, reason, "CreateClaim", note).await;
        if let Some(e) = err {
            return Err(format!("failed to create PVC {name}: {}", api_message(&e)));
        }
    }
    Ok(())
}

/// Brings a pod's claims' owner references in line with the retention policy.
async fn fix_claims(set: &StatefulSet, ctx: &Ctx, pod: &Pod, scaled_down: bool) {
    let ns = set.namespace().unwrap_or_default();
    let api = Api::<PersistentVolumeClaim>::namespaced(ctx.clients.writer.clone(), &ns);
    let Some(ord) = ordinal(pod) else { return };
    for (_, claim) in claims_for(set, ord) {
        let Some(cached) = ctx
            .claims
            .get(&ObjectRef::new(&claim.name_any()).within(&ns))
        else {
            continue;
        };
        let want = claim_refs(cached.owner_references(), set, pod, scaled_down);
        if want.as_slice() == cached.owner_references() {
            continue;
        }
        let mut fresh = cached.as_ref().clone();
        fresh.metadata.owner_references = (!want.is_empty()).then_some(want);
        if let Err(e) = api
            .replace(&fresh.name_any(), &PostParams::default(), &fresh)
            .await
        {
            tracing::debug!("claim {}: {e}", fresh.name_any());
        }
    }
}

enum Created {
    Yes,
    /// The pod exists already: our cache is behind and its event will bring us back.
    Exists,
    /// A claim could not be created: try again shortly.
    Retry,
}

/// Creates the pod's claims, then the pod (upstream's CreateStatefulPod).
async fn create_pod(
    set: &StatefulSet,
    ctx: &Ctx,
    key: &str,
    pod: &Pod,
) -> Result<Created, kube::Error> {
    if let Err(e) = create_claims(set, ctx, pod).await {
        pod_event(set, ctx, "create", pod, Some(e)).await;
        return Ok(Created::Retry);
    }
    let api = Api::<Pod>::namespaced(
        ctx.clients.writer.clone(),
        &set.namespace().unwrap_or_default(),
    );
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => {
            ctx.expectations
                .expect(key, vec![created.name_any()], vec![]);
            pod_event(set, ctx, "create", pod, None).await;
            fix_claims(set, ctx, &created, false).await;
            Ok(Created::Yes)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Created::Exists),
        Err(e) => {
            pod_event(set, ctx, "create", pod, Some(api_message(&e))).await;
            Err(e)
        }
    }
}

async fn delete_pod(set: &StatefulSet, ctx: &Ctx, key: &str, pod: &Pod) -> Result<(), kube::Error> {
    let api = Api::<Pod>::namespaced(
        ctx.clients.writer.clone(),
        &set.namespace().unwrap_or_default(),
    );
    ctx.expectations.expect(key, vec![], vec![pod.name_any()]);
    match api.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => {
            pod_event(set, ctx, "delete", pod, None).await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => {
            pod_event(set, ctx, "delete", pod, Some(api_message(&e))).await;
            Err(e)
        }
    }
}

/// Upstream's updateStatefulSetStatus: completeRollingUpdate, then write when it changed.
async fn write_status(
    set: &StatefulSet,
    ctx: &Ctx,
    mut status: StatefulSetStatus,
) -> Result<(), kube::Error> {
    if rolling(set)
        && status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    status.conditions = set.status.as_ref().and_then(|s| s.conditions.clone());
    if set.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api = Api::<StatefulSet>::namespaced(
        ctx.clients.writer.clone(),
        &set.namespace().unwrap_or_default(),
    );
    common::write_status(&api, set, status, |s, st| s.status = Some(st)).await
}

fn retry_later(_set: Arc<StatefulSet>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("statefulset controller: {error}");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(extra: serde_json::Value) -> StatefulSet {
        let mut v = json!({
            "metadata": {"name": "db", "namespace": "ns", "uid": "set-uid"},
            "spec": {
                "replicas": 3, "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}],
                                      "volumes": [{"name": "data", "emptyDir": {}},
                                                  {"name": "cfg", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}}]
            }
        });
        if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
            for (k, val) in extra {
                spec.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ordinals_parse_like_upstream() {
        assert_eq!(parent_and_ordinal("db-0"), Some(("db", 0)));
        assert_eq!(parent_and_ordinal("my-db-12"), Some(("my-db", 12)));
        assert_eq!(parent_and_ordinal("db"), None);
        assert_eq!(parent_and_ordinal("db-"), None);
        assert_eq!(parent_and_ordinal("db-x1"), None);
        // Upstream's `(.*)-([0-9]+)$`: the parent keeps the extra dash.
        assert_eq!(parent_and_ordinal("db--1"), Some(("db-", 1)));
        assert_eq!(parent_and_ordinal("db-99999999999"), None);
    }

    #[test]
    fn pods_get_identity_storage_and_revision() {
        let s = set(json!({}));
        let p = new_pod(&s, 2, "db-abc");
        assert_eq!(p.metadata.name.as_deref(), Some("db-2"));
        assert_eq!(p.metadata.generate_name, None);
        let l = p.labels();
        assert_eq!(l.get(POD_NAME_LABEL).map(String::as_str), Some("db-2"));
        assert_eq!(l.get(POD_INDEX_LABEL).map(String::as_str), Some("2"));
        assert_eq!(l.get(HASH_LABEL).map(String::as_str), Some("db-abc"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("db-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        let vols = spec.volumes.unwrap();
        assert_eq!(
            vols.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["data", "cfg"],
            "the claim replaces the template's volume of the same name"
        );
        assert_eq!(
            vols[0]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("data-db-2")
        );
        let refs = p.metadata.owner_references.unwrap();
        assert_eq!(
            (refs[0].kind.as_str(), refs[0].controller),
            ("StatefulSet", Some(true))
        );
    }

    #[test]
    fn claims_are_named_and_labelled() {
        let c = claims_for(&set(json!({})), 1);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1.metadata.name.as_deref(), Some("data-db-1"));
        assert_eq!(c[0].1.labels().get("app").map(String::as_str), Some("db"));
    }

    #[test]
    fn retention_policy_sets_owner_references() {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "db-2", "uid": "pod-uid"}}))
                .unwrap();
        let retain = set(json!({}));
        assert!(claim_refs(&[], &retain, &pod, true).is_empty());
        let on_delete = set(
            json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"}}),
        );
        let refs = claim_refs(&[], &on_delete, &pod, false);
        assert_eq!(
            (refs.len(), refs[0].kind.as_str(), refs[0].controller),
            (1, "StatefulSet", None)
        );
        let both = set(
            json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}}),
        );
        let refs = claim_refs(&refs, &both, &pod, true);
        assert_eq!(
            refs.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            ["Pod"]
        );
        // Back to Retain removes what the policy had added.
        assert!(claim_refs(&refs, &retain, &pod, true).is_empty());
    }

    #[test]
    fn partition_and_strategy() {
        assert_eq!((partition(&set(json!({})))), None);
        assert!(rolling(&set(json!({}))));
        let s = set(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
        );
        assert_eq!((partition(&s), rolling(&s)), (Some(2), true));
        assert!(!rolling(&set(
            json!({"updateStrategy": {"type": "OnDelete"}})
        )));
    }
}
