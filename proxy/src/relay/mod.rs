//! The relay phase, in one place: the response policy here, pure over the replica's head and
//! bytes (what a response must look like to the client, and what the edge must learn or record
//! from it; no sockets, no shared state), [`respond`] moving the bytes, and [`found`] applying
//! what the policy found to the process's state.
//!
//! | on | the policy |
//! |---|---|
//! | head | `X-Served-By` set to the replica id unless the replica set one |
//! | head | the replica's own `Mcp-Session-Id` never reaches the client; a legacy request in a session gets the client's token back |
//! | head | a successful legacy `initialize` is held until its body names the negotiated version, then sealed into a token ([`Relay::seal`]) |
//! | head | a successful DELETE, or a 404 from the session's stateful owner: the session is over ([`Head::ends_session`]) |
//! | head | `text/event-stream`: a stream (counted against the limits; a client request's stream records its replica); `Content-Length` dropped, since event ids grow |
//! | body | SSE event ids become `<replica>/<id>`; server→client requests are reported ([`Chunk::asked`]) |
//! | body | a successful `tools/list` is collected (up to [`LIST_LIMIT`]) for its annotations ([`Chunk::tools_list`]) |
//! | body | where a task may be named (a 2026-07-28 `tools/call` declaring the tasks extension, a `tasks/get`): `result.taskId` gets the replica's id in front ([`mcp_protocol::tasks`]); a JSON body is held whole for it (up to [`TASK_HOLD_LIMIT`], `Content-Length` dropped), an SSE one rewritten event by event |

pub mod found;
pub mod respond;

use bytes::{Bytes, BytesMut};
use mcp_protocol::{
    headers::{SERVED_BY, SESSION_ID},
    sse,
};
use pingora::http::ResponseHeader;

use crate::{answer::Failure, tools::LIST_LIMIT};

/// Most of an initialize response held back while waiting for its result.
pub const INIT_HOLD_LIMIT: usize = 1 << 20;
/// Most of a JSON response held to name its task (a `CreateTaskResult` is a few hundred bytes;
/// a longer body is a plain result, passed on as it is).
pub const TASK_HOLD_LIMIT: usize = 256 << 10;

/// What the policy needs to know of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// The replica answering.
    pub replica: &'a str,
    /// The session token the client sent, when it names a live session.
    pub token: Option<&'a str>,
    /// 2026-07-28: no session header either way.
    pub modern: bool,
    /// A legacy `initialize`: its success starts a session.
    pub initialize: bool,
    /// A `tools/list` request.
    pub lists_tools: bool,
    /// A DELETE.
    pub delete: bool,
    /// Sent to the session's stateful owner.
    pub owned: bool,
    /// A task may be named in the result: its id gets the replica's in front.
    pub names_task: bool,
}

/// What the head showed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// The session is over here and at peers.
    pub ends_session: bool,
    /// An SSE stream.
    pub stream: bool,
}

/// What one chunk of body showed.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Ids (raw JSON) of server→client requests: the client's answers go to this replica.
    pub asked: Vec<String>,
    /// A whole `tools/list` response, to learn tool annotations from.
    pub tools_list: Option<BytesMut>,
    /// A task was named in this chunk (a `CreateTaskResult`, or a `tasks/get` answer).
    pub named_task: bool,
}

impl Chunk {
    /// Nothing for the edge to record (most chunks).
    pub fn is_empty(&self) -> bool {
        self.asked.is_empty() && self.tools_list.is_none() && !self.named_task
    }
}

/// What to do with a held initialize response.
#[derive(Debug, PartialEq)]
pub enum Seal {
    /// Not held, or its body held no result: pass the response on as it is.
    Pass,
    /// Keep reading.
    Wait,
    /// Seal a session at this version, owned by the replica if it minted its own id, and put
    /// its token in the head ([`Relay::sealed`]).
    Mint {
        version: String,
        theirs: Option<String>,
    },
}

/// The state of one response's policy.
#[derive(Default)]
pub struct Relay {
    sse: Option<sse::Scanner>,
    /// A legacy initialize answered with success: its body so far, and the replica's own
    /// session id, until the session is sealed.
    init: Option<(BytesMut, Option<String>)>,
    tools_list: Option<BytesMut>,
    /// A JSON response held whole to name its task, and the replica to name.
    task: Option<(BytesMut, String)>,
}

impl Relay {
    /// Edit the head for the client; the returned state follows the body.
    pub fn head(request: &Request<'_>, head: &mut ResponseHeader) -> (Relay, Head) {
        let mut relay = Relay::default();
        if head.headers.get(SERVED_BY).is_none() {
            let _ = head.insert_header(SERVED_BY, request.replica);
        }
        let theirs = head
            .headers
            .get(SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        head.remove_header(SESSION_ID);
        let ok = head.status.is_success();
        if request.lists_tools && ok {
            relay.tools_list = Some(BytesMut::new());
        }
        if request.initialize && ok {
            relay.init = Some((BytesMut::new(), theirs));
        } else if let (Some(token), false) = (request.token, request.modern) {
            let _ = head.insert_header(SESSION_ID, token);
        }
        let status = head.status.as_u16();
        let stream = mcp_protocol::headers::is_sse(&head.headers);
        if stream {
            head.remove_header("content-length");
            let mut scanner = sse::Scanner::new(request.replica);
            if request.names_task {
                scanner = scanner.naming_tasks();
            }
            relay.sse = Some(scanner);
        } else if request.names_task && ok {
            head.remove_header("content-length");
            relay.task = Some((BytesMut::new(), request.replica.to_owned()));
        }
        let outcome = Head {
            ends_session: (request.delete && ok) || (request.owned && status == 404),
            stream,
        };
        (relay, outcome)
    }

    /// Whether the head waits for the body (a legacy initialize being sealed).
    pub fn holding(&self) -> bool {
        self.init.is_some()
    }

    /// Pass a chunk of body through the policy; `end`: the body is over.
    pub fn chunk(&mut self, body: &mut Option<Bytes>, end: bool) -> Chunk {
        let mut out = Chunk::default();
        if let (Some((raw, _)), Some(chunk)) = (&mut self.init, body.as_ref()) {
            raw.extend_from_slice(chunk);
        }
        if let Some(list) = &mut self.tools_list {
            if let Some(chunk) = body.as_ref() {
                list.extend_from_slice(chunk);
            }
            if list.len() > LIST_LIMIT {
                self.tools_list = None;
            } else if end {
                out.tools_list = self.tools_list.take();
            }
        }
        if let Some(scanner) = &mut self.sse {
            let chunk = body.take().unwrap_or_default();
            let scanned = scanner.feed(&chunk, end);
            out.asked = scanned.server_requests;
            out.named_task = scanned.named_task;
            *body = Some(scanned.out);
        }
        if let Some((held, replica)) = &mut self.task {
            if let Some(chunk) = body.take() {
                held.extend_from_slice(&chunk);
            }
            if end || held.len() > TASK_HOLD_LIMIT {
                let held = held.split().freeze();
                let named = end
                    .then(|| mcp_protocol::tasks::name_in_response(&held, replica))
                    .flatten();
                out.named_task = named.is_some();
                *body = Some(named.map_or(held, Bytes::from));
                self.task = None;
            }
        }
        out
    }

    /// After a chunk of a held initialize: seal, wait, or pass on. `Err`: the response cannot
    /// become a session (the client gets the failure instead).
    pub fn seal(&mut self, end: bool) -> Result<Seal, Failure> {
        let Some((raw, _)) = &self.init else {
            return Ok(Seal::Pass);
        };
        match negotiated_version(raw) {
            Some(version) => {
                let (_, theirs) = self.init.take().expect("checked above");
                Ok(Seal::Mint { version, theirs })
            }
            None if end => {
                self.init = None;
                Ok(Seal::Pass)
            }
            None if raw.len() > INIT_HOLD_LIMIT => Err(Failure::InitTooLarge),
            None => Ok(Seal::Wait),
        }
    }

    /// The token of the session just sealed, into the head.
    pub fn sealed(head: &mut ResponseHeader, token: &str) -> Result<(), Failure> {
        head.insert_header(SESSION_ID, token)
            .map_err(|_| Failure::Seal("the token is not a header value".into()))
    }
}

/// `result.protocolVersion` of an initialize response (JSON, or the SSE event carrying it).
fn negotiated_version(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&sse::response_json(body)?).ok()?;
    v.get("result")?
        .get("protocolVersion")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut head = ResponseHeader::build(status, None).unwrap();
        for (name, value) in fields {
            head.insert_header(name.to_string(), *value).unwrap();
        }
        head
    }

    fn field<'a>(head: &'a ResponseHeader, name: &str) -> Option<&'a str> {
        head.headers.get(name).map(|v| v.to_str().unwrap())
    }

    const R2: Request = Request {
        replica: "r2",
        token: None,
        modern: false,
        initialize: false,
        lists_tools: false,
        delete: false,
        owned: false,
        names_task: false,
    };

    #[test]
    fn the_client_sees_who_answered_and_only_its_own_session_id() {
        let mut h = head(200, &[("mcp-session-id", "replica-own")]);
        let (_, outcome) = Relay::head(
            &Request {
                token: Some("client-token"),
                ..R2
            },
            &mut h,
        );
        assert_eq!(field(&h, "x-served-by"), Some("r2"));
        assert_eq!(field(&h, "mcp-session-id"), Some("client-token"));
        assert_eq!(outcome, Head::default());

        let mut h = head(
            200,
            &[("x-served-by", "backend-7"), ("mcp-session-id", "x")],
        );
        Relay::head(
            &Request {
                token: Some("t"),
                modern: true,
                ..R2
            },
            &mut h,
        );
        assert_eq!(
            field(&h, "x-served-by"),
            Some("backend-7"),
            "the replica's own name is kept"
        );
        assert_eq!(
            field(&h, "mcp-session-id"),
            None,
            "2026-07-28 has no sessions"
        );
    }

    #[test]
    fn sessions_end_on_delete_and_when_their_owner_forgets_them() {
        let ends =
            |status, request: Request| Relay::head(&request, &mut head(status, &[])).1.ends_session;
        assert!(ends(200, Request { delete: true, ..R2 }));
        assert!(!ends(404, Request { delete: true, ..R2 }));
        assert!(ends(404, Request { owned: true, ..R2 }));
        assert!(!ends(404, R2));
    }

    #[test]
    fn streams_get_replica_event_ids_and_report_server_requests() {
        let mut h = head(
            200,
            &[
                ("content-type", "text/event-stream"),
                ("content-length", "99"),
            ],
        );
        let (mut relay, outcome) = Relay::head(&R2, &mut h);
        assert!(outcome.stream);
        assert_eq!(field(&h, "content-length"), None);
        let mut body = Some(Bytes::from_static(
            b"id: 4\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"roots/list\"}\n\n",
        ));
        let chunk = relay.chunk(&mut body, false);
        assert!(body.unwrap().starts_with(b"id: r2/4\n"));
        assert_eq!(chunk.asked, ["\"q\""]);
    }

    /// The policy for `request`, its head answered with `status`.
    fn policy(request: Request<'static>, status: u16) -> Relay {
        Relay::head(&request, &mut head(status, &[])).0
    }

    /// Pass `bytes` through the policy.
    fn feed(relay: &mut Relay, bytes: impl Into<Bytes>, end: bool) -> Chunk {
        relay.chunk(&mut Some(bytes.into()), end)
    }

    const INIT: Request = Request {
        initialize: true,
        ..R2
    };
    const LIST: Request = Request {
        lists_tools: true,
        ..R2
    };

    #[test]
    fn a_legacy_initialize_is_held_until_its_version_is_seen() {
        let mut h = head(200, &[("mcp-session-id", "theirs")]);
        let (mut relay, _) = Relay::head(&INIT, &mut h);
        assert!(relay.holding());
        assert_eq!(field(&h, "mcp-session-id"), None);
        feed(&mut relay, &b"{\"jsonrpc\":\"2.0\",\"id\":1,"[..], false);
        assert_eq!(relay.seal(false).ok(), Some(Seal::Wait));
        let rest = &b"\"result\":{\"protocolVersion\":\"2025-06-18\"}}"[..];
        feed(&mut relay, rest, true);
        assert_eq!(
            relay.seal(true).ok(),
            Some(Seal::Mint {
                version: "2025-06-18".into(),
                theirs: Some("theirs".into())
            })
        );
        assert!(!relay.holding());
        Relay::sealed(&mut h, "sealed-token").unwrap();
        assert_eq!(field(&h, "mcp-session-id"), Some("sealed-token"));

        // An error answer holds no result: passed on, nothing sealed.
        let mut relay = policy(INIT, 200);
        let error = &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{}}"[..];
        feed(&mut relay, error, true);
        assert_eq!(relay.seal(true).ok(), Some(Seal::Pass));
        // Too large to hold.
        let mut relay = policy(INIT, 200);
        feed(&mut relay, vec![b' '; INIT_HOLD_LIMIT + 1], false);
        assert!(matches!(relay.seal(false), Err(Failure::InitTooLarge)));
    }

    #[test]
    fn a_tools_list_is_collected_whole_and_only_when_it_succeeded() {
        let mut ok = policy(LIST, 200);
        assert!(
            feed(&mut ok, &b"{\"result\":"[..], false)
                .tools_list
                .is_none()
        );
        let list = feed(&mut ok, &b"{\"tools\":[]}}"[..], true).tools_list;
        assert_eq!(&list.unwrap()[..], b"{\"result\":{\"tools\":[]}}");
        let mut failed = policy(LIST, 500);
        assert!(feed(&mut failed, &b"{}"[..], true).tools_list.is_none());
    }

    const TASKS: Request = Request {
        names_task: true,
        ..R2
    };

    #[test]
    fn a_created_task_is_named_for_its_replica_whether_json_or_sse() {
        let created = &br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"abc","status":"working"}}"#[..];
        let mut h = head(200, &[("content-length", "90")]);
        let (mut relay, _) = Relay::head(&TASKS, &mut h);
        assert_eq!(field(&h, "content-length"), None, "the length changes");
        let (first, rest) = created.split_at(20);
        let mut body = Some(Bytes::copy_from_slice(first));
        assert!(!relay.chunk(&mut body, false).named_task);
        assert!(body.is_none(), "held until the whole body is here");
        let mut body = Some(Bytes::copy_from_slice(rest));
        assert!(relay.chunk(&mut body, true).named_task);
        assert!(
            std::str::from_utf8(&body.unwrap())
                .unwrap()
                .contains(r#""taskId":"r2/abc""#)
        );

        let mut h = head(200, &[("content-type", "text/event-stream")]);
        let (mut relay, _) = Relay::head(&TASKS, &mut h);
        let event = [&b"event: message\ndata: "[..], created, b"\n\n"].concat();
        let mut body = Some(Bytes::from(event));
        assert!(relay.chunk(&mut body, true).named_task);
        assert!(std::str::from_utf8(&body.unwrap()).unwrap().contains(
            r#"data: {"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"r2/abc""#
        ));

        // A plain result is passed on as it came; so is one too long to be a CreateTaskResult.
        let plain = &br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#[..];
        let mut relay = policy(TASKS, 200);
        let mut body = Some(Bytes::from_static(plain));
        assert!(!relay.chunk(&mut body, true).named_task);
        assert_eq!(&body.unwrap()[..], plain);
        let mut relay = policy(TASKS, 200);
        let mut body = Some(Bytes::from(vec![b' '; TASK_HOLD_LIMIT + 1]));
        relay.chunk(&mut body, false);
        assert_eq!(
            body.unwrap().len(),
            TASK_HOLD_LIMIT + 1,
            "released unchanged"
        );
    }

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
