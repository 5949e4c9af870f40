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
pub const DEFAULT_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest `expirationSeconds` honoured (upstream's sanity bound: twice its 5-minute backdate).
const MIN_DURATION: Duration = Duration::from_secs(600);

struct Ctx {
    clients: Clients,
    pki: Pki,
    /// `--cluster-signing-duration`.
    max: Duration,
}

/// Signs approved requests with `pki`'s CA, for at most `max` (`--cluster-signing-duration`).
pub async fn run(clients: Clients, pki: Pki, max: Duration) {
    let api = Api::<CertificateSigningRequest>::all(clients.reader.clone());
    let ctx = Arc::new(Ctx { clients, pki, max });
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

/// What an x509 certificate request asks for: its subject and subject alternative names.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Request {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: usize,
    pub ip_addresses: usize,
    pub emails: usize,
    pub uris: usize,
}

/// Parses a CSR's PEM `spec.request` (upstream's `ParseCSR`).
pub(crate) fn parse_request(csr: &CertificateSigningRequest) -> Result<Request, String> {
    use rustls::pki_types::pem::PemObject;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    let der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(&csr.spec.request.0)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_string())?;
    let (_, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| format!("{e}"))?;
    let subject = &parsed.certification_request_info.subject;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue| a.as_str().unwrap_or("").to_string();
    let mut req = Request {
        common_name: subject
            .iter_common_name()
            .next()
            .map(text)
            .unwrap_or_default(),
        organizations: subject.iter_organization().map(text).collect(),
        ..Default::default()
    };
    for ext in parsed.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(_) => req.dns_names += 1,
                    GeneralName::IPAddress(_) => req.ip_addresses += 1,
                    GeneralName::RFC822Name(_) => req.emails += 1,
                    GeneralName::URI(_) => req.uris += 1,
                    _ => {}
                }
            }
        }
    }
    Ok(req)
}

/// Whether `usages` is exactly one of the two sets upstream allows a kubelet certificate (with or
/// without `key encipherment`, which only RSA keys need).
fn kubelet_usages(usages: &[String], purpose: &str) -> Result<(), String> {
    let got: std::collections::BTreeSet<&str> = usages.iter().map(String::as_str).collect();
    let full = std::collections::BTreeSet::from(["digital signature", "key encipherment", purpose]);
    let no_rsa = std::collections::BTreeSet::from(["digital signature", purpose]);
    if got == full || got == no_rsa {
        return Ok(());
    }
    let listed: Vec<&str> = full.into_iter().collect();
    Err(format!("usages did not match [{}]", listed.join(" ")))
}

/// A kubelet signer's rules for a request's subject and usages.
type SubjectRules = fn(&Request, &[String]) -> Result<(), String>;

const NOT_SYSTEM_NODES: &str = "subject organization is not system:nodes";
const NOT_SYSTEM_NODE: &str = "subject common name does not begin with system:node:";

/// Upstream's `ValidateKubeletClientCSR`: `system:node:<name>` in exactly `system:nodes`, no
/// subject alternative names, a client certificate's usages.
pub(crate) fn validate_kubelet_client(req: &Request, usages: &[String]) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err(NOT_SYSTEM_NODES.into());
    }
    for (n, kind) in [
        (req.dns_names, "DNS"),
        (req.emails, "Email"),
        (req.ip_addresses, "IP"),
        (req.uris, "URI"),
    ] {
        if n > 0 {
            return Err(format!("{kind} subjectAltNames are not allowed"));
        }
    }
    if !req.common_name.starts_with("system:node:") {
        return Err(NOT_SYSTEM_NODE.into());
    }
    kubelet_usages(usages, "client auth")
}

/// Upstream's `ValidateKubeletServingCSR`: `system:node:<name>` in exactly `system:nodes`, at least
/// one DNS or IP name and no others, a serving certificate's usages.
fn validate_kubelet_serving(req: &Request, usages: &[String]) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err(NOT_SYSTEM_NODES.into());
    }
    if req.dns_names == 0 && req.ip_addresses == 0 {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if req.emails > 0 {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if req.uris > 0 {
        return Err("URI subjectAltNames are not allowed".into());
    }
    kubelet_usages(usages, "server auth")?;
    if !req.common_name.starts_with("system:node:") {
        return Err(NOT_SYSTEM_NODE.into());
    }
    Ok(())
}

/// What a signer issues: key usages and extended key usages, from the request's `usages`; or
/// upstream's reason to refuse (the kubelet signers also check the subject, as upstream's
/// `isKubeletClient`/`isKubeletServing`).
fn check(csr: &CertificateSigningRequest) -> Option<Result<Usages, String>> {
    let spec = &csr.spec;
    let kubelet_rules: Option<SubjectRules> = match spec.signer_name.as_str() {
        "kubernetes.io/kube-apiserver-client-kubelet" => Some(validate_kubelet_client),
        "kubernetes.io/kubelet-serving" => Some(validate_kubelet_serving),
        _ => None,
    };
    if let Some(rules) = kubelet_rules {
        let usages = spec.usages.clone().unwrap_or_default();
        if let Err(e) = parse_request(csr).and_then(|req| rules(&req, &usages)) {
            return Some(Err(e));
        }
    }
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
    let validity = duration(csr.spec.expiration_seconds, ctx.max);
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

/// How long a certificate is issued for, as upstream's signer decides: the signing duration unless
/// the request asks for less, and never less than ten minutes when it does.
fn duration(expiration_seconds: Option<i32>, max: Duration) -> Duration {
    let Some(requested) = expiration_seconds else {
        return max;
    };
    let requested = Duration::from_secs(u64::try_from(requested).unwrap_or(0));
    if requested > max {
        max
    } else {
        requested.max(MIN_DURATION)
    }
}

fn retry_later(
    _csr: Arc<CertificateSigningRequest>,
    error: &kube::Error,
    _ctx: Arc<Ctx>,
) -> Action {
    tracing::warn!("certificate signer: {error}");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_upstream_decides_them() {
        let year = DEFAULT_DURATION;
        assert_eq!(duration(None, year), year);
        assert_eq!(duration(Some(3600), year), Duration::from_secs(3600));
        // Less than ten minutes asked: ten minutes.
        assert_eq!(duration(Some(60), year), MIN_DURATION);
        // More than the signing duration asked, or a short signing duration: the signing duration.
        let short = Duration::from_secs(120);
        assert_eq!(duration(Some(3600), short), short);
        assert_eq!(duration(None, short), short);
    }
}
