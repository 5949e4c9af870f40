//! The create-only "review" resources: nothing is stored, the answer is computed from the request.
//!
//! `kubectl auth whoami` asks SelfSubjectReview; `kubectl auth can-i` asks SelfSubjectAccessReview (and
//! SelfSubjectRulesReview for `--list`); other components ask SubjectAccessReview /
//! LocalSubjectAccessReview about someone else and TokenReview about a bearer token. Access reviews are
//! answered by the same authorizer that guards requests ([`crate::apiserver::authz`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::apiserver::authn::bearer::TokenAuth;
use crate::apiserver::authz::{Attributes, User};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::handlers::App;
use crate::apiserver::status::{ApiError, ApiResult, Cause};

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn user_info(user: &User) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if let Some(uid) = &user.uid {
        info["uid"] = json!(uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

/// The attributes an access review asks about, or upstream's validation error.
fn review_attributes(info: &ResourceInfo, obj: &Value) -> ApiResult<Attributes> {
    let resource = obj.pointer("/spec/resourceAttributes");
    let non_resource = obj.pointer("/spec/nonResourceAttributes");
    match (resource, non_resource) {
        (Some(r), None) => Ok(Attributes {
            verb: text(r, "/verb"),
            resource_request: true,
            api_group: text(r, "/group"),
            api_version: text(r, "/version"),
            namespace: text(r, "/namespace"),
            resource: text(r, "/resource"),
            subresource: text(r, "/subresource"),
            name: text(r, "/name"),
            path: String::new(),
            // v1.31+: a review may ask about a list or watch limited by a field selector.
            field_selector: text(r, "/fieldSelector/rawSelector"),
        }),
        (None, Some(n)) => Ok(Attributes {
            verb: text(n, "/verb"),
            path: text(n, "/path"),
            ..Default::default()
        }),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            info,
            "",
            vec![Cause::invalid(
                "spec.nonResourceAttributes",
                &Value::Null,
                "cannot be specified in combination with resourceAttributes",
            )],
        )),
        (None, None) => Err(ApiError::invalid(
            info,
            "",
            vec![Cause::invalid(
                "spec.resourceAttributes",
                &Value::Null,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}

/// The user a SubjectAccessReview names in its spec.
fn spec_user(info: &ResourceInfo, obj: &Value) -> ApiResult<User> {
    let groups: Vec<String> = obj
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let name = text(obj, "/spec/user");
    if name.is_empty() && groups.is_empty() {
        return Err(ApiError::invalid(
            info,
            "",
            vec![Cause::invalid(
                "spec.user",
                &json!(""),
                "at least one of user or group must be specified",
            )],
        ));
    }
    let extra: BTreeMap<String, Vec<String>> = obj
        .pointer("/spec/extra")
        .cloned()
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    let uid = Some(text(obj, "/spec/uid")).filter(|u| !u.is_empty());
    Ok(User {
        name,
        groups,
        uid,
        extra,
    })
}

fn access_status(app: &App, user: &User, attrs: &Attributes) -> Value {
    let decision = app.authorizer.authorize(user, attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    status
}

/// Upstream's SelfSubjectRulesReview status: each rule split into its resource and URL parts.
fn rules_status(app: &App, user: &User, namespace: &str) -> Value {
    let rules = app.authorizer.rbac().rules_for(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in rules {
        if !rule.resources.is_empty() {
            let mut r = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
            if !rule.resource_names.is_empty() {
                r["resourceNames"] = json!(rule.resource_names);
            }
            resource_rules.push(r);
        }
        if !rule.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
    }
    let mut status = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false});
    // What the Node authorizer allows a kubelet depends on its pods: upstream lists no rules for it
    // and says the list is incomplete.
    if crate::apiserver::authz::node::node_identity(user).is_some() {
        status["incomplete"] = json!(true);
        status["evaluationError"] = json!("node authorizer does not support user rule resolution");
    }
    status
}

/// Answers a review: the request object with its `status` filled in. `namespace` is the request
/// path's (LocalSubjectAccessReview).
pub async fn review(
    app: &App,
    info: &ResourceInfo,
    user: &User,
    namespace: Option<&str>,
    mut obj: Value,
) -> ApiResult<Value> {
    let status = match (info.group.as_str(), info.plural.as_str()) {
        ("authentication.k8s.io", "selfsubjectreviews") => json!({"userInfo": user_info(user)}),
        ("authentication.k8s.io", "tokenreviews") => {
            let token = text(&obj, "/spec/token");
            // Upstream: the audiences asked about, else the apiserver's own; the answer names those
            // the token matched.
            let wanted: Vec<String> = app.tokens.options.audiences_of(&obj);
            match crate::apiserver::authn::bearer::authenticate_token(app, &token, &wanted).await? {
                TokenAuth::User(u, matched) => {
                    json!({"authenticated": true, "user": user_info(&u), "audiences": matched})
                }
                TokenAuth::Invalid(why) => {
                    json!({"authenticated": false, "user": {}, "error": why})
                }
            }
        }
        ("authorization.k8s.io", "selfsubjectaccessreviews") => {
            access_status(app, user, &review_attributes(info, &obj)?)
        }
        ("authorization.k8s.io", "subjectaccessreviews") => {
            let attrs = review_attributes(info, &obj)?;
            access_status(app, &spec_user(info, &obj)?, &attrs)
        }
        ("authorization.k8s.io", "localsubjectaccessreviews") => {
            let attrs = review_attributes(info, &obj)?;
            let ns = namespace.unwrap_or("");
            if attrs.resource_request && attrs.namespace != ns {
                return Err(ApiError::invalid(
                    info,
                    "",
                    vec![Cause::invalid(
                        "spec.resourceAttributes.namespace",
                        &json!(attrs.namespace),
                        "must match metadata.namespace",
                    )],
                ));
            }
            access_status(app, &spec_user(info, &obj)?, &attrs)
        }
        ("authorization.k8s.io", "selfsubjectrulesreviews") => {
            rules_status(app, user, &text(&obj, "/spec/namespace"))
        }
        _ => return Err(ApiError::method_not_supported(info, "create")),
    };
    obj["status"] = status;
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    Ok(obj)
}
