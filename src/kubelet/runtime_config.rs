//! The CRI requests a pod becomes (upstream's kuberuntime generatePodSandboxConfig and
//! generateContainerConfig): the sandbox with its hostname, DNS, port mappings, namespaces and log
//! directory; each container with its image, command, environment, mounts, resources and security
//! context. The `io.kubernetes.*` labels are upstream's, so the kubelet finds its pods again after a
//! restart by listing the runtime.

use std::collections::HashMap;
use std::path::Path;

use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, DnsConfig, ImageSpec, Int64Value, KeyValue,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol,
};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt;

use crate::apiserver::wire::quantity::Quantity;

pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// The annotation holding a container's termination grace period, so a kubelet that restarted can
/// still stop it with the pod's grace.
pub const ANNOTATION_GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";

/// Where the runtime writes a pod's container logs (upstream: /var/log/pods/<ns>_<name>_<uid>).
pub fn log_directory(root: &Path, pod: &Pod) -> String {
    root.join("logs")
        .join(format!(
            "{}_{}_{}",
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
            pod.metadata.uid.as_deref().unwrap_or("")
        ))
        .to_string_lossy()
        .into_owned()
}

/// A container's log file relative to the pod's log directory: `<name>/<attempt>.log`.
pub fn log_path(container: &str, attempt: u32) -> String {
    format!("{container}/{attempt}.log")
}

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .labels()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_POD_NAME.into(), pod.name_any());
    labels.insert(
        LABEL_POD_NAMESPACE.into(),
        pod.namespace().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_UID.into(),
        pod.metadata.uid.clone().unwrap_or_default(),
    );
    labels
}

/// The host's resolver settings (dnsPolicy Default, and ClusterFirst while the cluster has no DNS
/// service: upstream's kubelet falls back the same way without --cluster-dns).
fn host_dns() -> DnsConfig {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut dns = DnsConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.servers.extend(words.next().map(String::from)),
            Some("search") => dns.searches = words.map(String::from).collect(),
            Some("options") => dns.options.extend(words.map(String::from)),
            _ => {}
        }
    }
    dns
}

/// The sandbox of `pod` (attempt: how many sandboxes it had before).
pub fn sandbox_config(root: &Path, pod: &Pod, attempt: u32) -> PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let mut dns = host_dns();
    if let Some(cfg) = &spec.dns_config {
        dns.servers
            .extend(cfg.nameservers.iter().flatten().cloned());
        dns.searches.extend(cfg.searches.iter().flatten().cloned());
        for o in cfg.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            dns.options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    if spec.dns_policy.as_deref() == Some("None") {
        dns = DnsConfig::default();
        if let Some(cfg) = &spec.dns_config {
            dns.servers = cfg.nameservers.clone().unwrap_or_default();
            dns.searches = cfg.searches.clone().unwrap_or_default();
        }
    }
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|p| *p > 0) else {
                continue;
            };
            port_mappings.push(PortMapping {
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp as i32,
                    Some("SCTP") => Protocol::Sctp as i32,
                    _ => Protocol::Tcp as i32,
                },
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let hostname = if host_network {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    } else {
        spec.hostname.clone().unwrap_or_else(|| pod.name_any())
    };
    let sc = spec.security_context.clone().unwrap_or_default();
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod.name_any(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.namespace().unwrap_or_default(),
            attempt,
        }),
        hostname,
        log_directory: log_directory(root, pod),
        dns_config: Some(dns),
        port_mappings,
        labels: pod_labels(pod),
        annotations: pod
            .annotations()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces(pod)),
                run_as_user: sc.run_as_user.map(|value| Int64Value { value }),
                run_as_group: sc.run_as_group.map(|value| Int64Value { value }),
                supplemental_groups: sc.supplemental_groups.clone().unwrap_or_default(),
                ..Default::default()
            }),
            sysctls: sc
                .sysctls
                .iter()
                .flatten()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Upstream's namespacesForPod: the pod's network and IPC namespaces are shared by its containers
/// (the node's with hostNetwork/hostIPC); each container has its own PID namespace unless the pod
/// shares one (shareProcessNamespace) or uses the node's (hostPID), so a container's command is PID 1.
fn namespaces(pod: &Pod) -> NamespaceOption {
    let spec = pod.spec.clone().unwrap_or_default();
    let node_or_pod = |node: Option<bool>| {
        if node.unwrap_or(false) {
            NamespaceMode::Node as i32
        } else {
            NamespaceMode::Pod as i32
        }
    };
    let pid = if spec.host_pid.unwrap_or(false) {
        NamespaceMode::Node as i32
    } else if spec.share_process_namespace.unwrap_or(false) {
        NamespaceMode::Pod as i32
    } else {
        NamespaceMode::Container as i32
    };
    NamespaceOption {
        network: node_or_pod(spec.host_network),
        pid,
        ipc: node_or_pod(spec.host_ipc),
        ..Default::default()
    }
}

fn milli(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> Option<i128> {
    q.and_then(|q| Quantity::parse(&q.0).ok())
        .map(|q| q.milli_value())
}

/// Upstream's cgroup numbers: shares from the cpu request (milliCPUToShares, at least 2), quota
/// from the cpu limit over a 100 ms period, the memory limit in bytes.
fn resources(c: &Container) -> LinuxContainerResources {
    let r = c.resources.clone().unwrap_or_default();
    let requests = r.requests.unwrap_or_default();
    let limits = r.limits.unwrap_or_default();
    let cpu_request = milli(requests.get("cpu")).or(milli(limits.get("cpu")));
    let shares = cpu_request.map(|m| (m * 1024 / 1000).max(2)).unwrap_or(2) as i64;
    let (period, quota) = match milli(limits.get("cpu")) {
        Some(m) if m > 0 => (100_000, ((m * 100_000) / 1000).max(1000) as i64),
        _ => (0, 0),
    };
    let memory = milli(limits.get("memory"))
        .map(|m| (m / 1000) as i64)
        .unwrap_or(0);
    LinuxContainerResources {
        cpu_period: period,
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: memory,
        ..Default::default()
    }
}

fn security_context(pod: &Pod, c: &Container) -> LinuxContainerSecurityContext {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let caps = sc.capabilities.clone().unwrap_or_default();
    LinuxContainerSecurityContext {
        capabilities: Some(Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            ..Default::default()
        }),
        privileged: sc.privileged.unwrap_or(false),
        run_as_user: sc
            .run_as_user
            .or(psc.run_as_user)
            .map(|value| Int64Value { value }),
        run_as_group: sc
            .run_as_group
            .or(psc.run_as_group)
            .map(|value| Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: psc.supplemental_groups.unwrap_or_default(),
        namespace_options: Some(namespaces(pod)),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        ..Default::default()
    }
}

/// What the pod worker resolved for a container before asking the runtime to create it.
pub struct ContainerInputs {
    pub attempt: u32,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub image: String,
    pub grace: i64,
}

pub fn container_config(pod: &Pod, c: &Container, inputs: ContainerInputs) -> ContainerConfig {
    let vars: std::collections::BTreeMap<String, String> = inputs.env.iter().cloned().collect();
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|a| super::env::expand(a, &vars))
            .collect()
    };
    let mut labels = pod_labels(pod);
    labels.retain(|k, _| k.starts_with("io.kubernetes."));
    labels.insert(LABEL_CONTAINER_NAME.into(), c.name.clone());
    let annotations: HashMap<String, String> = [
        (
            "io.kubernetes.container.restartCount".to_string(),
            inputs.attempt.to_string(),
        ),
        (ANNOTATION_GRACE.to_string(), inputs.grace.to_string()),
    ]
    .into_iter()
    .collect();
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: c.name.clone(),
            attempt: inputs.attempt,
        }),
        image: Some(ImageSpec {
            image: inputs.image,
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: inputs
            .env
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect(),
        mounts: inputs.mounts,
        labels,
        annotations,
        log_path: log_path(&c.name, inputs.attempt),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(resources(c)),
            security_context: Some(security_context(pod, c)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_numbers_follow_upstream() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}
        }))
        .unwrap();
        let r = resources(&c);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!((r.cpu_period, r.cpu_quota), (100_000, 50_000));
        assert_eq!(r.memory_limit_in_bytes, 64 * 1024 * 1024);
        let none = resources(&Container::default());
        assert_eq!(
            (none.cpu_shares, none.cpu_quota, none.memory_limit_in_bytes),
            (2, 0, 0)
        );
    }

    #[test]
    fn sandbox_names_and_labels() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "u1", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}
        }))
        .unwrap();
        let s = sandbox_config(Path::new("/k"), &pod, 0);
        assert_eq!(s.hostname, "p");
        assert_eq!(s.log_directory, "/k/logs/n_p_u1");
        assert_eq!(s.labels.get(LABEL_POD_UID).map(String::as_str), Some("u1"));
        assert_eq!(s.port_mappings[0].host_port, 8080);
        let ns = s
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.pid, NamespaceMode::Container as i32);
        let c = container_config(
            &pod,
            &pod.spec.clone().unwrap().containers[0],
            ContainerInputs {
                attempt: 0,
                env: vec![],
                mounts: vec![],
                image: "busybox".into(),
                grace: 30,
            },
        );
        let ns = c
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(
            ns.pid,
            NamespaceMode::Container as i32,
            "the command is PID 1 of its container"
        );
    }
}
