//! Serving: HTTPS with rustls, client-certificate authentication per connection, HTTP/1.1 and HTTP/2.
//!
//! Every connection is bounded as upstream's Go server bounds it: the TLS handshake and the request
//! headers must arrive in time (a client that opens a socket and says nothing holds nothing for long),
//! HTTP/2 peers that stop answering pings are dropped, and the number of open connections is capped (past
//! it, new ones wait in the kernel's accept queue instead of costing memory).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::apiserver::http::handlers::{Authenticated, CertRejected, PeerAddr, User};

/// Time for a client to complete the TLS handshake (Go's `tls.Conn` under the server's read timeout).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a request's headers to arrive. hyper runs this timer from the end of the previous request, so
/// it is also how long an idle keep-alive connection stays open: upstream's `IdleTimeout` (90 s, what
/// client-go's transport expects), which also bounds a slow sender of headers (upstream: 32 s).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(90);
/// Open connections at once.
const MAX_CONNECTIONS: usize = 10_000;
/// Concurrent HTTP/2 streams per connection (upstream's `--http2-max-streams-per-connection` default).
const MAX_STREAMS_PER_CONNECTION: u32 = 1000;

/// Accepts TLS connections on `listener` forever, serving `router` on each.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, router: Router) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            serve_connection(acceptor, tcp, peer, router).await;
            drop(slot);
        });
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
) {
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake with {peer} timed out");
            return;
        }
    };
    let user = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| crate::pki::user_from_cert(cert.as_ref()))
        .map(|u| {
            let mut groups = u.groups;
            groups.push("system:authenticated".into());
            User::new(u.name, groups)
        });
    // A certificate rustls accepted (our CA signed it) that names no user is a failed credential.
    let cert_rejected = user.is_none() && stream.get_ref().1.peer_certificates().is_some();
    let auth = Authenticated(user);
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(auth.clone());
            req.extensions_mut().insert(PeerAddr(peer));
            if cert_rejected {
                req.extensions_mut().insert(CertRejected);
            }
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!("connection from {peer} ended: {e}");
    }
}
