//! RBAC's escalation prevention (upstream's policy-based Role/Binding storage): a user who may write
//! Roles or bindings still cannot grant more than they hold. Writing a Role needs its rules to be held
//! already (or the `escalate` verb on it); writing a binding needs the referenced role's rules (or the
//! `bind` verb on it). `system:masters` is exempt, as upstream's `EscalationAllowed`.

use serde_json::Value;

use crate::apiserver::authz::rbac::PolicyRule;
use crate::apiserver::authz::{Attributes, Authorizer, User, RBAC_GROUP, SYSTEM_MASTERS};
use crate::apiserver::catalog::ResourceInfo;
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
    authorizer: &Authorizer,
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
    authorizer.authorize(user, &attrs).allowed
}

/// Upstream's `IsOnlyMutatingGCFields`: the update changes nothing but what the garbage collector
/// writes (ownerReferences, finalizers). Fields the server maintains (resourceVersion, managedFields,
/// selfLink) are not the user's change either.
pub fn only_gc_fields(new: &Value, old: &Value) -> bool {
    let mut copied = new.clone();
    let mut old = old.clone();
    for obj in [&mut copied, &mut old] {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "ownerReferences",
                "finalizers",
                "selfLink",
                "resourceVersion",
                "managedFields",
            ] {
                m.remove(f);
            }
        }
    }
    copied == old
}

fn has_aggregation_rule(role: &Value) -> bool {
    role.pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Checks a create (`existing` None) or update of a Role, ClusterRole or binding by `user`, on the object
/// as it will be stored, as upstream's policy-based RBAC storage: every update is checked except one that
/// only touches the garbage collector's fields (so a label change on `cluster-admin`, or a new subject on
/// an existing `admin` binding, needs the rights it grants).
pub fn check(
    authorizer: &Authorizer,
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
    let rbac = authorizer.rbac();
    let forbidden = |why: &str| ApiError::forbidden(info, name, why);
    let gc_only = existing.is_some_and(|old| only_gc_fields(obj, old));
    match info.plural.as_str() {
        "roles" | "clusterroles" => {
            if allowed(authorizer, user, "escalate", &info.plural, ns, name) || gc_only {
                return Ok(());
            }
            rbac.confirm_no_escalation(user, ns, &PolicyRule::list_of(obj))
                .map_err(|e| forbidden(&e))?;
            let aggregated = info.plural == "clusterroles"
                && (has_aggregation_rule(obj) || existing.is_some_and(has_aggregation_rule));
            if aggregated {
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
            if gc_only {
                return Ok(());
            }
            let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
            let kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
            let role_name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
            let resource = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if allowed(authorizer, user, "bind", resource, ns, role_name) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gc_only_changes() {
        let old = json!({"metadata": {"name": "a", "resourceVersion": "5", "labels": {"x": "1"}}, "subjects": [{"kind": "User", "name": "bob"}]});
        let mut gc = old.clone();
        gc["metadata"]["finalizers"] = json!(["f"]);
        gc["metadata"]["ownerReferences"] = json!([{"name": "o"}]);
        gc["metadata"]["resourceVersion"] = json!("6");
        assert!(only_gc_fields(&gc, &old));
        let mut subjects = old.clone();
        subjects["subjects"] =
            json!([{"kind": "User", "name": "bob"}, {"kind": "User", "name": "eve"}]);
        assert!(!only_gc_fields(&subjects, &old));
        let mut labels = old.clone();
        labels["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] = json!("true");
        assert!(!only_gc_fields(&labels, &old));
    }

    #[test]
    fn aggregation_rule_needs_selectors() {
        assert!(!has_aggregation_rule(&json!({})));
        assert!(!has_aggregation_rule(
            &json!({"aggregationRule": {"clusterRoleSelectors": []}})
        ));
        assert!(has_aggregation_rule(
            &json!({"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}})
        ));
    }
}
