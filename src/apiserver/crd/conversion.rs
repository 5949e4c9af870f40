//! Converting custom resources between the versions of their CRD (upstream's
//! `apiextensions-apiserver/pkg/apiserver/conversion`): `spec.conversion.strategy: None` only rewrites
//! `apiVersion`; `Webhook` sends the objects to the CRD's conversion webhook in one
//! `ConversionReview` and takes its `convertedObjects` after upstream's checks (same count, the
//! review's uid, `result.status: Success`, the desired apiVersion and kind, the same
//! name/namespace/uid, metadata restored but for labels and annotations).
//!
//! The registry calls [`convert`] where objects cross versions: objects read from storage, the cache
//! or a watch that the request's version does not match (reads), and objects written through a
//! version that is not the storage version (writes). Objects already in the desired version are
//! never sent. The HTTPS call is the admission webhooks' [`Clients::call`].

use serde_json::{json, Map, Value};

use crate::apiserver::admission::webhook::client::{CallFailure, Clients};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult, Cause};

/// Upstream's conversion webhooks have no configurable timeout: its client's default, 30 s (the
/// `?timeout=30s` of their URLs).
pub const WEBHOOK_TIMEOUT_SECS: u64 = 30;

/// The ConversionReview versions this server can send, in upstream's preference-free order (the
/// CRD's `conversionReviewVersions` order decides).
const REVIEW_VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// How a CRD converts its objects between versions.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Only `apiVersion` changes.
    None,
    /// The CRD's webhook converts: its `clientConfig` and the first `conversionReviewVersions`
    /// entry this server speaks (`v1` or `v1beta1`; `None` if none).
    Webhook {
        client_config: Value,
        review_version: Option<String>,
    },
}

impl Strategy {
    /// The strategy of a (validated) CRD.
    pub fn of(crd: &Value) -> Strategy {
        if crd
            .pointer("/spec/conversion/strategy")
            .and_then(Value::as_str)
            != Some("Webhook")
        {
            return Strategy::None;
        }
        let webhook = crd.pointer("/spec/conversion/webhook");
        let review_version = webhook
            .and_then(|w| w.get("conversionReviewVersions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|v| REVIEW_VERSIONS.contains(v))
            .map(String::from);
        Strategy::Webhook {
            client_config: webhook
                .and_then(|w| w.get("clientConfig"))
                .cloned()
                .unwrap_or(Value::Null),
            review_version,
        }
    }
}

/// Upstream's `validateCustomResourceConversion` (after its v1 → internal conversion, which is why
/// the paths read `webhookClientConfig`): the strategy, a webhook's client config and review versions
/// for `Webhook`, neither for `None`.
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(conversion) = crd.pointer("/spec/conversion").filter(|c| c.is_object()) else {
        return causes;
    };
    let strategy = conversion
        .get("strategy")
        .and_then(Value::as_str)
        .unwrap_or("");
    let webhook = conversion.get("webhook").filter(|w| !w.is_null());
    let client_config = webhook
        .and_then(|w| w.get("clientConfig"))
        .filter(|c| !c.is_null());
    let review_versions: Vec<Value> = webhook
        .and_then(|w| w.get("conversionReviewVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match strategy {
        "None" | "Webhook" => {}
        "" => causes.push(Cause::required("spec.conversion.strategy")),
        other => causes.push(Cause::unsupported(
            "spec.conversion.strategy",
            &json!(other),
            &["None", "Webhook"],
        )),
    }
    if strategy == "Webhook" {
        match client_config {
            None => causes.push(Cause::required_detail(
                "spec.conversion.webhookClientConfig",
                "required when strategy is set to Webhook",
            )),
            Some(cc) => {
                let has = |f: &str| cc.get(f).is_some_and(|x| !x.is_null());
                if has("url") == has("service") {
                    causes.push(Cause::required_detail(
                        "spec.conversion.webhookClientConfig",
                        "exactly one of url or service is required",
                    ));
                }
            }
        }
        causes.extend(validate_review_versions(&review_versions));
    } else {
        if client_config.is_some() {
            causes.push(Cause::forbidden(
                "spec.conversion.webhookClientConfig",
                "should not be set when strategy is not set to Webhook",
            ));
        }
        if !review_versions.is_empty() {
            causes.push(Cause::forbidden(
                "spec.conversion.conversionReviewVersions",
                "should not be set when strategy is not set to Webhook",
            ));
        }
    }
    causes
}

/// Upstream's `validateConversionReviewVersions` (a recognized version required, as on create).
fn validate_review_versions(versions: &[Value]) -> Vec<Cause> {
    const FIELD: &str = "spec.conversion.conversionReviewVersions";
    if versions.is_empty() {
        return vec![Cause::required(FIELD)];
    }
    let mut causes = Vec::new();
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let s = v.as_str().unwrap_or("");
        if seen.contains(&s) {
            causes.push(Cause::invalid(
                &format!("{FIELD}[{i}]"),
                v,
                "duplicate version",
            ));
            continue;
        }
        seen.push(s);
    }
    if !seen.iter().any(|s| REVIEW_VERSIONS.contains(s)) {
        // Go prints the value as a []string literal.
        let quoted: Vec<String> = versions
            .iter()
            .map(|v| format!("{:?}", v.as_str().unwrap_or("")))
            .collect();
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!(
                "Invalid value: []string{{{}}}: must include at least one of v1, v1beta1",
                quoted.join(", ")
            ),
            field: FIELD.into(),
        });
    }
    causes
}

/// Go's `schema.GroupVersionKind.String()` of an object: `stable.example.com/v1, Kind=CronTab`.
pub fn gvk(obj: &Value) -> String {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    // Go prints the group and version apart: a core-style "v1" reads "/v1".
    let gv = if api_version.contains('/') {
        api_version.to_string()
    } else {
        format!("/{api_version}")
    };
    format!("{gv}, Kind={kind}")
}

/// The ConversionReview sent (upstream's `createConversionReviewObjects`, with the empty response
/// its encoding carries).
pub fn review(review_version: &str, uid: &str, desired: &str, objects: &[Value]) -> Value {
    json!({
        "kind": "ConversionReview",
        "apiVersion": format!("apiextensions.k8s.io/{review_version}"),
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
        "response": {"uid": "", "convertedObjects": null, "result": {"metadata": {}}},
    })
}

/// The type Go's `%T` prints for a JSON value as unstructured decoding holds it.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Upstream's `getConvertedObjectsFromResponse`: the answer's converted objects, or why not (the
/// text after `conversion webhook for <gvk> failed: `).
fn converted_objects<'a>(
    review_version: &str,
    uid: &str,
    answer: &'a Value,
) -> Result<&'a [Value], String> {
    let strict = review_version == "v1";
    if strict {
        let got = format!(
            "{}, Kind={}",
            answer
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or(""),
            answer.get("kind").and_then(Value::as_str).unwrap_or("")
        );
        let want = "apiextensions.k8s.io/v1, Kind=ConversionReview";
        if got != want {
            return Err(format!("expected webhook response of {want}, got {got}"));
        }
    }
    let Some(response) = answer.get("response").filter(|r| r.is_object()) else {
        return Err("no response provided".into());
    };
    // v1beta1 reviews were never checked for their uid (upstream keeps that for compatibility).
    let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if strict && got_uid != uid {
        return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
    }
    let status = response
        .pointer("/result/status")
        .and_then(Value::as_str)
        .unwrap_or("");
    if status != "Success" {
        let message = response
            .pointer("/result/message")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !message.is_empty() {
            return Err(message.to_string());
        }
        return Err(format!(
            "response.result.status was '{status}', not 'Success'"
        ));
    }
    Ok(response
        .get("convertedObjects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]))
}

/// Upstream's `validateConvertedObject`: kind, name, namespace and uid unchanged.
fn same_identity(original: &Value, converted: &Value) -> Result<(), String> {
    for (what, ptr) in [
        ("kind", "/kind"),
        ("name", "/metadata/name"),
        ("namespace", "/metadata/namespace"),
        ("UID", "/metadata/uid"),
    ] {
        let a = original.pointer(ptr).and_then(Value::as_str).unwrap_or("");
        let b = converted.pointer(ptr).and_then(Value::as_str).unwrap_or("");
        if a != b {
            return Err(format!("must have the same {what}: {a} != {b}"));
        }
    }
    Ok(())
}

/// Upstream's `restoreObjectMeta`: the original's metadata, with the converted object's labels and
/// annotations (string maps only).
fn restore_metadata(original: &Value, converted: &mut Value) -> Result<(), String> {
    let response_meta = match converted.get("metadata") {
        None => return Err("missing metadata in converted object".into()),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(format!(
                "invalid metadata of type {} in converted object",
                go_type(other)
            ))
        }
    };
    let mut meta = match original.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for field in ["labels", "annotations"] {
        match response_meta.get(field) {
            None | Some(Value::Null) => {
                meta.shift_remove(field);
            }
            Some(Value::Object(m)) => {
                if let Some((k, v)) = m.iter().find(|(_, v)| !v.is_string()) {
                    return Err(format!(
                        "metadata.{field}[{k}] must be a string, but is {} in converted object",
                        go_type(v)
                    ));
                }
                // Only what the webhook changed is validated (upstream's `somethingChanged`).
                if meta.get(field).and_then(Value::as_object) != Some(m) {
                    let errs = meta_map_errors(field, m);
                    if !errs.is_empty() {
                        return Err(aggregate(&errs));
                    }
                }
                meta.insert(field.into(), Value::Object(m.clone()));
            }
            Some(other) => {
                return Err(format!(
                    "invalid metadata.{field} of type {} in converted object",
                    go_type(other)
                ))
            }
        }
    }
    converted["metadata"] = Value::Object(meta);
    Ok(())
}

/// Upstream's `ValidateLabels` / `ValidateAnnotations` of a converted object's changed labels or
/// annotations, as field error strings (annotations under upstream's `metadata.annotation`).
fn meta_map_errors(field: &str, m: &Map<String, Value>) -> Vec<String> {
    use crate::apiserver::registry::validation::{label_value_errors, qualified_name_errors};
    let shown = |s: &str| format!("{s:?}");
    let mut errs = Vec::new();
    for (k, v) in m {
        if field == "labels" {
            for e in qualified_name_errors(k) {
                errs.push(format!("metadata.labels: Invalid value: {}: {e}", shown(k)));
            }
            let v = v.as_str().unwrap_or("");
            for e in label_value_errors(v) {
                errs.push(format!("metadata.labels: Invalid value: {}: {e}", shown(v)));
            }
        } else {
            for e in qualified_name_errors(&k.to_lowercase()) {
                errs.push(format!(
                    "metadata.annotation: Invalid value: {}: {e}",
                    shown(k)
                ));
            }
        }
    }
    errs
}

/// Go's `ErrorList.ToAggregate().Error()`: one error as it is, several in brackets.
fn aggregate(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Checks a webhook's answer to `review(.., uid, desired, originals)` and returns the converted
/// objects in order, or upstream's whole error message. `single`: the conversion of one object
/// (upstream's messages for one object and for a list's items differ).
pub fn check_answer(
    review_version: &str,
    uid: &str,
    desired: &str,
    originals: &[Value],
    answer: &Value,
    single: bool,
) -> Result<Vec<Value>, String> {
    let Some(first) = originals.first() else {
        return Ok(Vec::new());
    };
    let source = gvk(first);
    let objects = converted_objects(review_version, uid, answer)
        .map_err(|e| format!("conversion webhook for {source} failed: {e}"))?;
    if objects.len() != originals.len() {
        return Err(format!(
            "conversion webhook for {source} returned {} objects, expected {}",
            objects.len(),
            originals.len()
        ));
    }
    let mut out = Vec::with_capacity(objects.len());
    for (i, (original, converted)) in originals.iter().zip(objects).enumerate() {
        // Upstream numbers a list's items after counting them (from 1), one object at 0.
        let (invalid, bad_meta) = if single {
            (
                format!("conversion webhook for {source} returned invalid object at index 0"),
                format!("conversion webhook for {source} returned invalid metadata"),
            )
        } else {
            (
                format!(
                    "conversion webhook for {source} returned invalid converted object at index {}",
                    i + 1
                ),
                format!(
                    "conversion webhook for {source} returned invalid metadata in object at index {}",
                    i + 1
                ),
            )
        };
        if !converted.is_object() {
            return Err(format!("{invalid}: invalid type, expected=Unstructured"));
        }
        if converted
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            return Err(format!(
                "{invalid}: Object 'Kind' is missing in '{converted}'"
            ));
        }
        let got = converted
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if got != desired {
            return Err(format!(
                "{invalid}: invalid groupVersion (expected {desired}, received {got})"
            ));
        }
        let (want_kind, got_kind) = (
            original.get("kind").and_then(Value::as_str).unwrap_or(""),
            converted.get("kind").and_then(Value::as_str).unwrap_or(""),
        );
        if want_kind != got_kind {
            return Err(format!(
                "{invalid}: invalid kind (expected {want_kind}, received {got_kind})"
            ));
        }
        same_identity(original, converted).map_err(|e| {
            if single {
                format!("conversion webhook for {source} returned invalid object: {e}")
            } else {
                format!("{invalid}: {e}")
            }
        })?;
        let mut converted = converted.clone();
        restore_metadata(original, &mut converted).map_err(|e| format!("{bad_meta}: {e}"))?;
        out.push(converted);
    }
    Ok(out)
}

/// Whether `obj` must be converted to be served as `info`'s version.
pub fn needed(info: &ResourceInfo, obj: &Value) -> bool {
    if info.custom().is_none() {
        return false;
    }
    // Compared in place: called for every item of a list.
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let served = match api_version.strip_prefix(info.group.as_str()) {
        Some(rest) if !info.group.is_empty() => rest.strip_prefix('/'),
        _ if info.group.is_empty() => Some(api_version),
        _ => None,
    };
    served != Some(info.version.as_str())
}

/// Whether a conversion failure is on the way to storage (upstream wraps it as an internal error)
/// or on the way out of it (the message alone, a 500 without a reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

fn failure(direction: Direction, message: String) -> ApiError {
    match direction {
        Direction::Read => ApiError::new(500, "", message),
        Direction::Write => ApiError::internal(message),
    }
}

/// Converts `objects` (custom resources of `info`'s CRD) to `version` of `info`'s group: those
/// already in it are left as they are; the others get a new `apiVersion` (`None`) or go to the
/// webhook in one review (`Webhook`). `single`: one object, as opposed to a list's items.
pub async fn convert(
    reg: &Registry,
    clients: &Clients,
    info: &ResourceInfo,
    mut objects: Vec<Value>,
    version: &str,
    direction: Direction,
    single: bool,
) -> ApiResult<Vec<Value>> {
    let Some(custom) = info.custom() else {
        return Ok(objects);
    };
    let desired = if info.group.is_empty() {
        version.to_string()
    } else {
        format!("{}/{version}", info.group)
    };
    let pending: Vec<usize> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| o.get("apiVersion").and_then(Value::as_str) != Some(&desired))
        .map(|(i, _)| i)
        .collect();
    if pending.is_empty() {
        return Ok(objects);
    }
    let (client_config, review_version) = match &custom.conversion {
        Strategy::None => {
            for i in pending {
                objects[i]["apiVersion"] = Value::String(desired.clone());
            }
            return Ok(objects);
        }
        Strategy::Webhook {
            client_config,
            review_version,
        } => (client_config, review_version),
    };
    let originals: Vec<Value> = pending.iter().map(|&i| objects[i].clone()).collect();
    let source = gvk(&originals[0]);
    let Some(review_version) = review_version else {
        return Err(failure(
            direction,
            "no supported conversion review versions".into(),
        ));
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let body =
        serde_json::to_vec(&review(review_version, &uid, &desired, &originals)).map_err(|e| {
            failure(
                direction,
                format!("conversion webhook for {source} failed: {e}"),
            )
        })?;
    let answer = clients
        .call(reg, client_config, WEBHOOK_TIMEOUT_SECS, body)
        .await
        .map_err(|e| {
            let e = match e {
                CallFailure::Config(e) | CallFailure::Post(e) => e,
            };
            failure(
                direction,
                format!("conversion webhook for {source} failed: {e}"),
            )
        })?;
    let converted = check_answer(review_version, &uid, &desired, &originals, &answer, single)
        .map_err(|e| failure(direction, e))?;
    for (i, c) in pending.into_iter().zip(converted) {
        objects[i] = c;
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crontab(api_version: &str, field: &str) -> Value {
        json!({
            "apiVersion": api_version, "kind": "CronTab",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u-1", "resourceVersion": "5",
                         "labels": {"app": "x"}},
            "spec": {field: "* * * * *"},
        })
    }

    fn answer(uid: &str, objects: Vec<Value>) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": uid, "result": {"status": "Success"}, "convertedObjects": objects},
        })
    }

    #[test]
    fn only_objects_of_another_version_need_converting() {
        let crd = json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                     "names": {"plural": "crontabs", "kind": "CronTab"},
                     "versions": [{"name": "v1", "served": true, "storage": true},
                                  {"name": "v2", "served": true, "storage": false}]}});
        let rows = crate::apiserver::crd::rows(&crd);
        let v2 = rows.iter().find(|r| r.version == "v2").expect("v2 row");
        assert!(!needed(v2, &crontab("stable.example.com/v2", "x")));
        assert!(needed(v2, &crontab("stable.example.com/v1", "x")));
        assert!(needed(v2, &crontab("stable.example.comx/v2", "x")));
        assert!(needed(v2, &json!({})));
        let pods = crate::apiserver::catalog::Catalog::builtin();
        let pods = pods.find("", "v1", "pods").expect("pods");
        assert!(
            !needed(pods, &json!({"apiVersion": "v2"})),
            "built-ins never"
        );
    }

    #[test]
    fn strategy_and_review() {
        let crd = json!({"spec": {"conversion": {"strategy": "Webhook", "webhook": {
            "conversionReviewVersions": ["v2", "v1beta1", "v1"],
            "clientConfig": {"url": "https://h/convert"}}}}});
        assert_eq!(
            Strategy::of(&crd),
            Strategy::Webhook {
                client_config: json!({"url": "https://h/convert"}),
                review_version: Some("v1beta1".into()),
            }
        );
        assert_eq!(Strategy::of(&json!({"spec": {}})), Strategy::None);
        let r = review(
            "v1",
            "id",
            "stable.example.com/v2",
            &[crontab("stable.example.com/v1", "cronSpec")],
        );
        assert_eq!(r["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(r["kind"], "ConversionReview");
        assert_eq!(r["request"]["uid"], "id");
        assert_eq!(r["request"]["desiredAPIVersion"], "stable.example.com/v2");
        assert_eq!(r["request"]["objects"][0]["spec"]["cronSpec"], "* * * * *");
        assert_eq!(
            gvk(&crontab("stable.example.com/v1", "x")),
            "stable.example.com/v1, Kind=CronTab"
        );
    }

    #[test]
    fn answers_are_checked_as_upstream() {
        let v2 = "stable.example.com/v2";
        let orig = vec![crontab("stable.example.com/v1", "cronSpec")];
        let prefix = "conversion webhook for stable.example.com/v1, Kind=CronTab";
        let check = |a: &Value| check_answer("v1", "id", v2, &orig, a, true);

        // A good answer: the new field, the original's metadata but for the new labels.
        let mut good = crontab(v2, "schedule");
        good["metadata"]["resourceVersion"] = json!("999");
        good["metadata"]["labels"] = json!({"app": "y"});
        let out = check(&answer("id", vec![good])).expect("converted");
        assert_eq!(out[0]["spec"]["schedule"], "* * * * *");
        assert_eq!(out[0]["metadata"]["resourceVersion"], "5");
        assert_eq!(out[0]["metadata"]["labels"], json!({"app": "y"}));

        let err = |a: Value| check(&a).expect_err("refused");
        assert_eq!(
            err(answer("other", vec![crontab(v2, "schedule")])),
            format!("{prefix} failed: expected response.uid=\"id\", got \"other\"")
        );
        assert_eq!(
            err(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                       "response": {"uid": "id", "result": {"status": "Failure", "message": "no way"}}})
            ),
            format!("{prefix} failed: no way")
        );
        assert_eq!(
            err(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                       "response": {"uid": "id", "result": {"status": "Failure"}}})
            ),
            format!("{prefix} failed: response.result.status was 'Failure', not 'Success'")
        );
        assert_eq!(
            err(json!({"apiVersion": "v1", "kind": "Status"})),
            format!("{prefix} failed: expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got v1, Kind=Status")
        );
        assert_eq!(
            err(answer("id", vec![])),
            format!("{prefix} returned 0 objects, expected 1")
        );
        assert_eq!(
            err(answer("id", vec![crontab("stable.example.com/v1", "schedule")])),
            format!("{prefix} returned invalid object at index 0: invalid groupVersion (expected {v2}, received stable.example.com/v1)")
        );
        let mut renamed = crontab(v2, "schedule");
        renamed["metadata"]["name"] = json!("b");
        assert_eq!(
            err(answer("id", vec![renamed])),
            format!("{prefix} returned invalid object: must have the same name: a != b")
        );
        let mut bad_labels = crontab(v2, "schedule");
        bad_labels["metadata"]["labels"] = json!({"n": 1});
        assert_eq!(
            err(answer("id", vec![bad_labels])),
            format!("{prefix} returned invalid metadata: metadata.labels[n] must be a string, but is int64 in converted object")
        );
        let mut bad_key = crontab(v2, "schedule");
        bad_key["metadata"]["labels"] = json!({"-bad": "x"});
        assert!(err(answer("id", vec![bad_key])).starts_with(&format!(
            "{prefix} returned invalid metadata: metadata.labels: Invalid value: \"-bad\": name part must"
        )));
        // A list's items are numbered from 1.
        let list = check_answer(
            "v1",
            "id",
            v2,
            &orig,
            &answer("id", vec![crontab("stable.example.com/v3", "x")]),
            false,
        );
        assert_eq!(
            list.expect_err("refused"),
            format!("{prefix} returned invalid converted object at index 1: invalid groupVersion (expected {v2}, received stable.example.com/v3)")
        );
        // A v1beta1 review's uid is not checked.
        let beta = json!({"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "ConversionReview",
                          "response": {"uid": "", "result": {"status": "Success"},
                                       "convertedObjects": [crontab(v2, "schedule")]}});
        assert!(check_answer("v1beta1", "id", v2, &orig, &beta, true).is_ok());
    }

    #[test]
    fn crd_conversion_validation() {
        let msgs = |conversion: Value| -> Vec<String> {
            validate(&json!({"spec": {"conversion": conversion}}))
                .iter()
                .map(Cause::display)
                .collect()
        };
        assert!(msgs(json!({"strategy": "None"})).is_empty());
        assert_eq!(
            msgs(json!({"strategy": "Webhook"})),
            vec![
                "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
                "spec.conversion.conversionReviewVersions: Required value",
            ]
        );
        assert_eq!(
            msgs(json!({"strategy": "None", "webhook": {"clientConfig": {"url": "https://x"}, "conversionReviewVersions": ["v1"]}})),
            vec![
                "spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set to Webhook",
                "spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook",
            ]
        );
        assert_eq!(
            msgs(json!({"strategy": "Webhook", "webhook": {"clientConfig": {}, "conversionReviewVersions": ["v2"]}})),
            vec![
                "spec.conversion.webhookClientConfig: Required value: exactly one of url or service is required",
                r#"spec.conversion.conversionReviewVersions: Invalid value: []string{"v2"}: must include at least one of v1, v1beta1"#,
            ]
        );
        assert_eq!(
            msgs(json!({"strategy": "Other"})),
            vec![
                r#"spec.conversion.strategy: Unsupported value: "Other": supported values: "None", "Webhook""#
            ]
        );
    }
}
