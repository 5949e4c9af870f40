//! Content negotiation and the answers it selects: JSON, YAML, protobuf, Table and
//! PartialObjectMetadata forms of an object or a list, as upstream's `negotiation` package chooses them.

pub use crate::apiserver::authz::User;
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::request::Query;
use crate::apiserver::registry::cached_object::Obj;
use crate::apiserver::registry::store::ListResult;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::protobuf;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};
use serde_json::{json, Value};

/// How the client asked to see objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Json,
    Yaml,
    Protobuf,
    Table,
    PartialMetadata,
}

pub(crate) fn media_params(item: &str) -> (String, Vec<(String, String)>) {
    let mut parts = item.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (media, params)
}

pub(crate) fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Upstream's negotiation: the first acceptable entry of `Accept` wins. Protobuf is acceptable only for
/// kinds that have a protobuf message (not custom resources).
pub(crate) fn negotiate(headers: &HeaderMap, protobuf: bool) -> ApiResult<Output> {
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

/// A response body as is; a JSON one ends with a newline, as Go's encoder writes every upstream answer
/// (clients that print or compare the raw body see the same bytes).
pub(crate) fn respond(status: StatusCode, content_type: &str, mut body: Vec<u8>) -> Response {
    if content_type.starts_with("application/json") && body.last() != Some(&b'\n') {
        body.push(b'\n');
    }
    (
        status,
        [(header::CONTENT_TYPE, content_type.to_string())],
        body,
    )
        .into_response()
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response {
    respond(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// Encodes one object for `out`.
pub(crate) fn encode_object(
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

pub(crate) fn protobuf_response(status: StatusCode, obj: &Value) -> Response {
    match protobuf::encode(obj) {
        Ok(bytes) => respond(status, protobuf::MEDIA_TYPE, bytes),
        Err(e) => ApiError::internal(format!("encoding protobuf: {e}")).into_response(),
    }
}

pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

pub(crate) fn table_doc<'a>(
    info: &ResourceInfo,
    objs: impl IntoIterator<Item = &'a Value>,
    q: &Query,
    with_columns: bool,
    metadata: Value,
) -> Value {
    let now = chrono::Utc::now();
    let include = q.include_object.as_deref().unwrap_or("Metadata");
    let rows: Vec<Value> = objs
        .into_iter()
        .map(|o| {
            let cells = info.strategy.row_cells(o, now);
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
        Value::Array(info.strategy.column_definitions())
    } else {
        json!([])
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

pub(crate) fn list_metadata(l: &ListResult) -> Value {
    // Revision 0: a computed list (componentstatuses), which upstream sends without one.
    let mut m = if l.revision == 0 {
        json!({})
    } else {
        json!({"resourceVersion": l.revision.to_string()})
    };
    if let Some(c) = &l.continue_token {
        m["continue"] = json!(c);
    }
    if let Some(r) = l.remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

pub(crate) fn encode_list(out: Output, info: &ResourceInfo, l: &ListResult, q: &Query) -> Response {
    // JSON is written from the cache's bytes; the other forms need the objects decoded.
    let trees = || l.items.iter().map(Obj::tree).collect::<Vec<_>>();
    match out {
        Output::Table => json_response(
            StatusCode::OK,
            &table_doc(
                info,
                trees().iter().map(|o| &**o),
                q,
                true,
                list_metadata(l),
            ),
        ),
        Output::PartialMetadata => {
            let items: Vec<Value> = trees().iter().map(|o| partial_metadata(o)).collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_metadata(l), "items": items}),
            )
        }
        Output::Protobuf => {
            let kind = format!("{}List", info.kind);
            // Each cached item's message is encoded once and kept (see `CachedObject`).
            let items = l.items.iter().map(Obj::protobuf_message);
            match protobuf::encode_list(&info.api_version(), &kind, &list_metadata(l), items) {
                Ok(bytes) => respond(StatusCode::OK, protobuf::MEDIA_TYPE, bytes),
                Err(e) => ApiError::internal(format!("encoding protobuf: {e}")).into_response(),
            }
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
                item.write_json(&mut buf);
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

pub(crate) fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

pub(crate) fn encode_scale(out: Output, scale: &Value) -> Response {
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
