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

use super::schema::join;
use crate::apiserver::cel::{compile_cached, Activation, Program};
use crate::apiserver::status::Cause;

mod checks;
mod cost;
#[cfg(test)]
mod tests;

pub use checks::check_crd;
use cost::{estimate, Shape};

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
                    join(path, k)
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
            join(path, &rule.field_path)
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
            out = join(&out, &name);
        } else if let Some(a) = additional_of(s) {
            s = a;
            out = format!("{out}[{name}]");
        } else {
            return None;
        }
    }
    Some(out)
}
