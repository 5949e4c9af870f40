//! DefaultTolerationSeconds (upstream's `plugin/pkg/admission/defaulttolerationseconds`): a new pod
//! that does not tolerate the `not-ready` and `unreachable` NoExecute taints gets tolerations for them
//! bounded in time, so the taint-based eviction of a failed node waits that long (300 s by default)
//! before it deletes the pod.

use serde_json::{json, Value};

use super::{Attributes, Operation, Options, Plugin};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::ApiResult;

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

pub struct DefaultTolerationSeconds {
    not_ready: i64,
    unreachable: i64,
}

impl DefaultTolerationSeconds {
    pub fn new(opts: &Options) -> Self {
        DefaultTolerationSeconds {
            not_ready: opts.not_ready_toleration_seconds,
            unreachable: opts.unreachable_toleration_seconds,
        }
    }
}

/// Whether `t` already tolerates the NoExecute taint `key` (an empty key or effect matches all).
fn tolerates(t: &Value, key: &str) -> bool {
    let field = |f: &str| t.get(f).and_then(Value::as_str).unwrap_or("");
    (field("key").is_empty() || field("key") == key)
        && (field("effect").is_empty() || field("effect") == "NoExecute")
}

#[async_trait::async_trait]
impl Plugin for DefaultTolerationSeconds {
    async fn admit(
        &self,
        _reg: &Registry,
        a: &Attributes<'_>,
        pod: &mut Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if a.op != Operation::Create || !a.is_core("pods") {
            return Ok(());
        }
        add_defaults(pod, self.not_ready, self.unreachable);
        Ok(())
    }
}

fn add_defaults(pod: &mut Value, not_ready: i64, unreachable: i64) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut added = existing.clone();
    for (key, seconds) in [(NOT_READY, not_ready), (UNREACHABLE, unreachable)] {
        if !existing.iter().any(|t| tolerates(t, key)) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
    if added.len() != existing.len() {
        spec.insert("tolerations".into(), Value::Array(added));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_what_is_not_tolerated() {
        let mut pod = json!({"spec": {"containers": []}});
        add_defaults(&mut pod, 300, 300);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        let mut tolerant =
            json!({"spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists"}]}});
        add_defaults(&mut tolerant, 300, 60);
        assert_eq!(tolerant["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(tolerant["spec"]["tolerations"][1]["key"], NOT_READY);
        let mut everything = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_defaults(&mut everything, 300, 300);
        assert_eq!(
            everything["spec"]["tolerations"].as_array().unwrap().len(),
            1
        );
    }
}
