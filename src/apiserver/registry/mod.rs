//! The registry: one generic store for every resource, and the per-kind rules it applies.
//!
//! Start at [`store`]: `Registry` serves create, get, list, watch, update, patch and delete for any
//! row of the catalog, over the [`watch_cache`] (objects kept compact as [`cached_object`]s) and the storage backend. What differs per kind is a
//! [`strategy`] (names, defaults, validation, status rules), with [`defaults`] and [`validation`]
//! holding upstream's defaulting and validation functions the strategies call. Patching ([`patch`]),
//! server-side apply ([`managed_fields`] over [`fieldpath`], with merge facts from [`schema`]),
//! selectors ([`selectors`]) and `fieldValidation` ([`field_validation`]) are the generic parts of a
//! write or a list. [`reviews`] answers the create-only review kinds, [`eviction`] the `pods/eviction` subresource, [`bootstrap`] creates what a fresh cluster has, [`service_alloc`] gives Services their cluster IPs and node ports, [`write_mark`] lets the server's own lookups read the cache and still see its acknowledged writes.

pub mod bookmark;
pub mod bootstrap;
pub mod cached_object;
pub mod conversion;
pub mod crd_facts;
pub mod defaults;
mod empty_objects;
pub mod eviction;
pub mod field_validation;
pub mod fieldpath;
pub mod managed_fields;
pub mod patch;
pub mod reviews;
pub mod schema;
pub mod selectors;
pub mod service_alloc;
pub mod store;
pub mod stored_json;
pub mod strategy;
pub mod validation;
pub mod watch_cache;
pub mod write_mark;
