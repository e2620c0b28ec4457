//! Active health checks: GET each replica's health path on an interval; the thresholds of
//! [`super::Policy`] turn verdicts into health. A check passes when the replica answers with
//! any status below 500 (a third-party server without the path answers
//! 404 and is still alive; a draining mcp-backend answers 503 on /readyz and is not).

use std::{sync::Arc, time::Duration};

use pingora::{server::ShutdownWatch, services::background::BackgroundService};

use super::{Replica, Replicas};

#[derive(Clone)]
pub struct HealthCheck {
    pub replicas: Arc<Replicas>,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
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
            self.replicas.checked(replica, passed);
        });
        futures::future::join_all(probes).await;
    }
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
