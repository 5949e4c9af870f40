//! Upstream's CSR approving controller (`pkg/controller/certificates/approver`, "csrapproving"):
//! a kubelet's client certificate request is approved when its requester may ask for one, decided
//! by a SubjectAccessReview for the requester (the CSR's `spec.username/groups/uid/extra`, which the
//! apiserver wrote, never the body):
//! - renewing its own identity (`spec.username` is the certificate's common name): `create` on
//!   `certificatesigningrequests/selfnodeclient` (bound to `system:nodes` for rotation, as kubeadm
//!   does, [`crate::kubelet::join`]);
//! - a new node with a bootstrap token: `create` on `certificatesigningrequests/nodeclient` (bound
//!   to the node-join token group, [`crate::kubelet::join`]).
//!
//! Anything else (serving certificates, other signers, a review that says no) is left for a human:
//! `kubectl certificate approve|deny`. Runs as `system:controller:certificate-controller`, which holds
//! `approve` on the kubelet client signer and `create` on subjectaccessreviews.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::ResourceExt;

use super::certificate_signer::{parse_request, validate_kubelet_client};
use super::Clients;

const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// Upstream's recognizers, most specific first: the subresource a requester needs, and the
/// approval's message.
const RECOGNIZERS: [(&str, &str); 2] = [
    (
        "selfnodeclient",
        "Auto approving self kubelet client certificate after SubjectAccessReview.",
    ),
    (
        "nodeclient",
        "Auto approving kubelet client certificate after SubjectAccessReview.",
    ),
];

pub async fn run(clients: Clients) {
    let api = Api::<CertificateSigningRequest>::all(clients.reader.clone());
    Controller::new(api, Default::default())
        .run(reconcile, retry_later, Arc::new(clients))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("csr approver: {e}");
            }
        })
        .await;
}

/// The subresources a requester of `csr` could be approved for, most specific first; empty when
/// it is not a kubelet client certificate request (then this controller has no say).
pub(crate) fn recognized(csr: &CertificateSigningRequest) -> Vec<(&'static str, &'static str)> {
    if csr.spec.signer_name != KUBELET_CLIENT_SIGNER {
        return Vec::new();
    }
    let Ok(req) = parse_request(csr) else {
        return Vec::new();
    };
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if validate_kubelet_client(&req, &usages).is_err() {
        return Vec::new();
    }
    let own = csr.spec.username.as_deref() == Some(req.common_name.as_str());
    RECOGNIZERS
        .into_iter()
        .filter(|(sub, _)| own || *sub != "selfnodeclient")
        .collect()
}

fn decided(csr: &CertificateSigningRequest) -> bool {
    let certificate = csr.status.as_ref().and_then(|s| s.certificate.as_ref());
    let conditions = csr.status.as_ref().and_then(|s| s.conditions.as_ref());
    certificate.is_some_and(|c| !c.0.is_empty())
        || conditions.is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Approved" || c.type_ == "Denied")
        })
}

async fn allowed(
    clients: &Clients,
    csr: &CertificateSigningRequest,
    subresource: &str,
) -> Result<bool, kube::Error> {
    let spec = &csr.spec;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                verb: Some("create".into()),
                subresource: Some(subresource.into()),
                version: Some("*".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api = Api::<SubjectAccessReview>::all(clients.writer.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    clients: Arc<Clients>,
) -> Result<Action, kube::Error> {
    if decided(&csr) {
        return Ok(Action::await_change());
    }
    let tried = recognized(&csr);
    for (subresource, message) in &tried {
        if !allowed(&clients, &csr, subresource).await? {
            continue;
        }
        let mut approved = (*csr).clone();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        approved
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some((*message).into()),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
        let api = Api::<CertificateSigningRequest>::all(clients.writer.clone());
        let name = csr.name_any();
        api.replace_subresource("approval", &name, &PostParams::default(), &approved)
            .await?;
        tracing::info!("approved CSR {name}: {message}");
        return Ok(Action::await_change());
    }
    if !tried.is_empty() {
        let names: Vec<&str> = tried.iter().map(|(s, _)| *s).collect();
        tracing::debug!(
            "recognized csr {:?} as [{}] but subject access review was not approved",
            csr.name_any(),
            names.join(" ")
        );
    }
    Ok(Action::await_change())
}

fn retry_later(
    _csr: Arc<CertificateSigningRequest>,
    error: &kube::Error,
    _clients: Arc<Clients>,
) -> Action {
    tracing::warn!("csr approver: {error}");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::ByteString;

    fn csr(cn: &str, orgs: &[&str], username: &str, usages: &[&str]) -> CertificateSigningRequest {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: KUBELET_CLIENT_SIGNER.into(),
                username: Some(username.into()),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const ECDSA: &[&str] = &["digital signature", "client auth"];

    #[test]
    fn bootstrap_and_renewal_requests() {
        let joining = csr(
            "system:node:n1",
            &["system:nodes"],
            "system:bootstrap:abcdef",
            ECDSA,
        );
        let subs: Vec<&str> = recognized(&joining).into_iter().map(|r| r.0).collect();
        assert_eq!(subs, ["nodeclient"]);
        let renewing = csr("system:node:n1", &["system:nodes"], "system:node:n1", ECDSA);
        let subs: Vec<&str> = recognized(&renewing).into_iter().map(|r| r.0).collect();
        assert_eq!(subs, ["selfnodeclient", "nodeclient"]);
        let rsa = csr(
            "system:node:n1",
            &["system:nodes"],
            "u",
            &["digital signature", "key encipherment", "client auth"],
        );
        assert_eq!(recognized(&rsa).len(), 1);
    }

    #[test]
    fn other_requests_are_not_recognized() {
        for bad in [
            csr("system:node:n1", &["system:masters"], "u", ECDSA),
            csr(
                "system:node:n1",
                &["system:nodes", "system:masters"],
                "u",
                ECDSA,
            ),
            csr("admin", &["system:nodes"], "u", ECDSA),
            csr("system:node:n1", &["system:nodes"], "u", &["client auth"]),
            csr(
                "system:node:n1",
                &["system:nodes"],
                "u",
                &["digital signature", "client auth", "server auth"],
            ),
        ] {
            assert!(recognized(&bad).is_empty(), "{:?}", parse_request(&bad));
        }
        let mut other = csr("system:node:n1", &["system:nodes"], "u", ECDSA);
        other.spec.signer_name = "kubernetes.io/kube-apiserver-client".into();
        assert!(recognized(&other).is_empty());
    }

    #[test]
    fn validation_messages() {
        let req = parse_request(&csr("system:node:n1", &["x"], "u", ECDSA)).unwrap();
        assert_eq!(
            validate_kubelet_client(&req, &[]).unwrap_err(),
            "subject organization is not system:nodes"
        );
        let req = parse_request(&csr("system:node:n1", &["system:nodes"], "u", ECDSA)).unwrap();
        assert_eq!(req.common_name, "system:node:n1");
        assert_eq!(
            validate_kubelet_client(&req, &["client auth".into()]).unwrap_err(),
            "usages did not match [client auth digital signature key encipherment]"
        );
    }
}
