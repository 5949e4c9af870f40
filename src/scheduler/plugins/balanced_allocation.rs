//! NodeResourcesBalancedAllocation: favours nodes whose cpu and memory fractions stay close
//! (score = (1 - standard deviation of the fractions) * 100, weight 1).

use super::MAX_NODE_SCORE;
use crate::scheduler::cache::{NodeInfo, PodInfo};

pub const WEIGHT: i64 = 1;

pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let fraction = |req: i64, cap: i64| {
        if cap == 0 {
            0.0
        } else {
            (req as f64 / cap as f64).min(1.0)
        }
    };
    let cpu = fraction(
        node.non_zero_requested.milli_cpu + pod.non_zero.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = fraction(
        node.non_zero_requested.memory + pod.non_zero.memory,
        node.allocatable.memory,
    );
    // For two resources the standard deviation is half their difference.
    let std = (cpu - mem).abs() / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}
