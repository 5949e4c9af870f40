//! The `scale` subresource: an `autoscaling/v1` Scale read from and written to the paths the CRD names
//! (`specReplicasPath`, `statusReplicasPath`, `labelSelectorPath`), which is what `kubectl scale` and the
//! HorizontalPodAutoscaler use. The built-in scalable kinds (Deployments, ReplicaSets, StatefulSets,
//! ReplicationControllers) are served by the same mapping, with their selector read from the spec.

use serde_json::{json, Value};

use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::crd::ScalePaths;

/// `.spec.replicas` → `/spec/replicas`.
fn pointer(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{s}"))
        .collect()
}

/// The scale paths of a built-in kind that has a `scale` subresource (all of them keep replicas in
/// `.spec.replicas` and `.status.replicas` and select by `.spec.selector`).
pub fn builtin(info: &ResourceInfo) -> Option<ScalePaths> {
    let scalable = info.custom().is_none() && info.subresource("scale").is_some();
    scalable.then(|| ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: Some(".spec.selector".into()),
    })
}

/// A selector as `Scale.status.selector` spells it: a string as is; a `LabelSelector` or a plain label
/// map (ReplicationControllers) in label-selector syntax, requirements sorted by key as upstream prints.
pub(crate) fn selector_string(v: &Value) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    let o = v.as_object()?;
    let structured = o.contains_key("matchLabels") || o.contains_key("matchExpressions");
    let labels = if structured {
        o.get("matchLabels").and_then(Value::as_object)
    } else {
        Some(o)
    };
    let mut reqs: Vec<(String, String)> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))))
        .collect();
    for e in o
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let mut values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        reqs.into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The Scale of an object.
pub fn to_scale(paths: &ScalePaths, obj: &Value) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut meta = json!({});
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            meta[k] = v.clone();
        }
    }
    let spec_replicas = obj
        .pointer(&pointer(&paths.spec_replicas))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = obj
        .pointer(&pointer(&paths.status_replicas))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut status = json!({"replicas": status_replicas});
    if let Some(sel) = paths
        .label_selector
        .as_deref()
        .and_then(|p| obj.pointer(&pointer(p)))
        .and_then(selector_string)
    {
        status["selector"] = json!(sel);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": spec_replicas},
        "status": status,
    })
}

/// Writes a Scale's `spec.replicas` into the object (creating the path), and its resourceVersion as the
/// update's precondition when it has one.
pub fn apply_scale(paths: &ScalePaths, obj: &mut Value, scale: &Value) -> Result<(), String> {
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("spec.replicas: Invalid value: {v}: must be an integer"))?,
    };
    if replicas < 0 {
        return Err(format!(
            "spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
        ));
    }
    let segs: Vec<String> = paths
        .spec_replicas
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let Some((last, parents)) = segs.split_last() else {
        return Err("the CRD has no specReplicasPath".into());
    };
    let mut cur = &mut *obj;
    for s in parents {
        if !cur.get(s).is_some_and(Value::is_object) {
            cur[s.as_str()] = json!({});
        }
        cur = &mut cur[s.as_str()];
    }
    cur[last.as_str()] = json!(replicas);
    match scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        Some(rv) if !rv.is_empty() => obj["metadata"]["resourceVersion"] = json!(rv),
        _ => {
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_selectors_print_as_upstream() {
        let sel = json!({"matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                 {"key": "x", "operator": "DoesNotExist"}]});
        assert_eq!(
            selector_string(&sel).as_deref(),
            Some("a=1,b=2,env in (dev,prod),!x")
        );
        assert_eq!(
            selector_string(&json!({"app": "web"})).as_deref(),
            Some("app=web")
        );
        let row = |plural: &str| {
            crate::apiserver::catalog::builtin_resources()
                .into_iter()
                .find(|r| r.plural == plural)
                .expect("built-in row")
        };
        let paths = builtin(&row("deployments"));
        let dep = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 1}});
        let s = paths.map(|p| to_scale(&p, &dep)).unwrap_or_default();
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"], json!({"replicas": 1, "selector": "app=web"}));
        assert!(builtin(&row("pods")).is_none());
    }

    #[test]
    fn roundtrip() {
        let paths = ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".status.labelSelector".into()),
        };
        let mut obj = json!({"metadata": {"name": "a", "resourceVersion": "5"}, "spec": {"replicas": 1}, "status": {"replicas": 1, "labelSelector": "app=x"}});
        let s = to_scale(&paths, &obj);
        assert_eq!(s["spec"]["replicas"], 1);
        assert_eq!(s["status"]["selector"], "app=x");
        let mut s2 = s.clone();
        s2["spec"]["replicas"] = json!(3);
        apply_scale(&paths, &mut obj, &s2).expect("apply");
        assert_eq!(obj["spec"]["replicas"], 3);
        assert_eq!(obj["metadata"]["resourceVersion"], "5");
        s2["spec"]["replicas"] = json!(-1);
        assert!(apply_scale(&paths, &mut obj, &s2).is_err());
    }
}
