//! CRD validation rules: `x-kubernetes-validations` in a version's `openAPIV3Schema`, evaluated with
//! CEL on every write of a custom resource (upstream's `apiextensions-apiserver/pkg/apiserver/schema/cel`).
//!
//! Any schema node may carry `x-kubernetes-validations: [{rule, message, messageExpression, reason,
//! fieldPath, optionalOldSelf}]`. What happens with them, as upstream:
//!
//! - **On CRD create and update** ([`check_crd`]): every rule must be non-empty and parse, may refer to
//!   no variables but `self` and `oldSelf`; `messageExpression` must parse; `reason` must be one of the
//!   four upstream allows; `fieldPath` must name a field of the node's schema; a rule mentioning
//!   `oldSelf` (a *transition rule*) may not sit where the old value cannot be found (below a list that
//!   is not `x-kubernetes-list-type: map`); `optionalOldSelf` needs `oldSelf`. Each rule's cost is
//!   estimated from the schema (see "Cost" below) and refused when over upstream's limits.
//! - **On every create and update of a custom resource** (and its `status`/`scale` subresources:
//!   [`Rules::validate`], called by the custom resource strategy's `validate_write` after pruning and
//!   defaults): each rule is evaluated with `self` bound to the value at its node, for every item of
//!   a list and every value of a map when the rule sits on `items`/`additionalProperties`, and only
//!   where a value is present (not null). At a resource's root (and at an embedded resource)
//!   `self.metadata` holds only `name` and `generateName`, as upstream.
//! - **Transition rules** run only on updates, and only where the old object has a value at the same
//!   place: through object fields and map values by key, through `map` lists by their
//!   `x-kubernetes-list-map-keys`, never through other lists. With `optionalOldSelf: true` they also
//!   run on creates and where there is no old value, `oldSelf` then being a CEL optional
//!   (`optional.none()`, else `optional.of(old)`).
//! - **Ratcheting** (upstream's `CRDValidationRatcheting`, on by default in 1.33): on an update, a
//!   failing rule that does not use `oldSelf` is not an error where the value is unchanged from the
//!   old object (or, below an uncorrelatable list, where its nearest correlatable ancestor is
//!   unchanged). Upstream then returns the error as a warning; here it is dropped.
//! - **Failures** are 422 Invalid causes at the node's path (`<nil>` at the root, as upstream prints
//!   a nil field path; `fieldPath` appended when given): `Invalid value: "<schema type>": <message>`,
//!   the message being `messageExpression`'s string (if it evaluates to a non-empty one-line string),
//!   else `message`, else `failed rule: <rule>`; `reason` makes it `Forbidden`, `Required` or
//!   `Duplicate` instead. Evaluation errors read `<error> evaluating rule: <rule or message>`.
//!
//! Compiled programs are built once per CRD version ([`Rules::new`], held by the version's catalog
//! row) through the CEL module's shared cache, never per request.
//!
//! ## Cost
//!
//! cel-go estimates each rule's worst-case cost from its type-checked AST and the schema's bounds;
//! cel-rust has neither a type checker nor a cost model, so [`estimate`] approximates cel-go's: 1 per
//! identifier, field selection, operator and call; 10 for a list literal; string and list functions
//! linear in their receiver's length (a tenth of it, as cel-go's traversal factor), `in` linear in the
//! list; a comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) costs its range plus
//! (size of the range × its body). Sizes come from the schema: `maxLength`, `maxItems`,
//! `maxProperties`, else upstream's estimates of what fits in a 3 MiB request (a string of 3 MiB,
//! `(3 MiB - 2) / (min element size + 1)` items, ...). The rule's cost is multiplied by how many
//! times it can run (the product of the bounds of the lists and maps above it; the request-size
//! estimate when one is unbounded). Over 10,000,000 the rule is refused (`Forbidden: estimated rule
//! cost exceeds budget by factor of ...`), and all rules of a version together over 100,000,000.
//! The numbers differ from cel-go's in detail; the shape of the answer does not: a rule that
//! iterates an unbounded list inside an iteration of it is refused, one over bounded lists is not.
//!
//! At runtime cel-rust has no cost tracking either, so before each evaluation the same estimate is
//! computed with the sizes of the actual `self`/`oldSelf` values (an upper bound of what the
//! evaluation can do). Over upstream's per-call limit of 1,000,000 the rule is not run and the write
//! is refused (`call cost exceeds limit`); the estimates of one write together may not exceed
//! upstream's 10,000,000 budget (`running out of cost budget`).
//!
//! Not done (upstream has it):
//! - type checking: a misspelt field, a wrong operand type or a non-bool rule is an evaluation error
//!   when an object is written (`no such key: ...`), not a compile error when the CRD is;
//! - schema-typed values: `format: date-time`/`duration` strings are plain strings (not CEL
//!   timestamps/durations), `set` and `map` lists compare order-sensitively, `int-or-string` and
//!   preserve-unknown values are whatever their JSON is;
//! - rules inside `allOf`; the library's `quantity`, `url`, `ip`, `cidr`, `semver` and `format`
//!   functions (see the CEL module);
//! - ratcheted failures are dropped, not returned as warnings; CRD updates re-check every rule
//!   (upstream exempts rules unchanged from the stored CRD from newer environments' checks);
//! - `messageExpression`'s runtime cost is not counted against the budget;
//! - Go's `%#v` of a rule in compile errors prints set pointers (`reason`, `optionalOldSelf`) as a
//!   fixed address, where upstream's is whatever the allocation was.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::apiserver::cel::{compile_cached, Activation, Program};
use crate::apiserver::status::Cause;

/// Upstream's `StaticEstimatedCostLimit`: the most one rule may cost (estimated, times cardinality).
pub const STATIC_COST_LIMIT: u64 = 10_000_000;
/// Upstream's `StaticEstimatedCRDCostLimit`: the most all rules of a schema may cost together.
pub const STATIC_CRD_COST_LIMIT: u64 = 100_000_000;
/// Upstream's `PerCallLimit`: the most one evaluation may cost.
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// Upstream's `RuntimeCELCostBudget`: the most the evaluations of one write may cost together.
pub const RUNTIME_BUDGET: u64 = 10_000_000;
/// Upstream's `MaxRequestSizeBytes`, the basis of the size estimates of unbounded values.
const MAX_REQUEST_BYTES: u64 = 3 * 1024 * 1024;
/// Upstream's `MaxEvaluatedMessageExpressionSizeBytes`.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;
/// The reasons a rule may give (`supportedValidationReason`).
const REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];
/// Schemas nest no deeper than this here (a guard against recursion on hostile input; real schemas
/// are far shallower).
const MAX_DEPTH: usize = 64;

/// One rule as written, with its compiled programs.
#[derive(Debug)]
struct Rule {
    rule: String,
    message: String,
    reason: Option<String>,
    /// `fieldPath` as upstream normalises it (`foo.bar`, `foo[key]`), empty when not given.
    field_path: String,
    optional_old_self: bool,
    uses_old_self: bool,
    /// The compiled rule, or why it does not compile (a CRD stored before the check existed).
    program: Result<Arc<Program>, String>,
    message_expression: Option<Arc<Program>>,
}

impl Rule {
    /// Upstream's `ruleErrorString`: the message if there is one, else the rule.
    fn error_string(&self) -> &str {
        if self.message.trim().is_empty() {
            self.rule.trim()
        } else {
            self.message.trim()
        }
    }
}

/// The compiled rules of a schema node and of the nodes below it that have any.
#[derive(Debug, Default)]
struct Node {
    rules: Vec<Rule>,
    /// The schema's `type`, which failures show as their value.
    type_name: String,
    /// The root of a resource (the custom resource, or an `x-kubernetes-embedded-resource`).
    resource_root: bool,
    properties: BTreeMap<String, Node>,
    items: Option<Box<Node>>,
    additional: Option<Box<Node>>,
    /// `x-kubernetes-list-map-keys` of a `map` list: how its old items are found.
    map_keys: Option<Vec<String>>,
}

/// The validation rules of one CRD version's schema, compiled.
#[derive(Debug)]
pub struct Rules {
    root: Node,
}

fn rule_list(schema: &Value) -> &[Value] {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn is_true(v: &Value, key: &str) -> bool {
    v.get(key) == Some(&Value::Bool(true))
}

/// The schema of a list's items / a map's values (a bool `additionalProperties` has none).
fn items_of(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|i| i.is_object())
}

fn additional_of(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|a| a.is_object())
}

fn properties_of(schema: &Value) -> Option<&serde_json::Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn map_keys_of(schema: &Value) -> Option<Vec<String>> {
    (str_of(schema, "x-kubernetes-list-type") == "map").then(|| {
        schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(String::from))
            .collect()
    })
}

/// Compiles a rule's text with `self` and `oldSelf` declared, as upstream's environment.
fn compile_rule(text: &str) -> Result<Arc<Program>, String> {
    let compiled = compile_cached(text).map_err(|e| with_snippets(&e.0, text))?;
    // Undeclared variables are refused as upstream's type checker does; the parse itself is cached.
    Program::compile_declared(text, &["self", "oldSelf"]).map_err(|e| with_snippets(&e.0, text))?;
    Ok(compiled)
}

/// cel-go's display of compile errors: each `ERROR: <input>:L:C: ...` followed by the source line
/// and a caret under column C (`\n | <line>\n | ....^`), which upstream's CRD messages carry.
fn with_snippets(errors: &str, source: &str) -> String {
    errors
        .lines()
        .map(|e| {
            let Some(pos) = e.strip_prefix("ERROR: <input>:") else {
                return e.to_string();
            };
            let mut parts = pos.splitn(3, ':');
            let line = parts.next().and_then(|l| l.parse::<usize>().ok());
            let col = parts.next().and_then(|c| c.parse::<usize>().ok());
            let (Some(line), Some(col)) = (line, col) else {
                return e.to_string();
            };
            let Some(snippet) = source.split('\n').nth(line.saturating_sub(1)) else {
                return e.to_string();
            };
            let snippet = snippet.replace('\t', " ");
            let mut ind = String::new();
            let mut chars = snippet.chars();
            for _ in 0..col.saturating_sub(1) {
                match chars.next() {
                    Some(c) if c.len_utf8() > 1 => ind.push('\u{ff0e}'),
                    Some(_) => ind.push('.'),
                    None => break,
                }
            }
            match chars.next() {
                Some(c) if c.len_utf8() > 1 => ind.push('\u{ff3e}'),
                _ => ind.push('^'),
            }
            format!("{e}\n | {snippet}\n | {ind}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Rules {
    /// Compiles the rules of `schema`; `None` when it has none.
    pub fn new(schema: &Value) -> Option<Rules> {
        let root = build(schema, true, 0)?;
        Some(Rules { root })
    }

    /// Evaluates the rules against a custom resource about to be stored (`old`: the stored one, on
    /// updates), appending failures.
    pub fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        let mut budget = RUNTIME_BUDGET;
        let ratchet = old.is_some_and(|o| o == obj);
        walk(&self.root, obj, old, "", ratchet, &mut budget, causes, 0);
    }
}

/// Whether the schema validation found a value of the wrong type, upstream's `hasBlockingErr`: the
/// rules are then not evaluated (they would fail on the wrong type in confusing ways).
pub fn has_blocking_error(causes: &[Cause]) -> bool {
    causes
        .iter()
        .any(|c| c.message.contains(" in body must be of type "))
}

/// The cause upstream adds when [`has_blocking_error`] kept the rules from running.
pub fn not_checked() -> Cause {
    Cause::invalid(
        "<nil>",
        &json!("null"),
        "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
    )
}

/// The node for `schema`, if it or anything below it has rules.
fn build(schema: &Value, resource_root: bool, depth: usize) -> Option<Node> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut node = Node {
        type_name: str_of(schema, "type").to_string(),
        resource_root,
        map_keys: map_keys_of(schema),
        ..Node::default()
    };
    for r in rule_list(schema) {
        let text = str_of(r, "rule").to_string();
        if text.trim().is_empty() {
            // Refused at CRD creation; a stored CRD with one skips it, as upstream's nil program.
            continue;
        }
        let program = compile_rule(&text);
        let uses_old_self = program.as_ref().is_ok_and(|p| p.references("oldSelf"));
        let message_expression = Some(str_of(r, "messageExpression"))
            .filter(|m| !m.trim().is_empty())
            .and_then(|m| compile_rule(m).ok());
        node.rules.push(Rule {
            message: str_of(r, "message").to_string(),
            reason: r.get("reason").and_then(Value::as_str).map(String::from),
            field_path: normalize_field_path(str_of(r, "fieldPath"), schema).unwrap_or_default(),
            optional_old_self: is_true(r, "optionalOldSelf"),
            uses_old_self,
            program,
            message_expression,
            rule: text,
        });
    }
    if let Some(props) = properties_of(schema) {
        for (k, s) in props {
            let embedded = is_true(s, "x-kubernetes-embedded-resource");
            if let Some(child) = build(s, embedded, depth + 1) {
                node.properties.insert(k.clone(), child);
            }
        }
    }
    if let Some(items) = items_of(schema) {
        let embedded = is_true(items, "x-kubernetes-embedded-resource");
        node.items = build(items, embedded, depth + 1).map(Box::new);
    }
    if let Some(a) = additional_of(schema) {
        let embedded = is_true(a, "x-kubernetes-embedded-resource");
        node.additional = build(a, embedded, depth + 1).map(Box::new);
    }
    let empty = node.rules.is_empty()
        && node.properties.is_empty()
        && node.items.is_none()
        && node.additional.is_none();
    (!empty).then_some(node)
}

/// `path.name` in upstream's field path notation (`<nil>` is the empty root).
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn shown_path(path: &str) -> String {
    if path.is_empty() {
        "<nil>".into()
    } else {
        path.to_string()
    }
}

/// What `self` is at a resource root: `metadata` reduced to `name` and `generateName`, as upstream's
/// `WithTypeAndObjectMeta` declares it.
fn resource_view(v: &Value) -> Value {
    let mut out = v.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| k == "name" || k == "generateName");
    }
    out
}

/// The old item of a `map` list with the same keys as `item`.
fn correlate_item<'a>(keys: &[String], item: &Value, old: &'a [Value]) -> Option<&'a Value> {
    if keys.is_empty() {
        return None;
    }
    old.iter()
        .find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

#[allow(clippy::too_many_arguments)]
fn walk(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    ratchet: bool,
    budget: &mut u64,
    out: &mut Vec<Cause>,
    depth: usize,
) -> bool {
    // Only present values are validated: a rule on a nullable field sees no null.
    if v.is_null() || depth > MAX_DEPTH {
        return true;
    }
    let old = old.filter(|o| !o.is_null());
    if !node.rules.is_empty() && !eval_rules(node, v, old, path, ratchet, budget, out) {
        return false;
    }
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let sub = node.properties.get(k).or(node.additional.as_deref());
                let Some(sub) = sub else { continue };
                let old_x = old.and_then(|o| o.get(k));
                let p = if node.properties.contains_key(k) {
                    child(path, k)
                } else {
                    format!("{path}[{k}]")
                };
                let r = old_x.map_or(ratchet, |o| o == x);
                if !walk(sub, x, old_x, &p, r, budget, out, depth + 1) {
                    return false;
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = &node.items {
                let old_items = old.and_then(Value::as_array).map(Vec::as_slice);
                for (i, x) in a.iter().enumerate() {
                    let old_x = match (&node.map_keys, old_items) {
                        (Some(keys), Some(olds)) => correlate_item(keys, x, olds),
                        _ => None,
                    };
                    let r = old_x.map_or(ratchet, |o| o == x);
                    let p = format!("{path}[{i}]");
                    if !walk(items, x, old_x, &p, r, budget, out, depth + 1) {
                        return false;
                    }
                }
            }
        }
        _ => {}
    }
    true
}

/// A failure as upstream's `fieldErrorForReason` words it.
fn failure(path: &str, type_name: &str, detail: &str, reason: Option<&str>) -> Cause {
    let field = shown_path(path);
    let value = json!(type_name);
    match reason {
        Some("FieldValueForbidden") => Cause::forbidden(&field, detail),
        Some("FieldValueRequired") => Cause::required_detail(&field, detail),
        Some("FieldValueDuplicate") => Cause::duplicate(&field, &value),
        _ => Cause::invalid(&field, &value, detail),
    }
}

/// Evaluates the rules of `node` on `v`; false when the budget ran out (nothing more is evaluated).
#[allow(clippy::too_many_arguments)]
fn eval_rules(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    ratchet: bool,
    budget: &mut u64,
    out: &mut Vec<Cause>,
) -> bool {
    let field = shown_path(path);
    let invalid = |detail: &str| Cause::invalid(&field, &json!(node.type_name), detail);
    let (self_v, old_v) = if node.resource_root {
        (resource_view(v), old.map(resource_view))
    } else {
        (v.clone(), old.cloned())
    };
    // The runtime cost bound: the static estimate over the actual values' sizes.
    let self_shape = Shape::of_value(&self_v, 0);
    let old_shape = old_v.as_ref().map(|o| Shape::of_value(o, 0));
    let mut act = Activation::new();
    act.bind_json("self", Some(&self_v));
    let mut optional_act = act.clone();
    optional_act.bind_optional_json("oldSelf", old_v.as_ref());
    if let Some(o) = &old_v {
        act.bind_json("oldSelf", Some(o));
    }
    for rule in &node.rules {
        let program = match &rule.program {
            Ok(p) => p,
            Err(e) => {
                out.push(invalid(&format!("rule compile error: {e}")));
                continue;
            }
        };
        if rule.uses_old_self && old_v.is_none() && !rule.optional_old_self {
            // A transition rule needs an old value to compare with.
            continue;
        }
        let cost = estimate(
            program.expression(),
            &self_shape,
            old_shape.as_ref().unwrap_or(&self_shape),
        );
        if cost > PER_CALL_LIMIT {
            out.push(invalid(&format!(
                "'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                rule.error_string()
            )));
            return false;
        }
        if cost > *budget {
            out.push(invalid(
                "validation failed due to running out of cost budget, no further validation rules will be run",
            ));
            return false;
        }
        *budget -= cost;
        let activation = if rule.optional_old_self {
            &optional_act
        } else {
            &act
        };
        match program.eval_bool(activation) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                let detail = if e.0.starts_with("no such overload") {
                    format!(
                        "'{}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                        e.0,
                        rule.error_string()
                    )
                } else {
                    format!("{} evaluating rule: {}", e.0, rule.error_string())
                };
                out.push(invalid(&detail));
                continue;
            }
        }
        if !rule.uses_old_self && ratchet {
            // Unchanged from the old object: upstream ratchets the error (a warning, not a failure).
            continue;
        }
        let at = if rule.field_path.is_empty() {
            path.to_string()
        } else {
            child(path, &rule.field_path)
        };
        let detail = rule
            .message_expression
            .as_ref()
            // As upstream, with `oldSelf` as a plain value even for `optionalOldSelf` rules.
            .and_then(|m| message_of(m, &act))
            .unwrap_or_else(|| {
                if rule.message.trim().is_empty() {
                    format!("failed rule: {}", rule.error_string())
                } else {
                    rule.message.trim().to_string()
                }
            });
        out.push(failure(
            &at,
            &node.type_name,
            &detail,
            rule.reason.as_deref(),
        ));
    }
    true
}

/// A `messageExpression`'s message: a non-empty string of one line within upstream's size limit;
/// anything else falls back to `message` (upstream logs why).
fn message_of(program: &Program, act: &Activation) -> Option<String> {
    match program.eval(act) {
        Ok(crate::apiserver::cel::Value::String(s)) => {
            let m = s.trim();
            (!m.is_empty() && m.len() <= MAX_MESSAGE_BYTES && !m.contains(['\n', '\r']))
                .then(|| m.to_string())
        }
        _ => None,
    }
}

/// Upstream's `ValidFieldPath`, normalised: `.foo.bar` → `foo.bar`, `.labels['a.b']` → `labels[a.b]`;
/// `None` when the path does not name a field of `schema`.
fn normalize_field_path(path: &str, schema: &Value) -> Option<String> {
    let mut out = String::new();
    let mut s = schema;
    let mut rest = path;
    while !rest.is_empty() {
        let name: String;
        if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            name = r[..end].replace("\\'", "'").replace("\\\\", "\\");
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            name = r[..end].to_string();
            rest = &r[end..];
        } else {
            return None;
        }
        if name.is_empty() {
            return None;
        }
        if let Some(props) = properties_of(s) {
            s = props.get(&name)?;
            out = child(&out, &name);
        } else if let Some(a) = additional_of(s) {
            s = a;
            out = format!("{out}[{name}]");
        } else {
            return None;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// CRD-time checks.

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

// ---------------------------------------------------------------------------------------------
// Cost estimation.

/// What the estimator knows of a value: its kind and largest size.
#[derive(Clone, Debug, PartialEq)]
enum Shape {
    /// Numbers, booleans, null, and values of unknown type (counted as size 1).
    Scalar,
    /// A string of at most this many characters.
    Str(u64),
    /// A list of at most this many items of that shape.
    List(u64, Box<Shape>),
    /// A map (`additionalProperties`) of at most this many values of that shape, keys of that length.
    Map(u64, u64, Box<Shape>),
    /// An object with these properties.
    Object(BTreeMap<String, Shape>),
}

/// The longest string that fits in a request (upstream's estimate for strings without `maxLength`).
const UNBOUNDED_STRING: u64 = MAX_REQUEST_BYTES - 2;

/// How many items of `min` serialized bytes fit in a request (upstream's
/// `estimateMaxArrayItemsFromMinSize`).
fn unbounded_items(min: u64) -> u64 {
    (MAX_REQUEST_BYTES - 2) / (min + 1)
}

/// The fewest bytes a value of `schema` serialises to (upstream's `estimateMinSizeJSON`).
fn min_size(schema: &Value) -> u64 {
    match str_of(schema, "type") {
        "string" | "array" | "object" => 2,
        "boolean" => 4,
        _ => 1,
    }
}

impl Shape {
    fn of_schema(schema: &Value, resource_root: bool, depth: usize) -> Shape {
        if depth > MAX_DEPTH {
            return Shape::Scalar;
        }
        let mut shape = match str_of(schema, "type") {
            "string" => Shape::Str(
                schema
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .unwrap_or(UNBOUNDED_STRING),
            ),
            "array" => {
                let items = items_of(schema);
                let max = schema
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| unbounded_items(items.map_or(1, min_size)));
                let elem = items.map_or(Shape::Scalar, |i| Shape::of_schema(i, false, depth + 1));
                Shape::List(max, Box::new(elem))
            }
            "object" => {
                if let Some(a) = additional_of(schema) {
                    let max = schema
                        .get("maxProperties")
                        .and_then(Value::as_u64)
                        .unwrap_or_else(|| (MAX_REQUEST_BYTES - 2) / (min_size(a) + 4));
                    let v = Shape::of_schema(a, false, depth + 1);
                    Shape::Map(max, UNBOUNDED_STRING, Box::new(v))
                } else {
                    Shape::Object(
                        properties_of(schema)
                            .into_iter()
                            .flatten()
                            .map(|(k, s)| (k.clone(), Shape::of_schema(s, false, depth + 1)))
                            .collect(),
                    )
                }
            }
            _ => Shape::Scalar,
        };
        if resource_root {
            if let Shape::Object(props) = &mut shape {
                props.insert("apiVersion".into(), Shape::Str(UNBOUNDED_STRING));
                props.insert("kind".into(), Shape::Str(UNBOUNDED_STRING));
                let meta = BTreeMap::from([
                    ("name".to_string(), Shape::Str(253)),
                    ("generateName".to_string(), Shape::Str(253)),
                ]);
                props.insert("metadata".into(), Shape::Object(meta));
            }
        }
        shape
    }

    /// The shape of an actual value (lists and maps: their largest item).
    fn of_value(v: &Value, depth: usize) -> Shape {
        if depth > MAX_DEPTH {
            return Shape::Scalar;
        }
        match v {
            Value::String(s) => Shape::Str(s.chars().count() as u64),
            Value::Array(a) => {
                let elem = a
                    .iter()
                    .map(|x| Shape::of_value(x, depth + 1))
                    .reduce(join)
                    .unwrap_or(Shape::Scalar);
                Shape::List(a.len() as u64, Box::new(elem))
            }
            Value::Object(o) => Shape::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), Shape::of_value(x, depth + 1)))
                    .collect(),
            ),
            _ => Shape::Scalar,
        }
    }

    /// Its size as the cost model counts it (characters, items, entries).
    fn size(&self) -> u64 {
        match self {
            Shape::Scalar => 1,
            Shape::Str(n) | Shape::List(n, _) | Shape::Map(n, _, _) => *n,
            Shape::Object(p) => p.len() as u64,
        }
    }

    /// A field's (or map value's) shape.
    fn field(&self, name: &str) -> Shape {
        match self {
            Shape::Object(p) => p.get(name).cloned().unwrap_or(Shape::Scalar),
            Shape::Map(_, _, v) => (**v).clone(),
            _ => Shape::Scalar,
        }
    }

    /// An item's shape, and what a comprehension over it binds (items; keys of maps and objects).
    fn element(&self) -> Shape {
        match self {
            Shape::List(_, e) => (**e).clone(),
            Shape::Map(_, k, _) => Shape::Str(*k),
            Shape::Object(p) => Shape::Str(p.keys().map(|k| k.len() as u64).max().unwrap_or(0)),
            _ => Shape::Scalar,
        }
    }
}

/// The larger of two shapes (of the items of one list).
fn join(a: Shape, b: Shape) -> Shape {
    match (a, b) {
        (Shape::Str(x), Shape::Str(y)) => Shape::Str(x.max(y)),
        (Shape::List(x, e), Shape::List(y, f)) => Shape::List(x.max(y), Box::new(join(*e, *f))),
        (Shape::Object(mut p), Shape::Object(q)) => {
            for (k, s) in q {
                let merged = match p.remove(&k) {
                    Some(t) => join(t, s),
                    None => s,
                };
                p.insert(k, merged);
            }
            Shape::Object(p)
        }
        (a, b) => {
            if b.size() > a.size() {
                b
            } else {
                a
            }
        }
    }
}

/// cel-go's traversal cost of a value of `n` characters or items: a tenth, rounded up.
fn traversal(n: u64) -> u64 {
    n.div_ceil(10)
}

/// The estimated worst-case cost of evaluating `e` with `self` and `oldSelf` of these shapes.
fn estimate(e: &::cel::IdedExpr, self_shape: &Shape, old_shape: &Shape) -> u64 {
    let mut scope = vec![
        ("self".to_string(), self_shape.clone()),
        ("oldSelf".to_string(), old_shape.clone()),
    ];
    cost(e, &mut scope, 0).0
}

/// The cost and result shape of `e`; `scope` holds the variables' shapes, innermost last.
fn cost(e: &::cel::IdedExpr, scope: &mut Vec<(String, Shape)>, depth: usize) -> (u64, Shape) {
    use ::cel::common::ast::{EntryExpr, Expr, LiteralValue};
    if depth > 4 * MAX_DEPTH {
        return (u64::MAX, Shape::Scalar);
    }
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => (0, Shape::Str(s.inner().len() as u64)),
        Expr::Literal(_) | Expr::Unspecified => (0, Shape::Scalar),
        Expr::Ident(name) => {
            let shape = scope
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or(Shape::Scalar, |(_, s)| s.clone());
            (1, shape)
        }
        Expr::Select(sel) => {
            let (c, s) = cost(&sel.operand, scope, depth + 1);
            let shape = if sel.test {
                Shape::Scalar
            } else {
                s.field(&sel.field)
            };
            (c.saturating_add(1), shape)
        }
        Expr::List(l) => {
            let mut total = 10u64;
            let mut elem: Option<Shape> = None;
            for x in &l.elements {
                let (c, s) = cost(x, scope, depth + 1);
                total = total.saturating_add(c);
                elem = Some(match elem {
                    Some(prev) => join(prev, s),
                    None => s,
                });
            }
            let n = l.elements.len() as u64;
            (
                total,
                Shape::List(n, Box::new(elem.unwrap_or(Shape::Scalar))),
            )
        }
        Expr::Map(m) => {
            let mut total = 30u64;
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => {
                        total = total.saturating_add(cost(&f.value, scope, depth + 1).0)
                    }
                    EntryExpr::MapEntry(me) => {
                        total = total
                            .saturating_add(cost(&me.key, scope, depth + 1).0)
                            .saturating_add(cost(&me.value, scope, depth + 1).0)
                    }
                }
            }
            (total, Shape::Scalar)
        }
        Expr::Struct(_) => (40, Shape::Scalar),
        Expr::Comprehension(c) => {
            let (rc, range) = cost(&c.iter_range, scope, depth + 1);
            let n = match &range {
                Shape::Scalar => 1,
                other => other.size(),
            };
            let (ic, _) = cost(&c.accu_init, scope, depth + 1);
            let mark = scope.len();
            match &c.iter_var2 {
                // Two variables: index (or key) and item (or value).
                Some(v2) => {
                    let second = match &range {
                        Shape::List(_, e) => (**e).clone(),
                        Shape::Map(_, _, v) => (**v).clone(),
                        _ => Shape::Scalar,
                    };
                    let first = match &range {
                        Shape::List(..) => Shape::Scalar,
                        other => other.element(),
                    };
                    scope.push((c.iter_var.clone(), first));
                    scope.push((v2.clone(), second));
                }
                None => scope.push((c.iter_var.clone(), range.element())),
            }
            // `map` and `filter` accumulate a list as long as the range.
            scope.push((c.accu_var.clone(), Shape::List(n, Box::new(Shape::Scalar))));
            let (lc, _) = cost(&c.loop_cond, scope, depth + 1);
            let (ls, step_shape) = cost(&c.loop_step, scope, depth + 1);
            scope.truncate(mark);
            scope.push((c.accu_var.clone(), accumulated(&step_shape, n)));
            let (resc, res_shape) = cost(&c.result, scope, depth + 1);
            scope.truncate(mark);
            let total = rc
                .saturating_add(ic)
                .saturating_add(n.saturating_mul(lc.saturating_add(ls)))
                .saturating_add(resc);
            (total, res_shape)
        }
        Expr::Call(call) => {
            let mut total = 0u64;
            let target = call.target.as_ref().map(|t| {
                let (c, s) = cost(t, scope, depth + 1);
                total = total.saturating_add(c);
                s
            });
            let mut args = Vec::with_capacity(call.args.len());
            for a in &call.args {
                let (c, s) = cost(a, scope, depth + 1);
                total = total.saturating_add(c);
                args.push(s);
            }
            let (own, shape) = call_cost(&call.func_name, target.as_ref(), &args);
            (total.saturating_add(own), shape)
        }
    }
}

/// The shape a `map`/`filter` comprehension's result has: a list of what each step appends.
fn accumulated(step: &Shape, n: u64) -> Shape {
    match step {
        Shape::List(_, e) => Shape::List(n, e.clone()),
        _ => Shape::Scalar,
    }
}

/// A call's own cost and its result's shape, by function (receiver `target`, arguments `args`).
fn call_cost(name: &str, target: Option<&Shape>, args: &[Shape]) -> (u64, Shape) {
    let recv = target.or(args.first()).cloned().unwrap_or(Shape::Scalar);
    let recv_size = recv.size();
    match name {
        "_[_]" | "_[?_]" => {
            let idx = args.get(1);
            let shape = match (&recv, idx) {
                (Shape::List(_, e), _) => (**e).clone(),
                (Shape::Map(_, _, v), _) => (**v).clone(),
                _ => Shape::Scalar,
            };
            (1, shape)
        }
        // Equality stops at the end of the shorter operand.
        "_==_" | "_!=_" => {
            let n = args.iter().map(Shape::size).min().unwrap_or(1);
            (1 + traversal(n), Shape::Scalar)
        }
        "@in" => {
            let list = args.get(1).map_or(1, Shape::size);
            (1u64.saturating_add(list), Shape::Scalar)
        }
        "_+_" => match (args.first(), args.get(1)) {
            (Some(Shape::Str(a)), Some(Shape::Str(b))) => {
                let n = a.saturating_add(*b);
                (1 + traversal(n), Shape::Str(n))
            }
            (Some(Shape::List(a, e)), Some(Shape::List(b, f))) => {
                let n = a.saturating_add(*b);
                (
                    1 + traversal(n),
                    Shape::List(n, Box::new(join((**e).clone(), (**f).clone()))),
                )
            }
            _ => (1, Shape::Scalar),
        },
        // A substring search may compare the needle at every position; a prefix only once.
        "contains" => {
            let needle = args.last().map_or(1, Shape::size);
            (
                1 + traversal(recv_size.saturating_mul(needle)),
                Shape::Scalar,
            )
        }
        "startsWith" | "endsWith" => (
            1 + traversal(args.last().map_or(1, Shape::size)),
            Shape::Scalar,
        ),
        "matches" | "find" | "findAll" => {
            let pattern = args.last().map_or(1, Shape::size);
            let c = 1 + traversal(recv_size).saturating_mul(1 + pattern.div_ceil(4));
            let shape = match name {
                "find" => Shape::Str(recv_size),
                "findAll" => Shape::List(recv_size, Box::new(Shape::Str(recv_size))),
                _ => Shape::Scalar,
            };
            (c, shape)
        }
        "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "reverse" => {
            (1 + traversal(recv_size), Shape::Str(recv_size))
        }
        "split" => (
            1 + traversal(recv_size),
            Shape::List(recv_size, Box::new(Shape::Str(recv_size))),
        ),
        "join" => {
            let n = match &recv {
                Shape::List(n, e) => n.saturating_mul(e.size().max(1)),
                _ => 1,
            };
            (1 + traversal(n), Shape::Str(n))
        }
        "indexOf" | "lastIndexOf" => (1u64.saturating_add(recv_size), Shape::Scalar),
        "sum" | "min" | "max" | "isSorted" => (1u64.saturating_add(recv_size), Shape::Scalar),
        // Optionals hand on the shape of what they hold.
        "value" | "orValue" | "or" | "of" => (1, recv),
        "string" => (1 + traversal(recv_size), Shape::Str(recv_size.max(20))),
        _ => (1, Shape::Scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('x') || !has(self.spec.replicas) || self.spec.replicas != 13", "message": "no thirteen"}],
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "self.minReplicas <= self.replicas"},
                        {"rule": "self.replicas <= 100", "messageExpression": "'too many: ' + string(self.replicas)", "reason": "FieldValueForbidden"},
                        {"rule": "self.mode == oldSelf.mode", "message": "immutable"},
                        {"rule": "!oldSelf.hasValue() || oldSelf.value().replicas <= self.replicas", "optionalOldSelf": true, "message": "may not shrink", "fieldPath": ".replicas"}
                    ],
                    "properties": {
                        "replicas": {"type": "integer"},
                        "minReplicas": {"type": "integer"},
                        "mode": {"type": "string"},
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {
                                "type": "object",
                                "x-kubernetes-validations": [
                                    {"rule": "self.port > 0", "message": "port must be positive"},
                                    {"rule": "self.port == oldSelf.port", "message": "port is immutable"}
                                ],
                                "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}
                            }
                        },
                        "tags": {
                            "type": "array",
                            "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 5", "reason": "FieldValueDuplicate"}]}
                        },
                        "labels": {
                            "type": "object",
                            "additionalProperties": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'bad'"}]}
                        },
                        "opt": {"type": "string", "nullable": true, "x-kubernetes-validations": [{"rule": "self.size() > 100"}]}
                    }
                }
            }
        })
    }

    fn run(obj: Value, old: Option<Value>) -> Vec<String> {
        let rules = Rules::new(&schema()).unwrap();
        let mut out = Vec::new();
        rules.validate(&obj, old.as_ref(), &mut out);
        out.iter().map(Cause::display).collect()
    }

    fn cr(spec: Value) -> Value {
        json!({"apiVersion": "x.io/v1", "kind": "C", "metadata": {"name": "a", "uid": "u"}, "spec": spec})
    }

    #[test]
    fn evaluates_rules_on_create() {
        assert!(run(cr(json!({"replicas": 3, "minReplicas": 1})), None).is_empty());
        assert_eq!(
            run(cr(json!({"replicas": 1, "minReplicas": 2})), None),
            vec![
                r#"spec: Invalid value: "object": failed rule: self.minReplicas <= self.replicas"#
            ]
        );
        assert_eq!(
            run(cr(json!({"replicas": 101, "minReplicas": 2})), None),
            vec!["spec: Forbidden: too many: 101"]
        );
        // The root sees metadata.name; the rule message is used.
        assert_eq!(
            run(cr(json!({"replicas": 13, "minReplicas": 2})), None),
            vec![r#"<nil>: Invalid value: "object": no thirteen"#]
        );
        // Evaluation errors name the rule.
        assert_eq!(
            run(cr(json!({"replicas": 1})), None),
            vec![
                r#"spec: Invalid value: "object": no such key: minReplicas evaluating rule: self.minReplicas <= self.replicas"#
            ]
        );
    }

    #[test]
    fn items_maps_and_reasons() {
        let got = run(
            cr(
                json!({"replicas": 1, "minReplicas": 1, "tags": ["ok", "toolong"], "labels": {"a": "bad", "b": "good"}, "ports": [{"name": "http", "port": 0}], "opt": null}),
            ),
            None,
        );
        let mut got = got;
        got.sort();
        assert_eq!(
            got,
            vec![
                r#"spec.labels[a]: Invalid value: "string": failed rule: self != 'bad'"#,
                r#"spec.ports[0]: Invalid value: "object": port must be positive"#,
                r#"spec.tags[1]: Duplicate value: "string""#,
            ]
        );
    }

    #[test]
    fn transition_rules() {
        let old = cr(
            json!({"replicas": 3, "minReplicas": 1, "mode": "a", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}),
        );
        // Unchanged: fine.
        assert!(run(old.clone(), Some(old.clone())).is_empty());
        // Transition rules: mode immutable; ports correlated by name (reordered is fine).
        let new = cr(
            json!({"replicas": 2, "minReplicas": 1, "mode": "b", "ports": [{"name": "https", "port": 443}, {"name": "http", "port": 81}, {"name": "new", "port": 1}]}),
        );
        assert_eq!(
            run(new, Some(old)),
            vec![
                r#"spec: Invalid value: "object": immutable"#,
                r#"spec.replicas: Invalid value: "object": may not shrink"#,
                r#"spec.ports[1]: Invalid value: "object": port is immutable"#,
            ]
        );
        // No old value: transition rules are skipped, the optional one sees optional.none().
        assert!(run(
            cr(json!({"replicas": 1, "minReplicas": 1, "mode": "x"})),
            None
        )
        .is_empty());
    }

    #[test]
    fn type_errors_block_the_rules() {
        let version = crate::apiserver::crd::CustomVersion {
            crd_name: "x".into(),
            storage_version: "v1".into(),
            schema: Some(schema()),
            columns: None,
            scale: None,
            conversion: crate::apiserver::crd::conversion::Strategy::None,
            deprecation: None,
            rules: Rules::new(&schema()).map(Arc::new),
        };
        let obj = cr(json!({"replicas": "three", "minReplicas": 1}));
        let prior = version.validate(&obj);
        assert_eq!(prior.len(), 1);
        let got: Vec<String> = version
            .validate_rules(&obj, None, &prior)
            .iter()
            .map(Cause::display)
            .collect();
        assert_eq!(
            got,
            vec![
                r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#
            ]
        );
    }

    #[test]
    fn ratchets_unchanged_values() {
        // Stored before the rule: an unchanged spec is not refused when only metadata changes.
        let old = cr(json!({"replicas": 1, "minReplicas": 2, "mode": "a"}));
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"x": "y"});
        assert!(run(new, Some(old.clone())).is_empty());
        let new = cr(json!({"replicas": 1, "minReplicas": 3, "mode": "a"}));
        assert_eq!(run(new, Some(old)).len(), 1);
    }

    fn crd_with(spec_schema: Value) -> Value {
        json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": spec_schema}
        }}}]}})
    }

    fn crd_messages(spec_schema: Value) -> Vec<String> {
        check_crd(&crd_with(spec_schema))
            .iter()
            .map(Cause::display)
            .collect()
    }

    #[test]
    fn crd_checks() {
        let ok = check_crd(
            &json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema()}}]}}),
        );
        assert!(
            ok.is_empty(),
            "{:?}",
            ok.iter().map(Cause::display).collect::<Vec<_>>()
        );
        assert_eq!(
            crd_messages(
                json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==  "}]})
            ),
            vec![
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:"self.a ==  ", Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:12: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
 | self.a ==  
 | ...........^"#
            ]
        );
        assert_eq!(
            crd_messages(json!({"type": "object", "x-kubernetes-validations": [{"rule": " "}]})),
            vec!["spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Required value: rule is not specified"]
        );
        assert_eq!(
            crd_messages(
                json!({"type": "object", "x-kubernetes-validations": [{"rule": "foo == 1"}]})
            ),
            vec![
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:"foo == 1", Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')
 | foo == 1
 | ^"#
            ]
        );
        // oldSelf below an atomic list.
        assert_eq!(
            crd_messages(
                json!({"type": "object", "properties": {"l": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10, "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}})
            ),
            vec![
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[l].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[l]"#
            ]
        );
        assert_eq!(
            crd_messages(
                json!({"type": "object", "x-kubernetes-validations": [{"rule": "true", "optionalOldSelf": true, "reason": "Nope", "fieldPath": ".missing"}]})
            ),
            vec![
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#,
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].fieldPath: Invalid value: ".missing": fieldPath must be a valid path"#,
            ]
        );
        assert_eq!(
            crd_messages(json!({"type": "object", "x-kubernetes-validations": [{"rule": "true", "optionalOldSelf": true}]})),
            vec!["spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"]
        );
    }

    #[test]
    fn cost_limits() {
        let nested = "self.l.all(x, self.l.exists(y, x == y))";
        // Unbounded list of unbounded strings, iterated twice: refused.
        let msgs = crd_messages(
            json!({"type": "object", "x-kubernetes-validations": [{"rule": nested}],
            "properties": {"l": {"type": "array", "items": {"type": "string"}}}}),
        );
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(
            msgs[0],
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
        );
        assert_eq!(msgs[1], "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema");
        assert!(msgs[2].starts_with("spec.versions[0].schema.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of"), "{}", msgs[2]);
        // Bounded: accepted.
        assert!(crd_messages(json!({"type": "object", "x-kubernetes-validations": [{"rule": nested}],
            "properties": {"l": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 64}}}})).is_empty());
        // One pass over an unbounded list is fine, as upstream.
        assert!(crd_messages(
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.l.all(x, x > 0)"}],
            "properties": {"l": {"type": "array", "items": {"type": "integer"}}}})
        )
        .is_empty());
        assert_eq!(cost_message("c", 12_000_000, 10_000_000), "c exceeds budget by factor of 1.200000x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)");
        assert!(cost_message("c", 25_000_000, 10_000_000).contains("factor of 2.5x"));
    }

    #[test]
    fn runtime_cost_bound() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.l.all(x, self.l.all(y, x == y || x != y))"}],
            "properties": {"l": {"type": "array", "items": {"type": "integer"}}}}}});
        let rules = Rules::new(&s).unwrap();
        let mut out = Vec::new();
        rules.validate(&json!({"spec": {"l": [1, 2, 3]}}), None, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let big: Vec<i64> = (0..2000).collect();
        rules.validate(&json!({"spec": {"l": big}}), None, &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            out[0]
                .display()
                .contains("call cost exceeds limit for rule"),
            "{}",
            out[0].display()
        );
    }

    #[test]
    fn field_paths() {
        let s = schema();
        let spec = &s["properties"]["spec"];
        assert_eq!(
            normalize_field_path(".replicas", spec).as_deref(),
            Some("replicas")
        );
        assert_eq!(
            normalize_field_path(".labels['a.b']", spec).as_deref(),
            Some("labels[a.b]")
        );
        assert_eq!(
            normalize_field_path("['mode']", spec).as_deref(),
            Some("mode")
        );
        assert!(normalize_field_path(".nope", spec).is_none());
        assert!(normalize_field_path("replicas", spec).is_none());
    }
}
