//! From what the runtime reports to the pod status the kubelet writes: upstream's
//! convertToAPIContainerStatuses, getPhase and the pod conditions (pkg/kubelet/kubelet_pods.go,
//! pkg/kubelet/status/generate.go), over an [`Observed`] snapshot of one pod.
//!
//! Pure functions: the pod worker gathers the snapshot (CRI statuses plus the waiting reasons it
//! decided, such as `CrashLoopBackOff` or `ErrImagePull`), this file turns it into a `PodStatus`.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// One container attempt as the runtime reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attempt {
    pub id: String,
    pub attempt: u32,
    pub state: Run,
    /// Nanoseconds since the epoch, as CRI reports them (0: not yet).
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    /// The runtime's log file of this attempt.
    pub log_path: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Run {
    #[default]
    Created,
    Running,
    Exited,
    Unknown,
}

/// What the kubelet knows of one pod at a sync.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    /// Container name → (latest attempt, the one before it).
    pub containers: HashMap<String, (Option<Attempt>, Option<Attempt>)>,
    /// Container name → the reason and message it waits with (decided by the worker: image
    /// errors, back-offs, config errors).
    pub waiting: HashMap<String, (String, String)>,
    /// Running containers the readiness probe (or its absence) says are ready.
    pub ready: HashMap<String, bool>,
    /// Running containers the startup probe (or its absence) says have started.
    pub started: HashMap<String, bool>,
}

/// CRI timestamps are nanoseconds; Kubernetes times carry seconds.
pub fn time_of(ns: i64) -> Option<Time> {
    (ns > 0)
        .then(|| Timestamp::from_second(ns / 1_000_000_000).ok())
        .flatten()
        .map(Time)
}

fn terminated(a: &Attempt) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: a.exit_code,
            reason: Some(if a.reason.is_empty() {
                if a.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .into()
            } else {
                a.reason.clone()
            }),
            message: (!a.message.is_empty()).then(|| a.message.clone()),
            started_at: time_of(a.started_at),
            finished_at: time_of(a.finished_at),
            container_id: Some(format!("containerd://{}", a.id)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: (!message.is_empty()).then(|| message.into()),
        }),
        ..Default::default()
    }
}

/// One container's status (upstream's convertContainerStatus plus the waiting override).
fn container_status(c: &Container, obs: &Observed, default_waiting: &str) -> ContainerStatus {
    let (latest, previous) = obs.containers.get(&c.name).cloned().unwrap_or_default();
    let image = c.image.clone().unwrap_or_default();
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: super::normalize_image(&image),
        image_id: String::new(),
        ready: false,
        started: Some(false),
        restart_count: 0,
        state: Some(waiting(default_waiting, "")),
        ..Default::default()
    };
    if let Some(a) = &latest {
        status.container_id = Some(format!("containerd://{}", a.id));
        // The image as the pod names it (normalized), not the runtime's first tag of that image.
        status.image_id = a.image_ref.clone();
        status.restart_count = a.attempt as i32;
        status.state = Some(match a.state {
            Run::Running => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time_of(a.started_at),
                }),
                ..Default::default()
            },
            Run::Exited | Run::Unknown => terminated(a),
            Run::Created => waiting("ContainerCreating", ""),
        });
        let running = a.state == Run::Running;
        status.started = Some(running && obs.started.get(&c.name).copied().unwrap_or(true));
        status.ready = running && obs.ready.get(&c.name).copied().unwrap_or(true);
        if let Some(p) = previous.as_ref().filter(|p| p.state == Run::Exited) {
            status.last_state = Some(terminated(p));
        }
    }
    let running = latest.as_ref().is_some_and(|a| a.state == Run::Running);
    if let (Some((reason, message)), false) = (obs.waiting.get(&c.name), running) {
        // The container is not running and the worker knows why: the last run (if it ended)
        // becomes lastState, as upstream shows a crash-looping container.
        if let Some(t) = status.state.take().filter(|s| s.terminated.is_some()) {
            status.last_state = Some(t);
        }
        status.state = Some(waiting(reason, message));
    }
    status
}

/// The ephemeral containers' statuses: like the others', but never ready and without `started`
/// (upstream's prober tracks neither for them); they do not count toward the pod's phase or
/// conditions.
fn ephemeral_statuses(pod: &Pod, obs: &Observed) -> Option<Vec<ContainerStatus>> {
    let specs = pod.spec.as_ref()?.ephemeral_containers.as_ref()?;
    let statuses: Vec<ContainerStatus> = specs
        .iter()
        .map(|e| {
            let mut s = container_status(&super::ephemeral_container(e), obs, "ContainerCreating");
            s.ready = false;
            s.started = None;
            s
        })
        .collect();
    (!statuses.is_empty()).then_some(statuses)
}

/// Upstream's getPhase over the statuses built here.
pub fn phase(pod: &Pod, init: &[ContainerStatus], regular: &[ContainerStatus]) -> &'static str {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let (mut pending_init, mut failed_init) = (0, 0);
    for s in init {
        let state = s.state.as_ref();
        let last = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
        if state.is_some_and(|st| st.running.is_some()) {
            pending_init += 1;
        } else if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if let Some(t) = last {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in regular {
        let state = s.state.as_ref();
        if state.is_some_and(|st| st.running.is_some()) {
            running += 1;
        } else if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .is_some_and(|l| l.terminated.is_some())
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || failed_init > 0 || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

fn condition(
    previous: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // A condition keeps its transition time while its status holds.
    let since = previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(super::now);
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason,
        message,
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// The pod's status from the snapshot: phase, IPs, container statuses and the five conditions.
pub fn pod_status(pod: &Pod, obs: &Observed) -> PodStatus {
    let previous = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let init_specs = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[]);
    let specs = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let init: Vec<ContainerStatus> = init_specs
        .iter()
        .map(|c| container_status(c, obs, "PodInitializing"))
        .collect();
    let initialized = init.iter().all(|s| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
    });
    let regular_default = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let regular: Vec<ContainerStatus> = specs
        .iter()
        .map(|c| container_status(c, obs, regular_default))
        .collect();
    let mut phase = phase(pod, &init, &regular);
    // A terminal phase is final (upstream never moves a pod out of it).
    if let Some(p) = previous.and_then(|s| s.phase.as_deref()) {
        if p == "Succeeded" || p == "Failed" {
            phase = if p == "Succeeded" {
                "Succeeded"
            } else {
                "Failed"
            };
        }
    }
    let done = phase == "Succeeded" || phase == "Failed";
    let unready: Vec<&str> = regular
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let incomplete: Vec<&str> = init
        .iter()
        .filter(|s| {
            s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_none_or(|t| t.exit_code != 0)
        })
        .map(|s| s.name.as_str())
        .collect();
    let ready = unready.is_empty() && !done;
    let (ready_reason, ready_message) = if done {
        (Some("PodCompleted".to_string()), None)
    } else if ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let (init_reason, init_message) = if done && initialized {
        (Some("PodCompleted".to_string()), None)
    } else if initialized {
        (None, None)
    } else {
        (
            Some("ContainersNotInitialized".to_string()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    };
    let sandbox = obs.sandbox_ready && !done;
    let conditions = vec![
        condition(previous, "PodReadyToStartContainers", sandbox, None, None),
        condition(
            previous,
            "Initialized",
            initialized,
            init_reason,
            init_message,
        ),
        condition(
            previous,
            "Ready",
            ready,
            ready_reason.clone(),
            ready_message.clone(),
        ),
        condition(
            previous,
            "ContainersReady",
            ready,
            ready_reason,
            ready_message,
        ),
        condition(previous, "PodScheduled", true, None, None),
    ];
    let pod_ip = obs
        .pod_ip
        .clone()
        .or_else(|| previous.and_then(|s| s.pod_ip.clone()));
    PodStatus {
        phase: Some(phase.into()),
        host_ip: Some(obs.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: obs.host_ip.clone(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(
            previous
                .and_then(|s| s.start_time.clone())
                .unwrap_or_else(super::now),
        ),
        qos_class: previous.and_then(|s| s.qos_class.clone()),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(regular),
        ephemeral_container_statuses: ephemeral_statuses(pod, obs),
        conditions: Some(conditions),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(policy: &str, containers: &[&str], init: &[&str]) -> Pod {
        let c = |n: &&str| Container {
            name: n.to_string(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        Pod {
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                containers: containers.iter().map(c).collect(),
                init_containers: (!init.is_empty()).then(|| init.iter().map(c).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn attempt(n: u32, state: Run, code: i32) -> Attempt {
        Attempt {
            id: format!("id{n}"),
            attempt: n,
            state,
            started_at: 1_700_000_000_000_000_000,
            finished_at: if state == Run::Exited {
                1_700_000_001_000_000_000
            } else {
                0
            },
            exit_code: code,
            ..Default::default()
        }
    }

    fn observed(cs: &[(&str, Option<Attempt>, Option<Attempt>)]) -> Observed {
        Observed {
            sandbox_ready: true,
            pod_ip: Some("10.88.0.5".into()),
            host_ip: "10.0.0.1".into(),
            containers: cs
                .iter()
                .map(|(n, l, p)| (n.to_string(), (l.clone(), p.clone())))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn ephemeral_containers_are_reported_apart() {
        let mut p = pod("Always", &["a"], &[]);
        p.spec.as_mut().unwrap().ephemeral_containers = Some(vec![
            k8s_openapi::api::core::v1::EphemeralContainer {
                name: "dbg".into(),
                image: Some("busybox".into()),
                ..Default::default()
            },
            k8s_openapi::api::core::v1::EphemeralContainer {
                name: "later".into(),
                image: Some("busybox".into()),
                ..Default::default()
            },
        ]);
        let s = pod_status(
            &p,
            &observed(&[
                ("a", Some(attempt(0, Run::Running, 0)), None),
                ("dbg", Some(attempt(0, Run::Exited, 1)), None),
            ]),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.container_statuses.as_ref().unwrap().len(), 1);
        let eph = s.ephemeral_container_statuses.as_ref().unwrap();
        assert_eq!(eph[0].name, "dbg");
        assert_eq!(
            eph[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        assert!(!eph[0].ready && eph[0].started.is_none());
        let waiting = eph[1].state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            ready.status, "True",
            "a failed debug container leaves the pod Ready"
        );
    }

    #[test]
    fn running_pod_is_ready() {
        let p = pod("Always", &["a"], &[]);
        let s = pod_status(
            &p,
            &observed(&[("a", Some(attempt(0, Run::Running, 0)), None)]),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("containerd://id0"));
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn phases_follow_restart_policy() {
        let done = |policy, code| {
            let p = pod(policy, &["a"], &[]);
            pod_status(
                &p,
                &observed(&[("a", Some(attempt(0, Run::Exited, code)), None)]),
            )
            .phase
            .unwrap()
        };
        assert_eq!(done("Never", 0), "Succeeded");
        assert_eq!(done("Never", 3), "Failed");
        assert_eq!(done("OnFailure", 0), "Succeeded");
        assert_eq!(done("OnFailure", 1), "Running");
        assert_eq!(done("Always", 0), "Running");
    }

    #[test]
    fn crash_loop_waits_with_last_state() {
        let p = pod("Always", &["a"], &[]);
        let mut obs = observed(&[(
            "a",
            Some(attempt(1, Run::Exited, 1)),
            Some(attempt(0, Run::Exited, 1)),
        )]);
        obs.waiting.insert(
            "a".into(),
            ("CrashLoopBackOff".into(), "back-off 10s".into()),
        );
        let s = pod_status(&p, &obs);
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 1);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [a]")
        );
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = pod("Always", &["a"], &["i"]);
        let s = pod_status(
            &p,
            &observed(&[("i", Some(attempt(0, Run::Running, 0)), None)]),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        let p = pod("Never", &["a"], &["i"]);
        let s = pod_status(
            &p,
            &observed(&[("i", Some(attempt(0, Run::Exited, 2)), None)]),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn waiting_for_an_image_is_pending() {
        let p = pod("Always", &["a"], &[]);
        let mut obs = observed(&[]);
        obs.waiting
            .insert("a".into(), ("ErrImageNeverPull".into(), "x".into()));
        let s = pod_status(&p, &obs);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
    }
}
