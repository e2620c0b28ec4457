//! Forwarding for request bodies pingora 0.9 cannot replay.
//!
//! mcp-edge must read a POST body before it can choose a replica. pingora then sends a body
//! it did not read itself only from its retry buffer, which holds 64 KiB; a larger body would
//! silently not be sent. Such requests are relayed here: pingora's own upstream connector and
//! connection pool, and the same steps as the proxy phases (`Edge::choose`,
//! `prepare_upstream_request`, `on_response_header`, `on_response_body`), with a plain pipe in
//! between.

use bytes::Bytes;
use pingora::{Result, proxy::Session};

use crate::{
    edge::{Ctx, Edge},
    mcp::errors::{INTERNAL_ERROR, Reply},
};

/// Relay the buffered request; always answers the client (`Ok(true)`: the request is done).
pub async fn forward(edge: &Edge, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let body = ctx.body.clone().unwrap_or_default();
    let query = session.req_header().uri.query().map(str::to_owned);
    // A pooled connection may turn out stale; the body is buffered, so one fresh try is safe.
    let mut stale_retry = false;
    loop {
        let Some(replica) = (if stale_retry { ctx.replica.clone() } else { edge.choose(ctx) }) else {
            let reply = Reply::error(503, INTERNAL_ERROR, "no healthy replica is available; try again shortly").with_id(ctx.id.as_deref());
            return edge.reply(session, ctx, reply).await;
        };
        let peer = edge.peer(&replica);
        let (mut upstream, reused) = match edge.relay.get_http_session(&peer).await {
            Ok(s) => s,
            Err(e) => {
                // Nothing was sent: another replica may take it, unless only this one can.
                edge.failed(ctx);
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
            edge.failed(ctx);
            let reply = Reply::error(502, INTERNAL_ERROR, format!("the replica failed before answering: {e}; the request was not repeated"))
                .with_id(ctx.id.as_deref());
            return edge.reply(session, ctx, reply).await;
        }
        let mut response = upstream.response_header().expect("a response header was read").clone();
        edge.on_response_header(&mut response, ctx)?;
        session.write_response_header(Box::new(response), false).await?;
        loop {
            let chunk = upstream.read_response_body().await;
            let (mut data, end) = match chunk {
                Ok(Some(data)) => (Some(data), false),
                Ok(None) => (None, true),
                Err(e) => {
                    edge.release(ctx);
                    return Err(e);
                }
            };
            edge.on_response_body(&mut data, end, ctx);
            session.write_response_body(data.filter(|d: &Bytes| !d.is_empty()), end).await?;
            if end {
                break;
            }
        }
        edge.release(ctx);
        edge.relay.release_http_session(upstream, &peer, Some(std::time::Duration::from_secs(60))).await;
        return Ok(true);
    }
}
