//! Bearer tokens: a service account token (legacy Secret-based or bound, upstream's JWT authenticator)
//! checked against its audience, expiry and the objects it is bound to.

use crate::apiserver::authz;
pub use crate::apiserver::authz::User;
use crate::apiserver::http::handlers::*;
use crate::apiserver::status::ApiResult;
use http::{header, HeaderMap};
use serde_json::Value;

/// A request's bearer token, as upstream's bearer-token authenticator reads it: `Authorization: Bearer
/// <token>` (scheme case-insensitive). `Some` whenever that scheme and a token part are given, even an
/// empty one (`Bearer  x`): a request that presents a token is never anonymous. Other schemes are not
/// credentials rkube knows, as upstream (the request stays anonymous).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?;
    let text = String::from_utf8_lossy(auth.as_bytes());
    let mut parts = text.trim().splitn(3, ' ');
    let scheme = parts.next().unwrap_or("");
    let token = parts.next()?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.to_string())
}

/// What authenticating a service account token found.
pub enum TokenAuth {
    /// The token's user and the audiences that matched (upstream's `Response.Audiences`).
    User(User, Vec<String>),
    /// The token does not authenticate: why, as upstream's authenticator words it.
    Invalid(String),
}

/// Looks up an object a token names; Ok(None) when it is gone, Err on a storage failure (never a 401:
/// the credentials may be fine).
pub(crate) async fn token_object(
    app: &App,
    plural: &str,
    ns: &str,
    name: &str,
) -> ApiResult<Option<Value>> {
    app.registry.lookup("", "v1", plural, Some(ns), name).await
}

pub(crate) fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Upstream's `deletedBefore` with its 60 s leeway: an object whose deletion started over a minute ago
/// no longer vouches for a token.
pub(crate) fn deleted_long_ago(v: &Value) -> bool {
    let now = chrono::Utc::now();
    v.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t < now - chrono::Duration::seconds(60))
}

/// Authenticates a bearer token for `wanted` audiences, as upstream's union of token authenticators:
/// a bootstrap token (`<id>.<secret>`, audience-agnostic: it answers for this server's own
/// audiences) or a service account token.
pub async fn authenticate_token(app: &App, token: &str, wanted: &[String]) -> ApiResult<TokenAuth> {
    match super::bootstrap_token::authenticate(app, token).await? {
        None => token_user(app, token, wanted).await,
        Some(Err(why)) => Ok(TokenAuth::Invalid(why)),
        Some(Ok(user)) => {
            let matched = crate::apiserver::authn::tokens::intersect(
                &app.tokens.options.api_audiences,
                wanted,
            );
            if matched.is_empty() {
                return Ok(TokenAuth::Invalid(
                    "token audiences are invalid for the target audiences".into(),
                ));
            }
            Ok(TokenAuth::User(user, matched))
        }
    }
}

/// Authenticates a service account token for `wanted` audiences (the apiserver's own for a request,
/// a TokenReview's `spec.audiences`): the signature, the audience, and that the service account and
/// any bound Pod or Secret still exist with the uids the token names.
pub async fn token_user(app: &App, token: &str, wanted: &[String]) -> ApiResult<TokenAuth> {
    let invalid = |why: String| Ok(TokenAuth::Invalid(why));
    let Some(claims) = app.tokens.verify(token) else {
        return invalid("invalid bearer token".into());
    };
    let matched = crate::apiserver::authn::tokens::intersect(&claims.audiences, wanted);
    if matched.is_empty() {
        return invalid(format!(
            "[invalid bearer token, token audiences {} is invalid for the target audiences {}]",
            authz::rbac::go_quoted(&claims.audiences),
            authz::rbac::go_quoted(wanted)
        ));
    }
    let ns = claims.namespace.as_str();
    let sa_name = claims.service_account.as_str();
    let Some(sa) = token_object(app, "serviceaccounts", ns, sa_name).await? else {
        return invalid(format!(
            "[invalid bearer token, serviceaccounts {sa_name:?} not found]"
        ));
    };
    if uid_of(&sa) != claims.uid {
        return invalid(format!(
            "[invalid bearer token, service account UID ({}) does not match claim ({})]",
            uid_of(&sa),
            claims.uid
        ));
    }
    if deleted_long_ago(&sa) {
        return invalid(format!(
            "[invalid bearer token, service account {ns}/{sa_name} has been deleted]"
        ));
    }
    let invalidated = "[invalid bearer token, service account token has been invalidated]";
    if let Some(r) = &claims.bound.secret {
        match token_object(app, "secrets", ns, &r.name).await? {
            None => return invalid(invalidated.into()),
            Some(s) if uid_of(&s) != r.uid => {
                return invalid(format!("[invalid bearer token, secret UID ({}) does not match service account secret ref claim ({})]", uid_of(&s), r.uid))
            }
            Some(s) if deleted_long_ago(&s) => return invalid(invalidated.into()),
            Some(_) => {}
        }
    }
    if let Some(r) = &claims.bound.pod {
        match token_object(app, "pods", ns, &r.name).await? {
            None => return invalid(invalidated.into()),
            Some(p) if uid_of(&p) != r.uid => {
                return invalid(format!("[invalid bearer token, pod UID ({}) does not match service account pod ref claim ({})]", uid_of(&p), r.uid))
            }
            Some(p) if deleted_long_ago(&p) => return invalid(invalidated.into()),
            Some(_) => {}
        }
    }
    let mut user = User::new(claims.username(), claims.groups());
    user.uid = Some(claims.uid.clone());
    if let Some(p) = &claims.bound.pod {
        user.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![p.name.clone()],
        );
        user.extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![p.uid.clone()],
        );
    }
    if let Some(jti) = &claims.jti {
        user.extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    Ok(TokenAuth::User(user, matched))
}
