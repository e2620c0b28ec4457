//! Forwarding a request to a replica and its answer back to the client.
//!
//! mcp-edge reads a request's body before it chooses a replica (routing needs it), so the
//! request is complete when it is forwarded: its head and body leave in one write over a
//! connection from the worker thread's own [`pool`](super::pool), and the response is read
//! with pingora's HTTP/1 client. On the way back it passes the same steps as everything else
//! the edge answers (`on_response_header`, `on_response_body`); a legacy `initialize` holds its
//! response headers until the body names the protocol version the session token must carry
//! (`seal_session`). While the replica works, the client's connection is watched: a client
//! that closes it (how a 2026-07-28 client cancels) closes the replica's connection too.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pingora::{
    Error, ErrorType, Result,
    http::RequestHeader,
    protocols::{
        Stream,
        http::{ServerSession as Session, v1::client::HttpSession},
    },
};
use tokio::io::AsyncWriteExt;

use crate::{
    edge::{Ctx, Edge, SESSION_HEADER, VERSION_HEADER},
    mcp::errors::{INTERNAL_ERROR, Reply},
    metrics::Event,
    route::session_gone_reply,
};

/// How the request a replica sees differs from the client's.
pub(crate) struct Rewrite<'a> {
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
}

/// The replica's request as bytes on the wire, head then the whole body, written straight from
/// the client's header: hop-by-hop fields (they describe the client's connection), `Expect`
/// (the body is already here) and the client's framing are dropped, `Content-Length` is the
/// body's.
fn request_to_wire(request: &RequestHeader, rewrite: &Rewrite, body: &[u8]) -> BytesMut {
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
    let mut has_version = false;
    for (name, value) in &request.headers {
        match name.as_str() {
            "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer"
            | "transfer-encoding" | "upgrade" => continue,
            "host" | "expect" | "content-length" | SESSION_HEADER => continue,
            "authorization" if rewrite.drop_authorization => continue,
            "last-event-id" if rewrite.last_event_id.is_some() => continue,
            VERSION_HEADER => has_version = true,
            _ => {}
        }
        field(&mut wire, name.as_str(), value.as_bytes());
    }
    if let Some(id) = rewrite.session_id {
        field(&mut wire, SESSION_HEADER, id.as_bytes());
    }
    if let (Some(version), false) = (rewrite.version, has_version) {
        field(&mut wire, VERSION_HEADER, version.as_bytes());
    }
    if let Some(id) = rewrite.last_event_id {
        field(&mut wire, "last-event-id", id.as_bytes());
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
    let write = async {
        stream.write_all(wire).await?;
        stream.flush().await
    };
    tokio::pin!(write);
    // A request fits the socket's buffer almost always: then no timer is needed.
    let written = match futures::FutureExt::now_or_never(&mut write) {
        Some(written) => Ok(written),
        None => pingora_timeout::fast_timeout::fast_timeout(timeout, write).await,
    };
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Error::e_because(ErrorType::WriteError, "while writing the request", e),
        Err(_) => Error::e_explain(ErrorType::WriteTimedout, "while writing the request"),
    }
}

/// The next chunk of the replica's response body, passed through the edge's body step.
async fn next_chunk(
    edge: &Edge,
    upstream: &mut HttpSession,
    ctx: &mut Ctx,
) -> Result<(Option<Bytes>, bool)> {
    let (mut data, end) = match upstream.read_body_bytes().await {
        Ok(Some(data)) => {
            let end = upstream.is_body_done();
            (Some(data), end)
        }
        Ok(None) => (None, true),
        Err(e) => {
            edge.release(ctx);
            return Err(e.into_up());
        }
    };
    edge.on_response_body(&mut data, end, ctx);
    Ok((data.filter(|d| !d.is_empty()), end))
}

/// Resolves when the client closes its connection (never while it stays open).
async fn client_gone(session: &mut Session) -> Box<Error> {
    loop {
        match session.read_body_or_idle(true).await {
            Err(e) => return e.into_down(),
            Ok(_) => continue,
        }
    }
}

/// Whether the replica was too slow, rather than broken (504, and never repeated).
pub(crate) fn is_timeout(etype: &ErrorType) -> bool {
    matches!(etype, ErrorType::ReadTimedout | ErrorType::WriteTimedout)
}

/// What the client gets when the replica failed before its response began.
fn failed_before_answer(e: &Error) -> Reply {
    if is_timeout(e.etype()) {
        Reply::error(504, INTERNAL_ERROR, "the replica did not answer in time")
    } else {
        Reply::error(
            502,
            INTERNAL_ERROR,
            format!("the replica failed before answering: {e}; the request was not repeated"),
        )
    }
}

/// Forward the buffered request; always answers the client.
pub async fn forward(edge: &Edge, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
    let body = ctx.body.take().unwrap_or_default();
    session.set_abort_on_close(true);
    // A pooled connection may turn out closed by the replica (it broke, not timed out): the
    // request is buffered, so it is tried once more on a new connection to the same replica —
    // pingora's rule for reused connections. If that replica cannot be reached any more, only a
    // request safe to repeat moves on.
    let mut stale_retry = false;
    loop {
        let Some(replica) = (if stale_retry {
            ctx.replica.clone()
        } else {
            edge.choose(ctx)
        }) else {
            let reply = if ctx.owned {
                session_gone_reply(ctx.id.as_deref())
            } else {
                Reply::error(
                    503,
                    INTERNAL_ERROR,
                    "no healthy replica is available; try again shortly",
                )
                .with_id(ctx.id.as_deref())
            };
            return edge.reply(session, ctx, reply).await;
        };
        let peer = edge.peer(&replica);
        let (stream, reused) = match edge.pool.get(&peer, replica.addr).await {
            Ok(s) => s,
            Err(e) => {
                // Nothing was sent: another replica may take it, unless only this one can.
                edge.failed(ctx);
                if ctx.owned {
                    // A stateful replica's sessions die with it: the client must start a new one.
                    return edge
                        .reply(session, ctx, session_gone_reply(ctx.id.as_deref()))
                        .await;
                }
                if ctx.target.is_some() || (stale_retry && !ctx.retry_safe) {
                    // Pinned, or the broken pooled connection may have delivered it already.
                    let reply = Reply::error(
                        502,
                        INTERNAL_ERROR,
                        format!("could not reach the replica: {e}; the request was not repeated"),
                    )
                    .with_id(ctx.id.as_deref());
                    return edge.reply(session, ctx, reply).await;
                }
                stale_retry = false;
                edge.metrics.count(Event::Retry);
                continue;
            }
        };
        let wire = request_to_wire(session.req_header(), &edge.rewrite(&replica, ctx), &body);
        let exchange = async {
            let mut stream = stream;
            write_all(
                &mut stream,
                &wire,
                peer.options
                    .write_timeout
                    .unwrap_or(Duration::from_secs(3600)),
            )
            .await?;
            let mut upstream = HttpSession::new_with_options(stream, &peer);
            upstream.read_timeout = Some(edge.first_byte);
            upstream.write_timeout = peer.options.write_timeout;
            // Skip informational answers (1xx) to reach the real response.
            loop {
                upstream.read_response().await?;
                if !upstream
                    .resp_header()
                    .is_some_and(|h| h.status.is_informational())
                {
                    return Ok::<_, Box<Error>>(upstream);
                }
            }
        };
        let answered = tokio::select! {
            answered = exchange => answered,
            gone = client_gone(session) => {
                // Dropping the replica's connection tells it the request is cancelled.
                return Err(gone);
            }
        };
        let mut upstream = match answered {
            Ok(upstream) => upstream,
            Err(e) => {
                if reused && !stale_retry && !is_timeout(e.etype()) {
                    stale_retry = true;
                    edge.metrics.count(Event::Retry);
                    continue;
                }
                if edge.may_move(ctx, e.etype()) {
                    // Broke before any response byte, and repeating it changes nothing.
                    edge.failed(ctx);
                    stale_retry = false;
                    edge.metrics.count(Event::Retry);
                    continue;
                }
                edge.failed(ctx);
                return edge
                    .reply(
                        session,
                        ctx,
                        failed_before_answer(&e).with_id(ctx.id.as_deref()),
                    )
                    .await;
            }
        };
        upstream.read_timeout = peer.options.read_timeout;
        let mut response = upstream
            .resp_header()
            .expect("a response header was read")
            .clone();
        if let Some(reply) = edge.on_response_header(&mut response, ctx)? {
            // Refused here: dropping the replica's connection abandons the request there.
            return edge
                .reply(session, ctx, reply.with_id(ctx.id.as_deref()))
                .await;
        }
        // An initialize result: hold the body until the session is sealed into the headers.
        let mut held = Vec::new();
        let mut end = false;
        while ctx.init.is_some() {
            let (data, last) = next_chunk(edge, &mut upstream, ctx).await?;
            held.extend(data);
            end = last;
            match edge.seal_session(&mut response, ctx, end) {
                Ok(true) => break,
                Ok(false) => {}
                Err(reply) => {
                    edge.release(ctx);
                    return edge
                        .reply(session, ctx, reply.with_id(ctx.id.as_deref()))
                        .await;
                }
            }
        }
        session
            .write_response_header(Box::new(response))
            .await
            .map_err(|e| e.into_down())?;
        let held_last = held.len();
        for (i, chunk) in held.into_iter().enumerate() {
            session
                .write_response_body(chunk, end && i + 1 == held_last)
                .await
                .map_err(|e| e.into_down())?;
        }
        if end && held_last == 0 {
            session
                .write_response_body(Bytes::new(), true)
                .await
                .map_err(|e| e.into_down())?;
        }
        while !end {
            let (data, last) = tokio::select! {
                next = next_chunk(edge, &mut upstream, ctx) => next?,
                gone = client_gone(session) => {
                    edge.release(ctx);
                    return Err(gone);
                }
            };
            end = last;
            // An empty chunk that does not end the body writes nothing (pingora's rule).
            session
                .write_response_body(data.unwrap_or_default(), end)
                .await
                .map_err(|e| e.into_down())?;
        }
        edge.release(ctx);
        upstream.respect_keepalive();
        if let Some(stream) = upstream.reuse().await {
            edge.pool.put(replica.addr, stream);
        }
        return Ok(());
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
    };

    fn text(wire: &[u8]) -> String {
        String::from_utf8(wire.to_vec()).unwrap()
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
        ] {
            request.append_header(name, value).unwrap();
        }
        let rewrite = Rewrite {
            session_id: Some("replica-session"),
            version: Some("2025-06-18"),
            last_event_id: Some("41"),
            drop_authorization: true,
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
