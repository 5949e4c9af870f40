//! NodeResourcesFit: the pod's requests (containers, init containers, overhead) must fit in what the
//! node has left (filter); LeastAllocated scoring (cpu and memory, weight 1 each) favours emptier nodes.

use super::{Code, FilterResult, Rejection, MAX_NODE_SCORE};
use crate::scheduler::cache::{NodeInfo, PodInfo};

pub const WEIGHT: i64 = 1;

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.pods {
        reasons.push("Too many pods".to_string());
    }
    let r = &pod.requests;
    if r.milli_cpu == 0 && r.memory == 0 && r.ephemeral_storage == 0 {
        return if reasons.is_empty() {
            Ok(())
        } else {
            Err(Rejection {
                code: Code::Unschedulable,
                reasons,
            })
        };
    }
    let a = &node.allocatable;
    let used = &node.requested;
    if r.milli_cpu > 0 && r.milli_cpu > a.milli_cpu - used.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if r.memory > 0 && r.memory > a.memory - used.memory {
        reasons.push("Insufficient memory".into());
    }
    if r.ephemeral_storage > 0 && r.ephemeral_storage > a.ephemeral_storage - used.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            code: Code::Unschedulable,
            reasons,
        })
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated over cpu and memory with weight 1 each, counting the pod's non-zero requests.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let cpu = least_requested(
        node.non_zero_requested.milli_cpu + pod.non_zero.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = least_requested(
        node.non_zero_requested.memory + pod.non_zero.memory,
        node.allocatable.memory,
    );
    (cpu + mem) / 2
}
