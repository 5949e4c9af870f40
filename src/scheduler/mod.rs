//! The scheduler: assigns unscheduled pods (schedulerName `default-scheduler` or empty) to nodes with
//! upstream's default-profile semantics, as an API client (`system:kube-scheduler`).
//!
//! Start at [`run`]: one watch of nodes and one of pods feed the [`cache`] (nodes with their assigned
//! pods) and the scheduling queue (active / backoff / unschedulable). Each cycle ([`framework`]) filters
//! and scores nodes with the [`plugins`]; the chosen node is *assumed* in the cache at once (the next pod
//! sees its resources before the watch catches up) and the binding (`pods/binding`) is sent in the
//! background; a binding that fails is forgotten and its pod retried through backoff, reported as
//! `SchedulerError`. Events go through [`events`]. A pod that fits nowhere gets the
//! `FailedScheduling` event and `PodScheduled=False` (reason Unschedulable, upstream's message) and
//! waits in the unschedulable set until a cluster event (node added/changed, pod deleted) moves it
//! back, after its backoff (1 s doubling to 10 s). When
//! evicting lower-priority pods would make room, [`preemption`] names them: the pod is nominated to
//! that node and waits while they are deleted; the [`nominator`] holds that room for it (and pods of
//! lower priority nominated there lose their nomination, as upstream).
//!
//! More watches feed [`objects`]: Services, ReplicationControllers, ReplicaSets and StatefulSets
//! (the default topology spread selector), PodDisruptionBudgets (preemption), and
//! PersistentVolumeClaims, PersistentVolumes and StorageClasses (VolumeBinding; a change to one of
//! these moves the unschedulable pods back, as upstream's VolumeBinding events). Scheduling starts
//! once every watch has listed. A pod whose claims wait for their first consumer has them bound
//! (volume `claimRef`, or the claim's selected node for a provisioner) before its own binding, in
//! the same background task.

pub mod bench;
pub mod cache;
pub mod events;
pub mod framework;
pub mod nominator;
pub mod objects;
pub mod plugins;
pub mod preemption;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::Events;
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController,
    Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde_json::json;
use tokio::sync::mpsc;

use cache::{Cache, PodInfo};
use framework::{Framework, Outcome, Snapshot};
use nominator::Nominator;
use objects::{ObjectEvent, Objects};
use plugins::volume_binding;

pub const SCHEDULER_NAME: &str = "default-scheduler";
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// upstream's podMaxInUnschedulablePodsDuration: unschedulable pods are retried at least this often.
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// Messages from background tasks back to the scheduling loop.
enum Msg {
    /// The binding failed: forget the assumption and retry the pod.
    BindFailed(String),
    /// A pod's backoff is over.
    BackoffDone(String),
}

/// A pod waiting to be scheduled.
struct Pending {
    pod: Arc<Pod>,
    attempts: u32,
    last_attempt: Option<Instant>,
    unschedulable_since: Option<Instant>,
}

fn is_ours(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let name = spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("");
    (name.is_empty() || name == SCHEDULER_NAME)
        && spec
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("")
            .is_empty()
        && pod.metadata.deletion_timestamp.is_none()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn key_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

struct Scheduler {
    client: kube::Client,
    recorder: Events,
    cache: Cache,
    framework: Framework,
    pending: HashMap<String, Pending>,
    active: VecDeque<String>,
    /// Pods in `active` (no duplicates in the deque).
    queued: HashSet<String>,
    unschedulable: HashSet<String>,
    /// Pods assumed and being bound, kept to go back to the queue if their binding fails.
    binding: HashMap<String, Pending>,
    nominator: Nominator,
    objects: Objects,
    tx: mpsc::UnboundedSender<Msg>,
}

/// What an unschedulable pod's status write does with `nominatedNodeName`.
enum Nomination<'a> {
    Keep,
    Set(&'a str),
    Clear,
}

/// One stream of the watches behind [`Objects`].
fn watch_objects(client: &kube::Client) -> BoxStream<'static, Result<ObjectEvent, watcher::Error>> {
    fn one<K>(
        api: Api<K>,
        wrap: fn(watcher::Event<K>) -> ObjectEvent,
    ) -> BoxStream<'static, Result<ObjectEvent, watcher::Error>>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        watcher::watcher(api, watcher::Config::default())
            .modify(crate::controllers::common::trim::<K>)
            .default_backoff()
            .map(move |r| r.map(wrap))
            .boxed()
    }
    let c = client;
    futures::stream::select_all([
        one(Api::<Service>::all(c.clone()), ObjectEvent::Service),
        one(
            Api::<ReplicationController>::all(c.clone()),
            ObjectEvent::ReplicationController,
        ),
        one(Api::<ReplicaSet>::all(c.clone()), ObjectEvent::ReplicaSet),
        one(Api::<StatefulSet>::all(c.clone()), ObjectEvent::StatefulSet),
        one(
            Api::<PodDisruptionBudget>::all(c.clone()),
            ObjectEvent::PodDisruptionBudget,
        ),
        one(
            Api::<PersistentVolumeClaim>::all(c.clone()),
            ObjectEvent::PersistentVolumeClaim,
        ),
        one(
            Api::<PersistentVolume>::all(c.clone()),
            ObjectEvent::PersistentVolume,
        ),
        one(
            Api::<StorageClass>::all(c.clone()),
            ObjectEvent::StorageClass,
        ),
    ])
    .boxed()
}

/// Runs the scheduler until the process ends.
pub async fn run(client: kube::Client) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let instance = format!(
        "{SCHEDULER_NAME}-{}",
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
    );
    let recorder = Events::new(
        &client,
        &Reporter {
            controller: SCHEDULER_NAME.into(),
            instance: Some(instance),
        },
    );
    let mut s = Scheduler {
        client: client.clone(),
        recorder,
        cache: Cache::default(),
        framework: Framework::new(),
        pending: HashMap::new(),
        active: VecDeque::new(),
        queued: HashSet::new(),
        unschedulable: HashSet::new(),
        binding: HashMap::new(),
        nominator: Nominator::default(),
        objects: Objects::default(),
        tx,
    };
    // Without managedFields, as upstream's scheduler caches them (see `controllers::common::trim`).
    use crate::controllers::common::trim;
    let nodes = watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .modify(trim::<Node>)
        .default_backoff()
        .boxed();
    let pods = watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .modify(trim::<Pod>)
        .default_backoff()
        .boxed();
    let (mut nodes, mut pods) = (nodes, pods);
    let mut objects = watch_objects(&client);
    // Caches must be synced before the first cycle (upstream's WaitForCacheSync).
    let (mut nodes_synced, mut pods_synced) = (false, false);
    let mut seen_nodes: HashSet<String> = HashSet::new();
    let mut seen_pods: HashSet<String> = HashSet::new();
    let mut flush = tokio::time::interval(Duration::from_secs(30));
    loop {
        let ready = nodes_synced && pods_synced && s.objects.synced() && !s.active.is_empty();
        tokio::select! {
            biased;
            ev = nodes.next() => match ev {
                Some(Ok(watcher::Event::Init)) => seen_nodes.clear(),
                Some(Ok(watcher::Event::InitApply(n))) => {
                    seen_nodes.insert(n.metadata.name.clone().unwrap_or_default());
                    s.cache.upsert_node(Arc::new(n));
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    let gone: Vec<String> = s.cache.nodes.keys().filter(|k| !seen_nodes.contains(*k)).cloned().collect();
                    for g in gone { s.cache.remove_node(&g); }
                    nodes_synced = true;
                    s.move_all();
                }
                Some(Ok(watcher::Event::Apply(n))) => { s.cache.upsert_node(Arc::new(n)); s.move_all(); }
                Some(Ok(watcher::Event::Delete(n))) => s.cache.remove_node(n.metadata.name.as_deref().unwrap_or("")),
                Some(Err(e)) => tracing::warn!("scheduler: node watch: {e}"),
                None => return,
            },
            ev = pods.next() => match ev {
                Some(Ok(watcher::Event::Init)) => seen_pods.clear(),
                Some(Ok(watcher::Event::InitApply(p))) => { seen_pods.insert(key_of(&p)); s.on_pod(p); }
                Some(Ok(watcher::Event::InitDone)) => {
                    let gone: Vec<String> = s.cache.placed.keys().chain(s.pending.keys())
                        .filter(|k| !seen_pods.contains(*k) && !s.binding.contains_key(*k)).cloned().collect();
                    for g in gone { s.on_pod_deleted(&g); }
                    pods_synced = true;
                }
                Some(Ok(watcher::Event::Apply(p))) => s.on_pod(p),
                Some(Ok(watcher::Event::Delete(p))) => s.on_pod_deleted(&key_of(&p)),
                Some(Err(e)) => tracing::warn!("scheduler: pod watch: {e}"),
                None => return,
            },
            ev = objects.next() => match ev {
                Some(Ok(e)) => {
                    if s.objects.apply(e) {
                        s.move_all();
                    }
                }
                Some(Err(e)) => tracing::warn!("scheduler: watch: {e}"),
                None => return,
            },
            Some(msg) = rx.recv() => match msg {
                Msg::BindFailed(key) => s.bind_failed(key),
                Msg::BackoffDone(key) => s.activate(key),
            },
            _ = flush.tick() => s.flush_unschedulable(),
            _ = std::future::ready(()), if ready => {
                if let Some(key) = s.active.pop_front() {
                    s.queued.remove(&key);
                    tokio::task::block_in_place(|| s.schedule_one(key));
                }
            }
        }
    }
}

impl Scheduler {
    fn on_pod(&mut self, pod: Pod) {
        let key = key_of(&pod);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if !node.is_empty() {
            self.nominator.remove(&key);
            self.objects.forget(&key);
            self.pending.remove(&key);
            self.unschedulable.remove(&key);
            self.binding.remove(&key);
            if is_terminal(&pod) {
                // Terminal pods free their resources (upstream's scheduler does not watch them).
                if self.cache.placed.contains_key(&key) {
                    self.cache.unplace(&key);
                    self.move_all();
                }
            } else {
                self.cache
                    .place(&node, Arc::new(PodInfo::new(Arc::new(pod))));
            }
            return;
        }
        if self.binding.contains_key(&key) {
            // A stale event from before our binding landed.
            return;
        }
        if !is_ours(&pod) || is_terminal(&pod) {
            self.nominator.remove(&key);
            if self.pending.remove(&key).is_some() {
                self.unschedulable.remove(&key);
            }
            return;
        }
        let pod = Arc::new(pod);
        match self.pending.get_mut(&key) {
            Some(p) => {
                // Only a change to what scheduling reads (spec, labels) can make it schedulable: our own
                // status write must not loop it back.
                let changed =
                    p.pod.spec != pod.spec || p.pod.metadata.labels != pod.metadata.labels;
                let old = std::mem::replace(&mut p.pod, pod.clone());
                self.nominate_from_watch(&key, Some(&old), pod);
                if changed && self.unschedulable.remove(&key) {
                    self.activate(key);
                }
            }
            None => {
                self.nominate_from_watch(&key, None, pod.clone());
                self.pending.insert(
                    key.clone(),
                    Pending {
                        pod,
                        attempts: 0,
                        last_attempt: None,
                        unschedulable_since: None,
                    },
                );
                self.activate(key);
            }
        }
    }

    /// Keeps the nominator in step with a pending pod's `status.nominatedNodeName`.
    fn nominate_from_watch(&mut self, key: &str, old: Option<&Pod>, pod: Arc<Pod>) {
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if nominated || self.nominator.node_of(key).is_some() {
            self.nominator.update(old, Arc::new(PodInfo::new(pod)));
        }
    }

    fn on_pod_deleted(&mut self, key: &str) {
        self.nominator.remove(key);
        self.pending.remove(key);
        self.binding.remove(key);
        self.unschedulable.remove(key);
        if self.cache.placed.contains_key(key) {
            self.cache.unplace(key);
            // A deleted pod frees room: pods that did not fit may now.
            self.move_all();
        }
    }

    /// A pod's binding failed (upstream's handleBindingCycleError): its assumption is forgotten,
    /// which frees room as a deleted pod does, and it goes back to the queue through backoff, unless
    /// it was bound or deleted meanwhile (its watch event took it out of `binding`).
    fn bind_failed(&mut self, key: String) {
        let Some(p) = self.binding.remove(&key) else {
            return;
        };
        self.cache.unplace(&key);
        self.objects.restore(&key);
        self.move_all();
        self.pending.insert(key.clone(), p);
        self.backoff(key);
    }

    fn activate(&mut self, key: String) {
        if self.pending.contains_key(&key) && self.queued.insert(key.clone()) {
            self.active.push_back(key);
        }
    }

    /// A cluster event: every unschedulable pod goes back to the queue, through backoff if it was
    /// tried recently (upstream's MoveAllToActiveOrBackoffQueue).
    fn move_all(&mut self) {
        let keys: Vec<String> = self.unschedulable.drain().collect();
        for key in keys {
            self.backoff(key);
        }
    }

    fn backoff(&mut self, key: String) {
        let Some(p) = self.pending.get(&key) else {
            return;
        };
        let wait = INITIAL_BACKOFF
            .saturating_mul(1 << p.attempts.saturating_sub(1).min(4))
            .min(MAX_BACKOFF);
        let left = p
            .last_attempt
            .map(|t| wait.saturating_sub(t.elapsed()))
            .unwrap_or_default();
        if left.is_zero() {
            self.activate(key);
        } else {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(left).await;
                let _ = tx.send(Msg::BackoffDone(key));
            });
        }
    }

    fn flush_unschedulable(&mut self) {
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.pending
                    .get(*k)
                    .and_then(|p| p.unschedulable_since)
                    .is_some_and(|t| t.elapsed() >= MAX_UNSCHEDULABLE)
            })
            .cloned()
            .collect();
        for key in stale {
            self.unschedulable.remove(&key);
            self.activate(key);
        }
    }

    /// Parks a pod that fits nowhere until a cluster event.
    fn wait(&mut self, key: &str) {
        if let Some(p) = self.pending.get_mut(key) {
            p.unschedulable_since.get_or_insert_with(Instant::now);
        }
        self.unschedulable.insert(key.to_string());
    }

    fn schedule_one(&mut self, key: String) {
        let Some(p) = self.pending.get_mut(&key) else {
            return;
        };
        p.attempts += 1;
        p.last_attempt = Some(Instant::now());
        let pod = p.pod.clone();
        let info = Arc::new(PodInfo::new(pod.clone()));
        let snap = Snapshot {
            cache: &self.cache,
            nominator: &self.nominator,
            objects: &self.objects,
        };
        match self.framework.schedule(&info, &snap) {
            Outcome::Fits { node, volumes } => {
                if let Some(p) = self.pending.remove(&key) {
                    self.binding.insert(key.clone(), p);
                }
                // Upstream's assume: a pod on its way to a node holds no nomination.
                self.nominator.remove(&key);
                // VolumeBinding's Reserve: the volumes it takes look taken to the next pod.
                let assumed = volumes
                    .map(|plan| volume_binding::assume(&plan, &node))
                    .filter(|a| !a.is_empty());
                if let Some(a) = &assumed {
                    for v in &a.volumes {
                        self.objects.assume_volume(&key, v.clone());
                    }
                    for c in &a.claims {
                        self.objects.assume_claim(&key, c.clone());
                    }
                }
                self.cache.place(&node, info);
                let client = self.client.clone();
                let recorder = self.recorder.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    // PreBind (the claims bound first), then the binding itself; a failure is
                    // told in upstream's words for the plugin that failed.
                    let result = match &assumed {
                        Some(a) => volume_binding::bind(&client, &pod, &node, a)
                            .await
                            .map_err(|e| format!("running PreBind plugin \"VolumeBinding\": {e}")),
                        None => Ok(()),
                    };
                    let result = match result {
                        Ok(()) => bind(&client, &pod, &node).await.map_err(|e| {
                            format!("running Bind plugin \"DefaultBinder\": {}", api_message(&e))
                        }),
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(()) => {
                            let note = format!("Successfully assigned {key} to {node}");
                            event(
                                &recorder,
                                &pod,
                                EventType::Normal,
                                "Scheduled",
                                "Binding",
                                note,
                            )
                            .await;
                        }
                        Err(message) => {
                            tracing::warn!(pod = %key, "binding to {node} failed: {message}");
                            let _ = tx.send(Msg::BindFailed(key));
                            report_failure(
                                &client,
                                &recorder,
                                &pod,
                                Failure::Error,
                                &message,
                                Nomination::Keep,
                            )
                            .await;
                        }
                    }
                });
            }
            Outcome::Unschedulable {
                message,
                clear_nomination,
            } => {
                self.wait(&key);
                let nomination = if clear_nomination {
                    self.nominator.remove(&key);
                    Nomination::Clear
                } else {
                    Nomination::Keep
                };
                let client = self.client.clone();
                let recorder = self.recorder.clone();
                tokio::spawn(async move {
                    report_failure(
                        &client,
                        &recorder,
                        &pod,
                        Failure::Unschedulable,
                        &message,
                        nomination,
                    )
                    .await;
                });
            }
            Outcome::Preempt {
                message,
                node,
                victims,
            } => {
                // The pod waits for the victims' deletions, which move it back to the queue.
                self.wait(&key);
                self.nominator.add(info.clone(), &node);
                // Upstream's prepareCandidate: pods of lower priority nominated to that node may
                // no longer fit there; they lose their nomination and look for another place.
                let lower = self
                    .nominator
                    .lower_priority(&node, preemption::priority(&info));
                for p in &lower {
                    self.nominator.remove(&p.key);
                    if self.unschedulable.remove(&p.key) {
                        self.backoff(p.key.clone());
                    }
                }
                let client = self.client.clone();
                let recorder = self.recorder.clone();
                tokio::spawn(async move {
                    for v in &victims {
                        preempt(&client, &recorder, &pod, &v.pod, &node).await;
                    }
                    for p in &lower {
                        clear_nomination(&client, &p.pod).await;
                    }
                    report_failure(
                        &client,
                        &recorder,
                        &pod,
                        Failure::Unschedulable,
                        &message,
                        Nomination::Set(&node),
                    )
                    .await;
                });
            }
        }
    }
}

/// Upstream's ClearNominatedNodeName for one pod.
async fn clear_nomination(client: &kube::Client, pod: &Pod) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = json!({"status": {"nominatedNodeName": null}});
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        tracing::debug!(pod = name, "scheduler: nomination not cleared: {e}");
    }
}

async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> anyhow::Result<()> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let _: serde_json::Value = api
        .create_subresource("binding", name, &PostParams::default(), &binding)
        .await?;
    Ok(())
}

async fn event(
    recorder: &Events,
    pod: &Pod,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let reference: ObjectReference = pod.object_ref(&());
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await;
}

/// Evicts one preemption victim as upstream's preparePreemption: a `DisruptionTarget` condition
/// first (so its controllers know why it goes), then the deletion (with its grace period), and a
/// `Preempted` event naming the preemptor.
async fn preempt(
    client: &kube::Client,
    recorder: &Events,
    preemptor: &Pod,
    victim: &Pod,
    node: &str,
) {
    let ns = victim.metadata.namespace.as_deref().unwrap_or("default");
    let name = victim.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "PreemptionByScheduler",
        "message": format!("{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"),
        "lastTransitionTime": crate::kubelet::now(),
    }]}});
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(condition))
        .await
    {
        tracing::debug!(pod = name, "scheduler: DisruptionTarget not written: {e}");
    }
    let dp = kube::api::DeleteParams {
        preconditions: victim
            .metadata
            .uid
            .clone()
            .map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => {
            let note = format!(
                "Preempted by pod {} on node {node}",
                preemptor.metadata.uid.as_deref().unwrap_or("")
            );
            let reference: ObjectReference = victim.object_ref(&());
            let ev = Event {
                type_: EventType::Normal,
                reason: "Preempted".into(),
                note: Some(note),
                action: "Preempting".into(),
                secondary: Some(preemptor.object_ref(&())),
            };
            recorder.publish(&ev, &reference).await;
        }
        Err(e) => tracing::warn!(pod = name, "scheduler: preemption victim not deleted: {e}"),
    }
}

/// Why a pod is not bound: upstream's PodScheduled=False reasons.
#[derive(Clone, Copy)]
enum Failure {
    /// No node fits (`Unschedulable`).
    Unschedulable,
    /// A node was chosen but PreBind or Bind failed (`SchedulerError`).
    Error,
}

/// The message of an API error as the server wrote it (kube's `Display` adds its own framing).
fn api_message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => status.message.clone(),
        _ => e.to_string(),
    }
}

/// Upstream's handleSchedulingFailure: the `FailedScheduling` event and the PodScheduled=False
/// condition (written only when it or the nomination changes), with the node preemption nominated
/// or the nomination cleared.
async fn report_failure(
    client: &kube::Client,
    recorder: &Events,
    pod: &Pod,
    failure: Failure,
    message: &str,
    nomination: Nomination<'_>,
) {
    let reason = match failure {
        Failure::Unschedulable => "Unschedulable",
        Failure::Error => "SchedulerError",
    };
    event(
        recorder,
        pod,
        EventType::Warning,
        "FailedScheduling",
        "Scheduling",
        message.to_string(),
    )
    .await;
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let had = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("");
    let nomination_changes = match nomination {
        Nomination::Keep => false,
        Nomination::Set(node) => node != had,
        Nomination::Clear => !had.is_empty(),
    };
    if !nomination_changes
        && current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        })
    {
        return;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    // Guarded by the resourceVersion the decision was made on: a pod bound meanwhile (by another
    // scheduler or a manual pods/binding) keeps its PodScheduled=True (the write answers 409).
    let mut patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version}, "status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": reason,
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": crate::kubelet::now(),
    }]}});
    match nomination {
        Nomination::Set(node) => patch["status"]["nominatedNodeName"] = json!(node),
        Nomination::Clear if !had.is_empty() => patch["status"]["nominatedNodeName"] = json!(null),
        _ => {}
    }
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        tracing::debug!(pod = name, "scheduler: condition not written: {e}");
    }
}
