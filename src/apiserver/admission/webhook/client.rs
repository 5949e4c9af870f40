//! Calling a webhook (upstream's `util/webhook` ClientManager and its default service resolver):
//! HTTPS only, the server verified against the webhook's `caBundle` (else the system's roots), one
//! POST of the review bounded by its timeout ([`Clients::call`]; admission webhooks' AdmissionReview and
//! CRD conversion webhooks' ConversionReview, see `crd::conversion`). A `clientConfig.service` is reached as
//! `<name>.<namespace>.svc` (the name the certificate is checked for) but dialled at a ready
//! endpoint of the Service's EndpointSlices, as upstream's `--enable-aggregator-routing` endpoint
//! resolver does: the ClusterIP need not be routable from the apiserver.
//!
//! The apiserver sends no credentials of its own and never the caller's: the webhook learns who asks
//! only from the review's `userInfo`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::ServerName;
use serde_json::Value;

use crate::apiserver::registry::store::Registry;

/// The largest answer read from a webhook.
const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// Where Go's crypto/x509 looks for the system's roots on Linux, in its order.
const SYSTEM_ROOT_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// TLS client settings, one per distinct `caBundle` (so per configuration generation that
/// changes it), built once.
#[derive(Default)]
pub struct Clients {
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
}

/// Where one call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as upstream's errors print it (with the `?timeout=` parameter it sends).
    pub url: String,
    /// The host the certificate must name (an IP or a DNS name).
    pub server_name: String,
    /// `host:port` for the Host header.
    pub authority: String,
    pub path_and_query: String,
    /// What to dial: a host (IP or DNS name) and port.
    pub dial_host: String,
    pub dial_port: u16,
    /// For a service reference: (namespace, name, port), resolved to an endpoint before dialling.
    pub service: Option<(String, String, u16)>,
}

/// The target of a webhook's `clientConfig` (JSON), with the `timeout` parameter upstream adds.
pub fn target(client_config: &Value, timeout_secs: u64) -> Result<Target, String> {
    let query = format!("timeout={timeout_secs}s");
    if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid webhook url {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("webhook url {url:?} must use the https scheme"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("webhook url {url:?} has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let path = uri.path();
        let base = url.split(['?', '#']).next().unwrap_or(url);
        return Ok(Target {
            url: format!("{base}?{query}"),
            server_name: host.clone(),
            authority: uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_else(|| host.clone()),
            path_and_query: format!("{}?{query}", if path.is_empty() { "/" } else { path }),
            dial_host: host,
            dial_port: port,
            service: None,
        });
    }
    let Some(svc) = client_config.get("service").filter(|s| s.is_object()) else {
        return Err("webhook clientConfig has neither url nor service".into());
    };
    let text = |f: &str| svc.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let (ns, name) = (text("namespace"), text("name"));
    let port = svc
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    let path = text("path");
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let host = format!("{name}.{ns}.svc");
    Ok(Target {
        url: format!("https://{host}:{port}{path}?{query}"),
        server_name: host.clone(),
        authority: format!("{host}:{port}"),
        path_and_query: format!("{path}?{query}"),
        dial_host: host,
        dial_port: port,
        service: Some((ns, name, port)),
    })
}

/// A ready endpoint (IP, port) of Service `ns/name` for its port `port` (upstream's
/// `ResolveEndpoint` with its messages), from the Service and its EndpointSlices as the watch cache
/// holds them.
pub async fn resolve_service(
    reg: &Registry,
    ns: &str,
    name: &str,
    port: u16,
) -> Result<(String, u16), String> {
    let svc = reg
        .lookup("", "v1", "services", Some(ns), name)
        .await
        .map_err(|e| e.message)?
        .ok_or_else(|| format!("service {name:?} not found"))?;
    let ty = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(ty, "ClusterIP" | "LoadBalancer" | "NodePort") {
        return Err(format!("unsupported service type {ty:?}"));
    }
    let svc_port = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        .ok_or_else(|| format!("no service port {port} found for service {name:?}"))?;
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or("");
    let slices = reg
        .lookup_list("discovery.k8s.io", "v1", "endpointslices", Some(ns))
        .await
        .map_err(|e| e.message)?;
    let mut ready = Vec::new();
    for s in slices.iter().filter(|s| {
        s.pointer("/metadata/labels/kubernetes.io~1service-name")
            .and_then(Value::as_str)
            == Some(name)
    }) {
        let Some(p) = s
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in s
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // Upstream's Endpoints hold only ready addresses; a slice's unready ones are skipped.
            if ep.pointer("/conditions/ready").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            if let Some(ip) = ep.pointer("/addresses/0").and_then(Value::as_str) {
                ready.push((ip.to_string(), p));
            }
        }
    }
    if ready.is_empty() {
        return Err(format!("no endpoints available for service {name:?}"));
    }
    // A random one, as upstream picks a random subset and address.
    let i = rand::random_range(0..ready.len());
    Ok(ready.swap_remove(i))
}

/// Why [`Clients::call`] failed, in upstream's words for each stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The `clientConfig` gives no usable target (upstream: `could not get REST client: ...`).
    Config(String),
    /// The POST failed: dialling, TLS, the HTTP status or the body (`Post "<url>": ...`).
    Post(String),
}

impl Clients {
    /// One webhook call, as admission and CRD conversion webhooks both make it: the target of
    /// `client_config` (its `url`, or its `service` dialled at a ready endpoint), verified against its
    /// `caBundle`, `body` POSTed within `timeout_secs`, the JSON answer returned.
    pub async fn call(
        &self,
        reg: &Registry,
        client_config: &Value,
        timeout_secs: u64,
        body: Vec<u8>,
    ) -> Result<Value, CallFailure> {
        let t = target(client_config, timeout_secs).map_err(CallFailure::Config)?;
        let ca = client_config
            .get("caBundle")
            .and_then(Value::as_str)
            .unwrap_or("");
        // A service is dialled at one of its ready endpoints (upstream resolves it in the dialer, so
        // a failure reads as the POST's).
        let dial = match &t.service {
            Some((ns, svc, port)) => resolve_service(reg, ns, svc, *port)
                .await
                .map_err(|e| CallFailure::Post(format!("Post {:?}: {e}", t.url)))?,
            None => (t.dial_host.clone(), t.dial_port),
        };
        self.post(&t, dial, ca, body, Duration::from_secs(timeout_secs))
            .await
            .map_err(CallFailure::Post)
    }

    /// The TLS settings for `ca_bundle` (base64 of PEM, as the JSON form of the `[]byte` field), or
    /// the system's roots when there is none.
    pub fn tls(&self, ca_bundle: &str) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut cache = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(ca_bundle) {
            return Ok(c.clone());
        }
        let roots = if ca_bundle.is_empty() {
            system_roots()
        } else {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(ca_bundle)
                .map_err(|e| format!("invalid caBundle: {e}"))?;
            roots_from_pem(&pem)?
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        // Bounded: configurations come and go; dropping the lot only costs a rebuild.
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(ca_bundle.to_string(), config.clone());
        Ok(config)
    }

    /// POSTs `body` to `target`, dialling `dial` (its host and port, or the endpoint its service
    /// resolved to), and returns the decoded JSON answer, all within `timeout`. The error is the
    /// reason upstream reports after `failed to call webhook: `.
    pub async fn post(
        &self,
        target: &Target,
        dial: (String, u16),
        ca_bundle: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let tls = self
            .tls(ca_bundle)
            .map_err(|e| format!("Post {:?}: {e}", target.url))?;
        match tokio::time::timeout(timeout, self.exchange(target, dial, tls, body, timeout)).await {
            Ok(r) => r.map_err(|e| format!("Post {:?}: {e}", target.url)),
            Err(_) => Err(format!("Post {:?}: context deadline exceeded", target.url)),
        }
    }

    async fn exchange(
        &self,
        target: &Target,
        (host, port): (String, u16),
        tls: Arc<rustls::ClientConfig>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let addrs: Vec<std::net::SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![(ip, port).into()],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
                .collect(),
        };
        let shown = |a: &std::net::SocketAddr| a.to_string();
        let mut last = format!("dial tcp: lookup {host}: no such host");
        let mut tcp = None;
        for a in &addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("dial tcp {}: connect: {}", shown(a), io_text(&e)),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let server_name = ServerName::try_from(target.server_name.clone())
            .map_err(|e| format!("invalid server name {:?}: {e}", target.server_name))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(|e| tls_text(&e, &target.server_name))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        // The connection is driven apart from this call but never outlives its deadline.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, conn).await;
        });
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri(&target.path_and_query)
            .header(http::header::HOST, &target.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, */*")
            .header(http::header::USER_AGENT, "rkube-apiserver")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(server_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("decoding the webhook's answer: {e}"))
    }
}

/// A non-2xx answer as client-go words it: the Status's message when the body is one, else
/// upstream's generic text.
fn server_error(status: http::StatusCode, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if v.get("kind").and_then(Value::as_str) == Some("Status") {
            if let Some(m) = v.get("message").and_then(Value::as_str) {
                return m.to_string();
            }
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(1024)])
        .trim()
        .to_string();
    if text.is_empty() {
        format!(
            "the server responded with the status code {} but did not return more information",
            status.as_u16()
        )
    } else {
        format!("an error on the server ({text:?}) has prevented the request from succeeding")
    }
}

/// An OS error as Go's net package prints it (`connection refused`, not Rust's `Connection refused
/// (os error 111)`).
fn io_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by peer".into(),
        TimedOut => "i/o timeout".into(),
        HostUnreachable => "no route to host".into(),
        NetworkUnreachable => "network is unreachable".into(),
        _ => e.to_string(),
    }
}

/// A failed TLS handshake as Go's crypto/tls words the common cases.
fn tls_text(e: &std::io::Error, host: &str) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let why = match c {
                // A CA of the same name that did not sign it is unknown too, as to Go.
                rustls::CertificateError::UnknownIssuer
                | rustls::CertificateError::BadSignature => {
                    "x509: certificate signed by unknown authority".to_string()
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    format!("x509: certificate is not valid for {host}")
                }
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => {
                    "x509: certificate has expired or is not yet valid".to_string()
                }
                other => format!("x509: {other:?}"),
            };
            format!("tls: failed to verify certificate: {why}")
        }
        Some(other) => format!("remote error: tls: {other}"),
        None => e.to_string(),
    }
}

/// The system's trust roots (the first bundle file found, as Go reads them).
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for f in SYSTEM_ROOT_FILES {
        if let Ok(pem) = std::fs::read(f) {
            let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
                .filter_map(Result::ok)
                .collect();
            roots.add_parsable_certificates(certs);
            if !roots.is_empty() {
                break;
            }
        }
    }
    roots
}

fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .filter_map(Result::ok)
        .collect();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("unable to load root certificates: unable to parse bytes as PEM block".into());
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_targets() {
        let t = target(&json!({"url": "https://127.0.0.1:8443/validate"}), 10).unwrap();
        assert_eq!(t.url, "https://127.0.0.1:8443/validate?timeout=10s");
        assert_eq!(t.path_and_query, "/validate?timeout=10s");
        assert_eq!((t.dial_host.as_str(), t.dial_port), ("127.0.0.1", 8443));
        assert_eq!(t.server_name, "127.0.0.1");
        assert_eq!(t.authority, "127.0.0.1:8443");
        let t = target(&json!({"url": "https://hooks.example.com"}), 5).unwrap();
        assert_eq!(t.dial_port, 443);
        assert_eq!(t.path_and_query, "/?timeout=5s");
        let t = target(&json!({"url": "https://[::1]:9/x"}), 5).unwrap();
        assert_eq!(t.dial_host, "::1");
        assert!(target(&json!({"url": "http://127.0.0.1/x"}), 10).is_err());
        assert!(target(&json!({}), 10).is_err());
    }

    #[test]
    fn service_targets() {
        let t = target(
            &json!({"service": {"namespace": "hooks", "name": "web", "port": 8443, "path": "/mutate"}}),
            10,
        )
        .unwrap();
        assert_eq!(t.url, "https://web.hooks.svc:8443/mutate?timeout=10s");
        assert_eq!(t.server_name, "web.hooks.svc");
        assert_eq!(t.service, Some(("hooks".into(), "web".into(), 8443)));
        let t = target(&json!({"service": {"namespace": "n", "name": "s"}}), 10).unwrap();
        assert_eq!(t.url, "https://s.n.svc:443/?timeout=10s");
    }

    #[test]
    fn errors_read_as_go_prints_them() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_text(&e), "connection refused");
        assert_eq!(
            server_error(http::StatusCode::INTERNAL_SERVER_ERROR, b""),
            "the server responded with the status code 500 but did not return more information"
        );
        assert_eq!(
            server_error(http::StatusCode::NOT_FOUND, b"nope"),
            "an error on the server (\"nope\") has prevented the request from succeeding"
        );
        assert!(roots_from_pem(b"not pem").is_err());
        let c = Clients::default();
        assert!(c.tls("!!!").is_err());
        assert!(c.tls("").is_ok());
    }
}

/// The HTTPS call against a fake webhook server.
#[cfg(test)]
mod server_tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CA (PEM) and a server config for 127.0.0.1 signed by it.
    fn pki(ca_name: &str) -> (String, Arc<rustls::ServerConfig>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let ca_pem = ca_cert.pem();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, &ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
        (ca_pem, Arc::new(config))
    }

    /// Serves one connection: answers an AdmissionReview with the request's uid, allowed, and the
    /// request's head in a warning (so the test sees what was sent); `silent` never answers.
    async fn serve_once(config: Arc<rustls::ServerConfig>, silent: bool) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = tls.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() < len {
                        continue;
                    }
                    if silent {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let review: Value = serde_json::from_str(body).unwrap_or_default();
                    let answer = json!({
                        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "response": {"uid": review.pointer("/request/uid"), "allowed": true, "warnings": [head]}
                    })
                    .to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                    return;
                }
            }
        });
        port
    }

    fn url_target(port: u16) -> Target {
        target(
            &json!({"url": format!("https://127.0.0.1:{port}/validate")}),
            10,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn posts_a_review_and_reads_the_answer() {
        let (ca, config) = pki("webhook-ca");
        let port = serve_once(config, false).await;
        let ca64 = base64::engine::general_purpose::STANDARD.encode(ca);
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u1"}});
        let t = url_target(port);
        let answer = Clients::default()
            .post(
                &t,
                ("127.0.0.1".into(), port),
                &ca64,
                body.to_string().into_bytes(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(answer.pointer("/response/uid"), Some(&json!("u1")));
        let head = answer
            .pointer("/response/warnings/0")
            .and_then(Value::as_str)
            .unwrap_or("");
        assert!(
            head.starts_with("POST /validate?timeout=10s HTTP/1.1"),
            "{head}"
        );
        // The apiserver sends no credentials of its own or the caller's.
        assert!(
            !head.to_ascii_lowercase().contains("authorization"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn failures_read_as_upstream_words_them() {
        let (_, config) = pki("webhook-ca");
        let (other_ca, _) = pki("other-ca");
        let port = serve_once(config.clone(), false).await;
        let t = url_target(port);
        let wrong = base64::engine::general_purpose::STANDARD.encode(other_ca);
        let err = Clients::default()
            .post(
                &t,
                ("127.0.0.1".into(), port),
                &wrong,
                b"{}".to_vec(),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert_eq!(err, format!("Post \"https://127.0.0.1:{port}/validate?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority"));

        let (ca, _) = pki("webhook-ca");
        let ca64 = base64::engine::general_purpose::STANDARD.encode(ca);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let t = url_target(closed_port);
        let err = Clients::default()
            .post(
                &t,
                ("127.0.0.1".into(), closed_port),
                &ca64,
                b"{}".to_vec(),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert_eq!(err, format!("Post \"https://127.0.0.1:{closed_port}/validate?timeout=10s\": dial tcp 127.0.0.1:{closed_port}: connect: connection refused"));

        let (ca, config) = pki("webhook-ca");
        let port = serve_once(config, true).await;
        let t = url_target(port);
        let ca64 = base64::engine::general_purpose::STANDARD.encode(ca);
        let err = Clients::default()
            .post(
                &t,
                ("127.0.0.1".into(), port),
                &ca64,
                b"{}".to_vec(),
                Duration::from_millis(500),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "Post \"https://127.0.0.1:{port}/validate?timeout=10s\": context deadline exceeded"
            )
        );
    }
}
