//! The selector of upstream's cluster-default topology spread constraints (helper.DefaultSelector):
//! the pods that belong with a pod are those its Services select and those of its controller.
//!
//! The union (AND) of: the selectors of every Service in the pod's namespace that selects the pod
//! (a Service without a selector selects nothing), and the selector of the pod's controller (its
//! `controller: true` ownerReference) when that is a ReplicationController, ReplicaSet or
//! StatefulSet found by name in the namespace. An empty result means no default constraints.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::scheduler::cache::PodInfo;
use crate::scheduler::objects::Objects;

/// A LabelSelector's requirements, `matchLabels` as single-value `In` (LabelSelectorAsSelector).
fn requirements(sel: &LabelSelector) -> Vec<LabelSelectorRequirement> {
    let mut out: Vec<LabelSelectorRequirement> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| LabelSelectorRequirement {
            key: k.clone(),
            operator: "In".into(),
            values: Some(vec![v.clone()]),
        })
        .collect();
    out.extend(sel.match_expressions.iter().flatten().cloned());
    out
}

/// The default selector for `pod`, or None when nothing selects it (no default constraints).
pub fn for_pod(pod: &PodInfo, objects: &Objects) -> Option<LabelSelector> {
    let labels = pod.labels();
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for svc in objects.services.in_namespace(&pod.namespace) {
        let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        if sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut exprs = Vec::new();
    let owner = pod
        .pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    if let Some(owner) = owner {
        let ns = &pod.namespace;
        match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("v1", "ReplicationController") => {
                if let Some(rc) = objects.replication_controllers.get(ns, &owner.name) {
                    let sel = rc.spec.as_ref().and_then(|s| s.selector.as_ref());
                    set.extend(
                        sel.into_iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.clone())),
                    );
                }
            }
            ("apps/v1", "ReplicaSet") => {
                if let Some(rs) = objects.replica_sets.get(ns, &owner.name) {
                    exprs.extend(rs.spec.iter().flat_map(|s| requirements(&s.selector)));
                }
            }
            ("apps/v1", "StatefulSet") => {
                if let Some(ss) = objects.stateful_sets.get(ns, &owner.name) {
                    exprs.extend(ss.spec.iter().flat_map(|s| requirements(&s.selector)));
                }
            }
            _ => {}
        }
    }
    if set.is_empty() && exprs.is_empty() {
        return None;
    }
    Some(LabelSelector {
        match_labels: Some(set),
        match_expressions: Some(exprs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::objects::ObjectEvent;
    use crate::scheduler::plugins::label_selector_matches;
    use kube::runtime::watcher::Event;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(labels: serde_json::Value, owner: Option<(&str, &str, &str)>) -> PodInfo {
        let refs = owner.map(|(api, kind, name)| {
            json!([{"apiVersion": api, "kind": kind, "name": name, "uid": "u", "controller": true}])
        });
        PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns", "labels": labels, "ownerReferences": refs},
                "spec": {"containers": []}}))
            .expect("pod"),
        ))
    }

    #[test]
    fn services_and_the_controller_make_the_selector() {
        let mut o = Objects::default();
        for (ns, name, sel) in [
            ("ns", "web", Some(json!({"app": "web"}))),
            ("ns", "tier", Some(json!({"tier": "front"}))),
            ("ns", "headless", None),
            ("ns", "db", Some(json!({"app": "db"}))),
            ("other", "web", Some(json!({"app": "web", "x": "y"}))),
        ] {
            let svc = serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name},
                "spec": {"selector": sel}}))
            .expect("svc");
            o.apply(ObjectEvent::Service(Event::Apply(svc)));
        }
        let rs = serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "web-1"},
            "spec": {"selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "pod-template-hash", "operator": "In", "values": ["1"]}]},
                "template": {}}}))
        .expect("rs");
        o.apply(ObjectEvent::ReplicaSet(Event::Apply(rs)));
        let p = pod(
            json!({"app": "web", "tier": "front", "pod-template-hash": "1"}),
            Some(("apps/v1", "ReplicaSet", "web-1")),
        );
        let sel = for_pod(&p, &o).expect("selector");
        assert_eq!(
            sel.match_labels,
            Some(BTreeMap::from([
                ("app".to_string(), "web".to_string()),
                ("tier".to_string(), "front".to_string())
            ]))
        );
        assert_eq!(sel.match_expressions.as_ref().map(Vec::len), Some(2));
        // A sibling from another ReplicaSet revision is not selected.
        let mut sibling = p.labels().clone();
        sibling.insert("pod-template-hash".into(), "2".into());
        assert!(!label_selector_matches(Some(&sel), &sibling));
        // Nothing selects a bare pod; an owner that is not found adds nothing.
        assert!(for_pod(&pod(json!({"x": "1"}), None), &o).is_none());
        assert!(for_pod(
            &pod(json!({"x": "1"}), Some(("apps/v1", "StatefulSet", "none"))),
            &o
        )
        .is_none());
    }
}
