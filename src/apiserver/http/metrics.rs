//! `/metrics`: the Prometheus text upstream's apiserver serves, the part monitoring reads most.
//!
//! - `apiserver_request_total` (counter) and `apiserver_request_duration_seconds` (histogram, upstream's
//!   buckets) by upstream's labels: verb as upstream cleans it (GET, LIST, WATCH, POST, PUT, PATCH,
//!   APPLY, DELETE, DELETECOLLECTION, CONNECT), group, version, resource, subresource, scope (resource,
//!   namespace, cluster), component, dry_run, and code for the counter. A watch or a stream is counted
//!   when its answer starts, as upstream's instrumentation counts it.
//! - `apiserver_longrunning_requests` (gauge): watches and streams open now.
//! - `apiserver_storage_objects` (gauge): objects per resource in the watch cache.
//! - `process_*`: resident and virtual memory, CPU seconds, open and maximum file descriptors, start time.
//!
//! Authorization is the caller's: `/metrics` is a non-resource URL that RBAC grants `system:monitoring`
//! (and `system:masters`), as upstream's bootstrap policy does.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;

use crate::apiserver::http::request::{parse_path, Query, Target};
use crate::apiserver::registry::store::Registry;

/// Upstream's buckets for apiserver_request_duration_seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// One request's labels (without the code).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels {
    verb: String,
    dry_run: String,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: String,
}

impl Labels {
    /// The labels upstream's instrumentation gives a request.
    pub fn of(method: &Method, path: &str, query: Option<&str>, content_type: &str) -> Labels {
        // A query that does not parse is answered 400 later; its labels need only be plausible.
        let q = Query::parse(query).unwrap_or_default();
        let watch = q.watch;
        let dry_run = if q.dry_run { "All" } else { "" };
        let Some(Target::Resource(rp)) = parse_path(path) else {
            // Non-resource URLs: the path itself only for the server's well-known ones, as upstream
            // (so arbitrary paths do not make arbitrary label values).
            let trimmed = path.trim_end_matches('/');
            let known = [
                "/healthz",
                "/livez",
                "/readyz",
                "/metrics",
                "/version",
                "/openapi/v2",
            ];
            let sub = if known.contains(&trimmed) || trimmed.starts_with("/openapi/v3") {
                trimmed
            } else {
                ""
            };
            return Labels {
                verb: method.as_str().to_string(),
                subresource: sub.to_string(),
                ..Default::default()
            };
        };
        let sub = rp.subresource.clone().unwrap_or_default();
        let connect = matches!(sub.as_str(), "exec" | "attach" | "portforward" | "proxy");
        let verb = match *method {
            _ if connect => "CONNECT",
            Method::GET if watch => "WATCH",
            Method::GET if rp.name.is_none() => "LIST",
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH if content_type.starts_with("application/apply-patch") => "APPLY",
            Method::PATCH => "PATCH",
            Method::DELETE if rp.name.is_none() => "DELETECOLLECTION",
            Method::DELETE => "DELETE",
            _ => method.as_str(),
        };
        let scope = if rp.name.is_some() {
            "resource"
        } else if rp.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        Labels {
            verb: verb.to_string(),
            dry_run: dry_run.to_string(),
            group: rp.group,
            version: rp.version,
            resource: rp.resource,
            subresource: sub,
            scope: scope.to_string(),
        }
    }

    /// Watches and streams (counted by the long-running gauge while open).
    pub fn long_running(&self) -> bool {
        matches!(self.verb.as_str(), "WATCH" | "CONNECT") || self.subresource == "log"
    }

    /// The labels as Prometheus text; the long-running gauge has no dry_run label (as upstream's).
    fn write(&self, out: &mut String, dry_run: bool) {
        out.push_str("component=\"apiserver\",");
        if dry_run {
            let _ = write!(out, "dry_run=\"{}\",", esc(&self.dry_run));
        }
        let _ = write!(
            out,
            "group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"",
            esc(&self.group),
            esc(&self.resource),
            esc(&self.scope),
            esc(&self.subresource),
            esc(&self.verb),
            esc(&self.version)
        );
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Counters {
    requests: BTreeMap<(Labels, u16), u64>,
    durations: BTreeMap<Labels, Histogram>,
}

/// The server's metrics (one per App).
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
    long_running: Mutex<BTreeMap<Labels, i64>>,
    started: AtomicI64,
}

/// A response body that keeps a guard until the body is finished or dropped: an [`Open`] for the
/// long-running gauge, or the audit record that writes a stream's `ResponseComplete` when it ends.
pub struct Tracked<G> {
    inner: axum::body::Body,
    _guard: G,
}

impl<G: Unpin> http_body::Body for Tracked<G> {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<G: Unpin + Send + 'static> Tracked<G> {
    /// `response` whose body keeps `guard` until it ends.
    pub fn wrap(response: axum::response::Response, guard: G) -> axum::response::Response {
        let (parts, inner) = response.into_parts();
        axum::response::Response::from_parts(
            parts,
            axum::body::Body::new(Tracked {
                inner,
                _guard: guard,
            }),
        )
    }
}

/// Held while a watch or stream is open: the long-running gauge counts it until dropped.
pub struct Open {
    metrics: Arc<Metrics>,
    labels: Labels,
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Ok(mut m) = self.metrics.long_running.lock() {
            if let Some(n) = m.get_mut(&self.labels) {
                *n -= 1;
            }
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let m = Metrics::default();
        m.started
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        Arc::new(m)
    }

    /// Counts one answered request.
    pub fn observe(&self, labels: &Labels, code: u16, took: Duration) {
        let Ok(mut c) = self.counters.lock() else {
            return;
        };
        *c.requests.entry((labels.clone(), code)).or_default() += 1;
        let h = c.durations.entry(labels.clone()).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Counts an open watch or stream until the returned guard drops.
    pub fn open(self: &Arc<Self>, labels: Labels) -> Open {
        if let Ok(mut m) = self.long_running.lock() {
            *m.entry(labels.clone()).or_default() += 1;
        }
        Open {
            metrics: self.clone(),
            labels,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, registry: &Registry) -> String {
        let mut out = String::new();
        if let Ok(c) = self.counters.lock() {
            out.push_str("# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n");
            for ((l, code), n) in &c.requests {
                out.push_str("apiserver_request_total{code=\"");
                let _ = write!(out, "{code}\",");
                l.write(&mut out, true);
                let _ = writeln!(out, "}} {n}");
            }
            out.push_str("# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n# TYPE apiserver_request_duration_seconds histogram\n");
            for (l, h) in &c.durations {
                for (b, n) in BUCKETS.iter().zip(&h.counts) {
                    out.push_str("apiserver_request_duration_seconds_bucket{");
                    l.write(&mut out, true);
                    let _ = writeln!(out, ",le=\"{b}\"}} {n}");
                }
                out.push_str("apiserver_request_duration_seconds_bucket{");
                l.write(&mut out, true);
                let _ = writeln!(out, ",le=\"+Inf\"}} {}", h.count);
                out.push_str("apiserver_request_duration_seconds_sum{");
                l.write(&mut out, true);
                let _ = writeln!(out, "}} {}", h.sum);
                out.push_str("apiserver_request_duration_seconds_count{");
                l.write(&mut out, true);
                let _ = writeln!(out, "}} {}", h.count);
            }
        }
        if let Ok(m) = self.long_running.lock() {
            out.push_str("# HELP apiserver_longrunning_requests [STABLE] Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way.\n# TYPE apiserver_longrunning_requests gauge\n");
            for (l, n) in m.iter() {
                out.push_str("apiserver_longrunning_requests{");
                l.write(&mut out, false);
                let _ = writeln!(out, "}} {n}");
            }
        }
        out.push_str("# HELP apiserver_storage_objects [STABLE] Number of stored objects at the time of last check split by kind. In case of a fetching error, the value will be -1.\n# TYPE apiserver_storage_objects gauge\n");
        let catalog = registry.catalog.load();
        let mut seen = std::collections::BTreeSet::new();
        for r in catalog.all() {
            // One line per store (a resource served in several versions counts once).
            if !seen.insert(r.storage_prefix.clone()) {
                continue;
            }
            let Some(cache) = registry.cache.resource(&r.storage_prefix) else {
                continue;
            };
            let _ = writeln!(
                out,
                "apiserver_storage_objects{{resource=\"{}\"}} {}",
                esc(&r.group_resource()),
                cache.len()
            );
        }
        process_metrics(&mut out, self.started.load(Ordering::Relaxed));
        out
    }
}

/// Upstream's process collector, read from /proc.
fn process_metrics(out: &mut String, started: i64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // Linux's USER_HZ and page size on the machines rkube runs on (x86_64, aarch64 with 4 KiB pages).
    let ticks = 100.0;
    let page = 4096.0;
    if let (Some(utime), Some(stime)) = (field(11), field(12)) {
        let _ = writeln!(out, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}", (utime + stime) / ticks);
    }
    if let Some(vsize) = field(20) {
        let _ = writeln!(out, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {vsize}");
    }
    if let Some(rss) = field(21) {
        let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}", rss * page);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}", fds.count());
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(max) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok())
    {
        let _ = writeln!(out, "# HELP process_max_fds Maximum number of open file descriptors.\n# TYPE process_max_fds gauge\nprocess_max_fds {max}");
    }
    let _ = writeln!(out, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {started}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_as_upstream_cleans_verbs() {
        let l = |m: Method, p: &str, q: Option<&str>, ct: &str| {
            let l = Labels::of(&m, p, q, ct);
            (l.verb, l.scope, l.resource, l.subresource)
        };
        let s = String::from;
        assert_eq!(
            l(Method::GET, "/api/v1/namespaces/d/pods", None, ""),
            (s("LIST"), s("namespace"), s("pods"), s(""))
        );
        assert_eq!(
            l(Method::GET, "/api/v1/pods", Some("watch=true"), ""),
            (s("WATCH"), s("cluster"), s("pods"), s(""))
        );
        assert_eq!(
            l(
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/x",
                None,
                "application/apply-patch+yaml"
            ),
            (s("APPLY"), s("resource"), s("deployments"), s(""))
        );
        assert_eq!(
            l(
                Method::POST,
                "/api/v1/namespaces/d/pods/p/exec",
                Some("command=ls"),
                ""
            ),
            (s("CONNECT"), s("resource"), s("pods"), s("exec"))
        );
        assert_eq!(
            l(Method::DELETE, "/api/v1/namespaces/d/configmaps", None, ""),
            (
                s("DELETECOLLECTION"),
                s("namespace"),
                s("configmaps"),
                s("")
            )
        );
        assert_eq!(
            l(Method::GET, "/healthz", None, ""),
            (s("GET"), s(""), s(""), s("/healthz"))
        );
        assert_eq!(
            l(Method::GET, "/some/random/path", None, ""),
            (s("GET"), s(""), s(""), s(""))
        );
    }

    #[test]
    fn histogram_counts_cumulatively() {
        let m = Metrics::new();
        let l = Labels::of(&Method::GET, "/api/v1/namespaces/d/pods/p", None, "");
        m.observe(&l, 200, Duration::from_millis(30));
        m.observe(&l, 404, Duration::from_millis(3));
        let c = m.counters.lock().expect("lock");
        assert_eq!(c.requests.get(&(l.clone(), 200)), Some(&1));
        let h = c.durations.get(&l).expect("histogram");
        assert_eq!(
            (h.counts[0], h.counts[1], h.counts[2], h.count),
            (1, 1, 2, 2)
        );
    }
}
