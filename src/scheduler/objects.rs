//! The API objects the plugins read besides nodes and pods, kept from watches as upstream's informer
//! listers: Services, ReplicationControllers, ReplicaSets and StatefulSets (the selector of the
//! default topology spread constraints), PodDisruptionBudgets (preemption), and
//! PersistentVolumeClaims, PersistentVolumes and StorageClasses (VolumeBinding).
//!
//! One [`Store`] per kind, indexed by namespace so that a pod's lookups (the Services of its
//! namespace, its owner by name) cost what that namespace holds, not the cluster. The scheduling
//! loop applies the watch events ([`Store::apply`]) between cycles, so a cycle reads them without
//! locks. VolumeBinding also *assumes* its decisions here (upstream's assume cache): the volume a
//! pod is about to take is shown as taken before the API says so, so the next pod picks another;
//! [`Objects::restore`] undoes that when the binding fails.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::watcher;
use kube::Resource;

/// Objects of one kind by namespace ("" for cluster-scoped kinds) and name.
pub struct Store<K> {
    items: HashMap<String, BTreeMap<String, Arc<K>>>,
    /// Keys seen since the watch (re)started its initial list; the rest are gone once it is done.
    relisting: Option<HashSet<(String, String)>>,
    /// Whether the initial list has been applied (upstream's WaitForCacheSync).
    pub synced: bool,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Store {
            items: HashMap::new(),
            relisting: None,
            synced: false,
        }
    }
}

fn key_of<K: Resource>(obj: &K) -> (String, String) {
    let m = obj.meta();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

impl<K: Resource> Store<K> {
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Arc<K>> {
        self.items.get(namespace)?.get(name)
    }

    pub fn in_namespace<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Arc<K>> + 'a {
        self.items
            .get(namespace)
            .into_iter()
            .flat_map(|m| m.values())
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<K>> {
        self.items.values().flat_map(|m| m.values())
    }

    pub fn upsert(&mut self, obj: Arc<K>) {
        let (ns, name) = key_of(obj.as_ref());
        self.items.entry(ns).or_default().insert(name, obj);
    }

    pub fn remove(&mut self, namespace: &str, name: &str) {
        if let Some(m) = self.items.get_mut(namespace) {
            m.remove(name);
            if m.is_empty() {
                self.items.remove(namespace);
            }
        }
    }

    /// Applies one watch event; returns the key of the object it changed, if any.
    pub fn apply(&mut self, ev: watcher::Event<K>) -> Option<(String, String)> {
        match ev {
            watcher::Event::Init => {
                self.relisting = Some(HashSet::new());
                None
            }
            watcher::Event::InitApply(obj) => {
                let key = key_of(&obj);
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert(key.clone());
                }
                self.upsert(Arc::new(obj));
                Some(key)
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting.take() {
                    let gone: Vec<(String, String)> = self
                        .items
                        .iter()
                        .flat_map(|(ns, m)| m.keys().map(move |n| (ns.clone(), n.clone())))
                        .filter(|k| !seen.contains(k))
                        .collect();
                    for (ns, name) in &gone {
                        self.remove(ns, name);
                    }
                }
                self.synced = true;
                None
            }
            watcher::Event::Apply(obj) => {
                let key = key_of(&obj);
                self.upsert(Arc::new(obj));
                Some(key)
            }
            watcher::Event::Delete(obj) => {
                let key = key_of(&obj);
                self.remove(&key.0, &key.1);
                Some(key)
            }
        }
    }
}

/// A watch event of one of the kinds in [`Objects`] (one stream merges them all). Each is moved
/// once, from the watch into its store: boxing would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
pub enum ObjectEvent {
    Service(watcher::Event<Service>),
    ReplicationController(watcher::Event<ReplicationController>),
    ReplicaSet(watcher::Event<ReplicaSet>),
    StatefulSet(watcher::Event<StatefulSet>),
    PodDisruptionBudget(watcher::Event<PodDisruptionBudget>),
    PersistentVolumeClaim(watcher::Event<PersistentVolumeClaim>),
    PersistentVolume(watcher::Event<PersistentVolume>),
    StorageClass(watcher::Event<StorageClass>),
}

/// Every store, and what VolumeBinding assumed until the watch shows the API's version.
#[derive(Default)]
pub struct Objects {
    pub services: Store<Service>,
    pub replication_controllers: Store<ReplicationController>,
    pub replica_sets: Store<ReplicaSet>,
    pub stateful_sets: Store<StatefulSet>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
    /// Volume name → (pod key, the volume as it was before the pod's assumption).
    assumed_volumes: HashMap<String, (String, Arc<PersistentVolume>)>,
    /// Claim (namespace, name) → (pod key, the claim as it was).
    assumed_claims: HashMap<(String, String), (String, Arc<PersistentVolumeClaim>)>,
}

impl Objects {
    /// Applies a watch event. Returns true when it may make a pod that VolumeBinding rejected
    /// schedulable (a claim, volume or class was added or changed), as upstream's
    /// EventsToRegister.
    pub fn apply(&mut self, ev: ObjectEvent) -> bool {
        match ev {
            ObjectEvent::Service(e) => {
                self.services.apply(e);
                false
            }
            ObjectEvent::ReplicationController(e) => {
                self.replication_controllers.apply(e);
                false
            }
            ObjectEvent::ReplicaSet(e) => {
                self.replica_sets.apply(e);
                false
            }
            ObjectEvent::StatefulSet(e) => {
                self.stateful_sets.apply(e);
                false
            }
            ObjectEvent::PodDisruptionBudget(e) => {
                self.pdbs.apply(e);
                false
            }
            ObjectEvent::PersistentVolumeClaim(e) => {
                let deleted = matches!(e, watcher::Event::Delete(_));
                match self.claims.apply(e) {
                    Some(key) => {
                        // The API's version replaces what was assumed.
                        self.assumed_claims.remove(&key);
                        !deleted
                    }
                    None => false,
                }
            }
            ObjectEvent::PersistentVolume(e) => {
                let deleted = matches!(e, watcher::Event::Delete(_));
                match self.volumes.apply(e) {
                    Some((_, name)) => {
                        self.assumed_volumes.remove(&name);
                        !deleted
                    }
                    None => false,
                }
            }
            ObjectEvent::StorageClass(e) => {
                let deleted = matches!(e, watcher::Event::Delete(_));
                self.classes.apply(e).is_some() && !deleted
            }
        }
    }

    /// Whether every store holds its initial list.
    pub fn synced(&self) -> bool {
        self.services.synced
            && self.replication_controllers.synced
            && self.replica_sets.synced
            && self.stateful_sets.synced
            && self.pdbs.synced
            && self.claims.synced
            && self.volumes.synced
            && self.classes.synced
    }

    /// Shows `volume` (an assumed version of a stored one) in place of the stored one for `pod`.
    pub fn assume_volume(&mut self, pod: &str, volume: PersistentVolume) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        if let Some(old) = self.volumes.get("", &name).cloned() {
            self.assumed_volumes
                .entry(name)
                .or_insert_with(|| (pod.to_string(), old));
        }
        self.volumes.upsert(Arc::new(volume));
    }

    /// Likewise for a claim.
    pub fn assume_claim(&mut self, pod: &str, claim: PersistentVolumeClaim) {
        let key = key_of(&claim);
        if let Some(old) = self.claims.get(&key.0, &key.1).cloned() {
            self.assumed_claims
                .entry(key)
                .or_insert_with(|| (pod.to_string(), old));
        }
        self.claims.upsert(Arc::new(claim));
    }

    /// Puts back what `pod` assumed (its binding failed), unless the watch brought newer versions.
    pub fn restore(&mut self, pod: &str) {
        let volumes: Vec<String> = self
            .assumed_volumes
            .iter()
            .filter(|(_, (p, _))| p == pod)
            .map(|(k, _)| k.clone())
            .collect();
        for name in volumes {
            if let Some((_, old)) = self.assumed_volumes.remove(&name) {
                self.volumes.upsert(old);
            }
        }
        let claims: Vec<(String, String)> = self
            .assumed_claims
            .iter()
            .filter(|(_, (p, _))| p == pod)
            .map(|(k, _)| k.clone())
            .collect();
        for key in claims {
            if let Some((_, old)) = self.assumed_claims.remove(&key) {
                self.claims.upsert(old);
            }
        }
    }

    /// Forgets the originals kept for `pod` (its binding succeeded: the assumption stands until
    /// the watch shows the API's version).
    pub fn forget(&mut self, pod: &str) {
        if self.assumed_volumes.is_empty() && self.assumed_claims.is_empty() {
            return;
        }
        self.assumed_volumes.retain(|_, (p, _)| p != pod);
        self.assumed_claims.retain(|_, (p, _)| p != pod);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str) -> Service {
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}})).expect("svc")
    }

    #[test]
    fn relist_drops_what_is_gone() {
        let mut s: Store<Service> = Store::default();
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitApply(svc("a", "x")));
        s.apply(watcher::Event::InitApply(svc("b", "y")));
        s.apply(watcher::Event::InitDone);
        assert!(s.synced);
        assert_eq!(s.in_namespace("a").count(), 1);
        // The watch restarts: only b/y is listed again.
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitApply(svc("b", "y")));
        s.apply(watcher::Event::InitDone);
        assert!(s.get("a", "x").is_none());
        assert!(s.get("b", "y").is_some());
        s.apply(watcher::Event::Delete(svc("b", "y")));
        assert_eq!(s.all().count(), 0);
    }

    #[test]
    fn assumptions_are_restored_unless_the_watch_is_newer() {
        let pv = |claim: Option<&str>| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": "pv"},
                "spec": {"claimRef": claim.map(|c| json!({"namespace": "ns", "name": c}))}}))
            .expect("pv")
        };
        let claim_of = |o: &Objects| {
            o.volumes
                .get("", "pv")
                .and_then(|v| v.spec.as_ref()?.claim_ref.as_ref()?.name.clone())
        };
        let mut o = Objects::default();
        o.apply(ObjectEvent::PersistentVolume(watcher::Event::Apply(pv(
            None,
        ))));
        o.assume_volume("ns/p", pv(Some("c")));
        assert_eq!(claim_of(&o).as_deref(), Some("c"));
        o.restore("ns/p");
        assert_eq!(claim_of(&o), None);
        // Once the watch delivers the API's version, a failure has nothing to put back.
        o.assume_volume("ns/p", pv(Some("c")));
        o.apply(ObjectEvent::PersistentVolume(watcher::Event::Apply(pv(
            Some("c"),
        ))));
        o.restore("ns/p");
        assert_eq!(claim_of(&o).as_deref(), Some("c"));
    }
}
