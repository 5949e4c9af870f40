//! The revision of this server's newest acknowledged write, so its own lookups can read the watch
//! cache and still see every write it has acknowledged (read-your-writes without a storage round trip).
//!
//! Upstream's admission plugins and token checks read informer listers, which may lag any write. Ours
//! read the watch cache once it has caught up with [`WriteMark::revision`]: a client that created a
//! LimitRange, a ServiceAccount or a quota through this server and then creates a pod sees them
//! applied, as a consistent read would show, but without asking etcd for its current revision on
//! every lookup (that round trip was most of a pod create's cost on etcd). Writes made through
//! another server on the same etcd are seen once this server's cache has them, as with upstream's
//! informers; a lookup that misses still falls back to storage (see `Registry::lookup`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::storage::{KeyValue, RangeResult, Result, Store, WatchStream};

/// A [`Store`] that remembers the highest revision its writes returned, and otherwise delegates.
pub struct WriteMark {
    inner: Arc<dyn Store>,
    written: AtomicI64,
}

impl WriteMark {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(WriteMark {
            inner,
            written: AtomicI64::new(0),
        })
    }

    /// The revision of the newest write this server has acknowledged (0 before the first).
    pub fn revision(&self) -> i64 {
        self.written.load(Ordering::Acquire)
    }

    fn note(&self, rev: i64) -> i64 {
        self.written.fetch_max(rev, Ordering::AcqRel);
        rev
    }
}

#[async_trait]
impl Store for WriteMark {
    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, i64)> {
        self.inner.get(key).await
    }

    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<RangeResult> {
        self.inner.range(prefix, start, limit, revision).await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        self.inner.count(prefix).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        Ok(self.note(self.inner.create(key, value).await?))
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected_mod_revision: i64) -> Result<i64> {
        Ok(self.note(self.inner.update(key, value, expected_mod_revision).await?))
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(i64, KeyValue)> {
        let (rev, kv) = self.inner.delete(key, expected_mod_revision).await?;
        Ok((self.note(rev), kv))
    }

    async fn current_revision(&self) -> Result<i64> {
        self.inner.current_revision().await
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        self.inner.watch(prefix, after_revision).await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedStore;

    #[tokio::test]
    async fn remembers_the_newest_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner: Arc<dyn Store> = EmbeddedStore::open(dir.path()).expect("open");
        let mark = WriteMark::new(inner);
        assert_eq!(mark.revision(), 0);
        let r1 = mark.create("/a", b"1".to_vec()).await.expect("create");
        assert_eq!(mark.revision(), r1);
        let r2 = mark.update("/a", b"2".to_vec(), r1).await.expect("update");
        assert_eq!(mark.revision(), r2);
        // Reads and failed writes leave it alone.
        let _ = mark.get("/a").await.expect("get");
        assert!(mark.create("/a", b"3".to_vec()).await.is_err());
        assert_eq!(mark.revision(), r2);
        let (r3, _) = mark.delete("/a", None).await.expect("delete");
        assert!(r3 > r2);
        assert_eq!(mark.revision(), r3);
    }
}
