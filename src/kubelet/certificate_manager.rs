//! A joined node's certificate rotation (client-go's certificate manager, as upstream's kubelet runs
//! it with `rotateCertificates: true` and `serverTLSBootstrap: true`).
//!
//! The agent's API client ([`client`]) presents its certificate through an [`Identity`] that can be
//! swapped while the process runs. [`run`] waits until 70-90% of the certificate's lifetime has
//! passed (jittered, as upstream, so a fleet does not renew at once), then posts a
//! CertificateSigningRequest for the same `system:node:<name>` as that node. The csrapproving
//! controller approves it because the node may renew its own identity (`selfnodeclient`, bound as
//! kubeadm binds it, [`super::join`]), the signer issues it, and the agent writes the new certificate
//! into its kubeconfig (a restart uses it) and swaps it in.
//!
//! The swap closes every connection made with the old certificate, as upstream's kubelet does
//! (`closeAllConns`): the apiserver checks a certificate only at the handshake, so a connection
//! kept open would otherwise go on as the old one past its expiry. Requests in flight on them fail
//! and are retried by their loops; watches re-establish. TLS session resumption is off for the
//! same reason: a resumed session carries the identity of the handshake it resumes.
//!
//! The serving certificate of the kubelet's HTTPS port rotates the same way ([`rotate`], from
//! [`super::join::serving_config`]): a new `kubernetes.io/kubelet-serving` CSR at 70-90% of the
//! lifetime, presented from the next handshake once issued. As upstream, nothing approves those
//! automatically; until an administrator does, the old certificate stays in use, and a request not
//! approved within 15 minutes is followed by a new one.
//!
//! A failed renewal is retried with a doubling back-off (2 s to 5 min) while the old certificate
//! lasts. Once the client certificate has expired and the agent is restarted, the agent needs a
//! bootstrap token again.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use kube::client::ConfigExt;
use rustls::sign::CertifiedKey;

/// The first retry of a failed renewal; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The client certificate a node presents, replaceable while connections come and go.
pub struct Identity {
    current: RwLock<Current>,
    /// Bumped at each swap: a connection made under an older one is closed.
    generation: AtomicU64,
    next_connection: AtomicU64,
    /// The connections waiting to read, by number: woken at a swap so they close at once.
    parked: Mutex<HashMap<u64, Waker>>,
}

struct Current {
    key: Arc<CertifiedKey>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

fn current(cert_pem: &str, key_pem: &str) -> anyhow::Result<Current> {
    let key = crate::pki::certified_key(cert_pem, key_pem).context("the node's certificate")?;
    let (not_before, not_after) = crate::pki::pem_validity(cert_pem)
        .ok_or_else(|| anyhow!("the node's certificate has no readable validity"))?;
    Ok(Current {
        key: Arc::new(key),
        not_before,
        not_after,
    })
}

impl Identity {
    pub fn new(cert_pem: &str, key_pem: &str) -> anyhow::Result<Arc<Identity>> {
        Ok(Arc::new(Identity {
            current: RwLock::new(current(cert_pem, key_pem)?),
            generation: AtomicU64::new(0),
            next_connection: AtomicU64::new(0),
            parked: Mutex::default(),
        }))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Presents `cert_pem` from now on and closes the connections made with the one before.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let next = current(cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        self.generation.fetch_add(1, Ordering::AcqRel);
        let parked: Vec<Waker> = self
            .parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, w)| w)
            .collect();
        parked.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// When to renew: 70-90% into the certificate's lifetime, `jitter` (0..1) saying where.
    pub fn deadline(&self, jitter: f64) -> SystemTime {
        let c = self.read();
        rotation_deadline(c.not_before, c.not_after, jitter)
    }

    pub fn not_after(&self) -> SystemTime {
        self.read().not_after
    }

    fn park(&self, connection: u64, waker: &Waker) {
        self.parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connection, waker.clone());
    }

    fn unpark(&self, connection: u64) {
        self.parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&connection);
    }
}

impl rustls::client::ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.read().key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The kubelet's serving certificate, as its HTTPS port presents it.
impl rustls::server::ResolvesServerCert for Identity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.read().key.clone())
    }
}

/// Upstream's deadline: `notBefore` plus 70-90% of the lifetime (`jitter` 0..1 picks where).
pub fn rotation_deadline(not_before: SystemTime, not_after: SystemTime, jitter: f64) -> SystemTime {
    let total = not_after.duration_since(not_before).unwrap_or_default();
    not_before + total.mul_f64(0.7 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// A connector whose connections close once the identity they were made with is replaced.
#[derive(Clone)]
struct Connector<C> {
    inner: C,
    identity: Arc<Identity>,
}

impl<C> tower::Service<Uri> for Connector<C>
where
    C: tower::Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = Stream<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let identity = self.identity.clone();
        // Taken before the handshake: a swap during it makes this connection stale at once.
        let born = identity.generation();
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            let number = identity.next_connection.fetch_add(1, Ordering::Relaxed);
            Ok(Stream {
                io,
                born,
                number,
                identity,
            })
        })
    }
}

/// One connection of a [`Connector`].
struct Stream<T> {
    io: T,
    born: u64,
    number: u64,
    identity: Arc<Identity>,
}

impl<T> Stream<T> {
    fn stale(&self) -> Option<std::io::Error> {
        (self.identity.generation() != self.born).then(|| {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the client certificate was rotated",
            )
        })
    }
}

impl<T> Drop for Stream<T> {
    fn drop(&mut self) {
        self.identity.unpark(self.number);
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Stream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.stale() {
            return Poll::Ready(Err(e));
        }
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if polled.is_pending() {
            this.identity.park(this.number, cx.waker());
            // A swap between the check above and parking would have found nothing to wake.
            if let Some(e) = this.stale() {
                return Poll::Ready(Err(e));
            }
        }
        polled
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Stream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.stale() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for Stream<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// An API client from the kubeconfig at `path` (a client certificate's, as the agent writes it)
/// whose certificate [`run`] can replace, and that certificate's [`Identity`].
pub async fn client(path: &Path, agent: &str) -> anyhow::Result<(kube::Client, Arc<Identity>)> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let cert = super::join::kubeconfig_client_certificate(&kc)?;
    let key = super::join::kubeconfig_client_key(&kc)?;
    let identity = Identity::new(&cert, &key)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    crate::user_agent::set(&mut config, agent);
    let mut tls = config.rustls_client_config()?;
    tls.client_auth_cert_resolver = identity.clone();
    tls.resumption = rustls::client::Resumption::disabled();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let connector = Connector {
        inner: https,
        identity: identity.clone(),
    };
    let http_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok((
        kube::Client::new(service, config.default_namespace),
        identity,
    ))
}

/// Writes `cert_pem`/`key_pem` into the kubeconfig at `path` (same server and CA), atomically.
fn write_kubeconfig(path: &Path, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let server = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or_else(|| anyhow!("{} names no server", path.display()))?;
    let ca = super::join::kubeconfig_ca(path)?;
    let yaml = crate::pki::client_cert_kubeconfig(&server, &ca, cert_pem, key_pem);
    crate::private_files::write_private(path, yaml.as_bytes())
}

/// Renews the node's client certificate before it expires, for as long as the process runs.
pub async fn run(client: kube::Client, identity: Arc<Identity>, path: PathBuf, node_name: String) {
    rotate(identity, "client", move || {
        let (client, path, node_name) = (client.clone(), path.clone(), node_name.clone());
        async move {
            let (cert, key) = super::join::client_certificate(&client, &node_name).await?;
            write_kubeconfig(&path, &cert, &key)?;
            Ok((cert, key))
        }
    })
    .await
}

/// Replaces `identity` with what `renew` gets (a certificate issued and stored: `(cert_pem,
/// key_pem)`) each time 70-90% of the current one's lifetime has passed; a failure is retried with
/// a doubling back-off. `what` names the certificate in the log.
pub async fn rotate<F, Fut>(identity: Arc<Identity>, what: &'static str, mut renew: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<(String, String)>>,
{
    let mut backoff = RETRY_MIN;
    let mut next = identity.deadline(rand::random());
    loop {
        if let Ok(wait) = next.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        match renew()
            .await
            .and_then(|(cert, key)| identity.replace(&cert, &key))
        {
            Ok(()) => {
                tracing::info!(
                    "kubelet: rotated the {what} certificate (valid until {})",
                    k8s_openapi::jiff::Timestamp::try_from(identity.not_after())
                        .map_or_else(|_| "?".into(), |t| t.to_string())
                );
                backoff = RETRY_MIN;
                next = identity.deadline(rand::random());
            }
            Err(e) => {
                tracing::warn!(
                    "kubelet: renewing the {what} certificate failed, retrying in {backoff:?}: {e:#}"
                );
                next = SystemTime::now() + backoff;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn deadline_is_70_to_90_percent_of_the_lifetime() {
        let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let na = nb + Duration::from_secs(1000);
        assert_eq!(
            rotation_deadline(nb, na, 0.0),
            nb + Duration::from_secs(700)
        );
        assert_eq!(
            rotation_deadline(nb, na, 1.0),
            nb + Duration::from_secs(900)
        );
        assert_eq!(
            rotation_deadline(nb, na, 7.0),
            nb + Duration::from_secs(900)
        );
        // An upside-down validity renews at once rather than never.
        assert_eq!(rotation_deadline(na, nb, 0.5), na);
    }

    fn pair(name: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::load_or_create(dir.path(), &[]).unwrap();
        pki.issue_client_cert(name, &["system:nodes"])
            .expect("a client certificate")
    }

    #[tokio::test]
    async fn replacing_the_identity_closes_the_connections_made_with_the_old_one() {
        let (cert, key) = pair("system:node:n1");
        let identity = Identity::new(&cert, &key).unwrap();
        let (ours, mut theirs) = tokio::io::duplex(64);
        let stream = Stream {
            io: hyper_util::rt::TokioIo::new(ours),
            born: identity.generation(),
            number: 1,
            identity: identity.clone(),
        };
        let mut conn = hyper_util::rt::TokioIo::new(stream);
        theirs.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        // A read waiting for data is woken by the swap and fails.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            conn.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        let (cert2, key2) = pair("system:node:n1");
        identity.replace(&cert2, &key2).unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the parked read is woken")
            .unwrap();
        assert_eq!(
            read.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionAborted
        );
        assert!(identity.parked.lock().unwrap().is_empty());
    }
}
