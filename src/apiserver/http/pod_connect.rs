//! `pods/log`, `exec`, `attach` and `portforward`: the part of these streams the apiserver answers
//! itself, as upstream's pod REST does before it proxies to the kubelet: the pod must exist (404), the
//! container must be named when the pod has several and must be one of its containers (400), and an
//! unscheduled pod has no logs yet (an empty answer) and nothing to exec into (400). A scheduled pod's
//! stream is then proxied to its node's kubelet (the node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port`, over TLS with the apiserver's kubelet-client
//! certificate, the kubelet's serving certificate checked against the cluster CA): [`proxy_log`] for
//! logs, [`proxy_stream`] for exec, attach and port-forward, whose upgraded connection (SPDY or
//! WebSocket) is relayed byte for byte ([`crate::upgrade`]), except WebSocket v5 exec and attach,
//! which are translated to SPDY ([`crate::upgrade::translator`]). Nodes without a kubelet port (hollow
//! nodes) answer 503 saying so.

use std::sync::Arc;

use http::StatusCode;
use serde_json::Value;

use crate::apiserver::http::handlers::App;
use crate::apiserver::http::negotiate::respond;
use crate::apiserver::http::request::{Query, ResourcePath};
use crate::apiserver::status::{ApiError, ApiResult};

/// The subresources served here.
pub const SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward"];

fn container_names(pod: &Value, field: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The named container, else the pod's first (the one there is once [`validate_container`] passed).
fn container_or_default(pod: &Value, container: Option<&str>) -> String {
    match container.filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => container_names(pod, "containers")
            .into_iter()
            .next()
            .unwrap_or_default(),
    }
}

/// Upstream's container check: the one container when there is one, else the named one, which must exist.
fn validate_container(
    pod: &Value,
    name: &str,
    container: Option<&str>,
    streaming: bool,
) -> ApiResult<()> {
    let containers = container_names(pod, "containers");
    match container.filter(|c| !c.is_empty()) {
        None if containers.len() == 1 => Ok(()),
        None if containers.is_empty() => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        None => {
            // Go's %s of a []string: [a b]
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            let init = container_names(pod, "initContainers");
            if streaming && !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
        Some(c) => {
            let known = ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .any(|f| container_names(pod, f).iter().any(|n| n == c));
            if known {
                Ok(())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
    }
}

/// What to answer for `subresource` of `pod` before any kubelet is asked: `Ok(Some(body))` is a
/// plain-text answer (an unscheduled pod's empty log), `Ok(None)` means the pod's kubelet serves it.
pub fn answer(
    pod: &Value,
    subresource: &str,
    container: Option<&str>,
) -> ApiResult<Option<String>> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if subresource != "portforward" {
        validate_container(pod, name, container, subresource != "log")?;
    }
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node.is_empty() {
        return match subresource {
            "log" => Ok(Some(String::new())),
            _ => Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            ))),
        };
    }
    Ok(None)
}

fn no_kubelet(node: &str, subresource: &str) -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        format!("no kubelet serves node {node:?} yet: pods/{subresource} needs one"),
    )
}

/// Serves a connect subresource of a pod (`log`, `exec`, `attach`, `portforward`): the checks the
/// apiserver makes itself, then the pod's kubelet.
pub(crate) async fn connect(
    app: &App,
    request: (&http::Method, &http::HeaderMap),
    rp: &ResourcePath,
    q: &Query,
    client: Option<hyper::upgrade::OnUpgrade>,
) -> ApiResult<axum::response::Response> {
    let info = app
        .catalog
        .find(&rp.group, &rp.version, &rp.resource)
        .ok_or_else(ApiError::not_found_path)?;
    let (Some(name), Some(sub)) = (rp.name.as_deref(), rp.subresource.as_deref()) else {
        return Err(ApiError::not_found_path());
    };
    let pod = app
        .registry
        .get(&info, rp.namespace.as_deref(), name)
        .await?;
    let container = q.container.as_deref();
    let node_name = pod_field(&pod, "/spec/nodeName");
    // A scheduled pod's log names the init containers too when asking for a container, as its
    // streams do.
    let check_as = if sub == "log" && !node_name.is_empty() {
        "exec"
    } else {
        sub
    };
    if let Some(body) = answer(&pod, check_as, container)? {
        return Ok(respond(StatusCode::OK, "text/plain", body.into_bytes()));
    }
    let node = match app.catalog.find("", "v1", "nodes") {
        Some(nodes) => app.registry.get(&nodes, None, node_name).await.ok(),
        None => None,
    };
    let tls = app.kubelet_client.clone();
    if sub == "log" {
        return proxy_log(tls, &pod, node.as_ref(), container, &q.raw).await;
    }
    let (method, headers) = request;
    proxy_stream(
        tls,
        &pod,
        node.as_ref(),
        sub,
        container,
        (method, headers, &q.raw),
        client,
    )
    .await
}

/// Where a node's kubelet listens: its InternalIP (else first address) and its reported port.
pub fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p <= u64::from(u16::MAX))?;
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?;
    let pick = |t: &str| {
        addresses
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
            .and_then(|a| a.get("address").and_then(Value::as_str))
    };
    let ip = pick("InternalIP").or_else(|| pick("Hostname"))?;
    Some((ip.to_string(), port as u16))
}

/// The kubelet's log URL query for the apiserver's: upstream's PodLogOptions, passed through.
fn kubelet_log_query(query: &str) -> String {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| {
            matches!(
                k.as_ref(),
                "follow" | "previous" | "timestamps" | "tailLines" | "limitBytes" | "sinceSeconds"
            )
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

/// Proxies `pods/log` of a scheduled pod to its node's kubelet and streams the answer back.
pub async fn proxy_log(
    tls: Option<Arc<rustls::ClientConfig>>,
    pod: &Value,
    node: Option<&Value>,
    container: Option<&str>,
    query: &str,
) -> ApiResult<axum::response::Response> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let container = container_or_default(pod, container);
    let (Some(tls), Some((ip, port))) = (tls, node.and_then(kubelet_address)) else {
        return Err(no_kubelet(node_name, "log"));
    };
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        enc(ns),
        enc(name),
        enc(&container),
        kubelet_log_query(query)
    );
    let resp = kubelet_request(tls, &ip, port, http::Method::GET, &path).await?;
    let status = resp.status();
    if !status.is_success() {
        // The kubelet's refusal, worded as upstream's apiserver relays it.
        use http_body_util::BodyExt;
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        let code = if status.as_u16() == 404 { 404 } else { 400 };
        let reason = if code == 404 {
            "NotFound"
        } else {
            "BadRequest"
        };
        return Err(ApiError::new(code, reason, body.trim_end().to_string()));
    }
    let mut out = axum::response::Response::new(axum::body::Body::new(resp.into_body()));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

fn kubelet_unreachable(ip: &str, port: u16, path: &str, e: String) -> ApiError {
    ApiError::new(
        502,
        "InternalError",
        format!("Get \"https://{ip}:{port}{path}\": {e}"),
    )
}

/// Sends one bodiless request to a kubelet on a connection of its own and returns the answer, its
/// body still streaming.
pub(crate) async fn kubelet_request(
    tls: Arc<rustls::ClientConfig>,
    ip: &str,
    port: u16,
    method: http::Method,
    path: &str,
) -> ApiResult<http::Response<hyper::body::Incoming>> {
    let stream = dial_kubelet(tls, ip, port, path).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| kubelet_unreachable(ip, port, path, e.to_string()))?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, format!("{ip}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| kubelet_unreachable(ip, port, path, e.to_string()))
}

/// A TLS connection to a kubelet, as the apiserver's kubelet client (its serving certificate is
/// checked against the cluster CA).
async fn dial_kubelet(
    tls: Arc<rustls::ClientConfig>,
    ip: &str,
    port: u16,
    path: &str,
) -> ApiResult<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let unavailable = |e: String| kubelet_unreachable(ip, port, path, e);
    let host: std::net::IpAddr = ip
        .parse()
        .map_err(|_| unavailable(format!("the node's address {ip:?} is not an IP")))?;
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| unavailable("dial tcp: i/o timeout".into()))?
    .map_err(|e| unavailable(format!("dial tcp {ip}:{port}: {e}")))?;
    let server_name = rustls::pki_types::ServerName::IpAddress(host.into());
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp),
    )
    .await
    .map_err(|_| unavailable("tls: handshake timeout".into()))?
    .map_err(|e| unavailable(format!("tls: {e}")))
}

/// The string at `pointer` in `pod` (or any object), "" when absent.
pub(super) fn pod_field<'a>(pod: &'a Value, pointer: &str) -> &'a str {
    pod.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The kubelet's path and query for `subresource` (upstream's ExecLocation, AttachLocation,
/// PortForwardLocation and streamParams): the apiserver's options become the kubelet's
/// `input`/`output`/`error`/`tty`/`command`/`port` parameters.
fn kubelet_stream_path(pod: &Value, subresource: &str, container: &str, query: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let ns = enc(pod_field(pod, "/metadata/namespace"));
    let name = enc(pod_field(pod, "/metadata/name"));
    let mut params = form_urlencoded::Serializer::new(String::new());
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match (subresource, k.as_ref()) {
            ("exec", "command") => {
                params.append_pair("command", &v);
            }
            ("portforward", "ports") => ports.push(v.into_owned()),
            _ => {}
        }
    }
    if subresource != "portforward" {
        // The same reading of the options as the WebSocket translator's, so that the kubelet
        // expects the streams the translator opens.
        let s = stream_options(query);
        for (on, name) in [
            (s.stdin, "input"),
            (s.stdout, "output"),
            (s.stderr, "error"),
            (s.tty, "tty"),
        ] {
            if on {
                params.append_pair(name, "1");
            }
        }
    }
    if !ports.is_empty() {
        params.append_pair("port", &ports.join(","));
    }
    let params = params.finish();
    match subresource {
        "portforward" => format!("/portForward/{ns}/{name}?{params}"),
        _ => format!("/{subresource}/{ns}/{name}/{}?{params}", enc(container)),
    }
}

/// The streams an exec or attach `query` asks for (a boolean option is `true` or `1`).
fn stream_options(query: &str) -> crate::upgrade::translator::Streams {
    let mut streams = crate::upgrade::translator::Streams::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let on = v == "true" || v == "1";
        match k.as_ref() {
            "stdin" => streams.stdin = on,
            "stdout" => streams.stdout = on,
            "stderr" => streams.stderr = on,
            "tty" => streams.tty = on,
            _ => {}
        }
    }
    streams
}

/// Proxies `exec`, `attach` or `portforward` of a scheduled pod to its node's kubelet. The kubelet's
/// answer comes back as it is: `101 Switching Protocols` and then the spliced stream, or its refusal
/// (which kubectl prints as `unable to upgrade connection: ...`).
pub async fn proxy_stream(
    tls: Option<Arc<rustls::ClientConfig>>,
    pod: &Value,
    node: Option<&Value>,
    subresource: &str,
    container: Option<&str>,
    request: (&http::Method, &http::HeaderMap, &str),
    client: Option<hyper::upgrade::OnUpgrade>,
) -> ApiResult<axum::response::Response> {
    let (method, headers, query) = request;
    let node_name = pod_field(pod, "/spec/nodeName");
    let (Some(tls), Some((ip, port))) = (tls, node.and_then(kubelet_address)) else {
        return Err(no_kubelet(node_name, subresource));
    };
    let container = container_or_default(pod, container);
    let path = kubelet_stream_path(pod, subresource, &container, query);
    let stream = dial_kubelet(tls, &ip, port, &path).await?;
    let host = format!("{ip}:{port}");
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY);
    let answer = match key {
        // kubectl's port-forward over WebSocket: SPDY to the kubelet, tunneled to kubectl.
        Some(key)
            if subresource == "portforward"
                && crate::upgrade::wants_port_forward_tunnel(headers) =>
        {
            let req = crate::upgrade::spdy_upgrade_request(&path, &host, "portforward.k8s.io")
                .map_err(|e| ApiError::internal(e.to_string()))?;
            crate::upgrade::relay_tunnel(stream, req, client, key.as_bytes()).await
        }
        // kubectl's exec and attach over WebSocket v5: translated to SPDY for the kubelet.
        Some(key)
            if subresource != "portforward" && crate::upgrade::translator::wants_v5(headers) =>
        {
            use crate::upgrade::translator::SPDY_PROTOCOL;
            let req = crate::upgrade::spdy_upgrade_request(&path, &host, SPDY_PROTOCOL)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let streams = stream_options(query);
            Ok(crate::upgrade::translator::translate(
                stream,
                req,
                client,
                key.as_bytes(),
                streams,
            ))
        }
        _ => {
            let req = crate::upgrade::backend_request(method, &path, &host, headers)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            crate::upgrade::relay(stream, req, client).await
        }
    }
    .map_err(|e| kubelet_unreachable(&ip, port, &path, e.to_string()))?;
    Ok(answer.map(axum::body::Body::new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_as_upstream_before_the_kubelet() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(answer(&one, "log", None).unwrap(), Some(String::new()));
        assert_eq!(
            answer(&one, "exec", None).unwrap_err().message,
            "pod p does not have a host assigned"
        );
        assert_eq!(
            answer(&one, "log", Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                          "initContainers": [{"name": "i"}]}});
        assert_eq!(
            answer(&two, "log", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            answer(&two, "exec", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}});
        assert_eq!(
            answer(&bound, "exec", None).unwrap(),
            None,
            "its kubelet answers"
        );
    }

    #[test]
    fn kubelet_paths_as_upstream() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}});
        assert_eq!(
            kubelet_stream_path(&pod, "exec", "c", "command=sh&command=-c&command=echo+%24A&stdin=true&stdout=true&stderr=true&tty=false&container=c"),
            "/exec/ns/p/c?command=sh&command=-c&command=echo+%24A&input=1&output=1&error=1"
        );
        assert_eq!(
            kubelet_stream_path(&pod, "attach", "c", "stdout=1&tty=true"),
            "/attach/ns/p/c?output=1&tty=1"
        );
        // An option given twice reads the same for the kubelet as for the WebSocket translator.
        let twice = "command=cat&stdin=true&stdin=false&stdout=true";
        assert_eq!(
            kubelet_stream_path(&pod, "exec", "c", twice),
            "/exec/ns/p/c?command=cat&output=1"
        );
        assert!(!stream_options(twice).stdin);
        assert_eq!(
            kubelet_stream_path(&pod, "portforward", "", "ports=80&ports=8080"),
            "/portForward/ns/p?port=80%2C8080"
        );
    }
}
