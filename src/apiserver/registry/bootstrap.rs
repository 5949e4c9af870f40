//! What a fresh cluster has before anyone asks: the system namespaces and the `kubernetes` Service in
//! `default` that points clients inside the cluster at the apiserver.

use serde_json::json;

use crate::apiserver::registry::store::Registry;

/// The first address of the service range, as upstream reserves it for `kubernetes`.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// Namespaces that may not be deleted (upstream's NamespaceLifecycle admission).
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces and the `kubernetes` Service where they are missing.
pub async fn bootstrap(registry: &Registry, secure_port: u16) -> anyhow::Result<()> {
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
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_SERVICE_IP,
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
    Ok(())
}
