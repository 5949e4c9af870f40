//! NodeAffinity: nodeSelector and required node affinity terms (filter); preferred terms add their
//! weights (score, weight 2, normalized by the highest).

use super::{node_requirement_matches, Code, FilterResult, Rejection};
use crate::scheduler::cache::{NodeInfo, PodInfo};
use k8s_openapi::api::core::v1::{NodeAffinity, NodeSelectorTerm};

pub const WEIGHT: i64 = 2;
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

fn node_affinity(pod: &PodInfo) -> Option<&NodeAffinity> {
    pod.pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()
}

/// A term matches when all its label expressions and field expressions (metadata.name) do; an empty
/// term matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name_labels = [("metadata.name".to_string(), node.name.clone())]
        .into_iter()
        .collect();
    exprs
        .iter()
        .all(|r| node_requirement_matches(r, node.labels()))
        && fields
            .iter()
            .all(|r| node_requirement_matches(r, &name_labels))
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let labels = node.labels();
    let selector_ok = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let required_ok = node_affinity(pod)
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|req| {
            req.node_selector_terms
                .iter()
                .any(|t| term_matches(t, node))
        });
    if selector_ok && required_ok {
        Ok(())
    } else {
        Err(Rejection::new(Code::UnschedulableAndUnresolvable, REASON))
    }
}

pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node_affinity(pod)
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|terms| {
            terms
                .iter()
                .filter(|t| t.weight != 0 && term_matches(&t.preference, node))
                .map(|t| t.weight as i64)
                .sum()
        })
        .unwrap_or(0)
}
