//! Storage: PersistentVolumes, PersistentVolumeClaims, StorageClasses, CSIDrivers (upstream's
//! `pkg/registry/core/persistentvolume{,claim}/strategy.go`, `pkg/registry/storage/*/strategy.go`).

use serde_json::{json, Value};

use super::{status_update, Printer, Strategy};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::store::now_rfc3339;
use crate::apiserver::registry::validation::resources;
use crate::apiserver::status::Cause;

/// PersistentVolumeClaims: `Pending` until bound.
pub struct PersistentVolumeClaims;

impl Strategy for PersistentVolumeClaims {
    fn printer(&self) -> Printer {
        Printer::PersistentVolumeClaim
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::persistent_volume_claim(obj);
    }
    fn prepare_for_create(&self, _info: &ResourceInfo, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::pvc(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::pvc_update(new, old, causes);
    }
}

/// PersistentVolumes: `Pending` until available; `status.lastPhaseTransitionTime` follows every phase
/// change (upstream's PersistentVolumeLastPhaseTransitionTime, GA in 1.31).
pub struct PersistentVolumes;

/// Upstream's status strategy: a phase change the writer did not stamp (no time, or the old one) gets
/// the current time; an unchanged phase keeps the stored time when the writer sent none.
fn stamp_phase_transition(new: &mut Value, old: &Value) {
    let time = |v: &Value| v.pointer("/status/lastPhaseTransitionTime").cloned();
    let phase = |v: &Value| v.pointer("/status/phase").cloned();
    let (new_time, old_time) = (time(new), time(old));
    let stamp = if phase(new) == phase(old) {
        match (new_time, old_time) {
            (None, Some(t)) => Some(t),
            _ => None,
        }
    } else if new_time.is_none() || new_time == old_time {
        Some(Value::String(now_rfc3339()))
    } else {
        None
    };
    if let (Some(t), Some(status)) = (stamp, new.get_mut("status").and_then(Value::as_object_mut)) {
        status.insert("lastPhaseTransitionTime".into(), t);
    }
}

impl Strategy for PersistentVolumes {
    fn printer(&self) -> Printer {
        Printer::PersistentVolume
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::persistent_volume(obj);
    }
    fn prepare_for_create(&self, _info: &ResourceInfo, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()});
    }
    fn subresource_update(&self, subresource: &str, obj: &Value, old: &Value) -> Option<Value> {
        (subresource == "status").then(|| {
            let mut out = status_update(obj, old);
            stamp_phase_transition(&mut out, old);
            out
        })
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::pv(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::pv_update(new, old, causes);
    }
}

/// StorageClasses: provisioner and parameters fixed once created.
pub struct StorageClasses;

impl Strategy for StorageClasses {
    fn printer(&self) -> Printer {
        Printer::StorageClass
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::storage_class(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::storage_class(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::storage_class_update(new, old, causes);
    }
}

/// CSIDrivers: upstream's defaults for the driver's capabilities.
pub struct CsiDrivers;

impl Strategy for CsiDrivers {
    fn printer(&self) -> Printer {
        Printer::CsiDriver
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::csi_driver(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_phase_change_is_stamped() {
        let old = json!({"status": {"phase": "Pending", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"}});
        let mut changed = json!({"status": {"phase": "Available"}});
        stamp_phase_transition(&mut changed, &old);
        let t = changed.pointer("/status/lastPhaseTransitionTime").cloned();
        assert!(t.is_some() && t != old.pointer("/status/lastPhaseTransitionTime").cloned());
        // The writer copied the old time along: still a change.
        let mut copied = json!({"status": {"phase": "Bound", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"}});
        stamp_phase_transition(&mut copied, &old);
        assert_ne!(
            copied["status"]["lastPhaseTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        // Same phase, no time sent: the stored one is kept.
        let mut same = json!({"status": {"phase": "Pending", "message": "m"}});
        stamp_phase_transition(&mut same, &old);
        assert_eq!(
            same["status"]["lastPhaseTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
    }
}
