//! Image garbage collection (upstream's image GC manager, `pkg/kubelet/images`): images no container
//! uses are removed when the image filesystem fills up, and, with a maximum age, when they have not
//! been used for that long.
//!
//! Every `--image-gc-period` (upstream's fixed 5 minutes) [`run`] calls [`ImageGc::collect`]:
//! - The runtime's images are recorded ([`Records::detect`]): when each was first seen, when a
//!   container (running or exited: upstream lists all of them) last used it, its size, whether the
//!   runtime pins it. The sandbox ("pause") image counts as pinned too: containerd 1.6 does not pin
//!   it, and a node with no registry could not pull it back.
//! - With `--image-maximum-gc-age`, unused images not used for longer than that go, once the kubelet
//!   has run that long.
//! - When the image filesystem is used at `--image-gc-high-threshold` percent or more, unused images
//!   go, least recently used first, until it would be at `--image-gc-low-threshold`; images first
//!   seen less than `--minimum-image-ttl-duration` ago stay (they may have just been pulled for a
//!   pod about to start). Not enough to free is a `FreeDiskSpaceFailed` Warning on the Node, and
//!   two failures in a row an `ImageGCFailed` one, as upstream records them.
//!
//! A high threshold of 100 turns the periodic collection off. The eviction manager still asks for
//! every unused image to go ([`ImageGc::delete_unused`]) before it evicts pods for image
//! filesystem pressure, as upstream's node-level reclaim does.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::cri::Cri;
use super::pod_workers::go_duration;
use crate::controllers::events::{record, Recorder};
use kube::runtime::events::EventType;

/// Upstream's `ImageGCPeriod`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(300);

/// The collection policy (upstream's `ImageGCPolicy`, from the kubelet's flags).
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Usage (percent of the image filesystem) at which unused images are removed.
    pub high_threshold_percent: u8,
    /// Usage the removal aims for.
    pub low_threshold_percent: u8,
    /// Images first seen less than this long ago are never removed for space.
    pub min_age: Duration,
    /// Images unused for longer than this are removed whatever the usage (`None`: never).
    pub max_age: Option<Duration>,
    /// How often the collection runs.
    pub period: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
            max_age: None,
            period: DEFAULT_PERIOD,
        }
    }
}

impl Policy {
    /// Upstream's validation of the kubelet configuration's image GC fields, with its messages.
    pub fn validate(&self) -> Result<(), String> {
        if self.high_threshold_percent > 100 {
            return Err(format!(
                "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) {} must be between 0 and 100, inclusive",
                self.high_threshold_percent
            ));
        }
        if self.low_threshold_percent > 100 {
            return Err(format!(
                "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be between 0 and 100, inclusive",
                self.low_threshold_percent
            ));
        }
        if self.low_threshold_percent >= self.high_threshold_percent {
            return Err(format!(
                "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {}",
                self.low_threshold_percent, self.high_threshold_percent
            ));
        }
        if let Some(max) = self.max_age {
            if max <= self.min_age {
                return Err(format!(
                    "invalid configuration: imageMaximumGCAge {} must be greater than imageMinimumGCAge {}",
                    go_duration(max),
                    go_duration(self.min_age)
                ));
            }
        }
        Ok(())
    }

    /// Bytes to free for the filesystem to be back at the low threshold, when its usage has reached
    /// the high one (upstream's arithmetic, integer percent); `None` below the high threshold.
    pub fn to_free(&self, capacity: u64, available: u64) -> Option<u64> {
        let available = available.min(capacity);
        let usage = 100 - (u128::from(available) * 100 / u128::from(capacity.max(1))) as u64;
        (usage >= u64::from(self.high_threshold_percent)).then(|| {
            (capacity * (100 - u64::from(self.low_threshold_percent)) / 100)
                .saturating_sub(available)
        })
    }
}

/// What the runtime says about one image.
#[derive(Clone, Debug)]
pub struct Seen {
    pub id: String,
    pub size: u64,
    pub pinned: bool,
}

/// What is remembered of one image between detections.
#[derive(Clone, Copy, Debug)]
struct Record {
    first_detected: Instant,
    /// When a container was last seen using it (`None`: never, which sorts before any time and is
    /// older than any maximum age, as upstream's zero time).
    last_used: Option<Instant>,
    size: u64,
    pinned: bool,
}

/// An image that may be removed, in the order removal considers them.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub size: u64,
    first_detected: Instant,
    last_used: Option<Instant>,
}

/// The images seen so far, by ID.
#[derive(Default)]
pub struct Records(HashMap<String, Record>);

impl Records {
    /// Records the images the runtime has now (forgetting those gone) and marks those `in_use` as used
    /// `now`.
    pub fn detect(&mut self, now: Instant, images: &[Seen], in_use: &HashSet<String>) {
        let current: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        self.0.retain(|id, _| current.contains(id.as_str()));
        for image in images {
            let r = self.0.entry(image.id.clone()).or_insert(Record {
                first_detected: now,
                last_used: None,
                size: 0,
                pinned: false,
            });
            if in_use.contains(&image.id) {
                r.last_used = Some(now);
            }
            r.size = image.size;
            r.pinned = image.pinned;
        }
    }

    /// The images neither in use nor pinned, least recently used first (ties: first detected first).
    pub fn eviction_order(&self, in_use: &HashSet<String>) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = self
            .0
            .iter()
            .filter(|(id, r)| !in_use.contains(*id) && !r.pinned)
            .map(|(id, r)| Candidate {
                id: id.clone(),
                size: r.size,
                first_detected: r.first_detected,
                last_used: r.last_used,
            })
            .collect();
        out.sort_by(|a, b| {
            (a.last_used, a.first_detected, &a.id).cmp(&(b.last_used, b.first_detected, &b.id))
        });
        out
    }

    fn forget(&mut self, id: &str) {
        self.0.remove(id);
    }
}

/// Of `order`, the images unused for longer than `max_age` at `now`, once the kubelet has run that
/// long (`began`): before, an image's last use may simply not have been seen yet.
pub fn too_old(
    order: &[Candidate],
    now: Instant,
    began: Instant,
    max_age: Duration,
) -> Vec<String> {
    if now.duration_since(began) <= max_age {
        return Vec::new();
    }
    order
        .iter()
        .filter(|c| c.last_used.is_none_or(|t| now.duration_since(t) > max_age))
        .map(|c| c.id.clone())
        .collect()
}

/// Of `order`, the images removal for space may take at `now`: first seen at least `min_age` ago.
pub fn old_enough(order: &[Candidate], now: Instant, min_age: Duration) -> Vec<Candidate> {
    order
        .iter()
        .filter(|c| now.duration_since(c.first_detected) >= min_age)
        .cloned()
        .collect()
}

/// The image garbage collector of one node.
pub struct ImageGc {
    cri: Cri,
    policy: Policy,
    /// Where the runtime keeps its images (CRI `ImageFsInfo`); `None`: only age-based collection.
    image_fs: Option<PathBuf>,
    recorder: Recorder,
    node_name: String,
    records: Mutex<Records>,
    began: Instant,
    /// One collection at a time: the periodic one and the eviction manager's.
    running: tokio::sync::Mutex<()>,
}

impl ImageGc {
    pub fn new(
        cri: Cri,
        policy: Policy,
        image_fs: Option<PathBuf>,
        recorder: Recorder,
        node_name: String,
    ) -> Arc<ImageGc> {
        Arc::new(ImageGc {
            cri,
            policy,
            image_fs,
            recorder,
            node_name,
            records: Mutex::default(),
            began: Instant::now(),
            running: tokio::sync::Mutex::new(()),
        })
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lists the runtime's images and containers, records them, and returns the removable images in
    /// eviction order.
    async fn detect(&self, now: Instant) -> Result<Vec<Candidate>, String> {
        let images = self.cri.list_images().await.map_err(|e| e.to_string())?;
        let containers = self
            .cri
            .list_containers()
            .await
            .map_err(|e| e.to_string())?;
        let sandbox = self.cri.sandbox_image().await.ok().flatten();
        let in_use: HashSet<String> = containers.into_iter().map(|c| c.image_ref).collect();
        let seen: Vec<Seen> = images
            .into_iter()
            .map(|i| Seen {
                pinned: i.pinned
                    || sandbox
                        .as_ref()
                        .is_some_and(|s| i.repo_tags.iter().any(|t| same_reference(t, s))),
                id: i.id,
                size: i.size,
            })
            .collect();
        let mut records = self.records();
        records.detect(now, &seen, &in_use);
        Ok(records.eviction_order(&in_use))
    }

    /// Removes image `id` from the runtime and from the records; `why` goes to the log.
    async fn remove(&self, id: &str, why: &str) -> Result<(), String> {
        tracing::info!(image = id, "kubelet: removing image ({why})");
        self.cri
            .remove_image(id)
            .await
            .map_err(|e| format!("removing image {id}: {e}"))?;
        self.records().forget(id);
        Ok(())
    }

    /// Removes images of `candidates` in order until `bytes` are freed; the bytes freed, or the
    /// removals' errors with that count (upstream goes on past a failed removal).
    async fn free_space(&self, bytes: u64, candidates: &[Candidate]) -> Result<u64, String> {
        let mut freed = 0u64;
        let mut errors = Vec::new();
        for c in candidates {
            if freed >= bytes {
                break;
            }
            match self.remove(&c.id, "disk usage").await {
                Ok(()) => freed += c.size,
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(freed)
        } else {
            Err(format!(
                "wanted to free {bytes} bytes, but freed {freed} bytes space with errors in image deletion: [{}]",
                errors.join(", ")
            ))
        }
    }

    /// One collection (upstream's `GarbageCollect`).
    pub async fn collect(&self) -> Result<(), String> {
        let _one = self.running.lock().await;
        let now = Instant::now();
        let mut order = self.detect(now).await?;
        if let Some(max_age) = self.policy.max_age {
            let old = too_old(&order, now, self.began, max_age);
            let mut errors = Vec::new();
            for id in &old {
                if let Err(e) = self.remove(id, "unused longer than the maximum age").await {
                    errors.push(e);
                }
            }
            order.retain(|c| !old.contains(&c.id));
            if !errors.is_empty() {
                return Err(format!(
                    "wanted to free images older than {}, encountered errors in image deletion: [{}]",
                    go_duration(max_age),
                    errors.join(", ")
                ));
            }
        }
        let Some(fs) = self
            .image_fs
            .as_deref()
            .and_then(super::eviction::filesystem)
        else {
            return Ok(());
        };
        let (capacity, available) = (fs.capacity.max(0) as u64, fs.available.max(0) as u64);
        if capacity == 0 {
            let msg = "invalid capacity 0 on image filesystem".to_string();
            self.event("InvalidDiskCapacity", msg.clone()).await;
            return Err(msg);
        }
        let Some(wanted) = self.policy.to_free(capacity, available) else {
            return Ok(());
        };
        tracing::info!(
            wanted,
            high = self.policy.high_threshold_percent,
            low = self.policy.low_threshold_percent,
            "kubelet: disk usage on the image filesystem is over the high threshold, trying to free bytes down to the low threshold"
        );
        let candidates = old_enough(&order, now, self.policy.min_age);
        let freed = self.free_space(wanted, &candidates).await?;
        if freed < wanted {
            let msg = format!(
                "Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {freed} bytes eligible to free."
            );
            self.event("FreeDiskSpaceFailed", msg.clone()).await;
            return Err(msg);
        }
        Ok(())
    }

    /// Removes every unused image old enough (the eviction manager's node-level reclaim); the bytes
    /// freed.
    pub async fn delete_unused(&self) -> Result<u64, String> {
        let _one = self.running.lock().await;
        let now = Instant::now();
        let order = self.detect(now).await?;
        self.free_space(u64::MAX, &old_enough(&order, now, self.policy.min_age))
            .await
    }

    /// A Warning about this node (upstream's kubelet refers to its Node with the name as UID).
    async fn event(&self, reason: &str, message: String) {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.node_name.clone()),
                uid: Some(self.node_name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        record(
            &self.recorder,
            &node,
            EventType::Warning,
            reason,
            "",
            message,
        )
        .await;
    }
}

/// Whether two image references name the same image, allowing for the registry and repository
/// defaults (`pause:3.10` is `docker.io/library/pause:3.10`).
fn same_reference(a: &str, b: &str) -> bool {
    fn full(r: &str) -> String {
        let first = r.split('/').next().unwrap_or(r);
        let has_registry =
            r.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
        match (has_registry, r.contains('/')) {
            (true, _) => r.to_string(),
            (false, true) => format!("docker.io/{r}"),
            (false, false) => format!("docker.io/library/{r}"),
        }
    }
    full(a) == full(b)
}

/// Collects every `policy.period` until the process ends (nothing with a high threshold of 100).
pub async fn run(gc: Arc<ImageGc>) {
    if gc.policy.high_threshold_percent >= 100 {
        tracing::info!(
            "kubelet: --image-gc-high-threshold is 100, image garbage collection is off"
        );
        return;
    }
    let mut failed_before = false;
    loop {
        match gc.collect().await {
            Ok(()) => failed_before = false,
            Err(e) => {
                tracing::warn!("kubelet: image garbage collection failed: {e}");
                // Only repeated failures are an event: the first may be stats not ready yet.
                if failed_before {
                    gc.event("ImageGCFailed", e).await;
                }
                failed_before = true;
            }
        }
        tokio::time::sleep(gc.policy.period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, size: u64) -> Seen {
        Seen {
            id: id.into(),
            size,
            pinned: false,
        }
    }

    fn ids(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn order_is_least_recently_used_and_skips_used_and_pinned() {
        let t0 = Instant::now();
        let mut r = Records::default();
        let mut pinned = seen("pause", 1);
        pinned.pinned = true;
        let all = [seen("a", 10), seen("b", 20), seen("c", 30), pinned];
        // b used at t0, a at t0+1; c never.
        r.detect(t0, &all, &HashSet::from(["b".to_string()]));
        r.detect(
            t0 + Duration::from_secs(1),
            &all,
            &HashSet::from(["a".to_string()]),
        );
        let in_use = HashSet::new();
        assert_eq!(ids(&r.eviction_order(&in_use)), ["c", "b", "a"]);
        // In use now: not a candidate.
        assert_eq!(
            ids(&r.eviction_order(&HashSet::from(["b".to_string()]))),
            ["c", "a"]
        );
        // An image gone from the runtime is forgotten.
        r.detect(t0 + Duration::from_secs(2), &all[..2], &in_use);
        assert_eq!(ids(&r.eviction_order(&in_use)), ["b", "a"]);
    }

    #[test]
    fn min_age_protects_new_images() {
        let t0 = Instant::now();
        let mut r = Records::default();
        r.detect(t0, &[seen("old", 1)], &HashSet::new());
        let later = t0 + Duration::from_secs(100);
        r.detect(later, &[seen("old", 1), seen("new", 1)], &HashSet::new());
        let order = r.eviction_order(&HashSet::new());
        let min = Duration::from_secs(60);
        assert_eq!(ids(&old_enough(&order, later, min)), ["old"]);
        assert_eq!(ids(&old_enough(&order, later + min, min)), ["old", "new"]);
    }

    #[test]
    fn max_age_waits_for_the_kubelet_to_have_run_that_long() {
        let began = Instant::now();
        let max = Duration::from_secs(60);
        let mut r = Records::default();
        let all = [seen("never", 1), seen("used", 1)];
        r.detect(began, &all, &HashSet::from(["used".to_string()]));
        let order = r.eviction_order(&HashSet::new());
        assert!(too_old(&order, began + max, began, max).is_empty());
        let after = began + max + Duration::from_secs(1);
        assert_eq!(too_old(&order, after, began, max), ["never", "used"]);
        // Used recently: kept.
        r.detect(after, &all, &HashSet::from(["used".to_string()]));
        let order = r.eviction_order(&HashSet::new());
        assert_eq!(too_old(&order, after, began, max), ["never"]);
    }

    #[test]
    fn thresholds_as_upstream() {
        let p = Policy::default();
        // 90% used of 1000: free down to 80% used.
        assert_eq!(p.to_free(1000, 100), Some(100));
        // 84% used: nothing.
        assert_eq!(p.to_free(1000, 160), None);
        // Exactly at the high threshold counts.
        assert_eq!(p.to_free(1000, 150), Some(50));
        assert!(p.validate().is_ok());
        let bad = Policy {
            low_threshold_percent: 85,
            ..p
        };
        assert!(bad.validate().unwrap_err().contains("must be less than"));
        let bad = Policy {
            max_age: Some(Duration::from_secs(60)),
            ..p
        };
        assert!(bad.validate().unwrap_err().contains("imageMaximumGCAge"));
    }

    #[test]
    fn references_with_defaults() {
        assert!(same_reference(
            "docker.io/library/busybox:1.36",
            "busybox:1.36"
        ));
        assert!(same_reference(
            "rkube.local/pause:3.10",
            "rkube.local/pause:3.10"
        ));
        assert!(same_reference("docker.io/foo/bar:1", "foo/bar:1"));
        assert!(!same_reference("registry.k8s.io/pause:3.10", "pause:3.10"));
    }
}
