//! Upstream's ReplicaSet controller (pkg/controller/replicaset): keeps `spec.replicas` pods matching
//! the selector, created from the template with a controller owner reference, adopting orphans that
//! match and releasing owned pods that no longer do; writes `status` as upstream does.
//!
//! Start at [`reconcile`]: it filters the cached pods, adopts/releases, creates or deletes the
//! difference (unless expectations from an earlier round are still outstanding), then writes status.
//!
//! The ReplicationController controller is this one too, as upstream's (`pkg/controller/replication`
//! converts each ReplicationController to a ReplicaSet and runs the ReplicaSet logic): [`Replicated`]
//! gives the ReplicaSet view of an owner and takes back its status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Pod, PodTemplateSpec, ReplicationController, ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use serde_json::json;

use super::common::{self, Expectations, Recorder};
use super::Clients;

/// Upstream's burstReplicas: at most this many creations or deletions per sync.
const BURST_REPLICAS: usize = 500;

struct Ctx {
    clients: Clients,
    pods: Store<Pod>,
    expectations: Expectations,
    recorder: Recorder,
}

/// What the controller manages: ReplicaSets, and ReplicationControllers through their ReplicaSet view.
pub trait Replicated: common::Namespaced {
    /// The controller's name, as its events' source.
    const CONTROLLER: &'static str;
    /// The object as a ReplicaSet (same metadata; spec and status converted).
    fn as_replica_set(&self) -> ReplicaSet;
    /// Takes a status computed on the ReplicaSet view.
    fn set_status(&mut self, status: ReplicaSetStatus);
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset-controller";
    fn as_replica_set(&self) -> ReplicaSet {
        self.clone()
    }
    fn set_status(&mut self, status: ReplicaSetStatus) {
        self.status = Some(status);
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replication-controller";
    fn as_replica_set(&self) -> ReplicaSet {
        let spec = self.spec.as_ref();
        // An RC's selector is a label map; empty, it is its template's labels (the apiserver defaults
        // it so; an RC without either selects nothing, as upstream).
        let selector = spec
            .and_then(|s| s.selector.clone())
            .filter(|m| !m.is_empty())
            .or_else(|| {
                spec.and_then(|s| s.template.as_ref())
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
            });
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                replicas: spec.and_then(|s| s.replicas),
                min_ready_seconds: spec.and_then(|s| s.min_ready_seconds),
                selector: LabelSelector {
                    match_labels: selector,
                    match_expressions: None,
                },
                template: spec.and_then(|s| s.template.clone()),
            }),
            // Same field names on both sides (terminatingReplicas exists only on ReplicaSets).
            status: self
                .status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|v| serde_json::from_value(v).ok()),
        }
    }
    fn set_status(&mut self, status: ReplicaSetStatus) {
        self.status = serde_json::to_value(status)
            .ok()
            .and_then(|v| serde_json::from_value::<ReplicationControllerStatus>(v).ok());
    }
}

pub async fn run(clients: Clients) {
    run_for::<ReplicaSet>(clients).await
}

/// The controller for `K` (ReplicaSets or ReplicationControllers).
pub async fn run_for<K: Replicated>(clients: Clients) {
    let sets = Api::<K>::all(clients.reader.clone());
    let (pods, pod_events) = clients.informers.watched::<Pod>();
    let controller = Controller::new(sets, Default::default());
    let set_store = controller.store();
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), K::CONTROLLER),
        clients,
        pods,
        expectations: Expectations::default(),
    });
    controller
        // A pod's change wakes its controller; an orphan wakes every set whose selector matches it
        // (upstream's getPodReplicaSets), so it can be adopted.
        .watches_stream(pod_events, move |pod: Pod| owners_to_wake(&set_store, &pod))
        .run(reconcile::<K>, retry_later::<K>, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("{}: {e}", K::CONTROLLER);
            }
        })
        .await;
}

fn owners_to_wake<K: Replicated>(sets: &Store<K>, pod: &Pod) -> Vec<ObjectRef<K>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = common::controller_of(pod) {
        if r.kind == K::kind(&()) {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return vec![];
    }
    sets.state()
        .iter()
        .filter(|rs| {
            rs.namespace().as_deref() == Some(ns.as_str()) && selects(&rs.as_replica_set(), pod)
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

fn selector_of(rs: &ReplicaSet) -> Option<Selector> {
    common::controller_selector(&rs.spec.as_ref()?.selector)
}

fn selects(rs: &ReplicaSet, pod: &Pod) -> bool {
    selector_of(rs).is_some_and(|s| s.matches(pod.labels()))
}

/// Active as upstream's FilterActivePods: not terminating and not finished.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The time the pod's Ready condition became True, when it is.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        c.last_transition_time
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0),
    )
}

/// Upstream's IsPodAvailable: ready for at least `min_ready` seconds.
pub fn is_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    ready_since(pod).is_some_and(|t| {
        min_ready <= 0
            || t.saturating_add(SignedDuration::from_secs(min_ready as i64))
                .is_ok_and(|at| at <= now)
    })
}

/// Upstream's ActivePods ordering for deletion (the first are deleted first): unassigned before
/// assigned, Pending before Unknown before Running, not ready before ready, recently ready before
/// long ready, more restarts before fewer, newer before older.
fn deletion_rank(pod: &Pod) -> impl Ord {
    let status = pod.status.as_ref();
    let assigned = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let ready = ready_since(pod);
    let restarts: i32 = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        });
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        assigned,
        phase,
        ready.is_some(),
        std::cmp::Reverse(ready),
        std::cmp::Reverse(restarts),
        std::cmp::Reverse(created),
    )
}

/// The pod a controller creates from its template (upstream's GetPodFromTemplate).
pub fn pod_from_template<K: kube::Resource<DynamicType = ()>>(
    template: &PodTemplateSpec,
    owner: &K,
    generate_name: String,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![common::controller_ref(owner)]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

async fn reconcile<K: Replicated>(owner: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let rs = owner.as_replica_set();
    let key = common::key_of(&rs);
    let ns = rs.namespace().unwrap_or_default();
    let uid = rs.uid().unwrap_or_default();
    let pods_api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    let in_ns: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();

    // Claim: owned pods that still match stay, orphans that match are adopted (unless we are being
    // deleted), owned pods that no longer match are released.
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    for pod in in_ns {
        let ours = common::controller_of(pod.as_ref()).map(|r| r.uid == uid);
        let matches = selects(&rs, &pod);
        match (ours, matches) {
            (Some(true), true) => owned.push(pod),
            (Some(true), false) => {
                let refs: Vec<_> = pod
                    .owner_references()
                    .iter()
                    .filter(|r| r.uid != uid)
                    .cloned()
                    .collect();
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.uid()}});
                let _ = pods_api
                    .patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await;
            }
            (None, true) if rs.metadata.deletion_timestamp.is_none() && is_active(&pod) => {
                let mut refs = pod.owner_references().to_vec();
                refs.push(common::controller_ref(owner.as_ref()));
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.uid()}});
                if let Ok(p) = pods_api
                    .patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    owned.push(Arc::new(p));
                }
            }
            _ => {}
        }
    }
    let active: Vec<Arc<Pod>> = owned.iter().filter(|p| is_active(p)).cloned().collect();

    let names: std::collections::HashSet<String> = owned
        .iter()
        .filter(|p| is_active(p))
        .map(|p| p.name_any())
        .collect();
    let settled = ctx.expectations.satisfied(&key, |n| names.contains(n));
    let mut failure: Option<String> = None;
    if settled && rs.metadata.deletion_timestamp.is_none() {
        let want = rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as usize;
        if active.len() < want {
            let count = (want - active.len()).min(BURST_REPLICAS);
            failure = create_pods(owner.as_ref(), &rs, &ctx, &key, count).await;
        } else if active.len() > want {
            let mut victims = active.clone();
            victims.sort_by_cached_key(|p| deletion_rank(p));
            victims.truncate((active.len() - want).min(BURST_REPLICAS));
            delete_pods(owner.as_ref(), &ctx, &key, victims).await;
        }
    }

    // Status (upstream's calculateStatus).
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let now = Timestamp::now();
    let template_labels: BTreeMap<String, String> = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| ready_since(p).is_some()).count();
    let available = active
        .iter()
        .filter(|p| is_available(p, min_ready, now))
        .count();
    let mut conditions = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions.retain(|c| c.type_ != "ReplicaFailure");
    if let Some(msg) = failure {
        conditions.push(k8s_openapi::api::apps::v1::ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(msg),
            last_transition_time: Some(Time(now)),
        });
    }
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully as i32),
        ready_replicas: Some(ready as i32),
        available_replicas: Some(available as i32),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    };
    let unchanged = rs.status.as_ref().is_some_and(|s| {
        s.replicas == status.replicas
            && s.fully_labeled_replicas.unwrap_or(0) == fully as i32
            && s.ready_replicas.unwrap_or(0) == ready as i32
            && s.available_replicas.unwrap_or(0) == available as i32
            && s.observed_generation == status.observed_generation
            && s.conditions == status.conditions
    });
    if !unchanged {
        let api = Api::<K>::namespaced(ctx.clients.writer.clone(), &ns);
        common::write_status(&api, owner.as_ref(), status, K::set_status).await?;
    }
    // Pods ready but not yet available for minReadySeconds: look again when they will be.
    if min_ready > 0 && ready > available {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

/// Creates `count` pods in upstream's slow-start batches (1, 2, 4, ...), stopping at the first
/// failing batch; returns the failure's message.
async fn create_pods<K: Replicated>(
    owner: &K,
    rs: &ReplicaSet,
    ctx: &Ctx,
    key: &str,
    count: usize,
) -> Option<String> {
    let ns = rs.namespace().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    let template = rs.spec.as_ref().and_then(|s| s.template.as_ref())?;
    let pod = pod_from_template(template, owner, format!("{}-", rs.name_any()));
    let mut left = count;
    let mut batch = 1;
    while left > 0 {
        let n = batch.min(left);
        let pp = PostParams::default();
        let results = futures::future::join_all((0..n).map(|_| api.create(&pp, &pod))).await;
        let mut created = Vec::new();
        let mut error = None;
        for r in results {
            match r {
                Ok(p) => created.push(p),
                Err(e) => error = Some(e),
            }
        }
        ctx.expectations
            .expect(key, created.iter().map(|p| p.name_any()).collect(), vec![]);
        for p in &created {
            common::record(
                &ctx.recorder,
                owner,
                EventType::Normal,
                "SuccessfulCreate",
                "Create",
                format!("Created pod: {}", p.name_any()),
            )
            .await;
        }
        if let Some(e) = error {
            let msg = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            common::record(
                &ctx.recorder,
                owner,
                EventType::Warning,
                "FailedCreate",
                "Create",
                format!("Error creating: {msg}"),
            )
            .await;
            return Some(msg);
        }
        left -= n;
        batch *= 2;
    }
    None
}

async fn delete_pods<K: Replicated>(rs: &K, ctx: &Ctx, key: &str, victims: Vec<Arc<Pod>>) {
    let ns = rs.namespace().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    ctx.expectations
        .expect(key, vec![], victims.iter().map(|p| p.name_any()).collect());
    common::delete_pods(&api, &ctx.recorder, rs, &victims).await;
}

fn retry_later<K: Replicated>(_rs: Arc<K>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("{}: {error}", K::CONTROLLER);
    Action::requeue(Duration::from_secs(1))
}
