//! The watch cache: every resource's current objects and recent changes, in memory.
//!
//! One storage watch on `/registry/` feeds all resources (the key prefix says which resource a change
//! belongs to). Because that single stream sees every revision in order, the cache knows exactly how far it
//! has caught up with the store ("progress"), which lets it serve consistent lists and watches from memory:
//! clients' watches and `resourceVersion=0` lists never touch storage. A bounded ring of recent events per
//! resource serves watches that resume from a resourceVersion; older ones get `410 Expired`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::storage::{EventType, KeyValue, Store, StoreError};

/// Events kept per resource for watches that resume from an older resourceVersion.
const EVENT_WINDOW: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change to one object, decoded once and shared by every watcher.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventKind,
    pub key: String,
    /// The object after the change (for Deleted: its last state, with the delete's resourceVersion).
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
    pub revision: i64,
}

#[derive(Default)]
struct CacheState {
    objects: BTreeMap<String, Arc<Value>>,
    events: VecDeque<Arc<CacheEvent>>,
    /// Every event of this resource with a revision above `oldest` is in `events`.
    oldest: i64,
    /// Revision of the last change applied to this resource.
    revision: i64,
}

/// One resource's objects and recent events.
pub struct ResourceCache {
    state: RwLock<CacheState>,
    tx: broadcast::Sender<Arc<CacheEvent>>,
}

/// What a watcher starts from: events to replay, then a live receiver.
pub struct Subscription {
    pub initial: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// The revision the initial state/replay reaches.
    pub revision: i64,
}

/// Why a watch can't start where it asked.
pub enum WatchStartError {
    TooOld { requested: i64, oldest: i64 },
}

/// Decodes a stored value and stamps its resourceVersion.
pub fn decode_object(kv: &KeyValue, revision: i64) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value).ok()?;
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
    Some(v)
}

impl ResourceCache {
    fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        ResourceCache {
            state: RwLock::new(CacheState::default()),
            tx,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one stored change; `object: None` with `deleted` removes the key.
    fn apply(&self, key: String, deleted: bool, object: Arc<Value>, revision: i64) {
        let mut st = self.write();
        let prev = st.objects.get(&key).cloned();
        let kind = match (deleted, &prev) {
            (true, _) => EventKind::Deleted,
            (false, Some(_)) => EventKind::Modified,
            (false, None) => EventKind::Added,
        };
        if deleted {
            st.objects.remove(&key);
        } else {
            st.objects.insert(key.clone(), object.clone());
        }
        let ev = Arc::new(CacheEvent {
            kind,
            key,
            object,
            prev,
            revision,
        });
        st.revision = revision;
        st.events.push_back(ev.clone());
        while st.events.len() > EVENT_WINDOW {
            if let Some(old) = st.events.pop_front() {
                st.oldest = old.revision;
            }
        }
        // Sent under the lock so a subscriber taken under the read lock sees no gap.
        let _ = self.tx.send(ev);
    }

    fn reset(&self, objects: BTreeMap<String, Arc<Value>>, revision: i64) {
        let mut st = self.write();
        st.objects = objects;
        st.events.clear();
        st.oldest = revision;
        st.revision = revision;
    }

    /// The revision of this resource's last change: derived state built from its objects is current
    /// as long as this has not moved.
    pub fn revision(&self) -> i64 {
        self.read().revision
    }

    /// The objects whose keys start with `prefix`, and the revision they are current at.
    pub fn list(&self, prefix: &str, progress: i64) -> (Vec<Arc<Value>>, i64) {
        let st = self.read();
        let items = st
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, st.revision.max(progress))
    }

    /// Starts a watch. `from: None` replays the current objects as ADDED events first (upstream's
    /// "most recent" / "any" watch); `Some(rv)` replays the events after `rv`.
    pub fn subscribe(
        &self,
        prefix: &str,
        from: Option<i64>,
        progress: &watch::Receiver<i64>,
    ) -> Result<Subscription, WatchStartError> {
        let st = self.read();
        let current = st.revision.max(*progress.borrow());
        let live = self.tx.subscribe();
        let initial = match from {
            None => st
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| {
                    Arc::new(CacheEvent {
                        kind: EventKind::Added,
                        key: k.clone(),
                        object: v.clone(),
                        prev: None,
                        revision: current,
                    })
                })
                .collect(),
            Some(rv) => {
                if rv < st.oldest {
                    return Err(WatchStartError::TooOld {
                        requested: rv,
                        oldest: st.oldest,
                    });
                }
                st.events
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(prefix))
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription {
            initial,
            live,
            revision: current,
        })
    }
}

/// All resources' caches, fed by one storage watch.
pub struct WatchCache {
    /// (storage prefix, cache), longest prefixes first so the first match is the most specific. Grows
    /// at run time when a CRD adds a resource ([`WatchCache::add_prefix`]); never shrinks.
    caches: RwLock<Vec<(String, Arc<ResourceCache>)>>,
    progress_tx: watch::Sender<i64>,
    progress_rx: watch::Receiver<i64>,
    ready_rx: watch::Receiver<bool>,
    ready_tx: watch::Sender<bool>,
}

impl WatchCache {
    pub fn new(prefixes: impl IntoIterator<Item = String>) -> Arc<Self> {
        let mut caches: Vec<(String, Arc<ResourceCache>)> = prefixes
            .into_iter()
            .map(|p| (p, Arc::new(ResourceCache::new())))
            .collect();
        caches.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        caches.dedup_by(|a, b| a.0 == b.0);
        let (progress_tx, progress_rx) = watch::channel(0);
        let (ready_tx, ready_rx) = watch::channel(false);
        Arc::new(WatchCache {
            caches: RwLock::new(caches),
            progress_tx,
            progress_rx,
            ready_rx,
            ready_tx,
        })
    }

    fn caches(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, Arc<ResourceCache>)>> {
        self.caches.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn resource(&self, prefix: &str) -> Option<Arc<ResourceCache>> {
        self.caches()
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, c)| c.clone())
    }

    /// Starts caching a resource added at run time (a CRD's). Its cache starts empty at the current
    /// progress: a resource just added has no objects yet (stored CRDs' resources are known before the
    /// first load, see [`super::start`]), and every later change under `prefix` is routed to it.
    pub fn add_prefix(&self, prefix: &str) {
        let mut caches = self.caches.write().unwrap_or_else(|e| e.into_inner());
        if caches.iter().any(|(p, _)| p == prefix) {
            return;
        }
        let cache = ResourceCache::new();
        let progress = *self.progress_rx.borrow();
        cache.reset(BTreeMap::new(), progress);
        caches.push((prefix.to_string(), Arc::new(cache)));
        caches.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    }

    /// The highest revision the cache has caught up to.
    pub fn progress(&self) -> i64 {
        *self.progress_rx.borrow()
    }

    pub fn progress_receiver(&self) -> watch::Receiver<i64> {
        self.progress_rx.clone()
    }

    pub fn is_ready(&self) -> bool {
        *self.ready_rx.borrow()
    }

    /// Waits until the cache has seen revision `rev`; false on timeout.
    pub async fn wait_for(&self, rev: i64, timeout: Duration) -> bool {
        let mut rx = self.progress_rx.clone();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= rev))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    /// Waits for the cache to be loaded the first time.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready_rx.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Loads everything, then follows the store's changes forever (reloading if the watch breaks).
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            let rev = match self.load(&store).await {
                Ok(rev) => rev,
                Err(e) => {
                    tracing::warn!("watch cache: initial list failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.progress_tx.send_replace(rev);
            self.ready_tx.send_replace(true);
            let mut stream = match store.watch("/registry/", rev).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("watch cache: watch failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => self.apply(ev),
                    Err(StoreError::Compacted { .. }) => {
                        tracing::warn!("watch cache: fell behind compaction, reloading");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("watch cache: watch error: {e}, reloading");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
            }
        }
    }

    async fn load(&self, store: &Arc<dyn Store>) -> crate::storage::Result<i64> {
        let caches: Vec<(String, Arc<ResourceCache>)> = self.caches().clone();
        let mut maps: Vec<BTreeMap<String, Arc<Value>>> = vec![BTreeMap::new(); caches.len()];
        let mut start: Option<String> = None;
        let mut revision = 0;
        loop {
            let page = store
                .range("/registry/", start.as_deref(), 5000, revision)
                .await?;
            revision = page.revision;
            for kv in &page.kvs {
                if let Some(i) = caches
                    .iter()
                    .position(|(p, _)| kv.key.starts_with(p.as_str()))
                {
                    if let Some(obj) = decode_object(kv, kv.mod_revision) {
                        maps[i].insert(kv.key.clone(), Arc::new(obj));
                    }
                }
            }
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => start = Some(format!("{}\0", last.key)),
                _ => break,
            }
        }
        for ((_, cache), map) in caches.iter().zip(maps) {
            cache.reset(map, revision);
        }
        Ok(revision)
    }

    fn apply(&self, ev: crate::storage::Event) {
        let revision = ev.kv.mod_revision;
        // Under the read lock, so that `add_prefix` sees either none or all of this event's effects.
        let caches = self.caches();
        if let Some((_, cache)) = caches
            .iter()
            .find(|(p, _)| ev.kv.key.starts_with(p.as_str()))
        {
            let deleted = ev.event_type == EventType::Delete;
            if let Some(object) = decode_object(&ev.kv, revision) {
                cache.apply(ev.kv.key.clone(), deleted, Arc::new(object), revision);
            }
        }
        self.progress_tx.send_replace(revision);
    }
}
