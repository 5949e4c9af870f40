//! How a webhook's failure or denial becomes the request's metav1.Status (upstream's
//! `webhook/errors/statuserror.go`, `util/webhook/error.go` and the dispatchers' handling of them).

use serde_json::{json, Value};

use crate::apiserver::status::ApiError;

/// A failure to get an answer from a webhook (upstream's `ErrCallingWebhook`): unreachable, timed
/// out, a bad answer. `failurePolicy` decides whether it fails the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub webhook: String,
    /// Why, as upstream words it (`failed to call webhook: Post "URL": ...`).
    pub reason: String,
}

impl CallError {
    pub fn new(webhook: &str, reason: impl Into<String>) -> Self {
        CallError {
            webhook: webhook.to_string(),
            reason: reason.into(),
        }
    }

    /// The error text (`failed calling webhook "NAME": REASON`).
    pub fn text(&self) -> String {
        format!("failed calling webhook {:?}: {}", self.webhook, self.reason)
    }

    /// Failing closed: upstream's `apierrors.NewInternalError(err)`.
    pub fn into_api_error(self) -> ApiError {
        let text = self.text();
        ApiError::internal(&text).with_details(json!({"causes": [{"message": text}]}))
    }
}

/// What a webhook call can end in besides success.
#[derive(Debug)]
pub enum HookError {
    /// Could not get a usable answer: subject to `failurePolicy`.
    Call(CallError),
    /// The webhook denied the request, or the server refused to call it (dry run): always fails.
    Denied(ApiError),
}

/// Upstream's `ToStatusErr` (v1.33): the webhook's own Status, its message prefixed with
/// `admission webhook "NAME" denied the request`. The code is the webhook's; a Status without one
/// goes out as 500, as upstream's `ErrorToAPIStatus` sends a Failure without a code.
pub fn denied(webhook: &str, status: Option<&Value>) -> ApiError {
    let empty = json!({});
    let status = status.unwrap_or(&empty);
    let text = |f: &str| status.get(f).and_then(Value::as_str).unwrap_or("");
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let message = match (text("message"), text("reason")) {
        (m, _) if !m.is_empty() => format!("{denied_by}: {m}"),
        (_, r) if !r.is_empty() => format!("{denied_by}: {r}"),
        _ => format!("{denied_by} without explanation"),
    };
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=599).contains(c))
        .unwrap_or(500);
    let mut e = ApiError::new(code, known_reason(text("reason")), message);
    if let Some(d) = status.get("details").filter(|d| d.is_object()) {
        e = e.with_details(d.clone());
    }
    e
}

/// Upstream's `NewDryRunUnsupportedErr`: a dry run reaching a webhook that may have side effects.
pub fn dry_run_unsupported(webhook: &str) -> ApiError {
    ApiError::bad_request(format!(
        "admission webhook {webhook:?} does not support dry run"
    ))
}

/// The webhook's `reason` as one of metav1's StatusReasons (the Status this server writes carries
/// a static reason; one not in the list is dropped, which clients read as an unknown reason).
fn known_reason(reason: &str) -> &'static str {
    const REASONS: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "StoreReadError",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    REASONS.iter().copied().find(|r| *r == reason).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_messages() {
        let e = denied(
            "deny.example.com",
            Some(&json!({"code": 403, "reason": "Forbidden", "message": "no bad keys"})),
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "admission webhook \"deny.example.com\" denied the request: no bad keys"
        );
        let e = denied("w", Some(&json!({"reason": "NotAcceptable"})));
        assert_eq!(
            e.message,
            "admission webhook \"w\" denied the request: NotAcceptable"
        );
        assert_eq!(e.code, 500);
        let e = denied("w", None);
        assert_eq!(
            e.message,
            "admission webhook \"w\" denied the request without explanation"
        );
        let e = denied(
            "w",
            Some(&json!({"code": 400, "reason": "MadeUp", "message": "m"})),
        );
        assert_eq!((e.code, e.reason), (400, ""));
    }

    #[test]
    fn call_errors() {
        let e = CallError::new("w.example.com", "failed to call webhook: Post \"https://127.0.0.1:1/x?timeout=10s\": dial tcp 127.0.0.1:1: connect: connection refused");
        let api = e.into_api_error();
        assert_eq!(api.code, 500);
        assert_eq!(api.reason, "InternalError");
        assert_eq!(api.message, "Internal error occurred: failed calling webhook \"w.example.com\": failed to call webhook: Post \"https://127.0.0.1:1/x?timeout=10s\": dial tcp 127.0.0.1:1: connect: connection refused");
        let d = dry_run_unsupported("w");
        assert_eq!((d.code, d.reason), (400, "BadRequest"));
        assert_eq!(
            d.message,
            "admission webhook \"w\" does not support dry run"
        );
    }
}
