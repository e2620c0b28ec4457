//! Server-sent events passing through the proxy, event by event: event ids are rewritten to
//! `<replica>/<original id>` so a later `Last-Event-ID` leads back to the replica that holds
//! the stream, and JSON-RPC requests the server sends on the stream are reported so the
//! client's answer can be routed to the replica that asked.
//!
//! Only complete events are emitted; a partial event waits for its end (events are small), so
//! nothing is held longer than one event. The same reader finds the JSON-RPC response in a
//! whole SSE body ([`last_response`], [`response_json`]).
//!
//! And the one writer of the events mcp-edge makes itself (a bridged call's stream, the
//! fan-out's notifications, a stream's last error): [`event`], or [`EVENT_START`] and
//! [`EVENT_END`] around a message spliced from parts.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::lines::{block_end, resume_from};

/// What a message event starts with, up to its JSON-RPC message.
pub const EVENT_START: &[u8] = b"event: message\ndata: ";
/// What ends an event, after its message.
pub const EVENT_END: &[u8] = b"\n\n";

/// One message event carrying one JSON-RPC message (serialized JSON holds no newline, so one
/// `data:` line carries it).
pub fn event(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(EVENT_START.len() + message.len() + EVENT_END.len());
    out.extend_from_slice(EVENT_START);
    out.extend_from_slice(message);
    out.extend_from_slice(EVENT_END);
    out.freeze()
}

/// The comment that keeps a quiet event stream open through intermediaries and clients' read
/// timeouts (readers skip comment lines).
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// How long a stream made here stays quiet before it sends [`KEEP_ALIVE`].
pub const KEEP_ALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Separates the replica from the original id in a rewritten event id.
pub const ID_SEPARATOR: char = '/';

/// Split a `Last-Event-ID` the proxy issued into (replica, original id).
pub fn parse_event_id(last_event_id: &str) -> Option<(&str, &str)> {
    last_event_id
        .split_once(ID_SEPARATOR)
        .filter(|(replica, _)| !replica.is_empty())
}

/// What one chunk of stream produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// The bytes to send to the client (complete events only).
    pub out: Bytes,
    /// Ids (raw JSON) of server→client requests seen in these events.
    pub server_requests: Vec<String>,
    /// A response in these events named a task (see [`Scanner::naming_tasks`]).
    pub named_task: bool,
}

pub struct Scanner {
    replica: String,
    pending: Pending,
    names_tasks: bool,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
}

impl Scanner {
    pub fn new(replica: &str) -> Self {
        Self {
            replica: replica.to_owned(),
            pending: Pending::default(),
            names_tasks: false,
        }
    }

    /// Also name the replica in a response's `result.taskId` ([`crate::tasks`]), for events
    /// whose data is one line.
    pub fn naming_tasks(mut self) -> Self {
        self.names_tasks = true;
        self
    }

    /// Feed a chunk from the replica; `end`: the stream is over (flush what is left).
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> Scanned {
        self.pending.push(chunk);
        let mut out = BytesMut::new();
        let mut scanned = Scanned::default();
        while let Some(event) = self.pending.next_event(end) {
            self.event(&event, &mut out, &mut scanned);
        }
        scanned.out = out.freeze();
        scanned
    }

    fn event(&self, event: &[u8], out: &mut BytesMut, scanned: &mut Scanned) {
        for line in event.split_inclusive(|b| *b == b'\n') {
            let bare = trim_eol(line);
            if let Some(id) = bare.strip_prefix(b"id:") {
                let id = id.strip_prefix(b" ").unwrap_or(id);
                out.extend_from_slice(b"id: ");
                out.extend_from_slice(self.replica.as_bytes());
                out.extend_from_slice(&[ID_SEPARATOR as u8]);
                out.extend_from_slice(id);
                out.extend_from_slice(&line[bare.len()..]);
                continue;
            }
            if self.names_tasks
                && let Some(data) = bare.strip_prefix(b"data:")
                && let Some(named) =
                    crate::tasks::name_in_response(data.trim_ascii_start(), &self.replica)
            {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&named);
                out.extend_from_slice(&line[bare.len()..]);
                scanned.named_task = true;
                continue;
            }
            out.extend_from_slice(line);
        }
        let data = data_of(event);
        if let Ok(peek) = serde_json::from_slice::<Peek<'_>>(&data)
            && let (Some(id), Some(_)) = (peek.id, peek.method)
        {
            scanned.server_requests.push(id.get().to_owned());
        }
    }
}

/// The data of each complete event of a stream, fed chunk by chunk (events without data,
/// such as keep-alive comments, yield nothing).
#[derive(Default)]
pub struct Events {
    pending: Pending,
}

impl Events {
    /// The data of the events `chunk` completes (the last newline of each removed); `end`: the
    /// stream is over, so what is left is an event too.
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> Vec<Vec<u8>> {
        self.pending.push(chunk);
        let mut out = Vec::new();
        while let Some(event) = self.pending.next_event(end) {
            let mut data = data_of(&event);
            if data.pop().is_some() {
                out.push(data);
            }
        }
        out
    }

    /// Bytes held of an event not complete yet.
    pub fn pending(&self) -> usize {
        self.pending.buf.len()
    }
}

/// An event's data: its `data:` lines, each followed by a newline.
fn data_of(event: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    for line in event.split_inclusive(|b| *b == b'\n') {
        if let Some(d) = trim_eol(line).strip_prefix(b"data:") {
            data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
            data.push(b'\n');
        }
    }
    data
}

/// The complete events of a whole body, and a last one without its blank line.
fn events(mut body: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        let len = block_end(body, 0).unwrap_or(body.len());
        let (event, rest) = body.split_at(len);
        body = rest;
        Some(event)
    })
}

/// The last JSON-RPC response (a message with `result` or `error`) in an SSE body.
pub fn last_response(sse: &[u8]) -> Option<Bytes> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow, default)]
        result: Option<&'a RawValue>,
        #[serde(borrow, default)]
        error: Option<&'a RawValue>,
    }
    let mut last = None;
    for event in events(sse) {
        let mut data = data_of(event);
        if data.is_empty() {
            continue;
        }
        data.pop();
        if let Ok(answer) = serde_json::from_slice::<Answer<'_>>(&data)
            && (answer.result.is_some() || answer.error.is_some())
        {
            last = Some(data);
        }
    }
    last.map(Bytes::from)
}

/// The JSON-RPC response in a replica's answer body: the body itself when it is JSON, or the last
/// response message of an SSE stream.
pub fn response_json(body: &[u8]) -> Option<Bytes> {
    if body.trim_ascii_start().starts_with(b"{") {
        Some(Bytes::copy_from_slice(body))
    } else {
        last_response(body)
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Bytes of a stream not yet split into events, and how far they were searched for an
/// event's end: each byte is looked at once however the stream is cut into chunks (a 256 KiB
/// event arriving in small pieces was searched from its start at every piece, quadratic).
#[derive(Debug, Default)]
struct Pending {
    buf: BytesMut,
    searched: usize,
}

impl Pending {
    fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event (through its blank line); `end`: the stream is over, so what is
    /// left is one too.
    fn next_event(&mut self, end: bool) -> Option<BytesMut> {
        match block_end(&self.buf, resume_from(self.searched)) {
            Some(len) => {
                self.searched = 0;
                Some(self.buf.split_to(len))
            }
            None if end && !self.buf.is_empty() => {
                self.searched = 0;
                Some(self.buf.split())
            }
            None => {
                self.searched = self.buf.len();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_cut_into_any_pieces_come_out_whole() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\r\ndata: {\"c\":3}\n\n";
        let whole = Events::default().feed(stream, true);
        assert_eq!(whole.len(), 3);
        for size in 1..stream.len() {
            let mut events = Events::default();
            let mut got = Vec::new();
            let pieces: Vec<&[u8]> = stream.chunks(size).collect();
            for (i, piece) in pieces.iter().enumerate() {
                got.extend(events.feed(piece, i + 1 == pieces.len()));
            }
            assert_eq!(got, whole, "pieces of {size} bytes");
        }
    }

    #[test]
    fn rewrites_ids_and_passes_events_whole() {
        let mut s = Scanner::new("r2");
        let a = s.feed(
            b"id: 17\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nid: 1",
            false,
        );
        assert_eq!(
            &a.out[..],
            &b"id: r2/17\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"[..]
        );
        assert!(a.server_requests.is_empty());
        let b = s.feed(b"8\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"q1\",\"method\":\"sampling/createMessage\"}\n\n", false);
        assert!(b.out.starts_with(b"id: r2/18\n"));
        assert_eq!(b.server_requests, vec!["\"q1\"".to_owned()]);
        let c = s.feed(
            b"data: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n\n: keep-alive\n\n",
            true,
        );
        assert!(c.server_requests.is_empty(), "a response is not a request");
        assert!(c.out.ends_with(b": keep-alive\n\n"));
    }

    #[test]
    fn crlf_events() {
        let mut s = Scanner::new("r1");
        let out = s.feed(b"id: 3\r\ndata: {}\r\n\r\n", false);
        assert_eq!(&out.out[..], b"id: r1/3\r\ndata: {}\r\n\r\n");
    }

    #[test]
    fn sse_collapses_to_its_last_response() {
        let sse = b"id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nid: 2\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{}}\r\n\r\n";
        assert_eq!(
            &last_response(sse).unwrap()[..],
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\n\"result\":{}}"
        );
        assert!(last_response(b": keep-alive\n\n").is_none());
        assert_eq!(&response_json(b" {\"id\":1}").unwrap()[..], b" {\"id\":1}");
    }

    #[test]
    fn events_yield_their_data_as_they_complete() {
        let mut e = Events::default();
        assert!(e.feed(b"id: 1\ndata: {\"a\":", false).is_empty());
        assert_eq!(
            e.feed(b"1}\n\n: keep-alive\n\ndata: x\r\ndata: y", false),
            vec![b"{\"a\":1}".to_vec()]
        );
        assert_eq!(e.feed(b"", true), vec![b"x\ny".to_vec()]);
        assert_eq!(e.pending(), 0);
    }

    #[test]
    fn last_event_id_round_trip() {
        assert_eq!(parse_event_id("r2/17"), Some(("r2", "17")));
        assert_eq!(
            parse_event_id("127.0.0.1:8001/a/b"),
            Some(("127.0.0.1:8001", "a/b"))
        );
        assert_eq!(parse_event_id("17"), None);
        assert_eq!(parse_event_id("/17"), None);
    }
}
