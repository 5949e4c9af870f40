//! ControllerRevision history shared by the DaemonSet and StatefulSet controllers (upstream's
//! pkg/controller/history and the controllers' `getPatch`/`Match`/`truncateHistory`).
//!
//! A revision snapshots a pod template as upstream stores it: `data` is the strategic-merge patch
//! `{"spec":{"template":{...,"$patch":"replace"}}}` with keys sorted (upstream round-trips the object
//! through a Go map before marshalling, which sorts keys), so two revisions hold the same template
//! exactly when their data bytes are equal. Start at [`template_patch`] and [`owned`].
//!
//! Hashes: the StatefulSet names its revisions `<set>-<hash>` with upstream's HashControllerRevision
//! (FNV-1 32 over the data bytes, then the collision count in decimal); the DaemonSet names them
//! `<ds>-<hash>` with the pod-template hash the Deployment controller uses. The data bytes differ from
//! upstream's where Go marshals empty structs (`"resources":{}`, `"creationTimestamp":null`), so the
//! hashes are stable here but not equal to upstream's for the same template.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::ResourceExt;
use serde_json::{json, Map, Value};

use super::common;

/// The label a revision and the pods created from it carry (apps.ControllerRevisionHashLabelKey).
pub const HASH_LABEL: &str = "controller-revision-hash";

/// Upstream's default `revisionHistoryLimit` for DaemonSets and StatefulSets.
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// `v` with every object's keys in sorted order (what Go's map marshalling produces).
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The bytes Go's json.Marshal writes for `v`: compact, keys sorted, and `<`, `>`, `&`, U+2028 and
/// U+2029 escaped (Go escapes them for HTML safety; they can only occur inside strings).
pub fn go_json(v: &Value) -> String {
    serde_json::to_string(&canonical(v))
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The revision data for a template (upstream's getPatch).
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    canonical(&json!({"spec": {"template": t}}))
}

/// Whether a revision holds exactly `patch` (upstream's Match / history.EqualRevision).
pub fn holds(rev: &ControllerRevision, patch: &Value) -> bool {
    rev.data
        .as_ref()
        .is_some_and(|d| go_json(&d.0) == go_json(patch))
}

/// The template a revision restores (upstream's ApplyRevision: the patch replaces spec.template).
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// Upstream's HashControllerRevision: FNV-1 (32 bit) over the data bytes and the collision count,
/// encoded with SafeEncodeString.
pub fn revision_hash(data: &Value, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h = h.wrapping_mul(0x01000193);
            h ^= *b as u32;
        }
    };
    feed(go_json(data).as_bytes());
    if let Some(c) = collision_count {
        feed(c.to_string().as_bytes());
    }
    super::deployment::safe_encode(&h.to_string())
}

/// Upstream's ControllerRevisionName: the prefix cut to 223 characters so the name stays valid.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let prefix: String = prefix.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// The revisions in `ns` controlled by the object with `uid`, oldest revision first (ties by name, as
/// upstream's byRevision sort is stable over a name-ordered list).
pub fn owned(
    store: &Store<ControllerRevision>,
    ns: &str,
    uid: &str,
) -> Vec<Arc<ControllerRevision>> {
    let mut revs: Vec<Arc<ControllerRevision>> = store
        .state()
        .into_iter()
        .filter(|r| {
            r.namespace().as_deref() == Some(ns)
                && r.metadata.deletion_timestamp.is_none()
                && common::controller_of(r.as_ref()).is_some_and(|o| o.uid == uid)
        })
        .collect();
    revs.sort_by_key(|a| (a.revision, a.name_any()));
    revs
}

/// The revision number after the newest of `revs` (upstream's nextRevision).
pub fn next_revision(revs: &[Arc<ControllerRevision>]) -> i64 {
    revs.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// Deletes the oldest of `candidates` (revisions no pod uses and that are neither current nor the
/// update target, oldest first) beyond `limit` (upstream's truncateHistory / cleanupHistory).
pub async fn truncate(
    api: &Api<ControllerRevision>,
    candidates: &[Arc<ControllerRevision>],
    limit: i32,
) {
    let limit = limit.max(0) as usize;
    if candidates.len() <= limit {
        return;
    }
    for rev in &candidates[..candidates.len() - limit] {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: rev.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        if let Err(e) = api.delete(&rev.name_any(), &dp).await {
            tracing::debug!("deleting revision {}: {e}", rev.name_any());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::runtime::RawExtension;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn patch_replaces_the_template_with_sorted_keys() {
        let p = template_patch(&template("nginx"));
        assert_eq!(
            go_json(&p),
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"image":"nginx","name":"c"}]}}}}"#
        );
    }

    #[test]
    fn go_escapes_html_characters() {
        assert_eq!(
            go_json(&json!({"a": "<&>"})),
            r#"{"a":"\u003c\u0026\u003e"}"#
        );
    }

    #[test]
    fn template_round_trips_through_a_revision() {
        let t = template("nginx:1.27");
        let rev = ControllerRevision {
            data: Some(RawExtension(template_patch(&t))),
            ..Default::default()
        };
        assert_eq!(template_of(&rev), Some(t.clone()));
        assert!(holds(&rev, &template_patch(&t)));
        assert!(!holds(&rev, &template_patch(&template("nginx"))));
    }

    #[test]
    fn revision_hash_is_fnv1_and_moves_with_collisions() {
        // FNV-1 32 of the empty input is the offset basis, 2166136261.
        let mut h: u32 = 0x811c9dc5;
        for b in b"{}" {
            h = h.wrapping_mul(0x01000193);
            h ^= *b as u32;
        }
        assert_eq!(
            revision_hash(&json!({}), None),
            crate::controllers::deployment::safe_encode(&h.to_string())
        );
        let data = template_patch(&template("nginx"));
        assert_eq!(revision_hash(&data, None), revision_hash(&data, None));
        assert_ne!(revision_hash(&data, None), revision_hash(&data, Some(1)));
        assert_ne!(
            revision_hash(&data, None),
            revision_hash(&template_patch(&template("nginx:2")), None)
        );
    }

    #[test]
    fn long_prefixes_are_cut() {
        let name = revision_name(&"x".repeat(300), "abc");
        assert_eq!(name.len(), 223 + 4);
    }
}
