//! `kubectl exec` and `attach` over WebSocket (`v5.channel.k8s.io`, kubectl 1.30+'s first choice),
//! translated to SPDY for the kubelet, as upstream's apiserver does (its StreamTranslatorHandler):
//! kubelets and container runtimes speak SPDY, and v5's one addition over v4, closing stdin alone
//! (a `[255, 0]` message), has no WebSocket form a runtime understands; in SPDY it is a FIN.
//!
//! The apiserver answers the client's WebSocket handshake itself, then asks the kubelet for a
//! remotecommand session (`v4.channel.k8s.io`) over SPDY and carries the streams across:
//!
//! | WebSocket channel | SPDY stream (`streamtype`) |
//! |---|---|
//! | 0 stdin (client → server) | `stdin` |
//! | 1 stdout, 2 stderr | `stdout`, `stderr` (not with a TTY) |
//! | 3 error: one status, then the close | `error`, read to its end and decoded as upstream's v4 client |
//! | 4 resize (JSON sizes) | `resize` (TTY only) |
//!
//! The session ends when the kubelet has finished its error, stdout and stderr streams (or hung
//! up); the status then goes to the client as upstream's translator writes it (success, the
//! container's exit code, or an internal error with the kubelet's words), and the WebSocket closes
//! normally, which is what the client waits for. A kubelet that refuses the session is reported the
//! same way, on the error channel of the already upgraded WebSocket.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;

use super::spdy::{self, Frame};
use super::{send_upgrade, websocket_answer, Answer, UPGRADE_TIMEOUT};

/// The WebSocket subprotocol translated here.
pub const V5: &str = "v5.channel.k8s.io";
/// What is asked of the kubelet (and what containerd's streaming server speaks).
pub const SPDY_PROTOCOL: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5's close signal: `[CLOSE, channel]` ends that channel's input.
const CLOSE: u8 = 255;

/// The error stream carries one status; more than this is not one.
const MAX_STATUS: usize = 1 << 20;
/// How long the client has to answer the closing handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `headers` ask for a WebSocket that offers [`V5`] (upstream's
/// IsWebSocketRequestWithStreamCloseProtocol).
pub fn wants_v5(headers: &HeaderMap) -> bool {
    super::websocket_protocols(headers).any(|p| p == V5)
}

/// The streams a session has, from the apiserver's exec/attach options.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Answers the client's WebSocket handshake (`key`: its `Sec-WebSocket-Key`) with [`V5`], and runs
/// the session in a task of its own: the kubelet is asked for it over `io` with `req` (a
/// [`super::spdy_upgrade_request`] for [`SPDY_PROTOCOL`]).
pub fn translate<IO>(
    io: IO,
    req: Request<Empty<Bytes>>,
    client: Option<OnUpgrade>,
    key: &[u8],
    streams: Streams,
) -> Answer
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    if let Some(client) = client {
        tokio::spawn(run(io, req, client, streams));
    }
    websocket_answer(key, V5)
}

type Ws = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn run<IO>(io: IO, req: Request<Empty<Bytes>>, client: OnUpgrade, streams: Streams)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let client = match tokio::time::timeout(UPGRADE_TIMEOUT, client).await {
        Ok(Ok(client)) => client,
        _ => {
            tracing::debug!("exec translator: the client's upgrade did not complete");
            return;
        }
    };
    let mut ws = Ws::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
    // Upstream's server writes an empty message on its first output channel once open.
    let first = if streams.stdout {
        STDOUT
    } else if streams.stderr {
        STDERR
    } else {
        ERROR
    };
    if ws.send(binary(first, &[])).await.is_err() {
        return;
    }
    let backend = connect(io, req).await;
    tracing::debug!("exec translator: kubelet connected: {}", backend.is_ok());
    let status = match backend {
        Ok(backend) => match session(&mut ws, backend, streams).await {
            Some(status) => status,
            None => return, // the client went away
        },
        Err(status) => status,
    };
    let _ = ws.send(binary(ERROR, status.to_string().as_bytes())).await;
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = ws.close(Some(close)).await;
    // Let the client answer the close (bounded), so its last reads see a clean end.
    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
}

/// The kubelet's upgraded connection, or the status that says why there is none.
async fn connect<IO>(io: IO, req: Request<Empty<Bytes>>) -> Result<hyper::upgrade::Upgraded, Value>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let refused = match send_upgrade(io, req).await {
        Err(e) => return Err(internal_error(&e.to_string())),
        Ok(Ok((_, backend))) => {
            return match tokio::time::timeout(UPGRADE_TIMEOUT, backend).await {
                Ok(Ok(backend)) => Ok(backend),
                Ok(Err(e)) => Err(internal_error(&e.to_string())),
                Err(_) => Err(internal_error("the kubelet's upgrade did not complete")),
            };
        }
        Ok(Err(refused)) => refused,
    };
    // Upstream's SPDY client: a refusal whose body is a Status is that status, else its text.
    let body = tokio::time::timeout(UPGRADE_TIMEOUT, refused.into_body().collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match serde_json::from_slice::<Value>(&body) {
        Ok(status) if status.get("kind").and_then(Value::as_str) == Some("Status") => Err(status),
        _ => Err(internal_error(&format!(
            "unable to upgrade connection: {}",
            String::from_utf8_lossy(&body).trim()
        ))),
    }
}

/// Carries the streams between the client's WebSocket and the kubelet's SPDY connection until the
/// kubelet is done: the status for the client, `None` when the client went away first.
async fn session(
    ws: &mut Ws,
    backend: hyper::upgrade::Upgraded,
    streams: Streams,
) -> Option<Value> {
    let (mut from_kubelet, mut to_kubelet) = tokio::io::split(TokioIo::new(backend));
    // Stream ids in upstream's client's order of creation (error first); a client's are odd.
    let mut next = 1;
    let mut open = |wanted: bool| {
        wanted.then(|| {
            next += 2;
            next - 2
        })
    };
    let error_id = open(true);
    let stdin_id = open(streams.stdin);
    let stdout_id = open(streams.stdout);
    let stderr_id = open(streams.stderr && !streams.tty);
    let resize_id = open(streams.tty);
    let mut writer = spdy::Writer::default();
    let mut opening = Vec::new();
    for (id, kind) in [
        (error_id, "error"),
        (stdin_id, "stdin"),
        (stdout_id, "stdout"),
        (stderr_id, "stderr"),
        (resize_id, "resize"),
    ] {
        if let Some(id) = id {
            opening.extend_from_slice(&writer.syn_stream(id, &[("streamtype", kind)]));
        }
    }
    if let Err(e) = send(&mut to_kubelet, &opening).await {
        return Some(internal_error(&e.to_string()));
    }
    // Reading a frame is not cancel-safe, so frames come from a task of their own.
    let (tx, mut frames) = tokio::sync::mpsc::channel(16);
    let reader = tokio::spawn(async move {
        loop {
            let frame = spdy::read_frame(&mut from_kubelet).await;
            let end = !matches!(frame, Ok(Some(_)));
            if tx.send(frame).await.is_err() || end {
                break;
            }
        }
    });
    // The kubelet's streams still to finish, and the client's inputs still open.
    let mut pending: HashSet<u32> = [error_id, stdout_id, stderr_id]
        .into_iter()
        .flatten()
        .collect();
    let mut inputs: HashSet<u32> = [stdin_id, resize_id].into_iter().flatten().collect();
    let mut error_stream = Vec::new();
    let mut failure = None;
    // The kubelet's SPDY drops data sent on a stream it has not replied to yet (upstream's client
    // waits for each reply), so the client's input waits until every stream has its SYN_REPLY.
    let mut unreplied: HashSet<u32> = [error_id, stdin_id, stdout_id, stderr_id, resize_id]
        .into_iter()
        .flatten()
        .collect();
    let replies_due = tokio::time::sleep(UPGRADE_TIMEOUT);
    tokio::pin!(replies_due);
    let input_id = |channel: u8| match channel {
        STDIN => stdin_id,
        RESIZE => resize_id,
        _ => None,
    };
    while !pending.is_empty() {
        tokio::select! {
            frame = frames.recv() => {
                let frame = match frame {
                    Some(Ok(Some(frame))) => frame,
                    Some(Err(e)) => {
                        failure = Some(e.to_string());
                        break;
                    }
                    // The kubelet hung up.
                    Some(Ok(None)) | None => break,
                };
                match &frame {
                    Frame::Data { stream, data, .. } if !data.is_empty() => {
                        let channel = if Some(*stream) == stdout_id {
                            Some(STDOUT)
                        } else if Some(*stream) == stderr_id {
                            Some(STDERR)
                        } else {
                            None
                        };
                        if let Some(channel) = channel {
                            if ws.send(binary(channel, data)).await.is_err() {
                                reader.abort();
                                return None;
                            }
                        } else if Some(*stream) == error_id && error_stream.len() < MAX_STATUS {
                            error_stream.extend_from_slice(data);
                        }
                    }
                    Frame::Control { kind: spdy::PING, payload, .. } if spdy::is_peer_ping(payload) => {
                        let _ = send(&mut to_kubelet, &spdy::ping(payload)).await;
                    }
                    Frame::Control { kind: spdy::GOAWAY, .. } => break,
                    Frame::Control { kind: spdy::SYN_REPLY, .. } => {
                        if let Some(id) = frame.stream() {
                            unreplied.remove(&id);
                        }
                    }
                    _ => {}
                }
                if frame.ends_stream() {
                    if let Some(id) = frame.stream() {
                        pending.remove(&id);
                    }
                }
            }
            () = &mut replies_due, if !unreplied.is_empty() => {
                failure = Some("timed out waiting for the kubelet to accept the streams".to_string());
                break;
            }
            msg = ws.next(), if unreplied.is_empty() => {
                let data = match msg {
                    Some(Ok(Message::Binary(data))) => data,
                    // Pings are answered by the WebSocket layer; text has no channel.
                    Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        reader.abort();
                        return None;
                    }
                };
                let out = match data.as_ref() {
                    [CLOSE, channel] => input_id(*channel)
                        .filter(|id| inputs.remove(id))
                        .map(|id| spdy::data(id, &[], true)),
                    [channel, rest @ ..] if !rest.is_empty() => input_id(*channel)
                        .filter(|id| inputs.contains(id))
                        .map(|id| spdy::data(id, rest, false)),
                    _ => None,
                };
                if let Some(out) = out {
                    if let Err(e) = send(&mut to_kubelet, &out).await {
                        tracing::debug!("exec translator: writing to the kubelet: {e}");
                        inputs.clear();
                    }
                }
            }
        }
    }
    reader.abort();
    tracing::debug!(
        "exec translator: session ended ({}), error stream {:?}",
        failure.as_deref().unwrap_or("done"),
        String::from_utf8_lossy(&error_stream)
    );
    Some(match failure {
        Some(e) => internal_error(&e),
        None => status_of(&error_stream),
    })
}

/// Writes `frames` to the kubelet and flushes them (TLS holds records back until then).
async fn send<W: AsyncWrite + Unpin>(w: &mut W, frames: &[u8]) -> std::io::Result<()> {
    w.write_all(frames).await?;
    w.flush().await
}

fn binary(channel: u8, data: &[u8]) -> Message {
    let mut msg = Vec::with_capacity(data.len() + 1);
    msg.push(channel);
    msg.extend_from_slice(data);
    Message::Binary(msg.into())
}

/// What upstream's translator writes for the kubelet's error stream (`raw`): its v4 client's
/// reading of it (nothing or Success: success; a failure with an exit code: that code; any other
/// failure: an error with its message), written back as a status.
fn status_of(raw: &[u8]) -> Value {
    if raw.is_empty() {
        return success();
    }
    let status: Value = match serde_json::from_slice(raw) {
        Ok(status) => status,
        Err(e) => {
            return internal_error(&format!(
                "error stream protocol error: {e} in {:?}",
                String::from_utf8_lossy(raw)
            ))
        }
    };
    let field = |name: &str| status.get(name).and_then(Value::as_str).unwrap_or_default();
    match field("status") {
        "Success" => success(),
        "Failure" if field("reason") == "NonZeroExitCode" => {
            let code = status
                .pointer("/details/causes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| c.get("reason").and_then(Value::as_str) == Some("ExitCode"))
                .and_then(|c| c.get("message").and_then(Value::as_str));
            match code.map(|c| (c, c.parse::<u8>())) {
                Some((code, Ok(_))) => json!({
                    "metadata": {},
                    "status": "Failure",
                    // The client's error ("command terminated ...: <message>"), prefixed again.
                    "message": format!(
                        "command terminated with non-zero exit code: command terminated with non-zero exit code: {}",
                        field("message")
                    ),
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": code}]},
                }),
                Some((code, Err(_))) => internal_error(&format!(
                    "error stream protocol error: invalid exit code value {code:?}"
                )),
                None => internal_error("remote command exited without exit code"),
            }
        }
        "Failure" => internal_error(field("message")),
        _ => internal_error("error stream protocol error: unknown error"),
    }
}

fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// apierrors.NewInternalError(err), as json.Marshal writes its Status.
fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn v5_is_recognised_among_the_offered_protocols() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
        );
        assert!(wants_v5(&h));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v4.channel.k8s.io".parse().unwrap(),
        );
        assert!(
            !wants_v5(&h),
            "v4 (the Python client's) is relayed as it is"
        );
        h.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, V5.parse().unwrap());
        assert!(!wants_v5(&h), "not a WebSocket");
    }

    #[test]
    fn error_streams_read_as_upstream_client_reads_them() {
        assert_eq!(status_of(b""), success());
        assert_eq!(
            status_of(br#"{"metadata":{},"status":"Success"}"#),
            success()
        );
        let exit = br#"{"metadata":{},"status":"Failure","message":"error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(
            status_of(exit).to_string(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let failure =
            br#"{"metadata":{},"status":"Failure","message":"container not found (\"c\")"}"#;
        assert_eq!(
            status_of(failure).to_string(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: container not found (\"c\")","reason":"InternalError","details":{"causes":[{"message":"container not found (\"c\")"}]},"code":500}"#
        );
        let bad_code = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"300"}]}}"#;
        assert_eq!(
            status_of(bad_code)["message"],
            "Internal error occurred: error stream protocol error: invalid exit code value \"300\""
        );
        assert_eq!(status_of(b"garbage")["reason"], "InternalError");
    }
}
