//! Leases (upstream's `pkg/registry/coordination/lease/strategy.go`).

use serde_json::Value;

use super::{Printer, Strategy};
use crate::apiserver::registry::validation::resources;
use crate::apiserver::status::Cause;

/// Leases: heartbeats and leader election; PUT creates.
pub struct Leases;

impl Strategy for Leases {
    fn allow_create_on_update(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::Lease
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::lease(obj, causes);
    }
}
