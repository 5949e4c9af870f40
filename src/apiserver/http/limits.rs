//! Overload protection, as upstream's generic filters: a cap on requests in flight (read-only and
//! mutating counted apart, `--max-requests-inflight` / `--max-mutating-requests-inflight`) answered with
//! 429 and `Retry-After`, and a deadline on every request that is not long-running
//! (`--request-timeout`) answered with 504. Long-running requests (watches, exec/attach/port-forward,
//! logs, proxy) are neither counted nor timed, as upstream's `BasicLongRunningRequestCheck`.

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{header, Method, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::apiserver::authz::{Attributes, User, SYSTEM_MASTERS};

/// The knobs, with upstream's defaults.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// Read-only requests in flight at once; 0 = unlimited.
    pub max_requests_inflight: usize,
    /// Mutating requests in flight at once; 0 = unlimited.
    pub max_mutating_requests_inflight: usize,
    /// How long a non-long-running request may take before it is answered 504.
    pub request_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// The in-flight counters of one server.
pub struct Limits {
    readonly: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    pub request_timeout: Duration,
}

/// Upstream's subresources and verbs whose requests stay open for as long as the client wants.
pub fn is_long_running(attrs: &Attributes) -> bool {
    matches!(attrs.verb.as_str(), "watch" | "proxy")
        || matches!(
            attrs.subresource.as_str(),
            "attach" | "exec" | "proxy" | "log" | "portforward"
        )
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        let semaphore = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        Limits {
            readonly: semaphore(config.max_requests_inflight),
            mutating: semaphore(config.max_mutating_requests_inflight),
            request_timeout: config.request_timeout,
        }
    }

    /// Admits a request, or answers 429. The permit is held until the request's work is done.
    /// `system:masters` is never refused (upstream: "a super-admin or a loopback connection should always
    /// get an answer"), nor are long-running requests counted.
    pub fn admit(
        &self,
        user: &User,
        method: &Method,
        long_running: bool,
    ) -> Result<Option<OwnedSemaphorePermit>, TooManyRequests> {
        if long_running {
            return Ok(None);
        }
        let pool = if is_mutating(method) {
            &self.mutating
        } else {
            &self.readonly
        };
        let Some(pool) = pool else {
            return Ok(None);
        };
        match pool.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) if user.in_group(SYSTEM_MASTERS) => Ok(None),
            Err(_) => Err(TooManyRequests),
        }
    }
}

/// A request refused because the in-flight limit is reached.
#[derive(Debug)]
pub struct TooManyRequests;

/// Upstream's answer: plain text, `Retry-After: 1`.
impl IntoResponse for TooManyRequests {
    fn into_response(self) -> Response {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (header::RETRY_AFTER, "1"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::HeaderName::from_static("x-content-type-options"),
                    "nosniff",
                ),
            ],
            "Too many requests, please try again later.\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, sub: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            subresource: sub.into(),
            resource_request: true,
            ..Default::default()
        }
    }

    #[test]
    fn long_running_requests_as_upstream() {
        assert!(is_long_running(&attrs("watch", "")));
        assert!(is_long_running(&attrs("get", "log")));
        assert!(is_long_running(&attrs("create", "exec")));
        assert!(is_long_running(&attrs("get", "portforward")));
        assert!(!is_long_running(&attrs("list", "")));
        assert!(!is_long_running(&attrs("update", "status")));
    }

    #[test]
    fn full_pool_refuses_but_masters_pass_and_permits_return() {
        let limits = Limits::new(&LimitsConfig {
            max_requests_inflight: 1,
            max_mutating_requests_inflight: 1,
            request_timeout: Duration::from_secs(1),
        });
        let bob = User::new("bob", vec![]);
        let admin = User::new("admin", vec![SYSTEM_MASTERS.into()]);
        let held = limits.admit(&bob, &Method::GET, false).ok().flatten();
        assert!(held.is_some());
        let refused = limits.admit(&bob, &Method::GET, false).err();
        assert_eq!(
            refused.map(|r| r.into_response().status()),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        // Mutating requests have their own pool; masters and watches are never refused.
        assert!(limits.admit(&bob, &Method::POST, false).is_ok());
        assert!(limits.admit(&admin, &Method::GET, false).is_ok());
        assert!(limits.admit(&bob, &Method::GET, true).is_ok());
        drop(held);
        assert!(limits.admit(&bob, &Method::GET, false).is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let limits = Limits::new(&LimitsConfig {
            max_requests_inflight: 0,
            max_mutating_requests_inflight: 0,
            request_timeout: Duration::from_secs(1),
        });
        let bob = User::new("bob", vec![]);
        for _ in 0..1000 {
            assert!(limits.admit(&bob, &Method::PUT, false).is_ok());
        }
    }
}
