//! Upstream's ValidatingAdmissionPolicy plugin (`k8s.io/apiserver/pkg/admission/plugin/policy/validating`):
//! admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies, selected by their
//! ValidatingAdmissionPolicyBindings, judge writes with CEL expressions ([`crate::apiserver::cel`]).
//!
//! Where to start: [`ValidatingAdmissionPolicy::validate`] (creates and updates, on the object as it
//! will be stored) and [`ValidatingAdmissionPolicy::admit_delete`] (deletes: `object` null,
//! `oldObject` the stored object) both call [`judge`], which follows upstream's dispatcher: for each
//! policy whose `matchConstraints` select the request, each of its bindings whose `matchResources`
//! do too, each param the binding's `paramRef` finds, the policy's `matchConditions`, `variables` and
//! `validations` are evaluated ([`evaluate`]); a failed validation is acted on as the binding's
//! `validationActions` say (Deny: the first denial refuses the request; Warn: a `Warning:` header;
//! Audit: logged, rkube has no audit log). Errors (evaluation, a missing param, a policy that
//! does not compile) follow the policy's `failurePolicy`.
//!
//! Policies, bindings, params and namespaces are read from the watch cache; compiled expressions are
//! cached by their text ([`crate::apiserver::cel::compile_cached`]), so a request costs no parse.
//! Not done: `auditAnnotations` (no audit log), the `authorizer` variable, conversion for
//! `matchPolicy: Equivalent` (as for webhooks, only the requested version matches), type checking.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::webhook::matching::{cel_request, namespace_matches, object_name, rule_attrs};
use super::webhook::rules::{is_exempt, rule_matches, RuleAttrs};
use super::webhook::selectors::{labels_of, object_selects, selects};
use super::{Attributes, Plugin};
use crate::apiserver::cel::{compile_cached, value_to_json, Activation, Value as CelValue};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult};

const GROUP: &str = "admissionregistration.k8s.io";

/// Upstream's `MaxEvaluatedMessageExpressionSizeBytes`: a longer messageExpression result is dropped.
const MAX_MESSAGE_LEN: usize = 5 * 1024;

/// The plugin (stateless: its caches are the registry's watch cache and the CEL program cache).
#[derive(Default)]
pub struct ValidatingAdmissionPolicy;

#[async_trait::async_trait]
impl Plugin for ValidatingAdmissionPolicy {
    async fn validate(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        judge(reg, a, Some(obj), old, warnings).await
    }

    async fn admit_delete(&self, reg: &Registry, a: &Attributes<'_>) -> ApiResult<()> {
        let Some(pairs) = candidates(reg, a).await? else {
            return Ok(());
        };
        // Only when some policy's rules select this delete is the object read.
        if !pairs
            .iter()
            .any(|(p, _)| definition_rules_match(p, a, None, None))
        {
            return Ok(());
        }
        let old = match reg.get(a.info, a.ns, a.name).await {
            Ok(old) => old,
            // Already gone: the delete answers 404 itself.
            Err(ApiError { code: 404, .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        // Warnings of a delete have nowhere to go yet (the delete handler sends none).
        let mut warnings = Vec::new();
        judge(reg, a, None, Some(&old), &mut warnings).await
    }
}

/// Every policy that has at least one binding, with its bindings (policies ordered by name,
/// bindings by name), or `None` when there are none (the common case: two cache reads).
async fn candidates(
    reg: &Registry,
    a: &Attributes<'_>,
) -> ApiResult<Option<Vec<(Arc<Value>, Vec<Arc<Value>>)>>> {
    // Writes of policies, bindings and webhook configurations are never judged, so a broken policy
    // can always be removed (upstream's IsExemptAdmissionConfigurationResource).
    if is_exempt(&a.info.group, &a.info.plural) {
        return Ok(None);
    }
    let mut policies = reg
        .lookup_list(GROUP, "v1", "validatingadmissionpolicies", None)
        .await?;
    if policies.is_empty() {
        return Ok(None);
    }
    let mut bindings = reg
        .lookup_list(GROUP, "v1", "validatingadmissionpolicybindings", None)
        .await?;
    if bindings.is_empty() {
        return Ok(None);
    }
    policies.sort_by(|x, y| name_of(x).cmp(name_of(y)));
    bindings.sort_by(|x, y| name_of(x).cmp(name_of(y)));
    let pairs: Vec<_> = policies
        .into_iter()
        .filter_map(|p| {
            let mine: Vec<Arc<Value>> = bindings
                .iter()
                .filter(|b| text(b, "/spec/policyName") == name_of(&p))
                .cloned()
                .collect();
            (!mine.is_empty()).then_some((p, mine))
        })
        .collect();
    Ok((!pairs.is_empty()).then_some(pairs))
}

fn name_of(v: &Value) -> &str {
    text(v, "/metadata/name")
}

fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// One decision that refuses the request (upstream's `policyDecisionWithMetadata`).
struct Denial {
    policy: String,
    binding: String,
    message: String,
    /// `Invalid` unless the validation names another reason.
    reason: String,
}

/// What evaluating one policy for one binding and param decided.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// A validation failed, or an error under `failurePolicy: Fail`: acted on per validationActions.
    Deny { message: String, reason: String },
}

/// The dispatcher: every matching policy and binding, first denial wins.
async fn judge(
    reg: &Registry,
    a: &Attributes<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let Some(pairs) = candidates(reg, a).await? else {
        return Ok(());
    };
    let mut denials: Vec<Denial> = Vec::new();
    // The request and namespace are built once, when the first policy applies.
    let mut inputs: Option<(Value, Value)> = None;
    for (policy, bindings) in &pairs {
        let spec = policy.get("spec").unwrap_or(&Value::Null);
        let constraints = spec.get("matchConstraints");
        if !definition_rules_match(policy, a, obj, old) {
            continue;
        }
        let fail_closed = spec.get("failurePolicy").and_then(Value::as_str) != Some("Ignore");
        let config_error = |denials: &mut Vec<Denial>, binding: &str, err: String| {
            if fail_closed {
                let what = if binding.is_empty() {
                    "policy"
                } else {
                    "binding"
                };
                denials.push(Denial {
                    policy: name_of(policy).to_string(),
                    binding: binding.to_string(),
                    message: format!("failed to configure {what}: {err}"),
                    reason: String::new(),
                });
            }
        };
        // The selectors of matchConstraints (the rules were checked above); an unusable selector is
        // a configuration error of the policy.
        match selectors_match(reg, a, constraints, obj, old).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                config_error(&mut denials, "", e.message);
                continue;
            }
        }
        for binding in bindings {
            let bname = name_of(binding);
            let bspec = binding.get("spec").unwrap_or(&Value::Null);
            if let Some(mr) = bspec.get("matchResources").filter(|m| !m.is_null()) {
                let rules_ok = resources_match(mr, a, obj, old, true);
                if !rules_ok {
                    continue;
                }
                match selectors_match(reg, a, Some(mr), obj, old).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        config_error(&mut denials, bname, e.message);
                        continue;
                    }
                }
            }
            let params = match collect_params(reg, a, spec, bspec).await {
                Ok(p) => p,
                Err(e) => {
                    config_error(&mut denials, bname, e);
                    continue;
                }
            };
            if params.is_empty() {
                continue;
            }
            if inputs.is_none() {
                inputs = Some((cel_request(a, obj, old), namespace_object(reg, a).await?));
            }
            let Some((request, namespace)) = inputs.as_ref() else {
                continue;
            };
            let actions: Vec<&str> = bspec
                .get("validationActions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for param in &params {
                let input = Input {
                    object: obj,
                    old_object: old,
                    request,
                    params: param.as_deref(),
                    namespace,
                };
                for decision in evaluate(spec, &input) {
                    let Decision::Deny { message, reason } = decision;
                    for action in &actions {
                        match *action {
                            "Deny" => denials.push(Denial {
                                policy: name_of(policy).to_string(),
                                binding: bname.to_string(),
                                message: message.clone(),
                                reason: reason.clone(),
                            }),
                            "Warn" => warnings.push(format!(
                                "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {}",
                                name_of(policy),
                                bname,
                                message
                            )),
                            "Audit" => tracing::info!(
                                policy = name_of(policy),
                                binding = bname,
                                "validation failure (Audit): {message}"
                            ),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    match denials.into_iter().next() {
        None => Ok(()),
        Some(d) => Err(denial_error(a, obj.or(old), &d)),
    }
}

/// Upstream's denial: `admission.NewForbidden` with the decision's reason and code, and the message
/// as a cause.
fn denial_error(a: &Attributes<'_>, obj: Option<&Value>, d: &Denial) -> ApiError {
    let message = if d.binding.is_empty() {
        format!(
            "ValidatingAdmissionPolicy '{}' denied request: {}",
            d.policy, d.message
        )
    } else {
        format!(
            "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}",
            d.policy, d.binding, d.message
        )
    };
    let name = object_name(a, obj, None);
    let mut e = ApiError::forbidden(a.info, &name, &message);
    // Upstream's reasonToCode: only these reasons can be set by a policy; Invalid is the default.
    let (code, reason) = match d.reason.as_str() {
        "Forbidden" => (403, "Forbidden"),
        "Unauthorized" => (401, "Unauthorized"),
        "RequestEntityTooLarge" => (413, "RequestEntityTooLarge"),
        _ => (422, "Invalid"),
    };
    e.code = code;
    e.reason = reason;
    let mut details = e.details.take().unwrap_or_else(|| json!({}));
    details["causes"] = json!([{ "message": message }]);
    e.details = Some(details);
    e
}

/// Whether `policy`'s matchConstraints rules (resourceRules less excludeResourceRules) select the
/// request. Selectors are judged separately (they may need the namespace).
fn definition_rules_match(
    policy: &Value,
    a: &Attributes<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> bool {
    match policy.pointer("/spec/matchConstraints") {
        // A policy without matchConstraints is refused by validation; one stored anyway matches
        // nothing (upstream: "at least one resourceRule must be defined").
        None | Some(Value::Null) => false,
        Some(mc) => resources_match(mc, a, obj, old, false),
    }
}

/// Upstream's `matchesResourceRules` over a MatchResources: not excluded, and selected by a
/// resourceRule (an empty resourceRules selects everything when `empty_matches_all`, as for
/// bindings).
pub fn resources_match(
    mr: &Value,
    a: &Attributes<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
    empty_matches_all: bool,
) -> bool {
    let attrs = rule_attrs(a);
    let name = object_name(a, obj, old);
    let rules = |field: &str| {
        mr.get(field)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .to_vec()
    };
    if rules("excludeResourceRules")
        .iter()
        .any(|r| named_rule_matches(r, &attrs, &name))
    {
        return false;
    }
    let include = rules("resourceRules");
    if include.is_empty() {
        return empty_matches_all;
    }
    include.iter().any(|r| named_rule_matches(r, &attrs, &name))
}

/// A NamedRuleWithOperations: the rule, and `resourceNames` (when listed) naming the object.
fn named_rule_matches(rule: &Value, attrs: &RuleAttrs<'_>, name: &str) -> bool {
    if !rule_matches(rule, attrs) {
        return false;
    }
    match rule.get("resourceNames").and_then(Value::as_array) {
        Some(names) if !names.is_empty() => names.iter().any(|n| n.as_str() == Some(name)),
        _ => true,
    }
}

/// The namespaceSelector and objectSelector of a MatchResources.
async fn selectors_match(
    reg: &Registry,
    a: &Attributes<'_>,
    mr: Option<&Value>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<bool> {
    let Some(mr) = mr else {
        return Ok(true);
    };
    if !namespace_matches(reg, a, mr.get("namespaceSelector"), obj, old).await? {
        return Ok(false);
    }
    object_selects(mr.get("objectSelector"), obj, old).map_err(ApiError::internal)
}

/// Upstream's `CollectParams`: the param objects a binding evaluates its policy with (`[None]` when
/// the policy takes none), or why it cannot.
async fn collect_params(
    reg: &Registry,
    a: &Attributes<'_>,
    spec: &Value,
    bspec: &Value,
) -> Result<Vec<Option<Arc<Value>>>, String> {
    let Some(kind) = spec.get("paramKind").filter(|k| !k.is_null()) else {
        return Ok(vec![None]);
    };
    let Some(pref) = bspec.get("paramRef").filter(|r| !r.is_null()) else {
        return Ok(vec![None]);
    };
    let api_version = text(kind, "/apiVersion");
    let kind_name = text(kind, "/kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let catalog = reg.catalog.load();
    let Some(info) = catalog
        .all()
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind_name)
        .cloned()
    else {
        return Err(format!(
            "paramKind kind `&ParamKind{{APIVersion:{api_version},Kind:{kind_name},}}` not known"
        ));
    };
    let ref_ns = text(pref, "/namespace");
    let ns = if info.namespaced {
        let ns = if ref_ns.is_empty() {
            a.ns.unwrap_or("")
        } else {
            ref_ns
        };
        if ns.is_empty() {
            return Err(
                "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
                    .into(),
            );
        }
        Some(ns)
    } else {
        if !ref_ns.is_empty() {
            return Err(
                "paramRef.namespace must not be provided for a cluster-scoped `paramKind`".into(),
            );
        }
        None
    };
    let name = text(pref, "/name");
    let selector = pref.get("selector").filter(|s| !s.is_null());
    let params: Vec<Option<Arc<Value>>> = if !name.is_empty() {
        if selector.is_some() {
            return Err("paramRef.name and paramRef.selector are mutually exclusive".into());
        }
        reg.lookup(&info.group, &info.version, &info.plural, ns, name)
            .await
            .map_err(|e| e.message)?
            .map(|p| vec![Some(Arc::new(p))])
            .unwrap_or_default()
    } else if let Some(sel) = selector {
        let all = reg
            .lookup_list(&info.group, &info.version, &info.plural, ns)
            .await
            .map_err(|e| e.message)?;
        let mut chosen = Vec::new();
        for p in all {
            if selects(Some(sel), labels_of(&p))? {
                chosen.push(Some(p));
            }
        }
        chosen
    } else {
        return Err("one of name or selector must be provided".into());
    };
    if params.is_empty() && text(pref, "/parameterNotFoundAction") == "Deny" {
        return Err(
            "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
        );
    }
    Ok(params)
}

/// The `namespaceObject` variable: the request's namespace (null for cluster-scoped objects and
/// for Namespaces themselves, as upstream).
async fn namespace_object(reg: &Registry, a: &Attributes<'_>) -> ApiResult<Value> {
    let is_namespace = a.info.group.is_empty() && a.info.plural == "namespaces";
    let ns = a.ns.unwrap_or("");
    if ns.is_empty() || is_namespace {
        return Ok(Value::Null);
    }
    Ok(reg
        .lookup("", "v1", "namespaces", None, ns)
        .await?
        .unwrap_or(Value::Null))
}

/// What one evaluation sees.
pub struct Input<'a> {
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    pub request: &'a Value,
    pub params: Option<&'a Value>,
    pub namespace: &'a Value,
}

/// Upstream's validator for one policy, binding and param: matchConditions, variables, validations.
/// Returns the failed validations (and errors under `failurePolicy: Fail`) as denials.
pub fn evaluate(spec: &Value, input: &Input<'_>) -> Vec<Decision> {
    let fail_closed = spec.get("failurePolicy").and_then(Value::as_str) != Some("Ignore");
    let error = |message: String| Decision::Deny {
        message,
        reason: String::new(),
    };
    let mut act = Activation::new();
    act.bind_json("object", input.object);
    act.bind_json("oldObject", input.old_object);
    act.bind_json("request", Some(input.request));
    act.bind_json("params", input.params);
    act.bind_json("namespaceObject", Some(input.namespace));
    act.bind_json("variables", Some(&json!({})));

    // matchConditions: any false skips the policy; errors (with all others true) follow failurePolicy.
    let mut errors = Vec::new();
    for cond in list(spec, "matchConditions") {
        let expr = text(cond, "/expression");
        match run_bool(expr, &act) {
            Ok(true) => {}
            Ok(false) => return vec![],
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return if fail_closed {
            vec![error(aggregate(&errors))]
        } else {
            vec![]
        };
    }

    // variables, in order, each seeing the ones before it. A variable that fails is left out; a
    // validation that reads it gets the variable's error.
    let mut vars = Map::new();
    let mut var_errors: Vec<(String, String)> = Vec::new();
    for var in list(spec, "variables") {
        let name = text(var, "/name").to_string();
        let expr = text(var, "/expression");
        let value = compile_cached(expr)
            .map_err(|e| format!("compilation error: {e}"))
            .and_then(|p| p.eval(&act).map_err(|e| e.0));
        match value {
            Ok(v) => {
                vars.insert(name, value_to_json(&v));
                act.bind_json("variables", Some(&Value::Object(vars.clone())));
            }
            Err(e) => var_errors.push((name, e)),
        }
    }

    let mut out = Vec::new();
    for v in list(spec, "validations") {
        let expr = text(v, "/expression");
        match run_bool(expr, &act) {
            Ok(true) => {}
            Ok(false) => out.push(Decision::Deny {
                message: failure_message(v, &act),
                reason: v
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("Invalid")
                    .to_string(),
            }),
            Err(e) => {
                if fail_closed {
                    // An expression that read a failed variable reports that variable's error.
                    let e = var_errors
                        .iter()
                        .find(|(n, _)| e.ends_with(&format!("no such key: {n}")))
                        .map(|(n, ve)| {
                            format!(
                                "expression '{expr}' resulted in error: composited variable \"{n}\" fails to evaluate: {ve}"
                            )
                        })
                        .unwrap_or(e);
                    out.push(error(e));
                }
            }
        }
    }
    out
}

fn list<'v>(spec: &'v Value, field: &str) -> &'v [Value] {
    spec.get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Upstream's `utilerrors.NewAggregate(...).Error()`.
fn aggregate(errors: &[String]) -> String {
    if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("[{}]", errors.join(", "))
    }
}

/// A condition's value, or upstream's error text (`expression 'X' resulted in error: ...`).
fn run_bool(expr: &str, act: &Activation) -> Result<bool, String> {
    let program = compile_cached(expr).map_err(|e| format!("compilation error: {e}"))?;
    program
        .eval_bool(act)
        .map_err(|e| format!("expression '{expr}' resulted in error: {e}"))
}

/// Upstream's message for a failed validation: messageExpression's string (trimmed, one line, at
/// most 5 KiB), else `message`, else `failed expression: EXPR`.
fn failure_message(v: &Value, act: &Activation) -> String {
    let from_expression = v
        .get("messageExpression")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .and_then(|m| compile_cached(m).ok())
        .and_then(|p| p.eval(act).ok())
        .and_then(|r| match r {
            CelValue::String(s) => Some(s.trim().to_string()),
            _ => None,
        })
        .filter(|m| !m.is_empty() && m.len() <= MAX_MESSAGE_LEN && !m.contains('\n'));
    if let Some(m) = from_expression {
        return m;
    }
    let message = text(v, "/message").trim();
    if !message.is_empty() {
        return message.to_string();
    }
    format!("failed expression: {}", text(v, "/expression").trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::admission::Operation;

    fn input<'a>(obj: &'a Value, request: &'a Value, params: Option<&'a Value>) -> Input<'a> {
        Input {
            object: Some(obj),
            old_object: None,
            request,
            params,
            namespace: &Value::Null,
        }
    }

    fn deployment(replicas: i64) -> Value {
        json!({"metadata": {"name": "d", "labels": {"app": "x"}}, "spec": {"replicas": replicas}})
    }

    fn deny(message: &str, reason: &str) -> Decision {
        Decision::Deny {
            message: message.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn validations_and_messages() {
        let req = json!({"operation": "CREATE"});
        let spec = json!({"validations": [{"expression": "object.spec.replicas <= 5"}]});
        assert!(evaluate(&spec, &input(&deployment(3), &req, None)).is_empty());
        assert_eq!(
            evaluate(&spec, &input(&deployment(6), &req, None)),
            vec![deny(
                "failed expression: object.spec.replicas <= 5",
                "Invalid"
            )]
        );
        let spec = json!({"validations": [{"expression": "object.spec.replicas <= 5", "message": " too many ", "reason": "Forbidden"}]});
        assert_eq!(
            evaluate(&spec, &input(&deployment(6), &req, None)),
            vec![deny("too many", "Forbidden")]
        );
        let spec = json!({"validations": [{"expression": "object.spec.replicas <= 5", "message": "m",
            "messageExpression": "'replicas ' + string(object.spec.replicas) + ' > 5'"}]});
        assert_eq!(
            evaluate(&spec, &input(&deployment(6), &req, None)),
            vec![deny("replicas 6 > 5", "Invalid")]
        );
        // A messageExpression that does not give a string falls back to the message.
        let spec = json!({"validations": [{"expression": "false", "message": "m", "messageExpression": "1"}]});
        assert_eq!(
            evaluate(&spec, &input(&deployment(6), &req, None)),
            vec![deny("m", "Invalid")]
        );
    }

    #[test]
    fn failure_policy() {
        let req = json!({});
        let spec = json!({"validations": [{"expression": "object.spec.missing > 1"}]});
        assert_eq!(
            evaluate(&spec, &input(&deployment(1), &req, None)),
            vec![deny(
                "expression 'object.spec.missing > 1' resulted in error: no such key: missing",
                ""
            )]
        );
        let spec = json!({"failurePolicy": "Ignore", "validations": [{"expression": "object.spec.missing > 1"}]});
        assert!(evaluate(&spec, &input(&deployment(1), &req, None)).is_empty());
        // A non-bool result is an error too.
        let spec = json!({"validations": [{"expression": "object.spec.replicas"}]});
        assert_eq!(evaluate(&spec, &input(&deployment(1), &req, None)).len(), 1);
    }

    #[test]
    fn match_conditions_params_variables() {
        let req = json!({"operation": "CREATE", "userInfo": {"username": "alice"}});
        let spec = json!({
            "matchConditions": [{"name": "not-alice", "expression": "request.userInfo.username != 'alice'"}],
            "validations": [{"expression": "false"}]
        });
        assert!(evaluate(&spec, &input(&deployment(1), &req, None)).is_empty());
        let spec = json!({
            "matchConditions": [{"name": "broken", "expression": "request.nope"}],
            "validations": [{"expression": "false"}]
        });
        assert_eq!(evaluate(&spec, &input(&deployment(1), &req, None)).len(), 1);
        let params = json!({"data": {"maxReplicas": "5"}});
        let spec = json!({
            "variables": [{"name": "max", "expression": "int(params.data.maxReplicas)"},
                          {"name": "over", "expression": "object.spec.replicas > variables.max"}],
            "validations": [{"expression": "!variables.over"}]
        });
        assert!(evaluate(&spec, &input(&deployment(5), &req, Some(&params))).is_empty());
        assert_eq!(
            evaluate(&spec, &input(&deployment(6), &req, Some(&params))).len(),
            1
        );
        // A variable that fails is reported by the validation that reads it.
        let spec = json!({
            "variables": [{"name": "bad", "expression": "object.nope"}],
            "validations": [{"expression": "variables.bad == 1"}]
        });
        let Decision::Deny { message, .. } =
            &evaluate(&spec, &input(&deployment(1), &req, None))[0];
        assert!(
            message.contains("composited variable \"bad\" fails to evaluate: no such key: nope"),
            "{message}"
        );
    }

    #[test]
    fn denial_text() {
        use crate::apiserver::catalog::Catalog;
        let catalog = Catalog::builtin();
        let Some(info) = catalog.find("apps", "v1", "deployments") else {
            panic!("no deployments");
        };
        let a = Attributes {
            info,
            ns: Some("default"),
            name: "",
            sub: None,
            op: Operation::Create,
            user: None,
            authorizer: None,
            dry_run: false,
        };
        let d = Denial {
            policy: "p".into(),
            binding: "b".into(),
            message: "failed expression: object.spec.replicas <= 5".into(),
            reason: "Invalid".into(),
        };
        let e = denial_error(&a, Some(&deployment(6)), &d);
        assert_eq!(e.code, 422);
        assert_eq!(e.reason, "Invalid");
        assert_eq!(e.message, "deployments.apps \"d\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed expression: object.spec.replicas <= 5");
        let d = Denial {
            reason: "Forbidden".into(),
            ..d
        };
        assert_eq!(denial_error(&a, Some(&deployment(6)), &d).code, 403);
        // Rules: resourceRules with excludes and resourceNames.
        let mr = json!({
            "resourceRules": [{"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}],
            "excludeResourceRules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "resourceNames": ["skip"]}]
        });
        assert!(resources_match(&mr, &a, Some(&deployment(1)), None, false));
        let skip = json!({"metadata": {"name": "skip"}});
        assert!(!resources_match(&mr, &a, Some(&skip), None, false));
        assert!(resources_match(&json!({}), &a, None, None, true));
        assert!(!resources_match(&json!({}), &a, None, None, false));
    }
}
