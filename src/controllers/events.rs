//! Events as upstream's controllers record them: core/v1 Events through client-go's legacy recorder
//! (`tools/record`), which kube-controller-manager still uses. The scheduler records through the newer
//! events.k8s.io/v1 API instead (kube's `Recorder`); the apiserver stores both as one Event.
//!
//! Upstream's correlator, reproduced here: an event identical to one already recorded (same object,
//! source, type, reason and message) bumps that Event's `count` and `lastTimestamp` instead of creating
//! another; once an object has had 10 distinct messages of one reason within 10 minutes, further ones
//! fold into a single "(combined from similar events): ..." Event. Start at [`record`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::Resource;
use serde_json::json;

/// Upstream's maxEvents of the aggregator: distinct messages of one reason before they are combined.
const SIMILAR_EVENTS: usize = 10;
/// Upstream's maxIntervalInSeconds: how long similar messages are remembered.
const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
/// Upstream's maxLruCacheEntries; past it the oldest memory is dropped (a repeat then creates anew).
const CACHE_ENTRIES: usize = 4096;

/// Records events as one controller (`source.component`), remembering what it recorded so repeats
/// are counted rather than duplicated.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
    memory: Arc<Mutex<Memory>>,
}

#[derive(Default)]
struct Memory {
    /// Full key → the Event recorded for it (namespace, name, count so far).
    seen: HashMap<String, Recorded>,
    /// Similar-events key → the distinct messages seen and when the window started.
    similar: HashMap<String, (HashSet<String>, Instant)>,
}

#[derive(Clone)]
struct Recorded {
    namespace: String,
    name: String,
    count: i32,
}

/// A recorder reporting as upstream's controller `component` (e.g. "replicaset-controller").
pub fn recorder(client: kube::Client, component: &str) -> Recorder {
    Recorder {
        client,
        component: component.to_string(),
        memory: Arc::default(),
    }
}

/// Records an event about `obj`; failures are logged, never fatal (as upstream's broadcaster).
/// `_action` is what events.k8s.io/v1 would carry; core/v1 Events written by the legacy recorder
/// have none.
pub async fn record<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    type_: EventType,
    reason: &str,
    _action: &str,
    note: String,
) {
    let type_ = match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    if let Err(e) = recorder
        .publish(obj.object_ref(&()), type_, reason, note)
        .await
    {
        tracing::debug!("recording event {reason}: {e}");
    }
}

impl Recorder {
    async fn publish(
        &self,
        regarding: ObjectReference,
        type_: &str,
        reason: &str,
        message: String,
    ) -> Result<(), kube::Error> {
        // Cluster-scoped objects' events live in "default", as upstream's recorder puts them.
        let namespace = regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let similar_key = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{type_}\u{0}{reason}",
            self.component,
            regarding.kind.as_deref().unwrap_or(""),
            namespace,
            regarding.name.as_deref().unwrap_or(""),
            regarding.uid.as_deref().unwrap_or(""),
            regarding.api_version.as_deref().unwrap_or(""),
        );
        let (key, message) = self.correlate(&similar_key, message);
        let now = Timestamp::now();
        let api = Api::<Event>::namespaced(self.client.clone(), &namespace);
        if let Some(prev) = self.remembered(&key) {
            let count = prev.count + 1;
            let patch = json!({"count": count, "lastTimestamp": Time(now), "message": message});
            match Api::<Event>::namespaced(self.client.clone(), &prev.namespace)
                .patch(&prev.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(key, Recorded { count, ..prev });
                    return Ok(());
                }
                // Gone (expired or deleted): record it afresh below, as upstream does.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(""),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: regarding,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.to_string()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(String::new()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        self.remember(
            key,
            Recorded {
                namespace,
                name,
                count: 1,
            },
        );
        Ok(())
    }

    /// Upstream's EventAggregator: the key the event is counted under and the message it carries —
    /// its own, or past [`SIMILAR_EVENTS`] distinct messages, the combined one.
    fn correlate(&self, similar_key: &str, message: String) -> (String, String) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let entry = memory
            .similar
            .entry(similar_key.to_string())
            .or_insert_with(|| (HashSet::new(), Instant::now()));
        if entry.1.elapsed() > SIMILAR_WINDOW {
            *entry = (HashSet::new(), Instant::now());
        }
        entry.0.insert(message.clone());
        if entry.0.len() < SIMILAR_EVENTS {
            return (format!("{similar_key}\u{0}{message}"), message);
        }
        // Keep the set bounded, as upstream pops one.
        if let Some(any) = entry.0.iter().next().cloned() {
            entry.0.remove(&any);
        }
        (
            similar_key.to_string(),
            format!("(combined from similar events): {message}"),
        )
    }

    fn remembered(&self, key: &str) -> Option<Recorded> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.seen.get(key).cloned()
    }

    fn remember(&self, key: String, recorded: Recorded) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if memory.seen.len() >= CACHE_ENTRIES && !memory.seen.contains_key(&key) {
            memory.seen.clear();
        }
        if memory.similar.len() >= CACHE_ENTRIES {
            memory.similar.clear();
        }
        memory.seen.insert(key, recorded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder_for_test() -> Recorder {
        // The correlator needs no server; a client that points nowhere is never used here.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        recorder(client, "replicaset-controller")
    }

    #[tokio::test]
    async fn distinct_messages_fold_into_one_after_ten() {
        let r = recorder_for_test();
        let mut keys = Vec::new();
        for i in 0..12 {
            keys.push(r.correlate("k", format!("Created pod: p{i}")));
        }
        // The first nine stand alone, each under its own key.
        assert!(keys[..9]
            .iter()
            .all(|(k, m)| k.starts_with("k\u{0}") && !m.starts_with("(combined")));
        // From the tenth on they are combined under the similar key, so they count up one Event.
        assert!(
            keys[9..]
                .iter()
                .all(|(k, m)| k == "k"
                    && m.starts_with("(combined from similar events): Created pod"))
        );
        // A repeat of a message is the same key (counted, not duplicated).
        let r = recorder_for_test();
        assert_eq!(r.correlate("k", "m".into()), r.correlate("k", "m".into()));
    }
}
