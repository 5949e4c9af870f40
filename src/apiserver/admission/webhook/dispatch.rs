//! Calling the matching webhooks (upstream's `mutating/dispatcher.go` and
//! `validating/dispatcher.go`): mutating webhooks one after the other, each seeing the previous
//! one's patch, with one reinvocation round for `reinvocationPolicy: IfNeeded`; validating webhooks
//! all at once on the final object, the first refusal (in webhook order) answering the request.

use std::collections::BTreeSet;

use serde_json::Value;

use super::client::{CallFailure, Clients};
use super::errors::{denied, dry_run_unsupported, CallError, HookError};
use super::matching::{object_name, operation, should_call, Hook};
use super::patch;
use super::review::{self, GroupVersion, ReviewRequest, ReviewResponse, ReviewVersion};
use crate::apiserver::admission::{Attributes, Operation};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::ApiResult;

/// Runs the mutating webhooks on `obj` (`None` on a delete).
pub async fn mutate(
    clients: &Clients,
    reg: &Registry,
    a: &Attributes<'_>,
    hooks: &[Hook],
    mut obj: Option<&mut Value>,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    // Webhooks with IfNeeded that have run, and those a later change requires to run again.
    let mut invoked_reinvocable: Vec<usize> = Vec::new();
    let mut reinvoke: BTreeSet<usize> = BTreeSet::new();
    for (i, hook) in hooks.iter().enumerate() {
        if !should_call(reg, a, hook, obj.as_deref(), old).await? {
            continue;
        }
        let changed = mutate_one(clients, reg, a, hook, obj.as_deref_mut(), old, warnings).await?;
        if changed {
            // Upstream's RequireReinvokingPreviouslyInvokedPlugins.
            reinvoke.extend(invoked_reinvocable.iter().copied());
        }
        if hook.reinvocable() {
            invoked_reinvocable.push(i);
        }
    }
    // One more round for the IfNeeded webhooks whose input a later webhook changed; a webhook
    // skipped in the first round is not called for the first time here (as upstream).
    for i in reinvoke {
        let hook = &hooks[i];
        if !should_call(reg, a, hook, obj.as_deref(), old).await? {
            continue;
        }
        mutate_one(clients, reg, a, hook, obj.as_deref_mut(), old, warnings).await?;
    }
    Ok(())
}

/// One mutating webhook: call, apply its patch. Returns whether the object changed; a failure to
/// call is ignored or fails the request as the webhook's failurePolicy says.
async fn mutate_one(
    clients: &Clients,
    reg: &Registry,
    a: &Attributes<'_>,
    hook: &Hook,
    obj: Option<&mut Value>,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ApiResult<bool> {
    let result = match call(clients, reg, a, hook, obj.as_deref(), old, true).await {
        Ok(resp) => {
            warnings.extend(resp.warnings.iter().cloned());
            if !resp.allowed {
                return Err(denied(hook.name(), resp.status.as_ref()));
            }
            match (&resp.patch, &resp.patch_type) {
                (Some(p), Some(t)) => {
                    patch::apply(hook.name(), obj, p, t, a.op == Operation::Update)
                }
                _ => Ok(false),
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(changed) => Ok(changed),
        Err(HookError::Call(e)) if hook.ignores_failures() => {
            tracing::warn!(
                "Failed calling webhook, failing open {}: {}",
                hook.name(),
                e.text()
            );
            Ok(false)
        }
        Err(HookError::Call(e)) => {
            tracing::warn!(
                "Failed calling webhook, failing closed {}: {}",
                hook.name(),
                e.text()
            );
            Err(e.into_api_error())
        }
        Err(HookError::Denied(e)) => Err(e),
    }
}

/// Runs the validating webhooks that match, concurrently.
pub async fn validate(
    clients: &Clients,
    reg: &Registry,
    a: &Attributes<'_>,
    hooks: &[Hook],
    obj: Option<&Value>,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let mut relevant = Vec::new();
    for hook in hooks {
        if should_call(reg, a, hook, obj, old).await? {
            relevant.push(hook);
        }
    }
    if relevant.is_empty() {
        return Ok(());
    }
    let calls = relevant
        .iter()
        .map(|hook| call(clients, reg, a, hook, obj, old, false));
    let results = futures::future::join_all(calls).await;
    let mut first_error = None;
    for (hook, result) in relevant.iter().zip(results) {
        let err = match result {
            Ok(resp) => {
                warnings.extend(resp.warnings.iter().cloned());
                if resp.allowed {
                    continue;
                }
                denied(hook.name(), resp.status.as_ref())
            }
            Err(HookError::Call(e)) if hook.ignores_failures() => {
                tracing::warn!(
                    "Failed calling webhook, failing open {}: {}",
                    hook.name(),
                    e.text()
                );
                continue;
            }
            Err(HookError::Call(e)) => {
                tracing::warn!(
                    "Failed calling webhook, failing closed {}: {}",
                    hook.name(),
                    e.text()
                );
                e.into_api_error()
            }
            Err(HookError::Denied(e)) => e,
        };
        first_error.get_or_insert(err);
    }
    first_error.map_or(Ok(()), Err)
}

/// One call: the dry-run check, the review, the POST, the answer's checks.
async fn call(
    clients: &Clients,
    reg: &Registry,
    a: &Attributes<'_>,
    hook: &Hook,
    obj: Option<&Value>,
    old: Option<&Value>,
    mutating: bool,
) -> Result<ReviewResponse, HookError> {
    let name = hook.name();
    let spec = hook.spec();
    let fail = |reason: String| HookError::Call(CallError::new(name, reason));
    if a.dry_run {
        match hook.side_effects() {
            None => return Err(fail("Webhook SideEffects is nil".into())),
            Some("None" | "NoneOnDryRun") => {}
            Some(_) => return Err(HookError::Denied(dry_run_unsupported(name))),
        }
    }
    let version = ReviewVersion::choose(spec)
        .map_err(|e| fail(format!("could not create admission objects: {e}")))?;
    let uid = uuid::Uuid::new_v4().to_string();
    let op = operation(a.op);
    let object_name = object_name(a, obj, old);
    let (kind, resource) = kind_and_resource(a);
    let request = ReviewRequest {
        uid: uid.clone(),
        kind,
        resource,
        subresource: a.sub.unwrap_or(""),
        name: &object_name,
        namespace: a.ns.unwrap_or(""),
        operation: op,
        user: a.user,
        object: obj,
        old_object: old,
        dry_run: a.dry_run,
        options: review::options(op, a.dry_run),
    };
    let body = serde_json::to_vec(&review::encode(version, &request))
        .map_err(|e| fail(format!("could not create admission objects: {e}")))?;
    let client_config = spec.get("clientConfig").unwrap_or(&Value::Null);
    let answer = clients
        .call(reg, client_config, hook.timeout_secs(), body)
        .await
        .map_err(|e| match e {
            CallFailure::Config(e) => fail(format!("could not get REST client: {e}")),
            CallFailure::Post(e) => fail(format!("failed to call webhook: {e}")),
        })?;
    review::verify(version, &uid, mutating, &answer)
        .map_err(|e| fail(format!("received invalid webhook response: {e}")))
}

/// The kind and resource the review names: a subresource's own kind where it has one (an
/// Eviction, a Scale), else the resource's.
pub fn kind_and_resource(a: &Attributes<'_>) -> (GroupVersion, GroupVersion) {
    let info = a.info;
    let kind = match a
        .sub
        .and_then(|s| info.subresource(s))
        .filter(|s| !s.kind.is_empty())
    {
        Some(s) => GroupVersion {
            group: s.group.clone(),
            version: s.version.clone(),
            name: s.kind.clone(),
        },
        None => GroupVersion {
            group: info.group.clone(),
            version: info.version.clone(),
            name: info.kind.clone(),
        },
    };
    let resource = GroupVersion {
        group: info.group.clone(),
        version: info.version.clone(),
        name: info.plural.clone(),
    };
    (kind, resource)
}
