//! A pod's volumes on the node, as upstream's volume manager sets them up before containers start:
//! each under `<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`, then bind-mounted into the
//! containers by the runtime (CRI `Mount`s, see [`mounts`]).
//!
//! Supported: emptyDir, hostPath, configMap, secret, downwardAPI and projected (configMap, secret,
//! downwardAPI and serviceAccountToken sources). Other volume types fail the mount with upstream's
//! FailedMount wording and the pod waits in ContainerCreating, as it would on a node without the plugin.
//!
//! [`set_up`] is also the refresh: the pod worker calls it again on its periodic sync and when the
//! pod's labels or annotations change, so ConfigMap and Secret updates, new downward API values and
//! renewed service account tokens reach the files ([`super::atomic_writer`] swaps them in at once).
//! Tokens are kept in [`Tokens`] and asked for again only when upstream's token manager would.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::ResourceExt;

/// The directory a pod's files live in on the node.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

fn volume_dir(root: &Path, uid: &str, plugin: &str, name: &str) -> PathBuf {
    pod_dir(root, uid)
        .join("volumes")
        .join(format!("kubernetes.io~{plugin}"))
        .join(name)
}

/// A set-up failure, worded as upstream's FailedMount events.
#[derive(Debug)]
pub struct MountError(pub String);

fn io_err(volume: &str, e: std::io::Error) -> MountError {
    MountError(format!(
        "MountVolume.SetUp failed for volume {volume:?} : {e}"
    ))
}

/// The service account tokens a pod's projected volumes hold, by (audience, expirationSeconds): each
/// with when it was issued, so a refresh asks for a new one only when upstream's token manager would
/// (past 80% of its lifetime, or a day old).
#[derive(Default)]
pub struct Tokens(HashMap<(Option<String>, i64), (String, Instant)>);

/// Upstream's token manager refreshes a token older than this whatever its lifetime.
const TOKEN_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

impl Tokens {
    /// The cached token for `key` while it is fresh enough to keep.
    fn fresh(&self, key: &(Option<String>, i64), now: Instant) -> Option<&String> {
        let (token, issued) = self.0.get(key)?;
        let lifetime = Duration::from_secs(u64::try_from(key.1).unwrap_or(0));
        let age = now.saturating_duration_since(*issued);
        (age < lifetime.mul_f64(0.8) && age < TOKEN_MAX_AGE).then_some(token)
    }
}

/// Sets up every volume of `pod`, or brings the files of one already set up up to date (writing
/// only those whose content changed); returns volume name → host path.
pub async fn set_up(
    client: &kube::Client,
    root: &Path,
    pod: &Pod,
    tokens: &mut Tokens,
) -> Result<BTreeMap<String, PathBuf>, MountError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.namespace().unwrap_or_default();
    let mut out = BTreeMap::new();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for v in &volumes {
        let path = set_up_one(client, root, &uid, &ns, pod, v, tokens).await?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

async fn set_up_one(
    client: &kube::Client,
    root: &Path,
    uid: &str,
    ns: &str,
    pod: &Pod,
    v: &Volume,
    tokens: &mut Tokens,
) -> Result<PathBuf, MountError> {
    let name = v.name.as_str();
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        match h.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => {
                std::fs::create_dir_all(&path).map_err(|e| io_err(name, e))?;
            }
            "FileOrCreate" if !path.exists() => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_err(name, e))?;
                }
                std::fs::write(&path, b"").map_err(|e| io_err(name, e))?;
            }
            "Directory" if !path.is_dir() => {
                return Err(MountError(format!(
                    "MountVolume.SetUp failed for volume {name:?} : hostPath type check failed: {} is not a directory",
                    h.path
                )))
            }
            "File" if !path.is_file() => {
                return Err(MountError(format!(
                    "MountVolume.SetUp failed for volume {name:?} : hostPath type check failed: {} is not a file",
                    h.path
                )))
            }
            _ => {}
        }
        return Ok(path);
    }
    if v.empty_dir.is_some() {
        let dir = volume_dir(root, uid, "empty-dir", name);
        std::fs::create_dir_all(&dir).map_err(|e| io_err(name, e))?;
        // Upstream's emptyDir is world-writable so any container user can use it.
        set_mode(&dir, 0o777).map_err(|e| io_err(name, e))?;
        return Ok(dir);
    }
    let mut files: Vec<(String, Vec<u8>, i32)> = Vec::new();
    let plugin;
    if let Some(cm) = &v.config_map {
        plugin = "configmap";
        let mode = cm.default_mode.unwrap_or(0o644);
        let optional = cm.optional.unwrap_or(false);
        files.extend(
            source_files::<ConfigMap>(client, ns, &cm.name, &cm.items, optional, mode, name)
                .await?,
        );
    } else if let Some(s) = &v.secret {
        plugin = "secret";
        let mode = s.default_mode.unwrap_or(0o644);
        let optional = s.optional.unwrap_or(false);
        let secret = s.secret_name.clone().unwrap_or_default();
        files.extend(
            source_files::<Secret>(client, ns, &secret, &s.items, optional, mode, name).await?,
        );
    } else if let Some(d) = &v.downward_api {
        plugin = "downward-api";
        let mode = d.default_mode.unwrap_or(0o644);
        for item in d.items.iter().flatten() {
            files.push(downward_file(pod, item, mode, name)?);
        }
    } else if let Some(p) = &v.projected {
        plugin = "projected";
        let mode = p.default_mode.unwrap_or(0o644);
        for source in p.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let optional = cm.optional.unwrap_or(false);
                files.extend(
                    source_files::<ConfigMap>(
                        client, ns, &cm.name, &cm.items, optional, mode, name,
                    )
                    .await?,
                );
            }
            if let Some(s) = &source.secret {
                let optional = s.optional.unwrap_or(false);
                files.extend(
                    source_files::<Secret>(client, ns, &s.name, &s.items, optional, mode, name)
                        .await?,
                );
            }
            if let Some(d) = &source.downward_api {
                for item in d.items.iter().flatten() {
                    files.push(downward_file(pod, item, mode, name)?);
                }
            }
            if let Some(t) = &source.service_account_token {
                let key = (t.audience.clone(), t.expiration_seconds.unwrap_or(3607));
                let now = Instant::now();
                let token = match tokens.fresh(&key, now) {
                    Some(token) => token.clone(),
                    None => {
                        let token = service_account_token(client, pod, key.0.clone(), key.1)
                            .await
                            .map_err(|e| {
                                MountError(format!(
                                    "MountVolume.SetUp failed for volume {name:?} : failed to fetch token: {}",
                                    super::api_message(&e)
                                ))
                            })?;
                        tokens.0.insert(key, (token.clone(), now));
                        token
                    }
                };
                files.push((t.path.clone(), token.into_bytes(), mode));
            }
        }
    } else {
        return Err(MountError(format!(
            "MountVolume.SetUp failed for volume {name:?} : this node supports emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes only"
        )));
    }
    let dir = volume_dir(root, uid, plugin, name);
    super::atomic_writer::write(&dir, &files).map_err(|e| io_err(name, e))?;
    Ok(dir)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn pick(
    data: BTreeMap<String, Vec<u8>>,
    items: &Option<Vec<KeyToPath>>,
    mode: i32,
    what: &str,
    volume: &str,
) -> Result<Vec<(String, Vec<u8>, i32)>, MountError> {
    match items {
        None => Ok(data.into_iter().map(|(k, v)| (k, v, mode)).collect()),
        Some(items) => items
            .iter()
            .map(|i| match data.get(&i.key) {
                Some(v) => Ok((i.path.clone(), v.clone(), i.mode.unwrap_or(mode))),
                None => Err(MountError(format!(
                    "MountVolume.SetUp failed for volume {volume:?} : configmap references non-existent config key: {}",
                    i.key
                )
                .replace("configmap", what))),
            })
            .collect(),
    }
}

/// ConfigMaps and Secrets as volume sources: named keys to bytes.
pub trait KeyedData:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
    /// How upstream's messages name the kind.
    const WORD: &'static str;
    fn into_data(self) -> BTreeMap<String, Vec<u8>>;
}

impl KeyedData for ConfigMap {
    const WORD: &'static str = "configmap";
    fn into_data(self) -> BTreeMap<String, Vec<u8>> {
        let mut data: BTreeMap<String, Vec<u8>> = self
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        data.extend(
            self.binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        data
    }
}

impl KeyedData for Secret {
    const WORD: &'static str = "secret";
    fn into_data(self) -> BTreeMap<String, Vec<u8>> {
        self.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, ByteString(v))| (k, v))
            .collect()
    }
}

/// The files a ConfigMap or Secret source puts in a volume (all keys, or the listed `items`).
async fn source_files<K: KeyedData>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    items: &Option<Vec<KeyToPath>>,
    optional: bool,
    mode: i32,
    volume: &str,
) -> Result<Vec<(String, Vec<u8>, i32)>, MountError> {
    let got = Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| {
            MountError(format!(
                "MountVolume.SetUp failed for volume {volume:?} : {}",
                super::api_message(&e)
            ))
        })?;
    match got {
        Some(obj) => pick(obj.into_data(), items, mode, K::WORD, volume),
        None if optional => Ok(Vec::new()),
        None => Err(MountError(format!(
            "MountVolume.SetUp failed for volume {volume:?} : {} {name:?} not found",
            K::WORD
        ))),
    }
}

fn downward_file(
    pod: &Pod,
    item: &DownwardAPIVolumeFile,
    mode: i32,
    volume: &str,
) -> Result<(String, Vec<u8>, i32), MountError> {
    let value = match &item.field_ref {
        Some(f) => super::env::field_value(pod, &f.field_path).map_err(|e| {
            MountError(format!(
                "MountVolume.SetUp failed for volume {volume:?} : {e}"
            ))
        })?,
        None => match &item.resource_field_ref {
            Some(r) => {
                let container = pod
                    .spec
                    .as_ref()
                    .and_then(|s| {
                        s.containers
                            .iter()
                            .find(|c| Some(c.name.as_str()) == r.container_name.as_deref())
                    })
                    .cloned()
                    .unwrap_or_else(Container::default);
                super::env::resource_value(&container, r).map_err(|e| {
                    MountError(format!(
                        "MountVolume.SetUp failed for volume {volume:?} : {e}"
                    ))
                })?
            }
            None => String::new(),
        },
    };
    Ok((
        item.path.clone(),
        value.into_bytes(),
        item.mode.unwrap_or(mode),
    ))
}

/// A token for the pod's service account bound to the pod (TokenRequest, as upstream's kubelet).
async fn service_account_token(
    client: &kube::Client,
    pod: &Pod,
    audience: Option<String>,
    expiration: i64,
) -> Result<String, kube::Error> {
    let ns = pod.namespace().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(expiration),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let out: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &req)
        .await?;
    Ok(out.status.map(|s| s.token).unwrap_or_default())
}

/// Removes the pod's directory (volumes, termination-message files) once its containers are gone.
pub fn tear_down(root: &Path, uid: &str) {
    let dir = pod_dir(root, uid);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("kubelet: removing {}: {e}", dir.display());
        }
    }
}

/// The CRI mounts of `container`: its volumeMounts resolved against the set-up volumes (subPath
/// joined, read-only honoured).
pub fn mounts(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<k8s_cri::v1::Mount>, String> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(host) = volumes.get(&m.name) else {
            return Err(format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, container.name
            ));
        };
        let mut host = host.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                return Err(format!("invalid subpath {sub:?}"));
            }
            host = host.join(sub);
            if !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| e.to_string())?;
            }
        }
        out.push(k8s_cri::v1::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.to_string_lossy().into_owned(),
            readonly: m.read_only.unwrap_or(false),
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_as_upstreams_token_manager_does() {
        let mut tokens = Tokens::default();
        let t0 = Instant::now();
        let hour = (None, 3600);
        let day_and_more = (Some("vault".to_string()), 2 * 24 * 3600);
        tokens.0.insert(hour.clone(), ("a".into(), t0));
        tokens.0.insert(day_and_more.clone(), ("b".into(), t0));
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        // Kept until 80% of the lifetime has passed...
        assert_eq!(tokens.fresh(&hour, at(2879)).map(String::as_str), Some("a"));
        assert_eq!(tokens.fresh(&hour, at(2880)), None);
        // ...and never past a day, whatever the lifetime.
        assert_eq!(
            tokens
                .fresh(&day_and_more, at(23 * 3600))
                .map(String::as_str),
            Some("b")
        );
        assert_eq!(tokens.fresh(&day_and_more, at(24 * 3600)), None);
        // Another audience or lifetime is another token.
        assert_eq!(tokens.fresh(&(None, 7200), at(1)), None);
    }
}
