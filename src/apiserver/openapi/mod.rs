//! OpenAPI v3 documents generated from the catalog: one per group version, plus the index that links to
//! them by content hash.
//!
//! kubectl reads these to learn that the server validates fields itself (the `fieldValidation` parameter
//! on each kind's PATCH operation, found through `x-kubernetes-group-version-kind`), which is what lets
//! `kubectl create -f` run with its default `--validate=strict`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde_json::{json, Value};

use super::catalog::{Catalog, ResourceInfo};

/// The generated documents, keyed by their index path (`api/v1`, `apis/apps/v1`).
pub struct OpenApiV3 {
    docs: BTreeMap<String, (String, Vec<u8>)>,
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query_param("dryRun", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
        query_param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict"),
    ]
}

fn gvk(r: &ResourceInfo) -> Value {
    json!({"group": r.group, "version": r.version, "kind": r.kind})
}

fn resource_paths(r: &ResourceInfo, paths: &mut serde_json::Map<String, Value>) {
    let base = if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
    let collection = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let op = |verb: &str, params: Vec<Value>| {
        json!({
            "description": format!("{verb} {}", r.kind),
            "operationId": format!("{verb}{}", r.kind),
            "parameters": params,
            "x-kubernetes-action": verb,
            "x-kubernetes-group-version-kind": gvk(r),
            "responses": {"200": {"description": "OK"}},
        })
    };
    let mut coll = serde_json::Map::new();
    if r.has_verb("list") {
        coll.insert("get".into(), op("list", vec![]));
    }
    if r.has_verb("create") {
        coll.insert("post".into(), op("post", write_params()));
    }
    if !coll.is_empty() {
        paths.insert(collection, Value::Object(coll));
    }
    let mut it = serde_json::Map::new();
    if r.has_verb("get") {
        it.insert("get".into(), op("get", vec![]));
    }
    if r.has_verb("update") {
        it.insert("put".into(), op("put", write_params()));
    }
    if r.has_verb("patch") {
        let mut p = write_params();
        p.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
        it.insert("patch".into(), op("patch", p));
    }
    if r.has_verb("delete") {
        it.insert("delete".into(), op("delete", vec![query_param("dryRun", "dry run")]));
    }
    if !it.is_empty() {
        paths.insert(item, Value::Object(it));
    }
}

impl OpenApiV3 {
    pub fn generate(catalog: &Catalog) -> Self {
        let mut docs = BTreeMap::new();
        for (group, versions) in catalog.groups() {
            for version in versions {
                let mut paths = serde_json::Map::new();
                for r in catalog.all().iter().filter(|r| r.group == group && r.version == version) {
                    resource_paths(r, &mut paths);
                }
                let doc = json!({
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": "v1.33.0"},
                    "paths": paths,
                    "components": {"schemas": {}},
                });
                let bytes = serde_json::to_vec(&doc).unwrap_or_default();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                let hash = format!("{:016X}{:016X}", h.finish(), bytes.len());
                let key = if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") };
                docs.insert(key, (hash, bytes));
            }
        }
        OpenApiV3 { docs }
    }

    /// `/openapi/v3`: the index.
    pub fn index(&self) -> Value {
        let paths: serde_json::Map<String, Value> = self
            .docs
            .iter()
            .map(|(k, (hash, _))| (k.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={hash}")})))
            .collect();
        json!({"paths": paths})
    }

    /// `/openapi/v3/<path>`.
    pub fn document(&self, path: &str) -> Option<&[u8]> {
        self.docs.get(path).map(|(_, b)| b.as_slice())
    }
}
