//! Forwarding for request bodies pingora 0.9 cannot replay.
//!
//! mcp-edge must read a POST body before it can choose a replica. pingora then sends a body
//! it did not read itself only from its retry buffer, which holds 64 KiB; a larger body would
//! silently not be sent. Such requests are relayed here: pingora's own upstream connector and
//! connection pool, and the same request and response handling as the proxy phases
//! ([`crate::edge`]'s `prepare`, `on_header`, `on_body`), with a plain pipe in between.

use bytes::Bytes;
use pingora::{Result, proxy::Session};

use crate::{
    edge::{Ctx, Edge, shared},
    mcp::errors::{INTERNAL_ERROR, Reply},
};

/// Relay the buffered request; always answers the client (`Ok(true)`: the request is done).
pub async fn forward(edge: &Edge, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let body = shared::body(ctx);
    let query = session.req_header().uri.query().map(str::to_owned);
    // A pooled connection may turn out stale; the body is buffered, so one fresh try is safe.
    let mut stale_retry = false;
    loop {
        let Some(replica) = (if stale_retry { shared::current(ctx) } else { shared::choose(edge, ctx) }) else {
            let reply = Reply::error(503, INTERNAL_ERROR, "no healthy replica is available; try again shortly").with_id(shared::id(ctx));
            return shared::reply(edge, session, ctx, reply).await;
        };
        let peer = shared::peer(edge, &replica);
        let (mut upstream, reused) = match shared::connector(edge).get_http_session(&peer).await {
            Ok(s) => s,
            Err(e) => {
                // Nothing was sent: another replica may take it, unless only this one can.
                shared::failed(edge, ctx);
                if shared::sticky(ctx) {
                    let reply = Reply::error(502, INTERNAL_ERROR, format!("could not reach the replica: {e}")).with_id(shared::id(ctx));
                    return shared::reply(edge, session, ctx, reply).await;
                }
                stale_retry = false;
                continue;
            }
        };
        let mut request = session.req_header().clone();
        shared::prepare(edge, &mut request, ctx, query.as_deref())?;
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
            shared::failed(edge, ctx);
            let reply = Reply::error(502, INTERNAL_ERROR, format!("the replica failed before answering: {e}; the request was not repeated"))
                .with_id(shared::id(ctx));
            return shared::reply(edge, session, ctx, reply).await;
        }
        let mut response = upstream.response_header().expect("a response header was read").clone();
        shared::on_header(edge, &mut response, ctx)?;
        session.write_response_header(Box::new(response), false).await?;
        loop {
            let chunk = upstream.read_response_body().await;
            let (mut data, end) = match chunk {
                Ok(Some(data)) => (Some(data), false),
                Ok(None) => (None, true),
                Err(e) => {
                    shared::done_streaming(edge, ctx);
                    return Err(e);
                }
            };
            shared::on_body(edge, &mut data, end, ctx);
            session.write_response_body(data.filter(|d: &Bytes| !d.is_empty()), end).await?;
            if end {
                break;
            }
        }
        shared::done_streaming(edge, ctx);
        shared::connector(edge).release_http_session(upstream, &peer, Some(std::time::Duration::from_secs(60))).await;
        return Ok(true);
    }
}
