//! One request's phases, from its head to its answer ([`crate::downstream`] calls
//! [`Edge::handle`] for each request it reads). Each phase delegates to one module, and
//! `handle` is their dispatcher: one call per phase, one call per decision.
//!
//! ```text
//! admit ─── admit: header limits, path, CORS preflight, bearer token, rate, Origin, POST
//!           Content-Type/Accept (an allowed Origin's CORS headers go on every answer: Client)
//! body ──── downstream::client: the POST body read whole (bounded)
//! classify  mcp_protocol::classify: what the body is, its era
//! is ────── Edge::is: what the request is, set once (request::Is: labels, caller, the legacy
//!           session opened from its sealed token, no shared store)
//! route ─── route::decide, each Decision carrying what it checked:
//!           ├─ Reply / End / TaskGone: answered here, no replica sees it
//!           ├─ Bridge(call) / Deliver / CancelBridge: bridge::Driver, rounds over 2026-07-28
//!           │  replicas, answers to the call waiting here or at a peer
//!           ├─ Listen / Push / Subscribe: push::stream::Driver, streams fed by the fan-out
//!           └─ AnyReplica / Replica(id) / Task(id, raw): Edge::proxy, the plan, then
//! exchange  exchange: attempts until a replica answers (upstream::attempt, one attempt);
//!           route::after_failure decides each next step, answer::Failure says it
//! relay ─── relay (the policy, pure) + respond (the bytes): X-Served-By, session header,
//!           SSE ids, task ids, server→client asks, tools/list learning, sealing on initialize
//! log ───── request::Ctx::finish: what the request held released (request::Held), metrics,
//!           the access log
//! ```
//!
//! Why not pingora-proxy's phases: routing needs the whole body first, pingora 0.9 replays a
//! body read early only from a 64 KiB retry buffer, a legacy `initialize` must hold its headers
//! until the body is seen, and sending a complete request ourselves writes it in one system
//! call over a per-thread pool (benches/RESULTS.md has what each change bought).

use std::sync::Arc;

use bytes::Bytes;
use mcp_protocol::{Message, sse, version::MODERN};

use crate::{
    admit::{Admission, Admitted, VERSION_PATH},
    answer::{Reply, Stop},
    bridge,
    budget::Limit,
    downstream::{client::Client, heads::Heads},
    exchange::{self, Plan, Upstream},
    inflight::Scope,
    push,
    relay::{self, Relay, found::Found, respond::respond},
    request::{Ctx, Held, Is},
    route::{self, Decision, SessionState, Verb},
    session::{Profile, ReplicaId, SessionView, Uid},
    state::State,
    tasks,
    telemetry::{access::AccessLog, metrics::Event},
};

/// The request path's dependencies (one per process, built by `app`).
pub struct Edge {
    /// What the process shares (the admin listener and the periodic jobs hold the same).
    pub state: State,
    pub admission: Admission,
    pub upstream: Arc<Upstream>,
    /// The bridge and the fan-out's client side, each holding what it needs.
    pub bridge: bridge::Driver,
    pub push: push::stream::Driver,
    pub body_limit: usize,
    /// `None` with `--access-log off`.
    pub access: Option<AccessLog>,
}

/// A request on its way to a replica: what `route` decided and what the request carries.
struct Forwarded<'a> {
    /// The replica it must go to (`None`: round robin).
    target: Option<ReplicaId>,
    /// A task's replica's own id for it.
    task: Option<&'a str>,
    verb: Verb,
    message: Option<&'a Message<'a>>,
    body: &'a Bytes,
    /// A `Last-Event-ID` mcp-edge issued: the replica's own id.
    resume: Option<&'a str>,
}

impl<'a> Forwarded<'a> {
    /// Round robin.
    fn new(request: &route::Request<'a>, body: &'a Bytes) -> Self {
        Forwarded {
            target: None,
            task: None,
            verb: request.verb,
            message: request.message,
            body,
            resume: request.resume_original,
        }
    }

    /// To `target` only (for its `task`).
    fn pinned(self, target: ReplicaId, task: Option<&'a str>) -> Self {
        Forwarded {
            target: Some(target),
            task,
            ..self
        }
    }
}

/// What admission established of a request: who sent it (before its body is read).
fn admitted_is(admitted: &Admitted) -> Is {
    Is {
        identity: admitted.identity,
        caller: Some(admitted.caller),
        ..Is::default()
    }
}

/// The request as `route` sees it.
fn routed<'a>(
    admitted: &'a Admitted,
    message: Option<&'a Message<'a>>,
    session: &'a SessionState,
) -> route::Request<'a> {
    let heads = &admitted.routing;
    let resume = heads.last_event_id.as_deref().and_then(sse::parse_event_id);
    route::Request {
        verb: admitted.verb,
        message,
        session,
        header_version: heads.version.as_deref(),
        header_method: heads.mcp_method.as_deref(),
        header_name: heads.mcp_name.as_deref(),
        resume_from: resume.map(|(replica, _)| replica),
        resume_original: resume.map(|(_, original)| original),
        accepts_sse: heads.accepts_sse,
    }
}

impl Edge {
    /// Take one request through its phases, and answer it: here, or from a replica.
    /// `Stop::Answer`: the client is still to be told (downstream writes it).
    pub async fn handle(&self, client: &mut Client<'_>, ctx: &mut Ctx) -> Result<(), Stop> {
        ctx.addr = client.addr();
        let heads = Heads::of(client.header());
        let admitted = self.admission.admit(client.header(), &heads, ctx.addr);
        client.allow_origin(self.admission.page_origin(&heads));
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(reply) => return Ok(client.reply(&reply).await?),
        };
        if admitted.version_path {
            return self.version(client, ctx, &admitted).await;
        }
        let body = match self.body(client, &admitted).await? {
            Ok(body) => body,
            Err(reply) => return Ok(client.reply(&reply).await?),
        };
        let post = admitted.verb == Verb::Post;
        let message = match post.then(|| mcp_protocol::classify(&body)).transpose() {
            Ok(message) => message,
            Err(invalid) => return Ok(client.reply(&invalid.into()).await?),
        };
        ctx.is = self.is(&admitted, message.as_ref(), ctx.addr);
        let request = routed(&admitted, message.as_ref(), &ctx.is.session);
        let decision = route::decide(&request, &self.live(&ctx.is));
        let on = (&ctx.is, &mut ctx.held);
        let (is, to) = (on.0, Forwarded::new(&request, &body));
        match decision {
            Decision::Reply(reply) => Ok(client.reply(&reply.with_id(is.id.as_deref())).await?),
            Decision::End(view) => self.end(client, is.token.as_deref(), view).await,
            Decision::AnyReplica => self.proxy(client, on, to).await,
            Decision::Replica(id) => self.proxy(client, on, to.pinned(id, None)).await,
            Decision::Task(id, raw) => self.proxy(client, on, to.pinned(id, Some(raw))).await,
            Decision::TaskGone => {
                let gone = self.state.tasks.gone(is.method, is.id.as_deref());
                Ok(client.reply(&gone).await?)
            }
            Decision::Bridge(call) => self.bridge.run(client, on, call, &body).await,
            Decision::Deliver { id } => self.bridge.deliver(client, is, id, &body).await,
            Decision::CancelBridge { session, id } => self.bridge.cancel(client, session, id).await,
            Decision::Listen { id } => self.push.listen(client, on, id, &body).await,
            Decision::Push(uid) => self.push.legacy(client, on, uid).await,
            Decision::Subscribe { view, subscribe } => {
                let asked = (view, subscribe);
                self.push.subscribe(client, is, asked, &body).await
            }
        }
    }

    /// `GET /version`: not MCP, any replica's answer.
    async fn version(
        &self,
        client: &mut Client<'_>,
        ctx: &mut Ctx,
        admitted: &Admitted,
    ) -> Result<(), Stop> {
        ctx.is = admitted_is(admitted);
        let none = Bytes::new();
        let plan = Plan::version(&none, VERSION_PATH);
        let on = (&ctx.is, &mut ctx.held);
        self.forward(client, on, plan, relay::Request::default())
            .await
    }

    /// A live session's DELETE: it ends here (and at the peers), 200.
    async fn end(
        &self,
        client: &mut Client<'_>,
        token: Option<&str>,
        view: &SessionView,
    ) -> Result<(), Stop> {
        self.end_session(token, Some(view));
        Ok(client.reply(&Reply::ok(200)).await?)
    }

    /// A POST's body, read whole within its limits (other verbs have none).
    async fn body(
        &self,
        client: &mut Client<'_>,
        admitted: &Admitted,
    ) -> Result<Result<Bytes, Reply>, Stop> {
        if admitted.verb != Verb::Post {
            return Ok(Ok(Bytes::new()));
        }
        let read = client.read_body(self.body_limit, admitted.declared).await?;
        if read.as_ref().is_err_and(|reply| reply.status == 408) {
            self.state.metrics.spent.count(Limit::BodyTime);
        }
        Ok(read)
    }

    /// What the request is, once its body is classified: labels, caller, session (a legacy
    /// one opened; 2026-07-28 has none, an incoming id is ignored, never opened).
    fn is(
        &self,
        admitted: &Admitted,
        message: Option<&Message<'_>>,
        addr: Option<std::net::SocketAddr>,
    ) -> Is {
        let era = mcp_protocol::era(message, admitted.routing.version.as_deref());
        let mut is = Is {
            era: if era.is_modern() { MODERN } else { "legacy" },
            ..admitted_is(admitted)
        };
        if !era.is_modern() {
            let (state, expired) = self
                .state
                .sessions
                .state(admitted.token.as_deref(), is.identity());
            if expired {
                self.state.metrics.count(Event::SessionExpired);
            }
            if let SessionState::Live(view) = &state {
                is.scope = Scope::Session(view.uid);
                is.token = admitted.token.clone();
            }
            is.session = state;
        }
        if is.view().is_none() {
            is.scope = addr.map_or(Scope::Unknown, Scope::Client);
        }
        if let Some(m) = message {
            is.label(m);
            is.listed = is.tool.as_deref().and_then(|t| self.state.tools.listed(t));
        }
        is
    }

    /// What `route` consults, for this request.
    fn live<'a>(&'a self, is: &Is) -> Live<'a> {
        Live {
            state: &self.state,
            session: is.view().map(|view| view.uid),
            scope: is.scope,
        }
    }

    /// A request for a replica: planned (its target, its task, whether it may move), then the
    /// exchange and relay phases.
    async fn proxy(
        &self,
        client: &mut Client<'_>,
        (is, held): (&Is, &mut Held),
        to: Forwarded<'_>,
    ) -> Result<(), Stop> {
        let is_method = |method| to.message.is_some_and(|m| is.is_request && m.is(method));
        if to.target.is_none()
            && let Some(token) = is.token.as_deref()
            && to.message.is_some_and(|m| m.is("notifications/cancelled"))
            && !self.state.peers.is_empty()
        {
            // It may name a call another process bridges; the replicas ignore what they never saw.
            self.state.peers.cancel(token, to.body);
        }
        let restored = tasks::restored(to.body, to.task);
        let body = restored.as_ref().unwrap_or(to.body);
        let mut plan = Plan::new(body, (to.target.as_ref(), to.task), is.view(), to.resume);
        plan.attempt.safe = to.target.is_none()
            && to
                .message
                .is_some_and(|m| route::retry_is_safe(m, is.listed));
        plan.rewrite.drop_authorization = self.admission.auth.is_some();
        let modern = is.era == MODERN;
        let initialize = !modern && is_method("initialize");
        if initialize
            && let Some(caller) = is.caller
            && let Err(wait) = self.state.sessions.may_start(caller)
        {
            self.state.metrics.spent.count(Limit::SessionStarts);
            let reply = crate::ratelimit::limited("--session-rate-limit", wait);
            return Ok(client.reply(&reply.with_id(is.id.as_deref())).await?);
        }
        if initialize {
            // Only past the rate check: a refused initialize costs no parse.
            held.profile = Profile::of_initialize(body);
        }
        let policy = relay::Request {
            replica: "",
            token: is.token.as_deref(),
            modern,
            initialize,
            lists_tools: is_method("tools/list"),
            delete: to.verb == Verb::Delete,
            owned: plan.attempt.owned,
            names_task: modern && tasks::may_name(to.message, to.task.is_some()),
        };
        self.forward(client, (is, held), plan, policy).await
    }

    /// The exchange and relay phases.
    async fn forward(
        &self,
        client: &mut Client<'_>,
        (is, held): (&Is, &mut Held),
        plan: Plan<'_>,
        policy: relay::Request<'_>,
    ) -> Result<(), Stop> {
        // Boxed: the exchange's state (the replica's peer, 672 bytes, and the attempt) would
        // otherwise stay in this future for as long as the stream that follows it.
        let exchanged = Box::pin(exchange::run(
            &self.upstream,
            client,
            &plan,
            &mut held.replica,
        ))
        .await;
        if plan.attempt.task {
            self.state.tasks.exchanged(is.method, &exchanged);
        }
        let mut response = exchanged?;
        let replica = held.replica.clone().expect("a replica answered");
        let mut head = response.head();
        let (relay, shown) = Relay::head(
            &relay::Request {
                replica: &replica.id,
                ..policy
            },
            &mut head,
        );
        if shown.ends_session {
            self.end_session(is.token.as_deref(), is.view());
        }
        if shown.stream {
            let uid = is.view().map(|v| v.uid);
            match self
                .state
                .streams
                .hold(&self.admission.limits, uid, is.caller)
            {
                Ok(stream) => held.stream = Some(stream),
                // Refused here: dropping the replica's connection abandons the request there.
                Err(reply) => return Ok(client.reply(&reply.with_id(is.id.as_deref())).await?),
            }
            if let (true, Some(id)) = (is.is_request, &is.id) {
                held.streaming = Some(self.state.owners.hold(
                    is.scope.key(),
                    id,
                    replica.id.clone(),
                ));
            }
        }
        let found = Found {
            state: &self.state,
            is,
            profile: &held.profile,
            replica: &replica.id,
        };
        respond(
            client,
            response,
            head,
            relay,
            &found,
            &self.upstream.pool,
            &replica,
        )
        .await
    }

    /// The client's session is over (DELETE, or its owner forgot it): revoked here and at peers.
    fn end_session(&self, token: Option<&str>, view: Option<&SessionView>) {
        if let (Some(token), Some(view)) = (token, view) {
            self.state.sessions.revoke(&view.uid, view.expires);
            self.state.bridges.end_session(&view.uid);
            self.state.push.end_session(&view.uid);
            self.state.metrics.count(Event::SessionRevoked);
            self.state.peers.announce(token);
        }
    }
}

/// Lookups for [`route::decide`], scoped to this request.
struct Live<'a> {
    state: &'a State,
    /// The request's live session.
    session: Option<Uid>,
    scope: Scope,
}

impl route::Facts for Live<'_> {
    fn streaming_owner(&self, id: &str) -> Option<ReplicaId> {
        self.state.owners.streaming_owner(&self.scope.key(), id)
    }
    fn answer_owner(&self, id: &str) -> Option<ReplicaId> {
        self.state.owners.answer_owner(&self.scope.key(), id)
    }
    fn is_alive(&self, replica: &str) -> bool {
        self.state.replicas.is_alive(replica)
    }
    fn bridge_ready(&self) -> bool {
        self.state.bridges.ready(&self.state.replicas)
    }
    fn bridged(&self, id: &str) -> bool {
        self.session
            .is_some_and(|s| self.state.bridges.is_bridged(&s, id))
    }
    fn push_ready(&self) -> bool {
        self.state.push.ready()
    }
    fn task_home(&self, replica: &str) -> bool {
        self.state.replicas.answers(replica)
    }
}
