//! Namespace lifecycle: the finalizer that empties a terminating namespace before it goes away (upstream's namespace controller, in-process here because it
//! works through the registry exactly as a client's requests would).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::apiserver::http::request::Query;
use crate::apiserver::registry::store::{DeleteOptions, Registry};

/// Watches for terminating namespaces and empties them, then removes the `kubernetes` finalizer.
pub async fn run_finalizer(registry: Arc<Registry>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Err(e) = finalize_terminating(&registry).await {
            tracing::warn!("namespace finalizer: {}", e.message);
        }
    }
}

async fn finalize_terminating(
    registry: &Registry,
) -> Result<(), crate::apiserver::status::ApiError> {
    let Some(nsinfo) = registry.catalog.find("", "v1", "namespaces") else {
        return Ok(());
    };
    let q = Query {
        resource_version: Some("0".into()),
        ..Default::default()
    };
    let namespaces = registry.list(&nsinfo, None, &q).await?;
    for ns in namespaces
        .items
        .iter()
        .filter(|n| n.pointer("/metadata/deletionTimestamp").is_some())
    {
        let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let holds_kubernetes = ns
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == "kubernetes"));
        if !holds_kubernetes {
            continue;
        }
        let mut remaining = 0;
        for info in registry
            .catalog
            .load()
            .all()
            .iter()
            .filter(|r| r.namespaced && r.has_verb("deletecollection"))
        {
            let deleted = registry
                .delete_collection(
                    info,
                    Some(name),
                    &Query::default(),
                    &DeleteOptions::default(),
                )
                .await?;
            remaining += deleted.items.len();
        }
        if remaining > 0 {
            // Deleted now or held by finalizers; look again on the next tick.
            let left = count_left(registry, name).await?;
            if left > 0 {
                continue;
            }
        }
        let mut obj = (**ns).clone();
        let kept: Vec<Value> = ns
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter(|x| *x != "kubernetes").cloned().collect())
            .unwrap_or_default();
        obj["spec"] = json!({"finalizers": kept});
        match registry
            .update(&nsinfo, None, name, obj, Some("finalize"), false)
            .await
        {
            Ok(_) => tracing::info!("namespace {name} emptied and finalized"),
            Err(e) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn count_left(
    registry: &Registry,
    ns: &str,
) -> Result<usize, crate::apiserver::status::ApiError> {
    let mut left = 0;
    for info in registry
        .catalog
        .load()
        .all()
        .iter()
        .filter(|r| r.namespaced && r.has_verb("list"))
    {
        left += registry
            .list(
                info,
                Some(ns),
                &Query {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await?
            .items
            .len();
    }
    Ok(left)
}
