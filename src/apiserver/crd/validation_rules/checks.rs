//! The rules' checks when a CRD is created or updated: fields, compilation, where `oldSelf` may be
//! used, and the estimated cost against upstream's limits.

use super::cost::{min_size, unbounded_items};
use super::*;

/// The rules' checks of one CRD: every version's schema (`spec.versions[i].schema.openAPIV3Schema`,
/// or the CRD-wide `spec.validation.openAPIV3Schema`).
pub fn check_crd(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(s) = crd.pointer("/spec/validation/openAPIV3Schema") {
        check_schema(s, "spec.validation.openAPIV3Schema", &mut causes);
    }
    for (i, v) in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(s) = v.pointer("/schema/openAPIV3Schema") {
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            check_schema(s, &path, &mut causes);
        }
    }
    causes
}

/// Where the walk of [`check_node`] is.
struct Ctx<'a> {
    /// The highest schema path below which `oldSelf` cannot be correlated, if any.
    uncorrelatable: Option<&'a str>,
    /// How many times a rule here can run; `None` when a list or map above is unbounded.
    cardinality: Option<u64>,
}

/// Checks one version's schema; rules' estimated costs are totalled over it.
pub fn check_schema(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let mut costs: Vec<(String, u64)> = Vec::new();
    let ctx = Ctx {
        uncorrelatable: None,
        cardinality: Some(1),
    };
    check_node(schema, path, &ctx, true, causes, &mut costs, 0);
    let total = costs.iter().fold(0u64, |t, (_, c)| t.saturating_add(*c));
    if total > STATIC_CRD_COST_LIMIT {
        costs.sort_by_key(|c| std::cmp::Reverse(c.1));
        for (p, _) in costs.iter().take(4) {
            causes.push(Cause::forbidden(
                p,
                "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
            ));
        }
        causes.push(Cause::forbidden(
            path,
            &cost_message(
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                total,
                STATIC_CRD_COST_LIMIT,
            ),
        ));
    }
}

/// Upstream's `getCostErrorMessage`.
pub fn cost_message(name: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let shown = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{name} exceeds budget by factor of {shown} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

/// A rule as Go's `%#v` prints upstream's internal `apiextensions.ValidationRule`, which is how the
/// compile errors show the invalid value. Set pointers print as an address there; a fixed one here.
fn go_rule(r: &Value) -> String {
    let q = |k: &str| format!("{:?}", str_of(r, k));
    let reason = match r.get("reason").and_then(Value::as_str) {
        Some(_) => "(*apiextensions.FieldValueErrorReason)(0xc000000000)",
        None => "(*apiextensions.FieldValueErrorReason)(nil)",
    };
    let optional = match r.get("optionalOldSelf").and_then(Value::as_bool) {
        Some(_) => "(*bool)(0xc000000000)",
        None => "(*bool)(nil)",
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        q("rule"),
        q("message"),
        q("messageExpression"),
        q("fieldPath")
    )
}

/// A cause whose value prints as given (not as a JSON value).
fn invalid_raw(field: &str, raw: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {raw}: {detail}"),
        field: field.to_string(),
    }
}

fn has_newlines(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

#[allow(clippy::too_many_arguments)]
fn check_node(
    schema: &Value,
    path: &str,
    ctx: &Ctx<'_>,
    resource_root: bool,
    causes: &mut Vec<Cause>,
    costs: &mut Vec<(String, u64)>,
    depth: usize,
) {
    if depth > MAX_DEPTH || !schema.is_object() {
        return;
    }
    let before = causes.len();
    for (i, r) in rule_list(schema).iter().enumerate() {
        check_rule_fields(
            schema,
            r,
            &format!("{path}.x-kubernetes-validations[{i}]"),
            causes,
        );
    }
    // As upstream, the CEL checks run only when the rules' own fields are sound.
    if causes.len() == before {
        let shape = Shape::of_schema(schema, resource_root, 0);
        let cardinality = ctx
            .cardinality
            .unwrap_or_else(|| unbounded_items(min_size(schema)));
        for (i, r) in rule_list(schema).iter().enumerate() {
            let at = format!("{path}.x-kubernetes-validations[{i}]");
            check_rule_cel(r, &at, ctx, &shape, cardinality, causes, costs);
        }
    }
    if let Some(props) = properties_of(schema) {
        for (k, s) in props {
            let embedded = is_true(s, "x-kubernetes-embedded-resource");
            check_node(
                s,
                &format!("{path}.properties[{k}]"),
                ctx,
                embedded,
                causes,
                costs,
                depth + 1,
            );
        }
    }
    if let Some(items) = items_of(schema) {
        // Only `map` lists correlate old and new items; below any other list `oldSelf` cannot be used.
        let uncorrelatable = match ctx.uncorrelatable {
            None if str_of(schema, "x-kubernetes-list-type") != "map" => Some(path),
            other => other,
        };
        let max = schema.get("maxItems").and_then(Value::as_u64);
        let sub = Ctx {
            uncorrelatable,
            cardinality: ctx.cardinality.zip(max).map(|(c, m)| c.saturating_mul(m)),
        };
        let embedded = is_true(items, "x-kubernetes-embedded-resource");
        check_node(
            items,
            &format!("{path}.items"),
            &sub,
            embedded,
            causes,
            costs,
            depth + 1,
        );
    }
    if let Some(a) = additional_of(schema) {
        let max = schema.get("maxProperties").and_then(Value::as_u64);
        let sub = Ctx {
            uncorrelatable: ctx.uncorrelatable,
            cardinality: ctx.cardinality.zip(max).map(|(c, m)| c.saturating_mul(m)),
        };
        let embedded = is_true(a, "x-kubernetes-embedded-resource");
        check_node(
            a,
            &format!("{path}.additionalProperties"),
            &sub,
            embedded,
            causes,
            costs,
            depth + 1,
        );
    }
}

/// Upstream's checks of a rule's fields (before any CEL).
fn check_rule_fields(schema: &Value, r: &Value, at: &str, causes: &mut Vec<Cause>) {
    let rule = str_of(r, "rule");
    let message = str_of(r, "message");
    let trimmed_rule = rule.trim();
    let trimmed_msg = message.trim();
    if trimmed_rule.is_empty() {
        causes.push(Cause::required_detail(
            &format!("{at}.rule"),
            "rule is not specified",
        ));
    } else if !message.is_empty() && trimmed_msg.is_empty() {
        causes.push(Cause::invalid(
            &format!("{at}.message"),
            &json!(message),
            "message must be non-empty if specified",
        ));
    } else if has_newlines(trimmed_msg) {
        causes.push(Cause::invalid(
            &format!("{at}.message"),
            &json!(message),
            "message must not contain line breaks",
        ));
    } else if has_newlines(trimmed_rule) && trimmed_msg.is_empty() {
        causes.push(Cause::required_detail(
            &format!("{at}.message"),
            "message must be specified if rule contains line breaks",
        ));
    }
    let message_expression = str_of(r, "messageExpression");
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        causes.push(Cause::required_detail(
            &format!("{at}.messageExpression"),
            "messageExpression must be non-empty if specified",
        ));
    }
    if let Some(reason) = r.get("reason").and_then(Value::as_str) {
        if !REASONS.contains(&reason) {
            causes.push(Cause::unsupported(
                &format!("{at}.reason"),
                &json!(reason),
                &REASONS,
            ));
        }
    }
    let field_path = str_of(r, "fieldPath");
    if !field_path.is_empty() && field_path.trim().is_empty() {
        causes.push(Cause::invalid(
            &format!("{at}.fieldPath"),
            &json!(field_path),
            "fieldPath must be non-empty if specified",
        ));
    }
    if has_newlines(field_path) {
        causes.push(Cause::invalid(
            &format!("{at}.fieldPath"),
            &json!(field_path),
            "fieldPath must not contain line breaks",
        ));
    }
    if !field_path.is_empty() && normalize_field_path(field_path, schema).is_none() {
        causes.push(Cause::invalid(
            &format!("{at}.fieldPath"),
            &json!(field_path),
            "fieldPath must be a valid path",
        ));
    }
}

/// Upstream's CEL checks of a rule: compilation, cost, `oldSelf` where it can be correlated.
fn check_rule_cel(
    r: &Value,
    at: &str,
    ctx: &Ctx<'_>,
    shape: &Shape,
    cardinality: u64,
    causes: &mut Vec<Cause>,
    costs: &mut Vec<(String, u64)>,
) {
    let rule_path = format!("{at}.rule");
    let program = match compile_rule(str_of(r, "rule")) {
        Ok(p) => p,
        Err(e) => {
            causes.push(invalid_raw(
                &rule_path,
                &go_rule(r),
                &format!("compilation failed: {e}"),
            ));
            return;
        }
    };
    let cost = estimate(program.expression(), shape, shape).saturating_mul(cardinality);
    if cost > STATIC_COST_LIMIT {
        causes.push(Cause::forbidden(
            &rule_path,
            &cost_message("estimated rule cost", cost, STATIC_COST_LIMIT),
        ));
    }
    costs.push((rule_path.clone(), cost));
    let message_expression = str_of(r, "messageExpression");
    if !message_expression.trim().is_empty() {
        match compile_rule(message_expression) {
            Err(e) => causes.push(invalid_raw(
                &format!("{at}.messageExpression"),
                &go_rule(r),
                &format!("messageExpression compilation failed: {e}"),
            )),
            Ok(m) => {
                let cost = estimate(m.expression(), shape, shape).saturating_mul(cardinality);
                if cost > STATIC_COST_LIMIT {
                    causes.push(Cause::forbidden(
                        &format!("{at}.messageExpression"),
                        &cost_message("estimated messageExpression cost", cost, STATIC_COST_LIMIT),
                    ));
                }
                costs.push((format!("{at}.messageExpression"), cost));
            }
        }
    }
    if program.references("oldSelf") {
        if let Some(p) = ctx.uncorrelatable {
            causes.push(Cause::invalid(
                &rule_path,
                &json!(str_of(r, "rule")),
                &format!(
                    "oldSelf cannot be used on the uncorrelatable portion of the schema within {p}"
                ),
            ));
        }
    } else if let Some(b) = r.get("optionalOldSelf").and_then(Value::as_bool) {
        causes.push(Cause::invalid(
            &format!("{at}.optionalOldSelf"),
            &json!(b),
            "may not be set if oldSelf is not used in rule",
        ));
    }
}
