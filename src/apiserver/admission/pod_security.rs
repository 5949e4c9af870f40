//! PodSecurity (upstream's `staging/src/k8s.io/pod-security-admission`): a namespace's
//! `pod-security.kubernetes.io/enforce|warn` labels (`privileged`, `baseline`, `restricted`) hold new
//! pods to the Pod Security Standards. `enforce` refuses a violating pod, `warn` admits it with a
//! `Warning:` header; pod templates of workload kinds are only warned about, as upstream does.
//! `audit` adds `pod-security.kubernetes.io/audit-violations` to the request's audit event (and a pod's
//! event gets `pod-security.kubernetes.io/enforce-policy`), when the server writes an audit log.
//!
//! The checks are upstream's, in its order (baseline's then restricted's, each sorted by check id,
//! restricted's overriding baseline's capabilities, seccomp and hostPath ones), with its texts:
//! `violates PodSecurity "restricted:latest": privileged (container "c" must not set ...), ...`.

use serde_json::Value;

use super::{Attributes, Operation, Plugin};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult, Cause};

pub struct PodSecurity;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A namespace's policy for one mode: the level and its `<level>:<version>` label.
fn policy(ns: &Value, mode: &str) -> Option<(Level, String)> {
    let label = |key: &str| {
        ns.pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
    };
    let level = Level::parse(label(&format!("pod-security.kubernetes.io/{mode}"))?)?;
    let version = label(&format!("pod-security.kubernetes.io/{mode}-version"))
        .filter(|v| !v.is_empty())
        .unwrap_or("latest");
    Some((level, format!("{}:{version}", level.name())))
}

/// Where a workload kind keeps its pod template.
fn template_path(a: &Attributes<'_>) -> Option<&'static str> {
    if a.sub.is_some() {
        return None;
    }
    match (a.info.group.as_str(), a.info.plural.as_str()) {
        ("", "pods") => Some(""),
        ("", "replicationcontrollers")
        | ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => Some("/spec/template"),
        ("", "podtemplates") => Some("/template"),
        ("batch", "cronjobs") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Plugin for PodSecurity {
    async fn validate(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        obj: &Value,
        _old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if a.sub.is_none() && a.info.group.is_empty() && a.info.plural == "namespaces" {
            return namespace(reg, obj, _old, warnings).await;
        }
        let (Some(path), Some(ns)) = (template_path(a), a.ns) else {
            return Ok(());
        };
        if a.op != Operation::Create {
            return Ok(());
        }
        let Some(namespace) = reg.lookup("", "v1", "namespaces", None, ns).await? else {
            return Ok(());
        };
        let (enforce, warn) = (policy(&namespace, "enforce"), policy(&namespace, "warn"));
        // Only worked out when the request's audit event will be written.
        let recording = crate::apiserver::audit::recording();
        let audit = policy(&namespace, "audit").filter(|_| recording);
        if enforce.is_none() && warn.is_none() && audit.is_none() {
            return Ok(());
        }
        let Some(pod) = obj.pointer(path) else {
            return Ok(());
        };
        let is_pod = path.is_empty();
        if recording {
            audit_annotations(pod, is_pod, &enforce, &warn, &audit);
        }
        if let Some((level, label)) = &enforce {
            let found = violations(pod, *level);
            if !found.is_empty() {
                if is_pod {
                    return Err(a.forbidden(
                        obj,
                        &format!("violates PodSecurity {label:?}: {}", found.join(", ")),
                    ));
                }
                warnings.push(format!(
                    "would violate PodSecurity {label:?}: {}",
                    found.join(", ")
                ));
            }
        }
        if let Some((level, label)) = &warn {
            let same = enforce.as_ref().is_some_and(|(_, l)| l == label);
            let found = violations(pod, *level);
            if !found.is_empty() && !same {
                warnings.push(format!(
                    "would violate PodSecurity {label:?}: {}",
                    found.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Upstream's audit annotations of a pod (or template) evaluation: the enforce policy a pod was judged
/// by (not for templates, which are never enforced), and what the `audit` level finds. Nothing when
/// every mode is privileged (upstream's short-circuit).
fn audit_annotations(
    pod: &Value,
    is_pod: bool,
    enforce: &Option<(Level, String)>,
    warn: &Option<(Level, String)>,
    audit: &Option<(Level, String)>,
) {
    let level = |p: &Option<(Level, String)>| p.as_ref().map_or(Level::Privileged, |(l, _)| *l);
    // Upstream's warn level defaults to a stricter enforce level.
    let warn_level = level(warn).max(if warn.is_none() {
        level(enforce)
    } else {
        Level::Privileged
    });
    let all_privileged = level(audit) == Level::Privileged
        && warn_level == Level::Privileged
        && (!is_pod || level(enforce) == Level::Privileged);
    if all_privileged {
        return;
    }
    if is_pod {
        let label = enforce
            .as_ref()
            .map_or("privileged:latest", |(_, label)| label.as_str());
        crate::apiserver::audit::annotate("pod-security.kubernetes.io/enforce-policy", label);
    }
    if let Some((level, label)) = audit {
        let found = violations(pod, *level);
        if !found.is_empty() {
            crate::apiserver::audit::annotate(
                "pod-security.kubernetes.io/audit-violations",
                &format!("would violate PodSecurity {label:?}: {}", found.join(", ")),
            );
        }
    }
}

/// A namespace's labels are checked (upstream's 422 for an unknown level or version), and raising its
/// `enforce` level warns about the pods already there that the new level would refuse.
async fn namespace(
    reg: &Registry,
    ns: &Value,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let label = |obj: &Value, key: &str| {
        obj.pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let mut causes = Vec::new();
    for mode in ["enforce", "audit", "warn"] {
        let key = format!("pod-security.kubernetes.io/{mode}");
        if let Some(v) = label(ns, &key) {
            if Level::parse(&v).is_none() && old.and_then(|o| label(o, &key)) != Some(v.clone()) {
                causes.push(Cause::invalid(
                    &format!("metadata.labels[{key}]"),
                    &Value::String(v),
                    "must be one of privileged, baseline, restricted",
                ));
            }
        }
        let key = format!("{key}-version");
        if let Some(v) = label(ns, &key) {
            let ok = v == "latest"
                || v.strip_prefix("v1.")
                    .is_some_and(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()));
            if !ok && old.and_then(|o| label(o, &key)) != Some(v.clone()) {
                causes.push(Cause::invalid(
                    &format!("metadata.labels[{key}]"),
                    &Value::String(v),
                    "must be \"latest\" or \"v1.x\"",
                ));
            }
        }
    }
    let name = ns
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !causes.is_empty() {
        // Upstream answers from its admission webhook shape: a 422 without details.
        let errors: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = match errors.len() {
            1 => errors[0].clone(),
            _ => format!("[{}]", errors.join(", ")),
        };
        return Err(ApiError::new(
            422,
            "Invalid",
            format!("Namespace {name:?} is invalid: {joined}"),
        ));
    }
    let (Some(old), Some((level, label))) = (old, policy(ns, "enforce")) else {
        return Ok(());
    };
    if policy(old, "enforce").is_some_and(|(l, text)| l == level && text == label) {
        return Ok(());
    }
    // Pods grouped by the reasons they fail, in the order first seen.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for pod in reg.lookup_list("", "v1", "pods", Some(name)).await? {
        let reasons: Vec<String> = violations(&pod, level)
            .iter()
            .map(|v| v.split(" (").next().unwrap_or(v).to_string())
            .collect();
        if reasons.is_empty() {
            continue;
        }
        let reasons = reasons.join(", ");
        let pod_name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match groups.iter_mut().find(|(r, _)| *r == reasons) {
            Some((_, pods)) => pods.push(pod_name),
            None => groups.push((reasons, vec![pod_name])),
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    warnings.push(format!(
        "existing pods in namespace {name:?} violate the new PodSecurity enforce level {label:?}"
    ));
    for (reasons, pods) in groups {
        let who = match pods.len() {
            1 => pods[0].clone(),
            2 => format!("{} (and 1 other pod)", pods[0]),
            n => format!("{} (and {} other pods)", pods[0], n - 1),
        };
        warnings.push(format!("{who}: {reasons}"));
    }
    Ok(())
}

/// `container "a"` or `containers "a", "b"` (upstream's `pluralize` + `joinQuote`).
fn containers_phrase(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    if names.len() == 1 {
        format!("container {}", quoted[0])
    } else {
        format!("containers {}", quoted.join(", "))
    }
}

fn sc<'a>(c: &'a Value, field: &str) -> Option<&'a Value> {
    c.pointer(&format!("/securityContext/{field}"))
}

/// Every container of the template (init, regular, ephemeral) with its name.
fn all_containers(pod: &Value) -> Vec<(String, &Value)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|l| {
            pod.pointer(&format!("/spec/{l}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .map(|c| {
            (
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                c,
            )
        })
        .collect()
}

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const SAFE_SYSCTLS: [&str; 11] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
];

const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// One check's result: `reason (detail, detail)`, when it found anything.
fn push(out: &mut Vec<String>, reason: &str, details: Vec<String>) {
    if !details.is_empty() {
        out.push(format!("{reason} ({})", details.join(", ")));
    }
}

/// One message per container that adds a capability `allowed` refuses.
fn added_capabilities(
    containers: &[(String, &Value)],
    allowed: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, c) in containers {
        let added: Vec<String> = sc(c, "capabilities/add")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| !allowed(cap))
            .map(|cap| format!("{cap:?}"))
            .collect();
        if !added.is_empty() {
            out.push(format!(
                "container {name:?} must not include {} in securityContext.capabilities.add",
                added.join(", ")
            ));
        }
    }
    out
}

/// Upstream's check results for `pod` at `level`, each `reason (detail)`.
fn violations(pod: &Value, level: Level) -> Vec<String> {
    if level == Level::Privileged {
        return vec![];
    }
    let restricted = level == Level::Restricted;
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let containers = all_containers(pod);
    let mut out = Vec::new();
    let names_where = |pred: &dyn Fn(&Value) -> bool| -> Vec<String> {
        containers
            .iter()
            .filter(|(_, c)| pred(c))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let pod_sc = |field: &str| spec.pointer(&format!("/securityContext/{field}"));

    // Baseline, by check id: appArmorProfile, capabilities_baseline, hostNamespaces, hostPathVolumes,
    // hostPorts, privileged, procMount, seLinuxOptions, seccompProfile_baseline, sysctls.
    if !restricted {
        let caps = added_capabilities(&containers, |cap| BASELINE_CAPABILITIES.contains(&cap));
        push(&mut out, "non-default capabilities", caps);
    }
    let host_ns: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| spec.get(**f).and_then(Value::as_bool) == Some(true))
        .map(|f| format!("{f}=true"))
        .collect();
    if !host_ns.is_empty() {
        out.push(format!("host namespaces ({})", host_ns.join(", ")));
    }
    let volumes: Vec<&Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let vol_name = |v: &Value| {
        v.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if !restricted {
        let host_paths: Vec<String> = volumes
            .iter()
            .filter(|v| v.get("hostPath").is_some())
            .map(|v| format!("{:?}", vol_name(v)))
            .collect();
        if !host_paths.is_empty() {
            let noun = if host_paths.len() == 1 {
                "volume"
            } else {
                "volumes"
            };
            out.push(format!(
                "hostPath volumes ({noun} {})",
                host_paths.join(", ")
            ));
        }
    }
    let mut ports = Vec::new();
    for (name, c) in &containers {
        let used: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !used.is_empty() {
            let noun = if used.len() == 1 {
                "hostPort"
            } else {
                "hostPorts"
            };
            ports.push(format!(
                "container {name:?} uses {noun} {}",
                used.join(", ")
            ));
        }
    }
    push(&mut out, "hostPort", ports);
    let privileged = names_where(&|c| sc(c, "privileged").and_then(Value::as_bool) == Some(true));
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            containers_phrase(&privileged)
        ));
    }
    let proc_mount = names_where(&|c| {
        sc(c, "procMount")
            .and_then(Value::as_str)
            .is_some_and(|m| m != "Default")
    });
    if !proc_mount.is_empty() {
        out.push(format!(
            "procMount ({} must not set securityContext.procMount to \"Unmasked\")",
            containers_phrase(&proc_mount)
        ));
    }
    if !restricted {
        let unconfined = |v: Option<&Value>| {
            v.and_then(|p| p.get("type")).and_then(Value::as_str) == Some("Unconfined")
        };
        let mut seccomp = Vec::new();
        if unconfined(pod_sc("seccompProfile")) {
            seccomp.push(
                "pod must not set securityContext.seccompProfile.type to \"Unconfined\""
                    .to_string(),
            );
        }
        let bad = names_where(&|c| unconfined(sc(c, "seccompProfile")));
        if !bad.is_empty() {
            seccomp.push(format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                containers_phrase(&bad)
            ));
        }
        push(&mut out, "seccompProfile", seccomp);
    }
    let sysctls: Vec<String> = pod_sc("sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(String::from)
        .collect();
    if !sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", sysctls.join(", ")));
    }
    if !restricted {
        return out;
    }

    // Restricted, by check id: allowPrivilegeEscalation, capabilities_restricted, restrictedVolumes,
    // runAsNonRoot, runAsUser, seccompProfile_restricted.
    let escalating =
        names_where(&|c| sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false));
    if !escalating.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            containers_phrase(&escalating)
        ));
    }
    let no_drop = names_where(&|c| {
        !sc(c, "capabilities/drop")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("ALL")))
    });
    let mut caps = Vec::new();
    if !no_drop.is_empty() {
        caps.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&no_drop)
        ));
    }
    caps.extend(added_capabilities(&containers, |cap| {
        cap == "NET_BIND_SERVICE"
    }));
    push(&mut out, "unrestricted capabilities", caps);
    let mut restricted_volumes = Vec::new();
    for v in &volumes {
        let kind = v
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .find(|k| *k != "name");
        if let Some(kind) = kind.filter(|k| !RESTRICTED_VOLUMES.contains(k)) {
            restricted_volumes.push(format!(
                "volume {:?} uses restricted volume type {kind:?}",
                vol_name(v)
            ));
        }
    }
    push(&mut out, "restricted volume types", restricted_volumes);
    let pod_non_root = pod_sc("runAsNonRoot").and_then(Value::as_bool);
    let mut non_root = Vec::new();
    if pod_non_root == Some(false) {
        non_root.push("pod must not set securityContext.runAsNonRoot=false".to_string());
    }
    let explicit_false =
        names_where(&|c| sc(c, "runAsNonRoot").and_then(Value::as_bool) == Some(false));
    if !explicit_false.is_empty() {
        non_root.push(format!(
            "{} must not set securityContext.runAsNonRoot=false",
            containers_phrase(&explicit_false)
        ));
    }
    if pod_non_root != Some(true) {
        let unset = names_where(&|c| sc(c, "runAsNonRoot").is_none());
        if !unset.is_empty() {
            non_root.push(format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&unset)
            ));
        }
    }
    push(&mut out, "runAsNonRoot != true", non_root);
    let mut root = Vec::new();
    if pod_sc("runAsUser").and_then(Value::as_i64) == Some(0) {
        root.push("pod must not set runAsUser=0".to_string());
    }
    let zero = names_where(&|c| sc(c, "runAsUser").and_then(Value::as_i64) == Some(0));
    if !zero.is_empty() {
        root.push(format!(
            "{} must not set runAsUser=0",
            containers_phrase(&zero)
        ));
    }
    push(&mut out, "runAsUser=0", root);
    let allowed = |v: Option<&Value>| {
        matches!(
            v.and_then(|p| p.get("type")).and_then(Value::as_str),
            Some("RuntimeDefault" | "Localhost")
        )
    };
    let pod_profile = pod_sc("seccompProfile");
    let mut seccomp = Vec::new();
    if pod_profile.is_some() && !allowed(pod_profile) {
        let ty = pod_profile
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        seccomp.push(format!(
            "pod must not set securityContext.seccompProfile.type to {ty:?}"
        ));
    }
    let bad =
        names_where(&|c| sc(c, "seccompProfile").is_some() && !allowed(sc(c, "seccompProfile")));
    if !bad.is_empty() {
        seccomp.push(format!(
            "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
            containers_phrase(&bad)
        ));
    }
    if !allowed(pod_profile) {
        let unset = names_where(&|c| sc(c, "seccompProfile").is_none());
        if !unset.is_empty() {
            seccomp.push(format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&unset)
            ));
        }
    }
    push(&mut out, "seccompProfile", seccomp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restricted_messages_in_upstreams_order() {
        let pod = json!({"spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}});
        assert_eq!(
            violations(&pod, Level::Restricted).join(", "),
            "privileged (container \"c\" must not set securityContext.privileged=true), \
             allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let good = json!({"spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}});
        assert!(violations(&good, Level::Restricted).is_empty());
        assert!(violations(&pod, Level::Privileged).is_empty());
    }

    #[tokio::test]
    async fn audit_mode_annotates_the_request() {
        let pod = json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let restricted = Some((Level::Restricted, "restricted:latest".to_string()));
        let handle = crate::apiserver::audit::test_handle();
        crate::apiserver::audit::scope(Some(handle.clone()), async {
            assert!(crate::apiserver::audit::recording());
            audit_annotations(&pod, true, &None, &None, &restricted);
        })
        .await;
        let a = handle.annotations();
        assert_eq!(
            a["pod-security.kubernetes.io/enforce-policy"],
            "privileged:latest"
        );
        assert!(a["pod-security.kubernetes.io/audit-violations"].starts_with(
            "would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), "
        ));
        // A template: audited, never enforced; every mode privileged: nothing.
        let template = crate::apiserver::audit::test_handle();
        let privileged = Some((Level::Privileged, "privileged:latest".to_string()));
        crate::apiserver::audit::scope(Some(template.clone()), async {
            audit_annotations(&pod, false, &None, &None, &restricted);
            audit_annotations(&pod, true, &privileged, &None, &privileged);
        })
        .await;
        let a = template.annotations();
        assert!(a.contains_key("pod-security.kubernetes.io/audit-violations"));
        assert!(!a.contains_key("pod-security.kubernetes.io/enforce-policy"));
        // Outside an audited request nothing is recorded.
        assert!(!crate::apiserver::audit::recording());
    }

    #[test]
    fn baseline_host_namespaces() {
        let pod = json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}});
        assert_eq!(
            violations(&pod, Level::Baseline),
            vec![
                "host namespaces (hostNetwork=true)",
                "hostPort (container \"c\" uses hostPort 80)"
            ]
        );
    }
}
