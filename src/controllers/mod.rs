//! The controller manager: loops that drive the cluster toward what its objects ask for.
//!
//! Like upstream's kube-controller-manager these are plain API clients (kube-runtime `Controller`s over
//! HTTPS); none touches storage. Each runs as its own identity, a client certificate naming the
//! controller's service account in kube-system (as upstream's `--use-service-account-credentials`), so
//! the default `system:controller:*` roles decide what each may do.

pub mod common;
pub mod cron_schedule;
pub mod cronjob;
pub mod deployment;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod per_namespace;
pub mod replicaset;
pub mod root_ca;
pub mod service_accounts;
pub mod ttl_after_finished;

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

/// The controller manager's settings (upstream's kube-controller-manager flags).
#[derive(Clone, Debug)]
pub struct Options {
    /// Who this controller manager is in leader election (see `leader_election::identity`).
    pub identity: String,
    /// How long a node may go without a heartbeat before it is marked Unknown
    /// (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            identity: format!("rkube_{}", uuid::Uuid::new_v4()),
            node_monitor_grace_period: node_lifecycle::DEFAULT_GRACE_PERIOD,
        }
    }
}

/// Starts the controller manager against the apiserver at `server_url`: it campaigns for the
/// `kube-system/kube-controller-manager` Lease and runs every controller while it leads (so several
/// servers on one etcd run one copy of each). Returns at once; the manager runs until the process ends.
pub async fn start(pki: &Pki, server_url: &str, options: Options) -> anyhow::Result<()> {
    let candidate = crate::leader_election::Candidate::new(
        client_as(pki, server_url, MANAGER_USER, &[]).await?,
        "kube-controller-manager",
        &options.identity,
    );
    let (pki, url) = (pki.clone(), server_url.to_string());
    tokio::spawn(candidate.lead(move || {
        let (pki, url, options) = (pki.clone(), url.clone(), options.clone());
        async move {
            if let Err(e) = run_all(&pki, &url, options).await {
                tracing::error!("controller manager: {e:#}");
            }
        }
    }));
    Ok(())
}

/// Every controller, each under its own identity, until one ends (they run forever) or this future is
/// dropped (leadership lost), which stops them all.
async fn run_all(pki: &Pki, server_url: &str, options: Options) -> anyhow::Result<()> {
    let mut controllers = tokio::task::JoinSet::new();
    let clients = Clients::new(pki, server_url, "service-account-controller").await?;
    controllers.spawn(service_accounts::run(clients));
    let clients = Clients::new(pki, server_url, "root-ca-cert-publisher").await?;
    controllers.spawn(root_ca::run(clients, pki.ca_cert_pem.clone()));
    let clients = Clients::new(pki, server_url, "namespace-controller").await?;
    controllers.spawn(namespace::run(clients));
    let clients = Clients::new(pki, server_url, "node-controller").await?;
    controllers.spawn(node_lifecycle::run(
        clients,
        options.node_monitor_grace_period,
    ));
    let clients = Clients::new(pki, server_url, "replicaset-controller").await?;
    controllers.spawn(replicaset::run(clients));
    let clients = Clients::new(pki, server_url, "deployment-controller").await?;
    controllers.spawn(deployment::run(clients));
    let clients = Clients::new(pki, server_url, "job-controller").await?;
    controllers.spawn(job::run(clients));
    let clients = Clients::new(pki, server_url, "cronjob-controller").await?;
    controllers.spawn(cronjob::run(clients));
    let clients = Clients::new(pki, server_url, "ttl-after-finished-controller").await?;
    controllers.spawn(ttl_after_finished::run(clients));
    let clients = Clients::new(pki, server_url, "generic-garbage-collector").await?;
    controllers.spawn(gc::run(clients));
    while controllers.join_next().await.is_some() {}
    Ok(())
}
