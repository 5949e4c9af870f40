//! The kubelet of a real node: registers this machine as a Node, heartbeats its Lease, and runs the
//! pods bound to it on a CRI runtime (containerd).
//!
//! Start at [`run`]: it connects to the runtime ([`super::cri`]), registers the Node with this
//! machine's capacity and nodeInfo, hands the node's pod CIDR to the runtime (containerd renders its
//! CNI config from it), then runs three loops: the Lease heartbeat, a watch of the pods bound to this
//! node (`spec.nodeName=<node>`, one reflector cache), and the relist ([`relist`], upstream's generic
//! PLEG: every second the runtime's sandboxes and containers are listed and the pods whose containers
//! changed are woken). The per-pod work is in [`super::pod_workers`].

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{DaemonEndpoint, NodeDaemonEndpoints, NodeSystemInfo, Pod};
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::ResourceExt;

use super::cri::Cri;
use super::pod_workers::Kubelet;
use super::registration::{self, LEASE_RENEW, NODE_LEASE_NS};
use super::runtime_config::LABEL_POD_UID;
use super::NodeResources;

/// Upstream's generic PLEG relists every second.
const RELIST: Duration = Duration::from_secs(1);
/// How often the node re-posts its status when nothing changed (upstream's nodeStatusReportFrequency
/// is 5 minutes; the Lease carries liveness in between).
const STATUS_REPORT: Duration = Duration::from_secs(300);

/// The pod range a node uses when neither --pod-cidr nor node IPAM gave it one: containerd's default.
const FALLBACK_POD_CIDR: &str = "10.88.0.0/16";

/// The kubelet's serving TLS config, once there is one.
pub type ServingTls = futures::future::BoxFuture<'static, anyhow::Result<rustls::ServerConfig>>;

pub struct Config {
    pub node_name: String,
    /// `unix:///run/containerd/containerd.sock`.
    pub runtime_endpoint: String,
    /// The node's pod CIDR when given (upstream's --pod-cidr): registered as the Node's podCIDR.
    /// `None`: the kubelet waits for the one node IPAM assigns.
    pub pod_cidr: Option<String>,
    /// The kubelet's directory (volumes, pod logs).
    pub root: PathBuf,
    pub node_ip: String,
    /// The kubelet's HTTPS port and its TLS config (serving certificate, client CA), which may be
    /// still to come (a joined node serves once its serving certificate is approved); `None`: the
    /// kubelet serves nothing (`kubectl logs` then answers 503 for its pods).
    pub serving: Option<(ServingTls, std::net::SocketAddr)>,
    /// Pods' DNS settings (--cluster-dns, --cluster-domain).
    pub cluster_dns: super::runtime_config::ClusterDns,
    /// Where static pod manifests are read from (--pod-manifest-path).
    pub pod_manifest_path: Option<PathBuf>,
    /// How often each pod is synced when nothing happens to it, refreshing its volumes' files
    /// (--sync-frequency).
    pub sync_frequency: std::time::Duration,
    /// The eviction manager's hard and soft thresholds (--eviction-hard, --eviction-soft with
    /// --eviction-soft-grace-period).
    pub eviction_thresholds: Vec<super::eviction::Threshold>,
    /// The most grace a pod evicted for a soft threshold gets (--eviction-max-pod-grace-period).
    pub eviction_max_pod_grace_period: i64,
    /// How long a pressure condition stays after its threshold is no longer met
    /// (--eviction-pressure-transition-period).
    pub eviction_pressure_transition_period: std::time::Duration,
    /// Image garbage collection (--image-gc-high-threshold, --image-gc-low-threshold,
    /// --minimum-image-ttl-duration, --image-maximum-gc-age, --image-gc-period).
    pub image_gc: super::image_gc::Policy,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// This machine's capacity: CPUs, memory (MemTotal), the root dir's filesystem, 110 pods.
fn machine_resources(root: &std::path::Path) -> NodeResources {
    let cpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let storage = super::eviction::filesystem(root).map_or(0, |fs| fs.capacity.max(0) as u64);
    NodeResources {
        cpu: cpu.to_string(),
        memory: format!("{mem_kib}Ki"),
        pods: "110".into(),
        ephemeral_storage: format!("{}Ki", storage / 1024),
    }
}

fn machine_info(runtime_version: String) -> NodeSystemInfo {
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let machine_id = read_trimmed("/etc/machine-id").unwrap_or_default();
    NodeSystemInfo {
        architecture: super::arch(),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
        container_runtime_version: runtime_version,
        kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        kube_proxy_version: String::new(),
        kubelet_version: super::KUBELET_VERSION.into(),
        machine_id: machine_id.clone(),
        operating_system: "linux".into(),
        os_image,
        system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid").unwrap_or(machine_id),
        ..Default::default()
    }
}

/// Runs the kubelet until the process ends.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let cri = Cri::connect(&config.runtime_endpoint).await?;
    let version = cri.version().await?;
    std::fs::create_dir_all(&config.root)?;
    let res = machine_resources(&config.root);
    let info = machine_info(version.clone());
    let mut node = super::node_object(
        &config.node_name,
        &config.node_ip,
        config.pod_cidr.as_deref(),
        &res,
        &info,
    );
    if let (Some((_, addr)), Some(status)) = (&config.serving, node.status.as_mut()) {
        status.daemon_endpoints = Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(addr.port()),
            }),
        });
    }
    let stored = registration::register(&client, &node).await?;
    let assigned = stored
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .filter(|c| !c.is_empty());
    let pod_cidr = match assigned {
        Some(cidr) => cidr,
        None => {
            let wanted = HashSet::from([config.node_name.clone()]);
            let mut got =
                registration::wait_for_pod_cidrs(&client, &wanted, registration::POD_CIDR_WAIT)
                    .await;
            got.remove(&config.node_name).unwrap_or_else(|| {
                tracing::warn!(
                    "node IPAM gave this node no podCIDR within {:?} (is --allocate-node-cidrs off?); pods get addresses from {FALLBACK_POD_CIDR}, containerd's default",
                    registration::POD_CIDR_WAIT
                );
                FALLBACK_POD_CIDR.to_string()
            })
        }
    };
    cri.update_pod_cidr(&pod_cidr).await?;
    registration::create_lease(&client, &config.node_name).await?;
    tracing::info!(node = %config.node_name, runtime = %version, %pod_cidr, "kubelet registered");

    let pods: Api<Pod> = Api::all(client.clone());
    let (store, writer) = reflector::store::<Pod>();
    let watch = watcher::watcher(
        pods,
        watcher::Config::default().fields(&format!("spec.nodeName={}", config.node_name)),
    )
    .modify(crate::controllers::common::trim::<Pod>)
    .default_backoff();
    let kubelet = Kubelet::new(client.clone(), cri, &config, store.clone());
    tokio::spawn(heartbeat(client.clone(), node.clone(), kubelet.clone()));
    let image_fs = match kubelet.cri.image_fs().await {
        Ok(fs) => fs.map(PathBuf::from),
        Err(e) => {
            tracing::warn!(
                "kubelet: the runtime's image filesystem: {e} (imagefs.* signals are not watched)"
            );
            None
        }
    };
    let image_gc = super::image_gc::ImageGc::new(
        kubelet.cri.clone(),
        config.image_gc,
        image_fs.clone(),
        kubelet.recorder.clone(),
        config.node_name.clone(),
    );
    tokio::spawn(super::image_gc::run(image_gc.clone()));
    tokio::spawn(super::eviction::run(
        kubelet.clone(),
        super::eviction::Config {
            thresholds: config.eviction_thresholds.clone(),
            transition_period: config.eviction_pressure_transition_period,
            max_pod_grace_period: config.eviction_max_pod_grace_period,
            image_fs,
            image_gc: Some(image_gc),
        },
    ));
    tokio::spawn(super::stats::sample_forever(
        kubelet.cri.clone(),
        kubelet.stats.clone(),
    ));
    if let Some((tls, addr)) = config.serving {
        let k = kubelet.clone();
        tokio::spawn(async move {
            let served = match tls.await {
                Ok(tls) => super::server::serve(k, addr, tls).await,
                Err(e) => Err(e.context("the kubelet's serving certificate")),
            };
            if let Err(e) = served {
                tracing::error!("kubelet server on {addr}: {e:#}");
            }
        });
    }
    let k = kubelet.clone();
    let mirrors_changed = Arc::new(tokio::sync::Notify::new());
    let statics = config
        .pod_manifest_path
        .clone()
        .map(|dir| (dir, mirrors_changed.clone()));
    tokio::spawn(async move {
        // One task waits for the store: its readiness wakes only the last task that polled it
        // (kube-runtime's DelayedInit keeps one waker), so a second waiter would stall the first.
        let _ = store.wait_until_ready().await;
        if let Some((dir, changed)) = statics {
            tokio::spawn(super::static_pods::run(k.clone(), dir, changed));
        }
        relist(k).await;
    });
    // Raw events, not touched objects: a (re)list's pods reach the store only at its end
    // (`InitDone`), and a worker woken before that would find no pod in the store and remove its
    // containers as an orphan's (a restarted kubelet lost a finished pod's logs that way). The
    // list's pods are woken once the store holds them, as upstream's kubelet waits for its
    // sources to be ready before cleaning up.
    let mut events = reflector::reflector(writer, watch).boxed();
    let mut listed: Vec<Pod> = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::Delete(pod)) => {
                wake(&kubelet, &mirrors_changed, &pod)
            }
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(pod)) => listed.push(pod),
            Ok(watcher::Event::InitDone) => {
                for pod in listed.drain(..) {
                    wake(&kubelet, &mirrors_changed, &pod);
                }
            }
            Err(e) => tracing::warn!("kubelet: pod watch: {e}"),
        }
    }
    Ok(())
}

/// Wakes the worker of `pod` (for a mirror pod: the static pod it mirrors).
fn wake(kubelet: &Arc<Kubelet>, mirrors_changed: &tokio::sync::Notify, pod: &Pod) {
    if super::static_pods::is_mirror(pod) {
        // Not a pod to run: the static pod it mirrors is (its status is kept there).
        mirrors_changed.notify_one();
        if let Some(hash) = pod.annotations().get(super::static_pods::ANNOTATION_MIRROR) {
            if kubelet.has_static_pod(hash) {
                kubelet.notify(&pod.namespace().unwrap_or_default(), &pod.name_any(), hash);
            }
        }
    } else {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        kubelet.notify(&pod.namespace().unwrap_or_default(), &pod.name_any(), &uid);
    }
}

/// Renews the Lease every 10 s and re-posts the node status every few minutes, and at once when
/// the eviction manager's pressure conditions change.
async fn heartbeat(
    client: kube::Client,
    node: k8s_openapi::api::core::v1::Node,
    kubelet: Arc<Kubelet>,
) {
    let name = node.name_any();
    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NS);
    let mut last_status = tokio::time::Instant::now();
    let mut fresh = node;
    let mut reported = super::eviction::Pressure::default();
    loop {
        tokio::time::sleep(LEASE_RENEW).await;
        if let Err(e) = registration::renew(&leases, &name).await {
            tracing::warn!(node = %name, "kubelet: lease renewal failed: {e}");
        }
        // Upstream's kubelet compares its status with the Node's every 10 s: a Ready condition the
        // node lifecycle controller set to Unknown (after an outage) is put back at once, not after
        // the 5-minute report interval.
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
        let drifted = match nodes.get(&name).await {
            Ok(current) => !current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            Err(_) => false,
        };
        // The eviction manager's pressure conditions are written as soon as they change.
        let pressure = kubelet.pressure();
        if drifted || pressure != reported || last_status.elapsed() >= STATUS_REPORT {
            if let Some(status) = fresh.status.as_mut() {
                let now = super::now();
                for c in status.conditions.iter_mut().flatten() {
                    c.last_heartbeat_time = Some(now.clone());
                    if drifted && c.type_ == "Ready" {
                        c.last_transition_time = Some(now.clone());
                    }
                    let under = match c.type_.as_str() {
                        "MemoryPressure" => pressure.memory,
                        "DiskPressure" => pressure.disk,
                        "PIDPressure" => pressure.pid,
                        _ => continue,
                    };
                    super::set_pressure_condition(c, under, &now);
                }
            }
            match registration::register(&client, &fresh).await {
                Ok(_) => reported = pressure,
                Err(e) => tracing::warn!(node = %name, "kubelet: node status update failed: {e}"),
            }
            last_status = tokio::time::Instant::now();
        }
    }
}

/// Upstream's generic PLEG: lists the runtime every second and wakes the worker of every pod whose
/// sandboxes or containers changed state; runtime pods the API no longer has (and no worker handles)
/// are stopped and removed.
async fn relist(kubelet: Arc<Kubelet>) {
    let mut previous: HashMap<String, Vec<(String, i32)>> = HashMap::new();
    loop {
        tokio::time::sleep(RELIST).await;
        let (sandboxes, containers) =
            match tokio::try_join!(kubelet.cri.list_sandboxes(), kubelet.cri.list_containers()) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("kubelet: relist: {e}");
                    continue;
                }
            };
        let mut now: HashMap<String, Vec<(String, i32)>> = HashMap::new();
        for s in &sandboxes {
            if let Some(uid) = s.labels.get(LABEL_POD_UID) {
                now.entry(uid.clone())
                    .or_default()
                    .push((s.id.clone(), s.state));
            }
        }
        for c in &containers {
            if let Some(uid) = c.labels.get(LABEL_POD_UID) {
                now.entry(uid.clone())
                    .or_default()
                    .push((c.id.clone(), 10 + c.state));
            }
        }
        for v in now.values_mut() {
            v.sort();
        }
        let pods = kubelet.all_pods();
        for (uid, fingerprint) in &now {
            if previous.get(uid) == Some(fingerprint) {
                continue;
            }
            match pods.get(uid) {
                Some(p) => kubelet.notify(&p.namespace().unwrap_or_default(), &p.name_any(), uid),
                None if !kubelet.has_worker(uid) => {
                    let k = kubelet.clone();
                    let uid = uid.clone();
                    tokio::spawn(async move { k.remove_orphan(&uid).await });
                }
                None => {}
            }
        }
        previous = now;
    }
}
