//! `rkube bench-pods`: the kubelet's pod start-up latency on a real runtime (not a test).
//!
//! Against a running cluster with a containerd node (README's `rkube server`), creates N busybox pods
//! whose image is present (`IfNotPresent`), and prints create → Running p50/p99 (upstream's pod
//! start-up SLO is 5 s including pulls; the goal is p99 < 1 s with the image present), and,
//! given `--kubelet-pid`, that process's RSS before and at its peak while the pods start.

use std::time::Duration;

use serde_json::json;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub async fn run(
    client: kube::Client,
    count: usize,
    concurrency: usize,
    kubelet_pid: Option<u32>,
) -> anyhow::Result<()> {
    let before = kubelet_pid.and_then(rss_kib);
    // The peak RSS, sampled while the pods start.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut peak = 0u64;
        loop {
            if let Some(kib) = kubelet_pid.and_then(rss_kib) {
                peak = peak.max(kib);
            }
            tokio::select! {
                _ = &mut stop_rx => return peak,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    let m = crate::scheduler::bench::measure(
        client,
        "bench-pods",
        count,
        concurrency,
        |i| {
            json!({
                "metadata": {"name": format!("p-{i}")},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "busybox:1.36",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}]}
            })
        },
        |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
    )
    .await?;
    let _ = stop_tx.send(());
    let peak = sampler.await.unwrap_or(0);
    println!(
        "{}/{} pods Running in {:.2}s (creates took {:.2}s); create→Running p50 {:?} p99 {:?}",
        m.reached,
        m.created,
        m.secs,
        m.created_in.as_secs_f64(),
        m.p50,
        m.p99
    );
    if let (Some(pid), Some(before)) = (kubelet_pid, before) {
        println!(
            "process {pid} RSS: {:.1} MiB before, {:.1} MiB at its peak with the pods",
            before as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    Ok(())
}
