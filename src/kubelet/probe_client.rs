//! The network side of probes and lifecycle hooks: an HTTP or HTTPS GET, and the gRPC health check.
//!
//! As upstream's prober: an HTTPS GET does not verify the container's certificate (its client sets
//! `InsecureSkipVerify`: a pod's serving certificate is rarely one the node could check), though the
//! TLS handshake itself must succeed; the gRPC probe calls `grpc.health.v1.Health/Check` in plain text
//! and passes only on `SERVING`, with upstream's messages for each way it can fail.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

/// One GET; returns the status code. `https`: over TLS, the server's certificate not verified.
pub(super) async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    https: bool,
) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: connect: {e}"))?;
    if !https {
        return send_get(tcp, host, port, path, headers).await;
    }
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(insecure_client_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    send_get(tls, host, port, path, headers).await
}

async fn send_get<S>(
    io: S,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::USER_AGENT, "kube-probe/1.33");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// A TLS client that accepts any server certificate but still checks the handshake's signatures.
pub(crate) fn insecure_client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyServerCert(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts any server certificate; handshake signatures are still checked with the provider's
/// algorithms (also the signature half of `join`'s CA-pinning verifier).
#[derive(Debug)]
pub(crate) struct AnyServerCert(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (status: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING,
/// 3 SERVICE_UNKNOWN).
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

fn serving_status(status: i32) -> &'static str {
    match status {
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// Upstream's gRPC probe: `Check` of `service` (the server's overall health when empty) at
/// `host:port`, within `timeout`; Err with upstream's message unless the answer is SERVING.
pub(super) async fn grpc_check(
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
) -> Result<(), String> {
    let addr = format!("{host}:{port}");
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent("kube-probe/1.33")
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    let connect_failed = |e: &dyn std::fmt::Display| {
        format!("timeout: failed to connect service {addr:?} within {timeout:?}: {e}")
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(connect_failed(&e)),
        Err(_) => return Err(connect_failed(&"context deadline exceeded")),
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let request = tonic::Request::new(HealthCheckRequest {
        service: service.to_string(),
    });
    let call =
        grpc.unary::<_, HealthCheckResponse, _>(request, path, tonic_prost::ProstCodec::default());
    let answer = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => {
            return Err(format!("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}", s.message()))
        }
        Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded => {
            return Err(format!(
                "timeout: health rpc did not complete within {timeout:?}"
            ))
        }
        Ok(Err(s)) => {
            return Err(format!(
                "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
                s.code(),
                s.message()
            ))
        }
        Err(_) => {
            return Err(format!(
                "timeout: health rpc did not complete within {timeout:?}"
            ))
        }
    };
    if answer.status == 1 {
        Ok(())
    } else {
        Err(format!(
            "service unhealthy (responded with {:?})",
            serving_status(answer.status)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS server with a self-signed certificate: the HTTPS GET does not verify it, as upstream.
    #[tokio::test]
    async fn https_get_skips_certificate_verification() {
        let cert = rcgen::generate_simple_self_signed(vec!["somewhere.example".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let n = tls.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let code = if req.starts_with("GET /healthz ") {
                    200
                } else {
                    503
                };
                let _ = tls
                    .write_all(format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        let got = http_get("127.0.0.1", port, "/healthz", &[], true).await;
        assert_eq!(got, Ok(200));
        // Plain HTTP to a TLS port does not pass.
        let plain = http_get("127.0.0.1", port, "/healthz", &[], false).await;
        assert!(plain.is_err() || plain == Ok(400), "{plain:?}");
    }

    #[tokio::test]
    async fn grpc_check_reports_a_refused_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = grpc_check("127.0.0.1", port, "", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            err.starts_with(&format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: "
            )),
            "{err}"
        );
    }

    /// etcd serves the gRPC health protocol: SERVING for the server, NotFound for a service it does
    /// not know (upstream's "health rpc probe failed" message).
    #[tokio::test]
    async fn grpc_check_against_a_real_grpc_server() {
        let (_etcd, url) = crate::storage::suite::spawn_etcd();
        let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = Err(String::new());
        while tokio::time::Instant::now() < deadline {
            last = grpc_check("127.0.0.1", port, "", Duration::from_secs(1)).await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(last, Ok(()));
        let err = grpc_check("127.0.0.1", port, "no.such.Service", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
        );
    }

    #[test]
    fn serving_status_names() {
        assert_eq!(serving_status(2), "NOT_SERVING");
        assert_eq!(serving_status(7), "UNKNOWN");
    }
}
