//! Leader election on a `coordination.k8s.io` Lease, as upstream's components do it (client-go's
//! `leaderelection` with a `LeaseLock`), so that several `rkube server`s on one etcd run one scheduler
//! and one copy of each controller.
//!
//! A candidate takes the Lease when it is missing or its holder has not renewed it for the lease
//! duration (judged by when this candidate last *saw* the Lease change, never by the holder's clock),
//! then renews it every retry period. A leader that cannot renew within the renew deadline stops
//! leading: its work is stopped and it becomes a candidate again (upstream's components exit the
//! process instead; here one process holds other components too). Timings are upstream's defaults:
//! 15 s lease, 10 s renew deadline, 2 s retry period.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// A holder identity named as upstream names them, `<hostname>_<uuid>`, with the uuid kept in
/// `data_dir/instance-id`: a restarted server is the same candidate and takes its own lease back at once
/// instead of waiting out the lease duration (a second server has its own data dir, so its own id).
pub fn identity(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "rkube".into());
    let file = data_dir.join("instance-id");
    let id = match std::fs::read_to_string(&file) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            crate::private_files::write_private(&file, id.as_bytes())?;
            id
        }
    };
    Ok(format!("{host}_{id}"))
}

/// One candidate for the Lease `kube-system/<name>`.
pub struct Candidate {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// The Lease as last seen, and when it was first seen that way.
    observed: Option<(Lease, Instant)>,
}

impl Candidate {
    /// A candidate for `kube-system/<name>` holding it as `identity` (see [`identity`]).
    pub fn new(client: kube::Client, name: &str, identity: &str) -> Self {
        Candidate {
            api: Api::namespaced(client, "kube-system"),
            name: name.to_string(),
            identity: identity.to_string(),
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs `work` whenever this candidate leads: waits to acquire the Lease, runs `work()` while
    /// renewing, and when a renewal fails for the renew deadline drops the work (stopping it) and
    /// campaigns again. Never returns.
    pub async fn lead<W, F>(mut self, mut work: W) -> !
    where
        W: FnMut() -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        loop {
            while !self.try_acquire_or_renew().await {
                tokio::time::sleep(RETRY_PERIOD).await;
            }
            tracing::info!("{}: became leader of {}", self.identity, self.name);
            let leading = tokio::spawn(work());
            let mut last_renewal = Instant::now();
            loop {
                tokio::time::sleep(RETRY_PERIOD).await;
                if self.try_acquire_or_renew().await {
                    last_renewal = Instant::now();
                } else if last_renewal.elapsed() >= RENEW_DEADLINE || !self.holds() {
                    break;
                }
            }
            leading.abort();
            tracing::warn!("{}: lost the lease {}; stopped", self.identity, self.name);
        }
    }

    /// Whether the Lease as last seen names this candidate.
    fn holds(&self) -> bool {
        self.observed
            .as_ref()
            .and_then(|(l, _)| l.spec.as_ref()?.holder_identity.as_deref())
            == Some(self.identity.as_str())
    }

    /// One step of upstream's `tryAcquireOrRenew`: true when this candidate holds the Lease after it.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let current = match self.api.get_opt(&self.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!("leader election {}: {e}", self.name);
                return false;
            }
        };
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some("kube-system".into()),
                    ..Default::default()
                },
                spec: Some(self.spec(&now, now.clone(), 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observed = Some((created, Instant::now()));
                    true
                }
                Err(e) => {
                    tracing::debug!("leader election {}: {e}", self.name);
                    false
                }
            };
        };
        // Judge expiry by when this candidate saw the Lease change, not by the holder's timestamps.
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(seen, _)| seen.spec != current.spec);
        if changed {
            self.observed = Some((current.clone(), Instant::now()));
        }
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .map_or(LEASE_DURATION, |s| Duration::from_secs(s.max(0) as u64));
        let seen_at = self
            .observed
            .as_ref()
            .map_or_else(Instant::now, |(_, at)| *at);
        let mine = holder == self.identity;
        if !holder.is_empty() && !mine && seen_at.elapsed() < duration {
            return false;
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let (acquired, transitions) = if mine {
            (
                spec.acquire_time.clone().unwrap_or_else(|| now.clone()),
                transitions,
            )
        } else {
            (now.clone(), transitions + 1)
        };
        let mut lease = current.clone();
        lease.spec = Some(self.spec(&now, acquired, transitions));
        // The write is guarded by the resourceVersion read: two candidates cannot both take it.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observed = Some((updated, Instant::now()));
                true
            }
            Err(e) => {
                tracing::debug!("leader election {}: {e}", self.name);
                false
            }
        }
    }

    fn spec(&self, now: &MicroTime, acquired: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(acquired),
            renew_time: Some(now.clone()),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }
}
