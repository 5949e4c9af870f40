//! A controller shape two upstream controllers share: keep one named object in every namespace that is
//! not terminating (re-created when deleted, restored when changed), reacting to namespace events and to
//! events of that object.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Clients;

/// What to keep in every namespace.
pub struct Desired<K> {
    /// The object's name (the same in every namespace).
    pub name: &'static str,
    /// The object wanted in a namespace.
    pub object: Box<dyn Fn(&str) -> K + Send + Sync>,
    /// Whether an existing object is as wanted (when not, it is replaced by the wanted one).
    pub up_to_date: fn(current: &K, wanted: &K) -> bool,
}

struct Context<K> {
    clients: Clients,
    desired: Desired<K>,
}

pub async fn run<K>(clients: Clients, desired: Desired<K>)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let namespaces = Api::<Namespace>::all(clients.reader.clone());
    let objects = Api::<K>::all(clients.reader.clone());
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", desired.name));
    let what = desired.name;
    let context = Arc::new(Context { clients, desired });
    Controller::new(namespaces, watcher::Config::default())
        .watches(objects, by_name, |obj| {
            obj.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .run(reconcile::<K>, retry_later::<K>, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("{what} controller: {e}");
            }
        })
        .await;
}

async fn reconcile<K>(ns: Arc<Namespace>, ctx: Arc<Context<K>>) -> Result<Action, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = ns.name_any();
    let reader = Api::<K>::namespaced(ctx.clients.reader.clone(), &namespace);
    let api = Api::<K>::namespaced(ctx.clients.writer.clone(), &namespace);
    let wanted = (ctx.desired.object)(&namespace);
    let written = match reader.get_opt(ctx.desired.name).await? {
        None => api
            .create(&PostParams::default(), &wanted)
            .await
            .map(|_| ()),
        Some(current) if !(ctx.desired.up_to_date)(&current, &wanted) => {
            let mut replacement = wanted;
            replacement.meta_mut().resource_version = current.meta().resource_version.clone();
            api.replace(ctx.desired.name, &PostParams::default(), &replacement)
                .await
                .map(|_| ())
        }
        Some(_) => Ok(()),
    };
    match written {
        // Someone else wrote it meanwhile (409), or the namespace went away or began terminating
        // (404/403): the events that follow bring us back if anything is still to do.
        Err(kube::Error::Api(e)) if matches!(e.code, 403 | 404 | 409) => Ok(Action::await_change()),
        Err(e) => Err(e),
        Ok(()) => Ok(Action::await_change()),
    }
}

fn retry_later<K>(_ns: Arc<Namespace>, error: &kube::Error, ctx: Arc<Context<K>>) -> Action {
    tracing::warn!("{} controller: {error}", ctx.desired.name);
    Action::requeue(Duration::from_secs(5))
}
