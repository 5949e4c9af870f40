//! The default backend: the whole MVCC store in one redb file, so a single binary needs no etcd.
//!
//! Layout (all in one redb database, so every write batch is one atomic, fsynced transaction):
//! - `current`: key -> (create_rev, mod_rev, value), the latest state, for fast reads and pagination;
//! - `history`: (key, rev) -> put or tombstone, so a range can be answered as of an older revision
//!   (continue tokens must see one consistent snapshot) and watch replays can recover values;
//! - `log`: rev -> (event type, key), the change feed a watch replays from;
//! - `meta`: the revision counter and the compacted revision, so both survive restarts.
//!
//! Writes are funnelled through one writer thread that drains every pending operation and applies them in
//! one transaction (group commit): an fsync costs the same for one write or a thousand, which is what makes
//! concurrent creates fast. Callers are answered, and watchers notified, only after the commit is durable.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Event, EventType, KeyValue, RangeResult, Result, Store, StoreError, WatchStream};

const CURRENT: TableDefinition<&str, &[u8]> = TableDefinition::new("current");
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("history");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
/// Like etcd, an empty store is at revision 1, so the first write gets revision 2.
const INITIAL_REVISION: u64 = 1;
/// Upper bound on operations per group commit, so one huge burst cannot hold the write lock forever.
const MAX_BATCH: usize = 4096;
/// Live events kept for slow watchers; a watcher that falls further behind replays from the log.
pub const WATCH_BUFFER: usize = 4096;
/// Log entries a replaying watcher reads per read transaction.
const REPLAY_CHUNK: usize = 1024;
/// redb's page cache (its own default is 1 GiB, all of it resident once warm). Reads are served by the
/// apiserver's watch cache, so the store's cache mostly holds the B-tree pages writes touch; the OS page
/// cache keeps the rest of the file close at hand without counting in the server's RSS.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
/// Queue depth in front of the writer; callers wait (backpressure) when it is full.
const WRITE_QUEUE: usize = 16384;

const TAG_PUT: u8 = 0;
const TAG_DELETE: u8 = 1;

fn other(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

macro_rules! from_redb {
    ($($t:ty),*) => {
        $(impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                other(e)
            }
        })*
    };
}
from_redb!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);

fn corrupt(what: &str) -> StoreError {
    StoreError::Other(format!("corrupt {what} record in the embedded store"))
}

fn rev_i64(rev: u64) -> i64 {
    i64::try_from(rev).unwrap_or(i64::MAX)
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(raw))
}

fn encode_current(create: u64, modified: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_be_bytes());
    out.extend_from_slice(&modified.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_current(key: &str, bytes: &[u8]) -> Result<KeyValue> {
    let create = read_u64(bytes, 0).ok_or_else(|| corrupt("current"))?;
    let modified = read_u64(bytes, 8).ok_or_else(|| corrupt("current"))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: bytes[16..].to_vec(),
        create_revision: rev_i64(create),
        mod_revision: rev_i64(modified),
        stale: false,
    })
}

fn encode_history_put(create: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(TAG_PUT);
    out.extend_from_slice(&create.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes a history entry written at `rev`: the value as of that revision, or None for a tombstone.
fn decode_history(key: &str, rev: u64, bytes: &[u8]) -> Result<Option<KeyValue>> {
    match bytes.first() {
        Some(&TAG_PUT) => {
            let create = read_u64(bytes, 1).ok_or_else(|| corrupt("history"))?;
            Ok(Some(KeyValue {
                key: key.to_string(),
                value: bytes[9..].to_vec(),
                create_revision: rev_i64(create),
                mod_revision: rev_i64(rev),
                stale: false,
            }))
        }
        Some(&TAG_DELETE) => Ok(None),
        _ => Err(corrupt("history")),
    }
}

fn encode_log(tag: u8, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(tag);
    out.extend_from_slice(key.as_bytes());
    out
}

fn decode_log(bytes: &[u8]) -> Result<(u8, &str)> {
    let (&tag, key) = bytes.split_first().ok_or_else(|| corrupt("log"))?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt("log"))?;
    Ok((tag, key))
}

fn meta_get(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> Result<Option<u64>> {
    Ok(meta.get(name)?.map(|g| g.value()))
}

/// Converts a caller's revision; negative revisions are nonsense rather than "latest".
fn rev_u64(rev: i64) -> Result<u64> {
    u64::try_from(rev).map_err(|_| StoreError::Other(format!("invalid revision {rev}")))
}

/// The newest history entry of `key` strictly before `rev` (the value a change at `rev` replaced).
fn previous_value(
    history: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    key: &str,
    rev: u64,
) -> Result<Option<KeyValue>> {
    let mut range = history.range::<(&str, u64)>((key, 0)..(key, rev))?;
    match range.next_back() {
        Some(item) => {
            let (k, v) = item?;
            decode_history(key, k.value().1, v.value())
        }
        None => Ok(None),
    }
}

/// Rebuilds the event logged at `rev` from the history table.
fn logged_event(
    history: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    tag: u8,
    key: &str,
    rev: u64,
) -> Result<Event> {
    let prev = previous_value(history, key, rev)?;
    if tag == TAG_DELETE {
        let kv = match &prev {
            Some(p) => KeyValue {
                mod_revision: rev_i64(rev),
                ..p.clone()
            },
            None => KeyValue {
                key: key.to_string(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: rev_i64(rev),
                stale: false,
            },
        };
        return Ok(Event {
            event_type: EventType::Delete,
            kv,
            prev,
        });
    }
    let entry = history.get((key, rev))?.ok_or_else(|| corrupt("log"))?;
    let kv = decode_history(key, rev, entry.value())?.ok_or_else(|| corrupt("log"))?;
    Ok(Event {
        event_type: EventType::Put,
        kv,
        prev,
    })
}

enum OpKind {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
    Compact {
        revision: i64,
    },
}

enum Outcome {
    Revision(i64),
    Deleted(i64, KeyValue),
    Done,
}

enum Reply {
    Revision(oneshot::Sender<Result<i64>>),
    Deleted(oneshot::Sender<Result<(i64, KeyValue)>>),
    Done(oneshot::Sender<Result<()>>),
}

impl Reply {
    fn send(self, result: Result<Outcome>) {
        let mismatch = || StoreError::Other("internal error: mismatched write outcome".into());
        // A caller that gave up (dropped its receiver) no longer cares; ignore send failures.
        match self {
            Reply::Revision(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Revision(r) => Ok(r),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Deleted(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Deleted(r, kv) => Ok((r, kv)),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Done(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Done => Ok(()),
                    _ => Err(mismatch()),
                }));
            }
        }
    }
}

struct Op {
    kind: OpKind,
    reply: Reply,
}

/// The tables of one write transaction plus the revision counter being advanced.
struct Batch<'t> {
    current: Table<'t, &'static str, &'static [u8]>,
    history: Table<'t, (&'static str, u64), &'static [u8]>,
    log: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    revision: u64,
    changed: bool,
    events: Vec<Event>,
}

impl Batch<'_> {
    fn load(&self, key: &str) -> Result<Option<KeyValue>> {
        match self.current.get(key)? {
            Some(v) => Ok(Some(decode_current(key, v.value())?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, key: &str, value: Vec<u8>, prev: Option<KeyValue>) -> Result<i64> {
        let rev = self.revision + 1;
        let create = match &prev {
            Some(p) => rev_u64(p.create_revision)?,
            None => rev,
        };
        self.current
            .insert(key, encode_current(create, rev, &value).as_slice())?;
        self.history
            .insert((key, rev), encode_history_put(create, &value).as_slice())?;
        self.log.insert(rev, encode_log(TAG_PUT, key).as_slice())?;
        self.revision = rev;
        self.changed = true;
        self.events.push(Event {
            event_type: EventType::Put,
            kv: KeyValue {
                key: key.to_string(),
                value,
                create_revision: rev_i64(create),
                mod_revision: rev_i64(rev),
                stale: false,
            },
            prev,
        });
        Ok(rev_i64(rev))
    }

    fn remove(&mut self, prev: KeyValue) -> Result<i64> {
        let rev = self.revision + 1;
        let key = prev.key.as_str();
        self.current.remove(key)?;
        self.history.insert((key, rev), [TAG_DELETE].as_slice())?;
        self.log
            .insert(rev, encode_log(TAG_DELETE, key).as_slice())?;
        self.revision = rev;
        self.changed = true;
        self.events.push(Event {
            event_type: EventType::Delete,
            kv: KeyValue {
                mod_revision: rev_i64(rev),
                ..prev.clone()
            },
            prev: Some(prev),
        });
        Ok(rev_i64(rev))
    }

    /// Applies one operation. The outer error aborts the whole batch (storage failure); the inner one is
    /// this operation's answer (guard failures and the like).
    fn apply(&mut self, kind: OpKind) -> Result<Result<Outcome>> {
        Ok(match kind {
            OpKind::Create { key, value } => {
                if self.current.get(key.as_str())?.is_some() {
                    Err(StoreError::AlreadyExists)
                } else {
                    Ok(Outcome::Revision(self.put(&key, value, None)?))
                }
            }
            OpKind::Update {
                key,
                value,
                expected,
            } => match self.load(&key)? {
                None => Err(StoreError::NotFound),
                Some(cur) if cur.mod_revision != expected => {
                    Err(StoreError::Conflict { current: Some(cur) })
                }
                Some(cur) => Ok(Outcome::Revision(self.put(&key, value, Some(cur))?)),
            },
            OpKind::Delete { key, expected } => match self.load(&key)? {
                None => Err(StoreError::NotFound),
                Some(cur) if expected.is_some_and(|e| e != cur.mod_revision) => {
                    Err(StoreError::Conflict { current: Some(cur) })
                }
                Some(cur) => {
                    let rev = self.remove(cur.clone())?;
                    Ok(Outcome::Deleted(rev, cur))
                }
            },
            OpKind::Compact { revision } => self.compact(revision)?,
        })
    }

    /// Drops log entries below `target` and every history entry below it that no read at or after
    /// `target` (nor a replayed event's previous value) can need: per key, only the newest entry below
    /// `target` survives, and only if it is not a tombstone.
    fn compact(&mut self, target: i64) -> Result<Result<Outcome>> {
        let target_u = match rev_u64(target) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        if target_u > self.revision {
            return Ok(Err(StoreError::FutureRevision(target)));
        }
        let compacted = meta_get(&self.meta, META_COMPACTED)?.unwrap_or(0);
        if target_u <= compacted {
            return Ok(Ok(Outcome::Done));
        }
        let mut keys = BTreeSet::new();
        for item in self.log.range(compacted..target_u)? {
            let (_, v) = item?;
            keys.insert(decode_log(v.value())?.1.to_string());
        }
        for key in &keys {
            let mut entries = Vec::new();
            for item in self
                .history
                .range::<(&str, u64)>((key.as_str(), 0)..(key.as_str(), target_u))?
            {
                let (k, v) = item?;
                entries.push((k.value().1, v.value().first() == Some(&TAG_DELETE)));
            }
            let keep_last = entries.last().is_some_and(|(_, tombstone)| !tombstone);
            let drop_count = entries.len() - usize::from(keep_last);
            for (rev, _) in &entries[..drop_count] {
                self.history.remove((key.as_str(), *rev))?;
            }
        }
        self.log.retain_in(..target_u, |_, _| false)?;
        self.meta.insert(META_COMPACTED, target_u)?;
        self.changed = true;
        Ok(Ok(Outcome::Done))
    }
}

/// Applies `kinds` in one write transaction and commits it durably. Returns each operation's answer, the
/// events to publish, and the revision after the batch.
fn apply_batch(
    db: &Database,
    kinds: Vec<OpKind>,
) -> Result<(Vec<Result<Outcome>>, Vec<Event>, i64)> {
    let txn = db.begin_write()?;
    let mut outcomes = Vec::with_capacity(kinds.len());
    let (events, revision, changed) = {
        let meta = txn.open_table(META)?;
        let revision = meta_get(&meta, META_REVISION)?.unwrap_or(INITIAL_REVISION);
        let mut batch = Batch {
            current: txn.open_table(CURRENT)?,
            history: txn.open_table(HISTORY)?,
            log: txn.open_table(LOG)?,
            meta,
            revision,
            changed: false,
            events: Vec::new(),
        };
        for kind in kinds {
            outcomes.push(batch.apply(kind)?);
        }
        if batch.changed {
            batch.meta.insert(META_REVISION, batch.revision)?;
        }
        (batch.events, batch.revision, batch.changed)
    };
    if changed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok((outcomes, events, rev_i64(revision)))
}

fn writer_loop(
    db: Arc<Database>,
    mut ops: mpsc::Receiver<Op>,
    events: broadcast::Sender<Arc<Event>>,
    revision: Arc<AtomicI64>,
) {
    while let Some(first) = ops.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let (kinds, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|op| (op.kind, op.reply)).unzip();
        match apply_batch(&db, kinds) {
            Ok((outcomes, batch_events, rev)) => {
                revision.store(rev, Ordering::SeqCst);
                for event in batch_events {
                    // No live watcher is not an error.
                    let _ = events.send(Arc::new(event));
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!("embedded store write batch failed: {e}");
                for reply in replies {
                    reply.send(Err(StoreError::Other(e.to_string())));
                }
            }
        }
    }
}

/// The redb-backed [`Store`]. Cheap to share behind an `Arc`; dropping the last handle stops the writer
/// thread (after it finished the batch in flight) and closes the database file.
pub struct EmbeddedStore {
    db: Arc<Database>,
    ops: Option<mpsc::Sender<Op>>,
    events: broadcast::Sender<Arc<Event>>,
    revision: Arc<AtomicI64>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store kept in directory `dir`, restoring the revision counter, data and
    /// compaction point of a previous run, and starts its writer thread.
    pub fn open(dir: &Path) -> anyhow::Result<Arc<Self>> {
        Self::open_with(dir, WATCH_BUFFER, DEFAULT_CACHE_BYTES)
    }

    /// Like [`EmbeddedStore::open`], with the number of live events buffered for watchers before a slow
    /// one has to fall back to replaying the log (tests use a tiny buffer to exercise that path).
    pub fn open_with_watch_buffer(dir: &Path, watch_buffer: usize) -> anyhow::Result<Arc<Self>> {
        Self::open_with(dir, watch_buffer, DEFAULT_CACHE_BYTES)
    }

    /// Like [`EmbeddedStore::open`], with redb's page cache bounded to `cache_bytes`.
    pub fn open_with(
        dir: &Path,
        watch_buffer: usize,
        cache_bytes: usize,
    ) -> anyhow::Result<Arc<Self>> {
        // The store holds Secrets in plain JSON: its directory and file are private from creation.
        crate::private_files::private_dir(dir)?;
        crate::private_files::ensure_private_file(&dir.join("rkube.redb"))?;
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(dir.join("rkube.redb"))?;
        let txn = db.begin_write()?;
        let revision = {
            txn.open_table(CURRENT)?;
            txn.open_table(HISTORY)?;
            txn.open_table(LOG)?;
            let mut meta = txn.open_table(META)?;
            let stored = meta.get(META_REVISION)?.map(|g| g.value());
            match stored {
                Some(r) => r,
                None => {
                    meta.insert(META_REVISION, INITIAL_REVISION)?;
                    INITIAL_REVISION
                }
            }
        };
        txn.commit()?;
        let db = Arc::new(db);
        let revision = Arc::new(AtomicI64::new(rev_i64(revision)));
        let (ops_tx, ops_rx) = mpsc::channel(WRITE_QUEUE);
        let (events, _) = broadcast::channel(watch_buffer.max(1));
        let writer = {
            let (db, events, revision) = (db.clone(), events.clone(), revision.clone());
            std::thread::Builder::new()
                .name("rkube-store-writer".into())
                .spawn(move || writer_loop(db, ops_rx, events, revision))?
        };
        Ok(Arc::new(Self {
            db,
            ops: Some(ops_tx),
            events,
            revision,
            writer: Some(writer),
        }))
    }

    async fn submit(&self, kind: OpKind, reply: Reply) -> Result<()> {
        let ops = self
            .ops
            .as_ref()
            .ok_or_else(|| other("embedded store is closed"))?;
        ops.send(Op { kind, reply })
            .await
            .map_err(|_| other("embedded store writer stopped"))
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(other)?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.ops.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("embedded store writer thread panicked");
            }
        }
    }
}

fn stopped<E>(_: E) -> StoreError {
    other("embedded store writer stopped before answering")
}

fn read_range(
    db: &Database,
    prefix: &str,
    start: Option<&str>,
    limit: usize,
    revision: i64,
) -> Result<RangeResult> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let current = meta_get(&meta, META_REVISION)?.unwrap_or(INITIAL_REVISION);
    let compacted = meta_get(&meta, META_COMPACTED)?.unwrap_or(0);
    let from = super::range_from(prefix, start);
    let mut out = RangeResult {
        kvs: Vec::new(),
        more: false,
        revision: rev_i64(current),
        count: 0,
    };
    // Adds a key to the page; false once the page is full (and the key proves there is more).
    let push = |out: &mut RangeResult, kv: KeyValue| {
        if limit > 0 && out.kvs.len() == limit {
            out.more = true;
            return false;
        }
        out.count += 1;
        out.kvs.push(kv);
        true
    };
    let at = rev_u64(revision)?;
    if at == 0 || at == current {
        let table = txn.open_table(CURRENT)?;
        let mut iter = table.range::<&str>(from..)?;
        for item in iter.by_ref() {
            let (k, v) = item?;
            let key = k.value();
            if !key.starts_with(prefix) {
                return Ok(out);
            }
            if !push(&mut out, decode_current(key, v.value())?) {
                out.count += 1;
                break;
            }
        }
        // The rest of the prefix is only counted, not decoded.
        for item in iter {
            let (k, _) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.count += 1;
        }
        return Ok(out);
    }
    if at > current {
        return Err(StoreError::FutureRevision(revision));
    }
    if at < compacted {
        return Err(StoreError::Compacted {
            compacted: rev_i64(compacted),
        });
    }
    out.revision = revision;
    let table = txn.open_table(HISTORY)?;
    // History is ordered by (key, rev): for each key keep the newest entry at or before `at`.
    let mut group: Option<(String, Option<KeyValue>)> = None;
    for item in table.range::<(&str, u64)>((from, 0)..)? {
        let (k, v) = item?;
        let (key, rev) = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        if group.as_ref().is_none_or(|(g, _)| g != key) {
            if let Some((_, Some(kv))) = group.take() {
                if !push(&mut out, kv) {
                    out.count += 1;
                }
            }
            group = Some((key.to_string(), None));
        }
        if rev <= at {
            if let Some((_, best)) = group.as_mut() {
                *best = decode_history(key, rev, v.value())?;
            }
        }
    }
    if let Some((_, Some(kv))) = group {
        if !push(&mut out, kv) {
            out.count += 1;
        }
    }
    Ok(out)
}

/// Reads up to [`REPLAY_CHUNK`] log entries after `after`, appending those under `prefix` to `out`.
/// Returns the revision up to which the log has been read and whether that is the whole log (then the
/// returned revision is the store's revision at the snapshot).
fn replay_chunk(
    db: &Database,
    prefix: &str,
    after: u64,
    out: &mut VecDeque<Event>,
) -> Result<(u64, bool)> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let current = meta_get(&meta, META_REVISION)?.unwrap_or(INITIAL_REVISION);
    let compacted = meta_get(&meta, META_COMPACTED)?.unwrap_or(0);
    if after.saturating_add(1) < compacted {
        return Err(StoreError::Compacted {
            compacted: rev_i64(compacted),
        });
    }
    let log = txn.open_table(LOG)?;
    let history = txn.open_table(HISTORY)?;
    let mut last = after;
    for (n, item) in log.range(after.saturating_add(1)..)?.enumerate() {
        let (k, v) = item?;
        let rev = k.value();
        last = rev;
        let (tag, key) = decode_log(v.value())?;
        if key.starts_with(prefix) {
            out.push_back(logged_event(&history, tag, key, rev)?);
        }
        if n + 1 >= REPLAY_CHUNK {
            return Ok((last, false));
        }
    }
    Ok((last.max(current), true))
}

/// One watcher: replays the log until caught up, then follows the broadcast, replaying again on lag.
struct Watcher {
    db: Arc<Database>,
    prefix: String,
    live: broadcast::Receiver<Arc<Event>>,
    /// Every change up to this revision has been delivered or filtered out.
    last: u64,
    replaying: bool,
    pending: VecDeque<Event>,
    done: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if self.replaying {
                let (db, prefix, after) = (self.db.clone(), self.prefix.clone(), self.last);
                let chunk = tokio::task::spawn_blocking(move || {
                    let mut out = VecDeque::new();
                    replay_chunk(&db, &prefix, after, &mut out)
                        .map(|(last, done)| (out, last, done))
                })
                .await
                .map_err(other)
                .and_then(|r| r);
                match chunk {
                    Ok((events, last, caught_up)) => {
                        self.pending = events;
                        self.last = last;
                        self.replaying = !caught_up;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) => {
                    let rev = u64::try_from(event.kv.mod_revision).unwrap_or(0);
                    if rev <= self.last {
                        continue;
                    }
                    self.last = rev;
                    if event.kv.key.starts_with(&self.prefix) {
                        return Some(Ok((*event).clone()));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.replaying = true,
                Err(broadcast::error::RecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, i64)> {
        let key = key.to_string();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            let rev = meta_get(&meta, META_REVISION)?.unwrap_or(INITIAL_REVISION);
            let table = txn.open_table(CURRENT)?;
            let kv = match table.get(key.as_str())? {
                Some(v) => Some(decode_current(&key, v.value())?),
                None => None,
            };
            Ok((kv, rev_i64(rev)))
        })
        .await
    }

    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<RangeResult> {
        let prefix = prefix.to_string();
        let start = start.map(str::to_string);
        self.read(move |db| read_range(db, &prefix, start.as_deref(), limit, revision))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let prefix = prefix.to_string();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(CURRENT)?;
            let mut n = 0i64;
            for item in table.range::<&str>(prefix.as_str()..)? {
                let (k, _) = item?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        let (tx, rx) = oneshot::channel();
        let kind = OpKind::Create {
            key: key.to_string(),
            value,
        };
        self.submit(kind, Reply::Revision(tx)).await?;
        rx.await.map_err(stopped)?
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected_mod_revision: i64) -> Result<i64> {
        let (tx, rx) = oneshot::channel();
        let kind = OpKind::Update {
            key: key.to_string(),
            value,
            expected: expected_mod_revision,
        };
        self.submit(kind, Reply::Revision(tx)).await?;
        rx.await.map_err(stopped)?
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(i64, KeyValue)> {
        let (tx, rx) = oneshot::channel();
        let kind = OpKind::Delete {
            key: key.to_string(),
            expected: expected_mod_revision,
        };
        self.submit(kind, Reply::Deleted(tx)).await?;
        rx.await.map_err(stopped)?
    }

    async fn current_revision(&self) -> Result<i64> {
        Ok(self.revision.load(Ordering::SeqCst))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        // Subscribe before the replay reads the log: every change is then either in the log snapshot or
        // still ahead in the broadcast, and `last` drops the overlap.
        let watcher = Watcher {
            db: self.db.clone(),
            prefix: prefix.to_string(),
            live: self.events.subscribe(),
            last: rev_u64(after_revision)?,
            replaying: true,
            pending: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(watcher, |mut w| async move {
            let item = w.next().await?;
            Some((item, w))
        })
        .boxed())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(OpKind::Compact { revision }, Reply::Done(tx))
            .await?;
        rx.await.map_err(stopped)?
    }
}
