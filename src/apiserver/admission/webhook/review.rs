//! The AdmissionReview a webhook is sent and the answer read back (upstream's
//! `request/admissionreview.go`): `admission.k8s.io/v1` (or `v1beta1` for a webhook that lists only
//! that in `admissionReviewVersions`), and upstream's checks of the response with its messages.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::apiserver::authz::User;

/// Which AdmissionReview version a webhook is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewVersion {
    V1,
    V1beta1,
}

impl ReviewVersion {
    /// The first of the webhook's `admissionReviewVersions` this server speaks (upstream tries them
    /// in the webhook's order).
    pub fn choose(webhook: &Value) -> Result<ReviewVersion, String> {
        let versions = webhook
            .get("admissionReviewVersions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        for v in versions {
            match v {
                "v1" => return Ok(ReviewVersion::V1),
                "v1beta1" => return Ok(ReviewVersion::V1beta1),
                _ => {}
            }
        }
        Err("webhook does not accept known AdmissionReview versions (v1, v1beta1)".into())
    }

    fn api_version(self) -> &'static str {
        match self {
            ReviewVersion::V1 => "admission.k8s.io/v1",
            ReviewVersion::V1beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// A group/version and kind or resource, as the review names them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupVersion {
    pub group: String,
    pub version: String,
    /// The kind (`Pod`) or resource (`pods`).
    pub name: String,
}

/// What one webhook call is about (upstream's AdmissionRequest fields).
pub struct ReviewRequest<'a> {
    pub uid: String,
    pub kind: GroupVersion,
    pub resource: GroupVersion,
    pub subresource: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    /// `CREATE`, `UPDATE`, `DELETE`.
    pub operation: &'a str,
    pub user: Option<&'a User>,
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    pub dry_run: bool,
    /// CreateOptions / UpdateOptions / DeleteOptions.
    pub options: Value,
}

/// The review sent to the webhook. The request's kind/resource are those of the request itself
/// (rkube converts nothing for a webhook, so they equal `kind`/`resource`).
pub fn encode(version: ReviewVersion, r: &ReviewRequest<'_>) -> Value {
    let kind = json!({"group": r.kind.group, "version": r.kind.version, "kind": r.kind.name});
    let resource = json!({"group": r.resource.group, "version": r.resource.version, "resource": r.resource.name});
    let mut req = Map::new();
    req.insert("uid".into(), json!(r.uid));
    req.insert("kind".into(), kind.clone());
    req.insert("resource".into(), resource.clone());
    if !r.subresource.is_empty() {
        req.insert("subResource".into(), json!(r.subresource));
    }
    req.insert("requestKind".into(), kind);
    req.insert("requestResource".into(), resource);
    if !r.subresource.is_empty() {
        req.insert("requestSubResource".into(), json!(r.subresource));
    }
    if !r.name.is_empty() {
        req.insert("name".into(), json!(r.name));
    }
    if !r.namespace.is_empty() {
        req.insert("namespace".into(), json!(r.namespace));
    }
    req.insert("operation".into(), json!(r.operation));
    req.insert("userInfo".into(), user_info(r.user));
    req.insert("object".into(), r.object.cloned().unwrap_or(Value::Null));
    req.insert(
        "oldObject".into(),
        r.old_object.cloned().unwrap_or(Value::Null),
    );
    req.insert("dryRun".into(), json!(r.dry_run));
    req.insert("options".into(), r.options.clone());
    json!({"kind": "AdmissionReview", "apiVersion": version.api_version(), "request": req})
}

/// authentication/v1 UserInfo of the requester: name, uid, groups and extra, never credentials.
fn user_info(user: Option<&User>) -> Value {
    let Some(u) = user else {
        return json!({});
    };
    let mut m = Map::new();
    m.insert("username".into(), json!(u.name));
    if let Some(uid) = u.uid.as_deref().filter(|s| !s.is_empty()) {
        m.insert("uid".into(), json!(uid));
    }
    if !u.groups.is_empty() {
        m.insert("groups".into(), json!(u.groups));
    }
    if !u.extra.is_empty() {
        m.insert("extra".into(), json!(u.extra));
    }
    Value::Object(m)
}

/// The options object of the request (`dryRun: [All]` on a dry run).
pub fn options(operation: &str, dry_run: bool) -> Value {
    let kind = match operation {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        _ => "DeleteOptions",
    };
    let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if dry_run {
        o["dryRun"] = json!(["All"]);
    }
    o
}

/// What a webhook answered (upstream's `request.AdmissionResponse`).
#[derive(Debug, Default, PartialEq)]
pub struct ReviewResponse {
    pub allowed: bool,
    /// The metav1.Status explaining a denial.
    pub status: Option<Value>,
    /// The JSON patch (decoded from base64), mutating webhooks only.
    pub patch: Option<Vec<u8>>,
    pub patch_type: Option<String>,
    pub warnings: Vec<String>,
    pub audit_annotations: Map<String, Value>,
}

/// Upstream's `VerifyAdmissionResponse`: the answer's kind, uid and patch fields checked, with its
/// messages (the caller prefixes `received invalid webhook response: `).
pub fn verify(
    version: ReviewVersion,
    uid: &str,
    mutating: bool,
    review: &Value,
) -> Result<ReviewResponse, String> {
    let Some(resp) = review.get("response").filter(|r| r.is_object()) else {
        return Err("webhook response was absent".into());
    };
    let text = |f: &str| resp.get(f).and_then(Value::as_str);
    let raw_patch = match resp.get("patch") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("illegal base64 data in response.patch: {e}"))?,
        ),
        Some(_) => return Err("response.patch is not a base64 string".into()),
    }
    .filter(|p| !p.is_empty());
    let raw_type = text("patchType").map(str::to_string);
    let (patch, patch_type) = match version {
        ReviewVersion::V1 => {
            let got_uid = text("uid").unwrap_or("");
            if got_uid != uid {
                return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
            }
            let api_version = review
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
            if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
                let (g, v) = api_version.rsplit_once('/').unwrap_or(("", api_version));
                return Err(format!(
                    "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {g}/{v}, Kind={kind}"
                ));
            }
            if mutating {
                match (&raw_patch, &raw_type) {
                    (Some(_), None) => {
                        return Err(
                            "webhook returned response.patch but not response.patchType".into()
                        )
                    }
                    (None, Some(_)) => {
                        return Err(
                            "webhook returned response.patchType but not response.patch".into()
                        )
                    }
                    (_, Some(t)) if t.is_empty() => {
                        return Err(format!(
                            "webhook returned invalid response.patchType of {t:?}"
                        ))
                    }
                    _ => (raw_patch, raw_type),
                }
            } else {
                if raw_patch.is_some() {
                    return Err("validating webhook may not return response.patch".into());
                }
                if raw_type.is_some() {
                    return Err("validating webhook may not return response.patchType".into());
                }
                (None, None)
            }
        }
        // v1beta1 answers were never checked for uid or kind; a patch is taken as a JSON patch.
        ReviewVersion::V1beta1 if mutating => {
            let t = raw_patch.as_ref().map(|_| "JSONPatch".to_string());
            (raw_patch, t)
        }
        ReviewVersion::V1beta1 => (None, None),
    };
    Ok(ReviewResponse {
        allowed: resp
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        status: resp.get("status").filter(|s| s.is_object()).cloned(),
        patch,
        patch_type,
        warnings: resp
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        audit_annotations: resp
            .get("auditAnnotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(resp: Value) -> Value {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
    }

    #[test]
    fn chooses_versions() {
        let w = json!({"admissionReviewVersions": ["v2", "v1beta1", "v1"]});
        assert_eq!(ReviewVersion::choose(&w), Ok(ReviewVersion::V1beta1));
        let w = json!({"admissionReviewVersions": ["v2"]});
        assert_eq!(
            ReviewVersion::choose(&w).unwrap_err(),
            "webhook does not accept known AdmissionReview versions (v1, v1beta1)"
        );
    }

    #[test]
    fn encodes_the_request() {
        let user = User {
            name: "alice".into(),
            groups: vec!["devs".into()],
            uid: Some("u-1".into()),
            extra: Default::default(),
        };
        let obj = json!({"metadata": {"name": "x"}});
        let r = ReviewRequest {
            uid: "abc".into(),
            kind: GroupVersion {
                group: "".into(),
                version: "v1".into(),
                name: "Pod".into(),
            },
            resource: GroupVersion {
                group: "".into(),
                version: "v1".into(),
                name: "pods".into(),
            },
            subresource: "status",
            name: "x",
            namespace: "ns",
            operation: "UPDATE",
            user: Some(&user),
            object: Some(&obj),
            old_object: Some(&obj),
            dry_run: true,
            options: options("UPDATE", true),
        };
        let v = encode(ReviewVersion::V1, &r);
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        let req = &v["request"];
        assert_eq!(req["uid"], "abc");
        assert_eq!(
            req["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(req["resource"]["resource"], "pods");
        assert_eq!(req["subResource"], "status");
        assert_eq!(req["requestSubResource"], "status");
        assert_eq!(req["operation"], "UPDATE");
        assert_eq!(
            req["userInfo"],
            json!({"username": "alice", "uid": "u-1", "groups": ["devs"]})
        );
        assert_eq!(req["dryRun"], true);
        assert_eq!(req["options"]["kind"], "UpdateOptions");
        assert_eq!(req["options"]["dryRun"], json!(["All"]));
    }

    #[test]
    fn verifies_v1_answers() {
        let ok = answer(json!({"uid": "u", "allowed": true, "warnings": ["careful"]}));
        let r = verify(ReviewVersion::V1, "u", false, &ok).unwrap();
        assert!(r.allowed);
        assert_eq!(r.warnings, vec!["careful".to_string()]);
        assert_eq!(
            verify(ReviewVersion::V1, "other", false, &ok).unwrap_err(),
            "expected response.uid=\"other\", got \"u\""
        );
        let no_resp = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
        assert_eq!(
            verify(ReviewVersion::V1, "u", false, &no_resp).unwrap_err(),
            "webhook response was absent"
        );
        let wrong_kind = json!({"apiVersion": "v1", "kind": "Status", "response": {"uid": "u"}});
        assert_eq!(
            verify(ReviewVersion::V1, "u", false, &wrong_kind).unwrap_err(),
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got /v1, Kind=Status"
        );
    }

    #[test]
    fn verifies_patches() {
        let p = base64::engine::general_purpose::STANDARD.encode(b"[]");
        let with_type =
            answer(json!({"uid": "u", "allowed": true, "patch": p, "patchType": "JSONPatch"}));
        let r = verify(ReviewVersion::V1, "u", true, &with_type).unwrap();
        assert_eq!(r.patch.as_deref(), Some(&b"[]"[..]));
        assert_eq!(r.patch_type.as_deref(), Some("JSONPatch"));
        assert_eq!(
            verify(ReviewVersion::V1, "u", false, &with_type).unwrap_err(),
            "validating webhook may not return response.patch"
        );
        let no_type = answer(json!({"uid": "u", "allowed": true, "patch": p}));
        assert_eq!(
            verify(ReviewVersion::V1, "u", true, &no_type).unwrap_err(),
            "webhook returned response.patch but not response.patchType"
        );
        let only_type = answer(json!({"uid": "u", "allowed": true, "patchType": "JSONPatch"}));
        assert_eq!(
            verify(ReviewVersion::V1, "u", true, &only_type).unwrap_err(),
            "webhook returned response.patchType but not response.patch"
        );
        // v1beta1: no uid check, the patch type pinned.
        let beta = json!({"response": {"allowed": true, "patch": p}});
        let r = verify(ReviewVersion::V1beta1, "u", true, &beta).unwrap();
        assert_eq!(r.patch_type.as_deref(), Some("JSONPatch"));
    }
}
