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

use crate::apiserver::authz;
use crate::apiserver::catalog::{Catalog, ResourceInfo, SharedCatalog};
use crate::apiserver::http::body::{self, BodyFormat};
use crate::apiserver::http::discovery;
use crate::apiserver::http::request::{parse_path, FieldValidation, Query, ResourcePath, Target};
use crate::apiserver::openapi::OpenApiV3;
use crate::apiserver::registry::field_validation::check_fields;
use crate::apiserver::registry::patch::PatchType;
use crate::apiserver::registry::store::{
    normalize, DeleteOptions, Deleted, ListResult, Registry, WatchItem,
};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::protobuf;
use crate::apiserver::wire::table;

/// Upstream's request body limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub use crate::apiserver::authz::User;

/// Set per connection: None for a connection without a verified client certificate.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Option<User>);

/// Set per connection whose client certificate verified but names no user (no common name): its
/// requests are refused (401), never treated as anonymous.
#[derive(Clone, Copy, Debug)]
pub struct CertRejected;

pub struct App {
    pub registry: Arc<Registry>,
    /// The same shared catalog as the registry's: each request works on one snapshot of it.
    pub catalog: Arc<SharedCatalog>,
    pub openapi: OpenApiV3,
    /// host:port clients reach this server at (for `/api`'s serverAddressByClientCIDRs).
    pub server_address: String,
    pub tokens: crate::apiserver::authn::tokens::TokenIssuer,
    /// In-flight caps and the request deadline.
    pub limits: crate::apiserver::http::limits::Limits,
    /// Set once start-up work (system namespaces, default policy) is done; `/readyz` waits for it.
    pub started: tokio::sync::watch::Sender<bool>,
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
                Some(c) => crate::apiserver::crd::table::row_cells(c, o, now),
                None => table::row_cells(info.strategy.printer(), o, now),
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
            Some(c) => crate::apiserver::crd::table::column_definitions(c),
            None => table::column_definitions(info.strategy.printer()),
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

/// A request's bearer token, as upstream's bearer-token authenticator reads it: `Authorization: Bearer
/// <token>` (scheme case-insensitive). `Some` whenever that scheme and a token part are given, even an
/// empty one (`Bearer  x`): a request that presents a token is never anonymous. Other schemes are not
/// credentials rkube knows, as upstream (the request stays anonymous).
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?;
    let text = String::from_utf8_lossy(auth.as_bytes());
    let mut parts = text.trim().splitn(3, ' ');
    let scheme = parts.next().unwrap_or("");
    let token = parts.next()?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.to_string())
}

/// What authenticating a service account token found.
pub enum TokenAuth {
    /// The token's user and the audiences that matched (upstream's `Response.Audiences`).
    User(User, Vec<String>),
    /// The token does not authenticate: why, as upstream's authenticator words it.
    Invalid(String),
}

/// Looks up an object a token names; Ok(None) when it is gone, Err on a storage failure (never a 401:
/// the credentials may be fine).
async fn token_object(app: &App, plural: &str, ns: &str, name: &str) -> ApiResult<Option<Value>> {
    let info = app
        .catalog
        .find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("no {plural} resource")))?;
    match app.registry.get(&info, Some(ns), name).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Upstream's `deletedBefore` with its 60 s leeway: an object whose deletion started over a minute ago
/// no longer vouches for a token.
fn deleted_long_ago(v: &Value) -> bool {
    let now = chrono::Utc::now();
    v.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t < now - chrono::Duration::seconds(60))
}

/// Authenticates a service account token for `wanted` audiences (the apiserver's own for a request,
/// a TokenReview's `spec.audiences`): the signature, the audience, and that the service account and
/// any bound Pod or Secret still exist with the uids the token names.
pub async fn token_user(app: &App, token: &str, wanted: &[String]) -> ApiResult<TokenAuth> {
    let invalid = |why: String| Ok(TokenAuth::Invalid(why));
    let Some(claims) = app.tokens.verify(token) else {
        return invalid("invalid bearer token".into());
    };
    let matched = crate::apiserver::authn::tokens::intersect(&claims.audiences, wanted);
    if matched.is_empty() {
        return invalid(format!(
            "[invalid bearer token, token audiences {} is invalid for the target audiences {}]",
            authz::rbac::go_quoted(&claims.audiences),
            authz::rbac::go_quoted(wanted)
        ));
    }
    let ns = claims.namespace.as_str();
    let sa_name = claims.service_account.as_str();
    let Some(sa) = token_object(app, "serviceaccounts", ns, sa_name).await? else {
        return invalid(format!(
            "[invalid bearer token, serviceaccounts {sa_name:?} not found]"
        ));
    };
    if uid_of(&sa) != claims.uid {
        return invalid(format!(
            "[invalid bearer token, service account UID ({}) does not match claim ({})]",
            uid_of(&sa),
            claims.uid
        ));
    }
    if deleted_long_ago(&sa) {
        return invalid(format!(
            "[invalid bearer token, service account {ns}/{sa_name} has been deleted]"
        ));
    }
    let invalidated = "[invalid bearer token, service account token has been invalidated]";
    if let Some(r) = &claims.bound.secret {
        match token_object(app, "secrets", ns, &r.name).await? {
            None => return invalid(invalidated.into()),
            Some(s) if uid_of(&s) != r.uid => {
                return invalid(format!("[invalid bearer token, secret UID ({}) does not match service account secret ref claim ({})]", uid_of(&s), r.uid))
            }
            Some(s) if deleted_long_ago(&s) => return invalid(invalidated.into()),
            Some(_) => {}
        }
    }
    if let Some(r) = &claims.bound.pod {
        match token_object(app, "pods", ns, &r.name).await? {
            None => return invalid(invalidated.into()),
            Some(p) if uid_of(&p) != r.uid => {
                return invalid(format!("[invalid bearer token, pod UID ({}) does not match service account pod ref claim ({})]", uid_of(&p), r.uid))
            }
            Some(p) if deleted_long_ago(&p) => return invalid(invalidated.into()),
            Some(_) => {}
        }
    }
    let mut user = User::new(claims.username(), claims.groups());
    user.uid = Some(claims.uid.clone());
    if let Some(p) = &claims.bound.pod {
        user.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec![p.name.clone()],
        );
        user.extra.insert(
            "authentication.kubernetes.io/pod-uid".into(),
            vec![p.uid.clone()],
        );
    }
    if let Some(jti) = &claims.jti {
        user.extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    Ok(TokenAuth::User(user, matched))
}

/// A TokenRequest the server refuses, in upstream's words (422 on `TokenRequest.authentication.k8s.io ""`).
fn invalid_token_request(field: &str, value: &Value, detail: &str) -> ApiError {
    let shown = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let message = format!("Invalid value: {shown}: {detail}");
    ApiError::new(
        422,
        "Invalid",
        format!("TokenRequest.authentication.k8s.io \"\" is invalid: {field}: {message}"),
    )
    .with_details(json!({
        "group": "authentication.k8s.io", "kind": "TokenRequest", "name": "",
        "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]
    }))
}

/// The bound object a TokenRequest names, checked as upstream: a Pod (running as this service account)
/// or a Secret that exists in the namespace, with the uid given if any.
async fn bound_object(
    app: &App,
    ns: &str,
    sa_name: &str,
    r: &Value,
) -> ApiResult<crate::apiserver::authn::tokens::Bound> {
    let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let plural = match (group, kind) {
        ("", "Pod") => "pods",
        ("", "Secret") => "secrets",
        _ => {
            // Go's GroupVersionKind.String(): "group/version, Kind=kind".
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    let info = app
        .catalog
        .find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("no {plural} resource")))?;
    let obj = app.registry.get(&info, Some(ns), name).await?;
    let mut bound = crate::apiserver::authn::tokens::Bound::default();
    let found = crate::apiserver::authn::tokens::BoundObject {
        name: name.to_string(),
        uid: uid_of(&obj).to_string(),
    };
    if plural == "pods" {
        let pod_sa = obj
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if pod_sa != sa_name {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
            )));
        }
        bound.pod = Some(found.clone());
    } else {
        bound.secret = Some(found.clone());
    }
    let want_uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    if !want_uid.is_empty() && want_uid != found.uid {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {kind} {name:?}: the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"),
        )
        .with_details(json!({"name": name, "kind": kind})));
    }
    Ok(bound)
}

/// `serviceaccounts/<name>/token`: a TokenRequest answered with a signed token, and the warnings to send.
async fn token_request(
    app: &App,
    ns: &str,
    name: &str,
    request: Value,
) -> ApiResult<(Value, Vec<String>)> {
    let info = app
        .catalog
        .find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("no serviceaccounts"))?;
    let sa = app.registry.get(&info, Some(ns), name).await?;
    let uid = uid_of(&sa).to_string();
    let audiences: Vec<String> = app.tokens.options.audiences_of(&request);
    // Upstream decodes into an int64 (anything else is a 400), defaults it to an hour, and validates
    // the range before anything else.
    let expiration = match request.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => crate::apiserver::authn::tokens::DEFAULT_EXPIRATION,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot unmarshal {} into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64",
                match v {
                    Value::Number(n) => format!("number {n}"),
                    Value::String(_) => "string".into(),
                    Value::Bool(_) => "bool".into(),
                    Value::Array(_) => "array".into(),
                    _ => "object".into(),
                }
            ))
        })?,
    };
    if expiration < crate::apiserver::authn::tokens::MIN_EXPIRATION {
        return Err(invalid_token_request(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > crate::apiserver::authn::tokens::MAX_EXPIRATION {
        return Err(invalid_token_request(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let bound = match request
        .pointer("/spec/boundObjectRef")
        .filter(|r| !r.is_null())
    {
        Some(r) => bound_object(app, ns, name, r).await?,
        None => crate::apiserver::authn::tokens::Bound::default(),
    };
    let mut warnings = Vec::new();
    let expiration = match app.tokens.options.max_expiration {
        Some(max) if max > 0 && expiration > max => {
            warnings.push(format!(
                "requested expiration of {expiration} seconds shortened to {max} seconds"
            ));
            max
        }
        _ => expiration,
    };
    let (token, exp) = app
        .tokens
        .issue(ns, name, &uid, &audiences, expiration, &bound)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let expires = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
    let mut spec = json!({"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": request.pointer("/spec/boundObjectRef").cloned()});
    if let Some(r) = &bound.pod.as_ref().or(bound.secret.as_ref()) {
        spec["boundObjectRef"]["uid"] = json!(r.uid);
    }
    let answer = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "uid": uid, "creationTimestamp": null},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
    });
    Ok((answer, warnings))
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
    // Authentication first, on every path: credentials that fail are a 401 even where an anonymous
    // request would be let in (upstream's authentication filter runs before any handler). Only a
    // request without credentials is anonymous.
    let cert_user = parts
        .extensions
        .get::<Authenticated>()
        .and_then(|a| a.0.clone());
    let cert_rejected = parts.extensions.get::<CertRejected>().is_some();
    let user = match (cert_user, bearer_token(&parts.headers)) {
        (Some(u), _) => Some(u),
        (None, _) if cert_rejected => return Err(ApiError::unauthorized()),
        (None, Some(token)) => {
            match token_user(&app, &token, &app.tokens.options.api_audiences).await? {
                TokenAuth::User(u, _) => Some(u),
                TokenAuth::Invalid(why) => {
                    tracing::debug!("bearer token refused: {why}");
                    return Err(ApiError::unauthorized());
                }
            }
        }
        (None, None) => None,
    };
    if trimmed == "/healthz"
        || trimmed == "/livez"
        || trimmed == "/readyz"
        || trimmed.starts_with("/healthz/")
        || trimmed.starts_with("/livez/")
        || trimmed.starts_with("/readyz/")
    {
        return Ok(
            crate::apiserver::http::health::answer(&app, trimmed, raw_query.as_deref()).await,
        );
    }
    if trimmed == "/version" {
        return Ok(json_response(StatusCode::OK, &version_info()));
    }
    let Some(authenticated) = user else {
        return Err(ApiError::unauthorized());
    };
    let headers = &parts.headers;
    let user = authz::impersonation::resolve(&app.registry, authenticated, headers)?;
    let target = parse_path(&path);
    let resource_target = matches!(target, Some(Target::Resource(_)));
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
    let long_running = crate::apiserver::http::limits::is_long_running(&attrs);
    let permit = match app.limits.admit(&user, &parts.method, long_running) {
        Ok(permit) => permit,
        Err(refused) => return Ok(refused.into_response()),
    };
    if resource_target && !app.registry.cache.is_loaded() {
        // Lists and gets are served from the cache: while it (re)loads they would see nothing.
        return Err(ApiError::storage_initializing());
    }
    let request = Dispatch {
        app: app.clone(),
        method: parts.method,
        headers: parts.headers,
        path,
        raw_query,
        body,
        user,
        target,
    };
    if long_running {
        return request.run().await;
    }
    // The work runs as its own task, so a request that outlives its deadline is answered 504 but is
    // never cut in the middle of a write: it finishes (or fails) on its own, holding its in-flight slot.
    let deadline = app.limits.request_timeout;
    let work = tokio::spawn(async move {
        let answer = request.run().await;
        drop(permit);
        answer
    });
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(panicked)) => Err(ApiError::internal(format!("request failed: {panicked}"))),
        Err(_) => Err(
            ApiError::timeout(crate::apiserver::status::REQUEST_TIMEOUT_MESSAGE)
                .with_details(json!({})),
        ),
    }
}

/// What is left of a request once it is authenticated, authorized and admitted.
struct Dispatch {
    app: Arc<App>,
    method: Method,
    headers: HeaderMap,
    path: String,
    raw_query: Option<String>,
    body: Body,
    user: User,
    target: Option<Target>,
}

impl Dispatch {
    async fn run(self) -> ApiResult<Response> {
        let Dispatch {
            app,
            method,
            headers,
            path,
            raw_query,
            body,
            user,
            target,
        } = self;
        let trimmed = path.trim_end_matches('/');
        let headers = &headers;
        let user = Some(user);
        if trimmed == "/openapi/v2"
            || trimmed == "/openapi/v3"
            || trimmed.starts_with("/openapi/v3/")
        {
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
                resource(&app, method, headers, rp, q, body, user.as_ref()).await
            }
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
        let (answer, warnings) =
            token_request(app, ns.unwrap_or("default"), name.unwrap_or(""), request).await?;
        let out = negotiate(headers, true)?;
        let resp = match out {
            Output::Protobuf => protobuf_response(StatusCode::CREATED, &answer),
            _ => json_response(StatusCode::CREATED, &answer),
        };
        return Ok(with_warnings(resp, &warnings));
    }
    if !info.is_stored() && method == Method::POST && name.is_none() && info.plural != "bindings" {
        let out = negotiate(headers, pb)?;
        let bytes = read_body(body).await?;
        let (obj, _) = typed_body(&info, headers, &bytes, &q).await?;
        let anonymous = User::new("system:anonymous", vec!["system:unauthenticated".into()]);
        let answer = crate::apiserver::registry::reviews::review(
            app,
            &info,
            user.unwrap_or(&anonymous),
            ns,
            obj,
        )
        .await?;
        return Ok(encode_object(StatusCode::CREATED, out, &info, &answer, &q));
    }
    if sub == Some("scale") {
        let paths = info
            .custom()
            .and_then(|c| c.scale.clone())
            .or_else(|| crate::apiserver::crd::scale::builtin(&info));
        if let (Some(paths), Some(name)) = (paths, name) {
            return scale_subresource(app, method, headers, &info, ns, name, &paths, body, &q)
                .await;
        }
    }
    if let (Some(s), Some(name)) = (sub, name) {
        if info.group.is_empty()
            && info.plural == "pods"
            && crate::apiserver::http::pod_connect::SUBRESOURCES.contains(&s)
        {
            let pod = reg.get(&info, ns, name).await?;
            let body =
                crate::apiserver::http::pod_connect::answer(&pod, s, q.container.as_deref())?;
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
            let manager = crate::apiserver::registry::managed_fields::manager_name(
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
                    crate::apiserver::registry::store::Ownership::Update(&manager),
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
            let manager = crate::apiserver::registry::managed_fields::manager_name(
                q.field_manager.as_deref(),
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            );
            let escalation = |new: &Value, old: Option<&Value>| match user {
                Some(user) => authz::escalation::check(reg, user, &info, ns, new, old),
                None => Ok(()),
            };
            let (obj, created) = reg
                .update_checked(
                    &info,
                    ns,
                    name,
                    obj,
                    sub,
                    q.dry_run,
                    crate::apiserver::registry::store::Ownership::Update(&manager),
                    Some(&escalation),
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
            let manager = crate::apiserver::registry::managed_fields::manager_name(
                q.field_manager.as_deref(),
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            );
            // RBAC's escalation check runs on the patched object inside the guarded write.
            let escalation = |new: &Value, old: Option<&Value>| match user {
                Some(user) => authz::escalation::check(reg, user, &info, ns, new, old),
                None => Ok(()),
            };
            let opts = crate::apiserver::registry::store::PatchOptions {
                manager: &manager,
                force: q.force,
                check: Some(&escalation),
            };
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
                Deleted::Gone(obj) if info.strategy.returns_deleted_object() => {
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
/// replica paths (see [`crate::apiserver::crd::scale`]). Built-in kinds answer in protobuf too; custom ones never.
#[allow(clippy::too_many_arguments)]
async fn scale_subresource(
    app: &App,
    method: Method,
    headers: &HeaderMap,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    paths: &crate::apiserver::crd::ScalePaths,
    body: Body,
    q: &Query,
) -> ApiResult<Response> {
    use crate::apiserver::crd::scale::{apply_scale, to_scale};
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
            let pos = crate::apiserver::registry::fieldpath::Pos::unknown(
                &crate::apiserver::registry::fieldpath::Builtin,
            );
            crate::apiserver::registry::patch::apply_patch(
                kind,
                &to_scale(paths, &current),
                &bytes,
                &pos,
            )?
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
    let manager = crate::apiserver::registry::managed_fields::manager_name(
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
            crate::apiserver::registry::store::Ownership::Update(&manager),
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
    let body =
        watch_frames(events, info.clone(), q.clone(), out).map(Ok::<_, std::convert::Infallible>);
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

/// One watch event as a frame of the negotiated format (a JSON line, or a length-prefixed protobuf
/// `WatchEvent`).
fn watch_frame(out: Output, event_type: &str, object: &Value) -> Result<Vec<u8>, String> {
    if out == Output::Protobuf {
        return protobuf::encode_watch_event(event_type, object);
    }
    #[derive(serde::Serialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        event_type: &'a str,
        object: &'a Value,
    }
    let mut line = serde_json::to_vec(&Frame { event_type, object }).map_err(|e| e.to_string())?;
    line.push(b'\n');
    Ok(line)
}

/// The frames of a watch response. An event that can't be encoded ends the watch with an ERROR event
/// (upstream's internal-error Status, code 500) rather than being skipped: the client then knows it
/// missed something and re-lists.
fn watch_frames(
    events: futures::stream::BoxStream<'static, WatchItem>,
    info: ResourceInfo,
    q: Query,
    out: Output,
) -> impl futures::Stream<Item = bytes::Bytes> {
    let mut first = true;
    events.scan(false, move |ended, WatchItem { event_type, object }| {
        if *ended {
            return futures::future::ready(None);
        }
        let object = match out {
            Output::Table if event_type != "ERROR" && event_type != "BOOKMARK" => {
                let t = table_doc(&info, std::slice::from_ref(&*object), &q, first, json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}));
                first = false;
                Arc::new(t)
            }
            Output::PartialMetadata if event_type != "ERROR" && event_type != "BOOKMARK" => {
                Arc::new(partial_metadata(&object))
            }
            _ => object,
        };
        let frame = watch_frame(out, event_type, &object).or_else(|e| {
            *ended = true;
            let kind = object.get("kind").and_then(Value::as_str).unwrap_or("object");
            let message = format!("unable to encode watch object {kind}: {e}");
            tracing::warn!("watch of {}: {message}", info.group_resource());
            let status = ApiError::internal(message.clone())
                .with_details(json!({"causes": [{"message": message}]}))
                .to_status();
            watch_frame(out, "ERROR", &status)
        });
        // Not even the error could be encoded: end the stream, the client re-watches.
        futures::future::ready(frame.ok().map(bytes::Bytes::from))
    })
}

#[cfg(test)]
mod watch_tests {
    use super::*;

    /// An event that can't be encoded ends the watch with a 500 ERROR event: nothing after it is
    /// sent, and nothing is skipped silently.
    #[tokio::test]
    async fn unencodable_event_ends_the_watch_with_an_error() {
        let info = Catalog::builtin()
            .find("", "v1", "configmaps")
            .cloned()
            .unwrap();
        let cm = |name: &str| {
            Arc::new(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": "5"}}))
        };
        let items = vec![
            WatchItem {
                event_type: "ADDED",
                object: cm("a"),
            },
            WatchItem {
                event_type: "ADDED",
                object: Arc::new(json!({"apiVersion": "v1", "kind": "NoSuchKind", "metadata": {}})),
            },
            WatchItem {
                event_type: "ADDED",
                object: cm("c"),
            },
        ];
        let stream = futures::stream::iter(items).boxed();
        let frames: Vec<bytes::Bytes> =
            watch_frames(stream, info, Query::default(), Output::Protobuf)
                .collect()
                .await;
        assert_eq!(frames.len(), 2);
        let (ty, obj, _) = protobuf::decode_watch_frame(&frames[0]).unwrap().unwrap();
        assert_eq!(
            (ty.as_str(), obj["metadata"]["name"].as_str()),
            ("ADDED", Some("a"))
        );
        let (ty, status, _) = protobuf::decode_watch_frame(&frames[1]).unwrap().unwrap();
        assert_eq!(ty, "ERROR");
        assert_eq!(status["code"], 500);
        assert_eq!(status["reason"], "InternalError");
        let message = status["message"].as_str().unwrap();
        assert!(
            message
                .starts_with("Internal error occurred: unable to encode watch object NoSuchKind"),
            "{message}"
        );
    }
}
