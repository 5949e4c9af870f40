//! `/healthz`, `/livez` and `/readyz` with upstream's named checks.
//!
//! `/livez` says the process works (it stays green while storage is away: restarting the server would not
//! bring etcd back); `/readyz` says whether requests can be served now: storage answers within a second,
//! the watch cache is loaded and following, and the start-up work (system namespaces, default RBAC
//! policy) is done. Load balancers and the test harness wait on `/readyz`.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

use crate::apiserver::http::handlers::App;

/// How long storage may take to answer the readiness probe.
const STORAGE_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether storage answers a cheap read in time.
async fn storage_answers(app: &App) -> bool {
    matches!(
        tokio::time::timeout(STORAGE_PROBE_TIMEOUT, app.registry.store.current_revision()).await,
        Ok(Ok(_))
    )
}

/// Answers a health path (`trimmed` has no trailing slash); `query` is the raw query string.
pub async fn answer(app: &App, trimmed: &str, query: Option<&str>) -> Response {
    let mut parts = trimmed.trim_start_matches('/').splitn(2, '/');
    let endpoint = parts.next().unwrap_or("healthz");
    let only = parts.next();
    let readiness = endpoint == "readyz";
    let started = *app.started.borrow();
    let mut checks: Vec<(&str, bool)> = vec![("ping", true), ("log", true)];
    if readiness || endpoint == "healthz" {
        let etcd = storage_answers(app).await;
        checks.push(("etcd", etcd));
        checks.push(("etcd-readiness", etcd));
    }
    if readiness {
        checks.push(("informer-sync", app.registry.cache.is_ready()));
    }
    checks.push(("poststarthook/start-apiextensions-informers", true));
    // Start-up work that waits on storage counts for readiness only: a live process that is still
    // loading (or waiting for etcd) must not be restarted by a liveness probe.
    if endpoint != "livez" {
        checks.push(("poststarthook/rbac/bootstrap-roles", started));
        checks.push((
            "poststarthook/scheduling/bootstrap-system-priority-classes",
            started,
        ));
        if let Some((name, done)) = &app.caller_hook {
            checks.push((name, done.load(std::sync::atomic::Ordering::Acquire)));
        }
    }
    if readiness {
        checks.push(("shutdown", true));
    }
    // `/readyz/etcd` runs that one check, as upstream's per-check paths.
    if let Some(name) = only {
        return match checks.iter().find(|(c, _)| *c == name) {
            Some((_, true)) => text(StatusCode::OK, "ok".into()),
            Some((c, false)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {c} check failed\n"),
            ),
            None => text(StatusCode::NOT_FOUND, "404 page not found\n".into()),
        };
    }
    let ok = checks.iter().all(|(_, ok)| *ok);
    let verbose = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let mut body = String::new();
    for (name, good) in &checks {
        if *good && verbose {
            body.push_str(&format!("[+]{name} ok\n"));
        } else if !good {
            body.push_str(&format!("[-]{name} failed: reason withheld\n"));
        }
    }
    if verbose || !ok {
        body.push_str(&format!(
            "{endpoint} check {}\n",
            if ok { "passed" } else { "failed" }
        ));
    } else {
        body.push_str("ok");
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    text(status, body)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        body,
    )
        .into_response()
}
