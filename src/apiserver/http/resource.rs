//! A resource request, once routed: finds the catalog row, hands create-only resources and special
//! subresources to their handlers (as the row says: [`ResourceHandler`], [`SubresourceHandler`]), and
//! calls the verb's handler in [`super::verbs`] for everything the generic store serves.

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use crate::apiserver::admission;
use crate::apiserver::authn::token_request::token_request;
use crate::apiserver::authz::User;
use crate::apiserver::catalog::{ResourceHandler, ResourceInfo, SubresourceHandler};
use crate::apiserver::http::component_status;
use crate::apiserver::http::decode::{decode_body, read_body, typed_body};
use crate::apiserver::http::handlers::App;
use crate::apiserver::http::negotiate::{
    encode_list, encode_object, json_response, negotiate, protobuf_response, with_warnings, Output,
};
use crate::apiserver::http::request::{Query, ResourcePath};
use crate::apiserver::http::resource_metrics;
use crate::apiserver::http::scale::scale_subresource;
use crate::apiserver::http::verbs::{self, Call};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::protobuf;

pub(crate) async fn resource(
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
    let sub = match &rp.subresource {
        Some(name) => Some(
            info.subresource(name)
                .ok_or_else(ApiError::not_found_path)?,
        ),
        None => None,
    };
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
    let handler = sub.map(|s| s.handler);
    if method == Method::POST
        && (handler == Some(SubresourceHandler::Binding)
            || (info.handler == ResourceHandler::Binding && name.is_none()))
    {
        let sub = handler.map(|_| "binding");
        return binding(app, headers, &info, sub, ns, name, body, user, &q).await;
    }
    if method == Method::POST && handler == Some(SubresourceHandler::Eviction) {
        let bytes = read_body(body).await?;
        let mut eviction = decode_body(headers, &bytes)?;
        admit_create(
            app,
            &info,
            ns,
            name,
            Some("eviction"),
            user,
            &mut eviction,
            &q,
        )
        .await?;
        let evicted = crate::apiserver::registry::eviction::evict(
            &app.registry,
            &info,
            ns.unwrap_or("default"),
            name.unwrap_or(""),
            &eviction,
            &q,
        )
        .await?;
        let (code, status) = evicted.status();
        return Ok(json_response(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &status,
        ));
    }
    if method == Method::POST && handler == Some(SubresourceHandler::Token) {
        return service_account_token(app, headers, &info, ns, name, body, user, &q).await;
    }
    // componentstatuses are computed on request (other methods and watches fall through to the
    // generic path, which refuses them as verbs the row does not have).
    if info.handler == ResourceHandler::ComponentStatuses
        && sub.is_none()
        && method == Method::GET
        && !q.watch
    {
        let out = negotiate(headers, pb)?;
        let answer = match name {
            None => encode_list(out, &info, &component_status::list(app).await, &q),
            Some(name) => {
                let obj = component_status::get(app, name).await?;
                encode_object(StatusCode::OK, out, &info, &obj, &q)
            }
        };
        return Ok(with_warnings(
            answer,
            &[component_status::DEPRECATED.into()],
        ));
    }
    // metrics.k8s.io is asked of the kubelets on request (watches and writes fall through to the
    // generic path, which refuses verbs the rows do not have).
    if info.handler == ResourceHandler::ResourceMetrics
        && sub.is_none()
        && method == Method::GET
        && !q.watch
    {
        let out = negotiate(headers, false)?;
        return Ok(match name {
            None => encode_list(
                out,
                &info,
                &resource_metrics::list(app, &info, ns, &q).await?,
                &q,
            ),
            Some(name) => {
                let obj = resource_metrics::get(app, &info, ns, name).await?;
                encode_object(StatusCode::OK, out, &info, &obj, &q)
            }
        });
    }
    if info.handler == ResourceHandler::Review && method == Method::POST && name.is_none() {
        return review(app, headers, &info, ns, user, body, &q, pb).await;
    }
    // Connect subresources (a pod's log and streams) never reach here: `pod_connect` serves them.
    if let (Some(s), Some(name)) = (sub, name) {
        if s.handler == SubresourceHandler::Scale {
            let paths = info
                .custom()
                .and_then(|c| c.scale.clone())
                .or_else(|| crate::apiserver::crd::scale::builtin(&info));
            if let Some(paths) = paths {
                return scale_subresource(app, method, headers, &info, ns, name, &paths, body, &q)
                    .await;
            }
        }
    }
    if let Some(s) = sub.filter(|s| s.handler != SubresourceHandler::Store) {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the subresource {:?} is not supported yet", s.name),
        ));
    }
    let call = Call {
        app,
        info: &info,
        headers,
        ns,
        sub: rp.subresource.as_deref(),
        q: &q,
        user,
        protobuf: pb,
        warnings: Default::default(),
    };
    let result = match (method, name) {
        (Method::GET, None) => verbs::list(&call).await,
        (Method::GET, Some(name)) => verbs::get(&call, name).await,
        (Method::POST, None) => verbs::create(&call, body).await,
        (Method::PUT, Some(name)) => verbs::update(&call, name, body).await,
        (Method::PATCH, Some(name)) => verbs::patch(&call, name, body).await,
        (Method::DELETE, Some(name)) => verbs::delete(&call, name, body).await,
        (Method::DELETE, None) => verbs::delete_collection(&call, body).await,
        (m, _) => {
            let verb = match m {
                Method::POST => "create",
                Method::PUT => "update",
                Method::PATCH => "patch",
                _ => "this method",
            };
            Err(ApiError::method_not_supported(&info, verb))
        }
    };
    // A deprecated custom resource version: upstream's warning, here on every successful answer of the
    // generic verbs (upstream adds it before serving, so its failures carry it too).
    match info.custom().and_then(|c| c.deprecation.as_deref()) {
        Some(w) => result.map(|r| with_warnings(r, &[w.to_string()])),
        None => result,
    }
}

/// `pods/binding` and `bindings`: assigns the pod to a node (the scheduler's write). Admission sees
/// it as upstream's does (`pods/binding`, or the `bindings` resource), so webhooks and policies can
/// hold a binding back.
#[allow(clippy::too_many_arguments)]
async fn binding(
    app: &App,
    headers: &HeaderMap,
    info: &ResourceInfo,
    sub: Option<&str>,
    ns: Option<&str>,
    name: Option<&str>,
    body: Body,
    user: Option<&User>,
    q: &Query,
) -> ApiResult<Response> {
    let bytes = read_body(body).await?;
    let mut binding = decode_body(headers, &bytes)?;
    let pod = name
        .or_else(|| binding.pointer("/metadata/name").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    admit_create(app, info, ns, Some(&pod), sub, user, &mut binding, q).await?;
    app.registry
        .bind_pod(ns.unwrap_or("default"), &pod, &binding)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// Admission of a create on a subresource that is not stored as itself (an eviction, a
/// TokenRequest): the chain's plugins see it as upstream's do (NodeRestriction is the one that judges
/// them).
#[allow(clippy::too_many_arguments)]
async fn admit_create(
    app: &App,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
    user: Option<&User>,
    obj: &mut Value,
    q: &Query,
) -> ApiResult<()> {
    let a = admission::Attributes {
        info,
        ns,
        name: name.unwrap_or(""),
        sub,
        op: admission::Operation::Create,
        user,
        authorizer: Some(&app.authorizer),
        dry_run: q.dry_run,
    };
    let mut warnings = Vec::new();
    app.admission
        .admit(&app.registry, &a, obj, None, &mut warnings)
        .await?;
    app.admission
        .validate(&app.registry, &a, obj, None, &mut warnings)
        .await
}

/// `serviceaccounts/token`: a TokenRequest answered with a bound token.
#[allow(clippy::too_many_arguments)]
async fn service_account_token(
    app: &App,
    headers: &HeaderMap,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: Option<&str>,
    body: Body,
    user: Option<&User>,
    q: &Query,
) -> ApiResult<Response> {
    let bytes = read_body(body).await?;
    let mut request = if bytes.is_empty() {
        json!({})
    } else {
        decode_body(headers, &bytes)?
    };
    admit_create(app, info, ns, name, Some("token"), user, &mut request, q).await?;
    let (answer, warnings) =
        token_request(app, ns.unwrap_or("default"), name.unwrap_or(""), request).await?;
    let resp = match negotiate(headers, true)? {
        Output::Protobuf => protobuf_response(StatusCode::CREATED, &answer),
        _ => json_response(StatusCode::CREATED, &answer),
    };
    Ok(with_warnings(resp, &warnings))
}

/// A review kind (TokenReview, SubjectAccessReview, ...): answered, never stored.
#[allow(clippy::too_many_arguments)]
async fn review(
    app: &App,
    headers: &HeaderMap,
    info: &ResourceInfo,
    ns: Option<&str>,
    user: Option<&User>,
    body: Body,
    q: &Query,
    pb: bool,
) -> ApiResult<Response> {
    let out = negotiate(headers, pb)?;
    let bytes = read_body(body).await?;
    let (obj, _) = typed_body(info, headers, &bytes, q).await?;
    let anonymous = User::new("system:anonymous", vec!["system:unauthenticated".into()]);
    let answer =
        crate::apiserver::registry::reviews::review(app, info, user.unwrap_or(&anonymous), ns, obj)
            .await?;
    Ok(encode_object(StatusCode::CREATED, out, info, &answer, q))
}
