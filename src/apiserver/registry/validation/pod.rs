//! Pods and pod templates: the pod spec wherever it appears, and what a pod update may change.
//!
//! Follows upstream's `ValidatePodCreate` / `ValidatePodSpec` / `ValidatePodUpdate`
//! (`pkg/apis/core/validation/validation.go`, v1.33 with its default feature gates): the same rules, the
//! same field paths (including upstream's quirks, e.g. `volumeMounts.subPath` without an index) and the
//! same messages. Objects arrive defaulted, in their v1 JSON form; nothing here panics on odd JSON types.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::apiserver::registry::validation::fields::{quantity, quantity_text, str_at};
use crate::apiserver::registry::validation::{
    label_value_errors, name_errors, qualified_name_errors, NameRule,
};
use crate::apiserver::status::Cause;
use crate::apiserver::wire::quantity::{Quantity, PARSE_ERROR};

/// The fields a pod update may change, as upstream lists them in its Forbidden message.
pub const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

const MAX_INT32: i64 = 2_147_483_647;
const NEGATIVE_MSG: &str = "must be greater than or equal to 0";

/// A pod's own rules (`ValidatePodCreate`'s spec part).
pub fn pod(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec");
    validate_pod_spec(spec, "spec", causes);
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        return;
    };
    // validateContainersOnlyForPod: images must not be padded.
    for key in ["containers", "initContainers"] {
        for (i, c) in items(spec, key).iter().enumerate() {
            let image = str_at(c, "image");
            if image.trim() != image {
                causes.push(Cause::invalid(
                    &format!("spec.{key}[{i}].image"),
                    &json!(image),
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    if !str_at(spec, "nodeName").is_empty() && !items(spec, "schedulingGates").is_empty() {
        causes.push(Cause::forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
}

/// A PodTemplate: the pod spec it holds.
pub fn pod_template(obj: &Value, causes: &mut Vec<Cause>) {
    validate_pod_spec(obj.pointer("/template/spec"), "template.spec", causes)
}

/// A pod spec at `path` (e.g. `spec.template.spec`), as used by every workload's template.
pub fn validate_pod_spec(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        // Upstream's template is a value struct: defaulting fills in the rest, the containers stay missing.
        causes.push(Cause::required(&format!("{path}.containers")));
        return;
    };
    let grace = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    if field(spec, "terminationGracePeriodSeconds").is_none() {
        causes.push(Cause::required(&format!(
            "{path}.terminationGracePeriodSeconds"
        )));
    }
    let volumes = validate_volumes(spec, &format!("{path}.volumes"), causes);
    let ctx = Ctx {
        volumes: &volumes,
        grace,
        restart_policy: str_at(spec, "restartPolicy"),
    };
    validate_containers(spec, &ctx, &format!("{path}.containers"), causes);
    validate_init_containers(spec, &ctx, &format!("{path}.initContainers"), causes);
    validate_ephemeral_containers(spec, &ctx, &format!("{path}.ephemeralContainers"), causes);
    host_network_deps(spec, path, causes);

    let restart = str_at(spec, "restartPolicy");
    one_of(
        restart,
        &["Always", "OnFailure", "Never"],
        &format!("{path}.restartPolicy"),
        causes,
    );
    let dns_policy = str_at(spec, "dnsPolicy");
    one_of(
        dns_policy,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        &format!("{path}.dnsPolicy"),
        causes,
    );
    if let Some(sel) = spec.get("nodeSelector").and_then(Value::as_object) {
        labels_causes(sel, &format!("{path}.nodeSelector"), causes);
    }
    pod_security_context(
        spec.get("securityContext"),
        &format!("{path}.securityContext"),
        causes,
    );
    for (i, s) in items(spec, "imagePullSecrets").iter().enumerate() {
        if let Some(m) = s.as_object() {
            if m.iter().any(|(k, v)| k != "name" && !is_empty(v)) {
                causes.push(Cause::invalid(
                    &format!("{path}.imagePullSecrets[{i}]"),
                    s,
                    "only name may be set",
                ));
            }
        }
    }
    if let Some(a) = field(spec, "affinity") {
        affinity(a, &format!("{path}.affinity"), causes);
    }
    dns_config(spec, dns_policy, &format!("{path}.dnsConfig"), causes);
    for (i, g) in items(spec, "readinessGates").iter().enumerate() {
        let t = str_at(g, "conditionType");
        for e in qualified_name_errors(t) {
            causes.push(Cause::invalid(
                &format!("{path}.readinessGates[{i}].conditionType"),
                &json!(t),
                &e,
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, g) in items(spec, "schedulingGates").iter().enumerate() {
        let n = str_at(g, "name");
        let p = format!("{path}.schedulingGates[{i}]");
        for e in qualified_name_errors(n) {
            causes.push(Cause::invalid(&p, &json!(n), &e));
        }
        if !seen.insert(n) {
            causes.push(Cause::duplicate(&p, &json!(n)));
        }
    }
    topology_spread(spec, &format!("{path}.topologySpreadConstraints"), causes);
    for (key, rule) in [
        ("serviceAccountName", NameRule::Subdomain),
        ("nodeName", NameRule::Subdomain),
    ] {
        let v = str_at(spec, key);
        if !v.is_empty() {
            for e in name_errors(v, rule) {
                causes.push(Cause::invalid(&format!("{path}.{key}"), &json!(v), &e));
            }
        }
    }
    if let Some(v) = field(spec, "activeDeadlineSeconds") {
        let n = v.as_i64().unwrap_or(0);
        if !(1..=MAX_INT32).contains(&n) {
            causes.push(Cause::invalid(
                &format!("{path}.activeDeadlineSeconds"),
                v,
                &range_msg(1, MAX_INT32),
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = str_at(spec, key);
        if !v.is_empty() {
            for e in name_errors(v, NameRule::Label) {
                causes.push(Cause::invalid(&format!("{path}.{key}"), &json!(v), &e));
            }
        }
    }
    validate_tolerations(
        items(spec, "tolerations"),
        &format!("{path}.tolerations"),
        causes,
    );
    for (i, a) in items(spec, "hostAliases").iter().enumerate() {
        let ip = str_at(a, "ip");
        if ip.parse::<std::net::IpAddr>().is_err() {
            causes.push(Cause::invalid(
                &format!("{path}.hostAliases[{i}].ip"),
                &json!(ip),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
        for (j, h) in items(a, "hostnames").iter().enumerate() {
            let h = h.as_str().unwrap_or("");
            for e in name_errors(h, NameRule::Subdomain) {
                causes.push(Cause::invalid(
                    &format!("{path}.hostAliases[{i}].hostnames[{j}]"),
                    &json!(h),
                    &e,
                ));
            }
        }
    }
    let pc = str_at(spec, "priorityClassName");
    if !pc.is_empty() {
        for e in name_errors(pc, NameRule::Subdomain) {
            causes.push(Cause::invalid(
                &format!("{path}.priorityClassName"),
                &json!(pc),
                &e,
            ));
        }
    }
    if let Some(rc) = field(spec, "runtimeClassName") {
        let rc = rc.as_str().unwrap_or("");
        for e in name_errors(rc, NameRule::Subdomain) {
            causes.push(Cause::invalid(
                &format!("{path}.runtimeClassName"),
                &json!(rc),
                &e,
            ));
        }
    }
    if field(spec, "preemptionPolicy").is_some() {
        one_of(
            str_at(spec, "preemptionPolicy"),
            &["PreemptLowerPriority", "Never"],
            &format!("{path}.preemptionPolicy"),
            causes,
        );
    }
    if let Some(o) = field(spec, "overhead") {
        let res = json!({ "limits": o });
        resource_requirements(Some(&res), &format!("{path}.overhead"), causes);
    }
    if let Some(os) = field(spec, "os") {
        let name = str_at(os, "name");
        if name.is_empty() {
            causes.push(Cause::required(&format!("{path}.os.name")));
        } else if name != "linux" && name != "windows" {
            causes.push(Cause::unsupported(
                &format!("{path}.os"),
                &json!(name),
                &["linux", "windows"],
            ));
        }
    }
}

/// Pod updates may change little beyond images, tolerations additions and deadlines.
pub fn pod_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let empty = json!({});
    let new_spec = new.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    let old_spec = old.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    for key in ["containers", "initContainers"] {
        if items(new_spec, key).len() != items(old_spec, key).len() {
            causes.push(Cause::forbidden(
                &format!("spec.{key}"),
                "pod updates may not add or remove containers",
            ));
            return;
        }
    }
    // activeDeadlineSeconds: set when unset, or lowered.
    match (
        field(new_spec, "activeDeadlineSeconds"),
        field(old_spec, "activeDeadlineSeconds"),
    ) {
        (Some(nv), old_v) => {
            let n = nv.as_i64().unwrap_or(-1);
            if !(0..=MAX_INT32).contains(&n) {
                causes.push(Cause::invalid(
                    "spec.activeDeadlineSeconds",
                    nv,
                    &range_msg(0, MAX_INT32),
                ));
                return;
            }
            if let Some(o) = old_v.and_then(Value::as_i64) {
                if o < n {
                    causes.push(Cause::invalid(
                        "spec.activeDeadlineSeconds",
                        nv,
                        "must be less than or equal to previous value",
                    ));
                    return;
                }
            }
        }
        (None, Some(_)) => causes.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }
    // Tolerations: existing ones stay (their tolerationSeconds may change).
    let new_tol = items(new_spec, "tolerations");
    for old_t in items(old_spec, "tolerations") {
        let strip = |t: &Value| {
            let mut t = normalized(t);
            if let Some(m) = t.as_object_mut() {
                m.remove("tolerationSeconds");
            }
            t
        };
        let want = strip(old_t);
        if !new_tol.iter().any(|t| strip(t) == want) {
            causes.push(Cause::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    // Scheduling gates: only removals.
    let old_gates: HashSet<&str> = items(old_spec, "schedulingGates")
        .iter()
        .map(|g| str_at(g, "name"))
        .collect();
    let mut added: Vec<(usize, &str)> = Vec::new();
    for (i, g) in items(new_spec, "schedulingGates").iter().enumerate() {
        let n = str_at(g, "name");
        if old_gates.contains(n) {
            continue;
        }
        // Upstream keeps the last index of each new gate.
        added.retain(|(_, x)| *x != n);
        added.push((i, n));
    }
    for (i, n) in added {
        causes.push(Cause::forbidden(
            &format!("spec.schedulingGates[{i}].name"),
            &format!("only deletion is allowed, but found new scheduling gate '{n}'"),
        ));
    }

    let old_norm = normalized(old_spec);
    if normalized(new_spec) == old_norm {
        return;
    }
    // Munge what may change to the old values, then the rest must be equal.
    let mut munged = new_spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for key in ["containers", "initContainers"] {
            let olds = items(old_spec, key);
            if let Some(list) = m.get_mut(key).and_then(Value::as_array_mut) {
                for (c, o) in list.iter_mut().zip(olds) {
                    if let Some(cm) = c.as_object_mut() {
                        match o.get("image") {
                            Some(img) => cm.insert("image".into(), img.clone()),
                            None => cm.remove("image"),
                        };
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old_spec.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = old_spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        let new_grace = m
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if let (Some(o), Some(1)) = (old_grace, new_grace) {
            if o < 0 {
                m.insert("terminationGracePeriodSeconds".into(), json!(o));
            }
        }
        // A gated pod may gain nodeSelector entries.
        if !items(old_spec, "schedulingGates").is_empty() {
            let old_sel = old_spec.get("nodeSelector").and_then(Value::as_object);
            let new_sel = m.get("nodeSelector").and_then(Value::as_object);
            let only_added = match (old_sel, new_sel) {
                (None, _) => true,
                (Some(o), Some(n)) => o.iter().all(|(k, v)| n.get(k) == Some(v)),
                (Some(o), None) => o.is_empty(),
            };
            if only_added {
                match old_spec.get("nodeSelector") {
                    Some(v) => m.insert("nodeSelector".into(), v.clone()),
                    None => m.remove("nodeSelector"),
                };
            }
        }
    }
    if normalized(&munged) != old_norm {
        causes.push(Cause::forbidden(
            "spec",
            &format!("pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}"),
        ));
    }
}

/// A copy with what Go's omitempty and semantic equality ignore removed: null, `""`, `0`, `false`,
/// `[]` and `{}` (recursively), and integral floats written as integers.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let n = normalized(v);
                if !is_empty(&n) {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

/// Go's zero value (or an empty collection).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON access helpers: absent, null and wrong types read as empty.

/// `v[key]` unless absent or null.
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn range_msg(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Upstream's enum switch: `""` is `Required value`, anything else outside `supported` unsupported.
fn one_of(value: &str, supported: &[&str], path: &str, causes: &mut Vec<Cause>) {
    if value.is_empty() {
        causes.push(Cause::required(path));
    } else if !supported.contains(&value) {
        causes.push(Cause::unsupported(path, &json!(value), supported));
    }
}

/// `ValidateLabels`: key and value errors, both at the map's path.
fn labels_causes(labels: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for (k, v) in labels {
        for e in qualified_name_errors(k) {
            causes.push(Cause::invalid(path, &json!(k), &e));
        }
        let v = v.as_str().unwrap_or("");
        for e in label_value_errors(v) {
            causes.push(Cause::invalid(path, &json!(v), &e));
        }
    }
}

/// Upstream's `RegexError` format.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let ex: String = examples
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{}'{e}', ", if i > 0 { " or " } else { "" }))
        .collect();
    format!("{msg} (e.g. {ex}regex used for validation is '{fmt}')")
}

/// `IsValidPortName`: an IANA_SVC_NAME (at most 15 of `[-a-z0-9]`, a letter, no `--`, no edge hyphens).
pub fn port_name_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !name.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `IsRelaxedEnvVarName` (RelaxedEnvironmentVariableValidation is on by default in v1.33): any
/// printable ASCII but `=`.
pub fn env_var_name_errors(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push("environment variable name must be non-empty".to_string());
    }
    if name.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push(
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .into(),
        );
    }
    errs
}

/// `IsConfigMapKey`: keys of ConfigMaps and Secrets.
pub fn config_map_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if key == "." {
        errs.push("must not be '.'".into());
    } else if key == ".." {
        errs.push("must not be '..'".into());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

/// `validatePathNoBacksteps`.
/// Upstream's `validatePathNoBacksteps` (on Linux: `..` between slashes).
pub(super) fn no_backsteps(p: &str, path: &str, causes: &mut Vec<Cause>) {
    if p.split('/').any(|s| s == "..") {
        causes.push(Cause::invalid(path, &json!(p), "must not contain '..'"));
    }
}

/// A hostPath source at `sp` (pods' volumes and PersistentVolumes alike).
pub(super) fn host_path_source(src: &Value, sp: &str, causes: &mut Vec<Cause>) {
    let hp = str_at(src, "path");
    if hp.is_empty() {
        causes.push(Cause::required(&format!("{sp}.path")));
    } else {
        no_backsteps(hp, &format!("{sp}.path"), causes);
        host_path_type(str_at(src, "type"), &format!("{sp}.type"), causes);
    }
}

/// An NFS source at `sp` (pods' volumes and PersistentVolumes alike).
pub(super) fn nfs_source(src: &Value, sp: &str, causes: &mut Vec<Cause>) {
    for f in ["server", "path"] {
        if str_at(src, f).is_empty() {
            causes.push(Cause::required(&format!("{sp}.{f}")));
        }
    }
    nfs_path(str_at(src, "path"), &format!("{sp}.path"), causes);
}

/// A hostPath source's `type` (pods' volumes and PersistentVolumes alike).
pub(super) fn host_path_type(t: &str, path: &str, causes: &mut Vec<Cause>) {
    const TYPES: &[&str] = &[
        "",
        "BlockDevice",
        "CharDevice",
        "Directory",
        "DirectoryOrCreate",
        "File",
        "FileOrCreate",
        "Socket",
    ];
    if !TYPES.contains(&t) {
        causes.push(Cause::unsupported(path, &json!(t), TYPES));
    }
}

/// An nfs source's `path` must be absolute (pods' volumes and PersistentVolumes alike).
pub(super) fn nfs_path(p: &str, path: &str, causes: &mut Vec<Cause>) {
    if !p.starts_with('/') {
        causes.push(Cause::invalid(path, &json!(p), "must be an absolute path"));
    }
}

/// `validateLocalDescendingPath`: relative, without `..`.
fn local_descending_path(p: &str, path: &str, causes: &mut Vec<Cause>) {
    if p.starts_with('/') {
        causes.push(Cause::invalid(path, &json!(p), "must be a relative path"));
    }
    no_backsteps(p, path, causes);
}

/// `ValidateLocalNonReservedPath`.
fn local_non_reserved_path(p: &str, path: &str, causes: &mut Vec<Cause>) {
    local_descending_path(p, path, causes);
    if p.starts_with("..") && !p.starts_with("../") {
        causes.push(Cause::invalid(path, &json!(p), "must not start with '..'"));
    }
}

/// `ValidatePortNumOrName` for an int-or-string port.
fn port_num_or_name(port: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    match port {
        Some(Value::String(s)) => {
            for e in port_name_errors(s) {
                causes.push(Cause::invalid(path, &json!(s), &e));
            }
        }
        other => {
            let n = other.and_then(Value::as_i64).unwrap_or(0);
            if !(1..=65535).contains(&n) {
                causes.push(Cause::invalid(path, &json!(n), &range_msg(1, 65535)));
            }
        }
    }
}

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

fn file_mode(v: &Value, key: &str, path: &str, causes: &mut Vec<Cause>) {
    if let Some(m) = field(v, key) {
        let n = m.as_i64().unwrap_or(-1);
        if !(0..=0o777).contains(&n) {
            causes.push(Cause::invalid(&format!("{path}.{key}"), m, FILE_MODE_MSG));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Volumes.

/// Volume sources in upstream's checking order, with the path name each "more than 1" error uses.
const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// `ValidateVolumes`: the valid volumes by name, with the source each uses.
fn validate_volumes(
    spec: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) -> HashMap<String, &'static str> {
    let mut vols = HashMap::new();
    for (i, v) in items(spec, "volumes").iter().enumerate() {
        let p = format!("{path}[{i}]");
        let name = str_at(v, "name");
        let mut el = Vec::new();
        let source = volume_source(v, &p, &mut el);
        if name.is_empty() {
            el.push(Cause::required(&format!("{p}.name")));
        } else {
            for e in name_errors(name, NameRule::Label) {
                el.push(Cause::invalid(&format!("{p}.name"), &json!(name), &e));
            }
        }
        if vols.contains_key(name) {
            el.push(Cause::duplicate(&format!("{p}.name"), &json!(name)));
        }
        if el.is_empty() {
            vols.insert(name.to_string(), source);
        } else {
            causes.append(&mut el);
        }
    }
    vols
}

fn volume_source(v: &Value, p: &str, causes: &mut Vec<Cause>) -> &'static str {
    let mut found: Option<&'static str> = None;
    for (key, err_name) in VOLUME_SOURCES {
        let Some(src) = field(v, key) else { continue };
        if found.is_some() && *key != "emptyDir" {
            causes.push(Cause::forbidden(
                &format!("{p}.{err_name}"),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        found = Some(*key);
        let sp = format!("{p}.{key}");
        let req = |f: &str, causes: &mut Vec<Cause>| {
            if str_at(src, f).is_empty() {
                causes.push(Cause::required(&format!("{sp}.{f}")));
            }
        };
        match *key {
            "emptyDir" => {
                if let Some(q) = field(src, "sizeLimit") {
                    if quantity(q).is_some_and(|q| q.is_negative()) {
                        causes.push(Cause::forbidden(
                            &format!("{sp}.sizeLimit"),
                            "SizeLimit field must be a valid resource quantity",
                        ));
                    }
                }
            }
            "hostPath" => host_path_source(src, &sp, causes),
            "gitRepo" => {
                req("repository", causes);
                local_descending_path(str_at(src, "directory"), &format!("{sp}.directory"), causes);
            }
            "secret" => {
                req("secretName", causes);
                file_mode(src, "defaultMode", &sp, causes);
                key_to_paths(src, &sp, causes);
            }
            "configMap" => {
                req("name", causes);
                file_mode(src, "defaultMode", &sp, causes);
                key_to_paths(src, &sp, causes);
            }
            "nfs" => nfs_source(src, &sp, causes),
            "persistentVolumeClaim" => req("claimName", causes),
            "glusterfs" => {
                req("endpoints", causes);
                req("path", causes);
            }
            "rbd" => {
                if items(src, "monitors").is_empty() {
                    causes.push(Cause::required(&format!("{sp}.monitors")));
                }
                req("image", causes);
            }
            "cephfs" => causes.extend(
                items(src, "monitors")
                    .is_empty()
                    .then(|| Cause::required(&format!("{sp}.monitors"))),
            ),
            "cinder" | "portworxVolume" => req("volumeID", causes),
            "awsElasticBlockStore" => req("volumeID", causes),
            "gcePersistentDisk" => causes.extend(
                str_at(src, "pdName")
                    .is_empty()
                    .then(|| Cause::required(&format!("{p}.persistentDisk.pdName"))),
            ),
            "iscsi" => {
                req("targetPortal", causes);
                req("iqn", causes);
            }
            "flexVolume" => req("driver", causes),
            "azureFile" => {
                req("secretName", causes);
                req("shareName", causes);
            }
            "azureDisk" => {
                req("diskName", causes);
                req("diskURI", causes);
            }
            "vsphereVolume" => req("volumePath", causes),
            "photonPersistentDisk" => req("pdID", causes),
            "scaleIO" => {
                req("gateway", causes);
                req("system", causes);
                req("volumeName", causes);
            }
            "storageos" => req("volumeName", causes),
            "quobyte" => {
                if str_at(src, "registry").is_empty() {
                    causes.push(Cause::required_detail(
                        &format!("{sp}.registry"),
                        "must be a host:port pair or multiple pairs separated by commas",
                    ));
                }
                req("volume", causes);
            }
            "csi" => {
                let d = str_at(src, "driver");
                if d.is_empty() {
                    causes.push(Cause::required(&format!("{sp}.driver")));
                }
                if d.len() > 63 {
                    causes.push(Cause::too_long(&format!("{sp}.driver"), 63));
                }
                for e in name_errors(&d.to_lowercase(), NameRule::Subdomain) {
                    causes.push(Cause::invalid(&format!("{sp}.driver"), &json!(d), &e));
                }
            }
            "ephemeral" => causes.extend(
                field(src, "volumeClaimTemplate")
                    .is_none()
                    .then(|| Cause::required(&format!("{sp}.volumeClaimTemplate"))),
            ),
            "downwardAPI" => {
                file_mode(src, "defaultMode", &sp, causes);
                for item in items(src, "items") {
                    downward_api_file(item, &sp, causes);
                }
            }
            "projected" => {
                file_mode(src, "defaultMode", &sp, causes);
                projected_sources(src, &sp, causes);
            }
            _ => {}
        }
    }
    match found {
        Some(s) => s,
        None => {
            causes.push(Cause::required_detail(p, "must specify a volume type"));
            ""
        }
    }
}

fn key_to_paths(src: &Value, sp: &str, causes: &mut Vec<Cause>) {
    for (i, kp) in items(src, "items").iter().enumerate() {
        key_to_path(kp, &format!("{sp}.items[{i}]"), causes);
    }
}

fn key_to_path(kp: &Value, ip: &str, causes: &mut Vec<Cause>) {
    if str_at(kp, "key").is_empty() {
        causes.push(Cause::required(&format!("{ip}.key")));
    }
    let p = str_at(kp, "path");
    if p.is_empty() {
        causes.push(Cause::required(&format!("{ip}.path")));
    }
    local_non_reserved_path(p, &format!("{ip}.path"), causes);
    file_mode(kp, "mode", ip, causes);
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

fn downward_api_file(file: &Value, sp: &str, causes: &mut Vec<Cause>) {
    let p = str_at(file, "path");
    if p.is_empty() {
        causes.push(Cause::required(&format!("{sp}.path")));
    }
    local_non_reserved_path(p, &format!("{sp}.path"), causes);
    if let Some(fr) = field(file, "fieldRef") {
        object_field_selector(fr, VOLUME_FIELD_PATHS, &format!("{sp}.fieldRef"), causes);
        if field(file, "resourceFieldRef").is_some() {
            causes.push(Cause::invalid(
                sp,
                &json!("resource"),
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if let Some(rf) = field(file, "resourceFieldRef") {
        resource_field_selector(rf, &format!("{sp}.resourceFieldRef"), true, causes);
    } else {
        causes.push(Cause::required_detail(
            sp,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
    file_mode(file, "mode", sp, causes);
}

fn projected_sources(src: &Value, sp: &str, causes: &mut Vec<Cause>) {
    let mut all_paths = HashSet::new();
    for (i, s) in items(src, "sources").iter().enumerate() {
        let srcp = format!("{sp}.sources[{i}]");
        let mut n = 0;
        for kind in ["secret", "configMap"] {
            if let Some(x) = field(s, kind) {
                n += 1;
                let name = str_at(x, "name");
                if name.is_empty() {
                    causes.push(Cause::required(&format!("{srcp}.{kind}.name")));
                }
                for (j, kp) in items(x, "items").iter().enumerate() {
                    key_to_path(kp, &format!("{srcp}.{kind}.items[{j}]"), causes);
                    let p = str_at(kp, "path");
                    if !p.is_empty() && !all_paths.insert(p.to_string()) {
                        causes.push(Cause::invalid(
                            sp,
                            &json!(name),
                            "conflicting duplicate paths",
                        ));
                    }
                }
            }
        }
        if let Some(d) = field(s, "downwardAPI") {
            n += 1;
            for f in items(d, "items") {
                downward_api_file(f, &format!("{srcp}.downwardAPI"), causes);
                let p = str_at(f, "path");
                if !p.is_empty() && !all_paths.insert(p.to_string()) {
                    causes.push(Cause::invalid(sp, &json!(p), "conflicting duplicate paths"));
                }
            }
        }
        if let Some(t) = field(s, "serviceAccountToken") {
            n += 1;
            let tp = format!("{srcp}.serviceAccountToken");
            let exp = t
                .get("expirationSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if exp < 600 {
                causes.push(Cause::invalid(
                    &format!("{tp}.expirationSeconds"),
                    &json!(exp),
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                causes.push(Cause::invalid(
                    &format!("{tp}.expirationSeconds"),
                    &json!(exp),
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            let p = str_at(t, "path");
            if p.is_empty() {
                causes.push(Cause::required(&format!("{sp}.path")));
            } else {
                local_non_reserved_path(p, &format!("{sp}.path"), causes);
            }
        }
        if field(s, "clusterTrustBundle").is_some() {
            n += 1;
        }
        if n > 1 {
            causes.push(Cause::forbidden(
                &srcp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Containers.

struct Ctx<'a> {
    volumes: &'a HashMap<String, &'static str>,
    grace: Option<i64>,
    restart_policy: &'a str,
}

fn validate_containers(spec: &Value, ctx: &Ctx, path: &str, causes: &mut Vec<Cause>) {
    let list = items(spec, "containers");
    if list.is_empty() {
        causes.push(Cause::required(path));
        return;
    }
    let mut names = HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        container_common(c, ctx, &p, causes);
        let name = str_at(c, "name");
        if !names.insert(name) {
            causes.push(Cause::duplicate(&format!("{p}.name"), &json!(name)));
        }
        if let Some(l) = field(c, "lifecycle") {
            lifecycle(l, ctx.grace, &format!("{p}.lifecycle"), causes);
        }
        probes(c, ctx.grace, &p, causes);
        if field(c, "restartPolicy").is_some() {
            causes.push(Cause::forbidden(
                &format!("{p}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    host_port_conflicts(list, path, &mut HashSet::new(), causes);
}

fn validate_init_containers(spec: &Value, ctx: &Ctx, path: &str, causes: &mut Vec<Cause>) {
    let mut names: HashSet<&str> = items(spec, "containers")
        .iter()
        .map(|c| str_at(c, "name"))
        .collect();
    for (i, c) in items(spec, "initContainers").iter().enumerate() {
        let p = format!("{path}[{i}]");
        container_common(c, ctx, &p, causes);
        let mut restart_always = false;
        if field(c, "restartPolicy").is_some() {
            let rp = str_at(c, "restartPolicy");
            if rp == "Always" {
                restart_always = true;
            } else {
                causes.push(Cause::unsupported(
                    &format!("{p}.restartPolicy"),
                    &json!(rp),
                    &["Always"],
                ));
            }
        }
        let name = str_at(c, "name");
        if names.contains(name) {
            causes.push(Cause::duplicate(&format!("{p}.name"), &json!(name)));
        } else if !name.is_empty() {
            names.insert(name);
        }
        host_port_conflicts(std::slice::from_ref(c), path, &mut HashSet::new(), causes);
        if restart_always {
            if let Some(l) = field(c, "lifecycle") {
                lifecycle(l, ctx.grace, &format!("{p}.lifecycle"), causes);
            }
            probes(c, ctx.grace, &p, causes);
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if field(c, key).is_some() {
                    causes.push(Cause::forbidden(
                        &format!("{p}.{key}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

const EPHEMERAL_FORBIDDEN: &[&str] = &[
    "ports",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resizePolicy",
    "restartPolicy",
];

/// Upstream's ValidatePodEphemeralContainersUpdate beyond the pod's own rules: ephemeral containers,
/// once added, are neither removed nor changed, and static (mirror) pods take none. The messages end
/// with a newline, as upstream's do.
pub fn ephemeral_containers_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    if old
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .is_some()
    {
        causes.clear();
        causes.push(Cause::forbidden(
            "[]",
            "static pods do not support ephemeral containers",
        ));
        return;
    }
    let empty = json!({});
    let new_list = items(new.get("spec").unwrap_or(&empty), "ephemeralContainers");
    for o in items(old.get("spec").unwrap_or(&empty), "ephemeralContainers") {
        let name = str_at(o, "name");
        let detail = match new_list.iter().find(|n| str_at(n, "name") == name) {
            None => "removed",
            Some(n) if normalized(n) != normalized(o) => "changed",
            Some(_) => continue,
        };
        causes.push(Cause::forbidden(
            "spec.ephemeralContainers",
            &format!("existing ephemeral containers {name:?} may not be {detail}\n"),
        ));
    }
}

fn validate_ephemeral_containers(spec: &Value, ctx: &Ctx, path: &str, causes: &mut Vec<Cause>) {
    let list = items(spec, "ephemeralContainers");
    if list.is_empty() {
        return;
    }
    let mut others = HashSet::new();
    for key in ["containers", "initContainers"] {
        for c in items(spec, key) {
            others.insert(str_at(c, "name"));
        }
    }
    let mut all = others.clone();
    for (i, c) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        container_common(c, ctx, &p, causes);
        let image = str_at(c, "image");
        if image.trim() != image {
            causes.push(Cause::invalid(
                &format!("{p}.image"),
                &json!(image),
                "must not have leading or trailing whitespace",
            ));
        }
        let name = str_at(c, "name");
        if !all.insert(name) {
            causes.push(Cause::duplicate(&format!("{p}.name"), &json!(name)));
        }
        let target = str_at(c, "targetContainerName");
        if !target.is_empty() && !others.contains(target) {
            causes.push(Cause::not_found(
                &format!("{p}.targetContainerName"),
                &json!(target),
            ));
        }
        for key in EPHEMERAL_FORBIDDEN {
            if c.get(*key).is_some_and(|v| !is_empty(&normalized(v))) {
                causes.push(Cause::forbidden(
                    &format!("{p}.{key}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, m) in items(c, "volumeMounts").iter().enumerate() {
            for key in ["subPath", "subPathExpr"] {
                if !str_at(m, key).is_empty() {
                    causes.push(Cause::forbidden(
                        &format!("{p}.volumeMounts[{j}].{key}"),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
}

/// `validateContainerCommon`.
fn container_common(c: &Value, ctx: &Ctx, p: &str, causes: &mut Vec<Cause>) {
    let name = str_at(c, "name");
    if name.is_empty() {
        causes.push(Cause::required(&format!("{p}.name")));
    } else {
        for e in name_errors(name, NameRule::Label) {
            causes.push(Cause::invalid(&format!("{p}.name"), &json!(name), &e));
        }
    }
    if str_at(c, "image").is_empty() {
        causes.push(Cause::required(&format!("{p}.image")));
    }
    one_of(
        str_at(c, "terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
        &format!("{p}.terminationMessagePolicy"),
        causes,
    );
    container_ports(c, &format!("{p}.ports"), causes);
    env(c, &format!("{p}.env"), causes);
    env_from(c, &format!("{p}.envFrom"), causes);
    volume_mounts(c, ctx.volumes, &format!("{p}.volumeMounts"), causes);
    volume_devices(c, ctx.volumes, &format!("{p}.volumeDevices"), causes);
    one_of(
        str_at(c, "imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
        &format!("{p}.imagePullPolicy"),
        causes,
    );
    resource_requirements(c.get("resources"), &format!("{p}.resources"), causes);
    resize_policy(c, ctx.restart_policy, &format!("{p}.resizePolicy"), causes);
    container_security_context(
        c.get("securityContext"),
        &format!("{p}.securityContext"),
        causes,
    );
}

fn container_ports(c: &Value, path: &str, causes: &mut Vec<Cause>) {
    let mut names = HashSet::new();
    for (i, port) in items(c, "ports").iter().enumerate() {
        let p = format!("{path}[{i}]");
        let name = str_at(port, "name");
        if !name.is_empty() {
            let errs = port_name_errors(name);
            if !errs.is_empty() {
                for e in errs {
                    causes.push(Cause::invalid(&format!("{p}.name"), &json!(name), &e));
                }
            } else if !names.insert(name) {
                causes.push(Cause::duplicate(&format!("{p}.name"), &json!(name)));
            }
        }
        let cp = port
            .get("containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if cp == 0 {
            causes.push(Cause::required(&format!("{p}.containerPort")));
        } else if !(1..=65535).contains(&cp) {
            causes.push(Cause::invalid(
                &format!("{p}.containerPort"),
                &json!(cp),
                &range_msg(1, 65535),
            ));
        }
        let hp = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
        if hp != 0 && !(1..=65535).contains(&hp) {
            causes.push(Cause::invalid(
                &format!("{p}.hostPort"),
                &json!(hp),
                &range_msg(1, 65535),
            ));
        }
        one_of(
            str_at(port, "protocol"),
            &["SCTP", "TCP", "UDP"],
            &format!("{p}.protocol"),
            causes,
        );
    }
}

/// `AccumulateUniqueHostPorts`.
fn host_port_conflicts(
    containers: &[Value],
    path: &str,
    seen: &mut HashSet<String>,
    causes: &mut Vec<Cause>,
) {
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in items(c, "ports").iter().enumerate() {
            let hp = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{hp}",
                str_at(port, "protocol"),
                str_at(port, "hostIP")
            );
            if seen.contains(&key) {
                causes.push(Cause::duplicate(
                    &format!("{path}[{ci}].ports[{pi}].hostPort"),
                    &json!(key),
                ));
            } else {
                seen.insert(key);
            }
        }
    }
}

/// `validatePodHostNetworkDeps`: with hostNetwork, a set hostPort must equal the containerPort.
fn host_network_deps(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    if spec.get("hostNetwork") != Some(&json!(true)) {
        return;
    }
    for (i, c) in items(spec, "containers").iter().enumerate() {
        for (j, port) in items(c, "ports").iter().enumerate() {
            let hp = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            let cp = port
                .get("containerPort")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if hp != 0 && hp != cp {
                causes.push(Cause::invalid(
                    &format!("{path}.containers[{i}].ports[{j}].hostPort"),
                    &json!(hp),
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Labels `ConvertDownwardAPIFieldLabel` accepts for v1 pods.
const DOWNWARD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

fn env(c: &Value, path: &str, causes: &mut Vec<Cause>) {
    for (i, e) in items(c, "env").iter().enumerate() {
        let p = format!("{path}[{i}]");
        let name = str_at(e, "name");
        if name.is_empty() {
            causes.push(Cause::required(&format!("{p}.name")));
        } else {
            for msg in env_var_name_errors(name) {
                causes.push(Cause::invalid(&format!("{p}.name"), &json!(name), &msg));
            }
        }
        let Some(vf) = field(e, "valueFrom") else {
            continue;
        };
        let vp = format!("{p}.valueFrom");
        let mut n = 0;
        if let Some(fr) = field(vf, "fieldRef") {
            n += 1;
            object_field_selector(fr, ENV_FIELD_PATHS, &format!("{vp}.fieldRef"), causes);
        }
        if let Some(rf) = field(vf, "resourceFieldRef") {
            n += 1;
            resource_field_selector(rf, &format!("{vp}.resourceFieldRef"), false, causes);
        }
        for kind in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(r) = field(vf, kind) {
                n += 1;
                let kp = format!("{vp}.{kind}");
                let rn = str_at(r, "name");
                for msg in name_errors(rn, NameRule::Subdomain) {
                    causes.push(Cause::invalid(&format!("{kp}.name"), &json!(rn), &msg));
                }
                let key = str_at(r, "key");
                if key.is_empty() {
                    causes.push(Cause::required(&format!("{kp}.key")));
                } else {
                    for msg in config_map_key_errors(key) {
                        causes.push(Cause::invalid(&format!("{kp}.key"), &json!(key), &msg));
                    }
                }
            }
        }
        if n == 0 {
            causes.push(Cause::invalid(
                &vp,
                &json!(""),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !str_at(e, "value").is_empty() {
            causes.push(Cause::invalid(
                &vp,
                &json!(""),
                "may not be specified when `value` is not empty",
            ));
        } else if n > 1 {
            causes.push(Cause::invalid(
                &vp,
                &json!(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn env_from(c: &Value, path: &str, causes: &mut Vec<Cause>) {
    for (i, e) in items(c, "envFrom").iter().enumerate() {
        let p = format!("{path}[{i}]");
        let prefix = str_at(e, "prefix");
        if !prefix.is_empty() {
            for msg in env_var_name_errors(prefix) {
                causes.push(Cause::invalid(&format!("{p}.prefix"), &json!(prefix), &msg));
            }
        }
        let mut n = 0;
        for kind in ["configMapRef", "secretRef"] {
            if let Some(r) = field(e, kind) {
                n += 1;
                let rn = str_at(r, "name");
                if rn.is_empty() {
                    causes.push(Cause::required(&format!("{p}.{kind}.name")));
                } else {
                    for msg in name_errors(rn, NameRule::Subdomain) {
                        causes.push(Cause::invalid(
                            &format!("{p}.{kind}.name"),
                            &json!(rn),
                            &msg,
                        ));
                    }
                }
            }
        }
        if n == 0 {
            causes.push(Cause::invalid(
                path,
                &json!(""),
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            causes.push(Cause::invalid(
                path,
                &json!(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `validateObjectFieldSelector`.
fn object_field_selector(fs: &Value, expressions: &[&str], path: &str, causes: &mut Vec<Cause>) {
    if str_at(fs, "apiVersion").is_empty() {
        causes.push(Cause::required(&format!("{path}.apiVersion")));
        return;
    }
    let fp = str_at(fs, "fieldPath");
    if fp.is_empty() {
        causes.push(Cause::required(&format!("{path}.fieldPath")));
        return;
    }
    let api_version = str_at(fs, "apiVersion");
    let subscripted = fp
        .strip_suffix("']")
        .and_then(|s| s.split_once("['"))
        .filter(|(p, _)| !p.is_empty());
    let conversion_error = if api_version != "v1" {
        Some(format!("unsupported pod version: {api_version}"))
    } else if let Some((p, _)) = subscripted {
        (p != "metadata.annotations" && p != "metadata.labels")
            .then(|| format!("field label does not support subscript: {fp}"))
    } else if fp == "spec.host" {
        None
    } else {
        (!DOWNWARD_LABELS.contains(&fp)).then(|| format!("field label not supported: {fp}"))
    };
    if let Some(err) = conversion_error {
        causes.push(Cause::invalid(
            &format!("{path}.fieldPath"),
            &json!(fp),
            &format!("error converting fieldPath: {err}"),
        ));
        return;
    }
    if let Some((p, sub)) = subscripted {
        let sub = if p == "metadata.annotations" {
            sub.to_lowercase()
        } else {
            sub.to_string()
        };
        for e in qualified_name_errors(&sub) {
            causes.push(Cause::invalid(path, &json!(sub), &e));
        }
        return;
    }
    let internal = if fp == "spec.host" {
        "spec.nodeName"
    } else {
        fp
    };
    if !expressions.contains(&internal) {
        causes.push(Cause::unsupported(
            &format!("{path}.fieldPath"),
            &json!(internal),
            expressions,
        ));
    }
}

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn resource_field_selector(fs: &Value, path: &str, volume: bool, causes: &mut Vec<Cause>) {
    let res = str_at(fs, "resource");
    if volume && str_at(fs, "containerName").is_empty() {
        causes.push(Cause::required(&format!("{path}.containerName")));
    } else if res.is_empty() {
        causes.push(Cause::required(&format!("{path}.resource")));
    } else if !RESOURCE_FIELD_PATHS.contains(&res)
        && !res.starts_with("requests.hugepages-")
        && !res.starts_with("limits.hugepages-")
    {
        causes.push(Cause::unsupported(
            &format!("{path}.resource"),
            &json!(res),
            RESOURCE_FIELD_PATHS,
        ));
    }
}

fn volume_mounts(
    c: &Value,
    volumes: &HashMap<String, &'static str>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let devices: HashMap<&str, &str> = items(c, "volumeDevices")
        .iter()
        .map(|d| (str_at(d, "name"), str_at(d, "devicePath")))
        .collect();
    let privileged = c.pointer("/securityContext/privileged") == Some(&json!(true));
    let mut mount_points = HashSet::new();
    for (i, m) in items(c, "volumeMounts").iter().enumerate() {
        let p = format!("{path}[{i}]");
        let name = str_at(m, "name");
        let mp = str_at(m, "mountPath");
        if name.is_empty() {
            causes.push(Cause::required(&format!("{p}.name")));
        }
        if !volumes.contains_key(name) {
            causes.push(Cause::not_found(&format!("{p}.name"), &json!(name)));
        }
        if mp.is_empty() {
            causes.push(Cause::required(&format!("{p}.mountPath")));
        }
        if !mount_points.insert(mp) {
            causes.push(Cause::invalid(
                &format!("{p}.mountPath"),
                &json!(mp),
                "must be unique",
            ));
        }
        if devices.contains_key(name) {
            causes.push(Cause::invalid(
                &format!("{p}.name"),
                &json!(name),
                "must not already exist in volumeDevices",
            ));
        }
        if devices.values().any(|d| *d == mp) {
            causes.push(Cause::invalid(
                &format!("{p}.mountPath"),
                &json!(mp),
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub = str_at(m, "subPath");
        let sub_expr = str_at(m, "subPathExpr");
        if volumes.get(name) == Some(&"image") {
            for (key, v) in [("subPath", sub), ("subPathExpr", sub_expr)] {
                if !v.is_empty() {
                    causes.push(Cause::invalid(
                        &format!("{p}.{key}"),
                        &json!(v),
                        "not allowed in image volume sources",
                    ));
                }
            }
        }
        // Upstream reports these two at the list's path, without the index.
        if !sub.is_empty() {
            local_descending_path(sub, &format!("{path}.subPath"), causes);
        }
        if !sub_expr.is_empty() {
            if !sub.is_empty() {
                causes.push(Cause::invalid(
                    &format!("{p}.subPathExpr"),
                    &json!(sub_expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(sub_expr, &format!("{path}.subPathExpr"), causes);
        }
        let prop_path = format!("{path}.mountPropagation");
        if let Some(prop) = field(m, "mountPropagation") {
            let prop = prop.as_str().unwrap_or("");
            const PROPS: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            if !PROPS.contains(&prop) {
                causes.push(Cause::unsupported(&prop_path, &json!(prop), PROPS));
            }
            if prop == "Bidirectional" && !privileged {
                causes.push(Cause::forbidden(
                    &prop_path,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = field(m, "recursiveReadOnly") {
            let rro = rro.as_str().unwrap_or("");
            let rp = format!("{path}.recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if m.get("readOnly") != Some(&json!(true)) {
                        causes.push(Cause::forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    let prop = str_at(m, "mountPropagation");
                    if !prop.is_empty() && prop != "None" {
                        causes.push(Cause::forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                _ => causes.push(Cause::unsupported(
                    &rp,
                    &json!(rro),
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
}

fn volume_devices(
    c: &Value,
    volumes: &HashMap<String, &'static str>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let mounts: HashMap<&str, &str> = items(c, "volumeMounts")
        .iter()
        .map(|m| (str_at(m, "name"), str_at(m, "mountPath")))
        .collect();
    let mut paths = HashSet::new();
    let mut names = HashSet::new();
    for (i, d) in items(c, "volumeDevices").iter().enumerate() {
        let p = format!("{path}[{i}]");
        let name = str_at(d, "name");
        let dp = str_at(d, "devicePath");
        let source = volumes.get(name);
        if name.is_empty() {
            causes.push(Cause::required(&format!("{p}.name")));
        }
        if names.contains(name) {
            causes.push(Cause::invalid(
                &format!("{p}.name"),
                &json!(name),
                "must be unique",
            ));
        }
        match source {
            Some(s) if *s != "persistentVolumeClaim" && *s != "ephemeral" => {
                causes.push(Cause::invalid(
                    &format!("{p}.name"),
                    &json!(name),
                    "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
                ))
            }
            Some(_) => {}
            None => causes.push(Cause::not_found(&format!("{p}.name"), &json!(name))),
        }
        if dp.is_empty() {
            causes.push(Cause::required(&format!("{p}.devicePath")));
        }
        if paths.contains(dp) {
            causes.push(Cause::invalid(
                &format!("{p}.devicePath"),
                &json!(dp),
                "must be unique",
            ));
        }
        if !dp.is_empty() && dp.split('/').any(|s| s == "..") {
            causes.push(Cause::invalid(
                &format!("{p}.devicePath"),
                &json!(dp),
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(dp);
        }
        if mounts.contains_key(name) {
            causes.push(Cause::invalid(
                &format!("{p}.name"),
                &json!(name),
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.values().any(|m| *m == dp) {
            causes.push(Cause::invalid(
                &format!("{p}.devicePath"),
                &json!(dp),
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !name.is_empty() {
            names.insert(name);
        }
    }
}

fn resize_policy(c: &Value, restart_policy: &str, path: &str, causes: &mut Vec<Cause>) {
    let mut seen = HashSet::new();
    for (i, p) in items(c, "resizePolicy").iter().enumerate() {
        let rn = str_at(p, "resourceName");
        let rp = str_at(p, "restartPolicy");
        if !seen.insert(rn) {
            causes.push(Cause::duplicate(&format!("{path}[{i}]"), &json!(rn)));
        }
        one_of(rn, &["cpu", "memory"], path, causes);
        one_of(rp, &["NotRequired", "RestartContainer"], path, causes);
        if restart_policy == "Never" && rp != "NotRequired" {
            causes.push(Cause::invalid(
                path,
                &json!(rp),
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Probes and lifecycle handlers.

fn probes(c: &Value, grace: Option<i64>, p: &str, causes: &mut Vec<Cause>) {
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(probe) = field(c, key) else { continue };
        let pp = format!("{p}.{key}");
        handler(
            probe,
            &["exec", "httpGet", "tcpSocket", "grpc"],
            grace,
            &pp,
            causes,
        );
        for f in [
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ] {
            let n = probe.get(f).and_then(Value::as_i64).unwrap_or(0);
            if n < 0 {
                causes.push(Cause::invalid(
                    &format!("{pp}.{f}"),
                    &json!(n),
                    NEGATIVE_MSG,
                ));
            }
        }
        let tgps = field(probe, "terminationGracePeriodSeconds");
        if let Some(t) = tgps {
            if t.as_i64().unwrap_or(0) <= 0 {
                causes.push(Cause::invalid(
                    &format!("{pp}.terminationGracePeriodSeconds"),
                    t,
                    "must be greater than 0",
                ));
            }
        }
        if key == "readinessProbe" {
            if let Some(t) = tgps {
                causes.push(Cause::invalid(
                    &format!("{pp}.terminationGracePeriodSeconds"),
                    t,
                    "must not be set for readinessProbes",
                ));
            }
        } else {
            let st = probe
                .get("successThreshold")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if st != 1 {
                causes.push(Cause::invalid(
                    &format!("{pp}.successThreshold"),
                    &json!(st),
                    "must be 1",
                ));
            }
        }
    }
}

fn lifecycle(l: &Value, grace: Option<i64>, path: &str, causes: &mut Vec<Cause>) {
    for hook in ["postStart", "preStop"] {
        if let Some(h) = field(l, hook) {
            handler(
                h,
                &["exec", "httpGet", "tcpSocket", "sleep"],
                grace,
                &format!("{path}.{hook}"),
                causes,
            );
        }
    }
}

/// `validateHandler`: exactly one of `kinds`.
fn handler(h: &Value, kinds: &[&str], grace: Option<i64>, path: &str, causes: &mut Vec<Cause>) {
    let mut n = 0;
    for kind in kinds {
        let Some(a) = field(h, kind) else { continue };
        let ap = format!("{path}.{kind}");
        if n > 0 {
            causes.push(Cause::forbidden(
                &ap,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        n += 1;
        match *kind {
            "exec" => causes.extend(
                items(a, "command")
                    .is_empty()
                    .then(|| Cause::required(&format!("{ap}.command"))),
            ),
            "httpGet" => {
                if str_at(a, "path").is_empty() {
                    causes.push(Cause::required(&format!("{ap}.path")));
                }
                port_num_or_name(a.get("port"), &format!("{ap}.port"), causes);
                let scheme = str_at(a, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    causes.push(Cause::unsupported(
                        &format!("{ap}.scheme"),
                        &json!(scheme),
                        &["HTTP", "HTTPS"],
                    ));
                }
                for hd in items(a, "httpHeaders") {
                    let hn = str_at(hd, "name");
                    if hn.is_empty() || !hn.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    {
                        causes.push(Cause::invalid(
                            &format!("{ap}.httpHeaders"),
                            &json!(hn),
                            &regex_error(
                                "a valid HTTP header must consist of alphanumeric characters or '-'",
                                "[-A-Za-z0-9]+",
                                &["X-Header-Name"],
                            ),
                        ));
                    }
                }
            }
            "tcpSocket" => port_num_or_name(a.get("port"), &format!("{ap}.port"), causes),
            "grpc" => {
                let port = json!(a.get("port").and_then(Value::as_i64).unwrap_or(0));
                port_num_or_name(Some(&port), &format!("{ap}.port"), causes);
            }
            "sleep" => {
                let s = a.get("seconds").and_then(Value::as_i64).unwrap_or(0);
                if let Some(g) = grace {
                    if s < 0 || s > g {
                        causes.push(Cause::invalid(
                            &ap,
                            &json!(s),
                            &format!(
                                "must be non-negative and less than terminationGracePeriodSeconds ({g})"
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        causes.push(Cause::required_detail(path, "must specify a handler type"));
    }
}

// ---------------------------------------------------------------------------------------------
// Resources.

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && qualified_name_errors(&format!("requests.{name}")).is_empty()
}

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// `validateContainerResourceName`.
fn container_resource_name(name: &str, path: &str, causes: &mut Vec<Cause>) {
    let qn = qualified_name_errors(name);
    let no_slash = !name.contains('/');
    if !qn.is_empty() {
        for e in qn {
            causes.push(Cause::invalid(path, &json!(name), &e));
        }
    } else if no_slash && !STANDARD_RESOURCES.contains(&name) && !is_hugepages(name) {
        causes.push(Cause::invalid(
            path,
            &json!(name),
            "must be a standard resource type or fully qualified",
        ));
    }
    if no_slash {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepages(name) {
            causes.push(Cause::invalid(
                path,
                &json!(name),
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && !is_extended_resource(name) {
        causes.push(Cause::invalid(
            path,
            &json!(name),
            "doesn't follow extended resource name standard",
        ));
    }
}

/// One quantity of a resource list: parses, not negative, whole for extended resources.
fn resource_quantity(
    name: &str,
    v: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) -> Option<Quantity> {
    let Some(q) = quantity(v) else {
        causes.push(Cause::invalid(path, &json!(quantity_text(v)), PARSE_ERROR));
        return None;
    };
    if q.is_negative() {
        causes.push(Cause::invalid(path, &json!(quantity_text(v)), NEGATIVE_MSG));
    }
    if is_extended_resource(name) && q.milli_value() % 1000 != 0 {
        causes.push(Cause::invalid(
            path,
            &json!(quantity_text(v)),
            "must be an integer",
        ));
    }
    Some(q)
}

/// `ValidateContainerResourceRequirements`.
fn resource_requirements(res: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(res) = res.filter(|r| r.is_object()) else {
        return;
    };
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    let empty = Map::new();
    let limits = res
        .get("limits")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let requests = res
        .get("requests")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let (mut lim_cpu_mem, mut req_cpu_mem, mut hugepages) = (false, false, false);
    let mut lim_q = HashMap::new();
    for (name, v) in limits {
        let p = format!("{lim_path}[{name}]");
        container_resource_name(name, &p, causes);
        if let Some(q) = resource_quantity(name, v, &p, causes) {
            lim_q.insert(name.as_str(), (q, quantity_text(v)));
        }
        hugepages |= is_hugepages(name);
        lim_cpu_mem |= name == "cpu" || name == "memory";
    }
    for (name, v) in requests {
        let p = format!("{req_path}[{name}]");
        container_resource_name(name, &p, causes);
        let q = resource_quantity(name, v, &p, causes);
        let overcommit = is_native_resource(name) && !is_hugepages(name);
        match (q, lim_q.get(name.as_str())) {
            (Some(q), Some((l, ltext))) => {
                if q.milli_value() != l.milli_value() && !overcommit {
                    causes.push(Cause::invalid(
                        &req_path,
                        &json!(quantity_text(v)),
                        &format!("must be equal to {name} limit of {ltext}"),
                    ));
                } else if q.milli_value() > l.milli_value() {
                    causes.push(Cause::invalid(
                        &req_path,
                        &json!(quantity_text(v)),
                        &format!("must be less than or equal to {name} limit of {ltext}"),
                    ));
                }
            }
            (_, None) if !overcommit && !limits.contains_key(name) => {
                causes.push(Cause::required_detail(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            _ => {}
        }
        hugepages |= is_hugepages(name);
        req_cpu_mem |= name == "cpu" || name == "memory";
    }
    if !lim_cpu_mem && !req_cpu_mem && hugepages {
        causes.push(Cause::forbidden(path, "HugePages require cpu or memory"));
    }
}

// ---------------------------------------------------------------------------------------------
// Security contexts.

fn id_range(sc: &Value, key: &str, path: &str, causes: &mut Vec<Cause>) {
    if let Some(v) = field(sc, key) {
        let n = v.as_i64().unwrap_or(-1);
        if !(0..=MAX_INT32).contains(&n) {
            causes.push(Cause::invalid(
                &format!("{path}.{key}"),
                v,
                &range_msg(0, MAX_INT32),
            ));
        }
    }
}

fn pod_security_context(sc: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(sc) = sc.filter(|s| s.is_object()) else {
        return;
    };
    for key in ["fsGroup", "runAsUser", "runAsGroup"] {
        id_range(sc, key, path, causes);
    }
    for (i, g) in items(sc, "supplementalGroups").iter().enumerate() {
        let n = g.as_i64().unwrap_or(-1);
        if !(0..=MAX_INT32).contains(&n) {
            causes.push(Cause::invalid(
                &format!("{path}.supplementalGroups[{i}]"),
                g,
                &range_msg(0, MAX_INT32),
            ));
        }
    }
    if let Some(p) = field(sc, "fsGroupChangePolicy") {
        let p = p.as_str().unwrap_or("");
        if p != "Always" && p != "OnRootMismatch" {
            causes.push(Cause::unsupported(
                &format!("{path}.fsGroupChangePolicy"),
                &json!(p),
                &["Always", "OnRootMismatch"],
            ));
        }
    }
    seccomp_profile(sc, path, causes);
}

fn seccomp_profile(sc: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(sp) = field(sc, "seccompProfile") else {
        return;
    };
    let p = format!("{path}.seccompProfile");
    let t = str_at(sp, "type");
    match t {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => causes.push(Cause::required_detail(
            &format!("{p}.type"),
            "type is required when seccompProfile is set",
        )),
        _ => causes.push(Cause::unsupported(
            &format!("{p}.type"),
            &json!(t),
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    if t == "Localhost" {
        match field(sp, "localhostProfile") {
            None => causes.push(Cause::required_detail(
                &format!("{p}.localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(lp) => local_descending_path(
                lp.as_str().unwrap_or(""),
                &format!("{p}.localhostProfile"),
                causes,
            ),
        }
    }
}

fn container_security_context(sc: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(sc) = sc.filter(|s| s.is_object()) else {
        return;
    };
    for key in ["runAsUser", "runAsGroup"] {
        id_range(sc, key, path, causes);
    }
    if let Some(pm) = field(sc, "procMount") {
        let pm = pm.as_str().unwrap_or("");
        if pm != "Default" && pm != "Unmasked" {
            causes.push(Cause::unsupported(
                &format!("{path}.procMount"),
                &json!(pm),
                &["Default", "Unmasked"],
            ));
        }
    }
    let escalation = sc.get("allowPrivilegeEscalation") == Some(&json!(false));
    if escalation && sc.get("privileged") == Some(&json!(true)) {
        causes.push(Cause::invalid(
            path,
            sc,
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    let sys_admin = sc
        .pointer("/capabilities/add")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN" || c == "SYS_ADMIN"));
    if escalation && sys_admin {
        causes.push(Cause::invalid(
            path,
            sc,
            "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
        ));
    }
    seccomp_profile(sc, path, causes);
}

// ---------------------------------------------------------------------------------------------
// Scheduling: tolerations, affinity, DNS, topology spread.

/// `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[Value], path: &str, causes: &mut Vec<Cause>) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let key = str_at(t, "key");
        let op = str_at(t, "operator");
        let value = str_at(t, "value");
        let effect = str_at(t, "effect");
        if !key.is_empty() {
            for e in qualified_name_errors(key) {
                causes.push(Cause::invalid(&format!("{p}.key"), &json!(key), &e));
            }
        }
        if key.is_empty() && op != "Exists" {
            causes.push(Cause::invalid(
                &format!("{p}.operator"),
                &json!(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if field(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            causes.push(Cause::invalid(
                &format!("{p}.effect"),
                &json!(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let errs = label_value_errors(value);
                if !errs.is_empty() {
                    causes.push(Cause::invalid(
                        &format!("{p}.operator"),
                        &json!(value),
                        &errs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    causes.push(Cause::invalid(
                        &format!("{p}.operator"),
                        &json!(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            _ => causes.push(Cause::unsupported(
                &format!("{p}.operator"),
                &json!(op),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            causes.push(Cause::unsupported(
                &format!("{p}.effect"),
                &json!(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

fn dns_config(spec: &Value, policy: &str, path: &str, causes: &mut Vec<Cause>) {
    let cfg = field(spec, "dnsConfig");
    if policy == "None" {
        let Some(cfg) = cfg else {
            causes.push(Cause::required_detail(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return;
        };
        if items(cfg, "nameservers").is_empty() {
            causes.push(Cause::required_detail(
                &format!("{path}.nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
            return;
        }
    }
    let Some(cfg) = cfg else { return };
    let ns = items(cfg, "nameservers");
    if ns.len() > 3 {
        causes.push(Cause::invalid(
            &format!("{path}.nameservers"),
            &json!(ns),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        let s = n.as_str().unwrap_or("");
        if s.parse::<std::net::IpAddr>().is_err() {
            causes.push(Cause::invalid(
                &format!("{path}.nameservers[{i}]"),
                &json!(s),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    let searches = items(cfg, "searches");
    if searches.len() > 32 {
        causes.push(Cause::invalid(
            &format!("{path}.searches"),
            &json!(searches),
            "must not have more than 32 search paths",
        ));
    }
    let joined: Vec<&str> = searches.iter().map(|s| s.as_str().unwrap_or("")).collect();
    if joined.join(" ").len() > 2048 {
        causes.push(Cause::invalid(
            &format!("{path}.searches"),
            &json!(searches),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, o) in items(cfg, "options").iter().enumerate() {
        if str_at(o, "name").is_empty() {
            causes.push(Cause::required_detail(
                &format!("{path}.options[{i}]"),
                "must not be empty",
            ));
        }
    }
}

fn node_selector_requirement(rq: &Value, path: &str, causes: &mut Vec<Cause>) {
    let op = str_at(rq, "operator");
    let values = items(rq, "values");
    match op {
        "In" | "NotIn" => {
            if values.is_empty() {
                causes.push(Cause::required_detail(
                    &format!("{path}.values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                causes.push(Cause::forbidden(
                    &format!("{path}.values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                causes.push(Cause::required_detail(
                    &format!("{path}.values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        _ => causes.push(Cause::invalid(
            &format!("{path}.operator"),
            &json!(op),
            "not a valid selector operator",
        )),
    }
    let key = str_at(rq, "key");
    for e in qualified_name_errors(key) {
        causes.push(Cause::invalid(&format!("{path}.key"), &json!(key), &e));
    }
    for (i, v) in values.iter().enumerate() {
        let v = v.as_str().unwrap_or("");
        for e in label_value_errors(v) {
            causes.push(Cause::invalid(
                &format!("{path}.values[{i}]"),
                &json!(v),
                &e,
            ));
        }
    }
}

fn node_selector_term(term: &Value, path: &str, causes: &mut Vec<Cause>) {
    for (j, rq) in items(term, "matchExpressions").iter().enumerate() {
        node_selector_requirement(rq, &format!("{path}.matchExpressions[{j}]"), causes);
    }
}

fn pod_affinity_term(term: &Value, path: &str, causes: &mut Vec<Cause>) {
    for ns in items(term, "namespaces") {
        let ns = ns.as_str().unwrap_or("");
        for e in name_errors(ns, NameRule::Label) {
            causes.push(Cause::invalid(&format!("{path}.namespace"), &json!(ns), &e));
        }
    }
    let tk = str_at(term, "topologyKey");
    if tk.is_empty() {
        causes.push(Cause::required_detail(
            &format!("{path}.topologyKey"),
            "can not be empty",
        ));
    }
    for e in qualified_name_errors(tk) {
        causes.push(Cause::invalid(
            &format!("{path}.topologyKey"),
            &json!(tk),
            &e,
        ));
    }
}

fn weight(w: &Value, path: &str, causes: &mut Vec<Cause>) {
    let n = w.get("weight").and_then(Value::as_i64).unwrap_or(0);
    if !(1..=100).contains(&n) {
        causes.push(Cause::invalid(
            &format!("{path}.weight"),
            &json!(n),
            "must be in the range 1-100",
        ));
    }
}

fn affinity(a: &Value, path: &str, causes: &mut Vec<Cause>) {
    const REQ: &str = "requiredDuringSchedulingIgnoredDuringExecution";
    const PREF: &str = "preferredDuringSchedulingIgnoredDuringExecution";
    if let Some(na) = field(a, "nodeAffinity") {
        let np = format!("{path}.nodeAffinity");
        if let Some(req) = field(na, REQ) {
            let tp = format!("{np}.{REQ}.nodeSelectorTerms");
            let terms = items(req, "nodeSelectorTerms");
            if terms.is_empty() {
                causes.push(Cause::required_detail(
                    &tp,
                    "must have at least one node selector term",
                ));
            }
            for (i, t) in terms.iter().enumerate() {
                node_selector_term(t, &format!("{tp}[{i}]"), causes);
            }
        }
        for (i, t) in items(na, PREF).iter().enumerate() {
            let tp = format!("{np}.{PREF}[{i}]");
            weight(t, &tp, causes);
            if let Some(pref) = field(t, "preference") {
                // Invalid label values are tolerated in preferred terms.
                for (j, rq) in items(pref, "matchExpressions").iter().enumerate() {
                    let mut sub = Vec::new();
                    node_selector_requirement(
                        rq,
                        &format!("{tp}.preference.matchExpressions[{j}]"),
                        &mut sub,
                    );
                    causes.extend(sub.into_iter().filter(|c| !c.field.contains(".values[")));
                }
            }
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = field(a, kind) else { continue };
        let kp = format!("{path}.{kind}");
        for (i, t) in items(pa, REQ).iter().enumerate() {
            pod_affinity_term(t, &format!("{kp}.{REQ}[{i}]"), causes);
        }
        for (i, t) in items(pa, PREF).iter().enumerate() {
            let tp = format!("{kp}.{PREF}[{i}]");
            weight(t, &tp, causes);
            if let Some(term) = field(t, "podAffinityTerm") {
                pod_affinity_term(term, &format!("{tp}.podAffinityTerm"), causes);
            }
        }
    }
}

fn topology_spread(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let list = items(spec, "topologySpreadConstraints");
    for (i, c) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let skew = c.get("maxSkew").and_then(Value::as_i64).unwrap_or(0);
        if skew <= 0 {
            causes.push(Cause::invalid(
                &format!("{p}.maxSkew"),
                &json!(skew),
                "must be greater than zero",
            ));
        }
        let tk = str_at(c, "topologyKey");
        if tk.is_empty() {
            causes.push(Cause::required_detail(
                &format!("{p}.topologyKey"),
                "can not be empty",
            ));
        }
        let wu = str_at(c, "whenUnsatisfiable");
        if wu != "DoNotSchedule" && wu != "ScheduleAnyway" {
            causes.push(Cause::unsupported(
                &format!("{p}.whenUnsatisfiable"),
                &json!(wu),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if list[i + 1..]
            .iter()
            .any(|o| str_at(o, "topologyKey") == tk && str_at(o, "whenUnsatisfiable") == wu)
        {
            causes.push(Cause::duplicate(
                &format!("{p}.{{topologyKey, whenUnsatisfiable}}"),
                &json!(format!("{{{tk}, {wu}}}")),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::validation::by_kind;

    fn validate(plural: &str, obj: &Value, causes: &mut Vec<Cause>) {
        by_kind::validate("", plural, obj, causes);
    }

    fn validate_update(plural: &str, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        by_kind::validate_update("", plural, new, old, causes);
    }
    use crate::apiserver::registry::defaults::pod_defaults;

    fn pod(spec: Value) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec});
        pod_defaults(&mut p);
        p
    }

    fn errors(p: &Value) -> Vec<String> {
        let mut causes = Vec::new();
        validate("pods", p, &mut causes);
        causes.iter().map(Cause::display).collect()
    }

    fn update_errors(new: &Value, old: &Value) -> Vec<String> {
        let mut causes = Vec::new();
        validate_update("pods", new, old, &mut causes);
        causes.iter().map(Cause::display).collect()
    }

    fn nginx() -> Value {
        pod(json!({"containers": [{"name": "nginx", "image": "nginx"}]}))
    }

    fn with(mut p: Value, pointer: &str, v: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        p.pointer_mut(parent).unwrap()[key] = v;
        p
    }

    #[test]
    fn valid_pods() {
        assert_eq!(errors(&nginx()), Vec::<String>::new());
        let full = pod(json!({
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "app-config", "items": [{"key": "a.conf", "path": "a.conf"}]}},
                {"name": "sec", "secret": {"secretName": "s"}},
                {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "c"}},
                {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}, {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
                {"name": "scratch"}
            ],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]},
                               {"name": "sidecar", "image": "envoy", "restartPolicy": "Always", "readinessProbe": {"tcpSocket": {"port": 9901}}}],
            "containers": [{
                "name": "app", "image": "example.com/app:1.0",
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090, "protocol": "UDP"}, {"containerPort": 443, "hostPort": 8443}],
                "env": [
                    {"name": "PLAIN", "value": "1"},
                    {"name": "my.env-name", "value": "x"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "a.conf"}}},
                    {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password", "optional": true}}}
                ],
                "envFrom": [{"configMapRef": {"name": "app-config"}}, {"prefix": "S_", "secretRef": {"name": "s"}}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "128Mi", "example.com/gpu": "1"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/app", "readOnly": true, "subPath": "a"}, {"name": "proj", "mountPath": "/var/run/secrets/x"}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 3},
                "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}},
                "startupProbe": {"grpc": {"port": 9090}},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}, "postStart": {"exec": {"command": ["true"]}}},
                "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
            }],
            "restartPolicy": "OnFailure",
            "serviceAccountName": "builder",
            "nodeSelector": {"kubernetes.io/os": "linux", "disk": ""},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}, {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, {"operator": "Exists"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}},
                         "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "x"}}}}]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
            "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["svc.cluster.local"], "options": [{"name": "ndots", "value": "2"}]},
            "hostname": "web-0", "subdomain": "web", "activeDeadlineSeconds": 600, "priorityClassName": "high",
            "securityContext": {"fsGroup": 2000, "runAsNonRoot": true},
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["foo.local"]}],
            "imagePullSecrets": [{"name": "regcred"}],
            "os": {"name": "linux"}
        }));
        assert_eq!(errors(&full), Vec::<String>::new());
        let host_net = pod(
            json!({"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}),
        );
        assert_eq!(errors(&host_net), Vec::<String>::new());
        // A pod template (deployment-style) with no defaults beyond the spec's.
        let mut spec = json!({"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]});
        crate::apiserver::registry::defaults::pod_spec_defaults(&mut spec);
        let mut causes = Vec::new();
        validate_pod_spec(Some(&spec), "spec.template.spec", &mut causes);
        assert!(causes.is_empty(), "{causes:?}");
    }

    #[test]
    fn container_errors() {
        assert_eq!(
            errors(&pod(json!({"containers": []}))),
            ["spec.containers: Required value"]
        );
        assert_eq!(errors(&pod(json!({}))), ["spec.containers: Required value"]);
        let p = pod(
            json!({"containers": [{"name": "a", "image": ""}, {"name": "a", "image": "x"}, {"name": "Bad_Name", "image": "x"}]}),
        );
        assert_eq!(
            errors(&p),
            [
                "spec.containers[0].image: Required value",
                "spec.containers[1].name: Duplicate value: \"a\"",
                "spec.containers[2].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ]
        );
        let p = pod(
            json!({"initContainers": [{"name": "a", "image": "x"}], "containers": [{"name": "a", "image": "x"}]}),
        );
        assert_eq!(
            errors(&p),
            ["spec.initContainers[0].name: Duplicate value: \"a\""]
        );
        let p = pod(json!({"containers": [{"name": "a", "image": " nginx"}]}));
        assert_eq!(errors(&p), ["spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace"]);
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Sometimes", "terminationMessagePolicy": "Nope"}]}),
        );
        assert_eq!(
            errors(&p),
            [
                "spec.containers[0].terminationMessagePolicy: Unsupported value: \"Nope\": supported values: \"File\", \"FallbackToLogsOnError\"",
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            ]
        );
    }

    #[test]
    fn port_errors() {
        let p = pod(json!({"containers": [{"name": "a", "image": "x", "ports": [
            {"containerPort": 0}, {"containerPort": 70000, "hostPort": -1}, {"containerPort": 80, "protocol": "HTTP"},
            {"name": "web", "containerPort": 81}, {"name": "web", "containerPort": 82}, {"name": "Web_1", "containerPort": 83},
            {"name": "this-is-too-long-a-name", "containerPort": 84}, {"name": "1234", "containerPort": 85}
        ]}]}));
        assert_eq!(
            errors(&p),
            [
                "spec.containers[0].ports[0].containerPort: Required value",
                "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[2].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[4].name: Duplicate value: \"web\"",
                "spec.containers[0].ports[5].name: Invalid value: \"Web_1\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.containers[0].ports[6].name: Invalid value: \"this-is-too-long-a-name\": must be no more than 15 characters",
                "spec.containers[0].ports[7].name: Invalid value: \"1234\": must contain at least one letter (a-z)",
            ]
        );
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 80}]}, {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 80}]}]}),
        );
        assert_eq!(
            errors(&p),
            ["spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//80\""]
        );
    }

    #[test]
    fn env_errors() {
        let p = pod(json!({"containers": [{"name": "a", "image": "x", "env": [
            {"name": ""}, {"name": "A=B"}, {"name": "X", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "Y", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "Z", "valueFrom": {}},
            {"name": "W", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}},
            {"name": "V", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "bad key"}}}
        ]}]}));
        assert_eq!(
            errors(&p),
            [
                "spec.containers[0].env[0].name: Required value",
                "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "spec.containers[0].env[2].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
                "spec.containers[0].env[3].valueFrom: Invalid value: \"\": may not have more than one field specified at a time",
                "spec.containers[0].env[4].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                "spec.containers[0].env[5].valueFrom.fieldRef.fieldPath: Unsupported value: \"status.phase\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
                "spec.containers[0].env[6].valueFrom.configMapKeyRef.key: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ]
        );
    }

    #[test]
    fn resource_errors() {
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2", "memory": "-1Mi", "gpu": "1"}}}]}),
        );
        assert_eq!(
            errors(&p),
            [
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[0].resources.requests[memory]: Invalid value: \"-1Mi\": must be greater than or equal to 0",
                "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
                "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            ]
        );
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "abc"}}}]}),
        );
        let e = errors(&p);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(
            e[0],
            format!(
                "spec.containers[0].resources.limits[cpu]: Invalid value: \"abc\": {PARSE_ERROR}"
            )
        );
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"example.com/gpu": "1"}}}]}),
        );
        assert_eq!(errors(&p), ["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"]);
    }

    #[test]
    fn volume_errors() {
        let p = pod(json!({"volumes": [
            {"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}},
            {"name": "a", "emptyDir": {}},
            {"name": "b", "hostPath": {"path": ""}},
            {"name": "c", "configMap": {}},
            {"name": "d", "secret": {"secretName": "s", "defaultMode": 1000}}
        ], "containers": [{"name": "c", "image": "x", "volumeMounts": [
            {"name": "a", "mountPath": "/a"}, {"name": "missing", "mountPath": "/a"}, {"name": "a", "mountPath": ""}
        ]}]}));
        assert_eq!(
            errors(&p),
            [
                "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[2].hostPath.path: Required value",
                "spec.volumes[3].configMap.name: Required value",
                "spec.volumes[4].secret.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.containers[0].volumeMounts[1].name: Not found: \"missing\"",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/a\": must be unique",
                "spec.containers[0].volumeMounts[2].mountPath: Required value",
            ]
        );
        // A bare volume is defaulted to emptyDir; without defaults it names no type.
        let mut causes = Vec::new();
        validate_volumes(
            &json!({"volumes": [{"name": "v"}]}),
            "spec.volumes",
            &mut causes,
        );
        assert_eq!(
            causes[0].display(),
            "spec.volumes[0]: Required value: must specify a volume type"
        );
    }

    #[test]
    fn probe_errors() {
        let p = pod(json!({"containers": [{"name": "a", "image": "x",
            "livenessProbe": {"successThreshold": 2},
            "readinessProbe": {"exec": {"command": ["x"]}, "httpGet": {"port": 80}, "periodSeconds": -1},
            "startupProbe": {"tcpSocket": {"port": 0}}}]}));
        assert_eq!(
            errors(&p),
            [
                "spec.containers[0].livenessProbe: Required value: must specify a handler type",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].startupProbe.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive",
            ]
        );
        let p = pod(
            json!({"initContainers": [{"name": "i", "image": "x", "livenessProbe": {"exec": {"command": ["x"]}}}], "containers": [{"name": "a", "image": "x"}]}),
        );
        assert_eq!(errors(&p), ["spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"]);
    }

    #[test]
    fn pod_level_errors() {
        let p = with(nginx(), "/spec/restartPolicy", json!("Sometimes"));
        assert_eq!(errors(&p), ["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""]);
        let p = with(nginx(), "/spec/dnsPolicy", json!("None"));
        assert_eq!(
            errors(&p),
            ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
        );
        let p = with(nginx(), "/spec/dnsPolicy", json!("Cluster"));
        assert_eq!(errors(&p), ["spec.dnsPolicy: Unsupported value: \"Cluster\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""]);
        let p = with(nginx(), "/spec/activeDeadlineSeconds", json!(0));
        assert_eq!(errors(&p), ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]);
        let p = with(nginx(), "/spec/nodeSelector", json!({"bad key": "v"}));
        assert_eq!(errors(&p).len(), 1);
        assert!(errors(&p)[0]
            .starts_with("spec.nodeSelector: Invalid value: \"bad key\": name part must consist"));
        let p = with(
            nginx(),
            "/spec/tolerations",
            json!([
                {"key": "k", "operator": "Exists", "value": "v"},
                {"key": "k", "operator": "Maybe"},
                {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
                {"key": "k", "effect": "Never"},
                {"operator": "Equal", "value": "x"}
            ]),
        );
        assert_eq!(
            errors(&p),
            [
                "spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
                "spec.tolerations[1].operator: Unsupported value: \"Maybe\": supported values: \"Equal\", \"Exists\"",
                "spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
                "spec.tolerations[3].effect: Unsupported value: \"Never\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                "spec.tolerations[4].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ]
        );
        let p = with(nginx(), "/spec/hostname", json!("Web_0"));
        assert_eq!(errors(&p).len(), 1);
        let p = with(nginx(), "/spec/serviceAccountName", json!("Bad"));
        assert!(errors(&p)[0].starts_with(
            "spec.serviceAccountName: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain"
        ));
    }

    #[test]
    fn odd_json_never_panics() {
        for spec in [
            json!(null),
            json!([]),
            json!("x"),
            json!({"containers": "x"}),
            json!({"containers": [1, null, "x"]}),
            json!({"containers": [{"name": 1, "image": [], "ports": [null, 5], "env": "x", "resources": {"limits": 5, "requests": {"cpu": null}}}], "volumes": [null, {"name": {}}], "tolerations": [1], "affinity": 1, "dnsConfig": []}),
        ] {
            let p = json!({"spec": spec});
            let _ = errors(&p);
            let _ = update_errors(&p, &nginx());
            let _ = update_errors(&nginx(), &p);
        }
    }

    #[test]
    fn updates() {
        let old = nginx();
        // No-ops, including absent vs empty vs null.
        assert_eq!(update_errors(&old, &old), Vec::<String>::new());
        let mut same = old.clone();
        same["spec"]["volumes"] = json!([]);
        same["spec"]["nodeSelector"] = json!(null);
        same["spec"]["containers"][0]["args"] = json!([]);
        same["spec"]["hostNetwork"] = json!(false);
        assert_eq!(update_errors(&same, &old), Vec::<String>::new());
        // Metadata and image changes.
        let mut p = old.clone();
        p["metadata"]["labels"] = json!({"a": "b"});
        p["metadata"]["annotations"] = json!({"x": "y"});
        p["spec"]["containers"][0]["image"] = json!("nginx:1.25");
        assert_eq!(update_errors(&p, &old), Vec::<String>::new());
        // Deadlines, tolerations, grace.
        let p = with(old.clone(), "/spec/activeDeadlineSeconds", json!(100));
        assert_eq!(update_errors(&p, &old), Vec::<String>::new());
        let q = with(old.clone(), "/spec/activeDeadlineSeconds", json!(200));
        assert_eq!(update_errors(&q, &p), ["spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]);
        assert_eq!(update_errors(&old, &p), ["spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"]);
        let t1 = with(
            old.clone(),
            "/spec/tolerations",
            json!([{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]),
        );
        let t2 = with(
            old.clone(),
            "/spec/tolerations",
            json!([{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}, {"key": "b", "operator": "Exists"}]),
        );
        assert_eq!(update_errors(&t1, &old), Vec::<String>::new());
        assert_eq!(update_errors(&t2, &t1), Vec::<String>::new());
        assert_eq!(update_errors(&old, &t1), ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]);
        let neg = with(
            old.clone(),
            "/spec/terminationGracePeriodSeconds",
            json!(-1),
        );
        let one = with(old.clone(), "/spec/terminationGracePeriodSeconds", json!(1));
        assert_eq!(update_errors(&one, &neg), Vec::<String>::new());
        let forbidden = format!("spec: Forbidden: pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}");
        assert_eq!(update_errors(&one, &old), std::slice::from_ref(&forbidden));
        // Gates: removals only.
        let gated = with(old.clone(), "/spec/schedulingGates", json!([{"name": "a"}]));
        assert_eq!(update_errors(&old, &gated), Vec::<String>::new());
        assert_eq!(update_errors(&gated, &old), ["spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'a'"]);
        // Everything else is forbidden.
        let p = with(
            old.clone(),
            "/spec/containers/0/ports",
            json!([{"containerPort": 81, "protocol": "TCP"}]),
        );
        assert_eq!(update_errors(&p, &old), std::slice::from_ref(&forbidden));
        let p = with(old.clone(), "/spec/nodeName", json!("node-b"));
        let q = with(old.clone(), "/spec/nodeName", json!("node-a"));
        assert_eq!(update_errors(&p, &q), std::slice::from_ref(&forbidden));
        let p = with(
            old.clone(),
            "/spec/containers/0/resources",
            json!({"requests": {"cpu": "100m"}}),
        );
        assert_eq!(update_errors(&p, &old), [forbidden]);
        let mut p = old.clone();
        p["spec"]["containers"] =
            json!([{"name": "nginx", "image": "nginx"}, {"name": "b", "image": "b"}]);
        assert_eq!(
            update_errors(&p, &old),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        // Pod templates: nothing is immutable.
        let mut causes = Vec::new();
        validate_update(
            "podtemplates",
            &json!({"template": {}}),
            &json!({"template": {"spec": {}}}),
            &mut causes,
        );
        assert!(causes.is_empty());
    }
}
