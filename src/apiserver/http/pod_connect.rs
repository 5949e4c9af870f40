//! `pods/log`, `exec`, `attach` and `portforward`: the part of these streams the apiserver answers
//! itself, as upstream's pod REST does before it proxies to the kubelet: the pod must exist (404), the
//! container must be named when the pod has several and must be one of its containers (400), and an
//! unscheduled pod has no logs yet (an empty answer) and nothing to exec into (400). There is no kubelet
//! to proxy to yet, so a scheduled pod's stream is refused with a 503 that says so.

use serde_json::Value;

use crate::apiserver::status::{ApiError, ApiResult};

/// The subresources served here.
pub const SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward"];

fn container_names(pod: &Value, field: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream's container check: the one container when there is one, else the named one, which must exist.
fn validate_container(
    pod: &Value,
    name: &str,
    container: Option<&str>,
    streaming: bool,
) -> ApiResult<()> {
    let containers = container_names(pod, "containers");
    match container.filter(|c| !c.is_empty()) {
        None if containers.len() == 1 => Ok(()),
        None if containers.is_empty() => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        None => {
            // Go's %s of a []string: [a b]
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            let init = container_names(pod, "initContainers");
            if streaming && !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
        Some(c) => {
            let known = ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .any(|f| container_names(pod, f).iter().any(|n| n == c));
            if known {
                Ok(())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
    }
}

/// What to answer for `subresource` of `pod`: `Ok(Some(body))` is a plain-text answer (an unscheduled
/// pod's empty log).
pub fn answer(
    pod: &Value,
    subresource: &str,
    container: Option<&str>,
) -> ApiResult<Option<String>> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if subresource != "portforward" {
        validate_container(pod, name, container, subresource != "log")?;
    }
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node.is_empty() {
        return match subresource {
            "log" => Ok(Some(String::new())),
            _ => Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            ))),
        };
    }
    Err(ApiError::new(
        503,
        "ServiceUnavailable",
        format!("no kubelet serves node {node:?} yet: pods/{subresource} needs one"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_as_upstream_before_the_kubelet() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(answer(&one, "log", None).unwrap(), Some(String::new()));
        assert_eq!(
            answer(&one, "exec", None).unwrap_err().message,
            "pod p does not have a host assigned"
        );
        assert_eq!(
            answer(&one, "log", Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                          "initContainers": [{"name": "i"}]}});
        assert_eq!(
            answer(&two, "log", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            answer(&two, "exec", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}});
        assert_eq!(answer(&bound, "log", None).unwrap_err().code, 503);
    }
}
