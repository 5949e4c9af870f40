//! Request bodies into objects: the media type, the typed decode (unknown and duplicate fields per
//! `fieldValidation`), the kind check, DeleteOptions. Bounds on size and nesting are in [`super::body`].

pub use crate::apiserver::authz::User;
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::body::{self, BodyFormat};
use crate::apiserver::http::go_json;
use crate::apiserver::http::handlers::*;
use crate::apiserver::http::request::{FieldValidation, Query};
use crate::apiserver::registry::field_validation::check_fields;
use crate::apiserver::registry::store::{normalize, DeleteOptions};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::protobuf;
use axum::body::Body;
use http::{header, HeaderMap};
use serde_json::{json, Value};

/// Decodes a request body (JSON, YAML or protobuf) into an object, with upstream's depth bounds and
/// type checks (see [`body`]).
pub(crate) fn decode_body(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    let format =
        BodyFormat::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    body::decode(format, ct, bytes)
}

pub(crate) fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

/// Checks the body's apiVersion/kind against the URL's resource, then normalizes it and applies
/// `fieldValidation`; returns the object and the warnings to send. A large body is worked on the
/// blocking pool ([`body::off_reactor`]).
pub(crate) async fn typed_body(
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
        let v = body::decode(format, &ct, &bytes).map_err(|e| unrecognized(&info, e, &bytes))?;
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

/// Upstream's transformDecodeError for a body whose kind could not be read: the kind the URL wants
/// and the body's first bytes ([`go_json::summarize`]). Other refusals (size, media type) pass.
fn unrecognized(info: &ResourceInfo, e: ApiError, bytes: &[u8]) -> ApiError {
    if e.code != 400 {
        return e;
    }
    ApiError::bad_request(format!(
        "the object provided is unrecognized (must be of type {}): {} ({})",
        info.kind,
        e.message,
        go_json::summarize(bytes)
    ))
}

/// Upstream's decode error for a body of another built-in kind than the URL's: the body's kind is
/// decoded, then converting it to the URL's internal type fails (or the scheme has no such kind).
fn other_kind(info: &ResourceInfo, api_version: &str, kind: &str) -> String {
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    let cause = if protobuf::message_for(api_version, kind).is_some() {
        format!(
            "converting ({version}.{kind}) to ({}.{}): unknown conversion",
            internal_package(&info.group),
            info.kind
        )
    } else {
        format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        )
    };
    format!(
        "{kind} in version {version:?} cannot be handled as a {}: {cause}",
        info.kind
    )
}

/// The Go package of a group's internal types (`core.Pod`, `rbac.Role`, `apps.Deployment`).
fn internal_package(group: &str) -> &str {
    match group {
        "" | "events.k8s.io" => "core",
        "internal.apiserver.k8s.io" => "apiserverinternal",
        g => g.split('.').next().unwrap_or(g),
    }
}

pub(crate) fn checked_kind(info: &ResourceInfo, mut v: Value) -> ApiResult<Value> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && protobuf::message_for(&info.api_version(), &info.kind).is_some() {
        // A body without apiVersion takes the URL's (upstream's gvkWithDefaults).
        let av = match api_version {
            "" => info.api_version(),
            av => av.to_string(),
        };
        if kind != info.kind
            || (av != info.api_version() && protobuf::message_for(&av, kind).is_none())
        {
            return Err(ApiError::bad_request(other_kind(info, &av, kind)));
        }
    }
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
pub(crate) async fn delete_options(
    headers: &HeaderMap,
    body: Body,
    q: &Query,
) -> ApiResult<DeleteOptions> {
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

pub(crate) async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large())
}
