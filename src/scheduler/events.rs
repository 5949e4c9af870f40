//! The scheduler's events (events.k8s.io/v1, through kube's `Recorder`), spread over shards by the
//! object they regard.
//!
//! kube's recorder remembers every event it published in the last six minutes (to count repeats as
//! one series) and sweeps that whole memory on every publish, so one recorder for the `Scheduled`
//! events of 10,000 pods makes each publish walk 10,000 entries. Upstream's correlator is a bounded
//! LRU. Every event about one object lands on the same shard, so its repeats still form one series.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};

/// Recorders per scheduler: each remembers about 1/SHARDS of the recent events.
const SHARDS: usize = 64;

#[derive(Clone)]
pub struct Events {
    shards: Arc<[Recorder]>,
}

impl Events {
    pub fn new(client: &kube::Client, reporter: &Reporter) -> Self {
        Events {
            shards: (0..SHARDS)
                .map(|_| Recorder::new(client.clone(), reporter.clone()))
                .collect(),
        }
    }

    /// Publishes `ev` about `regarding`; a failure is logged, never fatal (as upstream's broadcaster).
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&regarding.namespace, &regarding.name).hash(&mut h);
        let shard = &self.shards[(h.finish() % self.shards.len() as u64) as usize];
        if let Err(e) = shard.publish(ev, regarding).await {
            tracing::debug!("scheduler: event not recorded: {e}");
        }
    }
}
