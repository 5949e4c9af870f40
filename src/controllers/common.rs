//! Pieces the workload controllers share: watched stores, upstream's expectations (so a controller
//! never acts twice on what it has not yet seen in its cache), controller references, event
//! recording (see `events`) and status writes that retry a 409 from the fresh object.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use super::events::{record, recorder, Recorder};

/// A cache of every object of kind `K` plus the stream of changed objects feeding it (to trigger
/// reconciles). The stream must be polled (a controller does so) for the store to fill.
pub fn watched<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let watch = watcher(api, watcher::Config::default()).modify(trim::<K>);
    let stream = reflector::reflector(writer, watch)
        .default_backoff()
        .touched_objects();
    (store, stream)
}

/// Drops an object's `metadata.managedFields` on its way into a cache, as upstream's controller
/// manager and scheduler do with their informers' transform: no controller reads them, and they are
/// often a third of an object (10,000 pods cached by every component add up).
pub fn trim<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Waits until `store` holds its first complete list (at once if its watch has ended).
///
/// kube-runtime's readiness future keeps the waker of only the task that polled it last: when
/// several reconciles wait on one store at once, all but one would sleep until something else
/// polled them. Each waiter here therefore polls a fresh future every 100 ms.
pub async fn ready<K>(store: &Store<K>)
where
    K: reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready())
        .await
        .is_err()
    {}
}

/// A cache of every object of kind `K`, kept current by its own watch (for lookups that trigger no
/// reconcile).
pub fn store<K>(api: Api<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    use futures::StreamExt;
    let (store, events) = watched(api);
    tokio::spawn(events.for_each(|_| async {}));
    store
}

/// A mutex's guard, ignoring poisoning: a holder that panicked does not take every later user down.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bounds of a namespaced object a generic controller works on.
pub trait Namespaced:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// The owner reference a controller puts on what it creates (upstream's `NewControllerRef`).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner reference marked as controller, if any.
pub fn controller_of<K: Resource>(obj: &K) -> Option<&OwnerReference> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// How long an expectation is trusted before the controller acts again anyway (upstream's
/// ExpectationsTimeout), in case a watch event was lost.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Default)]
struct Pending {
    adds: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// Upstream's controller expectations, by object name rather than by count: the creations and
/// deletions a controller made that its cache has not shown yet. While any are outstanding the
/// controller only updates status, so two reconciles never create the same pods twice.
#[derive(Default, Clone)]
pub struct Expectations {
    pending: Arc<Mutex<HashMap<String, Pending>>>,
}

impl Expectations {
    /// Records that `names` were created (adds) or deleted under `key`.
    pub fn expect(&self, key: &str, adds: Vec<String>, deletes: Vec<String>) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = map.entry(key.to_string()).or_default();
        p.adds.extend(adds);
        p.deletes.extend(deletes);
        p.since = Some(Instant::now());
    }

    /// Whether the cache has caught up with everything expected under `key`: `present` says whether
    /// an object of that name is in the cache (and not yet terminating, for deletions).
    pub fn satisfied(&self, key: &str, present: impl Fn(&str) -> bool) -> bool {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = map.get_mut(key) else {
            return true;
        };
        p.adds.retain(|n| !present(n));
        p.deletes.retain(|n| present(n));
        let expired = p.since.is_some_and(|s| s.elapsed() > EXPECTATIONS_TIMEOUT);
        if (p.adds.is_empty() && p.deletes.is_empty()) || expired {
            map.remove(key);
            return true;
        }
        false
    }

    /// Drops what was expected under `key` (the owner is gone).
    pub fn forget(&self, key: &str) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

/// Writes `status` to the object's status subresource with an update (as upstream's UpdateStatus);
/// on a 409 reads the object again and retries from the fresh copy.
pub async fn write_status<K, S>(
    api: &Api<K>,
    obj: &K,
    status: S,
    set: fn(&mut K, S),
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    S: Clone,
{
    let name = obj.name_any();
    let mut current = obj.clone();
    for _ in 0..5 {
        set(&mut current, status.clone());
        match api
            .replace_status(&name, &PostParams::default(), &current)
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                current = match api.get_opt(&name).await? {
                    Some(fresh) => fresh,
                    None => return Ok(()),
                };
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A workload controller's selector; an empty one selects nothing (upstream), unlike a PDB's.
pub fn controller_selector(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Option<kube::core::Selector> {
    if s.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
    {
        return None;
    }
    kube::core::Selector::try_from(s.clone()).ok()
}

/// Deletes `victims` at once (each guarded by its UID) and records upstream's `SuccessfulDelete` /
/// `FailedDelete` on `owner`; a pod already gone is no failure. Expectations are the caller's.
pub async fn delete_pods<K: Resource<DynamicType = ()>>(
    api: &Api<k8s_openapi::api::core::v1::Pod>,
    recorder: &Recorder,
    owner: &K,
    victims: &[std::sync::Arc<k8s_openapi::api::core::v1::Pod>],
) {
    use kube::api::{DeleteParams, Preconditions};
    use kube::runtime::events::EventType;
    let results = futures::future::join_all(victims.iter().map(|p| {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: p.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        async move { (p.name_any(), api.delete(&p.name_any(), &dp).await) }
    }))
    .await;
    for (name, r) in results {
        let (type_, reason, note) = match r {
            Ok(_) => (
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => (
                EventType::Warning,
                "FailedDelete",
                format!("Error deleting: {e}"),
            ),
        };
        record(recorder, owner, type_, reason, "Delete", note).await;
    }
}

/// The `namespace/name` key of an object.
pub fn key_of<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
