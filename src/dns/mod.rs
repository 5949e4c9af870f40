//! Cluster DNS: upstream CoreDNS with kubeadm's Corefile (`kubernetes cluster.local in-addr.arpa
//! ip6.arpa { pods insecure; fallthrough in-addr.arpa ip6.arpa }` + `forward . /etc/resolv.conf`),
//! in process.
//!
//! - [`records`]: what a name under the cluster domain answers (start here; pure, unit-tested).
//! - [`watch`]: the reflectors of Services, EndpointSlices and Namespaces that keep the index current.
//! - [`server`]: hickory-server's UDP/TCP loops and the request handler.
//! - [`forward`]: other names, to the host's resolvers.
//! - [`addon`]: what kubeadm's CoreDNS addon phase creates (RBAC, the `kube-system/kube-dns`
//!   Service at 10.96.0.10, here with an EndpointSlice naming this node's DNS).
//! - [`bench`]: `rkube bench-dns`, answers per second from one client.
//!
//! It runs as `rkube dns --kubeconfig F` (an API client like any other component) and inside
//! `rkube server` when that runs a node (`--cluster-dns-port`, default 53; 0: none), where it
//! authenticates as `system:serviceaccount:kube-system:coredns`, CoreDNS's own identity.

pub mod addon;
pub mod bench;
pub mod forward;
pub mod records;
pub mod server;
pub mod watch;

use std::net::SocketAddr;

pub use server::Sockets;

/// The default cluster domain (kubelet's --cluster-domain in kubeadm clusters).
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// How the DNS server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// TTL of the cluster's records (CoreDNS's `ttl`, default 5).
    pub ttl: u32,
    /// Where names outside the domain go; empty: nowhere (SERVFAIL).
    pub upstreams: Vec<SocketAddr>,
}

impl Config {
    /// The cluster domain with upstreams from the host's /etc/resolv.conf.
    pub fn with_host_resolvers(domain: &str) -> Config {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        Config {
            domain: domain.to_string(),
            ttl: records::DEFAULT_TTL,
            upstreams: forward::resolv_conf_nameservers(&text),
        }
    }
}

/// Serves DNS on `sockets` from the cluster `client` watches, until the server fails.
pub async fn run(client: kube::Client, sockets: Sockets, config: Config) -> anyhow::Result<()> {
    let listen = sockets.local_addr()?;
    let shared = watch::spawn(client, config.domain.clone(), config.ttl);
    let forwarder = forward::Forwarder::new(config.upstreams.clone(), listen);
    tracing::info!(
        %listen,
        domain = %config.domain,
        upstreams = ?forwarder.upstreams(),
        "dns: serving"
    );
    server::serve(sockets, server::Handler { shared, forwarder }).await
}
