//! InterPodAffinity. Filter, required terms: the incoming pod's affinity and anti-affinity against
//! pods already placed, and placed pods' anti-affinity against the incoming pod, by topology domain.
//! Score (weight 2), as upstream: each preferred term of the incoming pod adds (affinity) or takes
//! away (anti-affinity) its weight in the domains of the placed pods it selects, and placed pods'
//! terms that select the incoming pod do the same in their own domains (their required affinity
//! terms with upstream's hardPodAffinityWeight, 1). (namespaceSelector with labels is not
//! implemented: an empty one means all namespaces, any other is treated as selecting none.)

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{PodAffinityTerm, WeightedPodAffinityTerm};

use super::{label_selector_matches, Code, FilterResult, Rejection, MAX_NODE_SCORE};
use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};

pub const WEIGHT: i64 = 2;
/// upstream's hardPodAffinityWeight (KubeSchedulerConfiguration default).
const HARD_AFFINITY_WEIGHT: i64 = 1;
pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// What PreFilter computes once per pod, read by Filter for every node.
#[derive(Clone, Default)]
pub struct State {
    /// (topologyKey, value) domains where a placed pod's anti-affinity rejects the incoming pod.
    existing_anti: HashSet<(String, String)>,
    /// Domains holding pods the incoming pod's anti-affinity terms reject.
    anti: HashSet<(String, String)>,
    /// Per affinity term: domains holding matching pods.
    affinity: Vec<(String, HashSet<(String, String)>)>,
    /// No pod matches any affinity term, but the pod matches its own: the first pod of a group may go
    /// anywhere that has the topology keys.
    affinity_self_match: bool,
    pub active: bool,
}

fn term_selects(term: &PodAffinityTerm, owner_ns: &str, target: &PodInfo) -> bool {
    let ns_ok = match (&term.namespaces, &term.namespace_selector) {
        (_, Some(sel))
            if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty()) =>
        {
            true
        }
        (Some(list), _) if !list.is_empty() => list.contains(&target.namespace),
        (_, Some(_)) => false,
        _ => target.namespace == owner_ns,
    };
    ns_ok && label_selector_matches(term.label_selector.as_ref(), target.labels())
}

fn required(pod: &PodInfo, anti: bool) -> &[PodAffinityTerm] {
    let a = pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        a.and_then(|a| a.pod_anti_affinity.as_ref()).and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
    } else {
        a.and_then(|a| a.pod_affinity.as_ref()).and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
    };
    terms.unwrap_or(&[])
}

pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> State {
    let mut state = State::default();
    let domain = |node: &str, key: &str| {
        cache
            .nodes
            .get(node)
            .and_then(|n| n.labels().get(key))
            .map(|v| (key.to_string(), v.clone()))
    };
    for key in &cache.with_anti_affinity {
        let Some((node, other)) = cache.placed.get(key) else {
            continue;
        };
        for term in required(other, true) {
            if term_selects(term, &other.namespace, pod) {
                if let Some(d) = domain(node, &term.topology_key) {
                    state.existing_anti.insert(d);
                }
            }
        }
    }
    let anti = required(pod, true);
    let affinity = required(pod, false);
    if !anti.is_empty() || !affinity.is_empty() {
        state.affinity = affinity
            .iter()
            .map(|t| (t.topology_key.clone(), HashSet::new()))
            .collect();
        for (node, other) in cache.placed.values() {
            for term in anti {
                if term_selects(term, &pod.namespace, other) {
                    if let Some(d) = domain(node, &term.topology_key) {
                        state.anti.insert(d);
                    }
                }
            }
            for (i, term) in affinity.iter().enumerate() {
                if term_selects(term, &pod.namespace, other) {
                    if let Some(d) = domain(node, &term.topology_key) {
                        state.affinity[i].1.insert(d);
                    }
                }
            }
        }
        state.affinity_self_match = state.affinity.iter().all(|(_, d)| d.is_empty())
            && affinity
                .iter()
                .all(|t| term_selects(t, &pod.namespace, pod));
    }
    state.active = !state.existing_anti.is_empty() || !anti.is_empty() || !affinity.is_empty();
    state
}

impl State {
    /// Takes `added` as placed on `node` (upstream's PreFilterExtensions AddPod, used for
    /// nominated pods): its anti-affinity may now reject the pod there, and it may be what the
    /// pod's own terms look for.
    pub fn add_pod(&mut self, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        let domain = |key: &str| node.labels().get(key).map(|v| (key.to_string(), v.clone()));
        for term in required(added, true) {
            if term_selects(term, &added.namespace, pod) {
                if let Some(d) = domain(&term.topology_key) {
                    self.existing_anti.insert(d);
                }
            }
        }
        for term in required(pod, true) {
            if term_selects(term, &pod.namespace, added) {
                if let Some(d) = domain(&term.topology_key) {
                    self.anti.insert(d);
                }
            }
        }
        let affinity = required(pod, false);
        for (i, term) in affinity.iter().enumerate() {
            if term_selects(term, &pod.namespace, added) {
                if let (Some(d), Some(slot)) =
                    (domain(&term.topology_key), self.affinity.get_mut(i))
                {
                    slot.1.insert(d);
                }
            }
        }
        self.affinity_self_match = self.affinity.iter().all(|(_, d)| d.is_empty())
            && affinity
                .iter()
                .all(|t| term_selects(t, &pod.namespace, pod));
        self.active = self.active || !self.existing_anti.is_empty();
    }
}

pub fn filter(state: &State, node: &NodeInfo) -> FilterResult {
    if !state.active {
        return Ok(());
    }
    let labels = node.labels();
    let in_domain =
        |set: &HashSet<(String, String)>| set.iter().any(|(k, v)| labels.get(k) == Some(v));
    if !state.affinity.is_empty() {
        let ok = if state.affinity_self_match {
            state
                .affinity
                .iter()
                .all(|(key, _)| labels.contains_key(key))
        } else {
            state.affinity.iter().all(|(_, domains)| in_domain(domains))
        };
        if !ok {
            return Err(Rejection::new(Code::UnschedulableAndUnresolvable, AFFINITY));
        }
    }
    if in_domain(&state.anti) {
        return Err(Rejection::new(Code::Unschedulable, ANTI_AFFINITY));
    }
    if in_domain(&state.existing_anti) {
        return Err(Rejection::new(Code::Unschedulable, EXISTING_ANTI_AFFINITY));
    }
    Ok(())
}

fn preferred(pod: &PodInfo, anti: bool) -> &[WeightedPodAffinityTerm] {
    let a = pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        a.and_then(|a| a.pod_anti_affinity.as_ref()).and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
    } else {
        a.and_then(|a| a.pod_affinity.as_ref()).and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
    };
    terms.unwrap_or(&[])
}

/// Whether a pod has any inter-pod affinity or anti-affinity term (the cache keeps these apart,
/// as upstream's PodsWithAffinity, so scoring need not visit every pod).
pub fn has_terms(pod: &PodInfo) -> bool {
    !required(pod, false).is_empty()
        || !required(pod, true).is_empty()
        || !preferred(pod, false).is_empty()
        || !preferred(pod, true).is_empty()
}

/// Normalized scores (0..=100) for `feasible` nodes, or `None` when no term is involved (upstream's
/// PreScore skip: every node scores alike).
pub fn scores(pod: &PodInfo, cache: &Cache, feasible: &[&NodeInfo]) -> Option<Vec<i64>> {
    let (affinity, anti) = (preferred(pod, false), preferred(pod, true));
    let own_terms = !affinity.is_empty() || !anti.is_empty();
    if !own_terms && cache.with_affinity.is_empty() {
        return None;
    }
    // topologyKey → value → score, from every placed pod the terms involve.
    let mut domains: HashMap<String, HashMap<String, i64>> = HashMap::new();
    let mut add = |node: &str, key: &str, weight: i64| {
        if let Some(v) = cache.nodes.get(node).and_then(|n| n.labels().get(key)) {
            *domains
                .entry(key.to_string())
                .or_default()
                .entry(v.clone())
                .or_default() += weight;
        }
    };
    let mut visit = |node: &str, other: &PodInfo| {
        for t in affinity {
            if term_selects(&t.pod_affinity_term, &pod.namespace, other) {
                add(node, &t.pod_affinity_term.topology_key, i64::from(t.weight));
            }
        }
        for t in anti {
            if term_selects(&t.pod_affinity_term, &pod.namespace, other) {
                add(
                    node,
                    &t.pod_affinity_term.topology_key,
                    -i64::from(t.weight),
                );
            }
        }
        for t in required(other, false) {
            if term_selects(t, &other.namespace, pod) {
                add(node, &t.topology_key, HARD_AFFINITY_WEIGHT);
            }
        }
        for t in preferred(other, false) {
            if term_selects(&t.pod_affinity_term, &other.namespace, pod) {
                add(node, &t.pod_affinity_term.topology_key, i64::from(t.weight));
            }
        }
        for t in preferred(other, true) {
            if term_selects(&t.pod_affinity_term, &other.namespace, pod) {
                add(
                    node,
                    &t.pod_affinity_term.topology_key,
                    -i64::from(t.weight),
                );
            }
        }
    };
    if own_terms {
        for (node, other) in cache.placed.values() {
            visit(node, other);
        }
    } else {
        for key in &cache.with_affinity {
            if let Some((node, other)) = cache.placed.get(key) {
                visit(node, other);
            }
        }
    }
    if domains.is_empty() {
        return None;
    }
    let raw: Vec<i64> = feasible
        .iter()
        .map(|n| {
            domains
                .iter()
                .filter_map(|(k, values)| values.get(n.labels().get(k)?))
                .sum()
        })
        .collect();
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    Some(
        raw.into_iter()
            .map(|s| {
                if max > min {
                    (MAX_NODE_SCORE as f64 * ((s - min) as f64 / (max - min) as f64)) as i64
                } else {
                    0
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(name: &str, labels: serde_json::Value, affinity: serde_json::Value) -> Arc<PodInfo> {
        let p = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "spec": {"containers": [], "affinity": affinity}}))
        .expect("pod");
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    fn weighted(kind: &str, weight: i32, app: &str) -> serde_json::Value {
        json!({kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": weight, "podAffinityTerm": {
            "labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}}]}})
    }

    #[test]
    fn preferred_terms_score_both_ways() {
        let mut c = Cache::default();
        for (name, zone) in [("n0", "a"), ("n1", "b"), ("n2", "c")] {
            let node = serde_json::from_value(
                json!({"metadata": {"name": name, "labels": {"zone": zone}}}),
            )
            .expect("node");
            c.upsert_node(Arc::new(node));
        }
        c.place("n0", pod("db", json!({"app": "db"}), json!({})));
        // A placed pod whose own preferred anti-affinity names the incoming pod's label.
        c.place(
            "n1",
            pod("loner", json!({}), weighted("podAntiAffinity", 50, "web")),
        );
        let nodes: Vec<&NodeInfo> = c.nodes.values().collect();
        let web = pod(
            "web",
            json!({"app": "web"}),
            weighted("podAffinity", 10, "db"),
        );
        // Raw: a +10 (near db), b −50 (the loner's anti-affinity), c 0 → (s − min) / (max − min).
        assert_eq!(scores(&web, &c, &nodes), Some(vec![100, 0, 83]));
        // No terms on either side: no opinion.
        c.unplace("ns/loner");
        let nodes: Vec<&NodeInfo> = c.nodes.values().collect();
        assert_eq!(
            scores(&pod("plain", json!({}), json!({})), &c, &nodes),
            None
        );
    }
}
