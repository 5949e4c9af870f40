//! CustomResourceDefinitions: how a stored CRD becomes served API resources.
//!
//! Upstream's apiextensions-apiserver watches CRDs and serves one REST storage per served version. Here
//! the generic registry does the serving; what a CRD contributes is a catalog row per served version
//! ([`rows`]) whose normalizer is a [`CustomVersion`]: the version's structural schema ([`schema`]), its
//! printer columns ([`table`]) and scale paths ([`scale`]). The registry calls [`prepare`] on every
//! CRD write (validation and the status upstream's controllers would set: accepted names, stored
//! versions, `NamesAccepted` and `Established`), then puts the rows into the shared catalog before
//! answering, so `kubectl apply -f crd.yaml && kubectl get <kind>` works without waiting.
//!
//! Several versions: every row shares the storage prefix, objects are stored as the storage version,
//! and the registry converts where a request's version and an object's differ ([`conversion`]:
//! `None` rewrites `apiVersion`, `Webhook` calls the CRD's conversion webhook). A deprecated version's
//! row carries upstream's warning ([`CustomVersion::deprecation`]).

pub mod conversion;
mod formats;
#[cfg(test)]
mod lifecycle_tests;
pub mod scale;
pub mod schema;
pub mod table;
pub mod validation_rules;

use std::sync::Arc;

use serde_json::{json, Value};

use super::catalog::{
    compare_kube_versions, Normalizer, ResourceHandler, ResourceInfo, SubresourceHandler,
    SubresourceInfo,
};
use super::status::Cause;
use crate::apiserver::registry::strategy::apiextensions::CustomResources;

pub const GROUP: &str = "apiextensions.k8s.io";
pub const PLURAL: &str = "customresourcedefinitions";
/// Where CRDs are stored.
pub const STORAGE_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// Whether `info` is the CustomResourceDefinition resource itself.
pub fn is_crd(info: &ResourceInfo) -> bool {
    info.group == GROUP && info.plural == PLURAL
}

/// One printer column (`additionalPrinterColumns` item).
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// `subresources.scale`: where the replica counts and the selector live.
#[derive(Clone, Debug)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// What the CRD says about one served version of a custom resource.
#[derive(Clone, Debug)]
pub struct CustomVersion {
    /// The CRD's name (`<plural>.<group>`).
    pub crd_name: String,
    /// The version its objects are stored as (the one marked `storage: true`).
    pub storage_version: String,
    /// `openAPIV3Schema`, if given.
    pub schema: Option<Value>,
    /// `None`: upstream's default columns (Name, Age).
    pub columns: Option<Vec<PrinterColumn>>,
    pub scale: Option<ScalePaths>,
    /// How objects move between the CRD's versions (`spec.conversion`).
    pub conversion: conversion::Strategy,
    /// The `Warning` a deprecated version's requests get (`deprecationWarning`, else upstream's
    /// default text).
    pub deprecation: Option<String>,
    /// The schema's `x-kubernetes-validations`, compiled once per version (`None`: there are none).
    pub rules: Option<Arc<validation_rules::Rules>>,
}

impl CustomVersion {
    /// Prunes unknown fields and applies defaults.
    pub fn normalize(&self, mut v: Value) -> Value {
        if let Some(s) = &self.schema {
            schema::prune_root(&mut v, s);
            schema::default(&mut v, s);
        }
        v
    }

    /// The schema's validation of an object about to be stored.
    pub fn validate(&self, obj: &Value) -> Vec<Cause> {
        match &self.schema {
            Some(s) => schema::validate_root(obj, s),
            None => Vec::new(),
        }
    }

    /// The schema's validation rules (CEL) on an object about to be stored; `old` is the stored
    /// object on updates (transition rules and ratcheting need it). `prior` are the failures found
    /// so far: after a type error the rules are not run, as upstream.
    pub fn validate_rules(&self, obj: &Value, old: Option<&Value>, prior: &[Cause]) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let Some(rules) = &self.rules {
            if validation_rules::has_blocking_error(prior) {
                causes.push(validation_rules::not_checked());
            } else {
                rules.validate(obj, old, &mut causes);
            }
        }
        causes
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn strings_at(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A version's setting: per version in `versions[]`, else the CRD-wide (v1beta1-era) one under `spec`.
fn version_or_spec<'a>(crd: &'a Value, version: &'a Value, field: &str) -> Option<&'a Value> {
    version
        .get(field)
        .filter(|x| !x.is_null())
        .or_else(|| crd.pointer(&format!("/spec/{field}")))
        .filter(|x| !x.is_null())
}

/// The catalog rows of a CRD: one per served version, with the full verb set, the status and scale
/// subresources it declares and upstream's storage prefix `/registry/<group>/<plural>/`.
pub fn rows(crd: &Value) -> Vec<ResourceInfo> {
    if !names_accepted(crd) {
        // Its names conflict with what is already served: nothing of it is served.
        return Vec::new();
    }
    let group = str_at(crd, "/spec/group").to_string();
    let plural = str_at(crd, "/spec/names/plural").to_string();
    let kind = str_at(crd, "/spec/names/kind").to_string();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular = match str_at(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    let crd_name = str_at(crd, "/metadata/name").to_string();
    let storage_version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("storage") == Some(&Value::Bool(true)))
        .map(|v| str_at(v, "/name").to_string())
        .unwrap_or_default();
    let conversion = conversion::Strategy::of(crd);
    let mut out = Vec::new();
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("served") != Some(&Value::Bool(true)) {
            continue;
        }
        let version = str_at(v, "/name").to_string();
        if version.is_empty() {
            continue;
        }
        let subs = version_or_spec(crd, v, "subresources");
        let mut subresources = Vec::new();
        let has = |name: &str| subs.and_then(|s| s.get(name)).is_some_and(|x| !x.is_null());
        let scale = if has("scale") {
            subresources.push(SubresourceInfo {
                name: "scale".into(),
                group: "autoscaling".into(),
                version: "v1".into(),
                kind: "Scale".into(),
                verbs: strs(&["get", "patch", "update"]),
                handler: SubresourceHandler::Scale,
            });
            let s = subs
                .and_then(|s| s.get("scale"))
                .cloned()
                .unwrap_or_default();
            Some(ScalePaths {
                spec_replicas: str_at(&s, "/specReplicasPath").to_string(),
                status_replicas: str_at(&s, "/statusReplicasPath").to_string(),
                label_selector: Some(str_at(&s, "/labelSelectorPath").to_string())
                    .filter(|p| !p.is_empty()),
            })
        } else {
            None
        };
        if has("status") {
            subresources.push(SubresourceInfo {
                name: "status".into(),
                group: group.clone(),
                version: version.clone(),
                kind: kind.clone(),
                verbs: strs(&["get", "patch", "update"]),
                handler: SubresourceHandler::Store,
            });
        }
        let columns = version_or_spec(crd, v, "additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: str_at(c, "/name").to_string(),
                        type_: str_at(c, "/type").to_string(),
                        format: str_at(c, "/format").to_string(),
                        description: str_at(c, "/description").to_string(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: str_at(c, "/jsonPath").to_string(),
                    })
                    .collect()
            });
        let schema = version_or_spec(crd, v, "schema")
            .and_then(|s| s.get("openAPIV3Schema"))
            .cloned();
        let rules = schema
            .as_ref()
            .and_then(validation_rules::Rules::new)
            .map(Arc::new);
        let deprecation = (v.get("deprecated") == Some(&Value::Bool(true))).then(|| {
            match v.get("deprecationWarning").and_then(Value::as_str) {
                Some(w) => w.to_string(),
                None => default_deprecation_warning(crd, &version),
            }
        });
        let custom = Arc::new(CustomVersion {
            crd_name: crd_name.clone(),
            storage_version: storage_version.clone(),
            schema,
            columns,
            scale,
            conversion: conversion.clone(),
            deprecation,
            rules,
        });
        out.push(ResourceInfo {
            group: group.clone(),
            version,
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: strings_at(crd, "/spec/names/shortNames"),
            categories: strings_at(crd, "/spec/names/categories"),
            verbs: strs(&[
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ]),
            subresources,
            storage_prefix: format!("/registry/{group}/{plural}/"),
            field_selectors: Vec::new(),
            strategy: Arc::new(CustomResources(custom.clone())),
            normalize: Some(Normalizer::Custom(custom)),
            handler: ResourceHandler::Store,
            conversion: None,
        });
    }
    out
}

/// Upstream's `defaultDeprecationWarning`: `<group>/<version> <Kind> is deprecated`, and `; use
/// <group>/<version> <Kind>` naming the served, non-deprecated version of highest priority among
/// those above the deprecated one.
fn default_deprecation_warning(crd: &Value, deprecated: &str) -> String {
    use std::cmp::Ordering;
    let group = str_at(crd, "/spec/group");
    let kind = str_at(crd, "/spec/names/kind");
    let mut msg = format!("{group}/{deprecated} {kind} is deprecated");
    let best = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| {
            v.get("served") == Some(&Value::Bool(true))
                && v.get("deprecated") != Some(&Value::Bool(true))
        })
        .map(|v| str_at(v, "/name"))
        // compare_kube_versions orders higher priority first (Less).
        .filter(|n| compare_kube_versions(deprecated, n) == Ordering::Greater)
        .min_by(|a, b| compare_kube_versions(a, b));
    if let Some(best) = best {
        msg.push_str(&format!("; use {group}/{best} {kind}"));
    }
    msg
}

/// The rows of every stored CRD, read straight from storage: called at startup before the watch cache
/// loads, so the custom resources' objects are loaded with everything else.
pub async fn stored_rows(
    store: &dyn crate::storage::Store,
) -> crate::storage::Result<Vec<ResourceInfo>> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = store
            .range(STORAGE_PREFIX, start.as_deref(), 500, 0)
            .await?;
        for kv in &page.kvs {
            match serde_json::from_slice::<Value>(&kv.value) {
                Ok(crd) => out.extend(rows(&crd)),
                Err(e) => tracing::warn!("undecodable CRD at {}: {e}", kv.key),
            }
        }
        match (page.more, page.kvs.last()) {
            (true, Some(last)) => start = Some(format!("{}\0", last.key)),
            _ => return Ok(out),
        }
    }
}

/// Whether a CRD's `NamesAccepted` condition is not False (a CRD written before conditions existed
/// counts as accepted).
/// A CRD's `spec.group` and `spec.names.plural` ("" when missing).
pub fn group_and_plural(crd: &Value) -> (&str, &str) {
    (
        str_at(crd, "/spec/group"),
        str_at(crd, "/spec/names/plural"),
    )
}

pub fn names_accepted(crd: &Value) -> bool {
    !crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "NamesAccepted" && c["status"] == "False")
}

/// The storage prefix of a CRD's custom resources (all versions share it).
pub fn storage_prefix(crd: &Value) -> Option<String> {
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    (!group.is_empty() && !plural.is_empty()).then(|| format!("/registry/{group}/{plural}/"))
}

const APPROVAL_ANNOTATION: &str = "api-approved.kubernetes.io";

/// Upstream's `IsProtectedCommunityGroup`: groups of the Kubernetes project itself.
pub fn is_protected_group(group: &str) -> bool {
    group == "k8s.io"
        || group.ends_with(".k8s.io")
        || group == "kubernetes.io"
        || group.ends_with(".kubernetes.io")
}

/// Upstream's `validateAPIApproval`: a CRD in a protected group needs the `api-approved.kubernetes.io`
/// annotation, with a URL or a reason starting with "unapproved".
fn api_approval(crd: &Value) -> Option<Cause> {
    if !is_protected_group(str_at(crd, "/spec/group")) {
        return None;
    }
    let field = format!("metadata.annotations[{APPROVAL_ANNOTATION}]");
    let value = crd
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(APPROVAL_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or("");
    if value.is_empty() {
        return Some(Cause::required_detail(
            &field,
            &format!("protected groups must have approval annotation {APPROVAL_ANNOTATION:?}, see https://github.com/kubernetes/enhancements/pull/1111"),
        ));
    }
    if value.starts_with("unapproved") {
        return None;
    }
    // Go's url.ParseRequestURI with a scheme and a host.
    let is_url = value.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !rest.starts_with('/')
            && !value.contains(char::is_whitespace)
    });
    if is_url {
        return None;
    }
    Some(Cause::invalid(
        &field,
        &json!(value),
        &format!("protected groups must have approval annotation {APPROVAL_ANNOTATION:?} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"),
    ))
}

/// Upstream's CRD validation, the basics: names, group, scope, versions (exactly one storage version),
/// and the API approval of protected groups.
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = str_at(crd, "/metadata/name");
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if !name.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if str_at(crd, "/spec/names/kind").is_empty() {
        causes.push(Cause::required("spec.names.kind"));
    }
    if str_at(crd, "/spec/names/listKind").is_empty() {
        causes.push(Cause::required("spec.names.listKind"));
    }
    match str_at(crd, "/spec/scope") {
        "Namespaced" | "Cluster" => {}
        "" => causes.push(Cause::required("spec.scope")),
        other => causes.push(Cause::unsupported(
            "spec.scope",
            &json!(other),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::invalid(
            "spec.versions",
            &json!(null),
            "must have exactly one version marked as storage version",
        ));
        return causes;
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage") == Some(&Value::Bool(true)))
        .count();
    if storage != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if str_at(v, "/name").is_empty() {
            causes.push(Cause::required(&format!("spec.versions[{i}].name")));
        }
    }
    causes.extend(conversion::validate(crd));
    causes.extend(validation_rules::check_crd(crd));
    causes.extend(api_approval(crd));
    causes
}

/// Upstream's defaults (`names.singular`, `names.listKind`, `conversion.strategy`), then what its naming
/// and establishing controllers would set: `status.acceptedNames`, `status.storedVersions` (kept, plus
/// the current storage version) and the `NamesAccepted` and `Established` conditions (keeping their
/// transition times when already true).
pub fn prepare(crd: &mut Value, now: &str) {
    prepare_with(crd, now, None)
}

/// [`prepare`], for a CRD whose plural is `plural_conflict` (Some: upstream's naming controller's
/// message, e.g. `"foos" is already in use`) taken by a resource already served: `NamesAccepted` and
/// `Established` are False and the plural is not accepted, so nothing of the CRD is served.
pub fn prepare_with(crd: &mut Value, now: &str, plural_conflict: Option<&str>) {
    let kind = str_at(crd, "/spec/names/kind").to_string();
    if let Some(names) = crd
        .pointer_mut("/spec/names")
        .and_then(Value::as_object_mut)
    {
        if !kind.is_empty() {
            if names
                .get("singular")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                names.insert("singular".into(), json!(kind.to_lowercase()));
            }
            if names
                .get("listKind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                names.insert("listKind".into(), json!(format!("{kind}List")));
            }
        }
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        if !spec.get("conversion").is_some_and(Value::is_object) {
            spec.insert("conversion".into(), json!({"strategy": "None"}));
        }
    }
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(str_at(crd, "/spec/names/kind").to_lowercase());
    }
    let mut stored = strings_at(crd, "/status/storedVersions");
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("storage") == Some(&Value::Bool(true)) {
            let n = str_at(v, "/name").to_string();
            if !n.is_empty() && !stored.contains(&n) {
                stored.push(n);
            }
        }
    }
    let old = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let since = |ty: &str| {
        old.iter()
            .find(|c| c["type"] == ty && c["status"] == "True")
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now))
    };
    let conditions = match plural_conflict {
        None => json!([
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": since("NamesAccepted"),
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": since("Established"),
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ]),
        Some(message) => {
            // The plural stays what was accepted before (nothing, for a new CRD).
            accepted["plural"] = crd
                .pointer("/status/acceptedNames/plural")
                .cloned()
                .unwrap_or(json!(""));
            json!([
                {"type": "NamesAccepted", "status": "False", "lastTransitionTime": now,
                 "reason": "PluralConflict", "message": message},
                {"type": "Established", "status": "False", "lastTransitionTime": now,
                 "reason": "NotAccepted", "message": "not all names are accepted"},
            ])
        }
    };
    crd["status"] = json!({
        "acceptedNames": accepted,
        "conditions": conditions,
        "storedVersions": stored,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn crontab_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "listKind": "CronTabList", "shortNames": ["ct"]},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.labelSelector"}},
                    "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]
                }, {"name": "v1beta1", "served": false, "storage": false}]
            }
        })
    }

    #[test]
    fn rows_of_a_crd() {
        let rows = rows(&crontab_crd());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.kind.as_str()),
            ("stable.example.com", "v1", "CronTab")
        );
        assert_eq!(r.storage_prefix, "/registry/stable.example.com/crontabs/");
        assert_eq!(r.short_names, vec!["ct"]);
        assert!(r.namespaced);
        assert!(r.subresource("status").is_some());
        assert_eq!(
            r.subresource("scale").map(|s| s.kind.as_str()),
            Some("Scale")
        );
        let c = r.custom().expect("custom");
        assert_eq!(
            c.scale.as_ref().map(|s| s.spec_replicas.as_str()),
            Some(".spec.replicas")
        );
        assert_eq!(c.columns.as_ref().map(Vec::len), Some(1));
        let pruned = c.normalize(json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "a"}, "spec": {"replicas": 1, "x": 2}, "y": 3}));
        assert_eq!(pruned["spec"], json!({"replicas": 1}));
        assert!(pruned.get("y").is_none());
    }

    #[test]
    fn versions_carry_conversion_and_deprecation() {
        let mut crd = crontab_crd();
        crd["spec"]["versions"] = json!([
            {"name": "v1", "served": true, "storage": true, "deprecated": true},
            {"name": "v2", "served": true, "storage": false},
            {"name": "v3alpha1", "served": true, "storage": false, "deprecated": true,
             "deprecationWarning": "v3alpha1 is going away"},
            {"name": "v4", "served": false, "storage": false},
        ]);
        crd["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {
            "clientConfig": {"url": "https://h/c"}, "conversionReviewVersions": ["v1"]}});
        let rows = rows(&crd);
        let warning = |v: &str| {
            rows.iter()
                .find(|r| r.version == v)
                .and_then(|r| r.custom())
                .and_then(|c| c.deprecation.clone())
        };
        assert_eq!(rows.len(), 3, "v4 is not served");
        assert_eq!(
            warning("v1").as_deref(),
            Some("stable.example.com/v1 CronTab is deprecated; use stable.example.com/v2 CronTab")
        );
        assert_eq!(warning("v2"), None);
        assert_eq!(
            warning("v3alpha1").as_deref(),
            Some("v3alpha1 is going away")
        );
        assert!(rows.iter().all(|r| {
            let c = r.custom().expect("custom");
            c.storage_version == "v1"
                && matches!(c.conversion, conversion::Strategy::Webhook { .. })
        }));
        // Nothing served above it: no replacement named.
        assert_eq!(
            default_deprecation_warning(&crd, "v2"),
            "stable.example.com/v2 CronTab is deprecated"
        );
        assert!(validate(&crd).is_empty());
    }

    #[test]
    fn validation_and_status() {
        assert!(validate(&crontab_crd()).is_empty());
        let mut bad = crontab_crd();
        bad["metadata"]["name"] = json!("x");
        let msgs: Vec<String> = validate(&bad).iter().map(Cause::display).collect();
        assert_eq!(
            msgs,
            vec![r#"metadata.name: Invalid value: "x": must be spec.names.plural+"."+spec.group"#]
        );
        let mut two = crontab_crd();
        two["spec"]["versions"][1]["storage"] = json!(true);
        assert_eq!(validate(&two).len(), 1);
        let mut crd = crontab_crd();
        prepare(&mut crd, "2026-01-01T00:00:00Z");
        assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
        assert_eq!(crd["status"]["acceptedNames"]["shortNames"], json!(["ct"]));
    }
}
