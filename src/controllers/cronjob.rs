//! Upstream's CronJob controller (pkg/controller/cronjob, controllerv2): creates a Job from the
//! CronJob's template at each time its schedule (in `spec.timeZone`) names, named
//! `<cronjob>-<scheduled time in unix minutes>` so that a time is never run twice; honours
//! `startingDeadlineSeconds`, `concurrencyPolicy` (Allow, Forbid, Replace) and `suspend`; keeps
//! `status.active`, `lastScheduleTime` and `lastSuccessfulTime`; deletes finished Jobs beyond the
//! history limits; records upstream's events.
//!
//! Start at [`reconcile`] (upstream's sync: cleanupFinishedJobs, then syncCronJob). A CronJob is looked
//! at again exactly when its next time comes ([`Action::requeue`], 100 ms late as upstream, to be
//! safely past it) and whenever one of its Jobs changes; nothing polls. Schedules are computed by
//! [`super::cron_schedule`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;

use super::common::{self, Recorder};
use super::cron_schedule::{load_time_zone, Schedule};
use super::job::finished;
use super::Clients;

/// The annotation with the time a Job was scheduled for, in the CronJob's time zone.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's nextScheduleDelta: requeue a little after the time, so the time has surely come.
const NEXT_SCHEDULE_DELTA: SignedDuration = SignedDuration::from_millis(100);

struct Ctx {
    clients: Clients,
    jobs: Store<Job>,
    recorder: Recorder,
}

pub async fn run(clients: Clients) {
    let cronjobs = Api::<CronJob>::all(clients.reader.clone());
    let (jobs, job_events) = clients.informers.watched::<Job>();
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), "cronjob-controller"),
        clients,
        jobs,
    });
    Controller::new(cronjobs, Default::default())
        // A Job's change wakes the CronJob that controls it.
        .watches_stream(job_events, |job: Job| {
            let ns = job.namespace().unwrap_or_default();
            common::controller_of(&job)
                .filter(|r| r.kind == "CronJob")
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        })
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("cronjob controller: {e}");
            }
        })
        .await;
}

fn retry_later(_cj: Arc<CronJob>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    match error {
        // A stale cache: the watch brings the fresh object and wakes the CronJob again.
        kube::Error::Api(e) if e.code == 409 => Action::requeue(Duration::from_millis(200)),
        _ => {
            tracing::warn!("cronjob controller: {error}");
            Action::requeue(Duration::from_secs(1))
        }
    }
}

/// How many start times were missed (upstream's missedSchedulesType).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Missed {
    None,
    Few,
    Many,
}

/// Upstream's mostRecentScheduleTime: the time counted from (last schedule or creation, or the
/// starting deadline), the most recent time a Job should have started by `now` (None if none), how
/// many were missed, and the error of a schedule that parses but never fires.
pub fn most_recent_schedule_time(
    created: Timestamp,
    last_schedule: Option<Timestamp>,
    starting_deadline: Option<i64>,
    now: Timestamp,
    sched: &Schedule,
) -> (Timestamp, Option<Timestamp>, Missed, Result<(), String>) {
    let mut earliest = last_schedule.unwrap_or(created);
    if let Some(secs) = starting_deadline {
        if let Ok(deadline) = now.checked_sub(SignedDuration::from_secs(secs)) {
            if deadline > earliest {
                earliest = deadline;
            }
        }
    }
    // robfig's Next gives the zero time when nothing fires: that is before any `now`.
    let t1 = sched.next(earliest);
    let t2 = t1.and_then(|t| sched.next(t));
    if let Some(t1) = t1.filter(|t| now < *t) {
        let _ = t1;
        return (earliest, None, Missed::None, Ok(()));
    }
    if let (Some(t1), Some(_)) = (t1, t2.filter(|t| now < *t)) {
        return (earliest, Some(t1), Missed::None, Ok(()));
    }
    let between = match (t1, t2) {
        (Some(a), Some(b)) => b
            .duration_since(a)
            .round(k8s_openapi::jiff::Unit::Second)
            .map_or(0, |d| d.as_secs()),
        _ => 0,
    };
    let (Some(t1), true) = (t1, between >= 1) else {
        return (
            earliest,
            None,
            Missed::None,
            Err("time difference between two schedules is less than 1 second".into()),
        );
    };
    let elapsed = now.duration_since(t1).as_secs();
    let missed_count = elapsed / between + 1;
    // Jump close to `now` (one interval early, for irregular schedules) instead of stepping through
    // every missed time.
    let potential = t1
        .checked_add(SignedDuration::from_secs((missed_count - 2) * between))
        .unwrap_or(t1);
    let mut most_recent = None;
    let mut t = sched.next(potential);
    while let Some(at) = t.filter(|at| *at <= now) {
        most_recent = Some(at);
        t = sched.next(at);
    }
    let missed = match missed_count {
        n if n > 100 => Missed::Many,
        n if n > 0 => Missed::Few,
        _ => Missed::None,
    };
    (earliest, most_recent, missed, Ok(()))
}

fn inputs(cj: &CronJob) -> (Timestamp, Option<Timestamp>, Option<i64>) {
    (
        cj.metadata
            .creation_timestamp
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0),
        cj.status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0),
        cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds),
    )
}

/// When to look at the CronJob again (upstream's nextScheduleTimeDuration); None if never.
fn next_schedule_duration(cj: &CronJob, now: Timestamp, sched: &Schedule) -> Option<Duration> {
    let (created, last, _) = inputs(cj);
    let (earliest, most_recent, missed, err) =
        most_recent_schedule_time(created, last, None, now, sched);
    let base = match (err, most_recent) {
        (Err(_), _) => now,
        (Ok(()), Some(t)) => t,
        (Ok(()), None) if missed == Missed::None => earliest,
        (Ok(()), None) => now,
    };
    let at = sched.next(base)?.checked_add(NEXT_SCHEDULE_DELTA).ok()?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// Go's RFC 3339 layout: `Z` for a zero offset, else `+hh:mm`.
pub fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The Job for a scheduled time (upstream's getJobFromTemplate2).
pub fn job_for(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(format!("{}-{}", cj.name_any(), scheduled.as_second() / 60)),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![common::controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn in_active(status: &CronJobStatus, uid: &str) -> bool {
    status
        .active
        .iter()
        .flatten()
        .any(|r| r.uid.as_deref() == Some(uid))
}

fn remove_active(status: &mut CronJobStatus, uid: &str) {
    if let Some(active) = status.active.as_mut() {
        active.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

async fn event(ctx: &Ctx, cj: &CronJob, type_: EventType, reason: &str, note: String) {
    common::record(&ctx.recorder, cj, type_, reason, reason, note).await;
}

/// Deletes a Job in the background and drops it from the active list (upstream's deleteJob).
async fn delete_job(ctx: &Ctx, cj: &CronJob, status: &mut CronJobStatus, job: &Job) -> bool {
    let api = Api::<Job>::namespaced(
        ctx.clients.writer.clone(),
        &job.namespace().unwrap_or_default(),
    );
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(&job.name_any(), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            event(
                ctx,
                cj,
                EventType::Warning,
                "FailedDelete",
                format!("Deleted job: {e}"),
            )
            .await;
            return false;
        }
    }
    remove_active(status, &job.uid().unwrap_or_default());
    event(
        ctx,
        cj,
        EventType::Normal,
        "SuccessfulDelete",
        format!("Deleted job {}", job.name_any()),
    )
    .await;
    true
}

/// Deletes the oldest finished Jobs beyond the history limits (upstream's cleanupFinishedJobs).
async fn cleanup_finished(
    ctx: &Ctx,
    cj: &CronJob,
    status: &mut CronJobStatus,
    jobs: &[Arc<Job>],
) -> bool {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut updated = false;
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| finished(j).is_some_and(|(k, _)| k == kind))
            .collect();
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        if excess == 0 {
            continue;
        }
        // Oldest start first, unstarted last, name breaking ties (upstream's byJobStartTime).
        done.sort_by_key(|j| {
            let start = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            (start.is_none(), start, j.name_any())
        });
        for j in done.into_iter().take(excess) {
            updated |= delete_job(ctx, cj, status, j).await;
        }
    }
    updated
}

async fn reconcile(cj_in: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let mut cj = cj_in.as_ref().clone();
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let now = Timestamp::now();
    let cj_api = Api::<CronJob>::namespaced(ctx.clients.writer.clone(), &ns);
    let job_api = Api::<Job>::namespaced(ctx.clients.writer.clone(), &ns);
    // Jobs with a controller reference to this CronJob, even if their labels changed since.
    let jobs: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
        .filter(|j| {
            common::controller_of(j.as_ref()).is_some_and(|r| r.kind == "CronJob" && r.name == name)
        })
        .collect();
    let mut status = cj.status.clone().unwrap_or_default();
    let mut update = cleanup_finished(&ctx, &cj, &mut status, &jobs).await;

    let (requeue, sync_update) = sync(&ctx, &mut cj, &mut status, &jobs, now, &job_api).await?;
    update |= sync_update;
    if update {
        let mut next = cj.clone();
        next.status = Some(status);
        cj_api
            .replace_status(&name, &PostParams::default(), &next)
            .await?;
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Upstream's syncCronJob: returns when to look again and whether the status changed.
async fn sync(
    ctx: &Ctx,
    cj: &mut CronJob,
    status: &mut CronJobStatus,
    jobs: &[Arc<Job>],
    now: Timestamp,
    job_api: &Api<Job>,
) -> Result<(Option<Duration>, bool), kube::Error> {
    let mut update = false;
    let children: HashSet<String> = jobs.iter().filter_map(|j| j.uid()).collect();
    for j in jobs {
        let uid = j.uid().unwrap_or_default();
        let found = in_active(status, &uid);
        let done = finished(j);
        if !found && done.is_none() {
            // Perhaps our cache has not yet seen the status write that listed it.
            let cj_api = Api::<CronJob>::namespaced(
                ctx.clients.writer.clone(),
                &cj.namespace().unwrap_or_default(),
            );
            let fresh = cj_api.get(&cj.name_any()).await?;
            let fresh_status = fresh.status.clone().unwrap_or_default();
            if in_active(&fresh_status, &uid) {
                *cj = fresh;
                *status = fresh_status;
                continue;
            }
            event(
                ctx,
                cj,
                EventType::Warning,
                "UnexpectedJob",
                format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    j.name_any()
                ),
            )
            .await;
        } else if let (true, Some((kind, _))) = (found, done) {
            remove_active(status, &uid);
            event(
                ctx,
                cj,
                EventType::Normal,
                "SawCompletedJob",
                format!("Saw completed job: {}, status: {kind}", j.name_any()),
            )
            .await;
            update = true;
        } else if done.is_some_and(|(k, _)| k == "Complete") {
            // Successful whether or not it was still listed: its completion time counts.
            let completed = j.status.as_ref().and_then(|s| s.completion_time.clone());
            let newer = match (&status.last_successful_time, &completed) {
                (None, _) => true,
                (Some(last), Some(c)) => c.0 > last.0,
                _ => false,
            };
            if newer && completed.is_some() {
                status.last_successful_time = completed;
                update = true;
            }
        }
    }
    // Listed Jobs that are gone: confirmed by a live read, as the cache may lag.
    for r in status.active.clone().unwrap_or_default() {
        let uid = r.uid.clone().unwrap_or_default();
        if children.contains(&uid) {
            continue;
        }
        let job_name = r.name.clone().unwrap_or_default();
        if job_api.get_opt(&job_name).await?.is_none() {
            event(
                ctx,
                cj,
                EventType::Normal,
                "MissingJob",
                format!("Active job went missing: {job_name}"),
            )
            .await;
            remove_active(status, &uid);
            update = true;
        }
    }
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok((None, update));
    }
    let spec = cj.spec.clone().unwrap_or_default();
    let tz = match spec.time_zone.as_deref() {
        None => TimeZone::UTC,
        Some(name) => match load_time_zone(name) {
            Ok(tz) => tz,
            Err(e) => {
                event(
                    ctx,
                    cj,
                    EventType::Warning,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {name:?}: {e}"),
                )
                .await;
                return Ok((None, update));
            }
        },
    };
    if spec.suspend == Some(true) {
        return Ok((None, update));
    }
    if spec.schedule.contains("TZ") {
        event(ctx, cj, EventType::Warning, "UnsupportedSchedule", format!("CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", spec.schedule)).await;
    }
    let sched = match Schedule::parse(&spec.schedule, tz.clone()) {
        Ok(s) => s,
        Err(e) => {
            event(
                ctx,
                cj,
                EventType::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            )
            .await;
            return Ok((None, update));
        }
    };
    // The times below are computed on the status as it will be written.
    let mut view = cj.clone();
    view.status = Some(status.clone());
    let (created, last, deadline) = inputs(&view);
    let (_, most_recent, missed, err) =
        most_recent_schedule_time(created, last, deadline, now, &sched);
    if let Err(e) = err {
        event(
            ctx,
            cj,
            EventType::Warning,
            "InvalidSchedule",
            format!("invalid schedule: {} : {e}", spec.schedule),
        )
        .await;
        return Ok((None, update));
    }
    let next = next_schedule_duration(&view, now, &sched);
    let Some(scheduled) = most_recent.filter(|t| *t <= now) else {
        return Ok((next, update));
    };
    if missed == Missed::Many {
        event(ctx, cj, EventType::Warning, "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into()).await;
    }
    let too_late = deadline.is_some_and(|s| {
        scheduled
            .checked_add(SignedDuration::from_secs(s))
            .is_ok_and(|t| t < now)
    });
    if too_late {
        let when = scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000");
        event(
            ctx,
            cj,
            EventType::Warning,
            "MissSchedule",
            format!("Missed scheduled time to start a job: {when}"),
        )
        .await;
        return Ok((next, update));
    }
    let job = job_for(cj, scheduled, &tz);
    let job_name = job.name_any();
    let already = status
        .active
        .iter()
        .flatten()
        .any(|r| r.name.as_deref() == Some(job_name.as_str()))
        || last == Some(scheduled);
    if already {
        return Ok((next, update));
    }
    let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
    let active_count = status.active.as_ref().map_or(0, Vec::len);
    if policy == "Forbid" && active_count > 0 {
        event(
            ctx,
            cj,
            EventType::Normal,
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        )
        .await;
        return Ok((next, update));
    }
    if policy == "Replace" {
        for r in status.active.clone().unwrap_or_default() {
            let running = match job_api.get(r.name.as_deref().unwrap_or_default()).await {
                Ok(j) => j,
                Err(e) => {
                    event(
                        ctx,
                        cj,
                        EventType::Warning,
                        "FailedGet",
                        format!("Get job: {e}"),
                    )
                    .await;
                    return Err(e);
                }
            };
            if !delete_job(ctx, cj, status, &running).await {
                return Ok((Some(Duration::from_secs(1)), update));
            }
            update = true;
        }
    }
    let created = match job_api.create(&PostParams::default(), &job).await {
        Ok(j) => {
            event(
                ctx,
                cj,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created job {}", j.name_any()),
            )
            .await;
            j
        }
        Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "AlreadyExists" => {
            // Created earlier (by us, if it names us as controller) but not listed yet.
            let existing = job_api.get(&job_name).await?;
            let ours = common::controller_of(&existing)
                .is_some_and(|r| Some(&r.uid) == cj.metadata.uid.as_ref());
            if !ours || in_active(status, &existing.uid().unwrap_or_default()) {
                return Ok((None, update));
            }
            existing
        }
        Err(e) => {
            let msg = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            event(
                ctx,
                cj,
                EventType::Warning,
                "FailedCreate",
                format!("Error creating job: {msg}"),
            )
            .await;
            return Err(e);
        }
    };
    status
        .active
        .get_or_insert_with(Vec::new)
        .push(job_ref(&created));
    status.last_schedule_time = Some(Time(scheduled));
    view.status = Some(status.clone());
    Ok((next_schedule_duration(&view, now, &sched), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn most_recent_time_and_missed_starts() {
        let every_min = Schedule::parse("*/1 * * * *", TimeZone::UTC).unwrap();
        let created = ts("2026-12-04T16:00:30Z");
        // Before the first time: nothing due.
        let r =
            most_recent_schedule_time(created, None, None, ts("2026-12-04T16:00:50Z"), &every_min);
        assert_eq!((r.1, r.2), (None, Missed::None));
        // Just after it: that time, none missed.
        let r =
            most_recent_schedule_time(created, None, None, ts("2026-12-04T16:01:05Z"), &every_min);
        assert_eq!((r.1, r.2), (Some(ts("2026-12-04T16:01:00Z")), Missed::None));
        // Three minutes late: the latest, a few missed.
        let r =
            most_recent_schedule_time(created, None, None, ts("2026-12-04T16:04:10Z"), &every_min);
        assert_eq!((r.1, r.2), (Some(ts("2026-12-04T16:04:00Z")), Missed::Few));
        // A day late: many missed, unless the starting deadline bounds the search.
        let r =
            most_recent_schedule_time(created, None, None, ts("2026-12-05T16:04:10Z"), &every_min);
        assert_eq!((r.1, r.2), (Some(ts("2026-12-05T16:04:00Z")), Missed::Many));
        let r = most_recent_schedule_time(
            created,
            None,
            Some(200),
            ts("2026-12-05T16:04:10Z"),
            &every_min,
        );
        assert_eq!(r.2, Missed::Few);
        // A schedule that parses but never fires is an error, as upstream's.
        let never = Schedule::parse("0 0 30 2 *", TimeZone::UTC).unwrap();
        let r = most_recent_schedule_time(created, None, None, ts("2026-12-05T16:04:10Z"), &never);
        assert_eq!(
            r.3,
            Err("time difference between two schedules is less than 1 second".into())
        );
    }

    #[test]
    fn job_name_and_annotation() {
        let mut cj = CronJob::default();
        cj.metadata.name = Some("hello".into());
        let tz = load_time_zone("Europe/Berlin").unwrap();
        let job = job_for(&cj, ts("2026-12-04T16:03:00Z"), &tz);
        assert_eq!(job.metadata.name.as_deref(), Some("hello-29940003"));
        assert_eq!(
            job.metadata
                .annotations
                .unwrap()
                .get(SCHEDULED_TIMESTAMP)
                .map(String::as_str),
            Some("2026-12-04T17:03:00+01:00")
        );
        assert_eq!(
            rfc3339_in(ts("2026-12-04T16:03:00Z"), &TimeZone::UTC),
            "2026-12-04T16:03:00Z"
        );
    }
}
