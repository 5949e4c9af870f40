//! The claim side of upstream's PersistentVolume controller: `syncClaim`, split as upstream into
//! [`sync_unbound_claim`] (no `bind-completed` annotation yet: find or await a volume) and
//! [`sync_bound_claim`] (keep the binding, or mark the claim `Lost`).
//!
//! An unbound claim without `volumeName` gets the smallest matching volume (see `matching`). When
//! none matches, the claim stays `Pending` and says why in an event, as upstream: its binding waits
//! for a consumer (`WaitForFirstConsumer`/`WaitForPodScheduled`), or its class asks a provisioner
//! (`ExternalProvisioning` with the `storage-provisioner` annotations, or `ProvisioningFailed` for an
//! in-tree name no plugin here serves, such as `kubernetes.io/no-provisioner`), or it has no class
//! (`FailedBinding`). A claim without a class first gets the default StorageClass, if there is one
//! (upstream's retroactive default class assignment).
//!
//! One difference, because rkube's scheduler has no VolumeBinding plugin yet: upstream leaves a claim
//! whose class waits for its first consumer to the scheduler, which picks a volume on the pod's node.
//! Here, once the claim carries `volume.kubernetes.io/selected-node`, this controller binds it to the
//! smallest matching volume whose node affinity that node satisfies (the scheduler's matching rules).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;

use super::binding::{has_annotation, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER};
use super::cache::key;
use super::matching::{
    check_volume_satisfies_claim, claim_class, claim_has_class, find_best_match,
    is_volume_bound_to_claim,
};
use super::{Ctx, Error};
use crate::controllers::common;

/// Set by the scheduler on a claim whose binding waits for a consumer: the node the pod goes to.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set on a claim a provisioner is asked to serve (and its deprecated beta twin).
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// A StorageClass marked as the default (and its beta twin).
const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const ANN_BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The provisioner of in-tree plugins this controller runs (provisioning disabled by default, as
/// upstream's `--enable-hostpath-provisioner=false`).
const HOST_PATH_PLUGIN: &str = "kubernetes.io/host-path";

fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    )
}

fn volume_name(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

async fn event(ctx: &Ctx, claim: &PersistentVolumeClaim, t: EventType, reason: &str, msg: String) {
    common::record(&ctx.recorder, claim, t, reason, "Sync", msg).await;
}

/// Upstream's syncClaim.
pub async fn sync_claim(ctx: &Ctx, claim: Arc<PersistentVolumeClaim>) -> Result<(), Error> {
    if has_annotation(claim.as_ref(), ANN_BIND_COMPLETED) {
        sync_bound_claim(ctx, claim).await
    } else {
        sync_unbound_claim(ctx, claim).await
    }
}

/// Upstream's IsDelayBindingMode: the claim's class binds on first consumer. A class that does not
/// exist (yet) does not delay.
pub fn delays_binding(class: Option<&StorageClass>, name: &str) -> Result<bool, String> {
    if name.is_empty() {
        return Ok(false);
    }
    let Some(class) = class else {
        return Ok(false);
    };
    match class.volume_binding_mode.as_deref() {
        None => Err(format!(
            "VolumeBindingMode not set for StorageClass {name:?}"
        )),
        Some(mode) => Ok(mode == "WaitForFirstConsumer"),
    }
}

/// Upstream's GetDefaultClass: among the classes marked default, the newest (then by name).
pub fn default_class(classes: &[Arc<StorageClass>]) -> Option<Arc<StorageClass>> {
    let mut defaults: Vec<&Arc<StorageClass>> = classes
        .iter()
        .filter(|c| {
            let a = c.annotations();
            a.get(ANN_DEFAULT_CLASS).map(String::as_str) == Some("true")
                || a.get(ANN_BETA_DEFAULT_CLASS).map(String::as_str) == Some("true")
        })
        .collect();
    defaults.sort_by(|a, b| {
        let t = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(b).cmp(&t(a))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    defaults.first().map(|c| (*c).clone())
}

/// Upstream's IsPodTerminated: finished, or being deleted with no container running.
fn pod_terminated(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed" | "Succeeded")) {
        return true;
    }
    pod.metadata.deletion_timestamp.is_some()
        && status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .all(|c| {
                c.state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some() || s.waiting.is_some())
            })
}

/// Whether `pod` uses `claim` (a persistentVolumeClaim volume, or the claim of an ephemeral volume,
/// named `<pod>-<volume>`).
pub fn pod_uses_claim(pod: &Pod, ns: &str, claim: &str) -> bool {
    if pod.namespace().as_deref() != Some(ns) {
        return false;
    }
    let pod_name = pod.name_any();
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|p| p.claim_name == claim)
                || (v.ephemeral.is_some() && format!("{pod_name}-{}", v.name) == claim)
        })
}

/// Upstream's findNonScheduledPodsByPVC (names, sorted) or isVolumeUsed (`ns/name`, sorted).
pub fn pods_using(pods: &[Arc<Pod>], ns: &str, claim: &str, unscheduled_only: bool) -> Vec<String> {
    let mut names: Vec<String> = pods
        .iter()
        .filter(|p| pod_uses_claim(p, ns, claim) && !pod_terminated(p))
        .filter(|p| {
            !unscheduled_only
                || p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
        })
        .map(|p| {
            if unscheduled_only {
                p.name_any()
            } else {
                format!("{ns}/{}", p.name_any())
            }
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Upstream's emitEventForUnboundDelayBindingClaim: (reason, message).
pub fn delayed_binding_event(unscheduled: &[String]) -> (&'static str, String) {
    match unscheduled {
        [] => (
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        ),
        [one] => (
            "WaitForPodScheduled",
            format!("waiting for pod {one} to be scheduled"),
        ),
        many => (
            "WaitForPodScheduled",
            format!("waiting for pods {} to be scheduled", many.join(",")),
        ),
    }
}

/// What serves a class's provisioner here (upstream's findProvisionablePlugin over the controller's
/// in-tree plugins: hostPath, nfs, fc, iscsi, csi; CSI migration always on for the migrated ones).
#[derive(Debug, PartialEq, Eq)]
pub enum Provisioner {
    /// Another program provisions: the claim is annotated and waits.
    External(String),
    /// The hostPath plugin (whose provisioning is disabled, as upstream's default).
    HostPath,
    /// No plugin can: upstream's error text.
    Missing(String),
}

/// The CSI driver an in-tree provisioner was migrated to (upstream's csi-translation-lib).
pub fn migrated_driver(in_tree: &str) -> Option<&'static str> {
    Some(match in_tree {
        "kubernetes.io/aws-ebs" => "ebs.csi.aws.com",
        "kubernetes.io/gce-pd" => "pd.csi.storage.gke.io",
        "kubernetes.io/azure-disk" => "disk.csi.azure.com",
        "kubernetes.io/azure-file" => "file.csi.azure.com",
        "kubernetes.io/cinder" => "cinder.csi.openstack.org",
        "kubernetes.io/vsphere-volume" => "csi.vsphere.vmware.com",
        "kubernetes.io/portworx-volume" => "pxd.portworx.com",
        _ => return None,
    })
}

pub fn provisioner_for(name: &str) -> Provisioner {
    if let Some(driver) = migrated_driver(name) {
        return Provisioner::External(driver.into());
    }
    match name {
        HOST_PATH_PLUGIN => Provisioner::HostPath,
        "kubernetes.io/nfs" | "kubernetes.io/fc" | "kubernetes.io/iscsi" | "kubernetes.io/csi" => {
            Provisioner::Missing("no provisionable volume plugin matched".into())
        }
        n if n.starts_with("kubernetes.io/") => {
            Provisioner::Missing(format!("no volume plugin matched name: {n}"))
        }
        n => Provisioner::External(n.into()),
    }
}

/// Upstream's syncUnboundClaim.
async fn sync_unbound_claim(ctx: &Ctx, claim: Arc<PersistentVolumeClaim>) -> Result<(), Error> {
    let wanted = volume_name(&claim).to_string();
    if wanted.is_empty() {
        let class_name = claim_class(&claim);
        let class = ctx.classes.get(&ObjectRef::new(class_name));
        let delay = delays_binding(class.as_deref(), class_name).map_err(Error::Sync)?;
        let selected = claim.annotations().get(ANN_SELECTED_NODE).cloned();
        // Stands in for the scheduler's VolumeBinding (see the module doc).
        let node = match (&selected, delay) {
            (Some(n), true) => ctx.nodes.get(&ObjectRef::new(n)),
            _ => None,
        };
        let found =
            find_best_match(&claim, &ctx.volumes.all(), node.as_deref(), delay).map_err(|e| {
                Error::Sync(format!(
                    "error finding PV for claim {:?}: {e}",
                    claim_key(&claim)
                ))
            })?;
        if let Some(volume) = found {
            return ctx.bind(&volume, &claim).await;
        }
        if assign_default_class(ctx, &claim).await? {
            // The update comes back through the watch and the claim is synced again.
            return Ok(());
        }
        if delay && selected.is_none() {
            let ns = claim.namespace().unwrap_or_default();
            let unscheduled = pods_using(&ctx.pods.state(), &ns, &claim.name_any(), true);
            let (reason, msg) = delayed_binding_event(&unscheduled);
            event(ctx, &claim, EventType::Normal, reason, msg).await;
        } else if !class_name.is_empty() {
            return provision_claim(ctx, &claim, class_name).await;
        } else {
            event(
                ctx,
                &claim,
                EventType::Normal,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set".into(),
            )
            .await;
        }
        ctx.set_claim_status(&claim, "Pending", None).await?;
        return Ok(());
    }
    // The user asked for a specific volume.
    let Some(volume) = ctx.volumes.get(&key(None, &wanted)) else {
        // Not there (yet): wait for it.
        ctx.set_claim_status(&claim, "Pending", None).await?;
        return Ok(());
    };
    let claimed = volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some();
    if !claimed {
        if let Err(why) = check_volume_satisfies_claim(&volume, &claim) {
            event(
                ctx,
                &claim,
                EventType::Warning,
                "VolumeMismatch",
                format!("Cannot bind to requested volume {wanted:?}: {why}"),
            )
            .await;
            ctx.set_claim_status(&claim, "Pending", None).await?;
            return Ok(());
        }
        return ctx.bind(&volume, &claim).await;
    }
    if is_volume_bound_to_claim(&volume, &claim) {
        // Reserved for this claim (or half bound): finish the binding.
        return ctx.bind(&volume, &claim).await;
    }
    let msg = format!("volume {wanted:?} already bound to a different claim.");
    event(ctx, &claim, EventType::Warning, "FailedBinding", msg).await;
    if !has_annotation(claim.as_ref(), ANN_BOUND_BY_CONTROLLER) {
        ctx.set_claim_status(&claim, "Pending", None).await?;
        return Ok(());
    }
    let other = volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .map(|r| {
            format!(
                "{}/{}",
                r.namespace.as_deref().unwrap_or(""),
                r.name.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    Err(Error::Sync(format!(
        "invalid binding of claim {:?} to volume {wanted:?}: volume already claimed by {other:?}",
        claim_key(&claim)
    )))
}

/// Upstream's syncBoundClaim.
async fn sync_bound_claim(ctx: &Ctx, claim: Arc<PersistentVolumeClaim>) -> Result<(), Error> {
    let wanted = volume_name(&claim).to_string();
    if wanted.is_empty() {
        return ctx
            .set_claim_status_with_event(
                &claim,
                "Lost",
                EventType::Warning,
                "ClaimLost",
                "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
            )
            .await;
    }
    let Some(volume) = ctx.volumes.get(&key(None, &wanted)) else {
        return ctx
            .set_claim_status_with_event(
                &claim,
                "Lost",
                EventType::Warning,
                "ClaimLost",
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
            )
            .await;
    };
    let claim_uid = volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .map(|r| r.uid.clone().unwrap_or_default());
    match claim_uid {
        // Unbound volume (or a cache behind our own write): bind again; all is well: make sure.
        None => ctx.bind(&volume, &claim).await,
        Some(uid) if Some(uid.as_str()) == claim.metadata.uid.as_deref() => {
            ctx.bind(&volume, &claim).await
        }
        Some(_) => {
            ctx.set_claim_status_with_event(
                &claim,
                "Lost",
                EventType::Warning,
                "ClaimMisbound",
                "Two claims are bound to the same volume, this one is bound incorrectly",
            )
            .await
        }
    }
}

/// Upstream's assignDefaultStorageClass: a claim that names no class gets the default one.
async fn assign_default_class(ctx: &Ctx, claim: &PersistentVolumeClaim) -> Result<bool, Error> {
    if claim_has_class(claim) {
        return Ok(false);
    }
    let Some(class) = default_class(&ctx.classes.state()) else {
        return Ok(false);
    };
    let mut out = claim.clone();
    out.spec
        .get_or_insert_with(Default::default)
        .storage_class_name = Some(class.name_any());
    ctx.update_claim(&out).await?;
    Ok(true)
}

/// Upstream's setClaimProvisioner: both provisioner annotations name `provisioner`.
async fn set_claim_provisioner(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    provisioner: &str,
) -> Result<(), Error> {
    if claim
        .annotations()
        .get(ANN_STORAGE_PROVISIONER)
        .map(String::as_str)
        == Some(provisioner)
    {
        return Ok(());
    }
    let mut out = claim.clone();
    let ann = out
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    ann.insert(ANN_BETA_STORAGE_PROVISIONER.into(), provisioner.into());
    ann.insert(ANN_STORAGE_PROVISIONER.into(), provisioner.into());
    ctx.update_claim(&out).await?;
    Ok(())
}

/// Upstream's provisionClaim: hand the claim to its class's provisioner, or say why none can take
/// it. The claim's status is left as is (Pending).
async fn provision_claim(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    class_name: &str,
) -> Result<(), Error> {
    let Some(class) = ctx.classes.get(&ObjectRef::new(class_name)) else {
        let msg = format!("storageclass.storage.k8s.io {class_name:?} not found");
        event(ctx, claim, EventType::Warning, "ProvisioningFailed", msg).await;
        return Ok(());
    };
    match provisioner_for(&class.provisioner) {
        Provisioner::Missing(msg) => {
            event(ctx, claim, EventType::Warning, "ProvisioningFailed", msg).await;
            Ok(())
        }
        Provisioner::External(name) => {
            if let Err(e) = set_claim_provisioner(ctx, claim, &name).await {
                let msg = format!("Error saving claim: {e}");
                event(ctx, claim, EventType::Warning, "ProvisioningFailed", msg).await;
                return Err(e);
            }
            let msg = format!(
                "Waiting for a volume to be created either by the external provisioner '{name}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
            );
            event(ctx, claim, EventType::Normal, "ExternalProvisioning", msg).await;
            Ok(())
        }
        Provisioner::HostPath => {
            // Upstream's provisionClaimOperation up to the plugin's NewProvisioner, which refuses.
            let msg = if claim
                .spec
                .as_ref()
                .and_then(|s| s.data_source.as_ref())
                .is_some()
            {
                format!("plugin {HOST_PATH_PLUGIN:?} is not a CSI plugin. Only CSI plugin can provision a claim with a datasource")
            } else {
                // As upstream, the provisioner annotation is set once the data source check passed.
                set_claim_provisioner(ctx, claim, HOST_PATH_PLUGIN).await?;
                let options = class.mount_options.clone().unwrap_or_default();
                if !options.is_empty() {
                    format!(
                        "Mount options are not supported by the provisioner but StorageClass {class_name:?} has mount options [{}]",
                        options.join(" ")
                    )
                } else {
                    format!("Failed to create provisioner: provisioning in volume plugin {HOST_PATH_PLUGIN:?} is disabled")
                }
            };
            event(
                ctx,
                claim,
                EventType::Warning,
                "ProvisioningFailed",
                msg.clone(),
            )
            .await;
            Err(Error::Sync(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimVolumeSource, PodSpec, PodStatus, Volume,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn class(name: &str, mode: Option<&str>, default: bool, age_s: i64) -> Arc<StorageClass> {
        Arc::new(StorageClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: default
                    .then(|| [(ANN_DEFAULT_CLASS.to_string(), "true".to_string())].into()),
                creation_timestamp: Some(Time(
                    k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 - age_s).expect("ts"),
                )),
                ..Default::default()
            },
            provisioner: "example.com/p".into(),
            volume_binding_mode: mode.map(str::to_string),
            ..Default::default()
        })
    }

    #[test]
    fn delayed_binding_follows_the_class() {
        let wffc = class("local", Some("WaitForFirstConsumer"), false, 0);
        let now = class("fast", Some("Immediate"), false, 0);
        assert_eq!(delays_binding(Some(&wffc), "local"), Ok(true));
        assert_eq!(delays_binding(Some(&now), "fast"), Ok(false));
        assert_eq!(delays_binding(None, "missing"), Ok(false));
        assert_eq!(delays_binding(None, ""), Ok(false));
        let unset = class("odd", None, false, 0);
        assert!(delays_binding(Some(&unset), "odd").is_err());
    }

    #[test]
    fn default_class_is_the_newest_marked_one() {
        let classes = vec![
            class("old", None, true, 100),
            class("new", None, true, 10),
            class("plain", None, false, 0),
        ];
        assert_eq!(
            default_class(&classes).map(|c| c.name_any()),
            Some("new".into())
        );
        assert!(default_class(&classes[2..]).is_none());
    }

    #[test]
    fn provisioners_resolve_as_upstreams_plugins() {
        assert_eq!(
            provisioner_for("kubernetes.io/no-provisioner"),
            Provisioner::Missing(
                "no volume plugin matched name: kubernetes.io/no-provisioner".into()
            )
        );
        assert_eq!(
            provisioner_for("rancher.io/local-path"),
            Provisioner::External("rancher.io/local-path".into())
        );
        assert_eq!(
            provisioner_for("kubernetes.io/aws-ebs"),
            Provisioner::External("ebs.csi.aws.com".into())
        );
        assert_eq!(
            provisioner_for("kubernetes.io/host-path"),
            Provisioner::HostPath
        );
        assert_eq!(
            provisioner_for("kubernetes.io/nfs"),
            Provisioner::Missing("no provisionable volume plugin matched".into())
        );
    }

    fn pod(name: &str, claim: &str, node: Option<&str>, phase: &str) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                volumes: Some(vec![Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim.into(),
                        read_only: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn waiting_claims_name_their_unscheduled_pods() {
        let pods = vec![
            pod("b", "c", None, "Pending"),
            pod("a", "c", None, "Pending"),
            pod("run", "c", Some("n1"), "Running"),
            pod("done", "c", None, "Succeeded"),
            pod("other", "d", None, "Pending"),
        ];
        let unscheduled = pods_using(&pods, "ns", "c", true);
        assert_eq!(unscheduled, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(
            delayed_binding_event(&unscheduled),
            (
                "WaitForPodScheduled",
                "waiting for pods a,b to be scheduled".into()
            )
        );
        assert_eq!(
            delayed_binding_event(&unscheduled[..1]),
            (
                "WaitForPodScheduled",
                "waiting for pod a to be scheduled".into()
            )
        );
        assert_eq!(
            delayed_binding_event(&[]),
            (
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding".into()
            )
        );
        assert_eq!(
            pods_using(&pods, "ns", "c", false),
            vec!["ns/a".to_string(), "ns/b".to_string(), "ns/run".to_string()]
        );
    }
}
