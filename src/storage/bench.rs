//! A raw storage throughput probe, reported beside the apiserver's create rate so a slow API can be
//! told apart from a slow store (the gap between the two is the cost of the HTTP/JSON layers).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Store;

/// Creates `total` keys holding ~1 KB values under a fresh unique prefix, from `clients` concurrent tasks,
/// and returns the rate of successful creates per second. The keys are left in place (the benchmark runs
/// against a throwaway store); failed creates are not counted.
pub async fn raw_put_rate(store: Arc<dyn Store>, clients: usize, total: usize) -> f64 {
    let clients = clients.max(1);
    let prefix = format!("/rkube-bench/{}/", uuid::Uuid::new_v4());
    let value = vec![b'x'; 1024];
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (store, prefix, value) = (store.clone(), prefix.clone(), value.clone());
            let (next, done) = (next.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    match store
                        .create(&format!("{prefix}{i:08}"), value.clone())
                        .await
                    {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => tracing::warn!("benchmark create failed: {e}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        if let Err(e) = task.await {
            tracing::warn!("benchmark task failed: {e}");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if elapsed > 0.0 {
        done.load(Ordering::SeqCst) as f64 / elapsed
    } else {
        0.0
    }
}
