//! Registration and heartbeats, shared by hollow nodes and the CRI kubelet: the Node object is
//! created (or adopted, keeping what the cluster set on it such as its podCIDR and taints) with the
//! kubelet's status, and the node's Lease in `kube-node-lease` is renewed every 10 s, which is what the
//! node lifecycle controller watches.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
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

/// Creates ClusterRoleBinding `name` of `role` to one subject (`User` or `Group`), if absent.
pub async fn bind_cluster_role(
    admin: &kube::Client,
    name: &str,
    role: &str,
    kind: &str,
    subject: &str,
) -> anyhow::Result<()> {
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
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
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: kind.into(),
            name: subject.into(),
            namespace: None,
        }]),
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
