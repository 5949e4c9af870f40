//! Upstream's disruption controller (pkg/controller/disruption): keeps every PodDisruptionBudget's
//! status, which the `pods/eviction` subresource (src/apiserver/registry/eviction.rs) reads to decide
//! whether a pod may go.
//!
//! Start at [`reconcile`]: the pods the budget selects, the expected count ([`expected_counts`]: the
//! pods themselves for an integer `minAvailable`, else the sum of their controllers' replicas), the
//! pods the eviction endpoint recorded in `disruptedPods` (dropped once deleted or after
//! [`DELETION_TIMEOUT`]), the healthy count, and from those `disruptionsAllowed` with the
//! `DisruptionAllowed` condition. A budget whose status cannot be computed gets `SyncFailed` and no
//! disruptions (upstream's failSafe).
//!
//! Status writes are plain updates guarded by the cached resourceVersion: an eviction may have taken
//! a disruption meanwhile, and overwriting its `disruptedPods` entry would allow a second one, so a
//! conflict waits for the fresh object instead of retrying over it. Triggers are the budgets' and
//! the pods' watch events, plus a requeue when the earliest `disruptedPods` entry expires. Writes as
//! `system:serviceaccount:kube-system:disruption-controller`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

use super::common::{self, Recorder};
use super::endpointslice::is_pod_ready;
use super::Clients;

/// How long a pod recorded by an eviction is not counted as healthy while it is not yet deleted
/// (upstream's DeletionTimeout).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(2 * 60);
pub const CONDITION: &str = "DisruptionAllowed";
pub const SUFFICIENT: &str = "SufficientPods";
pub const INSUFFICIENT: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

struct Ctx {
    clients: Clients,
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    stateful_sets: Store<StatefulSet>,
    controllers: Store<ReplicationController>,
    recorder: Recorder,
}

pub async fn run(clients: Clients) {
    let budgets = Api::<PodDisruptionBudget>::all(clients.reader.clone());
    let (pods, pod_events) = clients.informers.watched::<Pod>();
    let controller = Controller::new(budgets, Default::default());
    let budget_store = controller.store();
    let ctx = Arc::new(Ctx {
        replica_sets: clients.informers.store(),
        deployments: clients.informers.store(),
        stateful_sets: clients.informers.store(),
        controllers: clients.informers.store(),
        recorder: common::recorder(clients.writer.clone(), "controllermanager"),
        clients,
        pods,
    });
    controller
        .watches_stream(pod_events, move |pod: Pod| {
            budgets_for_pod(&budget_store, &pod)
        })
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("disruption controller: {e}");
            }
        })
        .await;
}

/// The budget's selector as upstream's LabelSelectorAsSelector reads it: none selects nothing, an
/// empty one every pod of the namespace, an invalid one is an error.
fn selector_of(pdb: &PodDisruptionBudget) -> Result<Option<Selector>, String> {
    match pdb.spec.as_ref().and_then(|s| s.selector.clone()) {
        None => Ok(None),
        Some(s) => Selector::try_from(s).map(Some).map_err(|e| e.to_string()),
    }
}

fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    matches!(selector_of(pdb), Ok(Some(s)) if s.matches(pod.labels()))
}

fn budgets_for_pod(
    budgets: &Store<PodDisruptionBudget>,
    pod: &Pod,
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    let ns = pod.namespace();
    budgets
        .state()
        .iter()
        .filter(|b| b.namespace() == ns && selects(b, pod))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

/// Upstream's intstr.GetScaledValueFromIntOrPercent: an integer as is, a percentage of `total`
/// rounded up or down; a string that is not a percentage is an error.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(num) = s.strip_suffix('%') else {
                return Err("invalid type: string is not a percentage".into());
            };
            let pct: i64 = num
                .parse()
                .map_err(|e| format!("invalid value {s:?}: {e}"))?;
            let product = pct * total as i64;
            let value = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            Ok(value as i32)
        }
    }
}

/// Upstream's getExpectedScale: the sum of the replicas of the pods' controllers, each counted
/// once. `scale_of` finds a controller's (uid, replicas) from a pod's controller reference. Pods
/// without a controller are returned by name (upstream warns about them); a controller nobody knows
/// is an error.
pub fn expected_scale(
    pods: &[Arc<Pod>],
    scale_of: impl Fn(&OwnerReference, &str) -> Option<(String, i32)>,
) -> Result<(i32, Vec<String>), String> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(owner) = common::controller_of(pod.as_ref()) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        match scale_of(owner, &ns) {
            Some((uid, n)) => {
                scales.insert(uid, n);
            }
            None => return Err(format!("found no controllers for pod {:?}", pod.name_any())),
        }
    }
    Ok((scales.values().sum(), unmanaged))
}

/// Upstream's getExpectedPodCount: (expected pods, desired healthy, unmanaged pods).
/// `maxUnavailable` or a percentage `minAvailable` count against the controllers' scale; an integer
/// `minAvailable` against the pods found.
pub fn expected_counts(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scale_of: impl Fn(&OwnerReference, &str) -> Option<(String, i32)>,
) -> Result<(i32, i32, Vec<String>), String> {
    let spec = pdb.spec.as_ref();
    if let Some(max_unavailable) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let (expected, unmanaged) = expected_scale(pods, scale_of)?;
        let max = scaled_value(max_unavailable, expected, true)
            .map_err(|e| format!("invalid value for IntOrString: {e}"))?;
        return Ok((expected, (expected - max).max(0), unmanaged));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(n)) => Ok((pods.len() as i32, *n, vec![])),
        Some(min @ IntOrString::String(_)) => {
            let (expected, unmanaged) = expected_scale(pods, scale_of)?;
            let desired = scaled_value(min, expected, true)
                .map_err(|e| format!("invalid value for IntOrString: {e}"))?;
            Ok((expected, desired, unmanaged))
        }
        None => Ok((0, 0, vec![])),
    }
}

/// Upstream's buildDisruptedPodMap: the entries still pending (pod present, not being deleted,
/// recorded less than [`DELETION_TIMEOUT`] ago), the earliest time one expires, and the pods whose
/// entry expired without their deletion.
pub fn disrupted_pods(
    recorded: Option<&BTreeMap<String, Time>>,
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut expired = Vec::new();
    let Some(recorded) = recorded else {
        return (kept, recheck, expired);
    };
    let timeout = SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or(SignedDuration::ZERO);
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(at) = recorded.get(&pod.name_any()) else {
            continue;
        };
        let deadline = at.0.saturating_add(timeout).unwrap_or(at.0);
        if deadline < now {
            expired.push(pod.name_any());
        } else {
            recheck = Some(recheck.map_or(deadline, |r| r.min(deadline)));
            kept.insert(pod.name_any(), at.clone());
        }
    }
    (kept, recheck, expired)
}

/// Upstream's countHealthyPods: ready pods not being deleted and not recorded as disrupted.
pub fn count_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .filter(|p| is_pod_ready(p))
        .count() as i32
}

/// Upstream's rule: no disruptions while no pods are expected (a budget that matched nothing yet is
/// safe when its first pods appear) or not enough are healthy.
pub fn disruptions_allowed(current: i32, desired: i32, expected: i32) -> i32 {
    let allowed = current - desired;
    if expected <= 0 || allowed <= 0 {
        0
    } else {
        allowed
    }
}

/// meta.SetStatusCondition: replaces the condition of the same type, moving its transition time only
/// when its status changes.
fn set_condition(conditions: &mut Vec<Condition>, mut c: Condition) {
    match conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(existing) => {
            if existing.status == c.status {
                c.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = c;
        }
        None => conditions.push(c),
    }
}

fn allowed_condition(allowed: i32, generation: Option<i64>) -> Condition {
    let (status, reason) = if allowed > 0 {
        ("True", SUFFICIENT)
    } else {
        ("False", INSUFFICIENT)
    };
    Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// Upstream's ConditionsAreUpToDate.
fn conditions_up_to_date(status: &PodDisruptionBudgetStatus, generation: Option<i64>) -> bool {
    let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION)
    else {
        return false;
    };
    if status.observed_generation != generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT
    } else {
        c.status == "False" && c.reason == INSUFFICIENT
    }
}

impl Ctx {
    /// Upstream's finders: a pod's controller and its replicas (ReplicaSet, its Deployment,
    /// ReplicationController, StatefulSet), checked by uid.
    fn scale_of(&self, owner: &OwnerReference, ns: &str) -> Option<(String, i32)> {
        let group = owner.api_version.split_once('/').map_or("", |(g, _)| g);
        let apps = matches!(group, "apps" | "extensions");
        match owner.kind.as_str() {
            "ReplicaSet" if apps => {
                let rs = self
                    .replica_sets
                    .get(&ObjectRef::new(&owner.name).within(ns))?;
                if rs.uid().as_deref() != Some(owner.uid.as_str()) {
                    return None;
                }
                match common::controller_of(rs.as_ref()) {
                    Some(d) if d.kind == "Deployment" => {
                        let dep = self.deployments.get(&ObjectRef::new(&d.name).within(ns))?;
                        (dep.uid().as_deref() == Some(d.uid.as_str())).then(|| {
                            let n = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                            (d.uid.clone(), n)
                        })
                    }
                    _ => Some((
                        owner.uid.clone(),
                        rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )),
                }
            }
            "StatefulSet" if group == "apps" => {
                let ss = self
                    .stateful_sets
                    .get(&ObjectRef::new(&owner.name).within(ns))?;
                (ss.uid().as_deref() == Some(owner.uid.as_str())).then(|| {
                    (
                        owner.uid.clone(),
                        ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                })
            }
            "ReplicationController" if group.is_empty() => {
                let rc = self
                    .controllers
                    .get(&ObjectRef::new(&owner.name).within(ns))?;
                (rc.uid().as_deref() == Some(owner.uid.as_str())).then(|| {
                    (
                        owner.uid.clone(),
                        rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                })
            }
            _ => None,
        }
    }
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    tokio::join!(
        common::ready(&ctx.pods),
        common::ready(&ctx.replica_sets),
        common::ready(&ctx.deployments),
        common::ready(&ctx.stateful_sets),
        common::ready(&ctx.controllers),
    );
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.namespace().unwrap_or_default();
    let api = Api::<PodDisruptionBudget>::namespaced(ctx.clients.writer.clone(), &ns);
    let pods: Vec<Arc<Pod>> = match selector_of(&pdb) {
        Err(e) => return fail_safe(&api, &pdb, format!("Failed to get pods: {e}")).await,
        Ok(None) => vec![],
        Ok(Some(sel)) => ctx
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && sel.matches(p.labels()))
            .collect(),
    };
    if pods.is_empty() {
        common::record(
            &ctx.recorder,
            pdb.as_ref(),
            EventType::Normal,
            "NoPods",
            "Sync",
            "No matching pods found".into(),
        )
        .await;
    }
    let (expected, desired, unmanaged) =
        match expected_counts(&pdb, &pods, |o, ns| ctx.scale_of(o, ns)) {
            Ok(v) => v,
            Err(e) => {
                common::record(
                    &ctx.recorder,
                    pdb.as_ref(),
                    EventType::Warning,
                    "CalculateExpectedPodCountFailed",
                    "Sync",
                    format!("Failed to calculate the number of expected pods: {e}"),
                )
                .await;
                return fail_safe(&api, &pdb, e).await;
            }
        };
    if !unmanaged.is_empty() {
        let selector = selector_of(&pdb)
            .ok()
            .flatten()
            .map_or_else(String::new, |s| s.to_string());
        common::record(
            &ctx.recorder,
            pdb.as_ref(),
            EventType::Warning,
            "UnmanagedPods",
            "Sync",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be \
                 unmanaged. As a result, the status of the PDB cannot be calculated correctly, which \
                 may result in undefined behavior. To account for these pods please set \
                 \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        )
        .await;
    }
    let now = Timestamp::now();
    let status = pdb.status.clone().unwrap_or_default();
    let (disrupted, recheck, expired) = disrupted_pods(status.disrupted_pods.as_ref(), &pods, now);
    for name in expired {
        if let Some(pod) = pods.iter().find(|p| p.name_any() == name) {
            common::record(
                &ctx.recorder,
                pod.as_ref(),
                EventType::Warning,
                "NotDeleted",
                "Sync",
                // Upstream's message names the namespace twice (a long-standing typo kept as is).
                format!("Pod was expected by PDB {ns}/{ns} to be deleted but it wasn't"),
            )
            .await;
        }
    }
    let current = count_healthy(&pods, &disrupted);
    let allowed = disruptions_allowed(current, desired, expected);
    let generation = pdb.metadata.generation;
    let unchanged = status.current_healthy == current
        && status.desired_healthy == desired
        && status.expected_pods == expected
        && status.disruptions_allowed == allowed
        && status.disrupted_pods.clone().unwrap_or_default() == disrupted
        && conditions_up_to_date(&status, generation);
    if !unchanged {
        let mut conditions = status.conditions.clone().unwrap_or_default();
        set_condition(&mut conditions, allowed_condition(allowed, generation));
        let new_status = PodDisruptionBudgetStatus {
            current_healthy: current,
            desired_healthy: desired,
            expected_pods: expected,
            disruptions_allowed: allowed,
            disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
            observed_generation: generation,
            conditions: Some(conditions),
        };
        if let Some(wait) = write(&api, &pdb, new_status).await? {
            return Ok(wait);
        }
    }
    Ok(match recheck {
        Some(at) => {
            let wait = at.duration_since(now).unsigned_abs();
            Action::requeue(wait.max(Duration::from_millis(100)))
        }
        None => Action::await_change(),
    })
}

/// Writes the status over the cached object (its resourceVersion guards the write). A conflict
/// means someone (an eviction) changed the budget: the fresh object's event syncs again, so the
/// answer is to wait, never to overwrite.
async fn write(
    api: &Api<PodDisruptionBudget>,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
) -> Result<Option<Action>, kube::Error> {
    let mut new = pdb.clone();
    new.status = Some(status);
    match api
        .replace_status(&pdb.name_any(), &PostParams::default(), &new)
        .await
    {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(Some(Action::requeue(Duration::from_secs(1))))
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Some(Action::await_change())),
        Err(e) => Err(e),
    }
}

/// Upstream's failSafe: no disruptions, and the DisruptionAllowed condition says why. Retried a
/// little later, since the usual cause (a pod whose controller the caches have not shown yet)
/// passes on its own.
async fn fail_safe(
    api: &Api<PodDisruptionBudget>,
    pdb: &PodDisruptionBudget,
    message: String,
) -> Result<Action, kube::Error> {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let mut conditions = status.conditions.clone().unwrap_or_default();
    set_condition(
        &mut conditions,
        Condition {
            type_: CONDITION.into(),
            status: "False".into(),
            reason: SYNC_FAILED.into(),
            message,
            observed_generation: status.observed_generation,
            last_transition_time: Time(Timestamp::now()),
        },
    );
    let same = pdb
        .status
        .as_ref()
        .is_some_and(|s| s.disruptions_allowed == 0 && s.conditions.as_ref() == Some(&conditions));
    status.conditions = Some(conditions);
    if !same {
        if let Some(wait) = write(api, pdb, status).await? {
            return Ok(wait);
        }
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}

fn retry_later(_pdb: Arc<PodDisruptionBudget>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("disruption controller: {error}");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn percentages_scale_as_upstream() {
        assert_eq!(scaled_value(&pct("50%"), 3, true), Ok(2));
        assert_eq!(scaled_value(&pct("50%"), 3, false), Ok(1));
        assert_eq!(scaled_value(&pct("34%"), 3, true), Ok(2));
        assert_eq!(scaled_value(&pct("100%"), 7, true), Ok(7));
        assert_eq!(scaled_value(&pct("0%"), 7, true), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(2), 7, true), Ok(2));
        assert!(scaled_value(&pct("5"), 7, true).is_err());
        assert!(scaled_value(&pct("x%"), 7, true).is_err());
    }

    fn pod(name: &str, ready: bool, owner_uid: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                owner_references: owner_uid.map(|u| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: format!("rs-{u}"),
                        uid: u.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn budget(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta::default(),
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn expected_and_desired_counts() {
        // Two pods of one controller scaled to 4 (one pod missing), one of another scaled to 2.
        let pods = vec![
            pod("a", true, Some("u1")),
            pod("b", true, Some("u1")),
            pod("c", true, Some("u2")),
        ];
        let scale =
            |o: &OwnerReference, _: &str| Some((o.uid.clone(), if o.uid == "u1" { 4 } else { 2 }));
        // Integer minAvailable: the pods found are expected.
        assert_eq!(
            expected_counts(&budget(Some(IntOrString::Int(2)), None), &pods, scale),
            Ok((3, 2, vec![]))
        );
        // Percentage minAvailable: of the controllers' scale (6), rounded up.
        assert_eq!(
            expected_counts(&budget(Some(pct("50%")), None), &pods, scale),
            Ok((6, 3, vec![]))
        );
        assert_eq!(
            expected_counts(&budget(Some(pct("34%")), None), &pods, scale),
            Ok((6, 3, vec![]))
        );
        // maxUnavailable: scale minus the (rounded up) unavailable share, never below 0.
        assert_eq!(
            expected_counts(&budget(None, Some(IntOrString::Int(1))), &pods, scale),
            Ok((6, 5, vec![]))
        );
        assert_eq!(
            expected_counts(&budget(None, Some(pct("10%"))), &pods, scale),
            Ok((6, 5, vec![]))
        );
        assert_eq!(
            expected_counts(&budget(None, Some(IntOrString::Int(9))), &pods, scale),
            Ok((6, 0, vec![]))
        );
        // Unknown controller: an error; no controller: reported as unmanaged.
        let err = expected_counts(
            &budget(None, Some(IntOrString::Int(1))),
            &pods,
            |_: &OwnerReference, _: &str| None,
        );
        assert_eq!(err, Err("found no controllers for pod \"a\"".to_string()));
        let loose = vec![pod("x", true, None)];
        assert_eq!(
            expected_counts(&budget(Some(pct("50%")), None), &loose, scale),
            Ok((0, 0, vec!["x".to_string()]))
        );
    }

    #[test]
    fn healthy_count_and_allowed_disruptions() {
        let pods = vec![
            pod("a", true, None),
            pod("b", true, None),
            pod("c", false, None),
        ];
        let now = Timestamp::now();
        let recent = Time(now.saturating_sub(SignedDuration::from_secs(30)).unwrap());
        let old = Time(now.saturating_sub(SignedDuration::from_secs(300)).unwrap());
        let recorded = BTreeMap::from([
            ("a".to_string(), recent.clone()),
            ("b".to_string(), old),
            ("gone".to_string(), recent.clone()),
        ]);
        let (kept, recheck, expired) = disrupted_pods(Some(&recorded), &pods, now);
        // "a" stays recorded (and is re-checked when its 2 minutes end); "b" expired; "gone" is gone.
        assert_eq!(kept, BTreeMap::from([("a".to_string(), recent.clone())]));
        assert_eq!(
            recheck,
            Some(
                recent
                    .0
                    .saturating_add(SignedDuration::from_secs(120))
                    .unwrap()
            )
        );
        assert_eq!(expired, vec!["b".to_string()]);
        assert_eq!(count_healthy(&pods, &kept), 1);
        assert_eq!(count_healthy(&pods, &BTreeMap::new()), 2);
        assert_eq!(disruptions_allowed(3, 2, 3), 1);
        assert_eq!(disruptions_allowed(2, 2, 3), 0);
        assert_eq!(disruptions_allowed(1, 2, 3), 0);
        assert_eq!(disruptions_allowed(3, 0, 0), 0);
    }

    #[test]
    fn condition_transition_time_moves_only_with_status() {
        let mut conds = vec![];
        let mut first = allowed_condition(1, Some(1));
        first.last_transition_time = Time(Timestamp::from_second(100).unwrap());
        set_condition(&mut conds, first);
        set_condition(&mut conds, allowed_condition(2, Some(2)));
        assert_eq!(
            conds[0].last_transition_time.0,
            Timestamp::from_second(100).unwrap()
        );
        assert_eq!(conds[0].observed_generation, Some(2));
        set_condition(&mut conds, allowed_condition(0, Some(2)));
        assert_eq!(
            (conds[0].status.as_str(), conds[0].reason.as_str()),
            ("False", INSUFFICIENT)
        );
        assert_ne!(
            conds[0].last_transition_time.0,
            Timestamp::from_second(100).unwrap()
        );
    }
}
