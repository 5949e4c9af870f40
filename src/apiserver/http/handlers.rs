//! The HTTP edge: routes a request to discovery, OpenAPI, health or the registry, decodes its body and
//! encodes the answer in the form the client negotiated (JSON, YAML, Table, PartialObjectMetadata, and
//! watch streams of each).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use serde_json::json;

use crate::apiserver::audit;
use crate::apiserver::authn::bearer::*;
use crate::apiserver::authz;
use crate::apiserver::catalog::{SharedCatalog, SubresourceHandler};
use crate::apiserver::http::discovery;
use crate::apiserver::http::discovery::*;
use crate::apiserver::http::metrics::{Labels, Tracked};
use crate::apiserver::http::negotiate::*;
use crate::apiserver::http::node_proxy;
use crate::apiserver::http::pod_connect;
use crate::apiserver::http::proxy;
use crate::apiserver::http::request::{parse_path, Query, ResourcePath, Target};
use crate::apiserver::http::resource::*;
use crate::apiserver::openapi::OpenApiV3;
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::protobuf;

/// Upstream's request body limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub use crate::apiserver::authz::User;

/// Set per connection: None for a connection without a verified client certificate.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Option<User>);

/// The client's address (an audit event's `sourceIPs`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Set per connection whose client certificate verified but names no user (no common name): its
/// requests are refused (401), never treated as anonymous.
#[derive(Clone, Copy, Debug)]
pub struct CertRejected;

pub struct App {
    pub registry: Arc<Registry>,
    /// Authorization over the registry's RBAC objects.
    pub authorizer: crate::apiserver::authz::Authorizer,
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
    /// The caller's post-start hook (its name in `/readyz`, and whether it is done).
    pub caller_hook: Option<(&'static str, Arc<std::sync::atomic::AtomicBool>)>,
    /// How this server calls kubelets (pods/log); `None`: it does not.
    pub kubelet_client: Option<Arc<rustls::ClientConfig>>,
    /// The admission plugins writes pass through.
    pub admission: crate::apiserver::admission::Chain,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::apiserver::http::metrics::Metrics>,
    /// The audit policy and log; `None`: requests are not audited (and pay nothing for it).
    pub audit: Option<Arc<audit::Auditor>>,
}

/// The one handler every request goes through. With auditing on, it makes the request's audit record
/// (read by `route`, which fills in the user, the decision and the body) and finishes it with the answer.
pub async fn handle(State(app): State<Arc<App>>, mut req: Request) -> Response {
    let started = std::time::Instant::now();
    let labels = Labels::of(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        req.headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let metrics = app.metrics.clone();
    // The request's audit record rides in its extensions to `route`, which fills it in.
    let audit = app.audit.as_ref().map(|auditor| {
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        let record = auditor.request(req.method(), req.uri(), req.headers(), peer);
        req.extensions_mut().insert(record.clone());
        record
    });
    let (method, path, query) = match audit {
        Some(_) => (
            req.method().clone(),
            req.uri().path().to_string(),
            req.uri().query().map(str::to_string),
        ),
        None => Default::default(),
    };
    let mut response = answer(app, req).await;
    if let Some(audit) = audit {
        response = audit
            .finish(response, || {
                request_attributes(&method, &path, query.as_deref())
            })
            .await;
    }
    metrics.observe(&labels, response.status().as_u16(), started.elapsed());
    if labels.long_running() && response.status().is_success()
        || response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let open = metrics.open(labels);
        return Tracked::wrap(response, open);
    }
    response
}

async fn answer(app: Arc<App>, req: Request) -> Response {
    // Errors go out in protobuf when the client prefers it, except for custom resources (no protobuf).
    let protobuf_errors = matches!(negotiate(req.headers(), true), Ok(Output::Protobuf))
        && !is_custom_resource_path(&app, req.uri().path());
    let audit = match app.audit {
        Some(_) => req.extensions().get::<audit::Handle>().cloned(),
        None => None,
    };
    let result = route(app, req).await;
    if let (Some(audit), Err(e)) = (&audit, &result) {
        audit.failed(e);
    }
    match result {
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
    let (mut parts, body) = req.into_parts();
    // The client's half of an upgraded connection (exec, attach, port-forward).
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
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
            match authenticate_token(&app, &token, &app.tokens.options.api_audiences).await? {
                TokenAuth::User(u, _) => Some(u),
                TokenAuth::Invalid(why) => {
                    tracing::debug!("bearer token refused: {why}");
                    return Err(ApiError::unauthorized());
                }
            }
        }
        (None, None) => None,
    };
    let audit = match app.audit {
        Some(_) => parts.extensions.get::<audit::Handle>().cloned(),
        None => None,
    };
    if let Some(audit) = &audit {
        // Upstream audits after authentication: a request without credentials as the anonymous user.
        let anonymous = User::new("system:anonymous", vec!["system:unauthenticated".into()]);
        audit.begin(
            user.as_ref().unwrap_or(&anonymous),
            &request_attributes(&parts.method, &path, raw_query.as_deref()),
        );
    }
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
    let requester = audit.as_ref().map(|_| authenticated.clone());
    let user = authz::impersonation::resolve(&app.authorizer, authenticated, headers)?;
    if let (Some(audit), Some(requester)) = (&audit, requester) {
        if requester != user {
            audit.impersonated(&user);
        }
    }
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
    let decision = app.authorizer.authorize(&user, &attrs);
    if let Some(audit) = &audit {
        audit.authorized(decision.allowed, &decision.reason);
    }
    if !decision.allowed {
        return Err(attrs.forbidden(&user.name, &decision.reason));
    }
    let long_running = crate::apiserver::http::limits::is_long_running(&attrs);
    let permit = match app
        .limits
        .admit(&user, &attrs, &parts.method, long_running)
        .await
    {
        Ok(permit) => permit,
        Err(refused) => return Ok(refused.into_response()),
    };
    if resource_target && !app.registry.cache.is_loaded() {
        // Lists and gets are served from the cache: while it (re)loads they would see nothing.
        return Err(ApiError::storage_initializing());
    }
    let body = match &audit {
        Some(audit) => audit.capture_body(&parts.headers, body),
        None => body,
    };
    let request = Dispatch {
        app: app.clone(),
        method: parts.method,
        headers: parts.headers,
        path,
        raw_query,
        body,
        upgrade,
        user,
        target,
    };
    if long_running {
        return audit::scope(audit, request.run()).await;
    }
    // The work runs as its own task, so a request that outlives its deadline is answered 504 but is
    // never cut in the middle of a write: it finishes (or fails) on its own, holding its in-flight slot.
    let deadline = app.limits.request_timeout;
    // Admission reaches the audit record through the task-local `audit::scope` sets.
    let work = tokio::spawn(audit::scope(audit, async move {
        let answer = request.run().await;
        drop(permit);
        answer
    }));
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(panicked)) => Err(ApiError::internal(format!("request failed: {panicked}"))),
        Err(_) => Err(
            ApiError::timeout(crate::apiserver::status::REQUEST_TIMEOUT_MESSAGE)
                .with_details(json!({})),
        ),
    }
}

/// What a request does, for the audit policy (the same attributes authorization is asked about).
fn request_attributes(method: &Method, path: &str, raw_query: Option<&str>) -> authz::Attributes {
    match parse_path(path) {
        Some(Target::Resource(rp)) => authz::Attributes::for_resource(
            method,
            &rp,
            &Query::parse(raw_query).unwrap_or_default(),
        ),
        _ => authz::Attributes::for_path(method, path),
    }
}

/// Whether `rp` is a connect subresource (a pod's log and streams), served by [`pod_connect`].
fn is_pod_connect(app: &App, rp: &ResourcePath) -> bool {
    let Some(sub) = rp.subresource.as_deref() else {
        return false;
    };
    rp.name.is_some()
        && app
            .catalog
            .find(&rp.group, &rp.version, &rp.resource)
            .and_then(|info| info.subresource(sub).map(|s| s.handler))
            == Some(SubresourceHandler::Connect)
}

/// What is left of a request once it is authenticated, authorized and admitted.
struct Dispatch {
    app: Arc<App>,
    method: Method,
    headers: HeaderMap,
    path: String,
    raw_query: Option<String>,
    body: Body,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
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
            upgrade,
            user,
            target,
        } = self;
        let trimmed = path.trim_end_matches('/');
        let headers = &headers;
        let user = Some(user);
        if trimmed == "/metrics" && method == Method::GET {
            return Ok(respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                app.metrics.render(&app.registry).into_bytes(),
            ));
        }
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
        if let Target::Resource(rp) = &target {
            if proxy::is_proxy(rp) {
                // Before the query is parsed: it is the backend's, not the apiserver's options.
                let request = proxy::ProxyRequest {
                    method,
                    headers: headers.clone(),
                    path,
                    query: raw_query,
                    body,
                    upgrade,
                };
                return proxy::serve(&app, rp, request).await;
            }
        }
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
            Target::Resource(rp)
                if rp.group.is_empty()
                    && rp.resource == "nodes"
                    && rp.subresource.as_deref() == Some("proxy") =>
            {
                let name = rp.name.as_deref().unwrap_or_default();
                node_proxy::proxy(&app, &method, name, &path, raw_query.as_deref()).await
            }
            Target::Resource(rp) if is_pod_connect(&app, &rp) => {
                pod_connect::connect(&app, (&method, headers), &rp, &q, upgrade).await
            }
            Target::Resource(rp) => {
                resource(&app, method, headers, rp, q, body, user.as_ref()).await
            }
        }
    }
}
