//! NodeName: a pod that names a node (spec.nodeName set before scheduling) fits only there. The
//! scheduler never sees such pods as unscheduled, so this matters only for completeness.

use super::{Code, FilterResult, Rejection};
use crate::scheduler::cache::{NodeInfo, PodInfo};

pub const REASON: &str = "node(s) didn't match the requested node name";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(name) if !name.is_empty() && name != node.name => {
            Err(Rejection::new(Code::UnschedulableAndUnresolvable, REASON))
        }
        _ => Ok(()),
    }
}
