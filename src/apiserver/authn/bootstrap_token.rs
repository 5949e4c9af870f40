//! Bootstrap tokens (upstream's `plugin/pkg/auth/authenticator/token/bootstrap`): the short-lived
//! `<id>.<secret>` tokens a new node joins with (`rkube token create`, then `rkube agent --token`).
//!
//! A token is a Secret `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
//! whose `token-secret` matches, not expired, marked `usage-bootstrap-authentication: "true"`. Its
//! user is `system:bootstrap:<id>` in `system:bootstrappers` plus the Secret's `auth-extra-groups`;
//! what that may do is RBAC's (by default: create a CertificateSigningRequest, which the approving
//! controller approves for a node client certificate). Every refusal is a plain "not authenticated",
//! as upstream: the reason is only logged.

use base64::Engine;
use serde_json::Value;

use super::bearer::{token_object, User};
use crate::apiserver::http::handlers::App;
use crate::apiserver::status::ApiResult;

/// The namespace bootstrap token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// A token's Secret is this prefix plus the token id.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The Secret type of a bootstrap token.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group every bootstrap token's user is in.
pub const DEFAULT_GROUP: &str = "system:bootstrappers";
/// The group `rkube token create` gives its tokens, which the node-join bindings name (kubeadm's
/// `system:bootstrappers:kubeadm:default-node-token`).
pub const NODE_TOKEN_GROUP: &str = "system:bootstrappers:rkube:default-node-token";
/// A token's user is this prefix plus the token id.
pub const USER_PREFIX: &str = "system:bootstrap:";

/// `<6 chars>.<16 chars>` of `[a-z0-9]`: the token's id and secret, or None for any other shape
/// (then it is not a bootstrap token and another authenticator may know it).
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// A Secret's `data[key]` as text (base64-decoded), empty when absent or undecodable.
fn data(secret: &Value, key: &str) -> String {
    secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Upstream's `ValidateBootstrapGroupName`: `system:bootstrappers:` then `[a-z0-9:-]`, ending
/// alphanumeric, at most 256 characters after the prefix.
pub fn valid_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// When a token whose `expiration` is `text` expires: never when empty; an `expiration` that does
/// not parse has already expired (upstream's `HasExpired`).
pub fn expires_at(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if text.is_empty() {
        return None;
    }
    Some(
        chrono::DateTime::parse_from_rfc3339(text).map_or(chrono::DateTime::UNIX_EPOCH, |t| {
            t.with_timezone(&chrono::Utc)
        }),
    )
}

fn expired(secret: &Value, now: chrono::DateTime<chrono::Utc>) -> bool {
    expires_at(&data(secret, "expiration")).is_some_and(|t| t <= now)
}

/// Why a token's Secret does not authenticate it, or its user. Pure, for tests.
pub fn user_of(secret: &Value, id: &str, token_secret: &str) -> Result<User, String> {
    if secret.pointer("/metadata/deletionTimestamp").is_some() {
        return Err("is deleted and awaiting removal".into());
    }
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE)
        || secret.get("data").is_none_or(Value::is_null)
    {
        return Err(format!("has invalid type, expected {SECRET_TYPE}."));
    }
    let stored = data(secret, "token-secret");
    if !constant_time_eq(stored.as_bytes(), token_secret.as_bytes()) {
        return Err("has invalid value for key token-secret.".into());
    }
    if data(secret, "token-id") != id {
        return Err("has invalid value for key token-id.".into());
    }
    if expired(secret, chrono::Utc::now()) {
        return Err("has expired.".into());
    }
    if data(secret, "usage-bootstrap-authentication") != "true" {
        return Err("not marked usage-bootstrap-authentication=true.".into());
    }
    let mut groups = std::collections::BTreeSet::from([DEFAULT_GROUP.to_string()]);
    let extra = data(secret, "auth-extra-groups");
    // Upstream splits a non-empty value on commas and refuses the token for any invalid part.
    for g in extra.split(',').filter(|_| !extra.is_empty()) {
        if !valid_group(g) {
            return Err(format!(
                "has invalid value for key auth-extra-groups: bootstrap group {g:?} is invalid"
            ));
        }
        groups.insert(g.to_string());
    }
    let mut groups: Vec<String> = groups.into_iter().collect();
    groups.push(crate::apiserver::authz::ALL_AUTHENTICATED.to_string());
    Ok(User::new(format!("{USER_PREFIX}{id}"), groups))
}

/// Compares without leaking where the first difference is (upstream's `subtle.ConstantTimeCompare`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authenticates `token` when it has a bootstrap token's shape: `Ok(None)` when it does not
/// (another authenticator's), `Ok(Some(Err(why)))` when it is refused.
pub async fn authenticate(app: &App, token: &str) -> ApiResult<Option<Result<User, String>>> {
    let Some((id, token_secret)) = parse(token) else {
        return Ok(None);
    };
    let name = format!("{SECRET_PREFIX}{id}");
    let Some(secret) = token_object(app, "secrets", NAMESPACE, &name).await? else {
        return Ok(Some(Err(format!(
            "no secret of name {name} to match bootstrap bearer token"
        ))));
    };
    Ok(Some(user_of(&secret, id, token_secret).map_err(|why| {
        format!("bootstrap secret {NAMESPACE}/{name} {why}")
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = serde_json::Map::new();
        for (k, v) in [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
        ]
        .iter()
        .chain(extra)
        {
            data.insert(k.to_string(), json!(b64(v)));
        }
        json!({"metadata": {"name": "bootstrap-token-abcdef"}, "type": SECRET_TYPE, "data": data})
    }

    #[test]
    fn token_shape() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdefg",
            "eyJhbGciOi.x.y",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn user_and_groups() {
        let s = secret(&[(
            "auth-extra-groups",
            "system:bootstrappers:rkube:default-node-token,system:bootstrappers:a",
        )]);
        let u = user_of(&s, "abcdef", "0123456789abcdef").unwrap();
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert_eq!(
            u.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:a",
                "system:bootstrappers:rkube:default-node-token",
                "system:authenticated"
            ]
        );
        let plain = user_of(&secret(&[]), "abcdef", "0123456789abcdef").unwrap();
        assert_eq!(
            plain.groups,
            ["system:bootstrappers", "system:authenticated"]
        );
    }

    #[test]
    fn refusals() {
        let ok = "0123456789abcdef";
        let wrong = user_of(&secret(&[]), "abcdef", "0123456789abcdee").unwrap_err();
        assert_eq!(wrong, "has invalid value for key token-secret.");
        let mut typed = secret(&[]);
        typed["type"] = json!("Opaque");
        assert!(user_of(&typed, "abcdef", ok)
            .unwrap_err()
            .contains("invalid type"));
        let past = secret(&[("expiration", "2020-01-01T00:00:00Z")]);
        assert_eq!(user_of(&past, "abcdef", ok).unwrap_err(), "has expired.");
        let garbled = secret(&[("expiration", "tomorrow")]);
        assert!(user_of(&garbled, "abcdef", ok).is_err());
        let future = secret(&[("expiration", "2999-01-01T00:00:00Z")]);
        assert!(user_of(&future, "abcdef", ok).is_ok());
        let mut unmarked = secret(&[]);
        unmarked["data"]["usage-bootstrap-authentication"] = json!(b64("false"));
        assert!(user_of(&unmarked, "abcdef", ok).is_err());
        let bad_group = secret(&[("auth-extra-groups", "system:masters")]);
        assert!(user_of(&bad_group, "abcdef", ok).is_err());
        let mut deleting = secret(&[]);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(user_of(&deleting, "abcdef", ok).is_err());
        assert!(user_of(&secret(&[]), "abcdeg", ok).is_err());
    }

    #[test]
    fn group_names() {
        assert!(valid_group("system:bootstrappers:rkube:default-node-token"));
        for bad in [
            "system:bootstrappers:",
            "system:bootstrappers:a-",
            "system:masters",
            "system:bootstrappers:A",
        ] {
            assert!(!valid_group(bad), "{bad}");
        }
    }
}
