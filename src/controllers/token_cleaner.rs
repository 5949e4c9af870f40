//! Upstream's token cleaner (`pkg/controller/bootstrap/tokencleaner.go`): a bootstrap token's Secret
//! is deleted once its `expiration` has passed (the authenticator already refuses it then; this keeps
//! kube-system tidy, as `kubeadm token create --ttl` relies on). Watches only the bootstrap token
//! Secrets of kube-system and wakes at each one's expiry. Runs as `system:controller:token-cleaner`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::ResourceExt;

use super::Clients;
use crate::apiserver::authn::bootstrap_token::{self, NAMESPACE, SECRET_TYPE};

pub async fn run(clients: Clients) {
    let api = Api::<Secret>::namespaced(clients.reader.clone(), NAMESPACE);
    let only_tokens = watcher::Config::default().fields(&format!("type={SECRET_TYPE}"));
    Controller::new(api, only_tokens)
        .run(reconcile, retry_later, Arc::new(clients))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("token cleaner: {e}");
            }
        })
        .await;
}

/// How long until `secret`'s token expires: `None` when it never does, zero when it has.
fn time_left(secret: &Secret, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let text = secret.data.as_ref()?.get("expiration")?;
    let at = bootstrap_token::expires_at(&String::from_utf8_lossy(&text.0))?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

async fn reconcile(secret: Arc<Secret>, clients: Arc<Clients>) -> Result<Action, kube::Error> {
    if secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    match time_left(&secret, chrono::Utc::now()) {
        None => Ok(Action::await_change()),
        Some(left) if !left.is_zero() => Ok(Action::requeue(left + Duration::from_secs(1))),
        Some(_) => {
            let api = Api::<Secret>::namespaced(clients.writer.clone(), NAMESPACE);
            let only_this = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: secret.uid(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&secret.name_any(), &only_this).await {
                Ok(_) => tracing::info!("deleted expired bootstrap token {}", secret.name_any()),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
            Ok(Action::await_change())
        }
    }
}

fn retry_later(_secret: Arc<Secret>, error: &kube::Error, _clients: Arc<Clients>) -> Action {
    tracing::warn!("token cleaner: {error}");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn token(expiration: Option<&str>) -> Secret {
        let mut data = std::collections::BTreeMap::new();
        if let Some(e) = expiration {
            data.insert("expiration".to_string(), ByteString(e.as_bytes().to_vec()));
        }
        Secret {
            type_: Some(SECRET_TYPE.into()),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn expiry() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(time_left(&token(None), now), None);
        assert_eq!(
            time_left(&token(Some("2026-05-01T00:00:00Z")), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            time_left(&token(Some("garbage")), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            time_left(&token(Some("2026-06-01T01:00:00Z")), now),
            Some(Duration::from_secs(3600))
        );
    }
}
