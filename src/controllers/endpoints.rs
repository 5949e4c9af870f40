//! Upstream's Endpoints controller (pkg/controller/endpoint): the core/v1 Endpoints object of every
//! Service with a selector, named as the Service, listing the selected pods' addresses (ready ones in
//! `addresses`, others in `notReadyAddresses`) per resolved port set.
//!
//! Start at [`reconcile`]: [`subsets`] builds what upstream's addEndpointSubset + RepackSubsets build,
//! [`truncate`] caps the object at 1000 addresses (with `endpoints.kubernetes.io/over-capacity:
//! truncated`), and the object is created or updated only when its subsets, labels or capacity
//! annotation differ. Endpoints carry no owner reference (upstream), so [`follow_deletions`] deletes a
//! Service's Endpoints when the Service goes, and at start those left over from deleted Services.
//! Which pods count and how ports resolve is shared with the EndpointSlice controller
//! (super::endpointslice). It writes as `system:serviceaccount:kube-system:endpoint-controller`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;

use super::common::{self, Recorder};
use super::endpointslice::{
    find_port, format_trigger_time, is_headless, is_pod_ready, pod_ref, selected_pods,
    selecting_services, service_selector, should_pod_be_in_endpoints, should_set_hostname,
    TriggerTimes, LABEL_HEADLESS, LAST_CHANGE_TRIGGER_TIME,
};
use super::Clients;

/// Upstream's maxCapacity: addresses an Endpoints object holds before it is truncated.
pub const MAX_CAPACITY: usize = 1000;
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
pub const LABEL_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpoint-controller";
/// Endpoints used as a leader-election lock are never Services' and must not be deleted.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

struct Ctx {
    clients: Clients,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    triggers: Arc<TriggerTimes>,
    recorder: Recorder,
}

pub async fn run(clients: Clients) {
    let services = Api::<Service>::all(clients.reader.clone());
    let (pods, pod_events) = clients.informers.watched::<Pod>();
    let (endpoints, endpoint_events) = clients.informers.watched::<Endpoints>();
    let controller = Controller::new(services.clone(), Default::default());
    let svc_store = controller.store();
    let triggers = Arc::new(TriggerTimes::default());
    let (deletions, deletions_writer) = reflector::store::<Service>();
    tokio::spawn(follow_deletions(
        services,
        deletions_writer,
        deletions.clone(),
        clients.writer.clone(),
        endpoints.clone(),
        triggers.clone(),
    ));
    let orphans = Orphans {
        services: svc_store.clone(),
        deletions,
        client: clients.writer.clone(),
    };
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), CONTROLLER_NAME),
        clients,
        pods,
        endpoints: endpoints.clone(),
        triggers,
    });
    controller
        .watches_stream(pod_events, move |pod: Pod| {
            services_for_pod(&svc_store, &endpoints, &pod)
        })
        // An Endpoints object changed by someone else is put back; one of ours whose Service is
        // gone is deleted (see [`delete_if_orphaned`]).
        .watches_stream(endpoint_events, move |ep: Endpoints| {
            let ns = ep.namespace().unwrap_or_default();
            let svc = ObjectRef::<Service>::new(&ep.name_any()).within(&ns);
            if is_ours(&ep) && orphans.may_be_orphaned(&svc) {
                tokio::spawn(delete_if_orphaned(orphans.clone(), ep));
            }
            Some(svc)
        })
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("endpoint controller: {e}");
            }
        })
        .await;
}

/// What [`delete_if_orphaned`] needs.
#[derive(Clone)]
struct Orphans {
    services: Store<Service>,
    /// [`follow_deletions`]' own cache: it forgets a Service before it deletes the Endpoints, so an
    /// Endpoints event that follows that deletion always sees the Service missing here, even while
    /// the controller's cache (a separate watch) still holds it.
    deletions: Store<Service>,
    /// The controller's own identity (`get` on services is in its role; the shared reader may
    /// only list and watch).
    client: kube::Client,
}

impl Orphans {
    fn may_be_orphaned(&self, svc: &ObjectRef<Service>) -> bool {
        self.services.get(svc).is_none() || self.deletions.get(svc).is_none()
    }
}

fn is_ours(ep: &Endpoints) -> bool {
    ep.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
}

/// Closes the race between a sync and the Service's deletion: a sync that read the Service just
/// before it went may (re)create its Endpoints after [`follow_deletions`] deleted them. Upstream
/// serializes both through one work queue; here every event of one of our Endpoints whose Service is
/// missing from either cache ([`Orphans::may_be_orphaned`]) is checked against the apiserver (a cache
/// may merely lag a new Service), and
/// the Endpoints are deleted, guarded by their UID, only if the Service is really gone.
async fn delete_if_orphaned(o: Orphans, ep: Endpoints) {
    let ns = ep.namespace().unwrap_or_default();
    let name = ep.name_any();
    match Api::<Service>::namespaced(o.client.clone(), &ns)
        .get_opt(&name)
        .await
    {
        Ok(None) => {}
        Ok(Some(_)) => return,
        Err(e) => {
            tracing::debug!("endpoint controller: checking service {ns}/{name}: {e}");
            return;
        }
    }
    let params = DeleteParams {
        preconditions: ep.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match Api::<Endpoints>::namespaced(o.client, &ns)
        .delete(&name, &params)
        .await
    {
        Ok(_) => {}
        // Gone already, or replaced by a new Service's (another UID).
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!("endpoint controller: deleting {ns}/{name}: {e}"),
    }
}

/// The Services a pod's change concerns: those selecting it now and those whose Endpoints list it.
fn services_for_pod(
    services: &Store<Service>,
    endpoints: &Store<Endpoints>,
    pod: &Pod,
) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let mut out = selecting_services(services, pod);
    for ep in endpoints.state() {
        if ep.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let lists = ep.subsets.iter().flatten().any(|s| {
            s.addresses
                .iter()
                .flatten()
                .chain(s.not_ready_addresses.iter().flatten())
                .any(|a| {
                    a.target_ref
                        .as_ref()
                        .is_some_and(|r| r.name.as_deref() == Some(name.as_str()))
                })
        });
        let r = ObjectRef::new(&ep.name_any()).within(&ns);
        if lists && !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// Deletes a Service's Endpoints when the Service is deleted (kube-runtime does not reconcile
/// deleted objects, and Endpoints have no owner reference for the collector). After the first
/// (re)list, Endpoints whose Service is gone are deleted as upstream's checkLeftoverEndpoints does.
async fn follow_deletions(
    services: Api<Service>,
    w: reflector::store::Writer<Service>,
    store: Store<Service>,
    client: kube::Client,
    endpoints: Store<Endpoints>,
    triggers: Arc<TriggerTimes>,
) {
    let mut events = reflector::reflector(w, watcher(services, watcher::Config::default()))
        .default_backoff()
        .boxed();
    let mut first = true;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Delete(svc)) => {
                let ns = svc.namespace().unwrap_or_default();
                if ns == "default" && svc.name_any() == "kubernetes" {
                    continue;
                }
                triggers.forget(&common::key_of(&svc));
                delete_endpoints(&client, &ns, &svc.name_any()).await;
            }
            Ok(watcher::Event::InitDone) => {
                common::ready(&endpoints).await;
                for ep in endpoints.state() {
                    let ns = ep.namespace().unwrap_or_default();
                    let name = ep.name_any();
                    let has_service = store.get(&ObjectRef::new(&name).within(&ns)).is_some();
                    let leader = ep.annotations().contains_key(LEADER_ANNOTATION);
                    // At start every orphan goes (upstream); on a later re-list only ours, since
                    // someone may have created Endpoints ahead of their Service meanwhile.
                    if !has_service && !leader && (first || is_ours(&ep)) {
                        delete_endpoints(&client, &ns, &name).await;
                    }
                }
                first = false;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("endpoint controller: service watch: {e}"),
        }
    }
}

async fn delete_endpoints(client: &kube::Client, ns: &str, name: &str) {
    let api = Api::<Endpoints>::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!("endpoint controller: deleting {ns}/{name}: {e}"),
    }
}

/// Upstream's podToEndpointAddressForService: the pod's address of the Service's (first) family.
fn pod_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = svc.spec.as_ref();
    let ipv6 = match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(f) => f == "IPv6",
        None => match spec.and_then(|s| s.cluster_ip.as_deref()) {
            Some(ip) if !ip.is_empty() && ip != "None" => ip.contains(':'),
            _ => pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some_and(|ip| ip.contains(':')),
        },
    };
    let ip = super::endpointslice::pod_addresses(pod, ipv6)
        .into_iter()
        .next()?;
    Some(EndpointAddress {
        ip,
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
        node_name: Some(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
        ),
        target_ref: Some(pod_ref(pod)),
    })
}

/// The subsets of a Service's Endpoints (upstream's syncService loop, addEndpointSubset and
/// RepackSubsets): each address joins the ports it resolves, and addresses offering the same ports
/// share a subset. Sorted for a stable object (addresses by IP, ports by name and number).
pub fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.as_ref();
    let publish_not_ready = spec
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let service_ports = spec.and_then(|s| s.ports.clone()).unwrap_or_default();
    // Per address (IP and pod uid): the address, whether it is ready, and its ports.
    let mut addresses: Vec<(EndpointAddress, bool, Vec<EndpointPort>)> = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(address) = pod_address(svc, pod) else {
            continue;
        };
        let ready = publish_not_ready || is_pod_ready(pod);
        let ports: Vec<EndpointPort> = service_ports
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port: find_port(pod, sp)?,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        if service_ports.is_empty() {
            // A headless Service may have no ports; then the address stands alone.
            if !is_headless(svc) {
                continue;
            }
        } else if ports.is_empty() {
            continue;
        }
        addresses.push((address, ready, ports));
    }
    // Repack: group addresses by the exact set of ports they offer.
    type Offered = (Vec<EndpointPort>, Vec<(EndpointAddress, bool)>);
    let mut by_ports: BTreeMap<String, Offered> = BTreeMap::new();
    for (address, ready, mut ports) in addresses {
        ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
        ports.dedup();
        let key = serde_json::to_string(&ports).unwrap_or_default();
        by_ports
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push((address, ready));
    }
    let mut out: Vec<EndpointSubset> = by_ports
        .into_values()
        .map(|(ports, mut addrs)| {
            addrs.sort_by(|(a, _), (b, _)| {
                let uid = |x: &EndpointAddress| x.target_ref.as_ref().and_then(|r| r.uid.clone());
                (&a.ip, uid(a)).cmp(&(&b.ip, uid(b)))
            });
            addrs.dedup_by(|(a, _), (b, _)| a.ip == b.ip && a.target_ref == b.target_ref);
            let (ready, not_ready): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|(_, r)| *r);
            let some = |v: Vec<(EndpointAddress, bool)>| {
                (!v.is_empty()).then(|| v.into_iter().map(|(a, _)| a).collect())
            };
            EndpointSubset {
                addresses: some(ready),
                not_ready_addresses: some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    out.sort_by_key(first_ip);
    out
}

fn first_ip(s: &EndpointSubset) -> Option<String> {
    s.addresses
        .iter()
        .flatten()
        .chain(s.not_ready_addresses.iter().flatten())
        .map(|a| a.ip.clone())
        .next()
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Upstream's truncateEndpoints: over [`MAX_CAPACITY`] addresses, not-ready ones are cut first
/// (or, with more ready addresses than fit, ready ones and every not-ready one), each subset keeping
/// its share rounded up. Returns whether anything was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (ready, not_ready) = count(subsets);
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut room = max;
    for s in subsets.iter_mut() {
        let list = if truncate_ready {
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let n = list.as_ref().map_or(0, Vec::len);
        let share = (n * max).div_ceil(total.max(1)).min(room);
        if let Some(l) = list.as_mut() {
            l.truncate(share);
        }
        room -= list.as_ref().map_or(0, Vec::len);
        if truncate_ready {
            s.not_ready_addresses = None;
        }
    }
    true
}

/// Empty lists and absent ones are the same on the wire.
fn normalized(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    subsets
        .iter()
        .map(|s| EndpointSubset {
            addresses: s.addresses.clone().filter(|v| !v.is_empty()),
            not_ready_addresses: s.not_ready_addresses.clone().filter(|v| !v.is_empty()),
            ports: s.ports.clone().filter(|v| !v.is_empty()),
        })
        .collect()
}

/// The labels upstream writes on a Service's Endpoints: the Service's, the headless marker, and the
/// controller's managed-by label.
pub fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if is_headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    // The apiserver keeps the `kubernetes` Service's Endpoints.
    if (ns == "default" && name == "kubernetes")
        || service_selector(&svc).is_none()
        || svc.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    tokio::join!(common::ready(&ctx.pods), common::ready(&ctx.endpoints));
    let pods = selected_pods(&svc, &ctx.pods);
    let trigger = ctx.triggers.compute(&svc, &pods);
    let mut subsets = subsets(&svc, &pods);
    let truncated = truncate(&mut subsets);
    let labels = endpoints_labels(&svc);
    let current = ctx.endpoints.get(&ObjectRef::new(&name).within(&ns));
    if let Some(cur) = &current {
        let (r, n) = count(cur.subsets.as_deref().unwrap_or(&[]));
        let over = cur.annotations().contains_key(OVER_CAPACITY);
        let capacity_ok = if r + n > MAX_CAPACITY {
            false
        } else {
            (over && r + n == MAX_CAPACITY) || (!over && r + n < MAX_CAPACITY)
        };
        if normalized(cur.subsets.as_deref().unwrap_or(&[])) == normalized(&subsets)
            && cur.labels() == &labels
            && capacity_ok
        {
            return Ok(Action::await_change());
        }
    }
    let mut new = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        subsets: None,
    });
    let create = current.is_none();
    new.subsets = (!subsets.is_empty()).then_some(subsets);
    new.metadata.labels = Some(labels);
    let mut annotations = new.metadata.annotations.take().unwrap_or_default();
    match trigger {
        Some(t) => annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_trigger_time(t)),
        None => annotations.remove(LAST_CHANGE_TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    new.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    let api = Api::<Endpoints>::namespaced(ctx.clients.writer.clone(), &ns);
    let result = if create {
        api.create(&PostParams::default(), &new).await
    } else {
        api.replace(&name, &PostParams::default(), &new).await
    };
    match result {
        Ok(_) => Ok(Action::await_change()),
        // A stale cache; the watch event that updates it triggers another sync.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Action::requeue(Duration::from_secs(1))),
        // A terminating namespace refuses creations: nothing to do.
        Err(kube::Error::Api(e)) if create && e.code == 403 => {
            tracing::debug!(
                "endpoint controller: forbidden creating {ns}/{name}: {}",
                e.message
            );
            Ok(Action::await_change())
        }
        Err(e) => {
            let (reason, note) = if create {
                (
                    "FailedToCreateEndpoint",
                    format!("Failed to create endpoint for service {ns}/{name}: {e}"),
                )
            } else {
                (
                    "FailedToUpdateEndpoint",
                    format!("Failed to update endpoint {ns}/{name}: {e}"),
                )
            };
            common::record(
                &ctx.recorder,
                &new,
                EventType::Warning,
                reason,
                "Update",
                note,
            )
            .await;
            Err(e)
        }
    }
}

fn retry_later(_svc: Arc<Service>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("endpoint controller: {error}");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn pod(name: &str, ip: &str, ready: bool, http_port: i32) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: http_port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                pod_ips: Some(vec![PodIP { ip: ip.into() }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn service() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".into(), "web".into())])),
                cluster_ip: Some("10.96.0.10".into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn ips(v: &Option<Vec<EndpointAddress>>) -> Vec<String> {
        v.iter().flatten().map(|a| a.ip.clone()).collect()
    }

    #[test]
    fn ready_and_not_ready_addresses_share_a_subset_per_port_set() {
        let pods = vec![
            pod("b", "10.0.0.2", true, 8080),
            pod("a", "10.0.0.1", false, 8080),
            pod("c", "10.0.0.3", true, 9090),
        ];
        let subsets = subsets(&service(), &pods);
        assert_eq!(subsets.len(), 2);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.0.0.1"]);
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(ips(&subsets[1].addresses), vec!["10.0.0.3"]);
        assert_eq!(subsets[1].ports.as_ref().unwrap()[0].port, 9090);
    }

    #[test]
    fn terminating_pods_leave_unless_not_ready_addresses_are_published() {
        let mut p = (*pod("a", "10.0.0.1", true, 8080)).clone();
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        let pods = vec![Arc::new(p)];
        assert!(subsets(&service(), &pods).is_empty());
        let mut publish = service();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        assert_eq!(
            ips(&subsets(&publish, &pods)[0].addresses),
            vec!["10.0.0.1"]
        );
    }

    #[test]
    fn over_capacity_truncates_not_ready_first() {
        let addr = |i: usize| EndpointAddress {
            ip: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            ..Default::default()
        };
        let mut s = vec![EndpointSubset {
            addresses: Some((0..900).map(addr).collect()),
            not_ready_addresses: Some((900..1100).map(addr).collect()),
            ports: None,
        }];
        assert!(truncate(&mut s));
        assert_eq!(count(&s), (900, 100));
        // More ready than fit: ready ones share the capacity, not-ready ones all go.
        let mut s = vec![
            EndpointSubset {
                addresses: Some((0..800).map(addr).collect()),
                not_ready_addresses: Some((800..810).map(addr).collect()),
                ports: None,
            },
            EndpointSubset {
                addresses: Some((1000..1400).map(addr).collect()),
                not_ready_addresses: None,
                ports: None,
            },
        ];
        assert!(truncate(&mut s));
        assert_eq!(count(&s), (1000, 0));
        // 800/1200 of 1000 rounded up is 667; the rest (333) for the second.
        assert_eq!(s[0].addresses.as_ref().unwrap().len(), 667);
        let mut small = vec![EndpointSubset {
            addresses: Some((0..10).map(addr).collect()),
            ..Default::default()
        }];
        assert!(!truncate(&mut small));
    }

    #[test]
    fn labels_are_the_services_plus_managed_by() {
        let labels = endpoints_labels(&service());
        assert_eq!(
            labels,
            BTreeMap::from([
                ("app".to_string(), "web".to_string()),
                (LABEL_MANAGED_BY.to_string(), CONTROLLER_NAME.to_string()),
            ])
        );
    }
}
