//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.
//!
//! Why strategic merge patch is here in full: it is what `kubectl apply` (client-side), `kubectl edit`,
//! `kubectl label` and `kubectl patch` send by default, with directives (`$patch`, `$retainKeys`,
//! `$setElementOrder/...`, `$deleteFromPrimitiveList/...`) that change how lists and maps merge.
//! Merge keys and strategies come from the schema facts ([`crate::apiserver::registry::schema`] via [`Pos`]). Server-side
//! apply lives in [`crate::apiserver::registry::managed_fields`].

use serde_json::{Map, Value};

use crate::apiserver::registry::fieldpath::Pos;
use crate::apiserver::status::{ApiError, ApiResult};

/// The patch types upstream accepts, by Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Strategic merge patch (upstream's `StrategicMergePatch` applied to an object): objects merge key by
/// key, `null` deletes, lists with patch strategy `merge` merge item by item (by their merge key, or
/// as sets of scalars), other lists are replaced; the directives `$patch` (replace/merge/delete),
/// `$retainKeys`, `$deleteFromPrimitiveList/<list>` and `$setElementOrder/<list>` apply. `pos` says what
/// the schema knows (strategies and merge keys); where it knows nothing, a list whose items all carry a
/// `name` merges by name and any other list is replaced.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value, pos: &Pos) -> Result<(), String> {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            let merged = merge_map(std::mem::take(t), p, pos)?;
            *target = Value::Object(merged);
        }
        _ => *target = strip_nulls(patch),
    }
    Ok(())
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// The patch strategy and merge key of the field at `pos`, with the no-facts fallback.
fn list_strategy(pos: &Pos, original: &[Value], patch: &[Value]) -> (bool, Option<String>) {
    if pos.known() {
        let f = pos.facts();
        let merge = f
            .patch_strategy
            .is_some_and(|s| s.split(',').any(|x| x == "merge"));
        return (merge, f.patch_merge_key.map(String::from));
    }
    let named = |items: &[Value]| {
        items
            .iter()
            .all(|i| !i.is_object() || i.get("name").is_some_and(Value::is_string))
    };
    let objects = original.iter().chain(patch).any(Value::is_object);
    if objects && named(original) && named(patch) {
        (true, Some("name".into()))
    } else {
        (false, None)
    }
}

fn map_strategy_replace(pos: &Pos) -> bool {
    pos.facts()
        .patch_strategy
        .is_some_and(|s| s.split(',').any(|x| x == "replace"))
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    pos: &Pos,
) -> Result<Map<String, Value>, String> {
    let mut patch = patch.clone();
    if let Some(d) = patch.remove(DIRECTIVE) {
        match d.as_str() {
            Some("replace") => return Ok(strip_directives_map(&patch)),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(format!(
                    "unknown patch type: {d} in map: {}",
                    Value::Object(patch.clone())
                ))
            }
        }
    }
    if let Some(keys) = patch.remove(RETAIN_KEYS) {
        let Some(keys) = keys.as_array() else {
            return Err("doesn't match the expected format: $retainKeys must be a list".into());
        };
        original.retain(|k, _| keys.iter().any(|x| x.as_str() == Some(k.as_str())));
    }
    // $setElementOrder: merge the list it orders now, then order it.
    let orders: Vec<(String, Value)> = patch
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(SET_ELEMENT_ORDER)
                .map(|f| (f.to_string(), v.clone()))
        })
        .collect();
    for (field, order) in orders {
        patch.remove(&format!("{SET_ELEMENT_ORDER}{field}"));
        let Some(order) = order.as_array() else {
            return Err(
                "doesn't match the expected format: $setElementOrder must be a list".into(),
            );
        };
        let child = pos.child(&field);
        let orig_list = original
            .get(&field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let patch_list = match patch.remove(&field) {
            Some(Value::Array(a)) => Some(a),
            Some(Value::Null) => {
                original.remove(&field);
                continue;
            }
            Some(other) => {
                original.insert(field.clone(), strip_nulls(&other));
                continue;
            }
            None => None,
        };
        let (merge, key) = list_strategy(&child, &orig_list, patch_list.as_deref().unwrap_or(&[]));
        let merged = match &patch_list {
            Some(p) if merge => merge_list(orig_list.clone(), p, &child, key.as_deref(), false)?,
            Some(p) => strip_directives_list(p)
                .as_array()
                .cloned()
                .unwrap_or_default(),
            None => orig_list.clone(),
        };
        let ordered = normalize_order(merged, order, &orig_list, key.as_deref());
        original.insert(field, Value::Array(ordered));
    }
    for (k, pv) in &patch {
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Some(del) = pv.as_array() else {
                return Err(
                    "doesn't match the expected format: $deleteFromPrimitiveList must be a list"
                        .into(),
                );
            };
            if let Some(Value::Array(items)) = original.get_mut(field) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            original.remove(k);
            continue;
        }
        let child = pos.child(k);
        let merged = match (original.remove(k), pv) {
            (Some(Value::Object(o)), Value::Object(p)) if !map_strategy_replace(&child) => {
                Value::Object(merge_map(o, p, &child)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                let (merge, key) = list_strategy(&child, &o, p);
                if merge {
                    let n = o.clone();
                    Value::Array(normalize_order(
                        merge_list(o, p, &child, key.as_deref(), false)?,
                        p,
                        &n,
                        key.as_deref(),
                    ))
                } else {
                    strip_directives(pv)
                }
            }
            // Not in the original: the patch value, with its directives worked out against nothing.
            (None, Value::Object(p)) => Value::Object(merge_map(Map::new(), p, &child)?),
            (None, Value::Array(p)) => {
                let (merge, key) = list_strategy(&child, &[], p);
                if merge {
                    Value::Array(merge_list(Vec::new(), p, &child, key.as_deref(), false)?)
                } else {
                    strip_directives(pv)
                }
            }
            (_, other) => strip_directives(other),
        };
        original.insert(k.clone(), merged);
    }
    Ok(original)
}

/// Merges a `merge`-strategy list: scalars as a set, objects by `key` honouring `$patch` items.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    pos: &Pos,
    key: Option<&str>,
    _delete: bool,
) -> Result<Vec<Value>, String> {
    let objects = original.iter().chain(patch).any(Value::is_object);
    if !objects {
        let mut out = original;
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return Ok(out);
    }
    let Some(key) = key else {
        return Err("cannot merge lists without merge key".into());
    };
    let mut original = original;
    let mut items = Vec::new();
    let mut replace = false;
    for p in patch {
        match p.get(DIRECTIVE).and_then(Value::as_str) {
            None => items.push(p),
            Some("delete") => {
                let Some(kv) = p.get(key) else {
                    return Err(format!(
                        "map: {p} does not contain declared merge key: {key}"
                    ));
                };
                original.retain(|o| o.get(key) != Some(kv));
            }
            Some("replace") => replace = true,
            Some(other) => return Err(format!("unknown patch type: {other} in map: {p}")),
        }
    }
    if replace {
        return Ok(items.into_iter().map(strip_directives).collect());
    }
    let elem = pos.elem();
    for p in items {
        let Some(pm) = p.as_object() else {
            return Err(format!("expected a map in the list, got {p}"));
        };
        let Some(kv) = pm.get(key) else {
            return Err(format!(
                "map: {p} does not contain declared merge key: {key}"
            ));
        };
        match original.iter().position(|o| o.get(key) == Some(kv)) {
            Some(i) => {
                let o = match std::mem::take(&mut original[i]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                original[i] = Value::Object(merge_map(o, pm, &elem)?);
            }
            None => original.push(Value::Object(merge_map(Map::new(), pm, &elem)?)),
        }
    }
    Ok(original)
}

/// Upstream's `normalizeElementOrder`: the items the patch (or its `$setElementOrder`) lists come in
/// its order; items only the server has keep their relative order and are interleaved by their
/// original positions.
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let ident = |v: &Value| -> Value {
        match (key, v) {
            (Some(k), Value::Object(m)) => m.get(k).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let index = |list: &[Value], v: &Value| -> Option<usize> {
        let id = ident(v);
        list.iter()
            .filter(|x| x.get(DIRECTIVE).is_none())
            .position(|x| ident(x) == id)
    };
    let (mut patch_items, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| index(patch_order, v).is_some());
    patch_items.sort_by_key(|v| index(patch_order, v).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| index(server_order, v).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let (mut i, mut j) = (0, 0);
    while i < server_only.len() || j < patch_items.len() {
        if j >= patch_items.len() {
            out.push(server_only[i].clone());
            i += 1;
        } else if i >= server_only.len() {
            out.push(patch_items[j].clone());
            j += 1;
        } else {
            let l = index(server_order, &server_only[i]);
            let r = index(server_order, &patch_items[j]);
            match (l, r) {
                (Some(l), Some(r)) if l < r => {
                    out.push(server_only[i].clone());
                    i += 1;
                }
                _ => {
                    out.push(patch_items[j].clone());
                    j += 1;
                }
            }
        }
    }
    out
}

fn strip_directives_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
        .map(|(k, v)| (k.clone(), strip_directives(v)))
        .collect()
}

fn strip_directives_list(a: &[Value]) -> Value {
    Value::Array(
        a.iter()
            .filter(|i| i.get(DIRECTIVE).is_none())
            .map(strip_directives)
            .collect(),
    )
}

/// A patch value as stored: directives and nulls dropped.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives_map(m)),
        Value::Array(a) => strip_directives_list(a),
        other => other.clone(),
    }
}

fn strip_nulls(v: &Value) -> Value {
    strip_directives(v)
}

/// Upstream's `maxJSONPatchOperations`: a JSON patch with more operations is a 413.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Upstream's `JSONPatchMaxCopyBytes` (json-patch's `AccumulatedCopySizeLimit`): the bytes `copy`
/// operations may add to an object in one patch. Without it 17 doublings of a 2.5 KB patch grow the
/// object to hundreds of megabytes.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The size of `v` as compact JSON (what json-patch's deep copy measures), without building the text.
fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a Value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

fn patch_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("the server rejected our request due to an error in our request: {e}"),
    )
}

/// Applies a JSON patch with upstream's bounds: at most [`MAX_JSON_PATCH_OPERATIONS`] operations (413),
/// and `copy` operations adding at most [`MAX_JSON_PATCH_COPY_BYTES`] in all (422, json-patch's message),
/// checked before each copy is made so memory never grows past the bound.
pub fn apply_json_patch(target: &mut Value, body: &[u8]) -> ApiResult<()> {
    let patch: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let ops = patch.0;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                ops.len()
            ),
        ));
    }
    let original = target.clone();
    let mut copied = 0usize;
    for (i, op) in ops.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(c) = op {
            if let Some(v) = target.pointer(c.from.as_str()) {
                copied = copied.saturating_add(json_size(v));
                if copied > MAX_JSON_PATCH_COPY_BYTES {
                    return Err(patch_failed(format!(
                        "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                    )));
                }
            }
        }
        if json_patch::patch(target, std::slice::from_ref(op)).is_err() {
            // Applied one at a time, the error would name operation 0: replay the prefix on the
            // original for the error json-patch gives for the whole patch (same ops, same bound).
            let mut replay = original.clone();
            return Err(match json_patch::patch(&mut replay, &ops[..=i]) {
                Err(e) => patch_failed(e),
                Ok(()) => patch_failed(format!("operation {i} failed")),
            });
        }
    }
    Ok(())
}

/// Applies `body` of `kind` to `current`.
pub fn apply_patch(kind: PatchType, current: &Value, body: &[u8], pos: &Pos) -> ApiResult<Value> {
    let mut target = current.clone();
    match kind {
        PatchType::Json => apply_json_patch(&mut target, body)?,
        PatchType::Merge | PatchType::Strategic => {
            // serde_json refuses nesting past 128 levels, so the recursive merges below stay shallow.
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: the patch must be a JSON object",
                ));
            }
            if kind == PatchType::Merge {
                merge_patch(&mut target, &patch);
            } else {
                strategic_merge_patch(&mut target, &patch, pos).map_err(ApiError::bad_request)?;
            }
        }
        PatchType::Apply => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "server-side apply is not supported yet",
            ));
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge_patch(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
    }

    use super::super::fieldpath::testschema::pod_pos;

    fn smp(orig: Value, patch: Value) -> Value {
        let mut t = orig;
        strategic_merge_patch(&mut t, &patch, &pod_pos()).unwrap();
        t
    }

    #[test]
    fn strategic_named_lists_without_facts() {
        let mut t = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let p = json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "a", "$patch": "delete"}]}});
        strategic_merge_patch(&mut t, &p, &Pos::unknown(&super::super::fieldpath::Builtin))
            .unwrap();
        assert_eq!(
            t,
            json!({"spec": {"containers": [{"name": "b", "image": "z"}]}})
        );
    }

    // update-api-object-kubectl-patch doc: adding a container merges by name; the new one comes first.
    #[test]
    fn doc_containers_merge() {
        let out = smp(
            json!({"spec": {"containers": [{"name": "patch-demo-ctr", "image": "nginx"}]}}),
            json!({"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}, {"name": "patch-demo-ctr", "image": "nginx"}]}})
        );
    }

    // Same doc: a list without patch strategy (tolerations; here `args`) is replaced.
    #[test]
    fn doc_replace_list_without_strategy() {
        let out = smp(
            json!({"spec": {"containers": [{"name": "c", "args": ["a", "b"]}]}}),
            json!({"spec": {"containers": [{"name": "c", "args": ["z"]}]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "c", "args": ["z"]}]}})
        );
    }

    // strategic-merge-patch.md: `$patch: replace` on a map and in a list; `$patch: delete` on a map.
    #[test]
    fn doc_patch_directives() {
        let out = smp(
            json!({"spec": {"replicas": 1, "nodeName": "n"}}),
            json!({"spec": {"$patch": "replace", "replicas": 2}}),
        );
        assert_eq!(out, json!({"spec": {"replicas": 2}}));
        let out = smp(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
        );
        assert_eq!(out, json!({"spec": {"containers": [{"name": "c"}]}}));
        let out = smp(
            json!({"spec": {"replicas": 1}, "metadata": {"name": "x"}}),
            json!({"spec": {"$patch": "delete"}}),
        );
        assert_eq!(out, json!({"spec": {}, "metadata": {"name": "x"}}));
    }

    // strategic-merge-patch.md: primitive lists with strategy merge are sets; $deleteFromPrimitiveList.
    #[test]
    fn doc_primitive_list_merge_and_delete() {
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["a", "b", "c"]}}));
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["a", "c"]}}));
    }

    // strategic-merge-patch.md: $setElementOrder orders the merged list; server-only items interleave.
    #[test]
    fn doc_set_element_order() {
        let out = smp(
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}, {"name": "c"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}], "containers": [{"name": "a", "image": "2"}]}}),
        );
        // b (server only) was before c in the live list, so it stays ahead of it (mergeSortedSlice).
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "b"}, {"name": "c"}, {"name": "a", "image": "2"}]}})
        );
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "a", "c"], "finalizers": ["c"]}}),
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["b", "a", "c"]}}));
    }

    // strategic-merge-patch.md: $retainKeys clears the fields not listed (e.g. a deployment strategy).
    #[test]
    fn doc_retain_keys() {
        let out = smp(
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    }

    #[test]
    fn nulls_delete_and_keyed_delete() {
        let out = smp(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"a": null, "c": null}}}),
        );
        assert_eq!(out, json!({"metadata": {"labels": {"b": "2"}}}));
        let out = smp(
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}, {"containerPort": 81}]}]}}),
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "$patch": "delete"}]}]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 81}]}]}})
        );
        let mut t = json!({"spec": {"containers": [{"name": "c"}]}});
        assert!(strategic_merge_patch(
            &mut t,
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            &pod_pos()
        )
        .is_err());
    }

    // With the built-in schema facts: container ports merge by containerPort (their patch merge key),
    // tolerations (no strategy) are replaced.
    #[test]
    fn builtin_pod_ports_merge_by_container_port() {
        let pos = Pos::root(&super::super::fieldpath::Builtin, "v1", "Pod");
        let mut t = json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}], "tolerations": [{"key": "a"}]}});
        let p = json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 81}]}], "tolerations": [{"key": "b"}]}});
        strategic_merge_patch(&mut t, &p, &pos).unwrap();
        assert_eq!(
            t,
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 81}, {"containerPort": 80}]}], "tolerations": [{"key": "b"}]}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let cur = json!({"metadata": {"labels": {"a": "1"}}});
        let pos = pod_pos();
        let out = apply_patch(PatchType::Json, &cur, br#"[{"op":"test","path":"/metadata/labels/a","value":"1"},{"op":"add","path":"/metadata/labels/b","value":"2"}]"#, &pos).unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"a": "1", "b": "2"}}}));
        assert!(apply_patch(
            PatchType::Json,
            &cur,
            br#"[{"op":"test","path":"/metadata/labels/a","value":"9"}]"#,
            &pos
        )
        .is_err());
    }

    #[test]
    fn json_patch_copy_bomb_is_refused_before_it_grows() {
        let cur = json!({"metadata": {"name": "x"}, "data": {"a": "x".repeat(100)}});
        let mut ops = vec![json!({"op": "add", "path": "/data/b", "value": "y".repeat(2000)})];
        // Each copy doubles /data: 17 of them would make it 2^17 times as large.
        for i in 0..17 {
            ops.push(json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")}));
        }
        let body = serde_json::to_vec(&ops).unwrap();
        let t = std::time::Instant::now();
        let Err(e) = apply_patch(PatchType::Json, &cur, &body, &pod_pos()) else {
            panic!("the copy bomb was applied");
        };
        println!("copy bomb ({} B) refused in {:?}", body.len(), t.elapsed());
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("Unable to complete the copy, the accumulated size increase of copy is"),
            "{}",
            e.message
        );
        // A modest copy is fine.
        let out = apply_patch(
            PatchType::Json,
            &cur,
            br#"[{"op":"copy","from":"/data/a","path":"/data/z"}]"#,
            &pod_pos(),
        )
        .unwrap();
        assert_eq!(out["data"]["z"], cur["data"]["a"]);
    }

    #[test]
    fn json_patch_operation_cap() {
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/metadata", "value": {}}))
            .collect();
        let e = apply_patch(
            PatchType::Json,
            &json!({}),
            &serde_json::to_vec(&ops).unwrap(),
            &pod_pos(),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (413, "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001")
        );
    }

    #[test]
    fn json_patch_errors_name_the_failing_operation() {
        let e = apply_patch(
            PatchType::Json,
            &json!({"a": 1}),
            br#"[{"op":"add","path":"/b","value":2},{"op":"remove","path":"/zz"}]"#,
            &pod_pos(),
        )
        .unwrap_err();
        assert!(e.message.contains("'/1'"), "{}", e.message);
    }
}
