//! API errors as upstream's `metav1.Status`.
//!
//! Every failure the apiserver returns is one of these, with upstream's reason, code and message shape,
//! because clients (kubectl's `Error from server (NotFound): ...`, client-go's `errors.IsConflict`) key on them.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};

use crate::apiserver::catalog::ResourceInfo;

/// One field-level cause of an `Invalid` error.
#[derive(Clone, Debug)]
pub struct Cause {
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn required(field: &str) -> Self {
        Cause {
            reason: "FieldValueRequired",
            message: "Required value".into(),
            field: field.into(),
        }
    }
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {detail}", shown(value)),
            field: field.into(),
        }
    }
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }
    pub fn unsupported(field: &str, value: &Value, supported: &[&str]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                quoted.join(", ")
            ),
            field: field.into(),
        }
    }
    /// `Required value: <detail>`.
    pub fn required_detail(field: &str, detail: &str) -> Self {
        Cause {
            reason: "FieldValueRequired",
            message: format!("Required value: {detail}"),
            field: field.into(),
        }
    }
    /// `Not found: <value>`.
    pub fn not_found(field: &str, value: &Value) -> Self {
        Cause {
            reason: "FieldValueNotFound",
            message: format!("Not found: {}", shown(value)),
            field: field.into(),
        }
    }
    /// `Too long: may not be more than <max> bytes`.
    pub fn too_long(field: &str, max: usize) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max} bytes"),
            field: field.into(),
        }
    }
    /// `Too many: <actual>: must have at most <max> items`.
    pub fn too_many(field: &str, actual: usize, max: usize) -> Self {
        Cause {
            reason: "FieldValueTooMany",
            message: format!("Too many: {actual}: must have at most {max} items"),
            field: field.into(),
        }
    }
    /// Upstream's `ValidateImmutableField`: `Invalid value: <new>: field is immutable`.
    pub fn immutable(field: &str, value: &Value) -> Self {
        Self::invalid(field, value, "field is immutable")
    }
    pub fn duplicate(field: &str, value: &Value) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value}"),
            field: field.into(),
        }
    }
    /// `field: message`, as upstream's field.Error prints.
    pub fn display(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// A value as upstream's field errors print it: strings quoted, numbers and booleans bare.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// An error answer: HTTP code, reason, message and optional details.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

fn details(name: &str, info: &ResourceInfo) -> Value {
    let mut d = json!({ "name": name, "kind": info.plural });
    if !info.group.is_empty() {
        d["group"] = json!(info.group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", info.group_resource()),
        )
        .with_details(details(name, info))
    }
    /// A 404 for a URL that names no resource at all.
    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }
    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", info.group_resource()),
        )
        .with_details(details(name, info))
    }
    pub fn conflict(info: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                info.group_resource()
            ),
        )
        .with_details(details(name, info))
    }
    pub fn modified(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    pub fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes.iter().map(Cause::display).collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut d = details(name, info);
        d["kind"] = json!(info.kind);
        d["causes"] = Value::Array(
            causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect(),
        );
        let kind_group = if info.group.is_empty() {
            info.kind.clone()
        } else {
            format!("{}.{}", info.kind, info.group)
        };
        Self::new(
            422,
            "Invalid",
            format!("{kind_group} {name:?} is invalid: {joined}"),
        )
        .with_details(d)
    }
    pub fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> Self {
        let subject = if name.is_empty() {
            info.group_resource()
        } else {
            format!("{} {name:?}", info.group_resource())
        };
        Self::new(403, "Forbidden", format!("{subject} is forbidden: {why}"))
            .with_details(details(name, info))
    }
    pub fn method_not_supported(info: &ResourceInfo, verb: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "{verb} is not supported on resources of kind {:?}",
                info.group_resource()
            ),
        )
        .with_details(json!({"kind": info.plural, "group": info.group}))
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"))
    }
    pub fn not_acceptable() -> Self {
        Self::new(406, "NotAcceptable", "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io")
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }
    /// Upstream's cacher's answer while the watch cache (re)loads: retry in a second.
    pub fn storage_initializing() -> Self {
        Self::new(429, "TooManyRequests", "storage is (re)initializing")
            .with_details(json!({"retryAfterSeconds": 1}))
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// The `metav1.Status` body, fields in upstream's (Go struct) order: kind, apiVersion, metadata,
    /// status, message, reason, details, code; clients print and compare it as text.
    pub fn to_status(&self) -> Value {
        let mut s = serde_json::Map::new();
        s.insert("kind".into(), json!("Status"));
        s.insert("apiVersion".into(), json!("v1"));
        s.insert("metadata".into(), json!({}));
        s.insert("status".into(), json!("Failure"));
        if !self.message.is_empty() {
            s.insert("message".into(), json!(self.message));
        }
        if !self.reason.is_empty() {
            s.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = &self.details {
            s.insert("details".into(), d.clone());
        }
        s.insert("code".into(), json!(self.code));
        Value::Object(s)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        crate::apiserver::http::negotiate::respond(code, "application/json", body)
    }
}

impl From<crate::storage::StoreError> for ApiError {
    fn from(e: crate::storage::StoreError) -> Self {
        match e {
            crate::storage::StoreError::Compacted { compacted } => {
                ApiError::gone(format!("The resourceVersion for the provided list is too old (oldest available: {compacted})."))
            }
            crate::storage::StoreError::FutureRevision(rev) => ApiError::timeout(format!(
                "Too large resource version: {rev}, current: unknown"
            ))
            .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})),
            // Upstream answers a request whose storage call ran out of time with this 504.
            crate::storage::StoreError::Timeout(_) => ApiError::timeout(REQUEST_TIMEOUT_MESSAGE),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Upstream's message for a request that did not finish in time (its timeout filter and storage deadline).
pub const REQUEST_TIMEOUT_MESSAGE: &str =
    "Timeout: request did not complete within requested timeout - context deadline exceeded";
