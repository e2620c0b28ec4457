//! Active health checks: GET each replica's health path on an interval; the thresholds of
//! [`super::Policy`] turn verdicts into health. A check passes when the replica answers with
//! any status below 500 (a third-party server without the path answers
//! 404 and is still alive; a draining mcp-backend answers 503 on /readyz and is not).
//!
//! At a replica's first passing check (after a start or a failure) its `tools/list` is read
//! once, so that the tools declaring themselves safe to repeat are known to this process before
//! any client lists them through it: a request in flight on a replica that dies can then move
//! to another one ([`crate::route::retry_is_safe`]), whichever mcp-edge process the client used
//! for `tools/list`. At the same moment `server/discover` learns whether the replica speaks
//! 2026-07-28 (the bridge sends legacy clients' asking calls only to such replicas).

use std::{sync::Arc, time::Duration};

use mcp_protocol::{probe, version::MODERN};

use super::{Replica, Replicas};
use crate::{
    ticker::Periodic,
    tools::{KnownTools, LIST_LIMIT},
};

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
    probe::status(replica.addr, &replica.authority, path, timeout).await
}

impl HealthCheck {
    /// Probe `replicas` once, concurrently, and record each verdict.
    pub async fn check(&self, replicas: &[Arc<Replica>]) {
        let probes = replicas.iter().map(|replica| async move {
            let verdict = probe(replica, &self.path, self.timeout).await;
            let passed = matches!(verdict, Ok(status) if status < 500);
            replica.set_answering(verdict.is_ok());
            if !passed && replica.is_healthy() {
                tracing::warn!(replica = %replica.id, ?verdict, "health check failed");
            }
            if self.replicas.checked(replica, passed) {
                let (modern, pushes) = discover(replica, self.timeout).await;
                replica.set_modern(modern);
                replica.set_pushes(pushes);
                tracing::debug!(replica = %replica.id, modern, pushes, "server/discover read");
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
pub(crate) async fn list_tools(replica: &Replica, timeout: Duration) -> Result<Vec<u8>, String> {
    const BODY: &str =
        r#"{"jsonrpc":"2.0","id":"mcp-edge-tools","method":"tools/list","params":{}}"#;
    let headers = "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
                   MCP-Protocol-Version: 2025-06-18\r\n";
    let request = probe::Request {
        method: "POST",
        path: &replica.path,
        headers,
        body: BODY.as_bytes(),
    };
    let (status, body) = probe::exchange(
        replica.addr,
        &replica.authority,
        &request,
        LIST_LIMIT,
        timeout,
    )
    .await?;
    if status != 200 {
        return Err(format!("answered {status}"));
    }
    Ok(body)
}

/// Whether `server/discover` lists 2026-07-28 among the replica's supported versions, and
/// whether its capabilities declare a change it announces on listen streams (a list's
/// `listChanged`, or `resources.subscribe`).
async fn discover(replica: &Replica, timeout: Duration) -> (bool, bool) {
    const BODY: &str = r#"{"jsonrpc":"2.0","id":"mcp-edge-discover","method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"mcp-edge","version":"0"}}}}"#;
    let headers = "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
                   MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: server/discover\r\n";
    let request = probe::Request {
        method: "POST",
        path: &replica.path,
        headers,
        body: BODY.as_bytes(),
    };
    #[derive(serde::Deserialize)]
    struct Discovered {
        result: Versions,
    }
    #[derive(serde::Deserialize)]
    struct Versions {
        #[serde(rename = "supportedVersions", default)]
        supported: Vec<String>,
        #[serde(default)]
        capabilities: serde_json::Value,
    }
    let announces = |c: &serde_json::Value| {
        ["tools", "prompts", "resources"]
            .iter()
            .any(|k| c[k]["listChanged"] == true)
            || c["resources"]["subscribe"] == true
    };
    match probe::exchange(
        replica.addr,
        &replica.authority,
        &request,
        64 << 10,
        timeout,
    )
    .await
    {
        Ok((200, body)) => mcp_protocol::sse::response_json(&body)
            .and_then(|json| serde_json::from_slice::<Discovered>(&json).ok())
            .filter(|d| d.result.supported.iter().any(|v| v == MODERN))
            .map_or((false, false), |d| {
                (true, announces(&d.result.capabilities))
            }),
        _ => (false, false),
    }
}

#[async_trait::async_trait]
impl Periodic for HealthCheck {
    fn name(&self) -> &'static str {
        "replica health"
    }
    fn every(&self) -> Duration {
        self.interval
    }
    async fn tick(&self) {
        self.check(&self.replicas.all()).await;
        // Departed replicas are probed only for whether they still answer (their tasks' polls).
        let departed = self.replicas.departed();
        if !departed.is_empty() {
            let probes = departed.iter().map(|replica| async move {
                let answered = probe(replica, &self.path, self.timeout).await.is_ok();
                replica.set_answering(answered);
            });
            futures::future::join_all(probes).await;
            self.replicas.forget_silent();
        }
    }
}
