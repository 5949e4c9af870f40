//! Serving: HTTPS with rustls, client-certificate authentication per connection, HTTP/1.1 and HTTP/2.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::handlers::{Authenticated, CertRejected, User};

/// Accepts TLS connections on `listener` forever, serving `router` on each.
pub async fn serve(listener: TcpListener, tls: rustls::ServerConfig, router: Router) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
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
        tokio::spawn(async move { serve_connection(acceptor, tcp, peer, router).await });
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
) {
    let stream = match acceptor.accept(tcp).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("TLS handshake with {peer} failed: {e}");
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
            if cert_rejected {
                req.extensions_mut().insert(CertRejected);
            }
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!("connection from {peer} ended: {e}");
    }
}
