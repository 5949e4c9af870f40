//! A CRD version's structural schema (`openAPIV3Schema`) applied to custom resources.
//!
//! Upstream's apiextensions-apiserver does three things with it on every write, in this order, and so
//! do we: **prune** fields the schema does not declare (unless `x-kubernetes-preserve-unknown-fields`
//! says to keep them at that level), apply **defaults** (`default`) to missing fields, and **validate**
//! the result (types, required, enum, bounds, `multipleOf`, pattern, lengths, item and property counts,
//! string `format`s as [`super::formats`] checks them, and the `anyOf`/`oneOf`/`allOf`/`not`
//! combinators), answering 422 `Invalid` with kube-openapi's messages. `apiVersion`, `kind` and `metadata` at the root are never pruned (the
//! generic registry validates metadata itself).
//!
//! Pruned fields are what `fieldValidation=Strict|Warn` reports as unknown: the handlers compare the body
//! with its pruned form exactly as they compare a built-in body with its typed round trip.

use serde_json::{Map, Value};

use super::formats;
use crate::apiserver::status::Cause;

fn preserves_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn is_int_or_string(s: &Value) -> bool {
    s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
}

/// Drops every field `schema` does not declare, at the root keeping `apiVersion`, `kind` and `metadata`.
pub fn prune_root(obj: &mut Value, schema: &Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let keep: Vec<(String, Value)> = ["apiVersion", "kind", "metadata"]
        .iter()
        .filter_map(|k| o.remove(*k).map(|v| (k.to_string(), v)))
        .collect();
    prune(obj, schema);
    if let Some(o) = obj.as_object_mut() {
        // Put them back first, in the usual order.
        let rest = std::mem::take(o);
        for (k, v) in keep {
            o.insert(k, v);
        }
        o.extend(rest);
    }
}

/// Drops the fields of `v` that `schema` does not declare.
pub fn prune(v: &mut Value, schema: &Value) {
    match v {
        Value::Object(o) => {
            if schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true)) {
                // apiVersion/kind/metadata of an embedded object are always kept.
                let keep: Map<String, Value> = ["apiVersion", "kind", "metadata"]
                    .iter()
                    .filter_map(|k| o.remove(*k).map(|x| (k.to_string(), x)))
                    .collect();
                prune_object(o, schema);
                o.extend(keep);
            } else {
                prune_object(o, schema);
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for x in a.iter_mut() {
                    prune(x, items);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(o: &mut Map<String, Value>, schema: &Value) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let keep_unknown =
        preserves_unknown(schema) || schema.get("additionalProperties") == Some(&Value::Bool(true));
    let keys: Vec<String> = o.keys().cloned().collect();
    for k in keys {
        let sub = props.and_then(|p| p.get(&k)).or(additional);
        match sub {
            Some(s) => {
                if let Some(x) = o.get_mut(&k) {
                    prune(x, s);
                }
            }
            None if keep_unknown => {}
            None => {
                o.remove(&k);
            }
        }
    }
}

/// Fills in `default`s of missing fields (and of `null` fields that are not nullable), depth first.
pub fn default(v: &mut Value, schema: &Value) {
    match v {
        Value::Object(o) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    let Some(d) = s.get("default") else { continue };
                    let nullable = s.get("nullable") == Some(&Value::Bool(true));
                    match o.get(k) {
                        None => {
                            o.insert(k.clone(), d.clone());
                        }
                        Some(Value::Null) if !nullable => {
                            o.insert(k.clone(), d.clone());
                        }
                        _ => {}
                    }
                }
                for (k, s) in props {
                    if let Some(x) = o.get_mut(k) {
                        default(x, s);
                    }
                }
            }
            if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for x in o.values_mut() {
                    default(x, a);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for x in a.iter_mut() {
                    default(x, items);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, v: &Value) -> bool {
    match expected {
        "integer" => type_name(v) == "integer",
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

/// `path.key` in upstream's field path notation (the root is the empty path).
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON number as kube-openapi prints bounds: integers without a fraction.
fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
        None => v.to_string(),
    }
}

/// Validates the object against the schema (the root's apiVersion/kind/metadata are not checked here).
pub fn validate_root(obj: &Value, schema: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(o) = obj.as_object() else {
        return out;
    };
    let mut rest = o.clone();
    for k in ["apiVersion", "kind", "metadata"] {
        rest.remove(k);
    }
    let mut s = schema.clone();
    if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
        for k in ["apiVersion", "kind", "metadata"] {
            props.remove(k);
        }
    }
    if let Some(req) = s.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| !matches!(r.as_str(), Some("apiVersion" | "kind" | "metadata")));
    }
    validate(&Value::Object(rest), &s, "", &mut out);
    out
}

/// Validates `v` at `path` against `schema`, appending causes.
pub fn validate(v: &Value, schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let shown = if path.is_empty() { "body" } else { path };
    if v.is_null() {
        if schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            out.push(Cause::invalid(
                shown,
                &Value::String("null".into()),
                &format!("{shown} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    if is_int_or_string(schema) {
        if !(v.is_string() || type_name(v) == "integer") {
            let t = type_name(v);
            out.push(Cause::invalid(
                shown,
                &Value::String(t.into()),
                &format!("{shown} in body must be of type integer,string: \"{t}\""),
            ));
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(t, v) {
            let actual = type_name(v);
            out.push(Cause::invalid(
                shown,
                &Value::String(actual.into()),
                &format!("{shown} in body must be of type {t}: \"{actual}\""),
            ));
            return;
        }
    }
    combinators(v, schema, path, out);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let names: Vec<String> = allowed
                .iter()
                .map(|a| match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            out.push(Cause::unsupported(shown, v, &refs));
        }
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema.get("minimum").filter(|m| m.is_number()) {
                let m = min.as_f64().unwrap_or(0.0);
                let exclusive = schema.get("exclusiveMinimum") == Some(&Value::Bool(true));
                if (exclusive && x <= m) || (!exclusive && x < m) {
                    let rel = if exclusive {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    out.push(Cause::invalid(
                        shown,
                        v,
                        &format!("{shown} in body should be {rel} {}", number(min)),
                    ));
                }
            }
            if let Some(max) = schema.get("maximum").filter(|m| m.is_number()) {
                let m = max.as_f64().unwrap_or(0.0);
                let exclusive = schema.get("exclusiveMaximum") == Some(&Value::Bool(true));
                if (exclusive && x >= m) || (!exclusive && x > m) {
                    let rel = if exclusive {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    out.push(Cause::invalid(
                        shown,
                        v,
                        &format!("{shown} in body should be {rel} {}", number(max)),
                    ));
                }
            }
            if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64) {
                if m > 0.0 && !is_multiple(x, m) {
                    out.push(Cause::invalid(
                        shown,
                        v,
                        &format!(
                            "{shown} in body should be a multiple of {}",
                            number(&schema["multipleOf"])
                        ),
                    ));
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count();
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                if len as u64 > max {
                    out.push(Cause::too_long(shown, max as usize));
                }
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if (len as u64) < min {
                    out.push(Cause::invalid(
                        shown,
                        v,
                        &format!("{shown} in body should be at least {min} chars long"),
                    ));
                }
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if let Ok(re) = regex::Regex::new(p) {
                    if !re.is_match(s) {
                        out.push(Cause::invalid(
                            shown,
                            v,
                            &format!("{shown} in body should match '{p}'"),
                        ));
                    }
                }
            }
            if let Some(f) = schema.get("format").and_then(Value::as_str) {
                if formats::check(f, s) == Some(false) {
                    out.push(Cause::invalid(
                        shown,
                        v,
                        &format!("{shown} in body must be of type {f}: {s:?}"),
                    ));
                }
            }
        }
        Value::Array(a) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if a.len() as u64 > max {
                    out.push(Cause::too_many(shown, a.len(), max as usize));
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (a.len() as u64) < min {
                    out.push(Cause::invalid(
                        shown,
                        v,
                        &format!("{shown} in body should have at least {min} items"),
                    ));
                }
            }
            if let Some(items) = schema.get("items") {
                for (i, x) in a.iter().enumerate() {
                    validate(x, items, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(o) => {
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !o.contains_key(r) {
                    out.push(Cause::required(&join(path, r)));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, x) in o {
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    validate(x, s, &join(path, k), out);
                }
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
                if o.len() as u64 > max {
                    out.push(Cause::too_many(shown, o.len(), max as usize));
                }
            }
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
                if (o.len() as u64) < min {
                    out.push(Cause::invalid(
                        shown,
                        &Value::from(min),
                        &format!("{shown} in body should have at least {min} properties"),
                    ));
                }
            }
        }
        _ => {}
    }
}

/// Whether `x` is a multiple of `m`, as go-openapi decides it (the quotient is an integer, within
/// float precision).
fn is_multiple(x: f64, m: f64) -> bool {
    let q = x / m;
    (q - q.round()).abs() < 1e-9
}

/// `anyOf`, `oneOf`, `allOf` and `not`: each alternative is validated against the same value and path.
/// A failed combinator adds kube-openapi's composite error, which apiextensions reports without a field
/// (`<nil>: Invalid value: "": ...`), then, as kube-openapi does, the errors of the alternative that came
/// closest (here: the one with the fewest errors, the first on a tie; upstream counts passed checks)
/// for `anyOf` and for a `oneOf` nothing matched, and every alternative's errors for `allOf`.
fn combinators(v: &Value, schema: &Value, path: &str, out: &mut Vec<Cause>) {
    let alternatives = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
    };
    let results = |alts: &Vec<Value>| -> Vec<Vec<Cause>> {
        alts.iter()
            .map(|alt| {
                let mut r = Vec::new();
                validate(v, alt, path, &mut r);
                r
            })
            .collect()
    };
    let closest = |rs: Vec<Vec<Cause>>| rs.into_iter().min_by_key(Vec::len).unwrap_or_default();
    if let Some(alts) = alternatives("anyOf") {
        let rs = results(alts);
        if !rs.iter().any(Vec::is_empty) {
            out.push(composite(format!(
                "{path:?} must validate at least one schema (anyOf)"
            )));
            out.extend(closest(rs));
        }
    }
    if let Some(alts) = alternatives("oneOf") {
        let rs = results(alts);
        match rs.iter().filter(|r| r.is_empty()).count() {
            1 => {}
            0 => {
                out.push(composite(format!(
                    "{path:?} must validate one and only one schema (oneOf). Found none valid"
                )));
                out.extend(closest(rs));
            }
            n => out.push(composite(format!(
                "{path:?} must validate one and only one schema (oneOf). Found {n} valid alternatives"
            ))),
        }
    }
    if let Some(alts) = alternatives("allOf") {
        let rs = results(alts);
        let valid = rs.iter().filter(|r| r.is_empty()).count();
        let all = rs.len();
        out.extend(rs.into_iter().flatten());
        if valid != all {
            let none = if valid == 0 { ". None validated" } else { "" };
            out.push(composite(format!(
                "{path:?} must validate all the schemas (allOf){none}"
            )));
        }
    }
    if let Some(not) = schema.get("not").filter(|n| n.is_object()) {
        let mut r = Vec::new();
        validate(v, not, path, &mut r);
        if r.is_empty() {
            out.push(composite(format!(
                "{path:?} must not validate the schema (not)"
            )));
        }
    }
}

/// A kube-openapi composite error as apiextensions turns it into a field error: no field path.
fn composite(message: String) -> Cause {
    Cause::invalid("<nil>", &Value::String(String::new()), &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crontab_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["cronSpec"],
                    "properties": {
                        "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                        "image": {"type": "string", "maxLength": 10},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true},
                    }
                },
                "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_metadata_and_preserved() {
        let mut o = json!({
            "apiVersion": "x/v1", "kind": "C", "metadata": {"name": "a", "whatever": 1},
            "spec": {"cronSpec": "* * * * */5", "foo": 1, "labels": {"a": "b"}, "free": {"x": {"y": 1}}},
            "extra": true
        });
        prune_root(&mut o, &crontab_schema());
        assert_eq!(
            o,
            json!({
                "apiVersion": "x/v1", "kind": "C", "metadata": {"name": "a", "whatever": 1},
                "spec": {"cronSpec": "* * * * */5", "labels": {"a": "b"}, "free": {"x": {"y": 1}}}
            })
        );
    }

    #[test]
    fn applies_defaults() {
        let mut o = json!({"spec": {"cronSpec": "x"}});
        default(&mut o, &crontab_schema());
        assert_eq!(o["spec"]["replicas"], 1);
        let mut o = json!({"spec": {"replicas": 3}});
        default(&mut o, &crontab_schema());
        assert_eq!(o["spec"]["replicas"], 3);
        // No spec: nothing to default into.
        let mut o = json!({});
        default(&mut o, &crontab_schema());
        assert_eq!(o, json!({}));
    }

    fn messages(o: Value) -> Vec<String> {
        validate_root(&o, &crontab_schema())
            .iter()
            .map(Cause::display)
            .collect()
    }

    #[test]
    fn validates_with_upstream_messages() {
        assert!(messages(json!({"spec": {"cronSpec": "* * * * */5", "replicas": 2}})).is_empty());
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * */5", "replicas": "string"}})),
            vec![
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
        assert_eq!(
            messages(json!({"spec": {}})),
            vec!["spec.cronSpec: Required value"]
        );
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * */5", "mode": "z"}})),
            vec![r#"spec.mode: Unsupported value: "z": supported values: "a", "b""#]
        );
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * */5", "replicas": 0}})),
            vec!["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]
        );
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * */5", "replicas": 11}})),
            vec!["spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"]
        );
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "bad"}})),
            vec![
                r#"spec.cronSpec: Invalid value: "bad": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#
            ]
        );
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * */5", "image": "abcdefghijkl"}})),
            vec!["spec.image: Too long: may not be more than 10 bytes"]
        );
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * */5", "tags": ["a", "b", 3]}})),
            vec![
                "spec.tags: Too many: 3: must have at most 2 items",
                r#"spec.tags[2]: Invalid value: "integer": spec.tags[2] in body must be of type string: "integer""#
            ]
        );
        assert!(messages(json!({"spec": {"cronSpec": "* * * * */5", "port": "http"}})).is_empty());
        assert!(messages(json!({"spec": {"cronSpec": "* * * * */5", "port": 80}})).is_empty());
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * */5", "port": true}})).len(),
            1
        );
    }

    #[test]
    fn formats_combinators_and_counts() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "when": {"type": "string", "format": "date-time"},
                "free": {"type": "string", "format": "no-such-format"},
                "step": {"type": "number", "multipleOf": 0.5},
                "labels": {"type": "object", "minProperties": 2,
                           "additionalProperties": {"type": "string"}},
                "target": {"type": "object",
                           "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                           "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
                "port": {"type": "integer",
                         "anyOf": [{"minimum": 1, "maximum": 10}, {"minimum": 100}],
                         "not": {"enum": [5]}},
                "name": {"type": "string", "allOf": [{"minLength": 2}, {"maxLength": 4}]}
            }
        }}});
        let msgs = |spec: Value| -> Vec<String> {
            validate_root(&json!({"spec": spec}), &schema)
                .iter()
                .map(Cause::display)
                .collect()
        };
        let ok = json!({"email": "a@b.c", "when": "2024-01-02T03:04:05Z", "free": "x", "step": 1.5,
                        "labels": {"x": "1", "y": "2"}, "target": {"a": "1"}, "port": 3, "name": "abc"});
        assert_eq!(msgs(ok), Vec::<String>::new());
        assert_eq!(
            msgs(json!({"email": "nope", "when": "today"})),
            vec![
                r#"spec.email: Invalid value: "nope": spec.email in body must be of type email: "nope""#,
                r#"spec.when: Invalid value: "today": spec.when in body must be of type date-time: "today""#,
            ]
        );
        assert_eq!(
            msgs(json!({"step": 0.7, "labels": {"x": "1"}})),
            vec![
                "spec.step: Invalid value: 0.7: spec.step in body should be a multiple of 0.5",
                "spec.labels: Invalid value: 2: spec.labels in body should have at least 2 properties",
            ]
        );
        assert_eq!(
            msgs(json!({"target": {}})),
            vec![
                r#"<nil>: Invalid value: "": "spec.target" must validate one and only one schema (oneOf). Found none valid"#,
                "spec.target.a: Required value",
            ]
        );
        assert_eq!(
            msgs(json!({"target": {"a": "1", "b": "2"}})),
            vec![
                r#"<nil>: Invalid value: "": "spec.target" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
            ]
        );
        assert_eq!(
            msgs(json!({"port": 50})),
            vec![
                r#"<nil>: Invalid value: "": "spec.port" must validate at least one schema (anyOf)"#,
                "spec.port: Invalid value: 50: spec.port in body should be less than or equal to 10",
            ]
        );
        assert_eq!(
            msgs(json!({"port": 5})),
            vec![r#"<nil>: Invalid value: "": "spec.port" must not validate the schema (not)"#]
        );
        assert_eq!(
            msgs(json!({"name": "abcdef"})),
            vec![
                "spec.name: Too long: may not be more than 4 bytes",
                r#"<nil>: Invalid value: "": "spec.name" must validate all the schemas (allOf)"#,
            ]
        );
    }
}
