//! One request's phases, from its head to its answer ([`crate::downstream`] calls
//! [`Edge::handle`] for each request it reads). Each phase delegates to one module:
//!
//! ```text
//! admit ─── admit: header limits, path, bearer token, rate, Origin, POST Content-Type/Accept
//! session ─ session: the legacy token opened (sealed, no shared store)
//! body ──── downstream::client: the POST body read whole (bounded)
//! classify  mcp_protocol::classify: what the body is, its era
//! route ─── route::decide ─┬─ Reply: answered here, no replica sees it
//!                          ├─ Bridge: bridge::run, rounds over 2026-07-28 replicas;
//!                          │  Deliver / CancelBridge: to the call waiting here or at a peer
//!                          ├─ Listen / Push: push::stream, a listen stream fed by the
//!                          │  fan-out; Subscribe: answered here, told to the peers
//!                          ├─ Task(id): the task's replica, its own id restored (tasks);
//!                          │  TaskGone: -32602 here
//!                          └─ AnyReplica / Replica(id)
//! exchange  retry: attempts until a replica answers (upstream::exchange, one attempt);
//!           route::after_failure decides each next step, answer::Failure says it
//! relay ─── relay (the policy, pure) + respond (the bytes): X-Served-By, session header,
//!           SSE ids, task ids, server→client asks, tools/list learning, sealing on initialize
//! log ───── telemetry: metrics, access log; in-flight guards released (inflight)
//! ```
//!
//! Why not pingora-proxy's phases: routing needs the whole body first, pingora 0.9 replays a
//! body read early only from a 64 KiB retry buffer, a legacy `initialize` must hold its headers
//! until the body is seen, and sending a complete request ourselves writes it in one system
//! call over a per-thread pool (benches/RESULTS.md has what each change bought).

use std::sync::Arc;

use mcp_protocol::{sse, version::MODERN};

use crate::{
    admit::{Admission, VERSION_PATH},
    answer::{Failure, Reply, Stop},
    bridge::{self, Bridges, Delivery},
    budget::Limit,
    downstream::client::Client,
    inflight::{Owners, Scope, Streams},
    push::{self, Push},
    relay::{self, Relay},
    request::{Ctx, Found, Live},
    respond::respond,
    retry::{self, Choice, Plan, Upstream},
    route::{self, Decision, SessionState, Verb},
    session::{Profile, SessionView, Sessions, peers::Peers},
    tasks::{self, Outcome, TaskCounts},
    telemetry::{
        access::AccessLog,
        metrics::{Event, Metrics},
    },
    tools::KnownTools,
};

/// The proxy's shared state (one per process, built by `app`).
pub struct Edge {
    pub admission: Admission,
    pub sessions: Arc<Sessions>,
    pub owners: Arc<Owners>,
    pub streams: Arc<Streams>,
    pub tools: Arc<KnownTools>,
    pub upstream: Upstream,
    pub metrics: Arc<Metrics>,
    pub peers: Peers,
    pub bridges: Arc<Bridges>,
    pub push: Arc<Push>,
    pub tasks: Arc<TaskCounts>,
    pub body_limit: usize,
    /// `None` with `--access-log off`.
    pub access: Option<AccessLog>,
}

impl Edge {
    /// Take one request through its phases, and answer it: here, or from a replica.
    /// `Stop::Answer`: the client is still to be told (downstream writes it).
    pub async fn handle(&self, client: &mut Client<'_>, ctx: &mut Ctx) -> Result<(), Stop> {
        let addr = client.addr();
        ctx.addr = addr;
        let admitted = match self.admission.admit(client.header(), addr) {
            Ok(admitted) => admitted,
            Err(reply) => return Ok(client.reply(&reply).await?),
        };
        ctx.identity = admitted.identity;
        ctx.caller = Some(admitted.caller);
        let verb = admitted.verb;
        let empty = bytes::Bytes::new();
        if admitted.version_path {
            let plan = Plan::version(&empty, VERSION_PATH);
            let policy = relay::Request::default();
            return self.forward(client, ctx, plan, policy, (None, None)).await;
        }
        let body = match verb {
            Verb::Post => match client.read_body(self.body_limit, admitted.declared).await? {
                Ok(body) => Some(body),
                Err(reply) => {
                    if reply.status == 408 {
                        self.metrics.spent.count(Limit::BodyTime);
                    }
                    return Ok(client.reply(&reply).await?);
                }
            },
            _ => None,
        };
        let message = match body.as_deref().map(mcp_protocol::classify).transpose() {
            Ok(message) => message,
            Err(invalid) => return Ok(client.reply(&invalid.into()).await?),
        };
        let heads = &admitted.routing;
        let era = mcp_protocol::era(message.as_ref(), heads.version.as_deref());
        // 2026-07-28 has no sessions: an incoming id is ignored, never opened.
        let state = if era.is_modern() {
            SessionState::None
        } else {
            let token = admitted.token.as_deref();
            let (state, expired) = self.sessions.state(token, ctx.identity());
            if expired {
                self.metrics.count(Event::SessionExpired);
            }
            state
        };
        let resume = heads.last_event_id.as_deref().and_then(sse::parse_event_id);
        ctx.scope = match &state {
            SessionState::Live(view) => Scope::Session(view.uid),
            _ => addr.map_or(Scope::Unknown, Scope::Client),
        };
        let request = route::Request {
            verb,
            message: message.as_ref(),
            session: &state,
            header_version: heads.version.as_deref(),
            header_method: heads.mcp_method.as_deref(),
            header_name: heads.mcp_name.as_deref(),
            resume_from: resume.map(|(replica, _)| replica),
            accepts_sse: heads.accepts_sse,
        };
        let live = Live {
            owners: &self.owners,
            replicas: &self.upstream.replicas,
            tools: &self.tools,
            bridges: &self.bridges,
            push: &self.push,
            session: match &state {
                SessionState::Live(view) => Some(view.uid),
                _ => None,
            },
            scope: ctx.scope,
        };
        let decision = route::decide(&request, &live);
        ctx.era = if era.is_modern() { MODERN } else { "legacy" };
        let mut safe = false;
        if let Some(m) = &message {
            ctx.label(m);
            let listed = ctx.tool.as_deref().and_then(|t| self.tools.listed(t));
            ctx.tool_listed = listed.is_some();
            safe = decision == Decision::AnyReplica && route::retry_is_safe(m, listed);
        }
        let (token, view) = match state {
            SessionState::Live(view) => (admitted.token, Some(view)),
            _ => (None, None),
        };
        let mut task = None;
        let target = match decision {
            Decision::Reply(reply) => {
                if verb == Verb::Delete && reply.status == 200 {
                    self.end_session(token.as_deref(), view.as_ref());
                }
                (ctx.token, ctx.session) = (token, view);
                return Ok(client.reply(&reply.with_id(ctx.id.as_deref())).await?);
            }
            Decision::Replica(id) => Some(id),
            Decision::AnyReplica => None,
            Decision::Task(id, raw) => {
                task = Some(raw);
                Some(id)
            }
            Decision::TaskGone => {
                self.tasks.request(ctx.method, Outcome::Gone);
                let reply = Failure::TaskGone.reply(ctx.id.as_deref());
                return Ok(client.reply(&reply).await?);
            }
            Decision::Bridge => {
                let (Some(v), Some(m), Some(body)) =
                    (view.as_ref(), message.as_ref(), body.as_ref())
                else {
                    unreachable!("route bridges live sessions' requests only")
                };
                let call = bridge::Call {
                    tool: ctx.tool.as_deref(),
                    body,
                    method: m.method.as_deref().unwrap_or_default(),
                    id: m.id.unwrap_or("null"),
                    view: v,
                };
                let parts = bridge::Parts {
                    bridges: &self.bridges,
                    upstream: &self.upstream,
                    tools: &self.tools,
                    streams: &self.streams,
                    limits: &self.admission.limits,
                    own_auth: self.admission.auth.is_some(),
                    caller: ctx.caller,
                };
                let tool = ctx.tool.clone();
                let call = bridge::Call {
                    tool: tool.as_deref(),
                    ..call
                };
                let held = bridge::Held {
                    replica: &mut ctx.replica,
                    stream: &mut ctx.stream,
                    log: &mut ctx.bridged,
                };
                let result = bridge::run(&parts, client, held, call).await;
                (ctx.token, ctx.session) = (token, view);
                return result;
            }
            Decision::Deliver => {
                let (Some(m), Some(body)) = (message.as_ref(), body.as_ref()) else {
                    unreachable!("answers have a body")
                };
                if let (Some(view), Some(id)) = (view.as_ref(), m.id) {
                    match self.bridges.deliver(&view.uid, id, body.clone()) {
                        Delivery::Local | Delivery::Late => {}
                        Delivery::Elsewhere => {
                            if let Some(token) = token.as_deref() {
                                let delivered = self.peers.deliver(token, body).await;
                                self.bridges.delivered_by_peer(delivered);
                            }
                        }
                    }
                }
                (ctx.token, ctx.session) = (token, view);
                return Ok(client.reply(&Reply::ok(202)).await?);
            }
            Decision::Listen => {
                let (Some(m), Some(body)) = (message.as_ref(), body.as_ref()) else {
                    unreachable!("a listen is a request")
                };
                let parts = self.push_parts(ctx);
                let id = m.id.unwrap_or("null");
                return push::stream::listen(&parts, client, &mut ctx.stream, id, body).await;
            }
            Decision::Push => {
                let uid = view.as_ref().expect("a live session").uid;
                let parts = self.push_parts(ctx);
                let result = push::stream::legacy(&parts, client, &mut ctx.stream, uid).await;
                (ctx.token, ctx.session) = (token, view);
                return result;
            }
            Decision::Subscribe(subscribe) => {
                let (Some(v), Some(body)) = (view.as_ref(), body.as_ref()) else {
                    unreachable!("route answers live sessions' requests only")
                };
                let request = push::stream::Subscription {
                    session: (v.uid, v.expires),
                    token: token.as_deref(),
                    id: ctx.id.as_deref().unwrap_or("null"),
                    subscribe,
                    body,
                    caller: ctx.caller,
                };
                let result =
                    push::stream::subscribe(&self.push, &self.peers, client, request).await;
                (ctx.token, ctx.session) = (token, view);
                return result;
            }
            Decision::CancelBridge => {
                if let (Some(view), Some(id)) =
                    (view.as_ref(), message.as_ref().and_then(|m| m.cancels))
                {
                    self.bridges.cancel(&view.uid, id);
                }
                (ctx.token, ctx.session) = (token, view);
                return Ok(client.reply(&Reply::ok(202)).await?);
            }
        };
        if target.is_none()
            && !self.peers.is_empty()
            && let (Some(token), Some(m), Some(body)) =
                (token.as_deref(), message.as_ref(), body.as_ref())
            && m.is("notifications/cancelled")
        {
            // It may name a call another process bridges; the replicas ignore what they never saw.
            self.peers.cancel(token, body);
        }
        let restored = tasks::restored(body.as_ref(), task.as_deref());
        let body = restored.as_ref().or(body.as_ref()).unwrap_or(&empty);
        let resume = resume.map(|(_, original)| original);
        let mut plan = Plan::new(body, target.as_ref(), view.as_ref(), resume);
        plan.attempt.safe = safe;
        if let (Some(id), Some(_)) = (target.as_ref(), &task) {
            plan.attempt.task = true;
            plan.choice = Choice::Task(id);
        }
        plan.rewrite.drop_authorization = self.admission.auth.is_some();
        plan.rewrite.name = task.as_deref();
        let is = |method| {
            message
                .as_ref()
                .is_some_and(|m| ctx.is_request && m.is(method))
        };
        let initialize = is("initialize") && !era.is_modern();
        let names_task = era.is_modern() && tasks::may_name(message.as_ref(), task.is_some());
        if initialize {
            if let Err(wait) = self.sessions.may_start(admitted.caller) {
                self.metrics.spent.count(Limit::SessionStarts);
                let reply = crate::ratelimit::limited("--session-rate-limit", wait);
                return Ok(client.reply(&reply.with_id(ctx.id.as_deref())).await?);
            }
            ctx.profile = Profile::of_initialize(body);
        }
        let policy = relay::Request {
            replica: "",
            token: token.as_deref(),
            modern: era.is_modern(),
            initialize,
            lists_tools: is("tools/list"),
            delete: verb == Verb::Delete,
            owned: plan.attempt.owned,
            names_task,
        };
        let session = (token.as_deref(), view.as_ref());
        let result = self.forward(client, ctx, plan, policy, session).await;
        (ctx.token, ctx.session) = (token, view);
        result
    }

    /// The exchange and relay phases.
    async fn forward(
        &self,
        client: &mut Client<'_>,
        ctx: &mut Ctx,
        plan: Plan<'_>,
        policy: relay::Request<'_>,
        (token, view): (Option<&str>, Option<&SessionView>),
    ) -> Result<(), Stop> {
        // Boxed: the exchange's state (the replica's peer, 672 bytes, and the attempt) would
        // otherwise stay in this future for as long as the stream that follows it.
        let exchanged = Box::pin(retry::exchange(
            &self.upstream,
            client,
            &plan,
            &mut ctx.replica,
        ))
        .await;
        if plan.attempt.task {
            self.tasks.exchanged(ctx.method, &exchanged);
        }
        let mut response = exchanged?;
        let replica = ctx.replica.clone().expect("a replica answered");
        let mut head = response.head();
        let (relay, shown) = Relay::head(
            &relay::Request {
                replica: &replica.id,
                ..policy
            },
            &mut head,
        );
        if shown.ends_session {
            self.end_session(token, view);
        }
        if shown.stream {
            let uid = view.map(|v| v.uid);
            match self.streams.hold(&self.admission.limits, uid, ctx.caller) {
                Ok(stream) => ctx.stream = Some(stream),
                // Refused here: dropping the replica's connection abandons the request there.
                Err(reply) => return Ok(client.reply(&reply.with_id(ctx.id.as_deref())).await?),
            }
            if let (true, Some(id)) = (ctx.is_request, &ctx.id) {
                ctx.streaming = Some(self.owners.hold(ctx.scope.key(), id, replica.id.clone()));
            }
        }
        let found = Found {
            owners: &self.owners,
            tools: &self.tools,
            sessions: &self.sessions,
            metrics: &self.metrics,
            tasks: &self.tasks,
            ctx,
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

    fn push_parts(&self, ctx: &Ctx) -> push::stream::Parts<'_> {
        push::stream::Parts {
            push: &self.push,
            streams: &self.streams,
            limits: &self.admission.limits,
            caller: ctx.caller,
        }
    }

    /// The client's session is over (DELETE, or its owner forgot it): revoked here and at peers.
    fn end_session(&self, token: Option<&str>, view: Option<&SessionView>) {
        if let (Some(token), Some(view)) = (token, view) {
            self.sessions.revoke(&view.uid, view.expires);
            self.bridges.end_session(&view.uid);
            self.push.end_session(&view.uid);
            self.metrics.count(Event::SessionRevoked);
            self.peers.announce(token);
        }
    }
}
