//! admissionregistration.k8s.io kinds: webhook configurations and admission policies (upstream's
//! `pkg/registry/admissionregistration/*/strategy.go`). All track `metadata.generation`.

use serde_json::Value;

use super::{Plain, Printer, Strategy};
use crate::apiserver::registry::defaults;

/// Validating (`mutating: false`) and mutating webhook configurations: upstream's per-webhook defaults.
pub struct WebhookConfigurations {
    pub mutating: bool,
}

impl Strategy for WebhookConfigurations {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        if self.mutating {
            Printer::MutatingWebhook
        } else {
            Printer::ValidatingWebhook
        }
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::webhook_configuration(obj, self.mutating);
    }
}

/// ValidatingAdmissionPolicies.
pub const VALIDATING_ADMISSION_POLICIES: Plain =
    Plain::new(Printer::ValidatingAdmissionPolicy).generation();
/// ValidatingAdmissionPolicyBindings.
pub const VALIDATING_ADMISSION_POLICY_BINDINGS: Plain =
    Plain::new(Printer::ValidatingAdmissionPolicyBinding).generation();
