//! The log backend (`--audit-log-path`): events as JSON, one per line, written by a thread of its own
//! so a request never waits on the disk.
//!
//! Requests hand events over a bounded queue and never block: when the queue is full the event is
//! dropped and an error logged, as upstream's `batch` mode does ("audit buffer queue blocked"); upstream's
//! default `blocking` mode would instead hold the request. A write that fails is logged and the server
//! keeps serving. The writer writes whole lines whenever the queue runs empty, so the file is current
//! within moments of a request's end.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use super::event::Event;

/// Events waiting for the writer (upstream's `--audit-log-batch-buffer-size` default).
const QUEUE: usize = 10_000;

/// Where events go.
pub struct Sink {
    queue: SyncSender<Event>,
}

impl Sink {
    /// Opens `path` (`-`: standard output) for appending, creating it (mode 0600, as upstream's log
    /// file) and its folder, and starts the writer.
    pub fn open(path: &str) -> Result<Sink, String> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            let path = std::path::Path::new(path);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating audit log folder {}: {e}", dir.display()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            Box::new(
                options
                    .open(path)
                    .map_err(|e| format!("opening audit log {}: {e}", path.display()))?,
            )
        };
        let (queue, events) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_events(events, out))
            .map_err(|e| format!("starting the audit log writer: {e}"))?;
        Ok(Sink { queue })
    }

    /// Queues `event`; drops it (with an error in the server's log) when the writer is behind.
    pub fn send(&self, event: Event) {
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(e)) => {
                tracing::error!(audit_id = %e.audit_id, "audit buffer queue blocked: event dropped")
            }
            Err(TrySendError::Disconnected(e)) => {
                tracing::error!(audit_id = %e.audit_id, "audit log writer stopped: event dropped")
            }
        }
    }
}

/// A batch is written once it holds this much, even while more events are queued.
const BATCH_BYTES: usize = 256 * 1024;

/// Writes whole lines only: each batch of events is serialized into memory and handed to the file
/// in one `write_all`, so a reader tailing the log never sees half an event (a `BufWriter` would
/// flush wherever its buffer happens to fill, mid-line).
fn write_events(events: Receiver<Event>, mut out: impl Write) {
    let mut failing = false;
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    while let Ok(first) = events.recv() {
        let mut next = Some(first);
        while let Some(event) = next {
            let line = batch.len();
            match serde_json::to_writer(&mut batch, &event) {
                Ok(()) => batch.push(b'\n'),
                Err(e) => {
                    batch.truncate(line);
                    report(&mut failing, Err(e.into()));
                }
            }
            if batch.len() >= BATCH_BYTES {
                report(&mut failing, write_batch(&mut out, &mut batch));
            }
            next = events.try_recv().ok();
        }
        report(&mut failing, write_batch(&mut out, &mut batch));
    }
}

fn write_batch(out: &mut impl Write, batch: &mut Vec<u8>) -> std::io::Result<()> {
    let written = out.write_all(batch).and_then(|()| out.flush());
    batch.clear();
    written
}

/// Logs the first failure of a run of failures (not one line per event while the disk is full).
fn report(failing: &mut bool, result: std::io::Result<()>) {
    match result {
        Ok(()) => *failing = false,
        Err(e) if !*failing => {
            *failing = true;
            tracing::error!("writing the audit log failed: {e}");
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::audit::event::UserInfo;
    use crate::apiserver::audit::policy::{Level, Stage};

    /// Records each `write` call, as a reader polling the file would see them land.
    #[derive(Default)]
    struct Writes(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            // At most 100 KiB per call, as a short write would split a large batch.
            let n = buf.len().min(100 * 1024);
            self.0.lock().unwrap().push(buf[..n].to_vec());
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event(id: usize, size: usize) -> Event {
        Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: Level::RequestResponse,
            audit_id: id.to_string(),
            stage: Stage::ResponseComplete,
            request_uri: "/api/v1/configmaps".into(),
            verb: "list".into(),
            user: UserInfo::default(),
            impersonated_user: None,
            source_ips: vec![],
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: Some(serde_json::Value::String("x".repeat(size))),
            response_object: None,
            request_received_timestamp: String::new(),
            stage_timestamp: String::new(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn batches_hold_whole_lines() {
        let (queue, events) = sync_channel(QUEUE);
        for id in 0..20 {
            queue.send(event(id, 40 * 1024)).unwrap();
        }
        drop(queue);
        let writes = Writes::default();
        let seen = writes.0.clone();
        write_events(events, writes);
        let all: Vec<u8> = seen.lock().unwrap().concat();
        let lines: Vec<_> = all
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 20);
        for line in lines {
            serde_json::from_slice::<serde_json::Value>(line).unwrap();
        }
        // 20 events of 40 KiB are more than one batch: the file grew in several writes, and the
        // content so far ended on a line's end after each batch.
        let sizes: Vec<usize> = seen.lock().unwrap().iter().map(Vec::len).collect();
        assert!(sizes.len() > 1, "{sizes:?}");
        let mut so_far = 0;
        let mut batch_ends = 0;
        for w in seen.lock().unwrap().iter() {
            so_far += w.len();
            if all[so_far - 1] == b'\n' {
                batch_ends += 1;
            }
        }
        assert!(batch_ends >= 2, "{sizes:?}");
    }
}
