//! One scheduling cycle: filter the nodes (in parallel, stopping once enough feasible nodes are found
//! as upstream's percentageOfNodesToScore), score the feasible ones with the default weights, pick the
//! best (ties broken at random); or, when none fits, try preemption ([`super::preemption`]) and explain
//! the failure in upstream's FitError words.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::cache::{Cache, NodeInfo, PodInfo};
use super::plugins::{self, inter_pod_affinity, pod_topology_spread, FilterResult, Rejection};
use super::preemption::{self, Verdict};

pub enum Outcome {
    Fits(String),
    /// The FitError message (upstream's words, with preemption's verdict).
    Unschedulable(String),
    /// No node fits, but evicting `victims` from `node` makes room (the message omits preemption,
    /// as upstream's when its PostFilter succeeds).
    Preempt {
        message: String,
        node: String,
        victims: Vec<std::sync::Arc<PodInfo>>,
    },
}

/// What the PreFilter plugins computed for one pod.
struct PreFiltered {
    spread: pod_topology_spread::State,
    ipa: inter_pod_affinity::State,
}

fn run_filters(pod: &PodInfo, pre: &PreFiltered, node: &NodeInfo) -> FilterResult {
    // The default profile's filter order.
    plugins::node_unschedulable::filter(pod, node)?;
    plugins::node_name::filter(pod, node)?;
    plugins::taint_toleration::filter(pod, node)?;
    plugins::node_affinity::filter(pod, node)?;
    plugins::node_ports::filter(pod, node)?;
    plugins::node_resources_fit::filter(pod, node)?;
    pod_topology_spread::filter(&pre.spread, node)?;
    inter_pod_affinity::filter(&pre.ipa, node)
}

/// upstream's numFeasibleNodesToFind with the adaptive percentage (50% − nodes/125, at least 5%),
/// never fewer than 100 nodes.
fn num_feasible_to_find(all: usize) -> usize {
    if all < 100 {
        return all;
    }
    let pct = (50i64 - all as i64 / 125).max(5) as usize;
    (all * pct / 100).max(100)
}

pub struct Framework {
    /// Where the next cycle starts its scan (upstream's nextStartNodeIndex), so pods spread.
    next_start: usize,
    threads: usize,
}

impl Framework {
    pub fn new() -> Framework {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Framework {
            next_start: 0,
            threads,
        }
    }

    pub fn schedule(&mut self, pod: &PodInfo, cache: &Cache) -> Outcome {
        let nodes: Vec<&NodeInfo> = cache.nodes.values().collect();
        let n = nodes.len();
        if n == 0 {
            return Outcome::Unschedulable("no nodes available to schedule pods".into());
        }
        let pre = PreFiltered {
            spread: pod_topology_spread::pre_filter(pod, cache),
            ipa: inter_pod_affinity::pre_filter(pod, cache),
        };
        let want = num_feasible_to_find(n);
        let start = self.next_start % n;
        let next = AtomicUsize::new(0);
        let found = AtomicUsize::new(0);
        let feasible: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
        let rejected: Mutex<Vec<(usize, Rejection)>> = Mutex::new(Vec::new());
        let work = || {
            let mut ok = Vec::new();
            let mut bad = Vec::new();
            loop {
                if found.load(Ordering::Relaxed) >= want {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let idx = (start + i) % n;
                match run_filters(pod, &pre, nodes[idx]) {
                    Ok(()) => {
                        found.fetch_add(1, Ordering::Relaxed);
                        ok.push((i, idx));
                    }
                    Err(r) => bad.push((idx, r)),
                }
            }
            if let Ok(mut f) = feasible.lock() {
                f.extend(ok);
            }
            if let Ok(mut r) = rejected.lock() {
                r.extend(bad);
            }
        };
        // Small clusters are filtered inline: spawning threads costs more than the filters.
        if self.threads > 1 && n >= 256 {
            std::thread::scope(|s| {
                for _ in 0..self.threads {
                    s.spawn(work);
                }
            });
        } else {
            work();
        }
        let mut feasible: Vec<(usize, usize)> = feasible.into_inner().unwrap_or_default();
        feasible.sort_unstable();
        feasible.truncate(want);
        let processed = feasible.last().map(|(i, _)| i + 1).unwrap_or(n);
        self.next_start = (start + processed) % n;
        let feasible: Vec<usize> = feasible.into_iter().map(|(_, idx)| idx).collect();
        if feasible.is_empty() {
            let mut rejected = rejected.into_inner().unwrap_or_default();
            rejected.sort_by_key(|(idx, _)| *idx);
            let message = format!(
                "0/{n} nodes are available: {}.",
                histogram(
                    rejected
                        .iter()
                        .flat_map(|(_, r)| r.reasons.iter().map(String::as_str))
                )
            );
            let fits = |node: &NodeInfo| run_filters(pod, &pre, node);
            return match preemption::find(pod, cache, &nodes, &rejected, fits) {
                Verdict::Preempt(c) => Outcome::Preempt {
                    message,
                    node: c.node,
                    victims: c.victims,
                },
                Verdict::NotEligible(why) => {
                    Outcome::Unschedulable(format!("{message} preemption: {why}"))
                }
                Verdict::Unhelpful(reasons) => Outcome::Unschedulable(format!(
                    "{message} preemption: 0/{n} nodes are available: {}.",
                    histogram(reasons.iter().map(String::as_str))
                )),
            };
        }
        if feasible.len() == 1 {
            return Outcome::Fits(nodes[feasible[0]].name.clone());
        }
        Outcome::Fits(nodes[self.pick(pod, cache, &nodes, &feasible)].name.clone())
    }

    fn pick(&self, pod: &PodInfo, cache: &Cache, nodes: &[&NodeInfo], feasible: &[usize]) -> usize {
        let mut taint: Vec<i64> = feasible
            .iter()
            .map(|&i| plugins::taint_toleration::score(pod, nodes[i]))
            .collect();
        plugins::default_normalize(&mut taint, true);
        let mut affinity: Vec<i64> = feasible
            .iter()
            .map(|&i| plugins::node_affinity::score(pod, nodes[i]))
            .collect();
        plugins::default_normalize(&mut affinity, false);
        let feasible_nodes: Vec<&NodeInfo> = feasible.iter().map(|&i| nodes[i]).collect();
        let spread = pod_topology_spread::scores(pod, cache, &feasible_nodes);
        let pod_affinity = inter_pod_affinity::scores(pod, cache, &feasible_nodes);
        let mut best = (i64::MIN, feasible[0]);
        let mut ties = 0u32;
        for (k, &i) in feasible.iter().enumerate() {
            let total = plugins::node_resources_fit::score(pod, nodes[i])
                * plugins::node_resources_fit::WEIGHT
                + plugins::balanced_allocation::score(pod, nodes[i])
                    * plugins::balanced_allocation::WEIGHT
                + taint[k] * plugins::taint_toleration::WEIGHT
                + affinity[k] * plugins::node_affinity::WEIGHT
                + spread.as_ref().map_or(0, |s| s[k]) * pod_topology_spread::WEIGHT
                + pod_affinity.as_ref().map_or(0, |s| s[k]) * inter_pod_affinity::WEIGHT;
            if total > best.0 {
                best = (total, i);
                ties = 1;
            } else if total == best.0 {
                // Reservoir sampling among equal scores, as upstream's selectHost.
                ties += 1;
                if rand::random::<u32>().is_multiple_of(ties) {
                    best = (total, i);
                }
            }
        }
        best.1
    }
}

impl Default for Framework {
    fn default() -> Self {
        Self::new()
    }
}

/// "N reason, M reason" sorted as upstream's FitError (reason strings sorted).
fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r).or_default() += 1;
    }
    let mut parts: Vec<String> = counts
        .into_iter()
        .map(|(r, c)| format!("{c} {r}"))
        .collect();
    parts.sort();
    parts.join(", ")
}
