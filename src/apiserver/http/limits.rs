//! Overload protection, as upstream's generic filters, and a deadline on every request that is not
//! long-running (`--request-timeout`) answered with 504. Long-running requests (watches,
//! exec/attach/port-forward, logs, proxy) are neither counted nor timed, as upstream's
//! `BasicLongRunningRequestCheck`.
//!
//! Two ways to bound the requests in flight, as upstream:
//! - **API Priority and Fairness** (`--enable-priority-and-fairness`, the default): each request is
//!   classified by upstream's suggested FlowSchemas ([`classify`]) into a priority level, whose seats
//!   are its share of the server's concurrency (`--max-requests-inflight` plus
//!   `--max-mutating-requests-inflight`). A request that finds its level full waits in the level's
//!   queue (at most a quarter of `--request-timeout`, and as many waiting as the level's queues
//!   hold) before it is answered 429. So a burst of one kind of client (5,000 nodes renewing their
//!   Leases) neither starves another (the scheduler's bindings) nor gets refused while a seat is
//!   about to free. Not built: fair queuing between the flows of one level (a level's waiters are
//!   served first come, first served), borrowing seats between levels, and reading FlowSchema
//!   objects from the API (the classification is the built-in configuration).
//! - **The max-in-flight filter** (`--enable-priority-and-fairness=false`): read-only and mutating
//!   requests counted apart, a request beyond either cap answered 429 at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{header, Method, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::apiserver::authz::{Attributes, User, ALL_AUTHENTICATED, SYSTEM_MASTERS};

/// The knobs, with upstream's defaults.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// Read-only requests in flight at once; 0 = unlimited.
    pub max_requests_inflight: usize,
    /// Mutating requests in flight at once; 0 = unlimited.
    pub max_mutating_requests_inflight: usize,
    /// How long a non-long-running request may take before it is answered 504.
    pub request_timeout: Duration,
    /// API Priority and Fairness (else the max-in-flight filter).
    pub priority_and_fairness: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            request_timeout: Duration::from_secs(60),
            priority_and_fairness: true,
        }
    }
}

/// The in-flight counters of one server.
pub struct Limits {
    readonly: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    /// The priority levels, when Priority and Fairness is on (in [`LEVELS`]' order).
    levels: Option<Vec<Level>>,
    /// How long a request may wait for a seat of its level (upstream: a quarter of the request timeout).
    queue_wait: Duration,
    pub request_timeout: Duration,
}

/// Upstream's suggested priority levels (`apis/flowcontrol/bootstrap`): name, nominal concurrency
/// shares, queues and queue length limit (0 queues: requests beyond the seats are rejected at once).
const LEVELS: [(&str, u32, usize, usize); 7] = [
    ("system", 30, 64, 50),
    ("node-high", 40, 64, 50),
    ("leader-election", 10, 16, 50),
    ("workload-high", 40, 128, 50),
    ("workload-low", 100, 128, 50),
    ("global-default", 20, 128, 50),
    ("catch-all", 5, 0, 0),
];

/// One priority level: its seats, and how many requests may wait for one.
struct Level {
    seats: Arc<Semaphore>,
    max_waiting: usize,
    waiting: std::sync::atomic::AtomicUsize,
}

/// Where a request goes: exempt (never limited) or a priority level's index in [`LEVELS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Exempt,
    Level(usize),
}

fn level(name: &str) -> Priority {
    LEVELS
        .iter()
        .position(|(n, ..)| *n == name)
        .map_or(Priority::Exempt, Priority::Level)
}

/// Classifies a request as upstream's suggested FlowSchemas do, the first match by precedence:
/// `exempt` (system:masters), `probes` (health checks), `system-leader-election`,
/// `endpoint-controller`, `workload-leader-election`, `system-node-high` (nodes' own Node objects
/// and Leases), `system-nodes`, `kube-controller-manager`, `kube-scheduler`,
/// `kube-system-service-accounts`, `service-accounts`, `global-default`.
pub fn classify(user: &User, attrs: &Attributes) -> (&'static str, Priority) {
    const KCM: &str = "system:kube-controller-manager";
    const SCHEDULER: &str = "system:kube-scheduler";
    let kube_system_sa = user.name.starts_with("system:serviceaccount:kube-system:");
    let core = attrs.resource_request && attrs.api_group.is_empty();
    let leases = attrs.resource_request
        && attrs.api_group == "coordination.k8s.io"
        && attrs.resource == "leases"
        && attrs.subresource.is_empty();
    let election_verb = matches!(attrs.verb.as_str(), "get" | "create" | "update");
    let election_object = |any_namespace: bool| {
        election_verb
            && (leases
                || (core
                    && matches!(attrs.resource.as_str(), "endpoints" | "configmaps")
                    && attrs.subresource.is_empty()
                    && (any_namespace || attrs.namespace == "kube-system")))
    };
    if user.in_group(SYSTEM_MASTERS) {
        return ("exempt", Priority::Exempt);
    }
    if !attrs.resource_request
        && attrs.verb == "get"
        && matches!(attrs.path.as_str(), "/healthz" | "/readyz" | "/livez")
    {
        return ("probes", Priority::Exempt);
    }
    if (user.name == KCM || user.name == SCHEDULER || kube_system_sa) && election_object(false) {
        return ("system-leader-election", level("leader-election"));
    }
    if (user.name == KCM || user.name == "system:serviceaccount:kube-system:endpoint-controller")
        && core
        && attrs.resource == "endpoints"
        && election_verb
    {
        return ("endpoint-controller", level("workload-high"));
    }
    if kube_system_sa && election_object(true) {
        return ("workload-leader-election", level("leader-election"));
    }
    if user.in_group("system:nodes") {
        let own = (core
            && attrs.resource == "nodes"
            && matches!(attrs.subresource.as_str(), "" | "status"))
            || leases;
        if own {
            return ("system-node-high", level("node-high"));
        }
        return ("system-nodes", level("system"));
    }
    if user.name == KCM {
        return ("kube-controller-manager", level("workload-high"));
    }
    if user.name == SCHEDULER {
        return ("kube-scheduler", level("workload-high"));
    }
    if kube_system_sa {
        return ("kube-system-service-accounts", level("workload-high"));
    }
    if user.in_group("system:serviceaccounts") {
        return ("service-accounts", level("workload-low"));
    }
    if user.in_group(ALL_AUTHENTICATED) || user.in_group("system:unauthenticated") {
        return ("global-default", level("global-default"));
    }
    ("catch-all", level("catch-all"))
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
        let total = config.max_requests_inflight + config.max_mutating_requests_inflight;
        // Upstream: a level's nominal seats are its share of the server's concurrency, rounded up.
        let shares: u32 = LEVELS.iter().map(|(_, s, ..)| s).sum();
        let levels = (config.priority_and_fairness && total > 0).then(|| {
            LEVELS
                .iter()
                .map(|&(_, share, queues, length)| Level {
                    seats: Arc::new(Semaphore::new(
                        (total * share as usize).div_ceil(shares as usize),
                    )),
                    max_waiting: queues * length,
                    waiting: Default::default(),
                })
                .collect()
        });
        Limits {
            readonly: semaphore(config.max_requests_inflight),
            mutating: semaphore(config.max_mutating_requests_inflight),
            levels,
            queue_wait: config.request_timeout / 4,
            request_timeout: config.request_timeout,
        }
    }

    /// Admits a request, after waiting for a seat of its priority level if need be, or answers 429.
    /// The permit is held until the request's work is done. `system:masters` is never refused
    /// (upstream: "a super-admin or a loopback connection should always get an answer"), nor are
    /// long-running requests counted.
    pub async fn admit(
        &self,
        user: &User,
        attrs: &Attributes,
        method: &Method,
        long_running: bool,
    ) -> Result<Option<OwnedSemaphorePermit>, TooManyRequests> {
        if long_running {
            return Ok(None);
        }
        if let Some(levels) = &self.levels {
            let Priority::Level(i) = classify(user, attrs).1 else {
                return Ok(None);
            };
            let Some(level) = levels.get(i) else {
                return Ok(None);
            };
            if let Ok(permit) = level.seats.clone().try_acquire_owned() {
                return Ok(Some(permit));
            }
            // Full: wait in the level's queue, if it has room.
            let waiting = level.waiting.fetch_add(1, Ordering::SeqCst);
            let _queued = Queued(&level.waiting);
            if waiting >= level.max_waiting {
                return Err(TooManyRequests);
            }
            return match tokio::time::timeout(self.queue_wait, level.seats.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => Ok(Some(permit)),
                _ => Err(TooManyRequests),
            };
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

/// A place in a level's queue, given back however the wait ends (a seat, a timeout, or the client
/// gone and the request's future dropped).
struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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

    fn config(readonly: usize, mutating: usize, apf: bool) -> LimitsConfig {
        LimitsConfig {
            max_requests_inflight: readonly,
            max_mutating_requests_inflight: mutating,
            request_timeout: Duration::from_secs(1),
            priority_and_fairness: apf,
        }
    }

    /// A seat for a GET, if admitted with one.
    async fn seat(
        limits: &Limits,
        user: &User,
        attrs: &Attributes,
    ) -> Option<OwnedSemaphorePermit> {
        limits
            .admit(user, attrs, &Method::GET, false)
            .await
            .ok()
            .flatten()
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User::new(name, groups.iter().map(|g| g.to_string()).collect())
    }

    fn resource(verb: &str, group: &str, resource: &str, sub: &str, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            resource_request: true,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn full_pool_refuses_but_masters_pass_and_permits_return() {
        let limits = Limits::new(&config(1, 1, false));
        let bob = User::new("bob", vec![]);
        let admin = User::new("admin", vec![SYSTEM_MASTERS.into()]);
        let get = attrs("get", "");
        let held = seat(&limits, &bob, &get).await;
        assert!(held.is_some());
        let refused = limits.admit(&bob, &get, &Method::GET, false).await.err();
        assert_eq!(
            refused.map(|r| r.into_response().status()),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        // Mutating requests have their own pool; masters and watches are never refused.
        assert!(limits.admit(&bob, &get, &Method::POST, false).await.is_ok());
        assert!(limits
            .admit(&admin, &get, &Method::GET, false)
            .await
            .is_ok());
        assert!(limits.admit(&bob, &get, &Method::GET, true).await.is_ok());
        drop(held);
        assert!(limits.admit(&bob, &get, &Method::GET, false).await.is_ok());
    }

    #[tokio::test]
    async fn zero_means_unlimited() {
        for apf in [false, true] {
            let limits = Limits::new(&config(0, 0, apf));
            let bob = User::new("bob", vec![]);
            let mut held = Vec::new();
            for _ in 0..1000 {
                let permit = limits
                    .admit(&bob, &attrs("update", ""), &Method::PUT, false)
                    .await;
                held.push(permit.is_ok());
            }
            assert!(held.iter().all(|ok| *ok));
        }
    }

    /// Upstream's suggested FlowSchemas, by precedence.
    #[test]
    fn classification_as_upstream() {
        let node = user("system:node:n1", &["system:nodes", ALL_AUTHENTICATED]);
        let sa = |ns: &str, name: &str| {
            user(
                &format!("system:serviceaccount:{ns}:{name}"),
                &[
                    "system:serviceaccounts",
                    &format!("system:serviceaccounts:{ns}"),
                    ALL_AUTHENTICATED,
                ],
            )
        };
        let scheduler = user("system:kube-scheduler", &[ALL_AUTHENTICATED]);
        let alice = user("alice", &[ALL_AUTHENTICATED]);
        let lease = |verb: &str, ns: &str| resource(verb, "coordination.k8s.io", "leases", "", ns);
        let pods = resource("create", "", "pods", "", "default");
        let cases = [
            (
                user("admin", &[SYSTEM_MASTERS]),
                pods.clone(),
                "exempt",
                Priority::Exempt,
            ),
            (
                user("system:anonymous", &["system:unauthenticated"]),
                Attributes {
                    verb: "get".into(),
                    path: "/readyz".into(),
                    ..Default::default()
                },
                "probes",
                Priority::Exempt,
            ),
            (
                scheduler.clone(),
                lease("update", "kube-system"),
                "system-leader-election",
                level("leader-election"),
            ),
            (
                sa("kube-system", "deployment-controller"),
                lease("get", "kube-system"),
                "system-leader-election",
                level("leader-election"),
            ),
            (
                sa("kube-system", "foo"),
                resource("update", "", "configmaps", "", "other"),
                "workload-leader-election",
                level("leader-election"),
            ),
            (
                node.clone(),
                lease("update", "kube-node-lease"),
                "system-node-high",
                level("node-high"),
            ),
            (
                node.clone(),
                resource("patch", "", "nodes", "status", ""),
                "system-node-high",
                level("node-high"),
            ),
            (
                node.clone(),
                resource("patch", "", "pods", "status", "default"),
                "system-nodes",
                level("system"),
            ),
            (
                scheduler.clone(),
                resource("create", "", "pods", "binding", "default"),
                "kube-scheduler",
                level("workload-high"),
            ),
            (
                sa("kube-system", "replicaset-controller"),
                pods.clone(),
                "kube-system-service-accounts",
                level("workload-high"),
            ),
            (
                sa("default", "app"),
                pods.clone(),
                "service-accounts",
                level("workload-low"),
            ),
            (
                alice.clone(),
                lease("update", "default"),
                "global-default",
                level("global-default"),
            ),
            (
                user("nobody", &[]),
                pods.clone(),
                "catch-all",
                level("catch-all"),
            ),
        ];
        for (who, what, schema, priority) in cases {
            assert_eq!(
                classify(&who, &what),
                (schema, priority),
                "{} {:?}",
                who.name,
                what
            );
        }
    }

    /// A full level queues its requests (a seat freed within the wait is taken; none freed: 429 after
    /// the wait) and leaves the other levels alone.
    #[tokio::test]
    async fn a_full_level_queues_and_isolates() {
        // Two seats in all: one per level.
        let limits = Arc::new(Limits::new(&config(1, 1, true)));
        let alice = user("alice", &[ALL_AUTHENTICATED]);
        let node = user("system:node:n1", &["system:nodes", ALL_AUTHENTICATED]);
        let get = resource("get", "", "pods", "", "default");
        let held = seat(&limits, &alice, &get).await;
        assert!(held.is_some());
        // Another level is not affected.
        assert!(matches!(
            limits.admit(&node, &get, &Method::GET, false).await,
            Ok(Some(_))
        ));
        // Alice's next request waits (a quarter of the 1 s request timeout); the seat freed
        // meanwhile is hers.
        let waiter = {
            let (limits, alice, get) = (limits.clone(), alice.clone(), get.clone());
            tokio::spawn(async move {
                limits
                    .admit(&alice, &get, &Method::GET, false)
                    .await
                    .map(|p| p.is_some())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(held);
        assert!(matches!(waiter.await, Ok(Ok(true))));
        // Nobody frees it: 429 once the wait is over.
        let held = seat(&limits, &alice, &get).await;
        assert!(held.is_some());
        let t0 = tokio::time::Instant::now();
        assert!(limits
            .admit(&alice, &get, &Method::GET, false)
            .await
            .is_err());
        assert!(
            t0.elapsed() >= Duration::from_millis(250),
            "refused only after the wait"
        );
        // catch-all does not queue; nor does a level whose queues are full.
        let nobody = user("nobody", &[]);
        let _seat = limits.admit(&nobody, &get, &Method::GET, false).await;
        assert!(limits
            .admit(&nobody, &get, &Method::GET, false)
            .await
            .is_err());
        let waiting: Vec<usize> = limits
            .levels
            .iter()
            .flatten()
            .map(|l| l.max_waiting)
            .collect();
        assert_eq!(waiting, [3200, 3200, 800, 6400, 6400, 6400, 0]);
    }
}
