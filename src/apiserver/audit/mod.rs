//! Auditing (upstream's `apiserver/pkg/audit` with the log backend): with `--audit-policy-file` and
//! `--audit-log-path`, every request the policy selects is written as an `audit.k8s.io/v1` `Event`, one
//! JSON line per stage: who did what to which object, how it was decided, and how it ended. It is what
//! PodSecurity's `audit` mode writes into (`pod-security.kubernetes.io/audit-violations`).
//!
//! Where to start: [`Auditor`] is built once from the flags (none without both, and then the request
//! path does no audit work at all). The HTTP edge (`http::handlers`) makes a [`Handle`] per request
//! (its `auditID`, also sent as the `Audit-Id` header), `begin`s it once the user is authenticated
//! ([`policy`] picks the level; `RequestReceived` is written), records impersonation, the authorization
//! decision and the request's body, and `finish`es it with the response (`ResponseComplete`; for watches
//! and streams `ResponseStarted` first, and `ResponseComplete` when the stream ends). Admission plugins
//! add annotations with [`annotate`], which reaches the request's handle through a task-local set
//! around the request's work, so no admission signature had to change. [`event`] is the wire shape,
//! [`log`] the writer.

pub mod event;
pub mod log;
pub mod policy;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::apiserver::authz::{Attributes, User};
use crate::apiserver::http::body::BodyFormat;
use crate::apiserver::http::metrics::Tracked;
use crate::apiserver::status::ApiError;
use event::{micro_time, response_status, Event, ObjectRef, UserInfo};
use policy::{Evaluation, Level, Policy, Stage};

/// The response header that carries a request's audit ID (upstream's `Audit-ID`).
pub const AUDIT_ID_HEADER: &str = "audit-id";

/// Request bodies larger than this are not read for the event (upstream's request body limit: larger
/// ones are refused anyway).
const MAX_CAPTURED_BODY: usize = crate::apiserver::http::handlers::MAX_BODY_BYTES;

/// The audit configuration of a running server.
pub struct Auditor {
    policy: Policy,
    sink: log::Sink,
}

impl Auditor {
    /// From `--audit-policy-file` and `--audit-log-path`: a bad policy file is an error (the server does
    /// not start), as is a log that cannot be opened. Either flag alone audits nothing, as upstream
    /// (a policy without a backend, or a backend with nothing selected), but the policy is still checked.
    pub fn from_flags(
        policy_file: Option<&std::path::Path>,
        log_path: Option<&str>,
    ) -> Result<Option<Arc<Auditor>>, String> {
        let policy = policy_file.map(Policy::load).transpose()?;
        let (Some(policy), Some(path)) = (policy, log_path.filter(|p| !p.is_empty())) else {
            return Ok(None);
        };
        let sink = log::Sink::open(path)?;
        Ok(Some(Arc::new(Auditor { policy, sink })))
    }

    /// A request's audit record, before anything is known of its user (upstream's `WithAuditInit`:
    /// the client's `Audit-ID` is kept, else a new UUID).
    pub fn request(
        self: &Arc<Self>,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Handle {
        let audit_id = headers
            .get(AUDIT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let received = chrono::Utc::now();
        let event = Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: Level::None,
            audit_id,
            stage: Stage::RequestReceived,
            request_uri: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| uri.path().to_string()),
            verb: String::new(),
            user: UserInfo::default(),
            impersonated_user: None,
            source_ips: source_ips(headers, peer),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: micro_time(received),
            stage_timestamp: String::new(),
            annotations: BTreeMap::new(),
        };
        Handle(Arc::new(Record {
            auditor: self.clone(),
            method: method.clone(),
            state: Mutex::new(State {
                event,
                evaluation: None,
                long_running: false,
                failure: None,
            }),
        }))
    }
}

/// Upstream's `SourceIPs`: the `X-Forwarded-For` addresses, then `X-Real-Ip`, then the peer, each once.
fn source_ips(headers: &HeaderMap, peer: Option<SocketAddr>) -> Vec<String> {
    let mut ips: Vec<std::net::IpAddr> = Vec::new();
    let mut add = |ip: std::net::IpAddr| {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for part in header("x-forwarded-for").unwrap_or("").split(',') {
        if let Ok(ip) = part.trim().parse() {
            add(ip);
        }
    }
    if let Some(ip) = header("x-real-ip").and_then(|v| v.trim().parse().ok()) {
        add(ip);
    }
    if let Some(peer) = peer {
        add(peer.ip());
    }
    ips.iter().map(ToString::to_string).collect()
}

/// One request's audit record, shared by the edge and (through the task-local) admission.
#[derive(Clone)]
pub struct Handle(Arc<Record>);

struct Record {
    auditor: Arc<Auditor>,
    method: Method,
    state: Mutex<State>,
}

struct State {
    event: Event,
    /// `None` until the user is known.
    evaluation: Option<Evaluation>,
    long_running: bool,
    /// The error the request ended with, for `responseStatus`.
    failure: Option<ApiError>,
}

impl Handle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn audit_id(&self) -> String {
        self.state().event.audit_id.clone()
    }

    /// The level the policy chose (`None` before [`Handle::begin`]).
    pub fn level(&self) -> Level {
        self.state()
            .evaluation
            .as_ref()
            .map_or(Level::None, |e| e.level)
    }

    /// The authenticated user and what the request does are known: the policy decides, and
    /// `RequestReceived` is written (upstream's `WithAudit`, which runs after authentication).
    pub fn begin(&self, user: &User, attrs: &Attributes) {
        let evaluation = self.0.auditor.policy.evaluate(user, attrs);
        let mut s = self.state();
        s.event.level = evaluation.level;
        s.event.verb = attrs.verb.clone();
        s.event.user = UserInfo::from(user);
        s.event.object_ref = ObjectRef::of(attrs);
        s.long_running = crate::apiserver::http::limits::is_long_running(attrs);
        s.evaluation = Some(evaluation);
        self.emit(&mut s, Stage::RequestReceived);
    }

    /// The request acts as `user` (`kubectl --as`).
    pub fn impersonated(&self, user: &User) {
        self.state().event.impersonated_user = Some(UserInfo::from(user));
    }

    /// The authorizer's answer, as upstream's authorization filter annotates it.
    pub fn authorized(&self, allowed: bool, reason: &str) {
        self.annotate(
            "authorization.k8s.io/decision",
            if allowed { "allow" } else { "forbid" },
        );
        self.annotate("authorization.k8s.io/reason", reason);
    }

    pub fn annotate(&self, key: &str, value: &str) {
        self.state()
            .event
            .annotations
            .insert(key.to_string(), value.to_string());
    }

    /// The request ended with `e` (its `responseStatus` then carries upstream's Status fields).
    pub fn failed(&self, e: &ApiError) {
        self.state().failure = Some(e.clone());
    }

    /// Has a write's JSON body copied into the event as the handler reads it (a create's name for the
    /// `objectRef` from `Metadata` on, the object itself from `Request` on), as upstream logs the
    /// object its handler decoded. The handler sees the body unchanged; non-JSON bodies are not copied.
    pub fn capture_body(&self, headers: &HeaderMap, body: Body) -> Body {
        let level = self.level();
        let method = &self.0.method;
        let wanted = match level {
            Level::None => false,
            Level::Metadata => *method == Method::POST || *method == Method::PUT,
            _ => matches!(
                *method,
                Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ),
        };
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        if !wanted || BodyFormat::from_content_type(&content_type).is_none() {
            return body;
        }
        Body::new(Tee {
            inner: body,
            copy: Vec::new(),
            content_type,
            audit: Some(self.clone()),
        })
    }

    /// The request's body as read to its end, decoded as the handler decodes it (JSON, YAML or
    /// protobuf; the event holds it as JSON, as upstream's).
    fn request_body(&self, content_type: &str, bytes: &[u8]) {
        let Some(format) = BodyFormat::from_content_type(content_type) else {
            return;
        };
        let Ok(obj) = crate::apiserver::http::body::decode(format, content_type, bytes) else {
            return;
        };
        let method = &self.0.method;
        let mut s = self.state();
        if matches!(*method, Method::POST | Method::PUT) {
            if let Some(r) = s.event.object_ref.as_mut() {
                r.fill_from(&obj);
            }
        }
        if s.evaluation
            .as_ref()
            .is_some_and(|e| e.level >= Level::Request)
        {
            s.event.request_object = Some(obj);
        }
    }

    /// Writes the last stage(s) and adds the `Audit-Id` header. A watch's or stream's response gets
    /// `ResponseStarted` now and `ResponseComplete` when its body ends; at `RequestResponse` a JSON
    /// answer is read into `responseObject` (and passed on unchanged).
    pub async fn finish(
        self,
        response: Response,
        unauthenticated: impl FnOnce() -> Attributes,
    ) -> Response {
        let (mut parts, body) = response.into_parts();
        if let Ok(v) = HeaderValue::from_str(&self.audit_id()) {
            parts.headers.insert(AUDIT_ID_HEADER, v);
        }
        let code = parts.status.as_u16();
        let begun = self.state().evaluation.is_some();
        if !begun {
            // Credentials that failed: upstream's failed-authentication event, one ResponseStarted
            // with no user.
            if code == 401 {
                let attrs = unauthenticated();
                let evaluation = self.0.auditor.policy.evaluate(&User::default(), &attrs);
                let mut s = self.state();
                s.event.level = evaluation.level;
                s.event.verb = attrs.verb.clone();
                s.event.object_ref = ObjectRef::of(&attrs);
                s.event.response_status = Some(response_status(code, s.failure.as_ref()));
                s.evaluation = Some(evaluation);
                self.emit(&mut s, Stage::ResponseStarted);
            }
            return Response::from_parts(parts, body);
        }
        let level = self.level();
        if level == Level::None {
            return Response::from_parts(parts, body);
        }
        let long_running = self.state().long_running;
        {
            let mut s = self.state();
            let status = response_status(code, s.failure.as_ref());
            s.event.response_status = Some(status);
        }
        // Upstream writes ResponseStarted for every long-running request, whatever its status.
        if long_running {
            {
                let mut s = self.state();
                self.emit(&mut s, Stage::ResponseStarted);
            }
            return Tracked::wrap(Response::from_parts(parts, body), Completes(self));
        }
        let mut body = body;
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let format = match content_type.split(';').next().unwrap_or("").trim() {
            "application/json" => Some(BodyFormat::Json),
            crate::apiserver::wire::protobuf::MEDIA_TYPE => Some(BodyFormat::Protobuf),
            _ => None,
        };
        if let (Level::RequestResponse, Some(format)) = (level, format) {
            match body.collect().await {
                Ok(c) => {
                    let bytes = c.to_bytes();
                    let obj = match format {
                        BodyFormat::Protobuf => {
                            crate::apiserver::wire::protobuf::decode(&bytes).ok()
                        }
                        _ => serde_json::from_slice::<Value>(&bytes).ok(),
                    };
                    if let Some(obj) = obj {
                        self.state().event.response_object = Some(obj);
                    }
                    body = Body::from(bytes);
                }
                Err(e) => {
                    body =
                        Body::from_stream(futures::stream::once(async move { Err::<Bytes, _>(e) }))
                }
            }
        }
        let mut s = self.state();
        self.emit(&mut s, Stage::ResponseComplete);
        drop(s);
        Response::from_parts(parts, body)
    }

    /// Writes the event at `stage` unless the level is None or the policy omits the stage.
    fn emit(&self, s: &mut State, stage: Stage) {
        let Some(evaluation) = &s.evaluation else {
            return;
        };
        if evaluation.level == Level::None || evaluation.omit_stages.contains(&stage) {
            return;
        }
        let mut event = s.event.clone();
        event.stage = stage;
        event.stage_timestamp = micro_time(chrono::Utc::now());
        if stage == Stage::RequestReceived {
            // Nothing of the response is known yet.
            event.response_status = None;
            event.response_object = None;
        }
        self.0.auditor.sink.send(event);
    }
}

/// A request body that copies what the handler reads (up to the request body limit: larger ones are
/// refused anyway) and gives it to the audit record at its end.
struct Tee {
    inner: Body,
    copy: Vec<u8>,
    content_type: String,
    audit: Option<Handle>,
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.copy.len() + data.len() <= MAX_CAPTURED_BODY {
                        this.copy.extend_from_slice(data);
                    } else {
                        this.audit = None;
                    }
                }
            }
            std::task::Poll::Ready(None) => {
                if let Some(audit) = this.audit.take() {
                    audit.request_body(&this.content_type, &this.copy);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Held by a watch's or stream's body: `ResponseComplete` is written when the body is done or dropped
/// (the client went away), as upstream writes it when the long-running handler returns.
struct Completes(Handle);

impl Drop for Completes {
    fn drop(&mut self) {
        let mut s = self.0.state();
        self.0.emit(&mut s, Stage::ResponseComplete);
    }
}

tokio::task_local! {
    /// The audit record of the request whose work this task is doing.
    static CURRENT: Handle;
}

/// Runs `work` with `audit` as the current request's record (nothing to set without auditing).
pub async fn scope<F: Future>(audit: Option<Handle>, work: F) -> F::Output {
    match audit {
        Some(a) => CURRENT.scope(a, work).await,
        None => work.await,
    }
}

/// Whether the current request's event will be written (admission skips work only audit wants).
pub fn recording() -> bool {
    CURRENT
        .try_with(|a| a.level() >= Level::Metadata)
        .unwrap_or(false)
}

/// Adds an annotation to the current request's event (upstream's `audit.AddAuditAnnotation`); nothing
/// outside an audited request.
pub fn annotate(key: &str, value: &str) {
    let _ = CURRENT.try_with(|a| a.annotate(key, value));
}

/// A begun request record at `Metadata` (log in a temporary folder), for tests of what admission adds.
#[cfg(test)]
pub(crate) fn test_handle() -> Handle {
    let dir = std::env::temp_dir().join(format!("rkube-audit-{}", uuid::Uuid::new_v4()));
    let policy =
        Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n")
            .expect("policy");
    let sink = log::Sink::open(&dir.join("audit.log").to_string_lossy()).expect("log");
    let auditor = Arc::new(Auditor { policy, sink });
    let h = auditor.request(
        &Method::POST,
        &"/api/v1/namespaces/ns/pods".parse().expect("uri"),
        &HeaderMap::new(),
        None,
    );
    h.begin(&User::default(), &Attributes::default());
    h
}

#[cfg(test)]
impl Handle {
    pub(crate) fn annotations(&self) -> BTreeMap<String, String> {
        self.state().event.annotations.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ips_as_upstream() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "10.0.0.1, 10.0.0.2".parse().unwrap());
        h.insert("x-real-ip", "10.0.0.2".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(
            source_ips(&h, Some(peer)),
            vec!["10.0.0.1", "10.0.0.2", "127.0.0.1"]
        );
    }

    #[tokio::test]
    async fn stages_and_omitted_stages() {
        let dir = std::env::temp_dir().join(format!("rkube-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let policy = dir.join("policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  resources: [{group: \"\", resources: [secrets]}]\n- level: Metadata\n  omitStages: [RequestReceived]\n  verbs: [list]\n- level: RequestResponse\n",
        )
        .unwrap();
        let log = dir.join("audit.log");
        let auditor = Auditor::from_flags(Some(&policy), log.to_str())
            .unwrap()
            .unwrap();
        let user = User::new("alice", vec!["system:authenticated".into()]);
        let run = |method: Method, uri: &str, verb: &str, resource: &str| {
            let h = auditor.request(&method, &uri.parse().unwrap(), &HeaderMap::new(), None);
            let attrs = Attributes {
                verb: verb.into(),
                resource_request: true,
                api_version: "v1".into(),
                namespace: "ns".into(),
                resource: resource.into(),
                ..Default::default()
            };
            h.begin(&user, &attrs);
            h.authorized(true, "");
            h
        };
        let h = run(
            Method::GET,
            "/api/v1/namespaces/ns/configmaps",
            "list",
            "configmaps",
        );
        let r = h
            .finish(Response::new(Body::empty()), Attributes::default)
            .await;
        assert!(r.headers().contains_key(AUDIT_ID_HEADER));
        let h = run(
            Method::GET,
            "/api/v1/namespaces/ns/secrets",
            "list",
            "secrets",
        );
        h.finish(Response::new(Body::empty()), Attributes::default)
            .await;
        let h = run(Method::POST, "/api/v1/namespaces/ns/pods", "create", "pods");
        let id = h.audit_id();
        h.annotate("pod-security.kubernetes.io/audit-violations", "x");
        let answer = Response::builder()
            .status(201)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"kind":"Pod"}"#))
            .unwrap();
        h.finish(answer, Attributes::default).await;
        let mut lines = Vec::new();
        for _ in 0..100 {
            lines = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect();
            if lines.len() >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let stages: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l["verb"].as_str().unwrap(), l["stage"].as_str().unwrap()))
            .collect();
        // list: RequestReceived omitted; secrets: None; create: both stages.
        assert_eq!(
            stages,
            vec![
                ("list", "ResponseComplete"),
                ("create", "RequestReceived"),
                ("create", "ResponseComplete")
            ]
        );
        assert_eq!(lines[2]["auditID"], id.as_str());
        assert_eq!(lines[2]["responseStatus"]["code"], 201);
        assert_eq!(lines[2]["responseObject"]["kind"], "Pod");
        assert_eq!(
            lines[2]["annotations"]["pod-security.kubernetes.io/audit-violations"],
            "x"
        );
        assert!(lines[1].get("responseStatus").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
