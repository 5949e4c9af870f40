//! CertificateSigningRequests' admission (upstream's `plugin/pkg/admission/certificates/*` and the
//! requester half of the CSR strategy): a new request records who asked (`spec.username`, `uid`,
//! `groups`, `extra`), whatever the body says; approving or denying needs `approve` on the request's
//! signer, issuing a certificate needs `sign` on it (both on `signers` in certificates.k8s.io, named
//! by the signer or `<domain>/*`); and no one may ask `kube-apiserver-client` for a certificate in
//! `system:masters`.

use serde_json::{json, Value};

use super::{Attributes, Operation, Plugin};
use crate::apiserver::authz;
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::ApiResult;

pub struct Certificates;

const GROUP: &str = "certificates.k8s.io";

fn is_csr(a: &Attributes<'_>) -> bool {
    a.info.group == GROUP && a.info.plural == "certificatesigningrequests"
}

fn signer(obj: &Value) -> &str {
    obj.pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether the user may `verb` the signer, by its name or its domain's wildcard.
fn may(a: &Attributes<'_>, verb: &str, signer: &str) -> bool {
    let (Some(user), Some(authorizer)) = (a.user, a.authorizer) else {
        return true;
    };
    let mut names = vec![signer.to_string()];
    if let Some((domain, _)) = signer.split_once('/') {
        names.push(format!("{domain}/*"));
    }
    names.iter().any(|name| {
        let attrs = authz::Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: GROUP.into(),
            api_version: "*".into(),
            resource: "signers".into(),
            name: name.clone(),
            ..Default::default()
        };
        authorizer.authorize(user, &attrs).allowed
    })
}

fn certificate(obj: &Value) -> &str {
    obj.pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn approval_conditions(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            matches!(
                c.get("type").and_then(Value::as_str),
                Some("Approved" | "Denied")
            )
        })
        .map(|c| json!([c.get("type"), c.get("status")]))
        .collect()
}

/// The subject's organizations of a PEM CSR, or `None` when it does not parse (validation says so).
fn requested_groups(obj: &Value) -> Option<Vec<String>> {
    use base64::Engine;
    use x509_parser::prelude::FromDer;
    let b64 = obj.pointer("/spec/request").and_then(Value::as_str)?;
    let pem = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .ok()?;
    Some(
        csr.certification_request_info
            .subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect(),
    )
}

#[async_trait::async_trait]
impl Plugin for Certificates {
    async fn admit(
        &self,
        _reg: &Registry,
        a: &Attributes<'_>,
        csr: &mut Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if !is_csr(a) || a.op != Operation::Create || a.sub.is_some() {
            return Ok(());
        }
        let Some(spec) = csr.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        for f in ["username", "uid", "groups", "extra"] {
            spec.remove(f);
        }
        if let Some(user) = a.user {
            spec.insert("username".into(), json!(user.name));
            if let Some(uid) = user.uid.as_deref().filter(|u| !u.is_empty()) {
                spec.insert("uid".into(), json!(uid));
            }
            if !user.groups.is_empty() {
                spec.insert("groups".into(), json!(user.groups));
            }
            if !user.extra.is_empty() {
                spec.insert("extra".into(), json!(user.extra));
            }
        }
        Ok(())
    }

    async fn validate(
        &self,
        _reg: &Registry,
        a: &Attributes<'_>,
        csr: &Value,
        old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if !is_csr(a) {
            return Ok(());
        }
        let signer = signer(csr);
        match (a.op, a.sub) {
            (Operation::Create, None)
                if signer == "kubernetes.io/kube-apiserver-client"
                    && requested_groups(csr)
                        .is_some_and(|g| g.iter().any(|g| g == authz::SYSTEM_MASTERS)) =>
            {
                return Err(a.forbidden(csr, "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"));
            }
            (Operation::Update, Some("approval")) => {
                let changed =
                    old.is_none_or(|o| approval_conditions(o) != approval_conditions(csr));
                if changed && !may(a, "approve", signer) {
                    return Err(a.forbidden(
                        csr,
                        &format!(
                            "user not permitted to approve requests with signerName {signer:?}"
                        ),
                    ));
                }
            }
            (Operation::Update, Some("status")) => {
                let changed = old.is_none_or(|o| certificate(o) != certificate(csr));
                if changed && !may(a, "sign", signer) {
                    return Err(a.forbidden(
                        csr,
                        &format!("user not permitted to sign requests with signerName {signer:?}"),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
