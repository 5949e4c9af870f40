//! RBAC's Roles and bindings, namespaced and cluster-wide (upstream's `pkg/registry/rbac/*/strategy.go`).
//! Escalation prevention is the authorizer's, in `authz::escalation`.

use serde_json::Value;

use super::{Printer, Strategy};
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::validation::{resources, NameRule};
use crate::apiserver::status::Cause;

/// Roles (`namespaced`) and ClusterRoles: path-segment names, PUT creates (as the bootstrap
/// reconciler writes them).
pub struct Roles {
    pub namespaced: bool,
}

impl Strategy for Roles {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }
    fn allow_create_on_update(&self) -> bool {
        true
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::role(obj, self.namespaced, causes);
    }
}

/// RoleBindings (`namespaced`) and ClusterRoleBindings: as Roles, and the `roleRef` is fixed.
pub struct RoleBindings {
    pub namespaced: bool,
}

impl Strategy for RoleBindings {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }
    fn allow_create_on_update(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        if self.namespaced {
            Printer::RoleBinding
        } else {
            Printer::ClusterRoleBinding
        }
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::role_binding(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::binding(obj, self.namespaced, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::role_ref_update(new, old, causes);
    }
}
