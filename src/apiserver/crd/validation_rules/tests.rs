use super::checks::*;
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
        vec![r#"spec: Invalid value: "object": failed rule: self.minReplicas <= self.replicas"#]
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
        crd_messages(json!({"type": "object", "x-kubernetes-validations": [{"rule": "foo == 1"}]})),
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
