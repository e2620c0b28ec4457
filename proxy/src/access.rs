//! The access log: one line per request, as a `tracing` event with target `access` at INFO —
//! time, MCP method, tool, protocol era, session (a short hash of its uid, never the token),
//! replica, status, latency, bytes in and out, client and error. `--access-log` picks JSON or
//! text lines (or none). Lines are collected in memory and a background thread writes them to
//! stdout in batches ([`Batched`]), so a request never waits for the write and the log costs
//! no system call per request; if stdout falls behind, lines are dropped (and the drop is
//! reported on stderr) rather than slowing traffic.

use std::{
    io::Write,
    sync::{Arc, Condvar, Mutex, OnceLock},
    time::Duration,
};

use pingora::{Error, protocols::http::ServerSession as Session};
use sha2::{Digest, Sha256};

use crate::{metrics::Request, session::SessionView};

pub const TARGET: &str = "access";

/// A short, stable name for a session in logs: 8 hex digits of SHA-256 of its uid.
pub fn session_tag(view: &SessionView) -> String {
    hex::encode(&Sha256::digest(view.uid)[..4])
}

pub fn log(session: &Session, view: Option<&SessionView>, r: &Request, error: Option<&Error>) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let session_tag = view.map(session_tag);
    let client = session.client_addr().map(|a| a.to_string());
    tracing::info!(
        target: TARGET,
        method = r.method,
        tool = r.tool,
        era = r.era,
        session = session_tag.as_deref(),
        replica = r.replica.map(|id| &**id),
        status = r.status,
        latency_us = r.elapsed.as_micros() as u64,
        bytes_in = session.body_bytes_read(),
        bytes_out = session.body_bytes_sent(),
        client = client.as_deref(),
        error = error.map(|e| e.to_string()).as_deref(),
    );
}

/// A batch is written this long after its first line (or sooner, when it reaches [`FLUSH_AT`]).
const FLUSH_EVERY: Duration = Duration::from_millis(50);
const FLUSH_AT: usize = 64 * 1024;
/// Lines beyond this many unwritten bytes are dropped.
const HELD_AT_MOST: usize = 8 << 20;

/// Access log lines waiting for the writer thread.
pub struct Batched {
    pending: Mutex<Pending>,
    wake: Condvar,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    dropped: u64,
}

/// The batch the process writes out when it exits (pingora ends it with `exit`).
static AT_EXIT: OnceLock<(Arc<Batched>, Mutex<Box<dyn Write + Send>>)> = OnceLock::new();

impl Batched {
    /// Start the writer thread for `out`; the lines still held when the process exits are
    /// written then.
    pub fn start(out: impl Write + Send + 'static) -> std::io::Result<Arc<Self>> {
        let batched = Arc::new(Self { pending: Mutex::default(), wake: Condvar::new() });
        let _ = AT_EXIT.set((batched.clone(), Mutex::new(Box::new(out))));
        extern "C" fn flush_at_exit() {
            // Not behind a writer thread stuck on a full stdout: exiting must not hang.
            if let Some((batched, out)) = AT_EXIT.get()
                && let Ok(mut out) = out.try_lock()
            {
                batched.write_out(&mut *out);
            }
        }
        // SAFETY: registers a plain function with the C runtime, called once at exit.
        unsafe { libc::atexit(flush_at_exit) };
        let writer = batched.clone();
        std::thread::Builder::new().name("mcp-edge-access-log".into()).spawn(move || writer.run())?;
        Ok(batched)
    }

    fn run(&self) {
        let Some((_, out)) = AT_EXIT.get() else { return };
        loop {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let pending = self.wake.wait_while(pending, |p| p.lines.is_empty()).unwrap_or_else(|e| e.into_inner());
            let (pending, _) =
                self.wake.wait_timeout_while(pending, FLUSH_EVERY, |p| p.lines.len() < FLUSH_AT).unwrap_or_else(|e| e.into_inner());
            drop(pending);
            self.write_out(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// Write what is held (the writer thread, or the exit handler).
    fn write_out(&self, out: &mut impl Write) {
        let (lines, dropped) = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut pending.lines), std::mem::take(&mut pending.dropped))
        };
        if dropped > 0 {
            tracing::warn!("access log: {dropped} lines dropped, stdout did not keep up");
        }
        let _ = out.write_all(&lines).and_then(|()| out.flush());
    }

    fn append(&self, line: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.lines.len() + line.len() > HELD_AT_MOST {
            pending.dropped += 1;
            return;
        }
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        // Only a batch's first line, or a full batch, needs the writer's attention.
        let full = pending.lines.len() >= FLUSH_AT && pending.lines.len() - line.len() < FLUSH_AT;
        drop(pending);
        if was_empty || full {
            self.wake.notify_one();
        }
    }
}

/// What `tracing`'s formatter writes each line into.
#[derive(Clone)]
pub struct LineWriter(pub Arc<Batched>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LineWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_held_until_the_writer_takes_them_and_drop_beyond_the_limit() {
        let batched = Batched { pending: Mutex::default(), wake: Condvar::new() };
        batched.append(b"one\n");
        batched.append(b"two\n");
        let mut out = Vec::new();
        batched.write_out(&mut out);
        assert_eq!(out, b"one\ntwo\n");
        assert!(batched.pending.lock().unwrap().lines.is_empty());
        let big = vec![b'x'; HELD_AT_MOST];
        batched.append(&big);
        batched.append(b"three\n");
        assert_eq!(batched.pending.lock().unwrap().dropped, 1);
    }
}
