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
//! matchConditions are CEL expressions ([`crate::apiserver::cel`]): any false skips the webhook;
//! errors (with none false) skip it under `failurePolicy: Ignore` and refuse the request under
//! `Fail` (403, upstream's `NewForbidden` with the evaluation error). The `authorizer` variable is
//! not provided.

use std::sync::Arc;

use serde_json::Value;

use super::dispatch::kind_and_resource;
use super::review::{self, ReviewRequest, ReviewVersion};
use super::rules::{any_rule_matches, RuleAttrs};
use super::selectors::{is_empty, labels_of, object_selects, selects};
use crate::apiserver::admission::{Attributes, Operation};
use crate::apiserver::cel::{compile_cached, Activation};
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
    let conditions = spec
        .get("matchConditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if conditions.is_empty() {
        return Ok(true);
    }
    match match_conditions(a, conditions, obj, old) {
        Ok(matches) => Ok(matches),
        // Errors with no condition false follow failurePolicy (upstream's matcher).
        Err(_) if hook.ignores_failures() => Ok(false),
        Err(e) => {
            tracing::warn!(
                "Failed evaluating match conditions, failing closed {}: {e}",
                hook.name()
            );
            let name = object_name(a, obj, old);
            Err(ApiError::forbidden(a.info, &name, &e))
        }
    }
}

/// Upstream's `matchconditions.Matcher`: every condition evaluated (CEL, with `object`,
/// `oldObject` and `request`; `authorizer` is not provided); any false is no match, else any
/// error is the aggregate of the errors.
fn match_conditions(
    a: &Attributes<'_>,
    conditions: &[Value],
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, String> {
    let mut act = Activation::new();
    act.bind_json("object", obj);
    act.bind_json("oldObject", old);
    act.bind_json("request", Some(&cel_request(a, obj, old)));
    let mut errors = Vec::new();
    for c in conditions {
        let expr = c.get("expression").and_then(Value::as_str).unwrap_or("");
        let result = compile_cached(expr)
            .map_err(|e| format!("compilation error: {e}"))
            .and_then(|p| {
                p.eval_bool(&act)
                    .map_err(|e| format!("expression '{expr}' resulted in error: {e}"))
            });
        match result {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(true),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// The `request` variable of CEL expressions: upstream's `CreateAdmissionRequest`, the
/// AdmissionRequest a webhook gets without its uid and objects.
pub fn cel_request(a: &Attributes<'_>, obj: Option<&Value>, old: Option<&Value>) -> Value {
    let op = operation(a.op);
    let name = object_name(a, obj, old);
    let (kind, resource) = kind_and_resource(a);
    let r = ReviewRequest {
        uid: String::new(),
        kind,
        resource,
        subresource: a.sub.unwrap_or(""),
        name: &name,
        namespace: a.ns.unwrap_or(""),
        operation: op,
        user: a.user,
        object: None,
        old_object: None,
        dry_run: a.dry_run,
        options: review::options(op, a.dry_run),
    };
    let mut request = review::encode(ReviewVersion::V1, &r)
        .get_mut("request")
        .map(Value::take)
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(m) = request.as_object_mut() {
        for f in ["uid", "object", "oldObject"] {
            m.remove(f);
        }
    }
    request
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
pub async fn namespace_matches(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::catalog::Catalog;
    use serde_json::json;

    #[test]
    fn match_conditions_evaluate() {
        let catalog = Catalog::builtin();
        let Some(info) = catalog.find("", "v1", "configmaps") else {
            panic!("no configmaps");
        };
        let a = Attributes {
            info,
            ns: Some("ns"),
            name: "",
            sub: None,
            op: Operation::Create,
            user: None,
            authorizer: None,
            dry_run: false,
        };
        let obj = json!({"metadata": {"name": "cm", "labels": {"skip": "yes"}}});
        let cond = |e: &str| json!({"name": "c", "expression": e});
        let run = |conds: Vec<Value>| match_conditions(&a, &conds, Some(&obj), None);
        assert_eq!(run(vec![cond("request.operation == 'CREATE'")]), Ok(true));
        assert_eq!(
            run(vec![cond(
                "request.namespace == 'ns' && request.name == 'cm'"
            )]),
            Ok(true)
        );
        assert_eq!(
            run(vec![cond("!('skip' in object.metadata.labels)")]),
            Ok(false)
        );
        // A false condition wins over an error; errors alone are aggregated.
        assert_eq!(run(vec![cond("object.nope"), cond("false")]), Ok(false));
        assert_eq!(
            run(vec![cond("object.nope")]),
            Err("expression 'object.nope' resulted in error: no such key: nope".into())
        );
        assert_eq!(
            run(vec![cond("oldObject.x"), cond("object.nope")]),
            Err("[expression 'oldObject.x' resulted in error: found no matching overload for '_._' applied to '(null_type, string)', expression 'object.nope' resulted in error: no such key: nope]".into())
        );
    }
}
