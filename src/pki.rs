//! The cluster PKI: one CA and the certificates every component authenticates with.
//!
//! Kubernetes clients (kubectl, client-go, kube-rs) expect to talk TLS to the apiserver and to
//! authenticate with X.509 client certificates whose subject carries the identity (CN = user name,
//! O = groups). Rather than asking the operator to run `openssl`/`kubeadm`, rkube creates a small PKI
//! under `<data-dir>/pki/` on first start and reuses it afterwards, so kubeconfigs handed out stay
//! valid across restarts:
//!
//! | file            | what                                                              |
//! |-----------------|-------------------------------------------------------------------|
//! | `ca.crt/.key`   | cluster CA, `CN=rkube-ca`, 10 years; never rotated automatically  |
//! | `apiserver.crt/.key` | serving cert (serverAuth), 1 year, SANs for every local name |
//! | `admin.crt/.key`| `CN=kubernetes-admin, O=system:masters` (clientAuth), 1 year       |
//!
//! Keys are ECDSA P-256 (PKCS#8 PEM, mode 0600). Leaf certificates that are missing, broken, not
//! issued by the current CA, close to expiry, or (for the serving cert) missing a requested SAN are
//! re-issued from the same CA on load, so adding `--tls-san` later never invalidates old kubeconfigs.
//!
//! TLS uses rustls with the `ring` provider passed explicitly, so nothing depends on a process-wide
//! default provider being installed.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, SigningKey,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// CA lifetime: long, because rotating the CA invalidates every issued kubeconfig.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Leaf lifetime (serving and client certs), like kubeadm.
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Leaves expiring within this window are re-issued on load, so a restart renews them in time.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// `notBefore` is backdated a little so peers with a slightly slow clock accept fresh certs.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Common name of the cluster CA.
const CA_CN: &str = "rkube-ca";
/// Common name of the admin client certificate (same as kubeadm's).
const ADMIN_CN: &str = "kubernetes-admin";
/// The group the RBAC layer treats as cluster superusers.
const ADMIN_GROUP: &str = "system:masters";
/// Name of the cluster, user and context in the generated kubeconfig.
const KUBECONFIG_NAME: &str = "rkube";

/// DER encoding of the `commonName` attribute type OID (2.5.4.3).
const OID_CN_DER: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
/// DER encoding of the `organizationName` attribute type OID (2.5.4.10).
const OID_O_DER: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];

/// The user the apiserver is to kubelets (bound to `system:kubelet-api-admin`, as kubeadm binds it).
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// The cluster PKI as PEM strings (certificates and PKCS#8 keys).
///
/// Kept as PEM because that is what gets written to disk and embedded in kubeconfigs; TLS configs
/// are derived on demand with [`Pki::server_tls_config`].
#[derive(Clone)]
pub struct Pki {
    /// The cluster CA certificate.
    pub ca_cert_pem: String,
    /// The cluster CA private key.
    pub ca_key_pem: String,
    /// The apiserver serving certificate (signed by the CA).
    pub server_cert_pem: String,
    /// The apiserver serving key.
    pub server_key_pem: String,
    /// The admin client certificate (`CN=kubernetes-admin, O=system:masters`).
    pub admin_cert_pem: String,
    /// The admin client key.
    pub admin_key_pem: String,
    /// The key that signs service account tokens (PKCS#8 PEM, ECDSA P-256), kept across restarts so
    /// issued tokens stay valid.
    pub service_account_key_pem: String,
}

/// Hand-written so that logging a `Pki` never leaks private keys.
impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("ca_key_pem", &"<redacted>")
            .field("server_cert_pem", &self.server_cert_pem)
            .field("server_key_pem", &"<redacted>")
            .field("admin_cert_pem", &self.admin_cert_pem)
            .field("admin_key_pem", &"<redacted>")
            .field("service_account_key_pem", &"<redacted>")
            .finish()
    }
}

/// The authenticated user a verified client certificate names: CN is the user name, O entries the
/// groups (the Kubernetes x509 authenticator convention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertUser {
    /// The subject common name.
    pub name: String,
    /// The subject organization entries, in certificate order.
    pub groups: Vec<String>,
}

/// Extracts the user a (already verified) client certificate names.
///
/// Returns `None` if the DER does not parse or the subject has no usable CN, since an identity
/// without a name cannot be authorized. The caller must only pass certificates rustls verified
/// against the CA; this function does no verification itself.
pub fn user_from_cert(der: &[u8]) -> Option<CertUser> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(CertUser { name, groups })
}

/// Paths of the PKI files inside `<dir>/pki/`.
struct Layout {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    service_account_key: PathBuf,
}

impl Layout {
    fn new(pki_dir: &Path) -> Self {
        Layout {
            ca_cert: pki_dir.join("ca.crt"),
            ca_key: pki_dir.join("ca.key"),
            server_cert: pki_dir.join("apiserver.crt"),
            server_key: pki_dir.join("apiserver.key"),
            admin_cert: pki_dir.join("admin.crt"),
            admin_key: pki_dir.join("admin.key"),
            service_account_key: pki_dir.join("sa.key"),
        }
    }
}

/// A subject alternative name in comparable form (DNS names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum San {
    Ip(IpAddr),
    Dns(String),
}

impl San {
    /// Parses an operator-supplied SAN: an IP address (optionally in `[v6]` brackets) or a DNS name.
    fn parse(s: &str) -> Option<San> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(s);
        match unbracketed.parse::<IpAddr>() {
            Ok(ip) => Some(San::Ip(ip)),
            Err(_) => Some(San::Dns(s.to_ascii_lowercase())),
        }
    }

    fn to_rcgen(&self) -> anyhow::Result<SanType> {
        Ok(match self {
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Dns(d) => SanType::DnsName(
                d.as_str()
                    .try_into()
                    .with_context(|| format!("invalid DNS subject alternative name {d:?}"))?,
            ),
        })
    }
}

impl Pki {
    /// Loads the PKI from `dir/pki/` or creates it on first start: a cluster CA (CN=rkube-ca, 10y), a
    /// serving cert signed by it (SANs: 127.0.0.1, ::1, localhost, the machine hostname, kubernetes,
    /// kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.cluster.local, plus
    /// `extra_sans` (IPs or DNS names), 1y, serverAuth), an admin client cert (CN=kubernetes-admin,
    /// O=system:masters, clientAuth). Keys are written with mode 0600.
    ///
    /// Restarting on the same dir keeps the same CA (so issued kubeconfigs stay valid). Leaf certs
    /// that are unreadable, not issued by this CA, expiring within 30 days, or (serving cert) lacking
    /// a requested SAN are re-issued from the same CA. A CA cert without its key (or vice versa) is
    /// an error rather than a silent regeneration, since that would invalidate every client.
    pub fn load_or_create(dir: &Path, extra_sans: &[String]) -> anyhow::Result<Pki> {
        let pki_dir = dir.join("pki");
        crate::private_files::private_dir(&pki_dir)
            .with_context(|| format!("creating PKI directory {}", pki_dir.display()))?;
        let layout = Layout::new(&pki_dir);

        let (ca_cert_pem, ca_key_pem) = load_or_create_ca(&layout)?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).context("parsing CA key")?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, &ca_key).context("parsing CA cert")?;
        let ca_der = pem_to_cert_der(&ca_cert_pem).context("parsing CA cert")?;

        let sans = serving_sans(extra_sans);
        let (server_cert_pem, server_key_pem) = match read_pair(
            &layout.server_cert,
            &layout.server_key,
        ) {
            Some((c, k)) if leaf_is_usable(&c, &k, &ca_der, Some(&sans), None) => (c, k),
            _ => {
                tracing::info!(path = %layout.server_cert.display(), "issuing apiserver serving certificate");
                let rcgen_sans = sans
                    .iter()
                    .map(San::to_rcgen)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let (c, k) = issue_leaf(
                    "kube-apiserver",
                    &[],
                    rcgen_sans,
                    ExtendedKeyUsagePurpose::ServerAuth,
                    &issuer,
                )?;
                write_file(&layout.server_key, &k, 0o600)?;
                write_file(&layout.server_cert, &c, 0o644)?;
                (c, k)
            }
        };

        let admin_identity = CertUser {
            name: ADMIN_CN.to_string(),
            groups: vec![ADMIN_GROUP.to_string()],
        };
        let (admin_cert_pem, admin_key_pem) = match read_pair(&layout.admin_cert, &layout.admin_key)
        {
            Some((c, k)) if leaf_is_usable(&c, &k, &ca_der, None, Some(&admin_identity)) => (c, k),
            _ => {
                tracing::info!(path = %layout.admin_cert.display(), "issuing admin client certificate");
                let (c, k) = issue_leaf(
                    ADMIN_CN,
                    &[ADMIN_GROUP],
                    Vec::new(),
                    ExtendedKeyUsagePurpose::ClientAuth,
                    &issuer,
                )?;
                write_file(&layout.admin_key, &k, 0o600)?;
                write_file(&layout.admin_cert, &c, 0o644)?;
                (c, k)
            }
        };

        let service_account_key_pem = match fs::read_to_string(&layout.service_account_key) {
            Ok(k) if KeyPair::from_pem(&k).is_ok() => k,
            _ => {
                tracing::info!(path = %layout.service_account_key.display(), "creating service account signing key");
                let k = KeyPair::generate()
                    .context("generating service account key")?
                    .serialize_pem();
                write_file(&layout.service_account_key, &k, 0o600)?;
                k
            }
        };

        Ok(Pki {
            ca_cert_pem,
            ca_key_pem,
            server_cert_pem,
            server_key_pem,
            admin_cert_pem,
            admin_key_pem,
            service_account_key_pem,
        })
    }

    /// Issues a client certificate signed by the CA (for in-cluster components such as the
    /// scheduler or kubelets): returns `(cert_pem, key_pem)`. CN is the user name, each entry of
    /// `organizations` becomes a group (an O attribute of the subject). Valid for 1 year.
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> anyhow::Result<(String, String)> {
        if common_name.is_empty() {
            bail!("client certificate needs a non-empty common name");
        }
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).context("parsing CA key")?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_cert_pem, &ca_key).context("parsing CA cert")?;
        issue_leaf(
            common_name,
            organizations,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        )
    }

    /// Signs a PEM certificate signing request with the cluster CA (the CSR signing controller's
    /// signer): the request's subject and subject alternative names, the given key usages and
    /// extended key usages, valid for `validity` (backdated as upstream's CSR signer does,
    /// [`set_signed_validity`]). The request's own signature is checked first.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        key_usages: Vec<KeyUsagePurpose>,
        extended: Vec<ExtendedKeyUsagePurpose>,
        validity: Duration,
    ) -> anyhow::Result<String> {
        use x509_parser::prelude::FromDer;
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| anyhow!("{e}"))?;
        let der =
            rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
                .map_err(|e| anyhow!("parsing CSR PEM: {e}"))?;
        let (_, parsed) =
            x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
                .map_err(|e| anyhow!("parsing CSR: {e}"))?;
        let subject = parsed.certification_request_info.subject.as_raw().to_vec();
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).context("parsing CA key")?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_cert_pem, &ca_key).context("parsing CA cert")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "csr");
        params.subject_alt_names = csr.params.subject_alt_names.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_usages;
        params.extended_key_usages = extended;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        set_signed_validity(&mut params, validity, SystemTime::now());
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .context("signing the request")?;
        let der = replace_subject_and_resign(cert.der(), &subject, issuer.key())?;
        Ok(cert_der_to_pem(&der))
    }

    /// The cluster CA as the only trust root.
    fn ca_roots(&self) -> anyhow::Result<rustls::RootCertStore> {
        roots_of(&self.ca_cert_pem)
    }

    /// A TLS config for a kubelet's own port (10250): a serving certificate for the node's name and
    /// IPs from the cluster CA, and client certificates from that CA *required* (the apiserver
    /// calls the kubelet with its kubelet-client certificate; anonymous access is refused, as
    /// upstream's kubelet with `--anonymous-auth=false`).
    pub fn kubelet_tls_config(
        &self,
        node_name: &str,
        ips: &[std::net::IpAddr],
    ) -> anyhow::Result<rustls::ServerConfig> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).context("parsing CA key")?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_cert_pem, &ca_key).context("parsing CA cert")?;
        let mut sans =
            vec![SanType::DnsName(node_name.try_into().map_err(|e| {
                anyhow!("node name {node_name:?} as a DNS name: {e}")
            })?)];
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let (cert, key) = issue_leaf(
            node_name,
            &["system:nodes"],
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        )?;
        kubelet_serving_config(&cert, &key, &self.ca_cert_pem)
    }

    /// The TLS config the apiserver calls kubelets with: its `kube-apiserver-kubelet-client`
    /// certificate, and kubelets' serving certificates verified against the cluster CA.
    pub fn kubelet_client_tls_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        let (cert, key) = self.issue_client_cert(KUBELET_CLIENT_CN, &[])?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = self.ca_roots()?;
        let chain = vec![pem_to_cert_der(&cert).context("parsing kubelet client cert")?];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|e| anyhow!("parsing kubelet client key: {e}"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("selecting TLS protocol versions")?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .context("installing kubelet client certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A rustls `ServerConfig` presenting the serving cert, requesting (but NOT requiring) client
    /// certs verified against the CA, with ALPN `h2` and `http/1.1`.
    ///
    /// Client certs are optional so that an anonymous TLS connection (e.g. a token-bearing client,
    /// or a health probe) completes the handshake and the apiserver can answer 401/403 itself, as
    /// kube-apiserver does. A client that does present a cert must present one the CA signed.
    pub fn server_tls_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = self.ca_roots()?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .context("building client certificate verifier")?;
        // The CA goes out after the serving certificate: a joining node pins it by the hash
        // `rkube token create --print-join-command` prints (kubeadm's --discovery-token-ca-cert-hash)
        // before it sends its token.
        let chain = vec![
            pem_to_cert_der(&self.server_cert_pem).context("parsing serving cert")?,
            pem_to_cert_der(&self.ca_cert_pem).context("parsing CA cert")?,
        ];
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|e| anyhow!("parsing serving key: {e}"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("selecting TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .context("installing serving certificate")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A kubeconfig YAML for the admin user with `certificate-authority-data`,
    /// `client-certificate-data` and `client-key-data` embedded (base64), cluster/context/user all
    /// named "rkube" and `current-context` set, pointing at `server_url`
    /// (e.g. `https://127.0.0.1:6443`). Embedding keeps the file self-contained and copyable.
    pub fn admin_kubeconfig(&self, server_url: &str) -> String {
        self.kubeconfig(server_url, &self.admin_cert_pem, &self.admin_key_pem)
    }

    /// A kubeconfig like [`Pki::admin_kubeconfig`] for another client certificate (an in-cluster
    /// component's identity, from [`Pki::issue_client_cert`]).
    pub fn kubeconfig(&self, server_url: &str, cert_pem: &str, key_pem: &str) -> String {
        client_cert_kubeconfig(server_url, &self.ca_cert_pem, cert_pem, key_pem)
    }
}

/// A kubeconfig for `server_url` trusting `ca_pem`, authenticating with a client certificate (both
/// embedded, base64).
pub fn client_cert_kubeconfig(
    server_url: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    kubeconfig_yaml(
        server_url,
        ca_pem,
        serde_json::json!({
            "client-certificate-data": b64(cert_pem),
            "client-key-data": b64(key_pem),
        }),
    )
}

/// The CA certificate as trust root.
fn roots_of(ca_pem: &str) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pem_to_cert_der(ca_pem).context("parsing CA cert")?)
        .context("adding CA to trust roots")?;
    Ok(roots)
}

/// A TLS config for a kubelet's own port (10250) with serving certificate `cert_pem`: client
/// certificates from `client_ca_pem` are *required* (the apiserver calls the kubelet with its
/// kubelet-client certificate; anonymous access is refused, as upstream's kubelet with
/// `--anonymous-auth=false`).
pub fn kubelet_serving_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> anyhow::Result<rustls::ServerConfig> {
    let fixed = rustls::sign::SingleCertAndKey::from(
        certified_key(cert_pem, key_pem).context("the kubelet serving certificate")?,
    );
    kubelet_serving_config_with(Arc::new(fixed), client_ca_pem)
}

/// A certificate (its PEM chain) and its private key as rustls presents them in a handshake.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> anyhow::Result<rustls::sign::CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("invalid certificate PEM: {e}"))?;
    if chain.is_empty() {
        bail!("invalid certificate PEM: no certificate");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow!("invalid key PEM: {e}"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| anyhow!("unsupported key: {e}"))?;
    Ok(rustls::sign::CertifiedKey::new(chain, signing))
}

/// [`kubelet_serving_config`] with the certificate `certificate` resolves at each handshake (one
/// that rotates, see `kubelet::certificate_manager`).
pub fn kubelet_serving_config_with(
    certificate: Arc<dyn rustls::server::ResolvesServerCert>,
    client_ca_pem: &str,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots_of(client_ca_pem)?),
        provider.clone(),
    )
    .build()
    .context("building client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("selecting TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// kubeadm's CA pin: `sha256:` and the hex SHA-256 of a certificate's SubjectPublicKeyInfo (DER).
pub fn public_key_pin(cert_der: &[u8]) -> anyhow::Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| anyhow!("parsing certificate: {e}"))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// [`public_key_pin`] of a PEM certificate.
pub fn public_key_pin_pem(cert_pem: &str) -> anyhow::Result<String> {
    public_key_pin(pem_to_cert_der(cert_pem)?.as_ref())
}

/// Seconds until a PEM certificate expires (negative once it has); None when it does not parse.
pub fn pem_seconds_left(cert_pem: &str) -> Option<i64> {
    let der = pem_to_cert_der(cert_pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(seconds_left(&cert))
}

/// PEM of a DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    cert_der_to_pem(der)
}

/// A kubeconfig YAML for `server_url` trusting `ca_pem`, with `user` as its user entry (client
/// certificate data, or a `token`); cluster, context and user are all named "rkube".
pub fn kubeconfig_yaml(server_url: &str, ca_pem: &str, user: serde_json::Value) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": KUBECONFIG_NAME,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": b64(ca_pem),
            },
        }],
        "users": [{
            "name": KUBECONFIG_NAME,
            "user": user,
        }],
        "contexts": [{
            "name": KUBECONFIG_NAME,
            "context": { "cluster": KUBECONFIG_NAME, "user": KUBECONFIG_NAME },
        }],
        "current-context": KUBECONFIG_NAME,
        "preferences": {},
    });
    // Serializing a JSON value to YAML cannot really fail; JSON is valid YAML as a fallback.
    serde_yaml::to_string(&config).unwrap_or_else(|_| config.to_string())
}

/// The SANs the serving cert must carry: loopback, the names in-cluster clients use, the machine
/// hostname and whatever the operator asked for (deduplicated, order preserved).
fn serving_sans(extra_sans: &[String]) -> Vec<San> {
    let mut wanted: Vec<String> = [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match hostname::get() {
        Ok(h) => match h.into_string() {
            Ok(h) if !h.is_empty() && h.is_ascii() => wanted.push(h),
            _ => tracing::warn!("machine hostname is not ASCII; not adding it to the serving cert"),
        },
        Err(e) => tracing::warn!(error = %e, "cannot read machine hostname"),
    }
    wanted.extend(extra_sans.iter().cloned());
    let mut seen = HashSet::new();
    wanted
        .iter()
        .filter_map(|s| San::parse(s))
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// Loads `ca.crt`/`ca.key`, or creates them if both are absent.
fn load_or_create_ca(layout: &Layout) -> anyhow::Result<(String, String)> {
    match (layout.ca_cert.exists(), layout.ca_key.exists()) {
        (true, true) => {
            let cert = read_string(&layout.ca_cert)?;
            let key = read_string(&layout.ca_key)?;
            let der = pem_to_cert_der(&cert)
                .with_context(|| format!("parsing {}", layout.ca_cert.display()))?;
            let key_pair = KeyPair::from_pem(&key)
                .with_context(|| format!("parsing {}", layout.ca_key.display()))?;
            let (_, x509) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| anyhow!("parsing {}: {e}", layout.ca_cert.display()))?;
            if x509.public_key().subject_public_key.data.as_ref() != key_pair.public_key_raw() {
                bail!(
                    "{} does not belong to {}",
                    layout.ca_key.display(),
                    layout.ca_cert.display()
                );
            }
            if seconds_left(&x509) < RENEW_BEFORE.as_secs() as i64 {
                tracing::warn!(
                    path = %layout.ca_cert.display(),
                    "cluster CA expires within 30 days; it is not rotated automatically"
                );
            }
            Ok((cert, key))
        }
        (false, false) => {
            tracing::info!(path = %layout.ca_cert.display(), "creating cluster CA");
            let key = KeyPair::generate().context("generating CA key")?;
            let mut params = CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, CA_CN);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.serial_number = Some(random_serial());
            set_validity(&mut params, CA_VALIDITY);
            let cert = params.self_signed(&key).context("self-signing CA")?;
            let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
            write_file(&layout.ca_key, &key_pem, 0o600)?;
            write_file(&layout.ca_cert, &cert_pem, 0o644)?;
            Ok((cert_pem, key_pem))
        }
        (true, false) => bail!(
            "{} exists but {} is missing; restore it or remove the whole PKI directory",
            layout.ca_cert.display(),
            layout.ca_key.display()
        ),
        (false, true) => bail!(
            "{} exists but {} is missing; restore it or remove the whole PKI directory",
            layout.ca_key.display(),
            layout.ca_cert.display()
        ),
    }
}

/// Issues a leaf certificate (fresh P-256 key) signed by `issuer`, returning `(cert_pem, key_pem)`.
///
/// rcgen's `DistinguishedName` holds at most one value per attribute type, but Kubernetes groups
/// are repeated O attributes. So the certificate is built with a CN-only subject, and when there
/// are organizations the subject is replaced in the DER and the TBS re-signed with the CA key.
fn issue_leaf(
    common_name: &str,
    organizations: &[&str],
    sans: Vec<SanType>,
    eku: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, &KeyPair>,
) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate().context("generating key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    set_validity(&mut params, LEAF_VALIDITY);
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("signing certificate for {common_name:?}"))?;
    let der = if organizations.is_empty() {
        cert.der().to_vec()
    } else {
        let subject = encode_subject(common_name, organizations);
        replace_subject_and_resign(cert.der(), &subject, issuer.key())?
    };
    Ok((cert_der_to_pem(&der), key.serialize_pem()))
}

/// Sets `notBefore` (backdated by [`BACKDATE`]) and `notAfter` (`validity` from now).
fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = SystemTime::now();
    params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
    params.not_after = (now + validity).into();
}

/// How far upstream's CSR signer backdates `notBefore` (clock skew between nodes and the CA).
const SIGNER_BACKDATE: Duration = Duration::from_secs(300);
/// Below this validity upstream's signer does not take the backdate off `notAfter` (5 minutes are
/// about 1% of it).
const SIGNER_SHORT: Duration = Duration::from_secs(8 * 3600);

/// The validity upstream's CSR signer gives a certificate issued at `now` for `ttl`: `notBefore`
/// five minutes back; `notAfter` `ttl` ahead, less the backdate unless `ttl` is short. A kubelet
/// rotates at 70-90% of `notAfter - notBefore`, so a short `--cluster-signing-duration` still
/// leaves it minutes, not a rotation per second.
fn set_signed_validity(params: &mut CertificateParams, ttl: Duration, now: SystemTime) {
    params.not_before = now.checked_sub(SIGNER_BACKDATE).unwrap_or(now).into();
    let ahead = if ttl < SIGNER_SHORT {
        ttl
    } else {
        ttl - SIGNER_BACKDATE
    };
    params.not_after = (now + ahead).into();
}

/// A PEM certificate's `notBefore` and `notAfter`; None when it does not parse.
pub fn pem_validity(cert_pem: &str) -> Option<(SystemTime, SystemTime)> {
    let der = pem_to_cert_der(cert_pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    Some((
        at(cert.validity().not_before.timestamp()),
        at(cert.validity().not_after.timestamp()),
    ))
}

/// A random positive 128-bit serial number (RFC 5280 wants unique, unpredictable serials).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // keep it positive and of fixed length
    SerialNumber::from_slice(&bytes)
}

/// DER `Name` with one RDN per organization followed by the CN (the order Go's pkix uses).
fn encode_subject(common_name: &str, organizations: &[&str]) -> Vec<u8> {
    let rdn = |oid: &[u8], value: &str| {
        let mut atv = oid.to_vec();
        atv.extend(der_tlv(0x0c, value.as_bytes())); // UTF8String
        der_tlv(0x31, &der_tlv(0x30, &atv))
    };
    let mut rdns = Vec::new();
    for o in organizations {
        rdns.extend(rdn(OID_O_DER, o));
    }
    rdns.extend(rdn(OID_CN_DER, common_name));
    der_tlv(0x30, &rdns)
}

/// Replaces the subject of the DER certificate `cert` with `subject` and re-signs it with `key`.
///
/// Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING } and
/// TBSCertificate ::= SEQUENCE { [0] version, serial, signature, issuer, validity, subject, ... };
/// the signature algorithm stays the same because the same key signs again.
fn replace_subject_and_resign(
    cert: &[u8],
    subject: &[u8],
    key: &impl SigningKey,
) -> anyhow::Result<Vec<u8>> {
    let (cert_hdr, cert_len) = der_element(cert)?;
    let cert_body = &cert[cert_hdr..cert_len];
    let (tbs_hdr, tbs_len) = der_element(cert_body)?;
    let tbs_body = &cert_body[tbs_hdr..tbs_len];
    let rest = &cert_body[tbs_len..];
    let (_, alg_len) = der_element(rest)?;
    let sig_alg = &rest[..alg_len];

    // Skip version, serialNumber, signature, issuer, validity to reach the subject.
    let mut off = 0;
    for _ in 0..5 {
        off += der_element(&tbs_body[off..])?.1;
    }
    let (_, subject_len) = der_element(&tbs_body[off..])?;
    let mut new_tbs_body = Vec::with_capacity(tbs_body.len() + subject.len());
    new_tbs_body.extend_from_slice(&tbs_body[..off]);
    new_tbs_body.extend_from_slice(subject);
    new_tbs_body.extend_from_slice(&tbs_body[off + subject_len..]);
    let new_tbs = der_tlv(0x30, &new_tbs_body);

    let signature = key.sign(&new_tbs).context("re-signing certificate")?;
    let mut bits = vec![0u8]; // no unused bits
    bits.extend(signature);
    let mut body = new_tbs;
    body.extend_from_slice(sig_alg);
    body.extend(der_tlv(0x03, &bits));
    Ok(der_tlv(0x30, &body))
}

/// Returns `(header_len, total_len)` of the DER element at the start of `buf`.
fn der_element(buf: &[u8]) -> anyhow::Result<(usize, usize)> {
    let first_len = *buf.get(1).ok_or_else(|| anyhow!("truncated DER"))?;
    let (hdr, len) = if first_len < 0x80 {
        (2, first_len as usize)
    } else {
        let n = (first_len & 0x7f) as usize;
        if n == 0 || n > 4 {
            bail!("unsupported DER length encoding");
        }
        let bytes = buf.get(2..2 + n).ok_or_else(|| anyhow!("truncated DER"))?;
        (
            2 + n,
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize),
        )
    };
    if buf.len() < hdr + len {
        bail!("truncated DER");
    }
    Ok((hdr, hdr + len))
}

/// Encodes a DER tag-length-value with a single-byte tag.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Decides whether an on-disk leaf pair can be kept: it parses, the key matches, the CA signed it,
/// it is valid for more than [`RENEW_BEFORE`], and it carries every SAN in `required_sans` and
/// the identity in `identity` (when given).
fn leaf_is_usable(
    cert_pem: &str,
    key_pem: &str,
    ca_der: &[u8],
    required_sans: Option<&[San]>,
    identity: Option<&CertUser>,
) -> bool {
    let check = || -> anyhow::Result<bool> {
        let der = pem_to_cert_der(cert_pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("{e}"))?;
        let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| anyhow!("{e}"))?;
        let key = KeyPair::from_pem(key_pem)?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Ok(false);
        }
        // `verify_signature` needs x509-parser's `verify` feature, which rcgen's `ring` feature enables.
        if cert.issuer().as_raw() != ca.subject().as_raw()
            || cert.verify_signature(Some(ca.public_key())).is_err()
        {
            return Ok(false);
        }
        if seconds_left(&cert) < RENEW_BEFORE.as_secs() as i64 {
            return Ok(false);
        }
        if let Some(required) = required_sans {
            let present = cert_sans(&cert);
            if required.iter().any(|s| !present.contains(s)) {
                return Ok(false);
            }
        }
        if let Some(identity) = identity {
            if user_from_cert(&der).as_ref() != Some(identity) {
                return Ok(false);
            }
        }
        Ok(true)
    };
    check().unwrap_or(false)
}

/// The SANs (IPs and DNS names) a parsed certificate carries.
fn cert_sans(cert: &x509_parser::certificate::X509Certificate<'_>) -> HashSet<San> {
    use x509_parser::extensions::GeneralName;
    let mut out = HashSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    out.insert(San::Dns(d.to_ascii_lowercase()));
                }
                GeneralName::IPAddress(bytes) => {
                    if let Ok(b) = <[u8; 4]>::try_from(*bytes) {
                        out.insert(San::Ip(IpAddr::from(b)));
                    } else if let Ok(b) = <[u8; 16]>::try_from(*bytes) {
                        out.insert(San::Ip(IpAddr::from(b)));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Seconds until the certificate's `notAfter` (negative once expired).
fn seconds_left(cert: &x509_parser::certificate::X509Certificate<'_>) -> i64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    cert.validity().not_after.timestamp() - now
}

/// Encodes a DER certificate as PEM (64-column base64, like rcgen and openssl write it).
fn cert_der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Decodes the first CERTIFICATE block of a PEM string.
fn pem_to_cert_der(pem: &str) -> anyhow::Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow!("invalid certificate PEM: {e}"))
}

/// Reads a cert/key pair, or `None` if either is missing or unreadable (then it is re-issued).
fn read_pair(cert: &Path, key: &Path) -> Option<(String, String)> {
    Some((
        fs::read_to_string(cert).ok()?,
        fs::read_to_string(key).ok()?,
    ))
}

fn read_string(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes `contents` to `path` atomically (temp file + rename) with the given mode, so a crash
/// never leaves a truncated key and keys are never readable by others, even briefly.
fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    // The umask may have cleared bits of `mode`; set it exactly.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions of {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use x509_parser::extensions::GeneralName;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(pki: &Pki) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(pem_to_cert_der(&pki.ca_cert_pem).unwrap())
            .unwrap();
        Arc::new(roots)
    }

    #[test]
    fn reload_keeps_ca_and_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &[]).unwrap();
        let b = Pki::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.ca_key_pem, b.ca_key_pem);
        assert_eq!(a.server_cert_pem, b.server_cert_pem);
        assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
        let ca = pem_to_cert_der(&a.ca_cert_pem).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca).unwrap();
        assert!(ca.is_ca());
        assert_eq!(
            ca.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            CA_CN
        );
        for key in ["ca.key", "apiserver.key", "admin.key"] {
            let mode = fs::metadata(dir.path().join("pki").join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }

    #[test]
    fn missing_san_reissues_serving_cert_from_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &[]).unwrap();
        let extra = vec!["10.0.0.7".to_string(), "API.Example.com".to_string()];
        let b = Pki::load_or_create(dir.path(), &extra).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_ne!(a.server_cert_pem, b.server_cert_pem);
        assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
        let der = pem_to_cert_der(&b.server_cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans = cert_sans(&cert);
        assert!(sans.contains(&San::Ip("10.0.0.7".parse().unwrap())));
        assert!(sans.contains(&San::Dns("api.example.com".into())));
        // Same SANs again: no re-issue.
        let c = Pki::load_or_create(dir.path(), &extra).unwrap();
        assert_eq!(b.server_cert_pem, c.server_cert_pem);
    }

    #[test]
    fn ca_cert_without_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path(), &[]).unwrap();
        fs::remove_file(dir.path().join("pki/ca.key")).unwrap();
        assert!(Pki::load_or_create(dir.path(), &[]).is_err());
    }

    #[test]
    fn server_cert_verifies_with_expected_sans() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["192.168.1.10".to_string()]).unwrap();
        let der = pem_to_cert_der(&pki.server_cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ext = cert.subject_alternative_name().unwrap().unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                _ => {}
            }
        }
        for want in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(dns.iter().any(|d| d == want), "missing {want}: {dns:?}");
        }
        let host = hostname::get()
            .unwrap()
            .into_string()
            .unwrap()
            .to_ascii_lowercase();
        assert!(dns.contains(&host), "missing hostname {host}");
        assert!(ips.contains(&vec![127, 0, 0, 1]));
        assert!(ips.contains(&std::net::Ipv6Addr::LOCALHOST.octets().to_vec()));
        assert!(ips.contains(&vec![192, 168, 1, 10]));
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth);

        // Chain verification with webpki, for an IP and a DNS name.
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots(&pki), provider())
                .build()
                .unwrap();
        for name in ["127.0.0.1", "kubernetes.default.svc", "192.168.1.10"] {
            verifier
                .verify_server_cert(
                    &der,
                    &[],
                    &ServerName::try_from(name).unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verifier
            .verify_server_cert(
                &der,
                &[],
                &ServerName::try_from("not-us.example").unwrap(),
                &[],
                UnixTime::now()
            )
            .is_err());
    }

    #[test]
    fn admin_cert_names_system_masters() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        let der = pem_to_cert_der(&pki.admin_cert_pem).unwrap();
        let user = user_from_cert(&der).unwrap();
        assert_eq!(user.name, "kubernetes-admin");
        assert_eq!(user.groups, vec!["system:masters".to_string()]);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ca_der = pem_to_cert_der(&pki.ca_cert_pem).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
    }

    #[test]
    fn issued_client_cert_with_several_groups_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        let (cert_pem, key_pem) = pki
            .issue_client_cert("system:node:n1", &["system:nodes", "team-a", "team-b"])
            .unwrap();
        let der = pem_to_cert_der(&cert_pem).unwrap();
        let user = user_from_cert(&der).unwrap();
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.groups, vec!["system:nodes", "team-a", "team-b"]);
        // The re-signed certificate passes webpki client verification against the CA.
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&pki), provider())
                .build()
                .unwrap();
        verifier
            .verify_client_cert(&der, &[], UnixTime::now())
            .unwrap();
        assert!(KeyPair::from_pem(&key_pem).is_ok());
        // And no-group certs take the plain rcgen path.
        let (cert_pem, _) = pki.issue_client_cert("alice", &[]).unwrap();
        let der = pem_to_cert_der(&cert_pem).unwrap();
        verifier
            .verify_client_cert(&der, &[], UnixTime::now())
            .unwrap();
        assert_eq!(
            user_from_cert(&der).unwrap(),
            CertUser {
                name: "alice".into(),
                groups: vec![]
            }
        );
    }

    #[test]
    fn kubeconfig_embeds_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        let yaml = pki.admin_kubeconfig("https://127.0.0.1:6443");
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(v["current-context"].as_str(), Some("rkube"));
        let cluster = &v["clusters"][0];
        assert_eq!(cluster["name"].as_str(), Some("rkube"));
        assert_eq!(
            cluster["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:6443")
        );
        let b64 = |v: &serde_yaml::Value| {
            let s = v.as_str().unwrap();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
        };
        assert_eq!(
            b64(&cluster["cluster"]["certificate-authority-data"]),
            pki.ca_cert_pem
        );
        let user = &v["users"][0];
        assert_eq!(user["name"].as_str(), Some("rkube"));
        assert_eq!(
            b64(&user["user"]["client-certificate-data"]),
            pki.admin_cert_pem
        );
        assert_eq!(b64(&user["user"]["client-key-data"]), pki.admin_key_pem);
        let ctx = &v["contexts"][0];
        assert_eq!(ctx["name"].as_str(), Some("rkube"));
        assert_eq!(ctx["context"]["cluster"].as_str(), Some("rkube"));
        assert_eq!(ctx["context"]["user"].as_str(), Some("rkube"));
    }

    /// Runs one TLS handshake against `server_tls_config`; returns the peer certs the server saw and
    /// the negotiated ALPN.
    async fn handshake(
        pki: &Pki,
        client_auth: Option<(&str, &str)>,
    ) -> (Option<Vec<CertificateDer<'static>>>, Option<Vec<u8>>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_tls_config().unwrap()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let peer = tls.get_ref().1.peer_certificates().map(|c| c.to_vec());
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(&buf).await.unwrap();
            tls.flush().await.unwrap();
            peer
        });

        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(pki));
        let mut config = match client_auth {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![pem_to_cert_der(cert).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        (server.await.unwrap(), alpn)
    }

    #[tokio::test]
    async fn tls_handshake_with_admin_cert() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        let (peer, alpn) = handshake(&pki, Some((&pki.admin_cert_pem, &pki.admin_key_pem))).await;
        let peer = peer.expect("server sees the client certificate");
        assert_eq!(
            peer[0].as_ref(),
            pem_to_cert_der(&pki.admin_cert_pem).unwrap().as_ref()
        );
        let user = user_from_cert(&peer[0]).unwrap();
        assert_eq!(user.name, "kubernetes-admin");
        assert_eq!(user.groups, vec!["system:masters".to_string()]);
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    }

    #[tokio::test]
    async fn tls_handshake_without_client_cert() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        let (peer, _) = handshake(&pki, None).await;
        assert!(peer.is_none());
    }

    #[tokio::test]
    async fn tls_rejects_cert_from_foreign_ca() {
        let dir_a = tempfile::tempdir().unwrap();
        let dir_b = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir_a.path(), &[]).unwrap();
        let b = Pki::load_or_create(dir_b.path(), &[]).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(a.server_tls_config().unwrap()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.is_err()
        });
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&a))
            .with_client_auth_cert(
                vec![pem_to_cert_der(&b.admin_cert_pem).unwrap()],
                PrivateKeyDer::from_pem_slice(b.admin_key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        // TLS 1.3: the client may consider the handshake done before the server rejects the cert.
        if let Ok(mut tls) = connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
        {
            let _ = tls.write_all(b"ping").await;
            let mut buf = [0u8; 1];
            let _ = tls.read(&mut buf).await;
        }
        assert!(
            server.await.unwrap(),
            "server must reject a cert from another CA"
        );
    }
}
