//! The remaining kinds: ConfigMaps, Secrets, Namespaces, Nodes, ServiceAccounts, RBAC, Ingress, PVCs/PVs,
//! PriorityClasses, Leases, and a few more (Endpoints, EndpointSlices, ResourceQuotas, NetworkPolicies,
//! StorageClasses, PodDisruptionBudgets, HorizontalPodAutoscalers).
//!
//! Each function follows upstream's `ValidateX` / `ValidateXUpdate` (pkg/apis/*/validation), with its field
//! paths and messages, including the Go `%#v` renderings upstream prints for non-string values. Rules that
//! depend on a default upstream applies and rkube does not (yet) are tolerant of the field being absent,
//! so an object upstream accepts is never rejected here.
//!
//! The helpers shared with the other rooms (IPs, CIDRs, quantities, label selectors, Go value
//! renderings) are in `fields.rs`.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::apiserver::registry::validation::fields::*;
use crate::apiserver::registry::validation::{
    label_value_errors, name_errors, qualified_name_errors, NameRule,
};
use crate::apiserver::status::Cause;
use crate::apiserver::wire::quantity::Quantity;

/// IngressClass updates: `spec.controller` is immutable, then the class's own rules.
pub fn ingress_class_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (n, o) = (
        str_at(spec(new), "controller"),
        str_at(spec(old), "controller"),
    );
    if n != o {
        causes.push(Cause::immutable("spec.controller", &json!(n)));
    }
    ingress_class(new, causes);
}

/// EndpointSlice updates: `addressType` is immutable.
pub fn endpoint_slice_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (n, o) = (str_at(new, "addressType"), str_at(old, "addressType"));
    if n != o {
        causes.push(Cause::immutable("addressType", &json!(n)));
    }
}

// ---------------------------------------------------------------------------------------------------
// ConfigMaps and Secrets
// ---------------------------------------------------------------------------------------------------

/// Upstream's limit on the data a ConfigMap or Secret holds (`core.MaxSecretSize`).
const MAX_DATA_BYTES: usize = 1024 * 1024;

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// `validation.IsConfigMapKey`.
pub(crate) fn config_key_errors(k: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if k.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let valid = !k.is_empty()
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !valid {
        errs.push(CONFIG_KEY_MSG.to_string());
    }
    if k == "." {
        errs.push("must not be '.'".into());
    } else if k == ".." {
        errs.push("must not be '..'".into());
    } else if k.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

/// The decoded length of a base64 `[]byte` field.
fn decoded_len(v: &Value) -> usize {
    use base64::Engine;
    let s = v.as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(|b| b.len())
        .unwrap_or(s.len() / 4 * 3)
}

fn decoded(v: Option<&Value>) -> Option<Vec<u8>> {
    use base64::Engine;
    let s = v?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

pub fn configmap(obj: &Value, causes: &mut Vec<Cause>) {
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    let mut total = 0usize;
    for (k, v) in data.into_iter().flatten() {
        let field = format!("data[{k}]");
        for e in config_key_errors(k) {
            causes.push(Cause::invalid(&field, &json!(k), &e));
        }
        if binary.is_some_and(|b| b.contains_key(k)) {
            causes.push(Cause::invalid(
                &field,
                &json!(k),
                "duplicate of key present in binaryData",
            ));
        }
        total += v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary.into_iter().flatten() {
        for e in config_key_errors(k) {
            causes.push(Cause::invalid(&format!("binaryData[{k}]"), &json!(k), &e));
        }
        total += decoded_len(v);
    }
    if total > MAX_DATA_BYTES {
        // Upstream reports the whole object, whose path prints as "[]".
        causes.push(Cause::too_long("[]", MAX_DATA_BYTES));
    }
}

/// The `immutable: true` rules shared by ConfigMaps and Secrets.
pub fn immutable_data(new: &Value, old: &Value, fields: &[&str], causes: &mut Vec<Cause>) {
    if old.get("immutable") != Some(&json!(true)) {
        return;
    }
    if new.get("immutable") != Some(&json!(true)) {
        causes.push(Cause::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        if !same(new.get(*f), old.get(*f)) {
            causes.push(Cause::forbidden(
                f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

pub fn secret(obj: &Value, causes: &mut Vec<Cause>) {
    let data = obj.get("data").and_then(Value::as_object);
    let mut total = 0usize;
    for (k, v) in data.into_iter().flatten() {
        for e in config_key_errors(k) {
            causes.push(Cause::invalid(&format!("data[{k}]"), &json!(k), &e));
        }
        total += decoded_len(v);
    }
    if total > MAX_DATA_BYTES {
        causes.push(Cause::too_long("data", MAX_DATA_BYTES));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    match str_at(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                causes.push(Cause::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                ));
            }
        }
        "kubernetes.io/dockercfg" => docker_json(data, ".dockercfg", causes),
        "kubernetes.io/dockerconfigjson" => docker_json(data, ".dockerconfigjson", causes),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            causes.push(Cause::required("data[username]"));
            causes.push(Cause::required("data[password]"));
        }
        "kubernetes.io/ssh-auth" => {
            let key = decoded(data.and_then(|d| d.get("ssh-privatekey")));
            if key.is_none_or(|k| k.is_empty()) {
                causes.push(Cause::required("data[ssh-privatekey]"));
            }
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    causes.push(Cause::required(&format!("data[{k}]")));
                }
            }
        }
        _ => {}
    }
}

/// Docker config secrets: the key is required and its content must be a JSON object.
fn docker_json(data: Option<&serde_json::Map<String, Value>>, key: &str, causes: &mut Vec<Cause>) {
    let field = format!("data[{key}]");
    let Some(raw) = data.and_then(|d| d.get(key)) else {
        causes.push(Cause::required(&field));
        return;
    };
    let bytes = decoded(Some(raw)).unwrap_or_default();
    if let Some(err) = go_json_object_error(&bytes) {
        causes.push(Cause::invalid(
            &field,
            &json!("<secret contents redacted>"),
            &err,
        ));
    }
}

/// Go's `json.Unmarshal(b, &map[string]interface{}{})` error text, for the common failures.
fn go_json_object_error(b: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(b) {
        Ok(Value::Object(_)) => None,
        Ok(other) => {
            let kind = match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                _ => return None, // null unmarshals into a map without error
            };
            Some(format!(
                "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            ))
        }
        Err(e) if e.is_eof() => Some("unexpected end of JSON input".into()),
        Err(e) => {
            // serde reports 1-based line/column; find the offending character for Go's wording.
            let text = String::from_utf8_lossy(b);
            let offset: usize = text
                .lines()
                .take(e.line().saturating_sub(1))
                .map(|l| l.len() + 1)
                .sum::<usize>()
                + e.column().saturating_sub(1);
            let c = text
                .get(offset.min(text.len())..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or(' ');
            let context = if e.to_string().starts_with("trailing characters") {
                "after top-level value"
            } else {
                "looking for beginning of value"
            };
            Some(format!("invalid character {} {context}", go_char(c)))
        }
    }
}

/// Go's `quoteChar`: `'x'`, with `'\''` and `'"'` escaped as Go does.
fn go_char(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '"' => "'\"'".into(),
        c if c.is_control() => format!("{:?}", c),
        c => format!("'{c}'"),
    }
}

pub fn secret_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (nt, ot) = (str_at(new, "type"), str_at(old, "type"));
    if nt != ot {
        causes.push(Cause::immutable("type", &json!(nt)));
    }
    // stringData was merged into data by defaulting before validation, as upstream notes.
    immutable_data(new, old, &["data"], causes);
}

// ---------------------------------------------------------------------------------------------------
// Namespaces and Nodes
// ---------------------------------------------------------------------------------------------------

/// `validateFinalizerName` for namespace spec finalizers.
fn finalizer_causes(f: &str, field: &str, causes: &mut Vec<Cause>) {
    for e in qualified_name_errors(f) {
        causes.push(Cause::invalid(field, &json!(f), &e));
    }
    if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion") {
        causes.push(Cause::invalid(
            field,
            &json!(f),
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

pub fn namespace(obj: &Value, causes: &mut Vec<Cause>) {
    for f in arr_at(spec(obj), "finalizers") {
        finalizer_causes(f.as_str().unwrap_or(""), "spec.finalizers", causes);
    }
}

pub fn node(obj: &Value, causes: &mut Vec<Cause>) {
    taint_causes(arr_at(spec(obj), "taints"), causes);
    node_resources(obj, causes);
    let cidrs = pod_cidrs(obj);
    for (i, c) in cidrs.iter().enumerate() {
        if parse_cidr(c).is_none() {
            causes.push(Cause::invalid(
                &format!("spec.podCIDRs[{i}]"),
                &json!(c),
                CIDR_MSG,
            ));
        }
    }
    if cidrs.len() > 1 {
        let families: Vec<bool> = cidrs
            .iter()
            .filter_map(|c| parse_cidr(c))
            .map(|(ip, _)| is_v6(&ip))
            .collect();
        let dual = families.len() == 2 && families[0] != families[1];
        if families.len() == cidrs.len() && (!dual || cidrs.len() > 2) {
            causes.push(invalid_raw(
                "spec.podCIDRs",
                &go_strings("[]string", &cidrs),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = HashSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            if !seen.insert(c.clone()) {
                causes.push(Cause::duplicate(&format!("spec.podCIDRs[{i}]"), &json!(c)));
            }
        }
    }
}

/// `validateNodeTaints`; upstream reports them under `metadata.taints`.
fn taint_causes(taints: &[Value], causes: &mut Vec<Cause>) {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (i, t) in taints.iter().enumerate() {
        let path = format!("metadata.taints[{i}]");
        let (key, value, effect) = (str_at(t, "key"), str_at(t, "value"), str_at(t, "effect"));
        for e in qualified_name_errors(key) {
            causes.push(Cause::invalid(&format!("{path}.key"), &json!(key), &e));
        }
        let verrs = label_value_errors(value);
        if !verrs.is_empty() {
            causes.push(Cause::invalid(
                &format!("{path}.value"),
                &json!(value),
                &verrs.join(";"),
            ));
        }
        if effect.is_empty() {
            causes.push(Cause::required(&format!("{path}.effect")));
        } else if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            causes.push(Cause::unsupported(
                &format!("{path}.effect"),
                &json!(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
        if !seen.insert((key.to_string(), effect.to_string())) {
            let added = if present(t, "timeAdded") {
                "time.Date(...)".to_string()
            } else {
                "<nil>".to_string()
            };
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!(
                    "Duplicate value: core.Taint{{Key:{key:?}, Value:{value:?}, Effect:{effect:?}, TimeAdded:{added}}}: taints must be unique by key and effect pair"
                ),
                field: path,
            });
        }
    }
}

/// `ValidateNodeResources`: capacity and allocatable may not be negative.
fn node_resources(obj: &Value, causes: &mut Vec<Cause>) {
    for part in ["capacity", "allocatable"] {
        let Some(m) = obj
            .get("status")
            .and_then(|s| s.get(part))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (k, q) in m {
            if quantity(q).is_some_and(|v| v.is_negative()) {
                causes.push(Cause::invalid(
                    &format!("status.{part}.{k}"),
                    &json!(quantity_text(q)),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
}

/// The node's pod CIDRs as the internal type holds them (`podCIDRs`, or the singular `podCIDR`).
fn pod_cidrs(obj: &Value) -> Vec<String> {
    let s = spec(obj);
    let list: Vec<String> = arr_at(s, "podCIDRs")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    if !list.is_empty() {
        return list;
    }
    match str_at(s, "podCIDR") {
        "" => Vec::new(),
        one => vec![one.to_string()],
    }
}

pub fn node_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let mut seen = HashSet::new();
    for (i, a) in arr_at(new.get("status").unwrap_or(&Value::Null), "addresses")
        .iter()
        .enumerate()
    {
        let (t, addr) = (str_at(a, "type"), str_at(a, "address"));
        if !seen.insert((t.to_string(), addr.to_string())) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                message: format!(
                    "Duplicate value: core.NodeAddress{{Type:{t:?}, Address:{addr:?}}}"
                ),
                field: format!("status.addresses[{i}]"),
            });
        }
    }
    let (oc, nc) = (pod_cidrs(old), pod_cidrs(new));
    if !oc.is_empty() {
        let msg = "node updates may not change podCIDR except from \"\" to valid";
        if oc.len() != nc.len() {
            causes.push(Cause::forbidden("spec.podCIDRs", msg));
        } else {
            for (o, n) in oc.iter().zip(&nc) {
                if o != n {
                    causes.push(Cause::forbidden("spec.podCIDRs", msg));
                }
            }
        }
    }
    let (op, np) = (
        str_at(spec(old), "providerID"),
        str_at(spec(new), "providerID"),
    );
    if !op.is_empty() && op != np {
        causes.push(Cause::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    if str_at(spec(old), "externalID") != str_at(spec(new), "externalID") {
        causes.push(Cause::forbidden("spec.externalID", "may not be updated"));
    }
}

// ---------------------------------------------------------------------------------------------------
// PersistentVolumeClaims and PersistentVolumes
// ---------------------------------------------------------------------------------------------------

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

fn access_mode_causes(s: &Value, causes: &mut Vec<Cause>) {
    let (mut rwop, mut other) = (false, false);
    for m in arr_at(s, "accessModes") {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            causes.push(Cause::unsupported(
                "spec.accessModes",
                &json!(m),
                ACCESS_MODES,
            ));
        } else if m == "ReadWriteOncePod" {
            rwop = true;
        } else {
            other = true;
        }
    }
    if rwop && other {
        causes.push(Cause::forbidden(
            "spec.accessModes",
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

fn class_name_causes(field: &str, name: &str, causes: &mut Vec<Cause>) {
    for e in name_errors(name, NameRule::Subdomain) {
        causes.push(Cause::invalid(field, &json!(name), &e));
    }
}

pub fn pvc(obj: &Value, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    if arr_at(s, "accessModes").is_empty() {
        causes.push(Cause::required_detail(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    if let Some(sel) = s.get("selector").filter(|v| !v.is_null()) {
        label_selector_causes(sel, "spec.selector", causes);
    }
    access_mode_causes(s, causes);
    let storage = s.pointer("/resources/requests/storage");
    match storage.filter(|v| !v.is_null()) {
        None => causes.push(Cause::required("spec.resources[storage]")),
        Some(q) => {
            if quantity(q).is_some_and(|v| v.is_negative() || v.is_zero()) {
                causes.push(Cause::invalid(
                    "spec.resources[storage]",
                    &json!(quantity_text(q)),
                    "must be greater than zero",
                ));
            }
        }
    }
    let class = str_at(s, "storageClassName");
    if !class.is_empty() {
        class_name_causes("spec.storageClassName", class, causes);
    }
    let mode = str_at(s, "volumeMode");
    if present(s, "volumeMode") && !VOLUME_MODES.contains(&mode) {
        causes.push(Cause::unsupported(
            "spec.volumeMode",
            &json!(mode),
            VOLUME_MODES,
        ));
    }
    for (f, path) in [
        ("dataSource", "spec.dataSource"),
        ("dataSourceRef", "spec.dataSourceRef"),
    ] {
        let Some(ds) = s.get(f).filter(|v| v.is_object()) else {
            continue;
        };
        if str_at(ds, "name").is_empty() {
            causes.push(Cause::required(&format!("{path}.name")));
        }
        let kind = str_at(ds, "kind");
        if kind.is_empty() {
            causes.push(Cause::required(&format!("{path}.kind")));
        }
        let group = str_at(ds, "apiGroup");
        if group.is_empty() && kind != "PersistentVolumeClaim" {
            causes.push(Cause::invalid(
                path,
                &json!(kind),
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            ));
        }
        if !group.is_empty() {
            for e in name_errors(group, NameRule::Subdomain) {
                causes.push(Cause::invalid(
                    &format!("{path}.apiGroup"),
                    &json!(group),
                    &e,
                ));
            }
        }
    }
    let vac = str_at(s, "volumeAttributesClassName");
    if !vac.is_empty() {
        class_name_causes("spec.volumeAttributesClassName", vac, causes);
    }
}

pub fn pvc_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (ns, os) = (spec(new), spec(old));
    let bound = new.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    let mut n = strip_nulls(ns);
    let mut o = strip_nulls(os);
    // The volume controller may set volumeName once.
    if str_at(os, "volumeName").is_empty() {
        set_or_remove(&mut o, "volumeName", ns.get("volumeName"));
    }
    // storageClassName may be set from nil (beta annotation upgrades aside).
    if !present(os, "storageClassName") && present(ns, "storageClassName") {
        let ann = old
            .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .and_then(Value::as_str);
        if ann.is_none_or(|a| Some(a) == ns.get("storageClassName").and_then(Value::as_str)) {
            set_or_remove(&mut o, "storageClassName", ns.get("storageClassName"));
        }
    }
    if bound {
        if let Some(req) = n
            .pointer_mut("/resources/requests")
            .and_then(Value::as_object_mut)
        {
            match os.pointer("/resources/requests/storage") {
                Some(q) => req.insert("storage".into(), q.clone()),
                None => req.remove("storage"),
            };
        }
        if present(ns, "volumeAttributesClassName") {
            set_or_remove(
                &mut n,
                "volumeAttributesClassName",
                os.get("volumeAttributesClassName"),
            );
        }
    }
    if n != o {
        causes.push(Cause::forbidden(
            "spec",
            &format!(
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{}",
                spec_diff("core.PersistentVolumeClaimSpec", &o, &n)
            ),
        ));
    }
    let size = |s: &Value| {
        s.pointer("/resources/requests/storage")
            .and_then(quantity)
            .map_or(0, |q| q.milli_value())
    };
    if size(ns) < size(os) {
        causes.push(Cause::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        ));
    }
    let (nm, om) = (str_at(ns, "volumeMode"), str_at(os, "volumeMode"));
    if nm != om {
        causes.push(invalid_raw(
            "volumeMode",
            &go_ptr_str(ns.get("volumeMode")),
            FIELD_IMMUTABLE,
        ));
    }
    if present(os, "volumeAttributesClassName") {
        match ns.get("volumeAttributesClassName").and_then(Value::as_str) {
            None => causes.push(Cause::forbidden(
                "spec.volumeAttributesClassName",
                "update from non-nil value to nil is forbidden",
            )),
            Some("") => causes.push(Cause::forbidden(
                "spec.volumeAttributesClassName",
                "update from non-nil value to an empty string is forbidden",
            )),
            Some(_) => {}
        }
    }
}

/// The PersistentVolumeSpec fields that are not a volume source.
const PV_NON_SOURCE: &[&str] = &[
    "capacity",
    "accessModes",
    "claimRef",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "mountOptions",
    "volumeMode",
    "nodeAffinity",
    "volumeAttributesClassName",
];

/// Volume sources in upstream's checking order (the later of two is the one reported).
const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

pub fn pv(obj: &Value, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    if arr_at(s, "accessModes").is_empty() {
        causes.push(Cause::required("spec.accessModes"));
    }
    access_mode_causes(s, causes);
    let cap = s.get("capacity").and_then(Value::as_object);
    if cap.is_none_or(|c| c.is_empty()) {
        causes.push(Cause::required("spec.capacity"));
    }
    if cap.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        let shown = match cap {
            None => "core.ResourceList(nil)".to_string(),
            Some(c) => format!(
                "core.ResourceList{{{}}}",
                c.iter()
                    .map(|(k, v)| format!("{k:?}:{:?}", quantity_text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: {shown}: supported values: \"storage\""),
            field: "spec.capacity".into(),
        });
    }
    for (k, q) in cap.into_iter().flatten() {
        let path = format!("spec.capacity[{k}]");
        let v = quantity(q);
        if let Some(v) = v.filter(Quantity::is_negative) {
            causes.push(Cause::invalid(
                &path,
                &json!(v.value()),
                "must be a valid resource quantity",
            ));
        }
        if v.is_none_or(|v| v.is_negative() || v.is_zero()) {
            causes.push(Cause::invalid(
                &path,
                &json!(quantity_text(q)),
                "must be greater than zero",
            ));
        }
    }
    let policy = str_at(s, "persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !matches!(policy, "Delete" | "Recycle" | "Retain") {
        causes.push(Cause::unsupported(
            "spec.persistentVolumeReclaimPolicy",
            &json!(policy),
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let affinity = s.get("nodeAffinity").filter(|v| !v.is_null());
    if let Some(a) = affinity {
        if !present(a, "required") {
            causes.push(Cause::required_detail(
                "spec.nodeAffinity.required",
                "must specify required node constraints",
            ));
        }
    }
    let mut count = 0;
    for src in PV_SOURCES {
        let Some(v) = s.get(*src).filter(|v| !v.is_null()) else {
            continue;
        };
        if count > 0 && *src != "flexVolume" {
            causes.push(Cause::forbidden(
                &format!("spec.{src}"),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        pv_source_causes(src, v, affinity.is_some(), causes);
    }
    if count == 0 {
        causes.push(Cause::required_detail("spec", "must specify a volume type"));
    }
    let class = str_at(s, "storageClassName");
    if !class.is_empty() {
        class_name_causes("spec.storageClassName", class, causes);
    }
    let mode = str_at(s, "volumeMode");
    if present(s, "volumeMode") && !VOLUME_MODES.contains(&mode) {
        causes.push(Cause::unsupported(
            "spec.volumeMode",
            &json!(mode),
            VOLUME_MODES,
        ));
    }
}

/// The checks of the common volume sources (hostPath, nfs, local, csi).
fn pv_source_causes(src: &str, v: &Value, has_affinity: bool, causes: &mut Vec<Cause>) {
    use super::pod::{host_path_source, nfs_source, no_backsteps};
    let base = format!("spec.{src}");
    match src {
        "hostPath" => host_path_source(v, &base, causes),
        "nfs" => nfs_source(v, &base, causes),
        "local" => {
            let p = str_at(v, "path");
            if p.is_empty() {
                causes.push(Cause::required(&format!("{base}.path")));
                return;
            }
            no_backsteps(p, &format!("{base}.path"), causes);
            if !has_affinity {
                causes.push(Cause::required_detail(
                    "spec.nodeAffinity",
                    "Local volume requires node affinity",
                ));
            }
        }
        "csi" => {
            let driver = str_at(v, "driver");
            let dpath = format!("{base}.driver");
            if driver.is_empty() {
                causes.push(Cause::required(&dpath));
            }
            if driver.len() > 63 {
                causes.push(Cause::too_long(&dpath, 63));
            }
            for e in name_errors(&driver.to_lowercase(), NameRule::Subdomain) {
                causes.push(Cause::invalid(&dpath, &json!(driver), &e));
            }
            if str_at(v, "volumeHandle").is_empty() {
                causes.push(Cause::required(&format!("{base}.volumeHandle")));
            }
        }
        _ => {}
    }
}

pub fn pv_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (ns, os) = (spec(new), spec(old));
    let sources = |s: &Value| -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in s.as_object().into_iter().flatten() {
            if !PV_NON_SOURCE.contains(&k.as_str()) && !v.is_null() {
                m.insert(k.clone(), strip_nulls(v));
            }
        }
        Value::Object(m)
    };
    let (mut n, o) = (sources(ns), sources(os));
    // controllerExpandSecretRef may be added to a CSI source that had none.
    if os.pointer("/csi/controllerExpandSecretRef").is_none() {
        if let Some(csi) = n.get_mut("csi").and_then(Value::as_object_mut) {
            csi.remove("controllerExpandSecretRef");
        }
    }
    if n != o {
        causes.push(Cause::forbidden(
            "spec.persistentvolumesource",
            &format!(
                "spec.persistentvolumesource is immutable after creation\n{}",
                spec_diff("core.PersistentVolumeSource", &o, &n)
            ),
        ));
    }
    if str_at(ns, "volumeMode") != str_at(os, "volumeMode") {
        causes.push(invalid_raw(
            "volumeMode",
            &go_ptr_str(ns.get("volumeMode")),
            FIELD_IMMUTABLE,
        ));
    }
    if present(os, "nodeAffinity") && !same(ns.get("nodeAffinity"), os.get("nodeAffinity")) {
        causes.push(invalid_raw(
            "nodeAffinity",
            &go_json("core.VolumeNodeAffinity", ns.get("nodeAffinity")),
            "field is immutable, except for updating from beta label to GA",
        ));
    }
    if present(os, "volumeAttributesClassName") && !present(ns, "volumeAttributesClassName") {
        causes.push(Cause::forbidden(
            "spec.volumeAttributesClassName",
            "update from non-nil value to nil is forbidden",
        ));
    }
}

// ---------------------------------------------------------------------------------------------------
// Endpoints, ResourceQuotas
// ---------------------------------------------------------------------------------------------------

pub fn endpoints(obj: &Value, causes: &mut Vec<Cause>) {
    for (i, ss) in arr_at(obj, "subsets").iter().enumerate() {
        let path = format!("subsets[{i}]");
        let (addrs, not_ready) = (arr_at(ss, "addresses"), arr_at(ss, "notReadyAddresses"));
        if addrs.is_empty() && not_ready.is_empty() {
            causes.push(Cause::required_detail(
                &path,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (list, name) in [(addrs, "addresses"), (not_ready, "notReadyAddresses")] {
            for (j, a) in list.iter().enumerate() {
                let apath = format!("{path}.{name}[{j}]");
                let ip = str_at(a, "ip");
                if parse_ip(ip).is_none() {
                    causes.push(Cause::invalid(&format!("{apath}.ip"), &json!(ip), IP_MSG));
                }
                let host = str_at(a, "hostname");
                if !host.is_empty() {
                    for e in name_errors(host, NameRule::Label) {
                        causes.push(Cause::invalid(
                            &format!("{apath}.hostname"),
                            &json!(host),
                            &e,
                        ));
                    }
                }
                if let Some(n) = a.get("nodeName").and_then(Value::as_str) {
                    for e in name_errors(n, NameRule::Subdomain) {
                        causes.push(Cause::invalid(&format!("{apath}.nodeName"), &json!(n), &e));
                    }
                }
                non_special_ip_causes(&format!("{apath}.ip"), ip, causes);
            }
        }
        let ports = arr_at(ss, "ports");
        for (j, p) in ports.iter().enumerate() {
            let ppath = format!("{path}.ports[{j}]");
            let name = str_at(p, "name");
            if ports.len() > 1 && name.is_empty() {
                causes.push(Cause::required(&format!("{ppath}.name")));
            } else if !name.is_empty() {
                for e in name_errors(name, NameRule::Label) {
                    causes.push(Cause::invalid(&format!("{ppath}.name"), &json!(name), &e));
                }
            }
            port_num_causes(&format!("{ppath}.port"), p.get("port"), causes);
            let proto = str_at(p, "protocol");
            if !proto.is_empty() && !PROTOCOLS.contains(&proto) {
                causes.push(Cause::unsupported(
                    &format!("{ppath}.protocol"),
                    &json!(proto),
                    PROTOCOLS,
                ));
            }
            if let Some(ap) = p.get("appProtocol").and_then(Value::as_str) {
                for e in qualified_name_errors(ap) {
                    causes.push(Cause::invalid(
                        &format!("{ppath}.appProtocol"),
                        &json!(ap),
                        &e,
                    ));
                }
            }
        }
    }
}

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "limits.cpu",
    "limits.memory",
    "ephemeral-storage",
    "requests.ephemeral-storage",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_hugepages(name: &str) -> bool {
    ["hugepages-", "requests.hugepages-", "limits.hugepages-"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// `ValidateResourceQuotaResourceName`.
fn quota_resource_name_causes(path: &str, name: &str, causes: &mut Vec<Cause>) {
    let errs = qualified_name_errors(name);
    let had = !errs.is_empty();
    for e in errs {
        causes.push(Cause::invalid(path, &json!(name), &e));
    }
    if name.contains('/') {
        return;
    }
    if !had && !STANDARD_RESOURCES.contains(&name) && !is_hugepages(name) {
        causes.push(Cause::invalid(
            path,
            &json!(name),
            "must be a standard resource type or fully qualified",
        ));
    }
    let quota = (STANDARD_RESOURCES.contains(&name) && name != "storage")
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-");
    if !quota {
        causes.push(Cause::invalid(
            path,
            &json!(name),
            "must be a standard resource for quota",
        ));
    }
}

pub fn resource_quota(obj: &Value, causes: &mut Vec<Cause>) {
    for (section, m) in [
        ("spec.hard", spec(obj).get("hard")),
        ("status.hard", obj.pointer("/status/hard")),
        ("status.used", obj.pointer("/status/used")),
    ] {
        for (k, q) in m.and_then(Value::as_object).into_iter().flatten() {
            let path = format!("{section}[{k}]");
            quota_resource_name_causes(&path, k, causes);
            if quantity(q).is_some_and(|v| v.is_negative()) {
                causes.push(Cause::invalid(
                    &path,
                    &json!(quantity_text(q)),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    let s = spec(obj);
    let scopes: Vec<&str> = arr_at(s, "scopes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    const SCOPES: &[&str] = &[
        "Terminating",
        "NotTerminating",
        "BestEffort",
        "NotBestEffort",
        "PriorityClass",
        "CrossNamespacePodAffinity",
    ];
    let shown = go_strings("[]core.ResourceQuotaScope", &scopes);
    for sc in &scopes {
        if !SCOPES.contains(sc) {
            causes.push(invalid_raw("spec.scopes", &shown, "unsupported scope"));
        }
    }
    for pair in [
        ["BestEffort", "NotBestEffort"],
        ["Terminating", "NotTerminating"],
    ] {
        if pair.iter().all(|p| scopes.contains(p)) {
            causes.push(invalid_raw("spec.scopes", &shown, "conflicting scopes"));
        }
    }
}

pub fn resource_quota_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let set = |v: &Value| -> std::collections::BTreeSet<String> {
        arr_at(spec(v), "scopes")
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    if set(new) != set(old) {
        let scopes: Vec<&str> = arr_at(spec(new), "scopes")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let shown = if present(spec(new), "scopes") {
            go_strings("[]core.ResourceQuotaScope", &scopes)
        } else {
            "[]core.ResourceQuotaScope(nil)".to_string()
        };
        causes.push(invalid_raw("spec.scopes", &shown, FIELD_IMMUTABLE));
    }
}

// ---------------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------------

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

pub fn role(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    for (i, rule) in arr_at(obj, "rules").iter().enumerate() {
        let path = format!("rules[{i}]");
        if arr_at(rule, "verbs").is_empty() {
            causes.push(Cause::required_detail(
                &format!("{path}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr_at(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let shown = go_json_strings("[]string", rule.get("nonResourceURLs"));
            if namespaced {
                causes.push(invalid_raw(
                    &format!("{path}.nonResourceURLs"),
                    &shown,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr_at(rule, "apiGroups").is_empty()
                || !arr_at(rule, "resources").is_empty()
                || !arr_at(rule, "resourceNames").is_empty()
            {
                causes.push(invalid_raw(
                    &format!("{path}.nonResourceURLs"),
                    &shown,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr_at(rule, "apiGroups").is_empty() {
            causes.push(Cause::required_detail(
                &format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        let resources = arr_at(rule, "resources");
        if resources.is_empty() {
            causes.push(Cause::required_detail(
                &format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
        if !arr_at(rule, "resourceNames").is_empty() && resources.len() > 1 {
            causes.push(Cause::required_detail(
                &format!("{path}.resourceNames"),
                "resource names cannot apply to multiple resources",
            ));
        }
    }
    if !namespaced {
        if let Some(agg) = obj.get("aggregationRule").filter(|v| !v.is_null()) {
            let sels = arr_at(agg, "clusterRoleSelectors");
            if sels.is_empty() {
                causes.push(Cause::required_detail(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
            for (i, sel) in sels.iter().enumerate() {
                label_selector_causes(
                    sel,
                    &format!("aggregationRule.clusterRoleSelectors[{i}]"),
                    causes,
                );
            }
        }
    }
}

pub fn binding(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let rr = obj.get("roleRef").unwrap_or(&Value::Null);
    let group = str_at(rr, "apiGroup");
    if group != RBAC_GROUP {
        causes.push(Cause::unsupported(
            "roleRef.apiGroup",
            &json!(group),
            &[RBAC_GROUP],
        ));
    }
    let kind = str_at(rr, "kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        causes.push(Cause::unsupported("roleRef.kind", &json!(kind), kinds));
    }
    let name = str_at(rr, "name");
    if name.is_empty() {
        causes.push(Cause::required("roleRef.name"));
    } else {
        for e in name_errors(name, NameRule::PathSegment) {
            causes.push(Cause::invalid("roleRef.name", &json!(name), &e));
        }
    }
    for (i, s) in arr_at(obj, "subjects").iter().enumerate() {
        let path = format!("subjects[{i}]");
        let name = str_at(s, "name");
        let group = str_at(s, "apiGroup");
        if name.is_empty() {
            causes.push(Cause::required(&format!("{path}.name")));
        }
        match str_at(s, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for e in name_errors(name, NameRule::Subdomain) {
                        causes.push(Cause::invalid(&format!("{path}.name"), &json!(name), &e));
                    }
                }
                if !group.is_empty() {
                    causes.push(Cause::unsupported(
                        &format!("{path}.apiGroup"),
                        &json!(group),
                        &[""],
                    ));
                }
                if !namespaced && str_at(s, "namespace").is_empty() {
                    causes.push(Cause::required(&format!("{path}.namespace")));
                }
            }
            k @ ("User" | "Group") => {
                if name.is_empty() {
                    let what = if k == "User" { "user" } else { "group" };
                    causes.push(Cause::invalid(
                        &format!("{path}.name"),
                        &json!(name),
                        &format!("{what} name cannot be empty"),
                    ));
                }
                if group != RBAC_GROUP {
                    causes.push(Cause::unsupported(
                        &format!("{path}.apiGroup"),
                        &json!(group),
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => causes.push(Cause::unsupported(
                &format!("{path}.kind"),
                &json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

pub fn role_ref_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let field = |v: &Value, f: &str| -> String {
        v.get("roleRef")
            .map(|r| str_at(r, f).to_string())
            .unwrap_or_default()
    };
    let changed = ["apiGroup", "kind", "name"]
        .iter()
        .any(|f| field(new, f) != field(old, f));
    if changed {
        causes.push(invalid_raw(
            "roleRef",
            &format!(
                "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
                field(new, "apiGroup"),
                field(new, "kind"),
                field(new, "name")
            ),
            "cannot change roleRef",
        ));
    }
}

// ---------------------------------------------------------------------------------------------------
// Networking: Ingress, IngressClass, NetworkPolicy
// ---------------------------------------------------------------------------------------------------

const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `IsWildcardDNS1123Subdomain`, or `IsDNS1123Subdomain` when there is no `*`.
fn host_causes(field: &str, host: &str, causes: &mut Vec<Cause>) {
    if host.contains('*') {
        if host.len() > 253 {
            causes.push(Cause::invalid(
                field,
                &json!(host),
                "must be no more than 253 characters",
            ));
        }
        let valid = host
            .strip_prefix("*.")
            .is_some_and(crate::apiserver::registry::validation::is_dns1123_subdomain);
        if !valid {
            causes.push(Cause::invalid(field, &json!(host), WILDCARD_MSG));
        }
    } else {
        for e in name_errors(host, NameRule::Subdomain) {
            causes.push(Cause::invalid(field, &json!(host), &e));
        }
    }
}

pub fn ingress(obj: &Value, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    let rules = arr_at(s, "rules");
    let default = s.get("defaultBackend").filter(|v| !v.is_null());
    if rules.is_empty() && default.is_none() {
        causes.push(invalid_raw(
            "spec",
            &go_json("[]networking.IngressRule", s.get("rules")),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default {
        ingress_backend_causes(b, "spec.defaultBackend", causes);
    }
    for (i, r) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let host = str_at(r, "host");
        if !host.is_empty() {
            if parse_ip(host).is_some() {
                causes.push(Cause::invalid(
                    &format!("{path}.host"),
                    &json!(host),
                    "must be a DNS name, not an IP address",
                ));
            }
            host_causes(&format!("{path}.host"), host, causes);
        }
        let Some(http) = r.get("http").filter(|v| !v.is_null()) else {
            continue;
        };
        let paths = arr_at(http, "paths");
        if paths.is_empty() {
            causes.push(Cause::required(&format!("{path}.http.paths")));
        }
        for (j, p) in paths.iter().enumerate() {
            let ppath = format!("{path}.http.paths[{j}]");
            let Some(pt) = p.get("pathType").and_then(Value::as_str) else {
                causes.push(Cause::required_detail(
                    &format!("{ppath}.pathType"),
                    "pathType must be specified",
                ));
                continue;
            };
            let path_str = str_at(p, "path");
            let field = format!("{ppath}.path");
            match pt {
                "Exact" | "Prefix" => {
                    if !path_str.starts_with('/') {
                        causes.push(Cause::invalid(
                            &field,
                            &json!(path_str),
                            "must be an absolute path",
                        ));
                    }
                    if !path_str.is_empty() {
                        for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                            if path_str.contains(seq) {
                                causes.push(Cause::invalid(
                                    &field,
                                    &json!(path_str),
                                    &format!("must not contain '{seq}'"),
                                ));
                            }
                        }
                        for suf in ["/..", "/."] {
                            if path_str.ends_with(suf) {
                                causes.push(Cause::invalid(
                                    &field,
                                    &json!(path_str),
                                    &format!("cannot end with '{suf}'"),
                                ));
                            }
                        }
                    }
                }
                "ImplementationSpecific" => {
                    if !path_str.is_empty() && !path_str.starts_with('/') {
                        causes.push(Cause::invalid(
                            &field,
                            &json!(path_str),
                            "must be an absolute path",
                        ));
                    }
                }
                other => causes.push(Cause::unsupported(
                    &format!("{ppath}.pathType"),
                    &json!(other),
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            ingress_backend_causes(
                p.get("backend").unwrap_or(&Value::Null),
                &format!("{ppath}.backend"),
                causes,
            );
        }
    }
    for (i, t) in arr_at(s, "tls").iter().enumerate() {
        for (j, h) in arr_at(t, "hosts").iter().enumerate() {
            host_causes(
                &format!("spec.tls[{i}].hosts[{j}]"),
                h.as_str().unwrap_or(""),
                causes,
            );
        }
        let secret = str_at(t, "secretName");
        if !secret.is_empty() {
            for e in name_errors(secret, NameRule::Subdomain) {
                causes.push(Cause::invalid(
                    &format!("spec.tls[{i}].secretName"),
                    &json!(secret),
                    &e,
                ));
            }
        }
    }
    if let Some(c) = s.get("ingressClassName").and_then(Value::as_str) {
        for e in name_errors(c, NameRule::Subdomain) {
            causes.push(Cause::invalid("spec.ingressClassName", &json!(c), &e));
        }
    }
    if let (Some(ann), Some(class)) = (
        obj.pointer("/metadata/annotations/kubernetes.io~1ingress.class")
            .and_then(Value::as_str),
        s.get("ingressClassName").and_then(Value::as_str),
    ) {
        if ann != class {
            causes.push(Cause::invalid(
                "annotations.kubernetes.io/ingress.class",
                &json!(ann),
                "must match `ingressClassName` when both are specified",
            ));
        }
    }
}

/// A `TypedLocalObjectReference` (ingress resource backends, class parameters).
fn typed_ref_causes(r: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(g) = r.get("apiGroup").and_then(Value::as_str) {
        for e in name_errors(g, NameRule::Subdomain) {
            causes.push(Cause::invalid(&format!("{path}.apiGroup"), &json!(g), &e));
        }
    }
    for f in ["kind", "name"] {
        let v = str_at(r, f);
        if v.is_empty() {
            causes.push(Cause::required(&format!("{path}.{f}")));
        } else {
            for e in name_errors(v, NameRule::PathSegment) {
                causes.push(Cause::invalid(&format!("{path}.{f}"), &json!(v), &e));
            }
        }
    }
}

fn ingress_backend_causes(b: &Value, path: &str, causes: &mut Vec<Cause>) {
    let resource = b.get("resource").filter(|v| !v.is_null());
    let service = b.get("service").filter(|v| !v.is_null());
    match (resource, service) {
        (Some(_), Some(_)) => causes.push(Cause::invalid(
            path,
            &json!(""),
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => typed_ref_causes(r, &format!("{path}.resource"), causes),
        (None, Some(svc)) => {
            let name = str_at(svc, "name");
            if name.is_empty() {
                causes.push(Cause::required(&format!("{path}.service.name")));
            } else {
                for e in name_errors(name, NameRule::Dns1035) {
                    causes.push(Cause::invalid(
                        &format!("{path}.service.name"),
                        &json!(name),
                        &e,
                    ));
                }
            }
            let port = svc.get("port").unwrap_or(&Value::Null);
            let pname = str_at(port, "name");
            let pnum = port.get("number").and_then(Value::as_i64).unwrap_or(0);
            if !pname.is_empty() && pnum != 0 {
                causes.push(Cause::invalid(
                    path,
                    &json!(""),
                    "cannot set both port name & port number",
                ));
            } else if !pname.is_empty() {
                for e in port_name_errors(pname) {
                    causes.push(Cause::invalid(
                        &format!("{path}.service.port.name"),
                        &json!(pname),
                        &e,
                    ));
                }
            } else if pnum != 0 {
                if !(1..=65535).contains(&pnum) {
                    causes.push(Cause::invalid(
                        &format!("{path}.service.port.number"),
                        &json!(pnum),
                        PORT_RANGE_MSG,
                    ));
                }
            } else {
                causes.push(Cause::required_detail(
                    path,
                    "port name or number is required",
                ));
            }
        }
        (None, None) => causes.push(Cause::invalid(
            path,
            &json!(""),
            "resource or service backend is required",
        )),
    }
}

const HTTP_PATH_MSG: &str =
    "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')";

pub fn ingress_class(obj: &Value, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    let c = str_at(s, "controller");
    if c.is_empty() {
        causes.push(Cause::required("spec.controller"));
    } else {
        if c.len() > 250 {
            causes.push(Cause::too_long("spec.controller", 250));
        }
        match c.split_once('/') {
            Some((host, path)) if !host.is_empty() && !path.is_empty() => {
                for e in name_errors(host, NameRule::Subdomain) {
                    causes.push(Cause::invalid("spec.controller", &json!(host), &e));
                }
                let ok = path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
                if !ok {
                    causes.push(Cause::invalid(
                        "spec.controller",
                        &json!(path),
                        HTTP_PATH_MSG,
                    ));
                }
            }
            _ => causes.push(Cause::invalid(
                "spec.controller",
                &json!(c),
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            )),
        }
    }
    let Some(p) = s.get("parameters").filter(|v| !v.is_null()) else {
        return;
    };
    typed_ref_causes(p, "spec.parameters", causes);
    match p.get("scope").and_then(Value::as_str) {
        None => causes.push(Cause::required("spec.parameters.scope")),
        Some("Namespace") => match p.get("namespace").and_then(Value::as_str) {
            None => causes.push(Cause::required_detail(
                "spec.parameters.namespace",
                "`parameters.scope` is set to 'Namespace'",
            )),
            Some(ns) => {
                for e in name_errors(ns, NameRule::Label) {
                    causes.push(Cause::invalid("spec.parameters.namespace", &json!(ns), &e));
                }
            }
        },
        Some("Cluster") => {
            if present(p, "namespace") {
                causes.push(Cause::forbidden(
                    "spec.parameters.namespace",
                    "`parameters.scope` is set to 'Cluster'",
                ));
            }
        }
        Some(other) => causes.push(Cause::unsupported(
            "spec.parameters.scope",
            &json!(other),
            &["Cluster", "Namespace"],
        )),
    }
}

pub fn network_policy(obj: &Value, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    label_selector_causes(
        s.get("podSelector").unwrap_or(&Value::Null),
        "spec.podSelector",
        causes,
    );
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr_at(s, dir).iter().enumerate() {
            let rpath = format!("spec.{dir}[{i}]");
            for (j, p) in arr_at(rule, "ports").iter().enumerate() {
                np_port_causes(p, &format!("{rpath}.ports[{j}]"), causes);
            }
            for (j, peer) in arr_at(rule, peers).iter().enumerate() {
                np_peer_causes(peer, &format!("{rpath}.{peers}[{j}]"), causes);
            }
        }
    }
    let types = arr_at(s, "policyTypes");
    if types.len() > 2 {
        causes.push(invalid_raw(
            "spec.policyTypes",
            &format!(
                "&{}",
                go_json_strings("[]networking.PolicyType", s.get("policyTypes"))
            ),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or("");
        if !matches!(t, "Ingress" | "Egress") {
            causes.push(Cause::unsupported(
                &format!("spec.policyTypes[{i}]"),
                &json!(t),
                &["Ingress", "Egress"],
            ));
        }
    }
}

fn np_port_causes(p: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(proto) = p.get("protocol").and_then(Value::as_str) {
        if !PROTOCOLS.contains(&proto) {
            causes.push(Cause::unsupported(
                &format!("{path}.protocol"),
                &json!(proto),
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    let end = p.get("endPort").and_then(Value::as_i64);
    match p.get("port").filter(|v| !v.is_null()) {
        Some(Value::String(name)) => {
            if let Some(e) = end {
                causes.push(Cause::invalid(
                    &format!("{path}.endPort"),
                    &json!(e),
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for e in port_name_errors(name) {
                causes.push(Cause::invalid(&format!("{path}.port"), &json!(name), &e));
            }
        }
        Some(n) => {
            let n = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                causes.push(Cause::invalid(
                    &format!("{path}.port"),
                    &json!(n),
                    PORT_RANGE_MSG,
                ));
            }
            if let Some(e) = end {
                if e < n {
                    causes.push(Cause::invalid(
                        &format!("{path}.endPort"),
                        &json!(e),
                        "must be greater than or equal to `port`",
                    ));
                }
                if !(1..=65535).contains(&e) {
                    causes.push(Cause::invalid(
                        &format!("{path}.endPort"),
                        &json!(e),
                        PORT_RANGE_MSG,
                    ));
                }
            }
        }
        None => {
            if let Some(e) = end {
                causes.push(Cause::invalid(
                    &format!("{path}.endPort"),
                    &json!(e),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn np_peer_causes(peer: &Value, path: &str, causes: &mut Vec<Cause>) {
    let mut n = 0;
    for f in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = peer.get(f).filter(|v| !v.is_null()) {
            n += 1;
            label_selector_causes(sel, &format!("{path}.{f}"), causes);
        }
    }
    let block = peer.get("ipBlock").filter(|v| !v.is_null());
    if let Some(b) = block {
        n += 1;
        let bpath = format!("{path}.ipBlock");
        let cidr = str_at(b, "cidr");
        if cidr.is_empty() {
            causes.push(Cause::required(&format!("{bpath}.cidr")));
        } else if let Some(outer) = parse_cidr(cidr) {
            for (i, e) in arr_at(b, "except").iter().enumerate() {
                let e = e.as_str().unwrap_or("");
                let epath = format!("{bpath}.except[{i}]");
                match parse_cidr(e) {
                    None => causes.push(Cause::invalid(&epath, &json!(e), CIDR_MSG)),
                    Some(inner) => {
                        if !(cidr_contains(outer, inner.0) && outer.1 < inner.1) {
                            causes.push(Cause::invalid(
                                &epath,
                                &json!(e),
                                "must be a strict subset of `cidr`",
                            ));
                        }
                    }
                }
            }
        } else {
            causes.push(Cause::invalid(
                &format!("{bpath}.cidr"),
                &json!(cidr),
                CIDR_MSG,
            ));
        }
    }
    if n == 0 {
        causes.push(Cause::required_detail(path, "must specify a peer"));
    } else if n > 1 && block.is_some() {
        causes.push(Cause::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

// ---------------------------------------------------------------------------------------------------
// PriorityClasses, Leases, StorageClasses, PDBs, HPAs, EndpointSlices
// ---------------------------------------------------------------------------------------------------

pub fn priority_class(obj: &Value, causes: &mut Vec<Cause>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = obj.get("value").and_then(Value::as_i64).unwrap_or(0);
    let global = obj
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if name.starts_with("system-") {
        let known = match name {
            "system-node-critical" => Some(2_000_001_000),
            "system-cluster-critical" => Some(2_000_000_000),
            _ => None,
        };
        let err = match known {
            None => Some(format!("{name} is not a known system priority class")),
            Some(v) if v != value => Some(format!("value of {name} PriorityClass must be {v}")),
            Some(_) if global => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(e) = err {
            causes.push(Cause::forbidden(
                "metadata.name",
                &format!("priority class names with 'system-' prefix are reserved for system use only. error: {e}"),
            ));
        }
    } else if value > 1_000_000_000 {
        causes.push(Cause::forbidden(
            "value",
            "maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    if let Some(p) = obj.get("preemptionPolicy").and_then(Value::as_str) {
        match p {
            "PreemptLowerPriority" | "Never" => {}
            "" => causes.push(Cause::required("preemptionPolicy")),
            other => causes.push(Cause::unsupported(
                "preemptionPolicy",
                &json!(other),
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
}

pub fn priority_class_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let value = |v: &Value| v.get("value").and_then(Value::as_i64).unwrap_or(0);
    if value(new) != value(old) {
        causes.push(Cause::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    // Both went through defaulting, so an absent policy is PreemptLowerPriority on either side.
    let policy = |v: &Value| {
        v.get("preemptionPolicy")
            .and_then(Value::as_str)
            .unwrap_or("PreemptLowerPriority")
            .to_string()
    };
    if policy(new) != policy(old) {
        causes.push(Cause::immutable("preemptionPolicy", &json!(policy(new))));
    }
}

pub fn lease(obj: &Value, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    if let Some(d) = s.get("leaseDurationSeconds").and_then(Value::as_i64) {
        if d <= 0 {
            causes.push(Cause::invalid(
                "spec.leaseDurationSeconds",
                &json!(d),
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = s.get("leaseTransitions").and_then(Value::as_i64) {
        if t < 0 {
            causes.push(Cause::invalid(
                "spec.leaseTransitions",
                &json!(t),
                "must be greater than or equal to 0",
            ));
        }
    }
    let strategy = s.get("strategy").and_then(Value::as_str);
    if let Some(st) = strategy {
        if !st.contains('/') {
            if st != "OldestEmulationVersion" {
                causes.push(Cause::unsupported(
                    "spec.strategy.strategy",
                    &json!(st),
                    &["OldestEmulationVersion"],
                ));
            }
        } else {
            for e in qualified_name_errors(st) {
                causes.push(Cause::invalid("spec.strategy.strategy", &json!(st), &e));
            }
        }
    }
    let holder = str_at(s, "preferredHolder");
    if !holder.is_empty() && strategy.is_none_or(str::is_empty) {
        causes.push(Cause::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
}

pub fn storage_class(obj: &Value, causes: &mut Vec<Cause>) {
    let p = str_at(obj, "provisioner");
    if p.is_empty() {
        causes.push(Cause::required("provisioner"));
    } else {
        for e in qualified_name_errors(&p.to_lowercase()) {
            causes.push(Cause::invalid("provisioner", &json!(p), &e));
        }
    }
    if let Some(params) = obj.get("parameters").and_then(Value::as_object) {
        if params.len() > 512 {
            causes.push(Cause::too_long("parameters", 512));
        } else {
            let mut total = 0;
            for (k, v) in params {
                if k.is_empty() {
                    causes.push(Cause::invalid(
                        "parameters",
                        &json!(k),
                        "field can not be empty.",
                    ));
                }
                total += k.len() + v.as_str().map_or(0, str::len);
            }
            if total > 256 * 1024 {
                causes.push(Cause::too_long("parameters", 256 * 1024));
            }
        }
    }
    if let Some(r) = obj.get("reclaimPolicy").and_then(Value::as_str) {
        if !r.is_empty() && !matches!(r, "Delete" | "Retain") {
            causes.push(Cause::unsupported(
                "reclaimPolicy",
                &json!(r),
                &["Delete", "Retain"],
            ));
        }
    }
    if let Some(m) = obj.get("volumeBindingMode").and_then(Value::as_str) {
        if !matches!(m, "Immediate" | "WaitForFirstConsumer") {
            causes.push(Cause::unsupported(
                "volumeBindingMode",
                &json!(m),
                &["Immediate", "WaitForFirstConsumer"],
            ));
        }
    }
}

pub fn storage_class_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    if !same(new.get("parameters"), old.get("parameters")) {
        causes.push(Cause::forbidden(
            "parameters",
            "updates to parameters are forbidden.",
        ));
    }
    if str_at(new, "provisioner") != str_at(old, "provisioner") {
        causes.push(Cause::forbidden(
            "provisioner",
            "updates to provisioner are forbidden.",
        ));
    }
    // Upstream defaults these (Delete, Immediate); compare as if defaulted.
    let or = |v: &Value, f: &str, d: &'static str| -> String {
        match str_at(v, f) {
            "" => d.to_string(),
            s => s.to_string(),
        }
    };
    if or(new, "reclaimPolicy", "Delete") != or(old, "reclaimPolicy", "Delete") {
        causes.push(Cause::forbidden(
            "reclaimPolicy",
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    let (nm, om) = (
        or(new, "volumeBindingMode", "Immediate"),
        or(old, "volumeBindingMode", "Immediate"),
    );
    if nm != om {
        causes.push(Cause::immutable("volumeBindingMode", &json!(nm)));
    }
}

/// `intstr.IntOrString` as Go's `%#v` prints it.
fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

pub fn pdb(obj: &Value, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    let min = s.get("minAvailable").filter(|v| !v.is_null());
    let max = s.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        causes.push(invalid_raw(
            "spec",
            &go_json("policy.PodDisruptionBudgetSpec", Some(s)),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (f, v) in [("minAvailable", min), ("maxUnavailable", max)] {
        let Some(v) = v else { continue };
        let path = format!("spec.{f}");
        match v {
            Value::String(p) => {
                let num = p
                    .strip_suffix('%')
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                match num {
                    None => causes.push(invalid_raw(
                        &path,
                        &go_int_or_string(v),
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    )),
                    Some(n) => {
                        if !n.parse::<u64>().is_ok_and(|n| n <= 100) {
                            causes.push(invalid_raw(
                                &path,
                                &go_int_or_string(v),
                                "must not be greater than 100%",
                            ));
                        }
                    }
                }
            }
            n => {
                let n = n.as_i64().unwrap_or(0);
                if n < 0 {
                    causes.push(Cause::invalid(
                        &path,
                        &json!(n),
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
    }
    if let Some(sel) = s.get("selector").filter(|v| !v.is_null()) {
        label_selector_causes(sel, "spec.selector", causes);
    }
    if let Some(p) = s.get("unhealthyPodEvictionPolicy").and_then(Value::as_str) {
        if !matches!(p, "AlwaysAllow" | "IfHealthyBudget") {
            causes.push(Cause::unsupported(
                "spec.unhealthyPodEvictionPolicy",
                &json!(p),
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
}

pub fn hpa(obj: &Value, causes: &mut Vec<Cause>) {
    let s = spec(obj);
    let min = s.get("minReplicas").and_then(Value::as_i64);
    let max = s.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if let Some(m) = min {
        if m < 1 {
            causes.push(Cause::invalid(
                "spec.minReplicas",
                &json!(m),
                "must be greater than or equal to 1",
            ));
        }
    }
    if max < 1 {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let r = s.get("scaleTargetRef").unwrap_or(&Value::Null);
    for f in ["kind", "name"] {
        let v = str_at(r, f);
        let path = format!("spec.scaleTargetRef.{f}");
        if v.is_empty() {
            causes.push(Cause::required(&path));
        } else {
            for e in name_errors(v, NameRule::PathSegment) {
                causes.push(Cause::invalid(&path, &json!(v), &e));
            }
        }
    }
    if let Some(t) = s
        .get("targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        if t < 1 {
            causes.push(Cause::invalid(
                "spec.targetCPUUtilizationPercentage",
                &json!(t),
                "must be greater than 0",
            ));
        }
    }
}

pub fn endpoint_slice(obj: &Value, causes: &mut Vec<Cause>) {
    let ty = str_at(obj, "addressType");
    if ty.is_empty() {
        causes.push(Cause::required("addressType"));
    } else if !matches!(ty, "FQDN" | "IPv4" | "IPv6") {
        causes.push(Cause::unsupported(
            "addressType",
            &json!(ty),
            &["FQDN", "IPv4", "IPv6"],
        ));
    }
    let eps = arr_at(obj, "endpoints");
    if eps.len() > 1000 {
        causes.push(Cause::too_many("endpoints", eps.len(), 1000));
    } else {
        for (i, ep) in eps.iter().enumerate() {
            let apath = format!("endpoints[{i}].addresses");
            let addrs = arr_at(ep, "addresses");
            if addrs.is_empty() {
                causes.push(Cause::required_detail(
                    &apath,
                    "must contain at least 1 address",
                ));
            } else if addrs.len() > 100 {
                causes.push(Cause::too_many(&apath, addrs.len(), 100));
            }
            for (j, a) in addrs.iter().enumerate() {
                let a = a.as_str().unwrap_or("");
                let path = format!("{apath}[{j}]");
                let ip = parse_ip(a);
                match ty {
                    "IPv4" | "IPv6" => {
                        let want6 = ty == "IPv6";
                        if ip.is_none_or(|ip| is_v6(&ip) != want6) {
                            let msg = if want6 {
                                "must be a valid IPv6 address"
                            } else {
                                "must be a valid IPv4 address"
                            };
                            causes.push(Cause::invalid(&path, &json!(a), msg));
                        } else {
                            non_special_ip_causes(&path, a, causes);
                        }
                    }
                    "FQDN" => {
                        let name = a.strip_suffix('.').unwrap_or(a);
                        if a.is_empty() {
                            causes.push(Cause::required(&path));
                        } else if let Some(e) = name_errors(name, NameRule::Subdomain).first() {
                            causes.push(Cause::invalid(&path, &json!(name), e));
                        } else if !name.contains('.') {
                            causes.push(Cause::invalid(
                                &path,
                                &json!(name),
                                "should be a domain with at least two segments separated by dots",
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let ports = arr_at(obj, "ports");
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("ports[{i}]");
        let name = str_at(p, "name");
        if !name.is_empty() {
            for e in name_errors(name, NameRule::Label) {
                causes.push(Cause::invalid(&format!("{path}.name"), &json!(name), &e));
            }
        }
        if !names.insert(name.to_string()) {
            causes.push(Cause::duplicate(&format!("{path}.name"), &json!(name)));
        }
        if let Some(proto) = p.get("protocol").and_then(Value::as_str) {
            if !PROTOCOLS.contains(&proto) {
                causes.push(Cause::unsupported(
                    &format!("{path}.protocol"),
                    &json!(proto),
                    PROTOCOLS,
                ));
            }
        }
        if let Some(ap) = p.get("appProtocol").and_then(Value::as_str) {
            for e in qualified_name_errors(ap) {
                causes.push(Cause::invalid(
                    &format!("{path}.appProtocol"),
                    &json!(ap),
                    &e,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::validation::by_kind::{validate, validate_update};

    fn run(group: &str, plural: &str, obj: Value) -> Vec<String> {
        let mut c = Vec::new();
        validate(group, plural, &obj, &mut c);
        c.iter().map(Cause::display).collect()
    }

    /// As the registry runs it: the new object carries the current resourceVersion.
    fn run_update(group: &str, plural: &str, mut new: Value, old: Value) -> Vec<String> {
        if let Some(m) = new.as_object_mut() {
            let meta = m.entry("metadata").or_insert(json!({}));
            meta["resourceVersion"] = json!("7");
        }
        let mut c = Vec::new();
        validate(group, plural, &new, &mut c);
        validate_update(group, plural, &new, &old, &mut c);
        c.iter().map(Cause::display).collect()
    }

    #[test]
    fn configmaps() {
        assert!(run(
            "",
            "configmaps",
            json!({"data": {"a": "b"}, "binaryData": {"c": "AA=="}})
        )
        .is_empty());
        assert_eq!(
            run(
                "",
                "configmaps",
                json!({"data": {"a": "b"}, "binaryData": {"a": "AA=="}})
            ),
            vec!["data[a]: Invalid value: \"a\": duplicate of key present in binaryData"]
        );
        assert_eq!(
            run("", "configmaps", json!({"data": {"..x": "b"}})),
            vec!["data[..x]: Invalid value: \"..x\": must not start with '..'"]
        );
        let big = "x".repeat(MAX_DATA_BYTES + 1);
        assert_eq!(
            run("", "configmaps", json!({"data": {"a": big}})),
            vec!["[]: Too long: may not be more than 1048576 bytes"]
        );
        // immutable
        let old = json!({"immutable": true, "data": {"a": "b"}});
        assert!(run_update("", "configmaps", old.clone(), old.clone()).is_empty());
        assert_eq!(
            run_update(
                "",
                "configmaps",
                json!({"immutable": true, "data": {"a": "c"}}),
                old.clone()
            ),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        assert_eq!(
            run_update("", "configmaps", json!({"data": {"a": "b"}}), old),
            vec!["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        // Setting immutable, and changing data while mutable, are fine.
        assert!(run_update(
            "",
            "configmaps",
            json!({"immutable": true, "data": {"a": "z"}}),
            json!({"data": {"a": "b"}})
        )
        .is_empty());
        assert!(run_update(
            "",
            "configmaps",
            json!({"immutable": true, "data": {}}),
            json!({"immutable": true})
        )
        .is_empty());
    }

    #[test]
    fn secrets() {
        assert!(run(
            "",
            "secrets",
            json!({"type": "Opaque", "data": {"a": "Yg=="}})
        )
        .is_empty());
        assert_eq!(
            run(
                "",
                "secrets",
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}})
            ),
            vec!["data[tls.key]: Required value"]
        );
        assert_eq!(
            run(
                "",
                "secrets",
                json!({"type": "kubernetes.io/service-account-token", "metadata": {}})
            ),
            vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
        assert_eq!(
            run(
                "",
                "secrets",
                json!({"type": "kubernetes.io/dockerconfigjson", "data": {}})
            ),
            vec!["data[.dockerconfigjson]: Required value"]
        );
        assert_eq!(
            run("", "secrets", json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "eHl6"}})),
            vec!["data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid character 'x' looking for beginning of value"]
        );
        assert!(run(
            "",
            "secrets",
            json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}})
        )
        .is_empty());
        assert_eq!(
            run(
                "",
                "secrets",
                json!({"type": "kubernetes.io/basic-auth", "data": {}})
            ),
            vec![
                "data[username]: Required value",
                "data[password]: Required value"
            ]
        );
        assert!(run(
            "",
            "secrets",
            json!({"type": "kubernetes.io/basic-auth", "data": {"password": ""}})
        )
        .is_empty());
        assert_eq!(
            run(
                "",
                "secrets",
                json!({"type": "kubernetes.io/ssh-auth", "data": {"ssh-privatekey": ""}})
            ),
            vec!["data[ssh-privatekey]: Required value"]
        );
        let old = json!({"type": "Opaque", "immutable": true, "data": {"a": "Yg=="}});
        assert!(run_update("", "secrets", old.clone(), old.clone()).is_empty());
        assert_eq!(
            run_update(
                "",
                "secrets",
                json!({"type": "foo", "immutable": true, "data": {"a": "Yw=="}}),
                old
            ),
            vec![
                "type: Invalid value: \"foo\": field is immutable",
                "data: Forbidden: field is immutable when `immutable` is set"
            ]
        );
    }

    #[test]
    fn nodes() {
        let n = json!({"spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"], "providerID": "p",
            "taints": [{"key": "a", "effect": "NoSchedule"}]}});
        assert!(run_update("", "nodes", n.clone(), n.clone()).is_empty());
        assert_eq!(
            run("", "nodes", json!({"spec": {"taints": [{"key": "a", "effect": "Bad"}, {"key": "b"}]}})),
            vec![
                "metadata.taints[0].effect: Unsupported value: \"Bad\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                "metadata.taints[1].effect: Required value"
            ]
        );
        assert_eq!(
            run("", "nodes", json!({"spec": {"taints": [{"key": "a", "value": "x", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}]}})),
            vec!["metadata.taints[1]: Duplicate value: core.Taint{Key:\"a\", Value:\"\", Effect:\"NoSchedule\", TimeAdded:<nil>}: taints must be unique by key and effect pair"]
        );
        assert_eq!(
            run_update("", "nodes", json!({"spec": {"podCIDR": "10.244.1.0/24", "providerID": "q"}}), n),
            vec![
                "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid",
                "spec.providerID: Forbidden: node updates may not change providerID except from \"\" to valid"
            ]
        );
        assert!(run_update(
            "",
            "nodes",
            json!({"spec": {"podCIDR": "10.244.1.0/24"}}),
            json!({"spec": {}})
        )
        .is_empty());
    }

    #[test]
    fn namespaces() {
        assert!(run(
            "",
            "namespaces",
            json!({"spec": {"finalizers": ["kubernetes", "example.com/x"]}})
        )
        .is_empty());
        assert_eq!(
            run("", "namespaces", json!({"spec": {"finalizers": ["foo"]}})),
            vec!["spec.finalizers: Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified"]
        );
    }

    #[test]
    fn rbac() {
        let r = "rbac.authorization.k8s.io";
        assert!(run(
            r,
            "roles",
            json!({"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
        )
        .is_empty());
        assert!(run(
            r,
            "clusterroles",
            json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]})
        )
        .is_empty());
        assert_eq!(
            run(r, "roles", json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}]})),
            vec![
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to non-resource URLs"
            ]
        );
        assert_eq!(
            run(r, "clusterroles", json!({"rules": [{"verbs": ["get"]}]})),
            vec![
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resources: Required value: resource rules must supply at least one resource"
            ]
        );
        let rb = json!({"roleRef": {"apiGroup": r, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "apiGroup": "", "name": "default", "namespace": "x"},
                         {"kind": "User", "apiGroup": r, "name": "jane"}]});
        assert!(run_update(r, "rolebindings", rb.clone(), rb.clone()).is_empty());
        assert!(run(r, "clusterrolebindings", rb.clone()).is_empty());
        let changed = json!({"roleRef": {"apiGroup": r, "kind": "ClusterRole", "name": "edit"}, "subjects": rb["subjects"].clone()});
        assert_eq!(
            run_update(r, "rolebindings", changed, rb),
            vec!["roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"]
        );
        assert_eq!(
            run(r, "clusterrolebindings", json!({"roleRef": {"apiGroup": r, "kind": "Role", "name": "x"},
                "subjects": [{"kind": "ServiceAccount", "name": "d"}, {"kind": "Robot", "name": "r"}]})),
            vec![
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
                "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""
            ]
        );
        assert_eq!(
            run(r, "rolebindings", json!({"roleRef": {}})),
            vec![
                "roleRef.apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
                "roleRef.kind: Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\"",
                "roleRef.name: Required value"
            ]
        );
    }

    #[test]
    fn ingresses() {
        let n = "networking.k8s.io";
        let ok = json!({"spec": {"rules": [{"host": "*.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}],
            "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}]}});
        assert!(run(n, "ingresses", ok).is_empty());
        assert_eq!(
            run(n, "ingresses", json!({"spec": {}})),
            vec!["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"]
        );
        assert_eq!(
            run(n, "ingresses", json!({"spec": {"rules": [{"host": "Foo", "http": {"paths": [
                {"path": "x", "pathType": "Exact", "backend": {"service": {"name": "web"}}},
                {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/", "pathType": "Regex", "backend": {"service": {"name": "web", "port": {"number": 80, "name": "h"}}}}]}}]}})),
            vec![
                "spec.rules[0].host: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "spec.rules[0].http.paths[0].path: Invalid value: \"x\": must be an absolute path",
                "spec.rules[0].http.paths[0].backend: Required value: port name or number is required",
                "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
                "spec.rules[0].http.paths[2].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
                "spec.rules[0].http.paths[2].backend: Invalid value: \"\": cannot set both port name & port number"
            ]
        );
        assert_eq!(
            run(
                n,
                "ingresses",
                json!({"spec": {"rules": [{"host": "*.*.x.com"}]}})
            ),
            vec![format!(
                "spec.rules[0].host: Invalid value: \"*.*.x.com\": {WILDCARD_MSG}"
            )]
        );
        assert_eq!(
            run(n, "ingressclasses", json!({"spec": {}})),
            vec!["spec.controller: Required value"]
        );
        assert!(run(
            n,
            "ingressclasses",
            json!({"spec": {"controller": "k8s.io/ingress-nginx"}})
        )
        .is_empty());
        assert_eq!(
            run_update(
                n,
                "ingressclasses",
                json!({"spec": {"controller": "a.io/b"}}),
                json!({"spec": {"controller": "a.io/c"}})
            ),
            vec!["spec.controller: Invalid value: \"a.io/b\": field is immutable"]
        );
    }

    #[test]
    fn pvcs() {
        let ok = json!({"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "1Gi"}}}});
        assert!(run("", "persistentvolumeclaims", ok.clone()).is_empty());
        assert_eq!(
            run("", "persistentvolumeclaims", json!({"spec": {"accessModes": ["Foo"], "resources": {"requests": {"storage": "0"}}, "volumeMode": "Raw"}})),
            vec![
                "spec.accessModes: Unsupported value: \"Foo\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
                "spec.volumeMode: Unsupported value: \"Raw\": supported values: \"Block\", \"Filesystem\""
            ]
        );
        assert_eq!(
            run("", "persistentvolumeclaims", json!({"spec": {}})),
            vec![
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value"
            ]
        );
        // no-op, volumeName set once, growth when bound
        assert!(run_update("", "persistentvolumeclaims", ok.clone(), ok.clone()).is_empty());
        let mut named = ok.clone();
        named["spec"]["volumeName"] = json!("pv1");
        assert!(run_update("", "persistentvolumeclaims", named.clone(), ok.clone()).is_empty());
        let mut bigger = named.clone();
        bigger["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        bigger["status"] = json!({"phase": "Bound"});
        assert!(run_update("", "persistentvolumeclaims", bigger.clone(), named.clone()).is_empty());
        // unbound growth, mode change: spec immutable
        let mut unbound = named.clone();
        unbound["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        let out = run_update("", "persistentvolumeclaims", unbound, named.clone());
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"));
        // shrink while bound
        let mut smaller = named.clone();
        smaller["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
        smaller["status"] = json!({"phase": "Bound"});
        assert_eq!(
            run_update("", "persistentvolumeclaims", smaller, named),
            vec!["spec.resources.requests.storage: Forbidden: field can not be less than previous value"]
        );
    }

    #[test]
    fn pvs() {
        let ok = json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem", "hostPath": {"path": "/data"}}});
        assert!(run("", "persistentvolumes", ok.clone()).is_empty());
        assert!(run_update("", "persistentvolumes", ok.clone(), ok.clone()).is_empty());
        assert_eq!(
            run("", "persistentvolumes", json!({"spec": {"persistentVolumeReclaimPolicy": "Keep"}})),
            vec![
                "spec.accessModes: Required value",
                "spec.capacity: Required value",
                "spec.capacity: Unsupported value: core.ResourceList(nil): supported values: \"storage\"",
                "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
                "spec: Required value: must specify a volume type"
            ]
        );
        assert_eq!(
            run(
                "",
                "persistentvolumes",
                json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/a"}, "nfs": {"server": "s", "path": "/b"}}})
            ),
            vec!["spec.nfs: Forbidden: may not specify more than 1 volume type"]
        );
        let mut moved = ok.clone();
        moved["spec"]["hostPath"]["path"] = json!("/other");
        moved["spec"]["persistentVolumeReclaimPolicy"] = json!("Delete");
        let out = run_update("", "persistentvolumes", moved, ok);
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation\n"));
    }

    #[test]
    fn scheduling_coordination_storage() {
        let s = "scheduling.k8s.io";
        let pc = json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "PreemptLowerPriority"});
        assert!(run_update(s, "priorityclasses", pc.clone(), pc.clone()).is_empty());
        assert_eq!(
            run_update(
                s,
                "priorityclasses",
                json!({"metadata": {"name": "high"}, "value": 5, "preemptionPolicy": "Never"}),
                pc
            ),
            vec![
                "value: Forbidden: may not be changed in an update.",
                "preemptionPolicy: Invalid value: \"Never\": field is immutable"
            ]
        );
        assert_eq!(
            run(
                s,
                "priorityclasses",
                json!({"metadata": {"name": "x"}, "value": 2000000000})
            ),
            vec![
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
            ]
        );
        assert_eq!(
            run(s, "priorityclasses", json!({"metadata": {"name": "system-foo"}, "value": 1})),
            vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-foo is not a known system priority class"]
        );
        assert_eq!(
            run(
                "coordination.k8s.io",
                "leases",
                json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}})
            ),
            vec![
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        let st = "storage.k8s.io";
        let sc = json!({"provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer", "parameters": {"a": "b"}});
        assert!(run_update(st, "storageclasses", sc.clone(), sc.clone()).is_empty());
        assert_eq!(
            run(st, "storageclasses", json!({})),
            vec!["provisioner: Required value"]
        );
        assert_eq!(
            run_update(
                st,
                "storageclasses",
                json!({"provisioner": "x.io/y", "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"}),
                sc
            ),
            vec![
                "parameters: Forbidden: updates to parameters are forbidden.",
                "provisioner: Forbidden: updates to provisioner are forbidden.",
                "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
                "volumeBindingMode: Invalid value: \"Immediate\": field is immutable"
            ]
        );
    }

    #[test]
    fn policy_autoscaling_discovery_networkpolicy_quota_endpoints() {
        assert!(run(
            "policy",
            "poddisruptionbudgets",
            json!({"spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "x"}}}})
        )
        .is_empty());
        assert_eq!(
            run("policy", "poddisruptionbudgets", json!({"spec": {"maxUnavailable": "150%"}})),
            vec!["spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"]
        );
        let both = run(
            "policy",
            "poddisruptionbudgets",
            json!({"spec": {"minAvailable": 1, "maxUnavailable": -1}}),
        );
        assert_eq!(both.len(), 2);
        assert!(both[0].ends_with("minAvailable and maxUnavailable cannot be both set"));
        assert_eq!(
            both[1],
            "spec.maxUnavailable: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            run("autoscaling", "horizontalpodautoscalers", json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 5, "maxReplicas": 2}})),
            vec!["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]
        );
        let d = "discovery.k8s.io";
        let es = json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"]}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
        assert!(run_update(d, "endpointslices", es.clone(), es.clone()).is_empty());
        assert_eq!(
            run_update(d, "endpointslices", json!({"addressType": "IPv6", "endpoints": [{"addresses": ["127.0.0.1"]}]}), es),
            vec![
                "endpoints[0].addresses[0]: Invalid value: \"127.0.0.1\": must be a valid IPv6 address",
                "addressType: Invalid value: \"IPv6\": field is immutable"
            ]
        );
        assert_eq!(
            run("networking.k8s.io", "networkpolicies", json!({"spec": {"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP", "port": 0}], "from": [{}]}], "policyTypes": ["Ingress", "Sideways"]}})),
            vec![
                "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
                "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ingress[0].from[0]: Required value: must specify a peer",
                "spec.policyTypes[1]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\""
            ]
        );
        assert!(run("networking.k8s.io", "networkpolicies", json!({"spec": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]},
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]}})).is_empty());
        assert_eq!(
            run("", "resourcequotas", json!({"spec": {"hard": {"pods": "10", "foo": "1", "cpu": "-1"}}})),
            vec![
                "spec.hard[foo]: Invalid value: \"foo\": must be a standard resource type or fully qualified",
                "spec.hard[foo]: Invalid value: \"foo\": must be a standard resource for quota",
                "spec.hard[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
            ]
        );
        assert_eq!(
            run("", "endpoints", json!({"subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 70000}]}, {}]})),
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "subsets[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`"
            ]
        );
    }

    #[test]
    fn helpers() {
        let milli = |v: Value| quantity(&v).map(|q| q.milli_value());
        assert_eq!(milli(json!("1Gi")), Some(1073741824000));
        assert_eq!(milli(json!("500m")), Some(500));
        assert_eq!(milli(json!("1e3")), Some(1000000));
        assert_eq!(milli(json!("2E")), Some(2000000000000000000000));
        assert_eq!(milli(json!(5)), Some(5000));
        assert_eq!(milli(json!("x")), None);
        assert_eq!(quantity_text(&json!("1.5")), "1500m");
        assert!(parse_ip("010.001.2.3").is_some());
        assert!(parse_ip("1.2.3").is_none());
        assert!(parse_ip("fd00::1").is_some_and(|ip| is_v6(&ip)));
        assert!(parse_ip("::ffff:1.2.3.4").is_some_and(|ip| !is_v6(&ip)));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("fd00::/64").is_some());
        assert!(port_name_errors("http").is_empty());
        assert_eq!(
            port_name_errors("8080"),
            vec!["must contain at least one letter (a-z)"]
        );
        // odd JSON shapes never panic
        for plural in [
            "configmaps",
            "secrets",
            "nodes",
            "persistentvolumes",
            "persistentvolumeclaims",
            "endpoints",
            "resourcequotas",
            "namespaces",
        ] {
            for v in [
                json!(null),
                json!([]),
                json!({"spec": 3, "data": [1], "subsets": "x"}),
                json!({"spec": {"ports": [1, null]}}),
            ] {
                let mut c = Vec::new();
                validate("", plural, &v, &mut c);
                validate_update("", plural, &v, &v, &mut c);
            }
        }
    }
}
