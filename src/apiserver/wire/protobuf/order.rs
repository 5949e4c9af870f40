//! Upstream's JSON field order, applied to an object whatever order its client wrote it in.
//!
//! Why: upstream decodes every body into a Go struct and encodes it back, so a response lists
//! `kind`, `apiVersion`, `metadata` (`name, generateName, namespace, …, managedFields`), `spec`,
//! `status` in the structs' declaration order, and map keys (labels, annotations, data) sorted, as
//! Go's encoder writes maps. Clients that diff raw bodies or report decode errors by byte column see
//! the difference. Custom resources are unstructured maps upstream, so every level is sorted.
//!
//! The order comes from the same generated table as the protobuf codec: each message's
//! `json_order` is its fields in k8s-pb's declaration order, which is the Go struct's. Keys the
//! table does not know stay, in their order, after the known ones. The registry applies this once,
//! before an object is stored, so reads and watches serve it as stored at no cost.

use serde_json::{Map, Value};

use super::{message, message_index_for, specials, Field, Label, Special, Ty, MAX_DEPTH};

/// Puts `obj` (a whole object with `apiVersion` and `kind`) in upstream's field order: a built-in
/// kind's struct order, or sorted keys for kinds the table does not know (custom resources).
pub fn canonicalize(obj: &mut Value) {
    let (Some(api_version), Some(kind)) = (
        obj.get("apiVersion").and_then(Value::as_str),
        obj.get("kind").and_then(Value::as_str),
    ) else {
        return;
    };
    match message_index_for(api_version, kind) {
        // TypeMeta is embedded first in every Go kind (and is not in the proto message).
        Some(mi) => {
            if let Value::Object(map) = obj {
                order_message(mi, map, &["kind", "apiVersion"], 0);
            }
        }
        None => sort_all(obj, 0),
    }
}

/// Calls `visit` with each field of message `mi` in declaration order (the Go struct's) and the depth
/// it sits at; an inline (embedded) message's fields come in its place, at the parent's level.
fn for_each_in_order(mi: u16, depth: usize, visit: &mut dyn FnMut(&'static Field, usize)) {
    let Ok(m) = message(mi) else { return };
    if depth > MAX_DEPTH {
        return;
    }
    for &i in m.json_order {
        let Some(f) = m.fields.get(i as usize) else {
            continue;
        };
        match (f.label, f.ty) {
            (Label::Inline, Ty::Msg(inner)) => for_each_in_order(inner, depth + 1, visit),
            (Label::Inline, _) => {}
            _ => visit(f, depth),
        }
    }
}

/// Reorders what a field of message type holds: the message, each item, or each map value (the
/// map's keys sorted).
fn reorder_field(f: &Field, v: &mut Value, depth: usize) {
    match (f.label, f.ty) {
        (Label::Opt, Ty::Msg(inner)) => reorder(inner, v, depth + 1),
        (Label::Rep, Ty::Msg(inner)) => {
            for item in v.as_array_mut().into_iter().flatten() {
                reorder(inner, item, depth + 1);
            }
        }
        (Label::Map, ty) => {
            if let Value::Object(entries) = v {
                entries.sort_keys();
                if let Ty::Msg(inner) = ty {
                    for item in entries.values_mut() {
                        reorder(inner, item, depth + 1);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Reorders a value of message `mi`; messages with a JSON form of their own are left alone (embedded
/// JSON too: a RawExtension or a FieldsV1 is raw bytes upstream, written back as it came).
fn reorder(mi: u16, v: &mut Value, depth: usize) {
    if specials().get(mi as usize) != Some(&Special::No) {
        return;
    }
    if let Value::Object(map) = v {
        order_message(mi, map, &[], depth);
    }
}

/// Puts `map`, a value of message `mi`, in order: the `lead` keys first, then the fields in
/// declaration order, each reordered in turn, then the keys the table does not know, in their
/// order. A map already in order (most writes carry an object read from the server) is not
/// rebuilt; only its fields are visited.
fn order_message(mi: u16, map: &mut Map<String, Value>, lead: &[&str], depth: usize) {
    let in_order = {
        let keys: Vec<&String> = map.keys().collect();
        let mut at = 0;
        for k in lead {
            if keys.get(at).is_some_and(|x| x.as_str() == *k) {
                at += 1;
            }
        }
        let lead_first = !keys[at..].iter().any(|k| lead.contains(&k.as_str()));
        // Walk the fields past the keys that come in their order; none may be left behind.
        for_each_in_order(mi, depth, &mut |f, _| {
            if keys.get(at).is_some_and(|k| k.as_str() == f.json) {
                at += 1;
            }
        });
        let mut known_left = false;
        for_each_in_order(mi, depth, &mut |f, _| {
            known_left |= keys[at..].iter().any(|k| k.as_str() == f.json);
        });
        lead_first && !known_left
    };
    if in_order {
        for_each_in_order(mi, depth, &mut |f, d| {
            if let Some(v) = map.get_mut(f.json) {
                reorder_field(f, v, d);
            }
        });
        return;
    }
    let mut old = std::mem::take(map);
    for k in lead {
        if let Some(v) = old.shift_remove(*k) {
            map.insert(k.to_string(), v);
        }
    }
    for_each_in_order(mi, depth, &mut |f, d| {
        // shift_remove: the keys left over keep their order.
        if let Some(mut v) = old.shift_remove(f.json) {
            reorder_field(f, &mut v, d);
            map.insert(f.json.to_string(), v);
        }
    });
    map.append(&mut old);
}

/// Sorts the keys of every object in `v`, as Go encodes a `map[string]interface{}`.
fn sort_all(v: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            map.sort_keys();
            for item in map.values_mut() {
                sort_all(item, depth + 1);
            }
        }
        Value::Array(items) => {
            for item in items {
                sort_all(item, depth + 1);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn built_in_kinds_follow_the_go_structs() {
        let mut pod = json!({
            "status": {"phase": "Pending"},
            "spec": {"containers": [{"image": "x", "name": "c"}], "volumes": [], "initContainers": [],
                     "restartPolicy": "Always"},
            "metadata": {"labels": {"b": "1", "a": "2"}, "uid": "u", "name": "p", "namespace": "n",
                         "resourceVersion": "", "creationTimestamp": "t", "x-unknown": 1},
            "apiVersion": "v1",
            "kind": "Pod",
        });
        canonicalize(&mut pod);
        assert_eq!(
            keys(&pod),
            ["kind", "apiVersion", "metadata", "spec", "status"]
        );
        assert_eq!(
            keys(&pod["metadata"]),
            [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "labels",
                "x-unknown"
            ]
        );
        assert_eq!(keys(&pod["metadata"]["labels"]), ["a", "b"]);
        // Go's order, not the proto tags' (initContainers is tag 20).
        assert_eq!(
            keys(&pod["spec"]),
            ["volumes", "initContainers", "containers", "restartPolicy"]
        );
        assert_eq!(keys(&pod["spec"]["containers"][0]), ["name", "image"]);
    }

    #[test]
    fn an_ordered_map_is_kept_and_its_children_still_ordered() {
        // metadata and spec in order (an unknown key last), the container inside out.
        let mut pod = json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "p", "uid": "u", "labels": {"b": "1", "a": "2"}, "zz": 1},
            "spec": {"volumes": [], "containers": [{"image": "x", "name": "c"}], "restartPolicy": "Never"}});
        canonicalize(&mut pod);
        assert_eq!(keys(&pod["metadata"]), ["name", "uid", "labels", "zz"]);
        assert_eq!(keys(&pod["metadata"]["labels"]), ["a", "b"]);
        assert_eq!(
            keys(&pod["spec"]),
            ["volumes", "containers", "restartPolicy"]
        );
        assert_eq!(keys(&pod["spec"]["containers"][0]), ["name", "image"]);
        // An unknown key before known ones: rebuilt, the unknown key last.
        let mut pod = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"zz": 1, "name": "p", "uid": "u"}});
        canonicalize(&mut pod);
        assert_eq!(keys(&pod["metadata"]), ["name", "uid", "zz"]);
    }

    #[test]
    fn inline_fields_sit_at_their_parent_level() {
        // A Volume embeds VolumeSource: `name` first, then the source's fields.
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"volumes": [
            {"configMap": {"name": "cm"}, "name": "v"}]}});
        canonicalize(&mut pod);
        assert_eq!(keys(&pod["spec"]["volumes"][0]), ["name", "configMap"]);
    }

    #[test]
    fn custom_resources_are_sorted_at_every_level() {
        let mut cr = json!({"spec": {"z": 1, "a": [{"y": 1, "b": 2}]}, "metadata": {"name": "x", "labels": {}},
                            "kind": "Widget", "apiVersion": "example.com/v1"});
        canonicalize(&mut cr);
        assert_eq!(keys(&cr), ["apiVersion", "kind", "metadata", "spec"]);
        assert_eq!(keys(&cr["metadata"]), ["labels", "name"]);
        assert_eq!(keys(&cr["spec"]), ["a", "z"]);
        assert_eq!(keys(&cr["spec"]["a"][0]), ["b", "y"]);
    }

    /// What ordering costs a write: `cargo test --release --lib order::tests::cost -- --ignored
    /// --nocapture` prints the time per object for a typical Pod and ConfigMap.
    #[test]
    #[ignore]
    fn cost() {
        let pod = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                     "resources": {"requests": {"cpu": "100m"}}, "volumeMounts": [{"name": "t", "mountPath": "/t"}]}],
                     "volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
                     "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                     "tolerations": [{"key": "k", "operator": "Exists"}]},
            "metadata": {"name": "p", "namespace": "n", "labels": {"app": "a"}, "uid": "u",
                         "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "apiVersion": "v1", "kind": "Pod"});
        let cm = json!({"data": {"k": "v"}, "metadata": {"name": "c", "namespace": "n"}, "apiVersion": "v1", "kind": "ConfigMap"});
        for (what, obj) in [("Pod", pod), ("ConfigMap", cm)] {
            let n = 20_000;
            let start = std::time::Instant::now();
            for _ in 0..n {
                let mut o = obj.clone();
                canonicalize(&mut o);
                std::hint::black_box(&o);
            }
            let with = start.elapsed();
            let start = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(obj.clone());
            }
            let clone = start.elapsed();
            let mut ordered = obj.clone();
            canonicalize(&mut ordered);
            let start = std::time::Instant::now();
            for _ in 0..n {
                let mut o = ordered.clone();
                canonicalize(&mut o);
                std::hint::black_box(&o);
            }
            let again = start.elapsed();
            let json_len = serde_json::to_vec(&obj).map(|v| v.len()).unwrap_or(0);
            let start = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(serde_json::to_vec(&obj).ok());
            }
            let encode = start.elapsed();
            println!(
                "{what}: canonicalize {:.1} us/object, {:.1} us when already in order (clone alone {:.1} us, encoding its {json_len} B {:.1} us)",
                (with - clone).as_secs_f64() * 1e6 / n as f64,
                (again.saturating_sub(clone)).as_secs_f64() * 1e6 / n as f64,
                clone.as_secs_f64() * 1e6 / n as f64,
                encode.as_secs_f64() * 1e6 / n as f64
            );
        }
    }
}
