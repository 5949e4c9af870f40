//! NodePorts: a pod's hostPorts must be free on the node (0.0.0.0 conflicts with every address).

use super::{Code, FilterResult, Rejection};
use crate::scheduler::cache::{NodeInfo, PodInfo};

pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    for (proto, ip, port) in &pod.ports {
        let conflict = node.used_ports.iter().any(|(p2, ip2, port2)| {
            port2 == port && p2 == proto && (ip == ip2 || ip == "0.0.0.0" || ip2 == "0.0.0.0")
        });
        if conflict {
            return Err(Rejection::new(Code::Unschedulable, REASON));
        }
    }
    Ok(())
}
