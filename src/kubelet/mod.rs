//! The kubelet's status logic: what a node reports about itself and about the pods bound to it.
//!
//! Everything here is independent of how containers actually run: a [`Runtime`] says what happened to a
//! pod's containers, and the functions below turn that into the Node and Pod status upstream's kubelet
//! writes (conditions, addresses, nodeInfo, container statuses, phases). The [`hollow`] runtime runs
//! nothing and reports containers as started at once, which lets one process simulate thousands of
//! nodes; the CRI kubelet (issue #17) is meant to reuse this module with a containerd runtime.
//!
//! Start with [`hollow::run`] (the loops: registration, Lease heartbeats, one shared pod watch), then
//! [`pod_status`] and [`node_status`].

pub mod agent;
pub mod atomic_writer;
pub mod bench;
pub mod certificate_manager;
pub mod container_status;
pub mod containerd;
pub mod cri;
pub mod env;
pub mod eviction;
pub mod hollow;
pub mod image_gc;
pub mod images;
pub mod join;
pub mod lifecycle;
pub mod pod_workers;
pub mod probe_client;
pub mod probes;
pub mod pull_secrets;
pub mod registration;
pub mod runtime_config;
pub mod server;
pub mod static_pods;
pub mod stats;
pub mod streaming;
pub mod volumes;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod, PodCondition,
    PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// An ephemeral container as the container it runs as: the fields the two share (upstream's kubelet
/// likewise runs `EphemeralContainerCommon` through its container code). Ports, probes, resources
/// and lifecycle are refused for ephemeral containers by the apiserver, so none is lost.
pub fn ephemeral_container(e: &k8s_openapi::api::core::v1::EphemeralContainer) -> Container {
    Container {
        name: e.name.clone(),
        image: e.image.clone(),
        image_pull_policy: e.image_pull_policy.clone(),
        command: e.command.clone(),
        args: e.args.clone(),
        working_dir: e.working_dir.clone(),
        env: e.env.clone(),
        env_from: e.env_from.clone(),
        volume_mounts: e.volume_mounts.clone(),
        volume_devices: e.volume_devices.clone(),
        security_context: e.security_context.clone(),
        stdin: e.stdin,
        stdin_once: e.stdin_once,
        tty: e.tty,
        termination_message_path: e.termination_message_path.clone(),
        termination_message_policy: e.termination_message_policy.clone(),
        ..Default::default()
    }
}

/// What a runtime says about one container of a pod it was asked to run.
#[derive(Clone, Debug, PartialEq)]
pub enum ContainerOutcome {
    /// Started and still running.
    Running,
    /// Ran to completion with this exit code.
    Exited(i32),
}

/// A container runtime as the status logic needs it: hollow (nothing runs) or CRI (later).
pub trait Runtime: Send + Sync {
    /// What became of `container` of `pod` once started.
    fn outcome(&self, pod: &Pod, container: &Container) -> ContainerOutcome;
    /// The runtime's container ID for a container (`<runtime>://<id>`, as containerStatuses show it).
    fn container_id(&self, pod: &Pod, container: &Container) -> String;
    /// The image's ID (a digest reference) as the runtime resolved it.
    fn image_id(&self, image: &str) -> String;
    /// `nodeInfo.containerRuntimeVersion`.
    fn version(&self) -> String;
}

/// The resources a node offers (capacity == allocatable: a hollow node reserves nothing).
#[derive(Clone, Debug)]
pub struct NodeResources {
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    pub ephemeral_storage: String,
}

impl Default for NodeResources {
    fn default() -> Self {
        // kubemark's hollow-node defaults are small; these are a typical worker's.
        NodeResources {
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: "110".into(),
            ephemeral_storage: "100Gi".into(),
        }
    }
}

/// Kubernetes timestamps carry seconds; upstream's kubelet truncates to them.
pub fn now() -> Time {
    let ts = Timestamp::now();
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

/// The IP of the `n`-th pod (n from 0) of a node with `pod_cidr` (a /24): .2 upward, .1 is the gateway.
pub fn pod_ip(pod_cidr: &str, n: u32) -> Option<String> {
    let base = pod_cidr.split('/').next()?;
    let octets: Vec<u8> = base.split('.').filter_map(|o| o.parse().ok()).collect();
    if octets.len() != 4 {
        return None;
    }
    let host = 2 + (n % 253);
    Some(format!("{}.{}.{}.{host}", octets[0], octets[1], octets[2]))
}

/// The Node object a kubelet registers: labels, podCIDR (when the kubelet was given one; node IPAM
/// assigns it otherwise), and its initial status.
pub fn node_object(
    name: &str,
    ip: &str,
    pod_cidr: Option<&str>,
    res: &NodeResources,
    info: &NodeSystemInfo,
) -> Node {
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch().as_str()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch().as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            annotations: Some(
                [("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: pod_cidr.map(String::from),
            pod_cidrs: pod_cidr.map(|c| vec![c.to_string()]),
            ..Default::default()
        }),
        status: Some(node_status(name, ip, res, info)),
    }
}

/// The status a healthy kubelet reports: conditions as upstream's setters write them.
pub fn node_status(name: &str, ip: &str, res: &NodeResources, info: &NodeSystemInfo) -> NodeStatus {
    let now = now();
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", &res.cpu),
        ("memory", &res.memory),
        ("pods", &res.pods),
        ("ephemeral-storage", &res.ephemeral_storage),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
    .collect();
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(
            PRESSURE_CONDITIONS
                .iter()
                .map(|(type_, [_, (reason, message)])| cond(type_, "False", reason, message))
                .chain([cond(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                )])
                .collect(),
        ),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ip.into(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.into(),
            },
        ]),
        node_info: Some(info.clone()),
        ..Default::default()
    }
}

/// The pressure conditions a kubelet reports, in upstream's order, each with its wording (reason,
/// message) when under pressure and when not, as upstream's setters write them.
const PRESSURE_CONDITIONS: [(&str, [(&str, &str); 2]); 3] = [
    (
        "MemoryPressure",
        [
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
        ],
    ),
    (
        "DiskPressure",
        [
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ],
    ),
    (
        "PIDPressure",
        [
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
        ],
    ),
];

/// Sets a `MemoryPressure`, `DiskPressure` or `PIDPressure` condition as upstream's setters word
/// it; the transition time moves only when the status does.
pub fn set_pressure_condition(c: &mut NodeCondition, under: bool, now: &Time) {
    let Some((_, wording)) = PRESSURE_CONDITIONS.iter().find(|(t, _)| *t == c.type_) else {
        return;
    };
    let (status, (reason, message)) = match under {
        true => ("True", wording[0]),
        false => ("False", wording[1]),
    };
    if c.status != status {
        c.last_transition_time = Some(now.clone());
    }
    c.status = status.into();
    c.reason = Some(reason.into());
    c.message = Some(message.into());
}

/// The `nodeInfo` of a hollow node: made-up IDs, the runtime's version.
pub fn hollow_node_info(name: &str, rt: &dyn Runtime) -> NodeSystemInfo {
    NodeSystemInfo {
        architecture: arch(),
        boot_id: uuid::Uuid::new_v4().to_string(),
        container_runtime_version: rt.version(),
        kernel_version: "hollow".into(),
        kube_proxy_version: String::new(),
        kubelet_version: KUBELET_VERSION.into(),
        machine_id: format!("{:032x}", fnv(name)),
        operating_system: "linux".into(),
        os_image: "rkube hollow node".into(),
        system_uuid: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

/// The version a kubelet reports (the API version rkube serves).
pub const KUBELET_VERSION: &str = "v1.33.0";

/// Go's GOARCH for this machine, as the `kubernetes.io/arch` label and nodeInfo carry it.
pub fn arch() -> String {
    std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64")
}

/// A client error as a message: the apiserver's own message for an API error (what upstream's
/// kubelet shows in events), the error's text otherwise.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

/// A small stable hash for fake IDs.
pub fn fnv(text: &str) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in text.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

/// Where the node runs a pod: its host IP and the pod IP it gave the pod.
pub struct Placement<'a> {
    pub host_ip: &'a str,
    pub pod_ip: &'a str,
}

/// How an image reference reads once the runtime normalized it (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize_image(image: &str) -> String {
    let (name, tagged) = match image.rsplit_once('/') {
        Some((_, last)) => (image.to_string(), last.contains(':') || last.contains('@')),
        None => (
            image.to_string(),
            image.contains(':') || image.contains('@'),
        ),
    };
    let first = name.split('/').next().unwrap_or("");
    let with_host = if !name.contains('/') {
        format!("docker.io/library/{name}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        name
    } else {
        format!("docker.io/{name}")
    };
    if tagged {
        with_host
    } else {
        format!("{with_host}:latest")
    }
}

fn condition(type_: &str, status: bool, reason: Option<&str>, at: &Time) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.map(Into::into),
        last_transition_time: Some(at.clone()),
        ..Default::default()
    }
}

/// The status a kubelet reports for a pod it runs: phase from the containers' outcomes, pod IPs,
/// container statuses and the five conditions in upstream's order. `previous` supplies the times that
/// must not move (startTime, startedAt) once reported.
pub fn pod_status(pod: &Pod, place: &Placement, rt: &dyn Runtime) -> PodStatus {
    let previous = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let containers: &[Container] = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let start = previous
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(now);
    let restart_policy = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let prev_cs = |name: &str| {
        previous
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == name))
    };
    let mut all_exited_ok = !containers.is_empty();
    let mut any_failed = false;
    let mut all_running = true;
    let statuses: Vec<ContainerStatus> = containers
        .iter()
        .map(|c| {
            let outcome = rt.outcome(pod, c);
            // A container that exits is restarted unless the policy says otherwise; the hollow runtime
            // reports such containers as running (a completed container under Always would loop).
            let outcome = match (outcome, restart_policy) {
                (ContainerOutcome::Exited(code), "Never") => ContainerOutcome::Exited(code),
                (ContainerOutcome::Exited(0), "OnFailure") => ContainerOutcome::Exited(0),
                _ => ContainerOutcome::Running,
            };
            let started = prev_cs(&c.name)
                .and_then(|p| p.state.as_ref())
                .and_then(|s| {
                    s.running
                        .as_ref()
                        .and_then(|r| r.started_at.clone())
                        .or_else(|| s.terminated.as_ref().and_then(|t| t.started_at.clone()))
                })
                .unwrap_or_else(|| start.clone());
            let container_id = rt.container_id(pod, c);
            let image = c.image.as_deref().unwrap_or("");
            let state = match outcome {
                ContainerOutcome::Running => {
                    all_exited_ok = false;
                    ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(started),
                        }),
                        ..Default::default()
                    }
                }
                ContainerOutcome::Exited(code) => {
                    all_running = false;
                    if code != 0 {
                        any_failed = true;
                        all_exited_ok = false;
                    }
                    let finished = prev_cs(&c.name)
                        .and_then(|p| p.state.as_ref())
                        .and_then(|s| s.terminated.as_ref())
                        .and_then(|t| t.finished_at.clone())
                        .unwrap_or_else(|| started.clone());
                    ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: code,
                            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                            started_at: Some(started),
                            finished_at: Some(finished),
                            container_id: Some(container_id.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                }
            };
            let running = state.running.is_some();
            ContainerStatus {
                name: c.name.clone(),
                image: normalize_image(image),
                image_id: rt.image_id(image),
                container_id: Some(container_id),
                ready: running,
                started: Some(running),
                restart_count: 0,
                state: Some(state),
                ..Default::default()
            }
        })
        .collect();
    let phase = if containers.is_empty() {
        "Pending"
    } else if all_exited_ok {
        "Succeeded"
    } else if any_failed && !statuses.iter().any(|s| s.ready) {
        "Failed"
    } else {
        "Running"
    };
    let done = phase == "Succeeded" || phase == "Failed";
    // Conditions keep their transition time while their status holds.
    let at = |type_: &str, status: bool| {
        previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == if status { "True" } else { "False" })
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(now)
    };
    let ready = all_running && !done;
    let completed = if done { Some("PodCompleted") } else { None };
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            !done,
            None,
            &at("PodReadyToStartContainers", !done),
        ),
        condition("Initialized", true, completed, &at("Initialized", true)),
        condition("Ready", ready, completed, &at("Ready", ready)),
        condition(
            "ContainersReady",
            ready,
            completed,
            &at("ContainersReady", ready),
        ),
        condition("PodScheduled", true, None, &at("PodScheduled", true)),
    ];
    PodStatus {
        phase: Some(phase.into()),
        host_ip: Some(place.host_ip.into()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: place.host_ip.into(),
        }]),
        pod_ip: Some(place.pod_ip.into()),
        pod_ips: Some(vec![PodIP {
            ip: place.pod_ip.into(),
        }]),
        start_time: Some(start),
        qos_class: previous.and_then(|s| s.qos_class.clone()),
        container_statuses: Some(statuses),
        conditions: Some(conditions),
        ..Default::default()
    }
}

/// A pod status with every container reported terminated, as a kubelet reports a pod it stopped
/// for deletion.
pub fn terminated_status(pod: &Pod) -> Option<PodStatus> {
    let mut status = pod.status.clone()?;
    let at = now();
    for cs in status.container_statuses.iter_mut().flatten() {
        let started = cs
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone());
        if let Some(started) = started {
            cs.ready = false;
            cs.started = Some(false);
            cs.state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 0,
                    reason: Some("Completed".into()),
                    started_at: Some(started),
                    finished_at: Some(at.clone()),
                    container_id: cs.container_id.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    for c in status.conditions.iter_mut().flatten() {
        if c.type_ == "Ready" || c.type_ == "ContainersReady" {
            if c.status != "False" {
                c.last_transition_time = Some(at.clone());
            }
            c.status = "False".into();
        }
    }
    Some(status)
}

/// Whether two statuses differ in what a kubelet reports (ignores nothing: times are kept stable by
/// [`pod_status`], so an unchanged pod compares equal and no patch is sent).
pub fn status_changed(old: Option<&PodStatus>, new: &PodStatus) -> bool {
    let Some(old) = old else { return true };
    old.phase != new.phase
        || old.pod_ip != new.pod_ip
        || old.host_ip != new.host_ip
        || old.container_statuses != new.container_statuses
        || old
            .conditions
            .as_ref()
            .map(|cs| cs.iter().map(|c| (&c.type_, &c.status)).collect::<Vec<_>>())
            != new
                .conditions
                .as_ref()
                .map(|cs| cs.iter().map(|c| (&c.type_, &c.status)).collect::<Vec<_>>())
}
