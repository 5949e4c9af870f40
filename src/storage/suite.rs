//! One behavioural specification of [`Store`], run against both backends so they cannot drift apart:
//! the apiserver must not be able to tell which one it talks to. The etcd runs start a real etcd
//! (`/usr/bin/etcd`, Debian's etcd-server) per test and fail loudly when it is missing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::embedded::EmbeddedStore;
use super::etcd::EtcdStore;
use super::{Event, EventType, KeyValue, Store, StoreError, WatchStream};

const ETCD_BINARY: &str = "/usr/bin/etcd";

/// A store plus whatever must outlive it (temp dir, etcd process). Fields drop in order: store first.
struct Backend {
    store: Arc<dyn Store>,
    _guard: Box<dyn Send>,
}

async fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open embedded store");
    Backend {
        store,
        _guard: Box::new(dir),
    }
}

/// A running etcd, killed (and its data dir removed) when dropped.
pub(crate) struct EtcdProcess {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// An etcd on free loopback ports (also a gRPC server for the kubelet's gRPC probe tests), and its
/// client URL.
pub(crate) fn spawn_etcd() -> (EtcdProcess, String) {
    assert!(
        Path::new(ETCD_BINARY).exists(),
        "{ETCD_BINARY} is missing: the etcd storage tests need a real etcd (apt-get install etcd-server)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let (client_port, peer_port) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log file");
    let child = Command::new(ETCD_BINARY)
        .arg("--name=test")
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=test={peer_url}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd");
    (EtcdProcess { child, dir }, client_url)
}

async fn etcd() -> Backend {
    for _attempt in 0..3 {
        let (mut process, url) = spawn_etcd();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = process.child.try_wait() {
                break; // exited, most likely a port race: try again on new ports
            }
            if let Ok(store) =
                EtcdStore::connect(std::slice::from_ref(&url), &Default::default()).await
            {
                return Backend {
                    store: Arc::new(store),
                    _guard: Box::new(process),
                };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let log = std::fs::read_to_string(process.dir.path().join("etcd.log")).unwrap_or_default();
        eprintln!("etcd did not come up; its log:\n{log}");
    }
    panic!("could not start etcd for the storage tests");
}

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn next_event(w: &mut WatchStream) -> Event {
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch error: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within 10s"),
    }
}

async fn assert_quiet(w: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), w.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn assert_put(e: &Event, key: &str, value: &str, prev: Option<&str>) {
    assert_eq!(e.event_type, EventType::Put, "{e:?}");
    assert_eq!(e.kv.key, key);
    assert_eq!(e.kv.value, v(value));
    assert_eq!(
        e.prev.as_ref().map(|p| p.value.clone()),
        prev.map(v),
        "{e:?}"
    );
}

fn assert_delete(e: &Event, key: &str, value: &str, rev: i64) {
    assert_eq!(e.event_type, EventType::Delete, "{e:?}");
    assert_eq!(e.kv.key, key);
    assert_eq!(e.kv.value, v(value));
    assert_eq!(e.kv.mod_revision, rev);
    let prev = e.prev.as_ref().expect("delete carries the previous value");
    assert_eq!(prev.value, v(value));
    assert!(prev.mod_revision < rev);
}

async fn crud_and_guards(s: Arc<dyn Store>) {
    let r0 = s.current_revision().await.unwrap();
    assert!(r0 > 0);
    let r1 = s.create("/t/crud/a", v("1")).await.unwrap();
    assert!(r1 > r0);
    assert_eq!(s.current_revision().await.unwrap(), r1);
    assert!(matches!(
        s.create("/t/crud/a", v("x")).await,
        Err(StoreError::AlreadyExists)
    ));

    let (kv, rev) = s.get("/t/crud/a").await.unwrap();
    let kv = kv.expect("created key");
    assert_eq!(rev, r1);
    assert_eq!(
        (kv.value.clone(), kv.create_revision, kv.mod_revision),
        (v("1"), r1, r1)
    );
    assert_eq!(s.get("/t/crud/missing").await.unwrap().0, None);

    let r2 = s.update("/t/crud/a", v("2"), r1).await.unwrap();
    assert!(r2 > r1);
    let kv = s.get("/t/crud/a").await.unwrap().0.unwrap();
    assert_eq!(
        (kv.value, kv.create_revision, kv.mod_revision),
        (v("2"), r1, r2)
    );

    match s.update("/t/crud/a", v("3"), r1).await {
        Err(StoreError::Conflict { current: Some(cur) }) => {
            assert_eq!((cur.value, cur.mod_revision), (v("2"), r2));
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    assert!(matches!(
        s.update("/t/crud/missing", v("x"), r1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete("/t/crud/missing", None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete("/t/crud/missing", Some(r1)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete("/t/crud/a", Some(r1)).await,
        Err(StoreError::Conflict { current: Some(_) })
    ));

    let (r3, deleted) = s.delete("/t/crud/a", Some(r2)).await.unwrap();
    assert!(r3 > r2);
    assert_eq!((deleted.value, deleted.mod_revision), (v("2"), r2));
    assert_eq!(s.get("/t/crud/a").await.unwrap(), (None, r3));
    assert!(matches!(
        s.update("/t/crud/a", v("4"), r2).await,
        Err(StoreError::NotFound)
    ));

    // Unguarded delete, and re-creating a deleted key starts a new lifetime.
    let r4 = s.create("/t/crud/a", v("5")).await.unwrap();
    let (r5, deleted) = s.delete("/t/crud/a", None).await.unwrap();
    assert!(r5 > r4);
    assert_eq!((deleted.value, deleted.create_revision), (v("5"), r4));
    assert_eq!(s.current_revision().await.unwrap(), r5);
}

async fn range_pagination_and_count(s: Arc<dyn Store>) {
    for i in 0..5 {
        s.create(&format!("/t/page/k{i}"), v(&i.to_string()))
            .await
            .unwrap();
    }
    // Neighbours that share a byte prefix but are outside "/t/page/".
    s.create("/t/page", v("x")).await.unwrap();
    s.create("/t/pagf/z", v("x")).await.unwrap();
    let rev = s.current_revision().await.unwrap();

    let all = s.range("/t/page/", None, 0, 0).await.unwrap();
    assert_eq!(
        keys(&all.kvs),
        [
            "/t/page/k0",
            "/t/page/k1",
            "/t/page/k2",
            "/t/page/k3",
            "/t/page/k4"
        ]
    );
    assert!(!all.more);
    assert_eq!(all.revision, rev);
    assert_eq!(s.count("/t/page/").await.unwrap(), 5);
    assert_eq!(s.count("/t/nothing/").await.unwrap(), 0);

    let mut seen = Vec::new();
    let mut start: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s.range("/t/page/", start.as_deref(), 2, rev).await.unwrap();
        assert_eq!(page.revision, rev);
        assert!(page.kvs.len() <= 2);
        pages += 1;
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        start = Some(format!("{}\0", page.kvs.last().unwrap().key));
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, keys(&all.kvs));

    // An exact limit has no "more"; the start key is inclusive.
    let page = s.range("/t/page/", Some("/t/page/k3"), 2, 0).await.unwrap();
    assert_eq!(keys(&page.kvs), ["/t/page/k3", "/t/page/k4"]);
    assert!(!page.more);
    assert_eq!(page.count, 2);

    // count covers the whole rest of the prefix, not just the page.
    let first = s.range("/t/page/", None, 2, 0).await.unwrap();
    assert_eq!((first.kvs.len(), first.count), (2, 5));
    let rest = s
        .range("/t/page/", Some("/t/page/k1\0"), 1, rev)
        .await
        .unwrap();
    assert_eq!((rest.kvs.len(), rest.count), (1, 3));
}

async fn range_at_old_revision(s: Arc<dyn Store>) {
    let ra = s.create("/t/old/a", v("a1")).await.unwrap();
    let rb = s.create("/t/old/b", v("b1")).await.unwrap();
    let rc = s.create("/t/old/c", v("c1")).await.unwrap();
    s.update("/t/old/b", v("b2"), rb).await.unwrap();
    s.delete("/t/old/c", Some(rc)).await.unwrap();
    let rd = s.create("/t/old/d", v("d1")).await.unwrap();
    s.create("/t/older/x", v("x")).await.unwrap();

    let old = s.range("/t/old/", None, 0, rc).await.unwrap();
    assert_eq!(old.revision, rc);
    assert_eq!(keys(&old.kvs), ["/t/old/a", "/t/old/b", "/t/old/c"]);
    assert_eq!(old.kvs[1].value, v("b1"));
    assert_eq!(old.kvs[1].mod_revision, rb);
    assert_eq!(old.kvs[2].value, v("c1"));
    assert_eq!(old.kvs[0].create_revision, ra);

    let first = s.range("/t/old/", None, 0, ra).await.unwrap();
    assert_eq!(keys(&first.kvs), ["/t/old/a"]);

    let now = s.range("/t/old/", None, 0, 0).await.unwrap();
    assert_eq!(keys(&now.kvs), ["/t/old/a", "/t/old/b", "/t/old/d"]);
    assert_eq!(now.kvs[1].value, v("b2"));
    assert_eq!(now.kvs[2].mod_revision, rd);

    // Paginating the old snapshot, one key per page.
    let p1 = s.range("/t/old/", None, 1, rc).await.unwrap();
    assert_eq!((keys(&p1.kvs), p1.more), (vec!["/t/old/a"], true));
    assert_eq!(p1.count, 3);
    let p2 = s.range("/t/old/", Some("/t/old/a\0"), 1, rc).await.unwrap();
    assert_eq!((keys(&p2.kvs), p2.more), (vec!["/t/old/b"], true));
    assert_eq!(p2.count, 2);
    assert_eq!(p2.kvs[0].value, v("b1"));
    let p3 = s.range("/t/old/", Some("/t/old/b\0"), 1, rc).await.unwrap();
    assert_eq!((keys(&p3.kvs), p3.more), (vec!["/t/old/c"], false));

    let future = s.current_revision().await.unwrap() + 100;
    assert!(matches!(
        s.range("/t/old/", None, 0, future).await,
        Err(StoreError::FutureRevision(r)) if r == future
    ));
}

async fn watch_replay_and_live(s: Arc<dyn Store>) {
    let r0 = s.current_revision().await.unwrap();
    let r1 = s.create("/t/w/a", v("1")).await.unwrap();
    let r2 = s.update("/t/w/a", v("2"), r1).await.unwrap();
    s.create("/t/other/x", v("x")).await.unwrap();
    s.create("/t/wx", v("x")).await.unwrap();
    let (r3, _) = s.delete("/t/w/a", Some(r2)).await.unwrap();

    let mut w = s.watch("/t/w/", r0).await.unwrap();
    let e = next_event(&mut w).await;
    assert_put(&e, "/t/w/a", "1", None);
    assert_eq!((e.kv.create_revision, e.kv.mod_revision), (r1, r1));
    let e = next_event(&mut w).await;
    assert_put(&e, "/t/w/a", "2", Some("1"));
    assert_eq!(e.kv.mod_revision, r2);
    assert_delete(&next_event(&mut w).await, "/t/w/a", "2", r3);
    assert_quiet(&mut w).await;

    // Live: only keys under the prefix, in order, with previous values.
    let rb = s.create("/t/w/b", v("b1")).await.unwrap();
    s.create("/t/other/y", v("y")).await.unwrap();
    let rb2 = s.update("/t/w/b", v("b2"), rb).await.unwrap();
    let (rb3, _) = s.delete("/t/w/b", None).await.unwrap();
    let e = next_event(&mut w).await;
    assert_put(&e, "/t/w/b", "b1", None);
    assert_eq!(e.kv.mod_revision, rb);
    let e = next_event(&mut w).await;
    assert_put(&e, "/t/w/b", "b2", Some("b1"));
    assert_eq!(e.kv.mod_revision, rb2);
    assert_delete(&next_event(&mut w).await, "/t/w/b", "b2", rb3);
    assert_quiet(&mut w).await;

    // Starting in the middle: strictly after the given revision.
    let mut w = s.watch("/t/w/", r1).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.mod_revision, r2);
    assert_eq!(next_event(&mut w).await.kv.mod_revision, r3);
    assert_eq!(next_event(&mut w).await.kv.mod_revision, rb);

    // From "now": nothing old, then live events.
    let now = s.current_revision().await.unwrap();
    let mut w = s.watch("/t/w/", now).await.unwrap();
    assert_quiet(&mut w).await;
    s.create("/t/w/c", v("c")).await.unwrap();
    assert_put(&next_event(&mut w).await, "/t/w/c", "c", None);
}

async fn concurrent_writes(s: Arc<dyn Store>) {
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/t/conc/", start).await.unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.create(&format!("/t/conc/{i:03}"), v("x")).await })
        })
        .collect();
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap().unwrap());
    }
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), 100, "every create gets its own revision");
    assert!(revs[0] > start);
    assert_eq!(s.count("/t/conc/").await.unwrap(), 100);
    let mut last = start;
    for _ in 0..100 {
        let e = next_event(&mut w).await;
        assert!(e.kv.mod_revision > last, "events in revision order");
        last = e.kv.mod_revision;
    }
    assert_eq!(last, *revs.last().unwrap());
}

async fn compaction(s: Arc<dyn Store>) {
    let r1 = s.create("/t/c/a", v("a1")).await.unwrap();
    let r2 = s.update("/t/c/a", v("a2"), r1).await.unwrap();
    let r3 = s.create("/t/c/b", v("b1")).await.unwrap();
    let (r4, _) = s.delete("/t/c/b", Some(r3)).await.unwrap();
    let r5 = s.create("/t/c/e", v("e1")).await.unwrap();
    let (r6, _) = s.delete("/t/c/e", Some(r5)).await.unwrap();
    s.compact(r4).await.unwrap();

    match s.range("/t/c/", None, 0, r1).await {
        Err(StoreError::Compacted { compacted }) => assert_eq!(compacted, r4),
        other => panic!("expected compacted, got {other:?}"),
    }
    assert!(matches!(
        s.range("/t/c/", None, 0, r3).await,
        Err(StoreError::Compacted { .. })
    ));
    let at = s.range("/t/c/", None, 0, r4).await.unwrap();
    assert_eq!(keys(&at.kvs), ["/t/c/a"]);
    assert_eq!(
        (at.kvs[0].value.clone(), at.kvs[0].mod_revision),
        (v("a2"), r2)
    );
    let at = s.range("/t/c/", None, 0, r5).await.unwrap();
    assert_eq!(keys(&at.kvs), ["/t/c/a", "/t/c/e"]);
    let now = s.range("/t/c/", None, 0, 0).await.unwrap();
    assert_eq!(keys(&now.kvs), ["/t/c/a"]);
    assert_eq!(s.get("/t/c/a").await.unwrap().0.unwrap().value, v("a2"));

    // Watching from before the compaction point fails first thing; from the point on, it replays.
    let mut w = s.watch("/t/c/", r1).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Err(StoreError::Compacted { compacted }))) => assert_eq!(compacted, r4),
        other => panic!("expected compacted watch, got {other:?}"),
    }
    // (etcd drops a tombstone sitting exactly at the compaction point from its history, so only changes
    // after it are compared.)
    let mut w = s.watch("/t/c/", r4).await.unwrap();
    assert_put(&next_event(&mut w).await, "/t/c/e", "e1", None);
    assert_delete(&next_event(&mut w).await, "/t/c/e", "e1", r6);

    // Compacting again at (or below) the same point is harmless; the future is not allowed.
    s.compact(r4).await.unwrap();
    let future = s.current_revision().await.unwrap() + 100;
    assert!(matches!(
        s.compact(future).await,
        Err(StoreError::FutureRevision(_))
    ));

    // Compacting everything keeps the latest state and lets writes go on.
    let r7 = s.update("/t/c/a", v("a3"), r2).await.unwrap();
    s.compact(r7).await.unwrap();
    let now = s.range("/t/c/", None, 0, 0).await.unwrap();
    assert_eq!(keys(&now.kvs), ["/t/c/a"]);
    assert_eq!(s.range("/t/c/", None, 0, r7).await.unwrap().kvs, now.kvs);
    let r8 = s.update("/t/c/a", v("a4"), r7).await.unwrap();
    assert!(r8 > r7);
    assert_put(&next_event(&mut w).await, "/t/c/a", "a3", Some("a2"));
    assert_put(&next_event(&mut w).await, "/t/c/a", "a4", Some("a3"));
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::embedded().await;
                    super::$name(backend.store.clone()).await;
                }
            )*
        }
        mod etcd_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::etcd().await;
                    super::$name(backend.store.clone()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    crud_and_guards,
    range_pagination_and_count,
    range_at_old_revision,
    watch_replay_and_live,
    concurrent_writes,
    compaction,
);

#[tokio::test]
async fn embedded_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2, r3, r4);
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        r1 = s.create("/t/r/a", v("a1")).await.unwrap();
        r2 = s.update("/t/r/a", v("a2"), r1).await.unwrap();
        r3 = s.create("/t/r/b", v("b1")).await.unwrap();
        r4 = s.delete("/t/r/b", None).await.unwrap().0;
        s.compact(r2).await.unwrap();
    }
    let s: Arc<dyn Store> = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.current_revision().await.unwrap(), r4);
    assert_eq!(s.get("/t/r/a").await.unwrap().0.unwrap().value, v("a2"));
    assert_eq!(s.get("/t/r/b").await.unwrap().0, None);
    assert!(matches!(
        s.range("/t/r/", None, 0, r1).await,
        Err(StoreError::Compacted { compacted }) if compacted == r2
    ));
    let at = s.range("/t/r/", None, 0, r3).await.unwrap();
    assert_eq!(keys(&at.kvs), ["/t/r/a", "/t/r/b"]);
    let r5 = s.create("/t/r/c", v("c1")).await.unwrap();
    assert!(r5 > r4);

    let mut w = s.watch("/t/r/", r2).await.unwrap();
    assert_put(&next_event(&mut w).await, "/t/r/b", "b1", None);
    assert_delete(&next_event(&mut w).await, "/t/r/b", "b1", r4);
    assert_put(&next_event(&mut w).await, "/t/r/c", "c1", None);
}

#[tokio::test]
async fn embedded_lagging_watcher_replays_from_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_with_watch_buffer(dir.path(), 2).unwrap();
    let s: Arc<dyn Store> = store;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/t/lag/", start).await.unwrap();
    let mut other = s.watch("/t/lag/", start).await.unwrap();
    // Let the first watcher finish its (empty) replay and start following the broadcast.
    assert_quiet(&mut w).await;
    let mut revs = Vec::new();
    for i in 0..40 {
        revs.push(s.create(&format!("/t/lag/{i:02}"), v("x")).await.unwrap());
        s.create(&format!("/t/skip/{i:02}"), v("x")).await.unwrap();
    }
    for watcher in [&mut w, &mut other] {
        for (i, rev) in revs.iter().enumerate() {
            let e = next_event(watcher).await;
            assert_eq!(
                (e.kv.key.clone(), e.kv.mod_revision),
                (format!("/t/lag/{i:02}"), *rev)
            );
        }
        assert_quiet(watcher).await;
    }
    // And it keeps following live changes afterwards.
    s.create("/t/lag/z", v("z")).await.unwrap();
    assert_put(&next_event(&mut w).await, "/t/lag/z", "z", None);
}

#[tokio::test]
async fn raw_put_rate_reports_a_rate() {
    let backend = embedded().await;
    let rate = super::bench::raw_put_rate(backend.store.clone(), 8, 200).await;
    assert!(rate > 0.0);
    assert_eq!(backend.store.count("/rkube-bench/").await.unwrap(), 200);
}

/// Prints the raw create rate of both backends (`cargo test --release --lib storage:: -- --ignored
/// --nocapture`); a measurement, not a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn raw_put_rate_of_both_backends() {
    for (name, backend) in [("embedded", embedded().await), ("etcd", etcd().await)] {
        for clients in [1, 16, 64] {
            let rate = super::bench::raw_put_rate(backend.store.clone(), clients, 2000).await;
            println!("{name}: {clients} clients: {rate:.0} creates/s");
        }
    }
}
