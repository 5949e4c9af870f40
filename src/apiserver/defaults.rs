//! Defaulting: the fields upstream fills in when a client leaves them out, for the common kinds.
//!
//! Upstream defaults on decode, so every write (create, update, patch) passes through here before
//! validation; a field the client did set is never touched.

use serde_json::{json, Map, Value};

use super::catalog::ResourceInfo;

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Sets `key` to `default` when it is absent (or null).
fn default(m: &mut Map<String, Value>, key: &str, default: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), default);
    }
}

fn at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for p in path {
        cur = cur.get_mut(*p)?;
    }
    cur.as_object_mut()
}

fn image_pull_policy(image: &str) -> &'static str {
    // The tag is what follows the last ':' after the last '/'; a digest pins the image.
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container_defaults(c: &mut Value) {
    let Some(m) = obj(c) else { return };
    let image = m
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    default(m, "imagePullPolicy", json!(image_pull_policy(&image)));
    default(m, "terminationMessagePath", json!("/dev/termination-log"));
    default(m, "terminationMessagePolicy", json!("File"));
    default(m, "resources", json!({}));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = m.get_mut(probe).and_then(Value::as_object_mut) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
        }
    }
}

/// Pod spec defaults (also applied to every pod template).
pub fn pod_spec_defaults(spec: &mut Value) {
    let Some(m) = obj(spec) else { return };
    default(m, "restartPolicy", json!("Always"));
    default(m, "terminationGracePeriodSeconds", json!(30));
    default(m, "dnsPolicy", json!("ClusterFirst"));
    default(m, "securityContext", json!({}));
    default(m, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(container_defaults);
        }
    }
    if let Some(vols) = m.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            for (src, mode_field) in [
                ("configMap", "defaultMode"),
                ("secret", "defaultMode"),
                ("projected", "defaultMode"),
            ] {
                if let Some(s) = v.get_mut(src).and_then(Value::as_object_mut) {
                    default(s, mode_field, json!(420));
                }
            }
        }
    }
}

fn template_defaults(v: &mut Value, path: &[&str]) {
    if let Some(spec) = at(v, path) {
        let mut s = Value::Object(std::mem::take(spec));
        pod_spec_defaults(&mut s);
        if let (Some(dst), Value::Object(src)) = (at(v, path), s) {
            *dst = src;
        }
    }
}

/// Applies the kind's defaults to `v` in place.
pub fn apply(info: &ResourceInfo, v: &mut Value) {
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => {
            if let Some(spec) = v.get_mut("spec") {
                pod_spec_defaults(spec);
                if let Some(m) = obj(spec) {
                    default(m, "enableServiceLinks", json!(true));
                    default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
                    default(m, "priority", json!(0));
                }
            }
        }
        ("", "podtemplates") => template_defaults(v, &["template", "spec"]),
        ("", "replicationcontrollers") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "replicas", json!(1));
            }
            template_defaults(v, &["spec", "template", "spec"]);
        }
        ("", "services") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "type", json!("ClusterIP"));
                default(m, "sessionAffinity", json!("None"));
                let ty = m
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if ty != "ExternalName" {
                    default(m, "internalTrafficPolicy", json!("Cluster"));
                }
                if ty == "NodePort" || ty == "LoadBalancer" {
                    default(m, "externalTrafficPolicy", json!("Cluster"));
                }
                if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            default(p, "targetPort", port);
                        }
                    }
                }
            }
        }
        ("", "secrets") => {
            if let Some(m) = obj(v) {
                default(m, "type", json!("Opaque"));
                // stringData is write-only: merged into data (base64), never stored.
                if let Some(Value::Object(string_data)) = m.remove("stringData") {
                    use base64::Engine;
                    let data = m.entry("data").or_insert(json!({}));
                    if !data.is_object() {
                        *data = json!({});
                    }
                    for (k, val) in string_data {
                        let text = val.as_str().unwrap_or("").to_string();
                        data[k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                    }
                }
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "persistentvolumes") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(m, "volumeMode", json!("Filesystem"));
            }
        }
        ("apps", "deployments") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "replicas", json!(1));
                default(m, "revisionHistoryLimit", json!(10));
                default(m, "progressDeadlineSeconds", json!(600));
                default(m, "strategy", json!({"type": "RollingUpdate"}));
                if let Some(s) = m.get_mut("strategy").and_then(Value::as_object_mut) {
                    default(s, "type", json!("RollingUpdate"));
                    if s.get("type") == Some(&json!("RollingUpdate")) {
                        default(s, "rollingUpdate", json!({}));
                        if let Some(r) = s.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                            default(r, "maxUnavailable", json!("25%"));
                            default(r, "maxSurge", json!("25%"));
                        }
                    }
                }
            }
            template_defaults(v, &["spec", "template", "spec"]);
        }
        ("apps", "replicasets") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "replicas", json!(1));
            }
            template_defaults(v, &["spec", "template", "spec"]);
        }
        ("apps", "statefulsets") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "replicas", json!(1));
                default(m, "podManagementPolicy", json!("OrderedReady"));
                default(m, "revisionHistoryLimit", json!(10));
                default(
                    m,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                default(
                    m,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            template_defaults(v, &["spec", "template", "spec"]);
        }
        ("apps", "daemonsets") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "revisionHistoryLimit", json!(10));
                default(
                    m,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
            template_defaults(v, &["spec", "template", "spec"]);
        }
        ("batch", "jobs") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "parallelism", json!(1));
                default(m, "backoffLimit", json!(6));
                default(m, "completionMode", json!("NonIndexed"));
                default(m, "suspend", json!(false));
                default(m, "podReplacementPolicy", json!("TerminatingOrFailed"));
                if m.get("completions").is_none() && m.get("parallelism") == Some(&json!(1)) {
                    m.insert("completions".into(), json!(1));
                }
            }
            template_defaults(v, &["spec", "template", "spec"]);
        }
        ("batch", "cronjobs") => {
            if let Some(m) = at(v, &["spec"]) {
                default(m, "concurrencyPolicy", json!("Allow"));
                default(m, "suspend", json!(false));
                default(m, "successfulJobsHistoryLimit", json!(3));
                default(m, "failedJobsHistoryLimit", json!(1));
            }
            template_defaults(v, &["spec", "jobTemplate", "spec", "template", "spec"]);
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            if let Some(subjects) = v.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
                    let group = match s.get("kind").and_then(Value::as_str) {
                        Some("ServiceAccount") => "",
                        _ => "rbac.authorization.k8s.io",
                    };
                    default(s, "apiGroup", json!(group));
                }
            }
        }
        ("scheduling.k8s.io", "priorityclasses") => {
            if let Some(m) = obj(v) {
                default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(image_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(image_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn keeps_what_is_set() {
        let mut spec = json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 80}]}]});
        pod_spec_defaults(&mut spec);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
    }
}
