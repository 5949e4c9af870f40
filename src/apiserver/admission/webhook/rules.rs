//! Which requests a webhook's `rules` select (upstream's `predicates/rules`): operations, API
//! groups, versions, resources with their subresources, and scope; plus the admission
//! configuration resources no webhook may intercept (so a broken webhook can always be removed).

use serde_json::Value;

/// The request as rules see it: what is done to which group/version/resource.
#[derive(Clone, Copy, Debug)]
pub struct RuleAttrs<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` (upstream's operation names).
    pub operation: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    /// `""` for the resource itself, else `status`, `scale`, ...
    pub subresource: &'a str,
    /// `""` for a cluster-scoped object.
    pub namespace: &'a str,
}

/// Whether one RuleWithOperations (JSON) matches the request.
pub fn rule_matches(rule: &Value, a: &RuleAttrs<'_>) -> bool {
    list_has(rule, "operations", a.operation)
        && list_has(rule, "apiGroups", a.group)
        && list_has(rule, "apiVersions", a.version)
        && resource_matches(rule, a)
        && scope_matches(rule, a)
}

/// Whether any of the webhook's rules matches.
pub fn any_rule_matches(webhook: &Value, a: &RuleAttrs<'_>) -> bool {
    webhook
        .get("rules")
        .and_then(Value::as_array)
        .is_some_and(|rules| rules.iter().any(|r| rule_matches(r, a)))
}

/// `*` or the exact value, in the string list `field` (an absent or empty list matches nothing,
/// as upstream's loops over it).
fn list_has(rule: &Value, field: &str, want: &str) -> bool {
    rule.get(field).and_then(Value::as_array).is_some_and(|l| {
        l.iter()
            .filter_map(Value::as_str)
            .any(|v| v == "*" || v == want)
    })
}

/// `pods` matches the resource only, `pods/status` that subresource, `pods/*` pods and every
/// subresource of pods (upstream's `*` part matches the empty subresource too), `*` every resource
/// (no subresources), `*/status` every status subresource, `*/*` everything.
fn resource_matches(rule: &Value, a: &RuleAttrs<'_>) -> bool {
    let Some(resources) = rule.get("resources").and_then(Value::as_array) else {
        return false;
    };
    resources.iter().filter_map(Value::as_str).any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == a.resource) && (sub == "*" || sub == a.subresource)
    })
}

/// `Cluster` matches cluster-scoped objects (Namespaces count as cluster-scoped even though their
/// requests name a namespace), `Namespaced` the others, `*` (the default) both.
fn scope_matches(rule: &Value, a: &RuleAttrs<'_>) -> bool {
    let is_namespace = a.group.is_empty() && a.resource == "namespaces";
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => is_namespace || a.namespace.is_empty(),
        "Namespaced" => !is_namespace && !a.namespace.is_empty(),
        _ => true,
    }
}

/// Upstream's `IsExemptAdmissionConfigurationResource`: writes of webhook configurations and
/// admission policies never reach webhooks.
pub fn is_exempt(group: &str, resource: &str) -> bool {
    group == "admissionregistration.k8s.io"
        && matches!(
            resource,
            "validatingwebhookconfigurations"
                | "mutatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs<'a>(op: &'a str, resource: &'a str, sub: &'a str, ns: &'a str) -> RuleAttrs<'a> {
        RuleAttrs {
            operation: op,
            group: "",
            version: "v1",
            resource,
            subresource: sub,
            namespace: ns,
        }
    }

    fn rule(resources: &[&str]) -> Value {
        json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": resources})
    }

    #[test]
    fn operations_groups_versions() {
        let r = rule(&["configmaps"]);
        assert!(rule_matches(&r, &attrs("CREATE", "configmaps", "", "ns")));
        assert!(!rule_matches(&r, &attrs("UPDATE", "configmaps", "", "ns")));
        let any = json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]});
        assert!(rule_matches(&any, &attrs("DELETE", "secrets", "", "ns")));
        let apps = json!({"operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["*"]});
        assert!(!rule_matches(
            &apps,
            &attrs("CREATE", "configmaps", "", "ns")
        ));
        let v2 = json!({"operations": ["*"], "apiGroups": [""], "apiVersions": ["v2"], "resources": ["*"]});
        assert!(!rule_matches(&v2, &attrs("CREATE", "configmaps", "", "ns")));
        // No operations listed: nothing matches.
        let none = json!({"apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]});
        assert!(!rule_matches(
            &none,
            &attrs("CREATE", "configmaps", "", "ns")
        ));
    }

    #[test]
    fn resources_and_subresources() {
        let pods = rule(&["pods"]);
        assert!(rule_matches(&pods, &attrs("CREATE", "pods", "", "ns")));
        assert!(!rule_matches(
            &pods,
            &attrs("CREATE", "pods", "status", "ns")
        ));
        let status = rule(&["pods/status"]);
        assert!(rule_matches(
            &status,
            &attrs("CREATE", "pods", "status", "ns")
        ));
        assert!(!rule_matches(&status, &attrs("CREATE", "pods", "", "ns")));
        let pods_any = rule(&["pods/*"]);
        assert!(rule_matches(
            &pods_any,
            &attrs("CREATE", "pods", "eviction", "ns")
        ));
        assert!(rule_matches(&pods_any, &attrs("CREATE", "pods", "", "ns")));
        assert!(!rule_matches(
            &pods_any,
            &attrs("CREATE", "secrets", "", "ns")
        ));
        let star = rule(&["*"]);
        assert!(rule_matches(&star, &attrs("CREATE", "secrets", "", "ns")));
        assert!(!rule_matches(
            &star,
            &attrs("CREATE", "pods", "status", "ns")
        ));
        let any_status = rule(&["*/status"]);
        assert!(rule_matches(
            &any_status,
            &attrs("CREATE", "services", "status", "ns")
        ));
        assert!(!rule_matches(
            &any_status,
            &attrs("CREATE", "services", "", "ns")
        ));
        let all = rule(&["*/*"]);
        assert!(rule_matches(&all, &attrs("CREATE", "pods", "", "ns")));
        assert!(rule_matches(
            &all,
            &attrs("CREATE", "pods", "binding", "ns")
        ));
    }

    #[test]
    fn scopes() {
        let mut r = rule(&["*"]);
        r["scope"] = json!("Namespaced");
        assert!(rule_matches(&r, &attrs("CREATE", "configmaps", "", "ns")));
        assert!(!rule_matches(&r, &attrs("CREATE", "nodes", "", "")));
        // A Namespace is cluster-scoped even when its request names it as the namespace.
        assert!(!rule_matches(&r, &attrs("CREATE", "namespaces", "", "ns")));
        r["scope"] = json!("Cluster");
        assert!(!rule_matches(&r, &attrs("CREATE", "configmaps", "", "ns")));
        assert!(rule_matches(&r, &attrs("CREATE", "nodes", "", "")));
        assert!(rule_matches(&r, &attrs("CREATE", "namespaces", "", "ns")));
        r["scope"] = json!("*");
        assert!(rule_matches(&r, &attrs("CREATE", "nodes", "", "")));
    }

    #[test]
    fn exempt_resources() {
        assert!(is_exempt(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations"
        ));
        assert!(is_exempt(
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations"
        ));
        assert!(!is_exempt("", "configmaps"));
    }
}
