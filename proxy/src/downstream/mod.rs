//! The client connection: accepted by [`listen`] (one socket per worker thread), then each
//! request on it, one at a time (HTTP/1.1 keep-alive; pipelined requests in order). This
//! module and [`client`] are the only code that reads or writes pingora's `ServerSession`.
//!
//! ```text
//! read_head ─ the request's headers, within --header-timeout-ms of the connection being ready
//!   │          for it (accepted, or the previous response sent); else the connection closes
//!   │          (also how an idle keep-alive connection ends); a malformed head → pingora's 400
//! Edge::handle ─ the request's phases (edge.rs), through a Client (client.rs)
//!   └─ Err ─ Client::fail: the client's answer when the request broke (502/504, or a stream's
//!            last error event); a client that went away is not logged as a failure
//! Ctx::finish ─ in-flight guards released, metrics, the access log
//! finish ─ the connection is kept for the next request when the exchange ended cleanly
//!          (with any bytes of it that arrived early: pipelined requests are answered in order)
//! ```
//!
//! mcp-edge answers every request itself (its own exchange with replicas, `upstream::exchange`),
//! so it needs pingora's server and HTTP sessions but none of pingora-proxy's phases; this is
//! the whole request loop. HTTP/2 from clients would be a sibling of this loop: `listen`'s
//! connection already delegates `Peek` (how pingora tells an h2c preface from HTTP/1).

pub mod client;
pub mod heads;
pub mod listen;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use pingora::{
    ErrorType,
    apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream},
    protocols::http::ServerSession,
    server::ShutdownWatch,
};
use tokio::sync::Notify;

use crate::{answer::Stop, drain::Drain, edge::Edge, request::Ctx, telemetry::metrics::Event};

use client::Client;

/// The proxy as pingora's HTTP application.
pub struct Front {
    edge: Edge,
    header_deadline: Duration,
    /// Connections waiting for or answering a request (the shutdown waits for them).
    drain: Arc<Drain>,
    /// Set when the service stops accepting: keep-alive connections waiting for a request close.
    closing: AtomicBool,
    closed: Notify,
}

impl Front {
    pub fn new(edge: Edge, header_deadline: Duration, drain: Arc<Drain>) -> Self {
        Self {
            edge,
            header_deadline,
            drain,
            closing: AtomicBool::new(false),
            closed: Notify::new(),
        }
    }

    /// Read the next request's headers. `false`: there is none (closed, timed out, malformed,
    /// or the service is stopping) and the connection ends.
    async fn read_head(&self, session: &mut ServerSession) -> bool {
        // Registered before the flag is read: a shutdown in between still ends the wait.
        let closed = self.closed.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        if self.closing.load(Ordering::Acquire) {
            return false;
        }
        let read = tokio::select! {
            biased;
            read = pingora_timeout::fast_timeout::fast_timeout(self.header_deadline, session.read_request()) => read,
            () = closed => return false,
        };
        match read {
            Ok(Ok(request)) => request,
            Ok(Err(e)) => {
                if e.etype() == &ErrorType::InvalidHTTPHeader {
                    let _ = session.respond_error(400).await;
                }
                tracing::debug!("bad request head: {e}");
                session.shutdown().await;
                false
            }
            Err(_) => {
                self.edge.metrics.count(Event::HeaderTimeout);
                false
            }
        }
    }
}

#[async_trait]
impl HttpServerApp for Front {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // A client may send its next request before this one's answer ends (pipelining, or
        // simply right after a bodiless answer such as a 202): those bytes are kept for the
        // next request instead of being taken for a client that broke the protocol.
        session.set_pipelining_enabled(true);
        let _busy = self.drain.enter();
        if !self.read_head(&mut session).await {
            return None;
        }
        if self.closing.load(Ordering::Acquire) {
            session.set_keepalive(None);
        }
        let edge = &self.edge;
        let mut ctx = Ctx::new();
        let mut client = Client::new(&mut session);
        let error = match edge.handle(&mut client, &mut ctx).await {
            Ok(()) => None,
            Err(Stop::Answer(failure)) => {
                client.reply(&failure.reply(ctx.id.as_deref())).await.err()
            }
            Err(Stop::Broken(e)) => Some(e),
        };
        if let Some(e) = &error {
            client
                .fail(e, ctx.id.as_deref(), ctx.streamed_request())
                .await;
        }
        ctx.finish(
            &client,
            error.as_deref(),
            &edge.metrics,
            edge.access.as_ref(),
        );
        if let Some(e) = error {
            session.on_proxy_failure(e);
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        session
            .finish()
            .await
            .ok()
            .flatten()
            .map(|stream| ReusedHttpStream::from_reusable_stream(stream, settings))
    }

    async fn http_cleanup(&self) {
        self.closing.store(true, Ordering::Release);
        self.closed.notify_waiters();
    }
}
