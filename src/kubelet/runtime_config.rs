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
    pod_log_directory(
        root,
        &pod.namespace().unwrap_or_default(),
        &pod.name_any(),
        pod.metadata.uid.as_deref().unwrap_or(""),
    )
}

/// [`log_directory`] of pod `ns/name` with UID `uid`.
pub fn pod_log_directory(root: &Path, ns: &str, name: &str, uid: &str) -> String {
    root.join("logs")
        .join(format!("{ns}_{name}_{uid}"))
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

/// The kubelet's DNS settings for pods (upstream's --cluster-dns, --cluster-domain, --resolv-conf).
#[derive(Clone, Debug)]
pub struct ClusterDns {
    /// The cluster DNS addresses ClusterFirst pods get as their only nameservers; empty: the
    /// cluster has no DNS, and ClusterFirst falls back to Default as upstream's kubelet does.
    pub servers: Vec<String>,
    /// The cluster domain (`cluster.local`), whose search path ClusterFirst pods get.
    pub domain: String,
    /// The host resolver configuration Default pods copy (and ClusterFirst pods take search
    /// domains from).
    pub resolv_conf: std::path::PathBuf,
}

impl Default for ClusterDns {
    fn default() -> Self {
        ClusterDns {
            servers: Vec::new(),
            domain: "cluster.local".into(),
            resolv_conf: "/etc/resolv.conf".into(),
        }
    }
}

/// Upstream's limits (pkg/apis/core/validation: MaxDNSNameservers, and the ExpandedDNSConfig
/// limits, GA since 1.28): 3 nameservers, 32 search domains of at most 253 characters, 2048
/// characters of search line.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;
const MAX_DOMAIN_CHARS: usize = 253;

/// upstream's parseResolvConf: `nameserver` lines accumulate, the last `search` and the last
/// `options` line win, `#` starts a comment line.
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut dns = DnsConfig::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.servers.extend(words.next().map(String::from)),
            Some("search") => {
                dns.searches = words.map(|w| w.trim_end_matches('.').to_string()).collect()
            }
            Some("options") => dns.options = words.map(String::from).collect(),
            _ => {}
        }
    }
    dns
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

/// Whether the pod's dnsPolicy asks for the cluster DNS (upstream's getPodDNSType → podDNSCluster):
/// ClusterFirst unless on the host network, ClusterFirstWithHostNet, and (as upstream) anything
/// invalid.
pub fn wants_cluster_dns(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst")
    {
        "None" | "Default" => false,
        "ClusterFirst" => !host_network,
        _ => true,
    }
}

/// The Warning upstream's kubelet records on a pod that wants the cluster DNS when it has none
/// (reason `MissingClusterDNS`), or None.
pub fn missing_cluster_dns(pod: &Pod, cluster: &ClusterDns) -> Option<String> {
    (wants_cluster_dns(pod) && cluster.servers.is_empty()).then(|| {
        format!(
            "pod: \"{}_{}({})\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.",
            pod.name_any(),
            pod.namespace().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default()
        )
    })
}

/// A pod's resolver configuration (upstream's dns.Configurer.GetPodDNS) from the kubelet's settings
/// and the host's resolv.conf text: the dnsPolicy picks the base (None: empty; ClusterFirst, and
/// ClusterFirstWithHostNet for host-network pods: the cluster DNS with the cluster search path and
/// ndots:5; Default, and ClusterFirst for host-network pods: the host's), the pod's dnsConfig is
/// appended, and the result is cut to upstream's limits.
pub fn pod_dns(pod: &Pod, cluster: &ClusterDns, host_resolv_conf: &str) -> DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let use_cluster = wants_cluster_dns(pod);
    let mut dns = if policy == "None" {
        DnsConfig::default()
    } else {
        parse_resolv_conf(host_resolv_conf)
    };
    if use_cluster && !cluster.servers.is_empty() {
        dns.servers = cluster.servers.clone();
        if !cluster.domain.is_empty() {
            let d = &cluster.domain;
            let ns = pod.namespace().unwrap_or_default();
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.append(&mut dns.searches);
            dns.searches = omit_duplicates(searches);
        }
        dns.options = vec!["ndots:5".into()];
    }
    if let Some(cfg) = &spec.dns_config {
        let mut servers = std::mem::take(&mut dns.servers);
        servers.extend(cfg.nameservers.iter().flatten().cloned());
        dns.servers = omit_duplicates(servers);
        let mut searches = std::mem::take(&mut dns.searches);
        searches.extend(cfg.searches.iter().flatten().cloned());
        dns.searches = omit_duplicates(searches);
        // upstream's mergeDNSOptions: one entry per option name, the pod's value winning (kept in
        // first-seen order here, where upstream's map has none).
        let mut options: Vec<(String, String)> = Vec::new();
        let mut set = |name: &str, value: &str| match options.iter_mut().find(|(n, _)| n == name) {
            Some(o) => o.1 = value.to_string(),
            None => options.push((name.to_string(), value.to_string())),
        };
        for o in &dns.options {
            match o.split_once(':') {
                Some((n, v)) => set(n, v),
                None => set(o, ""),
            }
        }
        for o in cfg.options.iter().flatten() {
            set(
                o.name.as_deref().unwrap_or_default(),
                o.value.as_deref().unwrap_or_default(),
            );
        }
        dns.options = options
            .into_iter()
            .map(|(n, v)| if v.is_empty() { n } else { format!("{n}:{v}") })
            .collect();
    }
    // upstream's formDNSConfigFitsLimits.
    dns.servers.truncate(MAX_NAMESERVERS);
    dns.searches.truncate(MAX_SEARCHES);
    dns.searches.retain(|s| s.len() <= MAX_DOMAIN_CHARS);
    while dns.searches.join(" ").len() > MAX_SEARCH_CHARS {
        dns.searches.pop();
    }
    dns
}

/// The sandbox of `pod` (attempt: how many sandboxes it had before).
pub fn sandbox_config(
    root: &Path,
    pod: &Pod,
    attempt: u32,
    cluster_dns: &ClusterDns,
) -> PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    // An unreadable resolv.conf leaves the host part empty (upstream fails the sandbox instead).
    let host = std::fs::read_to_string(&cluster_dns.resolv_conf).unwrap_or_default();
    let dns = pod_dns(pod, cluster_dns, &host);
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
    // A host-network pod shares the node's UTS namespace: upstream's kubelet sets no hostname for it
    // (runc refuses to set one without a private UTS namespace).
    let hostname = if host_network {
        String::new()
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

fn security_context(
    pod: &Pod,
    c: &Container,
    pid_target: Option<String>,
) -> LinuxContainerSecurityContext {
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
        namespace_options: Some(match pid_target {
            Some(target_id) => NamespaceOption {
                pid: NamespaceMode::Target as i32,
                target_id,
                ..namespaces(pod)
            },
            None => namespaces(pod),
        }),
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
    /// An ephemeral container's target (`targetContainerName`): the runtime ID of the container
    /// whose process namespace it joins, so `kubectl debug --target` sees that container's processes.
    pub pid_target: Option<String>,
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
        (
            super::lifecycle::ANNOTATION_MESSAGE_PATH.to_string(),
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
        (
            super::lifecycle::ANNOTATION_MESSAGE_POLICY.to_string(),
            c.termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
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
            security_context: Some(security_context(pod, c, inputs.pid_target)),
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
        let s = sandbox_config(Path::new("/k"), &pod, 0, &ClusterDns::default());
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
        // The container's namespaces, with or without an ephemeral container's PID target.
        let namespaces_of = |pid_target: Option<String>| {
            let inputs = ContainerInputs {
                attempt: 0,
                env: vec![],
                mounts: vec![],
                image: "busybox".into(),
                grace: 30,
                pid_target,
            };
            let c = container_config(&pod, &pod.spec.clone().unwrap().containers[0], inputs);
            c.linux
                .unwrap()
                .security_context
                .unwrap()
                .namespace_options
                .unwrap()
        };
        assert_eq!(
            namespaces_of(None).pid,
            NamespaceMode::Container as i32,
            "the command is PID 1 of its container"
        );
        let ns = namespaces_of(Some("abc".into()));
        assert_eq!(
            (ns.pid, ns.target_id.as_str(), ns.network),
            (
                NamespaceMode::Target as i32,
                "abc",
                NamespaceMode::Pod as i32
            ),
            "an ephemeral container with a target joins that container's PID namespace"
        );
    }

    const HOST: &str = "# host\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example. lab.example\noptions edns0 timeout:2\n";

    fn dns_pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "team"}, "spec": spec
        }))
        .unwrap()
    }

    fn cluster() -> ClusterDns {
        ClusterDns {
            servers: vec!["10.96.0.10".into()],
            ..Default::default()
        }
    }

    #[test]
    fn cluster_first_gets_the_cluster_dns_and_search_path() {
        for spec in [
            serde_json::json!({"containers": []}),
            serde_json::json!({"dnsPolicy": "ClusterFirst", "containers": []}),
            serde_json::json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true, "containers": []}),
        ] {
            let d = pod_dns(&dns_pod(spec.clone()), &cluster(), HOST);
            assert_eq!(d.servers, ["10.96.0.10"], "{spec}");
            assert_eq!(
                d.searches,
                [
                    "team.svc.cluster.local",
                    "svc.cluster.local",
                    "cluster.local",
                    "corp.example",
                    "lab.example"
                ],
                "{spec}"
            );
            assert_eq!(d.options, ["ndots:5"], "{spec}");
        }
    }

    #[test]
    fn default_and_host_network_get_the_host_resolvers() {
        for spec in [
            serde_json::json!({"dnsPolicy": "Default", "containers": []}),
            serde_json::json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true, "containers": []}),
        ] {
            let d = pod_dns(&dns_pod(spec.clone()), &cluster(), HOST);
            assert_eq!(d.servers, ["192.0.2.53", "192.0.2.54"], "{spec}");
            assert_eq!(d.searches, ["corp.example", "lab.example"], "{spec}");
            assert_eq!(d.options, ["edns0", "timeout:2"], "{spec}");
        }
        // Without a cluster DNS, ClusterFirst falls back to Default.
        let d = pod_dns(
            &dns_pod(serde_json::json!({"containers": []})),
            &ClusterDns::default(),
            HOST,
        );
        assert_eq!(d.servers, ["192.0.2.53", "192.0.2.54"]);
        assert_eq!(d.searches, ["corp.example", "lab.example"]);
    }

    #[test]
    fn none_takes_only_the_pod_dns_config() {
        let d = pod_dns(
            &dns_pod(
                serde_json::json!({"dnsPolicy": "None", "containers": [], "dnsConfig": {
                "nameservers": ["1.1.1.1"], "searches": ["a.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}),
            ),
            &cluster(),
            HOST,
        );
        assert_eq!(d.servers, ["1.1.1.1"]);
        assert_eq!(d.searches, ["a.example"]);
        assert_eq!(d.options, ["ndots:2", "rotate"]);
    }

    #[test]
    fn dns_config_is_merged_and_cut_to_the_limits() {
        let searches: Vec<String> = (0..40).map(|i| format!("s{i}.example")).collect();
        let d = pod_dns(
            &dns_pod(serde_json::json!({"containers": [], "dnsConfig": {
                "nameservers": ["10.96.0.10", "192.0.2.1", "192.0.2.2", "192.0.2.3"],
                "searches": searches,
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})),
            &cluster(),
            HOST,
        );
        // Duplicates dropped, then at most 3 nameservers.
        assert_eq!(d.servers, ["10.96.0.10", "192.0.2.1", "192.0.2.2"]);
        assert_eq!(d.searches.len(), 32);
        assert_eq!(d.searches[0], "team.svc.cluster.local");
        assert_eq!(d.searches[5], "s0.example");
        // The pod's value wins; new options are appended.
        assert_eq!(d.options, ["ndots:2", "edns0"]);
        // A search line over 2048 characters loses domains from the end.
        let long: Vec<String> = (0..20).map(|i| format!("{i}{}", "x".repeat(200))).collect();
        let d = pod_dns(
            &dns_pod(serde_json::json!({"dnsPolicy": "None", "containers": [],
                "dnsConfig": {"searches": long}})),
            &cluster(),
            HOST,
        );
        assert!(d.searches.join(" ").len() <= 2048);
        assert_eq!(d.searches.len(), 10);
    }

    #[test]
    fn resolv_conf_parsing_follows_upstream() {
        let d = parse_resolv_conf("nameserver 1.2.3.4\nsearch a b\n# nameserver 9.9.9.9\nsearch c.\noptions x\noptions y z\nnameserver 5.6.7.8\n");
        assert_eq!(d.servers, ["1.2.3.4", "5.6.7.8"]);
        assert_eq!(d.searches, ["c"]);
        assert_eq!(d.options, ["y", "z"]);
    }
}
