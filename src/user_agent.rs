//! The User-Agent every component's client sends, as upstream's client-go writes it:
//! `<component>/<version> (<os>/<arch>) kubernetes/<commit>`, the controller manager appending the
//! controller's name.
//!
//! Why: a write without `?fieldManager=` is recorded in managedFields under the agent's first
//! segment, so objects show `kube-controller-manager`, `kube-scheduler` or `kubelet` as their
//! managers, as on an upstream cluster, instead of an empty name.

use http::header::{HeaderValue, USER_AGENT};

/// The Kubernetes version rkube's components speak for (as `/version` reports).
const VERSION: &str = "v1.33.0";
/// Where upstream puts its git commit.
const COMMIT: &str = "rkube";

/// The agent of `component` (`kubelet`, `kube-scheduler`, ...), with upstream's suffix (the
/// controller's name) when given.
pub fn agent(component: &str, suffix: Option<&str>) -> String {
    let base = format!(
        "{component}/{VERSION} ({}/{}) kubernetes/{COMMIT}",
        std::env::consts::OS,
        go_arch()
    );
    match suffix {
        Some(s) => format!("{base}/{s}"),
        None => base,
    }
}

/// Makes every request of clients built from `config` carry `agent`.
pub fn set(config: &mut kube::Config, agent: &str) {
    if let Ok(v) = HeaderValue::from_str(agent) {
        config.headers.retain(|(k, _)| k != USER_AGENT);
        config.headers.push((USER_AGENT, v));
    }
}

/// Go's GOARCH names.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_shape() {
        let a = agent("kube-controller-manager", Some("replicaset-controller"));
        assert!(a.starts_with("kube-controller-manager/v1.33.0 ("), "{a}");
        assert!(
            a.ends_with(" kubernetes/rkube/replicaset-controller"),
            "{a}"
        );
        assert_eq!(a.split('/').next(), Some("kube-controller-manager"));
    }
}
