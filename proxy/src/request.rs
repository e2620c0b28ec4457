//! One request's state as it passes the phases ([`Ctx`]): what it is ([`Is`]: labels, caller,
//! session), what it holds ([`Held`]: the replica that served it, its guards), and the log
//! phase that ends it ([`Ctx::finish`]).

use std::{sync::Arc, time::Instant};

use mcp_protocol::{Kind, Message, methods};
use pingora::Error;

use crate::{
    auth::Identity,
    budget::Limit,
    downstream::client::Client,
    inflight::{Scope, Stream, Streaming},
    route,
    session::{Profile, SessionView},
    telemetry::{
        access::{AccessLog, Bridged},
        metrics::{self, Metrics},
    },
    tools::Listed,
    upstream::Replica,
};

/// Per-request state: what the request *is* (set once, after classify) apart from what it
/// *holds* (filled by the phases as they take things).
pub struct Ctx {
    /// When the request's headers were read (metrics, access log).
    pub started: Instant,
    /// The client's address (rate limits, the scope of in-flight keys, the access log).
    pub addr: Option<std::net::SocketAddr>,
    pub is: Is,
    pub held: Held,
}

/// What a request is: its labels, its caller and its session, as classify and the session
/// phase found them.
pub struct Is {
    /// Labels for metrics and the access log.
    pub method: &'static str,
    pub tool: Option<String>,
    /// What the replicas listed of the tool (`tools/list`): whether it is known (a metric label
    /// of its own), whether a retry is safe.
    pub listed: Option<Listed>,
    pub era: &'static str,
    /// Raw JSON text of the request id.
    pub id: Option<String>,
    /// The body is a JSON-RPC request (not a notification, response or batch).
    pub is_request: bool,
    pub identity: Option<Identity>,
    /// Who the request's share of the global caps belongs to (`budget::caller`).
    pub caller: Option<crate::budget::Caller>,
    /// The session token the client sent, when it names a live session.
    pub token: Option<String>,
    /// The legacy session the request names (none in 2026-07-28).
    pub session: route::SessionState,
    /// The scope of in-flight keys: the session uid, or the client connection.
    pub scope: Scope,
}

impl Default for Is {
    fn default() -> Self {
        Self {
            method: "none",
            tool: None,
            listed: None,
            era: "unknown",
            id: None,
            is_request: false,
            identity: None,
            caller: None,
            token: None,
            session: route::SessionState::None,
            scope: Scope::Unknown,
        }
    }
}

/// What a request holds while it is served, each released when the request ends.
#[derive(Default)]
pub struct Held {
    /// The replica last tried (it answered, or it failed).
    pub replica: Option<Arc<Replica>>,
    /// An SSE response being relayed, counted against the stream limits.
    pub stream: Option<Stream>,
    /// This request's stream, recorded for a cancel to find its replica.
    pub streaming: Option<Streaming>,
    /// A bridged call's rounds and replicas (the access log).
    pub bridged: Option<Box<Bridged>>,
    /// A legacy `initialize`'s client profile (read once past the session rate limit), sealed
    /// into the session it starts.
    pub profile: Profile,
}

impl Is {
    /// What sessions are bound to: the caller's credential, or nothing without authentication.
    pub fn identity(&self) -> &[u8] {
        self.identity.as_ref().map_or(&[], |id| &id[..])
    }

    /// The live session the request names.
    pub fn view(&self) -> Option<&SessionView> {
        match &self.session {
            route::SessionState::Live(view) => Some(view),
            _ => None,
        }
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
}

impl Ctx {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            addr: None,
            is: Is::default(),
            held: Held::default(),
        }
    }

    /// The id of the request a broken stream was answering (its last event names it).
    pub fn streamed_request(&self) -> Option<&str> {
        self.is
            .id
            .as_deref()
            .filter(|_| self.held.stream.is_some() && self.is.is_request)
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
        self.held.streaming = None;
        self.held.stream = None;
        if e.is_some_and(|e| {
            e.esource() == &pingora::ErrorSource::Downstream
                && e.etype() == &pingora::ErrorType::WriteTimedout
        }) {
            metrics.spent.count(Limit::SendTime);
        }
        let traffic = client.traffic();
        let request = metrics::Request {
            method: self.is.method,
            tool: self.is.tool.as_deref(),
            listed: self.is.listed.is_some(),
            era: self.is.era,
            status: traffic.status,
            replica: self.held.replica.as_ref().map(|r| &r.id),
            elapsed: self.started.elapsed(),
        };
        metrics.request(&request);
        if let Some(access) = access {
            let bridged = self.held.bridged.as_deref();
            access.log(&traffic, self.addr, self.is.view(), &request, bridged, e);
        }
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}
