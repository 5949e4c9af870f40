//! CustomResourceDefinitions and the custom resources they define (upstream's
//! `apiextensions-apiserver/pkg/registry/customresourcedefinition/strategy.go` and
//! `pkg/registry/customresource/strategy.go`). What a CRD means for the catalog is in `crate::apiserver::crd`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Strategy;
use crate::apiserver::catalog::{CustomVersion, ResourceInfo};
use crate::apiserver::crd;
use crate::apiserver::registry::store::{now_rfc3339, Registry};
use crate::apiserver::status::Cause;

/// CustomResourceDefinitions: names accepted or refused against the other CRDs (`NamesAccepted`),
/// the status the request carries kept on create, the deleted CRD returned.
pub struct CustomResourceDefinitions;

impl Strategy for CustomResourceDefinitions {
    fn tracks_generation(&self) -> bool {
        true
    }
    fn returns_deleted_object(&self) -> bool {
        true
    }
    fn prepare_for_create(&self, _info: &ResourceInfo, _obj: &mut Value) {}
    fn begin_create(&self, registry: &Registry, _info: &ResourceInfo, obj: &mut Value) {
        accept_names(registry, obj);
    }
    fn begin_update(&self, registry: &Registry, new: &mut Value) {
        accept_names(registry, new);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        causes.extend(crd::validate(obj));
    }
}

/// The CRD's conditions and accepted names, given any other CRD serving the same plural.
fn accept_names(registry: &Registry, obj: &mut Value) {
    let conflict = registry.crd_conflict(obj);
    crd::prepare_with(obj, &now_rfc3339(), conflict.as_deref());
}

/// Custom resources of one served version: validated against the version's structural schema;
/// always carrying a generation, as upstream's custom resource strategy.
pub struct CustomResources(pub Arc<CustomVersion>);

impl Strategy for CustomResources {
    fn tracks_generation(&self) -> bool {
        true
    }
    /// The CRD's `additionalPrinterColumns`.
    fn column_definitions(&self) -> Vec<Value> {
        crd::table::column_definitions(&self.0)
    }
    fn row_cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        crd::table::row_cells(&self.0, obj, now)
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        causes.extend(self.0.validate(obj));
    }
    /// `x-kubernetes-validations`, on creates and on updates of the resource and its subresources.
    fn validate_write(&self, new: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        let found = self.0.validate_rules(new, old, causes);
        causes.extend(found);
    }
}
