//! networking.k8s.io and discovery.k8s.io kinds: Ingresses, IngressClasses, NetworkPolicies,
//! ServiceCIDRs, IPAddresses, EndpointSlices (upstream's `pkg/registry/networking/*/strategy.go`,
//! `pkg/registry/discovery/endpointslice/strategy.go`).

use serde_json::Value;

use super::{Plain, Printer, Strategy};
use crate::apiserver::registry::defaults;
use crate::apiserver::registry::validation::{fields::is_update, resources};
use crate::apiserver::status::Cause;

/// Ingresses.
pub struct Ingresses;

impl Strategy for Ingresses {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::Ingress
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::ingress(obj, causes);
    }
}

/// IngressClasses: the controller is fixed once created.
pub struct IngressClasses;

impl Strategy for IngressClasses {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::IngressClass
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::ingress_class(obj);
    }
    // Upstream judges an update by its update rules first, then the object's own;
    // `validate_update` does both, in that order.
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        if !is_update(obj) {
            resources::ingress_class(obj, causes);
        }
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::ingress_class_update(new, old, causes);
    }
}

/// NetworkPolicies: policy types derived from the rules when absent.
pub struct NetworkPolicies;

impl Strategy for NetworkPolicies {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn printer(&self) -> Printer {
        Printer::NetworkPolicy
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::network_policy(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::network_policy(obj, causes);
    }
}

/// ServiceCIDRs.
pub const SERVICE_CIDRS: Plain = Plain::new(Printer::ServiceCidr).generation();
/// IPAddresses.
pub const IP_ADDRESSES: Plain = Plain::new(Printer::IpAddress).generation();

/// EndpointSlices: the address type is fixed once created.
pub struct EndpointSlices;

impl Strategy for EndpointSlices {
    fn printer(&self) -> Printer {
        Printer::EndpointSlice
    }
    fn defaults(&self, obj: &mut Value) {
        defaults::endpoint_slice(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        resources::endpoint_slice(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        resources::endpoint_slice_update(new, old, causes);
    }
}
