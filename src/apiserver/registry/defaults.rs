//! Defaulting: the fields upstream fills in when a client leaves them out, for the common kinds.
//!
//! Upstream defaults on decode (`SetDefaults_*` in `pkg/apis/*/v1/defaults.go` and the declarative
//! `+default` tags), so every write (create, update, patch) passes through here before validation; a
//! field the client did set is never touched. Where the Go field is a plain value (not a pointer), Go
//! cannot tell "unset" from the zero value, so `""` and `0` count as unset there too ([`default_zero`]).
//! Quantities in resource lists are rounded up to milli-units and re-emitted in canonical form, as
//! upstream's `resource.Quantity` does when it serializes.

use serde_json::{json, Map, Value};

use crate::apiserver::wire::quantity::Quantity;

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Sets `key` to `default` when it is absent (or null): Go pointer fields.
fn default(m: &mut Map<String, Value>, key: &str, default: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), default);
    }
}

/// Sets `key` to `default` when it is absent, null, `""` or `0`: Go value fields, whose zero value
/// is indistinguishable from unset.
fn default_zero(m: &mut Map<String, Value>, key: &str, default: Value) {
    let unset = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    };
    if unset {
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

fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

fn list<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|a| a.iter_mut().filter_map(Value::as_object_mut))
}

/// Whether `m[key]` is a non-empty object or list.
fn non_empty(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    }
}

/// The tag of an image reference as upstream's `parsers.ParseImageName` sees it: `latest` when no tag
/// and no digest is given, `""` for a digest-only or unparsable reference.
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo, tag) = match last.rsplit_once(':') {
        Some((_, t)) => (&name[..name.len() - t.len() - 1], Some(t)),
        None => (name, None),
    };
    if !valid_repository(repo) {
        return "";
    }
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
            && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_');
        if !ok {
            return "";
        }
    }
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty() && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_alphanumeric())
        });
        if !ok {
            return "";
        }
    }
    match (tag, digest) {
        (Some(t), _) => t,
        (None, None) => "latest",
        (None, Some(_)) => "",
    }
}

/// Docker reference repository syntax: an optional registry host, then lower-case path components.
fn valid_repository(repo: &str) -> bool {
    if repo.is_empty() {
        return false;
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase())
        {
            let (host, port) = match first.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !host_ok
                || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
            {
                return false;
            }
            parts.remove(0);
        }
    }
    parts.iter().all(|comp| {
        // [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
        let b = comp.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        if b.iter().any(|c| c.is_ascii_uppercase()) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                i += 1;
                continue;
            }
            // a separator run
            let start = i;
            while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
                i += 1;
            }
            let sep = &comp[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return false;
            }
        }
        true
    })
}

fn image_pull_policy(image: &str) -> &'static str {
    if image_tag(image) == "latest" {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// Rounds each quantity of a resource list up to milli-units and writes it in canonical form
/// (`SetDefaults_ResourceList` plus `Quantity`'s serialization).
fn resource_list(m: &mut Map<String, Value>, key: &str) {
    if let Some(list) = child(m, key) {
        for v in list.values_mut() {
            if let Some(q) = v.as_str().and_then(|s| Quantity::parse(s).ok()) {
                *v = Value::String(q.round_up_milli().to_string());
            }
        }
    }
}

/// A lone quantity in canonical form (no rounding).
fn canonical_quantity(m: &mut Map<String, Value>, key: &str) {
    if let Some(v) = m.get_mut(key) {
        if let Some(q) = v.as_str().and_then(|s| Quantity::parse(s).ok()) {
            *v = Value::String(q.to_string());
        }
    }
}

fn resource_requirements(m: &mut Map<String, Value>, key: &str) {
    if let Some(r) = child(m, key) {
        resource_list(r, "limits");
        resource_list(r, "requests");
    }
}

fn http_get(handler: &mut Map<String, Value>) {
    if let Some(h) = child(handler, "httpGet") {
        default_zero(h, "path", json!("/"));
        default_zero(h, "scheme", json!("HTTP"));
    }
}

fn field_ref(m: &mut Map<String, Value>) {
    if let Some(f) = child(m, "fieldRef") {
        default_zero(f, "apiVersion", json!("v1"));
    }
    if let Some(r) = child(m, "resourceFieldRef") {
        // `divisor` is a plain Quantity: it always serializes, as "0" when unset.
        default(r, "divisor", json!("0"));
        canonical_quantity(r, "divisor");
    }
}

fn container_defaults(c: &mut Value) {
    let Some(m) = obj(c) else { return };
    let image = m
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    default_zero(m, "imagePullPolicy", json!(image_pull_policy(&image)));
    default_zero(m, "terminationMessagePath", json!("/dev/termination-log"));
    default_zero(m, "terminationMessagePolicy", json!("File"));
    default(m, "resources", json!({}));
    resource_requirements(m, "resources");
    for p in list(m, "ports") {
        default_zero(p, "protocol", json!("TCP"));
    }
    for e in list(m, "env") {
        if let Some(vf) = child(e, "valueFrom") {
            field_ref(vf);
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(m, probe) {
            default_zero(p, "timeoutSeconds", json!(1));
            default_zero(p, "periodSeconds", json!(10));
            default_zero(p, "successThreshold", json!(1));
            default_zero(p, "failureThreshold", json!(3));
            http_get(p);
            if let Some(g) = child(p, "grpc") {
                default(g, "service", json!(""));
            }
        }
    }
    if let Some(l) = child(m, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(l, hook) {
                http_get(h);
            }
        }
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn volume_defaults(v: &mut Map<String, Value>) {
    if !VOLUME_SOURCES
        .iter()
        .any(|s| v.get(*s).is_some_and(|x| !x.is_null()))
    {
        v.insert("emptyDir".into(), json!({}));
    }
    if let Some(h) = child(v, "hostPath") {
        default(h, "type", json!(""));
    }
    if let Some(e) = child(v, "emptyDir") {
        canonical_quantity(e, "sizeLimit");
    }
    for src in ["secret", "configMap"] {
        if let Some(s) = child(v, src) {
            default(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = child(v, "downwardAPI") {
        default(d, "defaultMode", json!(420));
        for item in list(d, "items") {
            field_ref(item);
        }
    }
    if let Some(p) = child(v, "projected") {
        default(p, "defaultMode", json!(420));
        for src in list(p, "sources") {
            if let Some(d) = child(src, "downwardAPI") {
                for item in list(d, "items") {
                    field_ref(item);
                }
            }
            if let Some(t) = child(src, "serviceAccountToken") {
                default(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(i) = child(v, "iscsi") {
        default(i, "iscsiInterface", json!("default"));
    }
    if let Some(r) = child(v, "rbd") {
        default_zero(r, "pool", json!("rbd"));
        default_zero(r, "user", json!("admin"));
        default_zero(r, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(a) = child(v, "azureDisk") {
        azure_disk(a);
    }
    if let Some(s) = child(v, "scaleIO") {
        default_zero(s, "storageMode", json!("ThinProvisioned"));
        default_zero(s, "fsType", json!("xfs"));
    }
    if let Some(e) = child(v, "ephemeral") {
        if let Some(t) = child(e, "volumeClaimTemplate") {
            if let Some(spec) = child(t, "spec") {
                pvc_spec_defaults(spec);
            }
        }
    }
}

fn azure_disk(a: &mut Map<String, Value>) {
    default(a, "cachingMode", json!("ReadWrite"));
    default(a, "fsType", json!("ext4"));
    default(a, "readOnly", json!(false));
    default(a, "kind", json!("Shared"));
}

fn pvc_spec_defaults(spec: &mut Map<String, Value>) {
    default(spec, "volumeMode", json!("Filesystem"));
    resource_requirements(spec, "resources");
}

/// `serviceAccount` is the deprecated alias of `serviceAccountName`: upstream's conversion reads it when
/// the new field is empty and always writes it back as a copy of the new one.
fn service_account_alias(m: &mut Map<String, Value>) {
    let name = m
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| m.get("serviceAccount").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        m.remove("serviceAccount");
    } else {
        m.insert("serviceAccountName".into(), json!(name));
        m.insert("serviceAccount".into(), json!(name));
    }
}

/// Pod spec defaults (also applied to every pod template): `SetDefaults_PodSpec` and the defaults of
/// everything a pod spec contains.
pub fn pod_spec_defaults(spec: &mut Value) {
    let Some(m) = obj(spec) else { return };
    default_zero(m, "dnsPolicy", json!("ClusterFirst"));
    default_zero(m, "restartPolicy", json!("Always"));
    default(m, "securityContext", json!({}));
    default(m, "terminationGracePeriodSeconds", json!(30));
    default_zero(m, "schedulerName", json!("default-scheduler"));
    service_account_alias(m);
    for v in list(m, "volumes") {
        volume_defaults(v);
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(cs) = m.get_mut(key).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(container_defaults);
        }
    }
    resource_list(m, "overhead");
    resource_requirements(m, "resources");
}

/// `SetDefaults_Pod`: what only a Pod (not a template) gets, before the spec defaults.
fn pod_only_defaults(spec: &mut Map<String, Value>) {
    // Requests default to limits, per container.
    for key in ["containers", "initContainers"] {
        for c in list(spec, key) {
            let Some(limits) = c
                .get("resources")
                .and_then(|r| r.get("limits"))
                .and_then(Value::as_object)
                .cloned()
            else {
                continue;
            };
            let res = c.entry("resources").or_insert(json!({}));
            let Some(res) = res.as_object_mut() else {
                continue;
            };
            let req = res.entry("requests").or_insert(json!({}));
            if !req.is_object() {
                *req = json!({});
            }
            if let Some(req) = req.as_object_mut() {
                for (k, v) in limits {
                    req.entry(k).or_insert(v);
                }
            }
        }
    }
    default(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork") == Some(&json!(true)) {
        for key in ["containers", "initContainers"] {
            for c in list(spec, key) {
                for p in list(c, "ports") {
                    if let Some(cp) = p.get("containerPort").cloned() {
                        default_zero(p, "hostPort", cp);
                    }
                }
            }
        }
    }
}

/// All of a Pod's defaults: `SetDefaults_Pod` and the spec's. (`priority` and `preemptionPolicy` are
/// the Priority admission plugin's.) Idempotent, so it also brings an older stored pod up to date for
/// comparisons.
pub fn pod_defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec") else {
        return;
    };
    if let Some(m) = obj(spec) {
        pod_only_defaults(m);
    }
    pod_spec_defaults(spec);
}

fn template_defaults(v: &mut Value, path: &[&str]) {
    let mut cur = &mut *v;
    for p in path {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    pod_spec_defaults(cur);
}

fn pod_failure_policy(spec: &mut Map<String, Value>) {
    if let Some(pfp) = child(spec, "podFailurePolicy") {
        for rule in list(pfp, "rules") {
            for pattern in list(rule, "onPodConditions") {
                default_zero(pattern, "status", json!("True"));
            }
        }
    }
}

fn label_selector_is_empty(m: &Map<String, Value>, key: &str) -> bool {
    !non_empty(m, key)
}

pub fn service_defaults(v: &mut Value) {
    let Some(m) = at(v, &["spec"]) else { return };
    default_zero(m, "sessionAffinity", json!("None"));
    match m.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            m.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = m
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                m.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default_zero(m, "type", json!("ClusterIP"));
    for p in list(m, "ports") {
        default_zero(p, "protocol", json!("TCP"));
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            _ => false,
        };
        if unset {
            let port = p.get("port").cloned().unwrap_or(json!(0));
            p.insert("targetPort".into(), port);
        }
    }
    let ty = m
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let externally_accessible = ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP" && non_empty(m, "externalIPs"));
    if externally_accessible {
        default_zero(m, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        default(m, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default(m, "allocateLoadBalancerNodePorts", json!(true));
        if let Some(ingress) = v
            .pointer_mut("/status/loadBalancer/ingress")
            .and_then(Value::as_array_mut)
        {
            for ing in ingress.iter_mut().filter_map(Value::as_object_mut) {
                let has_ip = ing
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if has_ip {
                    default(ing, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

fn deployment_defaults(m: &mut Map<String, Value>) {
    default(m, "replicas", json!(1));
    default(m, "strategy", json!({}));
    if let Some(s) = child(m, "strategy") {
        default_zero(s, "type", json!("RollingUpdate"));
        if s.get("type") == Some(&json!("RollingUpdate")) {
            default(s, "rollingUpdate", json!({}));
            if let Some(r) = child(s, "rollingUpdate") {
                default(r, "maxUnavailable", json!("25%"));
                default(r, "maxSurge", json!("25%"));
            }
        }
    }
    default(m, "revisionHistoryLimit", json!(10));
    default(m, "progressDeadlineSeconds", json!(600));
}

fn daemonset_defaults(m: &mut Map<String, Value>) {
    default(m, "updateStrategy", json!({}));
    if let Some(s) = child(m, "updateStrategy") {
        default_zero(s, "type", json!("RollingUpdate"));
        if s.get("type") == Some(&json!("RollingUpdate")) {
            default(s, "rollingUpdate", json!({}));
            if let Some(r) = child(s, "rollingUpdate") {
                default(r, "maxUnavailable", json!(1));
                default(r, "maxSurge", json!(0));
            }
        }
    }
    default(m, "revisionHistoryLimit", json!(10));
}

fn statefulset_defaults(m: &mut Map<String, Value>) {
    default_zero(m, "podManagementPolicy", json!("OrderedReady"));
    default(m, "updateStrategy", json!({}));
    if let Some(s) = child(m, "updateStrategy") {
        let untyped = s
            .get("type")
            .is_none_or(|t| t.is_null() || t.as_str() == Some(""));
        if untyped {
            s.insert("type".into(), json!("RollingUpdate"));
            default(s, "rollingUpdate", json!({}));
        }
        if s.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(r) = child(s, "rollingUpdate") {
                default(r, "partition", json!(0));
            }
        }
    }
    default(m, "persistentVolumeClaimRetentionPolicy", json!({}));
    if let Some(p) = child(m, "persistentVolumeClaimRetentionPolicy") {
        default_zero(p, "whenDeleted", json!("Retain"));
        default_zero(p, "whenScaled", json!("Retain"));
    }
    default(m, "replicas", json!(1));
    default(m, "revisionHistoryLimit", json!(10));
    for pvc in list(m, "volumeClaimTemplates") {
        if let Some(spec) = child(pvc, "spec") {
            pvc_spec_defaults(spec);
        }
        default(pvc, "status", json!({}));
        if let Some(st) = child(pvc, "status") {
            default_zero(st, "phase", json!("Pending"));
        }
    }
}

pub fn job_defaults(v: &mut Value) {
    let template_labels = v
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let Some(m) = at(v, &["spec"]) {
        if m.get("completions").is_none_or(Value::is_null)
            && m.get("parallelism").is_none_or(Value::is_null)
        {
            m.insert("completions".into(), json!(1));
            m.insert("parallelism".into(), json!(1));
        }
        default(m, "parallelism", json!(1));
        if m.get("backoffLimitPerIndex").is_some_and(|b| !b.is_null()) {
            default(m, "backoffLimit", json!(i32::MAX));
        } else {
            default(m, "backoffLimit", json!(6));
        }
        default(m, "completionMode", json!("NonIndexed"));
        default(m, "suspend", json!(false));
        pod_failure_policy(m);
        if m.get("podFailurePolicy").is_some_and(|p| !p.is_null()) {
            default(m, "podReplacementPolicy", json!("Failed"));
        } else {
            default(m, "podReplacementPolicy", json!("TerminatingOrFailed"));
        }
        default(m, "manualSelector", json!(false));
    }
    if let (Some(labels), Some(meta)) = (
        template_labels,
        v.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        if label_selector_is_empty(meta, "labels") {
            meta.insert("labels".into(), labels);
        }
    }
    template_defaults(v, &["spec", "template", "spec"]);
}

pub fn replication_controller_defaults(v: &mut Value) {
    let template_labels = v
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let Some(labels) = template_labels {
        if let Some(spec) = at(v, &["spec"]) {
            if label_selector_is_empty(spec, "selector") {
                spec.insert("selector".into(), labels.clone());
            }
        }
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            if label_selector_is_empty(meta, "labels") {
                meta.insert("labels".into(), labels);
            }
        }
    }
    if let Some(m) = at(v, &["spec"]) {
        default(m, "replicas", json!(1));
    }
    template_defaults(v, &["spec", "template", "spec"]);
}

pub fn limit_range_defaults(v: &mut Value) {
    let Some(spec) = at(v, &["spec"]) else { return };
    for item in list(spec, "limits") {
        if item.get("type").and_then(Value::as_str) == Some("Container") {
            let max = item.get("max").and_then(Value::as_object).cloned();
            let min = item.get("min").and_then(Value::as_object).cloned();
            default(item, "default", json!({}));
            default(item, "defaultRequest", json!({}));
            if let Some(d) = child(item, "default") {
                for (k, q) in max.into_iter().flatten() {
                    d.entry(k).or_insert(q);
                }
            }
            let defaults = item.get("default").and_then(Value::as_object).cloned();
            if let Some(dr) = child(item, "defaultRequest") {
                for (k, q) in defaults.into_iter().flatten() {
                    dr.entry(k).or_insert(q);
                }
                for (k, q) in min.into_iter().flatten() {
                    dr.entry(k).or_insert(q);
                }
            }
            // Empty maps are omitted when upstream serializes.
            for key in ["default", "defaultRequest"] {
                if !non_empty(item, key) {
                    item.remove(key);
                }
            }
        }
        for key in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            resource_list(item, key);
        }
    }
}

fn hpa_behavior_rules(behavior: &mut Map<String, Value>, key: &str, window: i64, policies: Value) {
    default(behavior, key, json!({}));
    if let Some(r) = child(behavior, key) {
        default(r, "stabilizationWindowSeconds", json!(window));
        default(r, "selectPolicy", json!("Max"));
        default(r, "policies", policies);
    }
}

fn webhook_defaults(w: &mut Map<String, Value>, mutating: bool) {
    default(w, "failurePolicy", json!("Fail"));
    default(w, "matchPolicy", json!("Equivalent"));
    default(w, "namespaceSelector", json!({}));
    default(w, "objectSelector", json!({}));
    default(w, "timeoutSeconds", json!(10));
    if mutating {
        default(w, "reinvocationPolicy", json!("Never"));
    }
    for rule in list(w, "rules") {
        default(rule, "scope", json!("*"));
    }
    if let Some(cc) = child(w, "clientConfig") {
        if let Some(svc) = child(cc, "service") {
            default(svc, "port", json!(443));
        }
    }
}

/// Upstream's defaults for pod templates.
pub fn pod_template(v: &mut Value) {
    template_defaults(v, &["template", "spec"]);
}

/// Upstream's defaults for endpointss.
pub fn endpoints(v: &mut Value) {
    if let Some(m) = obj(v) {
        for subset in list(m, "subsets") {
            for p in list(subset, "ports") {
                default_zero(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// Upstream's defaults for secrets.
pub fn secret(v: &mut Value) {
    if let Some(m) = obj(v) {
        default_zero(m, "type", json!("Opaque"));
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

/// Upstream's defaults for persistent volume claims.
pub fn persistent_volume_claim(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        pvc_spec_defaults(m);
    }
    if let Some(m) = at(v, &["status"]) {
        resource_list(m, "capacity");
        resource_list(m, "allocatedResources");
    }
}

/// Upstream's defaults for persistent volumes.
pub fn persistent_volume(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        default_zero(m, "persistentVolumeReclaimPolicy", json!("Retain"));
        default(m, "volumeMode", json!("Filesystem"));
        resource_list(m, "capacity");
        if let Some(h) = child(m, "hostPath") {
            default(h, "type", json!(""));
        }
        if let Some(r) = child(m, "rbd") {
            default_zero(r, "pool", json!("rbd"));
            default_zero(r, "user", json!("admin"));
            default_zero(r, "keyring", json!("/etc/ceph/keyring"));
        }
        if let Some(i) = child(m, "iscsi") {
            default(i, "iscsiInterface", json!("default"));
        }
        if let Some(a) = child(m, "azureDisk") {
            azure_disk(a);
        }
        if let Some(s) = child(m, "scaleIO") {
            default_zero(s, "storageMode", json!("ThinProvisioned"));
            default_zero(s, "fsType", json!("xfs"));
        }
    }
}

/// Upstream's defaults for namespaces.
pub fn namespace(v: &mut Value) {
    // Every named namespace carries its name as a label (SetDefaults_Namespace), set on decode so
    // the label belongs to the manager that wrote the namespace.
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let (false, Some(meta)) = (name.is_empty(), at(v, &["metadata"])) {
        if !meta.get("labels").is_some_and(Value::is_object) {
            meta.insert("labels".into(), json!({}));
        }
        if let Some(labels) = child(meta, "labels") {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
}

/// Upstream's defaults for nodes.
pub fn node(v: &mut Value) {
    if let Some(st) = at(v, &["status"]) {
        if st.get("allocatable").is_none_or(Value::is_null) {
            if let Some(cap) = st.get("capacity").filter(|c| c.is_object()).cloned() {
                st.insert("allocatable".into(), cap);
            }
        }
        resource_list(st, "capacity");
        resource_list(st, "allocatable");
    }
}

/// Upstream's defaults for resource quotas.
pub fn resource_quota(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        resource_list(m, "hard");
    }
    if let Some(m) = at(v, &["status"]) {
        resource_list(m, "hard");
        resource_list(m, "used");
    }
}

/// Upstream's defaults for deployments.
pub fn deployment(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        deployment_defaults(m);
    }
    template_defaults(v, &["spec", "template", "spec"]);
}

/// Upstream's defaults for replica sets.
pub fn replica_set(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        default(m, "replicas", json!(1));
    }
    template_defaults(v, &["spec", "template", "spec"]);
}

/// Upstream's defaults for stateful sets.
pub fn stateful_set(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        statefulset_defaults(m);
    }
    template_defaults(v, &["spec", "template", "spec"]);
}

/// Upstream's defaults for daemon sets.
pub fn daemon_set(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        daemonset_defaults(m);
    }
    template_defaults(v, &["spec", "template", "spec"]);
}

/// Upstream's defaults for cron jobs.
pub fn cron_job(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        default_zero(m, "concurrencyPolicy", json!("Allow"));
        default(m, "suspend", json!(false));
        default(m, "successfulJobsHistoryLimit", json!(3));
        default(m, "failedJobsHistoryLimit", json!(1));
    }
    if let Some(m) = at(v, &["spec", "jobTemplate", "spec"]) {
        pod_failure_policy(m);
    }
    template_defaults(v, &["spec", "jobTemplate", "spec", "template", "spec"]);
}

/// Upstream's defaults for horizontal pod autoscalers.
pub fn horizontal_pod_autoscaler(v: &mut Value, version: &str) {
    let Some(m) = at(v, &["spec"]) else { return };
    default(m, "minReplicas", json!(1));
    if version == "v2" {
        if !non_empty(m, "metrics") {
            m.insert(
                    "metrics".into(),
                    json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
                );
        }
        if let Some(b) = child(m, "behavior") {
            hpa_behavior_rules(
                b,
                "scaleUp",
                0,
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
            hpa_behavior_rules(
                b,
                "scaleDown",
                300,
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }
}

/// Upstream's defaults for network policys.
pub fn network_policy(v: &mut Value) {
    let Some(m) = at(v, &["spec"]) else { return };
    for dir in ["ingress", "egress"] {
        for rule in list(m, dir) {
            for p in list(rule, "ports") {
                default(p, "protocol", json!("TCP"));
            }
        }
    }
    if !non_empty(m, "policyTypes") {
        let mut types = vec![json!("Ingress")];
        if non_empty(m, "egress") {
            types.push(json!("Egress"));
        }
        m.insert("policyTypes".into(), Value::Array(types));
    }
}

/// Upstream's defaults for ingress classs.
pub fn ingress_class(v: &mut Value) {
    if let Some(p) = at(v, &["spec", "parameters"]) {
        default(p, "scope", json!("Cluster"));
    }
}

/// Upstream's defaults for endpoint slices.
pub fn endpoint_slice(v: &mut Value) {
    if let Some(m) = obj(v) {
        for p in list(m, "ports") {
            default(p, "name", json!(""));
            default(p, "protocol", json!("TCP"));
        }
    }
}

/// Upstream's defaults for storage classs.
pub fn storage_class(v: &mut Value) {
    if let Some(m) = obj(v) {
        default(m, "reclaimPolicy", json!("Delete"));
        default(m, "volumeBindingMode", json!("Immediate"));
    }
}

/// Upstream's defaults for csi drivers.
pub fn csi_driver(v: &mut Value) {
    if let Some(m) = at(v, &["spec"]) {
        default(m, "attachRequired", json!(true));
        default(m, "podInfoOnMount", json!(false));
        default(m, "storageCapacity", json!(false));
        default(m, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
        default(m, "requiresRepublish", json!(false));
        default(m, "seLinuxMount", json!(false));
        if !non_empty(m, "volumeLifecycleModes") {
            m.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
        }
    }
}

/// Upstream's defaults for a validating or mutating webhook configuration.
pub fn webhook_configuration(v: &mut Value, mutating: bool) {
    if let Some(m) = obj(v) {
        for w in list(m, "webhooks") {
            webhook_defaults(w, mutating);
        }
    }
}

/// Upstream's defaults for ValidatingAdmissionPolicies (`SetDefaults_ValidatingAdmissionPolicySpec`,
/// `SetDefaults_MatchResources`, `SetDefaults_Rule`).
pub fn validating_admission_policy(v: &mut Value) {
    let Some(spec) = obj(v).and_then(|m| child(m, "spec")) else {
        return;
    };
    default(spec, "failurePolicy", json!("Fail"));
    if let Some(mc) = child(spec, "matchConstraints") {
        match_resources_defaults(mc);
    }
}

/// Upstream's defaults for ValidatingAdmissionPolicyBindings (`SetDefaults_ParamRef`, and the
/// MatchResources ones when the binding has matchResources).
pub fn validating_admission_policy_binding(v: &mut Value) {
    let Some(spec) = obj(v).and_then(|m| child(m, "spec")) else {
        return;
    };
    if let Some(mr) = child(spec, "matchResources") {
        match_resources_defaults(mr);
    }
    if let Some(pr) = child(spec, "paramRef") {
        default(pr, "parameterNotFoundAction", json!("Deny"));
    }
}

fn match_resources_defaults(mr: &mut Map<String, Value>) {
    default(mr, "matchPolicy", json!("Equivalent"));
    default(mr, "namespaceSelector", json!({}));
    default(mr, "objectSelector", json!({}));
    for field in ["resourceRules", "excludeResourceRules"] {
        for rule in list(mr, field) {
            default(rule, "scope", json!("*"));
        }
    }
}

/// Upstream's defaults for role bindings.
pub fn role_binding(v: &mut Value) {
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

/// Upstream's defaults for priority classs.
pub fn priority_class(v: &mut Value) {
    if let Some(m) = obj(v) {
        default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
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
        assert_eq!(
            image_pull_policy("localhost:5000/nginx:1.2"),
            "IfNotPresent"
        );
        assert_eq!(
            image_pull_policy("registry.k8s.io/pause:3.9"),
            "IfNotPresent"
        );
        assert_eq!(image_pull_policy("docker.io/library/busybox"), "Always");
        assert_eq!(
            image_pull_policy(
                "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
            "IfNotPresent"
        );
        // Unparsable references get IfNotPresent, as upstream's ignored parse error leaves no tag.
        assert_eq!(image_pull_policy("NGINX"), "IfNotPresent");
        assert_eq!(image_pull_policy(""), "IfNotPresent");
        assert_eq!(image_pull_policy("my_repo/app"), "Always");
    }

    #[test]
    fn keeps_what_is_set() {
        let mut spec = json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 80}]}]});
        pod_spec_defaults(&mut spec);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["containers"][0]["resources"], json!({}));
    }

    #[test]
    fn pod_defaults_full() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {
            "serviceAccount": "builder",
            "containers": [{
                "name": "c", "image": "nginx",
                "resources": {"limits": {"cpu": "0.5", "memory": "1.5Gi"}, "requests": {"cpu": "100m"}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
                "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 0},
                "readinessProbe": {"grpc": {"port": 9000}},
                "lifecycle": {"preStop": {"httpGet": {"port": "http"}}}
            }],
            "volumes": [
                {"name": "a"},
                {"name": "b", "hostPath": {"path": "/x"}},
                {"name": "c", "configMap": {"name": "cm"}},
                {"name": "d", "downwardAPI": {"items": [{"path": "p", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "e", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                {"name": "f", "emptyDir": {"sizeLimit": "1024Mi"}}
            ]
        }});
        pod_defaults(&mut pod);
        let s = &pod["spec"];
        assert_eq!(s["serviceAccountName"], "builder");
        assert_eq!(s["serviceAccount"], "builder");
        assert_eq!(s["enableServiceLinks"], true);
        assert_eq!(
            s.get("priority"),
            None,
            "the Priority admission plugin sets it"
        );
        let c = &s["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(
            c["resources"]["limits"],
            json!({"cpu": "500m", "memory": "1536Mi"})
        );
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "100m", "memory": "1536Mi"})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["env"][1]["valueFrom"]["resourceFieldRef"]["divisor"], "0");
        assert_eq!(
            c["livenessProbe"]["httpGet"],
            json!({"port": 80, "path": "/", "scheme": "HTTP"})
        );
        assert_eq!(c["livenessProbe"]["periodSeconds"], 10);
        assert_eq!(c["livenessProbe"]["timeoutSeconds"], 1);
        assert_eq!(c["readinessProbe"]["grpc"]["service"], "");
        assert_eq!(c["lifecycle"]["preStop"]["httpGet"]["scheme"], "HTTP");
        let v = &s["volumes"];
        assert_eq!(v[0]["emptyDir"], json!({}));
        assert_eq!(v[1]["hostPath"]["type"], "");
        assert_eq!(v[2]["configMap"]["defaultMode"], 420);
        assert_eq!(v[3]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(
            v[3]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(v[4]["projected"]["defaultMode"], 420);
        assert_eq!(
            v[4]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3600
        );
        assert_eq!(v[5]["emptyDir"]["sizeLimit"], "1Gi");
        // Idempotent.
        let again = {
            let mut p = pod.clone();
            pod_defaults(&mut p);
            p
        };
        assert_eq!(again, pod);
    }

    #[test]
    fn host_network_ports() {
        let mut pod = json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}});
        pod_defaults(&mut pod);
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
        // Templates do not get it.
        let mut t = json!({"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]});
        pod_spec_defaults(&mut t);
        assert!(t["containers"][0]["ports"][0].get("hostPort").is_none());
    }

    #[test]
    fn workloads() {
        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        replication_controller_defaults(&mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");

        let mut job = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        job_defaults(&mut job);
        assert!(job["spec"].get("completions").is_none());
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(job["spec"]["manualSelector"], false);
        assert_eq!(job["spec"]["podReplacementPolicy"], "TerminatingOrFailed");

        let mut job = json!({"spec": {"backoffLimitPerIndex": 1, "completionMode": "Indexed", "completions": 3, "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}, "template": {"spec": {}}}});
        job_defaults(&mut job);
        assert_eq!(job["spec"]["backoffLimit"], 2147483647);
        assert_eq!(job["spec"]["parallelism"], 1);
        assert_eq!(job["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(
            job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
            "True"
        );

        let mut sts = json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}, "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}], "template": {"spec": {}}}});
        stateful_set(&mut sts);
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"rollingUpdate": {"maxUnavailable": 2, "partition": 0}, "type": "RollingUpdate"})
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );

        let mut ds =
            json!({"spec": {"updateStrategy": {"type": "OnDelete"}, "template": {"spec": {}}}});
        daemon_set(&mut ds);
        assert_eq!(ds["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        let mut ds = json!({"spec": {"template": {"spec": {}}}});
        daemon_set(&mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );

        let mut d = json!({"spec": {"strategy": {"type": "Recreate"}, "template": {"spec": {}}}});
        deployment(&mut d);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn services() {
        let mut s = json!({"spec": {"type": "ClusterIP", "externalIPs": ["1.2.3.4"], "ports": [{"port": 80, "targetPort": 0}], "sessionAffinity": "ClientIP"}});
        service_defaults(&mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            s["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        let mut lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        service_defaults(&mut lb);
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["internalTrafficPolicy"], "Cluster");
        let mut en = json!({"spec": {"type": "ExternalName", "externalName": "x.com"}});
        service_defaults(&mut en);
        assert!(en["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn other_kinds() {
        let mut lr = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}, "default": {"memory": "512Mi"}}]}});
        limit_range_defaults(&mut lr);
        let item = &lr["spec"]["limits"][0];
        assert_eq!(item["default"], json!({"memory": "512Mi", "cpu": "2"}));
        assert_eq!(
            item["defaultRequest"],
            json!({"memory": "512Mi", "cpu": "2"})
        );

        let mut np = json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}});
        network_policy(&mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");

        let mut hpa = json!({"spec": {"maxReplicas": 5, "scaleTargetRef": {"kind": "Deployment", "name": "w"}}});
        horizontal_pod_autoscaler(&mut hpa, "v2");
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );

        let mut node = json!({"status": {"capacity": {"cpu": "4", "memory": "8000000Ki"}}});
        super::node(&mut node);
        assert_eq!(
            node["status"]["allocatable"],
            json!({"cpu": "4", "memory": "8000000Ki"})
        );

        let mut sc = json!({"provisioner": "x"});
        storage_class(&mut sc);
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
    }
}
