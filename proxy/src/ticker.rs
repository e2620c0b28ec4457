//! One ticker for the periodic work of the process: the health checks, DNS discovery, the
//! session sweep and the rate limiter's sweep are each a [`Periodic`] job; [`Ticker`] runs them
//! as one pingora service, each job on its own task with its own interval (a slow DNS lookup
//! never delays a health check), all ending when the server shuts down.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use pingora::{server::ShutdownWatch, services::background::BackgroundService};

/// Work done every [`Periodic::every`].
#[async_trait]
pub trait Periodic: Send + Sync {
    /// For logs.
    fn name(&self) -> &'static str;
    fn every(&self) -> Duration;
    async fn tick(&self);
}

/// The jobs, run until shutdown.
#[derive(Default)]
pub struct Ticker {
    jobs: Vec<Arc<dyn Periodic>>,
}

impl Ticker {
    pub fn add(&mut self, job: impl Periodic + 'static) {
        self.jobs.push(Arc::new(job));
    }
}

#[async_trait]
impl BackgroundService for Ticker {
    async fn start(&self, shutdown: ShutdownWatch) {
        let tasks: Vec<_> = self
            .jobs
            .iter()
            .map(|job| tokio::spawn(run(job.clone(), shutdown.clone())))
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// One job: a tick at once, then every interval (a tick that overran delays the next one
/// rather than bunching them), until shutdown.
async fn run(job: Arc<dyn Periodic>, mut shutdown: ShutdownWatch) {
    let mut ticker = tokio::time::interval(job.every());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!(job = job.name(), every = ?job.every(), "periodic job started");
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {}
        }
        job.tick().await;
    }
}
