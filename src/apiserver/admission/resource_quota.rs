//! ResourceQuota (upstream's `plugin/pkg/admission/resourcequota` and `pkg/quota/v1/evaluator/core`):
//! a create that would take a namespace past one of its quotas' `status.hard` is refused with
//! `exceeded quota`; one that is admitted is charged to the quotas' `status.used` before it is stored,
//! with a compare-and-swap on each quota, so concurrent creates (on this server or another sharing the
//! store) never overshoot. The resource quota controller later recomputes `used` from what exists,
//! which also gives back what a failed write was charged.
//!
//! Like upstream, only `status.hard` counts (a quota the controller has not seen yet limits nothing),
//! a quota without usage for a resource it limits refuses (`status unknown`), and a compute quota
//! (cpu, memory) requires every container to state that resource. Updates are charged by what they add,
//! as upstream's service and claim evaluators do: a Service turned NodePort or LoadBalancer, a claim
//! that asks for more storage (pods' resources are immutable here, and counts do not change).
//!
//! Charges are batched per namespace, as upstream's quota evaluator does: the creates that arrive while
//! a namespace's quotas are being written wait, and the next write charges them all at once, each
//! judged against the usage of those admitted before it. One write per batch instead of one per create
//! keeps a namespace with a quota nearly as fast as one without.
//!
//! The pod evaluator ([`pod_total`], [`pod_counts`], [`pod_in_scope`]) is shared with the controller.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceQuotaSpec};
use serde_json::{json, Value};

use super::{Attributes, Operation, Plugin};
use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::registry::store::Registry;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::quantity::{Format, Quantity};

/// The charges waiting for each namespace's next quota write.
#[derive(Default)]
pub struct ResourceQuota {
    namespaces: std::sync::Mutex<HashMap<String, Arc<Queue>>>,
}

/// One namespace's waiting charges, and the turn to write its quotas (whoever holds it charges
/// everything waiting, its own request included).
#[derive(Default)]
struct Queue {
    waiting: std::sync::Mutex<Vec<Charge>>,
    turn: tokio::sync::Mutex<()>,
}

/// One request's charge: what it adds, and where its verdict goes.
struct Charge {
    delta: Usage,
    pod: Option<Pod>,
    /// For refusals: `<resource> "<name>" is forbidden: ...`.
    info: ResourceInfo,
    name: String,
    dry_run: bool,
    verdict: tokio::sync::oneshot::Sender<ApiResult<()>>,
}

impl Charge {
    fn refuse(&self, why: &str) -> ApiError {
        ApiError::forbidden(&self.info, &self.name, why)
    }
}

/// Resources whose quota makes every container state them (upstream's backward-compatible
/// `validationSet`).
const CONSTRAINED: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Kinds counted by their legacy quota name as well as `count/<plural>`.
const LEGACY_COUNTS: [&str; 7] = [
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
];

type Usage = BTreeMap<String, Quantity>;

fn one() -> Quantity {
    Quantity::parse("1").unwrap_or(Quantity::zero(Format::DecimalSI))
}

fn quantity_list(v: Option<&Value>) -> Usage {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Quantity::parse(v.as_str()?).ok()?)))
        .collect()
}

fn print(usage: &Usage) -> String {
    usage
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a pod still counts: upstream's quota ignores finished pods.
pub fn pod_counts(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a pod is in a quota's scope: every one of its `scopes` and `scopeSelector` expressions
/// (Terminating: `activeDeadlineSeconds` set; BestEffort: no requests or limits anywhere;
/// PriorityClass: by `priorityClassName`). Scopes the pod evaluator does not know select nothing.
pub fn pod_in_scope(pod: &Pod, quota: &ResourceQuotaSpec) -> bool {
    let spec = pod.spec.as_ref();
    let terminating = spec.and_then(|s| s.active_deadline_seconds).is_some();
    let best_effort = spec.is_none_or(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .all(|c| {
                c.resources.as_ref().is_none_or(|r| {
                    r.requests.as_ref().is_none_or(|m| m.is_empty())
                        && r.limits.as_ref().is_none_or(|m| m.is_empty())
                })
            })
    });
    let class = spec.and_then(|s| s.priority_class_name.as_deref());
    let matches = |scope: &str, op: &str, values: &[String]| match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "PriorityClass" => match op {
            "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
            "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
            "DoesNotExist" => class.is_none_or(str::is_empty),
            _ => class.is_some_and(|c| !c.is_empty()),
        },
        _ => false,
    };
    quota
        .scopes
        .iter()
        .flatten()
        .all(|s| matches(s, "Exists", &[]))
        && quota
            .scope_selector
            .as_ref()
            .and_then(|s| s.match_expressions.as_ref())
            .into_iter()
            .flatten()
            .all(|e| {
                matches(
                    &e.scope_name,
                    &e.operator,
                    e.values.as_deref().unwrap_or_default(),
                )
            })
}

fn has_scopes(quota: &ResourceQuotaSpec) -> bool {
    quota.scopes.as_ref().is_some_and(|s| !s.is_empty())
        || quota
            .scope_selector
            .as_ref()
            .and_then(|s| s.match_expressions.as_ref())
            .is_some_and(|e| !e.is_empty())
}

fn container_amount(c: &Container, which: &str, resource: &str) -> Option<Quantity> {
    let r = c.resources.as_ref()?;
    let list = if which == "limits" {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    };
    Quantity::parse(&list?.get(resource)?.0).ok()
}

/// A pod's total of `resource` in `which` ("requests" or "limits"): its containers' sum, at least the
/// largest init container's, plus the overhead (upstream's resourcehelper); `None` when nothing in the
/// pod states it.
pub fn pod_total(pod: &Pod, which: &str, resource: &str) -> Option<Quantity> {
    let spec = pod.spec.as_ref()?;
    let sum = spec
        .containers
        .iter()
        .filter_map(|c| container_amount(c, which, resource))
        .reduce(Quantity::plus);
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .filter_map(|c| container_amount(c, which, resource))
        .max_by_key(Quantity::milli_value);
    let total = match (sum, init) {
        (Some(s), Some(i)) if i.milli_value() > s.milli_value() => Some(i),
        (Some(s), _) => Some(s),
        (None, i) => i,
    }?;
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(resource))
        .and_then(|q| Quantity::parse(&q.0).ok());
    Some(match overhead {
        Some(o) => total.plus(o),
        None => total,
    })
}

/// What a container states, by quota name (upstream's `podComputeUsageHelper`, for its constraints).
fn stated(c: &Container) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for r in ["cpu", "memory"] {
        if container_amount(c, "requests", r).is_some() {
            out.insert(if r == "cpu" { "cpu" } else { "memory" });
            out.insert(if r == "cpu" {
                "requests.cpu"
            } else {
                "requests.memory"
            });
        }
        if container_amount(c, "limits", r).is_some() {
            out.insert(if r == "cpu" {
                "limits.cpu"
            } else {
                "limits.memory"
            });
        }
    }
    out
}

/// Upstream's pod `Constraints`: `must specify <resource> for: <containers>; ...`.
fn constraints(pod: &Pod, hard: &Usage) -> Option<String> {
    let required: BTreeSet<&str> = CONSTRAINED
        .into_iter()
        .filter(|r| hard.contains_key(*r))
        .collect();
    if required.is_empty() {
        return None;
    }
    let spec = pod.spec.as_ref()?;
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let have = stated(c);
        for r in required.difference(&have) {
            missing.entry(r).or_default().insert(c.name.clone());
        }
    }
    (!missing.is_empty()).then(|| {
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        format!("must specify {}", parts.join("; "))
    })
}

/// What creating `obj` adds to its namespace's usage (upstream's evaluators' `Usage`).
fn usage(a: &Attributes<'_>, obj: &Value, pod: Option<&Pod>) -> Usage {
    let info = a.info;
    let mut out = Usage::new();
    let count = if info.group.is_empty() {
        format!("count/{}", info.plural)
    } else {
        format!("count/{}.{}", info.plural, info.group)
    };
    out.insert(count, one());
    if info.group.is_empty() && LEGACY_COUNTS.contains(&info.plural.as_str()) {
        out.insert(info.plural.clone(), one());
    }
    if let Some(pod) = pod {
        for r in ["cpu", "memory", "ephemeral-storage"] {
            if let Some(q) = pod_total(pod, "requests", r) {
                out.insert(r.to_string(), q);
                out.insert(format!("requests.{r}"), q);
            }
            if let Some(q) = pod_total(pod, "limits", r) {
                out.insert(format!("limits.{r}"), q);
            }
        }
        // Extended resources and huge pages are quota'd by their requests.
        let names: BTreeSet<String> = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref())
            .flat_map(|m| m.keys().cloned())
            .filter(|k| !["cpu", "memory", "ephemeral-storage"].contains(&k.as_str()))
            .collect();
        for r in names {
            if let Some(q) = pod_total(pod, "requests", &r) {
                if r.starts_with("hugepages-") {
                    out.insert(r.clone(), q);
                }
                out.insert(format!("requests.{r}"), q);
            }
        }
    }
    if info.group.is_empty() && info.plural == "services" {
        let spec = obj.get("spec");
        let ty = spec
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        if ty == "LoadBalancer" {
            out.insert("services.loadbalancers".into(), one());
        }
        if matches!(ty, "NodePort" | "LoadBalancer") {
            // Upstream counts the intent, not what is allocated yet: every port gets a node port
            // unless a LoadBalancer turned their allocation off, when only explicit ones count.
            let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array);
            let no_allocation = ty == "LoadBalancer"
                && spec.and_then(|s| s.get("allocateLoadBalancerNodePorts")) == Some(&json!(false));
            let ports = ports.map_or(0, |p| {
                p.iter()
                    .filter(|p| !no_allocation || p.get("nodePort").is_some_and(|n| n != 0))
                    .count()
            });
            if let Ok(q) = Quantity::parse(&ports.to_string()) {
                out.insert("services.nodeports".into(), q);
            }
        }
    }
    if info.group.is_empty() && info.plural == "persistentvolumeclaims" {
        let storage = obj
            .pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(|s| Quantity::parse(s).ok());
        let class = obj
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty());
        if let Some(q) = storage {
            out.insert("requests.storage".into(), q);
        }
        if let Some(class) = class {
            let prefix = format!("{class}.storageclass.storage.k8s.io/");
            out.insert(format!("{prefix}persistentvolumeclaims"), one());
            if let Some(q) = storage {
                out.insert(format!("{prefix}requests.storage"), q);
            }
        }
    }
    out.retain(|_, q| !q.is_zero());
    out
}

/// What an update adds: `new - old`, only the resources that grew (upstream's
/// `SubtractWithNonNegativeResult`, then the zero deltas dropped).
fn increase(new: Usage, old: &Usage) -> Usage {
    new.into_iter()
        .filter_map(|(k, v)| {
            let d = match old.get(&k) {
                Some(o) => v.plus(o.negated()),
                None => v,
            };
            (!d.is_zero() && !d.is_negative()).then_some((k, d))
        })
        .collect()
}

/// The verdict of one quota on a create: `Ok(Some(new used))` to charge, `Ok(None)` when it does not
/// apply. `used` is the quota's usage with the charges admitted before this one in the batch.
fn evaluate(c: &Charge, quota: &Value, used: &Usage) -> ApiResult<Option<Usage>> {
    let (delta, pod) = (&c.delta, c.pod.as_ref());
    let name = quota
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let spec: ResourceQuotaSpec = quota
        .get("spec")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    if has_scopes(&spec) && pod.is_none_or(|p| !pod_in_scope(p, &spec)) {
        return Ok(None);
    }
    let hard = quantity_list(quota.pointer("/status/hard"));
    let matching: Vec<&String> = hard
        .keys()
        .filter(|k| delta.contains_key(*k) || (pod.is_some() && CONSTRAINED.contains(&k.as_str())))
        .collect();
    if matching.is_empty() {
        return Ok(None);
    }
    if let Some(why) = pod.and_then(|p| constraints(p, &hard)) {
        return Err(c.refuse(&format!("failed quota: {name}: {why}")));
    }
    let unknown: Vec<&str> = matching
        .iter()
        .filter(|k| !used.contains_key(k.as_str()))
        .map(|k| k.as_str())
        .collect();
    if !unknown.is_empty() {
        let all: Vec<&str> = matching.iter().map(|k| k.as_str()).collect();
        return Err(c.refuse(&format!(
            "status unknown for quota: {name}, resources: {}",
            all.join(",")
        )));
    }
    let requested: Usage = delta
        .iter()
        .filter(|(k, _)| hard.contains_key(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if requested.is_empty() {
        return Ok(None);
    }
    let mut new_used = used.clone();
    for (k, v) in &requested {
        let sum = new_used
            .get(k)
            .copied()
            .unwrap_or(Quantity::zero(v.format()))
            .plus(*v);
        new_used.insert(k.clone(), sum);
    }
    let exceeded: BTreeSet<&String> = requested
        .keys()
        .filter(|k| {
            let (Some(n), Some(h)) = (new_used.get(*k), hard.get(*k)) else {
                return false;
            };
            n.milli_value() > h.milli_value()
        })
        .collect();
    if !exceeded.is_empty() {
        let mask = |u: &Usage| -> Usage {
            u.iter()
                .filter(|(k, _)| exceeded.contains(k))
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        return Err(c.refuse(&format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            print(&mask(&requested)),
            print(&mask(used)),
            print(&mask(&hard))
        )));
    }
    Ok(Some(new_used))
}

/// How many times a charge is retried when another writer changed a quota in between.
const ATTEMPTS: usize = 32;

#[async_trait::async_trait]
impl Plugin for ResourceQuota {
    async fn validate(
        &self,
        reg: &Registry,
        a: &Attributes<'_>,
        obj: &Value,
        old: Option<&Value>,
        _warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        // Upstream's evaluators that handle updates: services and persistentvolumeclaims.
        let charged_op = match a.op {
            Operation::Create => true,
            Operation::Update => a.is_core("services") || a.is_core("persistentvolumeclaims"),
            Operation::Delete => false,
        };
        let Some(ns) = a.ns.filter(|_| charged_op && a.sub.is_none()) else {
            return Ok(());
        };
        let quotas = reg
            .lookup_list("", "v1", "resourcequotas", Some(ns))
            .await?;
        if quotas.is_empty() {
            return Ok(());
        }
        let pod: Option<Pod> = if a.is_core("pods") {
            serde_json::from_value(obj.clone()).ok()
        } else {
            None
        };
        let mut delta = usage(a, obj, pod.as_ref());
        if let (Operation::Update, Some(old)) = (a.op, old) {
            delta = increase(delta, &usage(a, old, None));
        }
        if delta.is_empty() {
            return Ok(());
        }
        let (verdict, mut done) = tokio::sync::oneshot::channel();
        let charge = Charge {
            delta,
            pod,
            info: a.info.clone(),
            name: obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            dry_run: a.dry_run,
            verdict,
        };
        let queue = self.queue(ns);
        queue
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(charge);
        let charged = {
            let _turn = queue.turn.lock().await;
            // A previous holder of the turn may have charged this request with its batch.
            match done.try_recv() {
                Ok(verdict) => Some(verdict),
                Err(_) => {
                    let mut batch = Batch {
                        queue: &queue,
                        charges: std::mem::take(
                            &mut *queue.waiting.lock().unwrap_or_else(|e| e.into_inner()),
                        ),
                    };
                    // Requests that gave up waiting (their client went) are not charged.
                    batch.charges.retain(|c| !c.verdict.is_closed());
                    charge_batch(reg, ns, &mut batch).await;
                    None
                }
            }
        };
        drop(queue);
        self.forget_idle(ns);
        match charged {
            Some(verdict) => verdict,
            None => done
                .await
                .unwrap_or_else(|_| Err(ApiError::internal("the quota charge was dropped"))),
        }
    }
}

impl ResourceQuota {
    fn queue(&self, ns: &str) -> Arc<Queue> {
        let mut all = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(ns.to_string()).or_default().clone()
    }

    /// Drops a namespace's queue nobody uses (queues are taken under this lock, so a count of one,
    /// the map's own, means no request holds it).
    fn forget_idle(&self, ns: &str) {
        let mut all = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if all.get(ns).is_some_and(|q| Arc::strong_count(q) == 1) {
            all.remove(ns);
        }
    }
}

/// The charges one request took from its namespace's queue to write. Should that request be cancelled
/// (its client went) before their verdicts are sent, they go back to the queue for the next holder of
/// the turn, rather than failing requests that were only waiting for it.
struct Batch<'a> {
    queue: &'a Queue,
    charges: Vec<Charge>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.charges.is_empty() {
            let mut waiting = self.queue.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.extend(self.charges.drain(..));
        }
    }
}

/// Charges `batch` to the namespace's quotas with one write per quota, each charge judged in order
/// against the usage of those admitted before it (upstream's `checkQuotas`). A quota whose write lost
/// its compare-and-swap is read again and the batch judged again against it alone; what the other
/// quotas were charged stands (upstream's retry does the same; the controller's recount corrects a
/// charge whose object is refused later).
async fn charge_batch(reg: &Registry, ns: &str, batch: &mut Batch<'_>) {
    let mut verdicts: Vec<Option<ApiResult<()>>> = batch.charges.iter().map(|_| None).collect();
    let outcome = judge_and_write(reg, ns, &batch.charges, &mut verdicts).await;
    for (charge, verdict) in std::mem::take(&mut batch.charges).into_iter().zip(verdicts) {
        let verdict = match (&outcome, verdict) {
            (_, Some(Err(e))) => Err(e),
            (Ok(()), _) => Ok(()),
            (Err(e), _) => Err(e.clone()),
        };
        let _ = charge.verdict.send(verdict);
    }
}

/// One quota as a batch charges it: read fresh, its usage with the charges admitted so far.
struct Charged {
    name: String,
    quota: Value,
    used: Usage,
    /// Whether a charge was added (only such quotas are written).
    changed: bool,
}

/// Fills in the refusals; `Ok` when every admitted charge was written.
async fn judge_and_write(
    reg: &Registry,
    ns: &str,
    batch: &[Charge],
    verdicts: &mut [Option<ApiResult<()>>],
) -> ApiResult<()> {
    let info = reg
        .catalog
        .find("", "v1", "resourcequotas")
        .ok_or_else(|| ApiError::internal("no resourcequotas resource"))?;
    let mut names: Vec<String> = reg
        .lookup_list("", "v1", "resourcequotas", Some(ns))
        .await?
        .iter()
        .filter_map(|q| q.pointer("/metadata/name").and_then(Value::as_str))
        .map(String::from)
        .collect();
    for _ in 0..ATTEMPTS {
        // Fresh from storage: the swap below must start from the latest status.
        let mut quotas = Vec::new();
        for name in &names {
            if let Some(quota) = reg
                .get_builtin("", "v1", "resourcequotas", Some(ns), name)
                .await?
            {
                let used = quantity_list(quota.pointer("/status/used"));
                quotas.push(Charged {
                    name: name.clone(),
                    quota,
                    used,
                    changed: false,
                });
            }
        }
        for (charge, verdict) in batch.iter().zip(verdicts.iter_mut()) {
            if matches!(verdict, Some(Err(_))) {
                continue;
            }
            let mut new = Vec::new();
            let judged: ApiResult<()> = quotas.iter().enumerate().try_for_each(|(i, q)| {
                if let Some(used) = evaluate(charge, &q.quota, &q.used)? {
                    new.push((i, used));
                }
                Ok(())
            });
            if judged.is_ok() && !charge.dry_run {
                for (i, used) in new {
                    quotas[i].used = used;
                    quotas[i].changed = true;
                }
            }
            *verdict = Some(judged);
        }
        let mut lost = Vec::new();
        for Charged {
            name,
            mut quota,
            used,
            changed,
        } in quotas
        {
            if !changed {
                continue;
            }
            let used: serde_json::Map<String, Value> = used
                .iter()
                .map(|(k, v)| (k.clone(), json!(v.to_string())))
                .collect();
            quota["status"]["used"] = Value::Object(used);
            match reg
                .update(&info, Some(ns), &name, quota, Some("status"), false)
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 409 => lost.push(name),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        if lost.is_empty() {
            return Ok(());
        }
        names = lost;
    }
    Err(ApiError::new(
        409,
        "Conflict",
        "Operation cannot be fulfilled on resourcequotas: the quotas kept changing while this request was charged; please retry",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}),
        )
        .unwrap()
    }

    #[test]
    fn pod_totals_and_constraints() {
        let p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}}
        ]));
        assert_eq!(
            pod_total(&p, "requests", "cpu").unwrap().to_string(),
            "750m"
        );
        assert_eq!(
            pod_total(&p, "requests", "memory").unwrap().to_string(),
            "128Mi"
        );
        assert!(pod_total(&p, "limits", "cpu").is_none());
        let hard = quantity_list(Some(&json!({"limits.memory": "2Gi", "requests.cpu": "1"})));
        assert_eq!(
            constraints(&p, &hard).as_deref(),
            Some("must specify limits.memory for: a")
        );
        let bare = pod(json!([{"name": "c"}, {"name": "d"}]));
        assert_eq!(
            constraints(&bare, &hard).as_deref(),
            Some("must specify limits.memory for: c,d; requests.cpu for: c,d")
        );
    }

    #[test]
    fn updates_are_charged_what_they_add() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        let usage = |pairs: &[(&str, &str)]| -> Usage {
            pairs.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
        };
        let old = usage(&[("services", "1"), ("requests.storage", "1Gi")]);
        let new = usage(&[
            ("services", "1"),
            ("requests.storage", "3Gi"),
            ("services.nodeports", "2"),
        ]);
        assert_eq!(
            print(&increase(new, &old)),
            "requests.storage=2Gi,services.nodeports=2"
        );
        // Shrinking is not a charge (the controller gives it back when it recounts).
        let smaller = usage(&[("services", "1"), ("requests.storage", "512Mi")]);
        assert!(increase(smaller, &old).is_empty());
    }

    #[test]
    fn scopes() {
        let spec = |v: Value| -> ResourceQuotaSpec { serde_json::from_value(v).unwrap() };
        let best_effort = pod(json!([{"name": "c"}]));
        assert!(pod_in_scope(
            &best_effort,
            &spec(json!({"scopes": ["BestEffort"]}))
        ));
        assert!(!pod_in_scope(
            &best_effort,
            &spec(json!({"scopes": ["NotBestEffort"]}))
        ));
        let critical: Pod = serde_json::from_value(
            json!({"spec": {"priorityClassName": "high", "containers": []}}),
        )
        .unwrap();
        let selector = |op: &str| {
            spec(
                json!({"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": op, "values": ["high"]}]}}),
            )
        };
        assert!(pod_in_scope(&critical, &selector("In")));
        assert!(!pod_in_scope(&critical, &selector("NotIn")));
        assert!(!pod_in_scope(&best_effort, &selector("In")));
    }
}
