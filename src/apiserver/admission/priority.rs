//! Priority (upstream's `plugin/pkg/admission/priority`): a new pod's `priorityClassName` is resolved
//! to `spec.priority` and `spec.preemptionPolicy` (the cluster's `globalDefault` class, or 0 and
//! PreemptLowerPriority, when it names none); a pod naming a missing class is refused. Only one
//! PriorityClass may be the global default.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{Attributes, Operation, Plugin};
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::ApiResult;

pub struct Priority;

const GROUP: &str = "scheduling.k8s.io";

/// The global default class: of several (a race), the one with the lowest value, as upstream.
async fn global_default(reg: &Registry) -> ApiResult<Option<Arc<Value>>> {
    let classes = reg
        .lookup_list(GROUP, "v1", "priorityclasses", None)
        .await?;
    Ok(classes
        .into_iter()
        .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0)))
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[async_trait::async_trait]
impl Plugin for Priority {
    async fn admit(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        pod: &mut Value,
        old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if !a.is_core("pods") {
            return Ok(());
        }
        let Some(spec) = pod.get("spec").filter(|s| s.is_object()) else {
            return Ok(());
        };
        if a.op == Operation::Update {
            // Set on create; an update that leaves them out keeps them (validation refuses changes).
            let keep = |field: &str| {
                spec.get(field)
                    .is_none()
                    .then(|| {
                        old.and_then(|o| o.pointer(&format!("/spec/{field}")))
                            .cloned()
                    })
                    .flatten()
            };
            let (priority, policy) = (keep("priority"), keep("preemptionPolicy"));
            if let Some(p) = priority {
                pod["spec"]["priority"] = p;
            }
            if let Some(p) = policy {
                pod["spec"]["preemptionPolicy"] = p;
            }
            return Ok(());
        }
        let class_name = spec
            .get("priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (name, priority, policy) = if class_name.is_empty() {
            match global_default(reg).await? {
                Some(c) => (
                    name_of(&c).to_string(),
                    c.get("value").and_then(Value::as_i64).unwrap_or(0),
                    c.get("preemptionPolicy").cloned(),
                ),
                None => (String::new(), 0, Some(json!("PreemptLowerPriority"))),
            }
        } else {
            match reg
                .lookup(GROUP, "v1", "priorityclasses", None, &class_name)
                .await?
            {
                Some(c) => (
                    class_name.clone(),
                    c.get("value").and_then(Value::as_i64).unwrap_or(0),
                    c.get("preemptionPolicy").cloned(),
                ),
                None => {
                    return Err(a.forbidden(
                        pod,
                        &format!("no PriorityClass with name {class_name} was found"),
                    ))
                }
            }
        };
        if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
            if given != priority {
                return Err(a.forbidden(pod, &format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name")));
            }
        }
        if let (Some(given), Some(computed)) = (
            spec.get("preemptionPolicy").and_then(Value::as_str),
            policy.as_ref().and_then(Value::as_str),
        ) {
            if given != computed {
                return Err(a.forbidden(pod, &format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name")));
            }
        }
        let spec = &mut pod["spec"];
        if !name.is_empty() {
            spec["priorityClassName"] = json!(name);
        }
        spec["priority"] = json!(priority);
        if let Some(p) = policy {
            spec["preemptionPolicy"] = p;
        }
        Ok(())
    }

    async fn validate(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        class: &Value,
        _old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if a.sub.is_some()
            || a.info.group != GROUP
            || a.info.plural != "priorityclasses"
            || class.get("globalDefault").and_then(Value::as_bool) != Some(true)
        {
            return Ok(());
        }
        if let Some(current) = global_default(reg).await? {
            if a.op == Operation::Create || name_of(&current) != name_of(class) {
                return Err(a.forbidden(
                    class,
                    &format!(
                        "PriorityClass {} is already marked as default. Only one default can exist",
                        name_of(&current)
                    ),
                ));
            }
        }
        Ok(())
    }
}
