//! Upstream's EndpointSlice controller (pkg/controller/endpointslice and the staging endpointslice
//! reconciler): for every Service with a selector, EndpointSlices listing the ready, serving and
//! terminating pods it selects, with the Service's ports resolved against each pod's containers.
//!
//! Start at [`reconcile`]: it turns the selected pods into endpoints grouped by their resolved ports
//! ([`desired_endpoints`]), then [`plan`] decides which existing slices to keep, update, reuse or
//! delete and what to create (at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints each, a placeholder when
//! there are none), and the writes follow. The pieces shared with the Endpoints controller (which pods
//! count, [`find_port`], [`TriggerTimes`]) live here too.
//!
//! Triggers are watch events only: Services (the primary), Pods (mapped to the Services selecting
//! them, or listing them in a slice), the controller's own EndpointSlices (so a slice edited or deleted
//! by hand is repaired) and Nodes (only when a node's zone label changes). It writes as
//! `system:serviceaccount:kube-system:endpointslice-controller`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

use super::common::{self, Recorder};
use super::Clients;

/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

// ---------------------------------------------------------------------------------------------
// Pure pieces shared with the Endpoints controller.

/// The Service's selector, when it has one this controller acts on. Upstream leaves Services without
/// a selector (their endpoints are written by hand) and ExternalName Services alone; an empty map
/// does not survive the apiserver's round trip, so it counts as none.
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether the selector (a plain label map, as Services have) selects these labels.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pods of the Service's namespace its selector matches.
pub fn selected_pods(svc: &Service, pods: &Store<Pod>) -> Vec<Arc<Pod>> {
    let Some(selector) = service_selector(svc) else {
        return vec![];
    };
    let ns = svc.namespace().unwrap_or_default();
    let mut out: Vec<Arc<Pod>> = pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && selects(selector, p.labels()))
        .collect();
    // A stable order keeps new slices and Endpoints subsets from reshuffling between syncs.
    out.sort_by_key(|p| p.name_any());
    out
}

/// Upstream's podutil.IsPodReady: the Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Upstream's ShouldPodBeInEndpoints: not finished, has an IP, and (unless `include_terminating`)
/// not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    if matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Upstream's ShouldSetHostname: the pod names a hostname and its subdomain is this Service.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace()
}

/// The protocol of a port, defaulted as the apiserver does.
fn protocol(p: Option<&String>) -> &str {
    p.map_or("TCP", |s| s.as_str())
}

/// Upstream's podutil.FindPort: the container port a Service port's targetPort means in this pod. A
/// number is taken as is; a name is looked up among the containers' (and restartable init
/// containers', i.e. sidecars') ports of the same protocol. `None` when the name matches nothing.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            // A numeric string is a number (intstr.Parse on a defaulted Service does this).
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| {
                    cp.name.as_deref() == Some(name.as_str())
                        && protocol(cp.protocol.as_ref()) == protocol(port.protocol.as_ref())
                })
                .map(|cp| cp.container_port)
        }
    }
}

/// Whether a Service has a cluster IP (upstream's IsServiceIPSet): headless ones get the
/// `service.kubernetes.io/headless` label on their slices and Endpoints.
pub fn is_headless(svc: &Service) -> bool {
    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    ip.is_none_or(|ip| ip.is_empty() || ip == "None")
}

/// The pod's addresses of one family (upstream's getEndpointAddresses).
pub fn pod_addresses(pod: &Pod, ipv6: bool) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return vec![];
    };
    let mut ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.clone());
    }
    ips.into_iter()
        .filter(|ip| !ip.is_empty() && ip.contains(':') == ipv6)
        .collect()
}

/// The target reference an endpoint carries to its pod.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..Default::default()
    }
}

/// Per Service: the pods' Ready transition times and the Service's creation time last synced.
type SeenTimes = (HashMap<String, Timestamp>, Option<Timestamp>);

/// Upstream's TriggerTimeTracker: the `endpoints.kubernetes.io/last-change-trigger-time` of a sync
/// is the earliest of the changes (a pod's Ready transition, the Service's creation) that happened
/// since the previous sync of that Service; none for a Service seen for the first time.
#[derive(Default)]
pub struct TriggerTimes {
    states: Mutex<HashMap<String, SeenTimes>>,
}

impl TriggerTimes {
    pub fn compute(&self, svc: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let key = common::key_of(svc);
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let known = states.contains_key(&key);
        let (last_pods, last_svc) = states.entry(key).or_default();
        let mut min: Option<Timestamp> = None;
        let mut now_pods = HashMap::new();
        for pod in pods {
            let Some(t) = pod_trigger_time(pod) else {
                continue;
            };
            if last_pods.get(&pod.name_any()).is_none_or(|last| t > *last) {
                min = Some(min.map_or(t, |m| m.min(t)));
            }
            now_pods.insert(pod.name_any(), t);
        }
        let svc_time = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = svc_time {
            if last_svc.is_none_or(|last| t > last) {
                min = Some(min.map_or(t, |m| m.min(t)));
            }
        }
        *last_pods = now_pods;
        *last_svc = svc_time;
        if known {
            min
        } else {
            None
        }
    }

    pub fn forget(&self, key: &str) {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// When the pod's Ready condition last changed (upstream's getPodTriggerTime).
fn pod_trigger_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// The annotation's value: RFC 3339 in UTC, fractional seconds only when there are some (Go's
/// RFC3339Nano).
pub fn format_trigger_time(t: Timestamp) -> String {
    t.to_string()
}

// ---------------------------------------------------------------------------------------------
// Endpoints of a slice.

/// Upstream's podToEndpoint: the pod's addresses of one family with its conditions. Ready never
/// holds for a terminating pod unless the Service publishes not-ready addresses; serving follows the
/// pod's readiness even while it terminates.
pub fn pod_to_endpoint(pod: &Pod, svc: &Service, node: Option<&Node>, ipv6: bool) -> Endpoint {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready || (serving && !terminating);
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node
        .and_then(|n| n.labels().get(LABEL_ZONE).cloned())
        .filter(|z| !z.is_empty());
    Endpoint {
        addresses: pod_addresses(pod, ipv6),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
        node_name,
        target_ref: Some(pod_ref(pod)),
        zone,
        ..Default::default()
    }
}

/// Upstream's getEndpointPorts: the Service's ports that resolve in this pod (a headless Service may
/// have none).
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            Some(EndpointPort {
                port: Some(find_port(pod, sp)?),
                name: Some(sp.name.clone().unwrap_or_default()),
                protocol: Some(protocol(sp.protocol.as_ref()).to_string()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// A key for a set of ports (upstream's PortMapKey): order does not matter.
pub fn ports_key(ports: &[EndpointPort]) -> String {
    let mut parts: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or(""),
                p.protocol.as_deref().unwrap_or("TCP"),
                p.port.unwrap_or(0),
                p.app_protocol.as_deref().unwrap_or("")
            )
        })
        .collect();
    parts.sort();
    parts.join(",")
}

/// Which pod an endpoint stands for (its target's uid, else its addresses).
fn endpoint_id(e: &Endpoint) -> String {
    e.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .unwrap_or_else(|| e.addresses.join(","))
}

/// The endpoints a Service wants for one address family, grouped by their resolved ports (pods
/// whose named ports resolve differently land in different slices, as upstream).
#[derive(Default, Debug, Clone)]
pub struct Group {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

// ---------------------------------------------------------------------------------------------
// The plan: which slices to create, update and delete.

/// What to write for one Service and address type. Slices in `update` carry their new content;
/// created ones have no name yet (generateName).
#[derive(Default, Debug)]
pub struct Plan {
    pub create: Vec<Group>,
    pub update: Vec<(EndpointSlice, Group)>,
    pub delete: Vec<EndpointSlice>,
}

fn is_placeholder(s: &EndpointSlice) -> bool {
    s.endpoints.is_empty() && s.ports.as_ref().is_none_or(|p| p.is_empty())
}

/// Upstream's reconcileByAddressType, simplified but with the same outcomes: existing slices keep
/// the endpoints they already hold (updated in place when those changed), new endpoints fill slices
/// with room before new ones are created, emptied slices go, and a slice due for deletion is reused
/// instead of creating one (upstream's finalize). A Service with no endpoints keeps one empty
/// placeholder slice.
pub fn plan(existing: &[EndpointSlice], desired: Vec<Group>, max: usize) -> Plan {
    let max = max.max(1);
    // Desired endpoints by ports key, in order, still to place.
    let mut groups: Vec<(String, Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for g in desired {
        let key = ports_key(&g.ports);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, eps)) => eps.extend(g.endpoints),
            None => groups.push((key, g.ports, g.endpoints)),
        }
    }
    let total: usize = groups.iter().map(|(_, _, e)| e.len()).sum();

    // Each existing slice: (slice, ports key, the endpoints it keeps, changed?).
    let mut kept: Vec<(EndpointSlice, String, Vec<Endpoint>, bool)> = Vec::new();
    let mut stale: Vec<EndpointSlice> = Vec::new();
    for slice in existing {
        let key = ports_key(slice.ports.as_deref().unwrap_or(&[]));
        let Some((_, _, remaining)) = groups.iter_mut().find(|(k, _, _)| *k == key) else {
            stale.push(slice.clone());
            continue;
        };
        let mut eps = Vec::new();
        let mut changed = false;
        for e in &slice.endpoints {
            let id = endpoint_id(e);
            match remaining.iter().position(|d| endpoint_id(d) == id) {
                Some(i) => {
                    let d = remaining.remove(i);
                    changed |= d != *e;
                    eps.push(d);
                }
                None => changed = true,
            }
        }
        if eps.is_empty() {
            stale.push(slice.clone());
        } else {
            kept.push((slice.clone(), key, eps, changed));
        }
    }

    // Fill slices being updated anyway first (no extra write), then the others, then new slices.
    let mut new_groups: Vec<Group> = Vec::new();
    for (key, ports, remaining) in &mut groups {
        kept.sort_by_key(|(_, _, _, changed)| !*changed);
        for (_, k, eps, changed) in kept.iter_mut() {
            if k != key || remaining.is_empty() || eps.len() >= max {
                continue;
            }
            let n = (max - eps.len()).min(remaining.len());
            eps.extend(remaining.drain(..n));
            *changed = true;
        }
        for chunk in remaining.chunks(max) {
            new_groups.push(Group {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    if total == 0 && kept.is_empty() {
        // The placeholder: keep one that already is, else make one.
        if let Some(i) = stale.iter().position(is_placeholder) {
            stale.remove(i);
        } else {
            new_groups.push(Group::default());
        }
    }

    let mut out = Plan::default();
    for (slice, _, eps, changed) in kept {
        if changed {
            let ports = slice.ports.clone().unwrap_or_default();
            out.update.push((
                slice,
                Group {
                    ports,
                    endpoints: eps,
                },
            ));
        } else {
            // Unchanged content; labels and the like are checked by the caller.
            out.update.push((
                slice.clone(),
                Group {
                    ports: slice.ports.clone().unwrap_or_default(),
                    endpoints: slice.endpoints.clone(),
                },
            ));
        }
    }
    for g in new_groups {
        match stale.pop() {
            Some(s) => out.update.push((s, g)),
            None => out.create.push(g),
        }
    }
    out.delete = stale;
    out
}

// ---------------------------------------------------------------------------------------------
// The controller.

/// Slices this controller wrote that its cache has not shown yet (upstream's endpointSliceTracker),
/// by Service key: slice name → the resourceVersion written (None: deleted). While any is
/// outstanding a sync waits, so a slice just created is never created twice.
#[derive(Default)]
struct Written(Mutex<HashMap<String, HashMap<String, Option<String>>>>);

fn rv_at_least(seen: Option<&str>, want: &str) -> bool {
    match (
        seen.and_then(|s| s.parse::<u64>().ok()),
        want.parse::<u64>(),
    ) {
        (Some(s), Ok(w)) => s >= w,
        _ => seen == Some(want),
    }
}

impl Written {
    fn record(&self, key: &str, name: String, rv: Option<String>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_string()).or_default().insert(name, rv);
    }

    /// Whether the cache shows every write for `key` (seen ones are dropped).
    fn caught_up(&self, key: &str, cached: &[Arc<EndpointSlice>]) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pending) = map.get_mut(key) else {
            return true;
        };
        pending.retain(|name, rv| {
            let seen = cached.iter().find(|s| s.name_any() == *name);
            let done = match rv {
                Some(rv) => {
                    seen.is_some_and(|s| rv_at_least(s.metadata.resource_version.as_deref(), rv))
                }
                None => seen.is_none(),
            };
            !done
        });
        let empty = pending.is_empty();
        if empty {
            map.remove(key);
        }
        empty
    }
}

struct Ctx {
    clients: Clients,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    written: Written,
    triggers: TriggerTimes,
    recorder: Recorder,
}

pub async fn run(clients: Clients) {
    let services = Api::<Service>::all(clients.reader.clone());
    let (pods, pod_events) = clients.informers.watched::<Pod>();
    let (nodes, node_events) = clients.informers.watched::<Node>();
    let (slices, slice_events) = clients.informers.watched::<EndpointSlice>();
    let controller = Controller::new(services, Default::default());
    let svc_store = controller.store();
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), "endpoint-slice-controller"),
        clients,
        pods,
        nodes,
        slices: slices.clone(),
        written: Written::default(),
        triggers: TriggerTimes::default(),
    });
    let (svc_for_pods, svc_for_nodes) = (svc_store.clone(), svc_store);
    let slices_for_pods = slices;
    let zones: Mutex<HashMap<String, Option<String>>> = Mutex::default();
    controller
        .watches_stream(pod_events, move |pod: Pod| {
            services_for_pod(&svc_for_pods, &slices_for_pods, &pod)
        })
        .watches_stream(slice_events, |slice: EndpointSlice| {
            let ours =
                slice.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME);
            let svc = slice.labels().get(LABEL_SERVICE_NAME).cloned();
            let ns = slice.namespace().unwrap_or_default();
            svc.filter(|_| ours)
                .map(|name| ObjectRef::new(&name).within(&ns))
        })
        // A node matters to endpoints only through its zone: resync everything when one changes.
        .watches_stream(node_events, move |node: Node| {
            let zone = node.labels().get(LABEL_ZONE).cloned();
            let mut zones = zones.lock().unwrap_or_else(|e| e.into_inner());
            let before = zones.insert(node.name_any(), zone.clone());
            if before.is_some() && before != Some(zone) {
                svc_for_nodes
                    .state()
                    .iter()
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect()
            } else {
                vec![]
            }
        })
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("endpointslice controller: {e}");
            }
        })
        .await;
}

/// The Services of the pod's namespace whose selector matches it now (shared with the Endpoints
/// controller).
pub fn selecting_services(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace().unwrap_or_default();
    services
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .filter(|s| service_selector(s).is_some_and(|sel| selects(sel, pod.labels())))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// The Services a pod's change concerns: those whose selector matches it now, and those whose
/// slices list it (it may have stopped matching or be gone).
fn services_for_pod(
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    pod: &Pod,
) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let mut out = selecting_services(services, pod);
    for slice in slices.state() {
        if slice.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let lists = slice.endpoints.iter().any(|e| {
            e.target_ref
                .as_ref()
                .is_some_and(|r| r.name.as_deref() == Some(name.as_str()))
        });
        if let (true, Some(svc)) = (lists, slice.labels().get(LABEL_SERVICE_NAME)) {
            let r = ObjectRef::new(svc).within(&ns);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// The address families a Service's slices carry (from `spec.ipFamilies`, IPv4 by default).
fn address_types(svc: &Service) -> Vec<&'static str> {
    let families = svc.spec.as_ref().and_then(|s| s.ip_families.as_ref());
    let mut out: Vec<&'static str> = families
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some("IPv4"),
            "IPv6" => Some("IPv6"),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        out.push("IPv4");
    }
    out
}

/// The endpoints the Service wants for one address type, grouped by resolved ports. Pods on a node
/// the cache does not know are left out (and reported) unless the Service publishes not-ready
/// addresses, as upstream does.
pub fn desired_endpoints(
    svc: &Service,
    pods: &[Arc<Pod>],
    node_of: impl Fn(&str) -> Option<Arc<Node>>,
    ipv6: bool,
) -> (Vec<Group>, bool) {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut groups: Vec<Group> = Vec::new();
    let mut missing_node = false;
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let node = node_name.as_deref().and_then(&node_of);
        if node_name.is_some() && node.is_none() && !publish_not_ready {
            missing_node = true;
            continue;
        }
        let endpoint = pod_to_endpoint(pod, svc, node.as_deref(), ipv6);
        if endpoint.addresses.is_empty() {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let key = ports_key(&ports);
        match groups.iter_mut().find(|g| ports_key(&g.ports) == key) {
            Some(g) => g.endpoints.push(endpoint),
            None => groups.push(Group {
                ports,
                endpoints: vec![endpoint],
            }),
        }
    }
    (groups, missing_node)
}

/// Upstream's setEndpointSliceLabels: the Service's labels (minus the reserved ones), the headless
/// marker, the service name and the manager.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                LABEL_SERVICE_NAME | LABEL_MANAGED_BY | LABEL_HEADLESS
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if is_headless(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// Upstream's getEndpointSlicePrefix: `<service>-`, cut so generated names stay valid.
fn slice_prefix(svc: &str) -> String {
    let mut prefix = format!("{svc}-");
    if prefix.len() > 58 {
        prefix.truncate(58);
    }
    prefix
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let key = common::key_of(svc.as_ref());
    let ns = svc.namespace().unwrap_or_default();
    // The apiserver owns the `kubernetes` Service's slice (it has no selector anyway).
    if ns == "default" && svc.name_any() == "kubernetes" {
        return Ok(Action::await_change());
    }
    if service_selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        // Slices of a Service that lost its selector stay as they are (upstream); a deleted
        // Service's slices go with it through their owner reference.
        return Ok(Action::await_change());
    }
    // Reconciles run while the caches fill; acting on a half-filled one would drop endpoints.
    tokio::join!(
        common::ready(&ctx.pods),
        common::ready(&ctx.nodes),
        common::ready(&ctx.slices)
    );
    let existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns.as_str())
                && s.labels().get(LABEL_SERVICE_NAME) == Some(&svc.name_any())
                && s.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
                && s.metadata.deletion_timestamp.is_none()
        })
        .collect();
    if !ctx.written.caught_up(&key, &existing) {
        // Our own writes' events are on their way and will trigger this Service again.
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let pods = selected_pods(&svc, &ctx.pods);
    let trigger = ctx.triggers.compute(&svc, &pods);
    let labels = slice_labels(&svc);
    let api = Api::<EndpointSlice>::namespaced(ctx.clients.writer.clone(), &ns);
    let node_of = |name: &str| ctx.nodes.get(&ObjectRef::new(name));
    let mut missing_node = false;
    let mut failure: Option<String> = None;
    let types = address_types(&svc);
    for slice in existing
        .iter()
        .filter(|s| !types.contains(&s.address_type.as_str()))
    {
        // An address family the Service no longer has.
        delete_slice(&api, &ctx, &key, slice, &mut failure).await;
    }
    for address_type in types {
        let (groups, missing) = desired_endpoints(&svc, &pods, node_of, address_type == "IPv6");
        missing_node |= missing;
        let of_type: Vec<EndpointSlice> = existing
            .iter()
            .filter(|s| s.address_type == address_type)
            .map(|s| s.as_ref().clone())
            .collect();
        let plan = plan(&of_type, groups, MAX_ENDPOINTS_PER_SLICE);
        for group in plan.create {
            let slice = EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(slice_prefix(&svc.name_any())),
                    namespace: Some(ns.clone()),
                    labels: Some(labels.clone()),
                    annotations: trigger.map(|t| {
                        BTreeMap::from([(
                            LAST_CHANGE_TRIGGER_TIME.to_string(),
                            format_trigger_time(t),
                        )])
                    }),
                    owner_references: Some(vec![common::controller_ref(svc.as_ref())]),
                    ..Default::default()
                },
                address_type: address_type.to_string(),
                endpoints: group.endpoints,
                ports: Some(group.ports),
            };
            match api.create(&PostParams::default(), &slice).await {
                Ok(s) => {
                    ctx.written
                        .record(&key, s.name_any(), s.metadata.resource_version.clone())
                }
                Err(e) => failure = Some(e.to_string()),
            }
        }
        for (slice, group) in plan.update {
            let mut new = slice.clone();
            new.metadata.labels = Some(labels.clone());
            new.endpoints = group.endpoints;
            new.ports = Some(group.ports);
            let same = new.endpoints == slice.endpoints
                && new.ports.as_deref().unwrap_or(&[]) == slice.ports.as_deref().unwrap_or(&[])
                && new.metadata.labels == slice.metadata.labels;
            if same {
                continue;
            }
            let mut annotations = new.metadata.annotations.take().unwrap_or_default();
            match trigger {
                Some(t) => {
                    annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_trigger_time(t))
                }
                None => annotations.remove(LAST_CHANGE_TRIGGER_TIME),
            };
            new.metadata.annotations = Some(annotations);
            match api
                .replace(&slice.name_any(), &PostParams::default(), &new)
                .await
            {
                Ok(s) => {
                    ctx.written
                        .record(&key, s.name_any(), s.metadata.resource_version.clone())
                }
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                    // A stale cache: the watch event that fixes it triggers another sync.
                    failure = Some(e.message);
                }
                Err(e) => failure = Some(e.to_string()),
            }
        }
        for slice in plan.delete {
            delete_slice(&api, &ctx, &key, &slice, &mut failure).await;
        }
    }
    if let Some(e) = failure {
        common::record(
            &ctx.recorder,
            svc.as_ref(),
            EventType::Warning,
            "FailedToUpdateEndpointSlices",
            "UpdateEndpointSlices",
            format!("Error updating Endpoint Slices for Service {key}: {e}"),
        )
        .await;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if missing_node {
        // Upstream requeues a Service whose pods name a node it has not seen yet.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::await_change())
}

async fn delete_slice(
    api: &Api<EndpointSlice>,
    ctx: &Ctx,
    key: &str,
    slice: &EndpointSlice,
    failure: &mut Option<String>,
) {
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: slice.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&slice.name_any(), &dp).await {
        Ok(_) => ctx.written.record(key, slice.name_any(), None),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => *failure = Some(e.to_string()),
    }
}

fn retry_later(_svc: Arc<Service>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("endpointslice controller: {error}");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServiceSpec,
    };

    fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
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
        }
    }

    fn service(target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".into(), "web".into())])),
                cluster_ip: Some("10.96.0.10".into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn ports_resolve_by_number_and_by_name() {
        let p = pod("a", "10.0.0.1", true);
        let by_number = &service(IntOrString::Int(9090)).spec.unwrap().ports.unwrap()[0];
        assert_eq!(find_port(&p, by_number), Some(9090));
        let by_name = &service(IntOrString::String("http".into()))
            .spec
            .unwrap()
            .ports
            .unwrap()[0];
        assert_eq!(find_port(&p, by_name), Some(8080));
        let unknown = &service(IntOrString::String("grpc".into()))
            .spec
            .unwrap()
            .ports
            .unwrap()[0];
        assert_eq!(find_port(&p, unknown), None);
        // A name only matches a container port of the same protocol.
        let mut udp = by_name.clone();
        udp.protocol = Some("UDP".into());
        assert_eq!(find_port(&p, &udp), None);
        // An unresolvable port is left out of the endpoint's ports.
        assert!(endpoint_ports(&service(IntOrString::String("grpc".into())), &p).is_empty());
    }

    #[test]
    fn conditions_follow_readiness_and_termination() {
        let svc = service(IntOrString::Int(80));
        let cond = |p: &Pod, svc: &Service| {
            let c = pod_to_endpoint(p, svc, None, false).conditions.unwrap();
            (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
        };
        assert_eq!(cond(&pod("a", "10.0.0.1", true), &svc), (true, true, false));
        assert_eq!(
            cond(&pod("a", "10.0.0.1", false), &svc),
            (false, false, false)
        );
        let mut terminating = pod("a", "10.0.0.1", true);
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        assert_eq!(cond(&terminating, &svc), (false, true, true));
        let mut publish = svc.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        assert_eq!(cond(&terminating, &publish), (true, true, true));
        assert_eq!(
            cond(&pod("a", "10.0.0.1", false), &publish),
            (true, false, false)
        );
        // Terminating pods stay in slices, not in Endpoints; finished pods and pods without an IP
        // are in neither.
        assert!(should_pod_be_in_endpoints(&terminating, true));
        assert!(!should_pod_be_in_endpoints(&terminating, false));
        let mut done = pod("a", "10.0.0.1", true);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_pod_be_in_endpoints(&done, true));
        let mut no_ip = pod("a", "", true);
        no_ip.status.as_mut().unwrap().pod_ips = None;
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
    }

    #[test]
    fn hostname_only_for_the_matching_subdomain() {
        let svc = service(IntOrString::Int(80));
        let mut p = pod("a", "10.0.0.1", true);
        p.spec.as_mut().unwrap().hostname = Some("db-0".into());
        assert_eq!(pod_to_endpoint(&p, &svc, None, false).hostname, None);
        p.spec.as_mut().unwrap().subdomain = Some("web".into());
        assert_eq!(
            pod_to_endpoint(&p, &svc, None, false).hostname.as_deref(),
            Some("db-0")
        );
    }

    fn endpoints(n: usize) -> Vec<Endpoint> {
        let svc = service(IntOrString::Int(80));
        (0..n)
            .map(|i| {
                pod_to_endpoint(
                    &pod(
                        &format!("p{i}"),
                        &format!("10.0.{}.{}", i / 250, i % 250),
                        true,
                    ),
                    &svc,
                    None,
                    false,
                )
            })
            .collect()
    }

    fn port(n: i32) -> Vec<EndpointPort> {
        vec![EndpointPort {
            port: Some(n),
            name: Some(String::new()),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]
    }

    fn slice(name: &str, ports: Vec<EndpointPort>, eps: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps,
            ports: Some(ports),
        }
    }

    #[test]
    fn slices_split_at_the_maximum() {
        let p = plan(
            &[],
            vec![Group {
                ports: port(80),
                endpoints: endpoints(250),
            }],
            100,
        );
        let sizes: Vec<usize> = p.create.iter().map(|g| g.endpoints.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert!(p.update.is_empty() && p.delete.is_empty());
    }

    #[test]
    fn existing_slices_keep_their_endpoints_and_fill_up() {
        let all = endpoints(120);
        let existing = vec![
            slice("a", port(80), all[..100].to_vec()),
            slice("b", port(80), all[100..110].to_vec()),
        ];
        let p = plan(
            &existing,
            vec![Group {
                ports: port(80),
                endpoints: all.clone(),
            }],
            100,
        );
        assert!(p.create.is_empty() && p.delete.is_empty());
        let by_name: BTreeMap<String, usize> = p
            .update
            .iter()
            .map(|(s, g)| (s.name_any(), g.endpoints.len()))
            .collect();
        assert_eq!(
            by_name,
            BTreeMap::from([("a".into(), 100), ("b".into(), 20)])
        );
        // Nothing changed: the slices' content equals what they hold.
        let p = plan(
            &existing[..1],
            vec![Group {
                ports: port(80),
                endpoints: all[..100].to_vec(),
            }],
            100,
        );
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].1.endpoints, existing[0].endpoints);
    }

    #[test]
    fn emptied_slices_are_reused_or_become_the_placeholder() {
        let all = endpoints(3);
        // Ports changed: the old slice is reused for the new ports rather than deleted + created.
        let existing = vec![slice("a", port(80), all.clone())];
        let p = plan(
            &existing,
            vec![Group {
                ports: port(81),
                endpoints: all.clone(),
            }],
            100,
        );
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update[0].1.ports, port(81));
        // No endpoints left: the slice becomes the placeholder (no endpoints, no ports).
        let p = plan(&existing, vec![], 100);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert!(p.update[0].1.endpoints.is_empty() && p.update[0].1.ports.is_empty());
        // An existing placeholder is left alone; none exists: one is created.
        let placeholder = vec![slice("a", vec![], vec![])];
        let p = plan(&placeholder, vec![], 100);
        assert!(p.create.is_empty() && p.update.is_empty() && p.delete.is_empty());
        let p = plan(&[], vec![], 100);
        assert_eq!(p.create.len(), 1);
        // Two slices both emptied: one is reused as placeholder, the other deleted.
        let two = vec![
            slice("a", port(80), all[..1].to_vec()),
            slice("b", port(80), all[1..].to_vec()),
        ];
        let p = plan(&two, vec![], 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 1));
    }

    #[test]
    fn pods_with_different_named_ports_get_separate_slices() {
        let svc = service(IntOrString::String("http".into()));
        let a = pod("a", "10.0.0.1", true);
        let mut b = pod("b", "10.0.0.2", true);
        b.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()[0]
            .container_port = 9090;
        let (groups, missing) = desired_endpoints(
            &svc,
            &[Arc::new(a), Arc::new(b)],
            |_| Some(Arc::new(Node::default())),
            false,
        );
        assert!(!missing);
        let ports: Vec<Option<i32>> = groups.iter().map(|g| g.ports[0].port).collect();
        assert_eq!(ports, vec![Some(8080), Some(9090)]);
        // A pod on a node the cache does not know waits (unless not-ready addresses are published).
        let (groups, missing) = desired_endpoints(
            &svc,
            &[Arc::new(pod("c", "10.0.0.3", true))],
            |_| None,
            false,
        );
        assert!(missing && groups.is_empty());
    }

    #[test]
    fn trigger_time_is_the_earliest_change_since_the_last_sync() {
        let tracker = TriggerTimes::default();
        let svc = service(IntOrString::Int(80));
        let with_time = |name: &str, secs: i64| {
            let mut p = pod(name, "10.0.0.1", true);
            p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    Timestamp::from_second(secs).unwrap(),
                ));
            Arc::new(p)
        };
        // First sight of a Service: none.
        assert_eq!(tracker.compute(&svc, &[with_time("a", 100)]), None);
        // Nothing changed: none.
        assert_eq!(tracker.compute(&svc, &[with_time("a", 100)]), None);
        // Two pods changed: the earlier.
        let t = tracker.compute(&svc, &[with_time("a", 300), with_time("b", 200)]);
        assert_eq!(t, Some(Timestamp::from_second(200).unwrap()));
        assert_eq!(
            format_trigger_time(Timestamp::from_second(200).unwrap()),
            "1970-01-01T00:03:20Z"
        );
    }

    #[test]
    fn labels_carry_the_service_name_manager_and_headless_marker() {
        let mut svc = service(IntOrString::Int(80));
        svc.metadata.labels = Some(BTreeMap::from([
            ("app".into(), "web".into()),
            (LABEL_MANAGED_BY.into(), "someone-else".into()),
        ]));
        let labels = slice_labels(&svc);
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            labels.get(LABEL_MANAGED_BY).map(String::as_str),
            Some(CONTROLLER_NAME)
        );
        assert_eq!(
            labels.get(LABEL_SERVICE_NAME).map(String::as_str),
            Some("web")
        );
        assert!(!labels.contains_key(LABEL_HEADLESS));
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert_eq!(
            slice_labels(&svc).get(LABEL_HEADLESS).map(String::as_str),
            Some("")
        );
    }
}
