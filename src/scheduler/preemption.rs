//! DefaultPreemption (upstream's PostFilter plugin): when no node fits a pod, find the node where
//! evicting lower-priority pods makes it fit, evicting as few and as unimportant ones as possible.
//! The scheduler then nominates that node (`status.nominatedNodeName`), marks each victim with a
//! `DisruptionTarget` condition and deletes it, and the pod is retried once the victims are gone.
//!
//! Per node, as upstream's selectVictimsOnNode: remove every pod of lower priority; if the pod then
//! fits, add them back (a "reprieve") while it still fits: first those whose eviction would violate
//! a PodDisruptionBudget, then the others, each group most important first; the rest are the
//! victims. A victim violates a budget when a policy/v1 budget of its namespace selects it (an
//! empty or missing selector selects nothing) and, counting the potential victims before it on
//! the node, the budget's `disruptionsAllowed` would go below zero (pods already in its
//! `disruptedPods` are not counted again). Among candidate nodes, as pickOneNodeForPreemption: the
//! fewest budget violations, then the least important most important victim, then the lowest sum
//! of priorities, then the fewest victims, then the latest start of the most important victims.
//!
//! The filters run with the pods nominated to the node ([`super::framework`]), so room held for
//! another preemptor is not taken. Not modelled: the victims' part in inter-pod affinity and
//! topology spread (those filters keep the state computed with the victims present), and
//! upstream's cap on the number of candidate nodes examined (every rejected node is).

use std::cmp::Reverse;
use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;

use super::cache::{Cache, NodeInfo, PodInfo};
use super::plugins::{label_selector_matches, Code, FilterResult, Rejection};

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

/// Upstream's filterPodsWithPDBViolation: splits `pods` (most important first, the order kept)
/// into those whose eviction would violate a budget and the others.
fn split_by_budget(
    pods: Vec<Arc<PodInfo>>,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs
        .iter()
        .map(|b| b.status.as_ref().map_or(0, |s| s.disruptions_allowed))
        .collect();
    let (mut violating, mut other) = (Vec::new(), Vec::new());
    for p in pods {
        let mut violates = false;
        // A pod without labels matches no budget.
        if !p.labels().is_empty() {
            for (i, b) in pdbs.iter().enumerate() {
                if b.metadata.namespace.as_deref().unwrap_or("") != p.namespace {
                    continue;
                }
                // A nil or empty selector matches nothing in policy/v1.
                let Some(sel) = b.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                    continue;
                };
                let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                    && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
                if empty || !label_selector_matches(Some(sel), p.labels()) {
                    continue;
                }
                // Already being disrupted (the API counted it): not a violation.
                let name = p.pod.metadata.name.as_deref().unwrap_or("");
                let disrupted = b
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(name));
                if disrupted {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violates = true;
                }
            }
        }
        if violates {
            violating.push(p);
        } else {
            other.push(p);
        }
    }
    (violating, other)
}

/// The victims on `node` that make `pod` fit, with how many of them violate a budget, or why
/// there are none.
fn victims_on(
    pod: &PodInfo,
    node: &NodeInfo,
    pdbs: &[Arc<PodDisruptionBudget>],
    fits: &impl Fn(&NodeInfo) -> FilterResult,
) -> Result<(Vec<Arc<PodInfo>>, usize), String> {
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
    let (violating, other) = split_by_budget(potential, pdbs);
    let mut victims = Vec::new();
    let mut violations = 0;
    for (group, p) in violating
        .into_iter()
        .map(|p| (true, p))
        .chain(other.into_iter().map(|p| (false, p)))
    {
        sim.add_pod(p.clone());
        if fits(&sim).is_err() {
            sim.remove_pod(&p.key);
            victims.push(p);
            violations += usize::from(group);
        }
    }
    // Most important first again (the reprieve order mixed the groups).
    victims.sort_by(more_important_first);
    Ok((victims, violations))
}

/// Upstream's GetPodStartTime: a pod not started yet counts as starting now (the latest).
fn start_time(p: &PodInfo) -> Option<Timestamp> {
    p.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
}

/// Upstream's pickOneNodeForPreemption as one key, smallest best: the fewest budget violations,
/// the lowest highest-victim priority, the lowest sum of priorities (each shifted by MaxInt32+1
/// to be positive), the fewest victims, then the latest earliest start among the most important
/// victims (GetEarliestPodStartTime); ties keep the earlier node.
type Rank = (usize, i32, i64, usize, Reverse<(bool, Option<Timestamp>)>);

fn rank(victims: &[Arc<PodInfo>], violations: usize) -> Rank {
    let highest = victims
        .iter()
        .map(|v| priority(v))
        .max()
        .unwrap_or(i32::MIN);
    let sum = victims
        .iter()
        .map(|v| i64::from(priority(v)) + i64::from(i32::MAX) + 1)
        .sum();
    // (not started, time): a pod not started is later than any start.
    let earliest = victims
        .iter()
        .filter(|v| priority(v) == highest)
        .map(|v| {
            let t = start_time(v);
            (t.is_none(), t)
        })
        .min()
        .unwrap_or((true, None));
    (violations, highest, sum, victims.len(), Reverse(earliest))
}

/// Preemption for `pod`, which no node fits: `rejected` are the nodes (indexes into `nodes`) with
/// the filter's rejection, `fits` runs the filters against a node as it would be.
pub fn find(
    pod: &PodInfo,
    cache: &Cache,
    nodes: &[&NodeInfo],
    rejected: &[(usize, Rejection)],
    pdbs: &[Arc<PodDisruptionBudget>],
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
    let mut best: Option<(Rank, Candidate)> = None;
    let mut reasons = Vec::new();
    for (idx, r) in rejected {
        if r.code == Code::UnschedulableAndUnresolvable {
            reasons.push("Preemption is not helpful for scheduling".to_string());
            continue;
        }
        let node = nodes[*idx];
        match victims_on(pod, node, pdbs, &fits) {
            Err(reason) => reasons.push(reason),
            Ok((victims, violations)) => {
                let r = rank(&victims, violations);
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
        verdict_with(pod, c, &[])
    }

    /// Preemption's verdict over the cache's nodes with only NodeResourcesFit as the filter.
    fn verdict_with(pod: &PodInfo, c: &Cache, pdbs: &[Arc<PodDisruptionBudget>]) -> Verdict {
        let nodes: Vec<&NodeInfo> = c.nodes.values().collect();
        let rejected: Vec<(usize, Rejection)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| node_resources_fit::filter(pod, n).err().map(|r| (i, r)))
            .collect();
        find(pod, c, &nodes, &rejected, pdbs, |n| {
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

    fn labelled(name: &str, priority: i32, cpu: &str, app: &str, started: &str) -> Arc<PodInfo> {
        let p = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": app}},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"startTime": started}}))
        .expect("pod");
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    fn pdb(app: &str, allowed: i32, disrupted: &[&str]) -> Arc<PodDisruptionBudget> {
        let disrupted: serde_json::Map<String, serde_json::Value> = disrupted
            .iter()
            .map(|d| (d.to_string(), json!("2026-01-01T00:00:00Z")))
            .collect();
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": app, "namespace": "ns"},
                "spec": {"selector": {"matchLabels": {"app": app}}},
                "status": {"disruptionsAllowed": allowed, "disruptedPods": disrupted,
                           "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}}))
            .expect("pdb"),
        )
    }

    fn with_pdbs(pod: &PodInfo, c: &Cache, pdbs: &[Arc<PodDisruptionBudget>]) -> Candidate {
        match verdict_with(pod, c, pdbs) {
            Verdict::Preempt(c) => c,
            _ => panic!("expected preemption"),
        }
    }

    fn names(c: &Candidate) -> Vec<&str> {
        c.victims.iter().map(|v| v.key.as_str()).collect()
    }

    #[test]
    fn budgets_decide_the_victims_and_the_node() {
        const T: &str = "2026-01-01T00:00:00Z";
        // n0: two pods of a budget allowing one disruption; n1: one unbudgeted pod of higher
        // priority. Without budgets n0 wins (lower priorities); with them, evicting both db pods
        // violates the budget once, so n1 wins.
        let c = cache(&[
            (
                "n0",
                &[
                    labelled("db-0", 1, "2", "db", T),
                    labelled("db-1", 1, "2", "db", T),
                ],
            ),
            ("n1", &[labelled("web", 5, "4", "web", T)]),
        ]);
        let new = pod("new", 100, "4");
        assert_eq!(with_pdbs(&new, &c, &[]).node, "n0");
        let chosen = with_pdbs(&new, &c, &[pdb("db", 1, &[])]);
        assert_eq!(
            (chosen.node.as_str(), names(&chosen)),
            ("n1", vec!["ns/web"])
        );
        // A pod the budget already counts as disrupted violates nothing.
        let chosen = with_pdbs(&new, &c, &[pdb("db", 1, &["db-0"])]);
        assert_eq!(chosen.node, "n0");
        // An empty selector selects nothing.
        let mut empty = (*pdb("db", 0, &[])).clone();
        if let Some(s) = empty.spec.as_mut() {
            s.selector = serde_json::from_value(json!({})).ok();
        }
        assert_eq!(with_pdbs(&new, &c, &[Arc::new(empty)]).node, "n0");
    }

    #[test]
    fn violating_pods_are_reprieved_first() {
        const T: &str = "2026-01-01T00:00:00Z";
        // Room for 2 cpu is needed; a (priority 5, budgeted, none allowed) and b (priority 1)
        // each free 2. Most important first would keep a and evict b; here too, and a budgeted pod
        // of lower priority (c, priority 0) is kept over an unbudgeted one (b).
        let c = cache(&[(
            "n0",
            &[
                labelled("b", 1, "2", "free", T),
                labelled("c", 0, "2", "db", T),
            ],
        )]);
        let chosen = with_pdbs(&pod("new", 100, "2"), &c, &[pdb("db", 0, &[])]);
        assert_eq!(names(&chosen), ["ns/b"]);
        // Without the budget the least important (c) goes.
        let chosen = with_pdbs(&pod("new", 100, "2"), &c, &[]);
        assert_eq!(names(&chosen), ["ns/c"]);
    }

    #[test]
    fn ties_go_to_the_node_whose_victims_started_last() {
        let c = cache(&[
            (
                "n0",
                &[labelled("old", 1, "4", "a", "2026-01-01T00:00:00Z")],
            ),
            (
                "n1",
                &[labelled("young", 1, "4", "a", "2026-02-01T00:00:00Z")],
            ),
        ]);
        assert_eq!(with_pdbs(&pod("new", 100, "4"), &c, &[]).node, "n1");
    }
}
