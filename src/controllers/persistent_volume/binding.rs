//! Writing a binding, as upstream's `bind` (pv_controller.go): the volume's `claimRef` first, then
//! its status `Bound`, then the claim's `volumeName` and annotations, then its status `Bound` with the
//! volume's capacity and access modes. Each step is skipped when already done, so a sync interrupted
//! anywhere (a crash, a conflict) is finished by the next one: a volume pointing at a claim that
//! does not point back is how an interrupted binding looks, and both syncs handle it.
//!
//! The pure halves ([`volume_bound_to`], [`claim_bound_to`], [`claim_status_change`],
//! [`volume_unbound`]) say what would change; the `Ctx` methods write it and remember the answer in
//! the controller's cache (see `cache`).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::matching::is_volume_bound_to_claim;
use super::{Ctx, Error};
use crate::controllers::common;

/// Set on a claim once binding has completed: later syncs treat it as bound for good.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a volume or claim whose binding the controller made (absent: the user pre-bound it).
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Set on a volume a provisioner created (its value names the provisioner).
pub const ANN_DYNAMICALLY_PROVISIONED: &str = "pv.kubernetes.io/provisioned-by";
/// The capacity a volume had before an expansion that the filesystem has not caught up with.
const ANN_PRE_RESIZE_CAPACITY: &str = "volume.alpha.kubernetes.io/pre-resize-capacity";

pub fn has_annotation<K: kube::Resource>(obj: &K, key: &str) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

/// Sets annotation `key` to "yes" unless the object has it; whether it was added.
fn mark<K: kube::Resource>(obj: &mut K, key: &str) -> bool {
    if has_annotation(obj, key) {
        return false;
    }
    obj.meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_string(), "yes".to_string());
    true
}

/// The claimRef upstream writes (client-go's `reference.GetReference` of the claim).
pub fn claim_ref(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: claim.metadata.name.clone(),
        namespace: claim.metadata.namespace.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Upstream's GetBindVolumeToClaim: the volume pointing at the claim (claimRef with its UID, and the
/// bound-by-controller annotation unless the user had pre-bound it), or None when it already does.
pub fn volume_bound_to(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Option<PersistentVolume> {
    let prebound = is_volume_bound_to_claim(volume, claim);
    let mut out = volume.clone();
    let mut dirty = false;
    let current = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let points = current.is_some_and(|r| {
        r.name == claim.metadata.name
            && r.namespace.as_deref().unwrap_or("")
                == claim.metadata.namespace.as_deref().unwrap_or("")
            && r.uid.as_deref().unwrap_or("") == claim.metadata.uid.as_deref().unwrap_or("")
    });
    if !points {
        out.spec.get_or_insert_with(Default::default).claim_ref = Some(claim_ref(claim));
        dirty = true;
    }
    if !prebound && mark(&mut out, ANN_BOUND_BY_CONTROLLER) {
        dirty = true;
    }
    dirty.then_some(out)
}

/// Upstream's bindClaimToVolume: the claim naming the volume (bound-by-controller when the
/// controller chose it) and marked bind-completed, or None when it already is.
pub fn claim_bound_to(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> Option<PersistentVolumeClaim> {
    let mut out = claim.clone();
    let mut dirty = false;
    let name = volume.name_any();
    if claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()) != Some(name.as_str()) {
        out.spec.get_or_insert_with(Default::default).volume_name = Some(name);
        mark(&mut out, ANN_BOUND_BY_CONTROLLER);
        dirty = true;
    }
    if mark(&mut out, ANN_BIND_COMPLETED) {
        dirty = true;
    }
    dirty.then_some(out)
}

/// Upstream's updateClaimStatus: the claim with `phase`, and the volume's access modes and (when the
/// claim is entering the phase) capacity, or without both when there is no volume; None when nothing
/// changes. A volume without a storage capacity is an error.
pub fn claim_status_change(
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> Result<Option<PersistentVolumeClaim>, String> {
    let mut out = claim.clone();
    let status = out.status.get_or_insert_with(Default::default);
    let old_phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    let mut dirty = false;
    if old_phase != Some(phase) {
        status.phase = Some(phase.to_string());
        dirty = true;
    }
    match volume {
        None => {
            if status.access_modes.take().is_some() {
                dirty = true;
            }
            if status.capacity.take().is_some() {
                dirty = true;
            }
        }
        Some(v) => {
            let spec = v.spec.as_ref();
            let modes = spec.and_then(|s| s.access_modes.clone());
            if status.access_modes != modes {
                status.access_modes = modes;
                dirty = true;
            }
            // Only when becoming bound: a claim's capacity may differ from its volume's on purpose
            // (a filesystem smaller than the block device after an expansion).
            if old_phase != Some(phase) {
                let Some(cap) = spec
                    .and_then(|s| s.capacity.as_ref())
                    .and_then(|c| c.get("storage"))
                else {
                    return Err(format!(
                        "PersistentVolume {:?} is without a storage capacity",
                        v.name_any()
                    ));
                };
                if let Some(pre) = v.annotations().get(ANN_PRE_RESIZE_CAPACITY) {
                    let q = if crate::apiserver::wire::quantity::Quantity::parse(pre).is_ok() {
                        Q(pre.clone())
                    } else {
                        cap.clone()
                    };
                    status
                        .capacity
                        .get_or_insert_with(Default::default)
                        .insert("storage".into(), q);
                    dirty = true;
                } else if status.capacity.as_ref().and_then(|c| c.get("storage")) != Some(cap) {
                    status.capacity = spec.and_then(|s| s.capacity.clone());
                    dirty = true;
                }
            }
        }
    }
    Ok(dirty.then_some(out))
}

/// Upstream's unbindVolume (the spec half): a volume the controller bound loses its claimRef and
/// annotation; one the user pre-bound keeps its reservation without the UID.
pub fn volume_unbound(volume: &PersistentVolume) -> PersistentVolume {
    let mut out = volume.clone();
    if has_annotation(volume, ANN_BOUND_BY_CONTROLLER) {
        if let Some(s) = out.spec.as_mut() {
            s.claim_ref = None;
        }
        if let Some(a) = out.metadata.annotations.as_mut() {
            a.remove(ANN_BOUND_BY_CONTROLLER);
            if a.is_empty() {
                out.metadata.annotations = None;
            }
        }
    } else if let Some(r) = out.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
        r.uid = None;
    }
    out
}

pub fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

impl Ctx {
    fn volume_api(&self) -> Api<PersistentVolume> {
        Api::all(self.writer.clone())
    }

    fn claim_api(&self, claim: &PersistentVolumeClaim) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.writer.clone(), &claim.namespace().unwrap_or_default())
    }

    /// Writes a volume's spec and metadata.
    pub async fn update_volume(
        &self,
        v: &PersistentVolume,
    ) -> Result<Arc<PersistentVolume>, Error> {
        let saved = self
            .volume_api()
            .replace(&v.name_any(), &PostParams::default(), v)
            .await?;
        Ok(self.volumes.wrote(saved))
    }

    /// Upstream's updateVolumePhase: the status with `phase` and `message` (no write when the phase
    /// is already set). The apiserver stamps `lastPhaseTransitionTime`.
    pub async fn set_volume_phase(
        &self,
        v: &Arc<PersistentVolume>,
        phase: &str,
        message: &str,
    ) -> Result<Arc<PersistentVolume>, Error> {
        if volume_phase(v) == phase {
            return Ok(v.clone());
        }
        let mut out = v.as_ref().clone();
        let status = out.status.get_or_insert_with(Default::default);
        status.phase = Some(phase.to_string());
        status.message = (!message.is_empty()).then(|| message.to_string());
        let saved = self
            .volume_api()
            .replace_status(&out.name_any(), &PostParams::default(), &out)
            .await?;
        tracing::debug!("volume {} entered phase {phase}", v.name_any());
        Ok(self.volumes.wrote(saved))
    }

    /// Upstream's updateVolumePhaseWithEvent: the event only when the phase actually changes.
    pub async fn set_volume_phase_with_event(
        &self,
        v: &Arc<PersistentVolume>,
        phase: &str,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<Arc<PersistentVolume>, Error> {
        if volume_phase(v) == phase {
            return Ok(v.clone());
        }
        let saved = self.set_volume_phase(v, phase, message).await?;
        common::record(
            &self.recorder,
            saved.as_ref(),
            type_,
            reason,
            "Sync",
            message.into(),
        )
        .await;
        Ok(saved)
    }

    /// Writes a claim's spec and metadata.
    pub async fn update_claim(
        &self,
        c: &PersistentVolumeClaim,
    ) -> Result<Arc<PersistentVolumeClaim>, Error> {
        let saved = self
            .claim_api(c)
            .replace(&c.name_any(), &PostParams::default(), c)
            .await?;
        Ok(self.claims.wrote(saved))
    }

    /// Upstream's updateClaimStatus (see [`claim_status_change`]).
    pub async fn set_claim_status(
        &self,
        c: &Arc<PersistentVolumeClaim>,
        phase: &str,
        volume: Option<&PersistentVolume>,
    ) -> Result<Arc<PersistentVolumeClaim>, Error> {
        let Some(out) = claim_status_change(c, phase, volume).map_err(Error::Sync)? else {
            return Ok(c.clone());
        };
        let saved = self
            .claim_api(c)
            .replace_status(&out.name_any(), &PostParams::default(), &out)
            .await?;
        tracing::debug!(
            "claim {}/{} entered phase {phase}",
            c.namespace().unwrap_or_default(),
            c.name_any()
        );
        Ok(self.claims.wrote(saved))
    }

    /// Upstream's updateClaimStatusWithEvent: status and event only when the phase changes.
    pub async fn set_claim_status_with_event(
        &self,
        c: &Arc<PersistentVolumeClaim>,
        phase: &str,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), Error> {
        if claim_phase(c) == phase {
            return Ok(());
        }
        let saved = self.set_claim_status(c, phase, None).await?;
        common::record(
            &self.recorder,
            saved.as_ref(),
            type_,
            reason,
            "Sync",
            message.into(),
        )
        .await;
        Ok(())
    }

    /// Upstream's bind: volume, volume status, claim, claim status, in that order; stops at the
    /// first error (the next sync finishes the job).
    pub async fn bind(
        &self,
        volume: &Arc<PersistentVolume>,
        claim: &Arc<PersistentVolumeClaim>,
    ) -> Result<(), Error> {
        let mut volume = volume.clone();
        if let Some(v) = volume_bound_to(&volume, claim) {
            volume = self.update_volume(&v).await?;
        }
        volume = self.set_volume_phase(&volume, "Bound", "").await?;
        let mut claim = claim.clone();
        if let Some(c) = claim_bound_to(&claim, &volume) {
            claim = self.update_claim(&c).await?;
        }
        self.set_claim_status(&claim, "Bound", Some(&volume))
            .await?;
        tracing::debug!(
            "volume {} bound to claim {}/{}",
            volume.name_any(),
            claim.namespace().unwrap_or_default(),
            claim.name_any()
        );
        Ok(())
    }

    /// Upstream's unbindVolume: rolls a binding back and makes the volume Available again.
    pub async fn unbind_volume(&self, volume: &Arc<PersistentVolume>) -> Result<(), Error> {
        let saved = self.update_volume(&volume_unbound(volume)).await?;
        self.set_volume_phase(&saved, "Available", "").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::persistent_volume::matching::tests::{pv, pvc};

    const RWO: &[&str] = &["ReadWriteOnce"];

    #[test]
    fn binding_a_free_volume_marks_it_bound_by_controller() {
        let claim = pvc("c", "1Gi", RWO);
        let volume = pv("v", "5Gi", RWO);
        let bound = volume_bound_to(&volume, &claim).expect("changes");
        let r = bound
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.clone())
            .expect("claimRef");
        assert_eq!(
            (
                r.kind.as_deref(),
                r.api_version.as_deref(),
                r.namespace.as_deref()
            ),
            (Some("PersistentVolumeClaim"), Some("v1"), Some("ns"))
        );
        assert_eq!(r.uid.as_deref(), Some("uid-c"));
        assert!(has_annotation(&bound, ANN_BOUND_BY_CONTROLLER));
        // Done is done.
        assert!(volume_bound_to(&bound, &claim).is_none());
    }

    #[test]
    fn a_prebound_volume_gets_the_uid_but_not_the_annotation() {
        let claim = pvc("c", "1Gi", RWO);
        let mut volume = pv("v", "5Gi", RWO);
        volume.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
            name: Some("c".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        });
        let bound = volume_bound_to(&volume, &claim).expect("changes");
        assert_eq!(
            bound
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|r| r.uid.as_deref()),
            Some("uid-c")
        );
        assert!(!has_annotation(&bound, ANN_BOUND_BY_CONTROLLER));
        // Unbinding a user's reservation keeps it, without the UID.
        let back = volume_unbound(&bound);
        let r = back
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.clone())
            .expect("kept");
        assert_eq!((r.name.as_deref(), r.uid), (Some("c"), None));
        // The controller's own binding is removed entirely.
        let ours = volume_bound_to(&pv("w", "5Gi", RWO), &claim).expect("changes");
        let back = volume_unbound(&ours);
        assert!(back
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_none());
        assert!(back.metadata.annotations.is_none());
    }

    #[test]
    fn claim_gets_volume_name_annotations_and_bound_status() {
        let claim = pvc("c", "3Gi", RWO);
        let volume = pv("v", "5Gi", RWO);
        let bound = claim_bound_to(&claim, &volume).expect("changes");
        assert_eq!(
            bound.spec.as_ref().and_then(|s| s.volume_name.as_deref()),
            Some("v")
        );
        assert!(has_annotation(&bound, ANN_BIND_COMPLETED));
        assert!(has_annotation(&bound, ANN_BOUND_BY_CONTROLLER));
        assert!(claim_bound_to(&bound, &volume).is_none());
        // A claim that named its volume itself is not bound-by-controller.
        let mut named = pvc("d", "1Gi", RWO);
        named.spec.as_mut().expect("spec").volume_name = Some("v".into());
        let bound_named = claim_bound_to(&named, &volume).expect("changes");
        assert!(!has_annotation(&bound_named, ANN_BOUND_BY_CONTROLLER));

        let status = claim_status_change(&bound, "Bound", Some(&volume))
            .expect("ok")
            .expect("changes");
        let s = status.status.clone().expect("status");
        assert_eq!(s.phase.as_deref(), Some("Bound"));
        assert_eq!(
            s.capacity.and_then(|c| c.get("storage").cloned()),
            Some(Q("5Gi".into()))
        );
        assert_eq!(s.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        assert!(claim_status_change(&status, "Bound", Some(&volume))
            .expect("ok")
            .is_none());
        // Lost: no volume, no capacity.
        let lost = claim_status_change(&status, "Lost", None)
            .expect("ok")
            .expect("changes");
        let s = lost.status.expect("status");
        assert_eq!(
            (s.phase.as_deref(), s.capacity, s.access_modes),
            (Some("Lost"), None, None)
        );
        // A volume without capacity cannot bind.
        let mut empty = pv("e", "1Gi", RWO);
        empty.spec.as_mut().expect("spec").capacity = None;
        assert!(claim_status_change(&claim, "Bound", Some(&empty)).is_err());
    }
}
