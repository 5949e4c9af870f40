//! Upstream's Job controller (pkg/controller/job, v1.33 semantics): runs a Job's pods to
//! `completions` successes, `parallelism` at a time (NonIndexed, or Indexed with one index per pod),
//! and ends it Complete or Failed with upstream's conditions, reasons, messages and events.
//!
//! Start at [`reconcile`]. Pods are tracked as upstream does with the `batch.kubernetes.io/job-tracking`
//! finalizer: a finished pod is first recorded in `status.uncountedTerminatedPods` (or, Indexed, in
//! `status.completedIndexes`), then its finalizer is removed, and only once the cache shows it gone
//! are the uncounted UIDs moved into `succeeded` / `failed`. Every status write is an update at the
//! cached resourceVersion: a 409 means the cache was stale, and the reconcile is retried from the
//! fresh object rather than overwriting what an earlier round recorded. Failed pods are replaced after
//! upstream's exponential delay (10 s doubling, capped at 10 min); `activeDeadlineSeconds` and the
//! delay are waited for with [`Action::requeue`], never by polling.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use serde_json::json;

use super::common::{self, Expectations, Recorder};
use super::replicaset::pod_from_template;
use super::Clients;

/// The finalizer that keeps a Job's pod until the controller has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label carrying an Indexed Job pod's completion index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// Upstream's DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(10 * 60);
/// Upstream's MaxPodCreateDeletePerSync.
const MAX_PER_SYNC: usize = 500;

/// Failures since the last success, as upstream's backoff store keeps them per Job.
#[derive(Clone, Default)]
struct BackoffRecord {
    failures_after_last_success: u32,
    last_failure: Option<Timestamp>,
}

struct Ctx {
    clients: Clients,
    pods: Store<Pod>,
    expectations: Expectations,
    recorder: Recorder,
    backoff: Mutex<HashMap<String, BackoffRecord>>,
}

pub async fn run(clients: Clients) {
    let jobs = Api::<Job>::all(clients.reader.clone());
    let (pods, pod_events) = clients.informers.watched::<Pod>();
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), "job-controller"),
        clients,
        pods,
        expectations: Expectations::default(),
        backoff: Mutex::default(),
    });
    let controller = Controller::new(jobs, Default::default());
    let job_store = controller.store();
    let (orphans, orphan_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(release_orphans(ctx.clone(), orphan_rx));
    controller
        // A pod's change wakes the Job that controls it; a pod still held for a Job that is gone
        // is let go (upstream's orphan pod handling), else it could never be deleted.
        .watches_stream(pod_events, move |pod: Pod| {
            let ns = pod.namespace().unwrap_or_default();
            let r = common::controller_of(&pod).filter(|r| r.kind == "Job")?;
            let job_ref = ObjectRef::new(&r.name).within(&ns);
            let owner_cached = job_store
                .get(&job_ref)
                .is_some_and(|j| j.uid().as_deref() == Some(r.uid.as_str()));
            if !owner_cached && has_finalizer(&pod) {
                let _ = orphans.send(pod.clone());
            }
            Some(job_ref)
        })
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("job controller: {e}");
            }
        })
        .await;
}

/// Removes the tracking finalizer from pods whose Job the cache does not have, once a live read
/// confirms the Job is gone (or is another Job of the same name).
async fn release_orphans(ctx: Arc<Ctx>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Pod>) {
    while let Some(pod) = rx.recv().await {
        let ns = pod.namespace().unwrap_or_default();
        let Some(r) = common::controller_of(&pod).cloned() else {
            continue;
        };
        let jobs = Api::<Job>::namespaced(ctx.clients.writer.clone(), &ns);
        let owner_alive = match jobs.get_opt(&r.name).await {
            Ok(Some(j)) => j.uid().as_deref() == Some(r.uid.as_str()),
            Ok(None) => false,
            // Unknown: keep the pod held; its next change brings it here again.
            Err(_) => true,
        };
        if !owner_alive {
            let api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
            if let Err(e) = remove_finalizers(&api, &[Arc::new(pod)]).await {
                tracing::debug!("job controller: releasing an orphan pod: {e}");
            }
        }
    }
}

fn retry_later(_job: Arc<Job>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    match error {
        // A stale cache: the watch brings the fresh object and wakes the Job again.
        kube::Error::Api(e) if e.code == 409 => Action::requeue(Duration::from_millis(200)),
        _ => {
            tracing::warn!("job controller: {error}");
            Action::requeue(Duration::from_secs(1))
        }
    }
}

/// Upstream's pod failure backoff: none before the first failure, then 10 s doubling per failure
/// since the last success, capped at 10 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let mut d = BACKOFF_BASE;
    for _ in 1..failures {
        d = d.saturating_mul(2);
        if d >= BACKOFF_MAX {
            return BACKOFF_MAX;
        }
    }
    d
}

/// How long to wait before replacing a failed pod (upstream's getRemainingTime).
fn remaining_backoff(rec: &BackoffRecord, now: Timestamp) -> Duration {
    let delay = backoff_delay(rec.failures_after_last_success);
    let Some(last) = rec.last_failure else {
        return Duration::ZERO;
    };
    let elapsed = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

/// Formats a set of indexes as upstream's completedIndexes: ascending, runs as `a-b`, comma-separated.
pub fn format_indexes(ix: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = ix.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        out.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    out.join(",")
}

/// Parses completedIndexes, keeping only indexes below `completions` (upstream's parseIndexesFromString).
pub fn parse_indexes(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<i32>(), b.trim().parse::<i32>()) else {
            continue;
        };
        out.extend((a.max(0)..=b.min(completions - 1)).filter(|i| *i <= b));
    }
    out
}

fn pod_index(pod: &Pod) -> Option<i32> {
    pod.annotations().get(INDEX_KEY)?.parse().ok()
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// When a pod finished: its containers' latest finishedAt, else now.
fn finish_time(pod: &Pod, now: Timestamp) -> Timestamp {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
                .map(|t| t.0)
                .max()
        })
        .unwrap_or(now)
}

fn condition_true(status: &JobStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The Job's finished condition type (Complete or Failed), if it has one.
pub fn finished(job: &Job) -> Option<(&'static str, Timestamp)> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find_map(|c| {
            let t = match c.type_.as_str() {
                "Complete" => "Complete",
                "Failed" => "Failed",
                _ => return None,
            };
            (c.status == "True").then(|| {
                (
                    t,
                    c.last_transition_time
                        .as_ref()
                        .map_or_else(Timestamp::now, |t| t.0),
                )
            })
        })
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition to `status`, keeping its transition time if the status holds; a False condition
/// is only written over an existing one (upstream's ensureJobConditionStatus). True if it changed.
fn ensure_condition(
    conds: &mut Vec<JobCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let want = if status { "True" } else { "False" };
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == want => false,
        Some(c) => {
            *c = condition(type_, reason, message, now);
            c.status = want.into();
            true
        }
        None if status => {
            conds.push(condition(type_, reason, message, now));
            true
        }
        None => false,
    }
}

/// What the Job's podFailurePolicy says about a failed pod: Some("Ignore"/"Count"/"FailJob") with
/// the FailJob message, or None when no rule matches (the failure counts).
fn pod_failure_action(job: &Job, pod: &Pod) -> Option<(String, String)> {
    let policy = job.spec.as_ref()?.pod_failure_policy.as_ref()?;
    let status = pod.status.as_ref()?;
    let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
    for (i, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(req) = &rule.on_exit_codes {
            status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten())
                .find_map(|cs| {
                    let code = cs.state.as_ref()?.terminated.as_ref()?.exit_code;
                    let name_ok = req.container_name.as_ref().is_none_or(|n| *n == cs.name);
                    let listed = req.values.contains(&code);
                    let op_ok = match req.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        _ => false,
                    };
                    (code != 0 && name_ok && op_ok).then(|| {
                        format!(
                            "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                            cs.name, rule.action
                        )
                    })
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status.conditions.iter().flatten().find_map(|c| {
                patterns
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == c.status)
                    .then(|| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                            c.type_, rule.action
                        )
                    })
            })
        } else {
            None
        };
        if let Some(message) = matched {
            return Some((rule.action.clone(), message));
        }
    }
    None
}

/// Writes `status` as an update at the Job's resourceVersion and takes the result as the new Job.
async fn put_status(api: &Api<Job>, job: &mut Job, status: JobStatus) -> Result<(), kube::Error> {
    let mut next = job.clone();
    next.status = Some(status);
    *job = api
        .replace_status(&job.name_any(), &PostParams::default(), &next)
        .await?;
    Ok(())
}

async fn remove_finalizers(api: &Api<Pod>, pods: &[Arc<Pod>]) -> Result<(), kube::Error> {
    let results = futures::future::join_all(pods.iter().map(|p| {
        let rest: Vec<&String> = p
            .finalizers()
            .iter()
            .filter(|f| *f != TRACKING_FINALIZER)
            .collect();
        // The uid guards against a pod of the same name created since.
        let patch = json!({"metadata": {"finalizers": rest, "uid": p.uid()}});
        let api = api.clone();
        async move {
            api.patch(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        }
    }))
    .await;
    for r in results {
        match r {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn reconcile(job_in: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let mut job = job_in.as_ref().clone();
    let key = common::key_of(&job);
    let ns = job.namespace().unwrap_or_default();
    let uid = job.uid().unwrap_or_default();
    let now = Timestamp::now();
    let jobs_api = Api::<Job>::namespaced(ctx.clients.writer.clone(), &ns);
    let pods_api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| common::controller_of(p.as_ref()).is_some_and(|r| r.uid == uid))
        .collect();

    // A finished or deleted Job only lets go of its pods (they were counted before it finished).
    if finished(&job).is_some() || job.metadata.deletion_timestamp.is_some() {
        let held: Vec<Arc<Pod>> = pods.iter().filter(|p| has_finalizer(p)).cloned().collect();
        remove_finalizers(&pods_api, &held).await?;
        if job.metadata.deletion_timestamp.is_some() {
            ctx.expectations.forget(&key);
            ctx.backoff
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
        return Ok(Action::await_change());
    }

    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let suspended = spec.suspend == Some(true);
    let old_status = job.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let by_uid: HashMap<String, &Arc<Pod>> = pods
        .iter()
        .map(|p| (p.uid().unwrap_or_default(), p))
        .collect();

    // --- Tracking. Uncounted pods whose finalizer is gone (or that are gone) are counted now.
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let tracked = |u: &String| by_uid.get(u).is_some_and(|p| has_finalizer(p));
    let (mut unc_succeeded, done): (Vec<String>, Vec<String>) = uncounted
        .succeeded
        .unwrap_or_default()
        .into_iter()
        .partition(tracked);
    status.succeeded = Some(status.succeeded.unwrap_or(0) + done.len() as i32);
    let (mut unc_failed, done): (Vec<String>, Vec<String>) = uncounted
        .failed
        .unwrap_or_default()
        .into_iter()
        .partition(tracked);
    status.failed = Some(status.failed.unwrap_or(0) + done.len() as i32);
    let mut completed = parse_indexes(
        status.completed_indexes.as_deref().unwrap_or(""),
        completions.unwrap_or(0),
    );

    // Newly finished pods still holding the finalizer: record them, then let them go.
    let known: HashSet<String> = unc_succeeded.iter().chain(&unc_failed).cloned().collect();
    let mut release: Vec<Arc<Pod>> = Vec::new();
    let mut failure_target: Option<(String, String)> = None;
    let mut newly_failed: Vec<Timestamp> = Vec::new();
    let mut newly_succeeded = false;
    let failing = condition_true(&old_status, "FailureTarget");
    let succeeding = condition_true(&old_status, "SuccessCriteriaMet");
    for pod in pods.iter().filter(|p| has_finalizer(p)) {
        let pod_uid = pod.uid().unwrap_or_default();
        if known.contains(&pod_uid) {
            continue;
        }
        if phase(pod) == "Succeeded" {
            newly_succeeded = true;
            if indexed {
                // The index itself records the success: no UID to track.
                if let Some(ix) = pod_index(pod).filter(|ix| *ix < completions.unwrap_or(0)) {
                    completed.insert(ix);
                }
            } else {
                unc_succeeded.push(pod_uid);
            }
            release.push(pod.clone());
            continue;
        }
        // A pod deleted before it finished counts as failed (so orphans are not lost), unless a
        // podFailurePolicy asks that only pods in phase Failed count (upstream's isPodFailed); once
        // the Job is failing every pod it stops counts as failed, once it succeeded none does.
        let deleted = pod.metadata.deletion_timestamp.is_some();
        let failed =
            phase(pod) == "Failed" || (deleted && (spec.pod_failure_policy.is_none() || failing));
        if !failed {
            if deleted && succeeding {
                release.push(pod.clone());
            }
            continue;
        }
        match pod_failure_action(&job, pod) {
            Some((action, _)) if action == "Ignore" => {}
            Some((action, message)) if action == "FailJob" => {
                failure_target.get_or_insert(("PodFailurePolicy".into(), message));
                unc_failed.push(pod_uid);
                newly_failed.push(finish_time(pod, now));
            }
            _ => {
                unc_failed.push(pod_uid);
                newly_failed.push(finish_time(pod, now));
            }
        }
        release.push(pod.clone());
    }
    let set_counts = |status: &mut JobStatus, s: &[String], f: &[String], ix: &BTreeSet<i32>| {
        // Empty lists are left out, as upstream's omitempty writes `uncountedTerminatedPods: {}`.
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: (!s.is_empty()).then(|| s.to_vec()),
            failed: (!f.is_empty()).then(|| f.to_vec()),
        });
        if indexed {
            status.completed_indexes = Some(format_indexes(ix));
            status.succeeded = Some(ix.len() as i32);
        }
    };
    set_counts(&mut status, &unc_succeeded, &unc_failed, &completed);
    if !release.is_empty() {
        // Recorded first, released second: a crash in between leaves the pods held and listed.
        put_status(&jobs_api, &mut job, status.clone()).await?;
        remove_finalizers(&pods_api, &release).await?;
        let mut store = ctx.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let rec = store.entry(key.clone()).or_default();
        if newly_succeeded {
            *rec = BackoffRecord::default();
        }
        rec.failures_after_last_success += newly_failed.len() as u32;
        rec.last_failure = newly_failed.iter().copied().chain(rec.last_failure).max();
    }

    // --- Decisions.
    let active: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| !terminal(p) && p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| !terminal(p) && p.metadata.deletion_timestamp.is_some())
        .count();
    let failed_total = status.failed.unwrap_or(0) + unc_failed.len() as i32;
    let succeeded_total = if indexed {
        completed.len() as i32
    } else {
        status.succeeded.unwrap_or(0) + unc_succeeded.len() as i32
    };
    let mut conds = status.conditions.clone().unwrap_or_default();
    let mut requeue: Option<Duration> = None;
    let mut wait = |d: Duration| requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));

    if !suspended && status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }
    // Suspension and resumption (the deadline counts from the latest resumption).
    if suspended {
        if ensure_condition(
            &mut conds,
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            common::record(
                &ctx.recorder,
                &job,
                EventType::Normal,
                "Suspended",
                "Suspend",
                "Job suspended".into(),
            )
            .await;
        }
    } else if ensure_condition(
        &mut conds,
        "Suspended",
        false,
        "JobResumed",
        "Job resumed",
        now,
    ) {
        common::record(
            &ctx.recorder,
            &job,
            EventType::Normal,
            "Resumed",
            "Resume",
            "Job resumed".into(),
        )
        .await;
        status.start_time = Some(Time(now));
    }

    let has_target = conds.iter().any(|c| {
        (c.type_ == "FailureTarget" || c.type_ == "SuccessCriteriaMet") && c.status == "True"
    });
    if !has_target {
        let deadline = spec
            .active_deadline_seconds
            .zip(status.start_time.as_ref())
            .filter(|_| !suspended)
            .and_then(|(s, t)| t.0.checked_add(SignedDuration::from_secs(s)).ok());
        let complete = if indexed {
            completions.is_some_and(|c| succeeded_total >= c)
        } else {
            match completions {
                Some(c) => succeeded_total >= c,
                // A work queue: done once one pod succeeded and none is still running.
                None => succeeded_total > 0 && active.is_empty(),
            }
        };
        let target = if let Some((reason, message)) = failure_target {
            Some(("FailureTarget", reason, message))
        } else if failed_total > backoff_limit {
            Some((
                "FailureTarget",
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into(),
            ))
        } else if deadline.is_some_and(|d| d <= now) {
            Some((
                "FailureTarget",
                "DeadlineExceeded".into(),
                "Job was active longer than specified deadline".into(),
            ))
        } else if complete {
            Some((
                "SuccessCriteriaMet",
                "CompletionsReached".into(),
                "Reached expected number of succeeded pods".into(),
            ))
        } else {
            if let Some(d) = deadline {
                wait(Duration::try_from(d.duration_since(now)).unwrap_or(Duration::ZERO));
            }
            None
        };
        if let Some((type_, reason, message)) = target {
            conds.push(condition(type_, &reason, &message, now));
        }
    }

    let target = conds
        .iter()
        .find(|c| {
            (c.type_ == "FailureTarget" || c.type_ == "SuccessCriteriaMet") && c.status == "True"
        })
        .cloned();
    let mut failed_create = None;
    if let Some(target) = &target {
        // Finishing: stop what still runs; the terminal condition waits until every pod is counted.
        delete_pods(&job, &ctx, &key, &active).await;
        let held = pods.iter().any(|p| has_finalizer(p));
        if active.is_empty() && !held && unc_succeeded.is_empty() && unc_failed.is_empty() {
            let reason = target.reason.clone().unwrap_or_default();
            let message = target.message.clone().unwrap_or_default();
            if target.type_ == "SuccessCriteriaMet" {
                conds.push(condition("Complete", &reason, &message, now));
                status.completion_time = Some(Time(now));
                common::record(
                    &ctx.recorder,
                    &job,
                    EventType::Normal,
                    "Completed",
                    "Complete",
                    "Job completed".into(),
                )
                .await;
            } else {
                conds.push(condition("Failed", &reason, &message, now));
                common::record(
                    &ctx.recorder,
                    &job,
                    EventType::Warning,
                    &reason,
                    "Fail",
                    message,
                )
                .await;
            }
        }
    } else if suspended {
        delete_pods(&job, &ctx, &key, &active).await;
    } else {
        let present: HashSet<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .collect();
        if ctx.expectations.satisfied(&key, |n| present.contains(n)) {
            let want = match completions {
                None if succeeded_total > 0 => active.len() as i32,
                None => parallelism,
                Some(c) => (c - succeeded_total).clamp(0, parallelism),
            };
            let active_n = active.len() as i32;
            if active_n > want {
                // Fewer wanted (parallelism lowered): newest first, as upstream's ActivePods order.
                let mut victims = active.clone();
                victims.sort_by_key(|p| std::cmp::Reverse(p.creation_timestamp().map(|t| t.0)));
                victims.truncate((active_n - want) as usize);
                delete_pods(&job, &ctx, &key, &victims).await;
            } else if active_n < want {
                let rec = ctx
                    .backoff
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .cloned()
                    .unwrap_or_default();
                let left = remaining_backoff(&rec, now);
                if left > Duration::ZERO {
                    wait(left);
                } else {
                    let count = ((want - active_n) as usize).min(MAX_PER_SYNC);
                    let indexes: Vec<Option<i32>> = if indexed {
                        let running: HashSet<i32> =
                            active.iter().filter_map(|p| pod_index(p)).collect();
                        (0..completions.unwrap_or(0))
                            .filter(|i| !completed.contains(i) && !running.contains(i))
                            .take(count)
                            .map(Some)
                            .collect()
                    } else {
                        vec![None; count]
                    };
                    failed_create = create_pods(&job, &ctx, &key, &indexes).await;
                }
            }
        }
    }

    // --- Status.
    status.conditions = (!conds.is_empty()).then_some(conds);
    status.active = Some(active.len() as i32);
    status.ready = Some(active.iter().filter(|p| is_ready(p)).count() as i32);
    status.terminating = Some(terminating as i32);
    if status != job.status.clone().unwrap_or_default() {
        put_status(&jobs_api, &mut job, status).await?;
    }
    if let Some(e) = failed_create {
        return Err(e);
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Creates one pod per entry (an index for Indexed Jobs) in upstream's slow-start batches.
async fn create_pods(
    job: &Job,
    ctx: &Ctx,
    key: &str,
    indexes: &[Option<i32>],
) -> Option<kube::Error> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    let template = job.spec.as_ref()?.template.clone();
    let pod_for = |ix: Option<i32>| {
        let prefix = match ix {
            Some(i) => format!("{name}-{i}-"),
            None => format!("{name}-"),
        };
        let mut pod = pod_from_template(&template, job, prefix);
        pod.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(TRACKING_FINALIZER.into());
        if let Some(i) = ix {
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(INDEX_KEY.into(), i.to_string());
            pod.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(INDEX_KEY.into(), i.to_string());
            if let Some(spec) = pod.spec.as_mut() {
                if spec.hostname.is_none() {
                    spec.hostname = Some(format!("{name}-{i}"));
                }
                let env = EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: format!("metadata.labels['{INDEX_KEY}']"),
                        }),
                        ..Default::default()
                    }),
                };
                for c in spec
                    .init_containers
                    .iter_mut()
                    .flatten()
                    .chain(spec.containers.iter_mut())
                {
                    let vars = c.env.get_or_insert_with(Vec::new);
                    if !vars.iter().any(|v| v.name == env.name) {
                        vars.push(env.clone());
                    }
                }
            }
        }
        pod
    };
    let mut rest = indexes;
    let mut batch = 1;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        batch *= 2;
        let pp = PostParams::default();
        let pods: Vec<Pod> = now.iter().map(|ix| pod_for(*ix)).collect();
        let results = futures::future::join_all(pods.iter().map(|p| api.create(&pp, p))).await;
        let mut error = None;
        let mut created = Vec::new();
        for r in results {
            match r {
                Ok(p) => created.push(p.name_any()),
                Err(e) => error = Some(e),
            }
        }
        ctx.expectations.expect(key, created.clone(), vec![]);
        for n in created {
            common::record(
                &ctx.recorder,
                job,
                EventType::Normal,
                "SuccessfulCreate",
                "Create",
                format!("Created pod: {n}"),
            )
            .await;
        }
        if let Some(e) = error {
            let msg = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            common::record(
                &ctx.recorder,
                job,
                EventType::Warning,
                "FailedCreate",
                "Create",
                format!("Error creating: {msg}"),
            )
            .await;
            return Some(e);
        }
    }
    None
}

async fn delete_pods(job: &Job, ctx: &Ctx, key: &str, victims: &[Arc<Pod>]) {
    if victims.is_empty() {
        return;
    }
    let ns = job.namespace().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.clients.writer.clone(), &ns);
    let victims = &victims[..victims.len().min(MAX_PER_SYNC)];
    ctx.expectations
        .expect(key, vec![], victims.iter().map(|p| p.name_any()).collect());
    common::delete_pods(&api, &ctx.recorder, job, victims).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert_eq!(parse_indexes("0-2,4,6-7", 10), set);
        // Indexes beyond completions are dropped, as upstream does after completions shrink.
        assert_eq!(
            parse_indexes("0-2,4,6-7", 5),
            [0, 1, 2, 4].into_iter().collect()
        );
        assert_eq!(parse_indexes("", 3), BTreeSet::new());
        assert_eq!(parse_indexes("x,1", 3), [1].into_iter().collect());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(0), Duration::ZERO);
        assert_eq!(backoff_delay(1), Duration::from_secs(10));
        assert_eq!(backoff_delay(2), Duration::from_secs(20));
        assert_eq!(backoff_delay(6), Duration::from_secs(320));
        assert_eq!(backoff_delay(7), Duration::from_secs(600));
        assert_eq!(backoff_delay(60), Duration::from_secs(600));
        let now = Timestamp::now();
        let rec = BackoffRecord {
            failures_after_last_success: 2,
            last_failure: now.checked_sub(SignedDuration::from_secs(5)).ok(),
        };
        assert_eq!(remaining_backoff(&rec, now), Duration::from_secs(15));
    }
}
