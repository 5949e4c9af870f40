//! The generic registry: every verb for every resource, in one place.
//!
//! Like upstream's `genericregistry.Store`, it owns what all kinds share (keys, resourceVersion
//! preconditions, uid/creationTimestamp/generation, `generateName`, finalizers and graceful deletion,
//! status subresources, dry run, namespace existence) and asks the kind's [`strategy`](crate::apiserver::registry::strategy)
//! only for what differs. Writes go to the [`Store`]; lists and watches are served from the watch cache
//! when the request's resourceVersion semantics allow it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{SecondsFormat, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::apiserver::admission::webhook::client::Clients;
use crate::apiserver::catalog::{ResourceInfo, SharedCatalog};
use crate::apiserver::crd;
use crate::apiserver::crd::conversion::{self as crd_conversion, Direction};
use crate::apiserver::http::request::{Query, RvMatch};
use crate::apiserver::registry::cached_object::{CachedObject, Obj, ViewFields};
use crate::apiserver::registry::conversion::Conversion;
use crate::apiserver::registry::field_validation::check_fields;
use crate::apiserver::registry::fieldpath::{Builtin, Pos};
use crate::apiserver::registry::managed_fields;
use crate::apiserver::registry::selectors::{FieldSelector, LabelSelector};
use crate::apiserver::registry::validation::validate_object_meta;
use crate::apiserver::registry::watch_cache::{
    decode_object, CacheEvent, EventKind, LiveFeed, ResourceCache, WatchCache, WatchStartError,
};
use crate::apiserver::registry::write_mark::WriteMark;
use crate::apiserver::status::Cause;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::protobuf::canonicalize;
use crate::storage::{KeyValue, Store, StoreError};

/// How long a request waits for the watch cache to reach a resourceVersion it asked for.
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);
/// Interval between watch bookmarks.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);
/// Watches without `timeoutSeconds` end after this long (clients re-watch), as upstream's min-request-timeout.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long before a watch's deadline its last bookmark goes out (upstream's cacher: 2 s).
const PRE_DEADLINE_BOOKMARK: Duration = Duration::from_secs(2);

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A list result: the items (already stamped with their resourceVersions), the list's revision and a
/// continue token when more remain.
pub struct ListResult {
    pub items: Vec<Obj>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// The outcome of a delete.
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// The object now waits for finalizers or graceful termination; this is its new state.
    Pending(Value),
}

/// One event for a client's watch.
pub struct WatchItem {
    pub event_type: &'static str,
    pub object: Obj,
    /// The cache event whose object `object` is, unchanged: its encoded frames are shared by every
    /// watcher sent it. `None` for what is this watcher's own (bookmarks, errors, converted objects).
    pub shared: Option<Arc<CacheEvent>>,
}

impl WatchItem {
    /// An event of this watcher's own.
    pub fn own(event_type: &'static str, object: Value) -> Self {
        WatchItem {
            event_type,
            object: object.into(),
            shared: None,
        }
    }
}

/// Body options of DELETE (metav1.DeleteOptions).
#[derive(Default, Debug, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    /// The deprecated `orphanDependents` (overrides the propagation policy, as upstream).
    pub orphan_dependents: Option<bool>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub fn from_request(body: Option<&Value>, q: &Query) -> ApiResult<Self> {
        let mut o = DeleteOptions {
            grace_period_seconds: q.grace_period_seconds,
            propagation_policy: q.propagation_policy.clone(),
            dry_run: q.dry_run,
            ..Default::default()
        };
        if let Some(b) = body {
            if let Some(g) = b.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace_period_seconds = Some(g);
            }
            if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation_policy = Some(p.to_string());
            }
            if let Some(orphan) = b.get("orphanDependents").and_then(Value::as_bool) {
                o.orphan_dependents = Some(orphan);
            }
            if let Some(d) = b.get("dryRun").and_then(Value::as_array) {
                o.dry_run |= d.iter().any(|x| x == "All");
            }
            o.precondition_uid = b
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(String::from);
            o.precondition_rv = b
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(String::from);
        }
        if let Some(p) = &o.propagation_policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                )));
            }
        }
        // Upstream's BeforeDelete: "Negative values will be treated as the value `1s` on the delete
        // path."
        if o.grace_period_seconds.is_some_and(|g| g < 0) {
            o.grace_period_seconds = Some(1);
        }
        Ok(o)
    }
}

/// The garbage collector's finalizers: orphan the dependents, or delete them first.
pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// Upstream's `deletionFinalizersForGarbageCollection`: the object's finalizers with the garbage
/// collector's as a delete asks (`orphanDependents`, else `propagationPolicy` Orphan/Foreground;
/// Background asks for neither), or `None` when the delete asks nothing or they stay as they are.
fn gc_finalizers(obj: &Value, opts: &DeleteOptions) -> Option<Vec<String>> {
    let (orphan, foreground) = match (opts.orphan_dependents, opts.propagation_policy.as_deref()) {
        (Some(orphan), _) => (orphan, false),
        (None, Some("Orphan")) => (true, false),
        (None, Some("Foreground")) => (false, true),
        (None, Some(_)) => (false, false),
        (None, None) => return None,
    };
    let current = finalizers(obj);
    let mut wanted: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    if orphan {
        wanted.push(ORPHAN_FINALIZER.into());
    }
    if foreground {
        wanted.push(FOREGROUND_FINALIZER.into());
    }
    let same = |a: &[String], b: &[String]| {
        a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
    };
    (!same(&wanted, &current)).then_some(wanted)
}

/// The continue token, as upstream encodes it: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"key"}`.
fn encode_continue(rv: i64, start_after_prefix: &str) -> String {
    let j = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start_after_prefix});
    base64::engine::general_purpose::URL_SAFE.encode(j.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(i64, String)> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let j: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = j.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = j.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if rv <= 0 || start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rv, start.to_string()))
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything but metadata and status: what a change to bumps `generation`.
fn spec_of(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Puts an object in upstream's field order (see `wire::protobuf::canonicalize`), with an empty
/// `resourceVersion` holding its place so that the revision set on every read lands where upstream
/// lists it.
fn canonical(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.entry("resourceVersion")
            .or_insert_with(|| Value::String(String::new()));
    }
    canonicalize(obj);
}

/// Serialized form stored: the object in upstream's field order without the value of its
/// resourceVersion (the store's revision is the truth).
fn to_stored(obj: &Value) -> ApiResult<Vec<u8>> {
    let mut v = obj.clone();
    canonical(&mut v);
    encode_stored(&v)
}

/// [`to_stored`] of an object already [`canonical`]: serialized as it is, except that
/// `metadata.resourceVersion` is written empty (the store's revision is the truth) and `selfLink` is
/// left out. Written through [`StoredForm`] rather than on a copy: this runs on every write, and
/// twice more on an update (to tell a no-op).
fn encode_stored(v: &Value) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(&StoredForm(v)).map_err(|e| ApiError::internal(e.to_string()))
}

/// An object as [`encode_stored`] writes it.
struct StoredForm<'a>(&'a Value);

/// An object's metadata as [`encode_stored`] writes it.
struct StoredMeta<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for StoredForm<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(obj) = self.0 else {
            return self.0.serialize(s);
        };
        let mut map = s.serialize_map(Some(obj.len()))?;
        for (k, v) in obj {
            match v {
                Value::Object(meta) if k == "metadata" => {
                    map.serialize_entry(k, &StoredMeta(meta))?
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

impl serde::Serialize for StoredMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0 {
            match k.as_str() {
                "selfLink" => {}
                "resourceVersion" => map.serialize_entry(k, "")?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

/// The selectable fields the watch cache's views of `info`'s objects hold: the kind's field selectors
/// (a kind stored in another version is judged on its converted tree, not on a view).
fn view_fields(info: &ResourceInfo) -> Arc<ViewFields> {
    match info.conversion {
        None => ViewFields::new(&info.field_selectors),
        Some(_) => ViewFields::new(Vec::<String>::new()),
    }
}

fn stamped(kv: &KeyValue) -> ApiResult<Value> {
    decode_object(kv, kv.mod_revision).ok_or_else(|| undecodable(kv))
}

fn undecodable(kv: &KeyValue) -> ApiError {
    ApiError::internal(format!("undecodable object at {}", kv.key))
}

/// A stored object as `info`'s version serves it.
fn served(info: &ResourceInfo, kv: &KeyValue) -> ApiResult<Value> {
    Ok(Conversion::served(info.conversion, stamped(kv)?))
}

/// What is stored for an object of `info`'s version, already [`canonical`] (converted to its storage
/// version if it is a built-in that has one; custom resources go through
/// [`Registry::stored_custom`]).
fn stored_canonical(info: &ResourceInfo, obj: &Value) -> ApiResult<Vec<u8>> {
    match info.conversion {
        Some(c) => to_stored(&(c.to_storage)(obj.clone())),
        None => encode_stored(obj),
    }
}

fn with_rv(mut obj: Value, rv: i64) -> Value {
    meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
    obj
}

pub struct Registry {
    /// The storage backend, behind [`WriteMark`] (which is `written`).
    pub store: Arc<dyn Store>,
    written: Arc<WriteMark>,
    /// The served resources; CRD writes change it (see [`Registry::crd_changed`]).
    pub catalog: Arc<SharedCatalog>,
    pub cache: Arc<WatchCache>,
    /// The Service cluster IP and node port ranges (`--service-cluster-ip-range`,
    /// `--service-node-port-range`).
    pub service_ranges: super::service_alloc::ServiceRanges,
    /// This registry, for the watch streams that outlive a call and convert custom resources through
    /// a conversion webhook (which resolves services through the registry).
    me: std::sync::Weak<Registry>,
    /// The HTTPS clients of CRD conversion webhooks (per caBundle, as admission webhooks').
    conversion_clients: Clients,
}

/// Filters for lists and watches.
struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(info: &ResourceInfo, q: &Query) -> ApiResult<Filter> {
        let labels = LabelSelector::parse(q.label_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(q.field_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        fields
            .validate(&info.field_selectors)
            .map_err(ApiError::bad_request)?;
        Ok(Filter { labels, fields })
    }

    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    fn matches(&self, obj: &Value) -> bool {
        let labels = meta(obj)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.labels.matches(labels) && self.fields.matches(obj)
    }

    /// [`Self::matches`] for a cached object: judged on its view when that holds the fields the
    /// selector reads, else on its decoded tree.
    fn matches_cached(&self, obj: &CachedObject) -> bool {
        if self.is_empty() {
            return true;
        }
        match obj.view_for(self.fields.terms().iter().map(|t| t.field.as_str())) {
            Some(view) => self.matches(view),
            None => self.matches(&obj.tree()),
        }
    }
}

impl Registry {
    pub fn new(store: Arc<dyn Store>, catalog: Arc<SharedCatalog>) -> Arc<Self> {
        Self::with_service_ranges(store, catalog, Default::default())
    }

    /// A registry allocating Service addresses and node ports from `service_ranges`.
    pub fn with_service_ranges(
        store: Arc<dyn Store>,
        catalog: Arc<SharedCatalog>,
        service_ranges: super::service_alloc::ServiceRanges,
    ) -> Arc<Self> {
        let cache = WatchCache::new(
            catalog
                .load()
                .all()
                .iter()
                .map(|r| (r.storage_prefix.clone(), view_fields(r))),
        );
        let written = WriteMark::new(store);
        Arc::new_cyclic(|me| Registry {
            store: written.clone(),
            written,
            catalog,
            cache,
            service_ranges,
            me: me.clone(),
            conversion_clients: Clients::default(),
        })
    }

    pub fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> String {
        match (info.namespaced, ns) {
            (true, Some(ns)) => format!("{}{ns}/{name}", info.storage_prefix),
            _ => format!("{}{name}", info.storage_prefix),
        }
    }

    /// Custom resources read from storage (or the cache) as `info`'s version serves them: those stored
    /// in another version of the CRD are converted (one webhook review for all of them). A no-op,
    /// without copies, for built-ins and objects already in the version.
    async fn served_custom(
        &self,
        info: &ResourceInfo,
        objs: Vec<Value>,
        single: bool,
    ) -> ApiResult<Vec<Value>> {
        if !objs.iter().any(|o| crd_conversion::needed(info, o)) {
            return Ok(objs);
        }
        // Boxed: a webhook's service is resolved through the registry's own reads, which convert.
        Box::pin(crd_conversion::convert(
            self,
            &self.conversion_clients,
            info,
            objs,
            &info.version,
            Direction::Read,
            single,
        ))
        .await
    }

    /// One custom resource as `info`'s version serves it ([`Self::served_custom`]).
    async fn served_one(&self, info: &ResourceInfo, obj: Value) -> ApiResult<Value> {
        if !crd_conversion::needed(info, &obj) {
            return Ok(obj);
        }
        let mut out = self.served_custom(info, vec![obj], true).await?;
        out.pop()
            .ok_or_else(|| ApiError::internal("conversion returned no object"))
    }

    /// Shared (cached) objects as `info`'s version serves them; shared as they are when none needs
    /// converting.
    async fn served_shared(&self, info: &ResourceInfo, items: Vec<Obj>) -> ApiResult<Vec<Obj>> {
        if !items.iter().any(|o| crd_conversion::needed(info, o.view())) {
            return Ok(items);
        }
        let objs = items.iter().map(|o| (*o.tree()).clone()).collect();
        Ok(self
            .served_custom(info, objs, false)
            .await?
            .into_iter()
            .map(Obj::from)
            .collect())
    }

    /// What is stored for a custom resource written through `info`'s version: the object converted to
    /// the CRD's storage version (`obj` itself for built-ins and the storage version), encoded as
    /// [`stored_canonical`] does. `obj` must already be [`canonical`].
    async fn stored_custom(&self, info: &ResourceInfo, obj: &Value) -> ApiResult<Vec<u8>> {
        let storage_version = match info.custom() {
            Some(c) if !c.storage_version.is_empty() && c.storage_version != info.version => {
                c.storage_version.clone()
            }
            _ => return stored_canonical(info, obj),
        };
        let mut out = Box::pin(crd_conversion::convert(
            self,
            &self.conversion_clients,
            info,
            vec![obj.clone()],
            &storage_version,
            Direction::Write,
            true,
        ))
        .await?;
        let converted = out
            .pop()
            .ok_or_else(|| ApiError::internal("conversion returned no object"))?;
        to_stored(&converted)
    }

    fn list_prefix(info: &ResourceInfo, ns: Option<&str>) -> String {
        match (info.namespaced, ns) {
            (true, Some(ns)) => format!("{}{ns}/", info.storage_prefix),
            _ => info.storage_prefix.clone(),
        }
    }

    fn namespaces(&self) -> ApiResult<ResourceInfo> {
        self.builtin_info("", "v1", "namespaces")
    }

    pub async fn get(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let (kv, _) = self.store.get(&Self::key(info, ns, name)).await?;
        match kv {
            Some(kv) => self.served_one(info, served(info, &kv)?).await,
            None => Err(ApiError::not_found(info, name)),
        }
    }

    /// One built-in object by group, version and plural, read from storage, or `None` when it does not
    /// exist (for a lookup that must see other servers' writes too: the quota charge's compare-and-swap).
    pub async fn get_builtin(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        let info = self.builtin_info(group, version, plural)?;
        match self.get(&info, ns, name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The server's own lookup of one built-in object (admission, token checks): from the watch cache
    /// once it holds every write this server acknowledged ([`WriteMark`]), as upstream's plugins read
    /// their listers; from storage when the cache does not have it (created through another server a
    /// moment ago) or is behind.
    pub async fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        let info = self.builtin_info(group, version, plural)?;
        if let Some(cache) = self.caught_up_cache(&info).await {
            if let Some(obj) = cache.get(&Self::key(&info, ns, name)) {
                return Ok(Some(Conversion::served(info.conversion, (*obj).clone())));
            }
        }
        self.get_builtin(group, version, plural, ns, name).await
    }

    /// The server's own list of a built-in resource in `ns` (all namespaces for `None`): from the watch
    /// cache once it holds every write this server acknowledged, else a consistent list.
    pub async fn lookup_list(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: Option<&str>,
    ) -> ApiResult<Vec<Arc<Value>>> {
        let info = self.builtin_info(group, version, plural)?;
        let Some(cache) = self.caught_up_cache(&info).await else {
            let items = self.list(&info, ns, &Query::default()).await?.items;
            return Ok(items.iter().map(Obj::tree).collect());
        };
        let (items, _) = cache.list(&Self::list_prefix(&info, ns), 0);
        if info.conversion.is_none() {
            // Shared as cached: no copy.
            return Ok(items);
        }
        Ok(items
            .into_iter()
            .map(|o| Arc::new(Conversion::served(info.conversion, (*o).clone())))
            .collect())
    }

    /// The resource's watch cache once it has caught up with this server's newest write (`None` if it
    /// has not within [`FRESHNESS_TIMEOUT`], or is not loaded).
    async fn caught_up_cache(&self, info: &ResourceInfo) -> Option<Arc<ResourceCache>> {
        if !self.cache.is_loaded() {
            return None;
        }
        let cache = self.cache.resource(&info.storage_prefix)?;
        let mark = self.written.revision();
        (mark == 0 || self.cache.wait_for(mark, FRESHNESS_TIMEOUT).await).then_some(cache)
    }

    fn builtin_info(&self, group: &str, version: &str, plural: &str) -> ApiResult<ResourceInfo> {
        self.catalog
            .find(group, version, plural)
            .ok_or_else(|| ApiError::internal(format!("no {plural} resource")))
    }

    /// A namespace's current state: from the cache when it has it, else from storage (a namespace created
    /// a moment ago may not have reached the cache yet).
    async fn namespace_state(&self, ns: &str) -> ApiResult<Option<Value>> {
        let nsinfo = self.namespaces()?;
        let key = Self::key(&nsinfo, None, ns);
        if let Some(c) = self.cache.resource(&nsinfo.storage_prefix) {
            let (items, _) = c.list(&key, 0);
            if let Some(obj) = items.into_iter().find(|o| meta_str(o, "name") == Some(ns)) {
                return Ok(Some((*obj).clone()));
            }
        }
        let (kv, _) = self.store.get(&key).await?;
        kv.map(|kv| stamped(&kv)).transpose()
    }

    /// Lists, honouring resourceVersion/resourceVersionMatch/limit/continue as upstream does.
    pub async fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &Query,
    ) -> ApiResult<ListResult> {
        let mut l = self.list_stored(info, ns, q).await?;
        // Custom resources stored in another version of their CRD: all of a page in one conversion.
        l.items = self.served_shared(info, l.items).await?;
        Ok(l)
    }

    /// [`Self::list`], custom resources as stored.
    async fn list_stored(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &Query,
    ) -> ApiResult<ListResult> {
        let filter = Filter::new(info, q)?;
        let prefix = Self::list_prefix(info, ns);
        let rv = q.resource_version_number()?;
        let rv_match = q.resource_version_match.unwrap_or(RvMatch::Unset);
        if q.continue_token.is_some() && rv.is_some_and(|r| r != 0) {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        if rv_match != RvMatch::Unset && rv.is_none() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if let Some(token) = &q.continue_token {
            let (crv, start) = decode_continue(token)?;
            return self
                .list_from_store(
                    info,
                    &prefix,
                    &filter,
                    q.limit,
                    crv,
                    Some(format!("{prefix}{start}")),
                )
                .await;
        }
        let from_cache = match (rv, rv_match) {
            (_, RvMatch::Exact) => false,
            (Some(0), _) => true,
            (Some(_), RvMatch::NotOlderThan) => true,
            (Some(_), RvMatch::Unset) => q.limit == 0,
            (None, _) => q.limit == 0,
        };
        if !from_cache {
            let at = match rv_match {
                RvMatch::Exact => rv.unwrap_or(0),
                _ => 0,
            };
            return self
                .list_from_store(info, &prefix, &filter, q.limit, at, None)
                .await;
        }
        let cache = self
            .cache
            .resource(&info.storage_prefix)
            .ok_or_else(|| ApiError::internal("no watch cache for resource"))?;
        let wanted = match rv {
            Some(0) => 0,
            Some(r) => r,
            None => self.store.current_revision().await?,
        };
        if wanted > 0 && !self.cache.wait_for(wanted, FRESHNESS_TIMEOUT).await {
            return Err(too_large_rv(wanted, self.cache.progress()));
        }
        let (items, revision) = cache.list_cached(&prefix, self.cache.progress());
        let items = match info.conversion {
            None => items
                .into_iter()
                .filter(|o| filter.matches_cached(o))
                .map(Obj::Cached)
                .collect(),
            Some(c) => items
                .into_iter()
                .map(|o| (c.from_storage)((*o.tree()).clone()))
                .filter(|o| filter.matches(o))
                .map(Obj::from)
                .collect(),
        };
        Ok(ListResult {
            items,
            revision,
            continue_token: None,
            remaining: None,
        })
    }

    async fn list_from_store(
        &self,
        info: &ResourceInfo,
        prefix: &str,
        filter: &Filter,
        limit: usize,
        revision: i64,
        start: Option<String>,
    ) -> ApiResult<ListResult> {
        let mut items = Vec::new();
        let mut start = start;
        let mut revision = revision;
        let batch = if limit == 0 { 0 } else { limit.max(100) };
        let fields = view_fields(info);
        loop {
            let page = match self.store.range(prefix, start.as_deref(), batch, revision).await {
                Ok(p) => p,
                Err(StoreError::Compacted { .. }) => return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                )),
                Err(e) => return Err(e.into()),
            };
            revision = page.revision;
            let n = page.kvs.len();
            for (i, kv) in page.kvs.iter().enumerate() {
                // Kept as stored (served without decoding, as the watch cache keeps objects) unless
                // it has to be converted.
                let (obj, keep) = match info.conversion {
                    None => {
                        let c =
                            CachedObject::from_stored(&kv.value, kv.mod_revision, &fields, false)
                                .ok_or_else(|| undecodable(kv))?;
                        let keep = filter.matches_cached(&c);
                        (Obj::Cached(Arc::new(c)), keep)
                    }
                    Some(_) => {
                        let obj = served(info, kv)?;
                        let keep = filter.matches(&obj);
                        (Obj::from(obj), keep)
                    }
                };
                if keep {
                    items.push(obj);
                }
                if limit > 0 && items.len() >= limit {
                    let more = i + 1 < n || page.more;
                    let token = more.then(|| {
                        let rel = kv.key.strip_prefix(prefix).unwrap_or(&kv.key);
                        encode_continue(revision, &format!("{rel}\u{0}"))
                    });
                    // Upstream reports how many remain only when no selector filtered the page.
                    let remaining =
                        (more && filter.is_empty()).then(|| page.count - (i as i64 + 1));
                    return Ok(ListResult {
                        items,
                        revision,
                        continue_token: token,
                        remaining,
                    });
                }
            }
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => start = Some(format!("{}\u{0}", last.key)),
                _ => {
                    return Ok(ListResult {
                        items,
                        revision,
                        continue_token: None,
                        remaining: None,
                    })
                }
            }
        }
    }

    /// Creates an object (already decoded and normalized) in `ns`.
    pub async fn create(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        obj: Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        self.create_owned(info, ns, obj, dry_run, Ownership::Keep)
            .await
    }

    /// Creates an object, recording managedFields as `ownership` says.
    pub async fn create_owned(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        obj: Value,
        dry_run: bool,
        ownership: Ownership<'_>,
    ) -> ApiResult<Value> {
        self.create_checked(info, ns, obj, dry_run, ownership, None)
            .await
    }

    /// Creates an object once `check` (if any) approved it.
    pub async fn create_checked(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
        ownership: Ownership<'_>,
        check: Option<WriteCheck<'_>>,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        obj["apiVersion"] = json!(info.api_version());
        obj["kind"] = json!(info.kind);
        let m = meta_mut(&mut obj);
        if info.namespaced {
            let ns = ns.unwrap_or("");
            match m.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            if let Some(g) = m
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
            {
                let generated = format!("{g}{}", random_suffix());
                m.insert("name".into(), json!(generated));
            }
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
        let strategy = info.strategy.clone();
        if strategy.tracks_generation() {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        strategy.defaults(&mut obj);
        if let Some(hooks) = check {
            hooks.check(&obj, None)?;
        }
        if let Ownership::Update(manager) = ownership {
            let managed = managed_fields::live_or_new(None, &obj);
            managed_fields::record_update(
                &ownership_ctx(info, None),
                None,
                &mut obj,
                managed,
                manager,
            );
        }
        if let Some(hooks) = check {
            hooks.admit(&mut obj, None).await?;
        }
        strategy.prepare_for_create(info, &mut obj);
        strategy.begin_create(self, info, &mut obj);
        // Allocations first (as upstream's BeginCreate), given back if anything below fails.
        let txn = match strategy.allocations() {
            Some(a) => Some(a.allocate_create(self, &mut obj, dry_run).await?),
            None => None,
        };
        let result = self.create_allocated(info, ns, obj, dry_run, check).await;
        super::strategy::finish(txn, self, result.is_ok()).await;
        result
    }

    /// The rest of a create, once allocations are made: validation, the namespace, validating
    /// admission, the write.
    async fn create_allocated(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
        hooks: Option<WriteCheck<'_>>,
    ) -> ApiResult<Value> {
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let mut causes = validate(info, &obj, None);
        info.strategy.validate_write(&obj, None, &mut causes);
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, &name, causes));
        }
        if info.namespaced {
            let ns = ns.unwrap_or("");
            match self.namespace_state(ns).await? {
                None => return Err(ApiError::not_found(&self.namespaces()?, ns)),
                Some(nsobj) if meta_str(&nsobj, "deletionTimestamp").is_some() => {
                    return Err(ApiError::forbidden(
                        info,
                        &name,
                        &format!("unable to create new content in namespace {ns} because it is being terminated"),
                    )
                    .with_details(json!({
                        "name": name, "kind": info.plural,
                        "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]
                    })))
                }
                Some(_) => {}
            }
        }
        if let Some(hooks) = hooks {
            hooks.validate(&obj, None).await?;
        }
        let key = Self::key(info, ns, &name);
        if dry_run {
            let (existing, rev) = self.store.get(&key).await?;
            if existing.is_some() {
                return Err(ApiError::already_exists(info, &name));
            }
            let _ = rev;
            canonicalize(&mut obj);
            return Ok(obj);
        }
        canonical(&mut obj);
        let bytes = self.stored_custom(info, &obj).await?;
        match self.store.create(&key, bytes).await {
            Ok(rev) => {
                let created = with_rv(obj, rev);
                self.crd_changed(info, &created, false);
                Ok(created)
            }
            Err(StoreError::AlreadyExists) => Err(ApiError::already_exists(info, &name)),
            Err(e) => Err(e.into()),
        }
    }

    /// PUT on an object or its status/finalize subresource. Returns the stored object and whether it was
    /// created (PUT creates only where the kind allows it).
    pub async fn update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        subresource: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<(Value, bool)> {
        self.update_owned(info, ns, name, obj, subresource, dry_run, Ownership::Keep)
            .await
    }

    /// PUT, recording managedFields as `ownership` says.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_owned(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        subresource: Option<&str>,
        dry_run: bool,
        ownership: Ownership<'_>,
    ) -> ApiResult<(Value, bool)> {
        self.update_checked(info, ns, name, obj, subresource, dry_run, ownership, None)
            .await
    }

    /// PUT, storing the result only if `check` (if any) approves the object as it will be stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_checked(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        dry_run: bool,
        ownership: Ownership<'_>,
        check: Option<WriteCheck<'_>>,
    ) -> ApiResult<(Value, bool)> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        obj["apiVersion"] = json!(info.api_version());
        obj["kind"] = json!(info.kind);
        let body_name = meta_str(&obj, "name").unwrap_or("").to_string();
        if body_name.is_empty() {
            meta_mut(&mut obj).insert("name".into(), json!(name));
        } else if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if info.namespaced {
            let ns = ns.unwrap_or("");
            match meta_str(&obj, "namespace") {
                Some(b) if !b.is_empty() && b != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    meta_mut(&mut obj).insert("namespace".into(), json!(ns));
                }
            }
        }
        let key = Self::key(info, ns, name);
        let (current, _) = self.store.get(&key).await?;
        let Some(current) = current else {
            if subresource.is_none() && info.strategy.allow_create_on_update() {
                return self
                    .create_checked(info, ns, obj, dry_run, ownership, check)
                    .await
                    .map(|o| (o, true));
            }
            return Err(ApiError::not_found(info, name));
        };
        let old = self.served_one(info, served(info, &current)?).await?;
        let body_rv = meta_str(&obj, "resourceVersion").unwrap_or("").to_string();
        if !body_rv.is_empty() && body_rv != current.mod_revision.to_string() {
            return Err(ApiError::modified(info, name));
        }
        if let Some(uid) = meta_str(&obj, "uid").filter(|u| !u.is_empty()) {
            if Some(uid) != meta_str(&old, "uid") {
                return Err(ApiError::conflict(
                    info,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&old, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        // managedFields as the request carries them (subresources never set them, as upstream).
        let requested = match subresource {
            None => managed_fields::live_or_new(Some(&old), &obj),
            Some(_) => managed_fields::decode(&old),
        };
        let given = obj.pointer("/metadata/managedFields").cloned();
        let strategy = info.strategy.clone();
        let mut new = match subresource {
            Some(sub) => match strategy.subresource_update(sub, &obj, &old) {
                // Most kinds' subresources keep the stored metadata whole; pods/status takes the
                // request's labels and annotations, but never the fields only the server sets.
                Some(mut n) => {
                    keep_server_fields(&mut n, &old);
                    n
                }
                None => return Err(ApiError::not_found_path().with_details(json!({"name": sub}))),
            },
            None => {
                let mut n = obj;
                strategy.defaults(&mut n);
                strategy.prepare_for_update(info, &mut n, &old);
                keep_server_fields(&mut n, &old);
                if strategy.tracks_generation() && spec_of(&n) != spec_of(&old) {
                    let g = meta(&old)
                        .and_then(|m| m.get("generation"))
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        + 1;
                    meta_mut(&mut n).insert("generation".into(), json!(g));
                }
                strategy.begin_update(self, &mut n);
                n
            }
        };
        match ownership {
            Ownership::Keep => managed_fields::set_entries(&mut new, &requested),
            Ownership::Update(manager) => managed_fields::record_update(
                &ownership_ctx(info, subresource),
                Some(&old),
                &mut new,
                requested,
                manager,
            ),
            Ownership::Given => match given {
                Some(g) => {
                    meta_mut(&mut new).insert("managedFields".into(), g);
                }
                None => {
                    meta_mut(&mut new).remove("managedFields");
                }
            },
        }
        meta_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(current.mod_revision.to_string()),
        );
        // Allocations (as upstream's BeginUpdate), committed or given back with the write's outcome.
        let txn = match (subresource, strategy.allocations()) {
            (None, Some(a)) => Some(a.allocate_update(self, &mut new, &old, dry_run).await?),
            _ => None,
        };
        let result = async {
            // Checked on exactly what is stored below, and the store's write is guarded by
            // `current.mod_revision`: a change made after `old` was read fails the write instead of
            // slipping past the check.
            if let Some(hooks) = check {
                hooks.check(&new, Some(&old))?;
                hooks.admit(&mut new, Some(&old)).await?;
            }
            let mut causes = validate(info, &new, subresource.is_none().then_some(&old));
            if let Some(sub) = subresource {
                info.strategy
                    .validate_subresource_update(sub, &new, &old, &mut causes);
            }
            info.strategy.validate_write(&new, Some(&old), &mut causes);
            if !causes.is_empty() {
                return Err(ApiError::invalid(info, name, causes));
            }
            if let Some(hooks) = check {
                hooks.validate(&new, Some(&old)).await?;
            }
            if meta_str(&old, "deletionTimestamp").is_some() {
                let old_f = finalizers(&old);
                if finalizers(&new).iter().any(|f| !old_f.contains(f)) {
                    return Err(ApiError::invalid(
                        info,
                        name,
                        vec![crate::apiserver::status::Cause::forbidden(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted",
                        )],
                    ));
                }
            }
            if dry_run {
                canonicalize(&mut new);
                return Ok((new, false));
            }
            // Ordered once here; `old` was ordered when it was stored (one stored before objects
            // were ordered compares unequal and is rewritten in order, which is harmless).
            canonical(&mut new);
            // A value read with an older encryption key is written again although unchanged:
            // that is how a replace re-encrypts it (upstream's `stale`).
            if !current.stale && encode_stored(&new)? == encode_stored(&old)? {
                return Ok((old, false));
            }
            // Removing the last finalizer of an object being deleted completes its deletion.
            if self.deletion_complete(info, &new) {
                return match self.store.delete(&key, Some(current.mod_revision)).await {
                    Ok((rev, _)) => {
                        self.crd_changed(info, &new, true);
                        if let Some(a) = info.strategy.allocations() {
                            a.release(self, &old).await;
                        }
                        Ok((with_rv(new, rev), false))
                    }
                    Err(StoreError::Conflict { .. }) => Err(ApiError::modified(info, name)),
                    Err(StoreError::NotFound) => Err(ApiError::not_found(info, name)),
                    Err(e) => Err(e.into()),
                };
            }
            match self
                .store
                .update(
                    &key,
                    self.stored_custom(info, &new).await?,
                    current.mod_revision,
                )
                .await
            {
                Ok(rev) => {
                    let updated = with_rv(new, rev);
                    self.crd_changed(info, &updated, false);
                    Ok((updated, false))
                }
                Err(StoreError::Conflict { .. }) => Err(ApiError::modified(info, name)),
                Err(StoreError::NotFound) => Err(ApiError::not_found(info, name)),
                Err(e) => Err(e.into()),
            }
        }
        .await;
        super::strategy::finish(txn, self, result.is_ok()).await;
        result
    }

    /// Upstream's naming controller's verdict on a CRD: Some(`"<plural>" is already in use`) when its
    /// group and plural (or its storage prefix) are taken by a built-in resource or another CRD, which
    /// it must never replace.
    pub(crate) fn crd_conflict(&self, crd_obj: &Value) -> Option<String> {
        let name = meta_str(crd_obj, "name").unwrap_or("");
        let (group, plural) = crd::group_and_plural(crd_obj);
        let prefix = crd::storage_prefix(crd_obj)?;
        let catalog = self.catalog.load();
        catalog
            .conflicting_row(group, plural, &prefix, name)
            .map(|_| format!("{plural:?} is already in use"))
    }

    /// After a CRD was written (`gone`: deleted), makes the catalog serve what it now defines: its old
    /// rows are dropped and one per served version added, each with a watch cache. Synchronous, so the
    /// write's answer comes after the change (`kubectl apply -f crd.yaml && kubectl get <kind>`).
    fn crd_changed(&self, info: &ResourceInfo, crd_obj: &Value, gone: bool) {
        if !crd::is_crd(info) {
            return;
        }
        let name = meta_str(crd_obj, "name").unwrap_or("").to_string();
        let rows = if gone { Vec::new() } else { crd::rows(crd_obj) };
        for r in &rows {
            self.cache.add_prefix(&r.storage_prefix, view_fields(r));
        }
        self.catalog.update(|c| {
            let old: Vec<(String, String, String)> = c
                .all()
                .iter()
                .filter(|r| r.custom().is_some_and(|x| x.crd_name == name))
                .map(|r| (r.group.clone(), r.version.clone(), r.plural.clone()))
                .collect();
            for (g, v, p) in old {
                c.remove(&g, &v, &p);
            }
            for r in rows {
                // Never over a built-in or another CRD's row (the write was refused or left
                // NamesAccepted=False already; this keeps the catalog safe whatever is stored).
                if c.conflicting_row(&r.group, &r.plural, &r.storage_prefix, &name)
                    .is_none()
                {
                    c.add(r);
                }
            }
        });
    }

    /// Deletes every custom resource of the CRD `name` (all versions share one storage prefix), as
    /// upstream's `customresourcecleanup.apiextensions.k8s.io` finalizer does before the CRD goes.
    /// Custom resources' own finalizers are not waited for.
    async fn delete_custom_resources(&self, info: &ResourceInfo, name: &str) -> ApiResult<()> {
        let crd_obj = self.get(info, None, name).await?;
        let (group, plural) = crd::group_and_plural(&crd_obj);
        let Some(prefix) = crd::storage_prefix(&crd_obj) else {
            return Ok(());
        };
        // Only the CRD's own keys: never a prefix that is (or contains, or lies inside) another
        // resource's storage, whatever the stored CRD says (it may predate the conflict checks).
        if let Some(other) = self
            .catalog
            .load()
            .conflicting_row(group, plural, &prefix, name)
        {
            tracing::warn!(
                "CRD {name}: not deleting objects under {prefix}, which overlaps the storage of {}.{} ({})",
                other.plural,
                other.group,
                other.storage_prefix
            );
            return Ok(());
        }
        loop {
            let page = self.store.range(&prefix, None, 500, 0).await?;
            for kv in &page.kvs {
                match self.store.delete(&kv.key, None).await {
                    Ok(_) | Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if !page.more || page.kvs.is_empty() {
                return Ok(());
            }
        }
    }

    /// Binds a pod to a node (`pods/<name>/binding` or the `bindings` resource), as a scheduler does:
    /// sets `spec.nodeName` once and marks the pod scheduled.
    pub async fn bind_pod(&self, ns: &str, pod_name: &str, binding: &Value) -> ApiResult<()> {
        let info = self
            .catalog
            .find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("no pods resource"))?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid(
                &info,
                pod_name,
                vec![crate::apiserver::status::Cause::required("target.name")],
            ));
        }
        let kind = binding
            .pointer("/target/kind")
            .and_then(Value::as_str)
            .unwrap_or("Node");
        if kind != "Node" && !kind.is_empty() {
            return Err(ApiError::invalid(
                &info,
                pod_name,
                vec![crate::apiserver::status::Cause::invalid(
                    "target.kind",
                    &json!(kind),
                    "must be empty or 'Node'",
                )],
            ));
        }
        let key = Self::key(&info, Some(ns), pod_name);
        let conflict = |why: String| {
            ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on pods/binding {pod_name:?}: {why}"),
            )
            .with_details(json!({"name": pod_name, "kind": "pods/binding"}))
        };
        loop {
            let (kv, _) = self.store.get(&key).await?;
            let Some(kv) = kv else {
                return Err(ApiError::not_found(&info, pod_name));
            };
            let mut pod = stamped(&kv)?;
            if meta_str(&pod, "deletionTimestamp").is_some() {
                return Err(conflict(format!(
                    "pod {pod_name} is being deleted, cannot be assigned to a host"
                )));
            }
            if let Some(current) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(conflict(format!(
                    "pod {pod_name} is already assigned to node {current:?}"
                )));
            }
            if let Some(ann) = binding
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
            {
                let m = meta_mut(&mut pod);
                let target = m.entry("annotations").or_insert(json!({}));
                for (k, v) in ann {
                    target[k] = v.clone();
                }
            }
            pod["spec"]["nodeName"] = json!(node);
            if !pod.get("status").is_some_and(Value::is_object) {
                pod["status"] = json!({});
            }
            let mut conditions: Vec<Value> = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}));
            pod["status"]["conditions"] = Value::Array(conditions);
            match self
                .store
                .update(&key, to_stored(&pod)?, kv.mod_revision)
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound) => return Err(ApiError::not_found(&info, pod_name)),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// True when an object marked for deletion has nothing left holding it.
    fn deletion_complete(&self, info: &ResourceInfo, obj: &Value) -> bool {
        if meta_str(obj, "deletionTimestamp").is_none() || !finalizers(obj).is_empty() {
            return false;
        }
        info.strategy.deletion_complete(obj)
    }

    /// Whether a pod is served by a live node, which then owns its graceful termination.
    async fn pod_has_live_node(&self, pod: &Value) -> bool {
        let Some(node) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            return false;
        };
        if matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        ) {
            return false;
        }
        let Some(nodes) = self.catalog.find("", "v1", "nodes") else {
            return false;
        };
        let Ok(node) = self.get(&nodes, None, node).await else {
            return false;
        };
        node.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    }

    /// Deletes an object, or marks it for deletion when finalizers (or a live node, for pods) hold it.
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let key = Self::key(info, ns, name);
        if crd::is_crd(info) && !opts.dry_run {
            self.delete_custom_resources(info, name).await?;
        }
        loop {
            let (current, _) = self.store.get(&key).await?;
            let Some(current) = current else {
                return Err(ApiError::not_found(info, name));
            };
            let obj = self.served_one(info, served(info, &current)?).await?;
            if let Some(uid) = &opts.precondition_uid {
                if Some(uid.as_str()) != meta_str(&obj, "uid") {
                    return Err(ApiError::conflict(
                        info,
                        name,
                        &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&obj, "uid").unwrap_or("")
                    ),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                if *rv != current.mod_revision.to_string() {
                    return Err(ApiError::conflict(info, name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.mod_revision
                    )));
                }
            }
            let strategy = info.strategy.clone();
            if let Some(why) = strategy.delete_forbidden(name) {
                return Err(ApiError::forbidden(info, name, why));
            }
            let graceful = strategy.graceful_delete_period(&obj, opts.grace_period_seconds);
            let grace = match graceful {
                Some(g) if g > 0 && self.pod_has_live_node(&obj).await => g,
                _ => 0,
            };
            // The garbage collector's finalizers, as the delete's propagation policy asks.
            let gc = gc_finalizers(&obj, opts);
            let held = match &gc {
                Some(f) => !f.is_empty(),
                None => !finalizers(&obj).is_empty(),
            };
            let pending = held || strategy.holds_deletion(&obj) || grace > 0;
            if pending {
                let mut new = obj.clone();
                let deleting = meta_str(&obj, "deletionTimestamp").is_some();
                // Already being deleted: a pod's grace period may only shorten.
                let old_grace = meta(&obj)
                    .and_then(|m| m.get("deletionGracePeriodSeconds"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let restart = !deleting || (graceful.is_some() && grace < old_grace);
                if !restart && gc.is_none() {
                    return Ok(Deleted::Pending(obj));
                }
                let m = meta_mut(&mut new);
                if let Some(f) = &gc {
                    m.insert("finalizers".into(), json!(f));
                }
                if restart {
                    // A client's grace period can be any int64: add it without overflowing (the
                    // latest representable time stands for "never").
                    let when = chrono::TimeDelta::try_seconds(grace)
                        .and_then(|d| Utc::now().checked_add_signed(d))
                        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(when.to_rfc3339_opts(SecondsFormat::Secs, true)),
                    );
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    strategy.begin_delete(&mut new);
                }
                if graceful.is_some() && grace == 0 && finalizers(&new).is_empty() {
                    // Nothing holds it: fall through to the real delete below.
                } else {
                    if opts.dry_run {
                        return Ok(Deleted::Pending(new));
                    }
                    canonical(&mut new);
                    let bytes = self.stored_custom(info, &new).await?;
                    match self.store.update(&key, bytes, current.mod_revision).await {
                        Ok(rev) => return Ok(Deleted::Pending(with_rv(new, rev))),
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(StoreError::NotFound) => return Err(ApiError::not_found(info, name)),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if opts.dry_run {
                return Ok(Deleted::Gone(obj));
            }
            match self.store.delete(&key, Some(current.mod_revision)).await {
                Ok((rev, _)) => {
                    self.crd_changed(info, &obj, true);
                    // Upstream's service REST releases the allocations after the delete.
                    if let Some(a) = strategy.allocations() {
                        a.release(self, &obj).await;
                    }
                    return Ok(Deleted::Gone(with_rv(obj, rev)));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound) => return Err(ApiError::not_found(info, name)),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Deletes every object the list options select; returns the deleted (or now terminating) objects.
    pub async fn delete_collection(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &Query,
        opts: &DeleteOptions,
    ) -> ApiResult<ListResult> {
        let mut lq = q.clone();
        lq.limit = 0;
        lq.continue_token = None;
        let listed = self.list(info, ns, &lq).await?;
        let mut out = Vec::new();
        for obj in &listed.items {
            let obj = obj.view();
            let name = meta_str(obj, "name").unwrap_or("");
            let obj_ns = meta_str(obj, "namespace");
            match self.delete(info, obj_ns, name, opts).await {
                Ok(Deleted::Gone(o)) | Ok(Deleted::Pending(o)) => out.push(Obj::from(o)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ListResult {
            items: out,
            revision: listed.revision,
            continue_token: None,
            remaining: None,
        })
    }

    /// A watch stream with upstream's resourceVersion semantics, selectors, bookmarks and timeout.
    pub async fn watch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        q: &Query,
    ) -> ApiResult<BoxStream<'static, WatchItem>> {
        q.validate_watch()?;
        let filter = Filter::new(info, q)?;
        let prefix = Self::list_prefix(info, ns);
        let rv = q.resource_version_number()?;
        let initial_events = q.send_initial_events.unwrap_or(false);
        if q.send_initial_events.is_some() {
            if q.resource_version_match != Some(RvMatch::NotOlderThan) {
                return Err(ApiError::new(422, "Invalid", "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
            }
            if !q.allow_watch_bookmarks {
                return Err(ApiError::new(422, "Invalid", "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: Forbidden: sendInitialEvents requires allowWatchBookmarks to be set to true"));
            }
        }
        if !self.cache.is_loaded() {
            // A watch on a cache that is (re)loading could not continue exactly (upstream's answer).
            return Err(ApiError::storage_initializing());
        }
        let cache = self
            .cache
            .resource(&info.storage_prefix)
            .ok_or_else(|| ApiError::internal("no watch cache for resource"))?
            .clone();
        let wanted = rv.unwrap_or(0);
        if wanted > 0 && !self.cache.wait_for(wanted, FRESHNESS_TIMEOUT).await {
            return Err(too_large_rv(wanted, self.cache.progress()));
        }
        let from = match (rv, initial_events) {
            (_, true) | (None, _) | (Some(0), _) => None,
            (Some(r), false) => Some(r),
        };
        let progress = self.cache.progress_receiver();
        let sub = match cache.subscribe(&prefix, from, &progress) {
            Ok(s) => s,
            Err(WatchStartError::TooOld { requested, oldest }) => {
                let status =
                    ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
                        .to_status();
                let item = WatchItem::own("ERROR", status);
                return Ok(stream::iter(vec![item]).boxed());
            }
        };
        // Upstream spreads watches without timeoutSeconds over [min-request-timeout, 2x) so that
        // clients do not all re-watch at once.
        let timeout = q
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or_else(|| {
                DEFAULT_WATCH_TIMEOUT.mul_f64(1.0 + rand::rng().random_range(0.0..1.0))
            });
        let bookmarks = q.allow_watch_bookmarks;
        let api_version = info.api_version();
        let kind = info.kind.clone();
        let bookmark = move |rv: i64, initial_end: bool| {
            WatchItem::own(
                "BOOKMARK",
                super::bookmark::object(&api_version, &kind, rv, initial_end),
            )
        };
        let conversion = info.conversion;
        let mut initial: Vec<WatchItem> = sub
            .initial
            .iter()
            .filter_map(|e| translate(e, &filter, &prefix, conversion))
            .collect();
        // Custom resources stored in another version of their CRD: the initial events in one
        // conversion (a failure fails the watch request, as a list's would).
        if initial
            .iter()
            .any(|i| crd_conversion::needed(info, i.object.view()))
        {
            let objs = initial.iter().map(|i| (*i.object.tree()).clone()).collect();
            let converted = self.served_custom(info, objs, false).await?;
            for (item, obj) in initial.iter_mut().zip(converted) {
                item.object = Obj::from(obj);
                item.shared = None;
            }
        }
        // Live events of custom resources are converted one by one, through the registry (a weak
        // reference: a watch never keeps it alive).
        let custom = info
            .custom()
            .is_some()
            .then(|| (self.me.clone(), info.clone()));
        if initial_events {
            initial.push(bookmark(sub.revision, true));
        }
        struct State {
            live: LiveFeed,
            last: i64,
            deadline: tokio::time::Instant,
            /// Upstream's cacher sends one more bookmark 2 s before a watch's deadline, so the client
            /// resumes from a fresh resourceVersion; `None` once sent (or for watches too short for it).
            pre_deadline: Option<tokio::time::Instant>,
            ticker: tokio::time::Interval,
            progress: tokio::sync::watch::Receiver<i64>,
        }
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.reset();
        let now = tokio::time::Instant::now();
        let state = State {
            live: sub.live,
            last: sub.revision,
            deadline: now + timeout,
            pre_deadline: timeout
                .checked_sub(PRE_DEADLINE_BOOKMARK)
                .filter(|t| !t.is_zero())
                .map(|t| now + t),
            ticker,
            progress,
        };
        let filter = Arc::new(filter);
        let live = stream::unfold(state, move |mut st| {
            let filter = filter.clone();
            let prefix = prefix.clone();
            let bookmark = bookmark.clone();
            let custom = custom.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(st.deadline) => return None,
                        _ = sleep_until_some(st.pre_deadline), if bookmarks && st.pre_deadline.is_some() => {
                            st.pre_deadline = None;
                            let rv = bookmark_revision(&st.progress, &st.live, st.last);
                            return Some((bookmark(rv, false), st));
                        }
                        _ = st.ticker.tick(), if bookmarks => {
                            let rv = bookmark_revision(&st.progress, &st.live, st.last);
                            return Some((bookmark(rv, false), st));
                        }
                        r = st.live.next() => match r {
                            Ok(ev) => {
                                if ev.revision <= st.last {
                                    continue;
                                }
                                st.last = st.last.max(ev.revision);
                                if let Some(item) = translate(&ev, &filter, &prefix, conversion) {
                                    let item = match &custom {
                                        Some((reg, info)) => served_event(reg, info, item).await,
                                        None => item,
                                    };
                                    return Some((item, st));
                                }
                            }
                            // Too slow a reader, or the cache reloaded: the stream can't continue
                            // exactly, so it ends (as upstream's cacher ends such watchers); the client
                            // re-watches from the last resourceVersion it got (410 if that is too old).
                            Err(_) => return None,
                        }
                    }
                }
            }
        });
        Ok(stream::iter(initial).chain(live).boxed())
    }
}

/// A custom resource's watch event as the watched version serves it; a failed conversion is the
/// stream's ERROR event with the failure's status.
async fn served_event(
    reg: &std::sync::Weak<Registry>,
    info: &ResourceInfo,
    item: WatchItem,
) -> WatchItem {
    if !crd_conversion::needed(info, item.object.view()) {
        return item;
    }
    let Some(reg) = reg.upgrade() else {
        return item;
    };
    match reg.served_one(info, (*item.object.tree()).clone()).await {
        Ok(obj) => WatchItem::own(item.event_type, obj),
        Err(e) => WatchItem::own("ERROR", e.to_status()),
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The revision a bookmark may carry: the cache's progress only when this watcher has been handed
/// every event applied so far, else the revision of the last event it got (a bookmark must never be
/// ahead of an event the watcher has not received). Progress is read before the feed is checked: every
/// event up to a published progress is already in the window.
fn bookmark_revision(
    progress: &tokio::sync::watch::Receiver<i64>,
    live: &LiveFeed,
    last: i64,
) -> i64 {
    let p = *progress.borrow();
    if live.drained() {
        p.max(last)
    } else {
        last
    }
}

fn too_large_rv(wanted: i64, current: i64) -> ApiError {
    ApiError::timeout(format!(
        "Too large resource version: {wanted}, current: {current}"
    ))
    .with_details(json!({
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1
    }))
}

/// Turns a cache event into what a filtered watcher sees: an object entering the selection is ADDED,
/// one leaving it DELETED (as upstream's cacher does).
fn translate(
    ev: &Arc<CacheEvent>,
    filter: &Filter,
    prefix: &str,
    conversion: Option<Conversion>,
) -> Option<WatchItem> {
    if !ev.key.starts_with(prefix) {
        return None;
    }
    // Stored in another version: the watcher sees (and its selector judges) the served form.
    let (object, now, before) = match conversion {
        None => (
            Obj::Cached(ev.object.clone()),
            filter.matches_cached(&ev.object),
            ev.prev.as_ref().is_some_and(|p| filter.matches_cached(p)),
        ),
        Some(c) => {
            let object = (c.from_storage)((*ev.object.tree()).clone());
            let now = filter.matches(&object);
            let before = ev
                .prev
                .as_ref()
                .is_some_and(|p| filter.matches(&(c.from_storage)((*p.tree()).clone())));
            (Obj::from(object), now, before)
        }
    };
    let event_type = match ev.kind {
        EventKind::Added if now => "ADDED",
        EventKind::Deleted if before || now => "DELETED",
        EventKind::Modified if now && before => "MODIFIED",
        EventKind::Modified if now => "ADDED",
        EventKind::Modified if before => "DELETED",
        _ => return None,
    };
    Some(WatchItem {
        event_type,
        object,
        shared: conversion.is_none().then(|| ev.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored form keeps the object's order, empties the resourceVersion, drops selfLink.
    #[test]
    fn stored_form() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "a", "selfLink": "/x", "resourceVersion": "5", "uid": "u"},
            "data": {"k": "v"}});
        let bytes = encode_stored(&obj).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","resourceVersion":"","uid":"u"},"data":{"k":"v"}}"#
        );
        assert_eq!(encode_stored(&json!("s")).unwrap_or_default(), br#""s""#);
    }

    /// A cached object is judged on its view when that holds the selector's fields, else on its
    /// decoded tree, with the same answers a tree gets.
    #[test]
    fn cached_objects_are_judged_on_their_view_or_their_tree() {
        let info = crate::apiserver::catalog::Catalog::builtin()
            .find("", "v1", "pods")
            .cloned()
            .unwrap();
        let pod = Arc::new(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}}));
        let viewed = CachedObject::new(&pod, 5, &view_fields(&info));
        let bare = CachedObject::new(&pod, 5, &ViewFields::new(Vec::<String>::new()));
        assert!(viewed.view().get("status").is_some());
        assert!(bare.view().get("spec").is_none());
        for (labels, fields, want) in [
            ("", "spec.nodeName=n1", true),
            ("", "spec.nodeName=n2", false),
            ("", "spec.host=n1", true),
            ("", "status.podIP=10.0.0.1", true),
            ("", "spec.hostNetwork=false,status.phase!=Running", false),
            ("app=web", "metadata.name=p", true),
            ("app in (db)", "", false),
        ] {
            let q = Query {
                label_selector: Some(labels.into()),
                field_selector: Some(fields.into()),
                ..Query::default()
            };
            let f = Filter::new(&info, &q).unwrap_or_else(|e| panic!("{fields}: {}", e.message));
            assert_eq!(f.matches(&pod), want, "{labels} {fields}");
            assert_eq!(f.matches_cached(&viewed), want, "{labels} {fields} (view)");
            assert_eq!(f.matches_cached(&bare), want, "{labels} {fields} (tree)");
        }
    }

    fn put(key: &str, revision: i64) -> crate::storage::Event {
        crate::storage::Event {
            event_type: crate::storage::EventType::Put,
            kv: KeyValue {
                key: key.to_string(),
                value: br#"{"metadata":{"name":"x"}}"#.to_vec(),
                create_revision: revision,
                mod_revision: revision,
                stale: false,
            },
            prev: None,
        }
    }

    /// A bookmark carries the cache's progress only once the watcher has every event applied so far;
    /// until then, the revision of the last event it got. The sequence of bookmarks is monotonic.
    #[tokio::test]
    async fn bookmarks_never_ahead_of_undelivered_events() {
        let (cms, secrets) = ("/registry/configmaps/", "/registry/secrets/");
        let cache = WatchCache::new([
            (cms.to_string(), ViewFields::default().into()),
            (secrets.to_string(), ViewFields::default().into()),
        ]);
        let rc = cache.resource(cms).unwrap();
        let progress = cache.progress_receiver();
        let Ok(sub) = rc.subscribe(cms, Some(0), &progress) else {
            panic!("subscribe")
        };
        let mut live = sub.live;
        let mut last = sub.revision;
        let mut marks = vec![bookmark_revision(&progress, &live, last)];
        cache.apply(put("/registry/configmaps/ns/a", 5));
        cache.apply(put("/registry/configmaps/ns/b", 6));
        // Progress is 6, but this watcher has not received 5 and 6: no bookmark past what it has.
        assert_eq!(cache.progress(), 6);
        marks.push(bookmark_revision(&progress, &live, last));
        assert_eq!(marks[1], 0);
        last = live.next().await.unwrap().revision;
        marks.push(bookmark_revision(&progress, &live, last));
        assert_eq!(marks[2], 5);
        last = live.next().await.unwrap().revision;
        marks.push(bookmark_revision(&progress, &live, last));
        assert_eq!(marks[3], 6);
        // Another resource's change moves progress; this watcher has nothing pending: the bookmark
        // may carry it.
        cache.apply(put("/registry/secrets/ns/s", 7));
        marks.push(bookmark_revision(&progress, &live, last));
        assert_eq!(marks[4], 7);
        assert!(marks.windows(2).all(|w| w[0] <= w[1]), "{marks:?}");
    }

    #[test]
    fn continue_token_roundtrip() {
        let t = encode_continue(42, "ns/name\u{0}");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "ns/name\u{0}".to_string())
        );
        assert!(decode_continue("garbage").is_err());
    }
}

/// Checks a decoded object against its kind's typed schema (k8s-openapi), dropping unknown fields. A
/// missing required field is a 422 `Required value` at its path; any other type error a 400, as upstream.
pub fn normalize(info: &ResourceInfo, obj: Value) -> ApiResult<Value> {
    let Some(normalize) = &info.normalize else {
        return Ok(obj);
    };
    let name = meta_str(&obj, "name").unwrap_or("").to_string();
    let cannot_handle = |msg: &str| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {msg}",
            info.kind, info.version, info.kind
        ))
    };
    let typed = normalize.run(obj).map_err(|msg| {
        if let Some(field) = missing_field(&msg) {
            return ApiError::invalid(
                info,
                &name,
                vec![crate::apiserver::status::Cause::required(&field)],
            );
        }
        cannot_handle(&msg)
    })?;
    // Quantities are strings to k8s-openapi; upstream's decoder parses them and refuses the body.
    let root = super::schema::root(&info.api_version(), &info.kind);
    if let Some(msg) =
        root.and_then(|t| crate::apiserver::wire::quantity::first_unparsable(t, &typed))
    {
        return Err(cannot_handle(&msg));
    }
    Ok(typed)
}

/// `spec: missing field `containers`` (serde_path_to_error's form) → `spec.containers`.
fn missing_field(msg: &str) -> Option<String> {
    let (path, rest) = match msg.split_once(": missing field `") {
        Some((p, r)) => (Some(p), r),
        None => (None, msg.strip_prefix("missing field `")?),
    };
    let field = rest.split('`').next()?;
    Some(match path {
        Some(p) if p != "." && !p.is_empty() => format!("{p}.{field}"),
        _ => field.to_string(),
    })
}

/// The object's metadata, then its kind's rules (`Validate`), then on update (`old` given) what the
/// update may not change (`ValidateUpdate`).
fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let strategy = &info.strategy;
    let mut causes = validate_object_meta(obj, strategy.name_rule(), info.namespaced);
    strategy.validate(obj, &mut causes);
    if let Some(old) = old {
        strategy.validate_update(obj, old, &mut causes);
    }
    causes
}

/// Where patching, server-side apply and managedFields learn how `info`'s lists and maps merge: the
/// built-in kinds' table, or a custom resource's CRD schema for the version written.
fn root_pos(info: &ResourceInfo) -> Pos<'_> {
    match info.custom() {
        Some(c) => Pos::custom_root(c.schema.as_ref()),
        None => Pos::root(&Builtin, &info.api_version(), &info.kind),
    }
}

/// The managedFields context of a write to `info` (its `subresource`, if any).
fn ownership_ctx<'a>(info: &'a ResourceInfo, subresource: Option<&str>) -> managed_fields::Ctx<'a> {
    managed_fields::Ctx {
        pos: root_pos(info),
        api_version: info.api_version(),
        subresource: subresource.unwrap_or("").to_string(),
        has_status: info.subresource("status").is_some(),
    }
}

/// How a write records `metadata.managedFields`.
#[derive(Clone, Copy, Debug)]
pub enum Ownership<'a> {
    /// Keep the live object's managedFields unless the request sets or resets them (internal writes).
    Keep,
    /// Record an `Update` by this manager: it owns what it changed.
    Update(&'a str),
    /// The object already carries its managedFields (server-side apply computed them).
    Given,
}

/// A check a write must pass on the object it is about to store (`new`, after patching and defaults)
/// against the live one (`old`, None on create): RBAC's escalation prevention. It runs inside the
/// guarded write, so what it approved is what is stored (the write fails with a conflict if the object
/// changed since it was read, and a retry checks again).
/// An update keeps the metadata only the server sets (uid, timestamps, generation) as stored.
fn keep_server_fields(new: &mut Value, old: &Value) {
    let om = meta(old).cloned().unwrap_or_default();
    let m = meta_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match om.get(f) {
            Some(v) => m.insert(f.into(), v.clone()),
            None => m.remove(f),
        };
    }
    m.remove("generateName")
        .map(|g| m.insert("generateName".into(), g));
}

pub type WriteCheck<'a> = &'a dyn WriteHooks;

/// What a request adds to the store's write path (upstream's `rest.ValidateObjectFunc`s and the
/// admission chain around a create or update): RBAC's escalation check, then mutating admission
/// before the kind's validation, then validating admission on exactly what will be stored, inside the
/// guarded write. Writes the server makes for itself pass no hooks.
#[async_trait::async_trait]
pub trait WriteHooks: Send + Sync {
    /// A synchronous check of the object as the client sent it (`old`: the stored object on update).
    fn check(&self, _new: &Value, _old: Option<&Value>) -> ApiResult<()> {
        Ok(())
    }
    /// Mutating admission.
    async fn admit(&self, _obj: &mut Value, _old: Option<&Value>) -> ApiResult<()> {
        Ok(())
    }
    /// Validating admission, after the kind's own validation; a denial stores nothing.
    async fn validate(&self, _obj: &Value, _old: Option<&Value>) -> ApiResult<()> {
        Ok(())
    }
}

/// PATCH options (upstream's PatchOptions): `fieldManager` (else the User-Agent's product), `force`,
/// and the write check to run on the patched object.
pub struct PatchOptions<'a> {
    pub manager: &'a str,
    pub force: Option<bool>,
    pub check: Option<WriteCheck<'a>>,
}

impl<'a> PatchOptions<'a> {
    /// Upstream's ValidatePatchOptions: apply needs an explicit fieldManager; force is apply-only.
    pub fn validate(kind: super::patch::PatchType, q: &Query) -> ApiResult<()> {
        let invalid = |field: &str, reason: &str, msg: &str| {
            ApiError::new(
                422,
                "Invalid",
                format!("PatchOptions.meta.k8s.io \"\" is invalid: {field}: {msg}"),
            )
            .with_details(json!({
                "group": "meta.k8s.io", "kind": "PatchOptions",
                "causes": [{"reason": reason, "message": msg, "field": field}]
            }))
        };
        if kind == super::patch::PatchType::Apply {
            if q.field_manager.as_deref().unwrap_or("").is_empty() {
                return Err(invalid(
                    "fieldManager",
                    "FieldValueRequired",
                    "Required value: is required for apply patch",
                ));
            }
        } else if q.force.is_some() {
            return Err(invalid(
                "force",
                "FieldValueForbidden",
                "Forbidden: may not be specified for non-apply patch",
            ));
        }
        if q.field_manager
            .as_deref()
            .is_some_and(|m| m.chars().count() > 128)
        {
            return Err(invalid(
                "fieldManager",
                "FieldValueTooLong",
                "Too long: may not be more than 128 bytes",
            ));
        }
        Ok(())
    }
}

/// Decodes an apply body (YAML, which includes JSON) and checks it names this resource.
fn apply_config(info: &ResourceInfo, name: &str, body: &[u8]) -> ApiResult<Value> {
    // Through the depth pre-scan: libyaml is quadratic in nesting depth.
    let v: Value = crate::apiserver::http::body::decode_yaml(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the apply configuration must be an object",
        ));
    }
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            String::from_utf8_lossy(body).trim()
        )));
    }
    if kind != info.kind || api_version != info.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    if v.pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    match meta_str(&v, "name") {
        Some(n) if n == name => {}
        Some(n) if !n.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => {}
    }
    Ok(v)
}

impl Registry {
    /// PATCH on behalf of `opts.manager`; also says whether the object was created (apply).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_as(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        kind: super::patch::PatchType,
        body: &[u8],
        subresource: Option<&str>,
        q: &Query,
        opts: &PatchOptions<'_>,
    ) -> ApiResult<(Value, Vec<String>, bool)> {
        PatchOptions::validate(kind, q)?;
        let pos = root_pos(info);
        let apply_cfg = match kind {
            super::patch::PatchType::Apply
                if body.len() <= crate::apiserver::http::body::INLINE_DECODE_BYTES =>
            {
                Some(apply_config(info, name, body)?)
            }
            super::patch::PatchType::Apply => {
                // A large apply configuration is decoded on the blocking pool, off the reactor.
                let (i, n, b) = (info.clone(), name.to_string(), body.to_vec());
                Some(
                    crate::apiserver::http::body::off_reactor(b.len(), move || {
                        apply_config(&i, &n, &b)
                    })
                    .await?,
                )
            }
            _ => None,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let current = match self.get(info, ns, name).await {
                Ok(c) => Some(c),
                Err(e) if e.code == 404 && apply_cfg.is_some() && subresource.is_none() => None,
                Err(e) => return Err(e),
            };
            let result = match (&apply_cfg, &current) {
                (Some(cfg), _) => {
                    let ctx = ownership_ctx(info, subresource);
                    let mut merged = managed_fields::apply(
                        &ctx,
                        current.as_ref(),
                        cfg,
                        opts.manager,
                        opts.force.unwrap_or(false),
                    )?;
                    if current.is_none() {
                        let m = meta_mut(&mut merged);
                        m.insert("name".into(), json!(name));
                        if let Some(ns) = ns {
                            m.insert("namespace".into(), json!(ns));
                        }
                    }
                    let normalized = normalize(info, merged.clone())?;
                    let warnings =
                        check_fields(info, &merged, &normalized, None, q.field_validation)?;
                    match &current {
                        None => match self
                            .create_checked(
                                info,
                                ns,
                                normalized,
                                q.dry_run,
                                Ownership::Given,
                                opts.check,
                            )
                            .await
                        {
                            // Created by someone else meanwhile: apply onto theirs.
                            Err(e)
                                if e.code == 409
                                    && e.reason == "AlreadyExists"
                                    && attempts < 10 =>
                            {
                                continue
                            }
                            other => other.map(|v| (v, warnings, true)),
                        },
                        Some(_) => self
                            .update_checked(
                                info,
                                ns,
                                name,
                                normalized,
                                subresource,
                                q.dry_run,
                                Ownership::Given,
                                opts.check,
                            )
                            .await
                            .map(|(v, c)| (v, warnings, c)),
                    }
                }
                (None, Some(current)) => {
                    let patched = if body.len() <= crate::apiserver::http::body::INLINE_DECODE_BYTES
                    {
                        super::patch::apply_patch(kind, current, body, &pos)?
                    } else {
                        // A large patch is parsed and applied on the blocking pool, off the reactor.
                        let (cur, bytes, i) = (current.clone(), body.to_vec(), info.clone());
                        crate::apiserver::http::body::off_reactor(bytes.len(), move || {
                            let pos = root_pos(&i);
                            super::patch::apply_patch(kind, &cur, &bytes, &pos)
                        })
                        .await?
                    };
                    // Upstream's checkName: a patch that removes the name (`remove /metadata`) no
                    // longer names the object on the URL.
                    let patched_name = meta_str(&patched, "name").unwrap_or("");
                    if patched_name != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({patched_name}) does not match the name on the URL ({name})"
                        )));
                    }
                    let pinned = meta_str(&patched, "resourceVersion")
                        != meta_str(current, "resourceVersion");
                    let normalized = normalize(info, patched.clone())?;
                    let warnings =
                        check_fields(info, &patched, &normalized, None, q.field_validation)?;
                    let ownership = if opts.manager.is_empty() {
                        Ownership::Keep
                    } else {
                        Ownership::Update(opts.manager)
                    };
                    match self
                        .update_checked(
                            info,
                            ns,
                            name,
                            normalized,
                            subresource,
                            q.dry_run,
                            ownership,
                            opts.check,
                        )
                        .await
                    {
                        Err(e) if e.reason == "Conflict" && !pinned && attempts < 10 => continue,
                        other => other.map(|(v, c)| (v, warnings, c)),
                    }
                }
                (None, None) => return Err(ApiError::not_found(info, name)),
            };
            match result {
                Err(e)
                    if apply_cfg.is_some()
                        && e.reason == "Conflict"
                        && e.details
                            .as_ref()
                            .is_some_and(|d| d.get("causes").is_none())
                        && attempts < 10 =>
                {
                    continue
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod gc_finalizer_tests {
    use super::*;

    fn opts(policy: Option<&str>, orphan: Option<bool>) -> DeleteOptions {
        DeleteOptions {
            propagation_policy: policy.map(String::from),
            orphan_dependents: orphan,
            ..Default::default()
        }
    }

    #[test]
    fn propagation_policy_sets_the_collectors_finalizers() {
        let plain = json!({"metadata": {"finalizers": ["example.com/keep"]}});
        assert_eq!(gc_finalizers(&plain, &opts(None, None)), None);
        assert_eq!(gc_finalizers(&plain, &opts(Some("Background"), None)), None);
        assert_eq!(
            gc_finalizers(&plain, &opts(Some("Orphan"), None)),
            Some(vec!["example.com/keep".to_string(), "orphan".to_string()])
        );
        assert_eq!(
            gc_finalizers(&plain, &opts(Some("Foreground"), None)),
            Some(vec![
                "example.com/keep".to_string(),
                "foregroundDeletion".to_string()
            ])
        );
        // orphanDependents wins over the policy; a later Background delete drops `orphan`.
        assert_eq!(
            gc_finalizers(&plain, &opts(Some("Foreground"), Some(true))),
            Some(vec!["example.com/keep".to_string(), "orphan".to_string()])
        );
        let orphaning = json!({"metadata": {"finalizers": ["orphan"]}});
        assert_eq!(gc_finalizers(&orphaning, &opts(Some("Orphan"), None)), None);
        assert_eq!(
            gc_finalizers(&orphaning, &opts(Some("Background"), None)),
            Some(vec![])
        );
    }
}

#[cfg(test)]
mod normalize_tests {
    use super::missing_field;

    #[test]
    fn missing_field_paths() {
        assert_eq!(
            missing_field("spec: missing field `containers`").as_deref(),
            Some("spec.containers")
        );
        assert_eq!(
            missing_field("missing field `kind`").as_deref(),
            Some("kind")
        );
        assert_eq!(missing_field("invalid type: string"), None);
    }
}
