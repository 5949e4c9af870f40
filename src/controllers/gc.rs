//! Upstream's garbage collector (pkg/controller/garbagecollector), for every resource.
//!
//! Like upstream's, it discovers every resource that can be listed, watched and deleted (again every
//! 30 s, so custom resources join), watches their metadata only, and keeps one graph of objects by UID
//! with each owner's dependents ([`Graph`], upstream's GraphBuilder). Changes put UIDs on one work queue;
//! [`Collector::process`] is upstream's attemptToDelete and the owner-side processing:
//! - a dependent whose every owner is gone is deleted in the background; one with only some owners gone
//!   loses the dangling references (an owner the graph lacks is confirmed absent by a live GET first,
//!   so a lagging cache never deletes a live dependent);
//! - an owner being deleted with the `orphan` finalizer (`kubectl delete --cascade=orphan`) has its
//!   dependents' references to it removed, then the finalizer; with `foregroundDeletion`
//!   (`--cascade=foreground`) its dependents are deleted (in the foreground too) and the finalizer
//!   removed once no dependent with `blockOwnerDeletion` remains.
//!
//! Events are not collected, as upstream (its ignoredResources).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::common::lock;
use super::Clients;

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";
/// How soon an owner whose dependents are still being released or deleted is looked at again.
const RECHECK: Duration = Duration::from_secs(1);
/// Upstream's discovery resync period for the collector's monitors.
const REDISCOVER: Duration = Duration::from_secs(30);
/// Objects processed at once (upstream's --concurrent-gc-syncs).
const WORKERS: usize = 20;

/// One object in the graph.
#[derive(Clone, Debug)]
struct Node {
    resource: Arc<Watched>,
    namespace: Option<String>,
    name: String,
    uid: String,
    owners: Vec<OwnerReference>,
    finalizers: Vec<String>,
    deleting: bool,
    resource_version: Option<String>,
}

/// A watched resource.
#[derive(Debug)]
struct Watched {
    ar: ApiResource,
    namespaced: bool,
}

/// Every watched object by UID, and each owner UID's dependents.
#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// Records `node`; returns the UIDs to look at: itself (when it has owners or is being deleted),
    /// and for a node being deleted, its dependents.
    fn upsert(&mut self, node: Node) -> Vec<String> {
        let mut wake = Vec::new();
        if let Some(old) = self.nodes.get(&node.uid) {
            for r in &old.owners {
                if let Some(d) = self.dependents.get_mut(&r.uid) {
                    d.remove(&node.uid);
                }
            }
        }
        for r in &node.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(node.uid.clone());
            // An owner waiting for its dependents (being deleted) learns of each change of theirs.
            if self.nodes.get(&r.uid).is_some_and(|o| o.deleting) {
                wake.push(r.uid.clone());
            }
        }
        if !node.owners.is_empty() || node.deleting {
            wake.push(node.uid.clone());
        }
        if node.deleting {
            wake.extend(self.dependents_of(&node.uid));
        }
        self.nodes.insert(node.uid.clone(), node);
        wake
    }

    /// Forgets `uid`; returns its dependents (their owner is gone) and its owners (one may be waiting
    /// for it).
    fn remove(&mut self, uid: &str) -> Vec<String> {
        let mut wake = self.dependents_of(uid);
        if let Some(old) = self.nodes.remove(uid) {
            for r in &old.owners {
                if let Some(d) = self.dependents.get_mut(&r.uid) {
                    d.remove(uid);
                }
                if self.nodes.get(&r.uid).is_some_and(|o| o.deleting) {
                    wake.push(r.uid.clone());
                }
            }
        }
        wake
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The collector: the graph, the resources by (apiVersion, kind) for owner lookups, and its queue.
struct Collector {
    clients: Clients,
    graph: Mutex<Graph>,
    kinds: Mutex<HashMap<(String, String), Arc<Watched>>>,
    queue: mpsc::UnboundedSender<String>,
    queued: Mutex<HashSet<String>>,
}

pub async fn run(clients: Clients) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let gc = Arc::new(Collector {
        clients,
        graph: Mutex::default(),
        kinds: Mutex::default(),
        queue: tx,
        queued: Mutex::default(),
    });
    tokio::spawn(monitor_resources(gc.clone()));
    let workers = Arc::new(tokio::sync::Semaphore::new(WORKERS));
    while let Some(uid) = rx.recv().await {
        lock(&gc.queued).remove(&uid);
        let Ok(permit) = workers.clone().acquire_owned().await else {
            return;
        };
        let gc = gc.clone();
        tokio::spawn(async move {
            match gc.process(&uid).await {
                Ok(Some(after)) => gc.enqueue_after(uid, after),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("garbage collector: {e}");
                    gc.enqueue_after(uid, RECHECK);
                }
            }
            drop(permit);
        });
    }
}

/// Discovers the collectable resources now and every [`REDISCOVER`], starting a metadata watch for
/// each new one.
async fn monitor_resources(gc: Arc<Collector>) {
    let mut watching: HashSet<(String, String)> = HashSet::new();
    loop {
        match Discovery::new(gc.clients.reader.clone()).run().await {
            Ok(discovery) => {
                for group in discovery.groups() {
                    for version in group.versions() {
                        for (ar, caps) in group.versioned_resources(version) {
                            let watched = Arc::new(Watched {
                                namespaced: caps.scope == Scope::Namespaced,
                                ar: ar.clone(),
                            });
                            lock(&gc.kinds)
                                .entry((ar.api_version.clone(), ar.kind.clone()))
                                .or_insert_with(|| watched.clone());
                        }
                    }
                    // One watch per resource, at its preferred version.
                    for (ar, caps) in group.recommended_resources() {
                        let collectable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                            .iter()
                            .all(|v| caps.supports_operation(v));
                        let key = (ar.group.clone(), ar.plural.clone());
                        if !collectable || ar.plural == "events" || watching.contains(&key) {
                            continue;
                        }
                        watching.insert(key);
                        let watched = Arc::new(Watched {
                            namespaced: caps.scope == Scope::Namespaced,
                            ar,
                        });
                        tokio::spawn(monitor(gc.clone(), watched));
                    }
                }
            }
            Err(e) => tracing::warn!("garbage collector: discovery: {e}"),
        }
        tokio::time::sleep(REDISCOVER).await;
    }
}

/// Feeds one resource's metadata watch into the graph.
async fn monitor(gc: Arc<Collector>, resource: Arc<Watched>) {
    let api =
        Api::<PartialObjectMeta<DynamicObject>>::all_with(gc.clients.reader.clone(), &resource.ar);
    let mut events = watcher::watcher(api, watcher::Config::default())
        .modify(super::common::trim::<PartialObjectMeta<DynamicObject>>)
        .default_backoff()
        .boxed();
    // UIDs seen during a re-list: what the graph has of this resource and the re-list lacks was
    // deleted while the watch was down.
    let mut relisted: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        let wake = match event {
            Ok(watcher::Event::Init) => {
                relisted = Some(HashSet::new());
                Vec::new()
            }
            Ok(watcher::Event::InitApply(obj)) => {
                if let (Some(seen), Some(uid)) = (relisted.as_mut(), obj.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                lock(&gc.graph).upsert(node(&resource, obj))
            }
            Ok(watcher::Event::InitDone) => {
                let seen = relisted.take().unwrap_or_default();
                let mut graph = lock(&gc.graph);
                let gone: Vec<String> = graph
                    .nodes
                    .values()
                    .filter(|n| Arc::ptr_eq(&n.resource, &resource) && !seen.contains(&n.uid))
                    .map(|n| n.uid.clone())
                    .collect();
                gone.iter().flat_map(|uid| graph.remove(uid)).collect()
            }
            Ok(watcher::Event::Apply(obj)) => lock(&gc.graph).upsert(node(&resource, obj)),
            Ok(watcher::Event::Delete(obj)) => match obj.metadata.uid.as_deref() {
                Some(uid) => lock(&gc.graph).remove(uid),
                None => Vec::new(),
            },
            Err(e) => {
                tracing::debug!("garbage collector: watching {}: {e}", resource.ar.plural);
                Vec::new()
            }
        };
        for uid in wake {
            gc.enqueue(uid);
        }
    }
}

fn node(resource: &Arc<Watched>, obj: PartialObjectMeta<DynamicObject>) -> Node {
    let m = obj.metadata;
    Node {
        resource: resource.clone(),
        namespace: m.namespace,
        name: m.name.unwrap_or_default(),
        uid: m.uid.unwrap_or_default(),
        owners: m.owner_references.unwrap_or_default(),
        finalizers: m.finalizers.unwrap_or_default(),
        deleting: m.deletion_timestamp.is_some(),
        resource_version: m.resource_version,
    }
}

impl Collector {
    fn enqueue(&self, uid: String) {
        if lock(&self.queued).insert(uid.clone()) {
            let _ = self.queue.send(uid);
        }
    }

    fn enqueue_after(self: &Arc<Self>, uid: String, after: Duration) {
        let gc = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            gc.enqueue(uid);
        });
    }

    fn api(&self, node: &Node) -> Api<DynamicObject> {
        let client = self.clients.writer.clone();
        match (&node.namespace, node.resource.namespaced) {
            (Some(ns), true) => Api::namespaced_with(client, ns, &node.resource.ar),
            _ => Api::all_with(client, &node.resource.ar),
        }
    }

    /// Looks at one object; returns when to look again, if it must be.
    async fn process(&self, uid: &str) -> Result<Option<Duration>, kube::Error> {
        let Some(node) = lock(&self.graph).nodes.get(uid).cloned() else {
            return Ok(None);
        };
        if node.deleting {
            if node.finalizers.iter().any(|f| f == ORPHAN) {
                return self.orphan_dependents(&node).await;
            }
            if node.finalizers.iter().any(|f| f == FOREGROUND) {
                return self.delete_dependents(&node).await;
            }
            return Ok(None);
        }
        if node.owners.is_empty() {
            return Ok(None);
        }
        let mut dangling = Vec::new();
        for r in &node.owners {
            if !self.owner_exists(&node, r).await? {
                dangling.push(r.uid.clone());
            }
        }
        if dangling.is_empty() {
            return Ok(None);
        }
        let api = self.api(&node);
        let result = if dangling.len() == node.owners.len() {
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(Preconditions {
                    uid: Some(node.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            api.delete(&node.name, &dp).await.map(|_| ())
        } else {
            let keep: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|r| !dangling.contains(&r.uid))
                .collect();
            let patch = json!({"metadata": {"ownerReferences": keep, "uid": node.uid}});
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        };
        match result {
            Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => Ok(None),
            other => other.map(|_| None),
        }
    }

    /// Whether the owner `r` of `node` exists with that UID: from the graph, confirmed by a live read
    /// when the graph lacks it. An owner of a kind the cluster does not serve counts as present.
    async fn owner_exists(&self, node: &Node, r: &OwnerReference) -> Result<bool, kube::Error> {
        if lock(&self.graph).nodes.contains_key(&r.uid) {
            return Ok(true);
        }
        let kind = lock(&self.kinds)
            .get(&(r.api_version.clone(), r.kind.clone()))
            .cloned();
        let Some(kind) = kind else {
            return Ok(true);
        };
        let client = self.clients.writer.clone();
        let api: Api<DynamicObject> = match (&node.namespace, kind.namespaced) {
            (Some(ns), true) => Api::namespaced_with(client, ns, &kind.ar),
            // A namespaced owner of a cluster-scoped object cannot exist (upstream treats it as absent).
            (None, true) => return Ok(false),
            _ => Api::all_with(client, &kind.ar),
        };
        let found = api.get_metadata_opt(&r.name).await?;
        Ok(found.is_some_and(|o| o.metadata.uid.as_deref() == Some(r.uid.as_str())))
    }

    /// The owner's dependents, as the graph has them.
    fn dependents(&self, owner: &Node) -> Vec<Node> {
        let graph = lock(&self.graph);
        graph
            .dependents_of(&owner.uid)
            .iter()
            .filter_map(|uid| graph.nodes.get(uid).cloned())
            .collect()
    }

    /// `orphan`: removes the owner's reference from every dependent, then the finalizer.
    async fn orphan_dependents(&self, owner: &Node) -> Result<Option<Duration>, kube::Error> {
        let dependents = self.dependents(owner);
        for d in &dependents {
            let keep: Vec<&OwnerReference> =
                d.owners.iter().filter(|r| r.uid != owner.uid).collect();
            let patch = json!({"metadata": {"ownerReferences": keep, "uid": d.uid}});
            match self
                .api(d)
                .patch(&d.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => {}
                other => {
                    other?;
                }
            }
        }
        if !dependents.is_empty() {
            // Finished once the graph shows no dependent left.
            return Ok(Some(RECHECK));
        }
        self.remove_finalizer(owner, ORPHAN).await
    }

    /// `foregroundDeletion`: deletes the dependents (in the foreground too, as upstream), and removes
    /// the finalizer once none that blocks the owner's deletion remains.
    async fn delete_dependents(&self, owner: &Node) -> Result<Option<Duration>, kube::Error> {
        let dependents = self.dependents(owner);
        let mut blocked = false;
        for d in &dependents {
            blocked |= d
                .owners
                .iter()
                .any(|r| r.uid == owner.uid && r.block_owner_deletion == Some(true));
            if d.deleting {
                continue;
            }
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                preconditions: Some(Preconditions {
                    uid: Some(d.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self.api(d).delete(&d.name, &dp).await {
                Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => {}
                other => {
                    other?;
                }
            }
        }
        if blocked {
            return Ok(Some(RECHECK));
        }
        self.remove_finalizer(owner, FOREGROUND).await
    }

    /// Removes `finalizer` from the owner (with its resourceVersion, so a concurrent change is not
    /// lost; a conflict is retried from the graph's next view).
    async fn remove_finalizer(
        &self,
        owner: &Node,
        finalizer: &str,
    ) -> Result<Option<Duration>, kube::Error> {
        let rest: Vec<&String> = owner
            .finalizers
            .iter()
            .filter(|f| *f != finalizer)
            .collect();
        let patch =
            json!({"metadata": {"finalizers": rest, "resourceVersion": owner.resource_version}});
        match self
            .api(owner)
            .patch(&owner.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some(RECHECK)),
            other => other.map(|_| None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: &str, owners: &[&str], deleting: bool) -> Node {
        Node {
            resource: Arc::new(Watched {
                ar: ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
                namespaced: true,
            }),
            namespace: Some("ns".into()),
            name: uid.into(),
            uid: uid.into(),
            owners: owners
                .iter()
                .map(|o| OwnerReference {
                    uid: o.to_string(),
                    ..Default::default()
                })
                .collect(),
            finalizers: vec![],
            deleting,
            resource_version: None,
        }
    }

    #[test]
    fn graph_tracks_dependents_and_wakes_the_right_objects() {
        let mut g = Graph::default();
        assert!(g.upsert(node("rs", &[], false)).is_empty());
        let wake = g.upsert(node("pod", &["rs"], false));
        assert_eq!(wake, vec!["pod".to_string()]);
        assert_eq!(g.dependents_of("rs"), vec!["pod".to_string()]);
        // The owner being deleted wakes itself and its dependents.
        let wake = g.upsert(node("rs", &[], true));
        assert!(wake.contains(&"rs".to_string()) && wake.contains(&"pod".to_string()));
        // The owner gone: its dependents are looked at.
        assert_eq!(g.remove("rs"), vec!["pod".to_string()]);
        // A dependent whose owners change leaves the old owner's list.
        g.upsert(node("pod", &["other"], false));
        assert!(g.dependents_of("rs").is_empty());
        assert_eq!(g.dependents_of("other"), vec!["pod".to_string()]);
        // A dependent of an owner being deleted wakes that owner when it changes or goes.
        g.upsert(node("other", &[], true));
        assert_eq!(g.remove("pod"), vec!["other".to_string()]);
    }
}
