//! Pod workers: one task per pod UID, syncing that pod with the runtime whenever something about it
//! changes (the pod's watch event, a relist showing a container changed state, or a back-off ending),
//! as upstream's podWorkers + kuberuntime SyncPod.
//!
//! A sync ([`Kubelet::sync`]) sets up the volumes, makes sure the sandbox runs, runs the init
//! containers one after another, starts or restarts the containers as the restart policy says (with
//! upstream's crash-loop back-off, 10 s doubling to 5 min), pulls images as the pull policy says, and
//! writes the pod status when it differs. A pod being deleted is stopped with its grace period, its
//! status written as terminal, its containers and sandbox removed, and it is then deleted for good
//! ([`Kubelet::terminate`]). One task per pod keeps every pod's steps in order without locks; pods
//! proceed in parallel.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_cri::v1::{ContainerState, PodSandboxState};
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use serde_json::json;
use tokio::sync::Notify;

use super::container_status::{self, Attempt, Observed, Run};
use super::cri::Cri;
use super::runtime_config::{self, ContainerInputs, LABEL_CONTAINER_NAME, LABEL_POD_UID};
use super::{env, lifecycle, volumes};
use crate::controllers::events::{record, Recorder};

const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// The node's kubelet: what every pod worker shares.
pub struct Kubelet {
    pub client: kube::Client,
    pub cri: Cri,
    pub node_name: String,
    pub node_ip: String,
    pub root: PathBuf,
    /// How pods' resolv.conf is made (cluster DNS, domain, host resolv.conf).
    pub cluster_dns: runtime_config::ClusterDns,
    pub pods: Store<Pod>,
    pub recorder: Recorder,
    pub probes: super::probes::Probes,
    /// The latest resource usage sample ([`super::stats`]).
    pub stats: super::stats::Stats,
    workers: Mutex<HashMap<String, Arc<Notify>>>,
    backoff: Mutex<HashMap<String, (Instant, Duration)>>,
    /// The static pods (`--pod-manifest-path`), by UID: [`super::static_pods`] keeps them.
    static_pods: Mutex<HashMap<String, Arc<Pod>>>,
    /// How often a sync with nothing pending still runs (`--sync-frequency`, upstream's default a
    /// minute); each such sync also refreshes the pod's configMap, secret, downwardAPI and projected
    /// volumes.
    pub sync_frequency: Duration,
    /// The node's pressure conditions, as the eviction manager last found them.
    pressure: Mutex<super::eviction::Pressure>,
    /// Pods the eviction manager chose, by UID, with the eviction message and the grace cap (`None`:
    /// a hard eviction's): their workers end them.
    evictions: Mutex<HashMap<String, (String, Option<i64>)>>,
}

/// Why the kubelet itself ends a pod: its status reason and message, and whether it is a disruption
/// (upstream's DisruptionTarget condition, for evictions).
struct Failure {
    /// The event's type: Warning for evictions, Normal for a deadline (as upstream records them).
    event: EventType,
    reason: &'static str,
    message: String,
    disruption: bool,
    /// Seconds the containers get to stop (`None`: the pod's own grace period).
    grace: Option<i64>,
}

/// What one worker remembers between syncs of its pod.
#[derive(Default)]
struct PodState {
    /// Volume name → host path, once set up.
    volumes: Option<BTreeMap<String, PathBuf>>,
    /// Container name → why it is not running (shown as its waiting state).
    waiting: HashMap<String, (String, String)>,
    /// The last FailedMount message recorded (so a retry loop records it once).
    mount_error: Option<String>,
    /// The service account tokens in the pod's projected volumes.
    tokens: volumes::Tokens,
    /// When the volumes' files were last brought up to date, and the pod's labels and annotations
    /// then (the downward API files show them: a change refreshes them at once).
    volumes_synced: Option<(Instant, u64)>,
}

/// Seconds left of the pod's `activeDeadlineSeconds` since it started (negative once run out);
/// `None` without a deadline or before the pod has started.
fn deadline_left(pod: &Pod) -> Option<i64> {
    let deadline = pod.spec.as_ref()?.active_deadline_seconds?;
    let start = pod.status.as_ref()?.start_time.as_ref()?;
    Some(deadline - (k8s_openapi::jiff::Timestamp::now().as_second() - start.0.as_second()))
}

/// A digest of what a pod's downward API volume files can show that changes while it runs.
fn downward_digest(pod: &Pod) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pod.metadata.labels.hash(&mut h);
    pod.metadata.annotations.hash(&mut h);
    h.finish()
}

/// The runtime's view of one pod.
#[derive(Default)]
struct RuntimePod {
    /// Newest first.
    sandboxes: Vec<k8s_cri::v1::PodSandbox>,
    /// Container name → its attempts, newest first.
    containers: HashMap<String, Vec<Attempt>>,
}

impl RuntimePod {
    fn ready_sandbox(&self) -> Option<&k8s_cri::v1::PodSandbox> {
        self.sandboxes
            .iter()
            .find(|s| s.state == PodSandboxState::SandboxReady as i32)
    }
    fn latest(&self, name: &str) -> Option<&Attempt> {
        self.containers.get(name).and_then(|a| a.first())
    }
}

/// Every running attempt of the runtime pod's containers, by container name.
fn running(rt: &RuntimePod) -> Vec<(String, Attempt)> {
    rt.containers
        .iter()
        .flat_map(|(name, attempts)| attempts.iter().map(move |a| (name.clone(), a)))
        .filter(|(_, a)| a.state == Run::Running)
        .map(|(name, a)| (name, a.clone()))
        .collect()
}

fn run_of(state: i32) -> Run {
    match state {
        s if s == ContainerState::ContainerRunning as i32 => Run::Running,
        s if s == ContainerState::ContainerExited as i32 => Run::Exited,
        s if s == ContainerState::ContainerCreated as i32 => Run::Created,
        _ => Run::Unknown,
    }
}

/// Upstream's default pull policy: Always for `:latest` or an untagged image, else IfNotPresent.
fn pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.clone() {
        return p;
    }
    let image = c.image.as_deref().unwrap_or("");
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || (last.contains(':') && !last.ends_with(":latest")) {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

/// Whether a container that exited with `code` runs again under `policy`.
fn restarts(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Where a sync starts containers: the running sandbox and the pod's set-up volumes.
struct Target<'a> {
    sandbox_id: &'a str,
    sandbox_config: &'a k8s_cri::v1::PodSandboxConfig,
    volumes: BTreeMap<String, PathBuf>,
}

/// Why a container could not be started this sync: its waiting reason and message, and when to try
/// again.
struct NotStarted {
    reason: String,
    message: String,
    retry: Option<Duration>,
}

impl Kubelet {
    pub fn new(
        client: kube::Client,
        cri: Cri,
        config: &super::agent::Config,
        pods: Store<Pod>,
    ) -> Arc<Kubelet> {
        Arc::new(Kubelet {
            recorder: crate::controllers::events::recorder(client.clone(), "kubelet"),
            client,
            cri,
            node_name: config.node_name.clone(),
            node_ip: config.node_ip.clone(),
            root: config.root.clone(),
            cluster_dns: config.cluster_dns.clone(),
            pods,
            probes: Default::default(),
            stats: Default::default(),
            workers: Mutex::default(),
            backoff: Mutex::default(),
            static_pods: Mutex::default(),
            sync_frequency: config.sync_frequency,
            pressure: Mutex::default(),
            evictions: Mutex::default(),
        })
    }

    /// The node's pressure conditions (the heartbeat writes them, admission reads them).
    pub fn pressure(&self) -> super::eviction::Pressure {
        self.pressure.lock().map(|p| *p).unwrap_or_default()
    }

    pub(super) fn set_pressure(&self, p: super::eviction::Pressure) {
        if let Ok(mut cur) = self.pressure.lock() {
            *cur = p;
        }
    }

    /// Ends pod `uid` as evicted with `message` (its worker kills it and writes its status): with
    /// its termination grace period capped at `max_grace` (a soft threshold's eviction), or none
    /// (`None`: a hard one's).
    pub(super) fn evict(self: &Arc<Self>, uid: &str, message: String, max_grace: Option<i64>) {
        let Some(pod) = self.all_pods().get(uid).cloned() else {
            return;
        };
        if let Ok(mut e) = self.evictions.lock() {
            e.insert(uid.to_string(), (message, max_grace));
        }
        self.notify(&pod.namespace().unwrap_or_default(), &pod.name_any(), uid);
    }

    /// Whether the kubelet ends this pod now, and why: an eviction, `activeDeadlineSeconds` run out
    /// (upstream's activeDeadlineHandler), or, for a pod not started yet, the node's pressure
    /// (upstream's eviction admission).
    fn failure(&self, pod: &Pod, uid: &str, rt: &RuntimePod) -> Option<Failure> {
        if let Some((message, max_grace)) =
            self.evictions.lock().ok().and_then(|mut e| e.remove(uid))
        {
            // Upstream's hard evictions give the containers no grace (one second), its soft ones
            // the pod's own, at most --eviction-max-pod-grace-period.
            let own = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds);
            let grace = match max_grace {
                None => 1,
                Some(max) => own.map_or(max, |g| g.min(max)),
            };
            return Some(Failure {
                event: EventType::Warning,
                reason: "Evicted",
                message,
                disruption: true,
                grace: Some(grace),
            });
        }
        if deadline_left(pod).is_some_and(|left| left <= 0) {
            return Some(Failure {
                event: EventType::Normal,
                reason: "DeadlineExceeded",
                message: "Pod was active on the node longer than the specified deadline".into(),
                disruption: false,
                grace: None,
            });
        }
        let started = !rt.sandboxes.is_empty() || rt.containers.values().any(|a| !a.is_empty());
        if !started {
            if let Some(message) = self.pressure().refuses(pod) {
                return Some(Failure {
                    event: EventType::Warning,
                    reason: "Evicted",
                    message,
                    disruption: false,
                    grace: None,
                });
            }
        }
        None
    }

    /// Ends `pod` for `failure`: its containers stopped (preStop hooks first), its sandbox stopped,
    /// its status Failed with the failure's reason and message, an event, and its volumes removed
    /// (an evicted pod's emptyDirs are what gives a full disk back). Its stopped containers stay for
    /// `kubectl logs`, as a finished pod's do.
    async fn fail(&self, pod: &Pod, rt: &RuntimePod, state: &PodState, failure: Failure) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.event(pod, failure.event, failure.reason, failure.message.clone())
            .await;
        let grace = failure.grace.unwrap_or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
        });
        self.stop_running(pod, &running(rt), grace).await;
        for s in &rt.sandboxes {
            if let Err(e) = self.cri.stop_sandbox(&s.id).await {
                tracing::warn!("kubelet: stopping sandbox {}: {e}", s.id);
            }
        }
        let after = self.runtime_pod(&uid).await.unwrap_or_default();
        let obs = self.observed(pod, &after, state, None);
        let mut status = container_status::pod_status(pod, &obs);
        status.phase = Some("Failed".into());
        status.reason = Some(failure.reason.into());
        status.message = Some(failure.message.clone());
        if failure.disruption {
            let conditions = status.conditions.get_or_insert_with(Vec::new);
            conditions.retain(|c| c.type_ != "DisruptionTarget");
            conditions.push(k8s_openapi::api::core::v1::PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("TerminationByKubelet".into()),
                message: Some(failure.message),
                last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                )),
                ..Default::default()
            });
        }
        self.write_status(pod, status).await;
        volumes::tear_down(&self.root, &uid);
    }

    /// Wakes the worker of pod `uid` (starting one if it has none).
    pub fn notify(self: &Arc<Self>, ns: &str, name: &str, uid: &str) {
        let Ok(mut workers) = self.workers.lock() else {
            return;
        };
        if let Some(n) = workers.get(uid) {
            n.notify_one();
            return;
        }
        let n = Arc::new(Notify::new());
        workers.insert(uid.to_string(), n.clone());
        let me = self.clone();
        let (ns, name, uid) = (ns.to_string(), name.to_string(), uid.to_string());
        tokio::spawn(async move {
            me.work(&ns, &name, &uid, n).await;
            if let Ok(mut w) = me.workers.lock() {
                w.remove(&uid);
            }
        });
    }

    /// Whether a worker runs for `uid` (the relist leaves such pods to it).
    pub fn has_worker(&self, uid: &str) -> bool {
        self.workers.lock().is_ok_and(|w| w.contains_key(uid))
    }

    fn pod(&self, ns: &str, name: &str, uid: &str) -> Option<Arc<Pod>> {
        if let Some(p) = self.static_pod(uid) {
            return Some(p);
        }
        self.pods
            .get(&ObjectRef::new(name).within(ns))
            .filter(|p| p.metadata.uid.as_deref() == Some(uid))
    }

    /// Static pod `uid` with the status its mirror pod shows (what the worker compares its new
    /// status with, and where the pod's start time and terminal phase are kept).
    fn static_pod(&self, uid: &str) -> Option<Arc<Pod>> {
        let pod = self.static_pods.lock().ok()?.get(uid).cloned()?;
        let mirror = self
            .pods
            .get(&ObjectRef::new(&pod.name_any()).within(&pod.namespace().unwrap_or_default()))
            .filter(|m| {
                m.annotations()
                    .get(super::static_pods::ANNOTATION_MIRROR)
                    .is_some_and(|h| h == uid)
            });
        let mut pod = (*pod).clone();
        pod.status = mirror.and_then(|m| m.status.clone());
        Some(Arc::new(pod))
    }

    /// Whether `uid` is one of the static pods.
    pub fn has_static_pod(&self, uid: &str) -> bool {
        self.static_pods
            .lock()
            .is_ok_and(|pods| pods.contains_key(uid))
    }

    /// Replaces the static pods; returns those added or removed (their workers are to be woken:
    /// a new one starts, a removed one stops its containers).
    pub fn set_static_pods(&self, pods: HashMap<String, Arc<Pod>>) -> Vec<(String, Arc<Pod>)> {
        let Ok(mut current) = self.static_pods.lock() else {
            return Vec::new();
        };
        let mut changed: Vec<(String, Arc<Pod>)> = pods
            .iter()
            .filter(|(uid, _)| !current.contains_key(*uid))
            .map(|(u, p)| (u.clone(), p.clone()))
            .collect();
        changed.extend(
            current
                .iter()
                .filter(|(uid, _)| !pods.contains_key(*uid))
                .map(|(u, p)| (u.clone(), p.clone())),
        );
        *current = pods;
        changed
    }

    /// The UID the runtime knows pod `ns/name` by (for logs and streams): a mirror pod's is its
    /// static pod's.
    pub fn runtime_uid(&self, ns: &str, name: &str) -> Option<String> {
        let pod = self.pods.get(&ObjectRef::new(name).within(ns))?;
        match pod.annotations().get(super::static_pods::ANNOTATION_MIRROR) {
            Some(hash) => Some(hash.clone()),
            None => pod.metadata.uid.clone(),
        }
    }

    /// Every pod this kubelet runs, by UID: those bound to it in the API (mirror pods excluded) and
    /// its static pods.
    pub fn all_pods(&self) -> HashMap<String, Arc<Pod>> {
        let mut pods: HashMap<String, Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| !super::static_pods::is_mirror(p))
            .filter_map(|p| p.metadata.uid.clone().map(|u| (u, p)))
            .collect();
        if let Ok(statics) = self.static_pods.lock() {
            pods.extend(statics.iter().map(|(u, p)| (u.clone(), p.clone())));
        }
        pods
    }

    async fn work(self: &Arc<Self>, ns: &str, name: &str, uid: &str, notify: Arc<Notify>) {
        let mut state = PodState::default();
        loop {
            let wake = match self.pod(ns, name, uid) {
                None => {
                    // Gone from the API (force-deleted, or deleted by us after termination), or
                    // a static pod whose manifest went. Its logs go too: a static pod put back
                    // has the same UID and must not show the old run's lines.
                    self.kill_runtime_pod(uid, None).await;
                    volumes::tear_down(&self.root, uid);
                    if let Ok(mut e) = self.evictions.lock() {
                        e.remove(uid);
                    }
                    let logs = runtime_config::pod_log_directory(&self.root, ns, name, uid);
                    if let Err(e) = std::fs::remove_dir_all(&logs) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!("kubelet: removing {logs}: {e}");
                        }
                    }
                    return;
                }
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    match self.terminate(&pod).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(pod = %name, "kubelet: terminating: {e}");
                            Some(Duration::from_secs(2))
                        }
                    }
                }
                Some(pod) => self.sync(&pod, &mut state).await,
            };
            let wait = wake.unwrap_or(self.sync_frequency).min(self.sync_frequency);
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    pub(super) async fn event(&self, pod: &Pod, type_: EventType, reason: &str, message: String) {
        record(&self.recorder, pod, type_, reason, "", message).await;
    }

    /// The runtime's sandboxes and containers of pod `uid`, with each container's status.
    async fn runtime_pod(&self, uid: &str) -> Result<RuntimePod, super::cri::CriError> {
        let mut out = RuntimePod::default();
        let mut sandboxes: Vec<_> = self
            .cri
            .list_sandboxes()
            .await?
            .into_iter()
            .filter(|s| s.labels.get(LABEL_POD_UID).map(String::as_str) == Some(uid))
            .collect();
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        out.sandboxes = sandboxes;
        for c in self.cri.list_containers().await? {
            if c.labels.get(LABEL_POD_UID).map(String::as_str) != Some(uid) {
                continue;
            }
            let name = c
                .labels
                .get(LABEL_CONTAINER_NAME)
                .cloned()
                .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default();
            let Some(s) = self.cri.container_status(&c.id).await? else {
                continue;
            };
            let message = if run_of(s.state) == Run::Exited {
                super::lifecycle::termination_message(&s, &s.log_path).unwrap_or(s.message)
            } else {
                s.message
            };
            out.containers.entry(name).or_default().push(Attempt {
                id: s.id,
                attempt: s.metadata.map(|m| m.attempt).unwrap_or(0),
                state: run_of(s.state),
                started_at: s.started_at,
                finished_at: s.finished_at,
                exit_code: s.exit_code,
                reason: s.reason,
                message,
                image: s.image.map(|i| i.image).unwrap_or_default(),
                image_ref: s.image_ref,
                log_path: s.log_path,
            });
        }
        for attempts in out.containers.values_mut() {
            attempts.sort_by_key(|a| std::cmp::Reverse(a.attempt));
        }
        Ok(out)
    }

    /// The attempts of container `name` of pod `uid`, newest first (for its logs).
    pub async fn attempts(
        &self,
        uid: &str,
        name: &str,
    ) -> Result<Vec<Attempt>, super::cri::CriError> {
        let mut rt = self.runtime_pod(uid).await?;
        Ok(rt.containers.remove(name).unwrap_or_default())
    }

    /// The ID of pod `uid`'s ready sandbox, if it has one (for port forwarding).
    pub async fn ready_sandbox(&self, uid: &str) -> Result<Option<String>, super::cri::CriError> {
        let rt = self.runtime_pod(uid).await?;
        Ok(rt.ready_sandbox().map(|s| s.id.clone()))
    }

    fn observed(
        &self,
        pod: &Pod,
        rt: &RuntimePod,
        state: &PodState,
        pod_ip: Option<String>,
    ) -> Observed {
        let mut ready = HashMap::new();
        let mut started = HashMap::new();
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            if let Some(a) = rt.latest(&c.name).filter(|a| a.state == Run::Running) {
                let (r, s) = self.probes.results(c, &a.id);
                ready.insert(c.name.clone(), r);
                started.insert(c.name.clone(), s);
            }
        }
        Observed {
            sandbox_ready: rt.ready_sandbox().is_some(),
            pod_ip,
            host_ip: self.node_ip.clone(),
            containers: rt
                .containers
                .iter()
                .map(|(n, a)| (n.clone(), (a.first().cloned(), a.get(1).cloned())))
                .collect(),
            waiting: state.waiting.clone(),
            ready,
            started,
        }
    }

    async fn pod_ip(&self, rt: &RuntimePod, pod: &Pod) -> Option<String> {
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
        {
            return Some(self.node_ip.clone());
        }
        let sandbox = rt.ready_sandbox()?;
        let status = self.cri.sandbox_status(&sandbox.id).await.ok()??;
        status.network.map(|n| n.ip).filter(|ip| !ip.is_empty())
    }

    /// Writes `status` when it differs from what the pod shows.
    async fn write_status(&self, pod: &Pod, status: PodStatus) {
        let current = serde_json::to_value(&pod.status).unwrap_or_default();
        let new = serde_json::to_value(Some(&status)).unwrap_or_default();
        if current == new {
            return;
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        // Lists are replaced whole by a merge patch, so the status goes as one piece.
        let patch = Patch::Merge(json!({"status": status}));
        if let Err(e) = api
            .patch_status(&pod.name_any(), &PatchParams::default(), &patch)
            .await
        {
            if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                tracing::warn!(pod = %pod.name_any(), "kubelet: status update failed: {e}");
            }
        }
    }

    fn backoff_left(&self, key: &str) -> Option<(Duration, Duration)> {
        let map = self.backoff.lock().ok()?;
        let (until, period) = map.get(key)?;
        let now = Instant::now();
        (*until > now).then(|| (*until - now, *period))
    }

    fn backoff_bump(&self, key: &str) {
        if let Ok(mut map) = self.backoff.lock() {
            let period = match map.get(key) {
                Some((_, p)) => (*p * 2).min(BACKOFF_MAX),
                None => BACKOFF_INITIAL,
            };
            map.insert(key.to_string(), (Instant::now() + period, period));
        }
    }

    fn backoff_known(&self, key: &str) -> bool {
        self.backoff.lock().is_ok_and(|m| m.contains_key(key))
    }

    fn backoff_forget(&self, prefix: &str) {
        if let Ok(mut map) = self.backoff.lock() {
            map.retain(|k, _| !k.starts_with(prefix));
        }
    }

    /// One sync of a live pod; returns when to sync again (besides events).
    async fn sync(self: &Arc<Self>, pod: &Pod, state: &mut PodState) -> Option<Duration> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        let terminal = phase == "Succeeded" || phase == "Failed";
        let rt = match self.runtime_pod(&uid).await {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(pod = %pod.name_any(), "kubelet: listing the runtime: {e}");
                return Some(Duration::from_secs(2));
            }
        };
        if !terminal {
            if let Some(failure) = self.failure(pod, &uid, &rt) {
                self.fail(pod, &rt, state, failure).await;
                return None;
            }
        }
        if terminal {
            // A finished pod keeps its containers (for logs) but not its sandbox.
            for s in rt
                .sandboxes
                .iter()
                .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
            {
                let _ = self.cri.stop_sandbox(&s.id).await;
            }
            return None;
        }
        let digest = downward_digest(pod);
        let refresh_due = match state.volumes_synced {
            Some((at, d)) => at.elapsed() >= self.sync_frequency || d != digest,
            None => true,
        };
        if state.volumes.is_none() || refresh_due {
            let first = state.volumes.is_none();
            let result = volumes::set_up(&self.client, &self.root, pod, &mut state.tokens).await;
            state.volumes_synced = Some((Instant::now(), digest));
            match result {
                Ok(v) => {
                    state.volumes = Some(v);
                    state.mount_error = None;
                }
                Err(volumes::MountError(message)) => {
                    if state.mount_error.as_ref() != Some(&message) {
                        self.event(pod, EventType::Warning, "FailedMount", message.clone())
                            .await;
                        state.mount_error = Some(message);
                    }
                    // A refresh that fails (a ConfigMap deleted under a running pod) leaves the
                    // files as they were and the pod running, as upstream's does.
                    if first {
                        let obs = self.observed(pod, &rt, state, None);
                        self.write_status(pod, container_status::pod_status(pod, &obs))
                            .await;
                        return Some(Duration::from_secs(5));
                    }
                }
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let mut rt = rt;
        let mut wake: Option<Duration> = None;
        let mut soonest = |d: Duration| {
            wake = Some(wake.map_or(d, |w: Duration| w.min(d)));
        };
        if let Some(left) = deadline_left(pod) {
            // Woken when activeDeadlineSeconds runs out ([`Kubelet::failure`] ends the pod then).
            soonest(Duration::from_secs(u64::try_from(left).unwrap_or(0) + 1));
        }
        if rt.ready_sandbox().is_none() {
            let ever_ran = rt.containers.values().any(|a| !a.is_empty());
            if !(ever_ran && policy == "Never") {
                match self.start_sandbox(pod, &rt).await {
                    Ok(()) => {}
                    Err(retry) => {
                        let obs = self.observed(pod, &rt, state, None);
                        self.write_status(pod, container_status::pod_status(pod, &obs))
                            .await;
                        return Some(retry);
                    }
                }
                match self.runtime_pod(&uid).await {
                    Ok(fresh) => rt = fresh,
                    Err(_) => return Some(Duration::from_secs(2)),
                }
            }
        }
        let sandbox = rt.ready_sandbox().cloned();
        if let Some(sandbox) = sandbox {
            let sandbox_config = runtime_config::sandbox_config(
                &self.root,
                pod,
                sandbox.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
                &self.cluster_dns,
            );
            let target = Target {
                sandbox_id: &sandbox.id,
                sandbox_config: &sandbox_config,
                volumes: state.volumes.clone().unwrap_or_default(),
            };
            // Ephemeral containers first (upstream starts them before init containers, so a pod
            // stuck in an init container can still be debugged); each runs once, never restarted.
            for e in spec.ephemeral_containers.iter().flatten() {
                if rt.latest(&e.name).is_some() {
                    continue;
                }
                let c = super::ephemeral_container(e);
                if let Some(d) = self.start_or_wait(pod, &c, None, &target, state).await {
                    soonest(d);
                }
            }
            let mut blocked = false;
            // Init containers in order: each must succeed before the next (and the app
            // containers) start.
            for c in spec.init_containers.iter().flatten() {
                let latest = rt.latest(&c.name).cloned();
                match latest.as_ref().map(|a| (a.state, a.exit_code)) {
                    Some((Run::Exited, 0)) => continue,
                    Some((Run::Running, _)) | Some((Run::Created, _)) => {
                        blocked = true;
                        break;
                    }
                    Some((_, code)) if !restarts(&policy, code) || policy == "Never" => {
                        blocked = true;
                        break;
                    }
                    _ => {}
                }
                if let Some(d) = self
                    .start_or_wait(pod, c, latest.as_ref(), &target, state)
                    .await
                {
                    soonest(d);
                }
                blocked = true;
                break;
            }
            if !blocked {
                for c in &spec.containers {
                    let latest = rt.latest(&c.name).cloned();
                    match latest.as_ref().map(|a| (a.state, a.exit_code)) {
                        Some((Run::Running, _)) => {
                            state.waiting.remove(&c.name);
                            continue;
                        }
                        Some((Run::Exited, code)) | Some((Run::Unknown, code))
                            if !restarts(&policy, code) =>
                        {
                            state.waiting.remove(&c.name);
                            continue;
                        }
                        _ => {}
                    }
                    if let Some(d) = self
                        .start_or_wait(pod, c, latest.as_ref(), &target, state)
                        .await
                    {
                        soonest(d);
                    }
                }
            }
            if let Ok(fresh) = self.runtime_pod(&uid).await {
                rt = fresh;
            }
        }
        let pod_ip = self.pod_ip(&rt, pod).await;
        let mut running = Vec::new();
        for c in &spec.containers {
            if let Some(a) = rt.latest(&c.name).filter(|a| a.state == Run::Running) {
                super::probes::ensure(self, pod, c, &a.id, pod_ip.clone());
                running.push(a.id.clone());
            }
        }
        self.probes.retain(&uid, &running);
        let obs = self.observed(pod, &rt, state, pod_ip);
        let status = container_status::pod_status(pod, &obs);
        let done = matches!(status.phase.as_deref(), Some("Succeeded") | Some("Failed"));
        self.write_status(pod, status).await;
        if done {
            for s in &rt.sandboxes {
                let _ = self.cri.stop_sandbox(&s.id).await;
            }
        }
        wake
    }

    /// Runs a new sandbox for `pod` (after stopping what is left of an old one).
    async fn start_sandbox(&self, pod: &Pod, rt: &RuntimePod) -> Result<(), Duration> {
        for attempts in rt.containers.values() {
            for a in attempts.iter().filter(|a| a.state == Run::Running) {
                let _ = self.cri.stop_container(&a.id, 0).await;
            }
        }
        for s in &rt.sandboxes {
            let _ = self.cri.stop_sandbox(&s.id).await;
        }
        // One past the highest attempt listed, not the newest sandbox's: sandboxes whose network
        // set-up failed and could not be cleaned up stay listed (SANDBOX_UNKNOWN, their names still
        // reserved), and by creation time the newest was not always the highest attempt: with a
        // conflicting CNI bridge, after attempts 0 and 1 had failed most retries asked for attempt
        // 1 again and failed at once ("failed to reserve sandbox name").
        let attempt = rt
            .sandboxes
            .iter()
            .filter_map(|s| s.metadata.as_ref().map(|m| m.attempt + 1))
            .max()
            .unwrap_or(0);
        let config = runtime_config::sandbox_config(&self.root, pod, attempt, &self.cluster_dns);
        if let Some(message) = runtime_config::missing_cluster_dns(pod, &self.cluster_dns) {
            self.event(pod, EventType::Warning, "MissingClusterDNS", message)
                .await;
        }
        if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
            tracing::warn!("kubelet: creating {}: {e}", config.log_directory);
        }
        match self.cri.run_sandbox(config).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.event(
                    pod,
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                )
                .await;
                Err(Duration::from_secs(5))
            }
        }
    }

    /// Starts container `c` (a first run or a restart) unless a back-off or an error holds it;
    /// records why in `state.waiting`. Returns when to try again.
    async fn start_or_wait(
        &self,
        pod: &Pod,
        c: &Container,
        latest: Option<&Attempt>,
        target: &Target<'_>,
        state: &mut PodState,
    ) -> Option<Duration> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!("{uid}/{}", c.name);
        let restart = latest.is_some_and(|a| a.state == Run::Exited || a.state == Run::Unknown);
        if restart {
            // The first restart is immediate; later ones wait out the back-off (upstream's
            // crash loop: 10 s, doubling, at most 5 min).
            if let Some((left, period)) = self.backoff_left(&key) {
                let message = format!(
                    "back-off {} restarting failed container={} pod={}_{}({uid})",
                    go_duration(period),
                    c.name,
                    pod.name_any(),
                    pod.namespace().unwrap_or_default()
                );
                if state.waiting.get(&c.name).map(|w| w.0.as_str()) != Some("CrashLoopBackOff") {
                    self.event(
                        pod,
                        EventType::Warning,
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {} in pod {}_{}({uid})",
                            c.name,
                            pod.name_any(),
                            pod.namespace().unwrap_or_default()
                        ),
                    )
                    .await;
                }
                state
                    .waiting
                    .insert(c.name.clone(), ("CrashLoopBackOff".into(), message));
                return Some(left);
            }
        }
        let attempt = latest.map(|a| a.attempt + 1).unwrap_or(0);
        match self.start_container(pod, c, attempt, target).await {
            Ok(()) => {
                state.waiting.remove(&c.name);
                if restart || self.backoff_known(&key) {
                    self.backoff_bump(&key);
                } else {
                    // Known from now on: the next exit restarts at once, the one after backs off.
                    if let Ok(mut m) = self.backoff.lock() {
                        m.insert(key.clone(), (Instant::now(), BACKOFF_INITIAL / 2));
                    }
                }
                // Keep the previous attempt (lastState, `kubectl logs --previous`); older ones go.
                if let Ok(rt) = self.runtime_pod(&uid).await {
                    for old in rt
                        .containers
                        .get(&c.name)
                        .into_iter()
                        .flatten()
                        .filter(|a| a.attempt + 1 < attempt)
                    {
                        let _ = self.cri.remove_container(&old.id).await;
                    }
                }
                None
            }
            Err(ns) => {
                if ns.reason == "PostStartHookError" {
                    // It ran and was killed: its restarts back off as a crash loop's do.
                    self.backoff_bump(&key);
                }
                state
                    .waiting
                    .insert(c.name.clone(), (ns.reason, ns.message));
                ns.retry
            }
        }
    }

    async fn start_container(
        &self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        target: &Target<'_>,
    ) -> Result<(), NotStarted> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let image_ref = self.ensure_image(pod, c, &uid).await?;
        let config_error = |message: String| NotStarted {
            reason: "CreateContainerConfigError".into(),
            message,
            retry: Some(Duration::from_secs(10)),
        };
        let env = match env::environment(&self.client, pod, c).await {
            Ok(env) => env,
            Err(env::EnvError(e)) => {
                self.event(pod, EventType::Warning, "Failed", format!("Error: {e}"))
                    .await;
                return Err(config_error(e));
            }
        };
        let mut mounts = match volumes::mounts(c, &target.volumes) {
            Ok(m) => m,
            Err(e) => {
                self.event(pod, EventType::Warning, "Failed", format!("Error: {e}"))
                    .await;
                return Err(config_error(e));
            }
        };
        match lifecycle::message_file(&volumes::pod_dir(&self.root, &uid), c, attempt) {
            Ok(Some((host, path))) => mounts.push(k8s_cri::v1::Mount {
                container_path: path,
                host_path: host.to_string_lossy().into_owned(),
                ..Default::default()
            }),
            Ok(None) => {}
            Err(e) => return Err(config_error(format!("creating the termination log: {e}"))),
        }
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let pid_target = self.pid_target(pod, &c.name).await?;
        let config = runtime_config::container_config(
            pod,
            c,
            ContainerInputs {
                attempt,
                env,
                mounts,
                image: image_ref,
                grace,
                pid_target,
            },
        );
        let id = match self
            .cri
            .create_container(target.sandbox_id, config, target.sandbox_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.event(pod, EventType::Warning, "Failed", format!("Error: {e}"))
                    .await;
                return Err(NotStarted {
                    reason: "CreateContainerError".into(),
                    message: e.to_string(),
                    retry: Some(Duration::from_secs(10)),
                });
            }
        };
        self.event(
            pod,
            EventType::Normal,
            "Created",
            format!("Created container: {}", c.name),
        )
        .await;
        if let Err(e) = self.cri.start_container(&id).await {
            self.event(pod, EventType::Warning, "Failed", format!("Error: {e}"))
                .await;
            return Err(NotStarted {
                reason: "RunContainerError".into(),
                message: e.to_string(),
                retry: Some(Duration::from_secs(10)),
            });
        }
        self.event(
            pod,
            EventType::Normal,
            "Started",
            format!("Started container {}", c.name),
        )
        .await;
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            // The hook has the pod's grace period at most (upstream runs it without a deadline of
            // its own; a bound keeps the worker from waiting forever).
            let limit = Duration::from_secs(u64::try_from(grace.max(1)).unwrap_or(30));
            let ran =
                match tokio::time::timeout(limit, lifecycle::run(self, pod, c, &id, hook, limit))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "PostStartHook for Container {:?} did not finish within {grace}s",
                        c.name
                    )),
                };
            if let Err(message) = ran {
                // The event does not carry the message (upstream: it may hold secrets).
                self.event(
                    pod,
                    EventType::Warning,
                    "FailedPostStartHook",
                    "PostStartHook failed".into(),
                )
                .await;
                self.stop_container(pod, c, &id, grace).await;
                return Err(NotStarted {
                    reason: "PostStartHookError".into(),
                    message,
                    retry: Some(Duration::from_secs(1)),
                });
            }
        }
        Ok(())
    }

    /// For ephemeral container `name` with a `targetContainerName`: the runtime ID of that target,
    /// which must be running (as upstream's kubelet, which otherwise fails the start and retries).
    async fn pid_target(&self, pod: &Pod, name: &str) -> Result<Option<String>, NotStarted> {
        let target = pod
            .spec
            .iter()
            .flat_map(|s| s.ephemeral_containers.iter().flatten())
            .find(|e| e.name == name)
            .and_then(|e| e.target_container_name.clone());
        let Some(target) = target else {
            return Ok(None);
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let running = self.runtime_pod(&uid).await.ok().and_then(|rt| {
            rt.latest(&target)
                .filter(|a| a.state == Run::Running)
                .map(|a| a.id.clone())
        });
        running.map(Some).ok_or_else(|| NotStarted {
            reason: "CreateContainerConfigError".into(),
            message: format!("target container {target:?} is not running"),
            retry: Some(Duration::from_secs(2)),
        })
    }

    /// Stops the `running` containers of `pod` at once, each within `grace` seconds and its preStop
    /// hook first (a container the spec no longer names, directly).
    async fn stop_running(&self, pod: &Pod, running: &[(String, Attempt)], grace: i64) {
        let specs: Vec<&Container> = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .collect();
        let specs = &specs;
        futures::future::join_all(running.iter().map(|(name, a)| async move {
            match specs.iter().find(|c| &c.name == name) {
                Some(c) => self.stop_container(pod, c, &a.id, grace).await,
                None => {
                    let _ = self.cri.stop_container(&a.id, grace).await;
                }
            }
        }))
        .await;
    }

    /// Stops container `id` (of `c`) within `grace` seconds, its preStop hook first.
    pub(super) async fn stop_container(&self, pod: &Pod, c: &Container, id: &str, grace: i64) {
        let grace = lifecycle::pre_stop(self, pod, c, id, grace).await;
        if let Err(e) = self.cri.stop_container(id, grace).await {
            tracing::warn!("kubelet: stopping container {id}: {e}");
        }
    }

    /// Makes sure the container's image is there as its pull policy asks; returns the reference to
    /// create the container from.
    async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        uid: &str,
    ) -> Result<String, NotStarted> {
        let image = c.image.clone().unwrap_or_default();
        let policy = pull_policy(c);
        let present = self.cri.image_id(&image).await.ok().flatten();
        if let Some(id) = &present {
            if policy != "Always" {
                self.event(
                    pod,
                    EventType::Normal,
                    "Pulled",
                    format!("Container image {image:?} already present on machine"),
                )
                .await;
                return Ok(id.clone());
            }
        }
        if policy == "Never" {
            let message =
                format!("Container image {image:?} is not present with pull policy of Never");
            self.event(
                pod,
                EventType::Warning,
                "ErrImageNeverPull",
                message.clone(),
            )
            .await;
            return Err(NotStarted {
                reason: "ErrImageNeverPull".into(),
                message,
                retry: Some(Duration::from_secs(10)),
            });
        }
        let key = format!("pull/{uid}/{}", c.name);
        if let Some((left, _)) = self.backoff_left(&key) {
            self.event(
                pod,
                EventType::Normal,
                "BackOff",
                format!("Back-off pulling image {image:?}"),
            )
            .await;
            return Err(NotStarted {
                reason: "ImagePullBackOff".into(),
                message: format!("Back-off pulling image {image:?}"),
                retry: Some(left),
            });
        }
        self.event(
            pod,
            EventType::Normal,
            "Pulling",
            format!("Pulling image {image:?}"),
        )
        .await;
        let started = Instant::now();
        match self.pull(pod, &image).await {
            Ok(image_ref) => {
                self.event(
                    pod,
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image {image:?} in {}",
                        go_duration(started.elapsed())
                    ),
                )
                .await;
                Ok(image_ref)
            }
            Err(e) => {
                self.backoff_bump(&key);
                self.event(
                    pod,
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image {image:?}: {e}"),
                )
                .await;
                Err(NotStarted {
                    reason: "ErrImagePull".into(),
                    message: e.to_string(),
                    retry: self.backoff_left(&key).map(|(l, _)| l),
                })
            }
        }
    }

    /// Pulls `image` as upstream's kubelet does: with each credential the pod's pull secrets hold for
    /// its registry in turn until one works ([`super::pull_secrets`]), anonymously when none match.
    /// Fails with every attempt's error (upstream's aggregate: `[e1, e2]` when there are several).
    async fn pull(&self, pod: &Pod, image: &str) -> Result<String, super::cri::CriError> {
        let secrets = self.pull_secrets(pod).await;
        let credentials = super::pull_secrets::credentials(&secrets, image);
        if credentials.is_empty() {
            return self.cri.pull(image, None).await;
        }
        let mut errors = Vec::new();
        for auth in credentials {
            match self.cri.pull(image, Some(auth)).await {
                Ok(image_ref) => return Ok(image_ref),
                Err(e) => errors.push(e),
            }
        }
        if errors.len() == 1 {
            return Err(errors.remove(0));
        }
        let message = errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(super::cri::CriError {
            code: errors[0].code,
            message: format!("[{message}]"),
        })
    }

    /// The pod's `imagePullSecrets` that can be read; the others are named in a
    /// `FailedToRetrieveImagePullSecret` event, as upstream's kubelet records, and the pull goes on.
    async fn pull_secrets(&self, pod: &Pod) -> Vec<k8s_openapi::api::core::v1::Secret> {
        let names: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Vec::new();
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(self.client.clone(), &ns);
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for name in names {
            match api.get(&name).await {
                Ok(secret) => found.push(secret),
                Err(e) => {
                    tracing::warn!("kubelet: pull secret {ns}/{name}: {e}");
                    failed.push(name);
                }
            }
        }
        if !failed.is_empty() {
            self.event(
                pod,
                EventType::Warning,
                "FailedToRetrieveImagePullSecret",
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    failed.join(", ")
                ),
            )
            .await;
        }
        found
    }

    /// Stops and removes everything the runtime has of pod `uid`; `grace` overrides each
    /// container's own (from its annotation).
    async fn kill_runtime_pod(&self, uid: &str, grace: Option<i64>) {
        let Ok(rt) = self.runtime_pod(uid).await else {
            return;
        };
        let stops = rt
            .containers
            .values()
            .flatten()
            .filter(|a| a.state == Run::Running)
            .map(|a| {
                let cri = self.cri.clone();
                let id = a.id.clone();
                async move {
                    let grace = match grace {
                        Some(g) => g,
                        None => cri
                            .container_status(&id)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|s| {
                                s.annotations
                                    .get(runtime_config::ANNOTATION_GRACE)
                                    .and_then(|g| g.parse().ok())
                            })
                            .unwrap_or(30),
                    };
                    if let Err(e) = cri.stop_container(&id, grace).await {
                        tracing::warn!("kubelet: stopping container {id}: {e}");
                    }
                }
            });
        futures::future::join_all(stops).await;
        for s in &rt.sandboxes {
            if let Err(e) = self.cri.stop_sandbox(&s.id).await {
                tracing::warn!("kubelet: stopping sandbox {}: {e}", s.id);
            }
        }
        for a in rt.containers.values().flatten() {
            let _ = self.cri.remove_container(&a.id).await;
        }
        for s in &rt.sandboxes {
            if let Err(e) = self.cri.remove_sandbox(&s.id).await {
                tracing::warn!("kubelet: removing sandbox {}: {e}", s.id);
            }
        }
        self.probes.retain(uid, &[]);
        self.backoff_forget(&format!("{uid}/"));
        self.backoff_forget(&format!("pull/{uid}/"));
    }

    /// A pod being deleted: its containers are stopped within the grace period its deletion asked
    /// for, its final status written (terminal), everything removed from the runtime and the node,
    /// and the pod deleted for good (grace 0, guarded by its UID), as upstream's kubelet ends it.
    async fn terminate(&self, pod: &Pod) -> Result<(), kube::Error> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or(30)
            .max(0);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let was_terminal = matches!(phase, Some("Succeeded") | Some("Failed"));
        if let Ok(rt) = self.runtime_pod(&uid).await {
            let running = running(&rt);
            if !running.is_empty() {
                self.event(
                    pod,
                    EventType::Normal,
                    "Killing",
                    format!(
                        "Stopping container {}",
                        running
                            .iter()
                            .map(|(_, a)| a.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .await;
            }
            self.stop_running(pod, &running, grace).await;
            if !was_terminal {
                if let Ok(stopped) = self.runtime_pod(&uid).await {
                    // Stopped for deletion: the pod ends in a terminal phase as upstream's kubelet
                    // reports it (Succeeded only if every container exited 0).
                    let mut as_never = pod.clone();
                    if let Some(spec) = as_never.spec.as_mut() {
                        spec.restart_policy = Some("Never".into());
                    }
                    let state = PodState::default();
                    let mut obs = self.observed(pod, &stopped, &state, None);
                    obs.sandbox_ready = false;
                    let mut status = container_status::pod_status(&as_never, &obs);
                    if !matches!(status.phase.as_deref(), Some("Succeeded") | Some("Failed")) {
                        status.phase = Some("Failed".into());
                    }
                    self.write_status(pod, status).await;
                }
            }
        }
        self.kill_runtime_pod(&uid, Some(0)).await;
        volumes::tear_down(&self.root, &uid);
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Cleans up a pod the API no longer has (found by the relist, no worker).
    pub async fn remove_orphan(&self, uid: &str) {
        self.kill_runtime_pod(uid, None).await;
        volumes::tear_down(&self.root, uid);
    }
}

/// A duration as Go prints it (`10s`, `5m0s`, `1.5s`), as upstream's messages carry it.
pub(crate) fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        let (m, s) = (secs / 60, secs % 60);
        if m >= 60 {
            return format!("{}h{}m{s}s", m / 60, m % 60);
        }
        return format!("{m}m{s}s");
    }
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{secs}s")
    } else if secs > 0 {
        format!("{}s", (ms as f64 / 1000.0 * 1000.0).round() / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pull_policy_follows_the_tag() {
        let c = |image: &str| Container {
            image: Some(image.into()),
            ..Default::default()
        };
        assert_eq!(pull_policy(&c("busybox")), "Always");
        assert_eq!(pull_policy(&c("busybox:latest")), "Always");
        assert_eq!(pull_policy(&c("busybox:1.36")), "IfNotPresent");
        assert_eq!(pull_policy(&c("localhost:5000/busybox")), "Always");
        assert_eq!(pull_policy(&c("b@sha256:abc")), "IfNotPresent");
    }

    #[test]
    fn restart_policy() {
        assert!(restarts("Always", 0));
        assert!(!restarts("OnFailure", 0));
        assert!(restarts("OnFailure", 2));
        assert!(!restarts("Never", 1));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(80)), "80ms");
    }
}
