//! Upstream's PersistentVolume controller (`persistentvolume-binder`, pkg/controller/volume/
//! persistentvolume): binds PersistentVolumeClaims to PersistentVolumes and carries out a volume's
//! reclaim policy once its claim is gone. Static binding only: rkube runs no in-tree provisioner, so a
//! claim whose class names one waits for an external provisioner (or the administrator), as upstream.
//!
//! Two kube-runtime `Controller`s share one context, as upstream's two work queues: claims
//! ([`claims::sync_claim`]) and volumes ([`volumes::sync_volume`]), each one at a time (upstream's
//! single worker per queue: two concurrent claim syncs could pick the same volume). Start there, and
//! at [`matching::find_best_match`] for which volume a claim gets; [`binding`] writes a binding in
//! upstream's order and [`cache`] keeps the controller's own writes ahead of the watch.
//!
//! Triggers, besides each object's own changes: a volume's change syncs the claim it names and, when
//! it could take one, every unbound claim; a claim's change syncs its volume (so a deleted claim
//! releases its volume at once); a StorageClass's change syncs the unbound claims of the class; a
//! Node's change those waiting with it as their selected node. Every object is also synced again
//! every 15 s (upstream's `--pvclaimbinder-sync-period`), which retries what waits on nothing
//! watched (an external provisioner, a failed deletion). Writes as
//! `system:serviceaccount:kube-system:persistent-volume-binder`; events come from
//! `persistentvolume-controller`.

pub mod binding;
pub mod cache;
pub mod claims;
pub mod matching;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;

use super::common::{self, Recorder};
use super::Clients;
use binding::{claim_phase, has_annotation, volume_phase, ANN_BIND_COMPLETED};
use cache::Latest;
use claims::ANN_SELECTED_NODE;
use matching::claim_class;

/// Upstream's default `--pvclaimbinder-sync-period`.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Sync(String),
}

/// What both halves of the controller share.
pub struct Ctx {
    writer: kube::Client,
    claims: Latest<PersistentVolumeClaim>,
    volumes: Latest<PersistentVolume>,
    classes: Store<StorageClass>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    recorder: Recorder,
    /// Claims a volume sync wants synced soon (upstream's `claimQueue.Add` from syncVolume).
    wake: mpsc::UnboundedSender<ObjectRef<PersistentVolumeClaim>>,
}

impl Ctx {
    fn wake_claim(&self, claim: ObjectRef<PersistentVolumeClaim>) {
        // The receiver lives as long as the claim controller; a send after it ended is moot.
        let _ = self.wake.send(claim);
    }

    async fn ready(&self) {
        tokio::join!(
            common::ready(&self.claims.store),
            common::ready(&self.volumes.store),
            common::ready(&self.classes),
            common::ready(&self.nodes),
            common::ready(&self.pods),
        );
    }
}

/// Changes of `K`, without a cache (for triggers whose objects are cached elsewhere).
fn changes<K>(
    api: Api<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .touched_objects()
}

fn unbound(claim: &PersistentVolumeClaim) -> bool {
    !has_annotation(claim, ANN_BIND_COMPLETED)
}

/// The claims a volume's change concerns: the one its claimRef names, and every unbound claim when
/// the volume could be taken (Available and unclaimed, or only reserved).
fn claims_for_volume(
    claims: &Store<PersistentVolumeClaim>,
    volume: &PersistentVolume,
) -> Vec<ObjectRef<PersistentVolumeClaim>> {
    let r = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let mut out: Vec<ObjectRef<PersistentVolumeClaim>> = r
        .map(|r| {
            cache::key(
                Some(r.namespace.as_deref().unwrap_or("")),
                r.name.as_deref().unwrap_or(""),
            )
        })
        .into_iter()
        .collect();
    let takeable = volume_phase(volume) == "Available"
        && r.is_none_or(|r| r.uid.as_deref().unwrap_or("").is_empty());
    if takeable {
        out.extend(
            claims
                .state()
                .iter()
                .filter(|c| unbound(c) && claim_phase(c) != "Lost")
                .map(|c| ObjectRef::from_obj(c.as_ref())),
        );
    }
    out
}

/// The volumes a claim's change concerns: the one it names and those whose claimRef names it.
fn volumes_for_claim(
    volumes: &Store<PersistentVolume>,
    claim: &PersistentVolumeClaim,
) -> Vec<ObjectRef<PersistentVolume>> {
    let (ns, name) = (claim.namespace(), claim.name_any());
    let mut out: Vec<ObjectRef<PersistentVolume>> = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty())
        .map(ObjectRef::new)
        .into_iter()
        .collect();
    out.extend(
        volumes
            .state()
            .iter()
            .filter(|v| {
                v.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_some_and(|r| r.name.as_deref() == Some(name.as_str()) && r.namespace == ns)
            })
            .map(|v| ObjectRef::from_obj(v.as_ref())),
    );
    out
}

pub async fn run(clients: Clients) {
    let reader = clients.reader.clone();
    let (claims, claim_events) = clients.informers.watched::<PersistentVolumeClaim>();
    let (volumes, volume_events) = clients.informers.watched::<PersistentVolume>();
    let (classes, class_events) = clients.informers.watched::<StorageClass>();
    let (nodes, node_events) = clients.informers.watched::<Node>();
    let (wake, woken) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        writer: clients.writer.clone(),
        claims: Latest::new(claims.clone()),
        volumes: Latest::new(volumes.clone()),
        classes,
        nodes,
        pods: clients.informers.store(),
        recorder: common::recorder(clients.writer.clone(), "persistentvolume-controller"),
        wake,
    });
    let one_at_a_time = || controller::Config::default().concurrency(1);

    let (claim_store, volume_store) = (claims.clone(), volumes.clone());
    let (class_claims, node_claims) = (claims.clone(), claims.clone());
    let claim_controller = Controller::for_stream(claim_events, claims)
        .with_config(one_at_a_time())
        .watches_stream(
            changes(Api::<PersistentVolume>::all(reader.clone())),
            move |v: PersistentVolume| claims_for_volume(&claim_store, &v),
        )
        .watches_stream(class_events, move |sc: StorageClass| {
            let name = sc.name_any();
            class_claims
                .state()
                .iter()
                .filter(|c| unbound(c) && claim_class(c) == name)
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(node_events, move |n: Node| {
            let name = n.name_any();
            node_claims
                .state()
                .iter()
                .filter(|c| unbound(c) && c.annotations().get(ANN_SELECTED_NODE) == Some(&name))
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .reconcile_on(tokio_stream::wrappers::UnboundedReceiverStream::new(woken))
        .run(reconcile_claim, retry_claim, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("persistent volume controller (claims): {e}");
            }
        });

    let volume_controller = Controller::for_stream(volume_events, volumes)
        .with_config(one_at_a_time())
        .watches_stream(
            changes(Api::<PersistentVolumeClaim>::all(reader)),
            move |c: PersistentVolumeClaim| volumes_for_claim(&volume_store, &c),
        )
        .run(reconcile_volume, retry_volume, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("persistent volume controller (volumes): {e}");
            }
        });
    tokio::join!(claim_controller, volume_controller);
}

async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx>,
) -> Result<Action, Error> {
    ctx.ready().await;
    // Our own writes may be ahead of the cache the trigger came from (upstream skips stale events).
    let claim = ctx
        .claims
        .get(&ObjectRef::from_obj(claim.as_ref()))
        .unwrap_or(claim);
    claims::sync_claim(&ctx, claim).await?;
    Ok(Action::requeue(SYNC_PERIOD))
}

async fn reconcile_volume(volume: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.ready().await;
    let volume = ctx
        .volumes
        .get(&ObjectRef::from_obj(volume.as_ref()))
        .unwrap_or(volume);
    volumes::sync_volume(&ctx, volume).await?;
    Ok(Action::requeue(SYNC_PERIOD))
}

/// A conflict is routine (someone wrote first; the watch brings the news) and other API errors
/// are retried soon; what the sync itself refused waits for the resync, as upstream's.
fn retry_after(error: &Error) -> Action {
    match error {
        Error::Api(kube::Error::Api(e)) if e.code == 409 => {
            tracing::debug!("persistent volume controller: {e}");
            Action::requeue(Duration::from_millis(500))
        }
        Error::Api(e) => {
            tracing::warn!("persistent volume controller: {e}");
            Action::requeue(Duration::from_secs(2))
        }
        Error::Sync(e) => {
            tracing::debug!("persistent volume controller: {e}");
            Action::requeue(SYNC_PERIOD)
        }
    }
}

fn retry_claim(_c: Arc<PersistentVolumeClaim>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    retry_after(error)
}

fn retry_volume(_v: Arc<PersistentVolume>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    retry_after(error)
}
