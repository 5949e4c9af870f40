//! The apiserver: Kubernetes' REST + watch API over HTTPS. The only component that touches storage.
//!
//! Where to start: a request enters at [`http::server`] (TLS; client certificates verified there) and
//! [`http::handlers`] (`route`: [`authn`] bearer tokens, health, [`authz`] impersonation and RBAC,
//! in-flight limits), which hands resource requests to [`http::resource`] and one handler per verb in
//! [`http::verbs`]. Those call the generic store, [`registry::store::Registry`], which asks the row's
//! [`registry::strategy`] what is special about the kind and reads through the
//! [`registry::watch_cache`] to [`crate::storage`]. Answers are encoded by [`http::negotiate`] with the
//! [`wire`] formats (protobuf, Tables). With `--audit-policy-file` and `--audit-log-path`, [`audit`]
//! writes upstream's audit events for the requests the policy selects.
//!
//! Everything about which resources exist comes from the [`catalog`] (one row per resource: names,
//! verbs, subresources, storage prefix, its strategy), which CustomResourceDefinitions extend at run time
//! ([`crd`]); [`openapi`] and discovery are derived from it. Errors are upstream's `metav1.Status`
//! ([`status`]).

pub mod admission;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod catalog;
pub mod cel;
pub mod crd;
pub mod http;
pub mod openapi;
pub mod registry;
pub mod status;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::storage::Store;

/// Compaction keeps this many revisions of history (for watches resuming and paginated lists).
const COMPACTION_KEEP: i64 = 50_000;
const COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

pub struct ApiServerConfig {
    pub bind: SocketAddr,
    /// host:port clients use to reach the server.
    pub advertise: String,
    /// The address the `kubernetes` Service's endpoints name (upstream's `--advertise-address`).
    pub advertise_address: std::net::IpAddr,
    pub tls: rustls::ServerConfig,
    /// PEM of the key that signs service account tokens.
    pub service_account_key_pem: String,
    /// In-flight caps and the request deadline.
    pub limits: http::limits::LimitsConfig,
    /// Token audiences and expiration cap (`--api-audiences`, `--service-account-max-token-expiration`).
    pub token_options: authn::tokens::TokenOptions,
    /// The TLS client config for calling kubelets (pods/log); `None`: logs of scheduled pods are
    /// not served.
    pub kubelet_client: Option<rustls::ClientConfig>,
    /// Each resource's watch cache event window in stored bytes (`--watch-cache-bytes`).
    pub watch_cache_bytes: usize,
    /// Where Service cluster IPs and node ports come from.
    pub service_ranges: registry::service_alloc::ServiceRanges,
    /// The admission plugins' settings.
    pub admission: admission::Options,
    /// A post-start hook the caller runs through the API once the server is started (the bindings of
    /// its in-process components): `/readyz` names it and stays red until [`ApiServer::hook_done`].
    pub caller_hook: Option<&'static str>,
    /// The audit policy and log (`--audit-policy-file`, `--audit-log-path`); `None`: no auditing.
    pub audit: Option<Arc<audit::Auditor>>,
}

/// A running apiserver's handles.
pub struct ApiServer {
    pub registry: Arc<registry::store::Registry>,
    pub local_addr: SocketAddr,
    started: tokio::sync::watch::Receiver<bool>,
    caller_hook_done: Arc<std::sync::atomic::AtomicBool>,
}

impl ApiServer {
    /// Waits until the cache is loaded and the start-up work is done (what `/readyz` waits for), as
    /// upstream's components wait for the apiserver before they start.
    pub async fn wait_started(&self) {
        let _ = self.started.clone().wait_for(|s| *s).await;
    }

    /// Marks the caller's post-start hook done: `/readyz` turns green once the server's own start-up
    /// work is done too. Before that, a client that waited for `/readyz` (a test, a load balancer)
    /// could find the hook's writes still in flight, holding in-flight slots.
    pub fn hook_done(&self) {
        self.caller_hook_done
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Starts serving at once: the listener is bound and `/livez` answers while the watch cache loads
/// (however large the store) and the start-up work runs; `/readyz` turns green when both are done, and
/// resource requests before then get upstream's 429 "storage is (re)initializing". Returns once the
/// listener is bound.
pub async fn start(config: ApiServerConfig, store: Arc<dyn Store>) -> anyhow::Result<ApiServer> {
    let mut builtin = catalog::Catalog::builtin();
    for r in crd::stored_rows(store.as_ref()).await? {
        // A stored CRD never replaces a built-in (or another CRD's) resource.
        let name = r.custom().map(|c| c.crd_name.clone()).unwrap_or_default();
        if builtin
            .conflicting_row(&r.group, &r.plural, &r.storage_prefix, &name)
            .is_none()
        {
            builtin.add(r);
        }
    }
    let catalog = Arc::new(catalog::SharedCatalog::new(builtin));
    let caller_hook_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let registry = registry::store::Registry::with_service_ranges(
        store.clone(),
        catalog.clone(),
        config.service_ranges.clone(),
    );
    registry.cache.set_window_bytes(config.watch_cache_bytes);
    tokio::spawn(registry.cache.clone().run(store.clone()));
    let app = Arc::new(http::handlers::App {
        authorizer: authz::Authorizer::new(registry.clone()),
        registry: registry.clone(),
        catalog: catalog.clone(),
        openapi: openapi::OpenApiV3::new(catalog.clone()),
        server_address: config.advertise.clone(),
        tokens: authn::tokens::TokenIssuer::new(&config.service_account_key_pem)?
            .with_options(config.token_options.clone()),
        limits: http::limits::Limits::new(&config.limits),
        started: tokio::sync::watch::channel(false).0,
        caller_hook: config
            .caller_hook
            .map(|name| (name, caller_hook_done.clone())),
        kubelet_client: config.kubelet_client.map(Arc::new),
        admission: admission::Chain::standard(&config.admission),
        metrics: http::metrics::Metrics::new(),
        audit: config.audit.clone(),
    });
    let started = app.started.subscribe();
    let router = axum::Router::new()
        .fallback(http::handlers::handle)
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let local_addr = listener.local_addr()?;
    tracing::info!("listening on {local_addr}; loading the watch cache");
    tokio::spawn(http::server::serve(listener, config.tls, router));
    tokio::spawn(post_start(
        app,
        store,
        config.advertise_address,
        config.bind.port(),
    ));
    Ok(ApiServer {
        registry,
        local_addr,
        started,
        caller_hook_done,
    })
}

/// Upstream's post-start hooks: once the cache is loaded, the system namespaces and default policy are
/// made sure of and the in-process loops start. A failing step is retried (storage may be away for a
/// while), never skipped: `/readyz` stays red until all of it is done.
async fn post_start(
    app: Arc<http::handlers::App>,
    store: Arc<dyn Store>,
    advertise_address: std::net::IpAddr,
    port: u16,
) {
    let registry = app.registry.clone();
    registry.cache.wait_ready().await;
    let mut delay = Duration::from_millis(200);
    loop {
        let done = async {
            // The default ServiceCIDR and the allocations of Services stored before (or by an older
            // apiserver) come first: the `kubernetes` Service's create allocates its address.
            registry::service_alloc::ensure_default_service_cidr(&registry).await?;
            registry::service_alloc::repair(&registry).await?;
            registry::bootstrap::bootstrap(&registry, advertise_address, port).await?;
            authz::reconcile::bootstrap(&registry).await
        };
        match done.await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!("start-up work failed, retrying in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    tokio::spawn(authz::reconcile::run_aggregation(registry.clone()));
    tokio::spawn(compactor(store));
    app.started.send_replace(true);
    tracing::info!("apiserver ready");
}

/// Periodically forgets old history, as upstream's apiserver compacts etcd every five minutes.
async fn compactor(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(COMPACTION_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.current_revision().await {
            Ok(rev) if rev > COMPACTION_KEEP => {
                if let Err(e) = store.compact(rev - COMPACTION_KEEP).await {
                    tracing::warn!("compaction failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("compaction: {e}"),
        }
    }
}
