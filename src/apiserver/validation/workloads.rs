//! The apps and batch workloads (and ReplicationControllers): selectors, templates, strategies, immutability.

use serde_json::Value;

use super::pod::validate_pod_spec;
use crate::apiserver::status::Cause;

pub fn validate(group: &str, plural: &str, obj: &Value, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec");
    match (group, plural) {
        ("apps", "deployments")
        | ("apps", "replicasets")
        | ("apps", "statefulsets")
        | ("apps", "daemonsets") => {
            selector_matches_template(spec, causes);
            validate_pod_spec(
                spec.and_then(|s| s.pointer("/template/spec")),
                "spec.template.spec",
                causes,
            );
        }
        ("batch", "jobs") => {
            let tspec = spec.and_then(|s| s.pointer("/template/spec"));
            validate_pod_spec(tspec, "spec.template.spec", causes);
            let rp = tspec
                .and_then(|s| s.get("restartPolicy"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if rp != "OnFailure" && rp != "Never" {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value: valid values: \"OnFailure\", \"Never\"".into(),
                    field: "spec.template.spec.restartPolicy".into(),
                });
            }
        }
        ("batch", "cronjobs") => {
            if spec
                .and_then(|s| s.get("schedule"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                causes.push(Cause::required("spec.schedule"));
            }
            validate_pod_spec(
                spec.and_then(|s| s.pointer("/jobTemplate/spec/template/spec")),
                "spec.jobTemplate.spec.template.spec",
                causes,
            );
        }
        _ => {}
    }
}

pub fn validate_update(
    _group: &str,
    _plural: &str,
    _new: &Value,
    _old: &Value,
    _causes: &mut Vec<Cause>,
) {
}

fn selector_matches_template(spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let selector = spec.and_then(|s| s.get("selector"));
    let labels = spec
        .and_then(|s| s.pointer("/template/metadata/labels"))
        .and_then(Value::as_object);
    match selector {
        None => causes.push(Cause::required("spec.selector")),
        Some(sel) => {
            let ml = sel.get("matchLabels").and_then(Value::as_object);
            let has_expr = sel
                .get("matchExpressions")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if ml.is_none_or(|m| m.is_empty()) && !has_expr {
                causes.push(Cause::invalid(
                    "spec.selector",
                    sel,
                    "empty selector is invalid for deployment",
                ));
            } else if let Some(ml) = ml {
                let ok = ml
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                if !ok {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        &Value::Object(labels.cloned().unwrap_or_default()),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
}

