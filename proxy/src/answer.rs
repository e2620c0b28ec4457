//! Every answer mcp-edge makes itself ([`Reply`]), and what it says when a replica fails
//! ([`Failure`]): one table, so that a failure reads the same whichever step met it.
//!
//! | failure | status | the client reads |
//! |---|---|---|
//! | `NoReplica`: none healthy (or all tried) | 503 | no healthy replica is available; try again shortly |
//! | `SessionGone`: the session's stateful replica is gone, or forgot it | 404 | Session not found: … send initialize to start a new session |
//! | `Unreachable`: no connection to a replica this request was pinned to | 502 | could not reach the replica (…); the request was not repeated |
//! | `Broke`: the replica's connection broke before its answer began | 502 | the replica failed before answering (…); the request was not repeated |
//! | `TimedOut`: no answer within the first-byte or idle timeout | 504 | the replica did not answer in time; the request was not repeated |
//! | `Cut`: the replica's answer broke after it began | 502 (504 when it was a timeout) | the replica failed while answering (…); the request was not repeated |
//! | `InitTooLarge`: an initialize answer too large to hold while sealing the session | 502 | the replica's initialize response is too large |
//! | `Seal`: the session token could not be made | 502 | cannot start the session: … |
//! | `TaskGone`: the replica a task id names left the set, stopped answering, or cannot be reached | 200, -32602 | unknown task: the replica that ran it is gone, and its work with it; call the tool again |
//!
//! A stream whose answer had begun gets the same message as its last SSE event, a JSON-RPC
//! error for the request it was answering ([`Failure::last_event`]).

use bytes::Bytes;
use mcp_protocol::{
    Invalid, RpcError,
    error::{INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR},
    post::Rejection,
};
use pingora::{Error, ErrorType};

/// An answer made at the edge, before (or instead of) any replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// The JSON-RPC error of the body; `None`: a bodiless success (200 for a DELETE that ended
    /// a session, 202 for a notification).
    pub error: Option<RpcError>,
    /// Extra response headers (e.g. `Allow`).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn error(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            error: Some(RpcError::new(code, message)),
            headers: Vec::new(),
        }
    }

    /// A bodiless success.
    pub fn ok(status: u16) -> Self {
        Self {
            status,
            error: None,
            headers: Vec::new(),
        }
    }

    /// The request id the error answers (raw JSON), unless it has one already.
    pub fn with_id(mut self, id: Option<&str>) -> Self {
        if let Some(error) = &mut self.error
            && error.id.is_none()
        {
            error.id = id.map(str::to_owned);
        }
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The JSON-RPC body, or `None` for a bodiless success.
    pub fn body(&self) -> Option<Bytes> {
        self.error.as_ref().map(RpcError::body)
    }

    /// The whole HTTP/1.1 response, ending the connection: for a client whose request pingora
    /// never parsed (a head over the limits).
    pub fn raw_close(&self) -> Vec<u8> {
        let body = self.body().unwrap_or_default();
        let reason = pingora::http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.status,
            mcp_protocol::headers::JSON,
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// The request id this answer carries.
    pub fn id(&self) -> Option<&str> {
        self.error.as_ref().and_then(|e| e.id.as_deref())
    }
}

impl From<Invalid> for Reply {
    /// A body that is not a usable JSON-RPC message: 400, parse error or invalid request.
    fn from(invalid: Invalid) -> Self {
        match invalid {
            Invalid::Parse(m) => Reply::error(400, PARSE_ERROR, m),
            Invalid::NotJsonRpc(m) => Reply::error(400, INVALID_REQUEST, m),
        }
    }
}

impl From<Rejection> for Reply {
    fn from(rejection: Rejection) -> Self {
        Self {
            status: rejection.status,
            error: Some(rejection.error),
            headers: Vec::new(),
        }
    }
}

/// Why a request got no answer from a replica.
#[derive(Debug)]
pub enum Failure {
    NoReplica,
    SessionGone,
    Unreachable(Box<Error>),
    Broke(Box<Error>),
    TimedOut,
    Cut(ErrorType),
    InitTooLarge,
    Seal(String),
    TaskGone,
}

/// How a phase ended early.
#[derive(Debug)]
pub enum Stop {
    /// Tell the client (nothing was written to it yet).
    Answer(Failure),
    /// A connection broke: the client's (nobody is left to answer), or the replica's once its
    /// answer had begun (see `Client::fail`).
    Broken(Box<Error>),
}

impl From<Box<Error>> for Stop {
    fn from(e: Box<Error>) -> Self {
        Stop::Broken(e)
    }
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Answer(f)
    }
}

/// Whether the replica was too slow, rather than broken (504, and never repeated).
pub fn is_timeout(etype: &ErrorType) -> bool {
    matches!(etype, ErrorType::ReadTimedout | ErrorType::WriteTimedout)
}

impl Failure {
    /// A failure of the exchange before the replica's answer began.
    pub fn before_answer(e: Box<Error>) -> Self {
        if is_timeout(e.etype()) {
            Failure::TimedOut
        } else {
            Failure::Broke(e)
        }
    }

    /// The table above: status and message.
    fn status_and_message(&self) -> (u16, String) {
        const NOT_REPEATED: &str = "the request was not repeated";
        match self {
            Failure::NoReplica => (
                503,
                "no healthy replica is available; try again shortly".into(),
            ),
            Failure::SessionGone => (404, SESSION_GONE.into()),
            Failure::Unreachable(e) => (
                502,
                format!("could not reach the replica ({e}); {NOT_REPEATED}"),
            ),
            Failure::Broke(e) => (
                502,
                format!("the replica failed before answering ({e}); {NOT_REPEATED}"),
            ),
            Failure::TimedOut => (
                504,
                format!("the replica did not answer in time; {NOT_REPEATED}"),
            ),
            Failure::Cut(etype) if is_timeout(etype) => (
                504,
                format!("the replica did not answer in time; {NOT_REPEATED}"),
            ),
            Failure::Cut(etype) => (
                502,
                format!(
                    "the replica failed while answering ({}); {NOT_REPEATED}",
                    etype.as_str()
                ),
            ),
            Failure::InitTooLarge => (502, "the replica's initialize response is too large".into()),
            Failure::Seal(e) => (502, format!("cannot start the session: {e}")),
            Failure::TaskGone => (200, TASK_GONE.into()),
        }
    }

    /// The client's answer, for the request with this id.
    pub fn reply(&self, id: Option<&str>) -> Reply {
        let (status, message) = self.status_and_message();
        let code = match self {
            Failure::SessionGone => INVALID_REQUEST,
            // What the replica itself answers for a task it does not know (SEP-2663).
            Failure::TaskGone => INVALID_PARAMS,
            _ => INTERNAL_ERROR,
        };
        Reply::error(status, code, message).with_id(id)
    }

    /// The last event of a stream that broke after it began: a JSON-RPC error for its request.
    pub fn last_event(&self, id: &str) -> Bytes {
        let (_, message) = self.status_and_message();
        let body = RpcError::new(
            INTERNAL_ERROR,
            format!("the replica serving this stream failed: {message}"),
        )
        .with_id(Some(id))
        .body();
        mcp_protocol::sse::event(&body)
    }
}

const TASK_GONE: &str = "unknown task: the replica that ran it is gone (left the replica set, stopped answering, or cannot be reached), and its work with it; call the tool again";

const SESSION_GONE: &str = "Session not found: it expired, was deleted, or its replica is gone; send initialize to start a new session";

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn json(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body().unwrap()).unwrap()
    }

    #[test]
    fn every_failure_has_its_status_and_carries_the_request_id() {
        let broke = || Error::new(ErrorType::ConnectionClosed);
        let table = [
            (Failure::NoReplica, 503),
            (Failure::SessionGone, 404),
            (
                Failure::Unreachable(Error::new(ErrorType::ConnectRefused)),
                502,
            ),
            (Failure::Broke(broke()), 502),
            (Failure::TimedOut, 504),
            (Failure::Cut(ErrorType::ConnectionClosed), 502),
            (Failure::Cut(ErrorType::ReadTimedout), 504),
            (Failure::InitTooLarge, 502),
            (Failure::Seal("no key".into()), 502),
            (Failure::TaskGone, 200),
        ];
        for (failure, status) in table {
            let reply = failure.reply(Some("7"));
            assert_eq!(reply.status, status, "{failure:?}");
            assert_eq!(json(&reply)["id"], 7, "{failure:?}");
        }
        assert!(
            Failure::before_answer(Error::new(ErrorType::ReadTimedout))
                .reply(None)
                .status
                == 504
        );
    }

    #[test]
    fn a_stream_that_broke_ends_with_an_error_event() {
        let event = Failure::Cut(ErrorType::ConnectionClosed).last_event("\"a\"");
        let text = std::str::from_utf8(&event).unwrap();
        let data: Value = serde_json::from_str(
            text.strip_prefix("event: message\ndata: ")
                .unwrap()
                .trim_end(),
        )
        .unwrap();
        assert_eq!(data["id"], "a");
        assert!(
            data["error"]["message"]
                .as_str()
                .unwrap()
                .contains("failed while answering")
        );
    }

    #[test]
    fn a_success_has_no_body_and_an_id_is_not_overwritten() {
        assert!(Reply::ok(200).body().is_none());
        let reply = Reply::error(400, INVALID_REQUEST, "x")
            .with_id(Some("1"))
            .with_id(Some("2"));
        assert_eq!(reply.id(), Some("1"));
    }
}
