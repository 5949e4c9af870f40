//! `pods/log`, `exec`, `attach` and `portforward`: the part of these streams the apiserver answers
//! itself, as upstream's pod REST does before it proxies to the kubelet: the pod must exist (404), the
//! container must be named when the pod has several and must be one of its containers (400), and an
//! unscheduled pod has no logs yet (an empty answer) and nothing to exec into (400). A scheduled pod's
//! log is then proxied to its node's kubelet ([`proxy_log`]: the node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port`, over TLS with the apiserver's kubelet-client
//! certificate). exec, attach and port-forward are not proxied yet: those, and nodes without a kubelet
//! port (hollow nodes), answer 503 saying so.

use std::sync::Arc;

use serde_json::Value;

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

/// What to answer for `subresource` of `pod`: `Ok(Some(body))` is a plain-text answer (an unscheduled
/// pod's empty log).
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
    Err(no_kubelet(node, subresource))
}

fn no_kubelet(node: &str, subresource: &str) -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        format!("no kubelet serves node {node:?} yet: pods/{subresource} needs one"),
    )
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
    let container = match container.filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => container_names(pod, "containers")
            .into_iter()
            .next()
            .unwrap_or_default(),
    };
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
    let unavailable = |e: String| {
        ApiError::new(
            502,
            "InternalError",
            format!("Get \"https://{ip}:{port}{path}\": {e}"),
        )
    };
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
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(format!("tls: {e}")))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(conn);
    let req = http::Request::get(path.as_str())
        .header(http::header::HOST, format!("{ip}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
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
        assert_eq!(answer(&bound, "log", None).unwrap_err().code, 503);
    }
}
