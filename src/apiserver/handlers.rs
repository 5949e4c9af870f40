//! The HTTP edge: routes a request to discovery, OpenAPI, health or the registry, decodes its body and
//! encodes the answer in the form the client negotiated (JSON, YAML, Table, PartialObjectMetadata, and
//! watch streams of each).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::authz;
use super::body::{self, BodyFormat};
use super::catalog::{Catalog, ResourceInfo, SharedCatalog};
use super::discovery;
use super::field_validation::check_fields;
use super::openapi::OpenApiV3;
use super::patch::PatchType;
use super::protobuf;
use super::registry::{normalize, DeleteOptions, Deleted, ListResult, Registry, WatchItem};
use super::request::{parse_path, FieldValidation, Query, ResourcePath, Target};
use super::status::{ApiError, ApiResult};
use super::strategy;
use super::table;

/// Upstream's request body limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub use super::authz::User;

/// Set per connection: None for a connection without a verified client certificate.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Option<User>);

pub struct App {
    pub registry: Arc<Registry>,
    /// The same shared catalog as the registry's: each request works on one snapshot of it.
    pub catalog: Arc<SharedCatalog>,
    pub openapi: OpenApiV3,
    /// host:port clients reach this server at (for `/api`'s serverAddressByClientCIDRs).
    pub server_address: String,
    pub tokens: super::tokens::TokenIssuer,
}

/// How the client asked to see objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Json,
    Yaml,
    Protobuf,
    Table,
    PartialMetadata,
}

fn media_params(item: &str) -> (String, Vec<(String, String)>) {
    let mut parts = item.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (media, params)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Upstream's negotiation: the first acceptable entry of `Accept` wins. Protobuf is acceptable only for
/// kinds that have a protobuf message (not custom resources).
fn negotiate(headers: &HeaderMap, protobuf: bool) -> ApiResult<Output> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for item in accept.split(',') {
        let (media, params) = media_params(item);
        match media.as_str() {
            "application/json" => match (param(&params, "as"), param(&params, "g")) {
                (None, _) => return Ok(Output::Json),
                (Some("Table"), Some("meta.k8s.io")) => return Ok(Output::Table),
                (
                    Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                    Some("meta.k8s.io"),
                ) => return Ok(Output::PartialMetadata),
                _ => continue,
            },
            "application/yaml" => return Ok(Output::Yaml),
            "application/vnd.kubernetes.protobuf" if protobuf && param(&params, "as").is_none() => {
                return Ok(Output::Protobuf)
            }
            "*/*" | "application/*" => return Ok(Output::Json),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable())
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, content_type.to_string())],
        body,
    )
        .into_response()
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    respond(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// Encodes one object for `out`.
fn encode_object(
    status: StatusCode,
    out: Output,
    info: &ResourceInfo,
    obj: &Value,
    q: &Query,
) -> Response {
    match out {
        Output::Json => json_response(status, obj),
        Output::Yaml => respond(
            status,
            "application/yaml",
            serde_yaml::to_string(obj).unwrap_or_default().into_bytes(),
        ),
        Output::Protobuf => protobuf_response(status, obj),
        Output::Table => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            let t = table_doc(
                info,
                std::slice::from_ref(obj),
                q,
                true,
                json!({"resourceVersion": rv}),
            );
            json_response(status, &t)
        }
        Output::PartialMetadata => json_response(status, &partial_metadata(obj)),
    }
}

fn protobuf_response(status: StatusCode, obj: &Value) -> Response {
    match protobuf::encode(obj) {
        Ok(bytes) => respond(status, protobuf::MEDIA_TYPE, bytes),
        Err(e) => ApiError::internal(format!("encoding protobuf: {e}")).into_response(),
    }
}

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn table_doc(
    info: &ResourceInfo,
    objs: &[Value],
    q: &Query,
    with_columns: bool,
    metadata: Value,
) -> Value {
    let now = chrono::Utc::now();
    let include = q.include_object.as_deref().unwrap_or("Metadata");
    let custom = info.custom();
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let cells = match custom {
                Some(c) => super::crd::table::row_cells(c, o, now),
                None => table::row_cells(&info.group, &info.plural, o, now),
            };
            let mut row = json!({ "cells": cells });
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => row["object"] = partial_metadata(o),
            }
            row
        })
        .collect();
    let columns = if with_columns {
        Value::Array(match custom {
            Some(c) => super::crd::table::column_definitions(c),
            None => table::column_definitions(&info.group, &info.plural),
        })
    } else {
        json!([])
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

fn list_metadata(l: &ListResult) -> Value {
    let mut m = json!({"resourceVersion": l.revision.to_string()});
    if let Some(c) = &l.continue_token {
        m["continue"] = json!(c);
    }
    if let Some(r) = l.remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

fn encode_list(out: Output, info: &ResourceInfo, l: &ListResult, q: &Query) -> Response {
    match out {
        Output::Table => {
            let objs: Vec<Value> = l.items.iter().map(|o| (**o).clone()).collect();
            json_response(
                StatusCode::OK,
                &table_doc(info, &objs, q, true, list_metadata(l)),
            )
        }
        Output::PartialMetadata => {
            let items: Vec<Value> = l.items.iter().map(|o| partial_metadata(o)).collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata(l), "items": items}),
            )
        }
        Output::Protobuf => {
            let items: Vec<Value> = l.items.iter().map(|o| (**o).clone()).collect();
            let list = json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": list_metadata(l), "items": items});
            protobuf_response(StatusCode::OK, &list)
        }
        Output::Json | Output::Yaml => {
            // Written piece by piece: a list of thousands of objects is not copied into one big Value.
            let mut buf = Vec::with_capacity(256 + l.items.len() * 1024);
            buf.extend_from_slice(b"{\"kind\":");
            let _ = serde_json::to_writer(&mut buf, &format!("{}List", info.kind));
            buf.extend_from_slice(b",\"apiVersion\":");
            let _ = serde_json::to_writer(&mut buf, &info.api_version());
            buf.extend_from_slice(b",\"metadata\":");
            let _ = serde_json::to_writer(&mut buf, &list_metadata(l));
            buf.extend_from_slice(b",\"items\":[");
            for (i, item) in l.items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                let _ = serde_json::to_writer(&mut buf, &**item);
            }
            buf.extend_from_slice(b"]}");
            if out == Output::Yaml {
                let v: Value = serde_json::from_slice(&buf).unwrap_or(Value::Null);
                return respond(
                    StatusCode::OK,
                    "application/yaml",
                    serde_yaml::to_string(&v).unwrap_or_default().into_bytes(),
                );
            }
            respond(StatusCode::OK, "application/json", buf)
        }
    }
}

/// Decodes a request body (JSON, YAML or protobuf) into an object, with upstream's depth bounds and
/// type checks (see [`body`]).
fn decode_body(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    let format =
        BodyFormat::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    body::decode(format, ct, bytes)
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

/// Checks the body's apiVersion/kind against the URL's resource, then normalizes it and applies
/// `fieldValidation`; returns the object and the warnings to send. A large body is worked on the
/// blocking pool ([`body::off_reactor`]).
async fn typed_body(
    info: &ResourceInfo,
    headers: &HeaderMap,
    bytes: &bytes::Bytes,
    q: &Query,
) -> ApiResult<(Value, Vec<String>)> {
    let ct = content_type(headers).to_string();
    let (info, bytes, validation) = (info.clone(), bytes.clone(), q.field_validation);
    body::off_reactor(bytes.len(), move || {
        let format = BodyFormat::from_content_type(&ct)
            .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
        let v = body::decode(format, &ct, &bytes)?;
        let original = v.clone();
        let normalized = checked_kind(&info, v)?;
        // Repeated keys are only visible in the raw text, and only JSON bodies are scanned for them.
        let raw = (validation != FieldValidation::Ignore && bytes.first() == Some(&b'{'))
            .then_some(&bytes[..]);
        let warnings = check_fields(&info, &original, &normalized, raw, validation)?;
        Ok((normalized, warnings))
    })
    .await
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

fn checked_kind(info: &ResourceInfo, mut v: Value) -> ApiResult<Value> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the body ({kind}) does not match the kind of the resource ({}) the request is for",
            info.kind
        )));
    }
    if !api_version.is_empty() && api_version != info.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    v["apiVersion"] = json!(info.api_version());
    v["kind"] = json!(info.kind);
    normalize(info, v)
}

/// DELETE's options: the optional DeleteOptions body merged with the query parameters.
async fn delete_options(headers: &HeaderMap, body: Body, q: &Query) -> ApiResult<DeleteOptions> {
    let bytes = read_body(body).await?;
    let opts_body = if bytes.is_empty() {
        None
    } else {
        let ct = content_type(headers).to_string();
        let v = body::off_reactor(bytes.len(), move || {
            let format = BodyFormat::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
            body::decode(format, &ct, &bytes)
        })
        .await?;
        // Typed as upstream's decoder types them: a mistyped field is a 400, never ignored.
        body::check_delete_options(&v)?;
        Some(v)
    };
    DeleteOptions::from_request(opts_body.as_ref(), q)
}

async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large())
}

fn health(path: &str, q: Option<&str>, ready: bool) -> Response {
    let checks: &[&str] = &[
        "ping",
        "log",
        "etcd",
        "informer-sync",
        "poststarthook/start-apiextensions-informers",
    ];
    let ok = !path.starts_with("/readyz") || ready;
    let verbose = q.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let body = if verbose {
        let mut s = String::new();
        for c in checks {
            let ok_c = ok || *c != "informer-sync";
            s.push_str(&format!(
                "[{}]{c} {}\n",
                if ok_c { "+" } else { "-" },
                if ok_c {
                    "ok"
                } else {
                    "failed: reason withheld"
                }
            ));
        }
        let name = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("healthz");
        s.push_str(&format!(
            "{name} check {}\n",
            if ok { "passed" } else { "failed" }
        ));
        s
    } else if ok {
        "ok".to_string()
    } else {
        "[-]informer-sync failed: reason withheld\nreadyz check failed\n".to_string()
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        body,
    )
        .into_response()
}

pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0+rkube",
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else if cfg!(target_arch = "aarch64") { "arm64" } else { std::env::consts::ARCH }),
    })
}

/// Picks the aggregated discovery version the client asked for, if any.
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())?;
    for item in accept.split(',') {
        let (media, params) = media_params(item);
        if media == "application/json"
            && param(&params, "g") == Some("apidiscovery.k8s.io")
            && param(&params, "as") == Some("APIGroupDiscoveryList")
        {
            match param(&params, "v") {
                Some("v2") => return Some("v2"),
                Some("v2beta1") => return Some("v2beta1"),
                _ => {}
            }
        }
    }
    None
}

fn discovery_response(
    headers: &HeaderMap,
    catalog: &Catalog,
    legacy: bool,
    server_address: &str,
) -> Response {
    if let Some(v) = aggregated_version(headers) {
        let doc = discovery::aggregated(catalog, legacy, v);
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        // Upstream's ETag: a hash of the document, so clients revalidate cheaply and see CRD changes.
        let digest = ring::digest::digest(&ring::digest::SHA256, &body);
        let etag: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let etag = format!("\"{etag}\"");
        let not_modified = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|h| h.to_str().ok())
            == Some(etag.as_str());
        let mut r = if not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            respond(
                StatusCode::OK,
                &format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
                body,
            )
        };
        r.headers_mut()
            .insert(header::VARY, http::HeaderValue::from_static("Accept"));
        if let Ok(h) = http::HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, h);
        }
        return r;
    }
    let doc = if legacy {
        discovery::api_versions(server_address)
    } else {
        discovery::api_group_list(catalog)
    };
    discovery_doc(headers, doc)
}

/// A legacy discovery document, in protobuf when the client prefers it (as client-go does).
fn discovery_doc(headers: &HeaderMap, mut doc: Value) -> Response {
    if matches!(negotiate(headers, true), Ok(Output::Protobuf)) {
        if doc.get("apiVersion").is_none() {
            doc["apiVersion"] = json!("v1");
        }
        return protobuf_response(StatusCode::OK, &doc);
    }
    json_response(StatusCode::OK, &doc)
}

/// The user a request's `Authorization: Bearer` token names.
async fn bearer_user(app: &App, headers: &HeaderMap) -> Option<User> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))?
        .trim();
    token_user(app, token).await
}

/// The user a service account token names, if it verifies and its account still exists (the same
/// service account, not a new one of the same name).
pub async fn token_user(app: &App, token: &str) -> Option<User> {
    let claims = app.tokens.verify(token)?;
    let info = app.catalog.find("", "v1", "serviceaccounts")?;
    let sa = app
        .registry
        .get(&info, Some(&claims.namespace), &claims.service_account)
        .await
        .ok()?;
    if sa.pointer("/metadata/uid").and_then(Value::as_str) != Some(claims.uid.as_str()) {
        return None;
    }
    let mut user = User::new(claims.username(), claims.groups());
    user.uid = Some(claims.uid.clone());
    Some(user)
}

/// `serviceaccounts/<name>/token`: a TokenRequest answered with a signed token.
async fn token_request(app: &App, ns: &str, name: &str, request: Value) -> ApiResult<Value> {
    let info = app
        .catalog
        .find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("no serviceaccounts"))?;
    let sa = app.registry.get(&info, Some(ns), name).await?;
    let uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let audiences: Vec<String> = request
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let expiration = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64);
    let (token, exp) = app
        .tokens
        .issue(ns, name, uid, &audiences, expiration)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let expires = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
    let issued_for = if audiences.is_empty() {
        vec![super::tokens::ISSUER.to_string()]
    } else {
        audiences
    };
    let now = chrono::Utc::now().timestamp();
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
        "spec": {"audiences": issued_for, "expirationSeconds": exp - now, "boundObjectRef": request.pointer("/spec/boundObjectRef").cloned()},
        "status": {"token": token, "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
    }))
}

/// The one handler every request goes through.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    // Errors go out in protobuf when the client prefers it, except for custom resources (no protobuf).
    let protobuf_errors = matches!(negotiate(req.headers(), true), Ok(Output::Protobuf))
        && !is_custom_resource_path(&app, req.uri().path());
    match route(app, req).await {
        Ok(r) => r,
        Err(e) if protobuf_errors => {
            let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match protobuf::encode(&e.to_status()) {
                Ok(bytes) => respond(status, protobuf::MEDIA_TYPE, bytes),
                Err(_) => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

fn is_custom_resource_path(app: &App, path: &str) -> bool {
    match parse_path(path) {
        Some(Target::Resource(rp)) => app
            .catalog
            .find(&rp.group, &rp.version, &rp.resource)
            .is_some_and(|r| r.custom().is_some()),
        _ => false,
    }
}

async fn route(app: Arc<App>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let trimmed = path.trim_end_matches('/');
    if trimmed == "/healthz"
        || trimmed == "/livez"
        || trimmed == "/readyz"
        || trimmed.starts_with("/healthz/")
        || trimmed.starts_with("/livez/")
        || trimmed.starts_with("/readyz/")
    {
        return Ok(health(
            trimmed,
            raw_query.as_deref(),
            app.registry.cache.is_ready(),
        ));
    }
    if trimmed == "/version" {
        return Ok(json_response(StatusCode::OK, &version_info()));
    }
    let mut user = parts
        .extensions
        .get::<Authenticated>()
        .and_then(|a| a.0.clone());
    if user.is_none() {
        user = bearer_user(&app, &parts.headers).await;
    }
    let Some(authenticated) = user else {
        return Err(ApiError::unauthorized());
    };
    let headers = &parts.headers;
    let user = authz::impersonation::resolve(&app.registry, authenticated, headers)?;
    let target = parse_path(&path);
    let attrs = match &target {
        Some(Target::Resource(rp)) => authz::Attributes::for_resource(
            &parts.method,
            rp,
            &Query::parse(raw_query.as_deref()).unwrap_or_default(),
        ),
        _ => authz::Attributes::for_path(&parts.method, &path),
    };
    let decision = authz::authorize(&app.registry, &user, &attrs);
    if !decision.allowed {
        return Err(attrs.forbidden(&user.name, &decision.reason));
    }
    let user = Some(user);
    if trimmed == "/openapi/v2" || trimmed == "/openapi/v3" || trimmed.starts_with("/openapi/v3/") {
        return app
            .openapi
            .serve(trimmed, raw_query.as_deref(), headers)
            .ok_or_else(ApiError::not_found_path);
    }
    let target = target.ok_or_else(ApiError::not_found_path)?;
    let q = Query::parse(raw_query.as_deref())?;
    let catalog = app.catalog.load();
    match target {
        Target::LegacyRoot => Ok(discovery_response(
            headers,
            &catalog,
            true,
            &app.server_address,
        )),
        Target::GroupsRoot => Ok(discovery_response(
            headers,
            &catalog,
            false,
            &app.server_address,
        )),
        Target::Group(g) => discovery::api_group(&catalog, &g)
            .map(|d| discovery_doc(headers, d))
            .ok_or_else(ApiError::not_found_path),
        Target::GroupVersion(g, v) => discovery::api_resource_list(&catalog, &g, &v)
            .map(|d| discovery_doc(headers, d))
            .ok_or_else(ApiError::not_found_path),
        Target::Resource(rp) => {
            resource(&app, parts.method, headers, rp, q, body, user.as_ref()).await
        }
    }
}

async fn resource(
    app: &App,
    method: Method,
    headers: &HeaderMap,
    rp: ResourcePath,
    q: Query,
    body: Body,
    user: Option<&User>,
) -> ApiResult<Response> {
    let info = app
        .catalog
        .find(&rp.group, &rp.version, &rp.resource)
        .ok_or_else(ApiError::not_found_path)?;
    if rp.namespace.is_some() && !info.namespaced {
        return Err(ApiError::not_found_path());
    }
    if let Some(sub) = &rp.subresource {
        if info.subresource(sub).is_none() {
            return Err(ApiError::not_found_path());
        }
    }
    let pb = protobuf::message_for(&info.api_version(), &info.kind).is_some();
    if info.custom().is_some() && matches!(method, Method::POST | Method::PUT) {
        // Custom resources have no protobuf form: a protobuf body is an unsupported media type.
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ct
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(protobuf::MEDIA_TYPE))
        {
            return Err(ApiError::unsupported_media_type(ct));
        }
    }
    let ns = rp.namespace.as_deref();
    let name = rp.name.as_deref();
    let sub = rp.subresource.as_deref();
    let reg = &app.registry;
    let need = |verb: &str| -> ApiResult<()> {
        if info.has_verb(verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_supported(&info, verb))
        }
    };
    let is_binding = (info.group.is_empty() && info.plural == "bindings" && name.is_none())
        || (info.group.is_empty() && info.plural == "pods" && sub == Some("binding"));
    if is_binding && method == Method::POST {
        let bytes = read_body(body).await?;
        let binding = decode_body(headers, &bytes)?;
        let pod = name
            .or_else(|| binding.pointer("/metadata/name").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        reg.bind_pod(ns.unwrap_or("default"), &pod, &binding)
            .await?;
        return Ok(json_response(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ));
    }
    if info.group.is_empty()
        && info.plural == "serviceaccounts"
        && sub == Some("token")
        && method == Method::POST
    {
        let bytes = read_body(body).await?;
        let request = if bytes.is_empty() {
            json!({})
        } else {
            decode_body(headers, &bytes)?
        };
        let answer =
            token_request(app, ns.unwrap_or("default"), name.unwrap_or(""), request).await?;
        let out = negotiate(headers, true)?;
        return Ok(match out {
            Output::Protobuf => protobuf_response(StatusCode::CREATED, &answer),
            _ => json_response(StatusCode::CREATED, &answer),
        });
    }
    if !info.is_stored() && method == Method::POST && name.is_none() && info.plural != "bindings" {
        let out = negotiate(headers, pb)?;
        let bytes = read_body(body).await?;
        let (obj, _) = typed_body(&info, headers, &bytes, &q).await?;
        let anonymous = User::new("system:anonymous", vec!["system:unauthenticated".into()]);
        let answer =
            super::reviews::review(app, &info, user.unwrap_or(&anonymous), ns, obj).await?;
        return Ok(encode_object(StatusCode::CREATED, out, &info, &answer, &q));
    }
    if sub == Some("scale") {
        let paths = info
            .custom()
            .and_then(|c| c.scale.clone())
            .or_else(|| super::crd::scale::builtin(&info.group, &info.plural));
        if let (Some(paths), Some(name)) = (paths, name) {
            return scale_subresource(app, method, headers, &info, ns, name, &paths, body, &q)
                .await;
        }
    }
    if let (Some(s), Some(name)) = (sub, name) {
        if info.group.is_empty()
            && info.plural == "pods"
            && super::pod_connect::SUBRESOURCES.contains(&s)
        {
            let pod = reg.get(&info, ns, name).await?;
            let body = super::pod_connect::answer(&pod, s, q.container.as_deref())?;
            return Ok(respond(
                StatusCode::OK,
                "text/plain",
                body.unwrap_or_default().into_bytes(),
            ));
        }
    }
    if matches!(sub, Some(s) if s != "status" && s != "finalize") {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the subresource {:?} is not supported yet",
                sub.unwrap_or("")
            ),
        ));
    }
    match (method, name) {
        (Method::GET, None) => {
            let out = negotiate(headers, pb)?;
            if q.watch {
                need("watch")?;
                return watch_response(reg, &info, ns, &q, out).await;
            }
            need("list")?;
            let l = reg.list(&info, ns, &q).await?;
            Ok(encode_list(out, &info, &l, &q))
        }
        (Method::GET, Some(name)) => {
            let out = negotiate(headers, pb)?;
            if q.watch {
                need("watch")?;
                let mut q = q.clone();
                let sel = format!("metadata.name={name}");
                q.field_selector = Some(match q.field_selector.as_deref() {
                    Some(f) if !f.is_empty() => format!("{f},{sel}"),
                    _ => sel,
                });
                return watch_response(reg, &info, ns, &q, out).await;
            }
            need("get")?;
            let obj = reg.get(&info, ns, name).await?;
            Ok(encode_object(StatusCode::OK, out, &info, &obj, &q))
        }
        (Method::POST, None) => {
            need("create")?;
            let out = negotiate(headers, pb)?;
            let bytes = read_body(body).await?;
            let (obj, warnings) = typed_body(&info, headers, &bytes, &q).await?;
            if let Some(user) = user {
                authz::escalation::check(reg, user, &info, ns, &obj, None)?;
            }
            let manager = super::managed_fields::manager_name(
                q.field_manager.as_deref(),
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            );
            let created = reg
                .create_owned(
                    &info,
                    ns,
                    obj,
                    q.dry_run,
                    super::registry::Ownership::Update(&manager),
                )
                .await?;
            Ok(with_warnings(
                encode_object(StatusCode::CREATED, out, &info, &created, &q),
                &warnings,
            ))
        }
        (Method::PUT, Some(name)) => {
            need("update")?;
            let out = negotiate(headers, pb)?;
            let bytes = read_body(body).await?;
            let (obj, warnings) = typed_body(&info, headers, &bytes, &q).await?;
            if let Some(user) = user.filter(|_| authz::escalation::applies(&info)) {
                let existing = reg.get(&info, ns, name).await.ok();
                authz::escalation::check(reg, user, &info, ns, &obj, existing.as_ref())?;
            }
            let manager = super::managed_fields::manager_name(
                q.field_manager.as_deref(),
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            );
            let (obj, created) = reg
                .update_owned(
                    &info,
                    ns,
                    name,
                    obj,
                    sub,
                    q.dry_run,
                    super::registry::Ownership::Update(&manager),
                )
                .await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(
                encode_object(status, out, &info, &obj, &q),
                &warnings,
            ))
        }
        (Method::PATCH, Some(name)) => {
            need("patch")?;
            let out = negotiate(headers, pb)?;
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(ct).ok_or_else(|| {
                ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct})"))
            })?;
            if kind == PatchType::Strategic && info.custom().is_some() {
                // Custom resources have no Go struct to take patch strategies from (upstream's message).
                return Err(ApiError::new(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"));
            }
            let bytes = read_body(body).await?;
            let manager = super::managed_fields::manager_name(
                q.field_manager.as_deref(),
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            );
            let opts = super::registry::PatchOptions {
                manager: &manager,
                force: q.force,
            };
            if let Some(user) = user.filter(|_| authz::escalation::applies(&info)) {
                // The patched object is only known once the patch is applied: apply it without storing
                // first, and check that.
                let existing = reg.get(&info, ns, name).await.ok();
                let trial = Query {
                    dry_run: true,
                    ..q.clone()
                };
                let (patched, _, _) = reg
                    .patch_as(&info, ns, name, kind, &bytes, sub, &trial, &opts)
                    .await?;
                authz::escalation::check(reg, user, &info, ns, &patched, existing.as_ref())?;
            }
            let (obj, warnings, created) = reg
                .patch_as(&info, ns, name, kind, &bytes, sub, &q, &opts)
                .await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(
                encode_object(status, out, &info, &obj, &q),
                &warnings,
            ))
        }
        (Method::DELETE, Some(name)) => {
            need("delete")?;
            let out = negotiate(headers, pb)?;
            let opts = delete_options(headers, body, &q).await?;
            match reg.delete(&info, ns, name, &opts).await? {
                Deleted::Pending(obj) => Ok(encode_object(StatusCode::OK, out, &info, &obj, &q)),
                Deleted::Gone(obj) if strategy::returns_deleted_object(&info) => {
                    Ok(encode_object(StatusCode::OK, out, &info, &obj, &q))
                }
                Deleted::Gone(obj) => {
                    let mut details = json!({"name": name, "kind": info.plural, "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(json!(""))});
                    if !info.group.is_empty() {
                        details["group"] = json!(info.group);
                    }
                    Ok(json_response(
                        StatusCode::OK,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
                    ))
                }
            }
        }
        (Method::DELETE, None) => {
            need("deletecollection")?;
            let out = negotiate(headers, pb)?;
            let opts = delete_options(headers, body, &q).await?;
            let l = reg.delete_collection(&info, ns, &q, &opts).await?;
            Ok(encode_list(out, &info, &l, &q))
        }
        (m, _) => {
            let verb = match m {
                Method::POST => "create",
                Method::PUT => "update",
                Method::PATCH => "patch",
                _ => "this method",
            };
            Err(ApiError::method_not_supported(&info, verb))
        }
    }
}

/// GET, PUT and PATCH on a `scale` subresource: an autoscaling/v1 Scale mapped onto the object's
/// replica paths (see [`super::crd::scale`]). Built-in kinds answer in protobuf too; custom ones never.
#[allow(clippy::too_many_arguments)]
async fn scale_subresource(
    app: &App,
    method: Method,
    headers: &HeaderMap,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    paths: &super::crd::ScalePaths,
    body: Body,
    q: &Query,
) -> ApiResult<Response> {
    use super::crd::scale::{apply_scale, to_scale};
    let out = negotiate(headers, info.custom().is_none())?;
    let reg = &app.registry;
    let current = reg.get(info, ns, name).await?;
    let desired = match method {
        Method::GET => {
            let scale = to_scale(paths, &current);
            return Ok(encode_scale(out, &scale));
        }
        Method::PUT => {
            let bytes = read_body(body).await?;
            decode_body(headers, &bytes)?
        }
        Method::PATCH => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = match PatchType::from_content_type(ct) {
                // A Scale has no lists: a strategic merge patch is a merge patch.
                Some(PatchType::Strategic) | Some(PatchType::Merge) => PatchType::Merge,
                Some(PatchType::Json) => PatchType::Json,
                _ => return Err(ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct})"))),
            };
            let bytes = read_body(body).await?;
            let pos = super::fieldpath::Pos::unknown(&super::fieldpath::Builtin);
            super::patch::apply_patch(kind, &to_scale(paths, &current), &bytes, &pos)?
        }
        _ => return Err(ApiError::method_not_supported(info, "this method")),
    };
    let mut obj = current;
    apply_scale(paths, &mut obj, &desired).map_err(|m| {
        ApiError::new(
            422,
            "Invalid",
            format!("Scale.autoscaling {name:?} is invalid: {m}"),
        )
    })?;
    let manager = super::managed_fields::manager_name(
        q.field_manager.as_deref(),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let (updated, _) = reg
        .update_owned(
            info,
            ns,
            name,
            obj,
            None,
            q.dry_run,
            super::registry::Ownership::Update(&manager),
        )
        .await?;
    Ok(encode_scale(out, &to_scale(paths, &updated)))
}

fn encode_scale(out: Output, scale: &Value) -> Response {
    match out {
        Output::Protobuf => protobuf_response(StatusCode::OK, scale),
        Output::Yaml => respond(
            StatusCode::OK,
            "application/yaml",
            serde_yaml::to_string(scale)
                .unwrap_or_default()
                .into_bytes(),
        ),
        _ => json_response(StatusCode::OK, scale),
    }
}

async fn watch_response(
    reg: &Registry,
    info: &ResourceInfo,
    ns: Option<&str>,
    q: &Query,
    out: Output,
) -> ApiResult<Response> {
    let events = reg.watch(info, ns, q).await?;
    let info = info.clone();
    let q2 = q.clone();
    let mut first = true;
    let body = events.map(move |WatchItem { event_type, object }| {
        let object = match out {
            Output::Table if event_type != "ERROR" && event_type != "BOOKMARK" => {
                let t = table_doc(&info, std::slice::from_ref(&*object), &q2, first, json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}));
                first = false;
                t
            }
            Output::PartialMetadata if event_type != "ERROR" && event_type != "BOOKMARK" => partial_metadata(&object),
            _ => (*object).clone(),
        };
        let frame = if out == Output::Protobuf {
            protobuf::encode_watch_event(event_type, &object).unwrap_or_else(|e| {
                tracing::warn!("encoding a protobuf watch event: {e}");
                Vec::new()
            })
        } else {
            let mut line = serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
            line.push(b'\n');
            line
        };
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(frame))
    });
    let content_type = if out == Output::Protobuf {
        protobuf::WATCH_MEDIA_TYPE
    } else {
        "application/json"
    };
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
