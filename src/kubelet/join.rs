//! Joining a machine to the cluster as a node: kubeadm's TLS bootstrap, with rkube's commands.
//!
//! On the server, `rkube token create --print-join-command` makes a bootstrap token (a Secret that
//! [`crate::apiserver::authn::bootstrap_token`] accepts) and prints the command to run on the new
//! machine. There `rkube agent --server URL --token T --ca-cert-hash sha256:H`:
//! 1. [`discover_ca`]: reaches the server, which sends its CA after its serving certificate, and keeps
//!    the CA only when its public key has the pinned hash and it signed the server's certificate
//!    (kubeadm's `--discovery-token-ca-cert-hash`), so the token never goes to an impostor;
//! 2. [`client_certificate`]: as `system:bootstrap:<id>`, posts a CertificateSigningRequest for
//!    `system:node:<name>` in `system:nodes` to the `kubernetes.io/kube-apiserver-client-kubelet`
//!    signer; the approving controller approves it (the token's group may create
//!    `certificatesigningrequests/nodeclient`, [`ensure_bindings`]) and the signer issues it;
//! 3. writes a kubeconfig with that certificate under the agent's directory, used from then on (a
//!    restarted agent needs no token), and runs the kubelet as that node, which renews that
//!    certificate before it expires ([`super::certificate_manager`]);
//! 4. [`serving_config`]: asks the `kubernetes.io/kubelet-serving` signer for the kubelet's HTTPS
//!    certificate. As upstream, nothing approves serving certificates automatically: an administrator
//!    runs `kubectl certificate approve`; until then the node runs pods but `kubectl logs|exec`
//!    cannot reach it.
//!
//! The node's kube-proxy runs as kubeadm's does, as the `kube-system/kube-proxy` service account
//! (bound to `system:node-proxier`). kubeadm's kube-proxy is a DaemonSet pod whose token the kubelet
//! gets for it; rkube's runs inside the agent, so the agent asks for that account's token itself,
//! with the bootstrap token, while it joins ([`proxy_kubeconfig`]): the token group may create
//! tokens for that one account and nothing else ([`ensure_bindings`]). A node's own identity could
//! not: the Node authorizer and NodeRestriction allow a node only tokens bound to its pods.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use rand::Rng;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::probe_client::AnyServerCert;
use super::registration::{bind_cluster_role, create_if_absent, subject};
use crate::apiserver::authn::bootstrap_token::{self, NODE_TOKEN_GROUP};

/// How long `rkube token create` tokens live by default (kubeadm's 24 h).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long the agent waits for its client certificate (the approving controller answers at once;
/// a cluster without one needs `kubectl certificate approve` within this time).
pub const CLIENT_CERT_WAIT: Duration = Duration::from_secs(300);
/// How long a renewal of the serving certificate waits for an administrator's approval before it asks
/// again (upstream's certificate manager waits 15 minutes).
const SERVING_CERT_WAIT: Duration = Duration::from_secs(15 * 60);
/// The agent's kubeconfig under its directory.
pub const KUBECONFIG_FILE: &str = "kubelet.kubeconfig";
/// The node's kube-proxy's kubeconfig under the agent's directory.
pub const PROXY_KUBECONFIG_FILE: &str = "kube-proxy.kubeconfig";
/// kube-proxy's service account (kubeadm's, in `kube-system`).
pub const PROXY_ACCOUNT: &str = "kube-proxy";
/// How long a joined node's kube-proxy token lives: as long as the node's client certificate.
const PROXY_TOKEN_SECONDS: i64 = 365 * 24 * 3600;
const SERVING_CERT_FILE: &str = "pki/kubelet-serving.crt";
const SERVING_KEY_FILE: &str = "pki/kubelet-serving.key";

/// kubeadm's node-join bindings (`kubeadm:kubelet-bootstrap`, `kubeadm:node-autoapprove-bootstrap`,
/// `kubeadm:node-autoapprove-certificate-rotation`) under rkube's names: the token group may post
/// CSRs and have node client certificates approved, and a node may have the renewal of its own
/// client certificate approved ([`super::certificate_manager`]). Every other node right comes from
/// the Node authorizer.
const BINDINGS: [(&str, &str, &str); 3] = [
    (
        "rkube:kubelet-bootstrap",
        "system:node-bootstrapper",
        NODE_TOKEN_GROUP,
    ),
    (
        "rkube:node-autoapprove-bootstrap",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        NODE_TOKEN_GROUP,
    ),
    (
        "rkube:node-autoapprove-certificate-rotation",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        crate::apiserver::authz::node::NODES_GROUP,
    ),
];

/// Creates the node-join bindings where missing (at every server start, as `kubeadm init` does once),
/// and kube-proxy's service account with kubeadm's binding of it (`kubeadm:node-proxier`), whose
/// token the token group may ask for (`kube-system` Role `rkube:kube-proxy-token`).
pub async fn ensure_bindings(admin: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
    for (name, role, group) in BINDINGS {
        bind_cluster_role(admin, name, role, subject("Group", group)).await?;
    }
    let meta = |name: &str, namespace: Option<&str>| ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: meta(PROXY_ACCOUNT, Some("kube-system")),
        ..Default::default()
    };
    create_if_absent(Api::namespaced(admin.clone(), "kube-system"), &account).await?;
    let proxy_account = Subject {
        api_group: Some(String::new()),
        kind: "ServiceAccount".into(),
        name: PROXY_ACCOUNT.into(),
        namespace: Some("kube-system".into()),
    };
    bind_cluster_role(
        admin,
        "rkube:node-proxier",
        "system:node-proxier",
        proxy_account,
    )
    .await?;
    let name = "rkube:kube-proxy-token";
    let role = Role {
        metadata: meta(name, Some("kube-system")),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["serviceaccounts/token".into()]),
            resource_names: Some(vec![PROXY_ACCOUNT.into()]),
            verbs: vec!["create".into()],
            ..Default::default()
        }]),
    };
    create_if_absent(Api::namespaced(admin.clone(), "kube-system"), &role).await?;
    let binding = RoleBinding {
        metadata: meta(name, Some("kube-system")),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: Some(vec![subject("Group", NODE_TOKEN_GROUP)]),
    };
    create_if_absent(Api::namespaced(admin.clone(), "kube-system"), &binding).await
}

fn random_text(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A new bootstrap token: `<6>.<16>` of `[a-z0-9]`.
pub fn new_token() -> String {
    format!("{}.{}", random_text(6), random_text(16))
}

/// The Secret that makes `token` a node-join bootstrap token (kubeadm's fields: authentication and
/// signing usages, the node-join group, and `expiration` unless `ttl` is zero).
pub fn token_secret(token: &str, ttl: Duration, description: &str) -> anyhow::Result<Secret> {
    let (id, secret) = bootstrap_token::parse(token).ok_or_else(|| {
        anyhow!("token {token:?} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    })?;
    let mut data = std::collections::BTreeMap::from([
        ("token-id".to_string(), id.to_string()),
        ("token-secret".to_string(), secret.to_string()),
        ("usage-bootstrap-authentication".to_string(), "true".into()),
        ("usage-bootstrap-signing".to_string(), "true".into()),
        ("auth-extra-groups".to_string(), NODE_TOKEN_GROUP.into()),
    ]);
    if !description.is_empty() {
        data.insert("description".into(), description.into());
    }
    if !ttl.is_zero() {
        let at = chrono::Utc::now()
            + chrono::Duration::from_std(ttl).context("token lifetime too long")?;
        data.insert(
            "expiration".into(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(format!("{}{id}", bootstrap_token::SECRET_PREFIX)),
            namespace: Some(bootstrap_token::NAMESPACE.into()),
            ..Default::default()
        },
        type_: Some(bootstrap_token::SECRET_TYPE.into()),
        string_data: Some(data),
        ..Default::default()
    })
}

/// Stores a new node-join token (`rkube token create`) and returns it.
pub async fn create_token(
    admin: &kube::Client,
    ttl: Duration,
    description: &str,
) -> anyhow::Result<String> {
    let token = new_token();
    let api = Api::<Secret>::namespaced(admin.clone(), bootstrap_token::NAMESPACE);
    api.create(
        &PostParams::default(),
        &token_secret(&token, ttl, description)?,
    )
    .await
    .context("storing the bootstrap token")?;
    Ok(token)
}

/// Accepts the server's certificate only when the chain it sends carries a CA whose public key has
/// the pinned hash and that CA verifies the server's certificate for the name dialled; keeps that CA.
#[derive(Debug)]
struct PinnedCa {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// Checks the handshake's signatures.
    signatures: AnyServerCert,
    found: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let other = |m: String| rustls::Error::General(m);
        let ca = intermediates
            .iter()
            .find(|c| crate::pki::public_key_pin(c.as_ref()).is_ok_and(|p| p == self.pin))
            .ok_or_else(|| {
                other(format!(
                    "the server sent no CA certificate whose public key hash is {}",
                    self.pin
                ))
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| other(format!("the pinned CA: {e}")))?;
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| other(e.to_string()))?;
        let verified = webpki.verify_server_cert(end_entity, &[], server_name, ocsp, now)?;
        *self.found.lock().unwrap_or_else(|e| e.into_inner()) = Some(ca.as_ref().to_vec());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

/// The host and port of an `https://host:port` URL (port 443 when absent).
fn host_port(server_url: &str) -> anyhow::Result<(String, u16)> {
    let uri: http::Uri = server_url
        .parse()
        .with_context(|| format!("server URL {server_url:?}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("server URL {server_url:?} must be https://host:port");
    }
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("server URL {server_url:?} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

/// The cluster CA as PEM, found by a TLS handshake with the server that sends nothing: the CA whose
/// public key hash is `pin` (`sha256:<hex>`), and which verified the server's certificate.
pub async fn discover_ca(server_url: &str, pin: &str) -> anyhow::Result<String> {
    let pin = pin.trim().to_lowercase();
    if !pin.starts_with("sha256:") || pin.len() != 7 + 64 {
        bail!("--ca-cert-hash {pin:?} must be sha256:<64 hex digits> (rkube token create --print-join-command prints it)");
    }
    let (host, port) = host_port(server_url)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCa {
        pin,
        provider: provider.clone(),
        signatures: AnyServerCert(provider.clone()),
        found: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone())?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    };
    tokio::time::timeout(Duration::from_secs(30), handshake)
        .await
        .map_err(|_| anyhow!("no TLS handshake with {server_url} within 30s"))?
        .with_context(|| format!("verifying {server_url} against the pinned CA"))?;
    let der = verifier
        .found
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| anyhow!("{server_url} presented no pinned CA"))?;
    Ok(crate::pki::der_to_pem(&der))
}

/// A client of `server_url` trusting `ca_pem`, authenticating with `user` (a kubeconfig user entry).
async fn client_with(
    server_url: &str,
    ca_pem: &str,
    user: serde_json::Value,
) -> anyhow::Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::from_yaml(&crate::pki::kubeconfig_yaml(server_url, ca_pem, user))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    crate::user_agent::set(&mut config, &crate::user_agent::agent("kubelet", None));
    Ok(kube::Client::try_from(config)?)
}

/// What a certificate is asked for.
struct Wanted<'a> {
    signer: &'a str,
    common_name: String,
    sans: Vec<rcgen::SanType>,
    usages: &'a [&'a str],
    /// Approve the request with the requester's own client (allowed only to identities that may
    /// approve for the signer; a refusal just leaves it to an administrator).
    approve: bool,
}

/// Approves CSR `name` as this client, as `kubectl certificate approve` would; logs why not otherwise.
async fn approve_own(api: &Api<CertificateSigningRequest>, name: &str) {
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": "Approved",
        "status": "True",
        "reason": "RkubeSelfApprove",
        "message": "approved by its requester, which may approve for this signer",
        "lastUpdateTime": k8s_openapi::jiff::Timestamp::now().to_string(),
    }]}});
    let result = api
        .patch_approval(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await;
    if let Err(e) = result {
        tracing::info!(
            "could not approve CertificateSigningRequest {name} myself ({e}): waiting for an administrator (kubectl certificate approve {name})"
        );
    }
}

/// Posts a CSR for a fresh ECDSA P-256 key (as upstream's kubelet makes) and waits up to `wait`
/// for its certificate: `(cert_pem, key_pem)`.
async fn request_certificate(
    client: &kube::Client,
    wanted: Wanted<'_>,
    wait: Option<Duration>,
) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, wanted.common_name.clone());
    params.subject_alt_names = wanted.sans;
    let request = params.serialize_request(&key)?.pem()?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("node-csr-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: wanted.signer.into(),
            usages: Some(wanted.usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    let name = api
        .create(&PostParams::default(), &csr)
        .await
        .with_context(|| format!("creating CertificateSigningRequest for {}", wanted.signer))?
        .name_any();
    tracing::info!(
        "requested a {} certificate: CertificateSigningRequest {name}",
        wanted.signer
    );
    if wanted.approve {
        approve_own(&api, &name).await;
    }
    let issued = |csr: Option<&CertificateSigningRequest>| {
        csr.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.certificate.as_ref().is_some_and(|c| !c.0.is_empty())
                || s.conditions.as_ref().is_some_and(|c| {
                    c.iter()
                        .any(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
                })
        })
    };
    // A watch that breaks (the server restarted, or this client's certificate rotated and its
    // connections were closed) is watched again: the request stays valid.
    let waiting = async {
        loop {
            match kube::runtime::wait::await_condition(api.clone(), &name, issued).await {
                Ok(done) => return Ok::<_, kube::Error>(done),
                Err(e) => {
                    tracing::debug!("waiting for CertificateSigningRequest {name}: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    };
    let done = match wait {
        Some(limit) => tokio::time::timeout(limit, waiting).await.map_err(|_| {
            anyhow!("CertificateSigningRequest {name} got no certificate within {limit:?} (approve it with kubectl certificate approve {name})")
        })??,
        None => waiting.await?,
    };
    let status = done.and_then(|c| c.status).unwrap_or_default();
    if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
        return Ok((
            String::from_utf8_lossy(&cert.0).into_owned(),
            key.serialize_pem(),
        ));
    }
    let why = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| format!("{}: {}", c.type_, c.message.unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("; ");
    bail!("CertificateSigningRequest {name} was refused: {why}")
}

/// How the agent reaches the cluster the first time.
pub struct JoinOptions {
    pub server: String,
    pub token: String,
    /// The CA: pinned by hash (`sha256:...`) or given as a file's PEM.
    pub ca: CaSource,
    pub node_name: String,
}

pub enum CaSource {
    Pin(String),
    Pem(String),
}

/// The agent's kubeconfig under `dir`: the one a previous join wrote while its certificate is
/// valid, else a new one from a join with `join` (an error when there is none to join with).
pub async fn kubeconfig(dir: &Path, join: Option<&JoinOptions>) -> anyhow::Result<PathBuf> {
    let path = dir.join(KUBECONFIG_FILE);
    if let Some(left) = kubeconfig_cert_seconds_left(&path) {
        if left > 0 {
            return Ok(path);
        }
        tracing::warn!(
            "the client certificate in {} has expired: joining again",
            path.display()
        );
    }
    let Some(join) = join else {
        bail!(
            "{} holds no valid credentials: give --server, --token and --ca-cert-hash to join (rkube token create --print-join-command on the server prints them)",
            path.display()
        );
    };
    if bootstrap_token::parse(&join.token).is_none() {
        bail!("--token must be a bootstrap token of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}");
    }
    let ca_pem = match &join.ca {
        CaSource::Pin(pin) => discover_ca(&join.server, pin).await?,
        CaSource::Pem(pem) => pem.clone(),
    };
    // One client as `system:bootstrap:<id>` for both requests of the join.
    let bootstrap = client_with(
        &join.server,
        &ca_pem,
        serde_json::json!({ "token": join.token }),
    )
    .await?;
    let (cert, key) = client_certificate(&bootstrap, &join.node_name).await?;
    let yaml = crate::pki::client_cert_kubeconfig(&join.server, &ca_pem, &cert, &key);
    crate::private_files::private_dir(dir)?;
    crate::private_files::write_private(&path, yaml.as_bytes())?;
    // The node runs without kube-proxy rather than not at all when this fails (a server that grants
    // no such token, say): the agent says so when it starts the proxy.
    if let Err(e) = proxy_kubeconfig(&bootstrap, dir, &join.server, &ca_pem).await {
        tracing::warn!("no credentials for the node's kube-proxy: {e:#}");
    }
    Ok(path)
}

/// Asks for a token of `kube-system/kube-proxy` as the joining node (`bootstrap`: its bootstrap
/// token's client) and writes kube-proxy's kubeconfig with it under `dir`.
async fn proxy_kubeconfig(
    bootstrap: &kube::Client,
    dir: &Path,
    server_url: &str,
    ca_pem: &str,
) -> anyhow::Result<PathBuf> {
    let accounts = Api::namespaced(bootstrap.clone(), "kube-system");
    let token = crate::controllers::credentials::request_token(
        &accounts,
        PROXY_ACCOUNT,
        PROXY_TOKEN_SECONDS,
    )
    .await?
    .token;
    let yaml =
        crate::pki::kubeconfig_yaml(server_url, ca_pem, serde_json::json!({ "token": token }));
    let path = dir.join(PROXY_KUBECONFIG_FILE);
    crate::private_files::write_private(&path, yaml.as_bytes())?;
    Ok(path)
}

/// Seconds the client certificate in a kubeconfig has left; None when there is none to read.
fn kubeconfig_cert_seconds_left(path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    let kc = kube::config::Kubeconfig::from_yaml(&text).ok()?;
    crate::pki::pem_seconds_left(&kubeconfig_client_certificate(&kc).ok()?)
}

/// The first user's `client-certificate-data` of a kubeconfig, as PEM.
pub(super) fn kubeconfig_client_certificate(
    kc: &kube::config::Kubeconfig,
) -> anyhow::Result<String> {
    let data = kubeconfig_user(kc)?.client_certificate_data.clone();
    decode_user_data(data, "client-certificate")
}

/// The first user's `client-key-data` of a kubeconfig, as PEM.
pub(super) fn kubeconfig_client_key(kc: &kube::config::Kubeconfig) -> anyhow::Result<String> {
    use secrecy::ExposeSecret;
    let data = kubeconfig_user(kc)?
        .client_key_data
        .as_ref()
        .map(|k| k.expose_secret().to_string());
    decode_user_data(data, "client-key")
}

fn kubeconfig_user(kc: &kube::config::Kubeconfig) -> anyhow::Result<&kube::config::AuthInfo> {
    kc.auth_infos
        .first()
        .and_then(|a| a.auth_info.as_ref())
        .ok_or_else(|| anyhow!("the kubeconfig has no user"))
}

/// Base64 `data` of a kubeconfig user's `what` field, decoded.
fn decode_user_data(data: Option<String>, what: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let data = data.ok_or_else(|| anyhow!("the kubeconfig's user has no {what} data"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .with_context(|| format!("the kubeconfig's {what} data"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Step 2: the node's client certificate, asked for with the bootstrap token's client.
pub async fn client_certificate(
    client: &kube::Client,
    node_name: &str,
) -> anyhow::Result<(String, String)> {
    let wanted = Wanted {
        signer: "kubernetes.io/kube-apiserver-client-kubelet",
        common_name: format!("system:node:{node_name}"),
        sans: Vec::new(),
        usages: &["digital signature", "client auth"],
        approve: false,
    };
    request_certificate(client, wanted, Some(CLIENT_CERT_WAIT)).await
}

/// Step 4: the kubelet's serving TLS config: the certificate a previous run stored under `dir`
/// while valid, else a new one from the `kubernetes.io/kubelet-serving` signer (waiting for an
/// administrator's approval as long as it takes); renewed before it expires
/// ([`super::certificate_manager::rotate`]). Client certificates must chain to `ca_pem`.
pub async fn serving_config(
    client: kube::Client,
    dir: PathBuf,
    node_name: String,
    ips: Vec<IpAddr>,
    ca_pem: String,
) -> anyhow::Result<rustls::ServerConfig> {
    let (cert_path, key_path) = (dir.join(SERVING_CERT_FILE), dir.join(SERVING_KEY_FILE));
    let stored = std::fs::read_to_string(&cert_path)
        .ok()
        .zip(std::fs::read_to_string(&key_path).ok())
        .filter(|(cert, _)| crate::pki::pem_seconds_left(cert).is_some_and(|s| s > 0));
    let request = move |wait: Option<Duration>| {
        let (client, dir, node_name, ips) =
            (client.clone(), dir.clone(), node_name.clone(), ips.clone());
        async move {
            let mut sans = vec![rcgen::SanType::DnsName(node_name.as_str().try_into()?)];
            sans.extend(ips.into_iter().map(rcgen::SanType::IpAddress));
            let wanted = Wanted {
                signer: "kubernetes.io/kubelet-serving",
                common_name: format!("system:node:{node_name}"),
                sans,
                usages: &["digital signature", "server auth"],
                approve: false,
            };
            let (cert, key) = request_certificate(&client, wanted, wait).await?;
            crate::private_files::private_dir(&dir.join("pki"))?;
            crate::private_files::write_private(&dir.join(SERVING_KEY_FILE), key.as_bytes())?;
            crate::private_files::write_private(&dir.join(SERVING_CERT_FILE), cert.as_bytes())?;
            anyhow::Ok((cert, key))
        }
    };
    let (cert, key) = match stored {
        Some(pair) => pair,
        None => request(None).await?,
    };
    let identity = super::certificate_manager::Identity::new(&cert, &key)?;
    tokio::spawn(super::certificate_manager::rotate(
        identity.clone(),
        "serving",
        move || request(Some(SERVING_CERT_WAIT)),
    ));
    crate::pki::kubelet_serving_config_with(identity, &ca_pem)
}

/// One serving certificate for several nodes' kubelet endpoints that share a listener (hollow nodes):
/// common name `system:node:<name>`, every address in `ips`, from the `kubernetes.io/kubelet-serving`
/// signer. Upstream approves no serving certificate by itself, so this process approves its own
/// request when its identity may (`approve` on that signer, as an administrator's may), and otherwise
/// waits up to [`CLIENT_CERT_WAIT`] for someone to (the caller retries); client certificates must
/// chain to `ca_pem`.
pub async fn shared_serving_config(
    client: &kube::Client,
    name: &str,
    ips: &[IpAddr],
    ca_pem: &str,
) -> anyhow::Result<rustls::ServerConfig> {
    let mut sans = vec![rcgen::SanType::DnsName(name.try_into()?)];
    sans.extend(ips.iter().copied().map(rcgen::SanType::IpAddress));
    let wanted = Wanted {
        signer: "kubernetes.io/kubelet-serving",
        common_name: format!("system:node:{name}"),
        sans,
        usages: &["digital signature", "server auth"],
        approve: true,
    };
    let (cert, key) = request_certificate(client, wanted, Some(CLIENT_CERT_WAIT)).await?;
    crate::pki::kubelet_serving_config(&cert, &key, ca_pem)
}

/// The CA the kubeconfig at `path` trusts.
pub fn kubeconfig_ca(path: &Path) -> anyhow::Result<String> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    crate::controllers::credentials::kubeconfig_ca(&kc)
        .ok_or_else(|| anyhow!("{} names no certificate authority", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_bootstrap_shape() {
        for _ in 0..20 {
            let t = new_token();
            assert!(bootstrap_token::parse(&t).is_some(), "{t}");
        }
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn token_secret_is_what_the_authenticator_accepts() {
        let token = "abcdef.0123456789abcdef";
        let secret = token_secret(token, DEFAULT_TTL, "for n1").unwrap();
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("bootstrap-token-abcdef")
        );
        // The apiserver moves stringData into data; do the same and authenticate.
        let mut value = serde_json::to_value(&secret).unwrap();
        let data: serde_json::Map<String, serde_json::Value> = secret
            .string_data
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                use base64::Engine;
                (
                    k,
                    base64::engine::general_purpose::STANDARD.encode(v).into(),
                )
            })
            .collect();
        value["data"] = data.into();
        let user = bootstrap_token::user_of(&value, "abcdef", "0123456789abcdef").unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert!(user.groups.contains(&NODE_TOKEN_GROUP.to_string()));
        let never = token_secret(token, Duration::ZERO, "").unwrap();
        assert!(!never.string_data.unwrap().contains_key("expiration"));
        assert!(token_secret("nope", DEFAULT_TTL, "").is_err());
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            host_port("https://10.0.0.1:6443").unwrap(),
            ("10.0.0.1".to_string(), 6443)
        );
        assert_eq!(
            host_port("https://[::1]:6443").unwrap(),
            ("::1".to_string(), 6443)
        );
        assert_eq!(host_port("https://api.example").unwrap().1, 443);
        assert!(host_port("http://10.0.0.1:6443").is_err());
    }

    /// A real handshake with a server whose chain carries its CA: the right pin finds the CA, a
    /// wrong one refuses the server.
    #[tokio::test]
    async fn ca_discovery_pins_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::load_or_create(dir.path(), &[]).unwrap();
        let tls = Arc::new(pki.server_tls_config().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        let url = format!("https://127.0.0.1:{}", addr.port());
        let pin = crate::pki::public_key_pin_pem(&pki.ca_cert_pem).unwrap();
        let ca = discover_ca(&url, &pin).await.unwrap();
        assert_eq!(
            crate::pki::public_key_pin_pem(&ca).unwrap(),
            pin,
            "the discovered CA is the pinned one"
        );
        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = discover_ca(&url, &wrong).await.unwrap_err();
        assert!(format!("{err:#}").contains("no CA certificate"), "{err:#}");
        assert!(discover_ca(&url, "md5:abc").await.is_err());
    }
}
