//! Active health checks: GET each replica's health path on an interval; the thresholds of
//! [`super::Policy`] turn verdicts into health. A check passes when the replica answers with
//! any status below 500 (a third-party server without the path answers
//! 404 and is still alive; a draining mcp-backend answers 503 on /readyz and is not).
//!
//! At a replica's first passing check (after a start or a failure) its `tools/list` is read
//! once, so that the tools declaring themselves safe to repeat are known to this process before
//! any client lists them through it: a request in flight on a replica that dies can then move
//! to another one ([`crate::route::retry_is_safe`]), whichever mcp-edge process the client used
//! for `tools/list`.

use std::{sync::Arc, time::Duration};

use pingora::{server::ShutdownWatch, services::background::BackgroundService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Replica, Replicas};
use crate::tools::{KnownTools, LIST_LIMIT};

#[derive(Clone)]
pub struct HealthCheck {
    pub replicas: Arc<Replicas>,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Where the annotations read from each replica's `tools/list` go.
    pub tools: Arc<KnownTools>,
}

/// One probe: `Ok(status)` or why it failed.
pub async fn probe(replica: &Replica, path: &str, timeout: Duration) -> Result<u16, String> {
    mcp_backend::probe::status(replica.addr, &replica.authority, path, timeout).await
}

impl HealthCheck {
    /// Probe `replicas` once, concurrently, and record each verdict.
    pub async fn check(&self, replicas: &[Arc<Replica>]) {
        let probes = replicas.iter().map(|replica| async move {
            let verdict = probe(replica, &self.path, self.timeout).await;
            let passed = matches!(verdict, Ok(status) if status < 500);
            if !passed && replica.is_healthy() {
                tracing::warn!(replica = %replica.id, ?verdict, "health check failed");
            }
            if self.replicas.checked(replica, passed) {
                match list_tools(replica, self.timeout).await {
                    Ok(body) => {
                        let tools = self.tools.learn(&body);
                        tracing::debug!(replica = %replica.id, tools, "tools/list read");
                    }
                    // A server that needs a session for it, or is not MCP at this path.
                    Err(e) => tracing::debug!(replica = %replica.id, "tools/list not read: {e}"),
                }
            }
        });
        futures::future::join_all(probes).await;
    }
}

/// One stateless legacy `tools/list` to the replica's MCP path: the response body (JSON, or the
/// SSE stream carrying it), at most [`LIST_LIMIT`] bytes.
async fn list_tools(replica: &Replica, timeout: Duration) -> Result<Vec<u8>, String> {
    const BODY: &str =
        r#"{"jsonrpc":"2.0","id":"mcp-edge-tools","method":"tools/list","params":{}}"#;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(replica.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             MCP-Protocol-Version: 2025-06-18\r\nUser-Agent: mcp-edge\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{BODY}",
            replica.path,
            replica.authority,
            BODY.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(LIST_LIMIT as u64)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))??;
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete response head")?;
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(format!("answered {}", head.lines().next().unwrap_or("")));
    }
    let body = &response[end + 4..];
    Ok(if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    })
}

/// The data of a chunked HTTP/1.1 body (what arrived of it).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|&n| n > 0) else {
            break;
        };
        let start = line_end + 2;
        let Some(chunk) = body.get(start..start + size) else {
            out.extend_from_slice(&body[start.min(body.len())..]);
            break;
        };
        out.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    out
}

#[async_trait::async_trait]
impl BackgroundService for HealthCheck {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {}
            }
            self.check(&self.replicas.all()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_joined() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(dechunk(b"5\r\nhel"), b"hel", "what arrived of a cut chunk");
        assert_eq!(dechunk(b""), b"");
    }
}
