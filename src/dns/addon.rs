//! What kubeadm's CoreDNS addon phase creates, made by `rkube server` with its admin client when it
//! runs the cluster DNS: the `system:coredns` ClusterRole (list/watch of what the `kubernetes`
//! plugin reads) bound to the `kube-system/coredns` service account, that account, and the
//! `kube-system/kube-dns` Service at the well-known 10.96.0.10 (kubeadm: the 10th address of the
//! Service range).
//!
//! Upstream's kube-dns Service selects the CoreDNS pods; rkube's DNS is not a pod but part of the
//! server process, so the Service has no selector and this module writes its EndpointSlice itself
//! (one per node running the DNS, naming the node's address and the port it listens on), which
//! kube-proxy then uses like any other: 10.96.0.10:53 → nodeIP:port.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::kubelet::registration;

/// The cluster DNS Service's address (kubeadm's default for the 10.96.0.0/12 Service range).
pub const CLUSTER_DNS_IP: &str = "10.96.0.10";
pub const SERVICE_NAME: &str = "kube-dns";
pub const NAMESPACE: &str = "kube-system";
/// The account CoreDNS runs as upstream, which the in-process DNS authenticates as.
pub const SERVICE_ACCOUNT: &str = "coredns";
/// The EndpointSlice's `endpointslice.kubernetes.io/managed-by`: not the EndpointSlice
/// controller's (`endpointslice-controller.k8s.io`), so that controller leaves it alone.
pub const MANAGED_BY: &str = "dns.rkube.io";

/// The user name of the DNS's identity.
pub fn user() -> String {
    format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}")
}

/// [`registration::create_if_absent`] of an object written as JSON.
async fn create_if_absent<K>(api: Api<K>, object: Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    registration::create_if_absent(api, &serde_json::from_value::<K>(object)?).await
}

/// The EndpointSlice of the DNS on `node` (`ip`, listening on `port`).
pub fn endpoint_slice(node: &str, ip: IpAddr, port: u16) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{SERVICE_NAME}-{node}"),
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": SERVICE_NAME,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                "k8s-app": "kube-dns",
            },
        },
        "addressType": if ip.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{
            "addresses": [ip.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": node,
        }],
        "ports": [
            {"name": "dns", "protocol": "UDP", "port": port},
            {"name": "dns-tcp", "protocol": "TCP", "port": port},
        ],
    })
}

/// Creates what is missing (kubeadm's addons are "ensure exists": an edited Service is kept) and
/// writes this node's EndpointSlice (replaced when its address or port changed).
pub async fn ensure(admin: &kube::Client, node: &str, ip: IpAddr, port: u16) -> anyhow::Result<()> {
    create_if_absent(
        Api::<ClusterRole>::all(admin.clone()),
        json!({
            "metadata": {"name": "system:coredns",
                         "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["list", "watch"]},
            ],
        }),
    )
    .await?;
    create_if_absent(
        Api::<ClusterRoleBinding>::all(admin.clone()),
        json!({
            "metadata": {"name": "system:coredns",
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
                         "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
        }),
    )
    .await?;
    create_if_absent(
        Api::<ServiceAccount>::namespaced(admin.clone(), NAMESPACE),
        json!({"metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}}),
    )
    .await?;
    create_if_absent(
        Api::<Service>::namespaced(admin.clone(), NAMESPACE),
        json!({
            "metadata": {
                "name": SERVICE_NAME,
                "namespace": NAMESPACE,
                "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                           "kubernetes.io/name": "CoreDNS"},
                "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
            },
            "spec": {
                "clusterIP": CLUSTER_DNS_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        }),
    )
    .await?;
    let slices = Api::<EndpointSlice>::namespaced(admin.clone(), NAMESPACE);
    let want: EndpointSlice = serde_json::from_value(endpoint_slice(node, ip, port))?;
    let name = format!("{SERVICE_NAME}-{node}");
    match slices.get_opt(&name).await? {
        None => {
            slices.create(&PostParams::default(), &want).await?;
        }
        Some(have) if have.endpoints != want.endpoints || have.ports != want.ports => {
            let mut next = want;
            next.metadata.resource_version = have.metadata.resource_version;
            slices.replace(&name, &PostParams::default(), &next).await?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// [`ensure`], retried for a minute (the apiserver may still be settling its bootstrap objects).
pub async fn ensure_with_retries(admin: kube::Client, node: String, ip: IpAddr, port: u16) {
    let mut last = None;
    for _ in 0..60 {
        match ensure(&admin, &node, ip, port).await {
            Ok(()) => {
                tracing::info!(%ip, port, "dns: kube-system/kube-dns points at this node");
                return;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if let Some(e) = last {
        tracing::error!(
            "dns: the kube-dns Service and its EndpointSlice could not be written: {e:#}"
        );
    }
}
