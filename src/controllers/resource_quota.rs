//! Upstream's resource quota controller (pkg/controller/resourcequota): writes each ResourceQuota's
//! `status.hard` (its spec) and `status.used` (what its namespace uses of each named resource, for the
//! objects its scopes select), so `kubectl describe quota` shows usage. Enforcement at create time is
//! admission's (the apiserver), not this controller's.
//!
//! Start at [`reconcile`]. Usage is computed from watched caches of the kinds upstream's evaluators
//! know (pods, services, persistentvolumeclaims, configmaps, secrets, replicationcontrollers,
//! resourcequotas); a change of any of them wakes the quotas of its namespace (upstream's replenishment),
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
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::ResourceExt;

use super::common;
use super::Clients;
use crate::apiserver::wire::quantity::{Format, Quantity};

/// Upstream's --resource-quota-sync-period.
const RESYNC: Duration = Duration::from_secs(300);

struct Caches {
    pods: Store<Pod>,
    services: Store<Service>,
    claims: Store<PersistentVolumeClaim>,
    configmaps: Store<ConfigMap>,
    secrets: Store<Secret>,
    controllers: Store<ReplicationController>,
}

struct Ctx {
    clients: Clients,
    caches: Caches,
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
    let (pods, pod_changes) = common::watched(Api::<Pod>::all(reader.clone()));
    let (services, service_changes) = common::watched(Api::<Service>::all(reader.clone()));
    let (claims, claim_changes) =
        common::watched(Api::<PersistentVolumeClaim>::all(reader.clone()));
    let (configmaps, cm_changes) = common::watched(Api::<ConfigMap>::all(reader.clone()));
    let (secrets, secret_changes) = common::watched(Api::<Secret>::all(reader.clone()));
    let (controllers, rc_changes) =
        common::watched(Api::<ReplicationController>::all(reader.clone()));
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
    let wake = changes.flat_map(move |ns| {
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
        caches: Caches {
            pods,
            services,
            claims,
            configmaps,
            secrets,
            controllers,
        },
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

/// The namespace of each changed object (the stream must be polled for its cache to fill).
fn namespaces_of<K: kube::Resource + Send + 'static>(
    changes: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> futures::stream::BoxStream<'static, String> {
    changes
        .filter_map(|r| async move { r.ok().and_then(|o| o.meta().namespace.clone()) })
        .boxed()
}

/// Whether a pod counts: upstream's quota ignores pods that are finished.
fn counts(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Upstream's quota scopes for pods: Terminating (activeDeadlineSeconds set), BestEffort (no requests
/// or limits anywhere), and their negations. Scopes a pod evaluator does not know select nothing.
fn in_scopes(pod: &Pod, scopes: &[String]) -> bool {
    let spec = pod.spec.as_ref();
    let terminating = spec.and_then(|s| s.active_deadline_seconds).is_some();
    let best_effort = spec.is_none_or(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .all(|c| {
                c.resources.as_ref().is_none_or(|r| {
                    r.requests.as_ref().is_none_or(|m| m.is_empty())
                        && r.limits.as_ref().is_none_or(|m| m.is_empty())
                })
            })
    });
    scopes.iter().all(|s| match s.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        _ => false,
    })
}

/// A pod's total of `resource` in `which` ("requests" or "limits"): its containers' sum, at least the
/// largest init container, plus the overhead (upstream's resourcehelper), in milli-units.
fn pod_amount(pod: &Pod, which: &str, resource: &str) -> i128 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| -> i128 {
        let r = c.resources.as_ref();
        let list = if which == "limits" {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        };
        list.and_then(|l| l.get(resource))
            .and_then(|q| Quantity::parse(&q.0).ok())
            .map_or(0, |q| q.milli_value())
    };
    let sum: i128 = spec.containers.iter().map(of).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(resource))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .map_or(0, |q| q.milli_value());
    sum.max(init) + overhead
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
    let spec = quota.spec.clone().unwrap_or_default();
    let hard = spec.hard.clone().unwrap_or_default();
    let scopes = spec.scopes.clone().unwrap_or_default();
    let c = &ctx.caches;
    let in_ns = |o: &Option<String>| o.as_deref() == Some(ns.as_str());
    let pods: Vec<Arc<Pod>> = c
        .pods
        .state()
        .into_iter()
        .filter(|p| in_ns(&p.metadata.namespace) && counts(p) && in_scopes(p, &scopes))
        .collect();
    let services: Vec<Arc<Service>> = c
        .services
        .state()
        .into_iter()
        .filter(|s| in_ns(&s.metadata.namespace))
        .collect();
    let claims: Vec<Arc<PersistentVolumeClaim>> = c
        .claims
        .state()
        .into_iter()
        .filter(|p| in_ns(&p.metadata.namespace))
        .collect();
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
            "pods" | "count/pods" => Some(count(pods.len())),
            "cpu"
            | "memory"
            | "ephemeral-storage"
            | "requests.cpu"
            | "requests.memory"
            | "requests.ephemeral-storage"
            | "limits.cpu"
            | "limits.memory"
            | "limits.ephemeral-storage" => Some(quantity(
                pods.iter().map(|p| pod_amount(p, which, resource)).sum(),
                format,
            )),
            "services" | "count/services" => Some(count(services.len())),
            "services.loadbalancers" => Some(count(
                services
                    .iter()
                    .filter(|s| {
                        s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                    })
                    .count(),
            )),
            "services.nodeports" => Some(count(
                services
                    .iter()
                    .filter_map(|s| s.spec.as_ref())
                    .filter(|s| matches!(s.type_.as_deref(), Some("NodePort" | "LoadBalancer")))
                    .flat_map(|s| s.ports.iter().flatten())
                    .filter(|p| p.node_port.is_some())
                    .count(),
            )),
            "persistentvolumeclaims" | "count/persistentvolumeclaims" => Some(count(claims.len())),
            "requests.storage" => Some(quantity(
                claims
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.resources.as_ref()?.requests.as_ref())
                    .filter_map(|r| r.get("storage"))
                    .filter_map(|q| Quantity::parse(&q.0).ok())
                    .map(|q| q.milli_value())
                    .sum(),
                format,
            )),
            "configmaps" | "count/configmaps" => Some(count(
                c.configmaps
                    .state()
                    .iter()
                    .filter(|o| in_ns(&o.metadata.namespace))
                    .count(),
            )),
            "secrets" | "count/secrets" => Some(count(
                c.secrets
                    .state()
                    .iter()
                    .filter(|o| in_ns(&o.metadata.namespace))
                    .count(),
            )),
            "replicationcontrollers" | "count/replicationcontrollers" => Some(count(
                c.controllers
                    .state()
                    .iter()
                    .filter(|o| in_ns(&o.metadata.namespace))
                    .count(),
            )),
            "resourcequotas" | "count/resourcequotas" => {
                let api = Api::<ResourceQuota>::namespaced(ctx.clients.reader.clone(), &ns);
                Some(count(
                    api.list_metadata(&ListParams::default()).await?.items.len(),
                ))
            }
            other => match other.strip_prefix("count/") {
                Some(resource) => generic_count(&ctx, &ns, resource).await?.map(count),
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
    if quota.status.as_ref() != Some(&status) {
        let api = Api::<ResourceQuota>::namespaced(ctx.clients.writer.clone(), &ns);
        common::write_status(&api, quota.as_ref(), status, |q, s| q.status = Some(s)).await?;
    }
    Ok(Action::requeue(RESYNC))
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
