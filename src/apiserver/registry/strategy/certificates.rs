//! CertificateSigningRequests (upstream's `pkg/registry/certificates/certificates/strategy.go`): a
//! create never carries a status (no pre-approved requests); the `approval` subresource changes only
//! the conditions, the `status` subresource the certificate and the other conditions. Who asked is
//! written into the spec by admission (`admission::certificates`), since it needs the request's user.

use serde_json::{json, Value};

use super::{keep_field, Printer, Strategy};
use crate::apiserver::registry::store::now_rfc3339;
use crate::apiserver::status::Cause;

pub struct CertificateSigningRequests;

/// Condition types only the approval subresource sets.
const APPROVAL: [&str; 2] = ["Approved", "Denied"];

fn conditions(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn kind_of(c: &Value) -> &str {
    c.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Upstream's `populateConditionTimestamps`: a condition without times gets now, and keeps its
/// transition time while its status stays.
fn stamp(conds: &mut [Value], old: &[Value]) {
    let now = now_rfc3339();
    for c in conds.iter_mut() {
        let Some(m) = c.as_object_mut() else { continue };
        if m.get("lastUpdateTime").is_none_or(Value::is_null) {
            m.insert("lastUpdateTime".into(), json!(now));
        }
        if m.get("lastTransitionTime").is_none_or(Value::is_null) {
            let same = old.iter().find(|o| {
                kind_of(o) == m.get("type").and_then(Value::as_str).unwrap_or("")
                    && o.get("status") == m.get("status")
            });
            let t = same
                .and_then(|o| o.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| m["lastUpdateTime"].clone());
            m.insert("lastTransitionTime".into(), t);
        }
    }
}

impl Strategy for CertificateSigningRequests {
    fn printer(&self) -> Printer {
        Printer::CertificateSigningRequest
    }

    fn subresource_update(&self, subresource: &str, obj: &Value, old: &Value) -> Option<Value> {
        let old_conds = conditions(old);
        let mut out = old.clone();
        match subresource {
            "approval" => {
                let mut conds = conditions(obj);
                stamp(&mut conds, &old_conds);
                out["status"]["conditions"] = json!(conds);
            }
            "status" => {
                keep_field(&mut out, obj, "status");
                // Approval conditions are the approval subresource's: kept as they were.
                let mut conds: Vec<Value> = conditions(obj)
                    .into_iter()
                    .filter(|c| !APPROVAL.contains(&kind_of(c)))
                    .collect();
                stamp(&mut conds, &old_conds);
                let kept = old_conds
                    .into_iter()
                    .filter(|c| APPROVAL.contains(&kind_of(c)));
                let all: Vec<Value> = kept.chain(conds).collect();
                if !all.is_empty() || out.get("status").is_some() {
                    out["status"]["conditions"] = json!(all);
                }
            }
            _ => return None,
        }
        if out
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            if let Some(s) = out.get_mut("status").and_then(Value::as_object_mut) {
                s.remove("conditions");
            }
        }
        Some(out)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        let conds = conditions(obj);
        let has = |t: &str| {
            conds
                .iter()
                .any(|c| kind_of(c) == t && c.get("status").and_then(Value::as_str) == Some("True"))
        };
        if has("Approved") && has("Denied") {
            causes.push(Cause::invalid(
                "status.conditions",
                &json!("Approved"),
                "Approved and Denied conditions are mutually exclusive",
            ));
        }
        for (i, c) in conds.iter().enumerate() {
            let t = kind_of(c);
            if conds.iter().filter(|o| kind_of(o) == t).count() > 1 && APPROVAL.contains(&t) {
                causes.push(Cause::duplicate(
                    &format!("status.conditions[{i}].type"),
                    &json!(t),
                ));
            }
        }
        if obj
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
            && !has("Approved")
        {
            causes.push(Cause::forbidden(
                "status.certificate",
                "certificate may only be set if the request is approved",
            ));
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        let (nc, oc) = (conditions(new), conditions(old));
        for t in ["Approved", "Denied", "Failed"] {
            let had = oc.iter().any(|c| kind_of(c) == t);
            if had && !nc.iter().any(|c| kind_of(c) == t) {
                causes.push(Cause::forbidden(
                    "status.conditions",
                    &format!("updates may not remove a condition of type {t:?}"),
                ));
            }
        }
        let (ncert, ocert) = (
            new.pointer("/status/certificate")
                .and_then(Value::as_str)
                .unwrap_or(""),
            old.pointer("/status/certificate")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        if !ocert.is_empty() && ncert != ocert {
            causes.push(Cause::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        }
    }
}
