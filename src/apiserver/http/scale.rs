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
    let unconditional = method == Method::PATCH
        && desired.pointer("/metadata/resourceVersion")
            == to_scale(paths, &current).pointer("/metadata/resourceVersion");
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
    if unconditional {
        // A patch that names no resourceVersion applies to whatever is current (upstream retries it on
        // a conflict): a status write racing it (a controller's) must not fail it.
        if let Some(m) = obj
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        {
            m.remove("resourceVersion");
        }
    }
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
