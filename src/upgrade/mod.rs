//! HTTP connection upgrades relayed to a backend: how `kubectl exec|attach|port-forward` reach a
//! container. The apiserver relays the client's request to the node's kubelet, and the kubelet relays
//! it to the runtime's streaming server (the URL CRI `Exec`/`Attach`/`PortForward` returned), as
//! upstream's UpgradeAwareHandler does on both hops.
//!
//! The relay is transparent: the client and the runtime negotiate the stream protocol themselves
//! (SPDY/3.1 with `X-Stream-Protocol-Version`, or WebSocket with `Sec-WebSocket-Protocol`), and once
//! the backend answers `101 Switching Protocols` the two connections are spliced byte for byte.
//! A backend that does not upgrade (a refusal, an error) has its answer passed back as it came, which
//! is what makes kubectl fall back from WebSocket to SPDY, or print the kubelet's error.
//!
//! Only the headers an upgrade needs are forwarded: never the caller's credentials (each hop
//! authenticates with its own identity).
//!
//! One exception to the transparency: kubectl (1.31+) asks for port-forward as SPDY tunneled in a
//! WebSocket (`SPDY/3.1+portforward.k8s.io`), which the runtime does not speak. As upstream's
//! apiserver does, [`relay_tunnel`] then asks the backend for a plain SPDY upgrade and carries the
//! SPDY bytes between the two: WebSocket binary messages on the client's side, the raw stream on the
//! backend's. A backend that refuses is answered as it came, and kubectl falls back to SPDY.
//!
//! The other: exec and attach over WebSocket `v5.channel.k8s.io` are not relayed but translated to
//! SPDY ([`translator`], over the framing in [`spdy`]), as upstream's apiserver does.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

pub mod spdy;
pub mod translator;

/// How long each side may take to finish its upgrade once the backend answered 101.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the relay answers the client: the backend's status, headers and (for a refusal) body.
pub type Answer = Response<BoxBody<Bytes, hyper::Error>>;

/// Request headers an upgrade depends on (upstream's proxy copies all but hop-by-hop and
/// credentials; these are the ones SPDY and WebSocket handshakes read).
const FORWARDED: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
    "origin",
    "user-agent",
];

/// Whether `headers` ask for a connection upgrade.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        && headers.contains_key(header::UPGRADE)
}

/// The WebSocket subprotocol of kubectl's tunneled port-forward.
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// The subprotocols a WebSocket upgrade request offers (none when it is not one).
pub fn websocket_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter(move |_| websocket)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Whether `headers` ask for a WebSocket carrying a port-forward's SPDY stream.
pub fn wants_port_forward_tunnel(headers: &HeaderMap) -> bool {
    websocket_protocols(headers).any(|p| p == PORT_FORWARD_TUNNEL)
}

/// A SPDY upgrade request for the backend's `path_and_query` on `host`, asking for `protocol`:
/// what a tunneled port-forward (`portforward.k8s.io`, as kubectl's own SPDY port-forward would)
/// and a translated exec or attach ([`translator`]) send.
pub fn spdy_upgrade_request(
    path_and_query: &str,
    host: &str,
    protocol: &str,
) -> Result<Request<Empty<Bytes>>, http::Error> {
    Request::builder()
        .method(Method::POST)
        .uri(path_and_query)
        .header(header::HOST, host)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("x-stream-protocol-version", protocol)
        .body(Empty::new())
}

/// The request to send the backend: `method` and `path_and_query` on `host`, with the upgrade
/// headers of the client's request.
pub fn backend_request(
    method: &Method,
    path_and_query: &str,
    host: &str,
    client_headers: &HeaderMap,
) -> Result<Request<Empty<Bytes>>, http::Error> {
    let mut req = Request::builder()
        .method(method.clone())
        .uri(path_and_query)
        .header(header::HOST, host)
        .body(Empty::new())?;
    for name in FORWARDED {
        let name = HeaderName::from_static(name);
        for value in client_headers.get_all(&name) {
            req.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(req)
}

/// Sends `req` over `io` (a fresh connection to the backend): the backend's answer when it is not
/// `101 Switching Protocols` (to go back as it came), else its upgraded connection and the parts of
/// its answer.
async fn send_upgrade<IO>(
    io: IO,
    req: Request<Empty<Bytes>>,
) -> Result<Result<(http::response::Parts, OnUpgrade), Answer>, hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("upgrade relay: backend connection: {e}");
        }
    });
    let mut resp = sender.send_request(req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Err(resp.map(BodyExt::boxed)));
    }
    let backend = hyper::upgrade::on(&mut resp);
    Ok(Ok((resp.into_parts().0, backend)))
}

fn empty_body() -> BoxBody<Bytes, hyper::Error> {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Waits (bounded) for both sides of a relay to finish upgrading.
async fn upgraded(
    client: OnUpgrade,
    backend: OnUpgrade,
) -> Option<(hyper::upgrade::Upgraded, hyper::upgrade::Upgraded)> {
    let both = async { tokio::try_join!(client, backend) };
    match tokio::time::timeout(UPGRADE_TIMEOUT, both).await {
        Ok(Ok(both)) => Some(both),
        Ok(Err(e)) => {
            tracing::debug!("upgrade relay: upgrade failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("upgrade relay: an upgrade did not complete in {UPGRADE_TIMEOUT:?}");
            None
        }
    }
}

/// Sends `req` over `io` (a fresh connection to the backend) and answers with the backend's reply.
/// On `101` the client's connection (`client`, from the request's extensions) and the backend's are
/// spliced in a task of their own until either side closes.
pub async fn relay<IO>(
    io: IO,
    req: Request<Empty<Bytes>>,
    client: Option<OnUpgrade>,
) -> Result<Answer, hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (parts, backend) = match send_upgrade(io, req).await? {
        Ok(upgraded) => upgraded,
        Err(answer) => return Ok(answer),
    };
    match client {
        Some(client) => {
            tokio::spawn(splice(client, backend));
        }
        None => {
            tracing::debug!("upgrade relay: the backend upgraded a request that asked for none")
        }
    }
    Ok(Response::from_parts(parts, empty_body()))
}

/// Sends `req` (from [`spdy_upgrade_request`]) over `io`; when the backend upgrades to SPDY,
/// answers the client's WebSocket handshake (`key`: its `Sec-WebSocket-Key`) and carries the SPDY
/// stream between them in a task of its own. Any other answer goes back as it came.
pub async fn relay_tunnel<IO>(
    io: IO,
    req: Request<Empty<Bytes>>,
    client: Option<OnUpgrade>,
    key: &[u8],
) -> Result<Answer, hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let backend = match send_upgrade(io, req).await? {
        Ok((_, backend)) => backend,
        Err(answer) => return Ok(answer),
    };
    if let Some(client) = client {
        tokio::spawn(tunnel(client, backend));
    }
    Ok(websocket_answer(key, PORT_FORWARD_TUNNEL))
}

/// `101 Switching Protocols` to a WebSocket handshake (`key`: its `Sec-WebSocket-Key`), with
/// `protocol` chosen.
fn websocket_answer(key: &[u8], protocol: &'static str) -> Answer {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
    let answer = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(empty_body());
    answer.unwrap_or_else(|_| Response::new(empty_body()))
}

/// Carries SPDY bytes between the client's WebSocket (binary messages) and the backend's stream
/// until either side closes.
async fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;

    let Some((client, backend)) = upgraded(client, backend).await else {
        return;
    };
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(client),
        Role::Server,
        None,
    )
    .await;
    let (mut to_client, mut from_client) = ws.split();
    let (mut from_backend, mut to_backend) = tokio::io::split(TokioIo::new(backend));
    let upstream = async {
        while let Some(msg) = from_client.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if to_backend.write_all(&b).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by the WebSocket layer; a text message has no place here.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Text(_) | Message::Close(_)) | Err(_) => break,
            }
        }
        let _ = to_backend.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_backend.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if to_client.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to_client.send(Message::Close(None)).await;
    };
    // The backend's end closes the tunnel; the client's end only half-closes it (the backend
    // finishes what it was sending).
    tokio::join!(upstream, downstream);
}

async fn splice(client: OnUpgrade, backend: OnUpgrade) {
    let Some((client, backend)) = upgraded(client, backend).await else {
        return;
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!("upgrade relay: stream ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_only_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        h.append(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        h.append(
            "x-stream-protocol-version",
            "v3.channel.k8s.io".parse().unwrap(),
        );
        h.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        h.insert("impersonate-user", "admin".parse().unwrap());
        assert!(wants_upgrade(&h));
        let req = backend_request(
            &Method::POST,
            "/exec/a/b/c?command=ls",
            "10.0.0.1:10250",
            &h,
        )
        .unwrap();
        assert_eq!(req.uri(), "/exec/a/b/c?command=ls");
        assert_eq!(req.headers()[header::HOST], "10.0.0.1:10250");
        assert_eq!(
            req.headers()
                .get_all("x-stream-protocol-version")
                .iter()
                .count(),
            2
        );
        assert!(!req.headers().contains_key(header::AUTHORIZATION));
        assert!(!req.headers().contains_key("impersonate-user"));
        let mut plain = HeaderMap::new();
        plain.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        assert!(!wants_upgrade(&plain));
    }

    #[test]
    fn port_forward_tunnels_are_recognised_and_become_spdy_upgrades() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "portforward.k8s.io, SPDY/3.1+portforward.k8s.io"
                .parse()
                .unwrap(),
        );
        assert!(wants_port_forward_tunnel(&h));
        // A WebSocket port-forward without the tunnel protocol (the Python client's) is relayed as is.
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v4.channel.k8s.io".parse().unwrap(),
        );
        assert!(!wants_port_forward_tunnel(&h));
        let mut spdy = HeaderMap::new();
        spdy.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        spdy.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            PORT_FORWARD_TUNNEL.parse().unwrap(),
        );
        assert!(!wants_port_forward_tunnel(&spdy));

        let req = spdy_upgrade_request(
            "/portForward/ns/p?port=80",
            "10.0.0.1:10250",
            "portforward.k8s.io",
        )
        .unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers()[header::UPGRADE], "SPDY/3.1");
        assert_eq!(
            req.headers()["x-stream-protocol-version"],
            "portforward.k8s.io"
        );
        assert_eq!(req.headers()[header::HOST], "10.0.0.1:10250");
    }
}
