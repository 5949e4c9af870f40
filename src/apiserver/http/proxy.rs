//! `pods/{name}/proxy[/path]` and `services/{name}/proxy[/path]`: a request relayed from the apiserver
//! straight to a pod's IP, as upstream's pod and service `ProxyREST` do (how `kubectl get --raw
//! .../services/NAME:80/proxy/` and `kubectl proxy` reach an application inside the cluster).
//!
//! Start at [`serve`]. The name in the URL is upstream's `name`, `name:port` or `scheme:name:port`
//! ([`split_scheme_name_port`], scheme `http` or `https`). [`pod_location`] turns it into the pod's IP
//! and a port (a number, a container port's name, or the pod's first declared port), as upstream's pod
//! `ResourceLocation`; [`service_location`] into one ready endpoint of the Service's EndpointSlices for
//! that Service port, picked at random, as upstream's service `ResourceLocation`. [`forward`] then
//! relays the request as upstream's `UpgradeAwareHandler`: every method, the query, the headers (less
//! hop-by-hop ones and the caller's credentials, which the apiserver consumed) and the body go to the
//! backend; its status, headers and body stream back; a connection upgrade (WebSocket) is spliced
//! through [`crate::upgrade::relay`]; a bare `.../proxy` GET is redirected to `.../proxy/`; a
//! redirect the backend answers with is rewritten to stay under the proxy path.
//!
//! Authorization (`pods/proxy` or `services/proxy` with the method's verb) happens before this runs,
//! in the handler every request goes through. Not done as upstream: rewriting links inside HTML
//! bodies, `X-Forwarded-For` (the peer address is not passed down here), and upstream's check that a
//! service endpoint's pod still has that IP.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::apiserver::http::handlers::App;
use crate::apiserver::http::request::ResourcePath;
use crate::apiserver::status::{ApiError, ApiResult};

/// Time to open the TCP connection to the backend (as the kubelet streams' dial).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for an `https:` backend's TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `rp` asks for the proxy of a pod or a service.
pub fn is_proxy(rp: &ResourcePath) -> bool {
    rp.group.is_empty()
        && rp.version == "v1"
        && rp.namespace.is_some()
        && rp.name.is_some()
        && rp.subresource.as_deref() == Some("proxy")
        && matches!(rp.resource.as_str(), "pods" | "services")
}

/// The client's request, as the handler received it.
pub struct ProxyRequest {
    pub method: Method,
    pub headers: HeaderMap,
    /// The request's path as sent (percent-encoded).
    pub path: String,
    pub query: Option<String>,
    pub body: Body,
    /// The client's half of an upgraded connection, when it asked for one.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// How the apiserver talks to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Where a proxied request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub scheme: Scheme,
    pub addr: SocketAddr,
}

/// Upstream's `SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port`, the scheme `http`,
/// `https` or empty, the name not empty. Returns (scheme, name, port).
pub fn split_scheme_name_port(id: &str) -> Option<(Scheme, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    let scheme = match scheme {
        "" | "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    (!name.is_empty()).then_some((scheme, name, port))
}

/// The error of a backend that could not be reached, worded as upstream's proxy transport wraps it
/// (`error trying to reach service: ...`); upstream answers it as an unclassified error: 500, no
/// reason.
fn unreachable(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, "", format!("error trying to reach service: {detail}"))
}

/// Go's `net.IP.IsGlobalUnicast`: upstream refuses to proxy to any other address.
fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

/// A port given as a number: Go's dialer refuses what does not fit in 16 bits.
fn port_number(ip: IpAddr, port: &str) -> Option<ApiResult<u16>> {
    let n: u64 = port.parse().ok()?;
    Some(u16::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| {
        // Go's JoinHostPort: an IPv6 address in brackets.
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        unreachable(format!("dial tcp: address {host}:{port}: invalid port"))
    }))
}

fn default_port(scheme: Scheme) -> u16 {
    match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    }
}

/// Upstream's pod `ResourceLocation`: the pod's (first) IP, which must be a global unicast address
/// (else 400 `address not allowed`); the port as given (a number, or here also the name of one of
/// its containers' ports), else the first port its containers declare, else the scheme's.
pub fn pod_location(pod: &Value, scheme: Scheme, port: &str) -> ApiResult<Location> {
    let ip = pod
        .pointer("/status/podIPs/0/ip")
        .or_else(|| pod.pointer("/status/podIP"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<IpAddr>().ok())
        .filter(|ip| is_global_unicast(*ip))
        .ok_or_else(|| ApiError::bad_request("address not allowed"))?;
    let ports = || {
        pod.pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("ports").and_then(Value::as_array))
            .flatten()
    };
    let container_port = |p: &Value| {
        p.get("containerPort")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
    };
    let port = if port.is_empty() {
        ports()
            .next()
            .and_then(container_port)
            .unwrap_or_else(|| default_port(scheme))
    } else if let Some(n) = port_number(ip, port) {
        n?
    } else {
        // A name: the container port of that name (upstream leaves a name to the dialer, which
        // knows only /etc/services; its error is the one kept here).
        ports()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(port))
            .and_then(container_port)
            .ok_or_else(|| unreachable(format!("dial tcp: lookup tcp/{port}: unknown port")))?
    };
    Ok(Location {
        scheme,
        addr: SocketAddr::new(ip, port),
    })
}

/// Upstream's service `ResourceLocation`, over EndpointSlices: a port number must be one of the
/// Service's ports (503 `no service port N found for service "NAME"`) and stands for that port's
/// name; a name (or none, the unnamed port) is looked up in the slices' ports. One ready endpoint
/// serving that port is picked with `pick(count)`; none at all is 503 `no endpoints available for
/// service "NAME"`, none for this port the same with the whole `id`, as upstream words both.
pub fn service_location(
    svc: &Value,
    slices: &[Arc<Value>],
    id: &str,
    scheme: Scheme,
    port: &str,
    pick: impl FnOnce(usize) -> usize,
) -> ApiResult<Location> {
    let svc_name = svc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let unavailable = |message: String| ApiError::new(503, "ServiceUnavailable", message);
    let mut port_name = port;
    if let Ok(n) = port.parse::<i64>() {
        port_name = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("port").and_then(Value::as_i64) == Some(n))
            .map(|p| p.get("name").and_then(Value::as_str).unwrap_or_default())
            .ok_or_else(|| {
                unavailable(format!(
                    "no service port {n} found for service {svc_name:?}"
                ))
            })?;
    }
    let slices: Vec<&Value> = slices
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| {
            s.pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str)
                == Some(svc_name)
                && matches!(
                    s.get("addressType").and_then(Value::as_str),
                    Some("IPv4" | "IPv6")
                )
        })
        .collect();
    let endpoints = |s: &Value| {
        s.get("endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if slices.iter().all(|s| endpoints(s).is_empty()) {
        return Err(unavailable(format!(
            "no endpoints available for service {svc_name:?}"
        )));
    }
    let mut ready = Vec::new();
    for slice in &slices {
        let target_port = slice
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or_default() == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0);
        let Some(target_port) = target_port else {
            continue;
        };
        for ep in endpoints(slice) {
            // Unset means ready (the EndpointSlice API's rule).
            if ep.pointer("/conditions/ready").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let ip = ep
                .pointer("/addresses/0")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<IpAddr>().ok());
            if let Some(ip) = ip {
                ready.push(SocketAddr::new(ip, target_port));
            }
        }
    }
    if ready.is_empty() {
        return Err(unavailable(format!(
            "no endpoints available for service {id:?}"
        )));
    }
    let addr = ready[pick(ready.len()).min(ready.len() - 1)];
    Ok(Location { scheme, addr })
}

/// `path` (as sent) cut after its `proxy` segment: `/api/v1/namespaces/NS/RESOURCE/NAME/proxy` and
/// what follows it. Empty segments do not count, as in `parse_path`.
fn split_at_proxy(path: &str) -> Option<(&str, &str)> {
    let mut rest = path;
    let mut last = "";
    for _ in 0..7 {
        rest = rest.trim_start_matches('/');
        let end = rest.find('/').unwrap_or(rest.len());
        last = &rest[..end];
        rest = &rest[end..];
    }
    (last == "proxy").then(|| path.split_at(path.len() - rest.len()))
}

/// What follows `.../{resource}/{name}/proxy` in `path` (as sent), joined and cleaned as upstream's
/// `JoinPreservingTrailingSlash` does: `""` when nothing follows, else an absolute path without
/// `.`/`..`/empty segments that keeps a trailing slash. `None` if `path` is not a proxy path.
pub fn backend_path(path: &str) -> Option<String> {
    let (_, rest) = split_at_proxy(path)?;
    if rest.is_empty() {
        return Some(String::new());
    }
    let mut segments: Vec<&str> = Vec::new();
    for s in rest.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if rest.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    Some(out)
}

/// Serves `pods/{name}/proxy` or `services/{name}/proxy` (see the module doc).
pub async fn serve(
    app: &App,
    rp: &ResourcePath,
    req: ProxyRequest,
) -> ApiResult<axum::response::Response> {
    let (Some(ns), Some(id)) = (rp.namespace.as_deref(), rp.name.as_deref()) else {
        return Err(ApiError::not_found_path());
    };
    let Some(sub) = backend_path(&req.path) else {
        return Err(ApiError::not_found_path());
    };
    let kind = if rp.resource == "pods" {
        "pod"
    } else {
        "service"
    };
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid {kind} request {id:?}")))?;
    let info = app
        .catalog
        .find("", "v1", &rp.resource)
        .ok_or_else(ApiError::not_found_path)?;
    let obj = app.registry.get(&info, Some(ns), name).await?;
    let location = if rp.resource == "pods" {
        pod_location(&obj, scheme, port)?
    } else {
        let slices = app
            .registry
            .lookup_list("discovery.k8s.io", "v1", "endpointslices", Some(ns))
            .await?;
        service_location(&obj, &slices, id, scheme, port, |n| {
            rand::Rng::random_range(&mut rand::rng(), 0..n)
        })?
    };
    forward(location, &sub, req, app.limits.request_timeout).await
}

/// Request headers never passed on: hop-by-hop ones (Go's reverse proxy drops them; an upgrade
/// puts its own back) and the credentials the apiserver consumed (upstream's authentication and
/// impersonation filters delete them before any handler runs).
fn dropped_request_header(name: &HeaderName) -> bool {
    is_hop_by_hop(name)
        || name == header::AUTHORIZATION
        || name.as_str().starts_with("impersonate-")
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "proxy-connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The header names a `Connection` header lists: hop-by-hop for this message too.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The headers to send the backend: the client's, less [`dropped_request_header`]s, plus upstream's
/// `X-Forwarded-Uri` (the path the client asked the apiserver for).
fn backend_headers(client: &HeaderMap, forwarded_uri: &str, host: &str) -> HeaderMap {
    let listed = connection_tokens(client);
    let mut out = HeaderMap::new();
    for (name, value) in client {
        if dropped_request_header(name) || listed.iter().any(|t| t == name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if !out.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(host) {
            out.insert(header::HOST, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(forwarded_uri) {
        out.insert(HeaderName::from_static("x-forwarded-uri"), v);
    }
    out
}

/// Upstream's `Transport.rewriteURL` for a redirect's `Location`: a same-host absolute path (or a
/// URL on the backend's own address) is put under `prefix`, the proxy path, so the client follows
/// it through the apiserver; relative and other hosts' URLs are left alone.
fn rewrite_location(location: &str, backend: SocketAddr, prefix: &str) -> String {
    let path_and_query = if let Some(rest) = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"))
    {
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if host != backend.to_string() {
            return location.to_string();
        }
        if path.is_empty() {
            "/"
        } else {
            path
        }
    } else if location.starts_with('/') && !location.starts_with("//") {
        location
    } else {
        return location.to_string();
    };
    if path_and_query.starts_with(prefix) {
        return path_and_query.to_string();
    }
    format!("{prefix}{path_and_query}")
}

/// Any stream the backend is reached over (TCP, or TLS over it).
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Go's wording of an OS error ("connection refused", not "Connection refused (os error 111)").
fn go_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

async fn dial(location: Location) -> ApiResult<Box<dyn Io>> {
    let addr = location.addr;
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable(format!("dial tcp {addr}: i/o timeout")))?
        .map_err(|e| unreachable(format!("dial tcp {addr}: connect: {}", go_error(&e))))?;
    let _ = tcp.set_nodelay(true);
    if location.scheme == Scheme::Http {
        return Ok(Box::new(tcp));
    }
    // Upstream's proxy transport does not verify a pod's certificate (`InsecureSkipVerify`), as the
    // kubelet's HTTPS probes do not.
    let tls = crate::kubelet::probe_client::insecure_client_config().map_err(unreachable)?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = tokio::time::timeout(
        TLS_HANDSHAKE_TIMEOUT,
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .map_err(|_| unreachable("net/http: TLS handshake timeout"))?
    .map_err(|e| unreachable(format!("tls: {e}")))?;
    Ok(Box::new(stream))
}

/// Relays `req` to `location` at `sub` (see [`backend_path`]) and answers with the backend's reply,
/// its body streaming. `header_timeout` bounds the wait for the backend's response headers (the
/// body, and an upgraded stream, may then last as long as the two ends want).
pub async fn forward(
    location: Location,
    sub: &str,
    req: ProxyRequest,
    header_timeout: Duration,
) -> ApiResult<axum::response::Response> {
    let query = req.query.as_deref().filter(|q| !q.is_empty());
    let with_query = |p: &str| match query {
        Some(q) => format!("{p}?{q}"),
        None => p.to_string(),
    };
    if sub.is_empty() && (req.method == Method::GET || req.method == Method::HEAD) {
        // Upstream's redirect of a bare `.../proxy` to `.../proxy/`, so relative links resolve.
        let target = with_query(&format!("{}/", req.path));
        let mut out = axum::response::Response::new(Body::empty());
        *out.status_mut() = StatusCode::MOVED_PERMANENTLY;
        if let Ok(v) = HeaderValue::from_str(&target) {
            out.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(out);
    }
    let backend_path = if sub.is_empty() { "/" } else { sub };
    let uri = with_query(backend_path);
    // The proxy prefix: the client's path up to and including `/proxy`.
    let prefix = split_at_proxy(&req.path)
        .map(|(prefix, _)| prefix.to_string())
        .unwrap_or_default();
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .unwrap_or_else(|| location.addr.to_string());
    let mut headers = backend_headers(&req.headers, &req.path, &host);
    let stream = dial(location).await?;

    if crate::upgrade::wants_upgrade(&req.headers) {
        // The upgrade headers go back in (they are hop-by-hop for plain requests only).
        for name in [header::CONNECTION, header::UPGRADE] {
            for v in req.headers.get_all(&name) {
                headers.append(name.clone(), v.clone());
            }
        }
        let mut backend_req = http::Request::builder()
            .method(req.method.clone())
            .uri(&uri)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        *backend_req.headers_mut() = headers;
        let answer = tokio::time::timeout(
            header_timeout,
            crate::upgrade::relay(stream, backend_req, req.upgrade),
        )
        .await
        .map_err(|_| unreachable("net/http: timeout awaiting response headers"))?
        .map_err(unreachable)?;
        let status = answer.status();
        if status != StatusCode::SWITCHING_PROTOCOLS && status.as_u16() < 400 {
            // Upstream's answer to a backend that neither upgrades nor refuses.
            return Err(ApiError::new(
                500,
                "",
                format!("invalid upgrade response: status code {}", status.as_u16()),
            ));
        }
        return Ok(answer.map(Body::new));
    }

    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Body>(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(unreachable)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("proxy: backend connection: {e}");
        }
    });
    let mut backend_req = http::Request::builder()
        .method(req.method.clone())
        .uri(&uri)
        .body(req.body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    *backend_req.headers_mut() = headers;
    let resp = tokio::time::timeout(header_timeout, sender.send_request(backend_req))
        .await
        .map_err(|_| unreachable("net/http: timeout awaiting response headers"))?
        .map_err(unreachable)?;
    let (mut parts, body) = resp.into_parts();
    let listed = connection_tokens(&parts.headers);
    let names: Vec<HeaderName> = parts.headers.keys().cloned().collect();
    for name in names {
        // Hop-by-hop headers are this connection's, and upstream's proxy strips CORS headers so a
        // browser never takes the backend's grants for the apiserver's.
        if is_hop_by_hop(&name)
            || listed.iter().any(|t| t == name.as_str())
            || name.as_str().starts_with("access-control-allow-")
        {
            parts.headers.remove(&name);
        }
    }
    if let Some(loc) = parts
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
    {
        let rewritten = rewrite_location(loc, location.addr, &prefix);
        if let Ok(v) = HeaderValue::from_str(&rewritten) {
            parts.headers.insert(header::LOCATION, v);
        }
    }
    Ok(axum::response::Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn names_as_upstream_splits_them() {
        assert_eq!(
            split_scheme_name_port("web"),
            Some((Scheme::Http, "web", ""))
        );
        assert_eq!(
            split_scheme_name_port("web:8080"),
            Some((Scheme::Http, "web", "8080"))
        );
        assert_eq!(
            split_scheme_name_port("https:web:tls"),
            Some((Scheme::Https, "web", "tls"))
        );
        assert_eq!(
            split_scheme_name_port("http:web:"),
            Some((Scheme::Http, "web", ""))
        );
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    fn pod(ip: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": "web"}, "spec": {"containers": [
            {"name": "side"},
            {"name": "c", "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]},
        ]}});
        if let Some(ip) = ip {
            p["status"] = json!({"podIP": ip, "podIPs": [{"ip": ip}]});
        }
        p
    }

    #[test]
    fn pod_locations_as_upstream() {
        let p = pod(Some("10.88.0.5"));
        let at = |scheme, port| pod_location(&p, scheme, port).map(|l| l.addr.to_string());
        assert_eq!(
            at(Scheme::Http, "").unwrap(),
            "10.88.0.5:8080",
            "the first declared port"
        );
        assert_eq!(at(Scheme::Http, "81").unwrap(), "10.88.0.5:81");
        assert_eq!(
            at(Scheme::Http, "metrics").unwrap(),
            "10.88.0.5:9090",
            "a container port's name"
        );
        assert_eq!(
            at(Scheme::Http, "nope").unwrap_err().message,
            "error trying to reach service: dial tcp: lookup tcp/nope: unknown port"
        );
        assert_eq!(
            at(Scheme::Http, "70000").unwrap_err().message,
            "error trying to reach service: dial tcp: address 10.88.0.5:70000: invalid port"
        );
        let bare =
            json!({"status": {"podIP": "10.88.0.6"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(
            pod_location(&bare, Scheme::Https, "")
                .unwrap()
                .addr
                .to_string(),
            "10.88.0.6:443"
        );
        let e = pod_location(&pod(None), Scheme::Http, "80").unwrap_err();
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (400, "BadRequest", "address not allowed")
        );
        for ip in [
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "224.0.0.1",
        ] {
            let e = pod_location(&pod(Some(ip)), Scheme::Http, "80").unwrap_err();
            assert_eq!(e.message, "address not allowed", "{ip}");
        }
        assert_eq!(
            pod_location(&pod(Some("fd00::5")), Scheme::Http, "80")
                .unwrap()
                .addr
                .to_string(),
            "[fd00::5]:80"
        );
    }

    fn service() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"ports": [
            {"port": 80, "targetPort": 8080},
        ]}})
    }

    fn named_service() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "metrics", "port": 9000, "targetPort": 9090},
        ]}})
    }

    fn slice(owner: &str, ports: Value, endpoints: Value) -> Arc<Value> {
        Arc::new(
            json!({"metadata": {"name": format!("{owner}-x"), "labels": {"kubernetes.io/service-name": owner}},
                        "addressType": "IPv4", "ports": ports, "endpoints": endpoints}),
        )
    }

    #[test]
    fn service_locations_as_upstream() {
        let eps = json!([
            {"addresses": ["10.88.0.5"], "conditions": {"ready": true}},
            {"addresses": ["10.88.0.6"], "conditions": {"ready": false}},
            {"addresses": ["10.88.0.7"]},
        ]);
        let slices = vec![
            slice(
                "web",
                json!([{"port": 8080, "protocol": "TCP"}]),
                eps.clone(),
            ),
            slice(
                "other",
                json!([{"port": 1, "protocol": "TCP"}]),
                json!([{"addresses": ["10.0.0.1"]}]),
            ),
        ];
        let svc = service();
        let at = |id: &str, port: &str, i: usize| {
            service_location(&svc, &slices, id, Scheme::Http, port, |n| {
                assert_eq!(n, 2, "the ready endpoints of this service's slices");
                i
            })
            .map(|l| l.addr.to_string())
        };
        assert_eq!(at("web", "", 0).unwrap(), "10.88.0.5:8080");
        assert_eq!(
            at("web:80", "80", 1).unwrap(),
            "10.88.0.7:8080",
            "unset readiness is ready"
        );
        let e = at("web:81", "81", 0).unwrap_err();
        assert_eq!(
            (e.code, e.reason, e.message.as_str()),
            (
                503,
                "ServiceUnavailable",
                "no service port 81 found for service \"web\""
            )
        );
        assert_eq!(
            at("web:http", "http", 0).unwrap_err().message,
            "no endpoints available for service \"web:http\"",
            "no endpoint serves a port of that name"
        );

        let named = named_service();
        let slices = vec![slice(
            "web",
            json!([{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]),
            eps,
        )];
        let at = |id: &str, port: &str| {
            service_location(&named, &slices, id, Scheme::Https, port, |_| 0)
                .map(|l| l.addr.to_string())
        };
        assert_eq!(at("web:http", "http").unwrap(), "10.88.0.5:8080");
        assert_eq!(
            at("web:9000", "9000").unwrap(),
            "10.88.0.5:9090",
            "a port number stands for its name"
        );
        assert_eq!(at("web:metrics", "metrics").unwrap(), "10.88.0.5:9090");
        assert_eq!(
            at("web", "").unwrap_err().message,
            "no endpoints available for service \"web\"",
            "no unnamed port"
        );

        let empty = vec![slice("web", json!([{"port": 8080}]), json!([]))];
        let e = service_location(&svc, &empty, "web:80", Scheme::Http, "80", |_| 0).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (503, "no endpoints available for service \"web\"")
        );
        let e = service_location(&svc, &[], "web", Scheme::Http, "", |_| 0).unwrap_err();
        assert_eq!(e.message, "no endpoints available for service \"web\"");
        let not_ready = vec![slice(
            "web",
            json!([{"port": 8080}]),
            json!([{"addresses": ["10.88.0.6"], "conditions": {"ready": false}}]),
        )];
        let e = service_location(&svc, &not_ready, "web", Scheme::Http, "", |_| 0).unwrap_err();
        assert_eq!(e.message, "no endpoints available for service \"web\"");
    }

    #[test]
    fn backend_paths_keep_what_follows_proxy() {
        let p = |path| backend_path(path);
        assert_eq!(
            p("/api/v1/namespaces/n/pods/web:80/proxy").as_deref(),
            Some("")
        );
        assert_eq!(
            p("/api/v1/namespaces/n/pods/web:80/proxy/").as_deref(),
            Some("/")
        );
        assert_eq!(
            p("/api/v1/namespaces/n/services/web/proxy/a/b/").as_deref(),
            Some("/a/b/")
        );
        assert_eq!(
            p("/api/v1/namespaces/n/services/web/proxy/a/../../x//y").as_deref(),
            Some("/x/y")
        );
        assert_eq!(
            p("/api/v1/namespaces/n/services/web/proxy/a%2Fb").as_deref(),
            Some("/a%2Fb")
        );
        assert_eq!(p("/api/v1/namespaces/n/pods/web/log"), None);
        assert_eq!(
            split_at_proxy("/api/v1/namespaces/n/pods/web/proxy/a/../b"),
            Some(("/api/v1/namespaces/n/pods/web/proxy", "/a/../b"))
        );
    }

    #[test]
    fn redirects_stay_under_the_proxy() {
        let backend: SocketAddr = "10.88.0.5:8080".parse().unwrap();
        let prefix = "/api/v1/namespaces/n/pods/web:8080/proxy";
        assert_eq!(
            rewrite_location("/dir/", backend, prefix),
            format!("{prefix}/dir/")
        );
        assert_eq!(
            rewrite_location("http://10.88.0.5:8080/x?y=1", backend, prefix),
            format!("{prefix}/x?y=1")
        );
        assert_eq!(
            rewrite_location("http://example.com/x", backend, prefix),
            "http://example.com/x"
        );
        assert_eq!(rewrite_location("rel/x", backend, prefix), "rel/x");
        assert_eq!(
            rewrite_location(&format!("{prefix}/x"), backend, prefix),
            format!("{prefix}/x")
        );
    }

    /// A backend that answers one request with `answer` and hands back what it read.
    async fn backend(answer: &'static str) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then the body its Content-Length announces.
            loop {
                let n = s.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            s.write_all(answer.as_bytes()).await.unwrap();
            s.shutdown().await.ok();
            String::from_utf8_lossy(&seen).to_string()
        });
        (addr, task)
    }

    fn request(
        method: Method,
        path: &str,
        query: Option<&str>,
        body: &'static str,
    ) -> ProxyRequest {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:6443".parse().unwrap());
        headers.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        headers.insert("impersonate-user", "bob".parse().unwrap());
        headers.insert(header::CONNECTION, "keep-alive, x-hop".parse().unwrap());
        headers.insert("x-hop", "1".parse().unwrap());
        headers.insert("x-app", "kept".parse().unwrap());
        headers.insert(header::CONTENT_LENGTH, body.len().into());
        ProxyRequest {
            method,
            headers,
            path: path.into(),
            query: query.map(String::from),
            body: Body::from(body),
            upgrade: None,
        }
    }

    #[tokio::test]
    async fn relays_method_query_headers_and_body_both_ways() {
        let (addr, seen) = backend(
            "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nConnection: close\r\n\
             Access-Control-Allow-Origin: *\r\nX-Backend: yes\r\nContent-Length: 5\r\n\r\nmade!",
        )
        .await;
        let path = "/api/v1/namespaces/n/pods/web:8080/proxy/submit";
        let loc = Location {
            scheme: Scheme::Http,
            addr,
        };
        let resp = forward(
            loc,
            "/submit",
            request(Method::POST, path, Some("a=1&watch=true"), "hello"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["x-backend"], "yes");
        assert!(!resp.headers().contains_key(header::CONNECTION));
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"made!");
        let seen = seen.await.unwrap().to_ascii_lowercase();
        assert!(
            seen.starts_with("post /submit?a=1&watch=true http/1.1\r\n"),
            "{seen}"
        );
        assert!(seen.ends_with("\r\n\r\nhello"), "{seen}");
        assert!(seen.contains("host: 127.0.0.1:6443\r\n"), "{seen}");
        assert!(seen.contains("x-app: kept\r\n"), "{seen}");
        assert!(
            seen.contains(&format!("x-forwarded-uri: {path}\r\n")),
            "{seen}"
        );
        for gone in ["authorization", "impersonate-user", "x-hop", "keep-alive"] {
            assert!(!seen.contains(&format!("{gone}:")), "{gone} in {seen}");
        }
    }

    #[tokio::test]
    async fn a_bare_proxy_path_is_redirected_and_backend_redirects_rewritten() {
        let path = "/api/v1/namespaces/n/pods/web/proxy";
        let loc = Location {
            scheme: Scheme::Http,
            addr: "127.0.0.1:9".parse().unwrap(),
        };
        let resp = forward(
            loc,
            "",
            request(Method::GET, path, Some("x=1"), ""),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(resp.headers()[header::LOCATION], format!("{path}/?x=1"));

        let (addr, _) =
            backend("HTTP/1.1 301 Moved\r\nLocation: /dir/\r\nContent-Length: 0\r\n\r\n").await;
        let loc = Location {
            scheme: Scheme::Http,
            addr,
        };
        let resp = forward(
            loc,
            "/dir",
            request(Method::GET, &format!("{path}/dir"), None, ""),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(resp.headers()[header::LOCATION], format!("{path}/dir/"));
    }

    #[tokio::test]
    async fn an_unreachable_backend_is_upstreams_error() {
        // A port nothing listens on: bind one, then free it.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let loc = Location {
            scheme: Scheme::Http,
            addr,
        };
        let e = forward(
            loc,
            "/",
            request(Method::GET, "/api/v1/namespaces/n/pods/p/proxy/", None, ""),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!((e.code, e.reason), (500, ""));
        assert_eq!(
            e.message,
            format!("error trying to reach service: dial tcp {addr}: connect: connection refused")
        );
    }
}
