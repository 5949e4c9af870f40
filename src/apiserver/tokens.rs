//! Service account tokens: issued through `serviceaccounts/<name>/token` (TokenRequest, what
//! `kubectl create token` asks for) and accepted back as bearer tokens.
//!
//! They are JWTs signed with the cluster's service-account key (ES256), with upstream's claims
//! (`iss`, `sub` = `system:serviceaccount:<ns>:<name>`, `aud`, `exp`, and the `kubernetes.io` claim
//! naming the service account and its uid), so that a token outlives nothing it names: it is refused
//! once the service account is gone or was recreated.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub namespace: String,
    pub service_account: String,
    pub uid: String,
}

impl TokenClaims {
    pub fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }
    pub fn groups(&self) -> Vec<String> {
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".into(),
        ]
    }
}

pub struct TokenIssuer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    key_id: String,
}

impl TokenIssuer {
    /// From the PEM of a PKCS#8 ECDSA P-256 key.
    pub fn new(key_pem: &str) -> anyhow::Result<Self> {
        let der = rcgen::KeyPair::from_pem(key_pem)?.serialize_der();
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| anyhow::anyhow!("service account key: {e}"))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(TokenIssuer { key, rng, key_id })
    }

    /// Issues a token for a service account; returns (token, expiration unix seconds).
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        expiration: Option<i64>,
    ) -> anyhow::Result<(String, i64)> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + expiration.unwrap_or(DEFAULT_EXPIRATION).max(MIN_EXPIRATION);
        let aud: Vec<String> = if audiences.is_empty() {
            vec![ISSUER.to_string()]
        } else {
            audiences.to_vec()
        };
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let claims = json!({
            "aud": aud, "exp": exp, "iat": now, "nbf": now, "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|e| anyhow::anyhow!("signing token: {e}"))?;
        Ok((
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())),
            exp,
        ))
    }

    /// Verifies signature, issuer and time; returns the claims (the caller checks the account exists).
    pub fn verify(&self, token: &str) -> Option<TokenClaims> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .ok()?;
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
        let now = chrono::Utc::now().timestamp();
        if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
            return None;
        }
        if claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|exp| exp < now)
        {
            return None;
        }
        if claims
            .get("nbf")
            .and_then(Value::as_i64)
            .is_some_and(|nbf| nbf > now + 60)
        {
            return None;
        }
        let k = claims.get("kubernetes.io")?;
        Some(TokenClaims {
            namespace: k.get("namespace")?.as_str()?.to_string(),
            service_account: k.pointer("/serviceaccount/name")?.as_str()?.to_string(),
            uid: k.pointer("/serviceaccount/uid")?.as_str()?.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap()
    }

    #[test]
    fn issue_and_verify() {
        let i = issuer();
        let (t, exp) = i.issue("ns", "sa", "uid-1", &[], None).unwrap();
        assert!(exp > chrono::Utc::now().timestamp() + 3000);
        let c = i.verify(&t).unwrap();
        assert_eq!(c.username(), "system:serviceaccount:ns:sa");
        assert_eq!(c.uid, "uid-1");
        assert!(c
            .groups()
            .contains(&"system:serviceaccounts:ns".to_string()));
    }

    #[test]
    fn rejects_tampering_and_other_keys() {
        let i = issuer();
        let (t, _) = i.issue("ns", "sa", "u", &[], None).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://kubernetes.default.svc.cluster.local","exp":99999999999,"kubernetes.io":{"namespace":"kube-system","serviceaccount":{"name":"admin","uid":"u"}}}"#);
        parts[1] = &forged;
        assert!(i.verify(&parts.join(".")).is_none());
        assert!(issuer().verify(&t).is_none());
        assert!(i.verify("not.a.token").is_none());
        assert!(i.verify("").is_none());
    }
}
