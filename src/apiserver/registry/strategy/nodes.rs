//! Nodes (upstream's `pkg/registry/core/node/strategy.go`).

use serde_json::Value;

use super::{Printer, Strategy};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::validation::resources;
use crate::apiserver::status::Cause;

/// Nodes: a kubelet registers its Node with the status it reports, so a create keeps the status.
pub struct Nodes;

impl Strategy for Nodes {
    fn printer(&self) -> Printer {
        Printer::Node
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::node(obj);
    }
    fn prepare_for_create(&self, _info: &ResourceInfo, _obj: &mut Value) {}
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::node(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::node_update(new, old, causes);
    }
}
