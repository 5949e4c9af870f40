//! The Node authorizer (upstream's `--authorization-mode=Node`): what a kubelet may read and write.
//!
//! A kubelet acts as `system:node:<name>` in group `system:nodes` ([`node_identity`]). The only RBAC
//! binding of that group is kubeadm's for certificate rotation (`selfnodeclient`, see
//! [`crate::kubelet::join`]); upstream's `system:node` ClusterRoleBinding has no subjects. Instead
//! this authorizer, asked before RBAC, allows a node what upstream's allows it:
//! - Secrets, ConfigMaps, PersistentVolumeClaims, PersistentVolumes, VolumeAttachments, ResourceClaims
//!   and ServiceAccount tokens only when the object is *related* to the node: referenced by a pod bound
//!   to it (`node <- pod <- secret`, `node <- pod <- pvc <- pv <- secret`, ...). Upstream keeps these
//!   edges in a graph fed by informers; here [`Relations`] answers the same question from the watch
//!   cache at request time, scanning only the pods of the object's namespace.
//! - Its own Node (read; writes are limited to its own by NodeRestriction admission), pods bound to it
//!   (a list or watch must carry the `spec.nodeName=<node>` field selector), its own Lease in
//!   `kube-node-lease` and its own CSINode.
//! - Everything else by the static rules of the `system:node` ClusterRole (events, services, reviews,
//!   CSRs, ...).
//!
//! Reasons are upstream's: `kubectl` shows them after the forbidden message, e.g. `... cannot get
//! resource "secrets" ... in the namespace "ns": no relationship found between node 'n1' and this object`.

use std::sync::Arc;

use serde_json::Value;

use super::rbac::PolicyRule;
use super::{Attributes, Decision, User};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::registry::watch_cache::ResourceCache;

/// The group every kubelet's credentials carry.
pub const NODES_GROUP: &str = "system:nodes";
/// A kubelet's user name is this prefix and its node's name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is (upstream's `NodeIdentity`): `Some(name)` for `system:node:<name>` in
/// `system:nodes` (`Some("")` when the name is missing: a node, but not one that can be told apart),
/// `None` for everybody else.
pub fn node_identity(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.in_group(NODES_GROUP).then_some(name)
}

/// The authorizer: the static rules nodes share, from the bootstrap policy's `system:node` role.
pub struct NodeAuthorizer {
    rules: Vec<PolicyRule>,
}

impl Default for NodeAuthorizer {
    fn default() -> Self {
        let rules = super::bootstrap_policy::cluster_roles()
            .iter()
            .find(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some("system:node"))
            .map(PolicyRule::list_of)
            .unwrap_or_default();
        NodeAuthorizer { rules }
    }
}

fn allow() -> Decision {
    Decision {
        allowed: true,
        reason: String::new(),
    }
}

fn no_opinion(reason: impl Into<String>) -> Decision {
    Decision {
        allowed: false,
        reason: reason.into(),
    }
}

impl NodeAuthorizer {
    /// `None` when the user is not a node (the next authorizer decides alone); otherwise allowed, or
    /// no opinion with upstream's reason.
    pub fn authorize(&self, reg: &Registry, user: &User, attrs: &Attributes) -> Option<Decision> {
        let node = node_identity(user)?;
        if node.is_empty() {
            return Some(no_opinion(format!("unknown node for user {:?}", user.name)));
        }
        let rel = Relations { reg, node };
        if attrs.resource_request {
            let decided = match (attrs.api_group.as_str(), attrs.resource.as_str()) {
                ("", "secrets") => Some(read_namespaced(&rel, Kind::Secret, attrs)),
                ("", "configmaps") => Some(read_namespaced(&rel, Kind::ConfigMap, attrs)),
                ("", "persistentvolumeclaims") if attrs.subresource == "status" => {
                    Some(status_update(&rel, Kind::Pvc, attrs))
                }
                ("", "persistentvolumeclaims") => Some(get_related(&rel, Kind::Pvc, attrs)),
                ("", "persistentvolumes") => Some(get_related(&rel, Kind::Pv, attrs)),
                ("resource.k8s.io", "resourceclaims") => {
                    Some(get_related(&rel, Kind::ResourceClaim, attrs))
                }
                ("storage.k8s.io", "volumeattachments") => {
                    Some(get_related(&rel, Kind::VolumeAttachment, attrs))
                }
                ("", "serviceaccounts") => Some(create_token(&rel, attrs)),
                ("coordination.k8s.io", "leases") => Some(own_named(
                    node,
                    attrs,
                    "a node lease",
                    "node lease",
                    Some(NODE_LEASE_NAMESPACE),
                )),
                ("storage.k8s.io", "csinodes") => {
                    Some(own_named(node, attrs, "a CSINode", "CSINode", None))
                }
                ("", "nodes") => Some(own_node(node, attrs)),
                ("", "pods") => Some(pods(&rel, attrs)),
                _ => None,
            };
            if let Some(d) = decided {
                return Some(d);
            }
        }
        // Everything else is not subdivided: the static rules every node shares.
        Some(if self.rules.iter().any(|r| r.allows(attrs)) {
            allow()
        } else {
            no_opinion("")
        })
    }
}

/// What a node may reach through the pods bound to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Pod,
    Secret,
    ConfigMap,
    Pvc,
    Pv,
    ResourceClaim,
    VolumeAttachment,
    ServiceAccount,
}

/// get, list and watch of one named object in a namespace (secrets, configmaps).
fn read_namespaced(rel: &Relations, kind: Kind, attrs: &Attributes) -> Decision {
    if !matches!(attrs.verb.as_str(), "get" | "list" | "watch") {
        return no_opinion("can only read resources of this type");
    }
    if !attrs.subresource.is_empty() {
        return no_opinion("cannot read subresource");
    }
    if attrs.namespace.is_empty() {
        return no_opinion("can only read namespaced object of this type");
    }
    related(rel, kind, attrs)
}

/// get of one related object (pvcs, pvs, volume attachments, resource claims, pods).
fn get_related(rel: &Relations, kind: Kind, attrs: &Attributes) -> Decision {
    if attrs.verb != "get" {
        return no_opinion("can only get individual resources of this type");
    }
    if !attrs.subresource.is_empty() {
        return no_opinion("cannot get subresource");
    }
    related(rel, kind, attrs)
}

/// update or patch of a related object's status (pvcs).
fn status_update(rel: &Relations, kind: Kind, attrs: &Attributes) -> Decision {
    if !matches!(attrs.verb.as_str(), "update" | "patch") {
        return no_opinion("can only get/update/patch this type");
    }
    related(rel, kind, attrs)
}

/// create of the token subresource of a service account a pod on the node runs as.
fn create_token(rel: &Relations, attrs: &Attributes) -> Decision {
    if attrs.verb != "create" || attrs.name.is_empty() {
        return no_opinion("can only create tokens for individual service accounts");
    }
    if attrs.subresource != "token" {
        return no_opinion("can only create token subresource of serviceaccount");
    }
    related(rel, Kind::ServiceAccount, attrs)
}

fn related(rel: &Relations, kind: Kind, attrs: &Attributes) -> Decision {
    if attrs.name.is_empty() {
        return no_opinion("No Object name found");
    }
    if rel.has_path(kind, &attrs.namespace, &attrs.name) {
        allow()
    } else {
        no_opinion(format!(
            "no relationship found between node '{}' and this object",
            rel.node
        ))
    }
}

/// Objects named after the node: its Lease (in `kube-node-lease`) and its CSINode. A create names no
/// object in the URL; NodeRestriction checks the created object's name.
fn own_named(
    node: &str,
    attrs: &Attributes,
    what: &str,
    same: &str,
    namespace: Option<&str>,
) -> Decision {
    let verb = attrs.verb.as_str();
    if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
        return no_opinion(format!(
            "can only get, create, update, patch, or delete {what}"
        ));
    }
    match namespace {
        Some(ns) if attrs.namespace != ns => {
            return no_opinion(format!(
                "can only access leases in the {ns:?} system namespace"
            ))
        }
        None if !attrs.subresource.is_empty() => {
            return no_opinion(format!("cannot authorize {same} subresources"))
        }
        _ => {}
    }
    if verb != "create" && attrs.name != node {
        return no_opinion(format!(
            "can only access {same} with the same name as the requesting node"
        ));
    }
    allow()
}

/// The node's own Node object (upstream's AuthorizeNodeWithSelectors, on in v1.33).
fn own_node(node: &str, attrs: &Attributes) -> Decision {
    match (attrs.subresource.as_str(), attrs.verb.as_str()) {
        // NodeRestriction limits these writes to the node's own object.
        ("", "create" | "update" | "patch") | ("status", "update" | "patch") => allow(),
        ("", "get" | "list" | "watch") if attrs.name == node => allow(),
        ("", "get" | "list" | "watch") if attrs.name.is_empty() => no_opinion(format!(
            "node '{node}' cannot read all nodes, only its own Node object"
        )),
        ("", "get" | "list" | "watch") => no_opinion(format!(
            "node '{node}' cannot read '{}', only its own Node object",
            attrs.name
        )),
        _ => no_opinion(""),
    }
}

/// Pods: the node's own (NodeRestriction checks creates, deletes, status and evictions).
fn pods(rel: &Relations, attrs: &Attributes) -> Decision {
    match (attrs.subresource.as_str(), attrs.verb.as_str()) {
        ("", "get") => get_related(rel, Kind::Pod, attrs),
        ("", "list" | "watch") => {
            if attrs.field_equals("spec.nodeName") == Some(rel.node) {
                allow()
            } else if !attrs.name.is_empty() {
                related(rel, Kind::Pod, attrs)
            } else {
                no_opinion("can only list/watch pods with spec.nodeName field selector")
            }
        }
        ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
            allow()
        }
        _ => no_opinion(""),
    }
}

/// Answers "is this object related to the node?" from the watch cache: the pods bound to the node in
/// the object's namespace, and what they reference (upstream's node graph, computed on demand).
struct Relations<'a> {
    reg: &'a Registry,
    node: &'a str,
}

impl Relations<'_> {
    /// The cache of a resource, its key prefix, and whether it is namespaced.
    fn resource(&self, group: &str, plural: &str) -> Option<(Arc<ResourceCache>, String, bool)> {
        // resource.k8s.io and the like may be served at a beta version only.
        let info = ["v1", "v1beta1", "v1beta2"]
            .iter()
            .find_map(|v| self.reg.catalog.find(group, v, plural))?;
        let cache = self.reg.cache.resource(&info.storage_prefix)?;
        Some((cache, info.storage_prefix.clone(), info.namespaced))
    }

    fn objects(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some((cache, prefix, namespaced)) = self.resource(group, plural) else {
            return Vec::new();
        };
        let prefix = match ns {
            Some(ns) if namespaced => format!("{prefix}{ns}/"),
            _ => prefix,
        };
        cache.list(&prefix, 0).0
    }

    /// A cluster-scoped object.
    fn object(&self, group: &str, plural: &str, name: &str) -> Option<Arc<Value>> {
        let (cache, prefix, _) = self.resource(group, plural)?;
        cache.get(&format!("{prefix}{name}"))
    }

    /// Whether a pod in `ns` bound to this node satisfies `f`. The pods are visited in the cache,
    /// not copied: this runs on every related read a kubelet makes (benches/node_authorizer_bench.py).
    fn any_pod(&self, ns: &str, f: impl Fn(&Value) -> bool) -> bool {
        let Some((cache, prefix, _)) = self.resource("", "pods") else {
            return false;
        };
        // The node is read from the pod's view, so only this node's pods are decoded.
        cache.any(&format!("{prefix}{ns}/"), |p| {
            let on_node = match p.view_for(std::iter::once("spec.nodeName")) {
                Some(view) => node_name(view) == self.node,
                None => node_name(&p.tree()) == self.node,
            };
            on_node && f(&p.tree())
        })
    }

    fn has_path(&self, kind: Kind, ns: &str, name: &str) -> bool {
        match kind {
            Kind::VolumeAttachment => self
                .object("storage.k8s.io", "volumeattachments", name)
                .is_some_and(|va| text(&va, "/spec/nodeName") == self.node),
            Kind::Pv => self.pv_related(name),
            Kind::Pod => self.resource("", "pods").is_some_and(|(cache, prefix, _)| {
                cache
                    .get(&format!("{prefix}{ns}/{name}"))
                    .is_some_and(|p| node_name(&p) == self.node)
            }),
            Kind::Secret | Kind::ConfigMap => {
                self.any_pod(ns, |p| pod_references(p, kind, name))
                    || (kind == Kind::ConfigMap && self.node_config_source(ns, name))
                    || (kind == Kind::Secret && self.pv_secret_related(ns, name))
            }
            _ => self.any_pod(ns, |p| pod_references(p, kind, name)),
        }
    }

    /// `node <- pod <- pvc <- pv`: the PV's claim is used by a pod on the node.
    fn pv_related(&self, name: &str) -> bool {
        self.object("", "persistentvolumes", name)
            .is_some_and(|pv| self.claim_related(&pv))
    }

    fn claim_related(&self, pv: &Value) -> bool {
        let (ns, claim) = (
            text(pv, "/spec/claimRef/namespace"),
            text(pv, "/spec/claimRef/name"),
        );
        !claim.is_empty() && self.any_pod(ns, |p| pod_references(p, Kind::Pvc, claim))
    }

    /// `node <- pod <- pvc <- pv <- secret`: a secret a PV's source names, for a PV the node uses.
    fn pv_secret_related(&self, ns: &str, name: &str) -> bool {
        self.objects("", "persistentvolumes", None)
            .iter()
            .filter(|pv| {
                let mut refs = Vec::new();
                pv_secret_refs(
                    pv.get("spec").unwrap_or(&Value::Null),
                    text(pv, "/spec/claimRef/namespace"),
                    &mut refs,
                );
                refs.iter().any(|(n, s)| *n == ns && *s == name)
            })
            .any(|pv| self.claim_related(pv))
    }

    /// `node <- configmap`: the node's (deprecated) dynamic config source.
    fn node_config_source(&self, ns: &str, name: &str) -> bool {
        self.object("", "nodes", self.node).is_some_and(|n| {
            text(&n, "/spec/configSource/configMap/namespace") == ns
                && text(&n, "/spec/configSource/configMap/name") == name
        })
    }
}

fn node_name(pod: &Value) -> &str {
    pod.get("spec")
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Whether the pod references `name` as a `kind` (upstream's VisitPodSecretNames /
/// VisitPodConfigmapNames over every container, and the pod's PVCs, service account and claims).
fn pod_references(pod: &Value, kind: Kind, name: &str) -> bool {
    pod_names(pod, kind).iter().any(|n| n == name)
}

/// The names of the `kind` objects a pod references (NodeRestriction refuses mirror pods with any).
pub(crate) fn pod_names(pod: &Value, kind: Kind) -> Vec<String> {
    let mut found = Vec::new();
    pod_refs(pod, kind, &mut found);
    found
}

fn pod_refs(pod: &Value, kind: Kind, out: &mut Vec<String>) {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let mut push = |s: &str| {
        if !s.is_empty() {
            out.push(s.to_string())
        }
    };
    let containers = ["/containers", "/initContainers", "/ephemeralContainers"]
        .iter()
        .flat_map(|p| items(spec, p));
    match kind {
        Kind::Secret => {
            for s in items(spec, "/imagePullSecrets") {
                push(text(s, "/name"));
            }
            for c in containers {
                for e in items(c, "/envFrom") {
                    push(text(e, "/secretRef/name"));
                }
                for e in items(c, "/env") {
                    push(text(e, "/valueFrom/secretKeyRef/name"));
                }
            }
            for v in items(spec, "/volumes") {
                push(text(v, "/secret/secretName"));
                push(text(v, "/azureFile/secretName"));
                push(text(v, "/csi/nodePublishSecretRef/name"));
                for source in [
                    "cephfs",
                    "cinder",
                    "flexVolume",
                    "rbd",
                    "scaleIO",
                    "iscsi",
                    "storageos",
                ] {
                    push(text(v, &format!("/{source}/secretRef/name")));
                }
                for p in items(v, "/projected/sources") {
                    push(text(p, "/secret/name"));
                }
            }
        }
        Kind::ConfigMap => {
            for c in containers {
                for e in items(c, "/envFrom") {
                    push(text(e, "/configMapRef/name"));
                }
                for e in items(c, "/env") {
                    push(text(e, "/valueFrom/configMapKeyRef/name"));
                }
            }
            for v in items(spec, "/volumes") {
                push(text(v, "/configMap/name"));
                for p in items(v, "/projected/sources") {
                    push(text(p, "/configMap/name"));
                }
            }
        }
        Kind::Pvc => {
            let pod_name = text(pod, "/metadata/name");
            for v in items(spec, "/volumes") {
                push(text(v, "/persistentVolumeClaim/claimName"));
                // A generic ephemeral volume's claim is named after the pod and the volume.
                if v.get("ephemeral").is_some() {
                    push(&format!("{pod_name}-{}", text(v, "/name")));
                }
            }
        }
        Kind::ServiceAccount => push(text(spec, "/serviceAccountName")),
        Kind::ResourceClaim => {
            for s in items(pod, "/status/resourceClaimStatuses") {
                push(text(s, "/resourceClaimName"));
            }
            for c in items(spec, "/resourceClaims") {
                push(text(c, "/resourceClaimName"));
            }
        }
        Kind::Pod | Kind::Pv | Kind::VolumeAttachment => {}
    }
}

/// The (namespace, name) of every secret a PV's source names: `*SecretRef`/`secretRef` objects
/// (CSI, RBD, CephFS, iSCSI, ...) and azureFile's `secretName` (in `secretNamespace`, else the claim's).
fn pv_secret_refs<'a>(v: &'a Value, claim_ns: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    let Some(map) = v.as_object() else { return };
    for (key, value) in map {
        if key.ends_with("SecretRef") || key == "secretRef" {
            let ns = text(value, "/namespace");
            out.push((
                if ns.is_empty() { claim_ns } else { ns },
                text(value, "/name"),
            ));
        } else if key == "azureFile" {
            let ns = text(value, "/secretNamespace");
            out.push((
                if ns.is_empty() { claim_ns } else { ns },
                text(value, "/secretName"),
            ));
        } else if value.is_object() {
            pv_secret_refs(value, claim_ns, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> User {
        User::new(format!("system:node:{name}"), vec![NODES_GROUP.into()])
    }

    #[test]
    fn identity_needs_prefix_and_group() {
        assert_eq!(node_identity(&node("n1")), Some("n1"));
        assert_eq!(node_identity(&node("")), Some(""));
        assert_eq!(
            node_identity(&User::new("system:node:n1", vec![])),
            None,
            "not in system:nodes"
        );
        assert_eq!(
            node_identity(&User::new("alice", vec![NODES_GROUP.into()])),
            None
        );
    }

    #[test]
    fn pod_references_every_place_upstream_visits() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "serviceAccountName": "sa",
            "imagePullSecrets": [{"name": "pull"}],
            "initContainers": [{"envFrom": [{"secretRef": {"name": "init-env"}}]}],
            "containers": [{"env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}]}],
            "volumes": [
                {"name": "s", "secret": {"secretName": "vol-secret"}},
                {"name": "c", "configMap": {"name": "vol-cm"}},
                {"name": "x", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
                {"name": "r", "rbd": {"secretRef": {"name": "rbd-secret"}}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}}]}});
        for s in [
            "pull",
            "init-env",
            "env-secret",
            "vol-secret",
            "proj-secret",
            "rbd-secret",
        ] {
            assert!(pod_references(&pod, Kind::Secret, s), "{s}");
        }
        assert!(!pod_references(&pod, Kind::Secret, "env-cm"));
        for c in ["env-cm", "vol-cm", "proj-cm"] {
            assert!(pod_references(&pod, Kind::ConfigMap, c), "{c}");
        }
        assert!(pod_references(&pod, Kind::Pvc, "data"));
        assert!(pod_references(&pod, Kind::Pvc, "p-e"));
        assert!(pod_references(&pod, Kind::ServiceAccount, "sa"));
        assert!(!pod_references(&pod, Kind::ServiceAccount, "default"));
    }

    #[test]
    fn pv_secrets_default_to_the_claims_namespace() {
        let spec = json!({"csi": {"nodePublishSecretRef": {"name": "a", "namespace": "x"},
                                  "controllerExpandSecretRef": {"name": "b"}},
                          "azureFile": {"secretName": "c"}});
        let mut refs = Vec::new();
        pv_secret_refs(&spec, "claims", &mut refs);
        refs.sort();
        assert_eq!(refs, vec![("claims", "b"), ("claims", "c"), ("x", "a")]);
    }

    fn attrs(verb: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_version: "v1".into(),
            namespace: ns.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn own_objects_by_name() {
        let get = |name: &str| own_node("n1", &attrs("get", "nodes", "", "", name));
        assert!(get("n1").allowed);
        assert_eq!(
            get("n2").reason,
            "node 'n1' cannot read 'n2', only its own Node object"
        );
        assert_eq!(
            get("").reason,
            "node 'n1' cannot read all nodes, only its own Node object"
        );
        assert!(!own_node("n1", &attrs("delete", "nodes", "", "", "n1")).allowed);
        let lease = |verb: &str, ns: &str, name: &str| {
            own_named(
                "n1",
                &attrs(verb, "leases", "", ns, name),
                "a node lease",
                "node lease",
                Some(NODE_LEASE_NAMESPACE),
            )
        };
        assert!(lease("update", NODE_LEASE_NAMESPACE, "n1").allowed);
        assert!(lease("create", NODE_LEASE_NAMESPACE, "").allowed);
        assert_eq!(
            lease("update", NODE_LEASE_NAMESPACE, "n2").reason,
            "can only access node lease with the same name as the requesting node"
        );
        assert_eq!(
            lease("get", "default", "n1").reason,
            r#"can only access leases in the "kube-node-lease" system namespace"#
        );
        assert_eq!(
            lease("list", NODE_LEASE_NAMESPACE, "").reason,
            "can only get, create, update, patch, or delete a node lease"
        );
    }

    #[test]
    fn static_rules_are_the_system_node_role() {
        let a = NodeAuthorizer::default();
        assert!(!a.rules.is_empty());
        let events = attrs("create", "events", "", "default", "");
        assert!(a.rules.iter().any(|r| r.allows(&events)));
        let deploys = Attributes {
            api_group: "apps".into(),
            ..attrs("list", "deployments", "", "default", "")
        };
        assert!(!a.rules.iter().any(|r| r.allows(&deploys)));
    }
}
