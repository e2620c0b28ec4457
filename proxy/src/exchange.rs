//! The exchange phase: one attempt after another until a replica's response head arrives. The
//! one loop every upstream attempt goes through: a plain or sticky request, a task's poll, a
//! bridged call's round (each [`Choice`] of replica is part of the [`Plan`]).
//!
//! ```text
//! choose ─ the plan's Choice: the sticky target if healthy (a task's: if it answers, in the
//!   │       set or departed), else the next healthy replica not tried yet (for a bridged
//!   │       round: one that speaks 2026-07-28)
//!   └─ none → route::no_replica (503; 404 for a session whose owner is gone, -32602 for a task)
//! connect ─ a pooled connection of this worker thread, or a new one
//!   └─ Err → route::after_failure(Connect)
//! upstream::attempt::send ─ head and body in one write, the response head read
//!   ├─ the client closed its connection meanwhile → the replica's connection is dropped
//!   └─ Err → route::after_failure(Exchange): same replica, another one, or the answer
//! ```
//!
//! Every decision is `route`'s; this module only carries it out and counts it (retries and
//! ejections).

use std::sync::Arc;

use bytes::Bytes;

use pingora::http::RequestHeader;

use crate::{
    answer::Stop,
    downstream::client::Client,
    route::{self, Attempt, Next, Stage},
    session::{ReplicaId, SessionView},
    telemetry::metrics::{Event, Metrics},
    upstream::{
        Replica, Replicas,
        attempt::{self, Response, Rewrite, Timeouts},
        pool::Pool,
    },
};

/// What the exchange phase needs of the process (shared by every request).
pub struct Upstream {
    pub replicas: Arc<Replicas>,
    pub pool: Pool,
    pub timeouts: Timeouts,
    pub metrics: Arc<Metrics>,
}

/// Which replicas a request may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<'a> {
    /// The next healthy replica, round robin.
    Any,
    /// This replica while it is healthy (a stream's, a stateful session's).
    Pinned(&'a ReplicaId),
    /// This task's replica while it answers, in the set or departed.
    Task(&'a ReplicaId),
    /// The next healthy replica that speaks 2026-07-28 (any healthy one with `--bridge on`):
    /// a bridged call's round.
    Modern { any: bool },
}

/// One request as the exchange phase sends it.
pub struct Plan<'a> {
    pub choice: Choice<'a>,
    /// What `route::after_failure` weighs (safe, pinned, owned).
    pub attempt: Attempt,
    pub body: &'a Bytes,
    /// The request head to send; `None`: the client's (a bridged round sends one of its own).
    pub head: Option<&'a RequestHeader>,
    /// How the request changes for a replica, given its authority and path.
    pub rewrite: Rewrite<'a>,
    /// The replica's path instead of its MCP path (`GET /version`).
    pub path: Option<&'a str>,
}

impl<'a> Plan<'a> {
    /// An MCP request: to `target` or round robin — for a `task` of the target, the replica's
    /// own id for it, while the replica answers — in the session `view` (its stateful owner
    /// gets its own session id; the session's version is added), resuming `last_event_id`.
    pub fn new(
        body: &'a Bytes,
        (target, task): (Option<&'a ReplicaId>, Option<&'a str>),
        view: Option<&'a SessionView>,
        last_event_id: Option<&'a str>,
    ) -> Self {
        let owner = view.and_then(|v| v.owner.as_ref());
        let task = task.filter(|_| target.is_some());
        Plan {
            choice: match (target, task) {
                (Some(id), Some(_)) => Choice::Task(id),
                (Some(id), None) => Choice::Pinned(id),
                (None, _) => Choice::Any,
            },
            attempt: Attempt {
                owned: owner.is_some_and(|o| Some(&o.replica) == target),
                pinned: target.is_some(),
                task: task.is_some(),
                ..Attempt::default()
            },
            body,
            head: None,
            rewrite: Rewrite {
                session_id: owner.map(|owner| owner.session_id.as_str()),
                version: view.map(|view| view.version.as_str()),
                last_event_id,
                name: task,
                ..Rewrite::default()
            },
            path: None,
        }
    }

    /// A request that is not MCP (`GET /version`): no session, no body; any replica may answer,
    /// and another if it broke.
    pub fn version(body: &'a Bytes, path: &'a str) -> Self {
        Plan {
            choice: Choice::Any,
            attempt: Attempt {
                safe: true,
                ..Attempt::default()
            },
            body,
            head: None,
            rewrite: Rewrite::default(),
            path: Some(path),
        }
    }
}

/// Send the request until a replica answers (`Stop::Broken`: the client closed its
/// connection). `chosen` is the replica last tried (metrics and the access log name it, whether
/// it answered or failed).
pub async fn run(
    upstream: &Upstream,
    client: &mut Client<'_>,
    plan: &Plan<'_>,
    chosen: &mut Option<Arc<Replica>>,
) -> Result<Response, Stop> {
    client.abort_on_close();
    // The replicas that failed this request (nothing is allocated unless one does).
    let mut tried: Vec<ReplicaId> = Vec::new();
    let mut attempt = plan.attempt;
    let mut same = false;
    // A retry is counted when the request is sent again, not when a failure would allow one
    // that finds no replica.
    let mut again = false;
    loop {
        let replica = match (same, &*chosen) {
            (true, Some(replica)) => replica.clone(),
            _ => {
                let next = match plan.choice {
                    Choice::Task(id) => upstream.replicas.home(id),
                    Choice::Pinned(id) => upstream.replicas.get(id).filter(|r| r.is_healthy()),
                    Choice::Any => upstream.replicas.pick(&tried, |_| true),
                    Choice::Modern { any } => {
                        upstream.replicas.pick(&tried, |r| any || r.is_modern())
                    }
                };
                let Some(replica) = next else {
                    return Err(Stop::Answer(route::no_replica(&attempt)));
                };
                *chosen = Some(replica.clone());
                replica
            }
        };
        if again {
            upstream.metrics.count(Event::Retry);
        }
        again = true;
        attempt.fresh_retry = same;
        let peer = upstream.timeouts.peer(&replica);
        let (stage, error) = match upstream.pool.get(&peer, replica.addr).await {
            Err(e) => (Stage::Connect, e),
            Ok((stream, reused)) => {
                attempt.reused = reused;
                let rewrite = Rewrite {
                    authority: &replica.authority,
                    path: plan.path.unwrap_or(&replica.path),
                    ..plan.rewrite
                };
                let head = plan.head.unwrap_or(client.header());
                let wire = attempt::request_to_wire(head, &rewrite, plan.body);
                let sent = attempt::send(stream, &wire, &peer, upstream.timeouts.first_byte);
                match client.unless_gone(sent).await {
                    // Dropping the replica's connection tells it the request is cancelled.
                    Err(gone) => return Err(Stop::Broken(gone)),
                    Ok(Ok(response)) => {
                        upstream.replicas.succeeded(&replica);
                        return Ok(response);
                    }
                    Ok(Err(e)) => (Stage::Exchange, e),
                }
            }
        };
        let (next, counts) = route::after_failure(&attempt, stage, error);
        if counts && upstream.replicas.failed(&replica) {
            upstream.metrics.count(Event::Ejection);
        }
        match next {
            Next::Answer(failure) => return Err(Stop::Answer(failure)),
            Next::SameReplica => same = true,
            Next::OtherReplica => {
                tried.push(replica.id.clone());
                same = false;
            }
        }
    }
}
