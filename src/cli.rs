//! The `rkube` command line: one binary, upstream's component boundaries as subcommands. `src/main.rs`
//! only calls [`main`].
//!
//! Why it lives in the library rather than in the binary crate: in a release build every generic the
//! command line instantiates (kube's `Api<K>`, clap's derives, tokio's runtime entry points) would be
//! compiled a second time in the binary crate, which took about as long as the library itself; here
//! they share the library's instantiations.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::apiserver::{self, ApiServerConfig};
use crate::pki::Pki;
use crate::storage::{embedded::EmbeddedStore, etcd::EtcdStore, Store};
use crate::user_agent::agent;
use futures::FutureExt;

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
    about = "A Kubernetes cluster in one Rust binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum StorageKind {
    Embedded,
    Etcd,
}

#[derive(clap::Args, Clone)]
struct ServerArgs {
    /// Where the cluster keeps its state (PKI, embedded store). Default: ~/.rkube, or /var/lib/rkube as root.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTPS port of the apiserver.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Where to write the admin kubeconfig. Default: ~/.kube/config unless another cluster's config is
    /// there, else DATA_DIR/admin.kubeconfig.
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// Storage backend.
    #[arg(long, value_enum, default_value = "embedded")]
    storage: StorageKind,
    /// etcd endpoints (with --storage etcd), comma-separated (upstream's --etcd-servers).
    #[arg(
        long,
        alias = "etcd-servers",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    etcd_endpoints: Vec<String>,
    /// The embedded store's page cache, in MiB (with --storage embedded).
    #[arg(long, default_value_t = crate::storage::embedded::DEFAULT_CACHE_BYTES >> 20)]
    embedded_cache_mib: usize,
    /// Each resource's watch cache event window, in stored bytes (a quantity: 64Mi): a watch resuming
    /// from before the window answers 410 Expired and its client re-lists.
    #[arg(long, default_value = "64Mi", value_parser = parse_bytes)]
    watch_cache_bytes: usize,
    /// The CA bundle that verifies etcd's serving certificate (https:// endpoints).
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// The client certificate presented to etcd (with --etcd-keyfile).
    #[arg(long)]
    etcd_certfile: Option<PathBuf>,
    /// The key of --etcd-certfile.
    #[arg(long)]
    etcd_keyfile: Option<PathBuf>,
    /// Upstream's EncryptionConfiguration file (apiserver.config.k8s.io/v1): which resources are
    /// encrypted at rest (aescbc, aesgcm, secretbox; identity), on either storage backend.
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Upstream's audit policy file (audit.k8s.io/v1 Policy): which requests are audited, at which
    /// level. Audit events are written only with --audit-log-path too.
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// Where audit events are written, one JSON line each (`-`: standard output).
    #[arg(long)]
    audit_log_path: Option<String>,
    /// The address the `kubernetes` Service's endpoints name, where pods reach the apiserver
    /// (upstream's --advertise-address). Default: --bind-address if it is a routable address, else
    /// this host's primary address.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// The range Service cluster IPs come from (upstream's --service-cluster-ip-range); its first
    /// address is the `kubernetes` Service's.
    #[arg(long, default_value = "10.96.0.0/16", value_parser = apiserver::registry::service_alloc::Cidr::parse)]
    service_cluster_ip_range: apiserver::registry::service_alloc::Cidr,
    /// The range Service node ports come from (upstream's --service-node-port-range).
    #[arg(long, default_value = "30000-32767", value_parser = apiserver::registry::service_alloc::PortRange::parse)]
    service_node_port_range: apiserver::registry::service_alloc::PortRange,
    /// The `tolerationSeconds` of the `node.kubernetes.io/not-ready:NoExecute` toleration the
    /// DefaultTolerationSeconds admission plugin adds to pods that have none (upstream's flag).
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// The same for `node.kubernetes.io/unreachable:NoExecute`.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// Admission plugins not to run, comma-separated upstream names (LimitRanger, ServiceAccount,
    /// NodeRestriction, PodSecurity, Priority, DefaultTolerationSeconds, CertificateApproval,
    /// ResourceQuota).
    #[arg(long, value_delimiter = ',', value_parser = admission_plugin_name)]
    disable_admission_plugins: Vec<String>,
    /// How long a node may go without a heartbeat (its Lease, its Ready condition) before the node
    /// lifecycle controller marks it Unknown and taints it (upstream's kube-controller-manager flag).
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// The longest a certificate issued for a CertificateSigningRequest is valid (upstream's
    /// kube-controller-manager flag; a request's `expirationSeconds` may ask for less, not under 10m).
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    cluster_signing_duration: std::time::Duration,
    #[command(flatten)]
    node_ipam: NodeIpamArgs,
    /// Run the controller manager in this process (`--controller-manager=false` to run it apart, as
    /// `rkube controller-manager --kubeconfig F`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    controller_manager: bool,
    /// Run the scheduler in this process (`--scheduler=false` to run it apart, as
    /// `rkube scheduler --kubeconfig F`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    scheduler: bool,
    /// Extra names or IPs for the serving certificate.
    #[arg(long, value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Read-only requests in flight at once (0: no limit), as upstream; with Priority and Fairness,
    /// the two limits together are the seats its priority levels share.
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Mutating requests in flight at once (0: no limit), as upstream.
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// API Priority and Fairness: requests wait for a seat of their priority level (upstream's
    /// suggested FlowSchemas) before a 429; `false`: the max-in-flight filter, 429 at once.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    enable_priority_and_fairness: bool,
    /// How long a request (other than watches, logs, exec and the like) may take before it is answered
    /// 504, as upstream's --request-timeout (a Go duration: 60s, 1m, 500ms).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    request_timeout: std::time::Duration,
    /// Audiences a service account token must name (one of) to authenticate to the apiserver,
    /// comma-separated; also the audiences of a TokenRequest that names none.
    #[arg(long, value_delimiter = ',', default_value = apiserver::authn::tokens::ISSUER)]
    api_audiences: Vec<String>,
    /// Longest service account token a TokenRequest gets, e.g. `24h` or `3600s`; longer requests are
    /// shortened to it. Default: no cap beyond upstream's 2^32 s.
    #[arg(long, value_parser = parse_duration)]
    service_account_max_token_expiration: Option<std::time::Duration>,
    /// The UDP/TCP port of the cluster DNS this server runs when it runs a node (on 0.0.0.0, behind
    /// the kube-system/kube-dns Service at 10.96.0.10); 0: no cluster DNS.
    #[arg(long, default_value_t = 53)]
    cluster_dns_port: u16,
    /// Simulated nodes to run in this process (hollow kubelets named hollow-node-<i>); 0: none.
    #[arg(long, default_value_t = 0)]
    hollow_nodes: usize,
    #[command(flatten)]
    kubelet: KubeletArgs,
    /// How the node's kube-proxy programs Services: iptables, nftables, ipvs, or none (no proxy).
    #[arg(long, default_value = "iptables", value_parser = parse_proxy_mode)]
    proxy_mode: ProxyMode,
}

/// `--proxy-mode` of `rkube server`: a mode, or `none`.
#[derive(Debug, Clone, Copy)]
struct ProxyMode(Option<crate::proxy::Mode>);

fn parse_proxy_mode(s: &str) -> Result<ProxyMode, String> {
    use clap::ValueEnum;
    if s == "none" {
        return Ok(ProxyMode(None));
    }
    crate::proxy::Mode::from_str(s, true)
        .map(|m| ProxyMode(Some(m)))
        .map_err(|_| format!("unknown proxy mode {s:?}: iptables, nftables, ipvs or none"))
}

/// Node IPAM's settings (upstream's kube-controller-manager flags of the same names).
#[derive(clap::Args, Debug, Clone)]
struct NodeIpamArgs {
    /// Give every Node without a podCIDR a subnet of --cluster-cidr (upstream's default is false;
    /// rkube's nodes, real and hollow, rely on it, as kubeadm's clusters do).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    allocate_node_cidrs: bool,
    /// The pods' address range, cut into one subnet per node.
    #[arg(long, default_value = crate::controllers::node_ipam::DEFAULT_CLUSTER_CIDR)]
    cluster_cidr: String,
    /// The size of each node's subnet (prefix length).
    #[arg(long, default_value_t = crate::controllers::node_ipam::DEFAULT_NODE_MASK)]
    node_cidr_mask_size: u8,
}

impl NodeIpamArgs {
    fn cidr_set(&self) -> anyhow::Result<Option<crate::controllers::node_ipam::CidrSet>> {
        if !self.allocate_node_cidrs {
            return Ok(None);
        }
        crate::controllers::node_ipam::CidrSet::new(&self.cluster_cidr, self.node_cidr_mask_size)
            .map(Some)
            .map_err(anyhow::Error::msg)
    }
}

/// kube-proxy's settings (`rkube proxy`).
#[derive(clap::Args, Debug, Clone)]
struct ProxyArgs {
    #[arg(long, value_enum, default_value = "iptables")]
    proxy_mode: crate::proxy::Mode,
    /// The node's name, for Local traffic policies (default: this host's name).
    #[arg(long)]
    hostname_override: Option<String>,
    /// The cluster's pod range: traffic to cluster IPs from outside it is masqueraded.
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Masquerade all traffic to cluster IPs.
    #[arg(long)]
    masquerade_all: bool,
    /// The IPVS scheduler.
    #[arg(long, default_value = "rr")]
    ipvs_scheduler: String,
    /// Program this named network namespace (`ip netns`) instead of the proxy's own, while
    /// talking to the apiserver from here (tests give each proxy a node of its own this way).
    #[arg(long)]
    netns: Option<String>,
    /// Remove every mode's rules and exit (upstream's --cleanup).
    #[arg(long)]
    cleanup: bool,
}

fn host_name() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().to_lowercase())
        .unwrap_or_else(|_| "rkube-node".into())
}

/// The node side: a kubelet for this machine on a CRI runtime.
#[derive(clap::Args, Clone)]
struct KubeletArgs {
    /// The CRI runtime's socket (`unix:///run/containerd/containerd.sock`): this machine then runs
    /// pods as a node. Not given: `rkube server` uses containerd's default socket when it answers.
    /// Empty (`--container-runtime-endpoint=`): no kubelet.
    #[arg(long)]
    container_runtime_endpoint: Option<String>,
    /// The node's name (default: this host's name).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's pod CIDR, registered as its podCIDR (upstream's kubelet --pod-cidr). Not given: the
    /// node takes the one node IPAM assigns from --cluster-cidr.
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The kubelet's HTTPS port (logs), served by the kubelet `rkube server` runs.
    #[arg(long, default_value_t = crate::kubelet::server::KUBELET_PORT)]
    kubelet_port: u16,
    /// Run this server's own containerd under the data dir even when one answers on the default
    /// socket (without --container-runtime-endpoint).
    #[arg(long)]
    own_containerd: bool,
    /// The kubelet's directory for volumes and pod logs (default: `<data-dir>/kubelet` for
    /// `rkube server`, /var/lib/rkube-kubelet for `rkube kubelet`); for `rkube agent`, the agent's
    /// directory (default /var/lib/rkube-agent: its credentials, its containerd, `kubelet/`).
    #[arg(long)]
    root_dir: Option<PathBuf>,
    /// The cluster DNS addresses pods with dnsPolicy ClusterFirst get as nameservers, comma-separated
    /// (default for `rkube server` running its DNS: 10.96.0.10; none: such pods get the host's
    /// resolvers, as upstream's kubelet without --cluster-dns).
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<IpAddr>,
    /// The cluster domain: pods' search path, and the names the cluster DNS answers.
    #[arg(long, default_value = crate::dns::DEFAULT_DOMAIN)]
    cluster_domain: String,
    /// A directory of pod manifests the node runs as static pods (mirrored in the API), as
    /// upstream's kubelet `--pod-manifest-path` (read every 20 s).
    #[arg(long)]
    pod_manifest_path: Option<PathBuf>,
    /// How often the kubelet syncs each pod when nothing happened to it (upstream's
    /// `--sync-frequency`, a Go duration such as 1m or 10s): ConfigMap and Secret updates and
    /// renewed service account tokens reach the pods' volumes at this pace.
    #[arg(long, default_value = "1m", value_parser = parse_sync_frequency)]
    sync_frequency: std::time::Duration,
    /// The eviction manager's hard thresholds (upstream's `--eviction-hard`): when one is met the
    /// node reports MemoryPressure, DiskPressure or PIDPressure (signals `memory.available`,
    /// `nodefs.available`, `nodefs.inodesFree`, `imagefs.available`, `pid.available`) and evicts
    /// pods until it no longer is; "" turns eviction off.
    #[arg(long, default_value = crate::kubelet::eviction::DEFAULT_HARD,
          value_parser = parse_eviction_hard)]
    eviction_hard: EvictionThresholds,
    /// The eviction manager's soft thresholds (upstream's `--eviction-soft`, the same signals): a
    /// pressure condition as soon as one is met, pods evicted once it has been met for its
    /// `--eviction-soft-grace-period`.
    #[arg(long, default_value = "", value_parser = parse_eviction_hard)]
    eviction_soft: EvictionThresholds,
    /// How long each soft threshold must be met before pods are evicted (upstream's
    /// `--eviction-soft-grace-period`: `signal=duration`, comma-separated, e.g. `memory.available=1m30s`).
    #[arg(long, default_value = "", value_parser = parse_grace_periods)]
    eviction_soft_grace_period: GracePeriods,
    /// The most grace, in seconds, a pod evicted for a soft threshold gets: its own
    /// terminationGracePeriodSeconds, capped (upstream's `--eviction-max-pod-grace-period`).
    #[arg(long, default_value_t = 0)]
    eviction_max_pod_grace_period: i64,
    /// How long a pressure condition stays after its threshold is no longer met (upstream's
    /// `--eviction-pressure-transition-period`, a Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    eviction_pressure_transition_period: std::time::Duration,
    /// The image filesystem usage, in percent, at which unused images are removed (upstream's
    /// `--image-gc-high-threshold`); 100 turns image garbage collection off.
    #[arg(long, default_value_t = 85)]
    image_gc_high_threshold: u8,
    /// The usage, in percent, image garbage collection frees down to (upstream's
    /// `--image-gc-low-threshold`).
    #[arg(long, default_value_t = 80)]
    image_gc_low_threshold: u8,
    /// How long an image is kept, unused, after the kubelet first saw it before it may be removed
    /// for space (upstream's `--minimum-image-ttl-duration`).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    minimum_image_ttl_duration: std::time::Duration,
    /// Images unused for longer than this are removed whatever the disk usage (upstream's
    /// kubelet configuration `imageMaximumGCAge`); 0 never.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    image_maximum_gc_age: std::time::Duration,
    /// How often image garbage collection runs (upstream's is fixed at 5m).
    #[arg(long, default_value = "5m", value_parser = parse_sync_frequency)]
    image_gc_period: std::time::Duration,
}

/// `--eviction-hard`'s or `--eviction-soft`'s thresholds (one flag value, not a list of them).
#[derive(Clone, Debug)]
struct EvictionThresholds(Vec<crate::kubelet::eviction::Threshold>);

fn parse_eviction_hard(s: &str) -> Result<EvictionThresholds, String> {
    crate::kubelet::eviction::parse_thresholds(s).map(EvictionThresholds)
}

/// `--eviction-soft-grace-period`'s `signal=duration` pairs.
#[derive(Clone, Debug)]
struct GracePeriods(Vec<(crate::kubelet::eviction::Signal, std::time::Duration)>);

fn parse_grace_periods(s: &str) -> Result<GracePeriods, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(format!(
                "invalid eviction grace period syntax {part:?}, expected SIGNAL=DURATION"
            ));
        };
        let signal = crate::kubelet::eviction::Signal::parse(name.trim())
            .ok_or_else(|| format!("unsupported eviction signal {}", name.trim()))?;
        out.push((signal, parse_duration(value.trim())?));
    }
    Ok(GracePeriods(out))
}

fn parse_sync_frequency(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s) {
        Ok(d) if d >= std::time::Duration::from_secs(1) => Ok(d),
        _ => Err("must be at least 1s".into()),
    }
}

impl KubeletArgs {
    fn config(
        &self,
        default_root: PathBuf,
        node_ip: IpAddr,
    ) -> anyhow::Result<crate::kubelet::agent::Config> {
        let node_name = self.node_name.clone().unwrap_or_else(host_name);
        let mut eviction_thresholds = self.eviction_hard.0.clone();
        eviction_thresholds.extend(
            crate::kubelet::eviction::soft_thresholds(
                self.eviction_soft.0.clone(),
                &self.eviction_soft_grace_period.0,
            )
            .map_err(anyhow::Error::msg)?,
        );
        let image_gc = crate::kubelet::image_gc::Policy {
            high_threshold_percent: self.image_gc_high_threshold,
            low_threshold_percent: self.image_gc_low_threshold,
            min_age: self.minimum_image_ttl_duration,
            max_age: Some(self.image_maximum_gc_age).filter(|d| !d.is_zero()),
            period: self.image_gc_period,
        };
        image_gc.validate().map_err(anyhow::Error::msg)?;
        Ok(crate::kubelet::agent::Config {
            node_name,
            runtime_endpoint: self.container_runtime_endpoint.clone().unwrap_or_default(),
            pod_cidr: self.pod_cidr.clone(),
            root: self.root_dir.clone().unwrap_or(default_root),
            node_ip: node_ip.to_string(),
            serving: None,
            cluster_dns: crate::kubelet::runtime_config::ClusterDns {
                servers: self.cluster_dns.iter().map(|ip| ip.to_string()).collect(),
                domain: self.cluster_domain.clone(),
                ..Default::default()
            },
            pod_manifest_path: self.pod_manifest_path.clone(),
            sync_frequency: self.sync_frequency,
            eviction_thresholds,
            eviction_max_pod_grace_period: self.eviction_max_pod_grace_period,
            eviction_pressure_transition_period: self.eviction_pressure_transition_period,
            image_gc,
        })
    }
}

/// The address this host reaches others from, as upstream picks its advertise address: `bind` when it
/// names a routable one, else the source address of the default route (found by connecting a UDP
/// socket, which sends nothing), else loopback.
fn primary_address(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() && !bind.is_loopback() {
        return bind;
    }
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.255.255.255:9").map(|_| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}

/// The runtime README's one command uses: containerd's default socket when it answers CRI, else a
/// containerd this server runs itself under the data dir (when containerd is installed), else none
/// (the server then says why and runs no node).
async fn default_runtime(data_dir: &Path, own: bool) -> Option<String> {
    const DEFAULT: &str = "unix:///run/containerd/containerd.sock";
    if !own
        && Path::new("/run/containerd/containerd.sock").exists()
        && crate::kubelet::cri::Cri::connect(DEFAULT).await.is_ok()
    {
        return Some(DEFAULT.to_string());
    }
    match crate::kubelet::containerd::start(data_dir).await {
        Ok(endpoint) => {
            println!(
                "rkube started containerd on {endpoint} (its files are under {}/containerd)",
                data_dir.display()
            );
            Some(endpoint)
        }
        Err(e) => {
            println!("rkube runs no kubelet: no containerd answers on {DEFAULT} and none could be started here: {e:#} (pods stay Pending; see README)");
            None
        }
    }
}

/// A Go-style duration as upstream's flags take them: a number with a unit (`ms`, `s`, `m`, `h`),
/// units concatenated (`1m30s`).
/// One of the admission plugins `--disable-admission-plugins` may name (upstream's message otherwise).
fn admission_plugin_name(text: &str) -> Result<String, String> {
    if apiserver::admission::PLUGIN_NAMES.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a valid admission plugin name (one of {})",
            apiserver::admission::PLUGIN_NAMES.join(", ")
        ))
    }
}

/// A byte count written as a quantity (`64Mi`, `1000000`).
fn parse_bytes(text: &str) -> Result<usize, String> {
    let q = apiserver::wire::quantity::Quantity::parse(text)?;
    usize::try_from(q.value()).map_err(|_| format!("{text:?} is not a number of bytes"))
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {text:?}"))?;
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|e| format!("{text:?}: {e}"))
}

#[derive(Subcommand)]
enum TokenAction {
    /// Creates a bootstrap token and prints it.
    Create {
        /// How long the token is valid (0: forever), e.g. `24h`, `30m`.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: std::time::Duration,
        /// A human-readable note stored with the token.
        #[arg(long, default_value = "")]
        description: String,
        /// Print the whole `rkube agent` command a machine joins with, not just the token.
        #[arg(long)]
        print_join_command: bool,
    },
    /// Lists the bootstrap tokens.
    List,
    /// Deletes bootstrap tokens, by token or token id.
    Delete {
        #[arg(required = true)]
        tokens: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Runs the control plane: the apiserver on the chosen store, and the controller manager.
    Server(Box<ServerArgs>),
    /// Prints a kubeconfig for a data dir's cluster: the admin's, or with --user a new client certificate
    /// from the cluster CA for that user (and --group groups), who may do what RBAC grants them.
    Kubeconfig {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "https://127.0.0.1:6443")]
        server: String,
        /// User name (the certificate's CN).
        #[arg(long)]
        user: Option<String>,
        /// A group of the user (an O of the certificate); repeatable.
        #[arg(long = "group", requires = "user")]
        groups: Vec<String>,
    },
    /// Runs the scheduler against a cluster (with the kubeconfig's identity), leading through the
    /// kube-system/kube-scheduler Lease as upstream's (one of several copies schedules at a time).
    Scheduler {
        #[arg(long)]
        kubeconfig: PathBuf,
    },
    /// Runs the controller manager against a cluster: it watches with the kubeconfig's identity and each
    /// controller writes as its own kube-system service account (tokens through TokenRequest), leading
    /// through the kube-system/kube-controller-manager Lease.
    ControllerManager {
        #[arg(long)]
        kubeconfig: PathBuf,
        /// The CA certificate published to every namespace as kube-root-ca.crt. Default: the
        /// kubeconfig's certificate authority.
        #[arg(long)]
        root_ca_file: Option<PathBuf>,
        /// How long a node may go without a heartbeat before it is marked Unknown and tainted.
        #[arg(long, default_value = "40s", value_parser = parse_duration)]
        node_monitor_grace_period: std::time::Duration,
        #[command(flatten)]
        node_ipam: NodeIpamArgs,
    },
    /// Runs simulated nodes (hollow kubelets) against a cluster.
    HollowNodes {
        #[arg(long)]
        kubeconfig: PathBuf,
        #[arg(long, default_value_t = 3)]
        count: usize,
        /// Node names are <prefix>-<i>.
        #[arg(long, default_value = "hollow-node")]
        prefix: String,
        /// CPU each node offers.
        #[arg(long, default_value = "4")]
        cpu: String,
        /// Memory each node offers.
        #[arg(long, default_value = "16Gi")]
        memory: String,
        /// Pods each node takes.
        #[arg(long, default_value = "110")]
        max_pods: String,
        /// What each container uses (`kubectl top`, the HorizontalPodAutoscaler) unless its pod's
        /// `hollow.rkube.io/usage` annotation says otherwise: `cpu=<quantity>,memory=<quantity>`.
        #[arg(long, default_value = "cpu=10m,memory=32Mi")]
        container_usage: crate::kubelet::hollow::usage::Demand,
    },
    /// Runs a kubelet for this machine against a cluster (its kubeconfig should name a
    /// `system:node:<name>` identity in `system:nodes`).
    Kubelet {
        #[arg(long)]
        kubeconfig: PathBuf,
        #[command(flatten)]
        kubelet: KubeletArgs,
    },
    /// Joins this machine to a cluster as a node and runs its kubelet (kubeadm's TLS bootstrap): with
    /// a bootstrap token the first time (`rkube token create --print-join-command` on the server
    /// prints the whole command), then with the client certificate it got, kept under --root-dir.
    Agent {
        /// The apiserver, `https://host:port`.
        #[arg(long)]
        server: Option<String>,
        /// A bootstrap token (`<6>.<16>` of [a-z0-9]), used once to get the node's certificate.
        #[arg(long)]
        token: Option<String>,
        /// The cluster CA's public key hash, `sha256:<hex>` (kubeadm's
        /// --discovery-token-ca-cert-hash): the server is trusted only if it presents that CA.
        #[arg(long)]
        ca_cert_hash: Option<String>,
        /// The cluster CA's certificate file, instead of --ca-cert-hash.
        #[arg(long, conflicts_with = "ca_cert_hash")]
        certificate_authority: Option<PathBuf>,
        #[command(flatten)]
        kubelet: KubeletArgs,
        /// How the node's kube-proxy programs Services: iptables, nftables, ipvs, or none (no proxy).
        #[arg(long, default_value = "iptables", value_parser = parse_proxy_mode)]
        proxy_mode: ProxyMode,
        /// The cluster's pod range (the server's --cluster-cidr): kube-proxy masquerades traffic to
        /// cluster IPs from outside it.
        #[arg(long, default_value = crate::controllers::node_ipam::DEFAULT_CLUSTER_CIDR)]
        cluster_cidr: String,
    },
    /// Manages bootstrap tokens, with which machines join as nodes (`rkube agent`), as `kubeadm token`.
    Token {
        /// The admin's kubeconfig (default: $KUBECONFIG or ~/.kube/config, as kubectl).
        #[arg(long, global = true)]
        kubeconfig: Option<PathBuf>,
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Runs kube-proxy for this machine against a cluster (its kubeconfig should name the
    /// `system:kube-proxy` identity).
    Proxy {
        #[arg(long, required_unless_present = "cleanup")]
        kubeconfig: Option<PathBuf>,
        #[command(flatten)]
        proxy: ProxyArgs,
    },
    /// Benchmarks kube-proxy's rule syncs in a network namespace of its own: full sync of 1,000 and
    /// 10,000 Services of 3 endpoints, and one endpoint change, per mode (needs root).
    BenchProxy {
        /// Service counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        services: Vec<usize>,
        /// Modes to measure.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "iptables,nftables"
        )]
        modes: Vec<crate::proxy::Mode>,
    },
    /// Runs the cluster DNS against a cluster (upstream's CoreDNS with kubeadm's Corefile): Service
    /// and pod names under the cluster domain from the API (the kubeconfig's identity needs
    /// list/watch of services, endpointslices and namespaces: ClusterRole system:coredns), other
    /// names forwarded to the host's resolvers.
    Dns {
        #[arg(long)]
        kubeconfig: PathBuf,
        /// UDP and TCP address to serve on.
        #[arg(long, default_value = "0.0.0.0:53")]
        listen: SocketAddr,
        #[arg(long, default_value = crate::dns::DEFAULT_DOMAIN)]
        cluster_domain: String,
        /// TTL of the cluster's records, seconds (CoreDNS's kubernetes plugin default).
        #[arg(long, default_value_t = crate::dns::records::DEFAULT_TTL)]
        ttl: u32,
        /// Resolvers for other names (ADDR:PORT, comma-separated; CoreDNS's `forward . ADDR`).
        /// Default: the nameservers of /etc/resolv.conf.
        #[arg(long, value_delimiter = ',')]
        upstream: Vec<SocketAddr>,
    },
    /// Benchmarks the cluster DNS: answers/s for Service names from one UDP client, against the
    /// real server on loopback with an index of N Services.
    BenchDns {
        #[arg(long, default_value_t = 10000)]
        services: usize,
        /// Queries per run (one run one at a time, one with --window in flight).
        #[arg(long, default_value_t = 100000)]
        queries: usize,
        #[arg(long, default_value_t = 64)]
        window: usize,
    },
    /// Benchmarks pod start-up on a containerd node: creates busybox pods (image present) against a
    /// running cluster and reports create→Running p50/p99, and the RSS of `--kubelet-pid` if given.
    BenchPods {
        #[arg(long)]
        kubeconfig: PathBuf,
        #[arg(long, default_value_t = 50)]
        pods: usize,
        /// Pods created at once.
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        /// The process whose RSS to report (a standalone `rkube kubelet`, or the server).
        #[arg(long)]
        kubelet_pid: Option<u32>,
    },
    /// Benchmarks the scheduler through the real API: creates pods against a running cluster with
    /// hollow nodes and reports pods/s and create→bound latency.
    BenchSchedule {
        #[arg(long)]
        kubeconfig: PathBuf,
        #[arg(long, default_value_t = 10000)]
        pods: usize,
        /// Pods created at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

/// A client authenticated by the kubeconfig at `path`.
async fn client_from(path: &Path, agent: &str) -> anyhow::Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    crate::user_agent::set(&mut config, agent);
    Ok(kube::Client::try_from(config)?)
}

/// A client with a fresh certificate from the cluster CA for `user` in `groups`.
async fn client_as(
    pki: &Pki,
    url: &str,
    user: &str,
    groups: &[&str],
    agent: &str,
) -> anyhow::Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let (cert, key) = pki.issue_client_cert(user, groups)?;
    let kc = Kubeconfig::from_yaml(&pki.kubeconfig(url, &cert, &key))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    crate::user_agent::set(&mut config, agent);
    Ok(kube::Client::try_from(config)?)
}

/// A leader-election identity for a process without a data dir: host name and a fresh id (upstream's
/// `<hostname>_<uuid>`).
fn standalone_identity() -> String {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "rkube".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Runs a node's kube-proxy in the background (`rkube server` and `rkube agent` on the machine itself),
/// masquerading traffic to cluster IPs from outside `cluster_cidr`.
fn spawn_node_proxy(
    client: kube::Client,
    mode: crate::proxy::Mode,
    node_name: String,
    cluster_cidr: String,
) {
    let config = crate::proxy::Config {
        mode,
        node_name,
        options: crate::proxy::iptables::Options {
            cluster_cidr: Some(cluster_cidr),
            masquerade_all: false,
        },
        netns: None,
        ipvs_scheduler: "rr".into(),
    };
    tokio::spawn(async move {
        if let Err(e) = crate::proxy::run(client, config).await {
            tracing::error!("kube-proxy stopped: {e:#}");
        }
    });
}

/// `rkube agent`: join (or rejoin with the stored certificate), then run the kubelet as the node,
/// and its kube-proxy (`proxy`: the mode and the cluster's pod range) as `kube-system/kube-proxy`.
async fn run_agent(
    server: Option<String>,
    token: Option<String>,
    ca_cert_hash: Option<String>,
    certificate_authority: Option<PathBuf>,
    kubelet: KubeletArgs,
    proxy: (ProxyMode, String),
) -> anyhow::Result<()> {
    use crate::kubelet::join;
    let root = kubelet
        .root_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/rkube-agent"));
    let node_name = kubelet.node_name.clone().unwrap_or_else(host_name);
    let ca = match (ca_cert_hash, certificate_authority) {
        (Some(pin), _) => Some(join::CaSource::Pin(pin)),
        (None, Some(file)) => Some(join::CaSource::Pem(
            std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?,
        )),
        (None, None) => None,
    };
    let options = match (server, token, ca) {
        (Some(server), Some(token), Some(ca)) => Some(join::JoinOptions {
            server,
            token,
            ca,
            node_name: node_name.clone(),
        }),
        (None, None, None) => None,
        _ => anyhow::bail!(
            "joining needs --server, --token and --ca-cert-hash (or --certificate-authority) together"
        ),
    };
    let kubeconfig = join::kubeconfig(&root, options.as_ref()).await?;
    println!(
        "rkube agent: node {node_name} uses the credentials in {}",
        kubeconfig.display()
    );
    let (client, identity) =
        crate::kubelet::certificate_manager::client(&kubeconfig, &agent("kubelet", None)).await?;
    tokio::spawn(crate::kubelet::certificate_manager::run(
        client.clone(),
        identity,
        kubeconfig.clone(),
        node_name.clone(),
    ));
    let ca_pem = join::kubeconfig_ca(&kubeconfig)?;
    let ip = primary_address(IpAddr::from([0, 0, 0, 0]));
    let mut args = kubelet;
    if args.container_runtime_endpoint.is_none() {
        args.container_runtime_endpoint = default_runtime(&root, args.own_containerd).await;
    }
    let Some(_) = args
        .container_runtime_endpoint
        .as_ref()
        .filter(|e| !e.is_empty())
    else {
        anyhow::bail!("rkube agent needs a container runtime (--container-runtime-endpoint)");
    };
    let mut config = args.config(root.join("kubelet"), ip)?;
    config.node_name = node_name.clone();
    if let (ProxyMode(Some(mode)), cluster_cidr) = proxy {
        let proxy_kubeconfig = root.join(join::PROXY_KUBECONFIG_FILE);
        match client_from(&proxy_kubeconfig, &agent("kube-proxy", None)).await {
            Ok(client) => spawn_node_proxy(client, mode, node_name.clone(), cluster_cidr),
            Err(e) => println!(
                "rkube agent runs no kube-proxy: {} ({e:#}); join again with a token to get its credentials",
                proxy_kubeconfig.display()
            ),
        }
    }
    let serving = join::serving_config(client.clone(), root.clone(), node_name, vec![ip], ca_pem);
    config.serving = Some((
        serving.boxed(),
        SocketAddr::new(IpAddr::from([0, 0, 0, 0]), args.kubelet_port),
    ));
    crate::kubelet::agent::run(client, config).await
}

/// `rkube token create|list|delete`, as the kubeconfig's user (an administrator).
async fn token_command(kubeconfig: Option<PathBuf>, action: TokenAction) -> anyhow::Result<()> {
    use crate::apiserver::authn::bootstrap_token as bt;
    use k8s_openapi::api::core::v1::Secret;
    let mut config = match &kubeconfig {
        Some(path) => {
            kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(path)?,
                &Default::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    };
    crate::user_agent::set(&mut config, &agent("rkube", None));
    let server = config.cluster_url.to_string();
    // The CA the admin trusts is the one a joining node pins.
    let ca = config.root_cert.as_ref().and_then(|c| c.first()).cloned();
    let client = kube::Client::try_from(config)?;
    let secrets = kube::Api::<Secret>::namespaced(client.clone(), bt::NAMESPACE);
    match action {
        TokenAction::Create {
            ttl,
            description,
            print_join_command,
        } => {
            let token = crate::kubelet::join::create_token(&client, ttl, &description).await?;
            if !print_join_command {
                println!("{token}");
                return Ok(());
            }
            let server = advertised_server(&client).await.unwrap_or(server);
            let ca = ca.ok_or_else(|| {
                anyhow::anyhow!("the kubeconfig names no certificate authority to pin")
            })?;
            let pin = crate::pki::public_key_pin(&ca)?;
            println!(
                "rkube agent --server {} --token {token} --ca-cert-hash {pin}",
                server.trim_end_matches('/')
            );
        }
        TokenAction::List => {
            let list = secrets
                .list(
                    &kube::api::ListParams::default().fields(&format!("type={}", bt::SECRET_TYPE)),
                )
                .await?;
            println!(
                "{:<24}{:<22}{:<44}DESCRIPTION",
                "TOKEN", "EXPIRES", "EXTRA GROUPS"
            );
            for s in list.items {
                let data = |k: &str| {
                    s.data
                        .as_ref()
                        .and_then(|d| d.get(k))
                        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                        .unwrap_or_default()
                };
                let token = format!("{}.{}", data("token-id"), data("token-secret"));
                let expires = Some(data("expiration"))
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "<forever>".into());
                println!(
                    "{token:<24}{expires:<22}{:<44}{}",
                    data("auth-extra-groups"),
                    data("description")
                );
            }
        }
        TokenAction::Delete { tokens } => {
            for t in tokens {
                let id = bt::parse(&t).map_or(t.as_str(), |(id, _)| id);
                let name = format!("{}{id}", bt::SECRET_PREFIX);
                secrets
                    .delete(&name, &Default::default())
                    .await
                    .with_context(|| format!("deleting bootstrap token {id}"))?;
                println!("bootstrap token {id:?} deleted");
            }
        }
    }
    Ok(())
}

/// The address other machines reach the apiserver at: the `kubernetes` Service's endpoint (the
/// server's advertise address), when it has one that answers (a server bound to loopback advertises
/// an address it does not listen on).
async fn advertised_server(client: &kube::Client) -> Option<String> {
    use k8s_openapi::api::core::v1::Endpoints;
    let ep = kube::Api::<Endpoints>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .ok()?;
    let subset = ep.subsets?.into_iter().next()?;
    let ip = subset.addresses?.into_iter().next()?.ip;
    let port = subset.ports?.into_iter().next()?.port;
    let addr = SocketAddr::new(ip.parse().ok()?, u16::try_from(port).ok()?);
    let connect = tokio::net::TcpStream::connect(addr);
    match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => Some(format!("https://{addr}")),
        _ => None,
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn default_data_dir() -> PathBuf {
    let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || home().is_some_and(|h| h == Path::new("/root"));
    if is_root {
        PathBuf::from("/var/lib/rkube")
    } else {
        home()
            .map(|h| h.join(".rkube"))
            .unwrap_or_else(|| PathBuf::from(".rkube"))
    }
}

/// Decides where the kubeconfig goes: the user's choice, else ~/.kube/config when it is free or already
/// ours (same CA), else next to the data.
fn kubeconfig_path(args: &ServerArgs, data_dir: &Path, pki: &Pki) -> PathBuf {
    if let Some(p) = &args.write_kubeconfig {
        return p.clone();
    }
    if let Some(h) = home() {
        let p = h.join(".kube").join("config");
        match std::fs::read_to_string(&p) {
            Err(_) => return p,
            Ok(existing) => {
                use base64::Engine;
                let ca = base64::engine::general_purpose::STANDARD.encode(&pki.ca_cert_pem);
                if existing.contains(&ca) {
                    return p;
                }
            }
        }
    }
    data_dir.join("admin.kubeconfig")
}

/// The built-in resources an EncryptionConfiguration can name, with their storage prefixes.
fn encryptable_resources() -> Vec<crate::storage::encryption::config::KnownResource> {
    apiserver::catalog::builtin_resources()
        .into_iter()
        .filter(|r| r.is_stored())
        .map(|r| crate::storage::encryption::config::KnownResource {
            group: r.group.clone(),
            plural: r.plural.clone(),
            prefix: r.storage_prefix.clone(),
        })
        .collect()
}

/// `/readyz`'s name for the bindings `rkube server` writes for its in-process components.
const COMPONENT_BINDINGS_HOOK: &str = "poststarthook/rkube-component-bindings";

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    // 0700 from creation (and tightened if an older run left it open): it holds keys and the store.
    crate::private_files::private_dir(&data_dir)
        .with_context(|| format!("preparing data dir {}", data_dir.display()))?;
    let mut sans = args.tls_san.clone();
    if !args.bind_address.is_unspecified() {
        sans.push(args.bind_address.to_string());
    }
    let pki = Pki::load_or_create(&data_dir, &sans)?;
    let opening = std::time::Instant::now();
    // Read before the store opens, so a bad file fails the start at once, as upstream.
    let encryption = match &args.encryption_provider_config {
        Some(path) => Some(
            crate::storage::encryption::config::load(path, &encryptable_resources())
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    // Also before the store: a bad audit policy stops the start with the file's problems.
    let audit = apiserver::audit::Auditor::from_flags(
        args.audit_policy_file.as_deref(),
        args.audit_log_path.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let etcd_tls = crate::storage::etcd::EtcdTls {
        ca_file: args.etcd_cafile.clone(),
        cert_file: args.etcd_certfile.clone(),
        key_file: args.etcd_keyfile.clone(),
    };
    let mut store: Arc<dyn Store> = match args.storage {
        StorageKind::Embedded => EmbeddedStore::open_with(
            &data_dir.join("db"),
            crate::storage::embedded::WATCH_BUFFER,
            args.embedded_cache_mib << 20,
        )?,
        StorageKind::Etcd => Arc::new(EtcdStore::connect(&args.etcd_endpoints, &etcd_tls).await?),
    };
    if let Some(rules) = encryption {
        store = crate::storage::encryption::EncryptedStore::wrap(store, rules);
        tracing::info!(
            "encryption at rest: {}",
            args.encryption_provider_config
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
        );
    }
    tracing::info!("storage opened in {:?}", opening.elapsed());
    let host = if args.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        args.bind_address.to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let advertise = format!("{host}:{}", args.secure_port);
    let advertise_address = args
        .advertise_address
        .unwrap_or_else(|| primary_address(args.bind_address));
    let config = ApiServerConfig {
        bind: SocketAddr::new(args.bind_address, args.secure_port),
        advertise: advertise.clone(),
        advertise_address,
        tls: pki.server_tls_config()?,
        service_account_key_pem: pki.service_account_key_pem.clone(),
        limits: apiserver::http::limits::LimitsConfig {
            max_requests_inflight: args.max_requests_inflight,
            max_mutating_requests_inflight: args.max_mutating_requests_inflight,
            request_timeout: args.request_timeout,
            priority_and_fairness: args.enable_priority_and_fairness,
        },
        kubelet_client: Some(pki.kubelet_client_tls_config()?),
        watch_cache_bytes: args.watch_cache_bytes,
        service_ranges: apiserver::registry::service_alloc::ServiceRanges {
            cidr: args.service_cluster_ip_range,
            node_ports: args.service_node_port_range,
        },
        admission: apiserver::admission::Options {
            not_ready_toleration_seconds: args.default_not_ready_toleration_seconds,
            unreachable_toleration_seconds: args.default_unreachable_toleration_seconds,
            disabled: args.disable_admission_plugins.clone(),
        },
        token_options: apiserver::authn::tokens::TokenOptions {
            api_audiences: args.api_audiences.clone(),
            max_expiration: args
                .service_account_max_token_expiration
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        },
        caller_hook: Some(COMPONENT_BINDINGS_HOOK),
        audit,
    };
    let server = apiserver::start(config, store).await?;
    let url = format!("https://{host}:{}", server.local_addr.port());
    server.wait_started().await;
    // The server's own admin client, for the objects its in-process nodes need.
    let admin = client_as(
        &pki,
        &url,
        "system:admin",
        &["system:masters"],
        &agent("rkube", None),
    )
    .await?;
    crate::kubelet::hollow::retire_group_grant(&admin).await?;
    // Machines join as nodes with bootstrap tokens (`rkube agent`); the apiserver calls every
    // kubelet as kube-apiserver-kubelet-client (kubeadm's binding).
    crate::kubelet::join::ensure_bindings(&admin).await?;
    crate::kubelet::registration::bind_cluster_role(
        &admin,
        "rkube:kube-apiserver-kubelet-client",
        "system:kubelet-api-admin",
        crate::kubelet::registration::subject("User", crate::pki::KUBELET_CLIENT_CN),
    )
    .await?;
    crate::apiserver::http::resource_metrics::ensure_reader_role(&admin).await?;
    server.hook_done();
    let identity = crate::leader_election::identity(&data_dir)?;
    let options = crate::controllers::Options {
        identity: identity.clone(),
        node_monitor_grace_period: args.node_monitor_grace_period,
        node_cidrs: args.node_ipam.cidr_set()?,
        cluster_signing_duration: args.cluster_signing_duration,
    };
    if args.controller_manager {
        let credentials = crate::controllers::Credentials::Pki {
            pki: pki.clone(),
            server_url: url.clone(),
        };
        crate::controllers::start(credentials, options).await?;
    }
    if args.scheduler {
        // The scheduler, as its own identity (bound to system:kube-scheduler by the bootstrap policy),
        // leading through the kube-system/kube-scheduler Lease as upstream's.
        let scheduler = client_as(
            &pki,
            &url,
            "system:kube-scheduler",
            &[],
            &agent("kube-scheduler", Some("scheduler")),
        )
        .await?;
        let candidate =
            crate::leader_election::Candidate::new(scheduler.clone(), "kube-scheduler", &identity);
        tokio::spawn(candidate.lead(move || crate::scheduler::run(scheduler.clone())));
    }
    if args.hollow_nodes > 0 {
        crate::kubelet::hollow::grant_node_role(&admin).await?;
        // One shared identity for all in-process hollow nodes: see kubelet::hollow's module doc.
        let nodes = client_as(
            &pki,
            &url,
            crate::kubelet::hollow::HOLLOW_NODES_USER,
            &[],
            &agent("kubelet", None),
        )
        .await?;
        let count = args.hollow_nodes;
        let issuer = pki.clone();
        let serving = crate::kubelet::hollow::usage::Serving::Issue(Box::new(move |ips| {
            issuer.kubelet_tls_config("hollow-node", ips)
        }));
        tokio::spawn(async move {
            let res = crate::kubelet::NodeResources::default();
            let usage = crate::kubelet::hollow::usage::Demand::default();
            if let Err(e) =
                crate::kubelet::hollow::run(nodes, count, "hollow-node", res, usage, serving).await
            {
                tracing::error!("hollow nodes stopped: {e:#}");
            }
        });
    }
    let mut node_args = args.kubelet.clone();
    if node_args.container_runtime_endpoint.is_none() {
        // README's one command: a machine with containerd running becomes a node.
        node_args.container_runtime_endpoint =
            default_runtime(&data_dir, node_args.own_containerd).await;
    }
    if let Some(endpoint) = node_args
        .container_runtime_endpoint
        .clone()
        .filter(|e| !e.is_empty())
    {
        println!("rkube runs a kubelet on {endpoint}: this machine is a node that runs pods");
        let config = node_args.config(data_dir.join("kubelet"), advertise_address)?;
        let mut config = config;
        // The kubelet acts as system:node:<name>: the Node authorizer and NodeRestriction decide
        // what it may do, no RBAC binding.
        if args.cluster_dns_port != 0 {
            let listen = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), args.cluster_dns_port);
            match crate::dns::Sockets::bind(listen).await {
                Ok(sockets) => {
                    // CoreDNS's own identity (kubeadm binds ClusterRole system:coredns to the
                    // kube-system/coredns service account): the DNS reads only what that role
                    // grants, like the pod it stands in for.
                    let dns_client = client_as(
                        &pki,
                        &url,
                        &crate::dns::addon::user(),
                        &[
                            "system:serviceaccounts",
                            "system:serviceaccounts:kube-system",
                        ],
                        &agent("coredns", None),
                    )
                    .await?;
                    let port = sockets.local_addr()?.port();
                    let dns_config =
                        crate::dns::Config::with_host_resolvers(&node_args.cluster_domain);
                    let (admin, node) = (admin.clone(), config.node_name.clone());
                    tokio::spawn(async move {
                        // The RBAC first, so the DNS's watches are allowed from their first list.
                        crate::dns::addon::ensure_with_retries(admin, node, advertise_address, port)
                            .await;
                        if let Err(e) = crate::dns::run(dns_client, sockets, dns_config).await {
                            tracing::error!("cluster DNS stopped: {e:#}");
                        }
                    });
                    if config.cluster_dns.servers.is_empty() {
                        config.cluster_dns.servers = vec![crate::dns::addon::CLUSTER_DNS_IP.into()];
                    }
                    println!("rkube runs the cluster DNS on port {port} (kube-system/kube-dns, {})", crate::dns::addon::CLUSTER_DNS_IP);
                }
                Err(e) => println!("rkube runs no cluster DNS: binding {listen}: {e} (pods with dnsPolicy ClusterFirst get the host's resolvers; see --cluster-dns-port)"),
            }
        }
        let tls = pki.kubelet_tls_config(&config.node_name, &[advertise_address])?;
        config.serving = Some((
            futures::future::ready(Ok(tls)).boxed(),
            SocketAddr::new(IpAddr::from([0, 0, 0, 0]), node_args.kubelet_port),
        ));
        let user = format!("system:node:{}", config.node_name);
        let client = client_as(
            &pki,
            &url,
            &user,
            &["system:nodes"],
            &agent("kubelet", None),
        )
        .await?;
        if let ProxyMode(Some(mode)) = args.proxy_mode {
            // kube-proxy as upstream's identity, bound to system:node-proxier by the bootstrap policy.
            let proxy = client_as(
                &pki,
                &url,
                "system:kube-proxy",
                &[],
                &agent("kube-proxy", None),
            )
            .await?;
            // The pods' range: traffic from outside it to a cluster IP is masqueraded.
            let cluster_cidr = node_args
                .pod_cidr
                .clone()
                .unwrap_or_else(|| args.node_ipam.cluster_cidr.clone());
            spawn_node_proxy(proxy, mode, config.node_name.clone(), cluster_cidr);
        }
        tokio::spawn(async move {
            if let Err(e) = crate::kubelet::agent::run(client, config).await {
                tracing::error!("kubelet stopped: {e:#}");
            }
        });
    }
    let kubeconfig = kubeconfig_path(&args, &data_dir, &pki);
    crate::private_files::write_private(&kubeconfig, pki.admin_kubeconfig(&url).as_bytes())?;
    let default_kc = home().map(|h| h.join(".kube").join("config"));
    if Some(&kubeconfig) == default_kc.as_ref() {
        println!("rkube is serving at {url}; kubeconfig written to {} (kubectl uses it as is: try `kubectl get namespaces`)", kubeconfig.display());
    } else {
        println!(
            "rkube is serving at {url}; kubeconfig written to {} (use it with `export KUBECONFIG={}` or `kubectl --kubeconfig {}`)",
            kubeconfig.display(),
            kubeconfig.display(),
            kubeconfig.display()
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}

/// SIGINT or SIGTERM: every acknowledged write is already durable, so stopping is just exiting cleanly.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The `rkube` process: logging, the command line, a tokio runtime, the chosen subcommand.
pub fn main() -> anyhow::Result<()> {
    // Everything this process creates (data dir, store, keys, kubeconfigs, temp files) is private to
    // its user, whatever the code creating it asks for.
    crate::private_files::restrict_umask();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RKUBE_LOG")
                // hickory-server logs every DNS request at info: the cluster DNS would drown the log.
                .unwrap_or_else(|_| "info,hickory_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(run_server(*args)),
        Command::Kubeconfig {
            data_dir,
            server,
            user,
            groups,
        } => {
            let dir = data_dir.unwrap_or_else(default_data_dir);
            let pki = Pki::load_or_create(&dir, &[])?;
            let kubeconfig = match user {
                Some(user) => {
                    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                    let (cert, key) = pki.issue_client_cert(&user, &groups)?;
                    pki.kubeconfig(&server, &cert, &key)
                }
                None => pki.admin_kubeconfig(&server),
            };
            print!("{kubeconfig}");
            Ok(())
        }
        Command::Scheduler { kubeconfig } => rt.block_on(async {
            let client =
                client_from(&kubeconfig, &agent("kube-scheduler", Some("scheduler"))).await?;
            let identity = standalone_identity();
            let candidate =
                crate::leader_election::Candidate::new(client.clone(), "kube-scheduler", &identity);
            candidate
                .lead(move || crate::scheduler::run(client.clone()))
                .await
        }),
        Command::ControllerManager {
            kubeconfig,
            root_ca_file,
            node_monitor_grace_period,
            node_ipam,
        } => rt.block_on(async {
            let credentials = crate::controllers::Credentials::from_kubeconfig(
                &kubeconfig,
                root_ca_file.as_deref(),
            )
            .await?;
            let options = crate::controllers::Options {
                identity: standalone_identity(),
                node_monitor_grace_period,
                node_cidrs: node_ipam.cidr_set()?,
                ..Default::default()
            };
            crate::controllers::start(credentials, options).await?;
            shutdown_signal().await;
            Ok(())
        }),
        Command::HollowNodes {
            kubeconfig,
            count,
            prefix,
            cpu,
            memory,
            max_pods,
            container_usage,
        } => rt.block_on(async {
            let client = client_from(&kubeconfig, &agent("kubelet", None)).await?;
            let res = crate::kubelet::NodeResources {
                cpu,
                memory,
                pods: max_pods,
                ..Default::default()
            };
            let serving = crate::kubelet::hollow::usage::Serving::Request {
                ca_pem: crate::kubelet::join::kubeconfig_ca(&kubeconfig)?,
            };
            crate::kubelet::hollow::run(client, count, &prefix, res, container_usage, serving).await
        }),
        Command::Kubelet {
            kubeconfig,
            kubelet,
        } => rt.block_on(async {
            let client = client_from(&kubeconfig, &agent("kubelet", None)).await?;
            let ip = primary_address(IpAddr::from([0, 0, 0, 0]));
            let config = kubelet.config(PathBuf::from("/var/lib/rkube-kubelet"), ip)?;
            crate::kubelet::agent::run(client, config).await
        }),
        Command::Agent {
            server,
            token,
            ca_cert_hash,
            certificate_authority,
            kubelet,
            proxy_mode,
            cluster_cidr,
        } => rt.block_on(run_agent(
            server,
            token,
            ca_cert_hash,
            certificate_authority,
            kubelet,
            (proxy_mode, cluster_cidr),
        )),
        Command::Token { kubeconfig, action } => rt.block_on(token_command(kubeconfig, action)),
        Command::Proxy { kubeconfig, proxy } => rt.block_on(async {
            let runner = crate::proxy::exec::Runner {
                netns: proxy.netns.clone(),
            };
            if proxy.cleanup {
                crate::proxy::cleanup_all(&runner).await;
                return Ok(());
            }
            let kubeconfig = kubeconfig.context("--kubeconfig is required")?;
            let config = crate::proxy::Config {
                mode: proxy.proxy_mode,
                node_name: proxy.hostname_override.clone().unwrap_or_else(host_name),
                options: crate::proxy::iptables::Options {
                    cluster_cidr: proxy.cluster_cidr.clone(),
                    masquerade_all: proxy.masquerade_all,
                },
                netns: proxy.netns.clone(),
                ipvs_scheduler: proxy.ipvs_scheduler.clone(),
            };
            crate::proxy::run(
                client_from(&kubeconfig, &agent("kube-proxy", None)).await?,
                config,
            )
            .await
        }),
        Command::BenchProxy { services, modes } => {
            rt.block_on(crate::proxy::bench::run(&services, &modes))
        }
        Command::Dns {
            kubeconfig,
            listen,
            cluster_domain,
            ttl,
            upstream,
        } => rt.block_on(async {
            let client = client_from(&kubeconfig, &agent("coredns", None)).await?;
            let sockets = crate::dns::Sockets::bind(listen)
                .await
                .with_context(|| format!("binding {listen} (UDP and TCP)"))?;
            println!("rkube dns listening on {}", sockets.local_addr()?);
            let mut config = crate::dns::Config::with_host_resolvers(&cluster_domain);
            config.ttl = ttl;
            if !upstream.is_empty() {
                config.upstreams = upstream;
            }
            tokio::select! {
                r = crate::dns::run(client, sockets, config) => r,
                _ = shutdown_signal() => Ok(()),
            }
        }),
        Command::BenchDns {
            services,
            queries,
            window,
        } => rt.block_on(crate::dns::bench::run(services, queries, window)),
        Command::BenchPods {
            kubeconfig,
            pods,
            concurrency,
            kubelet_pid,
        } => rt.block_on(async {
            crate::kubelet::bench::run(
                client_from(&kubeconfig, &agent("rkube-bench", None)).await?,
                pods,
                concurrency,
                kubelet_pid,
            )
            .await
        }),
        Command::BenchSchedule {
            kubeconfig,
            pods,
            concurrency,
        } => rt.block_on(async {
            crate::scheduler::bench::run(
                client_from(&kubeconfig, &agent("rkube-bench", None)).await?,
                pods,
                concurrency,
            )
            .await
        }),
    }
}
