//! Encryption at rest: `--encryption-provider-config`, as upstream's value transformers.
//!
//! Where to start: [`EncryptedStore`] wraps either backend and is the only place values are
//! transformed: writes of a covered key are encrypted by the first provider of the first rule that
//! covers it, reads (get, range, watch events, the values a delete or a conflict hands back) are
//! decrypted by whichever provider's prefix matches. Nothing above the [`Store`] trait sees
//! ciphertext, and nothing below it sees plaintext of a covered resource, on etcd and on the
//! embedded store alike. [`config`] reads the file and says which keys a rule covers;
//! [`providers`] has the ciphers and their byte layouts.
//!
//! A value read with anything but the provider and key that write now is marked
//! [`KeyValue::stale`], so the registry writes it again on an update even when the object did not
//! change: upstream's documented rotation (`kubectl get secrets -A -o json | kubectl replace -f -`)
//! re-encrypts every Secret with the new key.

pub mod config;
pub mod providers;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use super::{Event, KeyValue, RangeResult, Result, Store, StoreError, WatchStream};
use providers::Transformers;

/// Which keys a rule covers.
pub enum Matcher {
    /// `*.*`: every resource.
    All,
    /// Keys under this storage prefix (`/registry/secrets/`).
    Prefix(String),
}

/// The config's rules in its order: a key takes the transformers of the first rule that covers it.
pub struct Rules {
    rules: Vec<(Matcher, Arc<Transformers>)>,
}

/// Says how many rules there are, never a key.
impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rules({} rules)", self.rules.len())
    }
}

impl Rules {
    pub fn new(rules: Vec<(Matcher, Arc<Transformers>)>) -> Rules {
        Rules { rules }
    }

    /// The transformers for `key`, if any rule covers it (otherwise the value is stored as is).
    pub fn for_key(&self, key: &str) -> Option<&Transformers> {
        self.rules.iter().find_map(|(m, t)| {
            let covered = match m {
                Matcher::All => true,
                Matcher::Prefix(p) => key.starts_with(p.as_str()),
            };
            covered.then_some(&**t)
        })
    }
}

/// A [`Store`] that encrypts the values of the keys its [`Rules`] cover.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    rules: Arc<Rules>,
}

impl EncryptedStore {
    pub fn wrap(inner: Arc<dyn Store>, rules: Rules) -> Arc<dyn Store> {
        Arc::new(EncryptedStore {
            inner,
            rules: Arc::new(rules),
        })
    }

    fn write(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        match self.rules.for_key(key) {
            Some(t) => t
                .to_storage(&value, key)
                .map_err(|e| StoreError::Other(format!("unable to transform key {key:?}: {e}"))),
            None => Ok(value),
        }
    }
}

/// `kv` as the layers above see it: decrypted, and marked stale when read with an older key.
/// An empty value (a delete's placeholder when etcd kept no previous value) is left as it is.
fn read(rules: &Rules, mut kv: KeyValue) -> Result<KeyValue> {
    if let Some(t) = rules.for_key(&kv.key) {
        if !kv.value.is_empty() {
            // Upstream's wording: a value no configured key can read is an internal error naming
            // its key, never a silently empty object.
            let (plain, stale) = t.from_storage(&kv.value, &kv.key).map_err(|e| {
                StoreError::Other(format!("unable to transform key {:?}: {e}", kv.key))
            })?;
            kv.value = plain;
            kv.stale = stale;
        }
    }
    Ok(kv)
}

fn read_event(rules: &Rules, e: Event) -> Result<Event> {
    Ok(Event {
        event_type: e.event_type,
        kv: read(rules, e.kv)?,
        prev: e.prev.map(|p| read(rules, p)).transpose()?,
    })
}

/// A conflict hands back the current value: decrypted like any other read.
fn read_error(rules: &Rules, e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { current } => match current.map(|c| read(rules, c)).transpose() {
            Ok(current) => StoreError::Conflict { current },
            Err(e) => e,
        },
        e => e,
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, i64)> {
        let (kv, rev) = self.inner.get(key).await?;
        Ok((kv.map(|kv| read(&self.rules, kv)).transpose()?, rev))
    }

    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<RangeResult> {
        let mut r = self.inner.range(prefix, start, limit, revision).await?;
        r.kvs = std::mem::take(&mut r.kvs)
            .into_iter()
            .map(|kv| read(&self.rules, kv))
            .collect::<Result<_>>()?;
        Ok(r)
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        self.inner.count(prefix).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        let value = self.write(key, value)?;
        self.inner.create(key, value).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected_mod_revision: i64) -> Result<i64> {
        let value = self.write(key, value)?;
        self.inner
            .update(key, value, expected_mod_revision)
            .await
            .map_err(|e| read_error(&self.rules, e))
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(i64, KeyValue)> {
        let (rev, kv) = self
            .inner
            .delete(key, expected_mod_revision)
            .await
            .map_err(|e| read_error(&self.rules, e))?;
        Ok((rev, read(&self.rules, kv)?))
    }

    async fn current_revision(&self) -> Result<i64> {
        self.inner.current_revision().await
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        let rules = self.rules.clone();
        let events = self.inner.watch(prefix, after_revision).await?;
        Ok(events
            .map(move |e| e.and_then(|e| read_event(&rules, e)))
            .boxed())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedStore;

    fn rules() -> Rules {
        let text = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
                    - resources: [secrets]\n  providers:\n  - secretbox: {keys: [{name: k1, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]}\n";
        let known = [config::KnownResource {
            group: String::new(),
            plural: "secrets".into(),
            prefix: "/registry/secrets/".into(),
        }];
        config::parse(text, &known).unwrap()
    }

    #[tokio::test]
    async fn covered_keys_are_ciphertext_below_and_plaintext_above() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> = EmbeddedStore::open(&dir.path().join("db")).unwrap();
        let store = EncryptedStore::wrap(inner.clone(), rules());
        let mut watch = store.watch("/registry/", 0).await.unwrap();
        let s = "/registry/secrets/ns/s";
        let c = "/registry/configmaps/ns/c";
        let rev = store.create(s, b"{\"v\":1}".to_vec()).await.unwrap();
        store.create(c, b"{\"v\":2}".to_vec()).await.unwrap();

        let (raw, _) = inner.get(s).await.unwrap();
        assert!(raw.unwrap().value.starts_with(b"k8s:enc:secretbox:v1:k1:"));
        let (raw, _) = inner.get(c).await.unwrap();
        assert_eq!(
            raw.unwrap().value,
            b"{\"v\":2}",
            "uncovered keys are stored as is"
        );

        let (kv, _) = store.get(s).await.unwrap();
        let kv = kv.unwrap();
        assert_eq!((kv.value.as_slice(), kv.stale), (&b"{\"v\":1}"[..], false));
        let listed = store.range("/registry/", None, 0, 0).await.unwrap();
        assert!(listed.kvs.iter().all(|kv| kv.value.starts_with(b"{")));
        let first = watch.next().await.unwrap().unwrap();
        assert_eq!(first.kv.value, b"{\"v\":1}");

        // A conflict's current value and a delete's last value come back decrypted too.
        match store.update(s, b"{}".to_vec(), rev + 100).await {
            Err(StoreError::Conflict { current }) => {
                assert_eq!(current.unwrap().value, b"{\"v\":1}")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let (_, gone) = store.delete(s, None).await.unwrap();
        assert_eq!(gone.value, b"{\"v\":1}");
        watch.next().await.unwrap().unwrap();
        let deleted = watch.next().await.unwrap().unwrap();
        assert_eq!(deleted.kv.value, b"{\"v\":1}");

        // Without the key a covered value is an error naming the key, never garbage.
        store.create(s, b"{}".to_vec()).await.unwrap();
        let other_key = Transformers::new(vec![(
            providers::prefix("aescbc", "k2"),
            providers::Cipher::new("aescbc", &[5u8; 32]).unwrap(),
        )]);
        let rotated_away = EncryptedStore::wrap(
            inner,
            Rules::new(vec![(
                Matcher::Prefix("/registry/secrets/".into()),
                Arc::new(other_key),
            )]),
        );
        match rotated_away.get(s).await {
            Err(StoreError::Other(e)) => assert_eq!(
                e,
                "unable to transform key \"/registry/secrets/ns/s\": no matching prefix found"
            ),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}
