//! PodTopologySpread: the pod's `topologySpreadConstraints`, as upstream's plugin. `DoNotSchedule`
//! constraints filter: a node is refused when placing the pod there would make its domain hold more
//! than `maxSkew` matching pods beyond the least-loaded domain (`minDomains` counts missing domains
//! as empty). `ScheduleAnyway` constraints score: the fewer matching pods in a node's domains, the
//! higher (weight 2), each constraint weighted by the log of its number of domains.
//!
//! Pods are counted on the nodes that carry every constraint's key and, per constraint, pass the pod's
//! node affinity (`nodeAffinityPolicy: Honor`, the default) and tolerate the node's taints
//! (`nodeTaintsPolicy: Honor`; the default ignores taints).
//!
//! A pod without constraints of its own is scored with upstream's system defaults (the default
//! profile's `defaultingType: System`): spread by hostname (maxSkew 3) and by zone (maxSkew 5), both
//! `ScheduleAnyway`, over the pods its Services and controller select
//! ([`super::default_selector`]); nothing selects it, no constraints. As upstream, nodes missing a
//! key are then still scored (by the keys they have), so clusters without zones spread by host.
//!
//! Nominated pods ([`State::add_pod`]) count as placed when the framework filters with them.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{label_selector_matches, Code, FilterResult, Rejection, MAX_NODE_SCORE};
use crate::scheduler::cache::{Cache, NodeInfo, PodInfo};

pub const WEIGHT: i64 = 2;
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// Upstream's system default constraints: (topologyKey, maxSkew), both ScheduleAnyway.
const SYSTEM_DEFAULTS: [(&str, i32); 2] = [
    ("kubernetes.io/hostname", 3),
    ("topology.kubernetes.io/zone", 5),
];
const HOSTNAME: &str = "kubernetes.io/hostname";

/// One constraint, its selector merged with `matchLabelKeys`.
#[derive(Clone)]
struct Constraint {
    max_skew: i64,
    key: String,
    selector: LabelSelector,
    min_domains: i64,
    honor_affinity: bool,
    honor_taints: bool,
}

impl Constraint {
    fn new(c: &TopologySpreadConstraint, pod: &PodInfo) -> Constraint {
        let mut selector = c.label_selector.clone().unwrap_or_default();
        // matchLabelKeys: the pod's own values of those labels narrow the selector (a rollout's
        // pod-template-hash, so old and new ReplicaSets spread separately).
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = pod.labels().get(key) {
                selector
                    .match_expressions
                    .get_or_insert_with(Vec::new)
                    .push(LabelSelectorRequirement {
                        key: key.clone(),
                        operator: "In".into(),
                        values: Some(vec![v.clone()]),
                    });
            }
        }
        Constraint {
            max_skew: i64::from(c.max_skew),
            key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.map(i64::from).unwrap_or(1),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    /// Whether pods on `node` count towards this constraint (upstream's matchNodeInclusionPolicies).
    fn includes(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        (!self.honor_affinity || super::node_affinity::filter(pod, node).is_ok())
            && (!self.honor_taints || super::taint_toleration::filter(pod, node).is_ok())
    }

    /// Pods on `node` this constraint's selector picks in the pod's namespace, not terminating.
    fn count(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        node.pods
            .values()
            .filter(|p| {
                p.namespace == pod.namespace
                    && p.pod.metadata.deletion_timestamp.is_none()
                    && label_selector_matches(Some(&self.selector), p.labels())
            })
            .count() as i64
    }
}

/// A kind of constraint with its matching pods counted by domain (topology value).
#[derive(Clone)]
struct Counted {
    constraints: Vec<Constraint>,
    /// Per constraint: topology value → matching pods.
    counts: Vec<HashMap<String, i64>>,
}

impl Counted {
    fn new(pod: &PodInfo, when: &str) -> Counted {
        let constraints: Vec<Constraint> = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.when_unsatisfiable == when)
            .map(|c| Constraint::new(c, pod))
            .collect();
        let counts = vec![HashMap::new(); constraints.len()];
        Counted {
            constraints,
            counts,
        }
    }

    /// Upstream's system defaults over `selector` (buildDefaultConstraints).
    fn system_defaults(pod: &PodInfo, selector: &LabelSelector) -> Counted {
        let constraints: Vec<Constraint> = SYSTEM_DEFAULTS
            .iter()
            .map(|(key, skew)| {
                let c = TopologySpreadConstraint {
                    max_skew: *skew,
                    topology_key: key.to_string(),
                    when_unsatisfiable: "ScheduleAnyway".into(),
                    label_selector: Some(selector.clone()),
                    ..Default::default()
                };
                Constraint::new(&c, pod)
            })
            .collect();
        let counts = vec![HashMap::new(); constraints.len()];
        Counted {
            constraints,
            counts,
        }
    }

    /// Whether `node` has every constraint's topology key (upstream's
    /// nodeLabelsMatchSpreadConstraints).
    fn labelled(&self, node: &NodeInfo) -> bool {
        self.constraints
            .iter()
            .all(|c| node.labels().contains_key(&c.key))
    }

    /// Counts matching pods over `nodes` (those with every key, when `require_all`); `domain` says
    /// whether a (constraint, value) is one the counts track (all, for filtering; those of the
    /// feasible nodes, for scoring).
    fn count<'a>(
        &mut self,
        pod: &PodInfo,
        nodes: impl Iterator<Item = &'a NodeInfo>,
        require_all: bool,
        domain: impl Fn(usize, &str) -> bool,
    ) {
        for node in nodes {
            if require_all && !self.labelled(node) {
                continue;
            }
            for (i, c) in self.constraints.iter().enumerate() {
                let Some(value) = node.labels().get(&c.key) else {
                    continue;
                };
                if !domain(i, value) || !c.includes(pod, node) {
                    continue;
                }
                *self.counts[i].entry(value.clone()).or_default() += c.count(pod, node);
            }
        }
    }
}

/// What PreFilter computes once per pod, read by Filter for every node.
#[derive(Clone)]
pub struct State {
    filter: Counted,
    /// Per filter constraint: the smallest count of any domain (0 below `minDomains` domains).
    min: Vec<i64>,
    /// Per filter constraint: whether the incoming pod matches its own selector.
    self_match: Vec<bool>,
}

pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> State {
    let mut filter = Counted::new(pod, "DoNotSchedule");
    if !filter.constraints.is_empty() {
        filter.count(pod, cache.nodes.values(), true, |_, _| true);
    }
    let min = filter
        .constraints
        .iter()
        .zip(&filter.counts)
        .map(|(c, counts)| {
            if (counts.len() as i64) < c.min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            }
        })
        .collect();
    let self_match = filter
        .constraints
        .iter()
        .map(|c| label_selector_matches(Some(&c.selector), pod.labels()))
        .collect();
    State {
        filter,
        min,
        self_match,
    }
}

impl State {
    /// Counts `added` as placed on `node` (upstream's PreFilterExtensions AddPod, used for
    /// nominated pods): it joins its domain's count where its labels match, and the minimum moves.
    pub fn add_pod(&mut self, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        if added.namespace != pod.namespace || !self.filter.labelled(node) {
            return;
        }
        for (i, c) in self.filter.constraints.iter().enumerate() {
            let Some(value) = node.labels().get(&c.key) else {
                continue;
            };
            if !c.includes(pod, node) || !label_selector_matches(Some(&c.selector), added.labels())
            {
                continue;
            }
            *self.filter.counts[i].entry(value.clone()).or_default() += 1;
            let counts = &self.filter.counts[i];
            self.min[i] = if (counts.len() as i64) < c.min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            };
        }
    }
}

pub fn filter(state: &State, node: &NodeInfo) -> FilterResult {
    for (i, c) in state.filter.constraints.iter().enumerate() {
        let Some(value) = node.labels().get(&c.key) else {
            return Err(Rejection::new(
                Code::UnschedulableAndUnresolvable,
                MISSING_LABEL,
            ));
        };
        let here = state.filter.counts[i].get(value).copied().unwrap_or(0);
        let skew = here + i64::from(state.self_match[i]) - state.min[i];
        if skew > c.max_skew {
            return Err(Rejection::new(Code::Unschedulable, REASON));
        }
    }
    Ok(())
}

/// Normalized scores (0..=100) for `feasible` nodes, or `None` when the pod has no `ScheduleAnyway`
/// constraint (every node scores alike). `defaults` gives the selector of the system default
/// constraints, asked only for a pod without constraints of its own.
pub fn scores(
    pod: &PodInfo,
    cache: &Cache,
    feasible: &[&NodeInfo],
    defaults: impl FnOnce() -> Option<LabelSelector>,
) -> Option<Vec<i64>> {
    let own = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty());
    // Only the pod's own constraints require every key of a node (upstream's
    // requireAllTopologies): with the defaults, a node without a zone still spreads by host.
    let (mut s, require_all) = if own {
        (Counted::new(pod, "ScheduleAnyway"), true)
    } else {
        (Counted::system_defaults(pod, &defaults()?), false)
    };
    if s.constraints.is_empty() {
        return None;
    }
    let hostname: Vec<bool> = s.constraints.iter().map(|c| c.key == HOSTNAME).collect();
    // Upstream's IgnoredNodes: scored 0.
    let ignored: Vec<bool> = feasible
        .iter()
        .map(|n| require_all && !s.labelled(n))
        .collect();
    let scored = ignored.iter().filter(|i| !**i).count();
    // Per constraint, the domains of the scored feasible nodes (a node without the key adds
    // upstream's "" domain, which only weighs); a hostname domain is the node itself.
    let mut domains: Vec<HashSet<&str>> = vec![HashSet::new(); s.constraints.len()];
    for (node, _) in feasible.iter().zip(&ignored).filter(|(_, i)| !**i) {
        for (i, c) in s.constraints.iter().enumerate() {
            if !hostname[i] {
                domains[i].insert(node.labels().get(&c.key).map_or("", String::as_str));
            }
        }
    }
    let weights: Vec<f64> = domains
        .iter()
        .zip(&hostname)
        .map(|(d, host)| ((if *host { scored } else { d.len() } + 2) as f64).ln())
        .collect();
    // Pods count from all nodes into the feasible domains; per host, at scoring.
    s.count(pod, cache.nodes.values(), require_all, |i, v| {
        !hostname[i] && !v.is_empty() && domains[i].contains(v)
    });
    let raw: Vec<Option<i64>> = feasible
        .iter()
        .zip(&ignored)
        .map(|(node, ignored)| {
            if *ignored {
                return None;
            }
            let mut score = 0.0;
            for (i, c) in s.constraints.iter().enumerate() {
                if let Some(v) = node.labels().get(&c.key) {
                    let cnt = if hostname[i] {
                        c.count(pod, node)
                    } else {
                        s.counts[i].get(v).copied().unwrap_or(0)
                    };
                    score += cnt as f64 * weights[i] + (c.max_skew - 1) as f64;
                }
            }
            Some(score.round() as i64)
        })
        .collect();
    let valid = raw.iter().flatten();
    let min = valid.clone().copied().min().unwrap_or(0);
    let max = valid.copied().max().unwrap_or(0);
    Some(
        raw.into_iter()
            .map(|r| match r {
                None => 0,
                Some(_) if max == 0 => MAX_NODE_SCORE,
                Some(s) => MAX_NODE_SCORE * (max + min - s) / max,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    /// Nodes n0..: their zone label (None: no label).
    fn cache(zones: &[Option<&str>]) -> Cache {
        let mut c = Cache::default();
        for (i, z) in zones.iter().enumerate() {
            let mut labels = json!({"kubernetes.io/hostname": format!("n{i}")});
            if let Some(z) = z {
                labels["zone"] = json!(z);
            }
            let node = serde_json::from_value(
                json!({"metadata": {"name": format!("n{i}"), "labels": labels}}),
            )
            .expect("node");
            c.upsert_node(Arc::new(node));
        }
        c
    }

    fn pod(name: &str, when: &str, max_skew: i32, extra: serde_json::Value) -> PodInfo {
        let mut constraint = json!({"maxSkew": max_skew, "topologyKey": "zone", "whenUnsatisfiable": when,
                                    "labelSelector": {"matchLabels": {"app": "x"}}});
        if let (Some(c), Some(e)) = (constraint.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let p = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": "x"}},
            "spec": {"containers": [], "topologySpreadConstraints": [constraint]}}))
        .expect("pod");
        PodInfo::new(Arc::new(p))
    }

    fn place(c: &mut Cache, node: &str, name: &str) {
        c.place(node, Arc::new(pod(name, "DoNotSchedule", 1, json!({}))));
    }

    fn verdicts(c: &Cache, p: &PodInfo) -> Vec<Option<&'static str>> {
        let state = pre_filter(p, c);
        c.nodes
            .values()
            .map(|n| {
                filter(&state, n).err().map(|r| {
                    if r.reasons[0] == REASON {
                        "skew"
                    } else {
                        "label"
                    }
                })
            })
            .collect()
    }

    #[test]
    fn do_not_schedule_keeps_the_skew() {
        let mut c = cache(&[Some("a"), Some("a"), Some("b"), None]);
        place(&mut c, "n0", "p0");
        place(&mut c, "n1", "p1");
        place(&mut c, "n2", "p2");
        // a holds 2, b 1: a third in a makes the skew 2; b is fine; n3 lacks the key.
        let p = pod("new", "DoNotSchedule", 1, json!({}));
        assert_eq!(
            verdicts(&c, &p),
            [Some("skew"), Some("skew"), None, Some("label")]
        );
        let lenient = pod("new", "DoNotSchedule", 2, json!({}));
        assert_eq!(verdicts(&c, &lenient), [None, None, None, Some("label")]);
        // minDomains 3 with two domains: the minimum counts as 0, so a pod fits nowhere at skew 2...
        let p = pod("new", "DoNotSchedule", 2, json!({"minDomains": 3}));
        assert_eq!(
            verdicts(&c, &p),
            [Some("skew"), Some("skew"), None, Some("label")]
        );
        // ...and pods of another namespace do not count: were these three counted, b would be
        // the fuller zone.
        c.unplace("ns/p2");
        for i in 0..3 {
            let mut other = (*pod(&format!("o{i}"), "DoNotSchedule", 1, json!({})).pod).clone();
            other.metadata.namespace = Some("other".into());
            c.place("n2", Arc::new(PodInfo::new(Arc::new(other))));
        }
        let p = pod("new", "DoNotSchedule", 1, json!({}));
        assert_eq!(
            verdicts(&c, &p),
            [Some("skew"), Some("skew"), None, Some("label")]
        );
    }

    #[test]
    fn node_affinity_limits_the_domains() {
        let mut c = cache(&[Some("a"), Some("b")]);
        place(&mut c, "n0", "p0");
        place(&mut c, "n0", "p1");
        // Zone b is outside the pod's node affinity: with Honor (the default) it is no domain, so
        // a holds the minimum and takes another pod; with Ignore, b's 0 is the minimum.
        let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}});
        let mut honor = pod("new", "DoNotSchedule", 1, json!({}));
        let mut ignore = pod(
            "new",
            "DoNotSchedule",
            1,
            json!({"nodeAffinityPolicy": "Ignore"}),
        );
        for p in [&mut honor, &mut ignore] {
            let mut obj = (*p.pod).clone();
            if let Some(s) = obj.spec.as_mut() {
                s.affinity = serde_json::from_value(affinity.clone()).ok();
            }
            *p = PodInfo::new(Arc::new(obj));
        }
        assert_eq!(verdicts(&c, &honor)[0], None);
        assert_eq!(verdicts(&c, &ignore)[0], Some("skew"));
    }

    #[test]
    fn schedule_anyway_prefers_the_emptier_domain() {
        let mut c = cache(&[Some("a"), Some("b"), Some("b"), None]);
        place(&mut c, "n0", "p0");
        place(&mut c, "n0", "p1");
        place(&mut c, "n1", "p2");
        let p = pod("new", "ScheduleAnyway", 1, json!({}));
        let nodes: Vec<&NodeInfo> = c.nodes.values().collect();
        let s = scores(&p, &c, &nodes, || None).expect("constraints");
        // Raw: a = 2·ln 4 ≈ 3, b = 1·ln 4 ≈ 1; normalized 100·(3+1−s)/3; n3 has no zone: 0.
        assert_eq!(s, vec![33, 100, 100, 0]);
        assert!(scores(
            &pod("new", "DoNotSchedule", 1, json!({})),
            &c,
            &nodes,
            || None
        )
        .is_none());
    }

    #[test]
    fn system_defaults_spread_by_host_without_zones() {
        // Two nodes with a hostname label but no zone: upstream does not ignore them under the
        // system defaults (only the pod's own constraints require every key).
        let mut c = Cache::default();
        for name in ["h0", "h1"] {
            let node = serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {"kubernetes.io/hostname": name}}}))
            .expect("node");
            c.upsert_node(Arc::new(node));
        }
        let plain = |name: &str| {
            let p = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "labels": {"app": "x"}},
                "spec": {"containers": []}}))
            .expect("pod");
            Arc::new(PodInfo::new(Arc::new(p)))
        };
        c.place("h0", plain("a"));
        c.place("h0", plain("b"));
        let nodes: Vec<&NodeInfo> = c.nodes.values().collect();
        let selector: LabelSelector =
            serde_json::from_value(json!({"matchLabels": {"app": "x"}})).expect("selector");
        let p = plain("new");
        // Raw: h0 = 2·ln 4 + 2 ≈ 5, h1 = 0 + 2; normalized 100·(5+2−s)/5.
        assert_eq!(
            scores(&p, &c, &nodes, || Some(selector.clone())),
            Some(vec![40, 100])
        );
        // No selector, no default constraints.
        assert_eq!(scores(&p, &c, &nodes, || None), None);
        // A pod with constraints of its own never gets the defaults.
        let own = pod("own", "DoNotSchedule", 1, json!({}));
        assert_eq!(scores(&own, &c, &nodes, || Some(selector.clone())), None);
    }

    #[test]
    fn added_pods_count_for_the_filter() {
        let mut c = cache(&[Some("a"), Some("b")]);
        place(&mut c, "n0", "p0");
        let p = pod("new", "DoNotSchedule", 1, json!({}));
        let mut state = pre_filter(&p, &c);
        let n1 = c.nodes.get("n1").expect("n1");
        assert!(filter(&state, n1).is_ok());
        // A nominated pod of the group on n1 makes b as full as a: both still take one more...
        let nominated = pod("nominated", "DoNotSchedule", 1, json!({}));
        state.add_pod(&p, &nominated, n1);
        assert!(filter(&state, n1).is_ok());
        // ...and a second one tips b over.
        state.add_pod(&p, &pod("again", "DoNotSchedule", 1, json!({})), n1);
        assert!(filter(&state, n1).is_err());
    }
}
