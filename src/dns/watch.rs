//! Keeps the [`Index`] current: kube-runtime reflectors (list, then watch; relist on a broken
//! watch) of Services, EndpointSlices and Namespaces, as CoreDNS's informers, with the identity of
//! the client given (the `system:coredns` ClusterRole grants list/watch on exactly these).
//!
//! Every change wakes one task that rebuilds the whole index from the reflectors' stores after a
//! short pause ([`COALESCE`]), so a burst of changes (a relist, a rollout) costs one rebuild; the
//! queries read the current snapshot through an `Arc` and never wait for a rebuild.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::Notify;

use super::records::Index;

/// How long a rebuild waits after the first change it sees, to take the rest of a burst along.
const COALESCE: Duration = Duration::from_millis(20);

/// The current index, shared by the watchers (writer) and the server (readers).
pub struct Shared {
    current: RwLock<Arc<Index>>,
}

impl Shared {
    pub fn new(index: Index) -> Arc<Shared> {
        Arc::new(Shared {
            current: RwLock::new(Arc::new(index)),
        })
    }

    /// The snapshot to answer from.
    pub fn current(&self) -> Arc<Index> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, index: Index) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
    }
}

/// Drives one reflector: wakes the rebuilder on every change to its store, and marks it synced once
/// the first list is in.
async fn drive<K>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    what: &'static str,
    synced: Arc<AtomicBool>,
    changed: Arc<Notify>,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) | Ok(watcher::Event::InitApply(_)) => {}
            Ok(watcher::Event::InitDone) => {
                if !synced.swap(true, Ordering::SeqCst) {
                    tracing::info!("dns: {what} listed");
                }
                changed.notify_one();
            }
            Ok(_) => changed.notify_one(),
            // The watcher retries with backoff; say why once per failure.
            Err(e) => tracing::warn!("dns: watching {what}: {e}"),
        }
    }
}

/// Starts the reflectors and the rebuilder; returns the shared index they keep current.
pub fn spawn(client: kube::Client, domain: String, ttl: u32) -> Arc<Shared> {
    let none: [&Service; 0] = [];
    let shared = Shared::new(Index::build(&domain, ttl, false, none, [], []));
    let changed = Arc::new(Notify::new());
    let flags: [Arc<AtomicBool>; 3] = Default::default();

    let (services, w) = reflector::store::<Service>();
    let stream = reflector::reflector(
        w,
        watcher::watcher(Api::<Service>::all(client.clone()), Default::default()),
    )
    .default_backoff();
    tokio::spawn(drive(stream, "services", flags[0].clone(), changed.clone()));

    let (slices, w) = reflector::store::<EndpointSlice>();
    let stream = reflector::reflector(
        w,
        watcher::watcher(
            Api::<EndpointSlice>::all(client.clone()),
            Default::default(),
        ),
    )
    .default_backoff();
    tokio::spawn(drive(
        stream,
        "endpointslices",
        flags[1].clone(),
        changed.clone(),
    ));

    let (namespaces, w) = reflector::store::<Namespace>();
    let stream = reflector::reflector(
        w,
        watcher::watcher(Api::<Namespace>::all(client), Default::default()),
    )
    .default_backoff();
    tokio::spawn(drive(
        stream,
        "namespaces",
        flags[2].clone(),
        changed.clone(),
    ));

    let out = shared.clone();
    tokio::spawn(async move {
        loop {
            changed.notified().await;
            tokio::time::sleep(COALESCE).await;
            let synced = flags.iter().all(|f| f.load(Ordering::SeqCst));
            let (s, e, n) = (services.state(), slices.state(), namespaces.state());
            let index = Index::build(
                &domain,
                ttl,
                synced,
                s.iter().map(|a| a.as_ref()),
                e.iter().map(|a| a.as_ref()),
                n.iter().map(|a| a.as_ref()),
            );
            out.set(index);
        }
    });
    shared
}
