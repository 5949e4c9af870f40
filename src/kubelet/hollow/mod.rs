//! Hollow nodes: many simulated kubelets in one process, sharing one pod watch and one Lease loop.
//!
//! Each node registers a Node and waits for the podCIDR node IPAM gives it (its pods' addresses),
//! renews its Lease in `kube-node-lease` every 10 s (renewals spread over the interval so thousands of
//! nodes make a steady trickle, not a burst), and reports the pods bound to it through the shared
//! status logic in [`super`]. One watch of all bound pods (`spec.nodeName!=`) serves every node in the
//! process: a watch per node would be thousands of connections. What the nodes and their pods use, and
//! the kubelet endpoint that reports it (`kubectl top`, the HPA), are in [`usage`].
//!
//! Identity: a real kubelet is `system:node:<name>` in `system:nodes`, limited to its own objects by the
//! Node authorizer and NodeRestriction. Thousands of in-process nodes share ONE client instead (a
//! certificate and a connection pool per simulated node would cost more than the nodes themselves),
//! so they cannot be one node each: they act as [`HOLLOW_NODES_USER`], outside `system:nodes`, granted
//! the `system:node` role by the `rkube:hollow-nodes` ClusterRoleBinding (upstream's pre-1.8
//! arrangement, as kubemark's hollow nodes share one kubeconfig). A hollow node runs no containers and
//! reads no secrets, so the wider reach is a test cluster's, never a real node's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, DaemonEndpoint, NodeDaemonEndpoints, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::json;

use super::registration::{self, LEASE_RENEW, NODE_LEASE_NS};
use super::{ContainerOutcome, NodeResources, Placement, Runtime};

pub mod usage;

use usage::{Demand, RunningPod, Serving};

/// The one identity every in-process hollow node shares (see the module doc).
pub const HOLLOW_NODES_USER: &str = "system:hollow-nodes";
/// The ClusterRoleBinding that grants it the `system:node` role.
const HOLLOW_NODES_BINDING: &str = "rkube:hollow-nodes";

/// The runtime of a hollow node: nothing runs; every container starts at once and keeps running,
/// except the ones whose command says how they end: `true` (or `sh -c "exit 0"`) exits 0, `false`
/// exits 1 and `sh -c "exit N"` exits N, so Job success, failure and backoff can be exercised.
pub struct HollowRuntime;

/// The exit code a hollow container's command announces, if it is one of the few that simply exit.
fn announced_exit(argv: &[&str]) -> Option<i32> {
    let script = match argv {
        [sh, "-c", script] if sh.ends_with("sh") => script.trim(),
        [cmd] => cmd
            .trim_start_matches("/bin/")
            .trim_start_matches("/usr/bin/"),
        _ => return None,
    };
    match script {
        "true" => Some(0),
        "false" => Some(1),
        _ => script
            .strip_prefix("exit ")
            .and_then(|n| n.trim().parse::<i32>().ok())
            // A shell reports an exit status modulo 256.
            .map(|n| n.rem_euclid(256)),
    }
}

impl Runtime for HollowRuntime {
    fn outcome(&self, _pod: &Pod, c: &Container) -> ContainerOutcome {
        let argv: Vec<&str> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .map(String::as_str)
            .collect();
        match announced_exit(&argv) {
            Some(code) => ContainerOutcome::Exited(code),
            None => ContainerOutcome::Running,
        }
    }
    fn container_id(&self, pod: &Pod, c: &Container) -> String {
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        format!(
            "hollow://{:032x}{:032x}",
            super::fnv(uid),
            super::fnv(&c.name)
        )
    }
    fn image_id(&self, image: &str) -> String {
        let normalized = super::normalize_image(image);
        let repo = normalized
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map(|(r, _)| r.to_string())
            .unwrap_or(normalized.clone());
        format!(
            "{repo}@sha256:{:032x}{:032x}",
            super::fnv(&normalized),
            super::fnv(&repo)
        )
    }
    fn version(&self) -> String {
        "hollow://1.0.0".into()
    }
}

/// One simulated node.
struct NodeState {
    ip: String,
    pod_cidr: String,
    /// Pod UID → the index of its IP in the podCIDR.
    ips: HashMap<String, u32>,
    next_ip: u32,
    /// Pod UID → what the running pod uses ([`usage`]).
    running: HashMap<String, RunningPod>,
    /// When the node registered, in nanoseconds since the epoch (its CPU counter's start).
    started_ns: i64,
}

type Nodes = Arc<Mutex<HashMap<String, NodeState>>>;

/// Registers `count` nodes named `<prefix>-<i>` and runs them until the process ends; their containers
/// use `container_usage` unless their pods say otherwise, reported on an endpoint whose certificate
/// comes from `serving` ([`usage`]).
pub async fn run(
    client: kube::Client,
    count: usize,
    prefix: &str,
    res: NodeResources,
    container_usage: Demand,
    serving: Serving,
) -> anyhow::Result<()> {
    let rt: Arc<dyn Runtime> = Arc::new(HollowRuntime);
    let nodes: Nodes = Arc::default();
    let listener = usage::bind().await?;
    let port = listener.local_addr()?.port();
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let registered =
        futures::stream::iter(names.clone().into_iter().enumerate().map(|(i, name)| {
            let client = client.clone();
            let rt = rt.clone();
            let res = res.clone();
            async move {
                let ip = usage::node_ip(i).to_string();
                let pod_cidr = register(&client, &name, &ip, port, &res, rt.as_ref()).await?;
                registration::create_lease(&client, &name).await?;
                anyhow::Ok((name, i, ip, pod_cidr))
            }
        }))
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    // Node IPAM gives each new Node its podCIDR; a node without one can't give its pods addresses.
    let waiting: HashSet<String> = registered
        .iter()
        .filter(|(_, _, _, cidr)| cidr.is_none())
        .map(|(name, ..)| name.clone())
        .collect();
    let mut assigned = if waiting.is_empty() {
        HashMap::new()
    } else {
        registration::wait_for_pod_cidrs(&client, &waiting, registration::POD_CIDR_WAIT).await
    };
    if assigned.len() < waiting.len() {
        tracing::warn!(
            missing = waiting.len() - assigned.len(),
            "hollow nodes: node IPAM gave no podCIDR within {:?} (is --allocate-node-cidrs off?); those nodes use one of 10.244.0.0/14 by their index",
            registration::POD_CIDR_WAIT
        );
    }
    let addresses: HashMap<String, String> = registered
        .iter()
        .map(|(name, _, ip, _)| (name.clone(), ip.clone()))
        .collect();
    {
        let mut nodes = nodes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let started_ns = Timestamp::now().as_nanosecond() as i64;
        for (name, i, ip, cidr) in registered {
            let pod_cidr = cidr
                .or_else(|| assigned.remove(&name))
                .unwrap_or_else(|| fallback_pod_cidr(i));
            nodes.insert(
                name,
                NodeState {
                    ip,
                    pod_cidr,
                    ips: HashMap::new(),
                    next_ip: 0,
                    running: HashMap::new(),
                    started_ns,
                },
            );
        }
    }
    tracing::info!(count, "hollow nodes registered");
    let endpoint = usage::Endpoint {
        client: client.clone(),
        nodes: nodes.clone(),
        by_ip: addresses
            .iter()
            .filter_map(|(name, ip)| Some((ip.parse().ok()?, name.clone())))
            .collect(),
        memory_capacity: crate::apiserver::wire::quantity::Quantity::parse(&res.memory)
            .ok()
            .and_then(|q| u64::try_from(q.value()).ok())
            .unwrap_or(0),
        name: prefix.to_string(),
    };
    tokio::spawn(usage::serve(listener, serving, endpoint));
    tokio::spawn(renew_leases(client.clone(), names));
    tokio::spawn(keep_ready(client.clone(), addresses, port, res, rt.clone()));
    run_pods(client, nodes, rt, container_usage).await;
    Ok(())
}

/// Creates the Node (or adopts an existing one, keeping its podCIDR) and reports its status; returns
/// the podCIDR it already has.
async fn register(
    client: &kube::Client,
    name: &str,
    ip: &str,
    port: u16,
    res: &NodeResources,
    rt: &dyn Runtime,
) -> anyhow::Result<Option<String>> {
    let info = super::hollow_node_info(name, rt);
    let mut node = super::node_object(name, ip, None, res, &info);
    if let Some(status) = node.status.as_mut() {
        status.daemon_endpoints = Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(port),
            }),
        });
    }
    let existing = registration::register(client, &node).await?;
    Ok(existing
        .spec
        .and_then(|s| s.pod_cidr)
        .filter(|c| !c.is_empty()))
}

/// The /24 a hollow node uses when node IPAM gave it none: one of 10.244.0.0/14 by the node's index
/// (what the nodes used before rkube had node IPAM).
fn fallback_pod_cidr(index: usize) -> String {
    let third = index % 256;
    let second = 244 + (index / 256) % 4;
    format!("10.{second}.{third}.0/24")
}

/// Every node renews every [`LEASE_RENEW`]; node i's renewal is offset by i/N of the interval (plus a
/// little jitter) so the apiserver sees an even rate.
async fn renew_leases(client: kube::Client, names: Vec<String>) {
    let api: Api<Lease> = Api::namespaced(client, NODE_LEASE_NS);
    let step = LEASE_RENEW / names.len().max(1) as u32;
    loop {
        let round = tokio::time::Instant::now();
        for (i, name) in names.iter().enumerate() {
            let jitter = Duration::from_millis(rand::random::<u64>() % 5);
            tokio::time::sleep_until(round + step * i as u32 + jitter).await;
            let api = api.clone();
            let name = name.clone();
            tokio::spawn(async move {
                if let Err(e) = registration::renew(&api, &name).await {
                    tracing::warn!(node = %name, "lease renewal failed: {e}");
                }
            });
        }
        tokio::time::sleep_until(round + LEASE_RENEW).await;
    }
}

/// Reports a node's status again whenever its Ready condition is not True, as upstream's kubelet does
/// at its next status update (it writes its status whenever the stored one differs): the node
/// lifecycle controller marks a node `Unknown` after missed heartbeats (an apiserver restart, a slow
/// leader change), and only the node itself may say it is Ready again. One watch of all Nodes serves
/// every hollow node of the process.
async fn keep_ready(
    client: kube::Client,
    addresses: HashMap<String, String>,
    port: u16,
    res: NodeResources,
    rt: Arc<dyn Runtime>,
) {
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = stream.next().await {
        let node = match event {
            Ok(node) => node,
            Err(e) => {
                tracing::warn!("hollow nodes: node watch: {e}");
                continue;
            }
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let Some(ip) = addresses.get(&name) else {
            continue;
        };
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        if ready.is_some_and(|s| s != "True") {
            match register(&client, &name, ip, port, &res, rt.as_ref()).await {
                Ok(_) => tracing::info!(node = %name, "hollow node: reported Ready again"),
                Err(e) => tracing::warn!(node = %name, "hollow node: status update failed: {e}"),
            }
        }
    }
}

/// The shared pod watch: every bound pod event is routed to its node (if it is one of ours).
async fn run_pods(client: kube::Client, nodes: Nodes, rt: Arc<dyn Runtime>, usage: Demand) {
    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields("spec.nodeName!=");
    let mut stream = watcher::watcher(pods, config)
        .modify(crate::controllers::common::trim::<Pod>)
        .default_backoff()
        .boxed();
    // Pods whose deletion is already being carried out (UID), so repeated events start one timer.
    let deleting: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(watcher::Event::Delete(pod)) => {
                forget(&nodes, &pod);
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("hollow nodes: pod watch: {e}");
                continue;
            }
        };
        handle(&client, &nodes, rt.as_ref(), &deleting, usage, pod);
    }
}

fn forget(nodes: &Nodes, pod: &Pod) {
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let uid = pod.metadata.uid.as_deref();
    if let (Some(node), Some(uid), Ok(mut nodes)) = (node, uid, nodes.lock()) {
        if let Some(state) = nodes.get_mut(node) {
            state.ips.remove(uid);
            state.running.remove(uid);
        }
    }
}

fn handle(
    client: &kube::Client,
    nodes: &Nodes,
    rt: &dyn Runtime,
    deleting: &Arc<Mutex<std::collections::HashSet<String>>>,
    usage: Demand,
    pod: Pod,
) {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
        return;
    };
    let (Some(ns), Some(name), Some(uid)) = (
        pod.metadata.namespace.clone(),
        pod.metadata.name.clone(),
        pod.metadata.uid.clone(),
    ) else {
        return;
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    if let Some(deleted_at) = pod.metadata.deletion_timestamp.clone() {
        let first = deleting
            .lock()
            .map(|mut d| d.insert(uid.clone()))
            .unwrap_or(false);
        if !first {
            return;
        }
        // The kubelet stops the containers (reported terminated at once: nothing runs), then removes
        // the pod for good once the grace period the deletion asked for has passed.
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .unwrap_or(0)
            .max(0);
        let status = if phase == "Succeeded" || phase == "Failed" {
            None
        } else {
            super::terminated_status(&pod)
        };
        let deleting = deleting.clone();
        let nodes = nodes.clone();
        tokio::spawn(async move {
            if let Some(status) = status {
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": status})),
                    )
                    .await;
            }
            // deletionTimestamp is when the grace period ends.
            let left = deleted_at.0.duration_until(Timestamp::now());
            let wait = Duration::try_from(-left)
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(grace as u64));
            tokio::time::sleep(wait).await;
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            if let Err(e) = api.delete(&name, &dp).await {
                if !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409) {
                    tracing::warn!(pod = %name, "hollow node: final delete failed: {e}");
                }
            }
            forget(&nodes, &pod);
            if let Ok(mut d) = deleting.lock() {
                d.remove(&uid);
            }
        });
        return;
    }
    let (host_ip, pod_ip) = {
        let Ok(mut nodes) = nodes.lock() else { return };
        let Some(state) = nodes.get_mut(&node) else {
            return;
        };
        // What it uses, once the pod is reported Running (and no longer once it has finished).
        match RunningPod::of(&pod, usage) {
            Some(running) => state.running.insert(uid.clone(), running),
            None => state.running.remove(&uid),
        };
        if phase == "Succeeded" || phase == "Failed" {
            return;
        }
        let existing_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        let ip = match existing_ip {
            Some(ip) => ip,
            None => {
                let n = *state.ips.entry(uid.clone()).or_insert_with(|| {
                    let n = state.next_ip;
                    state.next_ip += 1;
                    n
                });
                match super::pod_ip(&state.pod_cidr, n) {
                    Some(ip) => ip,
                    None => return,
                }
            }
        };
        (state.ip.clone(), ip)
    };
    let status = super::pod_status(
        &pod,
        &Placement {
            host_ip: &host_ip,
            pod_ip: &pod_ip,
        },
        rt,
    );
    if !super::status_changed(pod.status.as_ref(), &status) {
        return;
    }
    tokio::spawn(async move {
        let patch = Patch::Merge(json!({"status": status}));
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &patch)
            .await
        {
            if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                tracing::warn!(pod = %name, "hollow node: status update failed: {e}");
            }
        }
    });
}

/// Before the Node authorizer, this binding granted the `system:node` role to the whole
/// `system:nodes` group: every kubelet could read every Secret. A server started on such a data dir
/// removes it (hollow nodes get it back bound to their own user).
pub async fn retire_group_grant(admin: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let api: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let Some(binding) = api.get_opt(HOLLOW_NODES_BINDING).await? else {
        return Ok(());
    };
    let grants_group = binding
        .subjects
        .iter()
        .flatten()
        .any(|s| s.kind == "Group" && s.name == crate::apiserver::authz::node::NODES_GROUP);
    if grants_group {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: binding.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        api.delete(HOLLOW_NODES_BINDING, &dp).await?;
        tracing::info!("removed ClusterRoleBinding {HOLLOW_NODES_BINDING}, which granted system:node to every node");
    }
    Ok(())
}

/// Grants [`HOLLOW_NODES_USER`] the `system:node` role (what every hollow node may do).
pub async fn grant_node_role(admin: &kube::Client) -> anyhow::Result<()> {
    registration::bind_cluster_role(
        admin,
        HOLLOW_NODES_BINDING,
        "system:node",
        registration::subject("User", HOLLOW_NODES_USER),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::announced_exit;

    #[test]
    fn commands_that_exit() {
        assert_eq!(announced_exit(&["true"]), Some(0));
        assert_eq!(announced_exit(&["/bin/true"]), Some(0));
        assert_eq!(announced_exit(&["false"]), Some(1));
        assert_eq!(announced_exit(&["sh", "-c", "exit 0"]), Some(0));
        assert_eq!(announced_exit(&["/bin/sh", "-c", " exit 3 "]), Some(3));
        assert_eq!(announced_exit(&["bash", "-c", "exit 257"]), Some(1));
        assert_eq!(announced_exit(&["sh", "-c", "false"]), Some(1));
        assert_eq!(announced_exit(&["sleep", "3600"]), None);
        assert_eq!(announced_exit(&["sh", "-c", "sleep 5; exit 1"]), None);
        assert_eq!(announced_exit(&[]), None);
    }
}
