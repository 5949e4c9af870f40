//! InterPodAffinity, required terms: the incoming pod's affinity and anti-affinity against pods
//! already placed, and placed pods' anti-affinity against the incoming pod, by topology domain.
//! (Preferred terms and namespaceSelector with labels are not implemented yet: an empty
//! namespaceSelector means all namespaces, any other is treated as selecting none.)

use std::collections::HashSet;

use k8s_openapi::api::core::v1::PodAffinityTerm;

use super::{label_selector_matches, Code, FilterResult, Rejection};
use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};

pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// What PreFilter computes once per pod, read by Filter for every node.
#[derive(Default)]
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
