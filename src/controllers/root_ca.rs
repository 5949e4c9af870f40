//! Upstream's root-ca-cert-publisher: every namespace has a `kube-root-ca.crt` ConfigMap holding the
//! cluster CA (`ca.crt`), which pods use to verify the apiserver.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

use super::per_namespace::{self, Desired};
use super::Clients;

pub const CONFIG_MAP: &str = "kube-root-ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub async fn run(clients: Clients, ca_pem: String) {
    let desired = Desired {
        name: CONFIG_MAP,
        object: Box::new(move |_ns: &str| ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIG_MAP.into()),
                annotations: Some(BTreeMap::from([(
                    "kubernetes.io/description".to_string(),
                    DESCRIPTION.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("ca.crt".to_string(), ca_pem.clone())])),
            ..Default::default()
        }),
        up_to_date: |current, wanted| current.data == wanted.data,
    };
    per_namespace::run(clients, desired).await;
}
