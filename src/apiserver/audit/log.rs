//! The log backend (`--audit-log-path`): events as JSON, one per line, written by a thread of its own
//! so a request never waits on the disk.
//!
//! Requests hand events over a bounded queue and never block: when the queue is full the event is
//! dropped and an error logged, as upstream's `batch` mode does ("audit buffer queue blocked"); upstream's
//! default `blocking` mode would instead hold the request. A write that fails is logged and the server
//! keeps serving. The writer flushes whenever the queue runs empty, so the file is current within
//! moments of a request's end.

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
            .spawn(move || write_events(events, std::io::BufWriter::new(out)))
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

fn write_events(events: Receiver<Event>, mut out: impl Write) {
    let mut failing = false;
    while let Ok(first) = events.recv() {
        let mut next = Some(first);
        while let Some(event) = next {
            let written = serde_json::to_writer(&mut out, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            report(&mut failing, written);
            next = events.try_recv().ok();
        }
        let flushed = out.flush();
        report(&mut failing, flushed);
    }
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
