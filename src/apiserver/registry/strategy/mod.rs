//! Per-kind strategies: the small part of each resource's behaviour the generic store can't know.
//!
//! As in upstream's registry (`pkg/registry/<group>/<kind>/strategy.go`), the one generic store
//! ([`super::store::Registry`]) serves every verb for every resource and asks the row's strategy only
//! what differs: how names are checked, what is defaulted and reset on create, what a spec update may
//! not touch (status) and what a status update may not touch (everything else), whether the kind tracks
//! `metadata.generation`, the kind's own validation, how a delete is held (finalizers in the spec,
//! graceful periods), and which Table printer renders it.
//!
//! Where to start: the [`Strategy`] trait below (every hook has upstream's default), [`Plain`] for kinds
//! whose only differences are flags, and one file per kind family for the rest. A catalog row names its
//! strategy (`catalog::builtin_resources`), so a kind with special rules is one file here plus one line
//! there. Data the catalog row already holds (scope, verbs, subresources, selectable fields, the
//! normalizer that canonicalizes a body) is not repeated here.

pub mod admission;
pub mod apiextensions;
pub mod batch;
pub mod certificates;
pub mod config;
pub mod coordination;
pub mod events;
pub mod namespaces;
pub mod networking;
pub mod nodes;
pub mod pods;
pub mod policy;
pub mod rbac;
pub mod services;
pub mod volumes;
pub mod workloads;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::store::Registry;
use crate::apiserver::registry::validation::NameRule;
use crate::apiserver::status::Cause;
use crate::apiserver::wire::table;
pub use crate::apiserver::wire::table::Printer;

/// What a kind does differently from the generic store. Every hook has upstream's default behaviour,
/// so an implementation lists only what its kind changes.
pub trait Strategy: Send + Sync {
    /// Which rule names follow (upstream's `ValidateObjectMeta` name function).
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// Whether spec changes bump `metadata.generation` (upstream sets it on controllers' kinds; pods
    /// and configmaps have none).
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether PUT on a missing object creates it (`AllowCreateOnUpdate`).
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// Whether a finished delete answers with the deleted object rather than a success `Status`
    /// (`ReturnDeletedObject`).
    fn returns_deleted_object(&self) -> bool {
        false
    }

    /// Which of upstream's Table printers `kubectl get` sees (the kind's `TableConvertor`).
    fn printer(&self) -> Printer {
        Printer::Default
    }

    /// The Table's columns; by default the [`Strategy::printer`]'s. A kind with a printer of its own
    /// overrides this and [`Strategy::row_cells`] in its file.
    fn column_definitions(&self) -> Vec<Value> {
        table::column_definitions(self.printer())
    }

    /// One object's Table cells, matching [`Strategy::column_definitions`].
    fn row_cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        table::row_cells(self.printer(), obj, now)
    }

    /// Upstream's defaulting functions (`SetDefaults_X`), applied to every create and spec update.
    fn defaults(&self, _obj: &mut Value) {}

    /// Resets on create, after defaulting and before validation (`PrepareForCreate`): by default a
    /// kind with a status subresource starts with no status.
    fn prepare_for_create(&self, info: &ResourceInfo, obj: &mut Value) {
        reset_status(info, obj);
    }

    /// Work on create that needs the registry's state, such as allocations (upstream's store
    /// `BeginCreate` hook).
    fn begin_create(&self, _registry: &Registry, _info: &ResourceInfo, _obj: &mut Value) {}

    /// What a spec update keeps from the stored object (`PrepareForUpdate`): by default the status,
    /// for kinds with a status subresource.
    fn prepare_for_update(&self, info: &ResourceInfo, new: &mut Value, old: &Value) {
        keep_status(info, new, old);
    }

    /// Work on update that needs the registry's state (upstream's store `BeginUpdate` hook).
    fn begin_update(&self, _registry: &Registry, _new: &mut Value) {}

    /// Cluster-wide resources a write of this kind takes and gives back (a Service's cluster IPs and
    /// node ports), or `None`: see [`Allocations`].
    fn allocations(&self) -> Option<&dyn Allocations> {
        None
    }

    /// The object a write to `subresource` stores, or `None` when the kind has no such writable
    /// subresource. By default only `status` is written: the status from the request, the rest from
    /// the stored object (`PrepareForUpdate` of the status strategy).
    fn subresource_update(&self, subresource: &str, obj: &Value, old: &Value) -> Option<Value> {
        (subresource == "status").then(|| status_update(obj, old))
    }

    /// What a write to `subresource` may not change, beyond [`Strategy::validate`]'s rules (the
    /// subresource strategy's `ValidateUpdate`).
    fn validate_subresource_update(
        &self,
        _subresource: &str,
        _new: &Value,
        _old: &Value,
        _causes: &mut Vec<Cause>,
    ) {
    }

    /// The kind's own rules for an object being written (`Validate`); metadata is checked by the
    /// store.
    fn validate(&self, _obj: &Value, _causes: &mut Vec<Cause>) {}

    /// What an update may not change, beyond [`Strategy::validate`]'s rules (`ValidateUpdate`).
    fn validate_update(&self, _new: &Value, _old: &Value, _causes: &mut Vec<Cause>) {}

    /// Rules checked on every write of an object, main resource and subresources alike, that need
    /// to know the stored object (`old`, `None` on create): custom resources' validation rules,
    /// whose transition rules compare with it (upstream runs them in both the resource's and the
    /// status strategy).
    fn validate_write(&self, _new: &Value, _old: Option<&Value>, _causes: &mut Vec<Cause>) {}

    /// Why an object of this kind may never be deleted, if it may not (e.g. `default`).
    fn delete_forbidden(&self, _name: &str) -> Option<&'static str> {
        None
    }

    /// For kinds deleted gracefully (pods), the grace period a delete asks for or the kind's default
    /// (`CheckGracefulDelete`); `None` for everything else, which goes at once.
    fn graceful_delete_period(&self, _obj: &Value, _requested: Option<i64>) -> Option<i64> {
        None
    }

    /// Whether something besides `metadata.finalizers` holds a delete (a namespace's
    /// `spec.finalizers`).
    fn holds_deletion(&self, _obj: &Value) -> bool {
        false
    }

    /// Changes when a delete starts but is held (a namespace turns `Terminating`).
    fn begin_delete(&self, _obj: &mut Value) {}

    /// Whether an object marked for deletion, with no finalizers left, may now go.
    fn deletion_complete(&self, obj: &Value) -> bool {
        !self.holds_deletion(obj)
    }
}

/// Allocations that live outside the object (upstream's service REST `beginCreate`/`beginUpdate`
/// transactions). The store calls `allocate_*` after the strategy's preparation and before validation
/// and the write, then [`AllocationTxn::commit`] when the write succeeded or
/// [`AllocationTxn::revert`] when anything after the allocation failed; [`Allocations::release`] when
/// the object is gone.
#[async_trait::async_trait]
pub trait Allocations: Send + Sync {
    async fn allocate_create(
        &self,
        registry: &Registry,
        obj: &mut Value,
        dry_run: bool,
    ) -> crate::apiserver::status::ApiResult<Box<dyn AllocationTxn>>;
    async fn allocate_update(
        &self,
        registry: &Registry,
        new: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> crate::apiserver::status::ApiResult<Box<dyn AllocationTxn>>;
    async fn release(&self, registry: &Registry, obj: &Value);
}

/// The open half of an allocation: what to give back on success (deferred releases) or failure (the
/// new allocations).
#[async_trait::async_trait]
pub trait AllocationTxn: Send {
    async fn commit(self: Box<Self>, registry: &Registry);
    async fn revert(self: Box<Self>, registry: &Registry);
}

/// Finishes `txn` as `ok` says.
pub async fn finish(txn: Option<Box<dyn AllocationTxn>>, registry: &Registry, ok: bool) {
    match txn {
        Some(t) if ok => t.commit(registry).await,
        Some(t) => t.revert(registry).await,
        None => {}
    }
}

impl std::fmt::Debug for dyn Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Strategy({:?})", self.printer())
    }
}

/// The strategy of a kind with no code of its own: only flags differ (names, generation, PUT creating,
/// its printer).
#[derive(Clone, Copy, Debug)]
pub struct Plain {
    printer: Printer,
    name_rule: NameRule,
    generation: bool,
    create_on_update: bool,
}

impl Default for Plain {
    fn default() -> Self {
        Plain::new(Printer::Default)
    }
}

impl Plain {
    pub const fn new(printer: Printer) -> Self {
        Plain {
            printer,
            name_rule: NameRule::Subdomain,
            generation: false,
            create_on_update: false,
        }
    }
    /// Spec changes bump `metadata.generation`.
    pub const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    /// PUT on a missing object creates it.
    pub const fn create_on_update(mut self) -> Self {
        self.create_on_update = true;
        self
    }
    /// Names are path segments (RBAC, flow control), not DNS subdomains.
    pub const fn path_segment_names(mut self) -> Self {
        self.name_rule = NameRule::PathSegment;
        self
    }
}

impl Strategy for Plain {
    fn name_rule(&self) -> NameRule {
        self.name_rule
    }
    fn tracks_generation(&self) -> bool {
        self.generation
    }
    fn allow_create_on_update(&self) -> bool {
        self.create_on_update
    }
    fn printer(&self) -> Printer {
        self.printer
    }
    fn prepare_for_create(&self, info: &ResourceInfo, obj: &mut Value) {
        reset_status(info, obj);
    }
}

/// A kind with a status subresource starts with no status: only the status writer sets it.
pub fn reset_status(info: &ResourceInfo, obj: &mut Value) {
    if info.subresource("status").is_some() {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
}

/// A spec update of a kind with a status subresource keeps the stored status.
pub fn keep_status(info: &ResourceInfo, new: &mut Value, old: &Value) {
    if info.subresource("status").is_some() {
        keep_field(new, old, "status");
    }
}

/// `new[field]` becomes `old[field]` (absent when `old` has none).
pub fn keep_field(new: &mut Value, old: &Value, field: &str) {
    match old.get(field) {
        Some(s) => new[field] = s.clone(),
        None => {
            if let Some(m) = new.as_object_mut() {
                m.remove(field);
            }
        }
    }
}

/// The parts of an object a status update may not change are taken from `old`; the status from `new`.
pub fn status_update(new: &Value, old: &Value) -> Value {
    let mut out = old.clone();
    keep_field(&mut out, new, "status");
    out
}
