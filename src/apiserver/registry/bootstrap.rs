//! What a fresh cluster has before anyone asks: the system namespaces and the `kubernetes` Service in
//! `default` that points clients inside the cluster at the apiserver, with its Endpoints and
//! EndpointSlice naming this apiserver's address (upstream's endpoint reconciler keeps those; no
//! controller owns them).

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::apiserver::registry::store::Registry;

/// The first address of the default service range, as upstream reserves it for `kubernetes` (the
/// configured range's first address is used: `ServiceRanges::cidr`).
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// Namespaces that may not be deleted (upstream's NamespaceLifecycle admission).
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces and the `kubernetes` Service where they are missing, and points the
/// Service's endpoints at `address`:`secure_port`.
pub async fn bootstrap(
    registry: &Registry,
    address: IpAddr,
    secure_port: u16,
) -> anyhow::Result<()> {
    let info = registry
        .catalog
        .find("", "v1", "namespaces")
        .ok_or_else(|| anyhow::anyhow!("no namespaces resource"))?;
    for ns in SYSTEM_NAMESPACES {
        if registry.get(&info, None, ns).await.is_ok() {
            continue;
        }
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
        match registry.create(&info, None, obj, false).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => anyhow::bail!("creating namespace {ns}: {}", e.message),
        }
    }
    let services = registry
        .catalog
        .find("", "v1", "services")
        .ok_or_else(|| anyhow::anyhow!("no services resource"))?;
    if registry
        .get(&services, Some("default"), "kubernetes")
        .await
        .is_err()
    {
        let cidr = registry.service_ranges.cidr;
        let kubernetes_ip = cidr.addr(cidr.first()).to_string();
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": kubernetes_ip,
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}]}
        });
        match registry
            .create(&services, Some("default"), svc, false)
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => anyhow::bail!("creating the kubernetes service: {}", e.message),
        }
    }
    if address.is_loopback() || address.is_unspecified() {
        // Endpoints may not name loopback (upstream's validation): a host without a network has none.
        tracing::warn!(
            "no routable advertise address ({address}): the kubernetes Service has no endpoints"
        );
        return Ok(());
    }
    let port = json!({"name": "https", "port": secure_port, "protocol": "TCP"});
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address.to_string()}], "ports": [port]}]
    });
    reconcile(registry, "", "v1", "endpoints", endpoints, &["subsets"]).await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [address.to_string()], "conditions": {"ready": true}}],
        "ports": [port]
    });
    reconcile(
        registry,
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        slice,
        &["addressType", "endpoints", "ports"],
    )
    .await
}

/// Creates `wanted` in `default`, or updates the stored object when its labels or `fields` differ
/// (another apiserver on the same storage may have written its own address; the latest start wins).
async fn reconcile(
    registry: &Registry,
    group: &str,
    version: &str,
    plural: &str,
    wanted: Value,
    fields: &[&str],
) -> anyhow::Result<()> {
    let info = registry
        .catalog
        .find(group, version, plural)
        .ok_or_else(|| anyhow::anyhow!("no {plural} resource"))?;
    let name = "kubernetes";
    match registry.get(&info, Some("default"), name).await {
        Ok(current) => {
            let differs = fields.iter().any(|f| current.get(*f) != wanted.get(*f))
                || current.pointer("/metadata/labels") != wanted.pointer("/metadata/labels");
            if !differs {
                return Ok(());
            }
            let mut updated = current.clone();
            for f in fields {
                if let Some(v) = wanted.get(*f) {
                    updated[*f] = v.clone();
                }
            }
            updated["metadata"]["labels"] = wanted["metadata"]["labels"].clone();
            match registry
                .update(&info, Some("default"), name, updated, None, false)
                .await
            {
                Ok(_) => Ok(()),
                // Another apiserver wrote it meanwhile: its address stands until the next start.
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => anyhow::bail!("updating the kubernetes {plural}: {}", e.message),
            }
        }
        Err(e) if e.code == 404 => {
            match registry.create(&info, Some("default"), wanted, false).await {
                Ok(_) => Ok(()),
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => anyhow::bail!("creating the kubernetes {plural}: {}", e.message),
            }
        }
        Err(e) => anyhow::bail!("reading the kubernetes {plural}: {}", e.message),
    }
}
