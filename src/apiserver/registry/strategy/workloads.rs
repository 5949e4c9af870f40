//! The apps controllers' kinds and ReplicationControllers (upstream's `pkg/registry/apps/*/strategy.go`,
//! `pkg/registry/core/replicationcontroller/strategy.go`). All track `metadata.generation`.

use serde_json::Value;

use super::{Printer, Strategy};
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::validation::{workloads, NameRule};
use crate::apiserver::status::Cause;

/// Deployments: a fixed selector.
pub struct Deployments;

impl Strategy for Deployments {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::Deployment
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::deployment(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        workloads::deployment(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        workloads::selector_update(new, old, causes);
    }
}

/// ReplicaSets: a fixed selector.
pub struct ReplicaSets;

impl Strategy for ReplicaSets {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::ReplicaSet
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::replica_set(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        workloads::replica_set(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        workloads::selector_update(new, old, causes);
    }
}

/// StatefulSets: label-length names (each pod carries `<set>-<ordinal>` as a hostname label), and
/// only a few spec fields may change.
pub struct StatefulSets;

impl Strategy for StatefulSets {
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::StatefulSet
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::stateful_set(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        workloads::stateful_set(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        workloads::stateful_set_update(new, old, causes);
    }
}

/// DaemonSets: a fixed selector.
pub struct DaemonSets;

impl Strategy for DaemonSets {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::DaemonSet
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::daemon_set(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        workloads::daemon_set(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        workloads::selector_update(new, old, causes);
    }
}

/// ControllerRevisions: immutable data.
pub struct ControllerRevisions;

impl Strategy for ControllerRevisions {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::ControllerRevision
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        workloads::controller_revision(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        workloads::controller_revision_update(new, old, causes);
    }
}

/// ReplicationControllers: the ReplicaSet's ancestor, with a plain label-map selector.
pub struct ReplicationControllers;

impl Strategy for ReplicationControllers {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::ReplicationController
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::replication_controller_defaults(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        workloads::replication_controller(obj, causes);
    }
}
