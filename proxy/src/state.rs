//! What the whole process shares: the tables and counters the edge, the admin listener, the
//! lifecycle watch and the periodic jobs all reach, built once by [`crate::app`] from the flags
//! and handed to each as the same value. A clone clones handles (each part is an `Arc`), never
//! the state.

use std::sync::Arc;

use crate::{
    bridge::Bridges,
    inflight::{Owners, Streams},
    push::Push,
    session::{Sessions, peers::Peers},
    tasks::TaskCounts,
    telemetry::metrics::Metrics,
    tools::KnownTools,
    upstream::Replicas,
};

#[derive(Clone)]
pub struct State {
    /// The replica set: health, ejections, round robin.
    pub replicas: Arc<Replicas>,
    /// Legacy sessions: the key ring, the idle and revocation tables.
    pub sessions: Arc<Sessions>,
    /// Which replica streams which request, and asked which question.
    pub owners: Arc<Owners>,
    /// SSE streams open, against their limits.
    pub streams: Arc<Streams>,
    /// What `tools/list` taught.
    pub tools: Arc<KnownTools>,
    pub metrics: Arc<Metrics>,
    /// Bridged calls waiting here.
    pub bridges: Arc<Bridges>,
    /// The fan-out: one listen per replica, and its listeners.
    pub push: Arc<Push>,
    pub tasks: Arc<TaskCounts>,
    /// The other mcp-edge processes.
    pub peers: Arc<Peers>,
}
