//! Storage: the one place the cluster's state lives.
//!
//! A [`Store`] is an MVCC key-value store in the shape of etcd's v3 API: every write bumps one global
//! revision, each key remembers the revision that created it and the one that last modified it, writes are
//! guarded by the key's mod revision (optimistic concurrency), ranges can be read at an older revision
//! (consistent pagination), and a watch replays every change after a revision. Two backends implement it:
//! [`embedded`] (redb on local disk, the default) and [`etcd`] (a real etcd cluster). The apiserver is the
//! only user; keys follow upstream's layout (`/registry/<resource>/<namespace>/<name>`).

pub mod bench;
pub mod embedded;
pub mod encryption;
pub mod etcd;
#[cfg(test)]
pub(crate) mod suite;

use async_trait::async_trait;
use futures::stream::BoxStream;

/// A stored value and its revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (stays the same across updates).
    pub create_revision: i64,
    /// Revision of the last write to this key.
    pub mod_revision: i64,
    /// Set by [`encryption`] when the value was read with a key or provider other than the one
    /// writes use now (upstream's `stale` from `TransformFromStorage`): an update must then write even
    /// if the object did not change, which is how `kubectl replace` of every Secret re-encrypts them
    /// after a key rotation. The backends always read `false`.
    pub stale: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// One change, as a watch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    /// For `Put`: the new value. For `Delete`: the key with the value it had just before deletion,
    /// and `mod_revision` set to the revision of the delete.
    pub kv: KeyValue,
    /// The value before this change, if the key existed (always set for `Delete`).
    pub prev: Option<KeyValue>,
}

/// The answer to a range read.
#[derive(Clone, Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the result short: more keys follow the last one returned.
    pub more: bool,
    /// How many keys the range holds from its start to the end of the prefix at the revision read,
    /// ignoring `limit` (etcd's `count`): what upstream's `remainingItemCount` is computed from.
    pub count: i64,
    /// The revision the range was read at.
    pub revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key not found")]
    NotFound,
    #[error("key already exists")]
    AlreadyExists,
    /// The guard failed: the key's mod revision is not the expected one. `current` is the stored value
    /// (None when the key is gone).
    #[error("revision conflict")]
    Conflict { current: Option<KeyValue> },
    /// The requested revision has been compacted away; `compacted` is the oldest revision still readable.
    #[error("required revision has been compacted (oldest available {compacted})")]
    Compacted { compacted: i64 },
    /// The requested revision is in the future.
    #[error("required revision {0} is a future revision")]
    FutureRevision(i64),
    /// The store did not answer in time (etcd paused, partitioned or overloaded). The write may or may
    /// not have happened, as with any timeout.
    #[error("storage timeout: {0}")]
    Timeout(String),
    #[error("storage error: {0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;
pub type WatchStream = BoxStream<'static, Result<Event>>;

/// Where a range read begins: at `start` when it lies inside the prefix's keys, else at the prefix
/// (a continue token may name a key before the prefix; both backends read from here).
pub fn range_from<'a>(prefix: &'a str, start: Option<&'a str>) -> &'a str {
    match start {
        Some(s) if s > prefix => s,
        _ => prefix,
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key at the latest revision. Returns the value (if any) and the store's current revision.
    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, i64)>;

    /// Reads the keys that start with `prefix`, in key order, beginning at `start` (inclusive; `None` means
    /// the start of the prefix), at most `limit` of them (0 = no limit), as of `revision` (0 = latest).
    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<RangeResult>;

    /// Counts the keys under `prefix` at the latest revision.
    async fn count(&self, prefix: &str) -> Result<i64>;

    /// Creates `key`; fails with `AlreadyExists` if it exists. Returns the new revision.
    /// Returns only once the write is durable.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64>;

    /// Replaces `key` if its mod revision is `expected_mod_revision`; `NotFound` if it does not exist,
    /// `Conflict` if the revision differs. Returns the new revision. Durable when it returns.
    async fn update(&self, key: &str, value: Vec<u8>, expected_mod_revision: i64) -> Result<i64>;

    /// Deletes `key`, guarded by its mod revision when `expected_mod_revision` is given. Returns the
    /// revision of the delete and the value that was deleted. Durable when it returns.
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(i64, KeyValue)>;

    /// The store's current revision.
    async fn current_revision(&self) -> Result<i64>;

    /// Streams every change to keys under `prefix` with a revision strictly greater than `after_revision`,
    /// in revision order, first the ones already written, then live ones. A revision that was compacted
    /// yields `Err(Compacted)` as the first item.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream>;

    /// Forgets history older than `revision`: older revisions can no longer be read or watched from.
    async fn compact(&self, revision: i64) -> Result<()>;
}
