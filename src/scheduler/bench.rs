//! `rkube bench-schedule`: scheduling throughput through the real API (not a test).
//!
//! Against a running cluster with nodes (e.g. `rkube server --hollow-nodes 5000`), creates N pods in a
//! fresh namespace (requests as upstream's scheduler_perf pod-default: 100m cpu, 500Mi memory), watches
//! them get bound, and prints pods/s (first create to last binding) and create→bound p50/p99.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

pub async fn run(client: kube::Client, count: usize, concurrency: usize) -> anyhow::Result<()> {
    let m = measure(
        client,
        "bench-schedule",
        count,
        concurrency,
        |i| {
            json!({
                "metadata": {"name": format!("p-{i}")},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}
            })
        },
        |p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(),
    )
    .await?;
    println!(
        "scheduled {}/{} pods in {:.2}s: {:.0} pods/s (creates took {:.2}s); create→bound p50 {:?} p99 {:?}",
        m.reached,
        m.created,
        m.secs,
        m.reached as f64 / m.secs.max(1e-9),
        m.created_in.as_secs_f64(),
        m.p50,
        m.p99
    );
    Ok(())
}

/// What [`measure`] saw.
pub struct Measured {
    pub created: usize,
    /// Pods that reached the awaited state.
    pub reached: usize,
    /// First create to the last pod reaching the state.
    pub secs: f64,
    pub created_in: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

/// Creates `count` pods (`pod(i)`, `concurrency` at once) in a fresh namespace `<prefix>-<pid>` and
/// times each from its create to the first watch event where `reached(pod)` holds (at most 10
/// minutes), then deletes the namespace. Shared by the scheduler's and the kubelet's benchmarks.
pub async fn measure(
    client: kube::Client,
    prefix: &str,
    count: usize,
    concurrency: usize,
    pod: impl Fn(usize) -> serde_json::Value,
    reached: fn(&Pod) -> bool,
) -> anyhow::Result<Measured> {
    let ns = format!("{prefix}-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // The watch starts before the first create, so no event is missed.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch_api = pods.clone();
    let watch = tokio::spawn(async move {
        let mut stream = watcher::watcher(watch_api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev {
                if reached(&p) {
                    let _ = seen_tx.send((p.metadata.name.unwrap_or_default(), Instant::now()));
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let begin = Instant::now();
    let manifests: Vec<serde_json::Value> = (0..count).map(pod).collect();
    let created: Vec<(String, Instant)> = futures::stream::iter(manifests)
        .map(|manifest| {
            let pods = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(manifest)?;
                let name = pod.metadata.name.clone().unwrap_or_default();
                let at = Instant::now();
                pods.create(&PostParams::default(), &pod).await?;
                anyhow::Ok((name, at))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|r| async move { r.map_err(|e| eprintln!("create failed: {e}")).ok() })
        .collect()
        .await;
    let created_in = begin.elapsed();
    let started: HashMap<String, Instant> = created.into_iter().collect();
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while seen.len() < started.len() {
        match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
            Ok(Some((name, at))) => {
                seen.entry(name).or_insert(at);
            }
            _ => break,
        }
    }
    watch.abort();
    let last = seen.values().max().copied().unwrap_or(begin);
    let mut lat: Vec<Duration> = seen
        .iter()
        .filter_map(|(n, b)| started.get(n).map(|s| b.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let measured = Measured {
        created: started.len(),
        reached: seen.len(),
        secs: last.duration_since(begin).as_secs_f64(),
        created_in,
        p50: pct(0.50),
        p99: pct(0.99),
    };
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    Ok(measured)
}
