//! RBAC's escalation prevention (upstream's policy-based Role/Binding storage): a user who may write
//! Roles or bindings still cannot grant more than they hold. Writing a Role needs its rules to be held
//! already (or the `escalate` verb on it); writing a binding needs the referenced role's rules (or the
//! `bind` verb on it). `system:masters` is exempt, as upstream's `EscalationAllowed`.

use serde_json::Value;

use super::rbac::{PolicyRule, Rbac};
use super::{authorize, Attributes, User, RBAC_GROUP, SYSTEM_MASTERS};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::Registry;
use crate::apiserver::status::{ApiError, ApiResult};

/// Whether writes of this resource are subject to the escalation check.
pub fn applies(info: &ResourceInfo) -> bool {
    info.group == RBAC_GROUP
        && matches!(
            info.plural.as_str(),
            "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
        )
}

fn allowed(
    registry: &Registry,
    user: &User,
    verb: &str,
    resource: &str,
    ns: &str,
    name: &str,
) -> bool {
    let attrs = Attributes {
        verb: verb.into(),
        resource_request: true,
        api_group: RBAC_GROUP.into(),
        api_version: "v1".into(),
        namespace: ns.into(),
        resource: resource.into(),
        name: name.into(),
        ..Default::default()
    };
    authorize(registry, user, &attrs).allowed
}

/// Checks a create (`existing` None) or update of a Role, ClusterRole or binding by `user`.
pub fn check(
    registry: &Registry,
    user: &User,
    info: &ResourceInfo,
    ns: Option<&str>,
    obj: &Value,
    existing: Option<&Value>,
) -> ApiResult<()> {
    if !applies(info) || user.in_group(SYSTEM_MASTERS) {
        return Ok(());
    }
    let ns = ns.unwrap_or("");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rbac = Rbac::from_cache(registry);
    let forbidden = |why: &str| ApiError::forbidden(info, name, why);
    match info.plural.as_str() {
        "roles" | "clusterroles" => {
            let unchanged = existing.is_some_and(|old| {
                old.get("rules") == obj.get("rules")
                    && old.get("aggregationRule") == obj.get("aggregationRule")
            });
            if unchanged || allowed(registry, user, "escalate", &info.plural, ns, name) {
                return Ok(());
            }
            rbac.confirm_no_escalation(user, ns, &PolicyRule::list_of(obj))
                .map_err(|e| forbidden(&e))?;
            if obj.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                let everything = PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: vec!["*".into()],
                    resources: vec!["*".into()],
                    ..Default::default()
                };
                let urls = PolicyRule {
                    verbs: vec!["*".into()],
                    non_resource_urls: vec!["*".into()],
                    ..Default::default()
                };
                rbac.confirm_no_escalation(user, ns, &[everything, urls])
                    .map_err(|_| {
                        forbidden("must have cluster-admin privileges to use the aggregationRule")
                    })?;
            }
            Ok(())
        }
        _ => {
            let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
            if existing.is_some_and(|old| old.get("roleRef") == Some(&role_ref)) {
                return Ok(());
            }
            let kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
            let role_name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
            let resource = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if allowed(registry, user, "bind", resource, ns, role_name) {
                return Ok(());
            }
            let rules = rbac
                .role_ref_rules(&role_ref, ns)
                .map_err(|e| forbidden(&e))?;
            rbac.confirm_no_escalation(user, ns, &rules)
                .map_err(|e| forbidden(&e))
        }
    }
}
