//! The cross-era bridge: a legacy client's call that may ask it something (sampling,
//! elicitation, roots) runs over stateless 2026-07-28 replicas as a multi round-trip request,
//! and mcp-edge asks the client on the call's SSE stream, as a stateful legacy server would.
//!
//! ```text
//! client ── POST tools/call (legacy session) ─▶ mcp-edge ── 2026-07-28 call ─▶ replica r1
//!                                               ◀─ input_required {k: elicitation/create}
//! client ◀─ 200 text/event-stream: request id "mcp-edge:<process>:<call>:0" ─┘
//! client ── POST answer (any connection, any mcp-edge) ─▶ the process holding the call
//!        ◀─ 202                                   (a peer forwards it: POST /bridge/deliver)
//!                                               ── retry: inputResponses, requestState ─▶ r2
//!                                               ◀─ complete
//! client ◀─ event: the result in the session's legacy shape; the stream ends
//! ```
//!
//! A round is an ordinary exchange with the next healthy replica that speaks 2026-07-28,
//! through the exchange phase's one loop ([`exchange::run`] with [`Choice::Modern`]: the same
//! failover, retries and ejections, counted, as any request); between rounds no replica
//! connection is held. The call's state — the request, the last `requestState`, the questions pending —
//! lives only here, for as long as the client's stream: its answer's 202 cannot carry a
//! result, so answer and stream must meet in one process anyway. Every wait has an end the
//! client reads: a per-round input timeout (keep-alive comments meanwhile), the client's
//! cancel or disconnect, the session's end, shutdown, a replica asking for what the client did
//! not declare, a replica failing, and at most 10 rounds.

pub mod id;
pub mod translate;

use std::{
    collections::BTreeMap,
    sync::Arc,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use dashmap::DashMap;
use mcp_protocol::{
    error, message,
    sse::{self, Events},
    version::MODERN,
};
use pingora::http::RequestHeader;
use rand::RngCore;
use serde_json::{Map, Value, json, value::RawValue};
use tokio::sync::mpsc;

use crate::{
    answer::{Failure, Reply, Stop},
    budget::Caller,
    config::BridgeMode,
    downstream::client::Client,
    exchange::{self, Choice, Plan, Upstream},
    inflight::Streams,
    limits::Limits,
    request::{Held, Is},
    route::{self, Attempt},
    session::{Uid, peers::Peers},
    telemetry::{
        access::Bridged,
        registry::{Encoder, Kind, Source},
    },
    tools::KnownTools,
    upstream::{Replica, Replicas, attempt::Rewrite},
};
use id::QuestionId;
use translate::{Answer, Outcome};

/// Most rounds of one call (rmcp's and the SDKs' limit).
pub const MAX_ROUNDS: u32 = 10;
/// Largest replica answer read (JSON, or one SSE event).
const ANSWER_LIMIT: usize = 4 << 20;
/// The log level bridged calls carry: legacy stateless replicas log unconditionally, so the
/// client hears what it would hear directly.
const LOG_LEVEL: &str = "debug";

/// What reaches a waiting call.
#[derive(Debug)]
pub enum Event {
    /// The client's answer to question `n`.
    Answer { n: u32, body: Bytes },
    /// The client cancelled the call.
    Cancel,
    /// The call must end with this message (the session ended, shutdown).
    End(&'static str),
}

/// Where an answer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// To a call of this process.
    Local,
    /// A call of another process (forward it to the peers).
    Elsewhere,
    /// Nobody waits for it here (the call ended, a forged id, another session's call).
    Late,
}

struct Waiting {
    session: Uid,
    tx: mpsc::UnboundedSender<Event>,
}

/// How a bridged call ended (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum End {
    Complete,
    Error,
    Timeout,
    Cancelled,
    ClientGone,
    Refused,
}

const ENDS: [&str; 6] = [
    "complete",
    "error",
    "timeout",
    "cancelled",
    "client_gone",
    "refused",
];

#[derive(Default)]
struct Counts {
    ends: [AtomicU64; 6],
    rounds: AtomicU64,
    questions: AtomicU64,
    local: AtomicU64,
    peer: AtomicU64,
    late: AtomicU64,
    progress_dropped: AtomicU64,
}

/// The bridged calls of this process.
pub struct Bridges {
    /// This process, as question ids name it.
    process: u64,
    calls: DashMap<u128, Waiting>,
    /// (session, the client's request id) → call, for the client's cancel.
    by_request: DashMap<(Uid, Box<str>), u128>,
    in_flight: AtomicUsize,
    pub mode: BridgeMode,
    pub max: usize,
    pub input_timeout: Duration,
    counts: Counts,
}

/// A call's place in the tables, given up when the call ends however it ends.
struct Ticket<'a> {
    bridges: &'a Bridges,
    call: u128,
    key: (Uid, Box<str>),
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.bridges.calls.remove(&self.call);
        self.bridges.by_request.remove(&self.key);
        self.bridges.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Bridges {
    pub fn new(mode: BridgeMode, max: usize, input_timeout: Duration) -> Self {
        Self {
            process: rand::rng().next_u64(),
            calls: DashMap::new(),
            by_request: DashMap::new(),
            in_flight: AtomicUsize::new(0),
            mode,
            max,
            input_timeout,
            counts: Counts::default(),
        }
    }

    /// Whether calls are bridged now: `--bridge` is not off, and a healthy replica speaks
    /// 2026-07-28 (with `on`, any healthy replica is taken to).
    pub fn ready(&self, replicas: &Replicas) -> bool {
        replicas.modern_ready(self.mode, Replica::is_modern)
    }

    /// Whether the session's request `id` (raw JSON) is a call bridged here.
    pub fn is_bridged(&self, session: &Uid, id: &str) -> bool {
        self.by_request.contains_key(&(*session, id.into()))
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn open(
        &self,
        session: Uid,
        request: &str,
    ) -> Option<(Ticket<'_>, u128, mpsc::UnboundedReceiver<Event>)> {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let call = u128::from_le_bytes(bytes);
        let (tx, rx) = mpsc::unbounded_channel();
        self.calls.insert(call, Waiting { session, tx });
        let key = (session, Box::<str>::from(request));
        self.by_request.insert(key.clone(), call);
        Some((
            Ticket {
                bridges: self,
                call,
                key,
            },
            call,
            rx,
        ))
    }

    /// A client's answer (`raw_id`: its id, raw JSON) in `session`.
    pub fn deliver(&self, session: &Uid, raw_id: &str, body: Bytes) -> Delivery {
        let Some(id) = QuestionId::parse(raw_id) else {
            self.counts.late.fetch_add(1, Ordering::Relaxed);
            return Delivery::Late;
        };
        if id.process != self.process {
            return Delivery::Elsewhere;
        }
        let sent = self
            .calls
            .get(&id.call)
            .filter(|w| w.session == *session)
            .is_some_and(|w| w.tx.send(Event::Answer { n: id.n, body }).is_ok());
        if sent {
            Delivery::Local
        } else {
            self.counts.late.fetch_add(1, Ordering::Relaxed);
            Delivery::Late
        }
    }

    /// Count an answer a peer took.
    pub fn delivered_by_peer(&self, delivered: bool) {
        let counter = if delivered {
            &self.counts.peer
        } else {
            &self.counts.late
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The client cancels its call `request` (raw JSON id): `true` when it is bridged here.
    pub fn cancel(&self, session: &Uid, request: &str) -> bool {
        let Some(call) = self.by_request.get(&(*session, request.into())).map(|c| *c) else {
            return false;
        };
        self.calls
            .get(&call)
            .is_some_and(|w| w.tx.send(Event::Cancel).is_ok())
    }

    /// End every call of `session` (DELETE, a peer's revocation).
    pub fn end_session(&self, session: &Uid) {
        for w in self.calls.iter().filter(|w| w.session == *session) {
            let _ = w.tx.send(Event::End("the session ended"));
        }
    }

    /// End every call (shutdown, the grace period nearly over).
    pub fn end_all(&self) {
        for w in self.calls.iter() {
            let _ =
                w.tx.send(Event::End("mcp-edge is shutting down; repeat the call"));
        }
    }

    fn ended(&self, end: End) {
        self.counts.ends[end as usize].fetch_add(1, Ordering::Relaxed);
    }
}

impl Source for Bridges {
    /// The bridge's series.
    fn collect(&self, out: &mut Encoder) {
        let c = &self.counts;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut family = out.family(
            "mcp_edge_bridged_total",
            Kind::Counter,
            "Legacy calls bridged over 2026-07-28 replicas, by how they ended.",
        );
        for (i, label) in ENDS.iter().enumerate() {
            family.sample(&[("outcome", label)], load(&c.ends[i]));
        }
        out.gauge(
            "mcp_edge_bridges",
            "Bridged calls in flight (at most --max-bridges).",
            self.in_flight(),
        );
        out.counter(
            "mcp_edge_bridge_rounds_total",
            "Requests sent to replicas for bridged calls (one per round).",
            load(&c.rounds),
        );
        out.counter(
            "mcp_edge_bridge_questions_total",
            "Server-to-client requests the bridge sent to clients.",
            load(&c.questions),
        );
        out.counter(
            "mcp_edge_bridge_progress_dropped_total",
            "Progress notifications dropped because they did not increase across rounds.",
            load(&c.progress_dropped),
        );
        let mut family = out.family(
            "mcp_edge_bridge_answers_total",
            Kind::Counter,
            "Client answers to bridge questions: delivered here, via a peer, or to no waiting call (late, duplicate, forged).",
        );
        for (label, v) in [("local", &c.local), ("peer", &c.peer), ("late", &c.late)] {
            family.sample(&[("delivery", label)], load(v));
        }
    }
}

/// The bridge as the edge calls it: what it needs of the process, from its construction (the
/// edge, which the bridge does not import, only dispatches to it).
pub struct Driver {
    pub bridges: Arc<Bridges>,
    pub upstream: Arc<Upstream>,
    pub tools: Arc<KnownTools>,
    pub streams: Arc<Streams>,
    pub limits: Limits,
    /// mcp-edge checks bearer tokens itself: the client's `Authorization` stays here.
    pub own_auth: bool,
    /// Where an answer for a call of another process goes.
    pub peers: Arc<Peers>,
}

/// What a round's answer came to.
enum Round {
    Final(Vec<u8>),
    /// The client cancelled or the call was ended while the replica worked.
    Interrupted(Event),
}

/// The stream to the client, once open.
struct Stream {
    open: bool,
    /// Highest progress relayed, per progress token.
    progress: BTreeMap<String, f64>,
}

impl Driver {
    /// Run a bridged call to its end; the client's answer is written here.
    pub async fn run(
        &self,
        client: &mut Client<'_>,
        (is, held): (&Is, &mut Held),
        call: route::Bridged<'_>,
        body: &Bytes,
    ) -> Result<(), Stop> {
        run(self, client, (is.caller, held), call, body).await
    }

    /// A client's answer (`id`) to a question of a bridged call: to the call if it waits here
    /// and is the session's, else to the peers (the process that asked takes it); 202 whatever
    /// came of it (a late answer is dropped).
    pub async fn deliver(
        &self,
        client: &mut Client<'_>,
        is: &Is,
        id: &str,
        body: &Bytes,
    ) -> Result<(), Stop> {
        if let Some(view) = is.view()
            && self.bridges.deliver(&view.uid, id, body.clone()) == Delivery::Elsewhere
            && let Some(token) = is.token.as_deref()
        {
            let delivered = self.peers.deliver(token, body).await;
            self.bridges.delivered_by_peer(delivered);
        }
        Ok(client.reply(&Reply::ok(202)).await?)
    }

    /// The client cancels its bridged call `id`: it ends (its stream says so), 202.
    pub async fn cancel(
        &self,
        client: &mut Client<'_>,
        session: Uid,
        id: &str,
    ) -> Result<(), Stop> {
        self.bridges.cancel(&session, id);
        Ok(client.reply(&Reply::ok(202)).await?)
    }
}

/// Run a bridged call to its end; the client's answer is written here.
async fn run(
    parts: &Driver,
    client: &mut Client<'_>,
    (caller, held_by): (Option<Caller>, &mut Held),
    call: route::Bridged<'_>,
    sent: &Bytes,
) -> Result<(), Stop> {
    let bridges = &parts.bridges;
    let Some((_ticket, call_id, mut rx)) = bridges.open(call.view.uid, call.id) else {
        bridges.ended(End::Refused);
        let error = translate::error(
            error::INTERNAL_ERROR,
            "too many bridged calls in flight at mcp-edge; try again shortly",
            None,
        );
        return Ok(client
            .write_json(&translate::error_response(call.id, &error))
            .await?);
    };
    // A bridged call counts as a stream from its start (it may ask at any round).
    match parts
        .streams
        .hold(&parts.limits, Some(call.view.uid), caller)
    {
        Ok(held) => held_by.stream = Some(held),
        Err(reply) => {
            bridges.ended(End::Refused);
            return client
                .reply(&reply.with_id(Some(call.id)))
                .await
                .map_err(Stop::from);
        }
    }
    client.abort_on_close();
    let meta = translate::Meta {
        profile: &call.view.profile,
        version: &call.view.version,
        log_level: LOG_LEVEL,
    };
    let mut stream = Stream {
        open: false,
        progress: BTreeMap::new(),
    };
    let mut state: Option<Box<RawValue>> = None;
    let mut answers: Option<Map<String, Value>> = None;
    let mut asked = 0u32;
    let mut relearned = false;
    let mut round = 1u32;
    let mut backoff = Duration::from_millis(50);
    let mut served: Vec<String> = Vec::new();
    // The round's headers, the same every round: read from the call once, and again only after
    // a -32020 made the tool's Mcp-Param-* arguments be learnt anew.
    let headers_of = || {
        let declared = call
            .tool
            .map(|t| parts.tools.headers(t))
            .unwrap_or_default();
        translate::headers(sent, call.method, &declared)
    };
    let mut headers = headers_of();
    loop {
        let retry_id = format!("{call_id:032x}.{round}");
        let retry = answers.as_ref().map(|responses| translate::Retry {
            id: &retry_id,
            responses,
            state: state.as_deref(),
        });
        let body = match translate::modern_body(sent, &meta, retry.as_ref()) {
            Ok(body) => Bytes::from(body),
            Err(why) => {
                let why = format!("mcp-edge cannot bridge this call: {why}");
                return fail_internal(bridges, client, &mut stream, call.id, &why, None).await;
            }
        };
        bridges.counts.rounds.fetch_add(1, Ordering::Relaxed);
        let message = match send_round(
            parts,
            client,
            held_by,
            call.tool,
            &headers,
            &body,
            &mut stream,
            &mut rx,
            &mut served,
        )
        .await?
        {
            Ok(Round::Final(message)) => message,
            Ok(Round::Interrupted(event)) => {
                return interrupted(bridges, client, &mut stream, call.id, event, &[]).await;
            }
            Err(why) => {
                return fail_internal(
                    bridges,
                    client,
                    &mut stream,
                    call.id,
                    &why,
                    Some(json!({"round": round})),
                )
                .await;
            }
        };
        // The round is over: its body goes, and the replica's message once read, so that a
        // call waiting for its client's answers holds the client's request and the state to
        // echo, not every copy a round made.
        drop(body);
        let outcome = translate::outcome(&message);
        drop(message);
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(why) => {
                return fail_internal(bridges, client, &mut stream, call.id, &why, None).await;
            }
        };
        match outcome {
            Outcome::Complete(result) => {
                bridges.ended(End::Complete);
                let result = translate::downgrade(call.method, &result);
                return finish(client, &mut stream, &translate::response(call.id, &result)).await;
            }
            Outcome::Error(error::HEADER_MISMATCH, _) if !relearned => {
                // Rejected before it ran: learn the tool's headers again, and send it once more.
                relearned = true;
                let any = parts.bridges.mode == BridgeMode::On;
                if let Some(replica) = parts.upstream.replicas.pick(&[], |r| any || r.is_modern()) {
                    relearn_tools(parts, &replica).await;
                }
                headers = headers_of();
                continue;
            }
            Outcome::Error(error::UNSUPPORTED_PROTOCOL_VERSION, _)
                if answers.is_none() && parts.bridges.mode != BridgeMode::On =>
            {
                // It does not speak 2026-07-28 after all (refused before running): it takes no
                // more bridged rounds, and the round goes to another replica.
                if let Some(replica) = served.last().and_then(|id| parts.upstream.replicas.get(id))
                {
                    replica.set_modern(false);
                }
                continue;
            }
            Outcome::Error(_, error) => {
                return fail(bridges, End::Error, client, &mut stream, call.id, error).await;
            }
            Outcome::InputRequired {
                requests,
                state: next,
            } => {
                if round >= MAX_ROUNDS {
                    return fail_internal(
                        bridges,
                        client,
                        &mut stream,
                        call.id,
                        &format!("the call needed more than {MAX_ROUNDS} rounds of input"),
                        None,
                    )
                    .await;
                }
                round += 1;
                state = next;
                if requests.is_empty() {
                    // The replica sheds load: ask again later with its state only.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(250));
                    answers = Some(Map::new());
                    continue;
                }
                // Check every question before asking any.
                let mut questions = Vec::with_capacity(requests.len());
                for (key, request) in &requests {
                    let qid = QuestionId {
                        process: bridges.process,
                        call: call_id,
                        n: asked,
                    };
                    asked += 1;
                    let raw = qid.to_json();
                    match translate::ask(&raw, request, &call.view.version, &call.view.profile) {
                        Ok(bytes) => questions.push((
                            qid.n,
                            key.clone(),
                            raw,
                            bytes,
                            request.get("method").cloned(),
                        )),
                        Err(why) => {
                            return fail_internal(
                                bridges,
                                client,
                                &mut stream,
                                call.id,
                                &why,
                                Some(json!({"inputKey": key})),
                            )
                            .await;
                        }
                    }
                }
                open_stream(client, &mut stream, &served).await?;
                for (_, _, _, bytes, _) in &questions {
                    client.write_body(sse::event(bytes), false).await?;
                    bridges.counts.questions.fetch_add(1, Ordering::Relaxed);
                }
                let mut pending: BTreeMap<u32, (String, String, Option<Value>)> = questions
                    .into_iter()
                    .map(|(n, key, raw, _, method)| (n, (key, raw, method)))
                    .collect();
                match wait(bridges, client, &mut rx, &mut pending).await? {
                    Waited::All(got) => answers = Some(got),
                    Waited::Stopped(event) => {
                        let ids: Vec<String> =
                            pending.values().map(|(_, raw, _)| raw.clone()).collect();
                        return interrupted(bridges, client, &mut stream, call.id, event, &ids)
                            .await;
                    }
                    Waited::ClientError { key, method, error } => {
                        cancel_pending(
                            client,
                            &pending,
                            "another question of this call was answered with an error",
                        )
                        .await?;
                        let data = json!({"inputKey": key, "method": method, "clientError": error});
                        let error = translate::error(
                            error::INTERNAL_ERROR,
                            &format!(
                                "the client answered input {key:?} with an error; the call was abandoned"
                            ),
                            Some(data),
                        );
                        return fail(bridges, End::Error, client, &mut stream, call.id, error)
                            .await;
                    }
                    Waited::TimedOut => {
                        cancel_pending(client, &pending, "timed out").await?;
                        let secs = bridges.input_timeout.as_secs();
                        let error = translate::error(
                            error::REQUEST_TIMEOUT,
                            &format!(
                                "Request timed out: the client did not answer within {secs} s"
                            ),
                            None,
                        );
                        return fail(bridges, End::Timeout, client, &mut stream, call.id, error)
                            .await;
                    }
                }
            }
        }
    }
}

/// The call ended while it waited: the client's cancel ends the stream without a result (what
/// a legacy receiver expects), anything else with an error.
async fn interrupted(
    bridges: &Bridges,
    client: &mut Client<'_>,
    stream: &mut Stream,
    id: &str,
    event: Event,
    pending: &[String],
) -> Result<(), Stop> {
    let reason = match event {
        Event::Cancel => "the call was cancelled",
        Event::End(why) => why,
        Event::Answer { .. } => "unexpected answer",
    };
    for raw in pending {
        if stream.open {
            client
                .write_body(sse::event(&translate::cancelled(raw, reason)), false)
                .await?;
        }
    }
    match event {
        Event::Cancel => {
            bridges.ended(End::Cancelled);
            if stream.open {
                client.write_body(Bytes::new(), true).await?;
                Ok(())
            } else {
                client
                    .reply(&crate::answer::Reply::ok(202))
                    .await
                    .map_err(Stop::from)
            }
        }
        _ => fail_internal(bridges, client, stream, id, reason, None).await,
    }
}

/// End the call with an error for the client's request `id`, counted as `end`.
async fn fail(
    bridges: &Bridges,
    end: End,
    client: &mut Client<'_>,
    stream: &mut Stream,
    id: &str,
    error: Box<RawValue>,
) -> Result<(), Stop> {
    bridges.ended(end);
    finish(client, stream, &translate::error_response(id, &error)).await
}

/// [`fail`] with the bridge's own error (-32603, `message`, `data`), counted as an error.
async fn fail_internal(
    bridges: &Bridges,
    client: &mut Client<'_>,
    stream: &mut Stream,
    id: &str,
    message: &str,
    data: Option<Value>,
) -> Result<(), Stop> {
    let error = translate::error(error::INTERNAL_ERROR, message, data);
    fail(bridges, End::Error, client, stream, id, error).await
}

async fn cancel_pending(
    client: &mut Client<'_>,
    pending: &BTreeMap<u32, (String, String, Option<Value>)>,
    reason: &str,
) -> Result<(), Stop> {
    for (_, raw, _) in pending.values() {
        client
            .write_body(sse::event(&translate::cancelled(raw, reason)), false)
            .await?;
    }
    Ok(())
}

enum Waited {
    All(Map<String, Value>),
    Stopped(Event),
    ClientError {
        key: String,
        method: Option<Value>,
        error: Value,
    },
    TimedOut,
}

/// Wait for the answers to every pending question, with keep-alives, until the input timeout.
async fn wait(
    bridges: &Bridges,
    client: &mut Client<'_>,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    pending: &mut BTreeMap<u32, (String, String, Option<Value>)>,
) -> Result<Waited, Stop> {
    let deadline = Instant::now() + bridges.input_timeout;
    let mut answers = Map::new();
    while !pending.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Waited::TimedOut);
        }
        // A keep-alive comment this often while the client thinks.
        let step = sse::KEEP_ALIVE_EVERY.min(deadline - now);
        match client
            .unless_gone(tokio::time::timeout(step, rx.recv()))
            .await
        {
            Err(gone) => {
                bridges.ended(End::ClientGone);
                return Err(Stop::Broken(gone));
            }
            Ok(Err(_)) => {
                if Instant::now() < deadline {
                    client.keep_alive().await?;
                }
            }
            Ok(Ok(None)) => return Ok(Waited::Stopped(Event::End("the bridge closed"))),
            Ok(Ok(Some(Event::Answer { n, body }))) => {
                let Some((key, _, method)) = pending.get(&n).cloned() else {
                    bridges.counts.late.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                match translate::answer(&body) {
                    Some(Answer::Result(result)) => {
                        bridges.counts.local.fetch_add(1, Ordering::Relaxed);
                        pending.remove(&n);
                        answers.insert(key, result);
                    }
                    Some(Answer::Error(error)) => {
                        bridges.counts.local.fetch_add(1, Ordering::Relaxed);
                        pending.remove(&n);
                        return Ok(Waited::ClientError { key, method, error });
                    }
                    None => {
                        bridges.counts.late.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(Ok(Some(event))) => return Ok(Waited::Stopped(event)),
        }
    }
    Ok(Waited::All(answers))
}

/// Open the SSE response to the client, once (counted against the stream limits).
async fn open_stream(
    client: &mut Client<'_>,
    stream: &mut Stream,
    served: &[String],
) -> Result<(), Stop> {
    if stream.open {
        return Ok(());
    }
    client
        .write_sse_head(served.first().map(String::as_str))
        .await?;
    stream.open = true;
    Ok(())
}

/// The last message: an SSE event that ends the stream, or a JSON answer.
async fn finish(client: &mut Client<'_>, stream: &mut Stream, message: &[u8]) -> Result<(), Stop> {
    if stream.open {
        client.write_body(sse::event(message), true).await?;
        Ok(())
    } else {
        Ok(client.write_json(message).await?)
    }
}

/// One round: the request to the next replica that speaks 2026-07-28, through the exchange
/// phase's one loop ([`exchange::run`]: another replica when the connection could not be
/// made, the same one on a fresh connection when a pooled one had gone stale, each retry and
/// ejection counted), its notifications relayed to the client as they come, its final message
/// returned. `Ok(Err(why))`: no replica answered it.
#[allow(clippy::too_many_arguments)]
async fn send_round(
    parts: &Driver,
    client: &mut Client<'_>,
    held_by: &mut Held,
    tool: Option<&str>,
    headers: &[(String, String)],
    body: &Bytes,
    stream: &mut Stream,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    served: &mut Vec<String>,
) -> Result<Result<Round, String>, Stop> {
    let head = round_head(client.header(), headers, parts.own_auth);
    let plan = Plan {
        choice: Choice::Modern {
            any: parts.bridges.mode == BridgeMode::On,
        },
        attempt: Attempt {
            safe: tool.is_some_and(|t| parts.tools.listed(t).is_some_and(|l| l.safe)),
            ..Attempt::default()
        },
        body,
        head: Some(&head),
        rewrite: Rewrite {
            drop_authorization: parts.own_auth,
            ..Rewrite::default()
        },
        path: None,
    };
    // The exchange writes the replica it tries into the call's (the log and metrics name it); a
    // round that finds none leaves the one before it.
    let answered = exchange::run(&parts.upstream, client, &plan, &mut held_by.replica).await;
    let (replica, mut response) = match (answered, held_by.replica.clone()) {
        (Ok(response), Some(replica)) => (replica, response),
        (Err(Stop::Answer(failure)), Some(replica)) if !matches!(failure, Failure::NoReplica) => {
            return Ok(Err(format!(
                "the replica {} failed this round: {}",
                replica.id,
                failure
                    .reply(None)
                    .error
                    .map(|e| e.message)
                    .unwrap_or_default()
            )));
        }
        (Err(Stop::Answer(_)), _) | (Ok(_), None) => {
            return Ok(Err(
                "no healthy replica speaking 2026-07-28 is left to run this call".into(),
            ));
        }
        (Err(stop), _) => return Err(stop),
    };
    served.push(replica.id.to_string());
    held_by.bridged = Some(Box::new(Bridged {
        rounds: served.len() as u32,
        replicas: served.join(","),
    }));
    let head = response.head();
    let status = head.status.as_u16();
    let is_sse = mcp_protocol::headers::is_sse(&head.headers);
    let mut events = Events::default();
    let mut json = Vec::new();
    let mut last = None;
    loop {
        let next = client.unless_gone(async {
            tokio::select! {
                chunk = response.chunk() => Ok(chunk),
                event = rx.recv() => Err(event),
            }
        });
        let (data, end) = match next.await {
            Err(gone) => {
                parts.bridges.ended(End::ClientGone);
                return Err(Stop::Broken(gone));
            }
            // An answer while a round runs answers nothing pending (a duplicate, or one to an
            // earlier round): dropped, the first one won.
            Ok(Err(Some(Event::Answer { .. }))) => {
                parts.bridges.counts.late.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // Dropping the replica's connection is the cancel in 2026-07-28.
            Ok(Err(Some(event))) => return Ok(Ok(Round::Interrupted(event))),
            Ok(Err(None)) => return Ok(Ok(Round::Interrupted(Event::End("the bridge closed")))),
            Ok(Ok(Err(e))) => {
                return Ok(Err(format!(
                    "the replica {} broke off its answer: {e}",
                    replica.id
                )));
            }
            Ok(Ok(Ok(chunk))) => chunk,
        };
        let data = data.unwrap_or_default();
        if is_sse {
            for message in events.feed(&data, end) {
                if message::is_response(&message) {
                    last = Some(message);
                } else {
                    relay_notification(parts, client, stream, served, &message).await?;
                }
            }
            if events.pending() > ANSWER_LIMIT {
                return Ok(Err(format!(
                    "the replica {} sent an event larger than {ANSWER_LIMIT} bytes",
                    replica.id
                )));
            }
        } else {
            json.extend_from_slice(&data);
            if json.len() > ANSWER_LIMIT {
                return Ok(Err(format!(
                    "the replica {} answered with more than {ANSWER_LIMIT} bytes",
                    replica.id
                )));
            }
        }
        if end {
            break;
        }
    }
    response.finish(&parts.upstream.pool, &replica);
    let message = if is_sse { last } else { Some(json) };
    match message.filter(|m| !m.is_empty()) {
        Some(message) => Ok(Ok(Round::Final(message))),
        None => Ok(Err(format!(
            "the replica {} answered HTTP {status} without a JSON-RPC message",
            replica.id
        ))),
    }
}

/// A replica's notification during a round, relayed to the client (progress only when it
/// rises; server→client requests are not a 2026-07-28 thing and are dropped).
async fn relay_notification(
    parts: &Driver,
    client: &mut Client<'_>,
    stream: &mut Stream,
    served: &[String],
    message: &[u8],
) -> Result<(), Stop> {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
    }
    if serde_json::from_slice::<Peek<'_>>(message).is_ok_and(|p| p.id.is_some()) {
        tracing::warn!("a replica sent a request on a bridged call's stream; dropped");
        return Ok(());
    }
    if let Some((token, value)) = translate::progress(message) {
        match stream.progress.get(&token) {
            Some(&highest) if value <= highest => {
                parts
                    .bridges
                    .counts
                    .progress_dropped
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            _ => {
                stream.progress.insert(token, value);
            }
        }
    }
    open_stream(client, stream, served).await?;
    client.write_body(sse::event(message), false).await?;
    Ok(())
}

/// A round's request head: the call in 2026-07-28 form, whatever the client sent (the exchange
/// sets each replica's authority and path).
fn round_head(
    client: &RequestHeader,
    headers: &[(String, String)],
    own_auth: bool,
) -> RequestHeader {
    let mut head = RequestHeader::build("POST", b"/", Some(8)).expect("a static request head");
    let _ = head.insert_header("content-type", mcp_protocol::headers::JSON);
    let _ = head.insert_header("accept", "application/json, text/event-stream");
    let _ = head.insert_header(mcp_protocol::headers::PROTOCOL_VERSION, MODERN);
    for (name, value) in headers {
        let _ = head.insert_header(name.clone(), value.as_str());
    }
    if !own_auth && let Some(auth) = client.headers.get("authorization") {
        let _ = head.insert_header("authorization", auth.clone());
    }
    head
}

/// Read the tools of `replica` again (a round was refused for its `Mcp-Param-*` headers).
async fn relearn_tools(parts: &Driver, replica: &Replica) {
    match crate::upstream::health::list_tools(replica, Duration::from_secs(5)).await {
        Ok(body) => {
            parts.tools.learn(&body);
        }
        Err(e) => tracing::warn!(replica = %replica.id, "tools/list not read again: {e}"),
    }
}
