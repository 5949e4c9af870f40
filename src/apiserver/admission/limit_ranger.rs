//! LimitRanger (upstream's `plugin/pkg/admission/limitranger`): a namespace's LimitRanges give new
//! pods' containers their default requests and limits (recorded in the `kubernetes.io/limit-ranger`
//! annotation), then bound them: `min`, `max` and `maxLimitRequestRatio` per Container and per Pod.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{Attributes, Operation, Plugin};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::ApiResult;
use crate::apiserver::wire::quantity::{Format, Quantity};

pub struct LimitRanger;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn applies(a: &Attributes<'_>) -> bool {
    a.op == Operation::Create && a.is_core("pods")
}

#[async_trait::async_trait]
impl Plugin for LimitRanger {
    async fn admit(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        pod: &mut Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if !applies(a) {
            return Ok(());
        }
        for range in reg.lookup_list("", "v1", "limitranges", a.ns).await? {
            set_defaults(&range, pod);
        }
        Ok(())
    }

    async fn validate(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        pod: &Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if !applies(a) {
            return Ok(());
        }
        let mut errors = Vec::new();
        for range in reg.lookup_list("", "v1", "limitranges", a.ns).await? {
            check(&range, pod, &mut errors);
        }
        match errors.len() {
            0 => Ok(()),
            // Upstream's utilerrors.NewAggregate: one message alone, several in brackets.
            1 => Err(a.forbidden(pod, &errors[0])),
            _ => Err(a.forbidden(pod, &format!("[{}]", errors.join(", ")))),
        }
    }
}

/// The `type: Container` items' defaults, merged (upstream's `defaultContainerResourceRequirements`).
fn container_defaults(range: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let mut requests = Map::new();
    let mut limits = Map::new();
    for item in items(range).filter(|i| kind(i) == "Container") {
        for (field, into) in [("defaultRequest", &mut requests), ("default", &mut limits)] {
            if let Some(m) = item.get(field).and_then(Value::as_object) {
                into.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    (requests, limits)
}

fn items(range: &Value) -> impl Iterator<Item = &Value> {
    range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn kind(item: &Value) -> &str {
    item.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Upstream's `mergePodResourceRequirements`: each container gets the defaults it lacks, and the pod
/// an annotation saying what was set.
fn set_defaults(range: &Value, pod: &mut Value) {
    let (requests, limits) = container_defaults(range);
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (list, prefix) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(cs) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs.iter_mut().filter(|c| c.is_object()) {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let resources = c
                .as_object_mut()
                .map(|m| m.entry("resources").or_insert_with(|| json!({})));
            let Some(resources) = resources.and_then(Value::as_object_mut) else {
                continue;
            };
            let mut set = |field: &str, defaults: &Map<String, Value>| {
                let list = resources.entry(field).or_insert_with(|| json!({}));
                let mut names = Vec::new();
                if let Some(list) = list.as_object_mut() {
                    for (k, v) in defaults {
                        if !list.contains_key(k) {
                            list.insert(k.clone(), v.clone());
                            names.push(k.clone());
                        }
                    }
                }
                names.sort();
                names
            };
            let set_limits = set("limits", &limits);
            let set_requests = set("requests", &requests);
            for field in ["limits", "requests"] {
                if resources
                    .get(field)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty)
                {
                    resources.remove(field);
                }
            }
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {prefix} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!(
                    "{} limit for {prefix} {name}",
                    set_limits.join(", ")
                ));
            }
        }
    }
    if !notes.is_empty() {
        let meta = pod
            .as_object_mut()
            .map(|m| m.entry("metadata").or_insert_with(|| json!({})));
        if let Some(meta) = meta.and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(
                    ANNOTATION.into(),
                    json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
                );
            }
        }
    }
}

type Amounts = BTreeMap<String, Quantity>;

fn amounts(c: &Value, field: &str) -> Amounts {
    c.pointer(&format!("/resources/{field}"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Quantity::parse(v.as_str()?).ok()?)))
        .collect()
}

/// A pod's total (upstream's `podRequests`/`podLimits`): its containers' sum, at least each init
/// container's, plus the overhead.
fn pod_amounts(pod: &Value, field: &str) -> Amounts {
    let list = |name: &str| {
        pod.pointer(&format!("/spec/{name}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut total = Amounts::new();
    for c in list("containers") {
        for (k, q) in amounts(&c, field) {
            let sum = total
                .remove(&k)
                .unwrap_or(Quantity::zero(Format::DecimalSI))
                .plus(q);
            total.insert(k, sum);
        }
    }
    for c in list("initContainers") {
        for (k, q) in amounts(&c, field) {
            if total
                .get(&k)
                .is_none_or(|t| q.milli_value() > t.milli_value())
            {
                total.insert(k, q);
            }
        }
    }
    if let Some(overhead) = pod.pointer("/spec/overhead").and_then(Value::as_object) {
        for (k, v) in overhead {
            if let Some(q) = v.as_str().and_then(|s| Quantity::parse(s).ok()) {
                let sum = total
                    .remove(k)
                    .unwrap_or(Quantity::zero(Format::DecimalSI))
                    .plus(q);
                total.insert(k.clone(), sum);
            }
        }
    }
    total
}

/// Upstream's `PodValidateLimitFunc` for one LimitRange.
fn check(range: &Value, pod: &Value, errors: &mut Vec<String>) {
    for item in items(range) {
        let bounds = |field: &str| -> Amounts {
            item.get(field)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), Quantity::parse(v.as_str()?).ok()?)))
                .collect()
        };
        let (min, max, ratio) = (bounds("min"), bounds("max"), bounds("maxLimitRequestRatio"));
        let mut enforce = |kind: &str, requests: &Amounts, limits: &Amounts| {
            for (r, q) in &min {
                errors.extend(min_constraint(kind, r, q, requests.get(r), limits.get(r)));
            }
            for (r, q) in &max {
                errors.extend(max_constraint(kind, r, q, requests.get(r), limits.get(r)));
            }
            for (r, q) in &ratio {
                errors.extend(ratio_constraint(kind, r, q, requests.get(r), limits.get(r)));
            }
        };
        match kind(item) {
            "Container" => {
                for list in ["containers", "initContainers"] {
                    let cs = pod
                        .pointer(&format!("/spec/{list}"))
                        .and_then(Value::as_array);
                    for c in cs.into_iter().flatten() {
                        enforce("Container", &amounts(c, "requests"), &amounts(c, "limits"));
                    }
                }
            }
            "Pod" => enforce(
                "Pod",
                &pod_amounts(pod, "requests"),
                &pod_amounts(pod, "limits"),
            ),
            _ => {}
        }
    }
}

fn min_constraint(
    kind: &str,
    r: &str,
    enforced: &Quantity,
    request: Option<&Quantity>,
    limit: Option<&Quantity>,
) -> Option<String> {
    let Some(req) = request else {
        return Some(format!(
            "minimum {r} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if req.milli_value() < enforced.milli_value() {
        return Some(format!(
            "minimum {r} usage per {kind} is {enforced}, but request is {req}"
        ));
    }
    match limit {
        Some(lim) if lim.milli_value() < enforced.milli_value() => Some(format!(
            "minimum {r} usage per {kind} is {enforced}, but limit is {lim}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    r: &str,
    enforced: &Quantity,
    request: Option<&Quantity>,
    limit: Option<&Quantity>,
) -> Option<String> {
    let Some(lim) = limit else {
        return Some(format!(
            "maximum {r} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if lim.milli_value() > enforced.milli_value() {
        return Some(format!(
            "maximum {r} usage per {kind} is {enforced}, but limit is {lim}"
        ));
    }
    match request {
        Some(req) if req.milli_value() > enforced.milli_value() => Some(format!(
            "maximum {r} usage per {kind} is {enforced}, but request is {req}"
        )),
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    r: &str,
    enforced: &Quantity,
    request: Option<&Quantity>,
    limit: Option<&Quantity>,
) -> Option<String> {
    let req = request.map_or(0, |q| q.milli_value());
    let lim = limit.map_or(0, |q| q.milli_value());
    if req == 0 {
        return Some(format!("{r} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"));
    }
    if lim == 0 {
        return Some(format!("{r} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"));
    }
    let observed = lim as f64 / req as f64;
    if observed * 1000.0 > enforced.milli_value() as f64 {
        return Some(format!(
            "{r} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> Value {
        json!({"spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "max": {"cpu": "1"}, "min": {"cpu": "50m"}}]}})
    }

    #[test]
    fn defaults_and_their_annotation() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c"}, {"name": "d", "resources": {"limits": {"cpu": "200m"}, "requests": {"cpu": "200m"}}}]}});
        set_defaults(&range(), &mut pod);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c; memory request for container d; memory limit for container d"
        );
    }

    #[test]
    fn bounds_with_upstreams_messages() {
        let pod = |cpu: &str| json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": cpu}, "requests": {"cpu": cpu}}}]}});
        let errors = |p: &Value| {
            let mut e = Vec::new();
            check(&range(), p, &mut e);
            e
        };
        assert_eq!(
            errors(&pod("2")),
            vec!["maximum cpu usage per Container is 1, but limit is 2"]
        );
        assert_eq!(
            errors(&pod("10m")),
            vec!["minimum cpu usage per Container is 50m, but request is 10m"]
        );
        assert!(errors(&pod("500m")).is_empty());
        let bare = json!({"spec": {"containers": [{"name": "c"}]}});
        assert_eq!(
            errors(&bare),
            vec![
                "minimum cpu usage per Container is 50m.  No request is specified",
                "maximum cpu usage per Container is 1.  No limit is specified",
            ]
        );
        let ratio = json!({"spec": {"limits": [{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]}});
        let mut e = Vec::new();
        check(&ratio, &pod("1"), &mut e);
        assert!(e.is_empty());
        let skewed = json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "250m"}}}]}});
        check(&ratio, &skewed, &mut e);
        assert_eq!(
            e,
            vec![
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
            ]
        );
    }
}
