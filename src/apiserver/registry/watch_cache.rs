//! The watch cache: every resource's current objects and recent changes, in memory.
//!
//! One storage watch on `/registry/` feeds all resources (the key prefix says which resource a change
//! belongs to). Because that single stream sees every revision in order, the cache knows exactly how far it
//! has caught up with the store ("progress"), which lets it serve consistent lists and watches from memory:
//! clients' watches and `resourceVersion=0` lists never touch storage. A bounded window of recent events per
//! resource (bounded in events and in bytes) serves watches that resume from a resourceVersion; older ones
//! get `410 Expired`.
//!
//! Watchers do not get a queue of their own: each holds a cursor into its resource's window and reads the
//! shared events from there ([`LiveFeed`]), so a watcher that never reads costs no memory beyond the window.
//! A watcher that falls too far behind (its next event left the window, or more than
//! [`WATCHER_MAX_LAG_BYTES`] wait for it) is ended, as upstream ends a watcher that cannot keep up; its
//! client re-watches from the last resourceVersion it got (replayed from the window, or `410` and a
//! re-list). Nothing is skipped silently.
//!
//! The watchers share the encoding too: a recent event keeps its watch frames, one per event type and
//! wire format, made by the first watcher that needs one ([`CacheEvent::frame`], upstream's
//! cachingObject), so a thousand watchers of a change serialize it once.
//!
//! Objects are kept compact ([`CachedObject`]): their served JSON and a small view for selectors. A
//! recent event also holds its decoded tree, so that the watchers it is sent to decode nothing.
//!
//! When the storage watch breaks, the cache re-watches from the last revision it applied, so that open
//! watches continue exactly. Only when that is impossible (the store compacted past it) does the cache
//! reload: it lists everything again in pages at one revision, and every open watch is ended (each
//! resource's generation changes), since the changes in the gap can't be replayed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

use super::cached_object::{CachedObject, ViewFields};
use crate::storage::{EventType, KeyValue, Store, StoreError};

/// Events kept per resource for watches that resume from an older resourceVersion...
const EVENT_WINDOW: usize = 10_000;
/// ...and by default at most this many stored bytes of them (`--watch-cache-bytes`), so that large
/// objects can't make the window (and the watchers reading it) hold gigabytes.
pub const WINDOW_BYTES: usize = 64 << 20;
/// A watcher with more than this many stored bytes of events not yet taken is ended (its client
/// re-watches): a slow reader can't make the server hold more for it, and is told rather than skipped.
pub const WATCHER_MAX_LAG_BYTES: u64 = 8 << 20;
/// Events whose encoded watch frames and decoded trees are kept for the watchers still to be sent
/// them; a watcher further behind encodes its own (kept for every event of the window, they would
/// multiply its memory).
const FRAMES_KEPT: usize = 256;
/// Events a watcher takes from the window at a time.
const TAKE_BATCH: usize = 64;
/// Keys per page of the initial list. etcd's objects are up to ~1.5 MiB, so no fixed count fits every
/// gRPC message limit: a page that fails for size is halved (down to one key) and grows back later.
const PAGE_KEYS: usize = 500;
/// Consecutive good pages before a halved page size is doubled again.
const PAGE_GROW_AFTER: u32 = 8;

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

/// One change to one object, kept once (see [`CachedObject`]) and shared by every watcher.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventKind,
    pub key: String,
    /// The object after the change (for Deleted: its last state, with the delete's resourceVersion).
    pub object: Arc<CachedObject>,
    pub prev: Option<Arc<CachedObject>>,
    pub revision: i64,
    /// Stored size of the object (what the window's and watchers' byte bounds count).
    size: usize,
    /// Stored bytes of every event of this resource up to and including this one.
    end_offset: u64,
    /// Watch frames of this event already encoded, by event type and media type.
    frames: Frames,
}

/// A recent event's encoded watch frames: each is encoded by the first watcher that needs it and
/// shared by every other (upstream's cachingObject), so a thousand watchers cost one encoding.
/// One encoded watch frame: (event type, media type, bytes).
type Frame = (&'static str, &'static str, bytes::Bytes);

#[derive(Debug, Default)]
struct Frames {
    encoded: Mutex<Vec<Frame>>,
    /// Set once the event is [`FRAMES_KEPT`] events old: nothing more is kept.
    cold: AtomicBool,
}

impl CacheEvent {
    /// The watch frame of this event as `event_type` (a filtered watcher may see a change as ADDED
    /// or DELETED) in `media_type`, encoded by `encode` only if no watcher has encoded it yet. The
    /// lock is held while encoding, so watchers that ask at once wait for the one encoding.
    pub fn frame(
        &self,
        event_type: &'static str,
        media_type: &'static str,
        encode: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<bytes::Bytes, String> {
        if self.frames.cold.load(Ordering::Relaxed) {
            return encode().map(bytes::Bytes::from);
        }
        let mut encoded = self
            .frames
            .encoded
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, b)) = encoded
            .iter()
            .find(|(t, m, _)| *t == event_type && *m == media_type)
        {
            return Ok(b.clone());
        }
        let b = bytes::Bytes::from(encode()?);
        if !self.frames.cold.load(Ordering::Relaxed) {
            encoded.push((event_type, media_type, b.clone()));
        }
        Ok(b)
    }

    /// Stops keeping frames, and the object's tree ([`CachedObject::release`]); returns them (to be
    /// freed outside the cache's lock).
    fn cool(&self) -> (Vec<Frame>, Option<Arc<Value>>) {
        self.frames.cold.store(true, Ordering::Relaxed);
        let frames = std::mem::take(
            &mut *self
                .frames
                .encoded
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        (frames, self.object.release())
    }
}

#[derive(Default)]
struct CacheState {
    objects: BTreeMap<String, Arc<CachedObject>>,
    events: VecDeque<Arc<CacheEvent>>,
    /// Every event of this resource with a revision above `oldest` is in `events`.
    oldest: i64,
    /// Revision of the last change applied to this resource.
    revision: i64,
    /// Sequence number of `events.front()`: `events[i]` is event number `first_seq + i`.
    first_seq: u64,
    /// Stored bytes of the events in `events`.
    window_bytes: usize,
    /// Stored bytes of every event applied so far (`end_offset` of the newest).
    total_bytes: u64,
    /// Changes at every reload: a watcher started on another generation can't continue exactly.
    generation: u64,
}

impl CacheState {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }
}

/// One resource's objects and recent events.
pub struct ResourceCache {
    state: RwLock<CacheState>,
    /// Bumped after every change to `state`: wakes the watchers ([`LiveFeed`]).
    changed: watch::Sender<()>,
    /// The window's bound in stored bytes.
    window_bytes: AtomicUsize,
    /// The selectable fields the objects' views hold (grows when a CRD adds selectable fields).
    fields: RwLock<Arc<ViewFields>>,
}

/// What a watcher starts from: events to replay, then the live feed.
pub struct Subscription {
    pub initial: Vec<Arc<CacheEvent>>,
    pub live: LiveFeed,
    /// The revision the initial state/replay reaches.
    pub revision: i64,
}

/// Why a watch can't start where it asked.
pub enum WatchStartError {
    TooOld { requested: i64, oldest: i64 },
}

/// Why a live feed ended: its watch can't continue exactly and must end (the client re-watches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnded {
    /// The cache reloaded: changes in the gap can't be replayed.
    Reloaded,
    /// The watcher fell behind: its next event left the window, or too many bytes wait for it.
    Lagged,
}

/// A watcher's position in its resource's event window: every event after the subscription, in order.
pub struct LiveFeed {
    cache: Arc<ResourceCache>,
    generation: u64,
    /// Sequence number of the next event to take from the window.
    seq: u64,
    /// `end_offset` of the last event taken (what the lag in bytes is measured from).
    taken_bytes: u64,
    /// Taken from the window but not yet handed out.
    buffer: VecDeque<Arc<CacheEvent>>,
    changed: watch::Receiver<()>,
}

impl LiveFeed {
    /// The next event; waits for one. Cancel-safe (nothing is lost if the future is dropped).
    pub async fn next(&mut self) -> Result<Arc<CacheEvent>, FeedEnded> {
        loop {
            if let Some(ev) = self.buffer.pop_front() {
                return Ok(ev);
            }
            // Marked seen before looking, so a change made after the look wakes the wait below.
            self.changed.borrow_and_update();
            self.take()?;
            if !self.buffer.is_empty() {
                continue;
            }
            if self.changed.changed().await.is_err() {
                // The cache is gone (the server is stopping).
                return Err(FeedEnded::Reloaded);
            }
        }
    }

    /// Moves the events after the cursor (a batch) into the buffer.
    fn take(&mut self) -> Result<(), FeedEnded> {
        let st = self.cache.read();
        if st.generation != self.generation {
            return Err(FeedEnded::Reloaded);
        }
        if self.seq == st.next_seq() {
            return Ok(());
        }
        if self.seq < st.first_seq {
            return Err(FeedEnded::Lagged);
        }
        let from = usize::try_from(self.seq - st.first_seq).unwrap_or(usize::MAX);
        // Counted after the next event, so that one event larger than the bound still gets through.
        let next_end = st.events.get(from).map_or(st.total_bytes, |e| e.end_offset);
        if st.total_bytes.saturating_sub(next_end) > WATCHER_MAX_LAG_BYTES {
            return Err(FeedEnded::Lagged);
        }
        for ev in st.events.range(from..).take(TAKE_BATCH) {
            self.buffer.push_back(ev.clone());
            self.seq += 1;
            self.taken_bytes = ev.end_offset;
        }
        Ok(())
    }

    /// True when every event applied so far has been handed out: only then may a bookmark carry the
    /// cache's progress (a later revision than this watcher's last event).
    pub fn drained(&self) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        let st = self.cache.read();
        st.generation == self.generation && self.seq == st.next_seq()
    }

    /// Drops whatever is pending (for a follower that only needs to know that something changed).
    pub fn skip_pending(&mut self) {
        self.buffer.clear();
        let st = self.cache.read();
        if st.generation == self.generation && self.seq >= st.first_seq {
            self.seq = st.next_seq();
            self.taken_bytes = st.total_bytes;
        }
    }
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
    fn new(window_bytes: usize, fields: Arc<ViewFields>) -> Self {
        let (changed, _) = watch::channel(());
        ResourceCache {
            state: RwLock::new(CacheState::default()),
            changed,
            window_bytes: AtomicUsize::new(window_bytes),
            fields: RwLock::new(fields),
        }
    }

    fn view_fields(&self) -> Arc<ViewFields> {
        self.fields
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Keeps stored value `stored` compact (see [`CachedObject`]); a tree decoded for it is held
    /// (while its change is recent) if `hold`. `None` if it is not JSON.
    fn compact(&self, stored: &[u8], revision: i64, hold: bool) -> Option<Arc<CachedObject>> {
        CachedObject::from_stored(stored, revision, &self.view_fields(), hold).map(Arc::new)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one stored change (`deleted` removes the key); `size` is the stored value's length.
    fn apply(
        &self,
        key: String,
        deleted: bool,
        object: Arc<CachedObject>,
        revision: i64,
        size: usize,
    ) {
        let evicted = {
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
            st.total_bytes += size as u64;
            let ev = Arc::new(CacheEvent {
                kind,
                key,
                object,
                prev,
                revision,
                size,
                end_offset: st.total_bytes,
                frames: Frames::default(),
            });
            st.revision = revision;
            st.window_bytes += size;
            st.events.push_back(ev);
            let cooled = st
                .events
                .len()
                .checked_sub(FRAMES_KEPT + 1)
                .and_then(|i| st.events.get(i))
                .map(|e| e.cool());
            let mut evicted = Vec::new();
            let window_bytes = self.window_bytes.load(Ordering::Relaxed);
            while st.events.len() > EVENT_WINDOW
                || (st.window_bytes > window_bytes && st.events.len() > 1)
            {
                let Some(old) = st.events.pop_front() else {
                    break;
                };
                st.first_seq += 1;
                st.window_bytes -= old.size;
                st.oldest = old.revision;
                evicted.push(old);
            }
            (evicted, cooled)
        };
        self.changed.send_replace(());
        // Freed outside the lock; an event the byte bound evicted while still recent lets go of its
        // object's tree (the object may stay, as the current version).
        for ev in &evicted.0 {
            ev.cool();
        }
        drop(evicted);
    }

    /// Replaces the state with a fresh load at `revision`. Watchers of the previous state end: the
    /// changes between what they saw and `revision` can't be replayed.
    fn reset(&self, objects: BTreeMap<String, Arc<CachedObject>>, revision: i64) {
        let old = {
            let mut st = self.write();
            let old_events = std::mem::take(&mut st.events);
            st.first_seq += old_events.len() as u64;
            st.window_bytes = 0;
            st.oldest = revision;
            st.revision = revision;
            st.generation += 1;
            (std::mem::replace(&mut st.objects, objects), old_events)
        };
        self.changed.send_replace(());
        // The previous state is freed outside the lock (dropping 100,000 objects takes a while). Its
        // recent events let go of their objects' trees: a reload may keep those objects.
        for ev in &old.1 {
            ev.cool();
        }
        drop(old);
    }

    /// The object stored under `key` if it is the version written at `revision` (a reload reuses it
    /// rather than holding a second copy).
    fn object_at(&self, key: &str, revision: i64) -> Option<Arc<CachedObject>> {
        let st = self.read();
        let obj = st.objects.get(key)?;
        (obj.revision() == revision).then(|| obj.clone())
    }

    /// The revision of this resource's last change: derived state built from its objects is current
    /// as long as this has not moved.
    pub fn revision(&self) -> i64 {
        self.read().revision
    }

    /// How many objects the resource has.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The object stored under `key`, if any, decoded.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        let obj = self.read().objects.get(key).cloned()?;
        Some(obj.tree())
    }

    /// The objects whose keys start with `prefix`, decoded, and the revision they are current at.
    pub fn list(&self, prefix: &str, progress: i64) -> (Vec<Arc<Value>>, i64) {
        let (items, revision) = self.list_cached(prefix, progress);
        (items.iter().map(|o| o.tree()).collect(), revision)
    }

    /// [`Self::list`] as cached: nothing decoded (for a JSON list, or a look at the views).
    pub fn list_cached(&self, prefix: &str, progress: i64) -> (Vec<Arc<CachedObject>>, i64) {
        let st = self.read();
        let items = st
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, st.revision.max(progress))
    }

    /// Whether an object whose key starts with `prefix` satisfies `f`. The objects are visited under
    /// the read lock, not copied: for checks that look at many objects (at their views first) and
    /// keep none.
    pub fn any(&self, prefix: &str, mut f: impl FnMut(&CachedObject) -> bool) -> bool {
        let st = self.read();
        st.objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .any(|(_, v)| f(v))
    }

    /// Starts a watch. `from: None` replays the current objects as ADDED events first (upstream's
    /// "most recent" / "any" watch); `Some(rv)` replays the events after `rv`.
    pub fn subscribe(
        self: &Arc<Self>,
        prefix: &str,
        from: Option<i64>,
        progress: &watch::Receiver<i64>,
    ) -> Result<Subscription, WatchStartError> {
        let changed = self.changed.subscribe();
        let st = self.read();
        let current = st.revision.max(*progress.borrow());
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
                        size: 0,
                        end_offset: 0,
                        // This watcher's own: nobody shares its frames.
                        frames: Frames {
                            cold: AtomicBool::new(true),
                            ..Frames::default()
                        },
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
        let live = LiveFeed {
            cache: self.clone(),
            generation: st.generation,
            seq: st.next_seq(),
            taken_bytes: st.total_bytes,
            buffer: VecDeque::new(),
            changed,
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
    /// False while the cache (re)loads: its state is not one the store had.
    loaded: std::sync::atomic::AtomicBool,
    /// Each resource's event window bound in stored bytes (`--watch-cache-bytes`).
    window_bytes: AtomicUsize,
}

impl WatchCache {
    /// Caches for these storage prefixes, each with the selectable fields its objects' views hold
    /// (a prefix given twice holds both's).
    pub fn new(prefixes: impl IntoIterator<Item = (String, Arc<ViewFields>)>) -> Arc<Self> {
        let mut fields: BTreeMap<String, Arc<ViewFields>> = BTreeMap::new();
        for (p, f) in prefixes {
            let merged = match fields.get(&p) {
                Some(old) => old.union(&f),
                None => f,
            };
            fields.insert(p, merged);
        }
        let mut caches: Vec<(String, Arc<ResourceCache>)> = fields
            .into_iter()
            .map(|(p, f)| (p, Arc::new(ResourceCache::new(WINDOW_BYTES, f))))
            .collect();
        caches.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let (progress_tx, progress_rx) = watch::channel(0);
        let (ready_tx, ready_rx) = watch::channel(false);
        Arc::new(WatchCache {
            caches: RwLock::new(caches),
            progress_tx,
            progress_rx,
            ready_rx,
            ready_tx,
            loaded: std::sync::atomic::AtomicBool::new(false),
            window_bytes: AtomicUsize::new(WINDOW_BYTES),
        })
    }

    /// Bounds every resource's event window (and those added later) to `bytes` of stored objects
    /// (at least the newest event is kept, however large). A watch resuming from before the window
    /// answers 410 Expired, as when the window's count runs out.
    pub fn set_window_bytes(&self, bytes: usize) {
        self.window_bytes.store(bytes, Ordering::Relaxed);
        for (_, cache) in self.caches().iter() {
            cache.window_bytes.store(bytes, Ordering::Relaxed);
        }
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
    /// first load, see [`crate::apiserver::start`]), and every later change under `prefix` is routed to it.
    /// For a prefix already cached, `fields` are added to those its views hold.
    pub fn add_prefix(&self, prefix: &str, fields: Arc<ViewFields>) {
        let mut caches = self.caches.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, cache)) = caches.iter().find(|(p, _)| p == prefix) {
            let mut held = cache.fields.write().unwrap_or_else(|e| e.into_inner());
            *held = held.union(&fields);
            return;
        }
        let cache = ResourceCache::new(self.window_bytes.load(Ordering::Relaxed), fields);
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

    /// True while the cache is loaded and following the store (false while it loads, reloads, or
    /// re-establishes a broken storage watch).
    pub fn is_ready(&self) -> bool {
        *self.ready_rx.borrow()
    }

    /// False while the cache loads or reloads (upstream's cacher answers watches `429` meanwhile);
    /// unlike [`WatchCache::is_ready`], stays true while a broken storage watch is being resumed.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the cache has seen revision `rev`; false on timeout.
    pub async fn wait_for(&self, rev: i64, timeout: Duration) -> bool {
        let mut rx = self.progress_rx.clone();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= rev))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }

    /// Waits until the cache is ready ([`WatchCache::is_ready`]).
    pub async fn wait_ready(&self) {
        let mut rx = self.ready_rx.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Loads everything, then follows the store's changes forever: a broken storage watch is resumed
    /// from the last applied revision; the cache reloads only when the store compacted past it.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            self.ready_tx.send_replace(false);
            self.loaded
                .store(false, std::sync::atomic::Ordering::SeqCst);
            let rev = match self.load(&store).await {
                Ok(rev) => rev,
                // The revision being paged was compacted meanwhile: start over at once.
                Err(StoreError::Compacted { .. }) => continue,
                Err(e) => {
                    tracing::warn!("watch cache: initial list failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.progress_tx.send_replace(rev);
            self.loaded.store(true, std::sync::atomic::Ordering::SeqCst);
            self.follow(&store).await;
            tracing::warn!("watch cache: fell behind compaction, reloading");
        }
    }

    /// Applies the store's changes from the current progress on, re-watching from where it stopped
    /// whenever the storage watch breaks. Returns when the cache must reload (the store compacted
    /// past its progress).
    async fn follow(&self, store: &Arc<dyn Store>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let from = self.progress();
            let mut stream = match store.watch("/registry/", from).await {
                Ok(s) => s,
                Err(StoreError::Compacted { .. }) => return,
                Err(e) => {
                    self.ready_tx.send_replace(false);
                    tracing::warn!("watch cache: watch from revision {from} failed: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            self.ready_tx.send_replace(true);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => {
                        backoff = Duration::from_millis(200);
                        self.apply(ev);
                    }
                    Err(StoreError::Compacted { .. }) => return,
                    Err(e) => {
                        tracing::warn!(
                            "watch cache: watch error: {e}; resuming from {}",
                            self.progress()
                        );
                        break;
                    }
                }
            }
            // The stream ended or failed: not following until a new one is established.
            self.ready_tx.send_replace(false);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Lists every key under `/registry/` at one revision, in pages, and replaces each resource's
    /// state. Objects unchanged since the previous load are shared with it, not decoded again, so a
    /// reload holds one copy of them; the replaced state is freed as soon as each resource is reset.
    async fn load(&self, store: &Arc<dyn Store>) -> crate::storage::Result<i64> {
        let started = Instant::now();
        loop {
            let caches: Vec<(String, Arc<ResourceCache>)> = self.caches().clone();
            let mut maps: Vec<BTreeMap<String, Arc<CachedObject>>> =
                vec![BTreeMap::new(); caches.len()];
            let mut start: Option<String> = None;
            let mut revision = 0;
            let mut limit = PAGE_KEYS;
            let mut good_pages = 0u32;
            let (mut pages, mut keys) = (0u64, 0u64);
            loop {
                let page = match store
                    .range("/registry/", start.as_deref(), limit, revision)
                    .await
                {
                    Ok(p) => p,
                    Err(e) if limit > 1 && too_large(&e) => {
                        limit /= 2;
                        good_pages = 0;
                        tracing::info!(
                            "watch cache: a page was too large ({e}); now {limit} keys a page"
                        );
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                pages += 1;
                keys += page.kvs.len() as u64;
                revision = page.revision;
                for kv in page.kvs.iter() {
                    let Some(i) = caches
                        .iter()
                        .position(|(p, _)| kv.key.starts_with(p.as_str()))
                    else {
                        continue;
                    };
                    let cache = &caches[i].1;
                    let obj = match cache.object_at(&kv.key, kv.mod_revision) {
                        Some(same) => same,
                        None => match cache.compact(&kv.value, kv.mod_revision, false) {
                            Some(obj) => obj,
                            None => continue,
                        },
                    };
                    maps[i].insert(kv.key.clone(), obj);
                }
                let last = match (page.more, page.kvs.last()) {
                    (true, Some(last)) => last.key.clone(),
                    _ => break,
                };
                start = Some(format!("{last}\0"));
                good_pages += 1;
                if limit < PAGE_KEYS && good_pages >= PAGE_GROW_AFTER {
                    limit = (limit * 2).min(PAGE_KEYS);
                    good_pages = 0;
                }
            }
            if self.caches().len() != caches.len() {
                // A CRD added a resource while this was paging: its keys may have been skipped.
                continue;
            }
            for ((_, cache), map) in caches.iter().zip(maps) {
                cache.reset(map, revision);
            }
            tracing::info!(
                "watch cache: loaded {keys} keys at revision {revision} in {pages} pages ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
            return Ok(revision);
        }
    }

    /// Applies one change from the storage watch (tests feed it directly).
    pub(crate) fn apply(&self, ev: crate::storage::Event) {
        let revision = ev.kv.mod_revision;
        // Under the read lock, so that `add_prefix` sees either none or all of this event's effects.
        let caches = self.caches();
        if let Some((_, cache)) = caches
            .iter()
            .find(|(p, _)| ev.kv.key.starts_with(p.as_str()))
        {
            let deleted = ev.event_type == EventType::Delete;
            if let Some(object) = cache.compact(&ev.kv.value, revision, true) {
                let size = ev.kv.value.len();
                cache.apply(ev.kv.key, deleted, object, revision, size);
            }
        }
        self.progress_tx.send_replace(revision);
    }
}

/// True when a range failed because its answer was too large to receive (gRPC's message limit), as
/// opposed to the store being unreachable: a smaller page will do.
fn too_large(e: &StoreError) -> bool {
    let StoreError::Other(text) = e else {
        return false;
    };
    let text = text.to_ascii_lowercase();
    text.contains("message length too large")
        || text.contains("outofrange")
        || text.contains("resourceexhausted")
        || text.contains("larger than max")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedStore;
    use crate::storage::{Event, RangeResult, WatchStream};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    const PREFIX: &str = "/registry/configmaps/";
    const WAIT: Duration = Duration::from_secs(10);

    /// A store wrapper that breaks the cache's storage watch on demand: its watch never delivers keys
    /// named `hidden-*` (a gap the cache can't see), `fail_with` ends the open watch with an error, `refuse` makes
    /// new watches fail; `page_limit` fails ranges asking for more keys as gRPC does for too large a
    /// message, and every range's revision is recorded.
    struct Flaky {
        inner: Arc<dyn Store>,
        refuse: AtomicBool,
        breaker: Mutex<Option<tokio::sync::oneshot::Sender<StoreError>>>,
        page_limit: AtomicUsize,
        ranges: Mutex<Vec<(usize, i64)>>,
    }

    impl Flaky {
        fn new(inner: Arc<dyn Store>) -> Arc<Self> {
            Arc::new(Flaky {
                inner,
                refuse: AtomicBool::new(false),
                breaker: Mutex::new(None),
                page_limit: AtomicUsize::new(usize::MAX),
                ranges: Mutex::new(Vec::new()),
            })
        }

        fn fail_with(&self, e: StoreError) {
            let tx = self.breaker.lock().unwrap().take();
            tx.expect("a storage watch is open").send(e).unwrap();
        }
    }

    #[async_trait]
    impl Store for Flaky {
        async fn get(&self, key: &str) -> crate::storage::Result<(Option<KeyValue>, i64)> {
            self.inner.get(key).await
        }
        async fn range(
            &self,
            prefix: &str,
            start: Option<&str>,
            limit: usize,
            revision: i64,
        ) -> crate::storage::Result<RangeResult> {
            self.ranges.lock().unwrap().push((limit, revision));
            if limit == 0 || limit > self.page_limit.load(Ordering::SeqCst) {
                return Err(StoreError::Other(
                    "etcd: grpc request error: status: OutOfRange, message: \"Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes\"".into(),
                ));
            }
            self.inner.range(prefix, start, limit, revision).await
        }
        async fn count(&self, prefix: &str) -> crate::storage::Result<i64> {
            self.inner.count(prefix).await
        }
        async fn create(&self, key: &str, value: Vec<u8>) -> crate::storage::Result<i64> {
            self.inner.create(key, value).await
        }
        async fn update(
            &self,
            key: &str,
            value: Vec<u8>,
            expected: i64,
        ) -> crate::storage::Result<i64> {
            self.inner.update(key, value, expected).await
        }
        async fn delete(
            &self,
            key: &str,
            expected: Option<i64>,
        ) -> crate::storage::Result<(i64, KeyValue)> {
            self.inner.delete(key, expected).await
        }
        async fn current_revision(&self) -> crate::storage::Result<i64> {
            self.inner.current_revision().await
        }
        async fn watch(&self, prefix: &str, after: i64) -> crate::storage::Result<WatchStream> {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(StoreError::Other("connection refused".into()));
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            *self.breaker.lock().unwrap() = Some(tx);
            let events = self.inner.watch(prefix, after).await?.filter(|e| {
                let hidden = e.as_ref().is_ok_and(|e| e.kv.key.contains("/hidden-"));
                futures::future::ready(!hidden)
            });
            let broken = futures::stream::once(rx).filter_map(|r| async move { r.ok().map(Err) });
            // Events until the breaker fires; then its error, and the end of the stream.
            Ok(futures::stream::select(
                events.map(Some),
                broken
                    .map(Some)
                    .chain(futures::stream::once(async { None })),
            )
            .take_while(|x| futures::future::ready(x.is_some()))
            .filter_map(futures::future::ready)
            .scan(false, |done, item: crate::storage::Result<Event>| {
                if *done {
                    return futures::future::ready(None);
                }
                *done = item.is_err();
                futures::future::ready(Some(item))
            })
            .boxed())
        }
        async fn compact(&self, revision: i64) -> crate::storage::Result<()> {
            self.inner.compact(revision).await
        }
    }

    fn configmap(name: &str, size: usize) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns"},
            "data": {"payload": "x".repeat(size)},
        }))
        .unwrap()
    }

    async fn create(store: &Arc<Flaky>, name: &str) -> i64 {
        store
            .create(&format!("{PREFIX}ns/{name}"), configmap(name, 10))
            .await
            .unwrap()
    }

    fn name_of(ev: &CacheEvent) -> String {
        ev.object.view()["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    async fn next(feed: &mut LiveFeed) -> Result<Arc<CacheEvent>, FeedEnded> {
        tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("the feed answers within 10s")
    }

    async fn started() -> (tempfile::TempDir, Arc<Flaky>, Arc<WatchCache>) {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> = EmbeddedStore::open(dir.path()).unwrap();
        let store = Flaky::new(inner);
        let cache = WatchCache::new([(PREFIX.to_string(), ViewFields::default().into())]);
        tokio::spawn(cache.clone().run(store.clone()));
        tokio::time::timeout(WAIT, cache.wait_ready())
            .await
            .expect("ready");
        (dir, store, cache)
    }

    /// The cache's storage watch breaks while changes it never saw were made and it must reload: the
    /// open watcher is ended (never handed a silent gap), resuming from its last revision is refused
    /// as too old, and a fresh start shows everything.
    #[tokio::test]
    async fn reload_ends_open_watchers() {
        let (_dir, store, cache) = started().await;
        let rc = cache.resource(PREFIX).unwrap();
        let a = create(&store, "a").await;
        assert!(cache.wait_for(a, WAIT).await);
        let progress = cache.progress_receiver();
        let Ok(sub) = rc.subscribe(PREFIX, Some(a), &progress) else {
            panic!("subscribe from {a}")
        };
        let mut live = sub.live;
        let b = create(&store, "b").await;
        assert_eq!(name_of(&next(&mut live).await.unwrap()), "b");
        // A gap: "c" is written but the cache's watch drops it, then the watch says "compacted".
        let c = create(&store, "hidden-c").await;
        store.fail_with(StoreError::Compacted { compacted: c });
        assert_eq!(next(&mut live).await.unwrap_err(), FeedEnded::Reloaded);
        assert!(cache.wait_for(c, WAIT).await);
        tokio::time::timeout(WAIT, cache.wait_ready())
            .await
            .unwrap();
        assert!(matches!(
            rc.subscribe(PREFIX, Some(b), &progress),
            Err(WatchStartError::TooOld { .. })
        ));
        let (items, _) = rc.list(PREFIX, cache.progress());
        let names: Vec<_> = items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a", "b", "hidden-c"]);
        // The new state is followed: a watcher started after the reload gets what comes next.
        let Ok(sub) = rc.subscribe(PREFIX, None, &progress) else {
            panic!("subscribe after the reload")
        };
        assert_eq!(sub.initial.len(), 3);
        let mut live = sub.live;
        create(&store, "d").await;
        assert_eq!(name_of(&next(&mut live).await.unwrap()), "d");
    }

    /// A storage watch that fails (not compacted) is resumed from the last applied revision: the
    /// open watcher gets every change, including those made while no storage watch was open, and the
    /// cache reports not ready meanwhile.
    #[tokio::test]
    async fn broken_watch_resumes_exactly() {
        let (_dir, store, cache) = started().await;
        let rc = cache.resource(PREFIX).unwrap();
        let a = create(&store, "a").await;
        assert!(cache.wait_for(a, WAIT).await);
        let progress = cache.progress_receiver();
        let Ok(sub) = rc.subscribe(PREFIX, Some(a), &progress) else {
            panic!("subscribe from {a}")
        };
        let mut live = sub.live;
        store.refuse.store(true, Ordering::SeqCst);
        store.fail_with(StoreError::Other("connection reset".into()));
        let mut ready = cache.ready_rx.clone();
        tokio::time::timeout(WAIT, ready.wait_for(|r| !*r))
            .await
            .expect("not ready while the storage watch is down")
            .unwrap();
        for name in ["b", "c", "d"] {
            create(&store, name).await;
        }
        store.refuse.store(false, Ordering::SeqCst);
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(name_of(&next(&mut live).await.unwrap()));
        }
        assert_eq!(got, ["b", "c", "d"]);
        tokio::time::timeout(WAIT, cache.wait_ready())
            .await
            .unwrap();
        create(&store, "e").await;
        assert_eq!(name_of(&next(&mut live).await.unwrap()), "e");
    }

    /// The initial list pages at one revision; a page refused as too large is halved until it fits,
    /// and writes made while paging are not in the list (they come from the watch after it).
    #[tokio::test]
    async fn load_halves_pages_that_are_too_large_and_keeps_one_revision() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> = EmbeddedStore::open(dir.path()).unwrap();
        let store = Flaky::new(inner);
        for i in 0..300 {
            create(&store, &format!("cm-{i:03}")).await;
        }
        store.page_limit.store(40, Ordering::SeqCst);
        let cache = WatchCache::new([(PREFIX.to_string(), ViewFields::default().into())]);
        let rev = cache
            .load(&(store.clone() as Arc<dyn Store>))
            .await
            .unwrap();
        let ranges = store.ranges.lock().unwrap().clone();
        assert_eq!(ranges[0], (PAGE_KEYS, 0));
        // 500 → 250 → 125 → 62 → 31 (fits), never more than the limit after that... until it grows back.
        let fitting: Vec<_> = ranges.iter().filter(|(l, _)| *l <= 40).collect();
        assert!(fitting.iter().skip(1).all(|(_, r)| *r == rev), "{ranges:?}");
        assert!(ranges.iter().any(|(l, _)| *l == 31), "{ranges:?}");
        let rc = cache.resource(PREFIX).unwrap();
        assert_eq!(rc.list(PREFIX, rev).0.len(), 300);
        // All pages read at the first page's revision: a write in between is not listed.
        store.ranges.lock().unwrap().clear();
        store.page_limit.store(usize::MAX, Ordering::SeqCst);
        let extra = create(&store, "zz-late").await;
        assert!(extra > rev);
        let again = cache
            .load(&(store.clone() as Arc<dyn Store>))
            .await
            .unwrap();
        assert_eq!(again, extra);
        assert_eq!(rc.list(PREFIX, again).0.len(), 301);
        // An unchanged object is shared with the previous load, not decoded again.
        let key = format!("{PREFIX}ns/cm-000");
        let before = rc.read().objects.get(&key).cloned().unwrap();
        cache
            .load(&(store.clone() as Arc<dyn Store>))
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&before, rc.read().objects.get(&key).unwrap()));
    }

    fn event(key: &str, revision: i64, size: usize) -> Event {
        Event {
            event_type: EventType::Put,
            kv: KeyValue {
                key: key.to_string(),
                value: configmap(key.rsplit('/').next().unwrap_or(key), size),
                create_revision: revision,
                mod_revision: revision,
                stale: false,
            },
            prev: None,
        }
    }

    /// A cache of PREFIX whose views hold `fields`, and its first event (`ns/first` at revision 1) as
    /// a watcher from revision 0 is handed it.
    async fn first_event(fields: Arc<ViewFields>) -> (Arc<WatchCache>, Arc<CacheEvent>) {
        let cache = WatchCache::new([(PREFIX.to_string(), fields)]);
        let rc = cache.resource(PREFIX).unwrap();
        let progress = cache.progress_receiver();
        let Ok(sub) = rc.subscribe(PREFIX, Some(0), &progress) else {
            panic!("subscribe")
        };
        let mut live = sub.live;
        cache.apply(event(&format!("{PREFIX}ns/first"), 1, 10));
        let first = live.next().await.unwrap();
        (cache, first)
    }

    /// Applies FRAMES_KEPT more events after [`first_event`]'s, so that it is no longer recent.
    fn age_past_frames_kept(cache: &WatchCache) {
        for i in 0..FRAMES_KEPT as i64 {
            cache.apply(event(&format!("{PREFIX}ns/cm-{i}"), i + 2, 10));
        }
    }

    /// Every watcher of an event gets the one encoding of it per event type and media type; once the
    /// event is FRAMES_KEPT events old, a late watcher encodes its own and nothing more is kept.
    #[tokio::test]
    async fn frames_are_encoded_once_while_recent() {
        let (cache, first) = first_event(ViewFields::default().into()).await;
        let encodings = std::sync::atomic::AtomicUsize::new(0);
        let encode = |tag: &'static str| {
            encodings.fetch_add(1, Ordering::SeqCst);
            Ok(tag.as_bytes().to_vec())
        };
        for _ in 0..3 {
            let b = first.frame("ADDED", "application/json", || encode("json"));
            assert_eq!(b.unwrap(), "json");
        }
        assert_eq!(encodings.load(Ordering::SeqCst), 1);
        // Another event type (a filtered watcher's view) or media type is its own frame.
        let b = first.frame("DELETED", "application/json", || encode("deleted"));
        assert_eq!(b.unwrap(), "deleted");
        let b = first.frame(
            "ADDED",
            "application/vnd.kubernetes.protobuf;stream=watch",
            || encode("pb"),
        );
        assert_eq!(b.unwrap(), "pb");
        assert_eq!(encodings.load(Ordering::SeqCst), 3);
        age_past_frames_kept(&cache);
        let b = first.frame("ADDED", "application/json", || encode("again"));
        assert_eq!(b.unwrap(), "again", "an old event's frames are not kept");
        let b = first.frame("ADDED", "application/json", || encode("again"));
        assert_eq!(b.unwrap(), "again");
        assert_eq!(encodings.load(Ordering::SeqCst), 5);
    }

    /// Objects are kept as JSON plus a view: a recent event's object holds its tree once decoded
    /// (every watcher shares it); once FRAMES_KEPT events old it does not, and the object decodes
    /// again from its JSON.
    #[tokio::test]
    async fn objects_are_compact_and_recent_events_share_their_tree() {
        let (cache, first) = first_event(ViewFields::new(["data.payload"])).await;
        let rc = cache.resource(PREFIX).unwrap();
        let tree = first.object.tree();
        assert!(
            Arc::ptr_eq(&tree, &first.object.tree()),
            "shared while recent"
        );
        assert_eq!(tree["metadata"]["resourceVersion"], "1");
        assert_eq!(first.object.json(), serde_json::to_vec(&*tree).unwrap());
        assert_eq!(
            first.object.view(),
            &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "first", "namespace": "ns"},
                "data": {"payload": "x".repeat(10)}})
        );
        let weak = Arc::downgrade(&tree);
        drop(tree);
        assert!(weak.upgrade().is_some(), "the recent event holds the tree");
        age_past_frames_kept(&cache);
        assert!(weak.upgrade().is_none(), "an old event's tree is freed");
        let again = first.object.tree();
        assert_eq!(again["metadata"]["name"], "first");
        assert_eq!(rc.get(&format!("{PREFIX}ns/first")), Some(again));
    }

    /// A watcher that does not read is ended once more than WATCHER_MAX_LAG_BYTES wait for it, while
    /// one that reads gets everything; the window stays within WINDOW_BYTES however large the objects.
    #[tokio::test]
    async fn slow_watcher_is_ended_and_window_is_bounded_in_bytes() {
        let cache = WatchCache::new([(PREFIX.to_string(), ViewFields::default().into())]);
        let rc = cache.resource(PREFIX).unwrap();
        let progress = cache.progress_receiver();
        let subscribe = || match rc.subscribe(PREFIX, Some(0), &progress) {
            Ok(s) => s.live,
            Err(_) => panic!("subscribe"),
        };
        let (mut slow, mut reader) = (subscribe(), subscribe());
        let big = 1 << 20;
        let n = 100;
        for i in 1..=n {
            cache.apply(event(&format!("{PREFIX}ns/cm-{i}"), i, big));
            let ev = next(&mut reader).await.unwrap();
            assert_eq!(ev.revision, i);
        }
        assert!(reader.drained());
        assert_eq!(next(&mut slow).await.unwrap_err(), FeedEnded::Lagged);
        {
            let st = rc.read();
            assert!(st.window_bytes <= WINDOW_BYTES, "{}", st.window_bytes);
            assert!(st.events.len() < n as usize);
            assert!(st.oldest > 0);
        }
        assert!(matches!(
            rc.subscribe(PREFIX, Some(1), &progress),
            Err(WatchStartError::TooOld { .. })
        ));
        // One event larger than the bound still reaches a watcher that reads.
        let mut reader = subscribe_at(&rc, &progress);
        cache.apply(event(&format!("{PREFIX}ns/huge"), n + 1, 9 << 20));
        assert_eq!(next(&mut reader).await.unwrap().revision, n + 1);
    }

    /// `--watch-cache-bytes`: a smaller bound holds fewer events, for the resources known at start
    /// and those a CRD adds later; a watch from before the window is too old.
    #[test]
    fn window_bytes_are_settable() {
        let cache = WatchCache::new([(PREFIX.to_string(), ViewFields::default().into())]);
        let bound = 7 << 19; // 3.5 MiB: three events of a little over 1 MiB
        cache.set_window_bytes(bound);
        let other = "/registry/example.com/widgets/";
        cache.add_prefix(other, ViewFields::default().into());
        for (prefix, rc) in [
            (PREFIX, cache.resource(PREFIX)),
            (other, cache.resource(other)),
        ] {
            let rc = rc.unwrap();
            let progress = cache.progress_receiver();
            for i in 1..=10 {
                cache.apply(event(&format!("{prefix}ns/o-{i}"), i, 1 << 20));
            }
            let st = rc.read();
            assert!(st.window_bytes <= bound, "{prefix}: {}", st.window_bytes);
            assert_eq!(st.events.len(), 3, "{prefix}");
            drop(st);
            assert!(matches!(
                rc.subscribe(prefix, Some(6), &progress),
                Err(WatchStartError::TooOld { .. })
            ));
            assert!(rc.subscribe(prefix, Some(7), &progress).is_ok());
        }
    }

    fn subscribe_at(rc: &Arc<ResourceCache>, progress: &watch::Receiver<i64>) -> LiveFeed {
        match rc.subscribe(PREFIX, None, progress) {
            Ok(s) => s.live,
            Err(_) => panic!("subscribe"),
        }
    }
}
