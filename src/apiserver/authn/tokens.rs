//! Service account tokens: issued through `serviceaccounts/<name>/token` (TokenRequest, what
//! `kubectl create token` asks for) and accepted back as bearer tokens.
//!
//! They are JWTs signed with the cluster's service-account key (ES256), with upstream's claims
//! (`iss`, `sub` = `system:serviceaccount:<ns>:<name>`, `aud`, `exp`, and the `kubernetes.io` claim
//! naming the service account and its uid), so that a token outlives nothing it names: it is refused
//! once the service account is gone or was recreated.
//!
//! As upstream, a token authenticates to this apiserver only if its `aud` names one of the server's
//! `--api-audiences` (by default the issuer), and a token bound to a Pod or Secret (`boundObjectRef`)
//! carries that object's name and uid and stops working once the object is gone or recreated.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// TokenRequest's default `expirationSeconds` (upstream's defaulting).
pub const DEFAULT_EXPIRATION: i64 = 3600;
/// Upstream's `MinTokenAgeSec`: shorter requests are invalid.
pub const MIN_EXPIRATION: i64 = 600;
/// Upstream's validation refuses anything longer than 2^32 seconds.
pub const MAX_EXPIRATION: i64 = 1 << 32;

/// The server's token settings (`rkube server --api-audiences`, `--service-account-max-token-expiration`).
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// The audiences a token must name (one of) to authenticate to this apiserver; also what a
    /// TokenRequest without `audiences` is issued for.
    pub api_audiences: Vec<String>,
    /// Longer TokenRequests are shortened to this (seconds), as upstream's flag; None: no cap.
    pub max_expiration: Option<i64>,
}

impl TokenOptions {
    /// A TokenRequest's or TokenReview's `spec.audiences`, or this server's audiences when it names none.
    pub fn audiences_of(&self, spec_owner: &Value) -> Vec<String> {
        spec_owner
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect::<Vec<_>>()
            })
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| self.api_audiences.clone())
    }
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            api_audiences: vec![ISSUER.to_string()],
            max_expiration: None,
        }
    }
}

/// An object a token is bound to (`kubernetes.io.pod` / `kubernetes.io.secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    pub name: String,
    pub uid: String,
}

/// What a token is bound to besides its service account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bound {
    pub pod: Option<BoundObject>,
    pub secret: Option<BoundObject>,
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub namespace: String,
    pub service_account: String,
    pub uid: String,
    /// The token's `aud`.
    pub audiences: Vec<String>,
    pub bound: Bound,
    /// The token's `jti` (upstream's credential id).
    pub jti: Option<String>,
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
    pub options: TokenOptions,
}

/// Upstream's `Audiences.Intersect`: the token's audiences that are also wanted, in the token's order.
pub fn intersect(token: &[String], wanted: &[String]) -> Vec<String> {
    token
        .iter()
        .filter(|a| wanted.contains(a))
        .cloned()
        .collect()
}

fn bound_claim(o: &BoundObject) -> Value {
    json!({"name": o.name, "uid": o.uid})
}

fn bound_of(v: Option<&Value>) -> Option<BoundObject> {
    let v = v?;
    Some(BoundObject {
        name: v.get("name")?.as_str()?.to_string(),
        uid: v.get("uid")?.as_str()?.to_string(),
    })
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
        Ok(TokenIssuer {
            key,
            rng,
            key_id,
            options: TokenOptions::default(),
        })
    }

    pub fn with_options(mut self, options: TokenOptions) -> Self {
        self.options = options;
        self
    }

    /// Issues a token for a service account, valid `expiration` seconds (already validated: at most
    /// [`MAX_EXPIRATION`], so the sum cannot overflow); returns (token, expiration unix seconds).
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        expiration: i64,
        bound: &Bound,
    ) -> anyhow::Result<(String, i64)> {
        self.issue_extended(namespace, name, uid, audiences, expiration, bound, None)
    }

    /// [`issue`](Self::issue), with upstream's `kubernetes.io.warnafter` claim when `warn_after` (the
    /// lifetime the client asked for) is shorter than `expiration` (an extended pod token).
    #[allow(clippy::too_many_arguments)]
    pub fn issue_extended(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        expiration: i64,
        bound: &Bound,
        warn_after: Option<i64>,
    ) -> anyhow::Result<(String, i64)> {
        let now = chrono::Utc::now().timestamp();
        let exp = now.saturating_add(expiration.clamp(0, MAX_EXPIRATION));
        let aud: Vec<String> = if audiences.is_empty() {
            self.options.api_audiences.clone()
        } else {
            audiences.to_vec()
        };
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let mut k8s = json!({"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}});
        if let Some(p) = &bound.pod {
            k8s["pod"] = bound_claim(p);
        }
        if let Some(s) = &bound.secret {
            k8s["secret"] = bound_claim(s);
        }
        if let Some(w) = warn_after {
            k8s["warnafter"] = json!(now.saturating_add(w));
        }
        let claims = json!({
            "aud": aud, "exp": exp, "iat": now, "nbf": now, "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": k8s,
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
        // `aud` is a string or a list of strings (RFC 7519).
        let audiences = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        Some(TokenClaims {
            namespace: k.get("namespace")?.as_str()?.to_string(),
            service_account: k.pointer("/serviceaccount/name")?.as_str()?.to_string(),
            uid: k.pointer("/serviceaccount/uid")?.as_str()?.to_string(),
            audiences,
            bound: Bound {
                pod: bound_of(k.get("pod")),
                secret: bound_of(k.get("secret")),
            },
            jti: claims.get("jti").and_then(Value::as_str).map(String::from),
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
        let (t, exp) = i
            .issue(
                "ns",
                "sa",
                "uid-1",
                &[],
                DEFAULT_EXPIRATION,
                &Bound::default(),
            )
            .unwrap();
        assert!(exp > chrono::Utc::now().timestamp() + 3000);
        let c = i.verify(&t).unwrap();
        assert_eq!(c.audiences, vec![ISSUER.to_string()]);
        assert_eq!(c.bound, Bound::default());
        assert_eq!(c.username(), "system:serviceaccount:ns:sa");
        assert_eq!(c.uid, "uid-1");
        assert!(c
            .groups()
            .contains(&"system:serviceaccounts:ns".to_string()));
    }

    #[test]
    fn rejects_tampering_and_other_keys() {
        let i = issuer();
        let (t, _) = i
            .issue("ns", "sa", "u", &[], DEFAULT_EXPIRATION, &Bound::default())
            .unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://kubernetes.default.svc.cluster.local","exp":99999999999,"kubernetes.io":{"namespace":"kube-system","serviceaccount":{"name":"admin","uid":"u"}}}"#);
        parts[1] = &forged;
        assert!(i.verify(&parts.join(".")).is_none());
        assert!(issuer().verify(&t).is_none());
        assert!(i.verify("not.a.token").is_none());
        assert!(i.verify("").is_none());
    }

    #[test]
    fn audiences_and_bound_objects_round_trip() {
        let i = issuer();
        let bound = Bound {
            pod: Some(BoundObject {
                name: "p".into(),
                uid: "pod-uid".into(),
            }),
            secret: None,
        };
        let (t, _) = i
            .issue("ns", "sa", "u", &["vault".into()], 600, &bound)
            .unwrap();
        let c = i.verify(&t).unwrap();
        assert_eq!(c.audiences, vec!["vault".to_string()]);
        assert_eq!(c.bound, bound);
        assert!(intersect(&c.audiences, &[ISSUER.to_string()]).is_empty());
        assert_eq!(
            intersect(&["a".into(), "b".into()], &["b".into(), "c".into()]),
            vec!["b".to_string()]
        );
    }

    #[test]
    fn huge_expirations_never_overflow() {
        let i = issuer();
        let (_, exp) = i
            .issue("ns", "sa", "u", &[], i64::MAX, &Bound::default())
            .unwrap();
        assert!(exp <= chrono::Utc::now().timestamp() + MAX_EXPIRATION);
    }

    /// A store whose every call fails, as etcd does while it is unreachable.
    struct Down;

    #[async_trait::async_trait]
    impl crate::storage::Store for Down {
        async fn get(
            &self,
            _: &str,
        ) -> crate::storage::Result<(Option<crate::storage::KeyValue>, i64)> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
        async fn range(
            &self,
            _: &str,
            _: Option<&str>,
            _: usize,
            _: i64,
        ) -> crate::storage::Result<crate::storage::RangeResult> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
        async fn count(&self, _: &str) -> crate::storage::Result<i64> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
        async fn create(&self, _: &str, _: Vec<u8>) -> crate::storage::Result<i64> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
        async fn update(&self, _: &str, _: Vec<u8>, _: i64) -> crate::storage::Result<i64> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
        async fn delete(
            &self,
            _: &str,
            _: Option<i64>,
        ) -> crate::storage::Result<(i64, crate::storage::KeyValue)> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
        async fn current_revision(&self) -> crate::storage::Result<i64> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
        async fn watch(
            &self,
            _: &str,
            _: i64,
        ) -> crate::storage::Result<crate::storage::WatchStream> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
        async fn compact(&self, _: i64) -> crate::storage::Result<()> {
            Err(crate::storage::StoreError::Other("etcd unreachable".into()))
        }
    }

    #[tokio::test]
    async fn storage_failure_while_authenticating_is_a_server_error() {
        use crate::apiserver::authn::bearer::token_user;
        use crate::apiserver::catalog::{Catalog, SharedCatalog};
        use crate::apiserver::http::handlers::App;
        use std::sync::Arc;
        let catalog = Arc::new(SharedCatalog::new(Catalog::builtin()));
        let registry =
            crate::apiserver::registry::store::Registry::new(Arc::new(Down), catalog.clone());
        let app = App {
            kubelet_client: None,
            admission: crate::apiserver::admission::Chain::empty(),
            authorizer: crate::apiserver::authz::Authorizer::new(registry.clone()),
            registry,
            catalog: catalog.clone(),
            openapi: crate::apiserver::openapi::OpenApiV3::new(catalog),
            server_address: "127.0.0.1:6443".into(),
            tokens: issuer(),
            limits: crate::apiserver::http::limits::Limits::new(&Default::default()),
            started: tokio::sync::watch::channel(false).0,
            caller_hook: None,
            metrics: crate::apiserver::http::metrics::Metrics::new(),
            audit: None,
        };
        let (t, _) = app
            .tokens
            .issue("ns", "sa", "u", &[], DEFAULT_EXPIRATION, &Bound::default())
            .unwrap();
        let wanted = vec![ISSUER.to_string()];
        // A valid token whose account cannot be looked up: 500, never "not authenticated" (401).
        match token_user(&app, &t, &wanted).await {
            Err(e) => assert_eq!(e.code, 500, "{}", e.message),
            Ok(_) => panic!("a storage failure must not decide authentication"),
        }
        // A token that fails on its own is refused without touching storage.
        assert!(matches!(
            token_user(&app, "abc123", &wanted).await,
            Ok(crate::apiserver::authn::bearer::TokenAuth::Invalid(_))
        ));
    }
}
