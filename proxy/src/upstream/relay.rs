//! Forwarding for what pingora's phases cannot do: replay a large body, or hold a response's
//! headers until its body is seen.
//!
//! mcp-edge must read a POST body before it can choose a replica. pingora then sends a body
//! it did not read itself only from its retry buffer, which holds 64 KiB; a larger body would
//! silently not be sent. And a legacy `initialize` needs its session token in the response
//! headers, sealed with the protocol version that only the response body names. Such requests
//! are relayed here: pingora's own upstream connector and connection pool, and the same steps
//! as the proxy phases (`Edge::choose`, `prepare_upstream_request`, `on_response_header`,
//! `on_response_body`, `seal_session`), with a plain pipe in between.

use bytes::Bytes;
use pingora::{Result, protocols::http::client::HttpSession, proxy::Session};

use crate::{
    edge::{Ctx, Edge},
    mcp::errors::{INTERNAL_ERROR, Reply},
    route::session_gone_reply,
};

/// The next chunk of the replica's response body, passed through the edge's body step.
async fn next_chunk(edge: &Edge, upstream: &mut HttpSession, ctx: &mut Ctx) -> Result<(Option<Bytes>, bool)> {
    let (mut data, end) = match upstream.read_response_body().await {
        Ok(Some(data)) => (Some(data), false),
        Ok(None) => (None, true),
        Err(e) => {
            edge.release(ctx);
            return Err(e);
        }
    };
    edge.on_response_body(&mut data, end, ctx);
    Ok((data.filter(|d| !d.is_empty()), end))
}

/// Relay the buffered request; always answers the client (`Ok(true)`: the request is done).
pub async fn forward(edge: &Edge, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let body = ctx.body.clone().unwrap_or_default();
    let query = session.req_header().uri.query().map(str::to_owned);
    // A pooled connection may turn out stale; the body is buffered, so one fresh try is safe.
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
        let (mut upstream, reused) = match edge.relay.get_http_session(&peer).await {
            Ok(s) => s,
            Err(e) => {
                // Nothing was sent: another replica may take it, unless only this one can.
                edge.failed(ctx);
                if ctx.owned {
                    // A stateful replica's sessions die with it: the client must start a new one.
                    return edge.reply(session, ctx, session_gone_reply(ctx.id.as_deref())).await;
                }
                if ctx.target.is_some() {
                    let reply = Reply::error(502, INTERNAL_ERROR, format!("could not reach the replica: {e}")).with_id(ctx.id.as_deref());
                    return edge.reply(session, ctx, reply).await;
                }
                stale_retry = false;
                continue;
            }
        };
        let mut request = session.req_header().clone();
        edge.prepare_upstream_request(&mut request, &replica, ctx, query.as_deref())?;
        request.insert_header("content-length", body.len().to_string())?;
        request.remove_header("transfer-encoding");
        // The body is already here: nothing to wait for.
        request.remove_header("expect");
        let sent = async {
            upstream.write_request_header(Box::new(request)).await?;
            upstream.write_request_body(body.clone(), true).await?;
            upstream.finish_request_body().await?;
            // Skip informational answers (1xx) to reach the real response.
            loop {
                upstream.read_response_header().await?;
                let informational = upstream.response_header().is_some_and(|h| h.status.is_informational());
                if !informational {
                    return Ok::<(), Box<pingora::Error>>(());
                }
            }
        }
        .await;
        if let Err(e) = sent {
            if reused && !stale_retry {
                stale_retry = true;
                continue;
            }
            if edge.may_move(ctx, e.etype()) {
                // Broke before any response byte, and repeating it changes nothing.
                edge.failed(ctx);
                stale_retry = false;
                continue;
            }
            edge.failed(ctx);
            let reply = Reply::error(502, INTERNAL_ERROR, format!("the replica failed before answering: {e}; the request was not repeated"))
                .with_id(ctx.id.as_deref());
            return edge.reply(session, ctx, reply).await;
        }
        let mut response = upstream.response_header().expect("a response header was read").clone();
        edge.on_response_header(&mut response, ctx)?;
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
        session.write_response_header(Box::new(response), false).await?;
        for chunk in held {
            session.write_response_body(Some(chunk), false).await?;
        }
        if end {
            session.write_response_body(None, true).await?;
        }
        while !end {
            let (data, last) = next_chunk(edge, &mut upstream, ctx).await?;
            end = last;
            session.write_response_body(data, end).await?;
        }
        edge.release(ctx);
        edge.relay.release_http_session(upstream, &peer, Some(std::time::Duration::from_secs(60))).await;
        return Ok(true);
    }
}
