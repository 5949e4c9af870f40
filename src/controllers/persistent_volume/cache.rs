//! The controller's view of volumes and claims: the watch cache, overlaid with the objects the
//! controller itself just wrote (upstream's `storeObjectUpdate` into its own caches).
//!
//! Binding writes four objects in a row (volume, volume status, claim, claim status) and the watch
//! shows them a little later. Without the overlay the next sync would still see the volume
//! `Available` and offer it to a second claim, or see the claim unbound and bind it again, only to
//! fail on a version conflict. A written copy is used while it is newer (by resourceVersion) than the
//! cached one and dropped once the cache catches up, or when the cache no longer holds the object
//! (deleted by someone else: the controller never creates volumes or claims).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

/// A watch cache plus the controller's own newer writes.
pub struct Latest<K: Resource<DynamicType = ()> + Clone + 'static> {
    pub store: Store<K>,
    written: Mutex<HashMap<ObjectRef<K>, Arc<K>>>,
}

/// Whether `a`'s resourceVersion is newer than `b`'s (both must parse as numbers, as upstream's
/// cache requires).
fn newer<K: Resource>(a: &K, b: &K) -> bool {
    let rv = |k: &K| {
        k.meta()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    matches!((rv(a), rv(b)), (Some(x), Some(y)) if x > y)
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Latest<K> {
    pub fn new(store: Store<K>) -> Self {
        Latest {
            store,
            written: Mutex::default(),
        }
    }

    /// The newest copy of the object `r`, or None when the cache does not hold it.
    pub fn get(&self, r: &ObjectRef<K>) -> Option<Arc<K>> {
        let cached = self.store.get(r);
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        self.pick(&mut written, r, cached)
    }

    fn pick(
        &self,
        written: &mut HashMap<ObjectRef<K>, Arc<K>>,
        r: &ObjectRef<K>,
        cached: Option<Arc<K>>,
    ) -> Option<Arc<K>> {
        let Some(cached) = cached else {
            written.remove(r);
            return None;
        };
        match written.get(r) {
            Some(w) if w.uid() == cached.uid() && newer(w.as_ref(), cached.as_ref()) => {
                Some(w.clone())
            }
            Some(_) => {
                written.remove(r);
                Some(cached)
            }
            None => Some(cached),
        }
    }

    /// Every object, each in its newest copy.
    pub fn all(&self) -> Vec<Arc<K>> {
        let cached = self.store.state();
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.is_empty() {
            return cached;
        }
        let refs: std::collections::HashSet<ObjectRef<K>> = cached
            .iter()
            .map(|c| ObjectRef::from_obj(c.as_ref()))
            .collect();
        // Copies of objects the cache no longer holds are dropped here too.
        written.retain(|r, _| refs.contains(r));
        cached
            .into_iter()
            .filter_map(|c| {
                let r = ObjectRef::from_obj(c.as_ref());
                self.pick(&mut written, &r, Some(c))
            })
            .collect()
    }

    /// Remembers an object the controller wrote (the apiserver's answer).
    pub fn wrote(&self, obj: K) -> Arc<K> {
        let obj = Arc::new(obj);
        let r = ObjectRef::from_obj(obj.as_ref());
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.insert(r, obj.clone());
        obj
    }

    /// Forgets what the controller wrote about `r` (it deleted the object).
    pub fn forget(&self, r: &ObjectRef<K>) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.remove(r);
    }
}

/// The cache key of a cluster-scoped or namespaced object by name.
pub fn key<K: Resource<DynamicType = ()>>(ns: Option<&str>, name: &str) -> ObjectRef<K> {
    let r = ObjectRef::new(name);
    match ns {
        Some(ns) => r.within(ns),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PersistentVolume;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn pv(rv: &str, phase: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some("v".into()),
                uid: Some("u".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            status: Some(k8s_openapi::api::core::v1::PersistentVolumeStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn phase(v: &PersistentVolume) -> &str {
        v.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("")
    }

    #[test]
    fn own_writes_win_until_the_cache_catches_up() {
        let (reader, mut writer) = store::<PersistentVolume>();
        writer.apply_watcher_event(&Event::Apply(pv("5", "Available")));
        let latest = Latest::new(reader);
        let r = key::<PersistentVolume>(None, "v");
        latest.wrote(pv("7", "Bound"));
        assert_eq!(phase(&latest.get(&r).expect("v")), "Bound");
        assert_eq!(phase(&latest.all()[0]), "Bound");
        writer.apply_watcher_event(&Event::Apply(pv("8", "Released")));
        assert_eq!(phase(&latest.get(&r).expect("v")), "Released");
        // Gone from the cache: gone.
        writer.apply_watcher_event(&Event::Delete(pv("8", "Released")));
        latest.wrote(pv("9", "Bound"));
        assert!(latest.get(&r).is_none());
    }
}
