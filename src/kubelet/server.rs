//! The kubelet's own HTTPS port (10250), which the apiserver calls for `kubectl logs`, `exec`,
//! `attach` and `port-forward`.
//!
//! Callers authenticate with a client certificate from the cluster CA (required: no anonymous
//! access) and are authorized by a SubjectAccessReview against the apiserver, as upstream's kubelet
//! does with webhook authorization: these paths are `nodes/proxy` of this node, with the verb of the
//! HTTP method (`get` for GET, `create` for POST).
//!
//! The streams are in [`super::streaming`]; resource usage (`/stats/summary`, `/metrics/resource`)
//! in [`super::stats`]; logs are served here:
//! `GET /containerLogs/{namespace}/{pod}/{container}` reads the runtime's log file of that container
//! (CRI format: `<RFC3339Nano> <stream> <P|F> <text>`, `P` marking a partial line) with upstream's
//! options: `follow`, `previous`, `tailLines`, `limitBytes`, `sinceSeconds`, `timestamps`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt};
use tokio_rustls::TlsAcceptor;

use super::container_status::Run;
use super::pod_workers::Kubelet;

pub(super) type Body = BoxBody<Bytes, std::io::Error>;

/// The port upstream's kubelet serves on.
pub const KUBELET_PORT: u16 = 10250;

pub(super) fn text(code: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body.into()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves until the process ends.
pub async fn serve(
    kubelet: Arc<Kubelet>,
    addr: SocketAddr,
    tls: rustls::ServerConfig,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "kubelet serving");
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("kubelet server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let kubelet = kubelet.clone();
        tokio::spawn(serve_connection(acceptor.clone(), tcp, move |user, req| {
            let kubelet = kubelet.clone();
            async move { handle(&kubelet, &user, req).await }
        }));
    }
}

/// One accepted connection: the TLS handshake (10 s at most), the caller's identity from its client
/// certificate (a connection without one is dropped), then HTTP/1 or HTTP/2 with upgrades, each
/// request answered by `handle`.
pub(super) async fn serve_connection<F, Fut>(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    handle: F,
) where
    F: Fn(Arc<crate::pki::CertUser>, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
    else {
        return;
    };
    let user = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| crate::pki::user_from_cert(c.as_ref()));
    let Some(user) = user else { return };
    let user = Arc::new(user);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (handle, user) = (handle.clone(), user.clone());
        async move { Ok::<_, Infallible>(handle(user, req).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await;
}

/// Asks the apiserver whether `user` may `verb` `nodes/<subresource>` of node `node` (upstream's
/// webhook authorization), with the kubelet's own client.
pub(super) async fn allowed(
    client: &kube::Client,
    node: &str,
    user: &crate::pki::CertUser,
    verb: &str,
    subresource: &str,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            groups: Some(user.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some("nodes".into()),
                subresource: Some(subresource.into()),
                name: Some(node.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    match api.create(&PostParams::default(), &review).await {
        Ok(r) => r.status.is_some_and(|s| s.allowed),
        Err(e) => {
            tracing::warn!("kubelet server: authorizing {}: {e}", user.name);
            false
        }
    }
}

fn forbidden(user: &crate::pki::CertUser, verb: &str, subresource: &str) -> Response<Body> {
    text(
        StatusCode::FORBIDDEN,
        format!(
            "Forbidden (user={}, verb={verb}, resource=nodes, subresource={subresource})",
            user.name
        ),
    )
}

async fn handle(
    kubelet: &Kubelet,
    user: &crate::pki::CertUser,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    if let Some(r) = stats_endpoint(&kubelet.client, &kubelet.node_name, user, &req, || {
        kubelet.stats.latest()
    })
    .await
    {
        return r;
    }
    let stream = super::streaming::parse_path(&path);
    let rest = path.strip_prefix("/containerLogs/");
    if stream.is_none() && rest.is_none() {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    // Upstream's kubelet: GET and POST both serve the streams (WebSocket and SPDY); logs are GET.
    let verb = match *req.method() {
        http::Method::GET => "get",
        http::Method::POST if stream.is_some() => "create",
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed"),
    };
    if !allowed(&kubelet.client, &kubelet.node_name, user, verb, "proxy").await {
        return forbidden(user, verb, "proxy");
    }
    let Some(rest) = rest else {
        return match stream {
            Some(target) => super::streaming::handle(kubelet, target, req).await,
            None => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        };
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [ns, pod, container] = parts.as_slice() else {
        return text(
            StatusCode::BAD_REQUEST,
            "expected /containerLogs/{namespace}/{pod}/{container}",
        );
    };
    let opts = match LogOptions::parse(req.uri().query().unwrap_or("")) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    logs(kubelet, ns, pod, container, opts).await
}

/// `GET /stats/summary` and `GET /metrics/resource` of node `node` (None for any other path), from the
/// usage `sample` gives. Upstream's kubelet authorizes `/stats/*` as `nodes/stats` and `/metrics/*` as
/// `nodes/metrics`. Hollow nodes serve the same answers from their simulated usage.
pub(super) async fn stats_endpoint(
    client: &kube::Client,
    node: &str,
    user: &crate::pki::CertUser,
    req: &Request<Incoming>,
    sample: impl FnOnce() -> Option<super::stats::Sample>,
) -> Option<Response<Body>> {
    let sub = match req.uri().path() {
        "/stats/summary" => "stats",
        "/metrics/resource" => "metrics",
        _ => return None,
    };
    if *req.method() != http::Method::GET {
        return Some(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405: Method Not Allowed",
        ));
    }
    if !allowed(client, node, user, "get", sub).await {
        return Some(forbidden(user, "get", sub));
    }
    let sample = sample();
    let (body, content_type) = if sub == "stats" {
        (
            super::stats::summary(node, sample.as_ref()).to_string(),
            "application/json",
        )
    } else {
        (
            super::stats::resource_metrics(sample.as_ref()),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let mut r = text(StatusCode::OK, body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Some(r)
}

#[derive(Default, Debug, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    pub since_seconds: Option<i64>,
}

impl LogOptions {
    pub fn parse(query: &str) -> Result<LogOptions, String> {
        let mut o = LogOptions::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let flag = || v == "true" || v == "1";
            let num = |what: &str| {
                v.parse::<i64>()
                    .map_err(|_| format!("invalid {what}: {v:?}"))
            };
            match k.as_ref() {
                "follow" => o.follow = flag(),
                "previous" => o.previous = flag(),
                "timestamps" => o.timestamps = flag(),
                "tailLines" => o.tail_lines = Some(num("tailLines")?.max(0) as usize),
                "limitBytes" => o.limit_bytes = Some(num("limitBytes")?.max(0) as usize),
                "sinceSeconds" => o.since_seconds = Some(num("sinceSeconds")?),
                _ => {}
            }
        }
        Ok(o)
    }
}

/// One CRI log line: (timestamp, text, whether the line ends here).
fn parse_line(line: &str) -> Option<(&str, &str, bool)> {
    let (ts, rest) = line.split_once(' ')?;
    let (_stream, rest) = rest.split_once(' ')?;
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((ts, text, tag != "P"))
}

/// What one log line becomes for the reader (`timestamps` prefixes the runtime's time).
fn render(ts: &str, text: &str, full: bool, timestamps: bool) -> String {
    let mut out = String::new();
    if timestamps {
        out.push_str(ts);
        out.push(' ');
    }
    out.push_str(text);
    if full {
        out.push('\n');
    }
    out
}

fn since_ok(ts: &str, since: Option<i64>) -> bool {
    let Some(secs) = since else { return true };
    match ts.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(t) => k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second() <= secs,
        Err(_) => true,
    }
}

async fn logs(
    kubelet: &Kubelet,
    ns: &str,
    pod: &str,
    container: &str,
    opts: LogOptions,
) -> Response<Body> {
    let Some(uid) = kubelet.runtime_uid(ns, pod) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} is not known to this kubelet"),
        );
    };
    let attempts = match kubelet.attempts(&uid, container).await {
        Ok(a) => a,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let chosen = if opts.previous {
        attempts.get(1)
    } else {
        attempts.first()
    };
    let Some(attempt) = chosen.cloned() else {
        let message = if opts.previous {
            format!("previous terminated container {container:?} in pod {pod:?} not found")
        } else {
            format!("container {container:?} in pod {pod:?} is waiting to start: ContainerCreating")
        };
        return text(StatusCode::BAD_REQUEST, message);
    };
    let log_path = attempt.log_path.clone();
    let file = match tokio::fs::File::open(&log_path).await {
        Ok(f) => f,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to open log file {log_path:?}: {e}"),
            )
        }
    };
    // The whole file is read for tailLines (a log is rotated by the runtime long before this
    // matters); otherwise lines stream as read.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let follow = opts.follow && !opts.previous && attempt.state == Run::Running;
    let id = attempt.id.clone();
    let cri = kubelet.cri.clone();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(file);
        let mut sent = 0usize;
        let mut pending = String::new();
        let limit = opts.limit_bytes.unwrap_or(usize::MAX);
        let emit = |chunk: String, sent: &mut usize| -> Option<Bytes> {
            if *sent >= limit {
                return None;
            }
            let mut b = chunk.into_bytes();
            b.truncate(limit - *sent);
            *sent += b.len();
            Some(Bytes::from(b))
        };
        if let Some(n) = opts.tail_lines {
            let mut lines: std::collections::VecDeque<String> = Default::default();
            let mut line = String::new();
            while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                if let Some((ts, t, full)) = parse_line(line.trim_end_matches('\n')) {
                    if since_ok(ts, opts.since_seconds) {
                        pending.push_str(&render(ts, t, full, opts.timestamps));
                        if full {
                            lines.push_back(std::mem::take(&mut pending));
                            if lines.len() > n {
                                lines.pop_front();
                            }
                        }
                    }
                }
                line.clear();
            }
            let all: String = lines.into_iter().collect();
            if let Some(b) = emit(all, &mut sent) {
                if tx.send(Ok(Frame::data(b))).await.is_err() {
                    return;
                }
            }
        }
        let mut line = String::new();
        let mut idle = 0u32;
        loop {
            match reader.read_line(&mut line).await {
                Ok(0) => {
                    if !follow || sent >= limit {
                        break;
                    }
                    // Following: wait for more, and stop once the container is gone and the
                    // file is drained.
                    idle += 1;
                    if idle.is_multiple_of(5) {
                        let running =
                            cri.container_status(&id)
                                .await
                                .ok()
                                .flatten()
                                .is_some_and(|s| {
                                    s.state == k8s_cri::v1::ContainerState::ContainerRunning as i32
                                });
                        if !running {
                            let pos = reader.stream_position().await.ok();
                            let len = tokio::fs::metadata(&log_path).await.ok().map(|m| m.len());
                            if pos == len {
                                break;
                            }
                        }
                    }
                    if tx.is_closed() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Ok(_) if !line.ends_with('\n') => continue, // a line still being written
                Ok(_) => {
                    idle = 0;
                    if let Some((ts, t, full)) = parse_line(line.trim_end_matches('\n')) {
                        if since_ok(ts, opts.since_seconds) {
                            let chunk = render(ts, t, full, opts.timestamps);
                            match emit(chunk, &mut sent) {
                                Some(b) => {
                                    if tx.send(Ok(Frame::data(b))).await.is_err() {
                                        return;
                                    }
                                }
                                None => break,
                            }
                        }
                    }
                    line.clear();
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_log_lines() {
        assert_eq!(
            parse_line("2026-12-04T20:02:01.1Z stdout F hello world"),
            Some(("2026-12-04T20:02:01.1Z", "hello world", true))
        );
        assert_eq!(
            parse_line("2026-12-04T20:02:01.1Z stderr P part"),
            Some(("2026-12-04T20:02:01.1Z", "part", false))
        );
        assert_eq!(parse_line("2026 stdout F"), Some(("2026", "", true)));
        assert_eq!(render("T", "x", true, true), "T x\n");
        assert_eq!(render("T", "x", false, false), "x");
    }

    #[test]
    fn options() {
        let o = LogOptions::parse("follow=true&tailLines=5&timestamps=1&limitBytes=10").unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(10)));
        assert!(LogOptions::parse("tailLines=x").is_err());
    }
}
