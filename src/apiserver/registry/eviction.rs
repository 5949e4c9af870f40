//! `pods/eviction`: deletes a pod unless that would break its PodDisruptionBudget (upstream's
//! `EvictionREST`, what `kubectl drain` calls).
//!
//! A pod that is not running yet, has finished, or is already being deleted goes at once. Otherwise the
//! one budget whose selector matches it must allow a disruption: its status (kept by the disruption
//! controller) must be current and `disruptionsAllowed` above zero; the eviction then takes one
//! (recording the pod in `disruptedPods`, so the controller does not count it as available) with a
//! write guarded by the budget's resourceVersion, and deletes the pod. Refusals are upstream's 429
//! `Cannot evict pod as it would violate the pod's disruption budget.`, which drain retries.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::request::Query;
use crate::apiserver::registry::selectors::LabelSelector;
use crate::apiserver::registry::store::{DeleteOptions, Ownership, Registry};
use crate::apiserver::status::{ApiError, ApiResult};

/// Upstream's cap on budgets' `disruptedPods`: beyond it evictions wait for the controller.
const MAX_DISRUPTED_PODS: usize = 2000;
/// How often an eviction retries after losing a race on the pod or its budget (upstream: 20).
const RETRIES: usize = 20;

const VIOLATES: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// What an eviction answered when it did not fail: success, or upstream's Status for a pod with
/// several budgets (HTTP 500, returned as a Status body rather than an error).
pub enum Evicted {
    Done,
    SeveralBudgets,
}

impl Evicted {
    /// The Status body and its HTTP code.
    pub fn status(&self) -> (u16, Value) {
        match self {
            Evicted::Done => (
                201,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ),
            Evicted::SeveralBudgets => (
                500,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    "code": 500}),
            ),
        }
    }
}

/// Evicts pod `ns/name` as the Eviction body `eviction` asks; `q` carries the request's dry-run.
pub async fn evict(
    reg: &Registry,
    pods: &ResourceInfo,
    ns: &str,
    name: &str,
    eviction: &Value,
    q: &Query,
) -> ApiResult<Evicted> {
    if eviction.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let opts = DeleteOptions::from_request(eviction.get("deleteOptions"), q)?;
    let budgets = reg
        .catalog
        .find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("no poddisruptionbudgets resource"))?;
    let mut last_budget = String::new();
    for _ in 0..RETRIES {
        let pod = reg.get(pods, Some(ns), name).await?;
        let mut delete = opts.clone();
        if can_ignore_budgets(&pod) {
            // Guard against the pod starting to run (and count) since it was read.
            if enforce_resource_version(&pod) && delete.precondition_rv.is_none() {
                delete.precondition_rv = resource_version(&pod);
            }
            match reg.delete(pods, Some(ns), name, &delete).await {
                Err(e) if e.code == 409 && opts.precondition_rv.is_none() => continue,
                other => return other.map(|_| Evicted::Done),
            }
        }
        let matching = matching_budgets(reg, &budgets, ns, &pod).await?;
        let budget = match matching.as_slice() {
            [] => None,
            [one] => Some(one),
            _ => return Ok(Evicted::SeveralBudgets),
        };
        if let Some(budget) = budget {
            last_budget = budget_name(budget);
            let status = |f: &str| {
                budget
                    .pointer(&format!("/status/{f}"))
                    .and_then(Value::as_i64)
            };
            let (current, desired) = (
                status("currentHealthy").unwrap_or(0),
                status("desiredHealthy").unwrap_or(0),
            );
            if !is_ready(&pod) && current >= desired && desired > 0 {
                // An unready pod does not count as healthy: evicting it takes nothing from the budget,
                // as long as it has not become ready since it was read.
                if delete.precondition_rv.is_none() {
                    delete.precondition_rv = resource_version(&pod);
                }
                return match reg.delete(pods, Some(ns), name, &delete).await {
                    Err(e) if e.code == 409 && opts.precondition_rv.is_none() => {
                        Err(still_processing(&budget_name(budget)))
                    }
                    other => other.map(|_| Evicted::Done),
                };
            }
            match take_disruption(reg, &budgets, ns, name, budget, delete.dry_run).await {
                Err(e) if e.code == 409 => continue,
                other => other?,
            }
        }
        return reg
            .delete(pods, Some(ns), name, &delete)
            .await
            .map(|_| Evicted::Done);
    }
    Err(ApiError::timeout(format!(
        "Timeout: couldn't update PodDisruptionBudget {last_budget:?} due to conflicts"
    ))
    .with_details(json!({"retryAfterSeconds": 10})))
}

/// A pod that is pending, finished or already being deleted disrupts nothing more by going.
fn can_ignore_budgets(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Pending" | "Succeeded" | "Failed")
    ) || pod.pointer("/metadata/deletionTimestamp").is_some()
}

/// Pending pods are deleted only if they are still the version read (they may start meanwhile).
fn enforce_resource_version(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) && pod.pointer("/metadata/deletionTimestamp").is_none()
}

fn resource_version(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(String::from)
}

fn budget_name(budget: &Value) -> String {
    budget
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The budgets in `ns` whose selector matches the pod's labels; an empty or invalid selector
/// matches nothing.
async fn matching_budgets(
    reg: &Registry,
    budgets: &ResourceInfo,
    ns: &str,
    pod: &Value,
) -> ApiResult<Vec<Value>> {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    let list = reg.list(budgets, Some(ns), &Query::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|b| b.tree())
        .filter(|b| {
            let selector = b
                .pointer("/spec/selector")
                .and_then(crate::apiserver::crd::scale::selector_string)
                .and_then(|s| LabelSelector::parse(&s).ok());
            // policy/v1: an empty selector selects every pod of the namespace; none selects none.
            selector.is_some_and(|s| s.is_empty() || s.matches(labels))
        })
        .map(|b| b.as_ref().clone())
        .collect())
}

/// Upstream's answer while a budget's status lags its spec, or an eviction raced a pod turning ready.
fn still_processing(budget: &str) -> ApiError {
    too_many_requests(
        10,
        &format!("The disruption budget {budget} is still being processed by the server."),
    )
}

fn too_many_requests(retry_after: i64, cause: &str) -> ApiError {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    ApiError::new(429, "TooManyRequests", VIOLATES).with_details(details)
}

/// Upstream's `checkAndDecrement`: takes one allowed disruption from the budget, recording the pod,
/// with a write that fails (409) if the budget changed since it was read.
async fn take_disruption(
    reg: &Registry,
    budgets: &ResourceInfo,
    ns: &str,
    pod: &str,
    budget: &Value,
    dry_run: bool,
) -> ApiResult<()> {
    let name = budget_name(budget);
    let observed = budget
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let generation = budget
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if observed < generation {
        return Err(still_processing(&name));
    }
    let allowed = budget
        .pointer("/status/disruptionsAllowed")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if allowed < 0 {
        return Err(budget_forbidden(
            &name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = budget
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(budget_forbidden(
            &name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        let status = |f: &str| {
            budget
                .pointer(&format!("/status/{f}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        return Err(too_many_requests(
            0,
            &format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status("desiredHealthy"),
                status("currentHealthy")
            ),
        ));
    }
    if dry_run {
        return Ok(());
    }
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut updated = budget.clone();
    updated["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        // Upstream's UpdateDisruptionAllowedCondition: no disruption left.
        set_condition(
            &mut updated,
            json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                "message": "", "observedGeneration": observed, "lastTransitionTime": now}),
        );
    }
    if !updated["status"]["disruptedPods"].is_object() {
        updated["status"]["disruptedPods"] = json!({});
    }
    updated["status"]["disruptedPods"][pod] = json!(now);
    reg.update_owned(
        budgets,
        Some(ns),
        &name,
        updated,
        Some("status"),
        false,
        Ownership::Keep,
    )
    .await
    .map(|_| ())
}

/// Upstream names the budget by its singular resource in these refusals.
fn budget_forbidden(name: &str, why: &str) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!("poddisruptionbudget.policy {name:?} is forbidden: {why}"),
    )
    .with_details(json!({"name": name, "group": "policy", "kind": "poddisruptionbudget"}))
}

/// Replaces the condition of the same type (keeping its transition time if the status is unchanged).
fn set_condition(obj: &mut Value, condition: Value) {
    let mut conditions: Vec<Value> = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match conditions
        .iter_mut()
        .find(|c| c["type"] == condition["type"])
    {
        Some(c) if c["status"] == condition["status"] => {
            let since = c["lastTransitionTime"].clone();
            *c = condition;
            c["lastTransitionTime"] = since;
        }
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
    obj["status"]["conditions"] = Value::Array(conditions);
}
