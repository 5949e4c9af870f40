//! VolumeBinding, as upstream's plugin and its SchedulerVolumeBinder: a pod's PersistentVolumeClaims
//! (its `persistentVolumeClaim` volumes and the `<pod>-<volume>` claims of its `ephemeral` ones)
//! must be usable on the node.
//!
//! PreFilter ([`pre_filter`]) rejects the pod everywhere (UnschedulableAndUnresolvable) when a claim
//! is missing, being deleted, lost, not its own (ephemeral), or unbound although its class binds
//! at once (`Immediate`, no class, or a missing class: the PersistentVolume controller binds those,
//! and the pod waits for it). It sorts the rest into bound claims and claims that wait for their
//! first consumer (`WaitForFirstConsumer`), which the scheduler binds.
//!
//! Filter ([`find`], upstream's FindPodVolumes) per node: a bound claim's volume must exist and its
//! `nodeAffinity` must match the node; every waiting claim needs an Available volume of its class
//! (smallest that fits; access modes, volumeMode, selector, node affinity) not taken by another of
//! the pod's claims, or a class whose provisioner may create one there (anything but
//! `kubernetes.io/no-provisioner`, within the class's `allowedTopologies`; storage capacity is not
//! modelled, as upstream without CSIStorageCapacity objects). Its rejections are
//! UnschedulableAndUnresolvable: evicting pods frees no volume.
//!
//! On the chosen node, [`assume`] (upstream's AssumePodVolumes) writes the decisions into the
//! scheduler's stores at once, so the next pod does not take the same volume; [`bind`] (PreBind)
//! then makes them real before the pod is bound: a static volume gets the claim as its `claimRef`,
//! a claim to provision gets the `volume.kubernetes.io/selected-node` annotation, and it waits until
//! the PersistentVolume controller has bound every claim. Dynamic provisioning itself is someone
//! else's (an external provisioner).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use super::{label_selector_matches, Code, Rejection};
// The helpers upstream's binder shares with the PersistentVolume controller
// (pkg/controller/volume/persistentvolume/util).
use crate::controllers::persistent_volume::binding::{
    claim_ref, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER,
};
use crate::controllers::persistent_volume::claims::ANN_SELECTED_NODE;
use crate::controllers::persistent_volume::matching::{
    capacity, claim_class, is_volume_bound_to_claim, node_affinity_matches, requested, volume_class,
};
use crate::scheduler::cache::{NodeInfo, PodInfo};
use crate::scheduler::objects::Objects;

/// Upstream's PreFilter reason for claims the PersistentVolume controller has yet to bind.
pub const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// binder.go's ConflictReasons, in the order upstream reports them.
pub const NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";

/// The provisioner name of classes for statically provisioned (local) volumes only.
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// upstream's VolumeBindingArgs.bindTimeoutSeconds default.
const BIND_TIMEOUT: Duration = Duration::from_secs(600);

/// A claim that waits for its first consumer, with the volumes of its class.
#[derive(Clone)]
struct Waiting {
    claim: Arc<PersistentVolumeClaim>,
    class: Arc<StorageClass>,
    volumes: Vec<Arc<PersistentVolume>>,
}

/// What PreFilter found for one pod; empty for a pod without claims (Filter skipped).
#[derive(Clone, Default)]
pub struct State {
    /// Bound claims and their volumes (None: the volume does not exist).
    bound: Vec<(Arc<PersistentVolumeClaim>, Option<Arc<PersistentVolume>>)>,
    /// Claims to bind with the pod, smallest request first (upstream's byPVCSize).
    waiting: Vec<Waiting>,
}

impl State {
    pub fn is_empty(&self) -> bool {
        self.bound.is_empty() && self.waiting.is_empty()
    }
}

/// The volume decisions for one node (upstream's PodVolumes).
#[derive(Clone, Default)]
pub struct Plan {
    /// Waiting claims and the existing volume each gets.
    pub static_bindings: Vec<(Arc<PersistentVolumeClaim>, Arc<PersistentVolume>)>,
    /// Waiting claims for which a volume is to be provisioned.
    pub provisions: Vec<Arc<PersistentVolumeClaim>>,
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Upstream's isPVCFullyBound: the PersistentVolume controller finished the binding.
fn fully_bound(c: &PersistentVolumeClaim) -> bool {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty())
        && annotation(&c.metadata, ANN_BIND_COMPLETED).is_some()
}

/// Upstream's MatchTopologySelectorTerms for a class's allowedTopologies (none: everywhere).
fn topology_allows(class: &StorageClass, node: &NodeInfo) -> bool {
    let terms = class.allowed_topologies.as_deref().unwrap_or(&[]);
    terms.is_empty()
        || terms.iter().any(|t| {
            let reqs = t.match_label_expressions.as_deref().unwrap_or(&[]);
            !reqs.is_empty()
                && reqs.iter().all(|r| {
                    node.labels()
                        .get(&r.key)
                        .is_some_and(|v| r.values.contains(v))
                })
        })
}

/// Upstream's FindMatchingVolume (scheduler path): a volume pre-bound to the claim if it is big
/// enough (and then only if it suits the node), else the smallest Available one that fits.
fn matching_volume(
    w: &Waiting,
    node: &NodeInfo,
    excluded: &HashSet<String>,
) -> Option<Arc<PersistentVolume>> {
    let claim = &w.claim;
    let cspec = claim.spec.as_ref();
    let wanted_mode = cspec
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let modes = cspec.and_then(|s| s.access_modes.as_deref()).unwrap_or(&[]);
    let request = requested(claim);
    let mut best: Option<(i128, &Arc<PersistentVolume>)> = None;
    for v in &w.volumes {
        let name = v.metadata.name.as_deref().unwrap_or("");
        let vspec = v.spec.as_ref();
        if excluded.contains(name)
            || vspec
                .and_then(|s| s.volume_mode.as_deref())
                .unwrap_or("Filesystem")
                != wanted_mode
            || v.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let size = capacity(v);
        let fits_node = node_affinity_matches(v, node.labels());
        if is_volume_bound_to_claim(v, claim) {
            if size < request {
                continue;
            }
            return fits_node.then(|| v.clone());
        }
        let available = v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available");
        if !available
            || vspec.and_then(|s| s.claim_ref.as_ref()).is_some()
            || cspec.and_then(|s| s.selector.as_ref()).is_some_and(|sel| {
                !label_selector_matches(
                    Some(sel),
                    v.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                )
            })
            || volume_class(v) != claim_class(claim)
            || !fits_node
        {
            continue;
        }
        let offered = vspec.and_then(|s| s.access_modes.as_deref()).unwrap_or(&[]);
        if !modes.iter().all(|m| offered.contains(m)) {
            continue;
        }
        if size >= request && best.is_none_or(|(b, _)| b > size) {
            best = Some((size, v));
        }
    }
    best.map(|(_, v)| v.clone())
}

/// The claim a pod volume uses, and whether it is an ephemeral volume's.
fn claim_names(pod: &Pod) -> Vec<(String, bool)> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some((c.claim_name.clone(), false))
            } else if v.ephemeral.is_some() {
                // ephemeral.VolumeClaimName
                Some((format!("{pod_name}-{}", v.name), true))
            } else {
                None
            }
        })
        .collect()
}

fn unresolvable(reason: impl Into<String>) -> Rejection {
    Rejection::new(Code::UnschedulableAndUnresolvable, reason)
}

/// PreFilter (upstream's podHasPVCs, then GetPodVolumeClaims).
pub fn pre_filter(pod: &PodInfo, objects: &Objects) -> Result<State, Rejection> {
    let names = claim_names(&pod.pod);
    if names.is_empty() {
        return Ok(State::default());
    }
    let mut claims = Vec::with_capacity(names.len());
    for (name, ephemeral) in names {
        let Some(claim) = objects.claims.get(&pod.namespace, &name) else {
            return Err(unresolvable(if ephemeral {
                format!("waiting for ephemeral volume controller to create the persistentvolumeclaim \"{name}\"")
            } else {
                format!("persistentvolumeclaim \"{name}\" not found")
            }));
        };
        if claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost") {
            let volume = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .unwrap_or("");
            return Err(unresolvable(format!(
                "persistentvolumeclaim \"{name}\" bound to non-existent persistentvolume \"{volume}\""
            )));
        }
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(unresolvable(format!(
                "persistentvolumeclaim \"{name}\" is being deleted"
            )));
        }
        // ephemeral.VolumeIsForPod: the claim must be the one created for this pod.
        let owned = claim.metadata.owner_references.iter().flatten().any(|r| {
            r.controller == Some(true) && Some(r.uid.as_str()) == pod.pod.metadata.uid.as_deref()
        });
        if ephemeral && !owned {
            return Err(unresolvable(format!(
                "PVC {ns}/{name} was not created for pod {ns}/{pod} (pod is not owner)",
                ns = pod.namespace,
                pod = pod.pod.metadata.name.as_deref().unwrap_or("")
            )));
        }
        claims.push(claim.clone());
    }
    let mut state = State::default();
    for claim in claims {
        if fully_bound(&claim) {
            let volume = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .and_then(|v| objects.volumes.get("", v))
                .cloned();
            state.bound.push((claim, volume));
            continue;
        }
        // IsDelayBindingMode: no class, or a class not found, binds immediately.
        let class_name = claim_class(&claim);
        let class = (!class_name.is_empty())
            .then(|| objects.classes.get("", class_name))
            .flatten()
            .filter(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        let prebound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .is_some_and(|v| !v.is_empty());
        match class {
            Some(class) if !prebound => {
                let volumes = objects
                    .volumes
                    .all()
                    .filter(|v| volume_class(v) == class_name)
                    .cloned()
                    .collect();
                state.waiting.push(Waiting {
                    claim,
                    class: class.clone(),
                    volumes,
                });
            }
            // Immediate binding (a claim naming its volume, too) is the controller's to finish.
            _ => return Err(unresolvable(UNBOUND_IMMEDIATE)),
        }
    }
    state.waiting.sort_by_key(|w| requested(&w.claim));
    Ok(state)
}

/// Filter (upstream's FindPodVolumes): the plan for `node`, or why the pod's claims rule it out.
pub fn find(state: &State, node: &NodeInfo) -> Result<Plan, Rejection> {
    let mut plan = Plan::default();
    let (mut bound_ok, mut bound_found, mut unbound_ok) = (true, true, true);
    // checkBoundClaims stops at the first claim that fails.
    for (_, volume) in &state.bound {
        match volume {
            None => {
                bound_found = false;
                break;
            }
            Some(v) if !node_affinity_matches(v, node.labels()) => {
                bound_ok = false;
                break;
            }
            Some(_) => {}
        }
    }
    let mut to_provision: Vec<&Waiting> = Vec::new();
    let mut to_match: Vec<&Waiting> = Vec::new();
    for w in &state.waiting {
        match annotation(&w.claim.metadata, ANN_SELECTED_NODE) {
            // Already given to another node's provisioning.
            Some(n) if n != node.name => {
                unbound_ok = false;
                break;
            }
            Some(_) => to_provision.push(w),
            None => to_match.push(w),
        }
    }
    if unbound_ok {
        let mut chosen: HashSet<String> = HashSet::new();
        for w in to_match {
            match matching_volume(w, node, &chosen) {
                Some(v) => {
                    chosen.insert(v.metadata.name.clone().unwrap_or_default());
                    plan.static_bindings.push((w.claim.clone(), v));
                }
                None => {
                    unbound_ok = false;
                    to_provision.push(w);
                }
            }
        }
        // checkVolumeProvisions decides for the claims no volume matched.
        if !to_provision.is_empty() {
            unbound_ok = to_provision.iter().all(|w| {
                !w.class.provisioner.is_empty()
                    && w.class.provisioner != NO_PROVISIONER
                    && topology_allows(&w.class, node)
            });
            if unbound_ok {
                plan.provisions = to_provision.iter().map(|w| w.claim.clone()).collect();
            }
        }
    }
    let mut reasons = Vec::new();
    if !bound_ok {
        reasons.push(NODE_CONFLICT.to_string());
    }
    if !unbound_ok {
        reasons.push(BIND_CONFLICT.to_string());
    }
    if !bound_found {
        reasons.push(PV_NOT_EXIST.to_string());
    }
    if reasons.is_empty() {
        Ok(plan)
    } else {
        Err(Rejection {
            code: Code::UnschedulableAndUnresolvable,
            reasons,
        })
    }
}

pub fn filter(state: &State, node: &NodeInfo) -> super::FilterResult {
    if state.is_empty() {
        return Ok(());
    }
    find(state, node).map(|_| ())
}

/// The API writes a plan needs (upstream's AssumePodVolumes): each static volume with the claim as
/// its `claimRef` (upstream's GetBindVolumeToClaim), each claim to provision with the node.
pub struct Assumed {
    pub volumes: Vec<PersistentVolume>,
    pub claims: Vec<PersistentVolumeClaim>,
    /// Every claim the binding waits for.
    waits_for: Vec<Arc<PersistentVolumeClaim>>,
}

impl Assumed {
    pub fn is_empty(&self) -> bool {
        self.waits_for.is_empty()
    }
}

pub fn assume(plan: &Plan, node: &str) -> Assumed {
    let mut out = Assumed {
        volumes: Vec::new(),
        claims: Vec::new(),
        waits_for: Vec::new(),
    };
    for (claim, volume) in &plan.static_bindings {
        out.waits_for.push(claim.clone());
        let current = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        let same = current.is_some_and(|r| {
            r.name == claim.metadata.name
                && r.namespace == claim.metadata.namespace
                && r.uid == claim.metadata.uid
        });
        if same {
            continue;
        }
        let mut v = (**volume).clone();
        // A volume the user pre-bound keeps saying so; one the scheduler chose is marked as the
        // controller's binding (the controller may undo those).
        if !is_volume_bound_to_claim(volume, claim) {
            v.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        v.spec.get_or_insert_with(Default::default).claim_ref = Some(claim_ref(claim));
        out.volumes.push(v);
    }
    for claim in &plan.provisions {
        out.waits_for.push(claim.clone());
        let mut c = (**claim).clone();
        c.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANN_SELECTED_NODE.into(), node.into());
        out.claims.push(c);
    }
    out
}

/// PreBind (upstream's BindPodVolumes): writes the assumed volumes and claims (each guarded by
/// the resourceVersion it was decided on), then waits, polling every second for at most
/// upstream's bind timeout, until the PersistentVolume controller has bound every claim. An error
/// sends the pod back to the queue.
pub async fn bind(
    client: &kube::Client,
    pod: &Pod,
    node: &str,
    assumed: &Assumed,
) -> anyhow::Result<()> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    for v in &assumed.volumes {
        let name = v.metadata.name.as_deref().unwrap_or("");
        let patch = json!({
            "metadata": {"resourceVersion": v.metadata.resource_version, "annotations": v.metadata.annotations},
            "spec": {"claimRef": v.spec.as_ref().and_then(|s| s.claim_ref.as_ref())},
        });
        volumes
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    for c in &assumed.claims {
        let name = c.metadata.name.as_deref().unwrap_or("");
        let patch = json!({"metadata": {
            "resourceVersion": c.metadata.resource_version,
            "annotations": {ANN_SELECTED_NODE: node},
        }});
        claims
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    // upstream's checkBindings, on the API's objects (the stores may lag behind).
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let deadline = tokio::time::Instant::now() + BIND_TIMEOUT;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if pods.get_opt(pod_name).await?.is_none() {
            anyhow::bail!("pod does not exist any more");
        }
        let mut done = true;
        for want in &assumed.waits_for {
            let name = want.metadata.name.as_deref().unwrap_or("");
            let claim = claims.get(name).await?;
            let provisioning = assumed
                .claims
                .iter()
                .any(|c| c.metadata.name == want.metadata.name);
            if provisioning && annotation(&claim.metadata, ANN_SELECTED_NODE) != Some(node) {
                // A provisioner that gives up removes the annotation.
                anyhow::bail!("provisioning failed for PVC \"{name}\"");
            }
            if !fully_bound(&claim) {
                done = false;
            }
        }
        for v in &assumed.volumes {
            let name = v.metadata.name.as_deref().unwrap_or("");
            let current = volumes.get(name).await?;
            let reset = current
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_none_or(|r| r.uid.as_deref().unwrap_or("").is_empty());
            if reset {
                anyhow::bail!("ClaimRef got reset for pv \"{name}\"");
            }
        }
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("binding volumes: timed out waiting for the condition");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::objects::ObjectEvent;
    use kube::runtime::watcher::Event;
    use serde_json::{json, Value};

    fn node(name: &str, zone: &str) -> NodeInfo {
        NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"zone": zone}}}))
                .expect("node"),
        ))
    }

    fn objects(items: Vec<Value>) -> Objects {
        let mut o = Objects::default();
        for i in items {
            let ev = match i["kind"].as_str() {
                Some("PersistentVolumeClaim") => ObjectEvent::PersistentVolumeClaim(Event::Apply(
                    serde_json::from_value(i).expect("pvc"),
                )),
                Some("PersistentVolume") => ObjectEvent::PersistentVolume(Event::Apply(
                    serde_json::from_value(i).expect("pv"),
                )),
                _ => ObjectEvent::StorageClass(Event::Apply(
                    serde_json::from_value(i).expect("class"),
                )),
            };
            o.apply(ev);
        }
        o
    }

    fn claim(name: &str, class: Option<&str>, size: &str, extra: Value) -> Value {
        let mut c = json!({"kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}}});
        merge(&mut c, extra);
        c
    }

    fn volume(name: &str, class: &str, size: &str, zone: Option<&str>, extra: Value) -> Value {
        let mut v = json!({"kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                     "capacity": {"storage": size}},
            "status": {"phase": "Available"}});
        if let Some(z) = zone {
            v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": [z]}]}]}});
        }
        merge(&mut v, extra);
        v
    }

    fn class(name: &str, mode: &str, provisioner: &str) -> Value {
        json!({"kind": "StorageClass", "metadata": {"name": name}, "provisioner": provisioner,
               "volumeBindingMode": mode})
    }

    fn merge(into: &mut Value, extra: Value) {
        if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
            for (k, v) in b {
                match (a.get_mut(&k), v) {
                    (Some(Value::Object(x)), Value::Object(y)) => x.extend(y),
                    (_, v) => {
                        a.insert(k, v);
                    }
                }
            }
        }
    }

    fn pod(volumes: Value) -> PodInfo {
        PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid"},
                "spec": {"containers": [], "volumes": volumes}}))
            .expect("pod"),
        ))
    }

    fn claim_volume(name: &str) -> Value {
        json!([{"name": "data", "persistentVolumeClaim": {"claimName": name}}])
    }

    fn reasons(r: Result<State, Rejection>) -> Vec<String> {
        match r {
            Err(r) => {
                assert_eq!(r.code, Code::UnschedulableAndUnresolvable);
                r.reasons
            }
            Ok(_) => vec![],
        }
    }

    #[test]
    fn pre_filter_messages() {
        let o = objects(vec![
            claim(
                "gone",
                None,
                "1Gi",
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            ),
            claim("plain", None, "1Gi", json!({})),
            claim(
                "lost",
                None,
                "1Gi",
                json!({"spec": {"volumeName": "pv-x"}, "status": {"phase": "Lost"}}),
            ),
            claim("p-scratch", Some("wffc"), "1Gi", json!({})),
            class("wffc", "WaitForFirstConsumer", NO_PROVISIONER),
        ]);
        let cases = [
            (claim_volume("missing"), "persistentvolumeclaim \"missing\" not found"),
            (claim_volume("gone"), "persistentvolumeclaim \"gone\" is being deleted"),
            (claim_volume("lost"), "persistentvolumeclaim \"lost\" bound to non-existent persistentvolume \"pv-x\""),
            (claim_volume("plain"), UNBOUND_IMMEDIATE),
            (json!([{"name": "cache", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]),
             "waiting for ephemeral volume controller to create the persistentvolumeclaim \"p-cache\""),
            (json!([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]),
             "PVC ns/p-scratch was not created for pod ns/p (pod is not owner)"),
        ];
        for (volumes, want) in cases {
            assert_eq!(reasons(pre_filter(&pod(volumes), &o)), [want]);
        }
        // No claims: nothing to check.
        assert!(pre_filter(&pod(json!([{"name": "e", "emptyDir": {}}])), &o)
            .expect("no claims")
            .is_empty());
    }

    #[test]
    fn bound_claims_follow_their_volume() {
        let bound = json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}}});
        let mut here = bound.clone();
        here["spec"] = json!({"volumeName": "pv-a"});
        let mut nowhere = bound;
        nowhere["spec"] = json!({"volumeName": "pv-none"});
        let o = objects(vec![
            claim("here", None, "1Gi", here),
            claim("nowhere", None, "1Gi", nowhere),
            volume("pv-a", "", "1Gi", Some("a"), json!({})),
        ]);
        let state = pre_filter(&pod(claim_volume("here")), &o).expect("bound");
        assert!(find(&state, &node("n1", "a")).is_ok());
        let err = find(&state, &node("n2", "b")).err().expect("conflict");
        assert_eq!(err.reasons, [NODE_CONFLICT]);
        let state = pre_filter(&pod(claim_volume("nowhere")), &o).expect("bound");
        let err = find(&state, &node("n1", "a")).err().expect("missing pv");
        assert_eq!(err.reasons, [PV_NOT_EXIST]);
    }

    #[test]
    fn waiting_claims_take_the_smallest_volume_on_the_node() {
        let o = objects(vec![
            class("local", "WaitForFirstConsumer", NO_PROVISIONER),
            claim("data", Some("local"), "5Gi", json!({})),
            volume("small", "local", "1Gi", Some("a"), json!({})),
            volume("big-a", "local", "20Gi", Some("a"), json!({})),
            volume("fit-a", "local", "10Gi", Some("a"), json!({})),
            volume(
                "taken-a",
                "local",
                "5Gi",
                Some("a"),
                json!({"spec": {"claimRef": {"namespace": "ns", "name": "other"}}}),
            ),
            volume(
                "pending-a",
                "local",
                "5Gi",
                Some("a"),
                json!({"status": {"phase": "Pending"}}),
            ),
            volume(
                "rwx-a",
                "local",
                "6Gi",
                Some("a"),
                json!({"spec": {"accessModes": ["ReadWriteMany"]}}),
            ),
            volume(
                "block-a",
                "local",
                "6Gi",
                Some("a"),
                json!({"spec": {"volumeMode": "Block"}}),
            ),
            volume("other-class", "fast", "5Gi", None, json!({})),
            volume("fit-b", "local", "8Gi", Some("b"), json!({})),
        ]);
        let state = pre_filter(&pod(claim_volume("data")), &o).expect("waiting");
        let plan = find(&state, &node("n1", "a")).expect("a volume in zone a");
        let names: Vec<&str> = plan
            .static_bindings
            .iter()
            .filter_map(|(_, v)| v.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["fit-a"]);
        let plan = find(&state, &node("n2", "b")).expect("zone b");
        assert_eq!(
            plan.static_bindings[0].1.metadata.name.as_deref(),
            Some("fit-b")
        );
        let err = find(&state, &node("n3", "c"))
            .err()
            .expect("nothing in zone c");
        assert_eq!(err.reasons, [BIND_CONFLICT]);
        // Binding writes the claim into the volume's claimRef, marked as the controller's.
        let assumed = assume(&plan, "n2");
        assert_eq!(assumed.volumes.len(), 1);
        let r = assumed.volumes[0]
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .expect("ref");
        assert_eq!(
            (r.name.as_deref(), r.uid.as_deref()),
            (Some("data"), Some("uid-data"))
        );
        assert_eq!(
            annotation(&assumed.volumes[0].metadata, ANN_BOUND_BY_CONTROLLER),
            Some("yes")
        );
    }

    #[test]
    fn two_claims_do_not_share_a_volume_and_provisioners_go_anywhere() {
        let o = objects(vec![
            class("local", "WaitForFirstConsumer", NO_PROVISIONER),
            class("dyn", "WaitForFirstConsumer", "example.com/csi"),
            claim("one", Some("local"), "1Gi", json!({})),
            claim("two", Some("local"), "1Gi", json!({})),
            claim("made", Some("dyn"), "1Gi", json!({})),
            claim(
                "elsewhere",
                Some("dyn"),
                "1Gi",
                json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "n9"}}}),
            ),
            volume("only", "local", "1Gi", None, json!({})),
        ]);
        let both = json!([{"name": "a", "persistentVolumeClaim": {"claimName": "one"}},
                          {"name": "b", "persistentVolumeClaim": {"claimName": "two"}}]);
        let state = pre_filter(&pod(both), &o).expect("waiting");
        assert_eq!(
            find(&state, &node("n1", "a")).err().map(|r| r.reasons),
            Some(vec![BIND_CONFLICT.to_string()])
        );
        let state = pre_filter(&pod(claim_volume("made")), &o).expect("waiting");
        let plan = find(&state, &node("n1", "a")).expect("provisionable");
        assert_eq!(plan.provisions.len(), 1);
        let assumed = assume(&plan, "n1");
        assert_eq!(
            annotation(&assumed.claims[0].metadata, ANN_SELECTED_NODE),
            Some("n1")
        );
        // A claim whose provisioning already went to another node keeps the pod there.
        let state = pre_filter(&pod(claim_volume("elsewhere")), &o).expect("waiting");
        assert!(find(&state, &node("n1", "a")).is_err());
        assert!(find(&state, &node("n9", "a")).is_ok());
    }
}
