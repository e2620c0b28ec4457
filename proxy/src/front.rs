//! The client side of the proxy: pingora's HTTP/1 session code hands each request on a
//! connection (accepted by `listen`) here, one at a time (HTTP/1.1 keep-alive; pipelined
//! requests in order).
//!
//! ```text
//! read_head ─ the request's headers, within --header-timeout-ms of the connection being ready
//!   │          for it (accepted, or the previous response sent); else the connection closes
//!   │          (also how an idle keep-alive connection ends); a malformed head → pingora's 400
//! Edge::handle ─ everything the edge decides and forwards (edge.rs)
//!   └─ Err ─ Edge::fail: the client's answer when the request broke (502/504, or a stream's
//!            last error event); a client that went away is not logged as a failure
//! Edge::logging ─ metrics, the access log, in-flight keys released
//! finish ─ the connection is kept for the next request when the exchange ended cleanly
//!          (with any bytes of it that arrived early: pipelined requests are answered in order)
//! ```
//!
//! mcp-edge answers every request itself (its own forwarding, `upstream::forward`), so it needs
//! pingora's server and HTTP sessions but none of pingora-proxy's phases; this is the whole
//! request loop.

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

use crate::{drain::Drain, edge::Edge, metrics::Event};

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
        let mut ctx = edge.new_ctx();
        let error = edge.handle(&mut session, &mut ctx).await.err();
        if let Some(e) = &error {
            edge.fail(&mut session, e, &mut ctx).await;
        }
        edge.logging(&session, error.as_deref(), &mut ctx);
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
