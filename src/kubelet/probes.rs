//! Container probes, as upstream's prober workers: one task per probe of each running container,
//! probing every `periodSeconds` after `initialDelaySeconds`, each try bounded by `timeoutSeconds`,
//! flipping the result after `successThreshold` successes or `failureThreshold` failures.
//!
//! - readiness decides the container's `ready` (false until the first success);
//! - startup holds readiness and liveness back until it succeeds (`started`), and kills the
//!   container when it fails for good;
//! - liveness kills the container when it fails for good ("Container c failed liveness probe, will be
//!   restarted"); the restart policy and back-off do the rest.
//!
//! Handlers: exec (CRI ExecSync), httpGet (HTTP or HTTPS; success is 200-399, as upstream),
//! tcpSocket and grpc (the gRPC health protocol): the network ones are in [`super::probe_client`].
//! A changed result wakes the pod's worker, which writes the status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::pod_workers::Kubelet;
use super::probe_client::{grpc_check, http_get};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Readiness,
    Liveness,
    Startup,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
            Kind::Startup => "Startup",
        }
    }
}

/// What the probes of one running container have found.
struct State {
    uid: String,
    ready: bool,
    started: bool,
    tasks: Vec<tokio::task::AbortHandle>,
}

/// The probe results of every running container of the node, by container ID.
#[derive(Default)]
pub struct Probes {
    by_container: Mutex<HashMap<String, State>>,
}

impl Probes {
    /// (ready, started) of a container as its probes say; containers without the probe count as
    /// ready / started once running.
    pub fn results(&self, c: &Container, id: &str) -> (bool, bool) {
        let map = self.by_container.lock();
        let state = map.as_ref().ok().and_then(|m| m.get(id));
        let started = c.startup_probe.is_none() || state.is_some_and(|s| s.started);
        let ready = started && (c.readiness_probe.is_none() || state.is_some_and(|s| s.ready));
        (ready, started)
    }

    /// Stops probing containers of pod `uid` that are not in `running`.
    pub fn retain(&self, uid: &str, running: &[String]) {
        if let Ok(mut map) = self.by_container.lock() {
            map.retain(|id, s| {
                let keep = s.uid != uid || running.contains(id);
                if !keep {
                    s.tasks.iter().for_each(|t| t.abort());
                }
                keep
            });
        }
    }

    fn set(&self, id: &str, kind: Kind, ok: bool) -> bool {
        let Ok(mut map) = self.by_container.lock() else {
            return false;
        };
        let Some(s) = map.get_mut(id) else {
            return false;
        };
        let slot = match kind {
            Kind::Readiness => &mut s.ready,
            Kind::Startup => &mut s.started,
            Kind::Liveness => return false,
        };
        let changed = *slot != ok;
        *slot = ok;
        changed
    }

    fn started(&self, id: &str) -> bool {
        self.by_container
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(|s| s.started))
            .unwrap_or(false)
    }
}

/// Starts the probe tasks of a running container, once per container ID.
pub fn ensure(kubelet: &Arc<Kubelet>, pod: &Pod, c: &Container, id: &str, pod_ip: Option<String>) {
    let kinds: Vec<(Kind, Probe)> = [
        (Kind::Readiness, c.readiness_probe.clone()),
        (Kind::Liveness, c.liveness_probe.clone()),
        (Kind::Startup, c.startup_probe.clone()),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.map(|p| (k, p)))
    .collect();
    if kinds.is_empty() {
        return;
    }
    let Ok(mut map) = kubelet.probes.by_container.lock() else {
        return;
    };
    if map.contains_key(id) {
        return;
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let tasks = kinds
        .into_iter()
        .map(|(kind, probe)| {
            let worker = Worker {
                kubelet: kubelet.clone(),
                pod: pod.clone(),
                container: c.clone(),
                id: id.to_string(),
                pod_ip: pod_ip.clone(),
                kind,
                probe,
            };
            tokio::spawn(worker.run()).abort_handle()
        })
        .collect();
    map.insert(
        id.to_string(),
        State {
            uid,
            ready: false,
            started: c.startup_probe.is_none(),
            tasks,
        },
    );
}

struct Worker {
    kubelet: Arc<Kubelet>,
    pod: Pod,
    container: Container,
    id: String,
    pod_ip: Option<String>,
    kind: Kind,
    probe: Probe,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

impl Worker {
    async fn run(self) {
        let p = &self.probe;
        let period = secs(p.period_seconds, 10).max(Duration::from_secs(1));
        let successes_needed = p.success_threshold.unwrap_or(1).max(1);
        let failures_allowed = p.failure_threshold.unwrap_or(3).max(1);
        tokio::time::sleep(secs(p.initial_delay_seconds, 0)).await;
        let (mut successes, mut failures) = (0, 0);
        loop {
            // Readiness and liveness wait for the startup probe; the startup probe stops once it
            // succeeded.
            let started = self.kubelet.probes.started(&self.id);
            if self.kind == Kind::Startup && started {
                return;
            }
            if self.kind != Kind::Startup && !started {
                tokio::time::sleep(period).await;
                continue;
            }
            match self.probe_once().await {
                Ok(()) => {
                    failures = 0;
                    successes += 1;
                    if successes >= successes_needed
                        && self.kubelet.probes.set(&self.id, self.kind, true)
                    {
                        self.wake();
                    }
                }
                Err(message) => {
                    successes = 0;
                    failures += 1;
                    self.kubelet
                        .event(
                            &self.pod,
                            EventType::Warning,
                            "Unhealthy",
                            format!("{} probe failed: {message}", self.kind.word()),
                        )
                        .await;
                    if failures >= failures_allowed {
                        match self.kind {
                            Kind::Readiness => {
                                if self.kubelet.probes.set(&self.id, self.kind, false) {
                                    self.wake();
                                }
                            }
                            Kind::Liveness | Kind::Startup => {
                                self.kill().await;
                                return;
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(period).await;
        }
    }

    fn wake(&self) {
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        self.kubelet.notify(
            &self.pod.namespace().unwrap_or_default(),
            &self.pod.name_any(),
            &uid,
        );
    }

    /// A container that failed its liveness (or startup) probe is stopped; the worker restarts it
    /// as the restart policy says.
    async fn kill(&self) {
        self.kubelet
            .event(
                &self.pod,
                EventType::Normal,
                "Killing",
                format!(
                    "Container {} failed {} probe, will be restarted",
                    self.container.name,
                    self.kind.word().to_lowercase()
                ),
            )
            .await;
        let grace = self
            .probe
            .termination_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        self.kubelet
            .stop_container(&self.pod, &self.container, &self.id, grace)
            .await;
        self.wake();
    }

    async fn probe_once(&self) -> Result<(), String> {
        let timeout = secs(self.probe.timeout_seconds, 1).max(Duration::from_secs(1));
        if let Some(exec) = &self.probe.exec {
            let cmd = exec.command.clone().unwrap_or_default();
            let out = self
                .kubelet
                .cri
                .exec_sync(&self.id, cmd.clone(), timeout)
                .await
                .map_err(|e| e.to_string())?;
            if out.exit_code == 0 {
                return Ok(());
            }
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            return Err(if text.trim().is_empty() {
                format!("command {:?} exited with {}", cmd.join(" "), out.exit_code)
            } else {
                text.trim_end().to_string()
            });
        }
        let ip = self.pod_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        if let Some(t) = &self.probe.tcp_socket {
            let host = t.host.clone().unwrap_or(ip);
            let port = named_port(&self.container, &t.port)?;
            return match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: connect: {e}")),
                Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
            };
        }
        if let Some(h) = &self.probe.http_get {
            let host = h.host.clone().unwrap_or(ip);
            let port = named_port(&self.container, &h.port)?;
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            let https = h.scheme.as_deref() == Some("HTTPS");
            let url = format!(
                "{}://{host}:{port}{path}",
                if https { "https" } else { "http" }
            );
            let headers = header_pairs(h);
            let get = http_get(&host, port, &path, &headers, https);
            return match tokio::time::timeout(timeout, get).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
                Ok(Err(e)) => Err(format!("Get {url:?}: {e}")),
                Err(_) => Err(format!(
                    "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                )),
            };
        }
        if let Some(g) = &self.probe.grpc {
            let port = u16::try_from(g.port).map_err(|_| format!("invalid port {}", g.port))?;
            let service = g.service.clone().unwrap_or_default();
            return grpc_check(&ip, port, &service, timeout).await;
        }
        Err("the probe names no handler (exec, httpGet, tcpSocket or grpc)".into())
    }
}

/// The port a probe or hook names: a number, or the name of one of the container's ports.
pub(super) fn named_port(c: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("cannot find port {name:?} in container {}", c.name)),
    }
}

/// An httpGet action's headers as (name, value) pairs (probes and hooks).
pub(super) fn header_pairs(h: &HTTPGetAction) -> Vec<(String, String)> {
    h.http_headers
        .iter()
        .flatten()
        .map(|hh| (hh.name.clone(), hh.value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_follow_the_probes_a_container_has() {
        let probes = Probes::default();
        let plain = Container::default();
        assert_eq!(probes.results(&plain, "a"), (true, true));
        let with_readiness = Container {
            readiness_probe: Some(Probe::default()),
            ..Default::default()
        };
        assert_eq!(probes.results(&with_readiness, "b"), (false, true));
        probes.by_container.lock().unwrap().insert(
            "b".into(),
            State {
                uid: "u".into(),
                ready: false,
                started: true,
                tasks: vec![],
            },
        );
        assert!(probes.set("b", Kind::Readiness, true));
        assert!(!probes.set("b", Kind::Readiness, true), "no change");
        assert_eq!(probes.results(&with_readiness, "b"), (true, true));
        let with_startup = Container {
            readiness_probe: Some(Probe::default()),
            startup_probe: Some(Probe::default()),
            ..Default::default()
        };
        probes
            .by_container
            .lock()
            .unwrap()
            .get_mut("b")
            .unwrap()
            .started = false;
        assert_eq!(
            probes.results(&with_startup, "b"),
            (false, false),
            "not ready before started"
        );
        probes.retain("u", &[]);
        assert_eq!(
            probes.results(&with_readiness, "b"),
            (false, true),
            "forgotten"
        );
    }
}
