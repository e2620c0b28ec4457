//! The routing decision, in one place and pure: a request (HTTP method, classified body,
//! session, headers) plus what is live right now ([`Facts`]) → answer locally, any replica
//! (round robin), or one particular replica.
//!
//! | request | decision |
//! |---|---|
//! | POST, 2026-07-28 | header/body mismatch → 400 (-32020); else any replica (an incoming session id is ignored) |
//! | POST `subscriptions/listen`, 2026-07-28, when a replica speaks it | served by mcp-edge's fan-out: one listen per replica per process, shared by every client |
//! | POST `tasks/get`, `tasks/update`, `tasks/cancel`, 2026-07-28, declaring the tasks extension, for a task id mcp-edge gave out (`<replica>/<id>`) | that replica, with its own id back in the body and `Mcp-Name`, while it answers (draining counts, also after it left the set); else -32602 here: the task is gone with its replica |
//! | POST `initialize` | any replica (the response gets a minted session) |
//! | POST with an unknown/expired/ended session | 404: the client must re-initialize |
//! | POST in a session owned by a stateful replica | that replica (gone → 404) |
//! | POST legacy `tools/call`, `prompts/get`, `resources/read` in a session whose client declared sampling, elicitation or roots, accepting SSE, when a replica speaks 2026-07-28 | bridged: mcp-edge runs the call as multi round-trip requests, asking the client on the call's stream |
//! | POST answer to a question of a bridged call (`"mcp-edge:…"` id) | delivered to the call (here or at a peer), 202 |
//! | POST `notifications/cancelled` for a bridged call of this process | the call ends, 202 |
//! | POST legacy `resources/subscribe` / `unsubscribe` in a session not owned by a stateful replica, when a replica speaks 2026-07-28 | answered by mcp-edge (and told to its peers): the session's GET stream hears the URI's updates |
//! | POST answer to a server→client request | the replica that asked (gone → 404) |
//! | POST `notifications/cancelled` for a streaming request | the replica running it (gone → 202, nothing left to cancel) |
//! | POST batch | any replica in 2025-03-26, else 400 |
//! | other POST | any replica |
//! | GET in a session owned by a stateful replica | that replica: its listen stream, or a resumption (gone → 404) |
//! | GET with an unknown/expired/ended session | 404 |
//! | GET with our `Last-Event-ID` | the replica that produced the stream (gone → 404) |
//! | GET in a live session, when a replica speaks 2026-07-28 | the session's listen stream, fed by the fan-out (one per session per process, else 409; 406 without `Accept: text/event-stream`) |
//! | GET | 405: the proxy offers no listen stream (stateless legacy replicas would hold it open silently) |
//! | DELETE with a live session | ends it at the proxy (200), or at its owning replica |
//! | DELETE otherwise | 404 (unknown session) or 405 (no session) |

use mcp_protocol::{
    self as mcp, Era, Kind, Message,
    error::{HEADER_MISMATCH, INVALID_REQUEST},
    version::DEFAULT_LEGACY,
};
use pingora::Error;

use crate::{
    answer::{Failure, Reply, is_timeout},
    session::{ReplicaId, SessionView, Uid},
    tools::Listed,
};

pub use crate::session::SessionState;

/// Where a request goes, with what routing checked on the way (borrowed from the request):
/// whoever serves a decision has what it needs and checks nothing again.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'a> {
    /// Answer at the proxy; no replica sees the request.
    Reply(Reply),
    /// A DELETE of this live session, which no replica owns: it ends here, 200.
    End(&'a SessionView),
    /// The next healthy replica, round robin.
    AnyReplica,
    /// This replica and no other.
    Replica(ReplicaId),
    /// A legacy call run by the bridge over 2026-07-28 replicas ([`crate::bridge`]).
    Bridge(Bridged<'a>),
    /// A client's answer (request `id`) to a bridged call's question: delivered where the
    /// call waits, if it is the request's session's, 202.
    Deliver { id: &'a str },
    /// The client cancels its bridged call `id` of this process: it ends, 202.
    CancelBridge { session: Uid, id: &'a str },
    /// A 2026-07-28 `subscriptions/listen` (request `id`), served by the fan-out
    /// ([`crate::push`]).
    Listen { id: &'a str },
    /// A legacy session's GET stream, fed by the fan-out.
    Push(Uid),
    /// A legacy `resources/subscribe` (`true`) or `unsubscribe` of a live session, answered by
    /// the fan-out.
    Subscribe {
        view: &'a SessionView,
        subscribe: bool,
    },
    /// A task request for a task of this replica ([`mcp::tasks`]), and the replica's own id.
    Task(ReplicaId, &'a str),
    /// A task request for a task whose replica is gone: -32602 here.
    TaskGone,
}

/// A legacy call the bridge takes, as routing found it: a request of a live session that no
/// replica owns, whose client can be asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bridged<'a> {
    pub view: &'a SessionView,
    /// One of [`BRIDGED_METHODS`].
    pub method: &'a str,
    /// The client's request id, raw JSON.
    pub id: &'a str,
    /// The tool a `tools/call` names.
    pub tool: Option<&'a str>,
}

/// The HTTP verb, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Post,
    Get,
    Delete,
    Other,
}

/// The request as routing sees it; everything borrowed from the request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub verb: Verb,
    pub message: Option<&'a Message<'a>>,
    pub session: &'a SessionState,
    pub header_version: Option<&'a str>,
    pub header_method: Option<&'a str>,
    pub header_name: Option<&'a str>,
    /// The replica named by a `Last-Event-ID` the proxy issued.
    pub resume_from: Option<&'a str>,
    /// The replica's own event id in it (sent on to the replica).
    pub resume_original: Option<&'a str>,
    /// `Accept` allows `text/event-stream`.
    pub accepts_sse: bool,
}

/// Whether a request whose connection broke before any response byte may be sent again to
/// another replica:
///
/// | request | repeated? |
/// |---|---|
/// | `initialize`, `server/discover`, `ping`, the `*/list` methods, `resources/read`, `prompts/get`, `completion/complete` | yes |
/// | `tools/call` of a tool whose annotations (seen in a `tools/list` result through this proxy) declare `readOnlyHint` or `idempotentHint` | yes |
/// | any other request, any notification, response or batch | no: 502, the client decides |
///
/// Requests pinned to one replica (a stateful owner, a stream's replica) never move. `tool`:
/// what the replicas listed of the tool a `tools/call` names.
pub fn retry_is_safe(message: &Message<'_>, tool: Option<Listed>) -> bool {
    if message.kind != Kind::Request {
        return false;
    }
    match message.method.as_deref() {
        Some("tools/call") => tool.is_some_and(|t| t.safe),
        Some(method) => mcp::methods::is_safe(method),
        None => false,
    }
}

/// Live state routing consults, scoped to this request's session or connection.
pub trait Facts {
    /// The replica streaming the response to client request `id`.
    fn streaming_owner(&self, id: &str) -> Option<ReplicaId>;
    /// The replica that sent server→client request `id` and waits for its answer.
    fn answer_owner(&self, id: &str) -> Option<ReplicaId>;
    /// Whether `replica` is still in the replica set.
    fn is_alive(&self, replica: &str) -> bool;
    /// Whether the bridge may run now (`--bridge` not off, a healthy replica speaks 2026-07-28).
    fn bridge_ready(&self) -> bool;
    /// Whether client request `id` is a call this process is bridging.
    fn bridged(&self, id: &str) -> bool;
    /// Whether the fan-out serves listen streams (`--push` not off, a healthy replica speaks
    /// 2026-07-28).
    fn push_ready(&self) -> bool;
    /// Whether `replica` answers (healthy, or draining; in the set or departed): its tasks' home.
    fn task_home(&self, replica: &str) -> bool;
}

/// Where a 2026-07-28 task request goes: `None` when it names no task mcp-edge gave out (or
/// does not declare the extension): any replica answers it (unknown task, or -32021).
fn task<'a>(message: &'a Message<'a>, facts: &dyn Facts) -> Option<Decision<'a>> {
    let names_task = message.kind == Kind::Request
        && message.declares_tasks
        && message
            .method
            .as_deref()
            .is_some_and(|m| mcp::tasks::METHODS.contains(&m));
    if !names_task {
        return None;
    }
    let (replica, raw) = mcp::tasks::parse(message.name.as_deref()?)?;
    Some(if facts.task_home(replica) {
        Decision::Task(replica.into(), raw)
    } else {
        Decision::TaskGone
    })
}

/// The methods a 2026-07-28 server may answer with `input_required`.
const BRIDGED_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// The call, when a legacy request is bridged (see the module's table).
fn bridged<'a>(
    request: &Request<'_>,
    message: &'a Message<'a>,
    view: &'a SessionView,
    facts: &dyn Facts,
) -> Option<Bridged<'a>> {
    let method = message
        .method
        .as_deref()
        .filter(|m| BRIDGED_METHODS.contains(m))?;
    let asks = message.kind == Kind::Request
        && view.owner.is_none()
        && view.profile.can_be_asked()
        && request.accepts_sse
        && facts.bridge_ready();
    asks.then(|| Bridged {
        view,
        method,
        id: message.id.unwrap_or("null"),
        tool: message.name.as_deref().filter(|_| method == "tools/call"),
    })
}

/// 404 for a session that no longer exists: the client must send initialize again.
fn session_gone<'a>(id: Option<&str>) -> Decision<'a> {
    Decision::Reply(Failure::SessionGone.reply(id))
}

/// The routing decision for one request.
pub fn decide<'a>(request: &Request<'a>, facts: &dyn Facts) -> Decision<'a> {
    match request.verb {
        Verb::Get => resume(request, facts),
        Verb::Delete => delete(request),
        Verb::Other => Decision::Reply(
            Reply::error(
                405,
                INVALID_REQUEST,
                "only POST, GET and DELETE are defined on an MCP endpoint",
            )
            .with_header("Allow", mcp_protocol::cors::ALLOW),
        ),
        Verb::Post => match request.message {
            Some(message) => post(request, message, facts),
            None => Decision::Reply(Reply::error(
                400,
                INVALID_REQUEST,
                "a POST needs a JSON-RPC message body",
            )),
        },
    }
}

fn owner_or_gone<'a>(owner: &ReplicaId, facts: &dyn Facts, id: Option<&str>) -> Decision<'a> {
    if facts.is_alive(owner) {
        Decision::Replica(owner.clone())
    } else {
        session_gone(id)
    }
}

fn post<'a>(request: &Request<'a>, message: &'a Message<'a>, facts: &dyn Facts) -> Decision<'a> {
    let era = mcp::era(Some(message), request.header_version);
    if let Era::Modern(_) = era {
        if let Some(reason) = mcp::header_mismatch(
            message,
            request.header_version,
            request.header_method,
            request.header_name,
        ) {
            return Decision::Reply(Reply::error(400, HEADER_MISMATCH, reason).with_id(message.id));
        }
        if message.kind == Kind::Batch {
            return Decision::Reply(Reply::error(
                400,
                INVALID_REQUEST,
                "JSON-RPC batches are not allowed in 2026-07-28",
            ));
        }
        if message.kind == Kind::Request && message.is("subscriptions/listen") && facts.push_ready()
        {
            return Decision::Listen {
                id: message.id.unwrap_or("null"),
            };
        }
        if let Some(decision) = task(message, facts) {
            return decision;
        }
        // Sessions do not exist in this revision: an incoming Mcp-Session-Id is ignored.
        return Decision::AnyReplica;
    }
    if message.is_initialize() {
        return Decision::AnyReplica;
    }
    if message.kind == Kind::Response
        && let Some(id) = message.id.filter(|id| crate::bridge::id::is_bridge_id(id))
    {
        // Whatever the session: the delivery checks that the call is the answering session's.
        return Decision::Deliver { id };
    }
    let session_version = match request.session {
        SessionState::Unknown => return session_gone(message.id),
        SessionState::Live(view) => {
            if let Some(owner) = &view.owner {
                return owner_or_gone(&owner.replica, facts, message.id);
            }
            if let Some(call) = bridged(request, message, view, facts) {
                return Decision::Bridge(call);
            }
            if message.kind == Kind::Request {
                let subscribe = match message.method.as_deref() {
                    Some("resources/subscribe") => Some(true),
                    Some("resources/unsubscribe") => Some(false),
                    _ => None,
                };
                if let Some(subscribe) = subscribe
                    && facts.push_ready()
                {
                    return Decision::Subscribe { view, subscribe };
                }
            }
            Some(view.version.as_str())
        }
        SessionState::None => None,
    };
    match message.kind {
        Kind::Batch => {
            let version = session_version
                .or(request.header_version)
                .unwrap_or(DEFAULT_LEGACY);
            if version == DEFAULT_LEGACY {
                Decision::AnyReplica
            } else {
                Decision::Reply(Reply::error(
                    400,
                    INVALID_REQUEST,
                    format!(
                        "JSON-RPC batches are only allowed in protocol 2025-03-26, this session speaks {version}"
                    ),
                ))
            }
        }
        Kind::Response => match message.id.and_then(|id| facts.answer_owner(id)) {
            Some(owner) if facts.is_alive(&owner) => Decision::Replica(owner),
            Some(_) => Decision::Reply(
                Reply::error(
                    404,
                    INVALID_REQUEST,
                    "the replica that asked this question is gone; its request was abandoned",
                )
                .with_id(message.id),
            ),
            None => Decision::AnyReplica,
        },
        Kind::Notification if message.is("notifications/cancelled") => {
            if let (SessionState::Live(view), Some(id)) = (request.session, message.cancels)
                && facts.bridged(id)
            {
                return Decision::CancelBridge {
                    session: view.uid,
                    id,
                };
            }
            match message.cancels.and_then(|id| facts.streaming_owner(id)) {
                Some(owner) if facts.is_alive(&owner) => Decision::Replica(owner),
                // The stream died with its replica: nothing is left to cancel.
                Some(_) => Decision::Reply(Reply::ok(202)),
                None => Decision::AnyReplica,
            }
        }
        _ => Decision::AnyReplica,
    }
}

fn resume<'a>(request: &Request<'a>, facts: &dyn Facts) -> Decision<'a> {
    // A stateful replica holds its session's listen stream (and resumes its own streams).
    if let SessionState::Live(SessionView {
        owner: Some(owner), ..
    }) = request.session
    {
        return owner_or_gone(&owner.replica, facts, None);
    }
    if request.session == &SessionState::Unknown {
        return session_gone(None);
    }
    match (request.resume_from, request.session) {
        (None, SessionState::Live(view)) if facts.push_ready() => {
            if request.accepts_sse {
                Decision::Push(view.uid)
            } else {
                Decision::Reply(Reply::error(
                    406,
                    INVALID_REQUEST,
                    "a GET listen stream needs Accept: text/event-stream",
                ))
            }
        }
        (Some(replica), _) if facts.is_alive(replica) => Decision::Replica(replica.into()),
        (Some(_), _) => Decision::Reply(Reply::error(
            404,
            INVALID_REQUEST,
            "the replica that produced this stream is gone; the stream cannot be resumed",
        )),
        (None, _) => Decision::Reply(
            Reply::error(
                405,
                INVALID_REQUEST,
                "mcp-edge offers no GET listen stream: results and notifications arrive on each POST's response",
            )
            .with_header("Allow", "POST, DELETE"),
        ),
    }
}

fn delete<'a>(request: &Request<'a>) -> Decision<'a> {
    match request.session {
        SessionState::None => Decision::Reply(
            Reply::error(
                405,
                INVALID_REQUEST,
                "DELETE ends a session: send the Mcp-Session-Id to end",
            )
            .with_header("Allow", "POST"),
        ),
        SessionState::Unknown => session_gone(None),
        SessionState::Live(view) => match &view.owner {
            Some(owner) => Decision::Replica(owner.replica.clone()),
            None => Decision::End(view),
        },
    }
}

/// One attempt at a replica, as the decision after its failure sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempt {
    /// Repeating the request changes nothing ([`retry_is_safe`]).
    pub safe: bool,
    /// Only this replica may take it (a sticky target).
    pub pinned: bool,
    /// The replica is the session's stateful owner: without it the session is gone.
    pub owned: bool,
    /// The connection came from the pool (it may have been closed by the replica while idle).
    pub reused: bool,
    /// This attempt is already the one more try on a new connection to the same replica.
    pub fresh_retry: bool,
    /// It names a task of this replica: without the replica, the task is gone.
    pub task: bool,
}

/// Where a failed attempt had got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No connection: nothing was sent.
    Connect,
    /// Sent (or being sent), and no response byte came back.
    Exchange,
}

/// What to do after a failed attempt.
#[derive(Debug)]
pub enum Next {
    /// The same replica, over a new connection.
    SameReplica,
    /// The next healthy replica not tried yet.
    OtherReplica,
    /// Stop, and tell the client.
    Answer(Failure),
}

/// Every decision after a failure, in one place:
///
/// | stage | attempt | next | counts against the replica |
/// |---|---|---|---|
/// | connect | the session's stateful owner | answer 404: the session is gone | yes |
/// | connect | a task request, to the task's replica | answer -32602: the task is gone | yes |
/// | connect | pinned, or the retry of a broken pooled connection that was not safe | answer 502, not repeated | yes |
/// | connect | otherwise (nothing was sent) | another replica | yes |
/// | exchange | a pooled connection, not a timeout, not yet retried | the same replica, new connection | no |
/// | exchange | safe to repeat, not pinned, not a timeout | another replica | yes |
/// | exchange | otherwise | answer 502 (504 for a timeout), not repeated | yes |
pub fn after_failure(attempt: &Attempt, stage: Stage, error: Box<Error>) -> (Next, bool) {
    let timeout = is_timeout(error.etype());
    match stage {
        Stage::Connect if attempt.owned => (Next::Answer(Failure::SessionGone), true),
        Stage::Connect if attempt.task => (Next::Answer(Failure::TaskGone), true),
        Stage::Connect if attempt.pinned || (attempt.fresh_retry && !attempt.safe) => {
            (Next::Answer(Failure::Unreachable(error)), true)
        }
        Stage::Connect => (Next::OtherReplica, true),
        Stage::Exchange if attempt.reused && !attempt.fresh_retry && !timeout => {
            (Next::SameReplica, false)
        }
        Stage::Exchange if attempt.safe && !attempt.pinned && !timeout => {
            (Next::OtherReplica, true)
        }
        Stage::Exchange => (Next::Answer(Failure::before_answer(error)), true),
    }
}

/// The answer when no replica is left to try.
pub fn no_replica(attempt: &Attempt) -> Failure {
    if attempt.owned {
        Failure::SessionGone
    } else if attempt.task {
        Failure::TaskGone
    } else {
        Failure::NoReplica
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use mcp_protocol::classify;
    use pingora::ErrorType;

    use super::*;
    use crate::session::Owner;

    #[derive(Default)]
    struct Live {
        streaming: HashMap<String, ReplicaId>,
        asked: HashMap<String, ReplicaId>,
        dead: Vec<&'static str>,
        legacy_replicas: bool,
        bridging: Vec<&'static str>,
        push: bool,
    }

    impl Facts for Live {
        fn streaming_owner(&self, id: &str) -> Option<ReplicaId> {
            self.streaming.get(id).cloned()
        }
        fn answer_owner(&self, id: &str) -> Option<ReplicaId> {
            self.asked.get(id).cloned()
        }
        fn is_alive(&self, replica: &str) -> bool {
            !self.dead.contains(&replica)
        }
        fn bridge_ready(&self) -> bool {
            !self.legacy_replicas
        }
        fn bridged(&self, id: &str) -> bool {
            self.bridging.contains(&id)
        }
        fn push_ready(&self) -> bool {
            self.push
        }
        fn task_home(&self, replica: &str) -> bool {
            !self.dead.contains(&replica)
        }
    }

    fn live(version: &str) -> SessionState {
        SessionState::Live(SessionView {
            uid: [0; 16],
            version: version.into(),
            owner: None,
            expires: u64::MAX,
            profile: Default::default(),
        })
    }

    /// The decision for `body` (leaked: the decision borrows from it, as from the request).
    fn route<'a>(
        verb: Verb,
        body: &[u8],
        session: &'a SessionState,
        header_version: Option<&'a str>,
        facts: &Live,
    ) -> Decision<'a> {
        let body: &'static [u8] = Box::leak(body.into());
        let message: Option<&'static Message<'static>> =
            classify(body).ok().map(|m| &*Box::leak(Box::new(m)));
        let request = Request {
            verb,
            message,
            session,
            header_version,
            header_method: None,
            header_name: None,
            resume_from: None,
            resume_original: None,
            accepts_sse: true,
        };
        decide(&request, facts)
    }

    const CALL: &[u8] =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    const INIT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;

    fn status(d: &Decision) -> u16 {
        match d {
            Decision::Reply(r) => r.status,
            Decision::End(_) => 200,
            _ => 0,
        }
    }

    #[test]
    fn ordinary_requests_round_robin() {
        let facts = Live::default();
        assert_eq!(
            route(Verb::Post, CALL, &SessionState::None, None, &facts),
            Decision::AnyReplica
        );
        assert_eq!(
            route(
                Verb::Post,
                CALL,
                &live("2025-06-18"),
                Some("2025-06-18"),
                &facts
            ),
            Decision::AnyReplica
        );
        assert_eq!(
            route(Verb::Post, INIT, &SessionState::Unknown, None, &facts),
            Decision::AnyReplica,
            "initialize starts over"
        );
    }

    #[test]
    fn listens_subscriptions_and_get_streams_go_to_the_fan_out_only_when_it_is_ready() {
        let listen = br#"{"jsonrpc":"2.0","id":"l","method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"notifications":{}}}"#;
        let subscribe = br#"{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"test://w"}}"#;
        let unsubscribe = br#"{"jsonrpc":"2.0","id":3,"method":"resources/unsubscribe","params":{"uri":"test://w"}}"#;
        let session = live("2025-11-25");
        let ready = Live {
            push: true,
            ..Live::default()
        };
        let v = Some("2026-07-28");
        assert_eq!(
            route(Verb::Post, listen, &SessionState::None, v, &ready),
            Decision::Listen { id: r#""l""# }
        );
        let SessionState::Live(view) = &session else {
            unreachable!()
        };
        assert_eq!(
            route(Verb::Post, subscribe, &session, None, &ready),
            Decision::Subscribe {
                view,
                subscribe: true
            }
        );
        assert_eq!(
            route(Verb::Post, unsubscribe, &session, None, &ready),
            Decision::Subscribe {
                view,
                subscribe: false
            }
        );
        assert_eq!(
            route(Verb::Get, b"", &session, None, &ready),
            Decision::Push(view.uid)
        );
        // Without a session a GET is still 405, with an ended one 404.
        assert_eq!(
            status(&route(Verb::Get, b"", &SessionState::None, None, &ready)),
            405
        );
        assert_eq!(
            status(&route(Verb::Get, b"", &SessionState::Unknown, None, &ready)),
            404
        );
        let not_ready = Live::default();
        assert_eq!(
            route(Verb::Post, listen, &SessionState::None, v, &not_ready),
            Decision::AnyReplica
        );
        assert_eq!(
            route(Verb::Post, subscribe, &session, None, &not_ready),
            Decision::AnyReplica
        );
        assert_eq!(
            status(&route(Verb::Get, b"", &session, None, &not_ready)),
            405
        );
        // A stateful replica's session keeps going to it.
        let owned = SessionState::Live(SessionView {
            owner: Some(Owner {
                replica: "r1".into(),
                session_id: "s".into(),
            }),
            ..match live("2025-11-25") {
                SessionState::Live(v) => v,
                _ => unreachable!(),
            }
        });
        assert_eq!(
            route(Verb::Get, b"", &owned, None, &ready),
            Decision::Replica("r1".into())
        );
        assert_eq!(
            route(Verb::Post, subscribe, &owned, None, &ready),
            Decision::Replica("r1".into())
        );
    }

    #[test]
    fn unknown_sessions_are_404_with_the_request_id() {
        let d = route(
            Verb::Post,
            CALL,
            &SessionState::Unknown,
            None,
            &Live::default(),
        );
        let Decision::Reply(reply) = d else {
            panic!("{d:?}")
        };
        assert_eq!((reply.status, reply.id()), (404, Some("1")));
    }

    #[test]
    fn a_task_request_goes_to_the_replica_its_id_names_or_is_gone_with_it() {
        let facts = Live {
            dead: vec!["r3"],
            ..Live::default()
        };
        let v = Some("2026-07-28");
        let body = |method: &str, id: &str, declared: bool| {
            let caps = if declared {
                r#""io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}},"#
            } else {
                ""
            };
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"taskId":"{id}","_meta":{{{caps}"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}}}}"#
            )
            .into_bytes()
        };
        let none = &SessionState::None;
        for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
            assert_eq!(
                route(Verb::Post, &body(method, "r2/abc", true), none, v, &facts),
                Decision::Task("r2".into(), "abc"),
                "{method}"
            );
            assert_eq!(
                route(Verb::Post, &body(method, "r3/abc", true), none, v, &facts),
                Decision::TaskGone,
                "{method}: its replica is gone"
            );
        }
        for (body, why) in [
            (
                body("tasks/get", "abc", true),
                "an id mcp-edge did not give out",
            ),
            (
                body("tasks/get", "r2/abc", false),
                "no declaration: the replica answers -32021",
            ),
            (
                body("tasks/list", "r2/abc", true),
                "not a method naming a task (-32601 from a replica)",
            ),
        ] {
            assert_eq!(
                route(Verb::Post, &body, none, v, &facts),
                Decision::AnyReplica,
                "{why}"
            );
        }
    }

    #[test]
    fn modern_requests_ignore_sessions_and_check_headers() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let facts = Live::default();
        assert_eq!(
            route(
                Verb::Post,
                body,
                &SessionState::Unknown,
                Some("2026-07-28"),
                &facts
            ),
            Decision::AnyReplica
        );
        let message = classify(body).unwrap();
        let request = Request {
            verb: Verb::Post,
            message: Some(&message),
            session: &SessionState::None,
            header_version: Some("2026-07-28"),
            header_method: Some("tools/list"),
            header_name: None,
            resume_from: None,
            resume_original: None,
            accepts_sse: true,
        };
        let Decision::Reply(reply) = decide(&request, &facts) else {
            panic!()
        };
        assert_eq!(
            (reply.status, reply.error.as_ref().map(|e| e.code)),
            (400, Some(HEADER_MISMATCH))
        );
    }

    #[test]
    fn cancels_and_answers_follow_their_stream() {
        let mut facts = Live::default();
        facts.streaming.insert("7".into(), "r2".into());
        facts.asked.insert("\"q1\"".into(), "r3".into());
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#;
        assert_eq!(
            route(Verb::Post, cancel, &live("2025-06-18"), None, &facts),
            Decision::Replica("r2".into())
        );
        let answer = br#"{"jsonrpc":"2.0","id":"q1","result":{"action":"accept"}}"#;
        assert_eq!(
            route(Verb::Post, answer, &live("2025-06-18"), None, &facts),
            Decision::Replica("r3".into())
        );
        facts.dead = vec!["r2", "r3"];
        assert_eq!(
            status(&route(
                Verb::Post,
                cancel,
                &live("2025-06-18"),
                None,
                &facts
            )),
            202
        );
        assert_eq!(
            status(&route(
                Verb::Post,
                answer,
                &live("2025-06-18"),
                None,
                &facts
            )),
            404,
            "never another replica"
        );
        let other =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}}"#;
        assert_eq!(
            route(Verb::Post, other, &live("2025-06-18"), None, &facts),
            Decision::AnyReplica
        );
    }

    #[test]
    fn stateful_owners_pin_the_session() {
        let owned = SessionState::Live(SessionView {
            uid: [0; 16],
            expires: u64::MAX,
            profile: Default::default(),
            version: "2025-06-18".into(),
            owner: Some(Owner {
                replica: "r1".into(),
                session_id: "theirs".into(),
            }),
        });
        let mut facts = Live::default();
        assert_eq!(
            route(Verb::Post, CALL, &owned, None, &facts),
            Decision::Replica("r1".into())
        );
        assert_eq!(
            route(Verb::Delete, b"", &owned, None, &facts),
            Decision::Replica("r1".into())
        );
        assert_eq!(
            route(Verb::Get, b"", &owned, None, &facts),
            Decision::Replica("r1".into()),
            "its listen stream"
        );
        facts.dead = vec!["r1"];
        assert_eq!(status(&route(Verb::Get, b"", &owned, None, &facts)), 404);
        assert_eq!(status(&route(Verb::Post, CALL, &owned, None, &facts)), 404);
    }

    #[test]
    fn batches_only_in_2025_03_26() {
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#;
        let facts = Live::default();
        assert_eq!(
            route(Verb::Post, batch, &live("2025-03-26"), None, &facts),
            Decision::AnyReplica
        );
        assert_eq!(
            route(Verb::Post, batch, &SessionState::None, None, &facts),
            Decision::AnyReplica
        );
        assert_eq!(
            status(&route(Verb::Post, batch, &live("2025-06-18"), None, &facts)),
            400
        );
        assert_eq!(
            status(&route(
                Verb::Post,
                batch,
                &SessionState::None,
                Some("2025-11-25"),
                &facts
            )),
            400
        );
    }

    #[test]
    fn get_and_delete() {
        let facts = Live {
            dead: vec!["r9"],
            ..Default::default()
        };
        assert_eq!(
            status(&route(Verb::Get, b"", &live("2025-06-18"), None, &facts)),
            405
        );
        assert_eq!(
            status(&route(Verb::Get, b"", &SessionState::Unknown, None, &facts)),
            404
        );
        assert_eq!(
            status(&route(Verb::Delete, b"", &live("2025-06-18"), None, &facts)),
            200
        );
        assert_eq!(
            status(&route(
                Verb::Delete,
                b"",
                &SessionState::Unknown,
                None,
                &facts
            )),
            404
        );
        assert_eq!(
            status(&route(Verb::Delete, b"", &SessionState::None, None, &facts)),
            405
        );
        let resume = |replica| Request {
            verb: Verb::Get,
            message: None,
            session: &SessionState::None,
            header_version: None,
            header_method: None,
            header_name: None,
            resume_from: Some(replica),
            resume_original: None,
            accepts_sse: true,
        };
        assert_eq!(
            decide(&resume("r1"), &facts),
            Decision::Replica("r1".into())
        );
        assert_eq!(status(&decide(&resume("r9"), &facts)), 404);
    }

    fn asking(version: &str) -> SessionState {
        let SessionState::Live(mut view) = live(version) else {
            unreachable!()
        };
        view.profile.capabilities = crate::session::profile::ELICITATION;
        SessionState::Live(view)
    }

    #[test]
    fn calls_of_clients_that_can_be_asked_are_bridged_and_nothing_else() {
        let mut facts = Live::default();
        let session = asking("2025-11-25");
        let SessionState::Live(view) = &session else {
            unreachable!()
        };
        for method in ["tools/call", "prompts/get", "resources/read"] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"name":"x","uri":"x"}}}}"#
            );
            let tool = (method == "tools/call").then_some("x");
            assert_eq!(
                route(Verb::Post, body.as_bytes(), &session, None, &facts),
                Decision::Bridge(Bridged {
                    view,
                    method,
                    id: "1",
                    tool
                }),
                "{method}"
            );
        }
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert_eq!(
            route(Verb::Post, list, &session, None, &facts),
            Decision::AnyReplica
        );
        assert_eq!(
            route(Verb::Post, CALL, &live("2025-11-25"), None, &facts),
            Decision::AnyReplica,
            "a client that declared nothing keeps today's path"
        );
        let message = classify(CALL).unwrap();
        let mut request = Request {
            verb: Verb::Post,
            message: Some(&message),
            session: &session,
            header_version: None,
            header_method: None,
            header_name: None,
            resume_from: None,
            resume_original: None,
            accepts_sse: false,
        };
        assert_eq!(
            decide(&request, &facts),
            Decision::AnyReplica,
            "no stream to ask on"
        );
        request.accepts_sse = true;
        facts.legacy_replicas = true;
        assert_eq!(
            decide(&request, &facts),
            Decision::AnyReplica,
            "no replica speaks 2026-07-28"
        );
        facts.legacy_replicas = false;
        let SessionState::Live(mut owned) = asking("2025-11-25") else {
            unreachable!()
        };
        owned.owner = Some(Owner {
            replica: "r1".into(),
            session_id: "s".into(),
        });
        assert_eq!(
            route(Verb::Post, CALL, &SessionState::Live(owned), None, &facts),
            Decision::Replica("r1".into()),
            "a stateful replica asks for itself"
        );
    }

    #[test]
    fn answers_to_bridge_questions_and_cancels_of_bridged_calls_stay_at_the_edge() {
        let facts = Live {
            bridging: vec!["5"],
            ..Live::default()
        };
        let session = asking("2025-11-25");
        let SessionState::Live(view) = &session else {
            unreachable!()
        };
        let answer = br#"{"jsonrpc":"2.0","id":"mcp-edge:0000000000000001:00000000000000000000000000000002:0","result":{}}"#;
        let id = r#""mcp-edge:0000000000000001:00000000000000000000000000000002:0""#;
        assert_eq!(
            route(Verb::Post, answer, &session, None, &facts),
            Decision::Deliver { id }
        );
        assert_eq!(
            route(Verb::Post, answer, &SessionState::Unknown, None, &facts),
            Decision::Deliver { id },
            "202, never 404"
        );
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#;
        assert_eq!(
            route(Verb::Post, cancel, &session, None, &facts),
            Decision::CancelBridge {
                session: view.uid,
                id: "5"
            }
        );
        let other =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":6}}"#;
        assert_eq!(
            route(Verb::Post, other, &session, None, &facts),
            Decision::AnyReplica
        );
    }

    #[test]
    fn only_requests_that_change_nothing_are_repeated() {
        // echo is listed as read-only; delete_everything is listed, not safe.
        let safe = |body: &[u8]| {
            let m = classify(body).unwrap();
            let tool = m.name.as_deref().map(|name| Listed {
                safe: name == "echo",
            });
            retry_is_safe(&m, tool)
        };
        assert!(safe(INIT));
        assert!(safe(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#));
        assert!(safe(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"info://server"}}"#));
        assert!(safe(CALL), "echo declared itself read-only");
        assert!(!safe(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_everything"}}"#));
        assert!(!safe(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#
        ));
        assert!(!safe(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        ));
        assert!(!safe(
            br#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"}"#
        ));
        assert!(!safe(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#));
    }

    #[test]
    fn after_a_failure_only_what_cannot_have_been_delivered_moves() {
        let refused = || Error::new(ErrorType::ConnectRefused);
        let closed = || Error::new(ErrorType::ConnectionClosed);
        let slow = || Error::new(ErrorType::ReadTimedout);
        let next = |attempt: Attempt, stage, error| {
            let (next, eject) = after_failure(&attempt, stage, error);
            let next = match next {
                Next::SameReplica => "same",
                Next::OtherReplica => "other",
                Next::Answer(Failure::TaskGone) => "task gone",
                Next::Answer(f) => match f.reply(None).status {
                    404 => "404",
                    502 => "502",
                    504 => "504",
                    _ => "?",
                },
            };
            (next, eject)
        };
        let plain = Attempt::default();
        let safe = Attempt {
            safe: true,
            ..plain
        };
        let pinned = Attempt {
            pinned: true,
            safe: true,
            ..plain
        };
        let owned = Attempt {
            owned: true,
            pinned: true,
            ..plain
        };
        let pooled = Attempt {
            reused: true,
            ..plain
        };
        let retried = Attempt {
            reused: true,
            fresh_retry: true,
            ..plain
        };
        let task = Attempt {
            task: true,
            pinned: true,
            ..plain
        };
        let table = [
            (task, Stage::Connect, refused(), ("task gone", true)),
            (
                Attempt {
                    fresh_retry: true,
                    ..task
                },
                Stage::Connect,
                refused(),
                ("task gone", true),
            ),
            (plain, Stage::Connect, refused(), ("other", true)),
            (pinned, Stage::Connect, refused(), ("502", true)),
            (owned, Stage::Connect, refused(), ("404", true)),
            (retried, Stage::Connect, refused(), ("502", true)),
            (
                Attempt {
                    safe: true,
                    ..retried
                },
                Stage::Connect,
                refused(),
                ("other", true),
            ),
            (pooled, Stage::Exchange, closed(), ("same", false)),
            (pooled, Stage::Exchange, slow(), ("504", true)),
            (retried, Stage::Exchange, closed(), ("502", true)),
            (safe, Stage::Exchange, closed(), ("other", true)),
            (safe, Stage::Exchange, slow(), ("504", true)),
            (pinned, Stage::Exchange, closed(), ("502", true)),
            (plain, Stage::Exchange, closed(), ("502", true)),
        ];
        for (attempt, stage, error, expected) in table {
            assert_eq!(
                next(attempt, stage, error),
                expected,
                "{attempt:?} {stage:?}"
            );
        }
        assert_eq!(no_replica(&owned).reply(None).status, 404);
        assert_eq!(no_replica(&plain).reply(None).status, 503);
        assert_eq!(no_replica(&task).reply(None).error.unwrap().code, -32602);
    }
}
