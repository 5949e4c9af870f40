//! Upstream's namespace controller: empties a terminating namespace, then lets it go.
//!
//! A namespace being deleted keeps the `kubernetes` finalizer in its `spec.finalizers` until
//! everything in it is gone. For such a namespace this controller deletes every namespaced resource of
//! every served group and version (found through discovery, so custom resources too; with background
//! propagation, as upstream), looks again shortly while objects wait for their own finalizers or grace
//! periods, and once nothing is left removes `kubernetes` through `namespaces/finalize`; the apiserver
//! then deletes the namespace. It runs as `system:serviceaccount:kube-system:namespace-controller`, whose
//! default role may delete anything in any namespace and nothing else.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::ResourceExt;

use super::Clients;

/// The finalizer the namespace controller owns.
const FINALIZER: &str = "kubernetes";
/// How soon a namespace whose content is still going away is looked at again.
const RECHECK: Duration = Duration::from_secs(1);

pub async fn run(clients: Clients) {
    let namespaces = Api::<Namespace>::all(clients.reader.clone());
    Controller::new(namespaces, watcher::Config::default())
        .run(reconcile, retry_later, Arc::new(clients))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("namespace controller: {e}");
            }
        })
        .await;
}

fn retry_later(_ns: Arc<Namespace>, _e: &kube::Error, _clients: Arc<Clients>) -> Action {
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(ns: Arc<Namespace>, clients: Arc<Clients>) -> Result<Action, kube::Error> {
    let held = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if ns.metadata.deletion_timestamp.is_none() || !held {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    if delete_content(&clients.writer, &name).await? > 0 {
        return Ok(Action::requeue(RECHECK));
    }
    let mut finalized = (*ns).clone();
    if let Some(spec) = finalized.spec.as_mut() {
        if let Some(f) = spec.finalizers.as_mut() {
            f.retain(|x| x != FINALIZER);
        }
    }
    let api = Api::<Namespace>::all(clients.writer.clone());
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await
    {
        Ok(_) => tracing::info!("namespace {name} emptied and finalized"),
        // Changed or gone meanwhile: the watch brings the new state.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}

/// Deletes everything in namespace `ns`; returns how many resources still hold objects there.
async fn delete_content(client: &kube::Client, ns: &str) -> Result<usize, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut remaining = 0;
    for group in discovery.groups() {
        for version in group.versions() {
            for (resource, caps) in group.versioned_resources(version) {
                let deletable = caps.scope == Scope::Namespaced
                    && caps.supports_operation("deletecollection")
                    && caps.supports_operation("list");
                if !deletable {
                    continue;
                }
                let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource);
                api.delete_collection(&DeleteParams::background(), &ListParams::default())
                    .await?;
                let left = api.list(&ListParams::default().limit(1)).await?;
                if !left.items.is_empty() {
                    remaining += 1;
                }
            }
        }
    }
    Ok(remaining)
}
