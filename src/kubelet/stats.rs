//! Resource usage: what the kubelet reports at `/stats/summary` (upstream's Summary API,
//! `stats/v1alpha1`) and `/metrics/resource` (the Prometheus text metrics-server scrapes), and what
//! the apiserver's `metrics.k8s.io` (`kubectl top`, the HorizontalPodAutoscaler) is built from.
//!
//! [`sample_forever`] reads the node's CPU and memory from `/proc` and every running container's
//! from CRI `ListContainerStats` every [`SAMPLE_PERIOD`] (cadvisor's housekeeping does the same for
//! upstream's kubelet). CPU counters are cumulative, so a rate needs two readings: each sample keeps
//! the counters and `usageNanoCores` is the difference from the previous sample over the time between
//! them (keyed by container ID, so a restarted container starts afresh). Until the second sample
//! nothing has a rate and the node reports no usage, as metrics-server says "metrics not available
//! yet" until its second scrape.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::cri::Cri;
use super::runtime_config::{
    LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};

/// How often usage is sampled; also the window metrics.k8s.io reports.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(10);

/// Linux's USER_HZ: `/proc/stat` counts CPU time in these ticks on every architecture Linux runs
/// containers on.
const NANOS_PER_TICK: u64 = 10_000_000;

/// One reading of a node or a container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// When it was read, in nanoseconds since the epoch.
    pub time_ns: i64,
    /// Cumulative CPU time.
    pub cpu_core_nanos: u64,
    /// CPU rate since the previous sample; `None` on the first.
    pub nano_cores: Option<u64>,
    pub working_set_bytes: u64,
    pub usage_bytes: u64,
    pub rss_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
}

impl Usage {
    /// Fills in the CPU rate from an earlier reading of the same thing.
    fn rate_from(&mut self, earlier: &Usage) {
        let dt = self.time_ns - earlier.time_ns;
        if dt <= 0 || self.cpu_core_nanos < earlier.cpu_core_nanos {
            return;
        }
        let used = u128::from(self.cpu_core_nanos - earlier.cpu_core_nanos);
        self.nano_cores = u64::try_from(used * 1_000_000_000 / dt as u128).ok();
    }

    fn time(&self) -> String {
        timestamp(self.time_ns)
    }

    fn cpu_json(&self) -> Value {
        let mut cpu = json!({"time": self.time(), "usageCoreNanoSeconds": self.cpu_core_nanos});
        if let Some(n) = self.nano_cores {
            cpu["usageNanoCores"] = json!(n);
        }
        cpu
    }

    fn memory_json(&self) -> Value {
        let mut m = json!({
            "time": self.time(),
            "usageBytes": self.usage_bytes,
            "workingSetBytes": self.working_set_bytes,
        });
        if let Some(v) = self.available_bytes {
            m["availableBytes"] = json!(v);
        }
        if let Some(v) = self.rss_bytes {
            m["rssBytes"] = json!(v);
        }
        m
    }
}

/// One running container's reading.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerUsage {
    pub id: String,
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub name: String,
    /// When the runtime created it, in nanoseconds since the epoch.
    pub started_ns: i64,
    pub usage: Usage,
}

/// Everything read at one instant.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub node: Usage,
    pub containers: Vec<ContainerUsage>,
}

impl Sample {
    /// Fills in the CPU rates from the previous sample.
    fn rates_from(&mut self, earlier: &Sample) {
        self.node.rate_from(&earlier.node);
        let before: HashMap<&str, &Usage> = earlier
            .containers
            .iter()
            .map(|c| (c.id.as_str(), &c.usage))
            .collect();
        for c in &mut self.containers {
            if let Some(b) = before.get(c.id.as_str()) {
                c.usage.rate_from(b);
            }
        }
    }
}

/// The latest sample, shared by the sampler and the kubelet's server.
#[derive(Clone, Default)]
pub struct Stats(Arc<Mutex<Option<Sample>>>);

impl Stats {
    pub fn latest(&self) -> Option<Sample> {
        self.0.lock().ok().and_then(|s| s.clone())
    }

    fn record(&self, mut sample: Sample) {
        if let Ok(mut latest) = self.0.lock() {
            if let Some(prev) = latest.as_ref() {
                sample.rates_from(prev);
            }
            *latest = Some(sample);
        }
    }
}

/// Samples every [`SAMPLE_PERIOD`] until the process ends; a failed reading is logged and skipped
/// (the previous sample stays, so rates resume once the runtime answers again).
pub async fn sample_forever(cri: Cri, stats: Stats) {
    let mut tick = tokio::time::interval(SAMPLE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match read(&cri).await {
            Ok(sample) => stats.record(sample),
            Err(e) => tracing::warn!("kubelet stats: {e:#}"),
        }
    }
}

async fn read(cri: &Cri) -> anyhow::Result<Sample> {
    let (running, stats) = tokio::try_join!(cri.list_containers(), cri.container_stats())?;
    let running: HashMap<String, i64> = running
        .into_iter()
        .filter(|c| c.state == k8s_cri::v1::ContainerState::ContainerRunning as i32)
        .map(|c| (c.id, c.created_at))
        .collect();
    let node = node_usage(
        &tokio::fs::read_to_string("/proc/stat").await?,
        &tokio::fs::read_to_string("/proc/meminfo").await?,
        now_ns(),
    )?;
    let containers = stats
        .into_iter()
        .filter_map(|s| {
            let attrs = s.attributes?;
            let started_ns = *running.get(&attrs.id)?;
            let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
            let cpu = s.cpu.unwrap_or_default();
            let memory = s.memory.unwrap_or_default();
            let value = |v: Option<k8s_cri::v1::UInt64Value>| v.map(|v| v.value);
            Some(ContainerUsage {
                namespace: label(LABEL_POD_NAMESPACE),
                pod: label(LABEL_POD_NAME),
                pod_uid: label(LABEL_POD_UID),
                name: label(LABEL_CONTAINER_NAME),
                id: attrs.id,
                started_ns,
                usage: Usage {
                    time_ns: if cpu.timestamp > 0 {
                        cpu.timestamp
                    } else {
                        now_ns()
                    },
                    cpu_core_nanos: value(cpu.usage_core_nano_seconds).unwrap_or(0),
                    nano_cores: None,
                    working_set_bytes: value(memory.working_set_bytes).unwrap_or(0),
                    usage_bytes: value(memory.usage_bytes).unwrap_or(0),
                    rss_bytes: value(memory.rss_bytes),
                    available_bytes: value(memory.available_bytes),
                },
            })
        })
        .collect();
    Ok(Sample { node, containers })
}

fn now_ns() -> i64 {
    i64::try_from(Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX)
}

fn timestamp(ns: i64) -> String {
    Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The node's usage from `/proc/stat` (busy time: everything but idle and iowait) and
/// `/proc/meminfo` (working set: what is not available, as the root cgroup's usage less its
/// inactive file pages approximates it).
fn node_usage(stat: &str, meminfo: &str, time_ns: i64) -> anyhow::Result<Usage> {
    let ticks: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| anyhow::anyhow!("/proc/stat has no cpu line"))?
        .split_whitespace()
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user and nice).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    let mem: HashMap<&str, u64> = meminfo
        .lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((k, kib * 1024))
        })
        .collect();
    let field = |k: &str| {
        mem.get(k)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("/proc/meminfo has no {k}"))
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    let free = field("MemFree")?;
    Ok(Usage {
        time_ns,
        cpu_core_nanos: busy * NANOS_PER_TICK,
        nano_cores: None,
        working_set_bytes: total.saturating_sub(available),
        usage_bytes: total.saturating_sub(free),
        rss_bytes: None,
        available_bytes: Some(available),
    })
}

/// Upstream's Summary (`GET /stats/summary`): the node and its pods with their containers.
pub fn summary(node_name: &str, sample: Option<&Sample>) -> Value {
    let Some(sample) = sample else {
        return json!({"node": {"nodeName": node_name}, "pods": []});
    };
    let mut pods: BTreeMap<(&str, &str, &str), Vec<&ContainerUsage>> = BTreeMap::new();
    for c in &sample.containers {
        pods.entry((&c.namespace, &c.pod, &c.pod_uid))
            .or_default()
            .push(c);
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|((namespace, name, uid), containers)| {
            let total = pod_total(&containers);
            let started = containers.iter().map(|c| c.started_ns).min().unwrap_or(0);
            json!({
                "podRef": {"name": name, "namespace": namespace, "uid": uid},
                "startTime": timestamp(started),
                "containers": containers.iter().map(|c| json!({
                    "name": c.name,
                    "startTime": timestamp(c.started_ns),
                    "cpu": c.usage.cpu_json(),
                    "memory": c.usage.memory_json(),
                })).collect::<Vec<_>>(),
                "cpu": total.cpu_json(),
                "memory": total.memory_json(),
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": node_name,
            "cpu": sample.node.cpu_json(),
            "memory": sample.node.memory_json(),
        },
        "pods": pods,
    })
}

/// A pod's usage: its containers' summed (a rate only when every container has one).
fn pod_total(containers: &[&ContainerUsage]) -> Usage {
    let mut total = Usage {
        nano_cores: Some(0),
        ..Usage::default()
    };
    for c in containers {
        let u = &c.usage;
        total.time_ns = total.time_ns.max(u.time_ns);
        total.cpu_core_nanos += u.cpu_core_nanos;
        total.nano_cores = total.nano_cores.zip(u.nano_cores).map(|(a, b)| a + b);
        total.working_set_bytes += u.working_set_bytes;
        total.usage_bytes += u.usage_bytes;
    }
    total
}

/// Upstream's `/metrics/resource`: the cumulative CPU counters and working sets in Prometheus text,
/// each with the time it was read (metrics-server computes its own rates from two scrapes).
pub fn resource_metrics(sample: Option<&Sample>) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String, i64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value, ms) in rows {
            let _ = writeln!(out, "{name}{labels} {value} {ms}");
        }
    };
    let containers = sample.map(|s| s.containers.as_slice()).unwrap_or_default();
    let label = |c: &ContainerUsage| {
        format!(
            "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
            c.name, c.namespace, c.pod
        )
    };
    let ms = |ns: i64| ns / 1_000_000;
    let seconds = |nanos: u64| format!("{}", nanos as f64 / 1e9);
    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        containers
            .iter()
            .map(|c| {
                (
                    label(c),
                    seconds(c.usage.cpu_core_nanos),
                    ms(c.usage.time_ns),
                )
            })
            .collect(),
    );
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
        containers
            .iter()
            .map(|c| {
                let v = c.usage.working_set_bytes.to_string();
                (label(c), v, ms(c.usage.time_ns))
            })
            .collect(),
    );
    family(
        "container_start_time_seconds",
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
        containers
            .iter()
            .map(|c| {
                let v = format!("{}", c.started_ns as f64 / 1e9);
                (label(c), v, ms(c.usage.time_ns))
            })
            .collect(),
    );
    let node: Vec<&Usage> = sample.map(|s| &s.node).into_iter().collect();
    family(
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        node.iter()
            .map(|u| (String::new(), seconds(u.cpu_core_nanos), ms(u.time_ns)))
            .collect(),
    );
    family(
        "node_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the node in bytes",
        node.iter()
            .map(|u| {
                (
                    String::new(),
                    u.working_set_bytes.to_string(),
                    ms(u.time_ns),
                )
            })
            .collect(),
    );
    family(
        "scrape_error",
        "gauge",
        "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise",
        vec![(
            String::new(),
            if sample.is_some() { "0" } else { "1" }.into(),
            ms(now_ns()),
        )],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
    const MEMINFO: &str =
        "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\n";

    #[test]
    fn node_usage_counts_busy_ticks_and_unavailable_memory() {
        let u = node_usage(STAT, MEMINFO, 7).unwrap();
        // user+nice+system+irq+softirq+steal = 100+5+50+3+2+1 ticks of 10 ms.
        assert_eq!(u.cpu_core_nanos, 161 * NANOS_PER_TICK);
        assert_eq!(u.working_set_bytes, 400 * 1024);
        assert_eq!(u.usage_bytes, 800 * 1024);
        assert_eq!(u.available_bytes, Some(600 * 1024));
        assert!(node_usage("intr 1\n", MEMINFO, 7).is_err());
        assert!(node_usage(STAT, "MemTotal: 1 kB\n", 7).is_err());
    }

    fn container(id: &str, time_ns: i64, cpu: u64) -> ContainerUsage {
        ContainerUsage {
            id: id.into(),
            namespace: "ns".into(),
            pod: "p".into(),
            pod_uid: "u".into(),
            name: format!("c-{id}"),
            started_ns: 1_000_000_000,
            usage: Usage {
                time_ns,
                cpu_core_nanos: cpu,
                working_set_bytes: 4096,
                ..Usage::default()
            },
        }
    }

    #[test]
    fn rates_come_from_the_previous_sample_of_the_same_container() {
        let stats = Stats::default();
        stats.record(Sample {
            node: Usage {
                time_ns: 0,
                cpu_core_nanos: 0,
                ..Usage::default()
            },
            containers: vec![container("a", 0, 0), container("b", 0, 0)],
        });
        assert_eq!(stats.latest().unwrap().containers[0].usage.nano_cores, None);
        // 10 s later: a used 2.5 s of CPU (250m); b restarted as c, which has no rate yet.
        let ten_s = 10_000_000_000;
        stats.record(Sample {
            node: Usage {
                time_ns: ten_s,
                cpu_core_nanos: 15_000_000_000,
                ..Usage::default()
            },
            containers: vec![
                container("a", ten_s, 2_500_000_000),
                container("c", ten_s, 5),
            ],
        });
        let s = stats.latest().unwrap();
        assert_eq!(s.node.nano_cores, Some(1_500_000_000));
        assert_eq!(s.containers[0].usage.nano_cores, Some(250_000_000));
        assert_eq!(s.containers[1].usage.nano_cores, None);
        // A pod has a rate only when all its containers do.
        let summary = summary("n", Some(&s));
        assert_eq!(summary["node"]["cpu"]["usageNanoCores"], 1_500_000_000u64);
        assert_eq!(summary["pods"][0]["podRef"]["name"], "p");
        assert_eq!(
            summary["pods"][0]["containers"].as_array().unwrap().len(),
            2
        );
        assert!(summary["pods"][0]["cpu"].get("usageNanoCores").is_none());
        assert_eq!(summary["pods"][0]["memory"]["workingSetBytes"], 8192);
        assert_eq!(
            summary["pods"][0]["containers"][0]["cpu"]["usageNanoCores"],
            250_000_000u64
        );
    }

    #[test]
    fn a_counter_that_went_backwards_has_no_rate() {
        let mut late = Usage {
            time_ns: 10,
            cpu_core_nanos: 5,
            ..Usage::default()
        };
        late.rate_from(&Usage {
            time_ns: 0,
            cpu_core_nanos: 9,
            ..Usage::default()
        });
        assert_eq!(late.nano_cores, None);
    }

    #[test]
    fn resource_metrics_are_prometheus_text() {
        let s = Sample {
            node: Usage {
                time_ns: 2_000_000,
                cpu_core_nanos: 1_500_000_000,
                working_set_bytes: 10,
                ..Usage::default()
            },
            containers: vec![container("a", 3_000_000, 500_000_000)],
        };
        let text = resource_metrics(Some(&s));
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"c-a\",namespace=\"ns\",pod=\"p\"} 0.5 3\n"
        ));
        assert!(text.contains("node_cpu_usage_seconds_total 1.5 2\n"));
        assert!(text.contains("node_memory_working_set_bytes 10 2\n"));
        assert!(text.contains(
            "container_start_time_seconds{container=\"c-a\",namespace=\"ns\",pod=\"p\"} 1 3\n"
        ));
        assert!(text.contains("scrape_error 0 "));
        assert!(resource_metrics(None).contains("scrape_error 1 "));
    }
}
