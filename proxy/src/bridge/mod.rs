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
//! connection is held. The call's state — the request, the last `requestState`, the questions
//! pending — lives only in this process, for as long as the client's stream: its answer's 202
//! cannot carry a result, so answer and stream must meet in one process anyway.
//!
//! [`call`] is that state and the policies deciding each step (ask, retry, re-learn, demote,
//! finish, fail; pure, with its table and tests); this module holds the calls' tables and the
//! driver that does the I/O each step asks for ([`Driver`]); [`translate`] rewrites messages
//! between the eras. Every wait has an end the
//! client reads: a per-round input timeout (keep-alive comments meanwhile), the client's
//! cancel or disconnect, the session's end, shutdown, a replica asking for what the client did
//! not declare, a replica failing, and at most 10 rounds.

pub mod call;
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
    message,
    sse::{self, Events},
    version::MODERN,
};
use pingora::http::RequestHeader;
use rand::RngCore;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::{
    answer::{self, Reply, Stop},
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
        registry::{Encoder, Source},
    },
    tools::KnownTools,
    upstream::{Replica, Replicas, attempt::Rewrite},
};
use call::{Answered, Call, Ending, Failure, Next, RoundFailure};
use id::QuestionId;

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
        out.counters(
            "mcp_edge_bridged_total",
            "Legacy calls bridged over 2026-07-28 replicas, by how they ended.",
            "outcome",
            ENDS.iter().copied().zip(&c.ends),
        );
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
        out.counters(
            "mcp_edge_bridge_answers_total",
            "Client answers to bridge questions: delivered here, via a peer, or to no waiting call (late, duplicate, forged).",
            "delivery",
            [("local", &c.local), ("peer", &c.peer), ("late", &c.late)],
        );
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

/// What a round came to.
enum Round {
    Final(Vec<u8>),
    /// The client cancelled or the call was ended while the replica worked.
    Interrupted(Event),
    /// No final message.
    Failed(RoundFailure),
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

/// Run a bridged call to its end, doing what [`Call`] decides at each step; the client's
/// answer is written here.
async fn run(
    parts: &Driver,
    client: &mut Client<'_>,
    (caller, held_by): (Option<Caller>, &mut Held),
    route::Bridged {
        view,
        method,
        id: request,
        tool,
    }: route::Bridged<'_>,
    sent: &Bytes,
) -> Result<(), Stop> {
    let bridges = &parts.bridges;
    let mut stream = Stream {
        open: false,
        progress: BTreeMap::new(),
    };
    let Some((_ticket, call_id, mut rx)) = bridges.open(view.uid, request) else {
        let refused = Ending::Failed(Failure::Refused);
        return end(bridges, client, &mut stream, request, refused, &[]).await;
    };
    // A bridged call counts as a stream from its start (it may ask at any round).
    match parts.streams.hold(&parts.limits, Some(view.uid), caller) {
        Ok(held) => held_by.stream = Some(held),
        Err(reply) => {
            bridges.ended(End::Refused);
            return client
                .reply(&reply.with_id(Some(request)))
                .await
                .map_err(Stop::from);
        }
    }
    client.abort_on_close();
    let of = call::For {
        method,
        version: &view.version,
        profile: &view.profile,
    };
    let mut call = Call::new(call_id, bridges.process, of, bridges.mode != BridgeMode::On);
    let mut served: Vec<String> = Vec::new();
    // The round's headers, the same every round: read from the call once, and again only after
    // a -32020 made the tool's Mcp-Param-* arguments be learnt anew.
    let headers_of = || {
        let declared = tool.map(|t| parts.tools.headers(t)).unwrap_or_default();
        translate::headers(sent, method, &declared)
    };
    let mut headers = headers_of();
    let ending = loop {
        let body = match call.body(sent, LOG_LEVEL) {
            Ok(body) => Bytes::from(body),
            Err(failure) => break Ending::Failed(failure),
        };
        bridges.counts.rounds.fetch_add(1, Ordering::Relaxed);
        let round = send_round(
            parts,
            client,
            held_by,
            (tool, &headers, &body),
            &mut stream,
            &mut rx,
            &mut served,
        )
        .await?;
        // The round is over: its body goes, and the replica's message once read, so that a
        // call waiting for its client's answers holds the client's request and the state to
        // echo, not every copy a round made.
        drop(body);
        let next = match round {
            Round::Final(message) => call.after_round(&message),
            Round::Interrupted(event) => break Call::stopped(event),
            Round::Failed(why) => break call.round_failed(why),
        };
        match next {
            Next::End(ending) => break ending,
            Next::Relearn => {
                let any = bridges.mode == BridgeMode::On;
                if let Some(replica) = parts.upstream.replicas.pick(&[], |r| any || r.is_modern()) {
                    relearn_tools(parts, &replica).await;
                }
                headers = headers_of();
            }
            Next::Demote => {
                if let Some(replica) = served.last().and_then(|id| parts.upstream.replicas.get(id))
                {
                    replica.set_modern(false);
                }
            }
            Next::Backoff(wait) => tokio::time::sleep(wait).await,
            Next::Ask(questions) => {
                open_stream(client, &mut stream, &served).await?;
                for (_, message) in &questions {
                    client.write_body(sse::event(message), false).await?;
                    bridges.counts.questions.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(ending) = wait(bridges, client, &mut rx, &mut call).await? {
                    break ending;
                }
            }
        }
    };
    let pending = call.take_pending();
    end(bridges, client, &mut stream, request, ending, &pending).await
}

/// The call's end, written: the questions still pending cancelled, the result or the error as
/// the last message (a cancel ends the stream without one), the end counted.
async fn end(
    bridges: &Bridges,
    client: &mut Client<'_>,
    stream: &mut Stream,
    request: &str,
    ending: Ending,
    pending: &[String],
) -> Result<(), Stop> {
    if stream.open {
        for id in pending {
            let cancelled = translate::cancelled(id, ending.reason());
            client.write_body(sse::event(&cancelled), false).await?;
        }
    }
    let message = match ending {
        Ending::Complete(result) => {
            bridges.ended(End::Complete);
            translate::response(request, &result)
        }
        Ending::Cancelled => {
            bridges.ended(End::Cancelled);
            return if stream.open {
                Ok(client.write_body(Bytes::new(), true).await?)
            } else {
                Ok(client.reply(&Reply::ok(202)).await?)
            };
        }
        Ending::Failed(failure) => {
            bridges.ended(failure.end());
            translate::error_response(request, &failure.error())
        }
    };
    if stream.open {
        Ok(client.write_body(sse::event(&message), true).await?)
    } else {
        Ok(client.write_json(&message).await?)
    }
}

/// Wait for the answers to every pending question, with keep-alives, until the input timeout:
/// `None` when all came, else how the call ends.
async fn wait(
    bridges: &Bridges,
    client: &mut Client<'_>,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    call: &mut Call<'_>,
) -> Result<Option<Ending>, Stop> {
    let deadline = Instant::now() + bridges.input_timeout;
    while call.waiting() {
        let now = Instant::now();
        if now >= deadline {
            let after = bridges.input_timeout;
            return Ok(Some(Ending::Failed(Failure::TimedOut { after })));
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
            Ok(Ok(None)) => return Ok(Some(Call::stopped(Event::End("the bridge closed")))),
            Ok(Ok(Some(Event::Answer { n, body }))) => {
                let answered = call.answer(n, &body);
                let counter = match answered {
                    Answered::Late => &bridges.counts.late,
                    _ => &bridges.counts.local,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                match answered {
                    Answered::All => return Ok(None),
                    Answered::Error(ending) => return Ok(Some(ending)),
                    Answered::Late | Answered::Stored => {}
                }
            }
            Ok(Ok(Some(event))) => return Ok(Some(Call::stopped(event))),
        }
    }
    Ok(None)
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

/// One round: the request to the next replica that speaks 2026-07-28, through the exchange
/// phase's one loop ([`exchange::run`]: another replica when the connection could not be
/// made, the same one on a fresh connection when a pooled one had gone stale, each retry and
/// ejection counted), its notifications relayed to the client as they come, its final message
/// returned.
async fn send_round(
    parts: &Driver,
    client: &mut Client<'_>,
    held_by: &mut Held,
    (tool, headers, body): (Option<&str>, &[(String, String)], &Bytes),
    stream: &mut Stream,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    served: &mut Vec<String>,
) -> Result<Round, Stop> {
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
        (Err(Stop::Answer(failure)), Some(replica))
            if !matches!(failure, answer::Failure::NoReplica) =>
        {
            return Ok(Round::Failed(RoundFailure::Failed {
                replica: replica.id.to_string(),
                failure,
            }));
        }
        (Err(Stop::Answer(_)), _) | (Ok(_), None) => {
            return Ok(Round::Failed(RoundFailure::NoReplica));
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
    /// What came first: the replica's next chunk, or something for the call.
    enum Got<C> {
        Chunk(C),
        Event(Option<Event>),
    }
    loop {
        let next = client.unless_gone(async {
            tokio::select! {
                chunk = response.chunk() => Got::Chunk(chunk),
                event = rx.recv() => Got::Event(event),
            }
        });
        let (data, end) = match next.await {
            Err(gone) => {
                parts.bridges.ended(End::ClientGone);
                return Err(Stop::Broken(gone));
            }
            // An answer while a round runs answers nothing pending (a duplicate, or one to an
            // earlier round): dropped, the first one won.
            Ok(Got::Event(Some(Event::Answer { .. }))) => {
                parts.bridges.counts.late.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // Dropping the replica's connection is the cancel in 2026-07-28.
            Ok(Got::Event(Some(event))) => return Ok(Round::Interrupted(event)),
            Ok(Got::Event(None)) => return Ok(Round::Interrupted(Event::End("the bridge closed"))),
            Ok(Got::Chunk(Err(e))) => {
                return Ok(Round::Failed(RoundFailure::BrokeOff {
                    replica: replica.id.to_string(),
                    why: e.to_string(),
                }));
            }
            Ok(Got::Chunk(Ok(chunk))) => chunk,
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
                return Ok(Round::Failed(RoundFailure::TooLarge {
                    replica: replica.id.to_string(),
                    event: true,
                    limit: ANSWER_LIMIT,
                }));
            }
        } else {
            json.extend_from_slice(&data);
            if json.len() > ANSWER_LIMIT {
                return Ok(Round::Failed(RoundFailure::TooLarge {
                    replica: replica.id.to_string(),
                    event: false,
                    limit: ANSWER_LIMIT,
                }));
            }
        }
        if end {
            break;
        }
    }
    response.finish(&parts.upstream.pool, &replica);
    let message = if is_sse { last } else { Some(json) };
    match message.filter(|m| !m.is_empty()) {
        Some(message) => Ok(Round::Final(message)),
        None => Ok(Round::Failed(RoundFailure::NoMessage {
            replica: replica.id.to_string(),
            status,
        })),
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
