//! The etcd backend, for running against an existing etcd cluster like upstream Kubernetes does (HA,
//! shared state between several apiservers). The [`Store`] trait mirrors etcd's v3 API, so this is a thin
//! translation: guarded writes are transactions comparing the key's mod (or create) revision, and
//! compaction and future-revision failures are mapped to the same errors the embedded store returns.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, Txn, TxnOp,
    TxnOpResponse, WatchClient, WatchOptions,
};
use futures::StreamExt;

use super::{Event, EventType, KeyValue, RangeResult, Result, Store, StoreError, WatchStream};

/// Largest gRPC message accepted from or sent to etcd. etcd-client's default (4 MiB) is smaller than a
/// page of the cache's initial list and not much larger than the biggest object etcd stores (its
/// `--max-request-bytes`, 1.5 MiB by default, may be raised), so a server on a large etcd could not
/// restart; upstream's apiserver lifts the limit the same way (`MaxCallRecvMsgSize: math.MaxInt32`).
const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

/// How long one etcd call may take. Without it a request waits for as long as etcd is gone; with it the
/// request fails (504) and `/readyz` says why, while the client retries.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The [`Store`] backed by an etcd v3 cluster.
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    /// Highest compaction revision this process has seen, used when etcd reports "compacted" without
    /// saying up to where.
    compacted: AtomicI64,
}

/// The end of the key range covering every key that starts with `prefix` (etcd's `range_end`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Empty prefix (or all 0xff): "\0" as range_end means "to the end of the keyspace".
    vec![0]
}

/// etcd rejects an empty key; the smallest key "\0" starts the same range.
fn range_start(key: &str) -> Vec<u8> {
    if key.is_empty() {
        vec![0]
    } else {
        key.as_bytes().to_vec()
    }
}

fn convert(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        stale: false,
    }
}

enum Failure {
    Compacted,
    Future,
    Other(String),
}

fn classify(e: etcd_client::Error) -> Failure {
    let text = match &e {
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        other => other.to_string(),
    };
    if text.contains("required revision has been compacted") {
        Failure::Compacted
    } else if text.contains("required revision is a future revision") {
        Failure::Future
    } else {
        Failure::Other(format!("etcd: {e}"))
    }
}

fn plain(e: etcd_client::Error) -> StoreError {
    StoreError::Other(format!("etcd: {e}"))
}

/// Runs one etcd call under [`CALL_TIMEOUT`]; the outer error is the timeout.
async fn timed<T>(
    call: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<std::result::Result<T, etcd_client::Error>> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| StoreError::Timeout(format!("etcd did not answer within {CALL_TIMEOUT:?}")))
}

/// [`timed`], with etcd's own errors as plain storage errors.
async fn deadline<T>(
    call: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    timed(call).await?.map_err(plain)
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map(|h| h.revision()).unwrap_or(0)
}

/// Upstream's `--etcd-cafile`, `--etcd-certfile` and `--etcd-keyfile`: how the apiserver verifies
/// etcd's serving certificate and the client certificate it presents (`https://` endpoints).
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    pub ca_file: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
}

impl EtcdTls {
    /// The client's TLS settings, or None when no flag is given (plain `http://` endpoints).
    fn options(&self) -> anyhow::Result<Option<etcd_client::TlsOptions>> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
        };
        let mut tls = etcd_client::TlsOptions::new();
        match (&self.ca_file, &self.cert_file, &self.key_file) {
            (None, None, None) => return Ok(None),
            (_, Some(_), None) | (_, None, Some(_)) => {
                anyhow::bail!("--etcd-certfile and --etcd-keyfile must be given together")
            }
            (ca, cert, key) => {
                if let Some(ca) = ca {
                    tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
                }
                if let (Some(cert), Some(key)) = (cert, key) {
                    tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
                }
            }
        }
        Ok(Some(tls))
    }
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (e.g. `http://127.0.0.1:2379`) and checks that it
    /// answers, so a wrong address fails at startup rather than on the first request.
    pub async fn connect(endpoints: &[String], tls: &EtcdTls) -> anyhow::Result<Self> {
        // HTTP/2 keep-alive pings find a connection whose etcd stopped answering (paused, host gone), so
        // the cache's watch breaks and reloads instead of waiting on a dead stream.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if let Some(tls) = tls.options()? {
            options = options.with_tls(tls);
        }
        let client = Client::connect(endpoints, Some(options)).await?;
        let store = Self {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            compacted: AtomicI64::new(0),
        };
        tokio::time::timeout(Duration::from_secs(10), store.current_revision())
            .await
            .map_err(|_| anyhow::anyhow!("etcd at {endpoints:?} did not answer within 10s"))??;
        Ok(store)
    }

    /// Maps an etcd error, finding out the compaction point when etcd says "compacted".
    async fn error(&self, e: etcd_client::Error, revision: i64) -> StoreError {
        match classify(e) {
            Failure::Compacted => StoreError::Compacted {
                compacted: self.probe_compacted().await,
            },
            Failure::Future => StoreError::FutureRevision(revision),
            Failure::Other(msg) => StoreError::Other(msg),
        }
    }

    /// etcd's range error does not carry the compaction revision; a watch from revision 1 does.
    async fn probe_compacted(&self) -> i64 {
        let known = self.compacted.load(Ordering::SeqCst);
        let mut client = self.watch.clone();
        let probe = async {
            let options = WatchOptions::new().with_start_revision(1);
            let mut stream = client.watch(vec![0u8], Some(options)).await.ok()?;
            while let Ok(Some(resp)) = stream.message().await {
                if resp.compact_revision() > 0 {
                    return Some(resp.compact_revision());
                }
                if resp.canceled() {
                    return None;
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs(2), probe).await {
            Ok(Some(rev)) => {
                self.compacted.fetch_max(rev, Ordering::SeqCst);
                rev.max(known)
            }
            _ => known,
        }
    }

    /// Runs a transaction that does `op` if `guard` holds and otherwise reads the key, so a failed guard
    /// can say whether the key is missing or changed.
    async fn guarded(
        &self,
        key: &str,
        guard: Compare,
        op: TxnOp,
    ) -> Result<std::result::Result<etcd_client::TxnResponse, Option<KeyValue>>> {
        let txn = Txn::new()
            .when([guard])
            .and_then([op])
            .or_else([TxnOp::get(key, None)]);
        let resp = deadline(self.kv.clone().txn(txn)).await?;
        if resp.succeeded() {
            return Ok(Ok(resp));
        }
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().map(convert),
            _ => None,
        });
        Ok(Err(current))
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, i64)> {
        let resp = deadline(self.kv.clone().get(key, None)).await?;
        Ok((
            resp.kvs().first().map(convert),
            header_revision(resp.header()),
        ))
    }

    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        revision: i64,
    ) -> Result<RangeResult> {
        let from = super::range_from(prefix, start);
        let mut options = GetOptions::new().with_range(prefix_end(prefix));
        if limit > 0 {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let resp = match timed(self.kv.clone().get(range_start(from), Some(options))).await? {
            Ok(resp) => resp,
            Err(e) => return Err(self.error(e, revision).await),
        };
        Ok(RangeResult {
            kvs: resp.kvs().iter().map(convert).collect(),
            more: resp.more(),
            count: resp.count(),
            revision: if revision > 0 {
                revision
            } else {
                header_revision(resp.header())
            },
        })
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_count_only();
        let resp = deadline(self.kv.clone().get(range_start(prefix), Some(options))).await?;
        Ok(resp.count())
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        let guard = Compare::create_revision(key, CompareOp::Equal, 0);
        match self
            .guarded(key, guard, TxnOp::put(key, value, None))
            .await?
        {
            Ok(resp) => Ok(header_revision(resp.header())),
            Err(_) => Err(StoreError::AlreadyExists),
        }
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected_mod_revision: i64) -> Result<i64> {
        let guard = Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision);
        match self
            .guarded(key, guard, TxnOp::put(key, value, None))
            .await?
        {
            Ok(resp) => Ok(header_revision(resp.header())),
            Err(None) => Err(StoreError::NotFound),
            Err(Some(current)) => Err(StoreError::Conflict {
                current: Some(current),
            }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(i64, KeyValue)> {
        let guard = match expected_mod_revision {
            Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
            None => Compare::create_revision(key, CompareOp::Greater, 0),
        };
        let op = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        match self.guarded(key, guard, op).await? {
            Ok(resp) => {
                let prev = resp.op_responses().into_iter().find_map(|r| match r {
                    TxnOpResponse::Delete(del) => del.prev_kvs().first().map(convert),
                    _ => None,
                });
                match prev {
                    Some(prev) => Ok((header_revision(resp.header()), prev)),
                    None => Err(StoreError::NotFound),
                }
            }
            Err(None) => Err(StoreError::NotFound),
            Err(Some(current)) => Err(StoreError::Conflict {
                current: Some(current),
            }),
        }
    }

    async fn current_revision(&self) -> Result<i64> {
        let options = GetOptions::new().with_count_only();
        let resp = deadline(self.kv.clone().get(vec![0u8], Some(options))).await?;
        Ok(header_revision(resp.header()))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(after_revision.saturating_add(1))
            .with_prev_key();
        let stream = deadline(self.watch.clone().watch(range_start(prefix), Some(options))).await?;
        let state = (stream, VecDeque::<Result<Event>>::new(), false);
        Ok(
            futures::stream::unfold(state, |(mut stream, mut pending, mut done)| async move {
                loop {
                    if let Some(item) = pending.pop_front() {
                        return Some((item, (stream, pending, done)));
                    }
                    if done {
                        return None;
                    }
                    match stream.message().await {
                        Ok(Some(resp)) => {
                            if resp.compact_revision() > 0 {
                                pending.push_back(Err(StoreError::Compacted {
                                    compacted: resp.compact_revision(),
                                }));
                                done = true;
                            } else if resp.canceled() {
                                pending.push_back(Err(StoreError::Other(format!(
                                    "etcd canceled the watch: {}",
                                    resp.cancel_reason()
                                ))));
                                done = true;
                            } else {
                                pending
                                    .extend(resp.events().iter().filter_map(watch_event).map(Ok));
                            }
                        }
                        Ok(None) => done = true,
                        Err(e) => {
                            pending.push_back(Err(plain(e)));
                            done = true;
                        }
                    }
                }
            })
            .boxed(),
        )
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        match timed(self.kv.clone().compact(revision, None)).await? {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => match classify(e) {
                // Already compacted at or past `revision`: nothing left to do (the embedded store agrees).
                Failure::Compacted => Ok(()),
                Failure::Future => Err(StoreError::FutureRevision(revision)),
                Failure::Other(msg) => Err(StoreError::Other(msg)),
            },
        }
    }
}

/// Converts an etcd watch event into ours: a delete carries the deleted value (etcd's delete kv only has
/// the key and the delete revision).
fn watch_event(event: &etcd_client::Event) -> Option<Event> {
    let kv = convert(event.kv()?);
    let prev = event.prev_kv().map(convert);
    Some(match event.event_type() {
        etcd_client::EventType::Put => Event {
            event_type: EventType::Put,
            kv,
            prev,
        },
        etcd_client::EventType::Delete => Event {
            event_type: EventType::Delete,
            kv: match &prev {
                Some(p) => KeyValue {
                    mod_revision: kv.mod_revision,
                    ..p.clone()
                },
                None => kv,
            },
            prev,
        },
    })
}
