//! Upstream's service-account controller: every namespace has a `default` ServiceAccount.

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::ObjectMeta;

use super::per_namespace::{self, Desired};
use super::Clients;

pub const DEFAULT_ACCOUNT: &str = "default";

pub async fn run(clients: Clients) {
    let desired = Desired {
        name: DEFAULT_ACCOUNT,
        object: Box::new(|_ns: &str| ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_ACCOUNT.into()),
                ..Default::default()
            },
            ..Default::default()
        }),
        // Only existence matters: what users add to it (secrets, pull secrets) is theirs.
        up_to_date: |_, _| true,
    };
    per_namespace::run(clients, desired).await;
}
