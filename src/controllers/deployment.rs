//! Upstream's Deployment controller (pkg/controller/deployment): one ReplicaSet per pod template
//! (named `<deployment>-<pod-template-hash>`), rolled toward the current template with RollingUpdate
//! (maxSurge / maxUnavailable) or Recreate; `deployment.kubernetes.io/revision` annotations (an old
//! template brought back by `rollout undo` gets the next revision), revisionHistoryLimit cleanup,
//! `paused`, and status with the Available / Progressing conditions and upstream's reasons.
//!
//! Start at [`reconcile`]. The pod-template-hash is FNV-32a as upstream's ComputeHash, encoded with
//! upstream's SafeEncodeString, but hashed over the template's JSON (upstream hashes a Go `spew` dump
//! of the struct, which cannot be reproduced here): names are stable across restarts but differ from
//! upstream's for the same template.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use serde_json::json;

use super::common::{self, Recorder};
use super::Clients;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";

struct Ctx {
    clients: Clients,
    sets: Store<ReplicaSet>,
    recorder: Recorder,
}

pub async fn run(clients: Clients) {
    let deployments = Api::<Deployment>::all(clients.reader.clone());
    let (sets, set_events) = clients.informers.watched::<ReplicaSet>();
    let ctx = Arc::new(Ctx {
        recorder: common::recorder(clients.writer.clone(), "deployment-controller"),
        clients,
        sets,
    });
    Controller::new(deployments, Default::default())
        .watches_stream(set_events, |rs: ReplicaSet| {
            let ns = rs.namespace().unwrap_or_default();
            common::controller_of(&rs)
                .filter(|r| r.kind == "Deployment")
                .map(|r| ObjectRef::<Deployment>::new(&r.name).within(&ns))
        })
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("deployment controller: {e}");
            }
        })
        .await;
}

/// Upstream's rand.SafeEncodeString: digits mapped onto consonants and digits that spell no words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The pod-template-hash of a template (see the module doc) and the collision count.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u32;
            h = h.wrapping_mul(0x01000193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    safe_encode(&h.to_string())
}

/// The template without the pod-template-hash label, to compare a ReplicaSet's with the
/// Deployment's (upstream's EqualIgnoreHash).
fn without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH_LABEL);
        if l.is_empty() {
            if let Some(m) = t.metadata.as_mut() {
                m.labels = None;
            }
        }
    }
    serde_json::to_value(t).unwrap_or_default()
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status.as_ref().map_or((0, 0, 0), |s| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    })
}

/// An int-or-percent resolved against `total` (upstream's GetScaledValueFromIntOrPercent).
fn scaled(v: Option<&IntOrString>, default: &str, total: i32, round_up: bool) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => percent(s, total, round_up),
        None => percent(default, total, round_up),
    }
}

fn percent(s: &str, total: i32, round_up: bool) -> i32 {
    let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
    let x = p * total as i64;
    (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
}

/// maxSurge and maxUnavailable (upstream's ResolveFenceposts).
fn fenceposts(d: &Deployment, replicas: i32) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), "25%", replicas, true);
    let mut unavailable = scaled(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        "25%",
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let ns = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let Some(spec) = d.spec.clone() else {
        return Ok(Action::await_change());
    };
    let sets_api = Api::<ReplicaSet>::namespaced(ctx.clients.writer.clone(), &ns);
    let mut sets: Vec<ReplicaSet> = ctx
        .sets
        .state()
        .iter()
        .filter(|rs| {
            rs.namespace().as_deref() == Some(ns.as_str())
                && common::controller_of(rs.as_ref()).is_some_and(|r| r.uid == uid)
        })
        .map(|rs| rs.as_ref().clone())
        .collect();
    sets.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.clone().map(|t| t.0),
            rs.name_any(),
        )
    });
    let replicas = spec.replicas.unwrap_or(1);

    if d.metadata.deletion_timestamp.is_some() {
        return sync_status(&d, &ctx, &sets, None, None).await;
    }

    let wanted = without_hash(&spec.template);
    let new_index = sets.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .map(without_hash)
            == Some(wanted.clone())
    });
    let max_old_revision = sets
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_index)
        .map(|(_, rs)| revision(rs))
        .max()
        .unwrap_or(0);
    let paused = spec.paused.unwrap_or(false);
    let mut new_rs: Option<ReplicaSet> = new_index.map(|i| sets[i].clone());
    let mut created_name = None;

    // The current template's ReplicaSet carries the newest revision: when an old one is brought
    // back (rollout undo) its revision moves up and the old number goes to revision-history.
    if let Some(rs) = new_rs.as_mut() {
        let rev = revision(rs);
        if rev <= max_old_revision && !paused {
            let mut ann = rs.annotations().clone();
            if rev > 0 {
                let history = ann
                    .get(REVISION_HISTORY)
                    .map(|h| format!("{h},{rev}"))
                    .unwrap_or(rev.to_string());
                ann.insert(REVISION_HISTORY.into(), history);
            }
            ann.insert(REVISION.into(), (max_old_revision + 1).to_string());
            let patch = json!({"metadata": {"annotations": ann}});
            *rs = sets_api
                .patch(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
    } else if !paused {
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collision);
        let name = format!("{}-{}", d.name_any(), hash);
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash.clone());
        let (surge, _) = fenceposts(&d, replicas);
        let recreate = is_recreate(&d);
        let start = if recreate {
            0
        } else {
            new_replicas(&sets, 0, replicas, surge)
        };
        let mut annotations: BTreeMap<String, String> = d
            .annotations()
            .iter()
            .filter(|(k, _)| !skip_annotation(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        annotations.insert(REVISION.into(), (max_old_revision + 1).to_string());
        annotations.insert(DESIRED_REPLICAS.into(), replicas.to_string());
        annotations.insert(MAX_REPLICAS.into(), (replicas + surge).to_string());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![common::controller_ref(d.as_ref())]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(start),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        match sets_api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                if start > 0 {
                    common::record(
                        &ctx.recorder,
                        d.as_ref(),
                        EventType::Normal,
                        "ScalingReplicaSet",
                        "Scale",
                        format!("Scaled up replica set {name} from 0 to {start}"),
                    )
                    .await;
                }
                created_name = Some(name);
                new_rs = Some(created);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // A ReplicaSet of that name exists: ours with this template means our cache is
                // behind (wait for it); otherwise a hash collision, resolved as upstream by bumping
                // status.collisionCount so the next hash differs.
                let existing = sets_api.get_opt(&name).await?;
                let ours_same = existing.as_ref().is_some_and(|rs| {
                    common::controller_of(rs).is_some_and(|r| r.uid == uid)
                        && rs
                            .spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .map(without_hash)
                            == Some(wanted.clone())
                });
                if !ours_same {
                    let api = Api::<Deployment>::namespaced(ctx.clients.writer.clone(), &ns);
                    let mut status = d.status.clone().unwrap_or_default();
                    status.collision_count = Some(collision.unwrap_or(0) + 1);
                    common::write_status(&api, d.as_ref(), status, |d, s| d.status = Some(s))
                        .await?;
                }
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            Err(e) => return Err(e),
        }
    }

    // The Deployment carries its newest revision too (upstream's SetDeploymentRevision); `kubectl
    // rollout undo` patches its annotations and needs them present.
    if let Some(rev) = new_rs
        .as_ref()
        .and_then(|rs| rs.annotations().get(REVISION).cloned())
    {
        if d.annotations().get(REVISION) != Some(&rev) {
            let api = Api::<Deployment>::namespaced(ctx.clients.writer.clone(), &ns);
            let mut fresh = d.as_ref().clone();
            fresh
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(REVISION.into(), rev);
            match api
                .replace(&d.name_any(), &PostParams::default(), &fresh)
                .await
            {
                // The next event brings the fresh object back to us.
                Ok(_) | Err(kube::Error::Api(_)) => return Ok(Action::await_change()),
                Err(e) => return Err(e),
            }
        }
    }
    let new_name = new_rs.as_ref().map(|r| r.name_any());
    let mut all: Vec<ReplicaSet> = sets
        .into_iter()
        .filter(|rs| Some(rs.name_any()) != new_name)
        .collect();
    let olds_len = all.len();
    if let Some(n) = &new_rs {
        all.push(n.clone());
    }

    if paused {
        // Paused: no rollout, but a scale applies to the active ReplicaSet (upstream's sync).
        if let Some(rs) = all
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .max_by_key(|rs| revision(rs))
            .cloned()
        {
            if all.iter().filter(|rs| spec_replicas(rs) > 0).count() == 1
                && spec_replicas(&rs) != replicas
            {
                scale(&ctx, &d, &rs, replicas).await?;
            }
        }
    } else if is_recreate(&d) {
        let mut olds_running = false;
        for rs in all.iter().take(olds_len) {
            if spec_replicas(rs) > 0 {
                scale(&ctx, &d, rs, 0).await?;
            }
            olds_running |= status_of(rs).0 > 0;
        }
        if !olds_running {
            if let Some(rs) = &new_rs {
                if spec_replicas(rs) != replicas {
                    scale(&ctx, &d, rs, replicas).await?;
                }
            }
        }
    } else if let Some(new) = new_rs.clone() {
        rolling(&ctx, &d, &new, &all[..olds_len], replicas).await?;
    }

    cleanup(&ctx, &d, &all[..olds_len]).await;
    // Re-read what we wrote from the cache on the next event; status now from what we know.
    sync_status(&d, &ctx, &all, new_rs.as_ref(), created_name).await
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// Annotations a Deployment has that its ReplicaSets do not get (upstream's skipCopyAnnotation).
fn skip_annotation(k: &str) -> bool {
    matches!(
        k,
        "kubectl.kubernetes.io/last-applied-configuration"
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | "deprecated.deployment.rollback.to"
    )
}

/// Upstream's NewRSNewReplicas for RollingUpdate: grow the new set while the total stays within
/// replicas + maxSurge.
fn new_replicas(olds: &[ReplicaSet], new_current: i32, replicas: i32, surge: i32) -> i32 {
    let current: i32 = olds.iter().map(spec_replicas).sum::<i32>() + new_current;
    let max_total = replicas + surge;
    if current >= max_total {
        return new_current;
    }
    let up = (max_total - current).min(replicas - new_current).max(0);
    new_current + up
}

async fn rolling(
    ctx: &Ctx,
    d: &Deployment,
    new: &ReplicaSet,
    olds: &[ReplicaSet],
    replicas: i32,
) -> Result<(), kube::Error> {
    let (surge, max_unavailable) = fenceposts(d, replicas);
    // reconcileNewReplicaSet
    let cur = spec_replicas(new);
    let mut new_spec = cur;
    if cur > replicas {
        new_spec = replicas;
    } else if cur < replicas {
        new_spec = new_replicas(olds, cur, replicas, surge);
    }
    if new_spec != cur {
        scale(ctx, d, new, new_spec).await?;
    }
    // reconcileOldReplicaSets
    let old_pods: i32 = olds.iter().map(spec_replicas).sum();
    if old_pods == 0 {
        return Ok(());
    }
    let all_pods = old_pods + new_spec;
    let min_available = replicas - max_unavailable;
    let new_unavailable = new_spec - status_of(new).2;
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(());
    }
    let mut olds: Vec<ReplicaSet> = olds
        .iter()
        .filter(|rs| spec_replicas(rs) > 0)
        .cloned()
        .collect();
    olds.sort_by_key(|rs| rs.metadata.creation_timestamp.clone().map(|t| t.0));
    // cleanupUnhealthyReplicas: unavailable old pods go first.
    let mut left = max_scaled_down;
    let mut scaled_down = 0;
    for rs in olds.iter_mut() {
        if left <= 0 {
            break;
        }
        let unhealthy = spec_replicas(rs) - status_of(rs).2;
        if unhealthy <= 0 {
            continue;
        }
        let by = unhealthy.min(left);
        let to = spec_replicas(rs) - by;
        scale(ctx, d, rs, to).await?;
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(to);
        }
        left -= by;
        scaled_down += by;
    }
    // scaleDownOldReplicaSetsForRollingUpdate
    let available: i32 = olds
        .iter()
        .map(|rs| status_of(rs).2.min(spec_replicas(rs)))
        .sum::<i32>()
        + status_of(new).2;
    let mut total = (available - min_available).min(max_scaled_down - scaled_down);
    for rs in &olds {
        if total <= 0 {
            break;
        }
        let cur = spec_replicas(rs);
        if cur == 0 {
            continue;
        }
        let by = cur.min(total);
        scale(ctx, d, rs, cur - by).await?;
        total -= by;
    }
    Ok(())
}

/// Sets a ReplicaSet's replicas and replica annotations; records upstream's ScalingReplicaSet.
async fn scale(ctx: &Ctx, d: &Deployment, rs: &ReplicaSet, to: i32) -> Result<(), kube::Error> {
    let from = spec_replicas(rs);
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let (surge, _) = fenceposts(d, replicas);
    let api = Api::<ReplicaSet>::namespaced(
        ctx.clients.writer.clone(),
        &rs.namespace().unwrap_or_default(),
    );
    let mut fresh = rs.clone();
    for _ in 0..5 {
        let spec = fresh.spec.get_or_insert_with(Default::default);
        spec.replicas = Some(to);
        let ann = fresh
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        ann.insert(DESIRED_REPLICAS.into(), replicas.to_string());
        ann.insert(MAX_REPLICAS.into(), (replicas + surge).to_string());
        match api
            .replace(&rs.name_any(), &PostParams::default(), &fresh)
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                fresh = match api.get_opt(&rs.name_any()).await? {
                    Some(f) => f,
                    None => return Ok(()),
                };
            }
            Err(e) => return Err(e),
        }
    }
    if from != to {
        let dir = if to > from { "up" } else { "down" };
        common::record(
            &ctx.recorder,
            d,
            EventType::Normal,
            "ScalingReplicaSet",
            "Scale",
            format!(
                "Scaled {dir} replica set {} from {from} to {to}",
                rs.name_any()
            ),
        )
        .await;
    }
    Ok(())
}

/// Deletes the oldest fully scaled-down old ReplicaSets beyond revisionHistoryLimit.
async fn cleanup(ctx: &Ctx, d: &Deployment, olds: &[ReplicaSet]) {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let mut dead: Vec<&ReplicaSet> = olds
        .iter()
        .filter(|rs| {
            spec_replicas(rs) == 0
                && status_of(rs).0 == 0
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    if dead.len() <= limit {
        return;
    }
    dead.sort_by_key(|rs| revision(rs));
    let api = Api::<ReplicaSet>::namespaced(
        ctx.clients.writer.clone(),
        &d.namespace().unwrap_or_default(),
    );
    for rs in dead.iter().take(dead.len() - limit) {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: rs.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let _ = api.delete(&rs.name_any(), &dp).await;
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream's SetDeploymentCondition: an unchanged status and reason keeps the condition as is; an
/// unchanged status keeps its transition time.
fn set_condition(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(old) = conds.iter().find(|o| o.type_ == c.type_) {
        if old.status == c.status && old.reason == c.reason {
            return;
        }
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    conds.retain(|o| o.type_ != c.type_);
    conds.push(c);
}

async fn sync_status(
    d: &Deployment,
    ctx: &Ctx,
    all: &[ReplicaSet],
    new: Option<&ReplicaSet>,
    created: Option<String>,
) -> Result<Action, kube::Error> {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let now = Timestamp::now();
    let (_, max_unavailable) = fenceposts(d, replicas);
    let total: i32 = all.iter().map(|rs| status_of(rs).0).sum();
    let ready: i32 = all.iter().map(|rs| status_of(rs).1).sum();
    let available: i32 = all.iter().map(|rs| status_of(rs).2).sum();
    let updated = new.map_or(0, |rs| status_of(rs).0);
    let old = d.status.clone().unwrap_or_default();
    let mut conds = old.conditions.clone().unwrap_or_default();
    if available >= replicas - max_unavailable {
        set_condition(
            &mut conds,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut conds,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    let mut requeue = None;
    let deadline = spec.progress_deadline_seconds.unwrap_or(600);
    let paused = spec.paused.unwrap_or(false);
    let was_paused = conds
        .iter()
        .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused"));
    if paused {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            ),
        );
    } else if was_paused {
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                now,
            ),
        );
    } else if let Some(new) = new {
        let name = new.name_any();
        let complete = updated == replicas
            && total == replicas
            && available >= replicas
            && status_of(new).2 >= replicas;
        if complete {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{name}\" has successfully progressed."),
                    now,
                ),
            );
        } else if created.is_some() {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    format!("Created new replica set \"{name}\""),
                    now,
                ),
            );
        } else {
            // Progress is any change in the numbers since the last sync (upstream's
            // DeploymentProgressing); without it for progressDeadlineSeconds the rollout times out.
            let progressed = updated > old.updated_replicas.unwrap_or(0)
                || ready > old.ready_replicas.unwrap_or(0)
                || available > old.available_replicas.unwrap_or(0)
                || total < old.replicas.unwrap_or(0);
            let last = conds.iter().find(|c| c.type_ == "Progressing").cloned();
            let timed_out = last
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
            if progressed {
                let mut c = condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{name}\" is progressing."),
                    now,
                );
                // Each progress moves lastUpdateTime (upstream refreshes it on every step).
                if let Some(old) = conds
                    .iter()
                    .find(|o| o.type_ == "Progressing" && o.status == "True")
                {
                    c.last_transition_time = old.last_transition_time.clone();
                }
                conds.retain(|o| o.type_ != "Progressing");
                conds.push(c);
            } else if !timed_out {
                let since = last
                    .as_ref()
                    .and_then(|c| c.last_update_time.as_ref())
                    .map(|t| t.0)
                    .unwrap_or(now);
                let at = since
                    .saturating_add(SignedDuration::from_secs(deadline as i64))
                    .unwrap_or(now);
                if at <= now {
                    set_condition(
                        &mut conds,
                        condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            format!("ReplicaSet \"{name}\" has timed out progressing."),
                            now,
                        ),
                    );
                    common::record(
                        &ctx.recorder,
                        d,
                        EventType::Warning,
                        "ProgressDeadlineExceeded",
                        "Progress",
                        format!("Deployment \"{}\" has timed out progressing.", d.name_any()),
                    )
                    .await;
                } else {
                    let wait = at.duration_since(now).as_secs().max(1) as u64;
                    requeue = Some(Duration::from_secs(wait));
                }
                if last.is_none() {
                    set_condition(
                        &mut conds,
                        condition(
                            "Progressing",
                            "True",
                            "ReplicaSetUpdated",
                            format!("ReplicaSet \"{name}\" is progressing."),
                            now,
                        ),
                    );
                }
            }
        }
    }
    conds.sort_by_key(|c| if c.type_ == "Available" { 0 } else { 1 });
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas - available).max(0)),
        terminating_replicas: None,
        collision_count: old.collision_count,
        conditions: Some(conds),
    };
    if d.status.as_ref() != Some(&status) {
        let api = Api::<Deployment>::namespaced(
            ctx.clients.writer.clone(),
            &d.namespace().unwrap_or_default(),
        );
        common::write_status(&api, d, status, |d, s| d.status = Some(s)).await?;
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn retry_later(_d: Arc<Deployment>, error: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("deployment controller: {error}");
    Action::requeue(Duration::from_secs(1))
}
