//! The controller manager's shared informers: one watch and one cache per kind, however many
//! controllers look at that kind (upstream's SharedInformerFactory).
//!
//! Before this, each controller watched pods on its own: a cluster-wide pod change was encoded by the
//! apiserver, sent, decoded and cached about ten times over. Now the first controller to ask for a
//! kind starts its reflector (a cluster-wide watch with the manager's identity); every controller
//! gets the same [`Store`] and its own stream of the objects that changed (deleted ones included).
//! A controller that subscribes after the first list is first handed every cached object, as
//! upstream's AddEventHandler replays the cache to a late handler, so it never misses one; one that
//! subscribes while the first list is still arriving is handed the whole cache once it is complete.
//!
//! The streams are unbounded: a slow controller holds `Arc`s of objects, never a lost event, and
//! never slows the others. The watches end when the last `Informers` handle is dropped (the
//! controller manager lost its lease).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;

use super::common::lock;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// What a shared kind needs to be.
pub trait Kind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Kind for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// Shared informers for every kind asked for so far (cheap to clone: a handle).
#[derive(Clone)]
pub struct Informers {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    /// `TypeId` of `K` → its `Shared<K>`.
    kinds: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    /// The reflectors' tasks: aborted when the last handle goes.
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

/// One kind's cache and the senders of its subscribers.
struct Shared<K: Kind> {
    store: Store<K>,
    subscribers: Arc<Mutex<Vec<Subscriber<K>>>>,
}

struct Subscriber<K> {
    tx: mpsc::UnboundedSender<Arc<K>>,
    /// Subscribed before the first list was complete: owed the whole cache once it is.
    owed_cache: bool,
}

impl<K: Kind> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Shared {
            store: self.store.clone(),
            subscribers: self.subscribers.clone(),
        }
    }
}

impl Informers {
    /// Informers watching with `client` (the controller manager's own identity).
    pub fn new(client: kube::Client) -> Self {
        Informers {
            inner: Arc::new(Inner {
                client,
                kinds: Mutex::new(HashMap::new()),
                tasks: Mutex::new(tokio::task::JoinSet::new()),
            }),
        }
    }

    /// The cluster-wide cache of `K` and a stream of every object of `K` that changes from now on
    /// (after the cached ones), as [`super::common::watched`] gives for a watch of its own.
    pub fn watched<K: Kind>(
        &self,
    ) -> (
        Store<K>,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) {
        let shared = self.shared::<K>();
        let (tx, rx) = mpsc::unbounded_channel();
        {
            // Under the lock the reflector's task broadcasts with: an object it applies after the
            // snapshot reaches this subscriber by the channel, one applied before by the snapshot.
            let mut subscribers = lock(&shared.subscribers);
            let listed = is_ready(&shared.store);
            if listed {
                for obj in shared.store.state() {
                    let _ = tx.send(obj);
                }
            }
            subscribers.push(Subscriber {
                tx,
                owed_cache: !listed,
            });
        }
        let stream = UnboundedReceiverStream::new(rx).map(|obj| Ok(K::clone(&obj)));
        (shared.store, stream)
    }

    /// The cluster-wide cache of `K` (for lookups that trigger nothing).
    pub fn store<K: Kind>(&self) -> Store<K> {
        self.shared::<K>().store
    }

    fn shared<K: Kind>(&self) -> Shared<K> {
        let mut kinds = lock(&self.inner.kinds);
        if let Some(shared) = kinds
            .get(&TypeId::of::<K>())
            .and_then(|s| s.downcast_ref::<Shared<K>>())
        {
            return shared.clone();
        }
        let (store, writer) = reflector::store();
        let shared = Shared {
            store,
            subscribers: Arc::new(Mutex::new(Vec::new())),
        };
        kinds.insert(TypeId::of::<K>(), Box::new(shared.clone()));
        let subscribers = shared.subscribers.clone();
        let store = shared.store.clone();
        let api = Api::<K>::all(self.inner.client.clone());
        lock(&self.inner.tasks).spawn(async move {
            let watch = watcher(api, watcher::Config::default()).modify(super::common::trim::<K>);
            let mut events = reflector::reflector(writer, watch)
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(
                        watcher::Event::Apply(obj)
                        | watcher::Event::Delete(obj)
                        | watcher::Event::InitApply(obj),
                    ) => {
                        let obj = Arc::new(obj);
                        // A subscriber whose controller ended is dropped here.
                        lock(&subscribers).retain(|s| s.tx.send(obj.clone()).is_ok());
                    }
                    Ok(watcher::Event::InitDone) => {
                        // The reflector has swapped the complete list into the store.
                        for s in lock(&subscribers).iter_mut().filter(|s| s.owed_cache) {
                            s.owed_cache = false;
                            for obj in store.state() {
                                let _ = s.tx.send(obj);
                            }
                        }
                    }
                    Ok(watcher::Event::Init) => {}
                    Err(e) => tracing::debug!("shared informer for {}: {e}", K::kind(&())),
                }
            }
        });
        shared
    }
}

/// Whether the store holds its first complete list.
fn is_ready<K: Kind>(store: &Store<K>) -> bool {
    use futures::FutureExt;
    store.wait_until_ready().now_or_never().is_some()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::combinators::BoxBody;
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::Frame;
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(name: &str) -> serde_json::Value {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "1"}})
    }

    /// An apiserver that lists pods `a` and `b`, then sends `c` as ADDED on every watch and keeps the
    /// watch open. Counts the lists it answers.
    fn fake_client(lists: Arc<AtomicUsize>) -> kube::Client {
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let lists = lists.clone();
            async move {
                let watch = req.uri().query().is_some_and(|q| q.contains("watch=true"));
                let body: BoxBody<Bytes, Infallible> = if watch {
                    let added = serde_json::json!({"type": "ADDED", "object": pod("c")});
                    let first = Bytes::from(format!("{added}\n"));
                    let frames = futures::stream::once(async move { Ok(Frame::data(first)) })
                        .chain(futures::stream::pending());
                    BodyExt::boxed(StreamBody::new(frames))
                } else {
                    lists.fetch_add(1, Ordering::SeqCst);
                    let list = serde_json::json!({"apiVersion": "v1", "kind": "PodList",
                        "metadata": {"resourceVersion": "1"}, "items": [pod("a"), pod("b")]});
                    Full::new(Bytes::from(list.to_string())).boxed()
                };
                Ok::<_, Infallible>(http::Response::new(body))
            }
        });
        kube::Client::new(service, "default")
    }

    /// Names from `stream` until all of `want` came (or 10 s passed).
    async fn names_until(
        stream: &mut (impl Stream<Item = Result<Pod, watcher::Error>> + Unpin),
        want: &[&str],
    ) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !want.iter().all(|w| seen.contains(*w)) {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(p))) => {
                    seen.insert(p.metadata.name.unwrap_or_default());
                }
                _ => break,
            }
        }
        seen
    }

    #[tokio::test]
    async fn one_watch_per_kind_and_late_subscribers_get_the_cache() {
        let lists = Arc::new(AtomicUsize::new(0));
        let informers = Informers::new(fake_client(lists.clone()));
        // Subscribed before the first list arrived.
        let (store, early) = informers.watched::<Pod>();
        let mut early = Box::pin(early);
        let all = ["a", "b", "c"];
        assert_eq!(names_until(&mut early, &all).await.len(), 3);
        super::super::common::ready(&store).await;
        // Subscribed once the cache is complete: handed what it holds, nothing missed.
        let (again, late) = informers.watched::<Pod>();
        let mut late = Box::pin(late);
        assert_eq!(names_until(&mut late, &all).await.len(), 3);
        assert_eq!(again.state().len(), 3, "the same store");
        let _ = informers.store::<Pod>();
        assert_eq!(
            lists.load(Ordering::SeqCst),
            1,
            "one list for every subscriber"
        );
    }
}
