//! The apiserver: Kubernetes' REST + watch API over HTTPS.
//!
//! Request path: [`server`] (TLS, client-cert authentication) → [`handlers`] (token authentication,
//! [`authz`]: impersonation and RBAC, routing, content negotiation, decoding) → [`registry`] (the generic store, with per-kind [`strategy`]) → [`crate::storage`].
//! Everything about which resources exist comes from the [`catalog`], which CustomResourceDefinitions
//! extend at run time ([`crd`]).

pub mod authz;
pub mod body;
pub mod bootstrap;
pub mod catalog;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod field_validation;
pub mod fieldpath;
pub mod handlers;
pub mod managed_fields;
pub mod namespaces;
pub mod openapi;
pub mod patch;
pub mod pod_connect;
pub mod protobuf;
pub mod quantity;
pub mod registry;
pub mod request;
pub mod reviews;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod status;
pub mod strategy;
pub mod table;
pub mod tokens;
pub mod validation;
pub mod watch_cache;

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
    pub tls: rustls::ServerConfig,
    /// PEM of the key that signs service account tokens.
    pub service_account_key_pem: String,
}

/// A running apiserver's handles.
pub struct ApiServer {
    pub registry: Arc<registry::Registry>,
    pub local_addr: SocketAddr,
}

/// Starts serving: loads the watch cache, creates the system namespaces, starts the namespace finalizer
/// and the compactor, then accepts connections. Returns once the listener is bound.
pub async fn start(config: ApiServerConfig, store: Arc<dyn Store>) -> anyhow::Result<ApiServer> {
    let mut builtin = catalog::Catalog::builtin();
    for r in crd::stored_rows(store.as_ref()).await? {
        builtin.add(r);
    }
    let catalog = Arc::new(catalog::SharedCatalog::new(builtin));
    let registry = registry::Registry::new(store.clone(), catalog.clone());
    tokio::spawn(registry.cache.clone().run(store.clone()));
    registry.cache.wait_ready().await;
    bootstrap::bootstrap(&registry, config.bind.port()).await?;
    authz::reconcile::bootstrap(&registry).await?;
    tokio::spawn(namespaces::run_finalizer(registry.clone()));
    tokio::spawn(authz::reconcile::run_aggregation(registry.clone()));
    tokio::spawn(compactor(store.clone()));
    let app = Arc::new(handlers::App {
        registry: registry.clone(),
        catalog: catalog.clone(),
        openapi: openapi::OpenApiV3::new(catalog.clone()),
        server_address: config.advertise.clone(),
        tokens: tokens::TokenIssuer::new(&config.service_account_key_pem)?,
    });
    let router = axum::Router::new()
        .fallback(handlers::handle)
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let local_addr = listener.local_addr()?;
    tokio::spawn(server::serve(listener, config.tls, router));
    Ok(ApiServer {
        registry,
        local_addr,
    })
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
