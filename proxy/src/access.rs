//! The access log: one line per request, as a `tracing` event with target `access` at INFO —
//! time, MCP method, tool, protocol era, session (a short hash of its uid, never the token),
//! replica, status, latency, bytes in and out, client and error. `--access-log` picks JSON or
//! text lines (or none); they go to stdout through a non-blocking writer, so the request never
//! waits for the write (lines are dropped, and counted, if the writer falls behind).

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
