//! `nodes/<name>/proxy/<path>`: a request relayed to the node's kubelet, as upstream's node proxy
//! relays it (how `kubectl get --raw /api/v1/nodes/N/proxy/stats/summary` or
//! `.../proxy/metrics/resource` reads a kubelet). The caller needs `nodes/proxy` (checked like every
//! subresource before this runs); the kubelet sees the apiserver's kubelet-client certificate, as for
//! logs. Only reads are relayed: the kubelet answers nothing else on these paths, and its
//! streams (exec, attach, port-forward) are reached through the pod's own subresources.

use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::apiserver::http::handlers::App;
use crate::apiserver::status::{ApiError, ApiResult};

/// The kubelet path a node proxy request asks for: whatever follows `/nodes/<name>/proxy`.
pub fn kubelet_path(path: &str, node: &str) -> Option<String> {
    let marker = format!("/nodes/{node}/proxy");
    let rest = &path[path.find(&marker)? + marker.len()..];
    if rest.is_empty() || rest.starts_with('/') {
        Some(if rest.is_empty() {
            "/".into()
        } else {
            rest.into()
        })
    } else {
        None
    }
}

/// Relays a GET to the kubelet of node `name` and streams its answer back (status, content type,
/// body) as upstream's proxy does.
pub async fn proxy(
    app: &App,
    method: &Method,
    name: &str,
    path: &str,
    query: Option<&str>,
) -> ApiResult<axum::response::Response> {
    if *method != Method::GET && *method != Method::HEAD {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported through nodes/proxy here: only GET and HEAD"),
        ));
    }
    let nodes = app
        .catalog
        .find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("this server serves no nodes"))?;
    let node = app.registry.get(&nodes, None, name).await?;
    let Some(rest) = kubelet_path(path, name) else {
        return Err(ApiError::not_found_path());
    };
    let (Some(tls), Some((ip, port))) = (
        app.kubelet_client.clone(),
        super::pod_connect::kubelet_address(&node),
    ) else {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            format!("no kubelet serves node {name:?}: nodes/proxy needs one"),
        ));
    };
    let target = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let resp = super::pod_connect::kubelet_request(tls, &ip, port, method.clone(), &target).await?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = resp.into_body().map_err(axum::Error::new);
    let mut out = axum::response::Response::new(axum::body::Body::new(body));
    *out.status_mut() = status;
    if let Some(ct) = content_type {
        out.headers_mut().insert(http::header::CONTENT_TYPE, ct);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelet_path_is_what_follows_proxy() {
        let p = |path| kubelet_path(path, "n1");
        assert_eq!(
            p("/api/v1/nodes/n1/proxy/stats/summary").as_deref(),
            Some("/stats/summary")
        );
        assert_eq!(p("/api/v1/nodes/n1/proxy").as_deref(), Some("/"));
        assert_eq!(p("/api/v1/nodes/n1/proxy/").as_deref(), Some("/"));
        assert_eq!(p("/api/v1/nodes/n1/proxyx"), None);
    }
}
