//! ConfigMaps and Secrets (upstream's `pkg/registry/core/configmap/strategy.go`, `secret/strategy.go`).

use serde_json::Value;

use super::{Printer, Strategy};
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::validation::{fields::is_update, resources};
use crate::apiserver::status::Cause;

/// ConfigMaps: keys and size checked; `immutable` ones keep their data.
pub struct ConfigMaps;

impl Strategy for ConfigMaps {
    fn printer(&self) -> Printer {
        Printer::ConfigMap
    }
    // Upstream judges an update by its update rules first, then the object's own;
    // `validate_update` does both, in that order.
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        if !is_update(obj) {
            resources::configmap(obj, causes);
        }
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::immutable_data(new, old, &["data", "binaryData"], causes);
        resources::configmap(new, causes);
    }
}

/// Secrets: `stringData` folded into `data`, typed secrets' required keys, `immutable` and `type`
/// kept on update.
pub struct Secrets;

impl Strategy for Secrets {
    fn printer(&self) -> Printer {
        Printer::Secret
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::secret(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        if !is_update(obj) {
            resources::secret(obj, causes);
        }
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::secret_update(new, old, causes);
        resources::secret(new, causes);
    }
}
