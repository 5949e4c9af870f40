//! Dynamic admission webhooks: upstream's MutatingAdmissionWebhook and ValidatingAdmissionWebhook
//! plugins (`k8s.io/apiserver/pkg/admission/plugin/webhook`), calling the HTTPS servers that
//! admissionregistration.k8s.io/v1 MutatingWebhookConfigurations and
//! ValidatingWebhookConfigurations name.
//!
//! Where to start: [`MutatingAdmissionWebhook`] and [`ValidatingAdmissionWebhook`] are two plugins
//! of the [`Chain`](super::Chain), placed as upstream places them (after the built-in mutating
//! plugins, before ResourceQuota): the mutating one's `admit` runs after every built-in `admit` and
//! before the kind's validation (its patch must still pass it), the validating one's `validate` on
//! the object as it will be stored. Deletes reach both through `admit_delete` with the stored object
//! as `oldObject`.
//!
//! One file per concept: [`matching`] (which webhooks a request calls: configurations from the
//! watch cache, selectors, rules), [`rules`] and [`selectors`] (the pure predicates), [`review`]
//! (the AdmissionReview sent and the answer's checks), [`client`] (the HTTPS call, services
//! resolved to endpoints), [`patch`] (a mutating webhook's JSONPatch), [`errors`] (upstream's
//! messages for failures and denials) and [`dispatch`] (the order of calls, failurePolicy,
//! reinvocation).
//!
//! A request that no webhook's rules select costs a read of the (usually empty) configuration list
//! from the watch cache and a walk over its rules: no namespace read, no object copy, no network.
//!
//! Not done: CONNECT operations and deletecollection (rkube's admission does not see them),
//! the `authorizer` variable of matchConditions (CEL; see [`matching`]), conversion for `matchPolicy: Equivalent`, reinvoking
//! the built-in plugins in the reinvocation round, audit annotations (no audit log), keep-alive
//! connections to webhooks (each call dials anew).

pub mod client;
pub mod dispatch;
pub mod errors;
pub mod matching;
pub mod patch;
pub mod review;
pub mod rules;
pub mod selectors;

use serde_json::Value;

use super::{Attributes, Plugin};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult};
use client::Clients;
use matching::{hooks, rule_attrs, Hook};

/// The webhooks (of one kind of configuration) whose rules select this request; none for the
/// admission configuration resources themselves, which webhooks never see.
async fn selected(reg: &Registry, a: &Attributes<'_>, mutating: bool) -> ApiResult<Vec<Hook>> {
    if rules::is_exempt(&a.info.group, &a.info.plural) {
        return Ok(vec![]);
    }
    let all = hooks(reg, mutating).await?;
    if all.is_empty() {
        return Ok(all);
    }
    let attrs = rule_attrs(a);
    Ok(all
        .into_iter()
        .filter(|h| rules::any_rule_matches(h.spec(), &attrs))
        .collect())
}

/// What a delete shows the webhooks of one kind: those selected, and the object it removes as
/// `oldObject`; `None` when no webhook is selected or the object is already gone (the delete answers
/// 404 itself).
async fn delete_review(
    reg: &Registry,
    a: &Attributes<'_>,
    mutating: bool,
) -> ApiResult<Option<(Vec<Hook>, Value)>> {
    let hooks = selected(reg, a, mutating).await?;
    if hooks.is_empty() {
        return Ok(None);
    }
    match reg.get(a.info, a.ns, a.name).await {
        Ok(old) => Ok(Some((hooks, old))),
        Err(ApiError { code: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Upstream's MutatingAdmissionWebhook.
#[derive(Default)]
pub struct MutatingAdmissionWebhook {
    clients: Clients,
}

#[async_trait::async_trait]
impl Plugin for MutatingAdmissionWebhook {
    async fn admit(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let hooks = selected(reg, a, true).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        dispatch::mutate(&self.clients, reg, a, &hooks, Some(obj), old, warnings).await
    }

    async fn admit_delete(&self, reg: &Registry, a: &Attributes<'_>) -> ApiResult<()> {
        let Some((hooks, old)) = delete_review(reg, a, true).await? else {
            return Ok(());
        };
        // Warnings of a delete have nowhere to go yet (the delete handler sends none).
        let mut warnings = Vec::new();
        let clients = &self.clients;
        dispatch::mutate(clients, reg, a, &hooks, None, Some(&old), &mut warnings).await
    }
}

/// Upstream's ValidatingAdmissionWebhook.
#[derive(Default)]
pub struct ValidatingAdmissionWebhook {
    clients: Clients,
}

#[async_trait::async_trait]
impl Plugin for ValidatingAdmissionWebhook {
    async fn validate(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let hooks = selected(reg, a, false).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        dispatch::validate(&self.clients, reg, a, &hooks, Some(obj), old, warnings).await
    }

    async fn admit_delete(&self, reg: &Registry, a: &Attributes<'_>) -> ApiResult<()> {
        let Some((hooks, old)) = delete_review(reg, a, false).await? else {
            return Ok(());
        };
        let mut warnings = Vec::new();
        let clients = &self.clients;
        dispatch::validate(clients, reg, a, &hooks, None, Some(&old), &mut warnings).await
    }
}
