//! Registration and heartbeats, shared by hollow nodes and the CRI kubelet: the Node object is
//! created (or adopted, keeping what the cluster set on it such as its podCIDR and taints) with the
//! kubelet's status, its podCIDR is waited for from node IPAM ([`wait_for_pod_cidrs`]), and the node's
//! Lease in `kube-node-lease` is renewed every 10 s, which is what the node lifecycle controller watches.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::rbac::v1::Subject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Upstream's kubelet renews its Lease every 10 s (nodeLeaseDurationSeconds 40 / 4).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const NODE_LEASE_NS: &str = "kube-node-lease";

/// Creates `node` (or adopts the existing one of that name) and writes its status; returns the Node
/// as stored (its spec is the cluster's from then on).
pub async fn register(client: &kube::Client, node: &Node) -> anyhow::Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().unwrap_or_default();
    let existing = match api.create(&PostParams::default(), node).await {
        Ok(created) => created,
        Err(kube::Error::Api(e)) if e.code == 409 => api.get(&name).await?,
        Err(e) => return Err(e.into()),
    };
    // Status is the kubelet's to write (a create may drop it, an adopted node has an old one).
    let stored = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": node.status})),
        )
        .await
        .unwrap_or(existing);
    Ok(stored)
}

/// How long a kubelet waits for node IPAM to give its Node a podCIDR before it falls back (a cluster
/// without `--allocate-node-cidrs`).
pub const POD_CIDR_WAIT: Duration = Duration::from_secs(60);

/// The podCIDRs node IPAM gives the Nodes named in `wanted`, as they appear (one watch: of the one Node
/// when there is one, of all Nodes for many hollow ones); returns when every one has a podCIDR or after
/// `timeout`, with those it saw.
pub async fn wait_for_pod_cidrs(
    client: &kube::Client,
    wanted: &HashSet<String>,
    timeout: Duration,
) -> HashMap<String, String> {
    let api: Api<Node> = Api::all(client.clone());
    let config = match wanted.iter().next() {
        Some(only) if wanted.len() == 1 => {
            watcher::Config::default().fields(&format!("metadata.name={only}"))
        }
        _ => watcher::Config::default(),
    };
    let mut found = HashMap::new();
    let mut events = watcher::watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let _ = tokio::time::timeout(timeout, async {
        while let Some(node) = events.next().await {
            let Ok(node) = node else { continue };
            let (Some(name), Some(cidr)) = (
                node.metadata.name.as_ref(),
                node.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()),
            ) else {
                continue;
            };
            if wanted.contains(name) && !cidr.is_empty() {
                found.insert(name.clone(), cidr.clone());
                if found.len() == wanted.len() {
                    return;
                }
            }
        }
    })
    .await;
    found
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Creates the node's Lease, owned by the Node (so it goes with it), or renews an existing one.
pub async fn create_lease(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NS);
    let node: Api<Node> = Api::all(client.clone());
    let uid = node.get(name).await?.metadata.uid.unwrap_or_default();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.into(),
                uid,
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(micro_now()),
            ..Default::default()
        }),
    };
    match api.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => renew(&api, name).await,
        Err(e) => Err(e.into()),
    }
}

pub async fn renew(api: &Api<Lease>, name: &str) -> anyhow::Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"renewTime": micro_now(), "holderIdentity": name}})),
    )
    .await?;
    Ok(())
}

/// An RBAC subject: a `User` or `Group` by name.
pub fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
        namespace: None,
    }
}

/// Creates ClusterRoleBinding `name` of `role` to one subject, if absent.
pub async fn bind_cluster_role(
    admin: &kube::Client,
    name: &str,
    role: &str,
    subject: Subject,
) -> anyhow::Result<()> {
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef};
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![subject]),
    };
    create_if_absent(Api::all(admin.clone()), &binding).await
}

/// Creates `object` unless one of its name exists (kept as it is: the installer's "ensure exists",
/// as kubeadm's bootstrap and addon phases do).
pub async fn create_if_absent<K>(api: Api<K>, object: &K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
