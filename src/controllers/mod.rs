//! The controller manager: loops that drive the cluster toward what its objects ask for.
//!
//! Like upstream's kube-controller-manager these are plain API clients (kube-runtime `Controller`s over
//! HTTPS); none touches storage. Each runs as its own identity, a client certificate naming the
//! controller's service account in kube-system (as upstream's `--use-service-account-credentials`), so
//! the default `system:controller:*` roles decide what each may do. They watch through
//! [`informers`]: one watch and one cache per kind shared by all of them, as the manager's identity
//! (upstream's SharedInformerFactory). Start at `run_all`.

pub mod certificate_signer;
pub mod common;
pub mod credentials;
pub mod cron_schedule;
pub mod cronjob;
pub mod csr_approving;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod gc;
pub mod history;
pub mod horizontal;
pub mod informers;
pub mod job;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod per_namespace;
pub mod persistent_volume;
pub mod replicaset;
pub mod resource_quota;
pub mod root_ca;
pub mod service_accounts;
pub mod statefulset;
pub mod token_cleaner;
pub mod ttl_after_finished;

pub use credentials::{Clients, Credentials};

/// The controller manager's settings (upstream's kube-controller-manager flags).
#[derive(Clone, Debug)]
pub struct Options {
    /// Who this controller manager is in leader election (see `leader_election::identity`).
    pub identity: String,
    /// How long a node may go without a heartbeat before it is marked Unknown
    /// (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: std::time::Duration,
    /// The node subnets node IPAM hands out (`--allocate-node-cidrs`, `--cluster-cidr`,
    /// `--node-cidr-mask-size`); `None`: no node IPAM.
    pub node_cidrs: Option<node_ipam::CidrSet>,
    /// The longest a certificate the CSR signer issues is valid (`--cluster-signing-duration`).
    pub cluster_signing_duration: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            identity: format!("rkube_{}", uuid::Uuid::new_v4()),
            node_monitor_grace_period: node_lifecycle::DEFAULT_GRACE_PERIOD,
            node_cidrs: node_ipam::CidrSet::new(
                node_ipam::DEFAULT_CLUSTER_CIDR,
                node_ipam::DEFAULT_NODE_MASK,
            )
            .ok(),
            cluster_signing_duration: certificate_signer::DEFAULT_DURATION,
        }
    }
}

/// Starts the controller manager with `credentials`: it campaigns for the
/// `kube-system/kube-controller-manager` Lease and runs every controller while it leads (so several
/// servers on one etcd run one copy of each). Returns at once; the manager runs until the process ends.
pub async fn start(credentials: Credentials, options: Options) -> anyhow::Result<()> {
    let candidate = crate::leader_election::Candidate::new(
        credentials.manager().await?,
        "kube-controller-manager",
        &options.identity,
    );
    tokio::spawn(candidate.lead(move || {
        let (credentials, options) = (credentials.clone(), options.clone());
        async move {
            if let Err(e) = run_all(&credentials, options).await {
                tracing::error!("controller manager: {e:#}");
            }
        }
    }));
    Ok(())
}

/// Every controller, each under its own identity, until one ends (they run forever) or this future is
/// dropped (leadership lost), which stops them all.
async fn run_all(credentials: &Credentials, options: Options) -> anyhow::Result<()> {
    let c = credentials;
    // One watch per kind for all controllers, as the manager's own identity.
    let informers = informers::Informers::new(c.manager().await?);
    let clients = |account: &'static str| c.clients(account, &informers);
    let mut controllers = tokio::task::JoinSet::new();
    controllers.spawn(service_accounts::run(
        clients("service-account-controller").await?,
    ));
    controllers.spawn(root_ca::run(
        clients("root-ca-cert-publisher").await?,
        c.ca_pem(),
    ));
    controllers.spawn(namespace::run(clients("namespace-controller").await?));
    controllers.spawn(node_lifecycle::run(
        clients("node-controller").await?,
        options.node_monitor_grace_period,
    ));
    if let Some(set) = options.node_cidrs {
        // Upstream's nodeipam controller runs as node-controller too.
        controllers.spawn(node_ipam::run(clients("node-controller").await?, set));
    }
    controllers.spawn(replicaset::run(clients("replicaset-controller").await?));
    controllers.spawn(replicaset::run_for::<
        k8s_openapi::api::core::v1::ReplicationController,
    >(clients("replication-controller").await?));
    controllers.spawn(deployment::run(clients("deployment-controller").await?));
    controllers.spawn(daemonset::run(clients("daemon-set-controller").await?));
    controllers.spawn(statefulset::run(clients("statefulset-controller").await?));
    controllers.spawn(job::run(clients("job-controller").await?));
    controllers.spawn(cronjob::run(clients("cronjob-controller").await?));
    controllers.spawn(ttl_after_finished::run(
        clients("ttl-after-finished-controller").await?,
    ));
    controllers.spawn(endpointslice::run(
        clients("endpointslice-controller").await?,
    ));
    controllers.spawn(endpoints::run(clients("endpoint-controller").await?));
    controllers.spawn(disruption::run(clients("disruption-controller").await?));
    controllers.spawn(horizontal::run(clients("horizontal-pod-autoscaler").await?));
    controllers.spawn(gc::run(clients("generic-garbage-collector").await?));
    controllers.spawn(resource_quota::run(
        clients("resourcequota-controller").await?,
    ));
    // Upstream's csrapproving runs as certificate-controller too.
    controllers.spawn(csr_approving::run(clients("certificate-controller").await?));
    controllers.spawn(token_cleaner::run(clients("token-cleaner").await?));
    controllers.spawn(persistent_volume::run(
        clients("persistent-volume-binder").await?,
    ));
    if let Some(pki) = c.signing_pki() {
        controllers.spawn(certificate_signer::run(
            clients("certificate-controller").await?,
            pki,
            options.cluster_signing_duration,
        ));
    }
    while controllers.join_next().await.is_some() {}
    Ok(())
}
