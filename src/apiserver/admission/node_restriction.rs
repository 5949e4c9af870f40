//! NodeRestriction (upstream's `plugin/pkg/admission/noderestriction`): a kubelet writes only what is
//! its own. The Node authorizer ([`crate::apiserver::authz::node`]) lets every node create, update and
//! delete pods, Nodes and Leases, since it cannot see the object written; this plugin, which can, holds
//! each node to:
//! - its own Node (by name), without changing its taints, setting `node-restriction.kubernetes.io/`
//!   labels, or adding `kubernetes.io`/`k8s.io` labels other than the kubelet's own (so a node cannot
//!   steer workloads meant for other nodes to itself);
//! - mirror pods bound to itself, with a controller reference to its Node and no references to
//!   secrets, config maps, service accounts or claims; status updates, deletions and evictions only of
//!   pods bound to itself;
//! - its own Lease in `kube-node-lease` and its own CSINode, PVC status changes only, and service
//!   account tokens bound to a pod running on it.
//!
//! Messages are upstream's: `pods "p" is forbidden: node "n1" can only delete pods with spec.nodeName
//! set to itself`.

use serde_json::Value;

use super::{Attributes, Operation, Plugin};
use crate::apiserver::authz::node::{node_identity, NODE_LEASE_NAMESPACE};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult};

/// Labels a kubelet may set on its Node although they are in `kubernetes.io` (upstream's
/// `kubeletapis.IsKubeletLabel`).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "node.kubernetes.io/windows-build",
];
/// Label namespaces a kubelet may use (and their subdomains).
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];
const NODE_RESTRICTION_NAMESPACE: &str = "node-restriction.kubernetes.io";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

pub struct NodeRestriction;

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Upstream's `admission.NewForbidden`: the request's name, else the object's (or its generateName).
fn forbidden(a: &Attributes<'_>, obj: Option<&Value>, why: impl AsRef<str>) -> ApiError {
    let name = if !a.name.is_empty() {
        a.name.to_string()
    } else {
        let obj = obj.unwrap_or(&Value::Null);
        [
            text(obj, "/metadata/name"),
            text(obj, "/metadata/generateName"),
        ]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or("Unknown")
        .to_string()
    };
    ApiError::forbidden(a.info, &name, why.as_ref())
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
    }
}

#[async_trait::async_trait]
impl Plugin for NodeRestriction {
    async fn admit(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        restrict(reg, a, Some(obj), old).await
    }

    async fn admit_delete(&self, reg: &Registry, a: &Attributes<'_>) -> ApiResult<()> {
        restrict(reg, a, None, None).await
    }
}

async fn restrict(
    reg: &Registry,
    a: &Attributes<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<()> {
    let Some(node) = a.user.and_then(node_identity) else {
        return Ok(());
    };
    if node.is_empty() {
        let user = a.user.map_or("", |u| u.name.as_str());
        return Err(forbidden(
            a,
            obj,
            format!("could not determine node from user {user:?}"),
        ));
    }
    let no = |why: String| Err(forbidden(a, obj, why));
    match (a.info.group.as_str(), a.info.plural.as_str(), a.sub) {
        ("", "pods", None) => match (a.op, obj) {
            (Operation::Create, Some(pod)) => mirror_pod(reg, node, pod).await?.map_or(Ok(()), no),
            (Operation::Delete, _) => {
                let existing = reg.get(a.info, a.ns, a.name).await?;
                if text(&existing, "/spec/nodeName") != node {
                    return no(format!(
                        "node {node:?} can only delete pods with spec.nodeName set to itself"
                    ));
                }
                Ok(())
            }
            (op, _) => no(format!(
                "unexpected operation {:?}, node {node:?} can only create and delete mirror pods",
                op_name(op)
            )),
        },
        ("", "pods", Some("status")) => {
            let (Operation::Update, Some(new), Some(old)) = (a.op, obj, old) else {
                return no(format!("unexpected operation {:?}", op_name(a.op)));
            };
            if text(old, "/spec/nodeName") != node {
                return no(format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself"));
            }
            if labels(new) != labels(old) {
                return no(format!(
                    "node {node:?} cannot update labels through pod status"
                ));
            }
            if claim_statuses(new) != claim_statuses(old) {
                return no(format!(
                    "node {node:?} cannot update resource claim statues"
                ));
            }
            Ok(())
        }
        ("", "pods", Some("eviction")) => {
            if a.op != Operation::Create {
                return no(format!("unexpected operation {}", op_name(a.op)));
            }
            let pod_name = if a.name.is_empty() {
                obj.map_or("", |e| text(e, "/metadata/name"))
            } else {
                a.name
            };
            if pod_name.is_empty() {
                return no("could not determine pod from request data".into());
            }
            let existing = reg.get(a.info, a.ns, pod_name).await?;
            if text(&existing, "/spec/nodeName") != node {
                return no(format!(
                    "node {node} can only evict pods with spec.nodeName set to itself"
                ));
            }
            Ok(())
        }
        ("", "pods", Some(sub)) => no(format!(
            "unexpected pod subresource {sub:?}, only 'status' and 'eviction' are allowed"
        )),
        ("", "nodes", _) => own_node(node, a, obj, old).map_or(Ok(()), no),
        ("", "persistentvolumeclaims", Some("status")) => match (a.op, obj, old) {
            (Operation::Update, Some(new), Some(old)) => {
                if pvc_unchanged_but_status(new, old) {
                    Ok(())
                } else {
                    no(format!("node {node:?} is not allowed to update fields other than status.capacity and status.conditions"))
                }
            }
            (op, _, _) => no(format!("unexpected operation {:?}", op_name(op))),
        },
        ("", "persistentvolumeclaims", _) => no("may only update PVC status".into()),
        ("", "serviceaccounts", Some("token")) if a.op == Operation::Create => {
            token_request(reg, a, node, obj.unwrap_or(&Value::Null))
                .await?
                .map_or(Ok(()), no)
        }
        ("coordination.k8s.io", "leases", _) => {
            if a.ns != Some(NODE_LEASE_NAMESPACE) {
                return no(format!(
                    "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
                ));
            }
            if object_name(a, obj) != node {
                return no(
                    "can only access node lease with the same name as the requesting node".into(),
                );
            }
            Ok(())
        }
        ("storage.k8s.io", "csinodes", _) => {
            if object_name(a, obj) != node {
                return no(
                    "can only access CSINode with the same name as the requesting node".into(),
                );
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The request's name, or on a create (which names nothing in its URL) the object's.
fn object_name<'a>(a: &Attributes<'a>, obj: Option<&'a Value>) -> &'a str {
    if a.op == Operation::Create {
        obj.map_or("", |o| text(o, "/metadata/name"))
    } else {
        a.name
    }
}

fn labels(obj: &Value) -> Option<&Value> {
    obj.pointer("/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
}

/// (name, resourceClaimName) of each of a pod's resource claim statuses.
fn claim_statuses(pod: &Value) -> Vec<(&str, Option<&str>)> {
    pod.pointer("/status/resourceClaimStatuses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        text(s, "/name"),
                        s.get("resourceClaimName").and_then(Value::as_str),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why a node may not create this pod: only mirror pods of its static pods, bound to it and owned by
/// its Node, referencing no other API objects.
async fn mirror_pod(reg: &Registry, node: &str, pod: &Value) -> ApiResult<Option<String>> {
    Ok(mirror_pod_refusal(reg, node, pod).await?.err())
}

/// `Ok(Err(why))` when refused; `Err` when the Node is missing (upstream answers its 404).
async fn mirror_pod_refusal(
    reg: &Registry,
    node: &str,
    pod: &Value,
) -> ApiResult<Result<(), String>> {
    if pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_ANNOTATION))
        .is_none()
    {
        return Ok(Err(format!("pod does not have {MIRROR_ANNOTATION:?} annotation, node {node:?} can only create mirror pods")));
    }
    if text(pod, "/spec/nodeName") != node {
        return Ok(Err(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        )));
    }
    let owners = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    match owners {
        [] => {
            return Ok(Err(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            )))
        }
        [owner] => {
            if text(owner, "/apiVersion") != "v1"
                || text(owner, "/kind") != "Node"
                || text(owner, "/name") != node
            {
                return Ok(Err(format!(
                    "node {node:?} can only create pods with an owner reference set to itself"
                )));
            }
            if owner.get("controller").and_then(Value::as_bool) != Some(true) {
                return Ok(Err(format!("node {node:?} can only create pods with a controller owner reference set to itself")));
            }
            if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
                return Ok(Err(format!(
                    "node {node:?} must not set blockOwnerDeletion on an owner reference"
                )));
            }
            let Some(nodes) = reg.catalog.find("", "v1", "nodes") else {
                return Ok(Ok(()));
            };
            let uid = match reg.get(&nodes, None, node).await {
                Ok(n) => text(&n, "/metadata/uid").to_string(),
                Err(e) if e.code == 404 => return Err(e),
                Err(e) => {
                    return Ok(Err(format!(
                        "error looking up node {node} to verify uid: {}",
                        e.message
                    )))
                }
            };
            if text(owner, "/uid") != uid {
                return Ok(Err(format!(
                    "node {node} UID mismatch: expected {} got {uid}",
                    text(owner, "/uid")
                )));
            }
        }
        _ => {
            return Ok(Err(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            )))
        }
    }
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    if !text(spec, "/serviceAccountName").is_empty() {
        return Ok(Err(format!(
            "node {node:?} can not create pods that reference a service account"
        )));
    }
    use crate::apiserver::authz::node::{pod_names, Kind};
    if !pod_names(pod, Kind::Secret).is_empty() {
        return Ok(Err(format!(
            "node {node:?} can not create pods that reference secrets"
        )));
    }
    if !pod_names(pod, Kind::ConfigMap).is_empty() {
        return Ok(Err(format!(
            "node {node:?} can not create pods that reference configmaps"
        )));
    }
    let volumes = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let projects = |source: &str| {
        volumes.iter().any(|v| {
            v.pointer("/projected/sources")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|s| s.get(source).is_some()))
        })
    };
    if projects("clusterTrustBundle") {
        return Ok(Err(format!(
            "node {node:?} can not create pods that reference clustertrustbundles"
        )));
    }
    if volumes
        .iter()
        .any(|v| v.get("persistentVolumeClaim").is_some())
    {
        return Ok(Err(format!(
            "node {node:?} can not create pods that reference persistentvolumeclaims"
        )));
    }
    Ok(Ok(()))
}

/// Why a node may not write this Node: only its own, never its taints or restricted labels.
fn own_node(
    node: &str,
    a: &Attributes<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Option<String> {
    let requested = object_name(a, obj);
    if requested != node {
        return Some(format!(
            "node {node:?} is not allowed to modify node {requested:?}"
        ));
    }
    let new = obj?;
    match (a.op, old) {
        (Operation::Create, _) => {
            if new
                .pointer("/spec/configSource")
                .is_some_and(|c| !c.is_null())
            {
                return Some(format!(
                    "node {node:?} is not allowed to create pods with a non-nil configSource"
                ));
            }
            let forbidden = forbidden_labels(new, &Value::Null);
            (!forbidden.is_empty()).then(|| {
                format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    forbidden.join(", ")
                )
            })
        }
        (Operation::Update, Some(old)) => {
            let source = new.pointer("/spec/configSource").filter(|c| !c.is_null());
            if source.is_some() && source != old.pointer("/spec/configSource") {
                return Some(format!("node {node:?} is not allowed to update configSource to a new non-nil configSource"));
            }
            let taints = |n: &Value| {
                n.pointer("/spec/taints")
                    .filter(|t| t.as_array().is_some_and(|a| !a.is_empty()))
                    .cloned()
            };
            if taints(new) != taints(old) {
                return Some(format!("node {node:?} is not allowed to modify taints"));
            }
            let forbidden = forbidden_labels(new, old);
            (!forbidden.is_empty())
                .then(|| format!("is not allowed to modify labels: {}", forbidden.join(", ")))
        }
        _ => None,
    }
}

/// The label keys added, removed or changed between two objects that a kubelet may not touch, sorted.
fn forbidden_labels(new: &Value, old: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let map = |o: &Value| -> serde_json::Map<String, Value> {
        o.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    let (new, old) = (map(new), map(old));
    let mut out: Vec<String> = new
        .keys()
        .chain(old.keys())
        .filter(|k| new.get(*k) != old.get(*k))
        .filter(|k| !kubelet_may_set(k))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn in_domain(ns: &str, domain: &str) -> bool {
    ns == domain || ns.ends_with(&format!(".{domain}"))
}

/// Whether a kubelet may add, change or remove this label on its Node.
fn kubelet_may_set(key: &str) -> bool {
    let ns = label_namespace(key);
    if in_domain(ns, NODE_RESTRICTION_NAMESPACE) {
        return false;
    }
    let kubernetes = in_domain(ns, "kubernetes.io") || in_domain(ns, "k8s.io");
    !kubernetes
        || KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES.iter().any(|d| in_domain(ns, d))
}

/// Whether a PVC status update changes only what a kubelet reports (capacity, conditions, and the
/// expansion-recovery fields).
fn pvc_unchanged_but_status(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
            for f in [
                "capacity",
                "conditions",
                "allocatedResources",
                "allocatedResourceStatuses",
            ] {
                status.remove(f);
            }
        }
        v
    };
    strip(new) == strip(old)
}

/// Why a node may not request this token: it must be bound to a pod (by name and UID) running on
/// the node.
async fn token_request(
    reg: &Registry,
    a: &Attributes<'_>,
    node: &str,
    request: &Value,
) -> ApiResult<Option<String>> {
    let r = request
        .pointer("/spec/boundObjectRef")
        .unwrap_or(&Value::Null);
    if r.is_null()
        || text(r, "/apiVersion") != "v1"
        || text(r, "/kind") != "Pod"
        || text(r, "/name").is_empty()
    {
        return Ok(Some("node requested token not bound to a pod".into()));
    }
    if text(r, "/uid").is_empty() {
        return Ok(Some(
            "node requested token with a pod binding without a uid".into(),
        ));
    }
    let Some(pods) = reg.catalog.find("", "v1", "pods") else {
        return Ok(None);
    };
    let pod = reg.get(&pods, a.ns, text(r, "/name")).await?;
    if text(r, "/uid") != text(&pod, "/metadata/uid") {
        return Ok(Some(format!("the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated", text(r, "/uid"))));
    }
    if text(&pod, "/spec/nodeName") != node {
        return Ok(Some(
            "node requested token bound to a pod scheduled on a different node".into(),
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubelet_labels_as_upstream() {
        for ok in [
            "kubernetes.io/hostname",
            "kubernetes.io/os",
            "topology.kubernetes.io/zone",
            "node.kubernetes.io/instance-type",
            "kubelet.kubernetes.io/anything",
            "foo.node.kubernetes.io/x",
            "example.com/team",
            "plain",
        ] {
            assert!(kubelet_may_set(ok), "{ok}");
        }
        for no in [
            "node-role.kubernetes.io/control-plane",
            "node-restriction.kubernetes.io/trusted",
            "a.node-restriction.kubernetes.io/x",
            "kubernetes.io/role",
            "x.k8s.io/y",
        ] {
            assert!(!kubelet_may_set(no), "{no}");
        }
    }

    #[test]
    fn forbidden_labels_are_the_changed_ones() {
        let old = json!({"metadata": {"labels": {"node-role.kubernetes.io/a": "", "kubernetes.io/os": "linux"}}});
        let same = old.clone();
        assert!(forbidden_labels(&same, &old).is_empty());
        let new = json!({"metadata": {"labels": {"kubernetes.io/os": "windows", "node-role.kubernetes.io/b": ""}}});
        assert_eq!(
            forbidden_labels(&new, &old),
            vec!["node-role.kubernetes.io/a", "node-role.kubernetes.io/b"]
        );
    }

    #[test]
    fn pvc_status_may_change_capacity_only() {
        let old = json!({"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}, "spec": {"volumeName": "v"},
                         "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}});
        let grown = json!({"metadata": {"resourceVersion": "2", "labels": {"a": "b"}}, "spec": {"volumeName": "v"},
                           "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}, "conditions": []}});
        assert!(pvc_unchanged_but_status(&grown, &old));
        let relabelled = json!({"metadata": {"labels": {"a": "c"}}, "spec": {"volumeName": "v"},
                                "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}});
        assert!(!pvc_unchanged_but_status(&relabelled, &old));
    }
}
