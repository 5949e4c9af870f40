//! Whether one webhook is called for a request (upstream's `generic.Webhook.ShouldCallHook`):
//! namespaceSelector, objectSelector, rules, matchPolicy, matchConditions, in upstream's order, and
//! the configurations themselves, read from the watch cache.
//!
//! matchPolicy: `Exact` and `Equivalent` both match only the version requested. Upstream's
//! Equivalent also calls a webhook whose rules name another served version of the same
//! group/resource, with the object converted to that version; rkube converts nothing for
//! webhooks, so a webhook meant for every version must list them (for resources rkube serves in
//! one version the two policies are the same).
//!
//! matchConditions are CEL expressions, which rkube does not evaluate. A webhook that has any is
//! treated as upstream treats one whose conditions fail to evaluate: with `failurePolicy: Ignore`
//! it is skipped, with `Fail` (the default) the request is refused (403, naming the webhook).

use std::sync::Arc;

use serde_json::Value;

use super::rules::{any_rule_matches, RuleAttrs};
use super::selectors::{is_empty, labels_of, object_selects, selects};
use crate::apiserver::admission::{Attributes, Operation};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult};

/// One webhook of a configuration.
#[derive(Clone)]
pub struct Hook {
    /// The configuration it belongs to (shared as the watch cache holds it).
    pub config: Arc<Value>,
    pub index: usize,
}

impl Hook {
    pub fn spec(&self) -> &Value {
        self.config
            .get("webhooks")
            .and_then(|w| w.get(self.index))
            .unwrap_or(&Value::Null)
    }

    pub fn name(&self) -> &str {
        self.spec()
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn text(&self, field: &str) -> Option<&str> {
        self.spec().get(field).and_then(Value::as_str)
    }

    /// failurePolicy `Ignore` (the default is `Fail`).
    pub fn ignores_failures(&self) -> bool {
        self.text("failurePolicy") == Some("Ignore")
    }

    /// reinvocationPolicy `IfNeeded`.
    pub fn reinvocable(&self) -> bool {
        self.text("reinvocationPolicy") == Some("IfNeeded")
    }

    pub fn side_effects(&self) -> Option<&str> {
        self.text("sideEffects")
    }

    /// timeoutSeconds, default 10.
    pub fn timeout_secs(&self) -> u64 {
        self.spec()
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .filter(|t| *t > 0)
            .unwrap_or(10)
    }
}

/// Every webhook of the mutating (or validating) configurations, configurations ordered by name
/// and webhooks in their listed order (upstream's order). Read from the watch cache: no storage
/// round trip per request.
pub async fn hooks(reg: &Registry, mutating: bool) -> ApiResult<Vec<Hook>> {
    let plural = if mutating {
        "mutatingwebhookconfigurations"
    } else {
        "validatingwebhookconfigurations"
    };
    let mut configs = reg
        .lookup_list("admissionregistration.k8s.io", "v1", plural, None)
        .await?;
    if configs.is_empty() {
        return Ok(vec![]);
    }
    let name = |c: &Value| {
        c.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    configs.sort_by_key(|c| name(c));
    let mut out = Vec::new();
    for c in configs {
        let n = c
            .get("webhooks")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        out.extend((0..n).map(|index| Hook {
            config: c.clone(),
            index,
        }));
    }
    Ok(out)
}

/// Upstream's operation name.
pub fn operation(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
    }
}

/// The request as rules see it.
pub fn rule_attrs<'a>(a: &'a Attributes<'a>) -> RuleAttrs<'a> {
    RuleAttrs {
        operation: operation(a.op),
        group: &a.info.group,
        version: &a.info.version,
        resource: &a.info.plural,
        subresource: a.sub.unwrap_or(""),
        namespace: a.ns.unwrap_or(""),
    }
}

/// Whether `hook` is called for this request on `obj` (the new object; `None` on a delete) and
/// `old`. An error is returned only for a webhook whose rules match (upstream: a selector that
/// cannot be evaluated does not fail requests the webhook would not see anyway).
pub async fn should_call(
    reg: &Registry,
    a: &Attributes<'_>,
    hook: &Hook,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<bool> {
    let spec = hook.spec();
    let ns_match = namespace_matches(reg, a, spec.get("namespaceSelector"), obj, old).await;
    if matches!(ns_match, Ok(false)) {
        return Ok(false);
    }
    let obj_match = object_selects(spec.get("objectSelector"), obj, old);
    if matches!(obj_match, Ok(false)) {
        return Ok(false);
    }
    if !any_rule_matches(spec, &rule_attrs(a)) {
        return Ok(false);
    }
    ns_match?;
    obj_match.map_err(ApiError::internal)?;
    let has_conditions = spec
        .get("matchConditions")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if has_conditions {
        if hook.ignores_failures() {
            return Ok(false);
        }
        let name = object_name(a, obj, old);
        return Err(ApiError::forbidden(
            a.info,
            &name,
            &format!(
                "failed to evaluate matchConditions of webhook {:?}: CEL expressions are not supported by this server",
                hook.name()
            ),
        ));
    }
    Ok(true)
}

/// The name a review carries: the URL's, else the object's (a create).
pub fn object_name(a: &Attributes<'_>, obj: Option<&Value>, old: Option<&Value>) -> String {
    if !a.name.is_empty() {
        return a.name.to_string();
    }
    obj.or(old)
        .and_then(|o| o.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Upstream's namespace matcher: cluster-scoped objects other than Namespaces always match; a
/// Namespace is judged by its own labels (the new object's on create and update, the stored one's
/// on delete); anything else by its namespace's labels (a missing namespace is a 404).
async fn namespace_matches(
    reg: &Registry,
    a: &Attributes<'_>,
    sel: Option<&Value>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<bool> {
    let is_namespace = a.info.group.is_empty() && a.info.plural == "namespaces";
    let ns = a.ns.unwrap_or("");
    if ns.is_empty() && !is_namespace {
        return Ok(true);
    }
    if is_empty(sel) {
        return Ok(true);
    }
    if is_namespace {
        let own = obj.or(old);
        return selects(sel, own.and_then(labels_of)).map_err(ApiError::internal);
    }
    let namespace = reg.lookup("", "v1", "namespaces", None, ns).await?;
    let Some(namespace) = namespace else {
        let info = reg
            .catalog
            .find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("no namespaces resource"))?;
        return Err(ApiError::not_found(&info, ns));
    };
    selects(sel, labels_of(&namespace)).map_err(ApiError::internal)
}
