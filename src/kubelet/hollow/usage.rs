//! What hollow nodes report as resource usage, and the kubelet endpoint they report it on, so that
//! `kubectl top`, `metrics.k8s.io` and the HorizontalPodAutoscaler work on hollow nodes as on real ones
//! (upstream's kubemark answers from a fake cadvisor the same way).
//!
//! **Usage.** A hollow container uses a fixed amount: what its pod's [`USAGE_ANNOTATION`] says
//! (`cpu=300m,memory=64Mi`, for each container), else the process's default (`rkube hollow-nodes
//! --container-usage`, [`Demand::default`] otherwise). A node uses [`NODE_BASE`] (its system daemons)
//! plus its running containers. CPU counters are what that rate adds up to since the container (or
//! the node) started, so a consumer computing rates from two readings gets the same rate.
//!
//! **Endpoint.** The apiserver reaches a node's kubelet at the node's InternalIP and reported port
//! (`status.daemonEndpoints`). The hollow nodes of one process share one listener: each node's
//! InternalIP is a loopback address of its own ([`node_ip`]: 127.100.0.1 upward; Linux delivers all of
//! 127.0.0.0/8 to `lo`), the listener takes every address on one ephemeral port, and the address a
//! connection was made to says which node it is for. Connections to any other address are dropped, so
//! nothing off this machine is answered. Callers authenticate with a client certificate and are
//! authorized as `nodes/stats` / `nodes/metrics` of that node, exactly as the real kubelet's
//! [`crate::kubelet::server`]. One serving certificate names every node address: the cluster CA issues
//! it in `rkube server --hollow-nodes` ([`Serving::Issue`]); `rkube hollow-nodes`, a client, asks the
//! `kubernetes.io/kubelet-serving` signer for it ([`Serving::Request`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::Nodes;
use crate::apiserver::wire::quantity::Quantity;
use crate::kubelet::server::{self, Body};
use crate::kubelet::stats::{ContainerUsage, Sample, Usage};

/// The pod annotation that sets what each of its containers uses on a hollow node.
pub const USAGE_ANNOTATION: &str = "hollow.rkube.io/usage";

/// What a hollow node uses beside its pods (a real node's system daemons), so an idle node reports
/// some usage as a real one does.
pub const NODE_BASE: Demand = Demand {
    nano_cores: 50_000_000,
    bytes: 256 << 20,
};

/// A constant CPU rate and memory working set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demand {
    pub nano_cores: u64,
    pub bytes: u64,
}

impl Default for Demand {
    /// An idle container: 10m of CPU, 32Mi of memory.
    fn default() -> Self {
        Demand {
            nano_cores: 10_000_000,
            bytes: 32 << 20,
        }
    }
}

impl std::str::FromStr for Demand {
    type Err = String;

    /// `cpu=300m,memory=64Mi`; a resource left out keeps the default's value.
    fn from_str(s: &str) -> Result<Demand, String> {
        let mut d = Demand::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected cpu=<quantity> or memory=<quantity>"))?;
            let q = Quantity::parse(value.trim())
                .map_err(|e| format!("{key}: invalid quantity {value:?}: {e}"))?;
            match key.trim() {
                "cpu" => {
                    d.nano_cores = u64::try_from(q.milli_value())
                        .ok()
                        .and_then(|m| m.checked_mul(1_000_000))
                        .ok_or_else(|| format!("cpu: {value:?} is out of range"))?
                }
                "memory" => {
                    d.bytes = u64::try_from(q.value())
                        .map_err(|_| format!("memory: {value:?} is out of range"))?
                }
                other => return Err(format!("unknown resource {other:?} (cpu or memory)")),
            }
        }
        Ok(d)
    }
}

/// The loopback address that is hollow node `index`'s InternalIP (see the module doc).
pub fn node_ip(index: usize) -> Ipv4Addr {
    let n = index + 1;
    Ipv4Addr::new(
        127,
        100 + ((n >> 16) % 100) as u8,
        ((n >> 8) & 255) as u8,
        (n & 255) as u8,
    )
}

/// A running pod as its hollow node accounts it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningPod {
    namespace: String,
    name: String,
    uid: String,
    /// Each running container's name and start (nanoseconds since the epoch).
    containers: Vec<(String, i64)>,
    demand: Demand,
}

impl RunningPod {
    /// The pod's running containers, if it is Running; `default` unless the pod's annotation says
    /// otherwise (an unreadable annotation counts as absent).
    pub fn of(pod: &Pod, default: Demand) -> Option<RunningPod> {
        let status = pod.status.as_ref()?;
        if status.phase.as_deref() != Some("Running") {
            return None;
        }
        let containers: Vec<(String, i64)> = status
            .container_statuses
            .iter()
            .flatten()
            .filter_map(|c| {
                let started = c.state.as_ref()?.running.as_ref()?.started_at.as_ref()?;
                Some((c.name.clone(), started.0.as_nanosecond() as i64))
            })
            .collect();
        let demand = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(USAGE_ANNOTATION))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default);
        Some(RunningPod {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            uid: pod.metadata.uid.clone()?,
            containers,
            demand,
        })
    }
}

/// CPU time used at `nano_cores` from `since_ns` to `now_ns`.
fn cpu_time(nano_cores: u64, since_ns: i64, now_ns: i64) -> u64 {
    let elapsed = u128::try_from(now_ns.saturating_sub(since_ns)).unwrap_or(0);
    u64::try_from(u128::from(nano_cores) * elapsed / 1_000_000_000).unwrap_or(u64::MAX)
}

/// A node's usage at `now_ns`: [`NODE_BASE`] since the node started, plus its running pods.
pub fn sample<'a>(
    pods: impl Iterator<Item = &'a RunningPod>,
    node_started_ns: i64,
    memory_capacity: u64,
    now_ns: i64,
) -> Sample {
    let mut node = Usage {
        time_ns: now_ns,
        cpu_core_nanos: cpu_time(NODE_BASE.nano_cores, node_started_ns, now_ns),
        nano_cores: Some(NODE_BASE.nano_cores),
        working_set_bytes: NODE_BASE.bytes,
        ..Usage::default()
    };
    let mut containers = Vec::new();
    for pod in pods {
        for (name, started_ns) in &pod.containers {
            let usage = Usage {
                time_ns: now_ns,
                cpu_core_nanos: cpu_time(pod.demand.nano_cores, *started_ns, now_ns),
                nano_cores: Some(pod.demand.nano_cores),
                working_set_bytes: pod.demand.bytes,
                usage_bytes: pod.demand.bytes,
                ..Usage::default()
            };
            node.cpu_core_nanos = node.cpu_core_nanos.saturating_add(usage.cpu_core_nanos);
            node.nano_cores = node.nano_cores.map(|n| n + pod.demand.nano_cores);
            node.working_set_bytes += pod.demand.bytes;
            containers.push(ContainerUsage {
                id: format!("{}/{name}", pod.uid),
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                pod_uid: pod.uid.clone(),
                name: name.clone(),
                started_ns: *started_ns,
                usage,
            });
        }
    }
    node.usage_bytes = node.working_set_bytes;
    node.available_bytes = Some(memory_capacity.saturating_sub(node.working_set_bytes));
    Sample { node, containers }
}

/// Issues a serving TLS config naming the given addresses.
pub type Issuer = Box<dyn Fn(&[IpAddr]) -> anyhow::Result<rustls::ServerConfig> + Send + Sync>;

/// Where the hollow nodes' shared endpoint gets its serving certificate.
pub enum Serving {
    /// Issued at once for the node addresses (`rkube server`, which holds the cluster CA).
    Issue(Issuer),
    /// Requested from the `kubernetes.io/kubelet-serving` signer (`rkube hollow-nodes`); client
    /// certificates must chain to `ca_pem`.
    Request { ca_pem: String },
}

impl Serving {
    async fn config(
        &self,
        client: &kube::Client,
        name: &str,
        ips: &[IpAddr],
    ) -> anyhow::Result<rustls::ServerConfig> {
        match self {
            Serving::Issue(issue) => issue(ips),
            Serving::Request { ca_pem } => {
                crate::kubelet::join::shared_serving_config(client, name, ips, ca_pem).await
            }
        }
    }
}

/// The listener of the shared endpoint: every address, an ephemeral port (see the module doc).
pub async fn bind() -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).await
}

/// What the endpoint needs to answer for the nodes.
pub(super) struct Endpoint {
    pub(super) client: kube::Client,
    pub(super) nodes: Nodes,
    /// Node address → node name.
    pub(super) by_ip: HashMap<IpAddr, String>,
    pub(super) memory_capacity: u64,
    /// The certificate's name (its other names are the node addresses).
    pub(super) name: String,
}

/// Gets the serving certificate, then answers on `listener` until the process ends.
pub(super) async fn serve(listener: TcpListener, serving: Serving, endpoint: Endpoint) {
    let ips: Vec<IpAddr> = endpoint.by_ip.keys().copied().collect();
    // A few tries: the apiserver may be restarting; a refused request or a broken CA does not mend.
    let mut tries = 0;
    let tls = loop {
        match serving.config(&endpoint.client, &endpoint.name, &ips).await {
            Ok(tls) => break tls,
            Err(e) if tries < 5 => {
                tries += 1;
                tracing::warn!("hollow nodes: serving certificate: {e:#}; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => {
                tracing::error!(
                    "hollow nodes: no serving certificate, so they report no usage: {e:#}"
                );
                return;
            }
        }
    };
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let endpoint = Arc::new(endpoint);
    tracing::info!(
        port = listener.local_addr().map(|a| a.port()).unwrap_or(0),
        nodes = endpoint.by_ip.len(),
        "hollow nodes: kubelet endpoint serving"
    );
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!("hollow nodes: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Which node the caller dialled; anything but a node address is not ours to answer.
        let Some(node) = tcp
            .local_addr()
            .ok()
            .and_then(|a| endpoint.by_ip.get(&a.ip()).cloned())
        else {
            continue;
        };
        let endpoint = endpoint.clone();
        tokio::spawn(server::serve_connection(
            acceptor.clone(),
            tcp,
            move |user, req| {
                let (endpoint, node) = (endpoint.clone(), node.clone());
                async move { handle(&endpoint, &node, &user, req).await }
            },
        ));
    }
}

async fn handle(
    endpoint: &Endpoint,
    node: &str,
    user: &crate::pki::CertUser,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.uri().path() == "/healthz" {
        return server::text(StatusCode::OK, "ok");
    }
    let now_ns = k8s_openapi::jiff::Timestamp::now().as_nanosecond() as i64;
    let sample = || {
        let nodes = endpoint.nodes.lock().ok()?;
        let state = nodes.get(node)?;
        Some(sample(
            state.running.values(),
            state.started_ns,
            endpoint.memory_capacity,
            now_ns,
        ))
    };
    match server::stats_endpoint(&endpoint.client, node, user, &req, sample).await {
        Some(r) => r,
        None => server::text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demands() {
        assert_eq!("".parse::<Demand>(), Ok(Demand::default()));
        assert_eq!(
            "cpu=300m, memory=64Mi".parse::<Demand>(),
            Ok(Demand {
                nano_cores: 300_000_000,
                bytes: 64 << 20
            })
        );
        assert_eq!(
            "cpu=1".parse::<Demand>().map(|d| (d.nano_cores, d.bytes)),
            Ok((1_000_000_000, 32 << 20))
        );
        assert!("cpu".parse::<Demand>().is_err());
        assert!("gpu=1".parse::<Demand>().is_err());
        assert!("memory=lots".parse::<Demand>().is_err());
    }

    #[test]
    fn addresses_are_distinct_loopback() {
        assert_eq!(node_ip(0), Ipv4Addr::new(127, 100, 0, 1));
        assert_eq!(node_ip(255), Ipv4Addr::new(127, 100, 1, 0));
        assert_eq!(node_ip(65535), Ipv4Addr::new(127, 101, 0, 0));
        let all: std::collections::HashSet<_> = (0..10_000).map(node_ip).collect();
        assert_eq!(all.len(), 10_000);
        assert!(all.iter().all(|ip| ip.is_loopback()));
    }

    fn running(uid: &str, started_s: i64, demand: Demand) -> RunningPod {
        RunningPod {
            namespace: "ns".into(),
            name: format!("p-{uid}"),
            uid: uid.into(),
            containers: vec![("a".into(), started_s * 1_000_000_000)],
            demand,
        }
    }

    #[test]
    fn sample_adds_pods_to_the_base() {
        let busy = Demand {
            nano_cores: 250_000_000,
            bytes: 100 << 20,
        };
        let pods = [
            running("1", 100, busy),
            running("2", 110, Demand::default()),
        ];
        let s = sample(pods.iter(), 0, 1 << 30, 120 * 1_000_000_000);
        assert_eq!(s.containers.len(), 2);
        let first = &s.containers[0].usage;
        assert_eq!(first.nano_cores, Some(250_000_000));
        // 20 s at a quarter core.
        assert_eq!(first.cpu_core_nanos, 5_000_000_000);
        assert_eq!(first.working_set_bytes, 100 << 20);
        assert_eq!(
            s.node.nano_cores,
            Some(50_000_000 + 250_000_000 + 10_000_000)
        );
        assert_eq!(
            s.node.cpu_core_nanos,
            120 * 50_000_000 + 5_000_000_000 + 10 * 10_000_000
        );
        let ws = (256 << 20) + (100 << 20) + (32 << 20);
        assert_eq!(s.node.working_set_bytes, ws);
        assert_eq!(s.node.available_bytes, Some((1 << 30) - ws));
    }
}
