//! Upstream's resource quota controller (pkg/controller/resourcequota): writes each ResourceQuota's
//! `status.hard` (its spec) and `status.used` (what its namespace uses of each named resource, for the
//! objects its scopes select), so `kubectl describe quota` shows usage. Enforcement at create time is
//! admission's (the apiserver), not this controller's.
//!
//! Start at [`reconcile`]. Usage is counted with consistent lists of the kinds upstream's evaluators
//! know (pods, services, persistentvolumeclaims, configmaps, secrets, replicationcontrollers,
//! resourcequotas; the pod evaluator is admission's), never from watch caches, which trail
//! admission's charges; a change of any of them wakes the quotas of its namespace (upstream's replenishment),
//! and every quota is recomputed every 5 minutes (upstream's --resource-quota-sync-period). Other
//! `count/<resource>.<group>` names are counted with a live metadata list, and from the first such
//! count on, that resource's metadata is watched too so its changes wake the quotas (upstream's quota
//! monitors).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota,
    ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use kube::api::{Api, ListParams};
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::discovery::{ApiResource, Discovery};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::ResourceExt;

use super::Clients;
use crate::apiserver::admission::resource_quota::{pod_counts, pod_in_scope, pod_total};
use crate::apiserver::wire::quantity::{Format, Quantity};

/// Upstream's --resource-quota-sync-period.
const RESYNC: Duration = Duration::from_secs(300);
/// How long a count that would lower `used` waits for a second opinion (see [`reconcile`]).
const SETTLE: Duration = Duration::from_secs(1);
/// A namespace's quotas are recounted at most this often while its objects keep changing.
const RECOUNT_EVERY: Duration = Duration::from_millis(500);

struct Ctx {
    clients: Clients,
    /// Resources counted generically that are already watched, and where their changes go.
    monitored: std::sync::Mutex<std::collections::HashSet<String>>,
    changed: tokio::sync::mpsc::UnboundedSender<String>,
}

pub async fn run(clients: Clients) {
    let reader = clients.reader.clone();
    let controller = Controller::new(
        Api::<ResourceQuota>::all(reader.clone()),
        Default::default(),
    );
    let quotas = controller.store();
    // Namespaces whose objects changed, from every watched kind.
    let (_, pod_changes) = clients.informers.watched::<Pod>();
    let (_, service_changes) = clients.informers.watched::<Service>();
    let (_, claim_changes) = clients.informers.watched::<PersistentVolumeClaim>();
    let (_, cm_changes) = clients.informers.watched::<ConfigMap>();
    let (_, secret_changes) = clients.informers.watched::<Secret>();
    let (_, rc_changes) = clients.informers.watched::<ReplicationController>();
    let (changed, generic_changes) = tokio::sync::mpsc::unbounded_channel::<String>();
    let changes = futures::stream::select_all([
        tokio_stream::wrappers::UnboundedReceiverStream::new(generic_changes).boxed(),
        namespaces_of(pod_changes),
        namespaces_of(service_changes),
        namespaces_of(claim_changes),
        namespaces_of(cm_changes),
        namespaces_of(secret_changes),
        namespaces_of(rc_changes),
    ]);
    let wake = throttled(changes.boxed(), RECOUNT_EVERY).flat_map(move |ns| {
        let refs: Vec<ObjectRef<ResourceQuota>> = quotas
            .state()
            .iter()
            .filter(|q| q.namespace().as_deref() == Some(ns.as_str()))
            .map(|q| ObjectRef::from_obj(q.as_ref()))
            .collect();
        futures::stream::iter(refs)
    });
    let ctx = Arc::new(Ctx {
        clients,
        monitored: Default::default(),
        changed,
    });
    controller
        .reconcile_on(wake)
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("resource quota controller: {e}");
            }
        })
        .await;
}

/// Wakes each namespace at most once per `every`: its first change wakes it at once, the changes
/// that follow within `every` are folded into one wake when that time is up. A recount lists every
/// pod of the namespace, so a burst of creates there would otherwise recount back to back (upstream's
/// controller likewise recounts through a rate-limited queue, not once per change).
fn throttled(
    mut changes: futures::stream::BoxStream<'static, String>,
    every: Duration,
) -> futures::stream::BoxStream<'static, String> {
    use tokio::time::Instant;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut last: std::collections::HashMap<String, Instant> = Default::default();
        let mut pending: std::collections::HashMap<String, Instant> = Default::default();
        loop {
            let next = pending.values().min().copied();
            tokio::select! {
                change = changes.next() => {
                    let Some(ns) = change else { return };
                    let now = Instant::now();
                    if pending.contains_key(&ns) {
                        continue;
                    }
                    match last.get(&ns) {
                        Some(at) if now < *at + every => {
                            pending.insert(ns, *at + every);
                        }
                        _ => {
                            if last.len() > 4096 {
                                last.retain(|_, at| now < *at + every);
                            }
                            last.insert(ns.clone(), now);
                            if tx.send(ns).is_err() {
                                return;
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let now = Instant::now();
                    let due: Vec<String> = pending
                        .iter()
                        .filter(|(_, at)| **at <= now)
                        .map(|(ns, _)| ns.clone())
                        .collect();
                    for ns in due {
                        pending.remove(&ns);
                        last.insert(ns.clone(), now);
                        if tx.send(ns).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed()
}

/// The namespace of each changed object (the stream must be polled for its cache to fill).
fn namespaces_of<K: kube::Resource + Send + 'static>(
    changes: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> futures::stream::BoxStream<'static, String> {
    changes
        .filter_map(|r| async move { r.ok().and_then(|o| o.meta().namespace.clone()) })
        .boxed()
}

/// A pod's total of `resource` in `which`, in milli-units (the evaluator is admission's).
fn pod_amount(pod: &Pod, which: &str, resource: &str) -> i128 {
    pod_total(pod, which, resource).map_or(0, |q| q.milli_value())
}

/// A sum in milli-units, printed as upstream prints a sum of quantities in `format`.
fn quantity(milli: i128, format: Format) -> K8sQuantity {
    let text = if milli % 1000 != 0 {
        format!("{milli}m")
    } else if format == Format::BinarySI && milli != 0 && (milli / 1000) % 1024 == 0 {
        format!("{}Ki", milli / 1000 / 1024)
    } else {
        format!("{}", milli / 1000)
    };
    K8sQuantity(
        Quantity::parse(&text)
            .map(|q| q.to_string())
            .unwrap_or(text),
    )
}

fn count(n: usize) -> K8sQuantity {
    K8sQuantity(n.to_string())
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let ns = quota.namespace().unwrap_or_default();
    let name = quota.name_any();
    // Admission charges `used` before the object it admits is stored, so a count taken in between
    // is short by that object, and writing it would take the charge back and let the next create past
    // the limit. A count that raises `used` (or keeps it) is written at once; one that lowers it only
    // once a second count, SETTLE later, agrees and the quota was not charged meanwhile: by then the
    // charged objects are stored (or failed, and their charge is rightly released).
    let Some((quota, status)) = measure(&ctx, &ns, &name).await? else {
        return Ok(Action::await_change());
    };
    let (quota, status) = if lowers(&quota, &status) {
        tokio::time::sleep(SETTLE).await;
        let Some((again, status)) = measure(&ctx, &ns, &name).await? else {
            return Ok(Action::await_change());
        };
        if again.metadata.resource_version != quota.metadata.resource_version {
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
        (again, status)
    } else {
        (quota, status)
    };
    if quota.status.as_ref() != Some(&status) {
        let api = Api::<ResourceQuota>::namespaced(ctx.clients.writer.clone(), &ns);
        let mut updated = quota.clone();
        updated.status = Some(status);
        match api
            .replace_status(&name, &Default::default(), &updated)
            .await
        {
            Ok(_) => {}
            // Changed since it was read (a charge, most likely): count again.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(100)))
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e),
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// Whether `status` has a lower `used` than the quota's for some resource.
fn lowers(quota: &ResourceQuota, status: &ResourceQuotaStatus) -> bool {
    let old = quota.status.as_ref().and_then(|s| s.used.as_ref());
    let milli = |q: &K8sQuantity| Quantity::parse(&q.0).map(|q| q.milli_value()).ok();
    status.used.iter().flatten().any(|(name, new)| {
        old.and_then(|o| o.get(name))
            .and_then(milli)
            .zip(milli(new))
            .is_some_and(|(was, now)| now < was)
    })
}

/// The quota `name` as stored now (read live) and the status it should have: its spec's `hard`, and
/// what the namespace uses, counted with consistent lists after reading the quota.
async fn measure(
    ctx: &Ctx,
    ns: &str,
    name: &str,
) -> Result<Option<(ResourceQuota, ResourceQuotaStatus)>, kube::Error> {
    let qapi = Api::<ResourceQuota>::namespaced(ctx.clients.reader.clone(), ns);
    // A list, not a get: upstream's role for this controller lists and watches, it does not get.
    let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
    let Some(quota) = qapi.list(&by_name).await?.items.into_iter().next() else {
        return Ok(None);
    };
    let spec = quota.spec.clone().unwrap_or_default();
    let hard = spec.hard.clone().unwrap_or_default();
    let reader = ctx.clients.reader.clone();
    let pods = tokio::sync::OnceCell::new();
    let pods = || async {
        pods.get_or_try_init(|| async {
            Ok::<_, kube::Error>(
                live::<Pod>(&reader, ns)
                    .await?
                    .into_iter()
                    .filter(|p| pod_counts(p) && pod_in_scope(p, &spec))
                    .collect::<Vec<_>>(),
            )
        })
        .await
    };
    let services = tokio::sync::OnceCell::new();
    let services = || async {
        services
            .get_or_try_init(|| live::<Service>(&reader, ns))
            .await
    };
    let claims = tokio::sync::OnceCell::new();
    let claims = || async {
        claims
            .get_or_try_init(|| live::<PersistentVolumeClaim>(&reader, ns))
            .await
    };
    let mut used = BTreeMap::new();
    for (name, limit) in &hard {
        // Sums print in the format the limit was written in (cpu decimal, memory usually binary).
        let format = Quantity::parse(&limit.0)
            .map(|q| q.format())
            .unwrap_or(Format::DecimalSI);
        let (which, resource) = match name.split_once('.') {
            Some(("requests" | "limits", r)) => (name.split('.').next().unwrap_or(""), r),
            _ => ("requests", name.as_str()),
        };
        let value = match name.as_str() {
            "pods" | "count/pods" => Some(count(pods().await?.len())),
            "cpu"
            | "memory"
            | "ephemeral-storage"
            | "requests.cpu"
            | "requests.memory"
            | "requests.ephemeral-storage"
            | "limits.cpu"
            | "limits.memory"
            | "limits.ephemeral-storage" => Some(quantity(
                pods()
                    .await?
                    .iter()
                    .map(|p| pod_amount(p, which, resource))
                    .sum(),
                format,
            )),
            "services" | "count/services" => Some(count(services().await?.len())),
            "services.loadbalancers" => Some(count(
                services()
                    .await?
                    .iter()
                    .filter(|s| {
                        s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                    })
                    .count(),
            )),
            "services.nodeports" => Some(count(
                services()
                    .await?
                    .iter()
                    .filter_map(|s| s.spec.as_ref())
                    .filter(|s| matches!(s.type_.as_deref(), Some("NodePort" | "LoadBalancer")))
                    .flat_map(|s| s.ports.iter().flatten())
                    .filter(|p| p.node_port.is_some())
                    .count(),
            )),
            "persistentvolumeclaims" | "count/persistentvolumeclaims" => {
                Some(count(claims().await?.len()))
            }
            "requests.storage" => Some(quantity(
                claims()
                    .await?
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.resources.as_ref()?.requests.as_ref())
                    .filter_map(|r| r.get("storage"))
                    .filter_map(|q| Quantity::parse(&q.0).ok())
                    .map(|q| q.milli_value())
                    .sum(),
                format,
            )),
            "configmaps" | "count/configmaps" => {
                Some(count(live_names::<ConfigMap>(&reader, ns).await?))
            }
            "secrets" | "count/secrets" => Some(count(live_names::<Secret>(&reader, ns).await?)),
            "replicationcontrollers" | "count/replicationcontrollers" => Some(count(
                live_names::<ReplicationController>(&reader, ns).await?,
            )),
            "resourcequotas" | "count/resourcequotas" => {
                let api = Api::<ResourceQuota>::namespaced(ctx.clients.reader.clone(), ns);
                Some(count(
                    api.list_metadata(&ListParams::default()).await?.items.len(),
                ))
            }
            other => match other.strip_prefix("count/") {
                Some(resource) => generic_count(ctx, ns, resource).await?.map(count),
                None => None,
            },
        };
        if let Some(v) = value {
            used.insert(name.clone(), v);
        }
    }
    let status = ResourceQuotaStatus {
        hard: (!hard.is_empty()).then_some(hard),
        used: Some(used),
    };
    Ok(Some((quota, status)))
}

/// The objects of kind `K` in `ns`, from a consistent list.
async fn live<K>(client: &kube::Client, ns: &str) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items)
}

/// How many objects of kind `K` are in `ns` (a consistent metadata list).
async fn live_names<K>(client: &kube::Client, ns: &str) -> Result<usize, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list_metadata(&ListParams::default())
        .await?
        .items
        .len())
}

/// Counts `<plural>.<group>` (or a core `<plural>`) objects in `ns`; None when the cluster does not
/// serve that resource.
async fn generic_count(ctx: &Ctx, ns: &str, resource: &str) -> Result<Option<usize>, kube::Error> {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let discovery = Discovery::new(ctx.clients.reader.clone())
        .filter(&[group])
        .run()
        .await?;
    let found: Option<ApiResource> = discovery.groups().find_map(|g| {
        g.recommended_resources()
            .into_iter()
            .find(|(ar, _)| ar.plural == plural)
            .map(|(ar, _)| ar)
    });
    let Some(ar) = found else {
        return Ok(None);
    };
    let first = ctx
        .monitored
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(resource.to_string());
    if first {
        let api =
            Api::<PartialObjectMeta<DynamicObject>>::all_with(ctx.clients.reader.clone(), &ar);
        let tx = ctx.changed.clone();
        tokio::spawn(
            namespaces_of(kube::runtime::WatchStreamExt::touched_objects(
                kube::runtime::WatchStreamExt::default_backoff(watcher::watcher(
                    api,
                    watcher::Config::default(),
                )),
            ))
            .for_each(move |ns| {
                let _ = tx.send(ns);
                async {}
            }),
        );
    }
    let api = Api::<PartialObjectMeta<DynamicObject>>::namespaced_with(
        ctx.clients.reader.clone(),
        ns,
        &ar,
    );
    Ok(Some(api.list(&ListParams::default()).await?.items.len()))
}

fn retry_later(_q: Arc<ResourceQuota>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("resource quota controller: {error}");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_are_throttled_per_namespace() {
        let every = Duration::from_millis(200);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut wakes = throttled(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed(),
            every,
        );
        let start = tokio::time::Instant::now();
        for ns in ["a", "a", "b", "a", "a"] {
            tx.send(ns.to_string()).unwrap();
        }
        // The first change of each namespace wakes it at once, a's three later changes make one
        // more wake when its window is up.
        assert_eq!(wakes.next().await.as_deref(), Some("a"));
        assert_eq!(wakes.next().await.as_deref(), Some("b"));
        assert_eq!(wakes.next().await.as_deref(), Some("a"));
        assert!(start.elapsed() >= every);
        // b's window is over: its next change wakes it at once (before a's folded one would).
        tx.send("b".to_string()).unwrap();
        tx.send("a".to_string()).unwrap();
        assert_eq!(wakes.next().await.as_deref(), Some("b"));
        assert_eq!(wakes.next().await.as_deref(), Some("a"));
        drop(tx);
        assert_eq!(wakes.next().await, None);
    }

    #[test]
    fn sums_print_as_upstream() {
        assert_eq!(quantity(1500, Format::DecimalSI).0, "1500m");
        assert_eq!(quantity(2000, Format::DecimalSI).0, "2");
        assert_eq!(
            quantity(128 * 1024 * 1024 * 1000, Format::BinarySI).0,
            "128Mi"
        );
        assert_eq!(quantity(0, Format::BinarySI).0, "0");
    }
}
