//! `metadata.managedFields`: who owns which field, and server-side apply on top of it.
//!
//! Why: upstream records, for every write, which manager set which fields (`Update` entries for
//! create/update/patch, `Apply` entries for server-side apply). Apply uses that record to detect
//! conflicts with other managers (409 unless forced), to transfer ownership, and to remove fields an
//! applier stopped sending when nobody else owns them. The algorithms follow structured-merge-diff's
//! `Updater.Update` / `Updater.Apply` over the field sets of [`crate::apiserver::registry::fieldpath`].

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::apiserver::registry::fieldpath::{self, FieldSet, Path, Pos};
use crate::apiserver::status::{ApiError, ApiResult};

/// One managedFields entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub set: FieldSet,
}

impl Entry {
    /// Upstream's manager identifier: manager, operation, subresource, and apiVersion for updaters.
    fn same_identity(&self, o: &Entry) -> bool {
        self.manager == o.manager
            && self.operation == o.operation
            && self.subresource == o.subresource
            && (self.operation == "Apply" || self.api_version == o.api_version)
    }

    /// How conflict messages name a manager (upstream's `printManager`).
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    /// Sort key of the identifier JSON upstream sorts conflict messages by.
    fn identity_key(&self) -> String {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        if self.operation != "Apply" {
            m.insert("apiVersion".into(), json!(self.api_version));
        }
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m).to_string()
    }
}

/// Parses `metadata.managedFields` (entries that don't parse are dropped, as upstream resets them).
pub fn decode(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let manager = s("manager");
            let operation = s("operation");
            if !matches!(operation.as_str(), "Apply" | "Update") {
                return None;
            }
            Some(Entry {
                manager,
                operation,
                api_version: s("apiVersion"),
                time: e.get("time").and_then(Value::as_str).map(String::from),
                subresource: s("subresource"),
                set: e
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Serializes entries in upstream's order (operation, time, manager, apiVersion, subresource).
pub fn encode(entries: &[Entry]) -> Value {
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.set.is_empty()).collect();
    sorted.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(
        sorted
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.manager));
                m.insert("operation".into(), json!(e.operation));
                m.insert("apiVersion".into(), json!(e.api_version));
                if let Some(t) = &e.time {
                    m.insert("time".into(), json!(t));
                }
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.set.to_fields_v1());
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.subresource));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Writes `entries` into `obj` (no field at all when there are none, as upstream).
pub fn set_entries(obj: &mut Value, entries: &[Entry]) {
    let encoded = encode(entries);
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if encoded.as_array().is_some_and(|a| a.is_empty()) {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), encoded);
    }
}

/// The object without its managedFields, for comparing.
pub fn strip(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

/// The manager a write is recorded under: `fieldManager`, else the User-Agent up to its first '/'
/// (upstream's `prefixFromUserAgent`), truncated to 128 characters.
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    let m = match field_manager.filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => user_agent
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string(),
    };
    m.chars().take(128).collect()
}

/// What a write is, for managedFields purposes.
pub struct Ctx<'a> {
    pub pos: Pos<'a>,
    pub api_version: String,
    /// `status` for the status subresource, "" for the main resource.
    pub subresource: String,
    /// Whether the kind has a status subresource (then the main resource doesn't own status).
    pub has_status: bool,
}

impl Ctx<'_> {
    /// Paths no manager owns (upstream's strip set plus the reset fields of the strategy).
    fn ignored(&self) -> FieldSet {
        let mut s = FieldSet::new();
        let p = |parts: &[&str]| -> Path { parts.iter().map(|x| fieldpath::field_pe(x)).collect() };
        for f in [&["apiVersion"][..], &["kind"]] {
            s.insert(p(f));
        }
        for f in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            s.insert(p(&["metadata", f]));
        }
        if self.subresource == "status" {
            s.insert(p(&["spec"]));
        } else if self.has_status {
            s.insert(p(&["status"]));
        }
        s
    }

    fn clean(&self, set: &FieldSet) -> FieldSet {
        let meta: Path = vec![fieldpath::field_pe("metadata")];
        let mut out = set.without_prefixes(&self.ignored());
        out.0.remove(&meta);
        out
    }

    fn entry(&self, manager: &str, operation: &str) -> Entry {
        Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: self.api_version.clone(),
            time: None,
            subresource: self.subresource.clone(),
            set: FieldSet::new(),
        }
    }
}

/// Upstream's `decodeLiveOrNew`: the request's managedFields when it sets some, none when it resets
/// them (`[]` or `[{}]`), else the live object's.
pub fn live_or_new(live: Option<&Value>, new: &Value) -> Vec<Entry> {
    match new.pointer("/metadata/managedFields") {
        Some(Value::Array(a)) if a.is_empty() => return Vec::new(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].as_object().is_some_and(|o| o.is_empty()) => {
            return Vec::new()
        }
        _ => {}
    }
    let from_new = decode(new);
    if !from_new.is_empty() {
        return from_new;
    }
    live.map(decode).unwrap_or_default()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Records an `Update` by `manager` turning `live` (None on create) into `new`: the manager gains the
/// fields that changed, every other manager loses them, removed fields leave every set. `managed` is
/// the ownership to start from (see [`live_or_new`]). Writes the result into `new`.
pub fn record_update(
    ctx: &Ctx,
    live: Option<&Value>,
    new: &mut Value,
    managed: Vec<Entry>,
    manager: &str,
) {
    let empty = json!({});
    let old = live.map(strip).unwrap_or(empty);
    let cmp = fieldpath::compare(&old, &strip(new), &ctx.pos, live.is_none());
    let changed = ctx.clean(&cmp.changed());
    let removed = ctx.clean(&cmp.removed);
    let me = ctx.entry(manager, "Update");
    let mut entries: Vec<Entry> = Vec::new();
    let mut mine: Option<Entry> = None;
    for mut e in managed {
        e.set = e.set.difference(&removed).difference(&changed);
        if e.same_identity(&me) {
            mine = Some(e);
        } else {
            entries.push(e);
        }
    }
    let prev = mine.clone().unwrap_or_else(|| me.clone());
    let mut mine_entry = prev.clone();
    if !changed.is_empty() {
        mine_entry.set = prev.set.union(&changed);
        mine_entry.time = Some(now());
    } else if let Some(m) = mine {
        // Nothing changed: the entry stays as it was (minus removed fields), time included.
        mine_entry = m;
    }
    entries.push(mine_entry);
    entries.retain(|e| !e.set.is_empty());
    set_entries(new, &entries);
}

/// The 409 of an apply that would change fields other managers own.
fn conflict_error(conflicts: &[(Entry, Vec<Path>)]) -> ApiError {
    let total: usize = conflicts.iter().map(|(_, p)| p.len()).sum();
    let mut causes = Vec::new();
    for (e, paths) in conflicts {
        for p in paths {
            causes.push(json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", e.printed()), "field": fieldpath::display(p)}));
        }
    }
    let message = if total == 1 {
        let (e, paths) = &conflicts[0];
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            e.printed(),
            paths.first().map(fieldpath::display).unwrap_or_default()
        )
    } else {
        let mut sorted: Vec<&(Entry, Vec<Path>)> = conflicts.iter().collect();
        sorted.sort_by_key(|(e, _)| e.identity_key());
        let mut lines = Vec::new();
        for (e, paths) in sorted {
            lines.push(format!("conflicts with {}:", e.printed()));
            for p in paths {
                lines.push(format!("- {}", fieldpath::display(p)));
            }
        }
        format!("Apply failed with {total} conflicts: {}", lines.join("\n"))
    };
    ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

/// Server-side apply of `config` by `manager` onto `live` (None: the object doesn't exist yet).
/// Returns the new object, managedFields included; equal to `live` when nothing changed.
pub fn apply(
    ctx: &Ctx,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    let live_obj = live.map(strip).unwrap_or_else(|| json!({}));
    let managed = live.map(decode).unwrap_or_default();
    let applied = config;
    let config = strip(config);
    let mut merged = fieldpath::apply_merge(&live_obj, &config, &ctx.pos);
    let new_set = ctx.clean(&fieldpath::set_of(&config, &ctx.pos));
    let me = ctx.entry(manager, "Apply");
    let last = managed
        .iter()
        .find(|e| e.same_identity(&me))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut keep = new_set.clone();
    for e in managed.iter().filter(|e| !e.same_identity(&me)) {
        keep = keep.union(&e.set);
    }
    // Prune: what this manager applied last time and no longer does, and nobody else owns.
    let mut candidates = FieldSet::new();
    for p in last.iter() {
        for n in 1..=p.len() {
            candidates.insert(p[..n].to_vec());
        }
    }
    let protected = ctx.ignored();
    let prune: FieldSet = FieldSet(
        candidates
            .iter()
            .filter(|p| !keep.has_at_or_under(p))
            .filter(|p| {
                !(p.len() == 1 && matches!(p[0].as_str(), "f:metadata" | "f:apiVersion" | "f:kind"))
            })
            .filter(|p| {
                !protected
                    .iter()
                    .any(|q| p.starts_with(q) || q.starts_with(p))
            })
            .cloned()
            .collect(),
    );
    fieldpath::remove_paths(&mut merged, &prune, &ctx.pos);

    let cmp = fieldpath::compare(&live_obj, &merged, &ctx.pos, live.is_none());
    let changed = ctx.clean(&cmp.changed());
    let removed = ctx.clean(&cmp.removed);
    let mut conflicts: Vec<(Entry, Vec<Path>)> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut my_time = None;
    for e in managed {
        if e.same_identity(&me) {
            my_time = e.time.clone();
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((e.clone(), c.iter().cloned().collect()));
        }
        entries.push(e);
    }
    if !conflicts.is_empty() && !force {
        // Upstream's lastAppliedManager: kubectl's server-side apply may take over what the object's
        // client-side apply config (its last-applied annotation) set, so `kubectl apply --server-side`
        // after `kubectl apply` upgrades instead of conflicting. Other managers opt out by their name.
        let allowed = live
            .filter(|_| manager == KUBECTL)
            .and_then(|l| last_applied_set(ctx, l));
        if let Some(allowed) = allowed {
            for (_, paths) in conflicts.iter_mut() {
                paths.retain(|p| !allowed.contains(p));
            }
            conflicts.retain(|(_, paths)| !paths.is_empty());
        }
        if !conflicts.is_empty() {
            return Err(conflict_error(&conflicts));
        }
    }
    for e in entries.iter_mut() {
        e.set = e.set.difference(&changed).difference(&removed);
    }
    let object_changed = merged != live_obj;
    let mut mine = me;
    mine.set = new_set;
    mine.time = if object_changed || my_time.is_none() {
        Some(now())
    } else {
        my_time
    };
    entries.push(mine);
    entries.retain(|e| !e.set.is_empty());
    if !merged.get("metadata").is_some_and(Value::is_object) {
        merged["metadata"] = json!({});
    }
    if manager == KUBECTL && !last_applied(&merged).is_empty() {
        sync_last_applied(&mut merged, applied);
    }
    set_entries(&mut merged, &entries);
    Ok(merged)
}

/// The field manager name `kubectl apply --server-side` uses by default.
const KUBECTL: &str = "kubectl";
/// Client-side apply's record of what it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn last_applied(obj: &Value) -> &str {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The fields the object's last-applied configuration sets (`None` without a readable one).
fn last_applied_set(ctx: &Ctx, live: &Value) -> Option<FieldSet> {
    let config: Value = serde_json::from_str(last_applied(live)).ok()?;
    config
        .is_object()
        .then(|| ctx.clean(&fieldpath::set_of(&strip(&config), &ctx.pos)))
}

/// Upstream's lastAppliedUpdater: when kubectl applies server-side to an object that has a last-applied
/// annotation, the annotation becomes this apply's configuration (without the annotation itself, keys
/// sorted and a trailing newline as Go's encoder writes it), so a later client-side apply diffs against
/// what was really applied. Dropped when it would break the annotations' size limit, as upstream.
fn sync_last_applied(obj: &mut Value, config: &Value) {
    let mut config = config.clone();
    if let Some(annotations) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let sorted: serde_json::Value = sort_keys(config);
    let mut text = serde_json::to_string(&sorted).unwrap_or_default();
    text.push('\n');
    let Some(annotations) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let others: usize = annotations
        .iter()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED)
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if others + LAST_APPLIED.len() + text.len() > ANNOTATIONS_SIZE_LIMIT {
        annotations.remove(LAST_APPLIED);
    } else {
        annotations.insert(LAST_APPLIED.into(), Value::String(text));
    }
}

/// Upstream's TotalAnnotationSizeLimitB.
const ANNOTATIONS_SIZE_LIMIT: usize = 256 * 1024;

/// `v` with every object's keys in sorted order (Go marshals maps that way).
fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fieldpath::testschema::{pod_pos, TestFacts};
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            pos: pod_pos(),
            api_version: "v1".into(),
            subresource: String::new(),
            has_status: true,
        }
    }

    fn cm_ctx() -> Ctx<'static> {
        Ctx {
            pos: Pos::root(&TestFacts, "v1", "ConfigMap"),
            api_version: "v1".into(),
            subresource: String::new(),
            has_status: false,
        }
    }

    fn owners(obj: &Value) -> Vec<(String, String, Value)> {
        decode(obj)
            .into_iter()
            .map(|e| (e.manager, e.operation, e.set.to_fields_v1()))
            .collect()
    }

    fn base() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    }

    fn cfg(data: Value) -> Value {
        let mut v = base();
        v["data"] = data;
        v
    }

    #[test]
    fn manager_from_user_agent() {
        assert_eq!(
            manager_name(
                None,
                Some("kubectl-create/v1.32.0 (linux/amd64) kubernetes/abc")
            ),
            "kubectl-create"
        );
        assert_eq!(manager_name(Some("mine"), Some("kubectl/v1")), "mine");
    }

    #[test]
    fn apply_creates_and_records_ownership() {
        let out = apply(&cm_ctx(), None, &cfg(json!({"a": "1"})), "alice", false).unwrap();
        assert_eq!(out["data"], json!({"a": "1"}));
        assert_eq!(
            owners(&out),
            vec![(
                "alice".into(),
                "Apply".into(),
                json!({"f:data": {"f:a": {}}})
            )]
        );
        // Re-applying the same config changes nothing, not even the entry's time.
        let again = apply(
            &cm_ctx(),
            Some(&out),
            &cfg(json!({"a": "1"})),
            "alice",
            false,
        )
        .unwrap();
        assert_eq!(again, out);
    }

    // server-side-apply doc: "Conflicts": a second applier setting a field to a different value fails
    // with the upstream message, and succeeds with force, taking ownership.
    #[test]
    fn conflicts_and_force() {
        let live = apply(
            &cm_ctx(),
            None,
            &cfg(json!({"a": "1", "b": "1"})),
            "alice",
            false,
        )
        .unwrap();
        let err = apply(
            &cm_ctx(),
            Some(&live),
            &cfg(json!({"a": "2"})),
            "bob",
            false,
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .data.a"
        );
        let err = apply(
            &cm_ctx(),
            Some(&live),
            &cfg(json!({"a": "2", "b": "2"})),
            "bob",
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .data.a\n- .data.b"
        );
        let forced = apply(&cm_ctx(), Some(&live), &cfg(json!({"a": "2"})), "bob", true).unwrap();
        assert_eq!(forced["data"], json!({"a": "2", "b": "1"}));
        let o = owners(&forced);
        assert!(o.contains(&(
            "alice".into(),
            "Apply".into(),
            json!({"f:data": {"f:b": {}}})
        )));
        assert!(o.contains(&("bob".into(), "Apply".into(), json!({"f:data": {"f:a": {}}}))));
        // Same value: shared ownership, no conflict.
        let shared = apply(
            &cm_ctx(),
            Some(&live),
            &cfg(json!({"a": "1"})),
            "bob",
            false,
        )
        .unwrap();
        assert_eq!(shared["data"], live["data"]);
        assert_eq!(owners(&shared).len(), 2);
    }

    /// `kubectl apply` then `kubectl apply --server-side` with a changed file: upstream's
    /// lastAppliedManager lets kubectl take over what the last-applied annotation lists, and syncs it.
    #[test]
    fn server_side_apply_upgrades_client_side_apply() {
        let mut live = base();
        live["data"] = json!({"a": "1", "x": "9"});
        live["metadata"]["annotations"] = json!({LAST_APPLIED:
            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"1\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"c\"}}\n"});
        record_update(
            &cm_ctx(),
            None,
            &mut live,
            Vec::new(),
            "kubectl-client-side-apply",
        );
        let config = cfg(json!({"a": "2", "b": "3"}));
        let out = apply(&cm_ctx(), Some(&live), &config, "kubectl", false).expect("no conflict");
        assert_eq!(out["data"], json!({"a": "2", "b": "3", "x": "9"}));
        assert_eq!(
            out["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"2\",\"b\":\"3\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}\n"
        );
        // A field the last-applied config did not set (x, by client-side apply's updates) still conflicts.
        let err = apply(
            &cm_ctx(),
            Some(&live),
            &cfg(json!({"x": "0"})),
            "kubectl",
            false,
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.message.contains(".data.x"), "{}", err.message);
        // Another manager gets no such leave.
        let err = apply(&cm_ctx(), Some(&live), &config, "someone", false).unwrap_err();
        assert_eq!(err.code, 409);
    }

    #[test]
    fn conflict_with_updater_names_api_version() {
        let mut live = base();
        live["data"] = json!({"a": "1"});
        record_update(
            &cm_ctx(),
            None,
            &mut live,
            Vec::new(),
            "kubectl-client-side-apply",
        );
        assert_eq!(
            owners(&live),
            vec![(
                "kubectl-client-side-apply".into(),
                "Update".into(),
                json!({"f:data": {".": {}, "f:a": {}}})
            )]
        );
        let err = apply(
            &cm_ctx(),
            Some(&live),
            &cfg(json!({"a": "2"})),
            "kubectl",
            false,
        )
        .unwrap_err();
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.a");
        assert_eq!(err.details.unwrap()["causes"][0]["field"], ".data.a");
    }

    // server-side-apply doc: fields an applier stops applying are removed when nobody else owns them,
    // and kept (ownership dropped) when someone does.
    #[test]
    fn prune_unowned_fields() {
        let live = apply(
            &cm_ctx(),
            None,
            &cfg(json!({"a": "1", "b": "1"})),
            "alice",
            false,
        )
        .unwrap();
        let out = apply(
            &cm_ctx(),
            Some(&live),
            &cfg(json!({"a": "1"})),
            "alice",
            false,
        )
        .unwrap();
        assert_eq!(out["data"], json!({"a": "1"}));
        let shared = apply(
            &cm_ctx(),
            Some(&live),
            &cfg(json!({"b": "1"})),
            "bob",
            false,
        )
        .unwrap();
        let out = apply(
            &cm_ctx(),
            Some(&shared),
            &cfg(json!({"a": "1"})),
            "alice",
            false,
        )
        .unwrap();
        assert_eq!(out["data"], json!({"a": "1", "b": "1"}));
        assert!(owners(&out).contains(&(
            "bob".into(),
            "Apply".into(),
            json!({"f:data": {"f:b": {}}})
        )));
    }

    // Ownership transfer (doc: "Transferring ownership"): an updater changing a field takes it over.
    #[test]
    fn update_takes_changed_fields() {
        let live = apply(
            &ctx(),
            None,
            &json!({"spec": {"replicas": 3, "nodeName": "n"}, "metadata": {"name": "p"}}),
            "ssa",
            false,
        )
        .unwrap();
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(5);
        let managed = live_or_new(Some(&live), &new);
        record_update(&ctx(), Some(&live), &mut new, managed, "kubectl-scale");
        let o = owners(&new);
        assert!(o.contains(&(
            "ssa".into(),
            "Apply".into(),
            json!({"f:spec": {"f:nodeName": {}}})
        )));
        assert!(o.contains(&(
            "kubectl-scale".into(),
            "Update".into(),
            json!({"f:spec": {"f:replicas": {}}})
        )));
    }

    #[test]
    fn keyed_lists_own_items() {
        let c1 = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "1"}]}});
        let live = apply(&ctx(), None, &c1, "alice", false).unwrap();
        let c2 = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "b", "image": "2"}]}});
        let both = apply(&ctx(), Some(&live), &c2, "bob", false).unwrap();
        assert_eq!(both["spec"]["containers"].as_array().map(Vec::len), Some(2));
        // Alice drops her container: it goes, Bob's stays.
        let c3 = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        let out = apply(&ctx(), Some(&both), &c3, "alice", false).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "b", "image": "2"}])
        );
        // Conflict inside an item names the key.
        let c4 = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "b", "image": "3"}]}});
        let err = apply(&ctx(), Some(&both), &c4, "alice", false).unwrap_err();
        assert_eq!(err.message, "Apply failed with 1 conflict: conflict with \"bob\": .spec.containers[name=\"b\"].image");
    }

    #[test]
    fn reset_and_request_managed_fields() {
        let live = apply(&cm_ctx(), None, &cfg(json!({"a": "1"})), "alice", false).unwrap();
        let mut new = live.clone();
        new["metadata"]["managedFields"] = json!([]);
        assert!(live_or_new(Some(&live), &new).is_empty());
        new["metadata"]
            .as_object_mut()
            .map(|m| m.remove("managedFields"));
        assert_eq!(live_or_new(Some(&live), &new).len(), 1);
    }
}
