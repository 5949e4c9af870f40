//! Upstream's HorizontalPodAutoscaler controller (pkg/controller/podautoscaler): every 15 s it
//! reads each autoscaling/v2 HPA's target through the target's `scale` subresource, asks the
//! resource metrics API (`metrics.k8s.io`) what the selected pods use, computes the replica count
//! that brings that usage to the target, bounds it by `minReplicas`/`maxReplicas` and
//! `spec.behavior`, writes the count to the scale subresource and the outcome to the HPA's status
//! (what `kubectl get hpa` and `kubectl describe hpa` print), with upstream's conditions, events
//! and messages.
//!
//! Start at [`reconcile`], then `sync` (upstream's reconcileAutoscaler). The arithmetic is pure and
//! tested apart: [`resource_replicas`] and [`plain_replicas`] are upstream's ReplicaCalculator
//! (with its handling of pods that have no metrics yet and of pods not ready), [`normalize`] and
//! [`normalize_with_behaviors`] bound a proposal by the stabilization windows and the scaling
//! policies over the [`History`] each HPA keeps. As upstream, that history lives in the
//! controller's memory only: a restart or a new leader starts it afresh.
//!
//! Metrics: `Resource` and `ContainerResource` are computed. `Pods`, `Object` and `External` need
//! the custom and external metrics APIs, which rkube does not serve: they fail as upstream's do
//! when no such API is registered, and as upstream the metrics that worked still decide.
//!
//! Watches HPAs and pods as the controller manager; reads metrics, reads and updates scales, writes
//! status and records events as `system:serviceaccount:kube-system:horizontal-pod-autoscaler`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, CrossVersionObjectReference, HPAScalingRules,
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus, MetricTarget, MetricValueStatus, ResourceMetricSource,
    ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as MetaSelector, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;
use kube::ResourceExt;
use serde_json::{Map, Value};

use super::common::{self, Recorder};
use super::cron_schedule::go_duration;
use super::Clients;
use crate::apiserver::registry::selectors::LabelSelector;
use crate::apiserver::wire::quantity::Quantity;

/// How often each HPA is synced (upstream's `--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// How far the usage ratio may stray from 1 before the count changes
/// (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;
/// How long after its start a pod's CPU samples may still be its start-up burst
/// (`--horizontal-pod-autoscaler-cpu-initialization-period`).
const CPU_INITIALIZATION_PERIOD: SignedDuration = SignedDuration::from_secs(5 * 60);
/// How long after its start a pod not ready is taken as never ready yet
/// (`--horizontal-pod-autoscaler-initial-readiness-delay`).
const INITIAL_READINESS_DELAY: SignedDuration = SignedDuration::from_secs(30);
/// The scale-down stabilization window when `spec.behavior` does not name one
/// (`--horizontal-pod-autoscaler-downscale-stabilization`).
pub const DOWNSCALE_STABILIZATION_SECONDS: i32 = 300;
/// Without `spec.behavior`, one sync grows the target at most to max(2 × current, 4) (upstream's
/// scaleUpLimitFactor and scaleUpLimitMinimum).
const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

pub const ABLE_TO_SCALE: &str = "AbleToScale";
pub const SCALING_ACTIVE: &str = "ScalingActive";
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// What the custom metrics client answers when the apiserver serves no `custom.metrics.k8s.io`.
const NO_CUSTOM_METRICS_API: &str = "unable to fetch metrics from custom metrics API: no custom \
                                     metrics API (custom.metrics.k8s.io) registered";

struct Ctx {
    clients: Clients,
    pods: Store<Pod>,
    hpas: Store<HorizontalPodAutoscaler>,
    recorder: Recorder,
    /// Per HPA (`namespace/name`): what upstream keeps in the controller between syncs.
    memory: Mutex<HashMap<String, Memory>>,
}

/// What the controller remembers of one HPA between syncs.
#[derive(Default)]
struct Memory {
    /// The HPA's uid: a new object of the same name starts afresh.
    uid: String,
    namespace: String,
    last_sync: Option<Instant>,
    /// The target's pod selector as last read (to find pods two HPAs both control).
    selector: Option<LabelSelector>,
    history: History,
}

pub async fn run(clients: Clients) {
    // Pods only fill the cache: their changes do not sync an HPA (upstream's pod informer has no
    // handler either; the 15 s resync reads them).
    let pods = clients.informers.store::<Pod>();
    let controller = Controller::new(
        Api::<HorizontalPodAutoscaler>::all(clients.reader.clone()),
        Default::default(),
    );
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), "horizontal-pod-autoscaler"),
        hpas: controller.store(),
        clients,
        pods,
        memory: Mutex::default(),
    });
    controller
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("horizontal-pod-autoscaler: {e}");
            }
        })
        .await;
}

/// Syncs one HPA and asks to be called again in [`SYNC_PERIOD`]. Upstream queues every change with
/// that same delay, so an HPA is never synced twice within one period: the watch events this
/// controller's own status writes cause would otherwise sync again at once and scale a second time
/// on the same metrics. A change is therefore deferred to the period's end, except the first sight
/// of an HPA, which syncs at once.
async fn reconcile(
    hpa: Arc<HorizontalPodAutoscaler>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::Error> {
    common::ready(&ctx.pods).await;
    let key = common::key_of(hpa.as_ref());
    if let Some(wait) = ctx.begin_sync(&hpa, &key) {
        return Ok(Action::requeue(wait));
    }
    if let Err(e) = sync(&ctx, &hpa, &key).await {
        tracing::info!("horizontal-pod-autoscaler: {key}: {e}");
    }
    Ok(Action::requeue(SYNC_PERIOD))
}

fn retry_later(_hpa: Arc<HorizontalPodAutoscaler>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("horizontal-pod-autoscaler: {error}");
    Action::requeue(SYNC_PERIOD)
}

impl Ctx {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Memory>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets HPAs that are gone (the runtime never reconciles a deleted object, where upstream
    /// drops them), then says how long this one must still wait if it synced less than a period
    /// ago.
    fn begin_sync(&self, hpa: &HorizontalPodAutoscaler, key: &str) -> Option<Duration> {
        let live: HashMap<String, String> = self
            .hpas
            .state()
            .iter()
            .map(|h| (common::key_of(h.as_ref()), h.uid().unwrap_or_default()))
            .collect();
        let uid = hpa.uid().unwrap_or_default();
        let mut memory = self.lock();
        memory.retain(|k, m| live.get(k) == Some(&m.uid));
        let m = memory.entry(key.to_string()).or_default();
        if m.uid != uid {
            *m = Memory {
                uid,
                ..Default::default()
            };
        }
        m.namespace = hpa.namespace().unwrap_or_default();
        if let Some(last) = m.last_sync {
            // A second of slack: the runtime's requeue may fire a hair before the period is up.
            let elapsed = last.elapsed();
            if elapsed + Duration::from_secs(1) < SYNC_PERIOD {
                return Some(SYNC_PERIOD - elapsed);
            }
        }
        m.last_sync = Some(Instant::now());
        None
    }

    async fn event(
        &self,
        hpa: &HorizontalPodAutoscaler,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        common::record(&self.recorder, hpa, type_, reason, "Scale", note).await;
    }

    /// The cached pods of `namespace` that `selector` selects (upstream's podLister.List).
    fn pods_selected(&self, namespace: &str, selector: &LabelSelector) -> Vec<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| {
                p.namespace().as_deref() == Some(namespace) && selector.matches(Some(&labels_of(p)))
            })
            .collect()
    }

    /// Upstream's validateAndParseSelector: the target's selector must be there, parse, and select
    /// no pod another HPA's selector also selects. Returns the selector and its pods, or the error
    /// (with the condition set and the event recorded).
    async fn selector_and_pods(
        &self,
        hpa: &mut HorizontalPodAutoscaler,
        key: &str,
        namespace: &str,
        selector: &str,
    ) -> Result<(LabelSelector, Vec<Arc<Pod>>), String> {
        if selector.is_empty() {
            let msg = "selector is required".to_string();
            self.event(hpa, EventType::Warning, "SelectorRequired", msg.clone())
                .await;
            set_condition(
                hpa,
                SCALING_ACTIVE,
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            );
            return Err(msg);
        }
        let parsed = match LabelSelector::parse(selector) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                );
                self.event(hpa, EventType::Warning, "InvalidSelector", msg.clone())
                    .await;
                set_condition(hpa, SCALING_ACTIVE, false, "InvalidSelector", msg.clone());
                return Err(msg);
            }
        };
        let pods = self.pods_selected(namespace, &parsed);
        let controlling = {
            let mut memory = self.lock();
            if let Some(m) = memory.get_mut(key) {
                m.selector = Some(parsed.clone());
            }
            let mut keys: Vec<String> = memory
                .iter()
                .filter(|(_, m)| m.namespace == namespace)
                .filter(|(_, m)| {
                    m.selector
                        .as_ref()
                        .is_some_and(|s| pods.iter().any(|p| s.matches(Some(&labels_of(p)))))
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.sort();
            keys
        };
        if controlling.len() > 1 {
            let msg = format!(
                "pods by selector {selector} are controlled by multiple HPAs: [{}]",
                controlling.join(" ")
            );
            self.event(hpa, EventType::Warning, "AmbiguousSelector", msg.clone())
                .await;
            set_condition(hpa, SCALING_ACTIVE, false, "AmbiguousSelector", msg.clone());
            return Err(msg);
        }
        Ok((parsed, pods))
    }

    /// Upstream's computeReplicasForMetrics: every metric's proposal, the largest winning. Fails
    /// (the error, and the statuses to show) when every metric failed, or some failed and the
    /// others would scale down (a failed metric might have wanted more). Otherwise returns the
    /// count, the metric that asked for it, the statuses, and the first failure if any (scaling
    /// goes ahead).
    async fn compute_replicas_for_metrics(
        &self,
        hpa: &mut HorizontalPodAutoscaler,
        key: &str,
        scale: &Scale,
    ) -> Result<MetricsOutcome, (String, Option<Vec<MetricStatus>>)> {
        let namespace = hpa.namespace().unwrap_or_default();
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let (selector, pods) = self
            .selector_and_pods(hpa, key, &namespace, &selector)
            .await
            .map_err(|e| (e, None))?;
        let specs = metric_specs(hpa);
        let spec_replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        // One read of the resource metrics API serves every Resource and ContainerResource metric.
        let wants_resources = specs
            .iter()
            .any(|s| matches!(s.type_.as_str(), "Resource" | "ContainerResource"));
        let fetched = if wants_resources {
            Some(fetch_pod_metrics(&self.clients.writer, &namespace, &selector).await)
        } else {
            None
        };
        let now = Timestamp::now();
        let mut statuses = vec![MetricStatus::default(); specs.len()];
        let (mut replicas, mut metric) = (0, String::new());
        let mut failures = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            match compute_metric(
                spec,
                spec_replicas,
                &namespace,
                fetched.as_ref(),
                &pods,
                now,
            ) {
                Ok(p) => {
                    statuses[i] = p.status;
                    if replicas == 0 || p.replicas > replicas {
                        replicas = p.replicas;
                        metric = p.metric;
                    }
                }
                Err(f) => failures.push(f),
            }
        }
        for f in &failures {
            self.event(hpa, EventType::Warning, f.reason, f.message.clone())
                .await;
        }
        let error = failures.first().map(|f| {
            format!(
                "invalid metrics ({} invalid out of {}), first error is: {}",
                failures.len(),
                specs.len(),
                f.error
            )
        });
        if let Some(first) = failures.first() {
            if failures.len() >= specs.len() || replicas < spec_replicas {
                set_condition(
                    hpa,
                    SCALING_ACTIVE,
                    false,
                    first.reason,
                    format!(
                        "the HPA was unable to compute the replica count: {}",
                        first.message
                    ),
                );
                return Err((error.unwrap_or_default(), Some(statuses)));
            }
        }
        set_condition(
            hpa,
            SCALING_ACTIVE,
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
        );
        Ok(MetricsOutcome {
            replicas,
            metric,
            statuses,
            error,
        })
    }

    /// Upstream's updateStatusIfNeeded: writes the status when it changed.
    async fn update_status_if_needed(
        &self,
        original: &Option<HorizontalPodAutoscalerStatus>,
        hpa: &HorizontalPodAutoscaler,
    ) -> Result<(), String> {
        if original == &hpa.status {
            return Ok(());
        }
        let Some(status) = hpa.status.clone() else {
            return Ok(());
        };
        let api = Api::<HorizontalPodAutoscaler>::namespaced(
            self.clients.writer.clone(),
            &hpa.namespace().unwrap_or_default(),
        );
        if let Err(e) = common::write_status(&api, hpa, status, |h, s| h.status = Some(s)).await {
            let e = error_text(&e, "update horizontalpodautoscalers.autoscaling");
            self.event(hpa, EventType::Warning, "FailedUpdateStatus", e.clone())
                .await;
            return Err(format!(
                "failed to update status for {}: {e}",
                hpa.name_any()
            ));
        }
        Ok(())
    }
}

/// What the metrics proposed, when they could (see `compute_replicas_for_metrics`).
struct MetricsOutcome {
    replicas: i32,
    metric: String,
    statuses: Vec<MetricStatus>,
    error: Option<String>,
}

/// Upstream's reconcileAutoscaler: the target's scale, the metrics' proposal bounded by the limits
/// and the behavior, the new scale, the status.
async fn sync(ctx: &Ctx, shared: &HorizontalPodAutoscaler, key: &str) -> Result<(), String> {
    let mut hpa = shared.clone();
    let original = hpa.status.clone();
    let namespace = hpa.namespace().unwrap_or_default();
    let spec = hpa.spec.clone().unwrap_or_default();
    let target = &spec.scale_target_ref;
    let reference = format!("{}/{}/{}", target.kind, namespace, target.name);
    let writer = &ctx.clients.writer;

    let got = match target_resource(writer, target).await {
        Ok(resource) => {
            let api = Api::<DynamicObject>::namespaced_with(writer.clone(), &namespace, &resource);
            match api.get_scale(&target.name).await {
                Ok(scale) => Ok((api, scale)),
                Err(e) => Err(error_text(
                    &e,
                    &format!("get {}", group_resource(&resource)),
                )),
            }
        }
        Err(e) => Err(e),
    };
    let (scales, scale) = match got {
        Ok(v) => v,
        Err(e) => {
            ctx.event(&hpa, EventType::Warning, "FailedGetScale", e.clone())
                .await;
            set_condition(
                &mut hpa,
                ABLE_TO_SCALE,
                false,
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
            ctx.update_status_if_needed(&original, &hpa).await?;
            return Err(format!(
                "failed to query scale subresource for {reference}: {e}"
            ));
        }
    };
    set_condition(
        &mut hpa,
        ABLE_TO_SCALE,
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    with_memory(ctx, key, |m| {
        m.history.record_initial(current, Instant::now())
    });
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let previous_desired = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);

    let mut desired = 0;
    let mut reason = String::new();
    let mut rescale = true;
    let mut statuses = None;
    let mut partial_error = None;
    if current == 0 && min != 0 {
        // Someone scaled the target to zero: that turns autoscaling off until they scale it up.
        rescale = false;
        set_condition(
            &mut hpa,
            SCALING_ACTIVE,
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
    } else if current > max {
        reason = "Current number of replicas above Spec.MaxReplicas".into();
        desired = max;
    } else if current < min {
        reason = "Current number of replicas below Spec.MinReplicas".into();
        desired = min;
    } else {
        let outcome = match ctx
            .compute_replicas_for_metrics(&mut hpa, key, &scale)
            .await
        {
            Ok(o) => o,
            Err((e, metric_statuses)) => {
                set_status(&mut hpa, current, previous_desired, metric_statuses, false);
                let written = ctx.update_status_if_needed(&original, &hpa).await;
                ctx.event(
                    &hpa,
                    EventType::Warning,
                    "FailedComputeMetricsReplicas",
                    e.clone(),
                )
                .await;
                written?;
                return Err(format!(
                    "failed to compute desired number of replicas based on listed metrics for \
                     {reference}: {e}"
                ));
            }
        };
        statuses = Some(outcome.statuses);
        partial_error = outcome.error;
        let mut rescale_metric = String::new();
        if outcome.replicas > desired {
            desired = outcome.replicas;
            rescale_metric = outcome.metric;
        }
        if desired > current {
            reason = format!("{rescale_metric} above target");
        }
        if desired < current {
            reason = "All metrics below target".into();
        }
        let now = Instant::now();
        let normalized = with_memory(ctx, key, |m| match spec.behavior.as_ref() {
            None => normalize(&mut m.history, current, desired, min, max, now),
            Some(b) => normalize_with_behaviors(
                &mut m.history,
                &Normalization {
                    up: &scale_up_rules(b.scale_up.as_ref()),
                    down: &scale_down_rules(b.scale_down.as_ref()),
                    min,
                    max,
                    current,
                    desired,
                },
                now,
            ),
        });
        set_condition(
            &mut hpa,
            ABLE_TO_SCALE,
            true,
            normalized.able.0,
            normalized.able.1,
        );
        set_condition(
            &mut hpa,
            SCALING_LIMITED,
            normalized.limited,
            normalized.limit.0,
            normalized.limit.1,
        );
        desired = normalized.replicas;
        rescale = desired != current;
    }

    if rescale {
        let mut new_scale = scale.clone();
        new_scale.spec = Some(ScaleSpec {
            replicas: Some(desired),
        });
        if let Err(e) = scales
            .replace_scale(&target.name, &PostParams::default(), &new_scale)
            .await
        {
            let e = error_text(&e, "update scale");
            ctx.event(
                &hpa,
                EventType::Warning,
                "FailedRescale",
                format!("New size: {desired}; reason: {reason}; error: {e}"),
            )
            .await;
            set_condition(
                &mut hpa,
                ABLE_TO_SCALE,
                false,
                "FailedUpdateScale",
                format!("the HPA controller was unable to update the target scale: {e}"),
            );
            set_status(&mut hpa, current, previous_desired, statuses, false);
            ctx.update_status_if_needed(&original, &hpa).await?;
            return Err(format!("failed to rescale {reference}: {e}"));
        }
        set_condition(
            &mut hpa,
            ABLE_TO_SCALE,
            true,
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {desired}"),
        );
        ctx.event(
            &hpa,
            EventType::Normal,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        )
        .await;
        if let Some(b) = spec.behavior.as_ref() {
            let (up, down) = (
                scale_up_rules(b.scale_up.as_ref()),
                scale_down_rules(b.scale_down.as_ref()),
            );
            with_memory(ctx, key, |m| {
                m.history
                    .store_scale_event(&up, &down, current, desired, Instant::now())
            });
        }
        tracing::info!(
            "horizontal-pod-autoscaler: {key}: rescaled {reference} from {current} to {desired}: \
             {reason}"
        );
    } else {
        desired = current;
    }
    set_status(&mut hpa, current, desired, statuses, rescale);
    ctx.update_status_if_needed(&original, &hpa).await?;
    partial_error.map_or(Ok(()), Err)
}

fn with_memory<R>(ctx: &Ctx, key: &str, f: impl FnOnce(&mut Memory) -> R) -> R {
    let mut memory = ctx.lock();
    f(memory.entry(key.to_string()).or_default())
}

/// The HPA's metrics; none means upstream's default, 80% of the pods' CPU request (the apiserver
/// defaults it so; an object stored otherwise still gets it).
fn metric_specs(hpa: &HorizontalPodAutoscaler) -> Vec<MetricSpec> {
    let specs = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .unwrap_or_default();
    if !specs.is_empty() {
        return specs;
    }
    vec![MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(80),
                ..Default::default()
            },
        }),
        ..Default::default()
    }]
}

/// Upstream's setStatus: a new status keeping the last scale time (now, when this sync scaled) and
/// the conditions. Upstream's `currentReplicas` and `currentMetrics` are omitted when empty.
fn set_status(
    hpa: &mut HorizontalPodAutoscaler,
    current: i32,
    desired: i32,
    metrics: Option<Vec<MetricStatus>>,
    rescale: bool,
) {
    let old = hpa.status.take().unwrap_or_default();
    hpa.status = Some(HorizontalPodAutoscalerStatus {
        current_replicas: (current != 0).then_some(current),
        desired_replicas: desired,
        last_scale_time: if rescale {
            Some(Time(Timestamp::now()))
        } else {
            old.last_scale_time
        },
        current_metrics: metrics.filter(|m| !m.is_empty()),
        conditions: old.conditions,
        observed_generation: hpa.metadata.generation,
    });
}

/// Upstream's setCondition: replaces the condition of that type (adding it if missing), moving its
/// `lastTransitionTime` only when its status changes.
pub fn set_condition(
    hpa: &mut HorizontalPodAutoscaler,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
) {
    let status = if status { "True" } else { "False" };
    let conditions = hpa
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let index = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.to_string(),
                ..Default::default()
            });
            conditions.len() - 1
        }
    };
    let c = &mut conditions[index];
    if c.status != status {
        c.last_transition_time = Some(Time(Timestamp::now()));
    }
    c.status = status.to_string();
    c.reason = Some(reason.to_string());
    c.message = Some(message.into());
}

// -------------------------------------------------------------------------------------------------
// The scale target
// -------------------------------------------------------------------------------------------------

/// Upstream's schema.ParseGroupVersion: `""`, `v1`, `group/version`.
pub fn parse_group_version(api_version: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = api_version.split('/').collect();
    match parts.as_slice() {
        [""] => Ok((String::new(), String::new())),
        [version] => Ok((String::new(), version.to_string())),
        [group, version] => Ok((group.to_string(), version.to_string())),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

/// The built-in kinds with a scale subresource, found without asking discovery.
pub fn builtin_scalable(group: &str, kind: &str) -> Option<ApiResource> {
    let plural = match (group, kind) {
        ("apps", "Deployment") => "deployments",
        ("apps", "ReplicaSet") => "replicasets",
        ("apps", "StatefulSet") => "statefulsets",
        ("", "ReplicationController") => "replicationcontrollers",
        _ => return None,
    };
    let version = "v1";
    Some(ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.to_string(),
        plural: plural.to_string(),
    })
}

/// The resource a scale target reference names, as upstream's RESTMapper finds it: by group and
/// kind (the reference's version does not matter), a built-in or else whatever discovery serves
/// (custom resources with a scale subresource).
async fn target_resource(
    client: &kube::Client,
    target: &CrossVersionObjectReference,
) -> Result<ApiResource, String> {
    let (group, _) = parse_group_version(target.api_version.as_deref().unwrap_or(""))?;
    if let Some(r) = builtin_scalable(&group, &target.kind) {
        return Ok(r);
    }
    let no_match = || format!("no matches for kind {:?} in group {:?}", target.kind, group);
    match kube::discovery::group(client, &group).await {
        Ok(g) => g
            .recommended_kind(&target.kind)
            .map(|(r, _)| r)
            .ok_or_else(no_match),
        Err(kube::Error::Discovery(_)) => Err(no_match()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(no_match()),
        Err(e) => Err(error_text(&e, "get discovery")),
    }
}

fn group_resource(r: &ApiResource) -> String {
    if r.group.is_empty() {
        r.plural.clone()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

/// An API error as client-go prints it: the Status message, with what was asked when the server
/// said only that it does not serve the path.
fn error_text(e: &kube::Error, request: &str) -> String {
    match e {
        kube::Error::Api(s)
            if s.code == 404 && s.message == "the server could not find the requested resource" =>
        {
            format!("{} ({request})", s.message)
        }
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        kube::Error::Api(s) => s.reason.clone(),
        other => other.to_string(),
    }
}

// -------------------------------------------------------------------------------------------------
// Metrics
// -------------------------------------------------------------------------------------------------

/// The pods' PodMetricsList from the resource metrics API (upstream's resourceMetricsClient; there
/// are no generated types for metrics.k8s.io, so it stays JSON).
async fn fetch_pod_metrics(
    client: &kube::Client,
    namespace: &str,
    selector: &LabelSelector,
) -> Result<Value, String> {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("labelSelector", &selector.to_string())
        .finish();
    let url = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods?{query}");
    let request = http::Request::get(url)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    client.request::<Value>(request).await.map_err(|e| {
        format!(
            "unable to fetch metrics from resource metrics API: {}",
            error_text(&e, "get pods.metrics.k8s.io")
        )
    })
}

/// A quantity (`250m`, `1`, `250000000n`, `10Mi`) in milli-units, rounded up as upstream's
/// MilliValue. Upstream computes in milli-units for every resource (memory in milli-bytes): the
/// utilization is a ratio, and average values are printed back from milli-units.
pub fn milli(q: &str) -> Option<i64> {
    Quantity::parse(q.trim()).ok().map(|q| {
        i64::try_from(q.milli_value()).unwrap_or(if q.is_negative() { i64::MIN } else { i64::MAX })
    })
}

/// A milli-unit amount as upstream's `resource.NewMilliQuantity(v, DecimalSI)` prints it.
pub fn milli_quantity(milli: i64) -> K8sQuantity {
    let text = format!("{milli}m");
    K8sQuantity(
        Quantity::parse(&text)
            .map(|q| q.to_string())
            .unwrap_or(text),
    )
}

/// One pod's usage as the metrics API reported it (upstream's PodMetric), in milli-units.
#[derive(Clone, Debug, PartialEq)]
pub struct PodMetric {
    pub value: i64,
    pub timestamp: Timestamp,
    pub window: SignedDuration,
}

impl PodMetric {
    /// A value the calculator substitutes for a pod it has no usable sample of.
    fn assumed(value: i64) -> PodMetric {
        PodMetric {
            value,
            timestamp: Timestamp::MIN,
            window: SignedDuration::ZERO,
        }
    }
}

pub type PodMetrics = BTreeMap<String, PodMetric>;

/// Upstream's getPodMetrics / getContainerMetrics over a PodMetricsList: per pod, the usage of
/// `resource` summed over its containers (or of `container` only). A pod one of whose containers
/// reports no such usage (or that lacks `container`) is left out: the calculator then treats it as
/// missing.
pub fn pod_metrics(
    list: &Value,
    resource: &str,
    container: Option<&str>,
) -> Result<PodMetrics, String> {
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if items.is_empty() {
        return Err("no metrics returned from resource metrics API".into());
    }
    let usage = |c: &Value| -> Option<i64> {
        match c.get("usage")?.get(resource)? {
            Value::String(s) => milli(s),
            Value::Number(n) => milli(&n.to_string()),
            _ => None,
        }
    };
    let mut out = PodMetrics::new();
    for item in items {
        let Some(name) = item.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let containers = item
            .get("containers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let value = match container {
            None if containers.is_empty() => None,
            None => containers
                .iter()
                .try_fold(0i64, |sum, c| usage(c).map(|v| sum.saturating_add(v))),
            Some(wanted) => containers
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(wanted))
                .and_then(usage),
        };
        let Some(value) = value else { continue };
        out.insert(
            name.to_string(),
            PodMetric {
                value,
                // Go's zero time when absent: older than any readiness change.
                timestamp: item
                    .get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(Timestamp::MIN),
                window: item
                    .get("window")
                    .and_then(Value::as_str)
                    .and_then(|w| go_duration(w).ok())
                    .unwrap_or(SignedDuration::ZERO),
            },
        );
    }
    Ok(out)
}

fn labels_of(pod: &Pod) -> Map<String, Value> {
    pod.labels()
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// What one metric proposes (upstream's computeReplicasForMetric).
#[derive(Debug)]
pub struct Proposal {
    pub replicas: i32,
    /// How upstream names the metric in conditions and events (`cpu resource utilization
    /// (percentage of request)`).
    pub metric: String,
    pub status: MetricStatus,
}

/// Why a metric could not be computed: the condition's reason; the error as the event and the
/// condition carry it; and as it is returned (wrapped once more, as upstream wraps it).
#[derive(Debug, PartialEq)]
pub struct MetricFailure {
    pub reason: &'static str,
    pub message: String,
    pub error: String,
}

/// One metric's proposal. `fetched` is the resource metrics API's answer (read when the HPA has a
/// Resource or ContainerResource metric); `pods` are the pods the target's selector selects.
pub fn compute_metric(
    spec: &MetricSpec,
    spec_replicas: i32,
    namespace: &str,
    fetched: Option<&Result<Value, String>>,
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> Result<Proposal, MetricFailure> {
    let fail = |reason, message: String, error: String| MetricFailure {
        reason,
        message,
        error,
    };
    match spec.type_.as_str() {
        "Resource" => {
            let reason = "FailedGetResourceMetric";
            let Some(src) = spec.resource.as_ref() else {
                let e = "invalid resource metric source: the resource field is not set".to_string();
                return Err(fail(reason, e.clone(), e));
            };
            let calc = ResourceCalc {
                current: spec_replicas,
                resource: &src.name,
                container: None,
                fetched,
                pods,
                now,
            };
            match calc.compute(&src.target) {
                Ok((replicas, current, metric)) => Ok(Proposal {
                    replicas,
                    metric,
                    status: MetricStatus {
                        type_: "Resource".into(),
                        resource: Some(ResourceMetricStatus {
                            name: src.name.clone(),
                            current,
                        }),
                        ..Default::default()
                    },
                }),
                Err(e) => Err(fail(
                    reason,
                    e.clone(),
                    format!("failed to get {} resource metric value: {e}", src.name),
                )),
            }
        }
        "ContainerResource" => {
            let reason = "FailedGetContainerResourceMetric";
            let Some(src) = spec.container_resource.as_ref() else {
                let e = "invalid container resource metric source: the containerResource field \
                         is not set"
                    .to_string();
                return Err(fail(reason, e.clone(), e));
            };
            let calc = ResourceCalc {
                current: spec_replicas,
                resource: &src.name,
                container: Some(&src.container),
                fetched,
                pods,
                now,
            };
            match calc.compute(&src.target) {
                Ok((replicas, current, metric)) => Ok(Proposal {
                    replicas,
                    metric,
                    status: MetricStatus {
                        type_: "ContainerResource".into(),
                        container_resource: Some(ContainerResourceMetricStatus {
                            name: src.name.clone(),
                            container: src.container.clone(),
                            current,
                        }),
                        ..Default::default()
                    },
                }),
                Err(e) => Err(fail(
                    reason,
                    e.clone(),
                    format!(
                        "failed to get {} container metric value: {e}",
                        src.container
                    ),
                )),
            }
        }
        "Pods" => {
            let name = spec.pods.as_ref().map_or("", |p| p.metric.name.as_str());
            let e = format!("unable to get metric {name}: {NO_CUSTOM_METRICS_API}");
            Err(fail(
                "FailedGetPodsMetric",
                e.clone(),
                format!("failed to get pods metric value: {e}"),
            ))
        }
        "Object" => {
            let reason = "FailedGetObjectMetric";
            let Some(o) = spec.object.as_ref() else {
                let e = "invalid object metric source: neither a value target nor an average \
                         value target was set"
                    .to_string();
                return Err(fail(
                    reason,
                    e.clone(),
                    format!("failed to get object metric value: {e}"),
                ));
            };
            // Upstream's message puts its arguments in this order.
            let e = format!(
                "unable to get metric {}: {} on {} {}/{}",
                o.metric.name,
                o.described_object.kind,
                namespace,
                o.described_object.name,
                NO_CUSTOM_METRICS_API
            );
            let t = &o.target;
            let error = if t.type_ == "Value" && t.value.is_some() {
                e.clone()
            } else if t.type_ == "AverageValue" && t.average_value.is_some() {
                format!("failed to get {} object metric: {e}", o.metric.name)
            } else {
                let e = "invalid object metric source: neither a value target nor an average \
                         value target was set"
                    .to_string();
                return Err(fail(
                    reason,
                    e.clone(),
                    format!("failed to get object metric value: {e}"),
                ));
            };
            Err(fail(
                reason,
                e,
                format!("failed to get object metric value: {error}"),
            ))
        }
        "External" => {
            let reason = "FailedGetExternalMetric";
            let (name, selector, target) = match spec.external.as_ref() {
                Some(x) => (
                    x.metric.name.as_str(),
                    x.metric.selector.as_ref(),
                    Some(&x.target),
                ),
                None => ("", None, None),
            };
            let e = format!(
                "unable to get external metric {namespace}/{name}/{}: unable to fetch metrics \
                 from external metrics API: the server could not find the requested resource \
                 (get {name}.external.metrics.k8s.io)",
                go_label_selector(selector)
            );
            let (message, inner) = match target {
                Some(t) if t.average_value.is_some() => {
                    let inner = format!("failed to get {name} external metric: {e}");
                    (e, inner)
                }
                Some(t) if t.value.is_some() => {
                    let inner = format!("failed to get external metric {name}: {e}");
                    (e, inner)
                }
                _ => {
                    let e = "invalid external metric source: neither a value target nor an \
                             average value target was set"
                        .to_string();
                    (e.clone(), e)
                }
            };
            Err(fail(
                reason,
                message,
                format!("failed to get {name} external metric value: {inner}"),
            ))
        }
        other => {
            let e = format!("unknown metric source type {other:?}");
            Err(fail("InvalidMetricSourceType", e.clone(), e))
        }
    }
}

/// A label selector as Go's `%+v` prints a `*metav1.LabelSelector` (in upstream's messages).
fn go_label_selector(s: Option<&MetaSelector>) -> String {
    let Some(s) = s else {
        return "nil".into();
    };
    let labels: String = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let expressions: String = s
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e.key,
                e.operator,
                e.values.clone().unwrap_or_default().join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},\
         MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}

/// A Resource or ContainerResource metric being computed (upstream's
/// computeStatusForResourceMetricGeneric).
struct ResourceCalc<'a> {
    current: i32,
    resource: &'a str,
    container: Option<&'a str>,
    fetched: Option<&'a Result<Value, String>>,
    pods: &'a [Arc<Pod>],
    now: Timestamp,
}

impl ResourceCalc<'_> {
    fn metrics(&self, what: &str) -> Result<PodMetrics, String> {
        let resource = self.resource;
        let list = match self.fetched {
            Some(Ok(list)) => pod_metrics(list, resource, self.container),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no metrics returned from resource metrics API".into()),
        };
        list.map_err(|e| {
            format!("failed to get {resource} {what}: unable to get metrics for resource {resource}: {e}")
        })
    }

    /// The proposal, the current value as the status shows it, and the metric's name.
    fn compute(&self, target: &MetricTarget) -> Result<(i32, MetricValueStatus, String), String> {
        let resource = self.resource;
        if let Some(average) = target.average_value.as_ref() {
            let target_usage = milli(&average.0).unwrap_or(0);
            let metrics = self.metrics("usage")?;
            let (replicas, usage) = plain_replicas(
                self.current,
                target_usage,
                resource,
                self.pods,
                metrics,
                self.now,
            )
            .map_err(|e| format!("failed to get {resource} usage: {e}"))?;
            let status = MetricValueStatus {
                average_value: Some(milli_quantity(usage)),
                ..Default::default()
            };
            return Ok((replicas, status, format!("{resource} resource")));
        }
        let Some(target_utilization) = target.average_utilization else {
            return Err(
                "invalid resource metric source: neither an average utilization target \
                        nor an average value (usage) target was set"
                    .into(),
            );
        };
        let metrics = self.metrics("utilization")?;
        let usage = resource_replicas(
            self.current,
            target_utilization,
            (resource, self.container),
            self.pods,
            metrics,
            self.now,
        )
        .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
        let name = if self.container.is_some() {
            format!("{resource} container resource utilization (percentage of request)")
        } else {
            format!("{resource} resource utilization (percentage of request)")
        };
        let status = MetricValueStatus {
            average_utilization: Some(usage.utilization),
            average_value: Some(milli_quantity(usage.raw)),
            ..Default::default()
        };
        Ok((usage.replicas, status, name))
    }
}

// -------------------------------------------------------------------------------------------------
// The replica calculator
// -------------------------------------------------------------------------------------------------

/// Whether a usage ratio is close enough to 1 to leave the count as it is.
fn within_tolerance(ratio: f64) -> bool {
    ((1.0 - TOLERANCE)..=(1.0 + TOLERANCE)).contains(&ratio)
}

/// Go's `int32(math.Ceil(x))`, saturating.
fn ceil_i32(x: f64) -> i32 {
    x.ceil() as i32
}

fn plus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.saturating_add(d).unwrap_or(t)
}

/// The pods a calculation sees, sorted as upstream's groupPods sorts them.
#[derive(Debug, Default, PartialEq)]
pub struct Groups {
    /// Pods whose sample counts as is.
    pub ready: usize,
    /// Pending pods, and for CPU pods not ready or whose sample may be their start-up burst: left
    /// out, and taken as using nothing when the others ask for more.
    pub unready: BTreeSet<String>,
    /// Pods without a sample.
    pub missing: BTreeSet<String>,
    /// Pods being deleted, or failed.
    pub ignored: BTreeSet<String>,
}

/// Upstream's groupPods.
pub fn group_pods(
    pods: &[Arc<Pod>],
    metrics: &PodMetrics,
    resource: &str,
    now: Timestamp,
) -> Groups {
    let mut g = Groups::default();
    for pod in pods {
        let name = pod.name_any();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some() || phase == Some("Failed") {
            g.ignored.insert(name);
            continue;
        }
        if phase == Some("Pending") {
            g.unready.insert(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            g.missing.insert(name);
            continue;
        };
        if resource == "cpu" {
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            let started = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            let unready = match (ready, started) {
                (Some(ready), Some(started)) => {
                    let changed = ready
                        .last_transition_time
                        .as_ref()
                        .map_or(Timestamp::MIN, |t| t.0);
                    if plus(started, CPU_INITIALIZATION_PERIOD) > now {
                        // Still starting: only a sample taken wholly after it became ready counts.
                        ready.status == "False" || metric.timestamp < plus(changed, metric.window)
                    } else {
                        // Not ready and never ready since its start.
                        ready.status == "False" && plus(started, INITIAL_READINESS_DELAY) > changed
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(name);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// Upstream's calculatePodRequestsFromContainers for every pod: the request of `resource` summed
/// over the pod's containers and restartable init containers (or of `container` only), in
/// milli-units. A container without that request is an error, as upstream.
pub fn pod_requests(
    pods: &[Arc<Pod>],
    container: Option<&str>,
    resource: &str,
) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let name = pod.name_any();
        let spec = pod.spec.as_ref();
        let containers = spec.into_iter().flat_map(|s| {
            s.containers.iter().chain(
                s.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| c.restart_policy.as_deref() == Some("Always")),
            )
        });
        let mut request = 0i64;
        let mut found = false;
        for c in containers {
            if container.is_some_and(|wanted| wanted != c.name) {
                continue;
            }
            let q = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| milli(&q.0));
            let Some(q) = q else {
                return Err(format!(
                    "missing request for {resource} in container {} of Pod {name}",
                    c.name
                ));
            };
            request = request.saturating_add(q);
            found = true;
            if container.is_some() {
                break;
            }
        }
        if let (Some(wanted), false) = (container, found) {
            return Err(format!("container {wanted} not found in Pod {name}"));
        }
        out.insert(name, request);
    }
    Ok(out)
}

/// Upstream's GetResourceUtilizationRatio: (usage ratio, utilization in percent of the requests,
/// average usage) over the pods that have both a sample and a request.
pub fn utilization_ratio(
    metrics: &PodMetrics,
    requests: &BTreeMap<String, i64>,
    target_utilization: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut entries) = (0i128, 0i128, 0i128);
    for (pod, metric) in metrics {
        // A sample of a pod with no request is of a pod the calculation does not know.
        let Some(request) = requests.get(pod) else {
            continue;
        };
        used += i128::from(metric.value);
        requested += i128::from(*request);
        entries += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (used * 100 / requested).clamp(0, i128::from(i32::MAX)) as i32;
    let raw = (used / entries).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    Ok((
        f64::from(utilization) / f64::from(target_utilization),
        utilization,
        raw,
    ))
}

/// Upstream's GetMetricUsageRatio: (usage ratio, average usage).
fn usage_ratio(metrics: &PodMetrics, target_usage: i64) -> (f64, i64) {
    let total: i128 = metrics.values().map(|m| i128::from(m.value)).sum();
    let average = (total / (metrics.len().max(1) as i128)) as i64;
    (average as f64 / target_usage as f64, average)
}

/// A resource utilization proposal: the count, the utilization (percent of request) and the
/// average usage (milli-units) the status shows.
#[derive(Debug, PartialEq)]
pub struct Utilization {
    pub replicas: i32,
    pub utilization: i32,
    pub raw: i64,
}

/// Upstream's ReplicaCalculator.GetResourceReplicas, once the metrics are read: the count that
/// brings the pods' average utilization (usage over request) of `resource` (of one container when
/// given) to `target_utilization` percent.
///
/// Pods without a sample count as using 100% of their request (or the target, if higher) when the
/// others would scale down and nothing when they would scale up; pods not ready are left out of a
/// scale-down and count as using nothing in a scale-up. Those assumptions only damp a change: when
/// they would turn its direction, or bring it within tolerance, the count stays.
pub fn resource_replicas(
    current: i32,
    target_utilization: i32,
    (resource, container): (&str, Option<&str>),
    pods: &[Arc<Pod>],
    mut metrics: PodMetrics,
    now: Timestamp,
) -> Result<Utilization, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(pods, &metrics, resource, now);
    for pod in groups.ignored.iter().chain(&groups.unready) {
        metrics.remove(pod);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let requests = pod_requests(pods, container, resource)?;
    let (ratio, utilization, raw) = utilization_ratio(&metrics, &requests, target_utilization)?;
    let answer = |replicas| Utilization {
        replicas,
        utilization,
        raw,
    };
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if within_tolerance(ratio) {
            return Ok(answer(current));
        }
        return Ok(answer(ceil_i32(ratio * groups.ready as f64)));
    }
    if ratio < 1.0 {
        let fallback = i64::from(target_utilization.max(100));
        for pod in &groups.missing {
            let request = requests.get(pod).copied().unwrap_or(0);
            metrics.insert(pod.clone(), PodMetric::assumed(request * fallback / 100));
        }
    } else if ratio > 1.0 {
        for pod in &groups.missing {
            metrics.insert(pod.clone(), PodMetric::assumed(0));
        }
    }
    if scale_up_with_unready {
        for pod in &groups.unready {
            metrics.insert(pod.clone(), PodMetric::assumed(0));
        }
    }
    let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target_utilization)?;
    Ok(answer(settle(current, ratio, new_ratio, metrics.len())))
}

/// The end of upstream's calculations with assumed samples: the count at `new_ratio` over every pod
/// counted, unless that is within tolerance or turns the direction `ratio` pointed in.
fn settle(current: i32, ratio: f64, new_ratio: f64, counted: usize) -> i32 {
    if within_tolerance(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return current;
    }
    let replicas = ceil_i32(new_ratio * counted as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return current;
    }
    replicas
}

/// Upstream's calcPlainMetricReplicas (an `AverageValue` target, in milli-units): the count that
/// brings the pods' average usage to `target_usage`; missing pods count as using exactly the target
/// on a scale-down. Returns the count and the average usage.
pub fn plain_replicas(
    current: i32,
    target_usage: i64,
    resource: &str,
    pods: &[Arc<Pod>],
    mut metrics: PodMetrics,
    now: Timestamp,
) -> Result<(i32, i64), String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(pods, &metrics, resource, now);
    for pod in groups.ignored.iter().chain(&groups.unready) {
        metrics.remove(pod);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (ratio, usage) = usage_ratio(&metrics, target_usage);
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if within_tolerance(ratio) {
            return Ok((current, usage));
        }
        return Ok((ceil_i32(ratio * groups.ready as f64), usage));
    }
    if ratio < 1.0 {
        for pod in &groups.missing {
            metrics.insert(pod.clone(), PodMetric::assumed(target_usage));
        }
    } else if ratio > 1.0 {
        for pod in &groups.missing {
            metrics.insert(pod.clone(), PodMetric::assumed(0));
        }
    }
    if scale_up_with_unready {
        for pod in &groups.unready {
            metrics.insert(pod.clone(), PodMetric::assumed(0));
        }
    }
    let (new_ratio, _) = usage_ratio(&metrics, target_usage);
    Ok((settle(current, ratio, new_ratio, metrics.len()), usage))
}

// -------------------------------------------------------------------------------------------------
// Stabilization and scaling policies
// -------------------------------------------------------------------------------------------------

/// How a direction's policies combine (`selectPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

/// One scaling policy: at most `value` pods (or percent) within `period` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub kind: Option<PolicyKind>,
    pub value: i32,
    pub period: i32,
}

/// One direction's scaling rules with upstream's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub window: i32,
    pub select: Select,
    pub policies: Vec<Policy>,
}

fn rules(r: Option<&HPAScalingRules>, window: i32, defaults: &[Policy]) -> Rules {
    let select = match r.and_then(|r| r.select_policy.as_deref()) {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        _ => Select::Max,
    };
    let policies = match r.and_then(|r| r.policies.as_ref()) {
        Some(p) => p
            .iter()
            .map(|p| Policy {
                kind: match p.type_.as_str() {
                    "Pods" => Some(PolicyKind::Pods),
                    "Percent" => Some(PolicyKind::Percent),
                    _ => None,
                },
                value: p.value,
                period: p.period_seconds,
            })
            .collect(),
        None => defaults.to_vec(),
    };
    Rules {
        window: r
            .and_then(|r| r.stabilization_window_seconds)
            .unwrap_or(window),
        select,
        policies,
    }
}

/// `behavior.scaleUp` with upstream's defaults: no stabilization, at most 4 pods or 100% per 15 s,
/// whichever is more.
pub fn scale_up_rules(r: Option<&HPAScalingRules>) -> Rules {
    rules(
        r,
        0,
        &[
            Policy {
                kind: Some(PolicyKind::Pods),
                value: 4,
                period: 15,
            },
            Policy {
                kind: Some(PolicyKind::Percent),
                value: 100,
                period: 15,
            },
        ],
    )
}

/// `behavior.scaleDown` with upstream's defaults: the highest recommendation of the last 5 minutes,
/// at most 100% per 15 s.
pub fn scale_down_rules(r: Option<&HPAScalingRules>) -> Rules {
    rules(
        r,
        DOWNSCALE_STABILIZATION_SECONDS,
        &[Policy {
            kind: Some(PolicyKind::Percent),
            value: 100,
            period: 15,
        }],
    )
}

#[derive(Clone, Copy, Debug)]
struct Recommendation {
    replicas: i32,
    at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct ScaleEvent {
    /// Pods added (scale-up list) or removed (scale-down list).
    change: i32,
    at: Instant,
    /// Older than every policy's period: its slot may be reused.
    outdated: bool,
}

/// One HPA's recent recommendations (for the stabilization windows) and scale events (for the
/// policies' periods), as upstream's controller keeps them.
#[derive(Debug, Default)]
pub struct History {
    recommendations: Vec<Recommendation>,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
}

/// `now - seconds`, or `None` when that is before the clock's start (every sample is then within).
fn cutoff(now: Instant, seconds: i32) -> Option<Instant> {
    now.checked_sub(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

fn after(at: Instant, cutoff: Option<Instant>) -> bool {
    cutoff.is_none_or(|c| at > c)
}

fn before(at: Instant, cutoff: Option<Instant>) -> bool {
    cutoff.is_some_and(|c| at < c)
}

/// The pods added (or removed) within the last `period` seconds.
fn change_in_period(period: i32, events: &[ScaleEvent], now: Instant) -> i32 {
    let c = cutoff(now, period);
    events
        .iter()
        .filter(|e| after(e.at, c))
        .map(|e| e.change)
        .sum()
}

/// What bounds a proposal (upstream's NormalizationArg).
pub struct Normalization<'a> {
    pub up: &'a Rules,
    pub down: &'a Rules,
    pub min: i32,
    pub max: i32,
    pub current: i32,
    pub desired: i32,
}

/// A proposal once bounded, with what the AbleToScale (reason, message) and ScalingLimited
/// (status, reason, message) conditions say about it.
#[derive(Debug, PartialEq)]
pub struct Normalized {
    pub replicas: i32,
    pub able: (&'static str, &'static str),
    pub limited: bool,
    pub limit: (&'static str, &'static str),
}

const READY_FOR_NEW_SCALE: (&str, &str) =
    ("ReadyForNewScale", "recommended size matches current size");
const SCALE_DOWN_STABILIZED: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const SCALE_UP_STABILIZED: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const WITHIN_RANGE: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const SCALE_UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);

impl History {
    /// Upstream's recordInitialRecommendation: the first sync remembers the current count, so a
    /// scale-down right after the controller starts is stabilized too.
    pub fn record_initial(&mut self, current: i32, now: Instant) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current,
                at: now,
            });
        }
    }

    /// Remembers `replicas`, reusing the slot of a sample old enough to no longer matter.
    fn remember(&mut self, replicas: i32, old: Option<usize>, now: Instant) {
        let r = Recommendation { replicas, at: now };
        match old {
            Some(i) => self.recommendations[i] = r,
            None => self.recommendations.push(r),
        }
    }

    /// Upstream's stabilizeRecommendation (no `behavior`): the highest recommendation of the last
    /// `window` seconds, this one included.
    pub fn stabilize(&mut self, desired: i32, window: i32, now: Instant) -> i32 {
        let c = cutoff(now, window);
        let mut highest = desired;
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if before(r.at, c) {
                old = Some(i);
            } else if r.replicas > highest {
                highest = r.replicas;
            }
        }
        self.remember(desired, old, now);
        highest
    }

    /// Upstream's stabilizeRecommendationWithBehaviors: the count moves up at most to the lowest
    /// recommendation of the scale-up window and down at most to the highest of the scale-down
    /// window.
    pub fn stabilize_with_behaviors(
        &mut self,
        n: &Normalization,
        now: Instant,
    ) -> (i32, (&'static str, &'static str)) {
        let (up_cutoff, down_cutoff) = (cutoff(now, n.up.window), cutoff(now, n.down.window));
        let (mut up, mut down) = (n.desired, n.desired);
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if after(r.at, up_cutoff) {
                up = up.min(r.replicas);
            }
            if after(r.at, down_cutoff) {
                down = down.max(r.replicas);
            }
            if before(r.at, up_cutoff) && before(r.at, down_cutoff) {
                old = Some(i);
            }
        }
        let mut recommendation = n.current;
        if recommendation < up {
            recommendation = up;
        }
        if recommendation > down {
            recommendation = down;
        }
        self.remember(n.desired, old, now);
        let why = if n.desired >= n.current {
            SCALE_UP_STABILIZED
        } else {
            SCALE_DOWN_STABILIZED
        };
        (recommendation, why)
    }

    /// Upstream's calculateScaleUpLimitWithScalingRules: the most replicas the policies allow now,
    /// each counting from the replicas at the start of its period.
    pub fn scale_up_limit(&self, current: i32, rules: &Rules, now: Instant) -> i32 {
        let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select {
            Select::Disabled => return current,
            Select::Min => (i32::MAX, std::cmp::min),
            Select::Max => (i32::MIN, std::cmp::max),
        };
        let mut proposed = 0;
        for p in &rules.policies {
            let start = current - change_in_period(p.period, &self.scale_up_events, now)
                + change_in_period(p.period, &self.scale_down_events, now);
            match p.kind {
                Some(PolicyKind::Pods) => proposed = start.saturating_add(p.value),
                Some(PolicyKind::Percent) => {
                    proposed = ceil_i32(f64::from(start) * (1.0 + f64::from(p.value) / 100.0))
                }
                None => {}
            }
            result = pick(result, proposed);
        }
        result
    }

    /// Upstream's calculateScaleDownLimitWithBehaviors: the fewest replicas the policies allow now.
    pub fn scale_down_limit(&self, current: i32, rules: &Rules, now: Instant) -> i32 {
        let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select {
            Select::Disabled => return current,
            Select::Min => (i32::MIN, std::cmp::max),
            Select::Max => (i32::MAX, std::cmp::min),
        };
        let mut proposed = 0;
        for p in &rules.policies {
            let start = current - change_in_period(p.period, &self.scale_up_events, now)
                + change_in_period(p.period, &self.scale_down_events, now);
            match p.kind {
                Some(PolicyKind::Pods) => proposed = start.saturating_sub(p.value),
                Some(PolicyKind::Percent) => {
                    // Go's int32 conversion truncates toward zero.
                    proposed = (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
                }
                None => {}
            }
            result = pick(result, proposed);
        }
        result
    }

    /// Upstream's convertDesiredReplicasWithBehaviorRate: the count within min/max and what the
    /// policies allow now, and what limited it.
    pub fn rate_limit(
        &self,
        n: &Normalization,
        now: Instant,
    ) -> (i32, (&'static str, &'static str)) {
        if n.desired > n.current {
            // Until the events age out of their periods, a limit below the current count only stops
            // further growth.
            let limit = self.scale_up_limit(n.current, n.up, now).max(n.current);
            let (allowed, why) = if n.max > limit {
                (limit, SCALE_UP_LIMIT)
            } else {
                (n.max, TOO_MANY)
            };
            if n.desired > allowed {
                return (allowed, why);
            }
        } else if n.desired < n.current {
            let limit = self.scale_down_limit(n.current, n.down, now).min(n.current);
            let (allowed, why) = if n.min < limit {
                (limit, SCALE_DOWN_LIMIT)
            } else {
                (n.min, TOO_FEW)
            };
            if n.desired < allowed {
                return (allowed, why);
            }
        }
        (n.desired, WITHIN_RANGE)
    }

    /// Upstream's storeScaleEvent: remembers a rescale for the policies, reusing the slot of an
    /// event older than every policy's period.
    pub fn store_scale_event(
        &mut self,
        up: &Rules,
        down: &Rules,
        previous: i32,
        new: i32,
        now: Instant,
    ) {
        let (events, rules, change) = if new > previous {
            (&mut self.scale_up_events, up, new - previous)
        } else {
            (&mut self.scale_down_events, down, previous - new)
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or(0)
            .max(0);
        let c = cutoff(now, longest);
        let mut old = None;
        for (i, e) in events.iter_mut().enumerate() {
            if before(e.at, c) {
                e.outdated = true;
            }
            if e.outdated {
                old = Some(i);
            }
        }
        let event = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match old {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

/// Upstream's normalizeDesiredReplicas, for an HPA without `behavior`: scale-downs stabilized over
/// the default window, scale-ups limited to max(2 × current, 4) per sync, then min/max.
pub fn normalize(
    history: &mut History,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    now: Instant,
) -> Normalized {
    let stabilized = history.stabilize(desired, DOWNSCALE_STABILIZATION_SECONDS, now);
    let able = if stabilized != desired {
        SCALE_DOWN_STABILIZED
    } else {
        READY_FOR_NEW_SCALE
    };
    let (replicas, limit) = convert_with_rules(current, stabilized, min, max);
    Normalized {
        replicas,
        able,
        limited: replicas != stabilized,
        limit,
    }
}

/// Upstream's convertDesiredReplicasWithRules.
pub fn convert_with_rules(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> (i32, (&'static str, &'static str)) {
    let scale_up_limit =
        (SCALE_UP_LIMIT_FACTOR * f64::from(current)).max(SCALE_UP_LIMIT_MINIMUM) as i32;
    let (maximum, why) = if max > scale_up_limit {
        (scale_up_limit, SCALE_UP_LIMIT)
    } else {
        (max, TOO_MANY)
    };
    if desired < min {
        return (min, TOO_FEW);
    }
    if desired > maximum {
        return (maximum, why);
    }
    (desired, WITHIN_RANGE)
}

/// Upstream's normalizeDesiredReplicasWithBehaviors: stabilize over the windows, then bound by
/// min/max and the policies.
pub fn normalize_with_behaviors(
    history: &mut History,
    n: &Normalization,
    now: Instant,
) -> Normalized {
    let (stabilized, why) = history.stabilize_with_behaviors(n, now);
    let able = if stabilized != n.desired {
        why
    } else {
        READY_FOR_NEW_SCALE
    };
    let bounded = Normalization {
        desired: stabilized,
        ..*n
    };
    let (replicas, limit) = history.rate_limit(&bounded, now);
    Normalized {
        replicas,
        able,
        limited: replicas != stabilized,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::{
        ExternalMetricSource, HPAScalingPolicy, MetricIdentifier, PodsMetricSource,
    };
    use k8s_openapi::api::core::v1::{
        Container, PodCondition, PodSpec, PodStatus, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    const T0: i64 = 1_800_000_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(T0 + secs).expect("timestamp")
    }

    /// A Running pod started `started` seconds after T0 whose Ready condition (`ready`) changed at
    /// `changed`, with one container requesting `cpu_request` (none when empty).
    fn pod(
        name: &str,
        phase: &str,
        ready: bool,
        started: i64,
        changed: i64,
        cpu_request: &str,
    ) -> Arc<Pod> {
        let requests = (!cpu_request.is_empty())
            .then(|| BTreeMap::from([("cpu".to_string(), K8sQuantity(cpu_request.into()))]));
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests,
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                start_time: Some(Time(at(started))),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(at(changed))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    /// A long-running ready pod requesting 100m.
    fn running(name: &str) -> Arc<Pod> {
        pod(name, "Running", true, 0, 10, "100m")
    }

    fn samples(values: &[(&str, i64)]) -> PodMetrics {
        values
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    PodMetric {
                        value: *v,
                        timestamp: at(3600),
                        window: SignedDuration::from_secs(10),
                    },
                )
            })
            .collect()
    }

    fn now() -> Timestamp {
        at(3600)
    }

    fn cpu(
        current: i32,
        target: i32,
        pods: &[Arc<Pod>],
        metrics: PodMetrics,
    ) -> Result<Utilization, String> {
        resource_replicas(current, target, ("cpu", None), pods, metrics, now())
    }

    #[test]
    fn quantities_parse_to_milli_units_and_print_back() {
        assert_eq!(milli("250m"), Some(250));
        assert_eq!(milli("1"), Some(1000));
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("250000000n"), Some(250));
        // Nano-cores round up to the next milli-core, as upstream's MilliValue.
        assert_eq!(milli("1n"), Some(1));
        assert_eq!(milli("10Mi"), Some(10 * 1024 * 1024 * 1000));
        assert_eq!(milli("10240Ki"), milli("10Mi"));
        assert_eq!(milli("1048576"), Some(1_048_576_000));
        assert_eq!(milli("1k"), Some(1_000_000));
        assert_eq!(milli("lots"), None);
        assert_eq!(milli_quantity(250).0, "250m");
        assert_eq!(milli_quantity(1000).0, "1");
        assert_eq!(milli_quantity(1500).0, "1500m");
        assert_eq!(milli_quantity(10_485_760_000).0, "10485760");
        assert_eq!(milli_quantity(2_000_000_000).0, "2M");
        assert_eq!(milli_quantity(0).0, "0");
    }

    #[test]
    fn go_durations_parse() {
        let go_duration = |s| go_duration(s).ok();
        assert_eq!(go_duration("10s"), Some(SignedDuration::from_secs(10)));
        assert_eq!(go_duration("1m0s"), Some(SignedDuration::from_secs(60)));
        assert_eq!(go_duration("1.5s"), Some(SignedDuration::from_millis(1500)));
        assert_eq!(go_duration("0"), Some(SignedDuration::ZERO));
        assert_eq!(go_duration("10"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn pod_metrics_sum_containers_and_leave_out_incomplete_pods() {
        let list = json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": [
            {"metadata": {"name": "a", "namespace": "ns"}, "timestamp": "2026-12-06T08:00:00Z", "window": "10s",
             "containers": [{"name": "c", "usage": {"cpu": "250000000n", "memory": "10240Ki"}},
                            {"name": "d", "usage": {"cpu": "50m", "memory": "1Mi"}}]},
            {"metadata": {"name": "b", "namespace": "ns"}, "timestamp": "2026-12-06T08:00:00Z", "window": "10s",
             "containers": [{"name": "c", "usage": {"cpu": "1"}}, {"name": "d", "usage": {"memory": "1Mi"}}]},
            {"metadata": {"name": "empty", "namespace": "ns"}, "timestamp": "2026-12-06T08:00:00Z", "window": "10s",
             "containers": []}
        ]});
        let cpu = pod_metrics(&list, "cpu", None).expect("metrics");
        // "b" has a container without cpu usage and "empty" none at all: both missing.
        assert_eq!(cpu.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(cpu["a"].value, 300);
        assert_eq!(cpu["a"].window, SignedDuration::from_secs(10));
        assert_eq!(
            cpu["a"].timestamp,
            "2026-12-06T08:00:00Z".parse::<Timestamp>().expect("ts")
        );
        let memory = pod_metrics(&list, "memory", None).expect("metrics");
        assert_eq!(memory["a"].value, 11 * 1024 * 1024 * 1000);
        let container = pod_metrics(&list, "cpu", Some("c")).expect("metrics");
        assert_eq!(
            container
                .iter()
                .map(|(k, v)| (k.as_str(), v.value))
                .collect::<Vec<_>>(),
            vec![("a", 250), ("b", 1000)]
        );
        assert_eq!(
            pod_metrics(&json!({"items": []}), "cpu", None),
            Err("no metrics returned from resource metrics API".to_string())
        );
    }

    #[test]
    fn within_tolerance_the_count_stays() {
        let pods: Vec<_> = (0..4).map(|i| running(&format!("p{i}"))).collect();
        // 105% of a 100% target: within 10%, so the current count (5, not the 4 pods) stays.
        let m = samples(&[("p0", 105), ("p1", 105), ("p2", 105), ("p3", 105)]);
        let u = cpu(5, 100, &pods, m).expect("computed");
        assert_eq!(
            u,
            Utilization {
                replicas: 5,
                utilization: 105,
                raw: 105
            }
        );
        // 89%: outside the tolerance, ceil(0.89 × 4) = 4.
        let m = samples(&[("p0", 89), ("p1", 89), ("p2", 89), ("p3", 89)]);
        assert_eq!(cpu(5, 100, &pods, m).expect("computed").replicas, 4);
    }

    #[test]
    fn the_ratio_times_the_ready_pods_rounds_up() {
        let pods: Vec<_> = (0..3).map(|i| running(&format!("p{i}"))).collect();
        // 250% of request against a 50% target: 5 × 3 pods.
        let m = samples(&[("p0", 250), ("p1", 250), ("p2", 250)]);
        let u = cpu(3, 50, &pods, m).expect("computed");
        assert_eq!(
            u,
            Utilization {
                replicas: 15,
                utilization: 250,
                raw: 250
            }
        );
        // 70% against 50%: 1.4 × 3 = 4.2, rounded up to 5.
        let m = samples(&[("p0", 70), ("p1", 70), ("p2", 70)]);
        assert_eq!(cpu(3, 50, &pods, m).expect("computed").replicas, 5);
    }

    #[test]
    fn missing_pods_damp_a_scale_down() {
        let pods: Vec<_> = (0..4).map(|i| running(&format!("p{i}"))).collect();
        // Three pods at 10% of request and one without a sample, against a 50% target. Ignoring
        // the missing pod would give ceil(0.2 × 3) = 1; taking it at 100% of its request gives
        // (10+10+10+100)/400 = 32% → ceil(0.64 × 4) = 3.
        let m = samples(&[("p0", 10), ("p1", 10), ("p2", 10)]);
        let u = cpu(4, 50, &pods, m).expect("computed");
        assert_eq!(u.replicas, 3);
        // The status shows the pods that reported, not the assumption.
        assert_eq!((u.utilization, u.raw), (10, 10));
        // A target above 100% takes the missing pod at the target: (3×10 + 200)/400 = 57% of a
        // 200% target → ceil(0.285 × 4) = 2.
        let m = samples(&[("p0", 10), ("p1", 10), ("p2", 10)]);
        assert_eq!(cpu(4, 200, &pods, m).expect("computed").replicas, 2);
    }

    #[test]
    fn missing_pods_count_as_idle_in_a_scale_up_and_may_cancel_it() {
        let pods: Vec<_> = (0..4).map(|i| running(&format!("p{i}"))).collect();
        // Two pods at 60% of a 50% target, two missing: as idle, (120)/400 = 30% → the direction
        // would turn, so the count stays.
        let m = samples(&[("p0", 60), ("p1", 60)]);
        assert_eq!(cpu(4, 50, &pods, m).expect("computed").replicas, 4);
        // At 200% each: 400/400 = 100% of a 50% target → ceil(2 × 4) = 8.
        let m = samples(&[("p0", 200), ("p1", 200)]);
        assert_eq!(cpu(4, 50, &pods, m).expect("computed").replicas, 8);
    }

    #[test]
    fn unready_pods_are_left_out_of_a_scale_down_and_idle_in_a_scale_up() {
        // Two ready pods, two started a minute ago and not ready yet (their samples are a start-up
        // burst).
        let pods = vec![
            running("r0"),
            running("r1"),
            pod("u0", "Running", false, 3540, 3545, "100m"),
            pod("u1", "Running", false, 3540, 3545, "100m"),
        ];
        // Scale-up: counting the unready pods' 200% would ask for ceil(4 × 4) = 16; as idle it is
        // (200+200)/400 = 100% of 50% → ceil(2 × 4) = 8.
        let m = samples(&[("r0", 200), ("r1", 200), ("u0", 200), ("u1", 200)]);
        assert_eq!(cpu(2, 50, &pods, m).expect("computed").replicas, 8);
        // Scale-down: the unready pods are simply left out: 10% of 50% over the 2 ready pods.
        let m = samples(&[("r0", 10), ("r1", 10), ("u0", 200), ("u1", 200)]);
        assert_eq!(cpu(4, 50, &pods, m).expect("computed").replicas, 1);
        // Memory has no start-up burst: the same pods all count.
        let m = samples(&[("r0", 200), ("r1", 200), ("u0", 200), ("u1", 200)]);
        let memory_pods: Vec<_> = pods
            .iter()
            .map(|p| {
                let mut p = (**p).clone();
                if let Some(c) = p.spec.as_mut().map(|s| &mut s.containers[0]) {
                    c.resources = Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "memory".to_string(),
                            K8sQuantity("100m".into()),
                        )])),
                        ..Default::default()
                    });
                }
                Arc::new(p)
            })
            .collect();
        let u =
            resource_replicas(2, 50, ("memory", None), &memory_pods, m, now()).expect("computed");
        assert_eq!(u.replicas, 16);
    }

    #[test]
    fn pod_groups_follow_phase_deletion_and_readiness() {
        let mut deleted = (*running("deleted")).clone();
        deleted.metadata.deletion_timestamp = Some(Time(at(3000)));
        let pods = vec![
            running("ok"),
            Arc::new(deleted),
            pod("failed", "Failed", false, 0, 10, "100m"),
            pod("pending", "Pending", false, 3590, 3590, "100m"),
            running("nosample"),
            // Started long ago and became unready later: its sample counts.
            pod("flapped", "Running", false, 0, 3000, "100m"),
            // Started long ago, never ready: its sample does not count.
            pod("never", "Running", false, 0, 20, "100m"),
            // Ready recently within the start-up period, but the sample (taken at 3600 over 10 s)
            // began before it was ready.
            pod("young", "Running", true, 3400, 3595, "100m"),
        ];
        let m = samples(&[
            ("ok", 1),
            ("deleted", 1),
            ("failed", 1),
            ("pending", 1),
            ("flapped", 1),
            ("never", 1),
            ("young", 1),
        ]);
        let g = group_pods(&pods, &m, "cpu", now());
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(g.ready, 2);
        assert_eq!(g.ignored, set(&["deleted", "failed"]));
        assert_eq!(g.unready, set(&["never", "pending", "young"]));
        assert_eq!(g.missing, set(&["nosample"]));
    }

    #[test]
    fn calculator_errors_say_what_upstream_says() {
        let pods = vec![running("p0"), pod("p1", "Running", true, 0, 10, "")];
        let m = samples(&[("p0", 50), ("p1", 50)]);
        assert_eq!(
            cpu(2, 50, &pods, m),
            Err("missing request for cpu in container c of Pod p1".to_string())
        );
        assert_eq!(
            cpu(2, 50, &[], samples(&[("p0", 1)])),
            Err("no pods returned by selector while calculating replica count".to_string())
        );
        let unready = vec![pod("u", "Pending", false, 3590, 3590, "100m")];
        assert_eq!(
            cpu(1, 50, &unready, samples(&[("u", 1)])),
            Err("did not receive metrics for targeted pods (pods might be unready)".to_string())
        );
        assert_eq!(
            resource_replicas(
                1,
                50,
                ("cpu", Some("x")),
                &[running("p0")],
                samples(&[("p0", 1)]),
                now()
            ),
            Err("container x not found in Pod p0".to_string())
        );
    }

    #[test]
    fn average_value_targets_use_the_average_usage() {
        let pods: Vec<_> = (0..2).map(|i| running(&format!("p{i}"))).collect();
        // 300m average against 100m: 3 × 2 pods; the status shows the 300m average.
        let m = samples(&[("p0", 200), ("p1", 400)]);
        assert_eq!(plain_replicas(2, 100, "cpu", &pods, m, now()), Ok((6, 300)));
        // A missing pod on a scale-down counts as exactly the target: (20 + 100)/2 = 60 → 2.
        let m = samples(&[("p0", 20)]);
        assert_eq!(plain_replicas(2, 100, "cpu", &pods, m, now()), Ok((2, 20)));
    }

    fn cpu_spec(utilization: i32) -> MetricSpec {
        MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(utilization),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_resource_metric_proposes_and_reports_its_status() {
        let pods: Vec<_> = (0..2).map(|i| running(&format!("p{i}"))).collect();
        let list = Ok(json!({"items": [
            {"metadata": {"name": "p0"}, "timestamp": "2027-01-15T08:00:00Z", "window": "10s", "containers": [{"name": "c", "usage": {"cpu": "250m"}}]},
            {"metadata": {"name": "p1"}, "timestamp": "2027-01-15T08:00:00Z", "window": "10s", "containers": [{"name": "c", "usage": {"cpu": "250m"}}]}
        ]}));
        let p =
            compute_metric(&cpu_spec(50), 2, "ns", Some(&list), &pods, now()).expect("proposal");
        assert_eq!(p.replicas, 10);
        assert_eq!(p.metric, "cpu resource utilization (percentage of request)");
        assert_eq!(
            serde_json::to_value(&p.status).expect("json"),
            json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 250, "averageValue": "250m"}}})
        );
    }

    #[test]
    fn metric_failures_carry_upstreams_messages() {
        let pods = vec![running("p0")];
        let none: Result<Value, String> = Ok(json!({"kind": "PodMetricsList", "items": []}));
        let f =
            compute_metric(&cpu_spec(50), 1, "ns", Some(&none), &pods, now()).expect_err("fails");
        assert_eq!(f.reason, "FailedGetResourceMetric");
        assert_eq!(
            f.message,
            "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics \
             returned from resource metrics API"
        );
        assert_eq!(
            f.error,
            "failed to get cpu resource metric value: failed to get cpu utilization: unable to get \
             metrics for resource cpu: no metrics returned from resource metrics API"
        );
        let unreachable: Result<Value, String> = Err("unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)".into());
        let f = compute_metric(&cpu_spec(50), 1, "ns", Some(&unreachable), &pods, now())
            .expect_err("fails");
        assert!(f.message.starts_with("failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API"));

        let pods_metric = MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: "qps".into(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    ..Default::default()
                },
            }),
            ..Default::default()
        };
        let f = compute_metric(&pods_metric, 1, "ns", None, &pods, now()).expect_err("fails");
        assert_eq!(f.reason, "FailedGetPodsMetric");
        assert_eq!(
            f.message,
            "unable to get metric qps: unable to fetch metrics from custom metrics API: no custom \
             metrics API (custom.metrics.k8s.io) registered"
        );
        let external = MetricSpec {
            type_: "External".into(),
            external: Some(ExternalMetricSource {
                metric: MetricIdentifier {
                    name: "queue".into(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "Value".into(),
                    value: Some(K8sQuantity("1".into())),
                    ..Default::default()
                },
            }),
            ..Default::default()
        };
        let f = compute_metric(&external, 1, "ns", None, &pods, now()).expect_err("fails");
        assert_eq!(f.reason, "FailedGetExternalMetric");
        assert!(f
            .message
            .starts_with("unable to get external metric ns/queue/nil: "));
        assert!(f.error.starts_with(
            "failed to get queue external metric value: failed to get external metric queue: "
        ));
    }

    #[test]
    fn scale_targets_map_by_group_and_kind() {
        assert_eq!(
            parse_group_version("apps/v1"),
            Ok(("apps".into(), "v1".into()))
        );
        assert_eq!(parse_group_version("v1"), Ok((String::new(), "v1".into())));
        assert_eq!(
            parse_group_version("a/b/c"),
            Err("unexpected GroupVersion string: a/b/c".to_string())
        );
        let d = builtin_scalable("apps", "Deployment").expect("deployments");
        assert_eq!(
            (d.api_version.as_str(), d.plural.as_str()),
            ("apps/v1", "deployments")
        );
        let rc = builtin_scalable("", "ReplicationController").expect("rcs");
        assert_eq!(
            (rc.api_version.as_str(), rc.plural.as_str()),
            ("v1", "replicationcontrollers")
        );
        assert!(builtin_scalable("", "Deployment").is_none());
        assert!(builtin_scalable("apps", "DaemonSet").is_none());
    }

    fn normalization<'a>(
        up: &'a Rules,
        down: &'a Rules,
        current: i32,
        desired: i32,
    ) -> Normalization<'a> {
        Normalization {
            up,
            down,
            min: 1,
            max: 100,
            current,
            desired,
        }
    }

    #[test]
    fn the_scale_down_window_keeps_the_highest_recent_recommendation() {
        let (up, down) = (scale_up_rules(None), scale_down_rules(None));
        let t0 = Instant::now();
        let mut h = History::default();
        h.record_initial(10, t0);
        let after = |s| t0 + Duration::from_secs(s);
        // A minute later the metrics ask for 8: within 5 minutes of the 10, so 10 stays.
        let n = normalize_with_behaviors(&mut h, &normalization(&up, &down, 10, 8), after(60));
        assert_eq!(n.replicas, 10);
        assert_eq!(n.able.0, "ScaleDownStabilized");
        // Two minutes: they ask for 4; the highest of the window (10, 8, 4) is still 10.
        let n = normalize_with_behaviors(&mut h, &normalization(&up, &down, 10, 4), after(120));
        assert_eq!((n.replicas, n.limited), (10, false));
        // 6 minutes: the 10 is out of the window, the 8 (at 1 min) too; 4 (at 2 min) and 5 remain.
        let n = normalize_with_behaviors(&mut h, &normalization(&up, &down, 10, 5), after(361));
        assert_eq!(n.replicas, 5);
        // 8 minutes: they ask for 3, but the 5 of 2 minutes ago holds.
        let n = normalize_with_behaviors(&mut h, &normalization(&up, &down, 5, 3), after(481));
        assert_eq!((n.replicas, n.able.0), (5, "ScaleDownStabilized"));
        // 14 minutes: nothing else within 5 minutes, so 3 it is.
        let n = normalize_with_behaviors(&mut h, &normalization(&up, &down, 5, 3), after(841));
        assert_eq!((n.replicas, n.able), (3, READY_FOR_NEW_SCALE));
        // Old samples' slots are reused rather than piling up.
        assert_eq!(h.recommendations.len(), 3, "{:?}", h.recommendations);
    }

    #[test]
    fn without_behavior_scale_downs_are_stabilized_and_scale_ups_doubled_at_most() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record_initial(6, t0);
        let n = normalize(&mut h, 6, 2, 1, 20, t0 + Duration::from_secs(30));
        assert_eq!((n.replicas, n.able.0), (6, "ScaleDownStabilized"));
        // Scale-up from 3 to 20 stops at max(2 × 3, 4) = 6.
        assert_eq!(convert_with_rules(3, 20, 1, 50), (6, SCALE_UP_LIMIT));
        assert_eq!(convert_with_rules(1, 20, 1, 50), (4, SCALE_UP_LIMIT));
        assert_eq!(convert_with_rules(3, 20, 1, 5), (5, TOO_MANY));
        assert_eq!(convert_with_rules(3, 0, 2, 5), (2, TOO_FEW));
        assert_eq!(convert_with_rules(3, 4, 1, 5), (4, WITHIN_RANGE));
    }

    #[test]
    fn default_policies_limit_a_scale_up_to_4_pods_or_100_percent_per_15_seconds() {
        let (up, down) = (scale_up_rules(None), scale_down_rules(None));
        let t0 = Instant::now();
        let mut h = History::default();
        // From 3: 3 + 4 = 7 beats 3 × 2 = 6.
        assert_eq!(
            h.rate_limit(&normalization(&up, &down, 3, 50), t0),
            (7, SCALE_UP_LIMIT)
        );
        // From 10: 10 × 2 = 20 beats 10 + 4.
        assert_eq!(
            h.rate_limit(&normalization(&up, &down, 10, 50), t0),
            (20, SCALE_UP_LIMIT)
        );
        // Scaled 10 → 20: for the next 15 s the period started at 10, so 20 is all there may be.
        h.store_scale_event(&up, &down, 10, 20, t0);
        let soon = t0 + Duration::from_secs(5);
        assert_eq!(
            h.rate_limit(&normalization(&up, &down, 20, 50), soon),
            (20, SCALE_UP_LIMIT)
        );
        // Once the period is over, from 20: 40.
        let later = t0 + Duration::from_secs(16);
        assert_eq!(
            h.rate_limit(&normalization(&up, &down, 20, 50), later),
            (40, SCALE_UP_LIMIT)
        );
        // maxReplicas below the policies' limit names itself.
        let capped = Normalization {
            max: 30,
            ..normalization(&up, &down, 20, 50)
        };
        assert_eq!(h.rate_limit(&capped, later), (30, TOO_MANY));
        // A proposal within both passes.
        assert_eq!(
            h.rate_limit(&normalization(&up, &down, 20, 25), later),
            (25, WITHIN_RANGE)
        );
        // Through normalize_with_behaviors the limit shows in ScalingLimited.
        let n = normalize_with_behaviors(&mut h, &normalization(&up, &down, 20, 50), soon);
        assert_eq!(
            (n.replicas, n.limited, n.limit.0),
            (20, true, "ScaleUpLimit")
        );
    }

    #[test]
    fn select_policy_and_scale_down_policies() {
        let policies = vec![
            HPAScalingPolicy {
                type_: "Pods".into(),
                value: 2,
                period_seconds: 60,
            },
            HPAScalingPolicy {
                type_: "Percent".into(),
                value: 50,
                period_seconds: 60,
            },
        ];
        let rules_with = |select: &str| {
            scale_down_rules(Some(&HPAScalingRules {
                policies: Some(policies.clone()),
                select_policy: Some(select.into()),
                stabilization_window_seconds: Some(0),
                tolerance: None,
            }))
        };
        let up = scale_up_rules(None);
        let t0 = Instant::now();
        let h = History::default();
        // From 10 down to 1: Max picks the larger change (50% → 5), Min the smaller (2 pods → 8).
        let max = rules_with("Max");
        assert_eq!(
            h.rate_limit(&normalization(&up, &max, 10, 1), t0),
            (5, SCALE_DOWN_LIMIT)
        );
        let min = rules_with("Min");
        assert_eq!(
            h.rate_limit(&normalization(&up, &min, 10, 1), t0),
            (8, SCALE_DOWN_LIMIT)
        );
        let off = rules_with("Disabled");
        assert_eq!(
            h.rate_limit(&normalization(&up, &off, 10, 1), t0),
            (10, SCALE_DOWN_LIMIT)
        );
        // The default scale-down policy (100% per 15 s) leaves only minReplicas to hold it.
        let down = scale_down_rules(None);
        let n = Normalization {
            min: 2,
            ..normalization(&up, &down, 10, 1)
        };
        assert_eq!(h.rate_limit(&n, t0), (2, TOO_FEW));
        assert_eq!(down.window, DOWNSCALE_STABILIZATION_SECONDS);
        assert_eq!(up.window, 0);
    }

    #[test]
    fn conditions_keep_their_transition_time_while_their_status_holds() {
        let mut hpa = HorizontalPodAutoscaler::default();
        set_condition(&mut hpa, SCALING_ACTIVE, true, "ValidMetricFound", "first");
        let first = Some(Time(at(0)));
        hpa.status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .expect("conditions")[0]
            .last_transition_time = first.clone();
        set_condition(&mut hpa, SCALING_ACTIVE, true, "ValidMetricFound", "second");
        set_condition(&mut hpa, ABLE_TO_SCALE, true, "ReadyForNewScale", "x");
        let conditions = hpa
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .expect("conditions");
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].message.as_deref(), Some("second"));
        set_condition(
            &mut hpa,
            SCALING_ACTIVE,
            false,
            "FailedGetResourceMetric",
            "third",
        );
        let conditions = hpa
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .expect("conditions");
        assert_ne!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].status, "False");
    }

    #[test]
    fn status_omits_what_upstream_omits() {
        let mut hpa = HorizontalPodAutoscaler::default();
        hpa.metadata.generation = Some(3);
        set_status(&mut hpa, 0, 0, Some(vec![]), false);
        let v = serde_json::to_value(hpa.status.as_ref()).expect("json");
        assert_eq!(v, json!({"desiredReplicas": 0, "observedGeneration": 3}));
        set_status(&mut hpa, 2, 4, None, true);
        let s = hpa.status.as_ref().expect("status");
        assert_eq!((s.current_replicas, s.desired_replicas), (Some(2), 4));
        assert!(s.last_scale_time.is_some());
    }
}
