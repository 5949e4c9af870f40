//! ServiceAccount (upstream's `plugin/pkg/admission/serviceaccount`): a new pod runs as a service
//! account that exists (`default` when it names none), and unless it or its account opts out
//! (`automountServiceAccountToken: false`) it gets the projected `kube-api-access-<suffix>` volume
//! (a token the kubelet requests for the pod, the cluster CA from `kube-root-ca.crt`, its namespace)
//! mounted at `/var/run/secrets/kubernetes.io/serviceaccount` in every container, which is what
//! in-cluster clients (client-go, kube-rs, the Python client) read. Pods with no image pull secrets
//! take their account's. Mirror pods may reference neither accounts nor secrets.

use std::time::Duration;

use rand::Rng;
use serde_json::{json, Map, Value};

use super::{Attributes, Operation, Plugin};
use crate::apiserver::authn::token_request::EXTENDABLE_EXPIRATION;
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::ApiResult;

/// Where in-cluster clients look for their credentials.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const VOLUME_PREFIX: &str = "kube-api-access-";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The controller creates `default` right after its namespace: a pod created in that moment waits
/// for it (upstream looks it up 10 times, 100-200 ms apart), other accounts are looked up once.
const DEFAULT_ATTEMPTS: usize = 10;

pub struct ServiceAccount;

#[async_trait::async_trait]
impl Plugin for ServiceAccount {
    async fn admit(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        pod: &mut Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if a.op != Operation::Create || !a.is_core("pods") || is_mirror(pod) {
            return Ok(());
        }
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        if str_field(spec, "serviceAccountName").is_empty() {
            // `serviceAccount` is the deprecated copy the v1 conversion keeps equal.
            spec.insert("serviceAccountName".into(), json!("default"));
            spec.insert("serviceAccount".into(), json!("default"));
        }
        let name = str_field(spec, "serviceAccountName").to_string();
        let account = lookup(reg, a, pod, &name).await?;
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let automount = spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| {
                account
                    .get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
            })
            .unwrap_or(true);
        if automount {
            mount_token(spec);
        }
        let has_pull_secrets = spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .is_some_and(|s| !s.is_empty());
        if !has_pull_secrets {
            if let Some(secrets) = account.get("imagePullSecrets").and_then(Value::as_array) {
                let refs: Vec<Value> = secrets
                    .iter()
                    .map(|s| json!({"name": s.get("name").cloned().unwrap_or(json!(""))}))
                    .collect();
                if !refs.is_empty() {
                    spec.insert("imagePullSecrets".into(), Value::Array(refs));
                }
            }
        }
        Ok(())
    }

    async fn validate(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        pod: &Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if a.op != Operation::Create || !a.is_core("pods") {
            return Ok(());
        }
        let spec = pod.get("spec").and_then(Value::as_object);
        let account = spec
            .map(|s| str_field(s, "serviceAccountName"))
            .unwrap_or("");
        if is_mirror(pod) {
            if !account.is_empty() {
                return Err(a.forbidden(pod, "a mirror pod may not reference service accounts"));
            }
            if references_secrets(pod) {
                return Err(a.forbidden(pod, "a mirror pod may not reference secrets"));
            }
            if has_token_projection(pod) {
                return Err(a.forbidden(
                    pod,
                    "a mirror pod may not use ServiceAccountToken volume projections",
                ));
            }
            return Ok(());
        }
        if account.is_empty() {
            let name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(a.forbidden(
                pod,
                &format!(
                    "no service account specified for pod {}/{name}",
                    a.ns.unwrap_or("")
                ),
            ));
        }
        lookup(reg, a, pod, account).await.map(|_| ())
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

fn is_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

/// The pod's service account, or upstream's Forbidden
/// `error looking up service account NS/NAME: serviceaccount "NAME" not found`.
async fn lookup(reg: &Registry, a: &Attributes<'_>, pod: &Value, name: &str) -> ApiResult<Value> {
    let ns = a.ns.unwrap_or("");
    let attempts = if name == "default" {
        DEFAULT_ATTEMPTS
    } else {
        1
    };
    for attempt in 0..attempts {
        if attempt > 0 {
            let pause = rand::rng().random_range(100..200);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        if let Some(sa) = reg
            .lookup("", "v1", "serviceaccounts", Some(ns), name)
            .await?
        {
            return Ok(sa);
        }
    }
    Err(a.forbidden(
        pod,
        &format!(
            "error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found"
        ),
    ))
}

/// Upstream's `mountServiceAccountToken`: every container and init container without a mount at
/// [`TOKEN_MOUNT_PATH`] mounts the pod's `kube-api-access-*` volume there, added when one needs it.
fn mount_token(spec: &mut Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .find(|n| n.starts_with(VOLUME_PREFIX))
                .map(String::from)
        });
    let volume = existing.clone().unwrap_or_else(random_volume_name);
    let mount = json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c
                .entry("volumeMounts")
                .or_insert_with(|| Value::Array(vec![]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            let mounted = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if !mounted {
                mounts.push(mount.clone());
                needed = true;
            }
        }
    }
    if existing.is_none() && needed {
        let volumes = spec
            .entry("volumes")
            .or_insert_with(|| Value::Array(vec![]));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(json!({"name": volume, "projected": token_volume_source()}));
        }
    }
}

/// Upstream's `TokenVolumeSource`, with its explicit defaults.
fn token_volume_source() -> Value {
    json!({
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": EXTENDABLE_EXPIRATION, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]
    })
}

/// `kube-api-access-` and five characters of upstream's name generator alphabet.
fn random_volume_name() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{VOLUME_PREFIX}{suffix}")
}

/// Whether the pod names a Secret anywhere (volumes, projections, env, envFrom, pull secrets).
fn references_secrets(pod: &Value) -> bool {
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let arr = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if !arr(&spec, "imagePullSecrets").is_empty() {
        return true;
    }
    for v in arr(&spec, "volumes") {
        if v.get("secret").is_some() {
            return true;
        }
        if arr(v.get("projected").unwrap_or(&Value::Null), "sources")
            .iter()
            .any(|s| s.get("secret").is_some())
        {
            return true;
        }
    }
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| arr(&spec, k))
        .any(|c| {
            arr(&c, "env")
                .iter()
                .any(|e| e.pointer("/valueFrom/secretKeyRef").is_some())
                || arr(&c, "envFrom")
                    .iter()
                    .any(|e| e.get("secretRef").is_some())
        })
}

fn has_token_projection(pod: &Value) -> bool {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/projected/sources").and_then(Value::as_array))
        .flatten()
        .any(|s| s.get("serviceAccountToken").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_volume_mounted_in_every_container_once() {
        let mut spec = json!({
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "a", "image": "busybox"},
                {"name": "b", "image": "busybox", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}
            ],
            "volumes": [{"name": "own", "emptyDir": {}}]
        });
        let m = spec.as_object_mut().expect("object");
        mount_token(m);
        let volumes = m["volumes"].as_array().expect("volumes");
        assert_eq!(volumes.len(), 2);
        let name = volumes[1]["name"].as_str().expect("name");
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(volumes[1]["projected"]["defaultMode"], 420);
        assert_eq!(m["initContainers"][0]["volumeMounts"][0]["name"], name);
        assert_eq!(
            m["containers"][0]["volumeMounts"][0]["mountPath"],
            TOKEN_MOUNT_PATH
        );
        assert_eq!(
            m["containers"][1]["volumeMounts"].as_array().map(Vec::len),
            Some(1)
        );
        // A second pass (an existing kube-api-access volume) adds nothing.
        mount_token(m);
        assert_eq!(m["volumes"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn mirror_pods_referencing_secrets_are_found() {
        let pod = json!({"spec": {"containers": [{"name": "a",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}});
        assert!(references_secrets(&pod));
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(!references_secrets(&pod));
    }
}
