//! admissionregistration.k8s.io kinds: webhook configurations and admission policies (upstream's
//! `pkg/registry/admissionregistration/*/strategy.go`). All track `metadata.generation`.

use serde_json::{json, Value};

use super::{Printer, Strategy};
use crate::apiserver::cel::Program;
use crate::apiserver::registry::defaults;
use crate::apiserver::status::Cause;

/// Validating (`mutating: false`) and mutating webhook configurations: upstream's per-webhook defaults.
pub struct WebhookConfigurations {
    pub mutating: bool,
}

impl Strategy for WebhookConfigurations {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        if self.mutating {
            Printer::MutatingWebhook
        } else {
            Printer::ValidatingWebhook
        }
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::webhook_configuration(obj, self.mutating);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_webhook_match_conditions(obj, causes);
    }
}

/// Upstream's `validateMatchConditions` for each webhook: names present and unique, at most 64,
/// expressions that compile over `object`, `oldObject`, `request` and `authorizer`.
fn validate_webhook_match_conditions(obj: &Value, causes: &mut Vec<Cause>) {
    let env = ["object", "oldObject", "request", "authorizer"];
    for (w, hook) in items(obj, "webhooks").iter().enumerate() {
        let at = format!("webhooks[{w}].matchConditions");
        validate_match_conditions(&at, items(hook, "matchConditions"), &env, causes);
    }
}

/// Upstream's `validateMatchConditions`, shared by webhooks and policies: at most 64 conditions at
/// `at`, each with a name (unique) and an expression that compiles over `env`.
fn validate_match_conditions(
    at: &str,
    conditions: &[Value],
    env: &[&str],
    causes: &mut Vec<Cause>,
) {
    if conditions.len() > 64 {
        causes.push(Cause::too_many(at, conditions.len(), 64));
    }
    let mut names = std::collections::HashSet::new();
    for (i, c) in conditions.iter().enumerate() {
        match text(c, "expression")
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            None => causes.push(Cause::required(&format!("{at}[{i}].expression"))),
            Some(e) => check_expression(&format!("{at}[{i}].expression"), e, env, causes),
        }
        match text(c, "name").filter(|n| !n.is_empty()) {
            None => causes.push(Cause::required(&format!("{at}[{i}].name"))),
            Some(n) if !names.insert(n) => {
                causes.push(Cause::duplicate(&format!("{at}[{i}].name"), &json!(n)))
            }
            Some(_) => {}
        }
    }
}

/// ValidatingAdmissionPolicies: upstream's defaults, and its validation of the spec
/// (`ValidateValidatingAdmissionPolicy`), CEL expressions compiled so a broken one is refused at
/// create.
pub struct ValidatingAdmissionPolicies;

impl Strategy for ValidatingAdmissionPolicies {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::ValidatingAdmissionPolicy
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::validating_admission_policy(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_policy_spec(obj.get("spec").unwrap_or(&Value::Null), causes);
    }
}

/// ValidatingAdmissionPolicyBindings: upstream's defaults and `ValidateValidatingAdmissionPolicyBinding`.
pub struct ValidatingAdmissionPolicyBindings;

impl Strategy for ValidatingAdmissionPolicyBindings {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::ValidatingAdmissionPolicyBinding
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::validating_admission_policy_binding(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_binding_spec(obj.get("spec").unwrap_or(&Value::Null), causes);
    }
}

fn text<'v>(v: &'v Value, field: &str) -> Option<&'v str> {
    v.get(field).and_then(Value::as_str)
}

fn items<'v>(v: &'v Value, field: &str) -> &'v [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A CEL expression that must compile, reading only the `declared` variables:
/// `Invalid value: "EXPR": compilation failed: ...`.
fn check_expression(field: &str, expr: &str, declared: &[&str], causes: &mut Vec<Cause>) {
    if let Err(e) = Program::compile_declared(expr, declared) {
        causes.push(Cause::invalid(
            field,
            &json!(expr),
            &format!("compilation failed: {e}"),
        ));
    }
}

/// The variables a policy's expressions may read (upstream's environments): `params` only with a
/// paramKind, `variables` not in matchConditions, `authorizer` not in messageExpressions (declared
/// as upstream does, though this server does not provide it: reading it is an evaluation error).
fn declared(has_params: bool, variables: bool, authorizer: bool) -> Vec<&'static str> {
    let mut d = vec!["object", "oldObject", "request", "namespaceObject"];
    if has_params {
        d.push("params");
    }
    if variables {
        d.push("variables");
    }
    if authorizer {
        d.push("authorizer");
    }
    d
}

/// Upstream's `validateValidatingAdmissionPolicySpec`.
pub fn validate_policy_spec(spec: &Value, causes: &mut Vec<Cause>) {
    let has_params = spec.get("paramKind").is_some_and(|p| !p.is_null());
    let conditions_env = declared(has_params, false, true);
    let expressions_env = declared(has_params, true, true);
    match spec.get("failurePolicy") {
        None | Some(Value::Null) => causes.push(Cause::required("spec.failurePolicy")),
        Some(p) if !matches!(p.as_str(), Some("Fail" | "Ignore")) => causes.push(
            Cause::unsupported("spec.failurePolicy", p, &["Fail", "Ignore"]),
        ),
        Some(_) => {}
    }
    if let Some(pk) = spec.get("paramKind").filter(|p| !p.is_null()) {
        for f in ["apiVersion", "kind"] {
            if text(pk, f).is_none_or(str::is_empty) {
                causes.push(Cause::required(&format!("spec.paramKind.{f}")));
            }
        }
    }
    match spec.get("matchConstraints").filter(|m| !m.is_null()) {
        None => causes.push(Cause::required("spec.matchConstraints")),
        Some(mc) => {
            validate_match_resources(mc, "spec.matchConstraints", causes);
            if items(mc, "resourceRules").is_empty() {
                causes.push(Cause::required("spec.matchConstraints.resourceRules"));
            }
        }
    }
    validate_match_conditions(
        "spec.matchConditions",
        items(spec, "matchConditions"),
        &conditions_env,
        causes,
    );
    for (i, v) in items(spec, "variables").iter().enumerate() {
        let at = format!("spec.variables[{i}]");
        if text(v, "name").is_none_or(|n| n.trim().is_empty()) {
            causes.push(Cause::required_detail(
                &format!("{at}.name"),
                "name is not specified",
            ));
        }
        match text(v, "expression").filter(|e| !e.trim().is_empty()) {
            None => causes.push(Cause::required_detail(
                &format!("{at}.expression"),
                "expression is not specified",
            )),
            Some(e) => check_expression(&format!("{at}.expression"), e, &expressions_env, causes),
        }
    }
    let validations = items(spec, "validations");
    let audits = items(spec, "auditAnnotations");
    if validations.is_empty() && audits.is_empty() {
        let why = "validations or auditAnnotations must contain at least one item";
        causes.push(Cause::required_detail("spec.validations", why));
        causes.push(Cause::required_detail("spec.auditAnnotations", why));
        return;
    }
    for (i, v) in validations.iter().enumerate() {
        validate_validation(v, &format!("spec.validations[{i}]"), has_params, causes);
    }
    for (i, a) in audits.iter().enumerate() {
        let at = format!("spec.auditAnnotations[{i}]");
        if text(a, "key").is_none_or(str::is_empty) {
            causes.push(Cause::required(&format!("{at}.key")));
        }
        match text(a, "valueExpression").filter(|e| !e.trim().is_empty()) {
            None => causes.push(Cause::required(&format!("{at}.valueExpression"))),
            Some(e) => check_expression(
                &format!("{at}.valueExpression"),
                e,
                &expressions_env,
                causes,
            ),
        }
    }
}

/// Upstream's `validateValidation`.
fn validate_validation(v: &Value, at: &str, has_params: bool, causes: &mut Vec<Cause>) {
    match text(v, "expression").filter(|e| !e.trim().is_empty()) {
        None => causes.push(Cause::required_detail(
            &format!("{at}.expression"),
            "expression is not specified",
        )),
        Some(e) => check_expression(
            &format!("{at}.expression"),
            e,
            &declared(has_params, true, true),
            causes,
        ),
    }
    if let Some(m) = text(v, "messageExpression").filter(|m| !m.is_empty()) {
        if m.trim().is_empty() {
            causes.push(Cause::invalid(
                &format!("{at}.messageExpression"),
                &json!(m),
                "must be non-empty if specified",
            ));
        } else {
            check_expression(
                &format!("{at}.messageExpression"),
                m,
                &declared(has_params, true, false),
                causes,
            );
        }
    }
    if let Some(m) = text(v, "message").filter(|m| !m.is_empty()) {
        if m.trim().is_empty() {
            causes.push(Cause::invalid(
                &format!("{at}.message"),
                &json!(m),
                "message must be non-empty if specified",
            ));
        } else if m.trim().contains('\n') {
            causes.push(Cause::invalid(
                &format!("{at}.message"),
                &json!(m),
                "message must not contain line breaks",
            ));
        }
    }
    if let Some(r) = v.get("reason").filter(|r| !r.is_null()) {
        const REASONS: [&str; 4] = [
            "Forbidden",
            "Invalid",
            "RequestEntityTooLarge",
            "Unauthorized",
        ];
        if !r.as_str().is_some_and(|r| REASONS.contains(&r)) {
            causes.push(Cause::unsupported(&format!("{at}.reason"), r, &REASONS));
        }
    }
}

/// Upstream's `validateMatchResources` (selectors' syntax is checked when they are used).
fn validate_match_resources(mr: &Value, at: &str, causes: &mut Vec<Cause>) {
    match mr.get("matchPolicy") {
        None | Some(Value::Null) => causes.push(Cause::required(&format!("{at}.matchPolicy"))),
        Some(p) if !matches!(p.as_str(), Some("Equivalent" | "Exact")) => causes.push(
            Cause::unsupported(&format!("{at}.matchPolicy"), p, &["Equivalent", "Exact"]),
        ),
        Some(_) => {}
    }
}

/// Upstream's `validateValidatingAdmissionPolicyBindingSpec`.
pub fn validate_binding_spec(spec: &Value, causes: &mut Vec<Cause>) {
    if text(spec, "policyName").is_none_or(str::is_empty) {
        causes.push(Cause::required("spec.policyName"));
    }
    if let Some(pr) = spec.get("paramRef").filter(|p| !p.is_null()) {
        let has_name = text(pr, "name").is_some_and(|n| !n.is_empty());
        let has_selector = pr.get("selector").is_some_and(|s| !s.is_null());
        if has_name && has_selector {
            causes.push(Cause::forbidden(
                "spec.paramRef.name",
                "name and selector are mutually exclusive",
            ));
        }
        if !has_name && !has_selector {
            causes.push(Cause::required_detail(
                "spec.paramRef",
                "one of name or selector must be specified",
            ));
        }
        match pr.get("parameterNotFoundAction") {
            None | Some(Value::Null) => {
                causes.push(Cause::required("spec.paramRef.parameterNotFoundAction"))
            }
            Some(a) if !matches!(a.as_str(), Some("Allow" | "Deny")) => {
                causes.push(Cause::unsupported(
                    "spec.paramRef.parameterNotFoundAction",
                    a,
                    &["Allow", "Deny"],
                ))
            }
            Some(_) => {}
        }
    }
    // Upstream names this path with its typo.
    if let Some(mr) = spec.get("matchResources").filter(|m| !m.is_null()) {
        validate_match_resources(mr, "spec.matchResouces", causes);
    }
    let actions = items(spec, "validationActions");
    let mut seen: Vec<&str> = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        let at = format!("spec.validationActions[{i}]");
        let name = a.as_str().unwrap_or("");
        if !matches!(name, "Audit" | "Deny" | "Warn") {
            causes.push(Cause::unsupported(&at, a, &["Audit", "Deny", "Warn"]));
        }
        if seen.contains(&name) {
            causes.push(Cause::duplicate(&at, a));
        }
        seen.push(name);
    }
    if seen.contains(&"Deny") && seen.contains(&"Warn") {
        causes.push(Cause::invalid(
            "spec.validationActions",
            &Value::Array(actions.to_vec()),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    if seen.is_empty() {
        causes.push(Cause::required_detail(
            "spec.validationActions",
            "at least one validation action is required",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(f: fn(&Value, &mut Vec<Cause>), spec: Value) -> Vec<String> {
        let mut causes = Vec::new();
        f(&spec, &mut causes);
        causes.iter().map(Cause::display).collect()
    }

    fn policy(validations: Value) -> Value {
        json!({
            "failurePolicy": "Fail",
            "matchConstraints": {"matchPolicy": "Equivalent", "resourceRules": [
                {"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}
            ]},
            "validations": validations
        })
    }

    #[test]
    fn match_conditions_of_policies_and_webhooks() {
        let conds = json!([
            {"name": "a", "expression": "true"},
            {"name": "a", "expression": ""}
        ]);
        let mut p = policy(json!([{"expression": "true"}]));
        p["matchConditions"] = conds.clone();
        assert_eq!(
            messages(validate_policy_spec, p),
            vec![
                "spec.matchConditions[1].expression: Required value",
                "spec.matchConditions[1].name: Duplicate value: \"a\""
            ]
        );
        let hooks = json!({"webhooks": [{"name": "w", "matchConditions": conds}]});
        assert_eq!(
            messages(validate_webhook_match_conditions, hooks),
            vec![
                "webhooks[0].matchConditions[1].expression: Required value",
                "webhooks[0].matchConditions[1].name: Duplicate value: \"a\""
            ]
        );
    }

    #[test]
    fn policies() {
        assert!(messages(
            validate_policy_spec,
            policy(json!([{"expression": "object.spec.replicas <= 5"}]))
        )
        .is_empty());
        assert_eq!(
            messages(validate_policy_spec, policy(json!([]))),
            vec![
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
                "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item"
            ]
        );
        let bad = messages(
            validate_policy_spec,
            policy(json!([{"expression": "object.spec.replicas <="}])),
        );
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].starts_with("spec.validations[0].expression: Invalid value: \"object.spec.replicas <=\": compilation failed: ERROR: <input>:1:"),
            "{}",
            bad[0]
        );
        assert_eq!(
            messages(
                validate_policy_spec,
                policy(json!([{"expression": "true", "reason": "Teapot"}]))
            ),
            vec!["spec.validations[0].reason: Unsupported value: \"Teapot\": supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\", \"Unauthorized\""]
        );
        assert_eq!(
            messages(
                validate_policy_spec,
                json!({"failurePolicy": "Fail", "validations": [{"expression": "true"}]})
            ),
            vec!["spec.matchConstraints: Required value"]
        );
        // params without a paramKind is an undeclared reference, as upstream's type check says.
        assert_eq!(
            messages(validate_policy_spec, policy(json!([{"expression": "params.x == 1"}]))),
            vec!["spec.validations[0].expression: Invalid value: \"params.x == 1\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')"]
        );
        let mut with_params = policy(json!([{"expression": "params.x == 1 && variables.v"}]));
        with_params["paramKind"] = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert!(messages(validate_policy_spec, with_params).is_empty());
    }

    #[test]
    fn bindings() {
        assert!(messages(
            validate_binding_spec,
            json!({"policyName": "p", "validationActions": ["Deny"]})
        )
        .is_empty());
        assert_eq!(
            messages(
                validate_binding_spec,
                json!({"validationActions": ["Warn", "Audit"]})
            ),
            vec!["spec.policyName: Required value"]
        );
        assert_eq!(
            messages(validate_binding_spec, json!({"policyName": "p"})),
            vec!["spec.validationActions: Required value: at least one validation action is required"]
        );
        let both = messages(
            validate_binding_spec,
            json!({"policyName": "p", "validationActions": ["Deny", "Warn"]}),
        );
        assert!(both[0].contains("must not contain both Deny and Warn"));
        assert_eq!(
            messages(
                validate_binding_spec,
                json!({"policyName": "p", "validationActions": ["Deny"], "paramRef": {"parameterNotFoundAction": "Deny"}})
            ),
            vec!["spec.paramRef: Required value: one of name or selector must be specified"]
        );
    }
}
