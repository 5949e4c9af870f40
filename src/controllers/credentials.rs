//! Where the controller manager's identities come from.
//!
//! Upstream's kube-controller-manager watches with its own identity (`system:kube-controller-manager`)
//! and, with `--use-service-account-credentials`, writes as one service account per controller
//! (`kube-system/<controller>`), so the default `system:controller:*` roles bound to those accounts
//! decide what each may do. Two ways to get there:
//! - inside `rkube server` ([`Credentials::Pki`]): client certificates from the cluster CA, issued on the
//!   spot (the server holds the CA key);
//! - standalone, `rkube controller-manager --kubeconfig F` ([`Credentials::Kubeconfig`]): the
//!   kubeconfig's identity for watching, and for each controller a service account token obtained
//!   through the TokenRequest API (creating the account if missing), as upstream's
//!   `DynamicControllerClientBuilder`: tokens are short-lived and renewed before they expire.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec, TokenRequestStatus};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};

use crate::pki::Pki;
use crate::user_agent;

/// The manager's own identity, which upstream's shared informers list and watch with.
pub const MANAGER_USER: &str = "system:kube-controller-manager";

/// How long a controller's token is asked to live (upstream's default for these: one hour); it is
/// renewed at 80% of that.
const TOKEN_SECONDS: i64 = 3600;

/// The two identities a controller works with: the manager's for watching, its service account's
/// (`system:serviceaccount:kube-system:<account>`) for writing.
pub struct Clients {
    pub reader: kube::Client,
    pub writer: kube::Client,
    /// The manager's shared caches (watched with `reader`'s identity).
    pub informers: super::informers::Informers,
}

/// How the manager authenticates (see the module doc).
#[derive(Clone)]
pub enum Credentials {
    Pki {
        pki: Pki,
        server_url: String,
    },
    Kubeconfig {
        /// The kubeconfig's connection and identity.
        config: Box<kube::Config>,
        /// The cluster CA certificate (PEM) the root-ca publisher hands to every namespace.
        ca_pem: String,
        /// A private directory holding one token file per controller (kube's client re-reads it).
        tokens: PathBuf,
        /// Accounts whose token is already being renewed.
        renewing: Arc<Mutex<HashSet<String>>>,
    },
}

impl Credentials {
    /// Standalone credentials from the kubeconfig at `path`; `root_ca` overrides the CA certificate
    /// published to namespaces (upstream's `--root-ca-file`), which defaults to the kubeconfig's.
    pub async fn from_kubeconfig(
        path: &std::path::Path,
        root_ca: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let kc =
            Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc.clone(), &KubeConfigOptions::default()).await?;
        let ca_pem = match root_ca {
            Some(f) => {
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
            }
            None => kubeconfig_ca(&kc).context(
                "the kubeconfig names no certificate-authority-data; give --root-ca-file",
            )?,
        };
        let tokens =
            std::env::temp_dir().join(format!("rkube-controller-manager-{}", std::process::id()));
        crate::private_files::private_dir(&tokens)?;
        Ok(Credentials::Kubeconfig {
            config: Box::new(config),
            ca_pem,
            tokens,
            renewing: Arc::default(),
        })
    }

    /// The CA certificate (PEM) published as `kube-root-ca.crt`.
    pub fn ca_pem(&self) -> String {
        match self {
            Credentials::Pki { pki, .. } => pki.ca_cert_pem.clone(),
            Credentials::Kubeconfig { ca_pem, .. } => ca_pem.clone(),
        }
    }

    /// The CA that signs approved CertificateSigningRequests: the server's own, inside `rkube server`;
    /// none standalone (upstream's `--cluster-signing-*-file` flags are not offered).
    pub fn signing_pki(&self) -> Option<Pki> {
        match self {
            Credentials::Pki { pki, .. } => Some(pki.clone()),
            Credentials::Kubeconfig { .. } => None,
        }
    }

    /// A client as the manager itself (watches, leader election).
    pub async fn manager(&self) -> anyhow::Result<kube::Client> {
        match self {
            Credentials::Pki { pki, server_url } => {
                client_as(pki, server_url, MANAGER_USER, &[], None).await
            }
            Credentials::Kubeconfig { config, .. } => {
                let mut config = config.as_ref().clone();
                user_agent::set(&mut config, &user_agent::agent(COMPONENT, None));
                Ok(kube::Client::try_from(config)?)
            }
        }
    }

    /// The clients of the controller running as service account `kube-system/<account>`, sharing
    /// `informers`.
    pub async fn clients(
        &self,
        account: &str,
        informers: &super::informers::Informers,
    ) -> anyhow::Result<Clients> {
        let writer = match self {
            Credentials::Pki { pki, server_url } => {
                client_as(
                    pki,
                    server_url,
                    &format!("system:serviceaccount:kube-system:{account}"),
                    &[
                        "system:serviceaccounts",
                        "system:serviceaccounts:kube-system",
                    ],
                    Some(account),
                )
                .await?
            }
            Credentials::Kubeconfig {
                config,
                tokens,
                renewing,
                ..
            } => {
                let manager = self.manager().await?;
                let file = tokens.join(account);
                let ttl = write_token(&manager, account, &file).await?;
                let first = renewing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(account.to_string());
                if first {
                    tokio::spawn(renew(manager, account.to_string(), file.clone(), ttl));
                }
                let mut config = config.as_ref().clone();
                config.auth_info = AuthInfo {
                    token_file: Some(file.to_string_lossy().into_owned()),
                    ..Default::default()
                };
                user_agent::set(&mut config, &user_agent::agent(COMPONENT, Some(account)));
                kube::Client::try_from(config)?
            }
        };
        Ok(Clients {
            reader: self.manager().await?,
            writer,
            informers: informers.clone(),
        })
    }
}

/// The component name the manager's clients carry in their User-Agent (see `user_agent`).
const COMPONENT: &str = "kube-controller-manager";

/// A client authenticated by a fresh certificate for `user` in `groups`, its agent naming the
/// controller (`account`) as upstream's controller clients do.
async fn client_as(
    pki: &Pki,
    server_url: &str,
    user: &str,
    groups: &[&str],
    account: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let (cert, key) = pki.issue_client_cert(user, groups)?;
    let kubeconfig = Kubeconfig::from_yaml(&pki.kubeconfig(server_url, &cert, &key))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    user_agent::set(&mut config, &user_agent::agent(COMPONENT, account));
    Ok(kube::Client::try_from(config)?)
}

/// The current context's cluster CA, PEM (its `certificate-authority-data`, else the file it names).
pub fn kubeconfig_ca(kc: &Kubeconfig) -> Option<String> {
    use base64::Engine;
    let context = kc.current_context.as_deref()?;
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .cluster
        .clone();
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)?
        .cluster
        .as_ref()?;
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .ok()?;
        return String::from_utf8(pem).ok();
    }
    std::fs::read_to_string(cluster.certificate_authority.as_ref()?).ok()
}

/// Gets a token for `kube-system/<account>` (creating the account if it does not exist yet, as
/// upstream's client builder does) and writes it to `file`; returns how long it lives.
async fn write_token(
    manager: &kube::Client,
    account: &str,
    file: &std::path::Path,
) -> anyhow::Result<Duration> {
    let accounts = Api::<ServiceAccount>::namespaced(manager.clone(), "kube-system");
    if accounts.get_opt(account).await?.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(account.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match accounts.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).context(format!("creating service account {account}")),
        }
    }
    let status = request_token(&accounts, account, TOKEN_SECONDS).await?;
    crate::private_files::write_private(file, status.token.as_bytes())?;
    let left = status
        .expiration_timestamp
        .0
        .duration_since(k8s_openapi::jiff::Timestamp::now());
    let ttl = Duration::try_from(left)
        .unwrap_or_default()
        .min(Duration::from_secs(TOKEN_SECONDS as u64));
    Ok(ttl)
}

/// A token of service account `account` (of `accounts`' namespace) for the apiserver's audiences,
/// asked to live `seconds`, through the TokenRequest API.
pub(crate) async fn request_token(
    accounts: &Api<ServiceAccount>,
    account: &str,
    seconds: i64,
) -> anyhow::Result<TokenRequestStatus> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(seconds),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let answer = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for service account {account}"))?;
    answer
        .status
        .context("the TokenRequest came back without a token")
}

/// Renews the token in `file` at 80% of its life, forever (a failed renewal is retried every 10 s
/// while the old token still works).
async fn renew(manager: kube::Client, account: String, file: PathBuf, mut ttl: Duration) {
    loop {
        tokio::time::sleep(ttl.mul_f64(0.8).max(Duration::from_secs(10))).await;
        loop {
            match write_token(&manager, &account, &file).await {
                Ok(t) => {
                    ttl = t;
                    break;
                }
                Err(e) => {
                    tracing::warn!("renewing the token of {account}: {e:#}");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
    }
}
