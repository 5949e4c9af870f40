//! The `scale` subresource: an autoscaling/v1 Scale mapped onto the object's replica paths.

pub use crate::apiserver::authz::User;
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::decode::*;
use crate::apiserver::http::handlers::*;
use crate::apiserver::http::negotiate::*;
use crate::apiserver::http::request::Query;
use crate::apiserver::registry::patch::PatchType;
use crate::apiserver::status::{ApiError, ApiResult};
use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderMap, Method};

/// GET, PUT and PATCH on a `scale` subresource: an autoscaling/v1 Scale mapped onto the object's
/// replica paths (see [`crate::apiserver::crd::scale`]). Built-in kinds answer in protobuf too; custom ones never.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn scale_subresource(
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
    // The request as sent: a whole Scale (PUT) or a patch to apply to the current one (PATCH).
    let request = match method {
        Method::GET => {
            let scale = to_scale(paths, &reg.get(info, ns, name).await?);
            return Ok(encode_scale(out, &scale));
        }
        Method::PUT => {
            let bytes = read_body(body).await?;
            ScaleRequest::Put(decode_body(headers, &bytes)?)
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
            ScaleRequest::Patch(kind, read_body(body).await?)
        }
        _ => return Err(ApiError::method_not_supported(info, "this method")),
    };
    let manager = crate::apiserver::registry::managed_fields::manager_name(
        q.field_manager.as_deref(),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let mut attempts = 0;
    let updated = loop {
        attempts += 1;
        let current = reg.get(info, ns, name).await?;
        let scale = to_scale(paths, &current);
        let desired = match &request {
            ScaleRequest::Put(d) => d.clone(),
            ScaleRequest::Patch(kind, bytes) => {
                let pos = crate::apiserver::registry::fieldpath::Pos::unknown(
                    &crate::apiserver::registry::fieldpath::Builtin,
                );
                crate::apiserver::registry::patch::apply_patch(*kind, &scale, bytes, &pos)?
            }
        };
        // A Scale that names no resourceVersion (or a patch that leaves it as read) applies to
        // whatever is current: upstream re-applies it to the fresh object when a write (a
        // controller's status) races it. The write itself stays guarded by the revision read here,
        // so the racing write is never overwritten.
        let named_rv = desired
            .pointer("/metadata/resourceVersion")
            .and_then(serde_json::Value::as_str)
            .filter(|rv| !rv.is_empty());
        let unconditional = named_rv.is_none()
            || (matches!(request, ScaleRequest::Patch(..))
                && desired.pointer("/metadata/resourceVersion")
                    == scale.pointer("/metadata/resourceVersion"));
        let read_rv = current.pointer("/metadata/resourceVersion").cloned();
        let mut obj = current;
        apply_scale(paths, &mut obj, &desired).map_err(|m| {
            ApiError::new(
                422,
                "Invalid",
                format!("Scale.autoscaling {name:?} is invalid: {m}"),
            )
        })?;
        if let (true, Some(rv)) = (unconditional, read_rv) {
            obj["metadata"]["resourceVersion"] = rv;
        }
        match reg
            .update_owned(
                info,
                ns,
                name,
                obj,
                None,
                q.dry_run,
                crate::apiserver::registry::store::Ownership::Update(&manager),
            )
            .await
        {
            Err(e) if e.reason == "Conflict" && unconditional && attempts < PATCH_ATTEMPTS => {
                continue
            }
            other => break other?.0,
        }
    };
    Ok(encode_scale(out, &to_scale(paths, &updated)))
}

/// What a PUT or PATCH on `scale` asks for, kept to be re-applied when a write races it.
enum ScaleRequest {
    Put(serde_json::Value),
    Patch(PatchType, bytes::Bytes),
}

/// How often a patch is re-applied after losing a race (as the generic patch path).
const PATCH_ATTEMPTS: usize = 10;
