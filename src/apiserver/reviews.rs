//! The create-only "review" resources: nothing is stored, the answer is computed from the request.
//!
//! `kubectl auth whoami` (SelfSubjectReview) and `kubectl auth can-i` (SelfSubjectAccessReview,
//! SelfSubjectRulesReview) ask these. Until RBAC is enforced every authenticated user may do
//! everything, so access reviews allow, and say why.

use serde_json::{json, Value};

use super::catalog::ResourceInfo;
use super::handlers::User;
use super::status::{ApiError, ApiResult};

const ALLOW_REASON: &str = "rkube does not enforce RBAC yet: every authenticated user is allowed";

/// Answers a review: the request object with its `status` filled in.
pub fn review(info: &ResourceInfo, user: &User, mut obj: Value) -> ApiResult<Value> {
    let status = match (info.group.as_str(), info.plural.as_str()) {
        ("authentication.k8s.io", "selfsubjectreviews") => {
            json!({"userInfo": {"username": user.name, "groups": user.groups}})
        }
        ("authentication.k8s.io", "tokenreviews") => json!({"authenticated": false, "user": {}}),
        ("authorization.k8s.io", "selfsubjectaccessreviews")
        | ("authorization.k8s.io", "subjectaccessreviews")
        | ("authorization.k8s.io", "localsubjectaccessreviews") => {
            if obj.pointer("/spec/resourceAttributes").is_none()
                && obj.pointer("/spec/nonResourceAttributes").is_none()
            {
                return Err(ApiError::invalid(
                    info,
                    "",
                    vec![super::status::Cause::invalid(
                    "spec.resourceAttributes",
                    &Value::Null,
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )],
                ));
            }
            json!({"allowed": true, "reason": ALLOW_REASON})
        }
        ("authorization.k8s.io", "selfsubjectrulesreviews") => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => return Err(ApiError::method_not_supported(info, "create")),
    };
    obj["status"] = status;
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    Ok(obj)
}
