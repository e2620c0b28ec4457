//! Active health checks: GET each replica's health path on an interval. A replica is healthy
//! when it answers with any status below 500 (a third-party server without the path answers
//! 404 and is still alive; a draining mcp-backend answers 503 on /readyz and is not).

use std::{sync::Arc, time::Duration};

use pingora::{server::ShutdownWatch, services::background::BackgroundService};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{Replica, Replicas};

pub struct HealthCheck {
    pub replicas: Arc<Replicas>,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// One probe: `Ok(status)` or why it failed.
pub async fn probe(replica: &Replica, path: &str, timeout: Duration) -> Result<u16, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(replica.addr).await.map_err(|e| format!("connect: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: mcp-edge-health\r\n\r\n", replica.authority);
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed before a status line".to_owned());
            }
            read += n;
        }
        let line = std::str::from_utf8(&head[..read]).map_err(|_| "status line is not text".to_owned())?;
        line.get(9..12).and_then(|s| s.parse::<u16>().ok()).ok_or_else(|| format!("bad status line {line:?}"))
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| format!("no answer within {timeout:?}"))?
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
            let probes = self.replicas.all().iter().map(|replica| async move {
                let verdict = probe(replica, &self.path, self.timeout).await;
                let healthy = matches!(verdict, Ok(status) if status < 500);
                if !healthy && replica.is_healthy() {
                    tracing::warn!(replica = %replica.id, ?verdict, "health check failed");
                }
                self.replicas.set_health(replica, healthy);
            });
            futures::future::join_all(probes).await;
        }
    }
}
