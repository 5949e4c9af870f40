//! Nominated pods (upstream's PodNominator): pods that preemption nominated to a node
//! (`status.nominatedNodeName`) and that are not bound yet. Room for them is held on that node:
//! the framework filters every other pod of no higher priority as if they were already there
//! ([`super::framework`]'s `filter_with_nominated`, upstream's RunFilterPluginsWithNominatedPods),
//! so the space their victims free is not taken by someone else before they come back.
//!
//! Kept from the pod watch (a nomination survives a scheduler restart in the pod's status) and
//! from the scheduler's own decisions (it nominates before its status write comes back through
//! the watch). A nomination ends when the pod is bound (or assumed), deleted, no longer ours, or
//! its `nominatedNodeName` is cleared.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::cache::PodInfo;
use super::preemption::priority;

fn nominated_node(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("")
}

#[derive(Default)]
pub struct Nominator {
    /// Node → the pods nominated to it.
    by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Pod key → its node.
    node_of: HashMap<String, String>,
}

impl Nominator {
    pub fn is_empty(&self) -> bool {
        self.node_of.is_empty()
    }

    /// The pods nominated to `node`.
    pub fn on_node(&self, node: &str) -> &[Arc<PodInfo>] {
        self.by_node.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.node_of.get(key).map(String::as_str)
    }

    /// Nominates `pod` to `node` (replacing an earlier nomination).
    pub fn add(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove(&pod.key);
        if node.is_empty() {
            return;
        }
        self.node_of.insert(pod.key.clone(), node.to_string());
        self.by_node.entry(node.to_string()).or_default().push(pod);
    }

    /// Ends `key`'s nomination; returns the node it had.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let node = self.node_of.remove(key)?;
        if let Some(pods) = self.by_node.get_mut(&node) {
            pods.retain(|p| p.key != key);
            if pods.is_empty() {
                self.by_node.remove(&node);
            }
        }
        Some(node)
    }

    /// A pending pod changed (`old`: the version seen before, if any), as upstream's
    /// updateNominatedPodUnlocked: the nomination follows `status.nominatedNodeName`, except that a
    /// nomination the scheduler made itself is kept while neither version shows it yet (the watch
    /// may deliver an update written before the scheduler's status patch).
    pub fn update(&mut self, old: Option<&Pod>, new: Arc<PodInfo>) {
        let node = match nominated_node(&new.pod) {
            "" if old.is_some_and(|o| nominated_node(o).is_empty()) => {
                match self.node_of(&new.key) {
                    Some(n) => n.to_string(),
                    None => return,
                }
            }
            n => n.to_string(),
        };
        self.add(new, &node);
    }

    /// The pods nominated to `node` with a lower priority than `than` (upstream's
    /// getLowerPriorityNominatedPods): a preemptor nominated there may leave them no room.
    pub fn lower_priority(&self, node: &str, than: i32) -> Vec<Arc<PodInfo>> {
        self.on_node(node)
            .iter()
            .filter(|p| priority(p) < than)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32, nominated: Option<&str>) -> Arc<PodInfo> {
        let p = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"priority": priority, "containers": []},
            "status": {"nominatedNodeName": nominated}}))
        .expect("pod");
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    #[test]
    fn follows_the_status_but_keeps_its_own_nomination() {
        let mut n = Nominator::default();
        // Seen from the watch, e.g. after a restart.
        n.update(None, pod("a", 10, Some("n1")));
        assert_eq!(n.node_of("ns/a"), Some("n1"));
        // The scheduler nominates b itself; a stale update without the field keeps it.
        let b = pod("b", 5, None);
        n.add(b.clone(), "n1");
        n.update(Some(&b.pod), pod("b", 5, None));
        assert_eq!(n.node_of("ns/b"), Some("n1"));
        assert_eq!(n.on_node("n1").len(), 2);
        assert_eq!(n.lower_priority("n1", 10).len(), 1);
        // Cleared in the API (the previous version had it): the nomination ends.
        let a_old = pod("a", 10, Some("n1"));
        n.update(Some(&a_old.pod), pod("a", 10, None));
        assert_eq!(n.node_of("ns/a"), None);
        // Moved to another node.
        n.update(Some(&b.pod), pod("b", 5, Some("n2")));
        assert!(n.on_node("n1").is_empty());
        assert_eq!(n.remove("ns/b").as_deref(), Some("n2"));
        assert!(n.is_empty());
    }
}
