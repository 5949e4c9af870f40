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

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

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
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("upgrade relay: backend connection: {e}");
        }
    });
    let mut resp = sender.send_request(req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp.map(BodyExt::boxed));
    }
    let backend = hyper::upgrade::on(&mut resp);
    let (parts, _) = resp.into_parts();
    match client {
        Some(client) => {
            tokio::spawn(splice(client, backend));
        }
        None => {
            tracing::debug!("upgrade relay: the backend upgraded a request that asked for none")
        }
    }
    Ok(Response::from_parts(
        parts,
        Empty::new().map_err(|never| match never {}).boxed(),
    ))
}

async fn splice(client: OnUpgrade, backend: OnUpgrade) {
    let both = async { tokio::try_join!(client, backend) };
    let (client, backend) = match tokio::time::timeout(UPGRADE_TIMEOUT, both).await {
        Ok(Ok(both)) => both,
        Ok(Err(e)) => {
            tracing::debug!("upgrade relay: upgrade failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("upgrade relay: an upgrade did not complete in {UPGRADE_TIMEOUT:?}");
            return;
        }
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
}
