//! Upstream's TTL-after-finished controller (pkg/controller/ttlafterfinished): deletes a finished Job
//! (`Complete` or `Failed`) once `spec.ttlSecondsAfterFinished` seconds have passed since it finished.
//!
//! Start at [`reconcile`]: a Job whose TTL has not yet run out is looked at again when it will have
//! ([`Action::requeue`], no polling); one whose TTL has run out is read fresh from the apiserver (the
//! TTL may have been changed) and deleted with a UID precondition, so a Job recreated under the same
//! name is never the one deleted.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::ResourceExt;

use super::job::finished;
use super::Clients;

struct Ctx {
    clients: Clients,
}

pub async fn run(clients: Clients) {
    let jobs = Api::<Job>::all(clients.reader.clone());
    Controller::new(jobs, Default::default())
        .run(reconcile, retry_later, Arc::new(Ctx { clients }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("ttl-after-finished controller: {e}");
            }
        })
        .await;
}

fn retry_later(_job: Arc<Job>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("ttl-after-finished controller: {error}");
    Action::requeue(Duration::from_secs(1))
}

/// How long until the Job's TTL runs out: None when it has none or has not finished, zero when it
/// has run out (upstream's timeLeft).
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let (_, finished_at) = finished(job)?;
    let expire_at = finished_at
        .checked_add(SignedDuration::from_secs(ttl as i64))
        .ok()?;
    Some(Duration::try_from(expire_at.duration_since(now)).unwrap_or(Duration::ZERO))
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    match time_left(&job, Timestamp::now()) {
        None => return Ok(Action::await_change()),
        Some(left) if left > Duration::ZERO => return Ok(Action::requeue(left)),
        Some(_) => {}
    }
    let ns = job.namespace().unwrap_or_default();
    let api = Api::<Job>::namespaced(ctx.clients.writer.clone(), &ns);
    // The cache may be stale: the TTL is checked again on the Job as the apiserver has it.
    let Some(fresh) = api.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    match time_left(&fresh, Timestamp::now()) {
        None => return Ok(Action::await_change()),
        Some(left) if left > Duration::ZERO => return Ok(Action::requeue(left)),
        Some(_) => {}
    }
    // Upstream deletes in the foreground (pods first); rkube's garbage collector does not follow
    // Job owners yet, so a foreground delete would never finish: the Job goes in the background and
    // the Job controller lets go of its pods' tracking finalizers.
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: fresh.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&fresh.name_any(), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}
