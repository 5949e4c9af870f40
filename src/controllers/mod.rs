//! The controller manager: loops that drive the cluster toward what its objects ask for.
//!
//! Like upstream's kube-controller-manager these are plain API clients (kube-runtime `Controller`s over
//! HTTPS); none touches storage. Each runs as its own identity, a client certificate naming the
//! controller's service account in kube-system (as upstream's `--use-service-account-credentials`), so
//! the default `system:controller:*` roles decide what each may do.

pub mod common;
pub mod deployment;
pub mod gc;
pub mod per_namespace;
pub mod replicaset;
pub mod root_ca;
pub mod service_accounts;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::pki::Pki;

/// The manager's own identity, which upstream's shared informers list and watch with.
const MANAGER_USER: &str = "system:kube-controller-manager";

/// A client authenticated by a fresh certificate for `user` in `groups`.
async fn client_as(
    pki: &Pki,
    server_url: &str,
    user: &str,
    groups: &[&str],
) -> anyhow::Result<kube::Client> {
    let (cert, key) = pki.issue_client_cert(user, groups)?;
    let kubeconfig = Kubeconfig::from_yaml(&pki.kubeconfig(server_url, &cert, &key))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// The two identities a controller works with: the manager's for watching, its service account's
/// (`system:serviceaccount:kube-system:<account>`) for writing.
pub struct Clients {
    pub reader: kube::Client,
    pub writer: kube::Client,
}

impl Clients {
    async fn new(pki: &Pki, server_url: &str, account: &str) -> anyhow::Result<Self> {
        Ok(Clients {
            reader: client_as(pki, server_url, MANAGER_USER, &[]).await?,
            writer: client_as(
                pki,
                server_url,
                &format!("system:serviceaccount:kube-system:{account}"),
                &[
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                ],
            )
            .await?,
        })
    }
}

/// Starts every controller against the apiserver at `server_url`; they run until the process ends.
pub async fn start(pki: &Pki, server_url: &str) -> anyhow::Result<()> {
    let clients = Clients::new(pki, server_url, "service-account-controller").await?;
    tokio::spawn(service_accounts::run(clients));
    let clients = Clients::new(pki, server_url, "root-ca-cert-publisher").await?;
    tokio::spawn(root_ca::run(clients, pki.ca_cert_pem.clone()));
    let clients = Clients::new(pki, server_url, "replicaset-controller").await?;
    tokio::spawn(replicaset::run(clients));
    let clients = Clients::new(pki, server_url, "deployment-controller").await?;
    tokio::spawn(deployment::run(clients));
    let clients = Clients::new(pki, server_url, "generic-garbage-collector").await?;
    tokio::spawn(gc::run(clients));
    Ok(())
}
