//! Keeping the default policy in place: at start the bootstrap Roles, ClusterRoles and bindings (and the
//! two system PriorityClasses) are created where missing, as upstream's post-start hooks do; then
//! ClusterRoles with an `aggregationRule` are kept equal to the union of the rules of the ClusterRoles
//! their selectors pick (upstream's clusterrole-aggregation controller; in-process here like the
//! namespace finalizer, and working through the registry as a client's writes would).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::apiserver::authz::bootstrap_policy;
use crate::apiserver::authz::RBAC_GROUP;
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::store::{normalize, Ownership, Registry};
use crate::apiserver::status::ApiError;

const APISERVER_MANAGER: &str = "kube-apiserver";
const AGGREGATION_MANAGER: &str = "clusterrole-aggregation-controller";

/// Upstream's system priority classes (`scheduling/bootstrap-system-priority-classes`).
fn system_priority_classes() -> Vec<Value> {
    [
        ("system-node-critical", 2_000_001_000_i64, "Used for system critical pods that must not be moved from their current node."),
        ("system-cluster-critical", 2_000_000_000_i64, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
    ]
    .into_iter()
    .map(|(name, value, description)| {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
               "value": value, "description": description, "preemptionPolicy": "PreemptLowerPriority"})
    })
    .collect()
}

/// Creates each default object that does not exist yet (existing ones, possibly edited by an admin,
/// are left as they are). The creates of one kind go out together so that the store commits them in a
/// few batches rather than one sync each.
pub async fn bootstrap(registry: &Registry) -> anyhow::Result<()> {
    let groups: [(&str, &str, Vec<Value>); 5] = [
        (
            RBAC_GROUP,
            "clusterroles",
            bootstrap_policy::cluster_roles(),
        ),
        (
            RBAC_GROUP,
            "clusterrolebindings",
            bootstrap_policy::cluster_role_bindings(),
        ),
        (RBAC_GROUP, "roles", bootstrap_policy::namespaced_roles()),
        (
            RBAC_GROUP,
            "rolebindings",
            bootstrap_policy::namespaced_role_bindings(),
        ),
        (
            "scheduling.k8s.io",
            "priorityclasses",
            system_priority_classes(),
        ),
    ];
    for (group, plural, objects) in groups {
        let info = registry
            .catalog
            .find(group, "v1", plural)
            .ok_or_else(|| anyhow::anyhow!("no {plural} resource"))?;
        let creates = objects.into_iter().map(|obj| ensure(registry, &info, obj));
        for result in futures::future::join_all(creates).await {
            result?;
        }
    }
    Ok(())
}

/// Creates `obj` unless an object of its name exists.
async fn ensure(registry: &Registry, info: &ResourceInfo, obj: Value) -> anyhow::Result<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(String::from);
    if registry.get(info, ns.as_deref(), &name).await.is_ok() {
        return Ok(());
    }
    let obj = normalize(info, obj).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    match registry
        .create_owned(
            info,
            ns.as_deref(),
            obj,
            false,
            Ownership::Update(APISERVER_MANAGER),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => anyhow::bail!("creating {} {name}: {}", info.plural, e.message),
    }
}

/// Whether `labels` satisfy a metav1.LabelSelector (matchLabels and matchExpressions).
fn selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let label_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let exprs_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| {
            exprs.iter().all(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                let values: Vec<&str> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                match e.get("operator").and_then(Value::as_str) {
                    Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                    Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                    Some("Exists") => get(key).is_some(),
                    Some("DoesNotExist") => get(key).is_none(),
                    _ => false,
                }
            })
        });
    label_ok && exprs_ok
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The rules an aggregated ClusterRole should have: for each selector in turn, the rules of the matching
/// ClusterRoles (by name, itself excluded), each rule once, in that order.
pub fn aggregated_rules(role: &Value, all: &[Arc<Value>]) -> Option<Vec<Value>> {
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)?;
    let mut sorted: Vec<&Arc<Value>> = all.iter().collect();
    sorted.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    let mut rules: Vec<Value> = Vec::new();
    for selector in selectors {
        for other in &sorted {
            if name_of(other) == name_of(role) {
                continue;
            }
            let labels = other.pointer("/metadata/labels").and_then(Value::as_object);
            if !selector_matches(selector, labels) {
                continue;
            }
            for rule in other
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    Some(rules)
}

/// One pass over the ClusterRoles: rewrites the aggregated ones whose rules are out of date. Returns
/// how many were written.
async fn aggregate_once(registry: &Registry) -> Result<usize, ApiError> {
    let info = registry
        .catalog
        .find(RBAC_GROUP, "v1", "clusterroles")
        .ok_or_else(|| ApiError::internal("no clusterroles resource"))?;
    let Some(cache) = registry.cache.resource(&info.storage_prefix) else {
        return Ok(0);
    };
    let (all, _) = cache.list(&info.storage_prefix, 0);
    let mut written = 0;
    for role in &all {
        let Some(rules) = aggregated_rules(role, &all) else {
            continue;
        };
        let current = role
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if current == rules {
            continue;
        }
        let mut updated = (**role).clone();
        updated["rules"] = Value::Array(rules);
        match registry
            .update_owned(
                &info,
                None,
                name_of(role),
                updated,
                None,
                false,
                Ownership::Update(AGGREGATION_MANAGER),
            )
            .await
        {
            Ok(_) => written += 1,
            // Someone else wrote it meanwhile: the next event brings it back here.
            Err(e) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Keeps aggregated ClusterRoles up to date: a pass at start, then one after every ClusterRole change.
pub async fn run_aggregation(registry: Arc<Registry>) {
    let Some(info) = registry.catalog.find(RBAC_GROUP, "v1", "clusterroles") else {
        return;
    };
    let Some(cache) = registry.cache.resource(&info.storage_prefix) else {
        return;
    };
    let progress = registry.cache.progress_receiver();
    let subscribe = || {
        cache
            .subscribe(&info.storage_prefix, Some(i64::MAX), &progress)
            .ok()
            .map(|s| s.live)
    };
    let Some(mut live) = subscribe() else {
        return;
    };
    loop {
        // Aggregated roles can select each other (admin picks up edit); repeat until nothing changes.
        for _ in 0..5 {
            match aggregate_once(&registry).await {
                Ok(0) => break,
                Ok(_) => {
                    // Let the cache see our own writes before looking again.
                    let rev = registry.store.current_revision().await.unwrap_or(0);
                    registry
                        .cache
                        .wait_for(rev, std::time::Duration::from_secs(2))
                        .await;
                }
                Err(e) => {
                    tracing::warn!("clusterrole aggregation: {}", e.message);
                    break;
                }
            }
        }
        match live.next().await {
            // Coalesce a burst of changes into one pass.
            Ok(_) => live.skip_pending(),
            // The cache reloaded (or this fell behind): follow the new state; the next pass looks at
            // every role anyway.
            Err(_) => match subscribe() {
                Some(l) => live = l,
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, labels: Value, rules: Value) -> Arc<Value> {
        Arc::new(json!({"metadata": {"name": name, "labels": labels}, "rules": rules}))
    }

    #[test]
    fn aggregation_unions_selected_roles_by_name_once_each() {
        let get_pods = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let list_svcs = json!({"verbs": ["list"], "apiGroups": [""], "resources": ["services"]});
        let all = vec![
            role(
                "z-extra",
                json!({"agg": "true"}),
                json!([list_svcs, get_pods]),
            ),
            role("a-base", json!({"agg": "true"}), json!([get_pods])),
            role(
                "unrelated",
                json!({}),
                json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
            ),
        ];
        let view = json!({"metadata": {"name": "view", "labels": {"agg": "true"}},
                          "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}});
        assert_eq!(
            aggregated_rules(&view, &all),
            Some(vec![get_pods.clone(), list_svcs.clone()])
        );
        let plain = json!({"metadata": {"name": "p"}, "rules": []});
        assert_eq!(aggregated_rules(&plain, &all), None);
        let exprs = json!({"metadata": {"name": "e"}, "aggregationRule": {"clusterRoleSelectors": [
            {"matchExpressions": [{"key": "agg", "operator": "In", "values": ["true"]}]}]}});
        assert_eq!(aggregated_rules(&exprs, &all).map(|r| r.len()), Some(2));
    }

    #[test]
    fn priority_classes_are_upstreams() {
        let pcs = system_priority_classes();
        assert_eq!(pcs[0]["metadata"]["name"], "system-node-critical");
        assert_eq!(pcs[0]["value"], 2_000_001_000_i64);
        assert_eq!(pcs[1]["value"], 2_000_000_000_i64);
    }
}
