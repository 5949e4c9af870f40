//! Quotas, limits, priorities, disruption budgets and autoscalers: ResourceQuotas, LimitRanges,
//! PriorityClasses, PodDisruptionBudgets, HorizontalPodAutoscalers (upstream's
//! `pkg/registry/{core,scheduling,policy,autoscaling}/*/strategy.go`).

use serde_json::Value;

use super::{Printer, Strategy};
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::validation::resources;
use crate::apiserver::status::Cause;

/// ResourceQuotas.
pub struct ResourceQuotas;

impl Strategy for ResourceQuotas {
    fn printer(&self) -> Printer {
        Printer::ResourceQuota
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::resource_quota(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::resource_quota(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::resource_quota_update(new, old, causes);
    }
}

/// LimitRanges.
pub struct LimitRanges;

impl Strategy for LimitRanges {
    fn defaults(&self, obj: &mut Value) {
        defaults::limit_range_defaults(obj);
    }
}

/// PriorityClasses: value and preemption policy fixed once created.
pub struct PriorityClasses;

impl Strategy for PriorityClasses {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::PriorityClass
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::priority_class(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::priority_class(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::priority_class_update(new, old, causes);
    }
}

/// PodDisruptionBudgets.
pub struct PodDisruptionBudgets;

impl Strategy for PodDisruptionBudgets {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::PodDisruptionBudget
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::pdb(obj, causes);
    }
}

/// HorizontalPodAutoscalers in `version` (v1 or v2: their defaults differ).
pub struct HorizontalPodAutoscalers {
    pub version: &'static str,
}

impl Strategy for HorizontalPodAutoscalers {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::HorizontalPodAutoscaler
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::horizontal_pod_autoscaler(obj, self.version);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::hpa(obj, causes);
    }
}
