//! Upstream's CSR signing controller (`pkg/controller/certificates/signer`): an approved
//! CertificateSigningRequest for one of the built-in signers gets its certificate from the cluster
//! CA, or a `Failed` condition when the request does not meet the signer's rules (key usages, and for
//! the kubelet signers the `system:node:<name>` subject in `system:nodes`). Runs as
//! `system:controller:certificate-controller`, which holds `sign` on exactly these signers.
//!
//! Start at [`reconcile`]; the per-signer rules are [`check`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::ResourceExt;
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};

use super::Clients;
use crate::pki::Pki;

/// Upstream's `--cluster-signing-duration` default, the longest a certificate is issued for.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest `expirationSeconds` honoured (upstream's validation minimum).
const MIN_DURATION: Duration = Duration::from_secs(600);

struct Ctx {
    clients: Clients,
    pki: Pki,
}

pub async fn run(clients: Clients, pki: Pki) {
    let api = Api::<CertificateSigningRequest>::all(clients.reader.clone());
    let ctx = Arc::new(Ctx { clients, pki });
    Controller::new(api, Default::default())
        .run(reconcile, retry_later, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("certificate signer: {e}");
            }
        })
        .await;
}

fn condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// A certificate's key usages and extended key usages.
type Usages = (Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>);

/// What a signer issues: key usages and extended key usages, from the request's `usages`; or
/// upstream's reason to refuse.
fn check(csr: &CertificateSigningRequest) -> Option<Result<Usages, String>> {
    let spec = &csr.spec;
    let (kind, allowed, required): (&str, &[&str], &str) = match spec.signer_name.as_str() {
        "kubernetes.io/kube-apiserver-client" | "kubernetes.io/kube-apiserver-client-kubelet" => (
            "client",
            &["digital signature", "key encipherment", "client auth"],
            "client auth",
        ),
        "kubernetes.io/kubelet-serving" => (
            "serving",
            &["digital signature", "key encipherment", "server auth"],
            "server auth",
        ),
        _ => return None,
    };
    let usages = spec.usages.clone().unwrap_or_default();
    let invalid: Vec<&str> = usages
        .iter()
        .map(String::as_str)
        .filter(|u| !allowed.contains(u))
        .collect();
    if !invalid.is_empty() {
        return Some(Err(format!(
            "invalid usage for {kind} certificate: {}",
            invalid.join(",")
        )));
    }
    if !usages.iter().any(|u| u == required) {
        return Some(Err(format!(
            "missing required usage for {kind} certificate: {required}"
        )));
    }
    let mut key = Vec::new();
    let mut extended = Vec::new();
    for u in &usages {
        match u.as_str() {
            "digital signature" => key.push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => key.push(KeyUsagePurpose::KeyEncipherment),
            "client auth" => extended.push(ExtendedKeyUsagePurpose::ClientAuth),
            "server auth" => extended.push(ExtendedKeyUsagePurpose::ServerAuth),
            _ => {}
        }
    }
    Some(Ok((key, extended)))
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Ctx>,
) -> Result<Action, kube::Error> {
    let issued = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if issued || !condition(&csr, "Approved") || condition(&csr, "Failed") {
        return Ok(Action::await_change());
    }
    let Some(verdict) = check(&csr) else {
        return Ok(Action::await_change());
    };
    let pem = String::from_utf8_lossy(&csr.spec.request.0).to_string();
    let requested = csr
        .spec
        .expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(MAX_DURATION, Duration::from_secs);
    let validity = requested.clamp(MIN_DURATION, MAX_DURATION);
    let signed = verdict.and_then(|(key, extended)| {
        ctx.pki
            .sign_csr(&pem, key, extended, validity)
            .map_err(|e| format!("{e:#}"))
    });
    let mut updated = (*csr).clone();
    let status = updated.status.get_or_insert_with(Default::default);
    match signed {
        Ok(cert) => {
            status.certificate = Some(ByteString(cert.into_bytes()));
            tracing::info!("issued a certificate for CSR {}", csr.name_any());
        }
        Err(message) => {
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            status.conditions.get_or_insert_with(Vec::new).push(
                CertificateSigningRequestCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some("SignerValidationFailure".into()),
                    message: Some(message),
                    last_update_time: Some(now.clone()),
                    last_transition_time: Some(now),
                },
            );
        }
    }
    let api = Api::<CertificateSigningRequest>::all(ctx.clients.writer.clone());
    api.replace_status(&csr.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(Action::await_change())
}

fn retry_later(
    _csr: Arc<CertificateSigningRequest>,
    error: &kube::Error,
    _ctx: Arc<Ctx>,
) -> Action {
    tracing::warn!("certificate signer: {error}");
    Action::requeue(Duration::from_secs(5))
}
