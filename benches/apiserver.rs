//! The apiserver benchmark: `cargo bench --bench apiserver` (not a test; it reports figures).
//!
//! For each backend (embedded, then a real etcd started here) it starts the real `rkube server` binary
//! and measures, in one run: cold start to `/readyz`, ConfigMap creates/s through the API with 1, 8 and
//! 64 concurrent clients beside the same backend's raw put rate, the same as a user RBAC judges, pod creates/s
//! in a bare namespace and in one where every admission plugin has work, list latency of 10,000 pods (one
//! consistent list, and kubectl-style pages of 500), watch fan-out (1,000 watchers of one namespace in
//! JSON and in protobuf, 20 changes: delivery latency and server CPU per change; `RKUBE_BENCH_WATCHERS`
//! changes the count), and the server's RSS idle and holding 10,000 pods.
//! `RKUBE_BENCH_PODS` and `RKUBE_BENCH_CREATES` shrink the workload for a quick look; `RKUBE_BENCH_BIN`
//! runs another build of the server (before/after comparisons with the same harness);
//! `RKUBE_BENCH_BACKENDS=embedded` measures one backend.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use rkube::storage::{bench::raw_put_rate, embedded::EmbeddedStore, etcd::EtcdStore, Store};
use serde_json::json;

/// The benchmark's pods name a scheduler nobody runs: the server has no node, and its scheduler would
/// otherwise write a PodScheduled=False condition and a FailedScheduling event for each of them, in
/// the background of every figure measured after them.
const UNSCHEDULED: &str = "bench-unscheduled";

/// The server under test: this build's, or `RKUBE_BENCH_BIN` (to compare two builds with one harness).
fn rkube_bin() -> String {
    std::env::var("RKUBE_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rkube").to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn start_etcd(dir: &Path) -> (Proc, String) {
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let child = Command::new("etcd")
        .args(["--data-dir", &dir.join("etcd").to_string_lossy()])
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd (Debian's etcd-server) must be installed for the benchmark");
    (Proc(child), url)
}

async fn client_for(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(Client::try_from(cfg)?)
}

async fn wait_ready(kubeconfig: &Path, deadline: Duration) -> anyhow::Result<Client> {
    let start = Instant::now();
    loop {
        if kubeconfig.exists() {
            if let Ok(client) = client_for(kubeconfig).await {
                let req = http::Request::get("/readyz").body(Vec::new())?;
                if let Ok(body) = client.request_text(req).await {
                    if body == "ok" {
                        return Ok(client);
                    }
                }
            }
        }
        if start.elapsed() > deadline {
            anyhow::bail!("server not ready after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn create_rate(client: &Client, ns: &str, clients: usize, total: usize) -> f64 {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    create_rate_of(api, clients, total, move |c, i| {
        json!({
            "metadata": {"name": format!("cm-{clients}-{c}-{i}")},
            "data": {"payload": "x".repeat(512)}
        })
    })
    .await
}

/// Creates/s of the objects `make(client, i)` builds, `clients` at a time (failed creates not counted).
async fn create_rate_of<K>(
    api: Api<K>,
    clients: usize,
    total: usize,
    make: impl Fn(usize, usize) -> serde_json::Value + Clone + Send + 'static,
) -> f64
where
    K: kube::Resource
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (api, next, make) = (api.clone(), next.clone(), make.clone());
            tokio::spawn(async move {
                let mut ok = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        return ok;
                    }
                    let obj: K = serde_json::from_value(make(c, i)).expect("static fixture");
                    if api.create(&PostParams::default(), &obj).await.is_ok() {
                        ok += 1;
                    }
                }
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    ok as f64 / start.elapsed().as_secs_f64()
}

/// Pod creates/s (8 clients) in a bare namespace, and in one where every admission plugin has work:
/// a LimitRange (defaults and bounds), a ResourceQuota on pods and compute, PodSecurity `baseline` enforced
/// and `restricted` warned, and a default PriorityClass. A server without the admission chain (an older
/// build through `RKUBE_BENCH_BIN`) shows what the chain costs.
async fn admission_rate(admin: &Client, total: usize) -> anyhow::Result<(f64, f64)> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    let pp = PostParams::default();
    namespaces
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "bench-adm-bare"}}))?,
        )
        .await?;
    namespaces
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "bench-adm-full", "labels": {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted"}}}))?,
        )
        .await?;
    Api::<k8s_openapi::api::core::v1::LimitRange>::namespaced(admin.clone(), "bench-adm-full")
        .create(&pp, &serde_json::from_value(json!({"metadata": {"name": "limits"}, "spec": {"limits": [
            {"type": "Container", "default": {"cpu": "50m", "memory": "32Mi"},
             "defaultRequest": {"cpu": "10m", "memory": "16Mi"}, "max": {"cpu": "1", "memory": "1Gi"}}]}}))?)
        .await?;
    Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(admin.clone(), "bench-adm-full")
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "quota"}, "spec": {"hard": {
            "pods": "1000000", "requests.cpu": "100000", "requests.memory": "100000Gi",
            "limits.cpu": "100000", "limits.memory": "100000Gi"}}}))?,
        )
        .await?;
    Api::<k8s_openapi::api::scheduling::v1::PriorityClass>::all(admin.clone())
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "bench-default"},
            "value": 1000, "globalDefault": true}))?,
        )
        .await?;
    // Let the quota controller fill in status.used: until then the quota plugin refuses creates.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pod = |ns: &'static str| {
        move |c: usize, i: usize| {
            json!({
                "metadata": {"name": format!("{ns}-{c}-{i}")},
                "spec": {"schedulerName": UNSCHEDULED, "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
            })
        }
    };
    let bare = create_rate_of(
        Api::<Pod>::namespaced(admin.clone(), "bench-adm-bare"),
        8,
        total,
        pod("bare"),
    )
    .await;
    let full = create_rate_of(
        Api::<Pod>::namespaced(admin.clone(), "bench-adm-full"),
        8,
        total,
        pod("full"),
    )
    .await;
    Api::<k8s_openapi::api::scheduling::v1::PriorityClass>::all(admin.clone())
        .delete("bench-default", &Default::default())
        .await?;
    Ok((bare, full))
}

/// ConfigMap creates/s as a user whom RBAC has to judge on every request (bound to `edit` in the
/// namespace, with a certificate from `rkube kubeconfig --user`), and as the admin, whose
/// `system:masters` group skips RBAC: (user rate, admin rate), each in a fresh namespace.
async fn rbac_user_rate(
    data_dir: &Path,
    server: &str,
    admin: &Client,
    clients: usize,
    total: usize,
) -> anyhow::Result<(f64, f64)> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    for n in ["bench-rbac-user", "bench-rbac-admin"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": n}}))?,
            )
            .await?;
    }
    let out = Command::new(rkube_bin())
        .args(["kubeconfig", "--data-dir", &data_dir.to_string_lossy()])
        .args(["--server", server, "--user", "bench-editor"])
        .output()?;
    anyhow::ensure!(out.status.success(), "rkube kubeconfig --user failed");
    let path = data_dir.with_file_name("editor.kubeconfig");
    std::fs::write(&path, &out.stdout)?;
    let user = client_for(&path).await?;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(admin.clone(), "bench-rbac-user");
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "editor"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-editor"}]
            }))?,
        )
        .await?;
    let probe: Api<ConfigMap> = Api::namespaced(user.clone(), "bench-rbac-user");
    let start = Instant::now();
    while probe.list(&ListParams::default()).await.is_err() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the binding never took effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let user_rate = create_rate(&user, "bench-rbac-user", clients, total).await;
    let admin_rate = create_rate(admin, "bench-rbac-admin", clients, total).await;
    Ok((user_rate, admin_rate))
}

/// One raw GET with the given Accept: (milliseconds, response bytes).
async fn timed_get(client: &Client, path: &str, accept: &str) -> anyhow::Result<(f64, usize)> {
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(kube::client::Body::from(Vec::new()))?;
    let t = Instant::now();
    let resp = client.send(req).await?;
    let bytes = resp.into_body().collect_bytes().await?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, bytes.len()))
}

/// ConfigMap creates/s with request bodies in `content_type` (JSON or protobuf), `clients` at a time.
async fn create_rate_raw(
    client: &Client,
    ns: &str,
    clients: usize,
    total: usize,
    protobuf: bool,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, next, ns) = (client.clone(), next.clone(), ns.to_string());
            tokio::spawn(async move {
                let mut ok = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        return ok;
                    }
                    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("raw-{}-{i}", if protobuf { "pb" } else { "json" })},
                        "data": {"payload": "x".repeat(512)}});
                    let (ct, body) = if protobuf {
                        ("application/vnd.kubernetes.protobuf", rkube::apiserver::wire::protobuf::encode(&cm).unwrap_or_default())
                    } else {
                        ("application/json", serde_json::to_vec(&cm).unwrap_or_default())
                    };
                    let Ok(req) = http::Request::post(format!("/api/v1/namespaces/{ns}/configmaps"))
                        .header(http::header::CONTENT_TYPE, ct)
                        .header(http::header::ACCEPT, ct)
                        .body(kube::client::Body::from(body))
                    else {
                        continue;
                    };
                    if let Ok(resp) = client.send(req).await {
                        if resp.status() == http::StatusCode::CREATED {
                            ok += 1;
                        }
                        let _ = resp.into_body().collect_bytes().await;
                    }
                }
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    ok as f64 / start.elapsed().as_secs_f64()
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks per second are 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// `watchers` watches of one namespace in `accept`'s format, then `changes` ConfigMap creates 100 ms
/// apart: delivery latency (create sent → frame read by each watcher) p50/p99/max, deliveries lost,
/// and the server's CPU time per change.
async fn watch_fanout(
    client: &Client,
    server_pid: u32,
    ns: &str,
    watchers: usize,
    changes: usize,
    accept: &'static str,
) -> anyhow::Result<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let (client, tx, started) = (client.clone(), tx.clone(), started.clone());
        let path = format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=120"
        );
        tasks.push(tokio::spawn(async move {
            use http_body_util::BodyExt;
            let req = http::Request::get(path)
                .header(http::header::ACCEPT, accept)
                .body(kube::client::Body::from(Vec::new()))?;
            let mut body = client.send(req).await?.into_body();
            started.fetch_add(1, Ordering::SeqCst);
            let mut buf: Vec<u8> = Vec::new();
            let mut seen = 0;
            while seen < changes {
                let Some(frame) = body.frame().await else {
                    break;
                };
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                let at = Instant::now();
                buf.extend_from_slice(&data);
                // Each complete event names the change it carries (`fan-<i>`).
                loop {
                    let (name, used) = if accept.contains("protobuf") {
                        match rkube::apiserver::wire::protobuf::decode_watch_frame(&buf) {
                            Ok(Some((_, obj, used))) => {
                                (obj["metadata"]["name"].as_str().map(String::from), used)
                            }
                            _ => break,
                        }
                    } else {
                        let Some(end) = buf.iter().position(|b| *b == b'\n') else {
                            break;
                        };
                        let ev: serde_json::Value = serde_json::from_slice(&buf[..end])?;
                        (
                            ev["object"]["metadata"]["name"].as_str().map(String::from),
                            end + 1,
                        )
                    };
                    buf.drain(..used);
                    if let Some(i) = name.and_then(|n| n.strip_prefix("fan-")?.parse().ok()) {
                        let _ = tx.send((i, at));
                        seen += 1;
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.load(Ordering::SeqCst) < watchers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every watch is registered once its response headers came; give the last ones a moment more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = cpu_seconds(server_pid);
    let mut sent = Vec::new();
    for i in 0..changes {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("fan-{i}")}, "data": {"payload": "x".repeat(512)}}),
        )?;
        sent.push(Instant::now());
        api.create(&PostParams::default(), &cm).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut lat = Vec::new();
    let collect_until = Instant::now() + Duration::from_secs(30);
    while lat.len() < watchers * changes {
        match tokio::time::timeout_at(collect_until.into(), rx.recv()).await {
            Ok(Some((i, at))) => lat.push(at.duration_since(sent[i]).as_secs_f64() * 1000.0),
            _ => break,
        }
    }
    let cpu = cpu_seconds(server_pid) - cpu_before;
    for t in tasks {
        t.abort();
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(format!(
        "{watchers} watchers ({}), {changes} changes: delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} of {} delivered; server CPU {:.1} ms per change",
        if accept.contains("protobuf") { "protobuf" } else { "JSON" },
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len(),
        watchers * changes,
        cpu * 1000.0 / changes as f64
    ))
}

async fn create_pods(client: &Client, ns: &str, n: usize) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (api, next) = (api.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return;
                    }
                    let pod: Pod = serde_json::from_value(json!({
                        "metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
                        "spec": {"schedulerName": UNSCHEDULED, "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                  "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
                    }))
                    .expect("static fixture");
                    let _ = api.create(&PostParams::default(), &pod).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn bench_backend(name: &str, pods: usize, creates: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut etcd = None;
    let mut args: Vec<String> = vec![];
    let raw_store: Arc<dyn Store> = if name == "etcd" {
        let (proc_, url) = start_etcd(dir.path());
        etcd = Some(proc_);
        let start = Instant::now();
        let store = loop {
            match EtcdStore::connect(std::slice::from_ref(&url), &Default::default()).await {
                Ok(s) if s.current_revision().await.is_ok() => break s,
                _ if start.elapsed() > Duration::from_secs(20) => {
                    anyhow::bail!("etcd did not start")
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        args.extend([
            "--storage".into(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            url,
        ]);
        Arc::new(store)
    } else {
        EmbeddedStore::open(&dir.path().join("raw"))?
    };
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let port = free_port();
    let started = Instant::now();
    let child = Command::new(rkube_bin())
        .args([
            "server",
            "--data-dir",
            &dir.path().join("data").to_string_lossy(),
        ])
        .args([
            "--secure-port",
            &port.to_string(),
            "--bind-address",
            "127.0.0.1",
        ])
        .args(["--write-kubeconfig", &kubeconfig.to_string_lossy()])
        // No node: on a machine with containerd the server would otherwise run the benchmark's pods.
        .arg("--container-runtime-endpoint=")
        .args(&args)
        .env("RKUBE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let server = Proc(child);
    let client = wait_ready(&kubeconfig, Duration::from_secs(60)).await?;
    let cold_start = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_mib(server.0.id());
    println!(
        "[{name}] cold start to /readyz: {:.0} ms; idle RSS: {idle_rss:.1} MiB",
        cold_start.as_secs_f64() * 1000.0
    );

    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in ["bench-cm", "bench-pods"] {
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": n}}))?,
        )
        .await?;
    }
    for clients in [1usize, 8, 64] {
        let total = if clients == 1 { creates / 4 } else { creates };
        let api = create_rate(&client, "bench-cm", clients, total.max(clients)).await;
        let raw = raw_put_rate(raw_store.clone(), clients, total.max(clients)).await;
        println!(
            "[{name}] ConfigMap creates/s with {clients:>2} clients: API {api:>8.0}   raw store puts/s {raw:>8.0}   API/raw {:.2}",
            api / raw.max(1e-9)
        );
    }

    let data_dir = dir.path().join("data");
    let url = format!("https://127.0.0.1:{port}");
    let (user, admin) = rbac_user_rate(&data_dir, &url, &client, 8, creates).await?;
    println!(
        "[{name}] ConfigMap creates/s with  8 clients as an RBAC-judged user (edit): {user:>8.0}   as system:masters {admin:>8.0}   user/masters {:.2}",
        user / admin.max(1e-9)
    );

    let (bare, full) = admission_rate(&client, creates / 2).await?;
    println!(
        "[{name}] pod creates/s with  8 clients: bare namespace {bare:>8.0}   every admission plugin at work {full:>8.0}   full/bare {:.2}",
        full / bare.max(1e-9)
    );

    let t = Instant::now();
    create_pods(&client, "bench-pods", pods).await;
    println!(
        "[{name}] created {pods} pods in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let api: Api<Pod> = Api::namespaced(client.clone(), "bench-pods");
    for round in 0..3 {
        let t = Instant::now();
        let list = api.list(&ListParams::default()).await?;
        let full = t.elapsed();
        let t = Instant::now();
        let mut pages = 0;
        let mut items = 0;
        let mut lp = ListParams::default().limit(500);
        loop {
            let page = api.list(&lp).await?;
            pages += 1;
            items += page.items.len();
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
                _ => break,
            }
        }
        println!(
            "[{name}] list {} pods: one request {:.0} ms; {pages} pages of 500 ({items} items) {:.0} ms{}",
            list.items.len(),
            full.as_secs_f64() * 1000.0,
            t.elapsed().as_secs_f64() * 1000.0,
            if round == 0 { " (first)" } else { "" }
        );
    }
    for accept in ["application/json", "application/vnd.kubernetes.protobuf"] {
        let mut best = f64::MAX;
        let mut size = 0;
        for _ in 0..3 {
            let (ms, bytes) =
                timed_get(&client, "/api/v1/namespaces/bench-pods/pods", accept).await?;
            best = best.min(ms);
            size = bytes;
        }
        println!(
            "[{name}] list {pods} pods as {accept}: {best:.0} ms (best of 3), {:.1} MiB",
            size as f64 / 1048576.0
        );
    }
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "bench-wire"}}))?,
    )
    .await?;
    for protobuf in [false, true] {
        let rate = create_rate_raw(&client, "bench-wire", 8, creates / 2, protobuf).await;
        println!(
            "[{name}] ConfigMap creates/s with 8 clients, {} bodies: {rate:.0}",
            if protobuf { "protobuf" } else { "JSON" }
        );
    }
    let watchers = std::env::var("RKUBE_BENCH_WATCHERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for (i, accept) in [
        "application/json",
        "application/vnd.kubernetes.protobuf;stream=watch",
    ]
    .into_iter()
    .enumerate()
    {
        let ns_name = format!("bench-watch-{i}");
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns_name}}))?,
        )
        .await?;
        let line = watch_fanout(&client, server.0.id(), &ns_name, watchers, 20, accept).await?;
        println!("[{name}] {line}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "[{name}] RSS with {pods} pods: {:.1} MiB",
        rss_mib(server.0.id())
    );
    drop(server);
    drop(etcd);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let pods = std::env::var("RKUBE_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let creates = std::env::var("RKUBE_BENCH_CREATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // `RKUBE_BENCH_BACKENDS=embedded` (or `etcd`) measures one backend only.
    let backends = std::env::var("RKUBE_BENCH_BACKENDS").unwrap_or_else(|_| "embedded,etcd".into());
    rt.block_on(async {
        for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            bench_backend(backend, pods, creates).await?;
        }
        Ok(())
    })
}
