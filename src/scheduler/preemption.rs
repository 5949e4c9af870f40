//! DefaultPreemption (upstream's PostFilter plugin): when no node fits a pod, find the node where
//! evicting lower-priority pods makes it fit, evicting as few and as unimportant ones as possible.
//! The scheduler then nominates that node (`status.nominatedNodeName`), marks each victim with a
//! `DisruptionTarget` condition and deletes it, and the pod is retried once the victims are gone.
//!
//! Per node, as upstream's selectVictimsOnNode: remove every pod of lower priority; if the pod then
//! fits, add them back most important first, keeping each one the pod still fits beside (a
//! "reprieve"); the rest are the victims. Among candidate nodes the one whose most important victim
//! matters least wins, then the lowest sum of priorities, then the fewest victims.
//!
//! Not modelled: PodDisruptionBudgets (upstream prefers victims whose eviction violates none), the
//! victims' part in inter-pod affinity and topology spread (those filters keep the state computed
//! with the victims present), and room held on a node for other nominated pods.

use std::sync::Arc;

use super::cache::{Cache, NodeInfo, PodInfo};
use super::plugins::{Code, FilterResult, Rejection};

/// A node where preemption makes the pod fit, and the pods to evict there.
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

/// What preemption concluded for an unschedulable pod.
pub enum Verdict {
    Preempt(Candidate),
    /// Why preemption does not help, per rejected node (upstream's words, for the FitError).
    Unhelpful(Vec<String>),
    /// The pod may not preempt (upstream's PodEligibleToPreemptOthers), with the reason.
    NotEligible(&'static str),
}

pub fn priority(p: &PodInfo) -> i32 {
    p.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn terminating(p: &PodInfo) -> bool {
    p.pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's MoreImportantPod: higher priority first, then the one that started earlier.
fn more_important_first(a: &Arc<PodInfo>, b: &Arc<PodInfo>) -> std::cmp::Ordering {
    let started = |p: &PodInfo| {
        p.pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .or_else(|| p.pod.metadata.creation_timestamp.clone())
            .map(|t| t.0)
    };
    priority(b)
        .cmp(&priority(a))
        .then_with(|| match (started(a), started(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
}

/// The victims on `node` that make `pod` fit, or why there are none.
fn victims_on(
    pod: &PodInfo,
    node: &NodeInfo,
    fits: &impl Fn(&NodeInfo) -> FilterResult,
) -> Result<Vec<Arc<PodInfo>>, String> {
    let own = priority(pod);
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .values()
        .filter(|p| priority(p) < own && !terminating(p))
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err("No preemption victims found for incoming pod".into());
    }
    let mut sim = node.clone();
    for p in &potential {
        sim.remove_pod(&p.key);
    }
    if let Err(r) = fits(&sim) {
        return Err(r.reasons.into_iter().next().unwrap_or_default());
    }
    potential.sort_by(more_important_first);
    let mut victims = Vec::new();
    for p in potential {
        sim.add_pod(p.clone());
        if fits(&sim).is_err() {
            sim.remove_pod(&p.key);
            victims.push(p);
        }
    }
    Ok(victims)
}

/// Upstream's pickOneNodeForPreemption, without the PodDisruptionBudget criterion: the lowest
/// highest-victim priority, then the lowest sum of priorities (each shifted to be positive), then
/// the fewest victims; ties keep the earlier node.
fn rank(victims: &[Arc<PodInfo>]) -> (i32, i64, usize) {
    let highest = victims
        .iter()
        .map(|v| priority(v))
        .max()
        .unwrap_or(i32::MIN);
    let sum = victims
        .iter()
        .map(|v| i64::from(priority(v)) + i64::from(i32::MAX) + 1)
        .sum();
    (highest, sum, victims.len())
}

/// Preemption for `pod`, which no node fits: `rejected` are the nodes (indexes into `nodes`) with
/// the filter's rejection, `fits` runs the filters against a node as it would be.
pub fn find(
    pod: &PodInfo,
    cache: &Cache,
    nodes: &[&NodeInfo],
    rejected: &[(usize, Rejection)],
    fits: impl Fn(&NodeInfo) -> FilterResult,
) -> Verdict {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Verdict::NotEligible("not eligible due to preemptionPolicy=Never.");
    }
    // Victims already leaving the nominated node make room: preempting again would evict more.
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    if let Some(node) = nominated.and_then(|n| cache.nodes.get(n)) {
        let own = priority(pod);
        if node
            .pods
            .values()
            .any(|p| terminating(p) && priority(p) < own)
        {
            return Verdict::NotEligible(
                "not eligible due to a terminating pod on the nominated node.",
            );
        }
    }
    let mut best: Option<((i32, i64, usize), Candidate)> = None;
    let mut reasons = Vec::new();
    for (idx, r) in rejected {
        if r.code == Code::UnschedulableAndUnresolvable {
            reasons.push("Preemption is not helpful for scheduling".to_string());
            continue;
        }
        let node = nodes[*idx];
        match victims_on(pod, node, &fits) {
            Err(reason) => reasons.push(reason),
            Ok(victims) => {
                let r = rank(&victims);
                if best.as_ref().is_none_or(|(b, _)| r < *b) {
                    best = Some((
                        r,
                        Candidate {
                            node: node.name.clone(),
                            victims,
                        },
                    ));
                }
            }
        }
    }
    match best {
        Some((_, c)) => Verdict::Preempt(c),
        None => Verdict::Unhelpful(reasons),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::node_resources_fit;
    use serde_json::json;

    fn pod(name: &str, priority: i32, cpu: &str) -> Arc<PodInfo> {
        let p = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}))
        .expect("pod");
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    fn cache(nodes: &[(&str, &[Arc<PodInfo>])]) -> Cache {
        let mut c = Cache::default();
        for (name, pods) in nodes {
            let node = serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
            .expect("node");
            c.upsert_node(Arc::new(node));
            for p in pods.iter() {
                c.place(name, p.clone());
            }
        }
        c
    }

    fn verdict(pod: &PodInfo, c: &Cache) -> Verdict {
        let nodes: Vec<&NodeInfo> = c.nodes.values().collect();
        let rejected: Vec<(usize, Rejection)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| node_resources_fit::filter(pod, n).err().map(|r| (i, r)))
            .collect();
        find(pod, c, &nodes, &rejected, |n| {
            node_resources_fit::filter(pod, n)
        })
    }

    #[test]
    fn evicts_the_least_important_pods_that_make_room() {
        let c = cache(&[
            ("n0", &[pod("low-a", 1, "2"), pod("low-b", 5, "2")]),
            ("n1", &[pod("mid", 50, "4")]),
        ]);
        // n0: both lower pods leave, low-b (the more important) comes back; n1 would cost a
        // priority-50 victim, so n0 wins with low-a alone.
        match verdict(&pod("new", 100, "2"), &c) {
            Verdict::Preempt(cand) => {
                assert_eq!(cand.node, "n0");
                let names: Vec<&str> = cand.victims.iter().map(|v| v.key.as_str()).collect();
                assert_eq!(names, ["ns/low-a"]);
            }
            _ => panic!("expected preemption"),
        }
        // A pod of priority 3 may only evict low-a, which is not enough anywhere.
        match verdict(&pod("new", 3, "3"), &c) {
            Verdict::Unhelpful(reasons) => assert_eq!(
                reasons,
                [
                    "Insufficient cpu",
                    "No preemption victims found for incoming pod"
                ]
            ),
            _ => panic!("expected no candidate"),
        }
    }

    #[test]
    fn never_and_terminating_victims_are_not_eligible() {
        let c = cache(&[("n0", &[pod("low", 1, "4")])]);
        let mut never = (*pod("new", 100, "2").pod).clone();
        if let Some(s) = never.spec.as_mut() {
            s.preemption_policy = Some("Never".into());
        }
        assert!(matches!(
            verdict(&PodInfo::new(Arc::new(never)), &c),
            Verdict::NotEligible("not eligible due to preemptionPolicy=Never.")
        ));
        let mut leaving = (*pod("low", 1, "4").pod).clone();
        leaving.metadata.deletion_timestamp =
            serde_json::from_value(json!("2026-01-01T00:00:00Z")).ok();
        let c = cache(&[("n0", &[Arc::new(PodInfo::new(Arc::new(leaving)))])]);
        let mut nominated = (*pod("new", 100, "2").pod).clone();
        nominated.status = serde_json::from_value(json!({"nominatedNodeName": "n0"})).ok();
        assert!(matches!(
            verdict(&PodInfo::new(Arc::new(nominated)), &c),
            Verdict::NotEligible("not eligible due to a terminating pod on the nominated node.")
        ));
    }
}
