//! `metrics.k8s.io/v1beta1`: NodeMetrics and PodMetrics, what `kubectl top` and the
//! HorizontalPodAutoscaler read.
//!
//! Upstream serves this group from metrics-server, an aggregated API that scrapes every kubelet.
//! Here the apiserver answers it itself, the way it already reaches kubelets for `pods/log`: a request
//! lists the nodes or pods it is about (with its label and field selectors, from the watch cache),
//! asks each kubelet concerned for `/stats/summary` (with the apiserver's kubelet-client
//! certificate, which `system:kubelet-api-admin` lets read `nodes/stats`), and turns their usage into
//! metrics as metrics-server does: the node's or pod's labels are copied so selectors work, pods come
//! sorted by namespace and name, and whatever has no complete reading yet (a node without a
//! reachable kubelet, a hollow node, a container without a CPU rate) is left out, as metrics-server
//! leaves out what it has not scraped twice. Authorization is RBAC on `metrics.k8s.io` as for any
//! resource (`system:aggregated-metrics-reader` grants it to view, edit and admin).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use crate::apiserver::catalog::ResourceInfo;
use crate::apiserver::http::handlers::App;
use crate::apiserver::http::pod_connect::pod_field;
use crate::apiserver::http::request::Query;
use crate::apiserver::registry::cached_object::Obj;
use crate::apiserver::registry::store::ListResult;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::wire::quantity::Quantity;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// How long one kubelet may take to answer: a slow node must not hold up the others for long.
const KUBELET_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest summary read from a kubelet.
const SUMMARY_LIMIT: usize = 64 << 20;

/// One node's or one container's usage at one time.
#[derive(Clone, Debug, PartialEq)]
struct Usage {
    time: String,
    nano_cores: u64,
    working_set_bytes: u64,
}

/// What one kubelet's summary says, by the names metrics are looked up by.
#[derive(Default, Debug)]
struct NodeReport {
    node: Option<Usage>,
    /// (namespace, pod) → containers (name, usage), for pods whose every container has a reading.
    pods: HashMap<(String, String), Vec<(String, Usage)>>,
}

/// A reading from a Summary API `cpu` and `memory` pair; `None` until it has a CPU rate.
fn usage(cpu: &Value, memory: &Value) -> Option<Usage> {
    Some(Usage {
        time: cpu.get("time")?.as_str()?.to_string(),
        nano_cores: cpu.get("usageNanoCores")?.as_u64()?,
        working_set_bytes: memory.get("workingSetBytes")?.as_u64()?,
    })
}

fn parse_summary(summary: &Value) -> NodeReport {
    let null = Value::Null;
    let node = summary.get("node").unwrap_or(&null);
    let mut report = NodeReport {
        node: usage(
            node.get("cpu").unwrap_or(&null),
            node.get("memory").unwrap_or(&null),
        ),
        pods: HashMap::new(),
    };
    for pod in summary
        .get("pods")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| {
            pod.pointer(&format!("/podRef/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let containers: Option<Vec<(String, Usage)>> = pod
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let name = c.get("name")?.as_str()?.to_string();
                Some((
                    name,
                    usage(
                        c.get("cpu").unwrap_or(&null),
                        c.get("memory").unwrap_or(&null),
                    )?,
                ))
            })
            .collect();
        if let Some(containers) = containers.filter(|c| !c.is_empty()) {
            report
                .pods
                .insert((field("namespace"), field("name")), containers);
        }
    }
    report
}

/// `cpu` as upstream's Quantity prints nanocores (`250m`, `1`, `123456n`).
fn cpu_quantity(nano_cores: u64) -> String {
    Quantity::parse(&format!("{nano_cores}n"))
        .map(|q| q.to_string())
        .unwrap_or_else(|_| format!("{nano_cores}n"))
}

/// `memory` as upstream's binary Quantity prints bytes (`1468Ki`, `2Mi`).
fn memory_quantity(bytes: u64) -> String {
    if !bytes.is_multiple_of(1024) {
        return bytes.to_string();
    }
    Quantity::parse(&format!("{}Ki", bytes / 1024))
        .map(|q| q.to_string())
        .unwrap_or_else(|_| bytes.to_string())
}

/// metrics-server's window: here, the kubelets' sampling period their CPU rates are taken over.
fn window() -> String {
    format!("{}s", crate::kubelet::stats::SAMPLE_PERIOD.as_secs())
}

/// The metadata metrics-server gives a metrics object: the name, namespace and labels of what it
/// measures, created now.
fn metadata(obj: &Value) -> Value {
    let mut m = Map::new();
    for key in ["name", "namespace"] {
        if let Some(v) = obj.pointer(&format!("/metadata/{key}")) {
            m.insert(key.into(), v.clone());
        }
    }
    m.insert(
        "creationTimestamp".into(),
        json!(k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default()),
    );
    if let Some(labels) = obj.pointer("/metadata/labels") {
        m.insert("labels".into(), labels.clone());
    }
    Value::Object(m)
}

fn node_metrics(node: &Value, u: &Usage) -> Value {
    json!({
        "metadata": metadata(node),
        "timestamp": u.time,
        "window": window(),
        "usage": {"cpu": cpu_quantity(u.nano_cores), "memory": memory_quantity(u.working_set_bytes)},
    })
}

fn pod_metrics(pod: &Value, containers: &[(String, Usage)]) -> Value {
    let time = containers
        .iter()
        .map(|(_, u)| u.time.as_str())
        .max()
        .unwrap_or_default();
    json!({
        "metadata": metadata(pod),
        "timestamp": time,
        "window": window(),
        "containers": containers.iter().map(|(name, u)| json!({
            "name": name,
            "usage": {"cpu": cpu_quantity(u.nano_cores), "memory": memory_quantity(u.working_set_bytes)},
        })).collect::<Vec<_>>(),
    })
}

/// Asks one node's kubelet for its summary; `None` (logged) when it cannot answer.
async fn fetch_report(tls: Arc<rustls::ClientConfig>, node: &Value) -> Option<NodeReport> {
    let name = pod_field(node, "/metadata/name");
    let (ip, port) = super::pod_connect::kubelet_address(node)?;
    let path = "/stats/summary";
    let fetch = async {
        let resp = super::pod_connect::kubelet_request(tls, &ip, port, http::Method::GET, path)
            .await
            .map_err(|e| e.message)?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), SUMMARY_LIMIT)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body).trim_end()
            ));
        }
        serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
    };
    match tokio::time::timeout(KUBELET_TIMEOUT, fetch).await {
        Ok(Ok(summary)) => Some(parse_summary(&summary)),
        Ok(Err(e)) => {
            tracing::warn!(node = name, "metrics: the kubelet's summary: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(
                node = name,
                "metrics: the kubelet's summary: no answer within {KUBELET_TIMEOUT:?}"
            );
            None
        }
    }
}

/// The reports of `nodes`, by node name, asked concurrently.
async fn reports(app: &App, nodes: &[&Value]) -> HashMap<String, NodeReport> {
    let Some(tls) = app.kubelet_client.clone() else {
        return HashMap::new();
    };
    let asked = nodes.iter().map(|node| {
        let tls = tls.clone();
        async move {
            let report = fetch_report(tls, node).await?;
            Some((pod_field(node, "/metadata/name").to_string(), report))
        }
    });
    futures::future::join_all(asked)
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn core(app: &App, plural: &str) -> ApiResult<ResourceInfo> {
    app.catalog
        .find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("this server serves no {plural}")))
}

/// The selectors of a metrics list, applied to the nodes or pods it measures.
fn selecting(q: &Query) -> Query {
    Query {
        label_selector: q.label_selector.clone(),
        field_selector: q.field_selector.clone(),
        ..Query::default()
    }
}

fn computed(items: Vec<Value>) -> ListResult {
    ListResult {
        items: items.into_iter().map(Obj::from).collect(),
        // Computed, not stored: no resourceVersion, as metrics-server's lists.
        revision: 0,
        continue_token: None,
        remaining: None,
    }
}

/// Creates metrics-server's `system:aggregated-metrics-reader` ClusterRole unless it exists: every
/// cluster serving metrics.k8s.io installs it with metrics-server, and through its aggregation labels
/// reading metrics goes with view, edit and admin. Upstream's default policy knows nothing of
/// metrics.k8s.io, so the server creates it at start, as the add-on's manifest would.
pub async fn ensure_reader_role(admin: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
    let label = |k: &str| {
        (
            format!("rbac.authorization.k8s.io/aggregate-to-{k}"),
            "true".into(),
        )
    };
    let role = ClusterRole {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("system:aggregated-metrics-reader".into()),
            labels: Some(["admin", "edit", "view"].map(label).into_iter().collect()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![GROUP.into()]),
            resources: Some(vec!["pods".into(), "nodes".into()]),
            verbs: ["get", "list", "watch"].map(String::from).to_vec(),
            ..Default::default()
        }]),
        aggregation_rule: None,
    };
    crate::kubelet::registration::create_if_absent(kube::Api::all(admin.clone()), &role).await
}

/// NodeMetrics of the listed nodes.
async fn nodes_metrics(app: &App, nodes: Vec<Arc<Value>>) -> Vec<Value> {
    let nodes: Vec<&Value> = nodes.iter().map(|n| &**n).collect();
    let reports = reports(app, &nodes).await;
    let mut items: Vec<Value> = nodes
        .iter()
        .filter_map(|node| {
            let report = reports.get(pod_field(node, "/metadata/name"))?;
            Some(node_metrics(node, report.node.as_ref()?))
        })
        .collect();
    items.sort_by(|a, b| pod_field(a, "/metadata/name").cmp(pod_field(b, "/metadata/name")));
    items
}

/// PodMetrics of the listed pods, sorted by namespace and name.
async fn pods_metrics(app: &App, pods: Vec<Arc<Value>>) -> ApiResult<Vec<Value>> {
    let node_names: std::collections::BTreeSet<&str> = pods
        .iter()
        .map(|p| pod_field(p, "/spec/nodeName"))
        .filter(|n| !n.is_empty())
        .collect();
    if node_names.is_empty() {
        return Ok(Vec::new());
    }
    let all_nodes = app
        .registry
        .list(&core(app, "nodes")?, None, &Query::default())
        .await?;
    let all_nodes: Vec<Arc<Value>> = all_nodes.items.iter().map(Obj::tree).collect();
    let nodes: Vec<&Value> = all_nodes
        .iter()
        .map(|n| &**n)
        .filter(|n| node_names.contains(pod_field(n, "/metadata/name")))
        .collect();
    let reports = reports(app, &nodes).await;
    let mut sorted: BTreeMap<(&str, &str), Value> = BTreeMap::new();
    for pod in &pods {
        let (ns, name) = (
            pod_field(pod, "/metadata/namespace"),
            pod_field(pod, "/metadata/name"),
        );
        let containers = reports
            .get(pod_field(pod, "/spec/nodeName"))
            .and_then(|r| r.pods.get(&(ns.to_string(), name.to_string())));
        if let Some(containers) = containers {
            sorted.insert((ns, name), pod_metrics(pod, containers));
        }
    }
    Ok(sorted.into_values().collect())
}

/// `GET /apis/metrics.k8s.io/v1beta1/nodes` or `.../[namespaces/<ns>/]pods`.
pub async fn list(
    app: &App,
    info: &ResourceInfo,
    ns: Option<&str>,
    q: &Query,
) -> ApiResult<ListResult> {
    let selecting = selecting(q);
    let items = if info.namespaced {
        let pods = app
            .registry
            .list(&core(app, "pods")?, ns, &selecting)
            .await?;
        pods_metrics(app, pods.items.iter().map(Obj::tree).collect()).await?
    } else {
        let nodes = app
            .registry
            .list(&core(app, "nodes")?, None, &selecting)
            .await?;
        nodes_metrics(app, nodes.items.iter().map(Obj::tree).collect()).await
    };
    Ok(computed(items))
}

/// One NodeMetrics or PodMetrics. As metrics-server: the node or pod must exist (its own 404), and
/// one without metrics is `nodemetrics.metrics.k8s.io "<name>"` / `podmetrics.metrics.k8s.io
/// "<namespace>/<name>"` not found.
pub async fn get(app: &App, info: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
    let (measured, shown) = if info.namespaced {
        let pod = app.registry.get(&core(app, "pods")?, ns, name).await?;
        let items = pods_metrics(app, vec![Arc::new(pod)]).await?;
        (items, format!("{}/{name}", ns.unwrap_or_default()))
    } else {
        let node = app.registry.get(&core(app, "nodes")?, None, name).await?;
        (
            nodes_metrics(app, vec![Arc::new(node)]).await,
            name.to_string(),
        )
    };
    // metrics-server's resource names: nodemetrics, podmetrics.
    let resource = info.kind.to_lowercase();
    let mut obj = measured.into_iter().next().ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("{resource}.{GROUP} {shown:?} not found"),
        )
        .with_details(json!({"name": shown, "group": GROUP, "kind": resource}))
    })?;
    obj["kind"] = json!(info.kind);
    obj["apiVersion"] = json!(info.api_version());
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Value {
        json!({
            "node": {"nodeName": "n1",
                     "cpu": {"time": "2026-12-06T08:00:00Z", "usageNanoCores": 1_500_000_000u64, "usageCoreNanoSeconds": 9},
                     "memory": {"time": "2026-12-06T08:00:00Z", "workingSetBytes": 2_097_152}},
            "pods": [
                {"podRef": {"name": "web", "namespace": "default", "uid": "u1"},
                 "containers": [
                    {"name": "a", "cpu": {"time": "2026-12-06T08:00:01Z", "usageNanoCores": 250_000_000}, "memory": {"workingSetBytes": 4096}},
                    {"name": "b", "cpu": {"time": "2026-12-06T08:00:02Z", "usageNanoCores": 123}, "memory": {"workingSetBytes": 1000}}]},
                // A container without a CPU rate yet leaves its pod out.
                {"podRef": {"name": "new", "namespace": "default", "uid": "u2"},
                 "containers": [{"name": "a", "cpu": {"time": "t"}, "memory": {"workingSetBytes": 1}}]}
            ]
        })
    }

    #[test]
    fn a_summary_becomes_node_and_pod_metrics() {
        let report = parse_summary(&summary());
        let node = json!({"metadata": {"name": "n1", "labels": {"zone": "a"}, "uid": "x"}});
        let m = node_metrics(&node, report.node.as_ref().unwrap());
        assert_eq!(m["usage"], json!({"cpu": "1500m", "memory": "2Mi"}));
        assert_eq!(m["metadata"]["labels"], json!({"zone": "a"}));
        assert!(m["metadata"].get("uid").is_none());
        assert_eq!(m["window"], "10s");
        assert_eq!(m["timestamp"], "2026-12-06T08:00:00Z");

        assert!(!report.pods.contains_key(&("default".into(), "new".into())));
        let containers = &report.pods[&("default".to_string(), "web".to_string())];
        let pod = json!({"metadata": {"name": "web", "namespace": "default"}});
        let m = pod_metrics(&pod, containers);
        assert_eq!(m["timestamp"], "2026-12-06T08:00:02Z");
        assert_eq!(
            m["containers"],
            json!([{"name": "a", "usage": {"cpu": "250m", "memory": "4Ki"}},
                   {"name": "b", "usage": {"cpu": "123n", "memory": "1000"}}])
        );
    }

    #[test]
    fn a_node_without_a_rate_has_no_metrics() {
        let report =
            parse_summary(&json!({"node": {"nodeName": "n", "cpu": {"time": "t"}}, "pods": []}));
        assert!(report.node.is_none());
        assert!(parse_summary(&json!({})).node.is_none());
    }

    #[test]
    fn quantities_print_as_upstream() {
        assert_eq!(cpu_quantity(1_000_000_000), "1");
        assert_eq!(cpu_quantity(5_000), "5u");
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(memory_quantity(1024 * 1024 * 1024), "1Gi");
        assert_eq!(memory_quantity(1_503_232), "1468Ki");
        assert_eq!(memory_quantity(5000), "5000");
    }
}
