//! The volume side of upstream's PersistentVolume controller: `syncVolume` ([`sync_volume`]) keeps a
//! volume's phase (`Available` while unbound or only reserved, `Bound`, `Released` once its claim is
//! gone) and carries out its reclaim policy ([`reclaim`]).
//!
//! [`step`] is the decision, a pure function of the volume and its claim as found; [`sync_volume`]
//! looks the claim up (cache, then the apiserver before declaring it gone, as upstream) and acts.
//!
//! Reclaiming: `Retain` leaves the volume `Released`. `Delete` goes through the volume's deleter
//! plugin as upstream's in-tree set has them ([`deleter_for`]): hostPath deletes the directory on the
//! controller's machine when it lies under `/tmp/` (upstream's test-only deleter) and then the
//! volume; CSI volumes and those a provisioner outside made are left to it; anything else fails with
//! upstream's message (`Failed` phase, `VolumeFailedDelete` event) and is retried on each resync.
//! `Recycle` needs upstream's recycler pods, which rkube does not run: the volume is marked `Failed`
//! with upstream's message for a volume no recycler serves (unless pods still use its claim).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;

use super::binding::{
    has_annotation, volume_phase, ANN_BOUND_BY_CONTROLLER, ANN_DYNAMICALLY_PROVISIONED,
};
use super::cache::key;
use super::claims::pods_using;
use super::matching::volume_mode_mismatch;
use super::{Ctx, Error};
use crate::controllers::common;

/// Set on objects a CSI driver took over from an in-tree plugin: the controller stands down.
const ANN_MIGRATED_TO: &str = "pv.kubernetes.io/migrated-to";

/// What a volume sync does, given the volume and its claim.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Unbound, or reserved for a claim that has not bound yet.
    Available,
    /// The claim is gone (or is another claim of the same name): release and reclaim.
    Reclaim,
    /// The claim exists and is not bound yet: its sync binds it.
    WakeClaim,
    /// The claim exists, unbound, but wants another volumeMode: warn, leave both alone.
    ModeMismatch,
    /// Bound both ways.
    Bound,
    /// The claim is bound to another volume and this one was provisioned for it: release, reclaim.
    ReclaimProvisioned,
    /// The claim is bound to another volume: roll this binding back.
    Unbind,
}

fn claim_ref_uid(volume: &PersistentVolume) -> Option<&str> {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .map(|r| r.uid.as_deref().unwrap_or(""))
}

fn policy(volume: &PersistentVolume) -> &str {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("")
}

/// Upstream's syncVolume decision. `claim` is the claim the claimRef names, already checked by UID
/// (None when gone or replaced).
pub fn step(volume: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> Step {
    match claim_ref_uid(volume) {
        None | Some("") => return Step::Available,
        Some(_) => {}
    }
    let Some(claim) = claim else {
        return Step::Reclaim;
    };
    let bound_to = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("");
    if bound_to.is_empty() {
        if volume_mode_mismatch(claim, volume) {
            return Step::ModeMismatch;
        }
        return Step::WakeClaim;
    }
    if bound_to == volume.name_any() {
        return Step::Bound;
    }
    if has_annotation(volume, ANN_DYNAMICALLY_PROVISIONED) && policy(volume) == "Delete" {
        Step::ReclaimProvisioned
    } else {
        Step::Unbind
    }
}

/// Upstream's syncVolume.
pub async fn sync_volume(ctx: &Ctx, volume: Arc<PersistentVolume>) -> Result<(), Error> {
    let claim = match volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        Some(r) if !r.uid.as_deref().unwrap_or("").is_empty() => find_claim(ctx, &volume).await?,
        _ => None,
    };
    match step(&volume, claim.as_deref()) {
        Step::Available => {
            ctx.set_volume_phase(&volume, "Available", "").await?;
        }
        Step::Reclaim | Step::ReclaimProvisioned => {
            let mut volume = volume;
            // A Failed volume stays Failed (the user sees what went wrong) while reclaiming retries.
            if !matches!(volume_phase(&volume), "Released" | "Failed") {
                volume = ctx.set_volume_phase(&volume, "Released", "").await?;
            }
            reclaim(ctx, &volume).await?;
        }
        Step::ModeMismatch => {
            let Some(claim) = claim else { return Ok(()) };
            common::record(
                &ctx.recorder,
                volume.as_ref(),
                EventType::Warning,
                "VolumeMismatch",
                "Sync",
                format!("Cannot bind PersistentVolume to requested PersistentVolumeClaim {:?} due to incompatible volumeMode.", claim.name_any()),
            )
            .await;
            common::record(
                &ctx.recorder,
                claim.as_ref(),
                EventType::Warning,
                "VolumeMismatch",
                "Sync",
                format!("Cannot bind PersistentVolume {:?} to requested PersistentVolumeClaim due to incompatible volumeMode.", volume.name_any()),
            )
            .await;
        }
        Step::WakeClaim => {
            // Half bound (by this controller or pre-bound by the user): the claim's sync finishes it,
            // sooner than its next resync.
            if let Some(claim) = claim {
                ctx.wake_claim(ObjectRef::from_obj(claim.as_ref()));
            }
        }
        Step::Bound => {
            ctx.set_volume_phase(&volume, "Bound", "").await?;
        }
        Step::Unbind => {
            tracing::debug!(
                "volume {} is bound {} to a claim bound elsewhere: unbinding",
                volume.name_any(),
                if has_annotation(volume.as_ref(), ANN_BOUND_BY_CONTROLLER) {
                    "by the controller"
                } else {
                    "by the user"
                }
            );
            ctx.unbind_volume(&volume).await?;
        }
    }
    Ok(())
}

/// The claim a volume's claimRef names, as upstream looks for it: the cache, then (unless the volume
/// is already Released or Failed) the apiserver, so a claim the cache has not seen yet is not taken
/// for deleted; a cached claim with another UID is read fresh too. None: gone or replaced.
async fn find_claim(
    ctx: &Ctx,
    volume: &PersistentVolume,
) -> Result<Option<Arc<PersistentVolumeClaim>>, Error> {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return Ok(None);
    };
    let ns = r.namespace.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let uid = r.uid.clone().unwrap_or_default();
    let api = Api::<PersistentVolumeClaim>::namespaced(ctx.writer.clone(), &ns);
    let mut claim = ctx.claims.get(&key(Some(&ns), &name));
    if claim.is_none() && !matches!(volume_phase(volume), "Released" | "Failed") {
        claim = api.get_opt(&name).await?.map(Arc::new);
    }
    if claim
        .as_ref()
        .is_some_and(|c| c.metadata.uid.as_deref() != Some(uid.as_str()))
    {
        claim = api.get_opt(&name).await?.map(Arc::new);
    }
    Ok(claim.filter(|c| c.metadata.uid.as_deref() == Some(uid.as_str())))
}

/// Upstream's reclaimVolume.
async fn reclaim(ctx: &Ctx, volume: &Arc<PersistentVolume>) -> Result<(), Error> {
    if volume
        .annotations()
        .get(ANN_MIGRATED_TO)
        .is_some_and(|m| !m.is_empty())
    {
        return Ok(());
    }
    match policy(volume) {
        "Retain" => Ok(()),
        "Recycle" => recycle(ctx, volume).await,
        "Delete" => delete(ctx, volume).await,
        _ => {
            ctx.set_volume_phase_with_event(
                volume,
                "Failed",
                EventType::Warning,
                "VolumeUnknownReclaimPolicy",
                "Volume has unrecognized PersistentVolumeReclaimPolicy",
            )
            .await?;
            Ok(())
        }
    }
}

/// Upstream's isVolumeReleased: bound to a claim (with UID) that is gone, replaced, or bound to
/// another volume.
fn is_released(ctx: &Ctx, volume: &PersistentVolume) -> bool {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    let uid = r.uid.as_deref().unwrap_or("");
    if uid.is_empty() {
        return false;
    }
    let ns = r.namespace.as_deref().unwrap_or("");
    let name = r.name.as_deref().unwrap_or("");
    match ctx.claims.get(&key(Some(ns), name)) {
        Some(c) if c.metadata.uid.as_deref() == Some(uid) => {
            let bound_to = c
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .unwrap_or("");
            !bound_to.is_empty() && bound_to != volume.name_any()
        }
        _ => true,
    }
}

/// The volume as the apiserver has it now (a previous reclaim may have changed it), or None.
async fn fresh(ctx: &Ctx, volume: &PersistentVolume) -> Option<Arc<PersistentVolume>> {
    match Api::<PersistentVolume>::all(ctx.writer.clone())
        .get_opt(&volume.name_any())
        .await
    {
        Ok(v) => v.map(Arc::new),
        Err(e) => {
            tracing::debug!("reading volume {}: {e}", volume.name_any());
            None
        }
    }
}

/// Upstream's recycleVolumeOperation without a recycler (see the module doc).
async fn recycle(ctx: &Ctx, volume: &Arc<PersistentVolume>) -> Result<(), Error> {
    let Some(volume) = fresh(ctx, volume).await else {
        return Ok(());
    };
    if !is_released(ctx, &volume) {
        return Ok(());
    }
    if let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        let ns = r.namespace.as_deref().unwrap_or("");
        let name = r.name.as_deref().unwrap_or("");
        let users = pods_using(&ctx.pods.state(), ns, name, false);
        let cached = ctx.claims.get(&key(Some(ns), name)).is_some();
        if !users.is_empty() && !cached {
            let msg = format!("Volume is used by pods: {}", users.join(","));
            common::record(
                &ctx.recorder,
                volume.as_ref(),
                EventType::Normal,
                "VolumeFailedRecycle",
                "Recycle",
                msg,
            )
            .await;
            return Ok(());
        }
    }
    ctx.set_volume_phase_with_event(
        &volume,
        "Failed",
        EventType::Warning,
        "VolumeFailedRecycle",
        "No recycler plugin found for the volume!",
    )
    .await?;
    Ok(())
}

/// Who deletes a volume's storage (upstream's findDeletablePlugin over the controller's in-tree
/// plugins, HonorPVReclaimPolicy on).
#[derive(Debug, PartialEq, Eq)]
pub enum Deleter {
    /// The hostPath deleter, for this path.
    HostPath(String),
    /// A program outside (a CSI driver, an external provisioner): nothing to do here.
    External,
    /// No plugin: upstream's error text.
    Missing(String),
}

/// In-tree sources whose plugins were migrated to CSI drivers: their volumes are the drivers' to
/// delete (upstream marks them `migrated-to` and stands down).
fn migrated_source(spec: &k8s_openapi::api::core::v1::PersistentVolumeSpec) -> bool {
    spec.aws_elastic_block_store.is_some()
        || spec.gce_persistent_disk.is_some()
        || spec.azure_disk.is_some()
        || spec.azure_file.is_some()
        || spec.cinder.is_some()
        || spec.vsphere_volume.is_some()
        || spec.portworx_volume.is_some()
}

pub fn deleter_for(volume: &PersistentVolume) -> Deleter {
    let name = volume.name_any();
    let spec = volume.spec.clone().unwrap_or_default();
    let host_path = || {
        match &spec.host_path {
        Some(h) => Deleter::HostPath(h.path.clone()),
        None => Deleter::Missing(format!(
            "failed to create deleter for volume {name:?}: spec.PersistentVolumeSource.HostPath is nil"
        )),
    }
    };
    if let Some(plugin) = volume
        .annotations()
        .get(ANN_DYNAMICALLY_PROVISIONED)
        .filter(|p| !p.is_empty())
    {
        return match plugin.as_str() {
            "kubernetes.io/host-path" => host_path(),
            p if super::claims::migrated_driver(p).is_some() => Deleter::External,
            "kubernetes.io/nfs"
            | "kubernetes.io/fc"
            | "kubernetes.io/iscsi"
            | "kubernetes.io/csi" => Deleter::Missing("no deletable volume plugin matched".into()),
            p if p.starts_with("kubernetes.io/") => {
                Deleter::Missing(format!("no volume plugin matched name: {p}"))
            }
            _ => Deleter::External,
        };
    }
    if has_annotation(volume, ANN_MIGRATED_TO) || spec.csi.is_some() || migrated_source(&spec) {
        return Deleter::External;
    }
    if spec.host_path.is_some() {
        return host_path();
    }
    let why = if spec.nfs.is_some() || spec.fc.is_some() || spec.iscsi.is_some() {
        "no deletable volume plugin matched"
    } else {
        "no volume plugin matched"
    };
    Deleter::Missing(format!(
        "error getting deleter volume plugin for volume {name:?}: {why}"
    ))
}

/// Upstream's hostPath deleter: only paths matching `/tmp/.+` (anywhere in the path, as upstream's
/// unanchored pattern), removed like Go's os.RemoveAll (a missing path is no error). A path with a
/// `..` component is refused too: it could leave /tmp.
pub async fn delete_host_path(path: &str) -> Result<(), String> {
    let refused =
        || format!("host_path deleter only supports /tmp/.+ but received provided {path}");
    let under_tmp = regex::Regex::new("/tmp/.+").is_ok_and(|re| re.is_match(path));
    if !under_tmp || path.split('/').any(|c| c == "..") {
        return Err(refused());
    }
    let p = std::path::PathBuf::from(path);
    let shown = path.to_string();
    tokio::task::spawn_blocking(move || {
        let r = match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
        };
        r.map_err(|e| format!("unlinkat {shown}: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Upstream's deleteVolumeOperation: the storage through its deleter, then the volume object.
async fn delete(ctx: &Ctx, volume: &Arc<PersistentVolume>) -> Result<(), Error> {
    let Some(volume) = fresh(ctx, volume).await else {
        return Ok(());
    };
    if !is_released(ctx, &volume) {
        return Ok(());
    }
    let outcome = match deleter_for(&volume) {
        Deleter::External => return Ok(()),
        Deleter::Missing(msg) => Err(msg),
        Deleter::HostPath(path) => delete_host_path(&path).await,
    };
    if let Err(msg) = outcome {
        tracing::debug!("deleting volume {}: {msg}", volume.name_any());
        // Failed stays Failed; the deletion is tried again on every sync.
        ctx.set_volume_phase_with_event(
            &volume,
            "Failed",
            EventType::Warning,
            "VolumeFailedDelete",
            &msg,
        )
        .await?;
        return Ok(());
    }
    let api = Api::<PersistentVolume>::all(ctx.writer.clone());
    match api
        .delete(&volume.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => ctx.volumes.forget(&ObjectRef::from_obj(volume.as_ref())),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        // The storage is gone; the object goes on the next sync.
        Err(e) => tracing::debug!("deleting volume {}: {e}", volume.name_any()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::persistent_volume::binding::volume_bound_to;
    use crate::controllers::persistent_volume::matching::tests::{pv, pvc};
    use k8s_openapi::api::core::v1::{
        CSIPersistentVolumeSource, HostPathVolumeSource, LocalVolumeSource, NFSVolumeSource,
        ObjectReference,
    };

    const RWO: &[&str] = &["ReadWriteOnce"];

    #[test]
    fn phases_follow_the_claim() {
        let claim = pvc("c", "1Gi", RWO);
        let free = pv("v", "1Gi", RWO);
        assert_eq!(step(&free, None), Step::Available);
        // Reserved by the administrator (no UID): still Available, whether or not the claim exists.
        let mut reserved = pv("v", "1Gi", RWO);
        reserved.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
            name: Some("c".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        });
        assert_eq!(step(&reserved, None), Step::Available);
        // Bound by us, claim not yet pointing back: the claim's sync finishes it.
        let half = volume_bound_to(&free, &claim).expect("bound");
        assert_eq!(step(&half, Some(&claim)), Step::WakeClaim);
        let mut bound_claim = claim.clone();
        bound_claim.spec.as_mut().expect("spec").volume_name = Some("v".into());
        assert_eq!(step(&half, Some(&bound_claim)), Step::Bound);
        // Claim deleted (or replaced, which the lookup reports as None): released.
        assert_eq!(step(&half, None), Step::Reclaim);
        // Claim bound to another volume.
        let mut elsewhere = claim.clone();
        elsewhere.spec.as_mut().expect("spec").volume_name = Some("w".into());
        assert_eq!(step(&half, Some(&elsewhere)), Step::Unbind);
        let mut provisioned = half.clone();
        provisioned
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANN_DYNAMICALLY_PROVISIONED.into(), "example.com/p".into());
        provisioned
            .spec
            .as_mut()
            .expect("spec")
            .persistent_volume_reclaim_policy = Some("Delete".into());
        assert_eq!(
            step(&provisioned, Some(&elsewhere)),
            Step::ReclaimProvisioned
        );
        // A claim that wants a block device cannot take a filesystem volume.
        let mut block = claim.clone();
        block.spec.as_mut().expect("spec").volume_mode = Some("Block".into());
        assert_eq!(step(&half, Some(&block)), Step::ModeMismatch);
    }

    fn with_source(
        f: impl FnOnce(&mut k8s_openapi::api::core::v1::PersistentVolumeSpec),
    ) -> PersistentVolume {
        let mut v = pv("v", "1Gi", RWO);
        f(v.spec.as_mut().expect("spec"));
        v
    }

    #[test]
    fn deleters_are_upstreams_in_tree_plugins() {
        let host = with_source(|s| {
            s.host_path = Some(HostPathVolumeSource {
                path: "/mnt/data".into(),
                type_: None,
            })
        });
        assert_eq!(deleter_for(&host), Deleter::HostPath("/mnt/data".into()));
        let local = with_source(|s| {
            s.local = Some(LocalVolumeSource {
                path: "/mnt/disk".into(),
                fs_type: None,
            })
        });
        assert_eq!(
            deleter_for(&local),
            Deleter::Missing(
                "error getting deleter volume plugin for volume \"v\": no volume plugin matched"
                    .into()
            )
        );
        let nfs = with_source(|s| {
            s.nfs = Some(NFSVolumeSource {
                server: "nas".into(),
                path: "/x".into(),
                read_only: None,
            })
        });
        assert_eq!(
            deleter_for(&nfs),
            Deleter::Missing(
                "error getting deleter volume plugin for volume \"v\": no deletable volume plugin matched"
                    .into()
            )
        );
        let csi = with_source(|s| {
            s.csi = Some(CSIPersistentVolumeSource {
                driver: "d".into(),
                volume_handle: "h".into(),
                ..Default::default()
            })
        });
        assert_eq!(deleter_for(&csi), Deleter::External);
        let mut external = local.clone();
        external
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                ANN_DYNAMICALLY_PROVISIONED.into(),
                "rancher.io/local-path".into(),
            );
        assert_eq!(deleter_for(&external), Deleter::External);
    }

    #[tokio::test]
    async fn host_path_deleter_only_under_tmp() {
        assert_eq!(
            delete_host_path("/mnt/data").await,
            Err("host_path deleter only supports /tmp/.+ but received provided /mnt/data".into())
        );
        assert!(delete_host_path("/tmp/").await.is_err());
        assert!(delete_host_path("/tmp/../etc").await.is_err());
        let dir = std::env::temp_dir().join(format!("rkube-pv-test-{}", std::process::id()));
        let path = format!(
            "/tmp/{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        );
        std::fs::create_dir_all(format!("{path}/sub")).expect("mkdir");
        std::fs::write(format!("{path}/sub/f"), b"x").expect("write");
        assert_eq!(delete_host_path(&path).await, Ok(()));
        assert!(!std::path::Path::new(&path).exists());
        // Already gone: no error, as os.RemoveAll.
        assert_eq!(delete_host_path(&path).await, Ok(()));
    }
}
