//! Upstream's garbage collector (pkg/controller/garbagecollector), for the workload kinds so far:
//! a dependent (Pod, ReplicaSet) whose every owner (ReplicaSet, Deployment) is gone is deleted in the
//! background; a dependent with some owners gone loses the dangling references.
//!
//! The owner side (upstream's orphan and foreground processing): an owner being deleted with the
//! `orphan` finalizer (`kubectl delete --cascade=orphan`) has its dependents' references to it removed,
//! then the finalizer; with `foregroundDeletion` (`--cascade=foreground`) its dependents are deleted
//! first and the finalizer removed once no dependent blocks it ([`finalize_owner`]). Dependents of a
//! foreground delete are deleted in the background (upstream propagates foreground down the tree).
//!
//! Start at [`reconcile`]. Owners are looked up in watched caches by UID, and an owner the cache
//! misses is confirmed absent by a live GET before anything is deleted (as upstream's
//! attemptToDeleteItem), so a cache that lags never makes the collector delete a live dependent.
//! Owners of other kinds are left alone for now.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use serde_json::json;

use super::common;
use super::Clients;

#[derive(Clone)]
struct Owners {
    deployments: Store<Deployment>,
    sets: Store<ReplicaSet>,
}

struct Ctx {
    clients: Clients,
    owners: Owners,
}

pub async fn run(clients: Clients) {
    let (deployments, deployment_events) =
        common::watched(Api::<Deployment>::all(clients.reader.clone()));
    let (sets, set_events) = common::watched(Api::<ReplicaSet>::all(clients.reader.clone()));
    let owners = Owners { deployments, sets };
    let ctx = Arc::new(Ctx { clients, owners });
    // Owner events are fanned out to both dependent controllers (a deleted owner wakes its
    // dependents); each controller gets its own copy of the owners' changes.
    let (dep_tx, dep_rx) = tokio::sync::broadcast::channel::<(String, String)>(4096);
    let forward = |tx: tokio::sync::broadcast::Sender<(String, String)>| {
        move |uid_ns: (String, String)| {
            let _ = tx.send(uid_ns);
        }
    };
    let send = forward(dep_tx.clone());
    tokio::spawn(deployment_events.for_each(move |e| {
        if let Ok(d) = e {
            send((
                d.uid().unwrap_or_default(),
                d.namespace().unwrap_or_default(),
            ));
        }
        async {}
    }));
    let send = forward(dep_tx.clone());
    tokio::spawn(set_events.for_each(move |e| {
        if let Ok(rs) = e {
            send((
                rs.uid().unwrap_or_default(),
                rs.namespace().unwrap_or_default(),
            ));
        }
        async {}
    }));
    let pods = tokio::spawn(dependents::<Pod>(ctx.clone(), dep_tx.subscribe()));
    let pod_store = common::store(Api::<Pod>::all(ctx.clients.reader.clone()));
    // A Deployment's dependents are found in the ReplicaSet cache the collector already keeps.
    let owning_deployments = tokio::spawn(owner_side::<Deployment, ReplicaSet>(
        ctx.clone(),
        ctx.owners.sets.clone(),
    ));
    let owning_sets = tokio::spawn(owner_side::<ReplicaSet, Pod>(ctx.clone(), pod_store));
    let sets = dependents::<ReplicaSet>(ctx, dep_rx);
    let _ = tokio::join!(pods, sets, owning_deployments, owning_sets);
}

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";
/// How soon an owner whose dependents are still being released or deleted is looked at again.
const RECHECK: Duration = Duration::from_secs(1);

/// Runs the owner side for owners of kind `O` whose dependents are of kind `D`.
async fn owner_side<O, D>(ctx: Arc<Ctx>, dependents: Store<D>)
where
    O: common::Namespaced,
    D: common::Namespaced,
{
    let api = Api::<O>::all(ctx.clients.reader.clone());
    Controller::new(api, Default::default())
        .run(
            move |owner, ctx| finalize_owner(owner, ctx, dependents.clone()),
            |_owner: Arc<O>, error: &kube::Error, _ctx| {
                tracing::warn!("garbage collector (owners): {error}");
                Action::requeue(Duration::from_secs(1))
            },
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// An owner being deleted with the collector's finalizer: orphan or delete its dependents, then
/// remove the finalizer (with the owner's resourceVersion, so a concurrent change is not lost).
async fn finalize_owner<O, D>(
    owner: Arc<O>,
    ctx: Arc<Ctx>,
    dependents: Store<D>,
) -> Result<Action, kube::Error>
where
    O: common::Namespaced,
    D: common::Namespaced,
{
    let finalizers = owner.finalizers().to_vec();
    let mode = if finalizers.iter().any(|f| f == ORPHAN) {
        ORPHAN
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        FOREGROUND
    } else {
        return Ok(Action::await_change());
    };
    if owner.meta().deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let (ns, uid) = (
        owner.namespace().unwrap_or_default(),
        owner.uid().unwrap_or_default(),
    );
    let mine: Vec<Arc<D>> = dependents
        .state()
        .into_iter()
        .filter(|d| {
            d.namespace().as_deref() == Some(ns.as_str())
                && d.owner_references().iter().any(|r| r.uid == uid)
        })
        .collect();
    let api = Api::<D>::namespaced(ctx.clients.writer.clone(), &ns);
    let mut waiting = false;
    for d in &mine {
        let result = if mode == ORPHAN {
            let keep: Vec<&OwnerReference> = d
                .owner_references()
                .iter()
                .filter(|r| r.uid != uid)
                .collect();
            let patch = json!({"metadata": {"ownerReferences": keep, "uid": d.uid()}});
            waiting = true;
            api.patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map(|_| ())
        } else {
            let blocking = d
                .owner_references()
                .iter()
                .any(|r| r.uid == uid && r.block_owner_deletion == Some(true));
            waiting |= blocking;
            if d.meta().deletion_timestamp.is_some() {
                Ok(())
            } else {
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    preconditions: Some(Preconditions {
                        uid: d.uid(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                api.delete(&d.name_any(), &dp).await.map(|_| ())
            }
        };
        match result {
            Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => {}
            other => other?,
        }
    }
    if waiting {
        return Ok(Action::requeue(RECHECK));
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| *f != mode).collect();
    let patch =
        json!({"metadata": {"finalizers": rest, "resourceVersion": owner.resource_version()}});
    let owners = Api::<O>::namespaced(ctx.clients.writer.clone(), &ns);
    match owners
        .patch(
            &owner.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => Ok(Action::requeue(RECHECK)),
        other => other.map(|_| Action::await_change()),
    }
}

/// Runs the collector for dependents of kind `D`, woken by their own changes and by owner changes.
async fn dependents<D>(
    ctx: Arc<Ctx>,
    owner_changes: tokio::sync::broadcast::Receiver<(String, String)>,
) where
    D: common::Namespaced,
{
    let api = Api::<D>::all(ctx.clients.reader.clone());
    let controller = Controller::new(api, Default::default());
    let store = controller.store();
    let owner_stream = tokio_stream::wrappers::BroadcastStream::new(owner_changes)
        .filter_map(|r| async move { r.ok() })
        .map(move |(uid, ns)| {
            store
                .state()
                .iter()
                .filter(|o| {
                    o.namespace().as_deref() == Some(ns.as_str())
                        && o.owner_references().iter().any(|r| r.uid == uid)
                })
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect::<Vec<_>>()
        })
        .flat_map(futures::stream::iter);
    controller
        .reconcile_on(owner_stream)
        .run(reconcile::<D>, retry_later::<D>, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("garbage collector: {e}");
            }
        })
        .await;
}

/// Whether the owner `r` of an object in `ns` exists (with that UID): from the caches, confirmed
/// with a live read when the cache does not have it. None: a kind the collector does not follow.
async fn owner_exists(
    ctx: &Ctx,
    ns: &str,
    r: &OwnerReference,
) -> Result<Option<bool>, kube::Error> {
    let client = ctx.clients.writer.clone();
    let found = match (r.api_version.as_str(), r.kind.as_str()) {
        ("apps/v1", "Deployment") => {
            if ctx
                .owners
                .deployments
                .get(&ObjectRef::new(&r.name).within(ns))
                .is_some_and(|o| o.uid().as_deref() == Some(r.uid.as_str()))
            {
                return Ok(Some(true));
            }
            Api::<Deployment>::namespaced(client, ns)
                .get_opt(&r.name)
                .await?
                .map(|o| o.uid())
        }
        ("apps/v1", "ReplicaSet") => {
            if ctx
                .owners
                .sets
                .get(&ObjectRef::new(&r.name).within(ns))
                .is_some_and(|o| o.uid().as_deref() == Some(r.uid.as_str()))
            {
                return Ok(Some(true));
            }
            Api::<ReplicaSet>::namespaced(client, ns)
                .get_opt(&r.name)
                .await?
                .map(|o| o.uid())
        }
        _ => return Ok(None),
    };
    Ok(Some(found.flatten().as_deref() == Some(r.uid.as_str())))
}

async fn reconcile<D>(obj: Arc<D>, ctx: Arc<Ctx>) -> Result<Action, kube::Error>
where
    D: common::Namespaced,
{
    let refs = obj.owner_references().to_vec();
    if refs.is_empty() || obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = obj.namespace().unwrap_or_default();
    let mut dangling = Vec::new();
    let mut live = 0;
    for r in &refs {
        match owner_exists(&ctx, &ns, r).await? {
            Some(false) => dangling.push(r.uid.clone()),
            // Present, or of a kind not followed (treated as present).
            _ => live += 1,
        }
    }
    if dangling.is_empty() {
        return Ok(Action::await_change());
    }
    let api = Api::<D>::namespaced(ctx.clients.writer.clone(), &ns);
    let result = if live == 0 {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: obj.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        api.delete(&obj.name_any(), &dp).await.map(|_| ())
    } else {
        let keep: Vec<&OwnerReference> =
            refs.iter().filter(|r| !dangling.contains(&r.uid)).collect();
        let patch = json!({"metadata": {"ownerReferences": keep, "uid": obj.uid()}});
        api.patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|_| ())
    };
    match result {
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => Ok(Action::await_change()),
        Err(e) => Err(e),
        Ok(()) => Ok(Action::await_change()),
    }
}

fn retry_later<D>(_obj: Arc<D>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("garbage collector: {error}");
    Action::requeue(Duration::from_secs(1))
}
