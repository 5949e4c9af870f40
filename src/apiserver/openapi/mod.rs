//! The OpenAPI documents: `/openapi/v2` (JSON, or gnostic's protobuf form) and `/openapi/v3` (an index
//! of one document per group version, linked by content hash).
//!
//! Clients depend on them: kubectl finds out that the server validates fields itself from the
//! `fieldValidation` parameter of each kind's PATCH operation (found through
//! `x-kubernetes-group-version-kind`), which lets `kubectl create -f` run with its default
//! `--validate=strict`; `kubectl explain` prints the schemas' descriptions; client-side validation
//! (the items of a `kind: List`) and `kubectl apply`'s patch metadata read the v2 protobuf document.
//!
//! Everything is generated from the types the server serves: the catalog gives the paths; k8s-openapi's
//! schemars schemas (upstream's descriptions included, upstream's definition names) give the
//! definitions; `schema.rs` adds the `x-kubernetes-patch-*`, `x-kubernetes-list-*` and
//! `x-kubernetes-map-type` extensions from the same markers upstream's generator reads. Generation
//! takes tens of milliseconds, so it is done once, lazily, on the first request for a document: it
//! costs nothing at startup (cold start to /readyz is benchmarked).

mod kinds;
mod paths;
mod v2proto;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::apiserver::catalog::{Catalog, ResourceInfo, SharedCatalog};
use crate::apiserver::registry::schema::{self, TypeRef};

/// The media type of the protobuf form of `/openapi/v2`. kubectl asks with the older spelling
/// (`...spec.v2@v1.0+protobuf`), which Go's `mime` package cannot parse in a Content-Type, so upstream
/// answers with this one.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// The served resources, and the documents made from them on first use after each catalog change
/// (a CRD created, changed or deleted).
pub struct OpenApiV3 {
    catalog: Arc<SharedCatalog>,
    /// The documents and the catalog generation they were made from.
    docs: Mutex<Option<(u64, Arc<Docs>)>>,
}

struct Docs {
    v2_json: Vec<u8>,
    v2_proto: Vec<u8>,
    v2_etag: String,
    /// Index path (`api/v1`, `apis/apps/v1`) → (hash, JSON document).
    v3: BTreeMap<String, (String, Vec<u8>)>,
}

fn sha512_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA512, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02X}"))
        .collect()
}

fn base_path(r: &ResourceInfo) -> String {
    if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

// ---------------------------------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------------------------------

/// A schema generator for the v2 form (`#/definitions/` refs, k8s-openapi's schemas as they are).
fn v2_generator() -> SchemaGenerator {
    SchemaSettings::draft07()
        .with(|s| {
            s.transforms.clear();
            s.definitions_path = "/definitions".into();
            s.meta_schema = None;
        })
        .into_generator()
}

/// The definition name a schema's `$ref` points to (`#/definitions/<name>`).
pub fn definition_ref(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
}

/// Adds the built-in kind's schema to `gen`; its definition's name.
fn kind_schema(gen: &mut SchemaGenerator, api_version: &str, kind: &str) -> Option<String> {
    let i = kinds::KINDS
        .binary_search_by(|(a, k, _)| (*a, *k).cmp(&(api_version, kind)))
        .ok()?;
    let schema = (kinds::KINDS[i].2)(gen);
    definition_ref(schema.as_value()).map(str::to_string)
}

/// One built-in kind's schema: its definition's name and the definitions it refers to (v2 form),
/// generated when asked (error messages use it, off the good path).
pub fn kind_definitions(api_version: &str, kind: &str) -> Option<(String, Map<String, Value>)> {
    let mut gen = v2_generator();
    let name = kind_schema(&mut gen, api_version, kind)?;
    Some((name, gen.take_definitions(false)))
}

/// The definitions (v2 form: `#/definitions/` refs, `$ref` with sibling description) of every served
/// kind, its list kind and the meta types operations use, with upstream's extensions.
fn definitions(resources: &[ResourceInfo]) -> Map<String, Value> {
    let mut gen = v2_generator();
    // definition name → the group/version/kinds it serves as.
    let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut lists: Vec<(String, String, String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    let subresource_kinds = resources.iter().flat_map(|r| {
        r.subresources
            .iter()
            .map(|s| (s.group.clone(), s.version.clone(), s.kind.clone(), false))
    });
    let kinds = resources.iter().map(|r| {
        (
            r.group.clone(),
            r.version.clone(),
            r.kind.clone(),
            r.has_verb("list"),
        )
    });
    for (group, version, kind, list) in kinds.chain(subresource_kinds) {
        if !seen.insert((group.clone(), version.clone(), kind.clone())) {
            continue;
        }
        let av = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        let Some(name) = kind_schema(&mut gen, &av, &kind) else {
            continue;
        };
        gvks.entry(name.clone())
            .or_default()
            .push(gvk(&group, &version, &kind));
        if list {
            lists.push((name, group, version, kind));
        }
    }
    gen.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
    gen.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Patch>();
    gen.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
    let mut defs = gen.take_definitions(false);
    for (name, group, version, kind) in lists {
        let list_name = format!("{name}List");
        gvks.entry(list_name.clone()).or_default().push(gvk(
            &group,
            &version,
            &format!("{kind}List"),
        ));
        defs.entry(list_name)
            .or_insert_with(|| list_schema(&name, &kind));
    }
    // DeleteOptions is accepted by every group version, as upstream advertises.
    let versions: BTreeSet<(String, String)> = resources
        .iter()
        .map(|r| (r.group.clone(), r.version.clone()))
        .collect();
    gvks.insert(
        format!("{META}DeleteOptions"),
        versions
            .iter()
            .map(|(g, v)| gvk(g, v, "DeleteOptions"))
            .collect(),
    );
    for (name, def) in defs.iter_mut() {
        decorate(name, def);
        if let (Some(g), Some(o)) = (gvks.remove(name), def.as_object_mut()) {
            o.insert("x-kubernetes-group-version-kind".into(), Value::Array(g));
        }
    }
    for r in resources {
        if r.handler == crate::apiserver::catalog::ResourceHandler::ResourceMetrics {
            let name = format!("{METRICS}{}", r.kind);
            let mut def = metrics_schema(&r.kind);
            def["x-kubernetes-group-version-kind"] = json!([gvk(&r.group, &r.version, &r.kind)]);
            defs.insert(name.clone(), def);
            let mut list = list_schema(&name, &r.kind);
            list["x-kubernetes-group-version-kind"] =
                json!([gvk(&r.group, &r.version, &format!("{}List", r.kind))]);
            defs.insert(format!("{name}List"), list);
            defs.insert(
                format!("{METRICS}ContainerMetrics"),
                container_metrics_schema(),
            );
        }
        if let Some(c) = r.custom() {
            let name = custom_definition_name(r);
            defs.insert(name.clone(), custom_schema(r, c.schema.as_ref()));
            if r.has_verb("list") {
                let mut list = list_schema(&name, &r.kind);
                list["x-kubernetes-group-version-kind"] =
                    json!([gvk(&r.group, &r.version, &format!("{}List", r.kind))]);
                defs.insert(format!("{name}List"), list);
            }
        }
    }
    defs.sort_keys();
    defs
}

/// metrics-server's definitions (k8s.io/metrics), for its NodeMetrics and PodMetrics.
const METRICS: &str = "io.k8s.metrics.pkg.apis.metrics.v1beta1.";

fn usage_schema() -> Value {
    json!({"type": "object", "additionalProperties": {"$ref": format!("#/definitions/{QUANTITY}")},
           "description": "The memory usage is the memory working set."})
}

fn container_metrics_schema() -> Value {
    json!({
        "description": "ContainerMetrics sets resource usage metrics of a container.",
        "type": "object",
        "required": ["name", "usage"],
        "properties": {
            "name": {"type": "string", "description": "Container name corresponding to the one from pod.spec.containers."},
            "usage": usage_schema(),
        },
    })
}

/// NodeMetrics or PodMetrics as k8s.io/metrics publishes them.
fn metrics_schema(kind: &str) -> Value {
    let (what, field, measured) = if kind == "NodeMetrics" {
        ("node", "usage", usage_schema())
    } else {
        (
            "pod",
            "containers",
            json!({"type": "array", "items": {"$ref": format!("#/definitions/{METRICS}ContainerMetrics")},
                   "description": "Metrics for all containers are collected within the same time window."}),
        )
    };
    json!({
        "description": format!("{kind} sets resource usage metrics of a {what}."),
        "type": "object",
        "required": ["timestamp", "window", field],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"},
            "metadata": {"$ref": format!("#/definitions/{META}ObjectMeta"), "default": {},
                         "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"},
            "timestamp": {"$ref": format!("#/definitions/{META}Time"),
                          "description": "The following fields define time interval from which metrics were collected from the interval [Timestamp-Window, Timestamp]."},
            "window": {"type": "string"},
            field: measured,
        },
    })
}

/// Upstream's definition name of a custom resource: the group reversed, the version, the kind
/// (`stable.example.com/v1 CronTab` → `com.example.stable.v1.CronTab`).
fn custom_definition_name(r: &ResourceInfo) -> String {
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
}

/// A CRD version's schema as a v2 definition: `apiVersion`, `kind` and `metadata` (ObjectMeta) added as
/// upstream publishes them, the v3-only keywords dropped.
fn custom_schema(r: &ResourceInfo, schema: Option<&Value>) -> Value {
    let mut d = match schema {
        Some(s) => v3_only_dropped(s),
        None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    if !d.get("properties").is_some_and(Value::is_object) {
        d["properties"] = json!({});
    }
    let props = &mut d["properties"];
    props["apiVersion"] = json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"});
    props["kind"] = json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"});
    props["metadata"] = json!({"$ref": format!("#/definitions/{META}ObjectMeta"), "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"});
    d["type"] = json!("object");
    d["x-kubernetes-group-version-kind"] = json!([gvk(&r.group, &r.version, &r.kind)]);
    d
}

/// Drops what OpenAPI v2 cannot say (`nullable`, `anyOf`/`oneOf`/`allOf`/`not`, CEL rules), recursively.
fn v3_only_dropped(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "nullable"
                            | "anyOf"
                            | "oneOf"
                            | "allOf"
                            | "not"
                            | "x-kubernetes-validations"
                    )
                })
                .map(|(k, x)| {
                    // `properties` maps names to schemas: its keys are not keywords.
                    let x = if k == "properties" {
                        Value::Object(
                            x.as_object()
                                .into_iter()
                                .flatten()
                                .map(|(n, s)| (n.clone(), v3_only_dropped(s)))
                                .collect(),
                        )
                    } else {
                        v3_only_dropped(x)
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(v3_only_dropped).collect()),
        x => x.clone(),
    }
}

/// `<Kind>List`: k8s-openapi models lists generically (`List<T>`), upstream names each one.
fn list_schema(item: &str, kind: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"},
            "items": {"description": format!("List of {kind} objects."), "type": "array", "items": {"$ref": format!("#/definitions/{item}")}},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"},
            "metadata": {"$ref": format!("#/definitions/{META}ListMeta"), "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"},
        },
        "required": ["items"],
    })
}

/// Adds upstream's extensions to one definition, and gives the int-or-string types upstream's v2 form.
fn decorate(name: &str, def: &mut Value) {
    let Some(o) = def.as_object_mut() else { return };
    match name {
        INT_OR_STRING => {
            o.remove("x-kubernetes-int-or-string");
            o.insert("type".into(), "string".into());
            o.insert("format".into(), "int-or-string".into());
            return;
        }
        QUANTITY => {
            o.remove("x-kubernetes-int-or-string");
            o.insert("type".into(), "string".into());
            return;
        }
        _ => {}
    }
    // k8s-openapi lists `metadata` as required (its field is not an `Option`); upstream never does.
    if let Some(req) = o.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| r != "metadata");
        if req.is_empty() {
            o.remove("required");
        }
    }
    let t = TypeRef(static_name(name));
    if t.atomic() {
        o.insert("x-kubernetes-map-type".into(), "atomic".into());
    }
    let Some(props) = o.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (field, p) in props.iter_mut() {
        let (Some(f), Some(p)) = (t.field(field), p.as_object_mut()) else {
            continue;
        };
        let facts = f.facts;
        if let Some(k) = facts.patch_merge_key {
            p.insert("x-kubernetes-patch-merge-key".into(), k.into());
        }
        if let Some(s) = facts.patch_strategy {
            p.insert("x-kubernetes-patch-strategy".into(), s.into());
        }
        if let Some(l) = facts.list_type {
            p.insert("x-kubernetes-list-type".into(), l.into());
        }
        if !facts.list_map_keys.is_empty() {
            p.insert(
                "x-kubernetes-list-map-keys".into(),
                json!(facts.list_map_keys),
            );
        }
        if let Some(m) = facts.map_type {
            p.insert("x-kubernetes-map-type".into(), m.into());
        }
    }
}

/// The schema table's own `'static` copy of a definition name (names it does not know map to "").
fn static_name(name: &str) -> &'static str {
    schema::type_names()
        .find(|t| t.0 == name)
        .map(|t| t.0)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------
// v3
// ---------------------------------------------------------------------------------------------------

/// A v2 schema in v3 form: refs under `#/components/schemas/`, a `$ref` with siblings wrapped in
/// `allOf` (v3 ignores a `$ref`'s siblings), int-or-string marked as upstream's v3 does.
fn to_v3(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                if k == "$ref" {
                    let r = x
                        .as_str()
                        .unwrap_or_default()
                        .replace("#/definitions/", "#/components/schemas/");
                    out.insert(k.clone(), Value::String(r));
                } else {
                    out.insert(k.clone(), to_v3(x));
                }
            }
            if out.len() > 1 {
                if let Some(r) = out.remove("$ref") {
                    out.insert("allOf".into(), json!([{"$ref": r}]));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v3).collect()),
        x => x.clone(),
    }
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = definition_ref(v) {
                out.insert(r.to_string());
            }
            o.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// A v2 operation in v3 form (parameters with `schema`, request body and responses with `content`).
fn op_to_v3(op: &Value) -> Value {
    let Some(o) = op.as_object() else {
        return op.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        match k.as_str() {
            "consumes" | "produces" | "schemes" => {}
            "parameters" => {
                let mut params = Vec::new();
                for p in v.as_array().into_iter().flatten() {
                    if p["in"] == "body" {
                        let content = media_content(o, "consumes", &p["schema"]);
                        out.insert(
                            "requestBody".into(),
                            json!({"content": content, "required": true}),
                        );
                    } else {
                        params.push(param_to_v3(p));
                    }
                }
                out.insert("parameters".into(), Value::Array(params));
            }
            "responses" => {
                let mut rs = Map::new();
                for (code, r) in v.as_object().into_iter().flatten() {
                    let mut nr = json!({"description": r["description"].clone()});
                    if let Some(s) = r.get("schema") {
                        nr["content"] = Value::Object(media_content(o, "produces", s));
                    }
                    rs.insert(code.clone(), nr);
                }
                out.insert("responses".into(), Value::Object(rs));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A v3 `content` map: each media type a v2 operation lists under `types` (`consumes` for the
/// request body, `produces` for a response) with `schema` in v3 form.
fn media_content(op: &Map<String, Value>, types: &str, schema: &Value) -> Map<String, Value> {
    let schema = to_v3(schema);
    op.get(types)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|t| (t.to_string(), json!({"schema": schema.clone()})))
        .collect()
}

fn param_to_v3(p: &Value) -> Value {
    let mut o = p.as_object().cloned().unwrap_or_default();
    let ty = o.remove("type").unwrap_or_else(|| "string".into());
    let unique = o.remove("uniqueItems").unwrap_or(Value::Bool(true));
    o.insert("schema".into(), json!({"type": ty, "uniqueItems": unique}));
    Value::Object(o)
}

fn v3_document(paths: &Map<String, Value>, defs: &Map<String, Value>) -> Value {
    let mut v3_paths = Map::new();
    let mut wanted = BTreeSet::new();
    for (p, item) in paths {
        collect_refs(item, &mut wanted);
        let mut ni = Map::new();
        for (k, v) in item.as_object().into_iter().flatten() {
            if k == "parameters" {
                ni.insert(
                    k.clone(),
                    Value::Array(
                        v.as_array()
                            .into_iter()
                            .flatten()
                            .map(param_to_v3)
                            .collect(),
                    ),
                );
            } else {
                ni.insert(k.clone(), op_to_v3(v));
            }
        }
        v3_paths.insert(p.clone(), Value::Object(ni));
    }
    // The closure of the definitions the paths refer to.
    let mut schemas = BTreeMap::new();
    let mut todo: Vec<String> = wanted.into_iter().collect();
    while let Some(n) = todo.pop() {
        if schemas.contains_key(&n) {
            continue;
        }
        let Some(d) = defs.get(&n) else { continue };
        let mut more = BTreeSet::new();
        collect_refs(d, &mut more);
        todo.extend(more);
        let mut d3 = to_v3(d);
        if n == INT_OR_STRING {
            d3["x-kubernetes-int-or-string"] = Value::Bool(true);
        }
        schemas.insert(n, d3);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": v3_paths,
        "components": {"schemas": schemas},
    })
}

// ---------------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------------

impl OpenApiV3 {
    /// Serves what `catalog` serves at the time of each request; documents are made on first use and
    /// remade after the catalog changes.
    pub fn new(catalog: Arc<SharedCatalog>) -> Self {
        OpenApiV3 {
            catalog,
            docs: Mutex::new(None),
        }
    }

    /// The documents of a fixed catalog.
    pub fn generate(catalog: &Catalog) -> Self {
        Self::new(Arc::new(SharedCatalog::new(catalog.clone())))
    }

    fn docs(&self) -> Arc<Docs> {
        let generation = self.catalog.generation();
        let mut cached = self.docs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, d)) = cached.as_ref() {
            if *g == generation {
                return d.clone();
            }
        }
        let d = Arc::new(build(self.catalog.load().all()));
        *cached = Some((generation, d.clone()));
        d
    }

    /// `/openapi/v3`: the index.
    pub fn index(&self) -> Value {
        let paths: Map<String, Value> = self
            .docs()
            .v3
            .iter()
            .map(|(k, (hash, _))| {
                (
                    k.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={hash}")}),
                )
            })
            .collect();
        json!({"paths": paths})
    }

    /// `/openapi/v3/<path>`.
    pub fn document(&self, path: &str) -> Option<Vec<u8>> {
        self.docs().v3.get(path).map(|(_, b)| b.clone())
    }

    /// The hash the index links `/openapi/v3/<path>` with.
    pub fn hash(&self, path: &str) -> Option<String> {
        self.docs().v3.get(path).map(|(h, _)| h.clone())
    }

    /// `/openapi/v2` as JSON.
    pub fn v2_json(&self) -> Vec<u8> {
        self.docs().v2_json.clone()
    }

    /// `/openapi/v2` as gnostic's `openapi.v2.Document`.
    pub fn v2_protobuf(&self) -> Vec<u8> {
        self.docs().v2_proto.clone()
    }

    /// Answers a request for `/openapi/v2`, `/openapi/v3` or `/openapi/v3/<path>` (the path without a
    /// trailing slash); `None` for an unknown document.
    pub fn serve(&self, path: &str, query: Option<&str>, headers: &HeaderMap) -> Option<Response> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let if_none_match = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok());
        if path == "/openapi/v2" {
            let docs = self.docs();
            let etag = format!("\"{}\"", docs.v2_etag);
            if if_none_match == Some(etag.as_str()) {
                return Some(cached(
                    StatusCode::NOT_MODIFIED,
                    "",
                    Vec::new(),
                    &etag,
                    false,
                ));
            }
            let proto = accept.contains("com.github.proto-openapi.spec.v2@v1.0+protobuf")
                || accept.contains("com.github.proto-openapi.spec.v2.v1.0+protobuf");
            let (ct, body) = if proto {
                (V2_PROTOBUF, &docs.v2_proto)
            } else {
                ("application/json", &docs.v2_json)
            };
            return Some(cached(StatusCode::OK, ct, body.clone(), &etag, false));
        }
        if path == "/openapi/v3" {
            let body = serde_json::to_vec(&self.index()).unwrap_or_default();
            return Some(cached(StatusCode::OK, "application/json", body, "", false));
        }
        let rest = path.strip_prefix("/openapi/v3/")?;
        let docs = self.docs();
        let (hash, doc) = docs.v3.get(rest)?;
        let asked = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "hash")
                .map(|(_, v)| v.into_owned())
        });
        let etag = format!("\"{hash}\"");
        match asked {
            // A stale hash: upstream redirects to the current one.
            Some(h) if h != *hash => {
                let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("/openapi/v3/{rest}?hash={hash}")) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                Some(r)
            }
            Some(_) => Some(cached(
                StatusCode::OK,
                "application/json",
                doc.clone(),
                &etag,
                true,
            )),
            None if if_none_match == Some(etag.as_str()) => Some(cached(
                StatusCode::NOT_MODIFIED,
                "",
                Vec::new(),
                &etag,
                false,
            )),
            None => Some(cached(
                StatusCode::OK,
                "application/json",
                doc.clone(),
                &etag,
                false,
            )),
        }
    }
}

/// A response with upstream's caching headers: a hashed URL's content never changes (`public,
/// immutable`, a year's expiry); anything else must be revalidated (`no-cache, private`, with an ETag).
fn cached(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
    etag: &str,
    immutable: bool,
) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    if !content_type.is_empty() {
        if let Ok(v) = HeaderValue::from_str(content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
    }
    if !etag.is_empty() {
        if let Ok(v) = HeaderValue::from_str(etag) {
            h.insert(header::ETAG, v);
        }
    }
    if immutable {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
        let expires = chrono::Utc::now() + chrono::Duration::days(365);
        if let Ok(v) =
            HeaderValue::from_str(&expires.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        {
            h.insert(header::EXPIRES, v);
        }
    } else {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
    }
    r
}

fn build(resources: &[ResourceInfo]) -> Docs {
    let started = std::time::Instant::now();
    let defs = definitions(resources);
    // (group, version, kind) → definition name, from the definitions' x-kubernetes-group-version-kind.
    let mut def_of: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for (name, d) in &defs {
        for g in d["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let s = |k: &str| g[k].as_str().unwrap_or_default().to_string();
            def_of
                .entry((s("group"), s("version"), s("kind")))
                .or_insert_with(|| name.clone());
        }
    }
    let mut all_paths = Map::new();
    let mut by_gv: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let lookup = |g: &str, v: &str, k: &str| {
        def_of
            .get(&(g.to_string(), v.to_string(), k.to_string()))
            .cloned()
    };
    for r in resources {
        let key = base_path(r).trim_start_matches('/').to_string();
        let gv_paths = by_gv.entry(key).or_default();
        paths::ResourcePaths::new(r, &lookup).build(gv_paths);
    }
    for p in by_gv.values() {
        all_paths.extend(p.clone());
    }
    all_paths.sort_keys();
    let v2 = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": all_paths,
        "definitions": defs,
    });
    let v2_json = serde_json::to_vec(&v2).unwrap_or_default();
    let v2_proto = v2proto::encode(&v2);
    let v2_etag = sha512_hex(&v2_json);
    let mut v3 = BTreeMap::new();
    for (key, paths) in &by_gv {
        let bytes = serde_json::to_vec(&v3_document(paths, &defs)).unwrap_or_default();
        v3.insert(key.clone(), (sha512_hex(&bytes), bytes));
    }
    tracing::debug!(
        "openapi documents generated in {:?}: v2 {} bytes JSON, {} bytes protobuf, {} v3 documents",
        started.elapsed(),
        v2_json.len(),
        v2_proto.len(),
        v3.len()
    );
    Docs {
        v2_json,
        v2_proto,
        v2_etag,
        v3,
    }
}

// ---------------------------------------------------------------------------------------------------
// The committed copies
// ---------------------------------------------------------------------------------------------------

/// The documents a server with only the built-in kinds serves, as the files committed under the
/// top-level `openapi/` folder (upstream keeps the same in `api/openapi-spec/`), so that a change to
/// the API surface shows as a diff: `swagger.json` (`/openapi/v2`), `v3/index.json` (`/openapi/v3`)
/// and one `v3/<path>_openapi.json` per group version, its path's `/` spelled `__` as upstream names
/// them (`v3/api__v1_openapi.json`, `v3/apis__apps__v1_openapi.json`). Pretty-printed with every
/// object's keys sorted, so the files do not depend on generation order. Returns (path relative to
/// `openapi/`, content), sorted by path; `tests/openapi_documents.rs` compares them with the files.
pub fn builtin_spec_files() -> Vec<(String, String)> {
    let api = OpenApiV3::generate(&Catalog::builtin());
    let docs = api.docs();
    let mut files = Vec::new();
    let v2: Value = serde_json::from_slice(&docs.v2_json).unwrap_or_default();
    files.push(("swagger.json".to_string(), pretty_sorted(v2)));
    files.push(("v3/index.json".to_string(), pretty_sorted(api.index())));
    for (path, (_, bytes)) in &docs.v3 {
        let doc: Value = serde_json::from_slice(bytes).unwrap_or_default();
        let name = format!("v3/{}_openapi.json", path.replace('/', "__"));
        files.push((name, pretty_sorted(doc)));
    }
    files.sort();
    files
}

/// `v` as two-space-indented JSON with a final newline, every object's keys sorted.
fn pretty_sorted(mut v: Value) -> String {
    fn sort(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.sort_keys();
                m.values_mut().for_each(sort);
            }
            Value::Array(a) => a.iter_mut().for_each(sort),
            _ => {}
        }
    }
    sort(&mut v);
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
