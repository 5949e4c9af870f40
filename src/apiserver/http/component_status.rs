//! `componentstatuses` (core/v1; deprecated upstream but still served, and `kubectl get cs` still
//! asks): the health of the scheduler, the controller manager and the store, checked on each request
//! as upstream's componentstatus REST probes them.
//!
//! Upstream probes each component's `/healthz` port on the apiserver's host. Here the scheduler and
//! the controller manager are clients that may run in any server of the cluster (or stand alone), and
//! each holds its leader-election Lease while it runs: a component is healthy when its Lease in
//! `kube-system` is held and was renewed within its lease duration. `etcd-0` is the store answering a
//! read within a second, with upstream's etcd health message.

use std::time::Duration;

use serde_json::{json, Value};

use crate::apiserver::http::handlers::App;
use crate::apiserver::registry::store::ListResult;
use crate::apiserver::status::{ApiError, ApiResult};

/// The warning upstream sends with every answer about this deprecated kind.
pub const DEPRECATED: &str = "v1 ComponentStatus is deprecated in v1.19+";

/// The components, in the order upstream lists them.
const COMPONENTS: &[&str] = &["scheduler", "controller-manager", "etcd-0"];

/// How long the store may take to answer.
const STORE_TIMEOUT: Duration = Duration::from_secs(1);

fn status(name: &str, check: Result<String, String>) -> Value {
    let condition = match check {
        Ok(message) => json!({"type": "Healthy", "status": "True", "message": message}),
        Err(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({"kind": "ComponentStatus", "apiVersion": "v1",
           "metadata": {"name": name, "creationTimestamp": null}, "conditions": [condition]})
}

/// Whether the Lease `kube-system/<lease>` is held and fresh.
async fn lease_held(app: &App, lease: &str) -> Result<String, String> {
    let Some(leases) = app.catalog.find("coordination.k8s.io", "v1", "leases") else {
        return Err("this server serves no Leases".into());
    };
    let obj = app
        .registry
        .get(&leases, Some("kube-system"), lease)
        .await
        .map_err(|_| format!("no leader holds the kube-system/{lease} lease: none is running"))?;
    lease_fresh(&obj, lease, k8s_openapi::jiff::Timestamp::now())
}

fn lease_fresh(
    obj: &Value,
    lease: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<String, String> {
    let spec = obj.get("spec").cloned().unwrap_or_default();
    let holder = spec
        .get("holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or("");
    if holder.is_empty() {
        return Err(format!(
            "no leader holds the kube-system/{lease} lease: none is running"
        ));
    }
    let duration = spec
        .get("leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(15);
    let renewed = spec
        .get("renewTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
    match renewed {
        Some(t) if now.as_second() - t.as_second() <= duration => Ok("ok".into()),
        Some(t) => Err(format!(
            "the kube-system/{lease} lease held by {holder} was last renewed at {t}, more than {duration}s ago"
        )),
        None => Err(format!(
            "the kube-system/{lease} lease held by {holder} was never renewed"
        )),
    }
}

async fn check(app: &App, name: &str) -> Value {
    let result = match name {
        "scheduler" => lease_held(app, "kube-scheduler").await,
        "controller-manager" => lease_held(app, "kube-controller-manager").await,
        _ => match tokio::time::timeout(STORE_TIMEOUT, app.registry.store.current_revision()).await
        {
            Ok(Ok(_)) => Ok(r#"{"health":"true","reason":""}"#.into()),
            Ok(Err(e)) => Err(format!("the store failed a read: {e}")),
            Err(_) => Err(format!("the store did not answer within {STORE_TIMEOUT:?}")),
        },
    };
    status(name, result)
}

/// The list `kubectl get componentstatuses` reads.
pub async fn list(app: &App) -> ListResult {
    let items = futures::future::join_all(COMPONENTS.iter().map(|c| check(app, c))).await;
    ListResult {
        items: items
            .into_iter()
            .map(crate::apiserver::registry::cached_object::Obj::from)
            .collect(),
        // Computed, not stored: no resourceVersion (upstream's list metadata is empty).
        revision: 0,
        continue_token: None,
        remaining: None,
    }
}

/// One component by name.
pub async fn get(app: &App, name: &str) -> ApiResult<Value> {
    if !COMPONENTS.contains(&name) {
        return Err(ApiError::new(
            404,
            "NotFound",
            format!("componentstatus {name:?} not found"),
        )
        .with_details(json!({"name": name, "kind": "componentstatuses"})));
    }
    Ok(check(app, name).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_healthy_while_renewed() {
        let now: k8s_openapi::jiff::Timestamp = "2026-12-05T00:00:30Z".parse().unwrap();
        let lease = |holder: &str, renewed: &str| json!({"spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed}});
        assert_eq!(
            lease_fresh(
                &lease("a", "2026-12-05T00:00:20.000000Z"),
                "kube-scheduler",
                now
            ),
            Ok("ok".into())
        );
        assert!(
            lease_fresh(&lease("a", "2026-12-05T00:00:00Z"), "kube-scheduler", now)
                .unwrap_err()
                .contains("more than 15s ago")
        );
        assert!(lease_fresh(&lease("", "2026-12-05T00:00:29Z"), "x", now)
            .unwrap_err()
            .contains("none is running"));
        let s = status("etcd-0", Ok("ok".into()));
        assert_eq!(s["conditions"][0]["status"], "True");
        let s = status("scheduler", Err("down".into()));
        assert_eq!(s["conditions"][0]["error"], "down");
    }
}
