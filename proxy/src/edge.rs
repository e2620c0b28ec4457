//! One request's steps, from its headers to its answer ([`crate::front`] calls them for each
//! request pingora's HTTP server reads). Each step delegates:
//!
//! ```text
//! handle
//!   ├─ admit ─ one pass over the header fields (heads::Heads): header limits, path, bearer
//!   │          token (auth), rate limit, Origin; POST: Content-Type, Accept
//!   ├─ session token opened (session::Sessions); POST: body read whole (bounded)
//!   ├─ mcp::classify ─ route::decide ─┬─ Reply: answered here, no replica sees it
//!   │                                 └─ AnyReplica / Replica(id)
//!   └─ upstream::forward ─ Edge::choose (upstream::Replicas: round robin over healthy, or the
//!        │   owner) ─ a pooled connection of this worker thread (upstream::pool)
//!        │   Edge::rewrite: Host → replica, Mcp-Session-Id stripped (or the owner's own id),
//!        │   MCP-Protocol-Version from the session, Last-Event-ID → the replica's own id;
//!        │   head and body in one write; broke before any response byte → another replica
//!        │   when route::retry_is_safe
//!        ├─ on_response_header ─ X-Served-By, the client's token echoed, replica session ids
//!        │   never reach the client, DELETE/404 in a session → revoked here and at peers,
//!        │   SSE: stream owner recorded; legacy initialize held until seal_session
//!        └─ on_response_body ─ SSE event by event (mcp::sse): event ids → <replica>/<id>,
//!            server→client requests recorded; tools/list → tool annotations learned
//! fail ─ an error: 502/504, or after the answer began (a stream that broke) a last error event
//! logging ─ metrics, access log, stream owners released
//! ```
//!
//! Why not pingora-proxy's phases: routing needs the whole body first, pingora 0.9 replays a
//! body read early only from a 64 KiB retry buffer, a legacy `initialize` must hold its headers
//! until the body is seen, and forwarding a complete request ourselves writes it in one system
//! call over a per-thread pool; with every request answered here, the phases were only cost
//! (benches/RESULTS.md has what each change bought).

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use pingora::{
    Error, ErrorType, Result, http::ResponseHeader, protocols::http::ServerSession as Session,
    upstreams::peer::HttpPeer,
};

use crate::{
    config::Config,
    heads::Heads,
    mcp::{self, Kind, errors::*, sse, tools::KnownTools},
    metrics::{self, Event, Metrics},
    route::{self, Decision, SessionState, Verb},
    session::{Keys, Owner, Owners, ReplicaId, SessionView, Sessions, peers::Peers},
    upstream::{Replica, Replicas, forward::Rewrite},
};

pub const SESSION_HEADER: &str = "mcp-session-id";
/// The replicas' build and identity (mcp-backend's `GET /version`): forwarded round robin, so
/// that `curl …/version` shows which replica answered, as it does in front of one replica.
pub const VERSION_PATH: &str = "/version";
pub const VERSION_HEADER: &str = "mcp-protocol-version";
const SERVED_BY: &str = "x-served-by";
/// How long an idle connection to a replica is kept for the next request.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

/// Shared state of the proxy (one per process).
pub struct Edge {
    pub replicas: Arc<Replicas>,
    auth: Option<crate::auth::Auth>,
    pub rate_limit: Option<Arc<crate::ratelimit::RateLimit>>,
    pub sessions: Arc<Sessions>,
    pub owners: Arc<Owners>,
    pub tools: Arc<KnownTools>,
    pub metrics: Arc<Metrics>,
    pub streams: Arc<crate::limits::Streams>,
    limits: crate::limits::Limits,
    peers: Peers,
    path: String,
    body_limit: usize,
    origins: mcp_backend::http::Origins,
    allowed_origins: String,
    connect_timeout: Duration,
    pub(crate) first_byte: Duration,
    stream_idle: Duration,
    pub(crate) pool: crate::upstream::pool::Pool,
    /// `None` with `--access-log off`.
    pub access: Option<crate::access::AccessLog>,
}

impl Edge {
    pub fn new(
        config: &Config,
        replicas: Arc<Replicas>,
        keys: Keys,
        auth: Option<crate::auth::Auth>,
    ) -> Self {
        Self {
            replicas,
            auth,
            rate_limit: config.rate_limit().map(Arc::new),
            sessions: Arc::new(Sessions::new(
                keys,
                Duration::from_secs(config.session_lifetime_seconds),
                Duration::from_secs(config.session_idle_seconds),
            )),
            owners: Arc::new(Owners::default()),
            tools: Arc::new(KnownTools::default()),
            metrics: Arc::new(Metrics::default()),
            streams: Arc::default(),
            limits: config.limits(),
            peers: Peers::new(&config.peers),
            path: config.path.clone(),
            body_limit: config.body_limit,
            origins: mcp_backend::http::Origins::parse(&config.allowed_origins),
            allowed_origins: config.allowed_origins.join(", "),
            connect_timeout: config.connect_timeout(),
            first_byte: config.first_byte_timeout(),
            stream_idle: config.stream_idle(),
            pool: crate::upstream::pool::Pool::new(UPSTREAM_IDLE),
            access: None,
        }
    }
}

/// Per-request state.
#[derive(Default)]
pub struct Ctx {
    /// When the request's headers were read (metrics, access log).
    started: Option<std::time::Instant>,
    /// Labels for metrics and the access log.
    method: &'static str,
    tool: Option<String>,
    era: &'static str,
    pub(crate) body: Option<Bytes>,
    kind: Option<Kind>,
    /// Raw JSON text of the request id.
    pub(crate) id: Option<String>,
    pub(crate) is_initialize: bool,
    modern: bool,
    verb: Option<Verb>,
    /// The caller's credential binding (empty without authentication).
    identity: Option<crate::auth::Identity>,
    /// The session token the client sent, when it names a live session.
    token: Option<String>,
    session: Option<SessionView>,
    /// The scope of in-flight keys: the session uid, or the client connection.
    scope: Scope,
    /// A sticky target; `None`: round robin.
    pub(crate) target: Option<ReplicaId>,
    /// The target is the stateful replica owning the session: if it cannot be reached, the
    /// session is gone (404, the client re-initializes).
    pub(crate) owned: bool,
    pub(crate) replica: Option<Arc<Replica>>,
    tried: Vec<ReplicaId>,
    /// `Last-Event-ID` with the replica prefix removed.
    resume_id: Option<String>,
    sse: Option<sse::Scanner>,
    streaming: bool,
    /// A legacy initialize answered with success: its body so far, and the replica's own
    /// session id, until the session is sealed.
    pub(crate) init: Option<InitHold>,
    /// The local answer, when the proxy answered itself.
    reply_status: Option<u16>,
    /// Another replica may take this request if its connection breaks before any response
    /// byte ([`route::retry_is_safe`]).
    pub(crate) retry_safe: bool,
    lists_tools: bool,
    /// A `tools/list` response so far, to learn tool annotations from.
    tools_list: Option<BytesMut>,
    /// The replica's path for a request that is not MCP (`GET /version`); `None`: its MCP path.
    upstream_path: Option<&'static str>,
}

#[derive(Default)]
pub(crate) struct InitHold {
    raw: BytesMut,
    theirs: Option<String>,
}

impl Ctx {
    /// What sessions are bound to: the caller's credential, or nothing without authentication.
    fn identity(&self) -> &[u8] {
        self.identity.as_ref().map_or(&[], |id| &id[..])
    }
}

/// Where a JSON-RPC id is unique: a session, or else the client's connection. Turned into a
/// key only when a stream or an answer needs one (most requests never do).
#[derive(Clone, Copy, Default)]
enum Scope {
    #[default]
    Unknown,
    Session([u8; 16]),
    Client(std::net::SocketAddr),
}

impl Scope {
    fn key(&self) -> String {
        match self {
            Scope::Unknown => "c:".to_owned(),
            Scope::Session(uid) => format!("s:{}", hex::encode(uid)),
            Scope::Client(addr) => format!("c:{addr}"),
        }
    }
}

/// Lookups for [`route::decide`], scoped to this request.
struct Live<'a> {
    edge: &'a Edge,
    scope: Scope,
}

impl route::Facts for Live<'_> {
    fn streaming_owner(&self, id: &str) -> Option<ReplicaId> {
        self.edge.owners.streaming_owner(&self.scope.key(), id)
    }
    fn answer_owner(&self, id: &str) -> Option<ReplicaId> {
        self.edge.owners.answer_owner(&self.scope.key(), id)
    }
    fn is_alive(&self, replica: &str) -> bool {
        self.edge.replicas.is_alive(replica)
    }
    fn tool_is_safe(&self, name: &str) -> bool {
        self.edge.tools.is_safe(name)
    }
}

/// Most of an oversized body the proxy reads and throws away so the client sees its 413.
const DISCARD_LIMIT: usize = 64 << 20;

/// Read and drop the rest of a rejected body, within bounds; past them the connection closes.
async fn discard(session: &mut Session, declared: Option<usize>) {
    if declared.is_some_and(|length| length > DISCARD_LIMIT) {
        return;
    }
    session.set_total_drain_timeout(Some(Duration::from_secs(5)));
    let _ = session.drain_request_body().await;
}

/// What the header checks let through ([`Edge::admit`]).
struct Admitted {
    verb: Verb,
    /// `Content-Length`, when it is a number.
    declared: Option<usize>,
    /// The session token the client sent.
    token: Option<String>,
    /// `GET /version`, not MCP.
    version_path: bool,
}

impl Edge {
    /// Write the proxy's own answer and end the request.
    pub(crate) async fn reply(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        reply: Reply,
    ) -> Result<()> {
        let body = reply.body();
        let mut header = ResponseHeader::build(reply.status, Some(4))?;
        if let Some(body) = &body {
            header.insert_header("content-type", "application/json")?;
            header.insert_header("content-length", body.len().to_string())?;
        } else {
            header.insert_header("content-length", "0")?;
        }
        for (name, value) in &reply.headers {
            header.insert_header(*name, value.as_str())?;
        }
        ctx.reply_status = Some(reply.status);
        // A body we did not read must not be taken for the next request on this connection.
        if !session.is_body_done() {
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(header)).await?;
        session
            .write_response_body(body.unwrap_or_default(), true)
            .await
    }

    /// Read the whole request body, bounded by the limit. `Err(reply)` when it is too large.
    ///
    /// An oversized body is read and discarded (up to [`DISCARD_LIMIT`], for a few seconds) so
    /// that a client still sending it can read the 413; beyond that the connection is closed.
    async fn read_body(
        &self,
        session: &mut Session,
        declared: Option<usize>,
    ) -> Result<std::result::Result<Bytes, Reply>> {
        let too_large = || {
            Reply::error(
                413,
                INVALID_REQUEST,
                format!(
                    "request body exceeds the limit of {} bytes",
                    self.body_limit
                ),
            )
        };
        if declared.is_some_and(|length| length > self.body_limit) {
            discard(session, declared).await;
            return Ok(Err(too_large()));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_request_body().await? {
            if body.len() + chunk.len() > self.body_limit {
                discard(session, declared).await;
                return Ok(Err(too_large()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Ok(body.freeze()))
    }

    /// The caller's rate limit (its credential, else its IP address): a 429 when exhausted.
    fn check_rate(&self, session: &Session, ctx: &Ctx) -> Option<Reply> {
        use crate::ratelimit::Caller;
        let limit = self.rate_limit.as_ref()?;
        let caller = match (
            &ctx.identity,
            session.client_addr().and_then(|a| a.as_inet()),
        ) {
            (Some(identity), _) => Caller::Credential(*identity),
            (None, Some(addr)) => Caller::Ip(addr.ip()),
            (None, None) => Caller::Overflow,
        };
        let wait = limit.check(caller, std::time::Instant::now()).err()?;
        self.metrics.count(Event::RateLimited);
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        Some(
            Reply::error(
                429,
                LIMITED,
                format!("rate limit exceeded; retry in {seconds} s"),
            )
            .with_header("retry-after", seconds.to_string()),
        )
    }

    /// Checks that need only headers: Content-Type and Accept of a POST.
    fn check_post_headers(&self, heads: &Heads) -> Option<Reply> {
        let content_type = heads.content_type.unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Some(Reply::error(
                415,
                INVALID_REQUEST,
                format!(
                    "Content-Type must be application/json, got {}",
                    if content_type.is_empty() {
                        "none"
                    } else {
                        content_type
                    }
                ),
            ));
        }
        if !heads.accept.json && !heads.accept.sse {
            return Some(Reply::error(
                406,
                INVALID_REQUEST,
                "Accept must allow application/json or text/event-stream",
            ));
        }
        None
    }
}

/// The request's steps, called by [`crate::front`].
impl Edge {
    pub(crate) fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Some(std::time::Instant::now()),
            method: "none",
            era: "unknown",
            ..Ctx::default()
        }
    }

    /// Checks on the request's headers alone, before its body is read: size, path, credential,
    /// rate, Origin, and a POST's Content-Type and Accept. `Err`: the answer instead.
    fn admit(&self, session: &Session, ctx: &mut Ctx) -> std::result::Result<Admitted, Reply> {
        let request = session.req_header();
        let heads = Heads::of(request);
        if let Some(reply) = self.limits.check_headers(heads.count, heads.bytes) {
            return Err(reply);
        }
        let version_path = request.uri.path() == VERSION_PATH && self.path != VERSION_PATH;
        if request.uri.path() != self.path && !version_path {
            return Err(Reply::error(
                404,
                METHOD_NOT_FOUND,
                format!(
                    "no endpoint at {}: MCP is served at {} (and the replicas' {VERSION_PATH})",
                    request.uri.path(),
                    self.path
                ),
            ));
        }
        if let Some(auth) = &self.auth {
            ctx.identity = Some(auth.check(heads.authorization)?);
        }
        if let Some(reply) = self.check_rate(session, ctx) {
            return Err(reply);
        }
        if let Some(origin) = heads.origin {
            if !self.origins.allows(origin) {
                let message = format!(
                    "Origin {} is not allowed (allowed: {})",
                    String::from_utf8_lossy(origin),
                    self.allowed_origins
                );
                return Err(Reply::error(403, INVALID_REQUEST, message));
            }
        }
        let verb = match request.method.as_str() {
            "POST" => Verb::Post,
            "GET" => Verb::Get,
            "DELETE" => Verb::Delete,
            _ => Verb::Other,
        };
        if version_path {
            if verb != Verb::Get {
                return Err(Reply::error(
                    405,
                    INVALID_REQUEST,
                    format!("{VERSION_PATH} takes GET"),
                )
                .with_header("allow", "GET"));
            }
            return Ok(Admitted {
                verb,
                declared: None,
                token: None,
                version_path,
            });
        }
        if verb == Verb::Post {
            if let Some(reply) = self.check_post_headers(&heads) {
                return Err(reply);
            }
        }
        Ok(Admitted {
            verb,
            declared: heads
                .content_length
                .and_then(|v| v.trim().parse::<usize>().ok()),
            token: heads.session.map(str::to_owned),
            version_path,
        })
    }

    /// Check, classify and route one request, and answer it: here, or from a replica.
    pub(crate) async fn handle(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let Admitted {
            verb,
            declared,
            token,
            version_path,
        } = match self.admit(session, ctx) {
            Ok(admitted) => admitted,
            Err(reply) => return self.reply(session, ctx, reply).await,
        };
        ctx.verb = Some(verb);
        if version_path {
            // Not MCP: no session, no body; any replica may answer, and another if it broke.
            ctx.upstream_path = Some(VERSION_PATH);
            ctx.retry_safe = true;
            return crate::upstream::forward::forward(self, session, ctx).await;
        }
        let mut state = match &token {
            None => SessionState::None,
            Some(t) => match self.sessions.open(t, ctx.identity()) {
                Ok(view) => SessionState::Live(view),
                Err(why) => {
                    if matches!(
                        why,
                        crate::session::Closed::Expired | crate::session::Closed::Idle
                    ) {
                        self.metrics.count(Event::SessionExpired);
                    }
                    tracing::debug!(?why, "session token refused");
                    SessionState::Unknown
                }
            },
        };

        let body = if verb == Verb::Post {
            match self.read_body(session, declared).await? {
                Ok(body) => Some(body),
                Err(reply) => return self.reply(session, ctx, reply).await,
            }
        } else {
            None
        };
        let message = match body.as_deref().map(mcp::classify) {
            Some(Err(mcp::Invalid::Parse(m))) => {
                return self
                    .reply(session, ctx, Reply::error(400, PARSE_ERROR, m))
                    .await;
            }
            Some(Err(mcp::Invalid::NotJsonRpc(m))) => {
                return self
                    .reply(session, ctx, Reply::error(400, INVALID_REQUEST, m))
                    .await;
            }
            Some(Ok(m)) => Some(m),
            None => None,
        };
        let heads = Heads::of(session.req_header());
        let header_version = heads.version;
        let era = mcp::era(message.as_ref(), header_version);
        if era.is_modern() {
            // 2026-07-28 has no sessions: an incoming id is ignored, never looked up.
            state = SessionState::None;
        }
        let resume = heads.last_event_id.and_then(sse::parse_event_id);
        ctx.scope = match &state {
            SessionState::Live(view) => Scope::Session(view.uid),
            _ => session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map_or(Scope::Unknown, |a| Scope::Client(*a)),
        };
        let request = route::Request {
            verb,
            message: message.as_ref(),
            session: &state,
            header_version,
            header_method: heads.mcp_method,
            header_name: heads.mcp_name,
            resume_from: resume.map(|(replica, _)| replica),
        };
        let live = Live {
            edge: self,
            scope: ctx.scope,
        };
        let decision = route::decide(&request, &live);

        ctx.era = if era.is_modern() {
            "2026-07-28"
        } else {
            "legacy"
        };
        if let Some(m) = &message {
            ctx.method = match m.kind {
                Kind::Response => "response",
                Kind::Batch => "batch",
                _ => metrics::method_label(m.method.as_deref()),
            };
            if m.is("tools/call") {
                ctx.tool = m.name.as_deref().map(str::to_owned);
            }
            ctx.retry_safe = decision == Decision::AnyReplica && route::retry_is_safe(m, &live);
            ctx.lists_tools = m.kind == Kind::Request && m.is("tools/list");
            ctx.kind = Some(m.kind);
            ctx.id = m.id.map(str::to_owned);
            ctx.is_initialize = m.is_initialize() && !era.is_modern();
        }
        ctx.modern = era.is_modern();
        ctx.resume_id = resume.map(|(_, original)| original.to_owned());
        if let SessionState::Live(view) = state {
            ctx.token = token;
            ctx.session = Some(view);
        }
        ctx.body = body;
        match decision {
            Decision::Reply(reply) => {
                let reply = if reply.id.is_none() {
                    reply.with_id(ctx.id.as_deref())
                } else {
                    reply
                };
                if verb == Verb::Delete && reply.status == 200 {
                    self.end_session(ctx);
                }
                self.reply(session, ctx, reply).await
            }
            Decision::Replica(id) => {
                ctx.owned = ctx
                    .session
                    .as_ref()
                    .is_some_and(|v| v.owner.as_ref().is_some_and(|o| o.replica == id));
                ctx.target = Some(id);
                crate::upstream::forward::forward(self, session, ctx).await
            }
            Decision::AnyReplica => crate::upstream::forward::forward(self, session, ctx).await,
        }
    }

    /// The client's answer when handling failed: a 502/504 if nothing was written yet, a last
    /// error event if a stream broke. A client that went away gets nothing (it is not there),
    /// and is not logged as a failure: in 2026-07-28 it is how a client cancels.
    pub(crate) async fn fail(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) {
        if e.esource() == &pingora::ErrorSource::Downstream {
            if !matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            ) {
                tracing::error!("client connection failed: {e}");
            }
            return;
        }
        tracing::error!("request failed: {e}");
        let (status, message) = if crate::upstream::forward::is_timeout(e.etype()) {
            (504, "the replica did not answer in time".to_owned())
        } else {
            (
                502,
                format!(
                    "the replica failed while answering: {}; the request was not repeated",
                    e.etype().as_str()
                ),
            )
        };
        if session.response_written().is_some() {
            // A stream broke mid-way: its last event says so, for the request it was answering.
            if let (Some(_), Some(Kind::Request), Some(id)) =
                (&ctx.sse, ctx.kind, ctx.id.as_deref())
            {
                let reply = Reply::error(
                    status,
                    INTERNAL_ERROR,
                    format!("the replica serving this stream failed: {message}"),
                )
                .with_id(Some(id));
                if let Some(body) = reply.body() {
                    let event = [&b"event: message\ndata: "[..], &body, b"\n\n"].concat();
                    let _ = session.write_response_body(Bytes::from(event), true).await;
                }
            }
        } else {
            let reply = Reply::error(status, INTERNAL_ERROR, message).with_id(ctx.id.as_deref());
            let _ = self.reply(session, ctx, reply).await;
        }
    }

    /// After the request, however it ended: metrics, the access log, in-flight keys released.
    pub(crate) fn logging(&self, session: &Session, e: Option<&Error>, ctx: &mut Ctx) {
        self.release(ctx);
        if ctx.sse.is_some() {
            self.streams.close(ctx.session.as_ref().map(|v| v.uid));
        }
        let status = session
            .response_written()
            .map(|h| h.status.as_u16())
            .or(ctx.reply_status)
            .unwrap_or(0);
        let request = metrics::Request {
            method: ctx.method,
            tool: ctx.tool.as_deref(),
            era: ctx.era,
            status,
            replica: ctx.replica.as_ref().map(|r| &r.id),
            elapsed: ctx.started.map_or(Duration::ZERO, |t| t.elapsed()),
        };
        self.metrics.request(&request);
        if let Some(access) = &self.access {
            access.log(session, ctx.session.as_ref(), &request, e);
        }
    }
}

/// Steps of forwarding ([`crate::upstream::forward`]).
impl Edge {
    /// The replica for this request: its sticky target if healthy, else the next healthy one
    /// not tried yet. Recorded in `ctx`.
    pub(crate) fn choose(&self, ctx: &mut Ctx) -> Option<Arc<Replica>> {
        let replica = match &ctx.target {
            Some(id) => self.replicas.get(id).filter(|r| r.is_healthy()),
            None => self.replicas.pick(&ctx.tried),
        }?;
        ctx.tried.push(replica.id.clone());
        ctx.replica = Some(replica.clone());
        Some(replica)
    }

    /// Whether a request that broke before any response byte may go to another replica: safe
    /// to repeat, not pinned, and the replica broke rather than being slow.
    pub(crate) fn may_move(&self, ctx: &Ctx, error: &ErrorType) -> bool {
        ctx.retry_safe && ctx.target.is_none() && !crate::upstream::forward::is_timeout(error)
    }

    /// The chosen replica failed (counts towards ejection).
    pub(crate) fn failed(&self, ctx: &Ctx) {
        if let Some(replica) = &ctx.replica {
            if self.replicas.failed(replica) {
                self.metrics.count(Event::Ejection);
            }
        }
    }

    /// The request is over: a stream it held no longer owns its id.
    pub(crate) fn release(&self, ctx: &Ctx) {
        if let (true, Some(id)) = (ctx.streaming, &ctx.id) {
            self.owners.stream_done(&ctx.scope.key(), id);
        }
    }

    pub(crate) fn peer(&self, replica: &Replica) -> HttpPeer {
        let mut peer = HttpPeer::new(replica.addr, false, String::new());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.stream_idle);
        peer.options.write_timeout = Some(self.stream_idle);
        peer
    }

    /// How the request must change for this replica ([`crate::upstream::forward`] writes it).
    pub(crate) fn rewrite<'a>(&self, replica: &'a Replica, ctx: &'a Ctx) -> Rewrite<'a> {
        Rewrite {
            authority: &replica.authority,
            path: ctx.upstream_path.unwrap_or(&replica.path),
            session_id: ctx
                .session
                .as_ref()
                .and_then(|view| view.owner.as_ref())
                .map(|owner| owner.session_id.as_str()),
            version: ctx.session.as_ref().map(|view| view.version.as_str()),
            last_event_id: ctx.resume_id.as_deref(),
            drop_authorization: self.auth.is_some(),
        }
    }

    /// Response headers from a replica, before they reach the client.
    /// `Ok(Some(reply))`: the response may not pass (a stream over the limits); answer this.
    pub(crate) fn on_response_header(
        &self,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<Option<Reply>> {
        let Some(replica) = ctx.replica.clone() else {
            return Ok(None);
        };
        self.replicas.succeeded(&replica);
        if response.headers.get(SERVED_BY).is_none() {
            response.insert_header(SERVED_BY, &*replica.id)?;
        }
        let theirs = response
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        response.remove_header(SESSION_HEADER);
        let ok = response.status.is_success();
        if ctx.lists_tools && ok {
            ctx.tools_list = Some(BytesMut::new());
        }
        if ctx.is_initialize && ok {
            // The token is sealed once the body shows the negotiated version (seal_session).
            ctx.init = Some(InitHold {
                raw: BytesMut::new(),
                theirs,
            });
        } else if let (Some(token), false) = (&ctx.token, ctx.modern) {
            // Legacy requests in a session: the client keeps seeing its own id.
            response.insert_header(SESSION_HEADER, token.as_str())?;
        }
        // The owner ended the session (DELETE), or no longer knows it (404): it is over everywhere.
        let status = response.status.as_u16();
        if (ctx.verb == Some(Verb::Delete) && ok) || (ctx.owned && status == 404) {
            self.end_session(ctx);
        }
        let is_sse = response
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if is_sse {
            if let Err(reply) = self
                .streams
                .open(&self.limits, ctx.session.as_ref().map(|v| v.uid))
            {
                return Ok(Some(reply));
            }
            // Event ids grow by the replica prefix: the replica's length no longer holds, so the
            // stream goes to the client chunked.
            response.remove_header("content-length");
            ctx.sse = Some(sse::Scanner::new(&replica.id));
            if let (Some(Kind::Request), Some(id)) = (ctx.kind, &ctx.id) {
                self.owners
                    .streaming(&ctx.scope.key(), id, replica.id.clone());
                ctx.streaming = true;
            }
        }
        Ok(None)
    }

    /// A chunk of response body from a replica, before it reaches the client.
    pub(crate) fn on_response_body(&self, body: &mut Option<Bytes>, end: bool, ctx: &mut Ctx) {
        if let (Some(init), Some(chunk)) = (&mut ctx.init, body.as_ref()) {
            init.raw.extend_from_slice(chunk);
        }
        if let Some(list) = &mut ctx.tools_list {
            if let Some(chunk) = body.as_ref() {
                list.extend_from_slice(chunk);
            }
            if list.len() > mcp::tools::LIST_LIMIT {
                ctx.tools_list = None;
            } else if end {
                self.tools.learn(list);
                ctx.tools_list = None;
            }
        }
        if let Some(scanner) = &mut ctx.sse {
            let chunk = body.take().unwrap_or_default();
            let scanned = scanner.feed(&chunk, end);
            if let Some(replica) = &ctx.replica {
                for id in scanned.server_requests {
                    self.owners.asked(&ctx.scope.key(), &id, replica.id.clone());
                }
            }
            *body = Some(scanned.out);
        }
    }
}

/// Most of an initialize response held back while waiting for its result.
pub(crate) const INIT_HOLD_LIMIT: usize = 1 << 20;

/// Sessions: sealing one from an initialize result, ending one.
impl Edge {
    /// Seal the session of a held initialize response once its body shows the negotiated
    /// protocol version; the token goes into `response`. `Ok(false)`: keep holding. At the end
    /// of a body without an InitializeResult (an error answer) nothing is sealed.
    pub(crate) fn seal_session(
        &self,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
        end: bool,
    ) -> std::result::Result<bool, Reply> {
        let Some(init) = &ctx.init else {
            return Ok(true);
        };
        let Some(version) = negotiated_version(&init.raw) else {
            if end {
                ctx.init = None;
            } else if init.raw.len() > INIT_HOLD_LIMIT {
                return Err(Reply::error(
                    502,
                    INTERNAL_ERROR,
                    "the replica's initialize response is too large",
                ));
            }
            return Ok(end);
        };
        let init = ctx.init.take().expect("checked above");
        let replica = ctx.replica.as_ref().expect("a replica answered");
        let owner = init.theirs.map(|session_id| Owner {
            replica: replica.id.clone(),
            session_id,
        });
        match self.sessions.mint(&version, owner, ctx.identity()) {
            Ok((token, _)) => {
                self.metrics.count(Event::SessionMinted);
                response
                    .insert_header(SESSION_HEADER, token.as_str())
                    .map_err(|_| Reply::error(502, INTERNAL_ERROR, "session token"))?;
                Ok(true)
            }
            Err(e) => Err(Reply::error(
                502,
                INTERNAL_ERROR,
                format!("cannot start the session: {e}"),
            )),
        }
    }

    /// The client's session is over (DELETE, or its owner forgot it): revoked here and at peers.
    fn end_session(&self, ctx: &Ctx) {
        if let (Some(token), Some(view)) = (&ctx.token, &ctx.session) {
            self.sessions.revoke(&view.uid, view.expires);
            self.metrics.count(Event::SessionRevoked);
            self.peers.announce(token);
        }
    }
}

/// `result.protocolVersion` of an initialize response (JSON, or the SSE event carrying it).
fn negotiated_version(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&mcp::response_json(body)?).ok()?;
    v.get("result")?
        .get("protocolVersion")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiated_version_from_json_and_sse() {
        assert_eq!(
            negotiated_version(
                br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}"#
            )
            .as_deref(),
            Some("2025-06-18")
        );
        assert_eq!(
            negotiated_version(b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\"}}\n\n").as_deref(),
            Some("2025-11-25")
        );
        assert_eq!(negotiated_version(b"{}"), None);
    }
}
