//! One attempt at a replica: the buffered request written in one piece, the response head
//! read, then its body chunk by chunk. It returns values — a [`Response`], chunks, or pingora's
//! error for [`crate::route::after_failure`] — and knows nothing of the edge or of the client:
//! the exchange loop ([`crate::exchange`]) calls it once per attempt, and a push link for its
//! listen.
//!
//! mcp-edge reads a request's body before it chooses a replica (routing needs it), so the
//! request is complete when it is sent: head and body leave in one write over a connection
//! from the worker thread's own [`pool`](super::pool); the response is read by [`http1`](super::http1),
//! with buffers sized for what arrives.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use mcp_protocol::headers::{LAST_EVENT_ID, NAME, PROTOCOL_VERSION, SESSION_ID};
use pingora::{
    Error, ErrorType, Result,
    http::{RequestHeader, ResponseHeader},
    protocols::Stream,
    upstreams::peer::HttpPeer,
};
use tokio::io::AsyncWriteExt;

use super::{Replica, http1, pool::Pool};

/// The timeouts of an exchange.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// From the request written to the response head.
    pub first_byte: Duration,
    /// Between two reads or writes once the response began.
    pub idle: Duration,
}

impl Timeouts {
    /// The peer pingora's connector and HTTP client read their timeouts from.
    pub fn peer(&self, replica: &Replica) -> HttpPeer {
        let mut peer = HttpPeer::new(replica.addr, false, String::new());
        peer.options.connection_timeout = Some(self.connect);
        peer.options.read_timeout = Some(self.idle);
        peer.options.write_timeout = Some(self.idle);
        peer
    }
}

/// How the request a replica sees differs from the client's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rewrite<'a> {
    /// `Host`: the replica's own authority.
    pub authority: &'a str,
    /// The replica's path (the client's query string is kept).
    pub path: &'a str,
    /// `Mcp-Session-Id`: the client's never passes; a stateful owner gets its own id here.
    pub session_id: Option<&'a str>,
    /// `MCP-Protocol-Version`, added when the client sent none (a legacy session's version).
    pub version: Option<&'a str>,
    /// `Last-Event-ID`, replacing the client's (the replica's own event id).
    pub last_event_id: Option<&'a str>,
    /// Whether `Authorization` stays here (it was the edge's own credential).
    pub drop_authorization: bool,
    /// `Mcp-Name`, replacing the client's when it sent one (a task's id as its replica knows it).
    pub name: Option<&'a str>,
}

/// The replica's request as bytes on the wire, head then the whole body, written straight from
/// the client's header: hop-by-hop fields (they describe the client's connection), `Expect`
/// (the body is already here) and the client's framing are dropped, `Content-Length` is the
/// body's.
pub fn request_to_wire(request: &RequestHeader, rewrite: &Rewrite, body: &[u8]) -> BytesMut {
    fn field(wire: &mut BytesMut, name: &str, value: &[u8]) {
        wire.put_slice(name.as_bytes());
        wire.put_slice(b": ");
        wire.put_slice(value);
        wire.put_slice(b"\r\n");
    }
    let mut wire = BytesMut::with_capacity(512 + body.len());
    wire.put_slice(request.method.as_str().as_bytes());
    wire.put_u8(b' ');
    wire.put_slice(rewrite.path.as_bytes());
    if let Some(query) = request.uri.query() {
        wire.put_u8(b'?');
        wire.put_slice(query.as_bytes());
    }
    wire.put_slice(b" HTTP/1.1\r\n");
    field(&mut wire, "host", rewrite.authority.as_bytes());
    let (mut has_version, mut cookies_written) = (false, false);
    for (name, value) in &request.headers {
        match name.as_str() {
            // An HTTP/2 client may split its cookie into several fields (RFC 9113 §8.2.3);
            // HTTP/1.1 allows one: joined with "; " where the first one stood.
            "cookie" => {
                if !cookies_written {
                    cookies_written = true;
                    wire.put_slice(b"cookie: ");
                    for (i, cookie) in request.headers.get_all("cookie").iter().enumerate() {
                        if i > 0 {
                            wire.put_slice(b"; ");
                        }
                        wire.put_slice(cookie.as_bytes());
                    }
                    wire.put_slice(b"\r\n");
                }
                continue;
            }
            "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer"
            | "transfer-encoding" | "upgrade" => continue,
            "host" | "expect" | "content-length" | SESSION_ID => continue,
            "authorization" if rewrite.drop_authorization => continue,
            LAST_EVENT_ID if rewrite.last_event_id.is_some() => continue,
            NAME if let Some(name) = rewrite.name => {
                field(&mut wire, NAME, name.as_bytes());
                continue;
            }
            PROTOCOL_VERSION => has_version = true,
            _ => {}
        }
        field(&mut wire, name.as_str(), value.as_bytes());
    }
    if let Some(id) = rewrite.session_id {
        field(&mut wire, SESSION_ID, id.as_bytes());
    }
    if let (Some(version), false) = (rewrite.version, has_version) {
        field(&mut wire, PROTOCOL_VERSION, version.as_bytes());
    }
    if let Some(id) = rewrite.last_event_id {
        field(&mut wire, LAST_EVENT_ID, id.as_bytes());
    }
    if !body.is_empty() || request.method == http::Method::POST {
        field(
            &mut wire,
            "content-length",
            itoa::Buffer::new().format(body.len()).as_bytes(),
        );
    }
    wire.put_slice(b"\r\n");
    wire.put_slice(body);
    wire
}

async fn write_all(stream: &mut Stream, wire: &[u8], timeout: Duration) -> Result<()> {
    let write = std::pin::pin!(async {
        stream.write_all(wire).await?;
        stream.flush().await
    });
    // A request fits the socket's buffer almost always: then no timer is needed.
    match crate::budget::within(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Error::e_because(ErrorType::WriteError, "while writing the request", e),
        Err(_) => Error::e_explain(ErrorType::WriteTimedout, "while writing the request"),
    }
}

/// A replica's answer under way: its head read, its body still to come.
pub struct Response {
    head: Option<Box<ResponseHeader>>,
    body: http1::Body,
}

/// Write the request over `stream` and read the response head (informational 1xx answers are
/// skipped), within the first-byte timeout.
pub async fn send(
    mut stream: Stream,
    wire: &[u8],
    peer: &HttpPeer,
    first_byte: Duration,
) -> Result<Response> {
    let idle = peer
        .options
        .write_timeout
        .unwrap_or(Duration::from_secs(3600));
    write_all(&mut stream, wire, idle).await?;
    let idle = peer.options.read_timeout.unwrap_or(idle);
    let (head, body) = http1::read(stream, first_byte, idle).await?;
    Ok(Response {
        head: Some(head),
        body,
    })
}

impl Response {
    /// The response head, to be edited on its way to the client (taken once).
    pub fn head(&mut self) -> Box<ResponseHeader> {
        self.head.take().expect("the head is taken once")
    }

    /// The next chunk of the body, and whether it is the last (`None`: the body is over).
    pub async fn chunk(&mut self) -> Result<(Option<Bytes>, bool)> {
        self.body.chunk().await
    }

    /// The body was read to its end: the connection goes back to the pool when the replica
    /// keeps it alive.
    pub fn finish(self, pool: &Pool, replica: &Replica) {
        if let Some(stream) = self.body.reusable() {
            pool.put(replica.addr, stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Rewrite = Rewrite {
        authority: "10.0.0.7:8000",
        path: "/mcp",
        session_id: None,
        version: None,
        last_event_id: None,
        drop_authorization: false,
        name: None,
    };

    fn text(wire: &[u8]) -> String {
        String::from_utf8(wire.to_vec()).unwrap()
    }

    #[test]
    fn an_http2_client_s_cookie_fields_reach_the_replica_as_one_field() {
        let mut request = RequestHeader::build("POST", b"/mcp", None).unwrap();
        for (name, value) in [("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")] {
            request.append_header(name, value).unwrap();
        }
        let wire = text(&request_to_wire(&request, &PLAIN, b"{}"));
        assert_eq!(wire.matches("cookie:").count(), 1, "{wire}");
        assert!(wire.contains("cookie: a=1; b=2\r\n"), "{wire}");
    }

    #[test]
    fn the_request_leaves_in_one_piece_without_hop_by_hop_headers() {
        let mut request =
            RequestHeader::build("POST", b"http://edge.example/api?x=1", None).unwrap();
        request.set_version(http::Version::HTTP_10);
        for (name, value) in [
            ("Host", "edge.example"),
            ("Connection", "close"),
            ("Transfer-Encoding", "chunked"),
            ("Expect", "100-continue"),
            ("Content-Length", "999"),
            ("Mcp-Session-Id", "client-token"),
            ("Accept", "application/json"),
            ("Accept", "text/event-stream"),
        ] {
            request.append_header(name, value).unwrap();
        }
        let wire = text(&request_to_wire(&request, &PLAIN, br#"{"jsonrpc":"2.0"}"#));
        assert!(
            wire.starts_with("POST /mcp?x=1 HTTP/1.1\r\nhost: 10.0.0.7:8000\r\n"),
            "{wire}"
        );
        assert!(
            wire.ends_with("content-length: 17\r\n\r\n{\"jsonrpc\":\"2.0\"}"),
            "{wire}"
        );
        assert!(
            wire.contains("accept: application/json\r\naccept: text/event-stream\r\n"),
            "{wire}"
        );
        for gone in [
            "connection:",
            "transfer-encoding:",
            "expect:",
            "mcp-session-id:",
            "edge.example",
            "999",
        ] {
            assert!(!wire.contains(gone), "{gone} in {wire}");
        }

        let get = text(&request_to_wire(
            &RequestHeader::build("GET", b"/mcp", None).unwrap(),
            &PLAIN,
            b"",
        ));
        assert_eq!(get, "GET /mcp HTTP/1.1\r\nhost: 10.0.0.7:8000\r\n\r\n");
    }

    #[test]
    fn session_fields_are_the_replicas_own() {
        let mut request = RequestHeader::build("GET", b"/mcp", None).unwrap();
        for (name, value) in [
            ("Mcp-Session-Id", "client-token"),
            ("Last-Event-ID", "r2/41"),
            ("Authorization", "Bearer edge-secret"),
            ("Mcp-Name", "r2/task-7"),
        ] {
            request.append_header(name, value).unwrap();
        }
        let rewrite = Rewrite {
            session_id: Some("replica-session"),
            version: Some("2025-06-18"),
            last_event_id: Some("41"),
            drop_authorization: true,
            name: Some("task-7"),
            ..PLAIN
        };
        let wire = text(&request_to_wire(&request, &rewrite, b""));
        assert!(
            wire.contains("mcp-session-id: replica-session\r\n") && !wire.contains("client-token"),
            "{wire}"
        );
        assert!(
            wire.contains("mcp-protocol-version: 2025-06-18\r\n"),
            "{wire}"
        );
        assert!(
            wire.contains("last-event-id: 41\r\n") && !wire.contains("r2/41"),
            "{wire}"
        );
        assert!(!wire.contains("edge-secret"), "{wire}");
        assert!(
            wire.contains("mcp-name: task-7\r\n") && !wire.contains("r2/task-7"),
            "{wire}"
        );

        // A version the client sent is the one the replica gets.
        request
            .append_header("MCP-Protocol-Version", "2025-03-26")
            .unwrap();
        let wire = text(&request_to_wire(&request, &rewrite, b""));
        assert!(
            wire.contains("mcp-protocol-version: 2025-03-26\r\n") && !wire.contains("2025-06-18"),
            "{wire}"
        );
    }
}
