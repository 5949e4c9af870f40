//! Admission: the plugins every create and update passes through after authorization, in upstream's
//! order (`kube-apiserver --enable-admission-plugins` defaults), as `plugin/pkg/admission/*` does.
//!
//! Where to start: [`Chain::standard`] lists the plugins; each is one file with upstream's name. A
//! request's writes reach the chain through the store's [`WriteHooks`](crate::apiserver::registry::store::WriteHooks)
//! (implemented by the verb handlers' `Call`): every plugin's [`Plugin::admit`] (mutating) runs after
//! the kind's defaulting and before its validation, then every [`Plugin::validate`] on exactly the
//! object the store is about to write, so a denial stores nothing, on dry runs too.
//!
//! Deletes, evictions and TokenRequests pass [`Chain::admit_delete`] / [`Chain::admit`] from their
//! handlers (NodeRestriction, ValidatingAdmissionPolicy and the admission [`webhook`]s judge them). Namespace lifecycle (creating in a missing or
//! terminating namespace) is checked by the store itself. Writes the server makes for itself
//! (bootstrap, bindings, the eviction's own delete) do not pass through here.

pub mod certificates;
pub mod default_tolerations;
pub mod limit_ranger;
pub mod node_restriction;
pub mod pod_security;
pub mod priority;
pub mod resource_quota;
pub mod service_account;
pub mod validating_admission_policy;
pub mod webhook;

use serde_json::Value;

use crate::apiserver::authz::User;
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult};

/// What is being done (upstream's `admission.Operation`). Deletes reach only
/// [`Plugin::admit_delete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// One write as the plugins see it (upstream's `admission.Attributes`).
pub struct Attributes<'a> {
    pub info: &'a ResourceInfo,
    pub ns: Option<&'a str>,
    /// The object the URL names (`""` on a create, which names none).
    pub name: &'a str,
    /// `status`, `approval`, ... for writes to a subresource.
    pub sub: Option<&'a str>,
    pub op: Operation,
    /// Who asks; `None` when the server was started without authentication.
    pub user: Option<&'a User>,
    /// For plugins that ask what the user may do (approving a CSR needs `approve` on its signer).
    pub authorizer: Option<&'a crate::apiserver::authz::Authorizer>,
    pub dry_run: bool,
}

impl Attributes<'_> {
    /// Whether this is a write of the core (`""` group) `plural`, not a subresource.
    pub fn is_core(&self, plural: &str) -> bool {
        self.sub.is_none() && self.info.group.is_empty() && self.info.plural == plural
    }

    /// Upstream's `admission.NewForbidden`: `<resource> "<name>" is forbidden: <why>`.
    pub fn forbidden(&self, obj: &Value, why: &str) -> ApiError {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        ApiError::forbidden(self.info, name, why)
    }
}

/// One admission plugin. Both hooks default to admitting.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    /// Mutating admission: may change `obj`.
    async fn admit(
        &self,
        _reg: &Registry,
        _a: &Attributes<'_>,
        _obj: &mut Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        Ok(())
    }

    /// Validating admission on the object as it will be stored.
    async fn validate(
        &self,
        _reg: &Registry,
        _a: &Attributes<'_>,
        _obj: &Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        Ok(())
    }

    /// Admission of a delete of the object `a.name` (only NodeRestriction has a say).
    async fn admit_delete(&self, _reg: &Registry, _a: &Attributes<'_>) -> ApiResult<()> {
        Ok(())
    }
}

/// Settings of the plugins that have flags (upstream's `--default-not-ready-toleration-seconds`,
/// `--default-unreachable-toleration-seconds`, `--disable-admission-plugins`).
#[derive(Clone, Debug)]
pub struct Options {
    pub not_ready_toleration_seconds: i64,
    pub unreachable_toleration_seconds: i64,
    /// Upstream names of plugins not to run (e.g. `ServiceAccount`).
    pub disabled: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            not_ready_toleration_seconds: 300,
            unreachable_toleration_seconds: 300,
            disabled: vec![],
        }
    }
}

/// The plugins `--disable-admission-plugins` may name, in the order they run. (NamespaceLifecycle is
/// the store's own check and cannot be turned off here.)
pub const PLUGIN_NAMES: &[&str] = &[
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "CertificateApproval",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];

/// The plugins in the order they run.
pub struct Chain {
    plugins: Vec<Box<dyn Plugin>>,
}

impl Chain {
    /// Upstream's default set (with kubeadm's NodeRestriction), in its order: LimitRanger,
    /// ServiceAccount, NodeRestriction, PodSecurity, Priority,
    /// DefaultTolerationSeconds, CertificateApproval/Signing/SubjectRestriction (one plugin here, named
    /// by the first), MutatingAdmissionWebhook, ValidatingAdmissionPolicy
    /// ([`validating_admission_policy`]), ValidatingAdmissionWebhook ([`webhook`]),
    /// ResourceQuota (last, so what it charges is what is stored); less the disabled.
    pub fn standard(opts: &Options) -> Chain {
        let all: Vec<(&str, Box<dyn Plugin>)> = vec![
            ("LimitRanger", Box::new(limit_ranger::LimitRanger)),
            ("ServiceAccount", Box::new(service_account::ServiceAccount)),
            (
                "NodeRestriction",
                Box::new(node_restriction::NodeRestriction),
            ),
            ("PodSecurity", Box::new(pod_security::PodSecurity)),
            ("Priority", Box::new(priority::Priority)),
            (
                "DefaultTolerationSeconds",
                Box::new(default_tolerations::DefaultTolerationSeconds::new(opts)),
            ),
            ("CertificateApproval", Box::new(certificates::Certificates)),
            // Upstream runs MutatingAdmissionWebhook after every built-in mutating plugin, then
            // ValidatingAdmissionPolicy and ValidatingAdmissionWebhook before ResourceQuota, so
            // quota charges what policies and webhooks let through.
            (
                "MutatingAdmissionWebhook",
                Box::<webhook::MutatingAdmissionWebhook>::default(),
            ),
            (
                "ValidatingAdmissionPolicy",
                Box::<validating_admission_policy::ValidatingAdmissionPolicy>::default(),
            ),
            (
                "ValidatingAdmissionWebhook",
                Box::<webhook::ValidatingAdmissionWebhook>::default(),
            ),
            (
                "ResourceQuota",
                Box::<resource_quota::ResourceQuota>::default(),
            ),
        ];
        Chain {
            plugins: all
                .into_iter()
                .filter(|(name, _)| !opts.disabled.iter().any(|d| d == name))
                .map(|(_, p)| p)
                .collect(),
        }
    }

    /// No plugins (tests of the store alone).
    pub fn empty() -> Chain {
        Chain { plugins: vec![] }
    }

    pub async fn admit(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        for p in &self.plugins {
            p.admit(reg, a, obj, old, warnings).await?;
        }
        Ok(())
    }

    /// A delete's admission (`a.op` is [`Operation::Delete`]).
    pub async fn admit_delete(&self, reg: &Registry, a: &Attributes<'_>) -> ApiResult<()> {
        for p in &self.plugins {
            p.admit_delete(reg, a).await?;
        }
        Ok(())
    }

    pub async fn validate(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        for p in &self.plugins {
            p.validate(reg, a, obj, old, warnings).await?;
        }
        Ok(())
    }
}
