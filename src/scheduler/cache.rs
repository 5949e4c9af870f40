//! The scheduler's view of the cluster: nodes with the pods assigned (or assumed) to them and what
//! those pods request, kept up to date from the watches and from the scheduler's own bindings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, ResourceRequirements};

/// Upstream's defaults for scoring containers that request nothing (pkg/scheduler/util: 100m, 200MB).
pub const DEFAULT_MILLI_CPU: i64 = 100;
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
}

impl Resources {
    fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
    }
    fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
    }
    fn max(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
    }
}

/// A quantity string as an integer (milli when asked); unparsable values count as zero (the apiserver
/// validated them already).
pub fn quantity(q: &str, milli: bool) -> i64 {
    match crate::apiserver::wire::quantity::Quantity::parse(q) {
        Ok(q) if milli => i64::try_from(q.milli_value()).unwrap_or(i64::MAX),
        Ok(q) => q.value(),
        Err(_) => 0,
    }
}

fn from_list(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Resources {
    let get = |k: &str, milli| list.and_then(|l| l.get(k)).map(|q| quantity(&q.0, milli));
    Resources {
        milli_cpu: get("cpu", true).unwrap_or(0),
        memory: get("memory", false).unwrap_or(0),
        ephemeral_storage: get("ephemeral-storage", false).unwrap_or(0),
        pods: get("pods", false).unwrap_or(0),
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let r = c
        .resources
        .as_ref()
        .and_then(|r: &ResourceRequirements| r.requests.as_ref());
    let mut res = from_list(r);
    if non_zero {
        let has = |k: &str| r.is_some_and(|r| r.contains_key(k));
        if !has("cpu") {
            res.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if !has("memory") {
            res.memory = DEFAULT_MEMORY;
        }
    }
    res
}

/// A pod's effective request as upstream computes it: the sum of its containers, at least the largest
/// init container (restartable "sidecar" init containers add to both), plus the pod overhead.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            init_max.max(&sidecars);
        } else {
            let mut with = r;
            with.add(&sidecars);
            init_max.max(&with);
        }
    }
    total.add(&sidecars);
    total.max(&init_max);
    if !non_zero {
        total.add(&from_list(spec.overhead.as_ref()));
    }
    total.pods = 1;
    total
}

/// (protocol, hostIP, hostPort) a pod takes on its node.
pub type HostPort = (String, String, i32);

pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                out.push((
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                    hp,
                ));
            }
        }
    }
    out
}

/// A pod as the scheduler keeps it.
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: String,
    pub namespace: String,
    pub requests: Resources,
    pub non_zero: Resources,
    pub ports: Vec<HostPort>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        PodInfo {
            key: format!("{namespace}/{}", pod.metadata.name.as_deref().unwrap_or("")),
            namespace,
            requests: pod_requests(&pod, false),
            non_zero: pod_requests(&pod, true),
            ports: host_ports(&pod),
            pod,
        }
    }
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }
    pub fn has_required_anti_affinity(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|t| !t.is_empty())
    }
}

/// A node and what is placed on it (cloned by preemption to simulate evictions).
#[derive(Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: HashMap<String, Arc<PodInfo>>,
    pub used_ports: HashSet<HostPort>,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let allocatable = from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            node,
            allocatable,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: HashMap::new(),
            used_ports: HashSet::new(),
        }
    }
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
        self.node = node;
    }
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }
    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        if let Some(old) = self.pods.remove(&p.key) {
            self.remove_accounting(&old);
        }
        self.requested.add(&p.requests);
        self.non_zero_requested.add(&p.non_zero);
        for port in &p.ports {
            self.used_ports.insert(port.clone());
        }
        self.pods.insert(p.key.clone(), p);
    }
    pub fn remove_pod(&mut self, key: &str) {
        if let Some(old) = self.pods.remove(key) {
            self.remove_accounting(&old);
        }
    }
    fn remove_accounting(&mut self, old: &PodInfo) {
        self.requested.sub(&old.requests);
        self.non_zero_requested.sub(&old.non_zero);
        for port in &old.ports {
            self.used_ports.remove(port);
        }
        // Another pod may still hold the same port (only possible with conflicting manual nodeNames).
        for p in self.pods.values() {
            for port in &p.ports {
                self.used_ports.insert(port.clone());
            }
        }
    }
}

/// Nodes by name (ordered, so the scan order is stable) and where each assigned pod is.
#[derive(Default)]
pub struct Cache {
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Pod key → node name, for every assigned or assumed pod (also pods on nodes not yet seen).
    pub placed: HashMap<String, (String, Arc<PodInfo>)>,
    /// Keys of placed pods with required anti-affinity terms (checked against every incoming pod).
    pub with_anti_affinity: HashSet<String>,
    /// Keys of placed pods with any inter-pod affinity or anti-affinity term (visited when scoring).
    pub with_affinity: HashSet<String>,
}

impl Cache {
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.nodes.get_mut(&name) {
            Some(info) => info.set_node(node),
            None => {
                let mut info = NodeInfo::new(node);
                for (node_name, p) in self.placed.values() {
                    if *node_name == name {
                        info.add_pod(p.clone());
                    }
                }
                self.nodes.insert(name, info);
            }
        }
    }
    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }
    pub fn place(&mut self, node: &str, p: Arc<PodInfo>) {
        self.unplace(&p.key);
        if p.has_required_anti_affinity() {
            self.with_anti_affinity.insert(p.key.clone());
        }
        if crate::scheduler::plugins::inter_pod_affinity::has_terms(&p) {
            self.with_affinity.insert(p.key.clone());
        }
        if let Some(info) = self.nodes.get_mut(node) {
            info.add_pod(p.clone());
        }
        self.placed.insert(p.key.clone(), (node.to_string(), p));
    }
    pub fn unplace(&mut self, key: &str) {
        if let Some((node, _)) = self.placed.remove(key) {
            if let Some(info) = self.nodes.get_mut(&node) {
                info.remove_pod(key);
            }
        }
        self.with_anti_affinity.remove(key);
        self.with_affinity.remove(key);
    }
}
