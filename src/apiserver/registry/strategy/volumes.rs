//! Storage: PersistentVolumes, PersistentVolumeClaims, StorageClasses, CSIDrivers (upstream's
//! `pkg/registry/core/persistentvolume{,claim}/strategy.go`, `pkg/registry/storage/*/strategy.go`).

use serde_json::{json, Value};

use super::{Printer, Strategy};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::defaults;
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

/// PersistentVolumes: `Pending` until available.
pub struct PersistentVolumes;

impl Strategy for PersistentVolumes {
    fn printer(&self) -> Printer {
        Printer::PersistentVolume
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::persistent_volume(obj);
    }
    fn prepare_for_create(&self, _info: &ResourceInfo, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
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
