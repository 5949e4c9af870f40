//! The kubelet's eviction manager (upstream's `pkg/kubelet/eviction`): when the node runs low on
//! memory or disk it says so in its conditions and evicts pods until it no longer is.
//!
//! Every [`MONITORING_PERIOD`] [`run`] observes the signals (`memory.available` from the node's
//! memory sample, `nodefs.available` and `nodefs.inodesFree` of the kubelet's root directory's
//! filesystem, `imagefs.available` of containerd's image filesystem, `pid.available`: the kernel's
//! process limit less the tasks running, [`pids`]) and compares them with the hard thresholds
//! (`--eviction-hard`, upstream's default
//! `memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%`).
//! - A threshold met sets the Node's `MemoryPressure`, `DiskPressure` or `PIDPressure` condition
//!   ([`Pressure`], written by the heartbeat) until it has not been met for
//!   `--eviction-pressure-transition-period` (5m); the node lifecycle controller taints the node for
//!   it, so nothing more is scheduled there.
//! - While one is met, one pod is evicted per period, chosen as upstream ranks them ([`rank`]): pods
//!   using more than they requested first, then lower priority, then larger usage (for PIDs, which
//!   nothing requests: lower priority, then more processes). Its containers are
//!   killed, its phase becomes Failed with reason `Evicted`, upstream's message and a
//!   `DisruptionTarget` condition, and an `Evicted` event is recorded. Its emptyDir volumes go with it,
//!   which is what gives the disk back. Critical pods (priority ≥ 2,000,000,000, static pods) are not
//!   evicted.
//! - A pod that comes to a node under pressure is refused, as upstream's eviction admission: under
//!   disk or PID pressure every pod, under memory pressure BestEffort ones (`The node had condition:
//!   [...]`).
//!
//! - Soft thresholds (`--eviction-soft`) set the condition as soon as they are met, but evict only once
//!   met for their `--eviction-soft-grace-period`, and their victims stop with their own
//!   termination grace period capped at `--eviction-max-pod-grace-period` (a hard one's get none).
//!
//! - Before evicting for disk pressure on the filesystem holding the images, unused images are
//!   removed ([`super::image_gc::ImageGc::delete_unused`], upstream's node-level reclaim); when that
//!   is enough, no pod is evicted.
//!
//! Not done: container garbage collection in that reclaim, and per-pod local storage limits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::pod_workers::Kubelet;
use crate::apiserver::wire::quantity::Quantity;

/// How often signals are observed and at most one pod evicted (upstream's evictionMonitoringPeriod).
pub const MONITORING_PERIOD: Duration = Duration::from_secs(10);
/// Upstream's Linux default for `--eviction-hard`.
pub const DEFAULT_HARD: &str =
    "memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%";
/// Pods at or above this priority are critical (upstream's SystemCriticalPriority).
const CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// An eviction signal (upstream's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    MemoryAvailable,
    NodeFsAvailable,
    NodeFsInodesFree,
    ImageFsAvailable,
    PidAvailable,
}

/// The node condition a signal's pressure shows as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    Memory,
    Disk,
    Pid,
}

impl Signal {
    const ALL: [Signal; 5] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::PidAvailable,
    ];

    pub fn parse(s: &str) -> Option<Signal> {
        Self::ALL.into_iter().find(|signal| signal.name() == s)
    }

    /// Upstream's name of the signal (what `--eviction-hard` and friends write).
    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// The resource whose shortage the signal shows, as upstream's messages name it.
    fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsInodesFree => "inodes",
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => "ephemeral-storage",
            Signal::PidAvailable => "pids",
        }
    }

    fn condition(self) -> Condition {
        match self {
            Signal::MemoryAvailable => Condition::Memory,
            Signal::PidAvailable => Condition::Pid,
            _ => Condition::Disk,
        }
    }

    /// `n` of the signal's unit as upstream's messages print it: bytes in BinarySI, counts in
    /// DecimalSI.
    fn quantity(self, n: i64) -> Quantity {
        match self {
            Signal::PidAvailable => Quantity::decimal(n),
            _ => Quantity::binary(n),
        }
    }
}

/// How much must stay available: an absolute quantity or a share of the capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    Quantity(i64),
    Percent(f64),
}

/// One threshold: `signal < amount`; a soft one acts once met for its grace period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub amount: Amount,
    /// A soft threshold's `--eviction-soft-grace-period`; `None` for a hard one.
    pub grace_period: Option<Duration>,
}

impl Threshold {
    /// The amount in the signal's unit for a resource of `capacity`.
    fn quantity(&self, capacity: i64) -> i64 {
        match self.amount {
            Amount::Quantity(q) => q,
            Amount::Percent(p) => (capacity as f64 * p / 100.0) as i64,
        }
    }
}

/// Parses `--eviction-hard` (`signal<quantity|percent%`, comma-separated), with upstream's messages.
pub fn parse_thresholds(s: &str) -> Result<Vec<Threshold>, String> {
    let mut out: Vec<Threshold> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('<') else {
            return Err(format!(
                "invalid eviction threshold syntax {part:?}, expected SIGNAL<VALUE"
            ));
        };
        let signal = Signal::parse(name.trim())
            .ok_or_else(|| format!("unsupported eviction signal {}", name.trim()))?;
        let value = value.trim();
        let amount = match value.strip_suffix('%') {
            Some(p) => {
                let p: f64 = p
                    .parse()
                    .map_err(|_| format!("invalid percentage {value:?}"))?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(format!(
                        "eviction percentage threshold {name} must be >= 0% and <= 100%: {value}"
                    ));
                }
                Amount::Percent(p)
            }
            None => {
                let q = Quantity::parse(value).map_err(|e| format!("{value:?}: {e}"))?;
                if q.value() < 0 {
                    return Err(format!(
                        "eviction threshold {name} must be positive: {value}"
                    ));
                }
                Amount::Quantity(q.value())
            }
        };
        if out.iter().any(|t| t.signal == signal) {
            return Err(format!(
                "found duplicate eviction threshold for signal {name}"
            ));
        }
        out.push(Threshold {
            signal,
            amount,
            grace_period: None,
        });
    }
    Ok(out)
}

/// `--eviction-soft`'s thresholds with their `--eviction-soft-grace-period`s (upstream's rule: every
/// soft threshold needs one).
pub fn soft_thresholds(
    mut soft: Vec<Threshold>,
    grace_periods: &[(Signal, Duration)],
) -> Result<Vec<Threshold>, String> {
    for t in &mut soft {
        let Some((_, period)) = grace_periods.iter().find(|(s, _)| *s == t.signal) else {
            return Err(format!(
                "grace period must be specified for the soft eviction threshold {}",
                t.signal.name()
            ));
        };
        t.grace_period = Some(*period);
    }
    Ok(soft)
}

/// One signal's reading: what is available of what capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub available: i64,
    pub capacity: i64,
}

/// The node's pressure conditions, as the heartbeat writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

impl Pressure {
    /// Why a new pod is refused on this node, if it is (upstream's eviction admission): disk or PID
    /// pressure refuses every pod, memory pressure BestEffort ones; critical pods are always
    /// admitted.
    pub fn refuses(&self, pod: &Pod) -> Option<String> {
        let mut conditions = Vec::new();
        if self.memory {
            conditions.push("MemoryPressure");
        }
        if self.disk {
            conditions.push("DiskPressure");
        }
        if self.pid {
            conditions.push("PIDPressure");
        }
        let refused =
            !critical(pod) && (self.disk || self.pid || (self.memory && best_effort(pod)));
        refused.then(|| format!("The node had condition: [{}]. ", conditions.join(" ")))
    }
}

/// The QoS class the apiserver gave the pod (upstream's GetPodQOS reads it first), else the one it
/// would give (init containers included).
fn best_effort(pod: &Pod) -> bool {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some(class) => class == "BestEffort",
        None => serde_json::to_value(pod).is_ok_and(|v| {
            crate::apiserver::registry::strategy::pods::qos_class(&v) == "BestEffort"
        }),
    }
}

/// Bytes and inodes of a filesystem (statvfs).
pub(super) struct Filesystem {
    pub available: i64,
    pub capacity: i64,
    pub inodes_free: i64,
    pub inodes: i64,
}

/// The filesystem holding `path` (also the node's ephemeral-storage capacity, see `agent`).
pub(super) fn filesystem(path: &Path) -> Option<Filesystem> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a properly sized, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as i64;
    Some(Filesystem {
        available: st.f_bavail as i64 * frsize,
        capacity: st.f_blocks as i64 * frsize,
        inodes_free: st.f_favail as i64,
        inodes: st.f_files as i64,
    })
}

/// Bytes used by the files under `dir` (not following links), as `du` counts them.
fn disk_usage(dir: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0i64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            total += (meta.blocks() * 512) as i64;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

/// What the manager watches besides the kubelet itself.
pub struct Config {
    /// Hard and soft thresholds.
    pub thresholds: Vec<Threshold>,
    pub transition_period: Duration,
    /// The most grace a pod evicted for a soft threshold gets (`--eviction-max-pod-grace-period`).
    pub max_pod_grace_period: i64,
    /// containerd's root (its image filesystem), when known.
    pub image_fs: Option<PathBuf>,
    /// The node's image garbage collector: unused images go before pods do.
    pub image_gc: Option<Arc<super::image_gc::ImageGc>>,
}

impl Config {
    /// Whether removing unused images can relieve `signal` (upstream's node-level reclaim): the
    /// image filesystem's signal, and the node filesystem's when the images live on it too.
    fn images_relieve(&self, signal: Signal, root: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        match signal {
            Signal::ImageFsAvailable => true,
            Signal::NodeFsAvailable | Signal::NodeFsInodesFree => {
                let dev = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
                self.image_fs
                    .as_deref()
                    .is_some_and(|fs| dev(fs).is_some() && dev(fs) == dev(root))
            }
            Signal::MemoryAvailable | Signal::PidAvailable => false,
        }
    }
}

/// One pod's usage of the resource being reclaimed, and its request of it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    pub uid: String,
    pub priority: i32,
    pub usage: i64,
    pub request: i64,
    /// Container name, usage and request, for the message.
    pub containers: Vec<(String, i64, i64)>,
}

/// Upstream's ranking: pods using more than they requested first, then lower priority, then larger
/// usage (under PID pressure, where nothing is requested, upstream's `rankPIDPressure`: priority,
/// then usage).
pub fn rank(pods: &mut [PodUsage]) {
    pods.sort_by(|a, b| {
        (b.usage > b.request)
            .cmp(&(a.usage > a.request))
            .then(a.priority.cmp(&b.priority))
            .then(b.usage.cmp(&a.usage))
    });
}

/// Upstream's eviction message (`evictionMessage`).
pub fn message(threshold: &Threshold, observed: &Observation, pod: &PodUsage) -> String {
    let resource = threshold.signal.resource();
    let signal = threshold.signal;
    let limit = match threshold.amount {
        Amount::Quantity(_) => signal.quantity(threshold.quantity(observed.capacity)),
        // Upstream's GetThresholdQuantity: a share of the capacity is a BinarySI quantity.
        Amount::Percent(_) => Quantity::binary(threshold.quantity(observed.capacity)),
    };
    let mut m = format!(
        "The node was low on resource: {resource}. Threshold quantity: {limit}, available: {}. ",
        signal.quantity(observed.available),
    );
    for (name, usage, request) in &pod.containers {
        if usage > request {
            m.push_str(&format!(
                "Container {name} was using {}, request is {}, has larger consumption of {resource}. ",
                Quantity::binary(*usage),
                Quantity::binary(*request),
            ));
        }
    }
    m
}

fn requests(pod: &Pod, resource: &str) -> Vec<(String, i64)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            let r = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|m| m.get(resource))
                .map(|q| crate::scheduler::cache::quantity(&q.0, false))
                .unwrap_or(0);
            (c.name.clone(), r)
        })
        .collect()
}

fn critical(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.priority)
        .is_some_and(|p| p >= CRITICAL_PRIORITY)
        || pod
            .annotations()
            .contains_key(super::static_pods::ANNOTATION_MIRROR)
        || pod
            .annotations()
            .get(super::static_pods::ANNOTATION_SOURCE)
            .is_some_and(|s| s != "api")
}

/// Runs the manager until the process ends.
pub async fn run(kubelet: Arc<Kubelet>, config: Config) {
    let mut last_met: HashMap<Signal, Instant> = HashMap::new();
    // When each threshold (by index) began to be met, for the soft ones' grace periods.
    let mut first_met: HashMap<usize, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(MONITORING_PERIOD).await;
        let observations = observe(&kubelet, &config);
        let now = Instant::now();
        // Thresholds met whose grace period (none for hard ones) has run: these evict.
        let mut met: Vec<(Threshold, Observation)> = Vec::new();
        for (i, t) in config.thresholds.iter().enumerate() {
            match observations.get(&t.signal) {
                Some(o) if o.available < t.quantity(o.capacity) => {
                    // The condition shows at once, soft or hard, as upstream's.
                    last_met.insert(t.signal, now);
                    let since = *first_met.entry(i).or_insert(now);
                    if t.grace_period
                        .is_none_or(|g| now.duration_since(since) >= g)
                    {
                        met.push((*t, *o));
                    }
                }
                _ => {
                    first_met.remove(&i);
                }
            }
        }
        let recent = |condition: Condition| {
            last_met.iter().any(|(s, at)| {
                s.condition() == condition && now.duration_since(*at) < config.transition_period
            })
        };
        let pressure = Pressure {
            memory: recent(Condition::Memory),
            disk: recent(Condition::Disk),
            pid: recent(Condition::Pid),
        };
        kubelet.set_pressure(pressure);
        // Memory first, as upstream orders the signals it reclaims; hard before soft.
        met.sort_by_key(|(t, _)| (t.signal.condition(), t.grace_period.is_some()));
        let Some((threshold, observed)) = met.first() else {
            continue;
        };
        tracing::warn!(
            signal = ?threshold.signal,
            available = observed.available,
            "kubelet: eviction threshold met, attempting to reclaim {}",
            threshold.signal.resource()
        );
        if let Some(gc) = config
            .image_gc
            .as_ref()
            .filter(|_| config.images_relieve(threshold.signal, &kubelet.root))
        {
            match gc.delete_unused().await {
                Ok(freed) => tracing::info!(freed, "kubelet: unused images removed"),
                Err(e) => tracing::warn!("kubelet: removing unused images: {e}"),
            }
            let again = observe(&kubelet, &config);
            if again
                .get(&threshold.signal)
                .is_none_or(|o| o.available >= threshold.quantity(o.capacity))
            {
                tracing::info!(
                    "kubelet: eviction manager: able to reduce {} pressure without evicting pods",
                    threshold.signal.resource()
                );
                continue;
            }
        }
        let mut candidates = usages(&kubelet, threshold.signal);
        rank(&mut candidates);
        let Some(victim) = candidates.first() else {
            tracing::warn!("kubelet: eviction threshold met but no pod can be evicted");
            continue;
        };
        let msg = message(threshold, observed, victim);
        // A soft threshold's victim gets its own grace period, capped; a hard one's none.
        let max_grace = threshold.grace_period.map(|_| config.max_pod_grace_period);
        kubelet.evict(&victim.uid, msg, max_grace);
    }
}

fn observe(kubelet: &Kubelet, config: &Config) -> HashMap<Signal, Observation> {
    let mut out = HashMap::new();
    if let Some(sample) = kubelet.stats.latest() {
        if let Some(available) = sample.node.available_bytes {
            let capacity = available + sample.node.working_set_bytes;
            out.insert(
                Signal::MemoryAvailable,
                Observation {
                    available: available as i64,
                    capacity: capacity as i64,
                },
            );
        }
    }
    if let Some(fs) = filesystem(&kubelet.root) {
        out.insert(
            Signal::NodeFsAvailable,
            Observation {
                available: fs.available,
                capacity: fs.capacity,
            },
        );
        out.insert(
            Signal::NodeFsInodesFree,
            Observation {
                available: fs.inodes_free,
                capacity: fs.inodes,
            },
        );
    }
    if let Some(fs) = config.image_fs.as_deref().and_then(filesystem) {
        out.insert(
            Signal::ImageFsAvailable,
            Observation {
                available: fs.available,
                capacity: fs.capacity,
            },
        );
    }
    if let Some(o) = pids() {
        out.insert(Signal::PidAvailable, o);
    }
    out
}

/// `pid.available` as upstream's kubelet measures it (`pkg/kubelet/stats/pidlimit`): the capacity is
/// the smaller of `kernel.pid_max` and `kernel.threads-max`, the tasks running are sysinfo's count.
pub fn pids() -> Option<Observation> {
    let read = |name: &str| -> Option<i64> {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let capacity = read("pid_max")?.min(read("threads-max")?);
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a properly sized, writable sysinfo struct.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return None;
    }
    Some(Observation {
        available: capacity - i64::from(info.procs),
        capacity,
    })
}

/// How many processes run in each container (by container ID), from every process's cgroup: the
/// last path element names the container, whichever cgroup driver containerd uses
/// (`/k8s.io/<id>`, `cri-containerd-<id>.scope`).
fn processes_by_container() -> HashMap<String, i64> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cgroup) = std::fs::read_to_string(entry.path().join("cgroup")) else {
            continue;
        };
        let Some(last) = cgroup.lines().next().and_then(|l| l.rsplit('/').next()) else {
            continue;
        };
        let id = last
            .trim_start_matches("cri-containerd-")
            .trim_end_matches(".scope");
        *out.entry(id.to_string()).or_default() += 1;
    }
    out
}

/// The running pods that may be evicted, with their usage of what `signal` measures.
fn usages(kubelet: &Kubelet, signal: Signal) -> Vec<PodUsage> {
    let sample = kubelet.stats.latest().unwrap_or_default();
    let processes = if signal == Signal::PidAvailable {
        processes_by_container()
    } else {
        HashMap::new()
    };
    kubelet
        .all_pods()
        .into_values()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            p.metadata.deletion_timestamp.is_none()
                && !matches!(phase, Some("Succeeded" | "Failed"))
                && !critical(p)
        })
        .map(|pod| {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            // Per container: name, usage, request; and the pod's usage.
            let (containers, usage): (Vec<(String, i64, i64)>, i64) = match signal.condition() {
                Condition::Pid => {
                    // Nothing requests PIDs, and upstream's message names no container for them.
                    let statuses = pod.status.iter().flat_map(|s| {
                        let init = s.init_container_statuses.iter().flatten();
                        init.chain(s.container_statuses.iter().flatten())
                    });
                    let used = statuses
                        .filter_map(|c| c.container_id.as_deref())
                        .filter_map(|id| id.rsplit("://").next())
                        .map(|id| processes.get(id).copied().unwrap_or_default())
                        .sum();
                    (Vec::new(), used)
                }
                Condition::Memory => {
                    let containers: Vec<_> = requests(&pod, "memory")
                        .into_iter()
                        .map(|(name, req)| {
                            let used = sample
                                .containers
                                .iter()
                                .filter(|c| c.pod_uid == uid && c.name == name)
                                .map(|c| c.usage.working_set_bytes as i64)
                                .sum();
                            (name, used, req)
                        })
                        .collect();
                    let used = containers.iter().map(|(_, u, _)| u).sum();
                    (containers, used)
                }
                Condition::Disk => {
                    // The containers' logs; their writable layers are on the image filesystem.
                    let logs = PathBuf::from(super::runtime_config::pod_log_directory(
                        &kubelet.root,
                        &pod.namespace().unwrap_or_default(),
                        &pod.name_any(),
                        &uid,
                    ));
                    let containers: Vec<_> = requests(&pod, "ephemeral-storage")
                        .into_iter()
                        .map(|(name, req)| {
                            let used = disk_usage(&logs.join(&name));
                            (name, used, req)
                        })
                        .collect();
                    // Local volumes count for the pod (upstream's fsStatsLocalVolumeSource).
                    let volumes = disk_usage(
                        &super::volumes::pod_dir(&kubelet.root, &uid)
                            .join("volumes")
                            .join("kubernetes.io~empty-dir"),
                    );
                    let used = containers.iter().map(|(_, u, _)| u).sum::<i64>() + volumes;
                    (containers, used)
                }
            };
            PodUsage {
                uid,
                priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
                usage,
                request: containers.iter().map(|(_, _, r)| r).sum(),
                containers,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_upstreams_flag() {
        let t = parse_thresholds(DEFAULT_HARD).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(
            t[0],
            Threshold {
                signal: Signal::MemoryAvailable,
                amount: Amount::Quantity(100 * 1024 * 1024),
                grace_period: None,
            }
        );
        assert_eq!(t[1].amount, Amount::Percent(10.0));
        for signal in Signal::ALL {
            assert_eq!(Signal::parse(signal.name()), Some(signal));
        }
        assert_eq!(Signal::parse("memory.free"), None);
        // Soft thresholds take their grace periods, and must have one.
        let periods = [(Signal::PidAvailable, Duration::from_secs(20))];
        let soft =
            soft_thresholds(parse_thresholds("pid.available<1000").unwrap(), &periods).unwrap();
        assert_eq!(soft[0].grace_period, Some(Duration::from_secs(20)));
        assert_eq!(
            soft_thresholds(parse_thresholds("memory.available<1Gi").unwrap(), &periods),
            Err(
                "grace period must be specified for the soft eviction threshold memory.available"
                    .into()
            )
        );
        assert_eq!(t[1].quantity(1000), 100);
        assert!(parse_thresholds("").unwrap().is_empty());
        assert_eq!(
            parse_thresholds("disk.available<1Gi").unwrap_err(),
            "unsupported eviction signal disk.available"
        );
        assert!(parse_thresholds("nodefs.available<150%").is_err());
        assert!(parse_thresholds("memory.available<1Gi,memory.available<2Gi").is_err());
        assert!(parse_thresholds("memory.available>1Gi").is_err());
    }

    fn usage(uid: &str, priority: i32, usage: i64, request: i64) -> PodUsage {
        PodUsage {
            uid: uid.into(),
            priority,
            usage,
            request,
            containers: vec![("c".into(), usage, request)],
        }
    }

    #[test]
    fn pods_over_their_requests_go_first_then_low_priority_then_large() {
        let mut pods = vec![
            usage("within-request", 0, 900, 1000),
            usage("over-high-priority", 100, 50, 0),
            usage("over-small", 0, 10, 0),
            usage("over-large", 0, 500, 0),
        ];
        rank(&mut pods);
        let order: Vec<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
        assert_eq!(
            order,
            [
                "over-large",
                "over-small",
                "over-high-priority",
                "within-request"
            ]
        );
    }

    #[test]
    fn messages_are_upstreams() {
        let t = parse_thresholds("nodefs.available<50%").unwrap()[0];
        let observed = Observation {
            available: 20 * 1024 * 1024,
            capacity: 64 * 1024 * 1024,
        };
        let pod = PodUsage {
            uid: "u".into(),
            priority: 0,
            usage: 40 << 20,
            request: 0,
            containers: vec![("hog".into(), 12288, 0), ("quiet".into(), 0, 4096)],
        };
        assert_eq!(
            message(&t, &observed, &pod),
            "The node was low on resource: ephemeral-storage. Threshold quantity: 32Mi, available: 20Mi. \
             Container hog was using 12Ki, request is 0, has larger consumption of ephemeral-storage. "
        );
    }

    #[test]
    fn pid_pressure_is_measured_and_worded_as_upstreams() {
        let o = pids().expect("/proc/sys/kernel/pid_max and sysinfo");
        assert!(
            o.capacity > 0 && o.available > 0 && o.available < o.capacity,
            "{o:?}"
        );
        let t = parse_thresholds("pid.available<1000").unwrap()[0];
        assert_eq!(t.signal, Signal::PidAvailable);
        let observed = Observation {
            available: 900,
            capacity: 4_194_304,
        };
        let pod = PodUsage {
            uid: "u".into(),
            priority: 0,
            usage: 300,
            request: 0,
            containers: Vec::new(),
        };
        assert_eq!(
            message(&t, &observed, &pod),
            "The node was low on resource: pids. Threshold quantity: 1k, available: 900. "
        );
        // Ranked by priority, then by processes.
        let mut pods = vec![
            usage("few", 0, 3, 0),
            usage("many", 0, 300, 0),
            usage("high", 10, 900, 0),
        ];
        rank(&mut pods);
        let order: Vec<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
        assert_eq!(order, ["many", "few", "high"]);
    }

    #[test]
    fn pressure_refuses_pods_as_upstreams_admission() {
        let best_effort: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}))
        .unwrap();
        let burstable: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
                "resources": {"requests": {"memory": "10Mi"}}}]}}))
        .unwrap();
        let memory = Pressure {
            memory: true,
            ..Pressure::default()
        };
        assert_eq!(
            memory.refuses(&best_effort).as_deref(),
            Some("The node had condition: [MemoryPressure]. ")
        );
        assert_eq!(memory.refuses(&burstable), None);
        let disk = Pressure {
            disk: true,
            ..Pressure::default()
        };
        assert_eq!(
            disk.refuses(&burstable).as_deref(),
            Some("The node had condition: [DiskPressure]. ")
        );
        let pid = Pressure {
            pid: true,
            ..Pressure::default()
        };
        assert_eq!(
            pid.refuses(&burstable).as_deref(),
            Some("The node had condition: [PIDPressure]. ")
        );
        assert_eq!(Pressure::default().refuses(&best_effort), None);
    }
}
