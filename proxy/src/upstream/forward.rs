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
    protocols::{Stream, http::v1::client::HttpSession},
    proxy::Session,
};
use tokio::io::AsyncWriteExt;

use crate::{
    edge::{Ctx, Edge},
    mcp::errors::{INTERNAL_ERROR, Reply},
    metrics::Event,
    route::session_gone_reply,
};

/// Hop-by-hop headers: they describe the client's connection, not the request.
const HOP_BY_HOP: [&str; 7] = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// The request as bytes on the wire: head, then the whole body.
fn request_to_wire(mut request: RequestHeader, body: &[u8]) -> Result<BytesMut> {
    for name in HOP_BY_HOP {
        request.remove_header(name);
    }
    // The body is already here: nothing to wait for.
    request.remove_header("expect");
    request.set_version(http::Version::HTTP_11);
    if !body.is_empty() || request.method == http::Method::POST {
        request.insert_header("content-length", body.len().to_string())?;
    } else {
        request.remove_header("content-length");
    }
    let mut wire = pingora::protocols::http::v1::client::http_req_header_to_wire(&request)
        .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "request line cannot be sent"))?;
    wire.put_slice(body);
    Ok(wire)
}

async fn write_all(stream: &mut Stream, wire: &[u8], timeout: Duration) -> Result<()> {
    let write = async {
        stream.write_all(wire).await?;
        stream.flush().await
    };
    match pingora_timeout::fast_timeout::fast_timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Error::e_because(ErrorType::WriteError, "while writing the request", e),
        Err(_) => Error::e_explain(ErrorType::WriteTimedout, "while writing the request"),
    }
}

/// The next chunk of the replica's response body, passed through the edge's body step.
async fn next_chunk(edge: &Edge, upstream: &mut HttpSession, ctx: &mut Ctx) -> Result<(Option<Bytes>, bool)> {
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
        match session.downstream_session.read_body_or_idle(true).await {
            Err(e) => return e.into_down(),
            Ok(_) => continue,
        }
    }
}

/// What the client gets when the replica failed before its response began.
fn failed_before_answer(e: &Error) -> Reply {
    match e.etype() {
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => Reply::error(504, INTERNAL_ERROR, "the replica did not answer in time"),
        _ => Reply::error(502, INTERNAL_ERROR, format!("the replica failed before answering: {e}; the request was not repeated")),
    }
}

/// Forward the buffered request; always answers the client (`Ok(true)`: the request is done).
pub async fn forward(edge: &Edge, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let body = ctx.body.take().unwrap_or_default();
    let query = session.req_header().uri.query().map(str::to_owned);
    session.downstream_session.set_abort_on_close(true);
    // A pooled connection may turn out closed by the replica (it broke, not timed out): the
    // request is buffered, so it is tried once more on a new connection to the same replica —
    // pingora's rule for reused connections. If that replica cannot be reached any more, only a
    // request safe to repeat moves on.
    let mut stale_retry = false;
    loop {
        let Some(replica) = (if stale_retry { ctx.replica.clone() } else { edge.choose(ctx) }) else {
            let reply = if ctx.owned {
                session_gone_reply(ctx.id.as_deref())
            } else {
                Reply::error(503, INTERNAL_ERROR, "no healthy replica is available; try again shortly").with_id(ctx.id.as_deref())
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
                    return edge.reply(session, ctx, session_gone_reply(ctx.id.as_deref())).await;
                }
                if ctx.target.is_some() || (stale_retry && !ctx.retry_safe) {
                    // Pinned, or the broken pooled connection may have delivered it already.
                    let reply = Reply::error(502, INTERNAL_ERROR, format!("could not reach the replica: {e}; the request was not repeated"))
                        .with_id(ctx.id.as_deref());
                    return edge.reply(session, ctx, reply).await;
                }
                stale_retry = false;
                edge.metrics.count(Event::Retry);
                continue;
            }
        };
        let mut request = session.req_header().clone();
        edge.prepare_upstream_request(&mut request, &replica, ctx, query.as_deref())?;
        let wire = request_to_wire(request, &body)?;
        let exchange = async {
            let mut stream = stream;
            write_all(&mut stream, &wire, peer.options.write_timeout.unwrap_or(Duration::from_secs(3600))).await?;
            let mut upstream = HttpSession::new_with_options(stream, &peer);
            upstream.read_timeout = Some(edge.first_byte);
            upstream.write_timeout = peer.options.write_timeout;
            // Skip informational answers (1xx) to reach the real response.
            loop {
                upstream.read_response().await?;
                if !upstream.resp_header().is_some_and(|h| h.status.is_informational()) {
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
                let timed_out = matches!(e.etype(), ErrorType::ReadTimedout | ErrorType::WriteTimedout);
                if reused && !stale_retry && !timed_out {
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
                return edge.reply(session, ctx, failed_before_answer(&e).with_id(ctx.id.as_deref())).await;
            }
        };
        upstream.read_timeout = peer.options.read_timeout;
        let mut response = upstream.resp_header().expect("a response header was read").clone();
        if let Some(reply) = edge.on_response_header(&mut response, ctx)? {
            // Refused here: dropping the replica's connection abandons the request there.
            return edge.reply(session, ctx, reply.with_id(ctx.id.as_deref())).await;
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
                    return edge.reply(session, ctx, reply.with_id(ctx.id.as_deref())).await;
                }
            }
        }
        session.write_response_header(Box::new(response), false).await.map_err(|e| e.into_down())?;
        let held_last = held.len();
        for (i, chunk) in held.into_iter().enumerate() {
            session.write_response_body(Some(chunk), end && i + 1 == held_last).await.map_err(|e| e.into_down())?;
        }
        if end && held_last == 0 {
            session.write_response_body(None, true).await.map_err(|e| e.into_down())?;
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
            session.write_response_body(data, end).await.map_err(|e| e.into_down())?;
        }
        edge.release(ctx);
        upstream.respect_keepalive();
        if let Some(stream) = upstream.reuse().await {
            edge.pool.put(replica.addr, stream);
        }
        return Ok(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_leaves_in_one_piece_without_hop_by_hop_headers() {
        let mut request = RequestHeader::build("POST", b"/mcp", None).unwrap();
        request.set_version(http::Version::HTTP_10);
        for (name, value) in [("Connection", "close"), ("Transfer-Encoding", "chunked"), ("Expect", "100-continue"), ("Accept", "application/json")] {
            request.insert_header(name, value).unwrap();
        }
        let wire = request_to_wire(request, br#"{"jsonrpc":"2.0"}"#).unwrap();
        let text = std::str::from_utf8(&wire).unwrap();
        assert!(text.starts_with("POST /mcp HTTP/1.1\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"jsonrpc\":\"2.0\"}"), "{text}");
        let lower = text.to_ascii_lowercase();
        assert!(lower.contains("content-length: 17\r\n") && lower.contains("accept: application/json"), "{text}");
        for gone in ["connection:", "transfer-encoding:", "expect:"] {
            assert!(!lower.contains(gone), "{gone} in {text}");
        }

        let get = request_to_wire(RequestHeader::build("GET", b"/mcp", None).unwrap(), b"").unwrap();
        assert!(!std::str::from_utf8(&get).unwrap().to_ascii_lowercase().contains("content-length"));
    }
}
