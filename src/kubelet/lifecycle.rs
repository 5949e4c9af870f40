//! Container lifecycle hooks and termination messages, as upstream's kubelet runs them
//! (pkg/kubelet/lifecycle's handler runner and kuberuntime's startContainer / killContainer /
//! getTerminationMessage).
//!
//! - `postStart` runs right after the container starts; the worker waits for it. When it fails the
//!   container is killed, a `FailedPostStartHook` event is recorded, and the container waits with
//!   reason `PostStartHookError` until its restart policy restarts it.
//! - `preStop` runs before a container is stopped (deletion, a failed liveness probe), within the
//!   grace period: what it used is taken off the grace left for the stop, never below 2 s.
//! - A container's `terminationMessagePath` (default `/dev/termination-log`) is a file the kubelet
//!   mounts; what the container wrote there (at most 4096 bytes) becomes its terminated state's
//!   `message`; with `FallbackToLogsOnError`, a failed container with an empty file gets the tail of
//!   its log instead (80 lines, 2048 bytes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use kube::ResourceExt;

use super::pod_workers::Kubelet;

/// Upstream's minimumGracePeriodInSeconds: what a stop keeps after a preStop hook.
const MIN_GRACE_AFTER_HOOK: i64 = 2;
/// Upstream's MaxContainerTerminationMessageLength.
const MAX_MESSAGE: usize = 4096;
/// Upstream's MaxContainerTerminationMessageLogLines / LogLength.
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;
/// The annotations that carry a container's termination message settings to its runtime record
/// (upstream's `io.kubernetes.container.terminationMessagePath|Policy`).
pub const ANNOTATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const ANNOTATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";

/// Runs one hook handler in container `id`; `Err` is upstream's message for a failed hook.
pub async fn run(
    kubelet: &Kubelet,
    pod: &Pod,
    c: &Container,
    id: &str,
    handler: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    let pod_desc = format!(
        "{}_{}({})",
        pod.name_any(),
        pod.namespace().unwrap_or_default(),
        pod.uid().unwrap_or_default()
    );
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let failed = |error: String, output: String| {
            format!(
                "Exec lifecycle hook ({cmd:?}) for Container {:?} in Pod {pod_desc:?} failed - error: {error}, message: {output:?}",
                c.name
            )
        };
        return match kubelet.cri.exec_sync(id, cmd.clone(), timeout).await {
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) => {
                let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
                output.push_str(&String::from_utf8_lossy(&out.stderr));
                Err(failed(
                    format!("command '{}' exited with {}", cmd.join(" "), out.exit_code),
                    output,
                ))
            }
            Err(e) => Err(failed(e.to_string(), String::new())),
        };
    }
    if let Some(h) = &handler.http_get {
        let host = match &h.host {
            Some(host) if !host.is_empty() => host.clone(),
            _ => pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_else(|| "127.0.0.1".into()),
        };
        let port = super::probes::named_port(c, &h.port)?;
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let headers = super::probes::header_pairs(h);
        let failed = |e: String| {
            format!(
                "HTTP lifecycle hook ({path}) for Container {:?} in Pod {pod_desc:?} failed - error: {e}",
                c.name
            )
        };
        return match tokio::time::timeout(
            timeout,
            super::probe_client::http_get(
                &host,
                port,
                &path,
                &headers,
                h.scheme.as_deref() == Some("HTTPS"),
            ),
        )
        .await
        {
            Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
            Ok(Ok(code)) => Err(failed(format!("HTTP hook returned status code {code}"))),
            Ok(Err(e)) => Err(failed(e)),
            Err(_) => Err(failed("context deadline exceeded".into())),
        };
    }
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
        return Ok(());
    }
    // tcpSocket is accepted by the API but never run as a hook, as upstream.
    Ok(())
}

/// Runs `c`'s preStop hook (if any) before its container `id` is stopped with `grace` seconds, and
/// returns the grace left for the stop. A failed hook is recorded as `FailedPreStopHook`.
pub async fn pre_stop(kubelet: &Kubelet, pod: &Pod, c: &Container, id: &str, grace: i64) -> i64 {
    let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
        return grace;
    };
    if grace <= 0 {
        return grace;
    }
    let began = Instant::now();
    let limit = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
    match tokio::time::timeout(limit, run(kubelet, pod, c, id, handler, limit)).await {
        Ok(Ok(())) => {}
        Ok(Err(message)) => {
            kubelet
                .event(
                    pod,
                    kube::runtime::events::EventType::Warning,
                    "FailedPreStopHook",
                    message,
                )
                .await;
        }
        Err(_) => tracing::info!(
            "kubelet: preStop hook of {} did not finish within {grace}s",
            c.name
        ),
    }
    let used = i64::try_from(began.elapsed().as_secs()).unwrap_or(i64::MAX);
    (grace - used).max(MIN_GRACE_AFTER_HOOK)
}

/// The host file mounted at a container's terminationMessagePath for this attempt (empty, made
/// here), or `None` when the container sets no path.
pub fn message_file(
    pod_dir: &Path,
    c: &Container,
    attempt: u32,
) -> std::io::Result<Option<(PathBuf, String)>> {
    let path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    if path.is_empty() {
        return Ok(None);
    }
    let dir = pod_dir.join("containers").join(&c.name);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("termination-log-{attempt}"));
    std::fs::write(&file, b"")?;
    Ok(Some((file, path)))
}

/// The terminated state's message of an exited container: its termination message file (at most
/// 4096 bytes), else, under `FallbackToLogsOnError` and a non-zero exit, the tail of its log.
pub fn termination_message(
    status: &k8s_cri::v1::ContainerStatus,
    log_path: &str,
) -> Option<String> {
    let path = status.annotations.get(ANNOTATION_MESSAGE_PATH)?;
    let from_file = status
        .mounts
        .iter()
        .find(|m| &m.container_path == path)
        .and_then(|m| std::fs::read(&m.host_path).ok())
        .map(|mut b| {
            b.truncate(MAX_MESSAGE);
            String::from_utf8_lossy(&b).into_owned()
        })
        .unwrap_or_default();
    let fallback = status
        .annotations
        .get(ANNOTATION_MESSAGE_POLICY)
        .map(String::as_str)
        == Some("FallbackToLogsOnError");
    if !from_file.is_empty() || !fallback || status.exit_code == 0 {
        return Some(from_file).filter(|m| !m.is_empty());
    }
    let log = std::fs::read_to_string(log_path).ok()?;
    Some(log_tail(&log)).filter(|m| !m.is_empty())
}

/// The last 80 lines of a CRI log (its text only), at most 2048 bytes, ending at a line boundary.
fn log_tail(log: &str) -> String {
    let mut text = String::new();
    for line in log.lines() {
        let mut parts = line.splitn(4, ' ');
        let (_ts, _stream, tag, body) = (parts.next(), parts.next(), parts.next(), parts.next());
        text.push_str(body.unwrap_or(""));
        if tag != Some("P") {
            text.push('\n');
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(FALLBACK_LINES)..].join("\n");
    if !tail.is_empty() {
        tail.push('\n');
    }
    if tail.len() > FALLBACK_BYTES {
        let mut cut = tail.len() - FALLBACK_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = tail[cut..].to_string();
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_end() {
        let log: String = (1..=100)
            .map(|i| format!("2026-12-05T00:00:00Z stdout F line {i}\n"))
            .collect();
        let tail = log_tail(&log);
        assert!(tail.starts_with("line 21\n"), "{tail}");
        assert!(tail.ends_with("line 100\n"));
        let long = format!("2026-12-05T00:00:00Z stderr F {}\n", "x".repeat(5000));
        assert_eq!(log_tail(&long).len(), FALLBACK_BYTES);
        assert_eq!(log_tail("T stdout P part\nT stdout F ial\n"), "partial\n");
    }

    #[test]
    fn termination_message_from_the_file_else_the_log() {
        let dir = std::env::temp_dir().join(format!("rkube-termmsg-{}", std::process::id()));
        let c = Container {
            name: "c".into(),
            ..Default::default()
        };
        let (file, path) = message_file(&dir, &c, 0).unwrap().unwrap();
        assert_eq!(path, "/dev/termination-log");
        let log = dir.join("log");
        std::fs::write(&log, "T stderr F boom\n").unwrap();
        let mut status = k8s_cri::v1::ContainerStatus {
            exit_code: 1,
            mounts: vec![k8s_cri::v1::Mount {
                container_path: path.clone(),
                host_path: file.to_string_lossy().into_owned(),
                ..Default::default()
            }],
            ..Default::default()
        };
        status
            .annotations
            .insert(ANNOTATION_MESSAGE_PATH.into(), path.clone());
        let log = log.to_string_lossy().into_owned();
        assert_eq!(
            termination_message(&status, &log),
            None,
            "File policy, empty"
        );
        status.annotations.insert(
            ANNOTATION_MESSAGE_POLICY.into(),
            "FallbackToLogsOnError".into(),
        );
        assert_eq!(
            termination_message(&status, &log).as_deref(),
            Some("boom\n")
        );
        std::fs::write(&file, "written by the app").unwrap();
        assert_eq!(
            termination_message(&status, &log).as_deref(),
            Some("written by the app")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
