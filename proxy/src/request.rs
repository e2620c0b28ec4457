//! One request's state as it passes the phases ([`Ctx`]: its labels, session, guards and the
//! replica that served it), and the live lookups the pure decisions consult: [`Live`] for
//! `route`, [`Found`] for what the relay policy finds in a response.

use std::{sync::Arc, time::Instant};

use mcp_protocol::{Kind, Message, methods};
use pingora::Error;

use crate::{
    answer::Failure,
    auth::Identity,
    bridge::Bridges,
    budget::Limit,
    downstream::client::Client,
    inflight::{Owners, Scope, Stream, Streaming},
    relay::Chunk,
    route,
    session::{Owner, Profile, ReplicaId, SessionView, Sessions, Uid},
    tasks::TaskCounts,
    telemetry::{
        access::{AccessLog, Bridged},
        metrics::{self, Event, Metrics},
    },
    tools::KnownTools,
    upstream::{Replica, Replicas},
};

/// Per-request state.
pub struct Ctx {
    /// When the request's headers were read (metrics, access log).
    pub started: Instant,
    /// Labels for metrics and the access log.
    pub method: &'static str,
    pub tool: Option<String>,
    /// Whether a replica listed the tool in `tools/list` (a metric label of its own).
    pub tool_listed: bool,
    pub era: &'static str,
    /// Raw JSON text of the request id.
    pub id: Option<String>,
    /// The body is a JSON-RPC request (not a notification, response or batch).
    pub is_request: bool,
    pub identity: Option<Identity>,
    /// The client's address (rate limits, the scope of in-flight keys, the access log).
    pub addr: Option<std::net::SocketAddr>,
    /// The session token the client sent, when it names a live session.
    pub token: Option<String>,
    pub session: Option<SessionView>,
    /// Who the request's share of the global caps belongs to (`budget::caller`).
    pub caller: Option<crate::budget::Caller>,
    /// The scope of in-flight keys: the session uid, or the client connection.
    pub scope: Scope,
    /// The replica last tried (it answered, or it failed).
    pub replica: Option<Arc<Replica>>,
    /// An SSE response being relayed, counted against the stream limits.
    pub stream: Option<Stream>,
    /// This request's stream, recorded for a cancel to find its replica.
    pub streaming: Option<Streaming>,
    /// A legacy `initialize`'s client profile, sealed into the session it starts.
    pub profile: Profile,
    /// A bridged call's rounds and replicas (the access log).
    pub bridged: Option<Box<Bridged>>,
}

impl Ctx {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            method: "none",
            tool: None,
            tool_listed: false,
            era: "unknown",
            id: None,
            is_request: false,
            identity: None,
            addr: None,
            token: None,
            session: None,
            caller: None,
            scope: Scope::Unknown,
            replica: None,
            stream: None,
            streaming: None,
            profile: Profile::default(),
            bridged: None,
        }
    }

    /// What sessions are bound to: the caller's credential, or nothing without authentication.
    pub fn identity(&self) -> &[u8] {
        self.identity.as_ref().map_or(&[], |id| &id[..])
    }

    /// The labels of a classified body (metrics, the access log), its id and kind.
    pub fn label(&mut self, m: &Message<'_>) {
        self.method = match m.kind {
            Kind::Response => "response",
            Kind::Batch => "batch",
            _ => methods::label(m.method.as_deref()),
        };
        if m.is("tools/call") {
            self.tool = m.name.as_deref().map(str::to_owned);
        }
        self.is_request = m.kind == Kind::Request;
        self.id = m.id.map(str::to_owned);
    }

    /// The id of the request a broken stream was answering (its last event names it).
    pub fn streamed_request(&self) -> Option<&str> {
        self.id
            .as_deref()
            .filter(|_| self.stream.is_some() && self.is_request)
    }

    /// The log phase, however the request ended: what it held in flight is released (the
    /// guards), then metrics and the access log.
    pub fn finish(
        &mut self,
        client: &Client<'_>,
        e: Option<&Error>,
        metrics: &Metrics,
        access: Option<&AccessLog>,
    ) {
        self.streaming = None;
        self.stream = None;
        if e.is_some_and(|e| {
            e.esource() == &pingora::ErrorSource::Downstream
                && e.etype() == &pingora::ErrorType::WriteTimedout
        }) {
            metrics.spent.count(Limit::SendTime);
        }
        let traffic = client.traffic();
        let request = metrics::Request {
            method: self.method,
            tool: self.tool.as_deref(),
            listed: self.tool_listed,
            era: self.era,
            status: traffic.status,
            replica: self.replica.as_ref().map(|r| &r.id),
            elapsed: self.started.elapsed(),
        };
        metrics.request(&request);
        if let Some(access) = access {
            let bridged = self.bridged.as_deref();
            access.log(
                &traffic,
                self.addr,
                self.session.as_ref(),
                &request,
                bridged,
                e,
            );
        }
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}

/// Lookups for [`route::decide`], scoped to this request.
pub struct Live<'a> {
    pub owners: &'a Owners,
    pub replicas: &'a Replicas,
    pub tools: &'a KnownTools,
    pub bridges: &'a Bridges,
    pub push: &'a crate::push::Push,
    /// The request's live session.
    pub session: Option<Uid>,
    pub scope: Scope,
}

impl route::Facts for Live<'_> {
    fn streaming_owner(&self, id: &str) -> Option<ReplicaId> {
        self.owners.streaming_owner(&self.scope.key(), id)
    }
    fn answer_owner(&self, id: &str) -> Option<ReplicaId> {
        self.owners.answer_owner(&self.scope.key(), id)
    }
    fn is_alive(&self, replica: &str) -> bool {
        self.replicas.is_alive(replica)
    }
    fn bridge_ready(&self) -> bool {
        self.bridges.ready(self.replicas)
    }
    fn bridged(&self, id: &str) -> bool {
        self.session
            .is_some_and(|s| self.bridges.is_bridged(&s, id))
    }
    fn push_ready(&self) -> bool {
        self.push.ready()
    }
    fn task_home(&self, replica: &str) -> bool {
        self.replicas.answers(replica)
    }
}

/// What the relay policy found, applied to the process's state.
pub struct Found<'a> {
    pub owners: &'a Owners,
    pub tools: &'a KnownTools,
    pub sessions: &'a Sessions,
    pub metrics: &'a Metrics,
    pub tasks: &'a TaskCounts,
    pub ctx: &'a Ctx,
    pub replica: &'a ReplicaId,
}

impl Found<'_> {
    /// A chunk's findings: server→client requests asked, a `tools/list` to learn from, a task
    /// created.
    pub fn apply(&self, chunk: Chunk) {
        if chunk.is_empty() {
            return;
        }
        for id in chunk.asked {
            self.owners
                .asked(&self.ctx.scope.key(), &id, self.replica.clone());
        }
        if let Some(list) = chunk.tools_list {
            self.tools.learn(&list);
        }
        if chunk.named_task && self.ctx.method == "tools/call" {
            self.tasks.created();
        }
    }

    /// Seal a session (the relay policy found its version); the token for the client.
    pub fn mint(&self, version: &str, theirs: Option<String>) -> Result<String, Failure> {
        let owner = theirs.map(|session_id| Owner {
            replica: self.replica.clone(),
            session_id,
        });
        let (token, _) = self
            .sessions
            .mint(
                version,
                owner,
                self.ctx.identity(),
                self.ctx.profile.clone(),
            )
            .map_err(|e| Failure::Seal(e.to_string()))?;
        self.metrics.count(Event::SessionMinted);
        Ok(token)
    }
}
