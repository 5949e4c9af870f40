//! `serviceaccounts/token` (TokenRequest): issues a bound service account token, as `kubectl create
//! token` asks.

use crate::apiserver::authn::bearer::*;
pub use crate::apiserver::authz::User;
use crate::apiserver::http::handlers::*;
use crate::apiserver::status::{ApiError, ApiResult};
use serde_json::{json, Value};

/// A TokenRequest the server refuses, in upstream's words (422 on `TokenRequest.authentication.k8s.io ""`).
pub(crate) fn invalid_token_request(field: &str, value: &Value, detail: &str) -> ApiError {
    let shown = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let message = format!("Invalid value: {shown}: {detail}");
    ApiError::new(
        422,
        "Invalid",
        format!("TokenRequest.authentication.k8s.io \"\" is invalid: {field}: {message}"),
    )
    .with_details(json!({
        "group": "authentication.k8s.io", "kind": "TokenRequest", "name": "",
        "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]
    }))
}

/// The bound object a TokenRequest names, checked as upstream: a Pod (running as this service account)
/// or a Secret that exists in the namespace, with the uid given if any.
pub(crate) async fn bound_object(
    app: &App,
    ns: &str,
    sa_name: &str,
    r: &Value,
) -> ApiResult<crate::apiserver::authn::tokens::Bound> {
    let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let plural = match (group, kind) {
        ("", "Pod") => "pods",
        ("", "Secret") => "secrets",
        _ => {
            // Go's GroupVersionKind.String(): "group/version, Kind=kind".
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    let info = app
        .catalog
        .find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("no {plural} resource")))?;
    let obj = app.registry.get(&info, Some(ns), name).await?;
    let mut bound = crate::apiserver::authn::tokens::Bound::default();
    let found = crate::apiserver::authn::tokens::BoundObject {
        name: name.to_string(),
        uid: uid_of(&obj).to_string(),
    };
    if plural == "pods" {
        let pod_sa = obj
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            // What ServiceAccount admission sets on a pod that names none (pods admitted with the
            // plugin disabled may still have it empty): the pod runs as "default".
            .unwrap_or("default");
        if pod_sa != sa_name {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
            )));
        }
        bound.pod = Some(found.clone());
    } else {
        bound.secret = Some(found.clone());
    }
    let want_uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    if !want_uid.is_empty() && want_uid != found.uid {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {kind} {name:?}: the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"),
        )
        .with_details(json!({"name": name, "kind": kind})));
    }
    Ok(bound)
}

/// The lifetime of the token ServiceAccount admission's projected volume asks for (upstream's
/// `WarnOnlyBoundTokenExpirationSeconds`), and what such a token for a pod really gets (a year).
pub const EXTENDABLE_EXPIRATION: i64 = 3607;
const EXTENDED_EXPIRATION: i64 = 365 * 24 * 3600;

/// `serviceaccounts/<name>/token`: a TokenRequest answered with a signed token, and the warnings to send.
pub(crate) async fn token_request(
    app: &App,
    ns: &str,
    name: &str,
    request: Value,
) -> ApiResult<(Value, Vec<String>)> {
    let info = app
        .catalog
        .find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("no serviceaccounts"))?;
    let sa = app.registry.get(&info, Some(ns), name).await?;
    let uid = uid_of(&sa).to_string();
    let audiences: Vec<String> = app.tokens.options.audiences_of(&request);
    // Upstream decodes into an int64 (anything else is a 400), defaults it to an hour, and validates
    // the range before anything else.
    let expiration = match request.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => crate::apiserver::authn::tokens::DEFAULT_EXPIRATION,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot unmarshal {} into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64",
                match v {
                    Value::Number(n) => format!("number {n}"),
                    Value::String(_) => "string".into(),
                    Value::Bool(_) => "bool".into(),
                    Value::Array(_) => "array".into(),
                    _ => "object".into(),
                }
            ))
        })?,
    };
    if expiration < crate::apiserver::authn::tokens::MIN_EXPIRATION {
        return Err(invalid_token_request(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > crate::apiserver::authn::tokens::MAX_EXPIRATION {
        return Err(invalid_token_request(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let bound = match request
        .pointer("/spec/boundObjectRef")
        .filter(|r| !r.is_null())
    {
        Some(r) => bound_object(app, ns, name, r).await?,
        None => crate::apiserver::authn::tokens::Bound::default(),
    };
    let mut warnings = Vec::new();
    let expiration = match app.tokens.options.max_expiration {
        Some(max) if max > 0 && expiration > max => {
            warnings.push(format!(
                "requested expiration of {expiration} seconds shortened to {max} seconds"
            ));
            max
        }
        _ => expiration,
    };
    // Upstream's `--service-account-extend-token-expiration` (on by default): the kubelet asks for
    // 3607 s for a pod's projected token (what ServiceAccount admission writes); such a token for the
    // API's own audiences is valid a year so clients that never re-read it keep working, while the answer
    // reports the lifetime asked for and the token carries when a refresh was due.
    let extended = bound.pod.is_some()
        && expiration == EXTENDABLE_EXPIRATION
        && audiences
            .iter()
            .all(|a| app.tokens.options.api_audiences.contains(a));
    let (token, _) = app
        .tokens
        .issue_extended(
            ns,
            name,
            &uid,
            &audiences,
            if extended {
                EXTENDED_EXPIRATION
            } else {
                expiration
            },
            &bound,
            extended.then_some(expiration),
        )
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let expires = chrono::DateTime::from_timestamp(
        chrono::Utc::now().timestamp().saturating_add(expiration),
        0,
    )
    .unwrap_or_default();
    let mut spec = json!({"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": request.pointer("/spec/boundObjectRef").cloned()});
    if let Some(r) = &bound.pod.as_ref().or(bound.secret.as_ref()) {
        spec["boundObjectRef"]["uid"] = json!(r.uid);
    }
    let answer = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "uid": uid, "creationTimestamp": null},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
    });
    Ok((answer, warnings))
}
