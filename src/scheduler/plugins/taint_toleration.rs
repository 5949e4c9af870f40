//! TaintToleration: NoSchedule/NoExecute taints must be tolerated (filter); untolerated
//! PreferNoSchedule taints lower a node's score (weight 3, normalized reversed).

use super::{Code, FilterResult, Rejection};
use crate::scheduler::cache::{NodeInfo, PodInfo};
use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const WEIGHT: i64 = 3;

/// v1.Toleration.ToleratesTaint.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let tols = tolerations(pod);
    let untolerated = taints(node).iter().find(|taint| {
        (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !tols.iter().any(|t| tolerates(t, taint))
    });
    match untolerated {
        None => Ok(()),
        Some(taint) => Err(Rejection::new(
            Code::UnschedulableAndUnresolvable,
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            ),
        )),
    }
}

/// The number of PreferNoSchedule taints the pod does not tolerate (only its PreferNoSchedule or
/// effect-less tolerations count, as upstream).
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let tols: Vec<&Toleration> = tolerations(pod)
        .iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .collect();
    taints(node)
        .iter()
        .filter(|taint| {
            taint.effect == "PreferNoSchedule" && !tols.iter().any(|t| tolerates(t, taint))
        })
        .count() as i64
}
