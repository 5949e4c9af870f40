//! Static pods: pods a node runs from manifest files (`--pod-manifest-path`), not from the API, as
//! upstream's kubelet file source; each shows in the API as a *mirror pod* the kubelet keeps.
//!
//! Every [`CHECK_EVERY`] (upstream's `--file-check-frequency`) and whenever a mirror pod changes,
//! [`run`] reads the directory: each manifest (YAML or JSON, one Pod, hidden files skipped) becomes a
//! pod named `<name>-<node>` (namespace `default` unless given) bound to this node, with a UID hashed
//! from the manifest and the node (so an unchanged file keeps its pod and an edited one replaces it),
//! the `kubernetes.io/config.hash|source` annotations and a NoExecute toleration, as upstream's
//! `applyDefaults`. The pod workers run it like any other pod ([`Kubelet::pod`] finds it here).
//!
//! Mirror pods: a copy in the API with the `kubernetes.io/config.mirror` annotation and a controller
//! reference to the Node (what NodeRestriction lets a node create). Statuses are written to it. It is
//! recreated when deleted (so `kubectl delete` does not stop a static pod) or stale, and removed when
//! its manifest goes; the running pod stops then.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;

use super::pod_workers::Kubelet;

/// How often the manifest directory is read (upstream's `--file-check-frequency` default).
pub const CHECK_EVERY: Duration = Duration::from_secs(20);
pub const ANNOTATION_HASH: &str = "kubernetes.io/config.hash";
pub const ANNOTATION_SOURCE: &str = "kubernetes.io/config.source";
pub const ANNOTATION_MIRROR: &str = "kubernetes.io/config.mirror";

/// Whether `pod` (from the API) is a mirror pod.
pub fn is_mirror(pod: &Pod) -> bool {
    pod.annotations().contains_key(ANNOTATION_MIRROR)
}

/// The pod a manifest describes, as this node runs it; `Err` says why the file is not one.
pub fn from_manifest(text: &str, node: &str) -> Result<Pod, String> {
    let mut pod: Pod = serde_yaml::from_str(text).map_err(|e| format!("not a Pod: {e}"))?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err("the pod has no metadata.name".into());
    }
    if pod.spec.is_none() {
        return Err("the pod has no spec".into());
    }
    // Hashed before this node's additions, with the node's name (upstream's getPodHash over the
    // decoded object and "host:<node>").
    let canonical = serde_json::to_vec(&pod).map_err(|e| e.to_string())?;
    let mut hashed = canonical;
    hashed.extend_from_slice(format!("host:{node}").as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &hashed);
    let uid: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = &mut pod.metadata;
    meta.name = Some(format!("{name}-{node}"));
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some("default".into());
    }
    meta.uid = Some(uid.clone());
    meta.resource_version = None;
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(ANNOTATION_HASH.into(), uid);
    annotations.insert(ANNOTATION_SOURCE.into(), "file".into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_string());
    // Upstream: a static pod tolerates every NoExecute taint (the node lifecycle controller must
    // not evict what only a file can remove).
    spec.tolerations
        .get_or_insert_with(Vec::new)
        .push(Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        });
    pod.status = None;
    Ok(pod)
}

/// The static pods of `dir`, by UID; files that are not pods are logged and skipped.
pub fn load(dir: &Path, node: &str) -> HashMap<String, Arc<Pod>> {
    let mut out = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(
                "kubelet: reading the pod manifest path {}: {e}",
                dir.display()
            );
            return out;
        }
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden || !path.is_file() {
            continue;
        }
        let pod = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| from_manifest(&text, node));
        match pod {
            Ok(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                out.insert(uid, Arc::new(pod));
            }
            Err(e) => tracing::warn!("kubelet: static pod manifest {}: {e}", path.display()),
        }
    }
    out
}

/// The mirror pod of static pod `pod`, owned by Node `node_uid`.
fn mirror_of(pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(ANNOTATION_MIRROR.into(), pod.uid().unwrap_or_default());
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            labels: pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.into(),
                uid: node_uid.into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: pod.spec.clone(),
        status: None,
    }
}

/// Deletes mirror pod `m` at once (a mirror has no containers of its own to wait for).
async fn delete_mirror(kubelet: &Kubelet, m: &Pod) {
    let api: Api<Pod> = Api::namespaced(kubelet.client.clone(), &m.namespace().unwrap_or_default());
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: m.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&m.name_any(), &now).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %m.name_any(), "kubelet: deleting mirror pod: {e}"),
    }
}

/// One pass: the directory's pods handed to the workers, and their mirror pods made to match.
async fn sync(kubelet: &Arc<Kubelet>, dir: &Path) {
    let pods = load(dir, &kubelet.node_name);
    for (uid, pod) in kubelet.set_static_pods(pods.clone()) {
        kubelet.notify(&pod.namespace().unwrap_or_default(), &pod.name_any(), &uid);
    }
    let node_uid = match Api::<Node>::all(kubelet.client.clone())
        .get(&kubelet.node_name)
        .await
    {
        Ok(n) => n.uid().unwrap_or_default(),
        Err(e) => {
            tracing::warn!("kubelet: reading its Node for mirror pods: {e}");
            return;
        }
    };
    for pod in pods.values() {
        let ns = pod.namespace().unwrap_or_default();
        let current = kubelet
            .pods
            .get(&ObjectRef::new(&pod.name_any()).within(&ns));
        match current {
            Some(m) if !is_mirror(&m) => {
                // A pod of the API holds the name: upstream leaves it and has no mirror.
                continue;
            }
            Some(m)
                if m.metadata.deletion_timestamp.is_none()
                    && m.annotations().get(ANNOTATION_MIRROR) == pod.uid().as_ref() =>
            {
                continue;
            }
            Some(m) => {
                // Deleted by someone, or the mirror of an older manifest: replaced.
                delete_mirror(kubelet, &m).await;
            }
            None => {}
        }
        let api: Api<Pod> = Api::namespaced(kubelet.client.clone(), &ns);
        match api
            .create(
                &PostParams::default(),
                &mirror_of(pod, &kubelet.node_name, &node_uid),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod.name_any(), "kubelet: creating mirror pod: {e}"),
        }
    }
    let wanted: std::collections::HashSet<(String, String)> = pods
        .values()
        .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
        .collect();
    for m in kubelet.pods.state() {
        let mine = m.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&kubelet.node_name);
        let key = (m.namespace().unwrap_or_default(), m.name_any());
        if mine && is_mirror(&m) && !wanted.contains(&key) {
            delete_mirror(kubelet, &m).await;
        }
    }
}

/// Reads `dir` now and every [`CHECK_EVERY`], and when `changed` says a mirror pod changed. Started
/// once the kubelet's pod store is ready (mirror pods are compared with it).
pub async fn run(
    kubelet: Arc<Kubelet>,
    dir: std::path::PathBuf,
    changed: Arc<tokio::sync::Notify>,
) {
    loop {
        sync(&kubelet, &dir).await;
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = changed.notified() => {
                // A burst of mirror events is one pass.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sleep, '3600']\n";

    #[test]
    fn manifests_become_node_pods() {
        let pod = from_manifest(MANIFEST, "n1").unwrap();
        assert_eq!(pod.name_any(), "web-n1");
        assert_eq!(pod.namespace().as_deref(), Some("default"));
        let uid = pod.uid().unwrap();
        assert_eq!(uid.len(), 32);
        assert_eq!(pod.annotations().get(ANNOTATION_HASH), Some(&uid));
        assert_eq!(
            pod.annotations().get(ANNOTATION_SOURCE).map(String::as_str),
            Some("file")
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(
            spec.tolerations.as_ref().unwrap()[0].effect.as_deref(),
            Some("NoExecute")
        );
        // Stable for the same file and node; another node or an edit is another pod.
        assert_eq!(
            from_manifest(MANIFEST, "n1").unwrap().uid(),
            Some(uid.clone())
        );
        assert_ne!(
            from_manifest(MANIFEST, "n2").unwrap().uid(),
            Some(uid.clone())
        );
        let edited = MANIFEST.replace("3600", "3601");
        assert_ne!(from_manifest(&edited, "n1").unwrap().uid(), Some(uid));
    }

    #[test]
    fn bad_manifests_are_refused() {
        assert!(from_manifest("kind: Pod\nspec: {containers: []}\n", "n1").is_err());
        assert!(from_manifest("[1, 2]", "n1").is_err());
        assert!(from_manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "n1").is_err());
    }

    #[test]
    fn mirror_pods_carry_the_hash_and_the_node_owner() {
        let pod = from_manifest(MANIFEST, "n1").unwrap();
        let m = mirror_of(&pod, "n1", "node-uid");
        assert!(is_mirror(&m));
        assert_eq!(m.annotations().get(ANNOTATION_MIRROR), pod.uid().as_ref());
        assert_eq!(m.metadata.uid, None);
        let owner = &m.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("Node", "n1", "node-uid", Some(true))
        );
    }

    #[test]
    fn a_directory_of_manifests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), MANIFEST).unwrap();
        std::fs::write(
            dir.path().join(".hidden.yaml"),
            MANIFEST.replace("web", "h"),
        )
        .unwrap();
        std::fs::write(dir.path().join("junk.txt"), "not: [a pod").unwrap();
        let pods = load(dir.path(), "n1");
        let names: Vec<String> = pods.values().map(|p| p.name_any()).collect();
        assert_eq!(names, ["web-n1"]);
        assert!(load(&dir.path().join("missing"), "n1").is_empty());
    }
}
