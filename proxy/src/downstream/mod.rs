//! The client connection: accepted by [`listen`] (one socket per worker thread), its TLS
//! handshake when the listener has TLS ([`tls`]), then its requests: HTTP/2 streams, each on a
//! task of its own ([`h2`]), or HTTP/1.1 requests one at a time (keep-alive; pipelined requests
//! in order), this module's loop. This module, [`h2`] and [`client`] are the only code that
//! reads or writes pingora's `ServerSession`.
//!
//! ```text
//! accepted ── TLS handshake (tls.rs), within --tls-handshake-timeout-ms; ALPN h2 → h2.rs
//!   │
//! wait ───── an idle keep-alive connection holds its socket and nothing else (no session, no
//!   │         buffer) until the client's next byte arrives
//! read_head ─ the request's headers, within --header-timeout-ms of the connection being ready
//!   │          for it (accepted, or the previous response sent); else the connection closes
//!   │          (also how an idle keep-alive connection ends); a malformed head → pingora's 400;
//!   │          a head still incomplete past the header limits → 431 (read here: pingora would
//!   │          buffer up to 1 MiB before its own check); a new connection's first bytes that
//!   │          are HTTP/2's preface → h2.rs (h2c)
//! exchange ── Edge::handle: the request's phases (edge.rs), through a Client (client.rs);
//!   │          Err → Client::fail: the client's answer when the request broke (502/504, or a
//!   │          stream's last error event); a client that went away is not logged as a
//!   │          failure; then Ctx::finish: in-flight guards released, metrics, the access log
//! finish ─ the connection is kept for the next request when the exchange ended cleanly
//!          (with any bytes of it that arrived early: pipelined requests are answered in order)
//! ```
//!
//! mcp-edge answers every request itself (its own exchange with replicas, `upstream::attempt`),
//! so it needs pingora's HTTP sessions but none of pingora-proxy's phases, nor pingora's
//! connection loop (`ServerApp::process_new`, whose future also holds the HTTP/2 handshake's
//! state: 12.6 KB for every HTTP/1 connection, measured); this is the whole request loop. Each
//! request's future is boxed, so that only a request being answered holds its state.

pub mod client;
mod h2;
pub mod heads;
pub mod listen;
pub mod tls;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::BytesMut;
use mcp_protocol::lines;
use pingora::{
    ErrorType,
    apps::HttpPersistentSettings,
    protocols::{Stream, http::ServerSession, l4::stream::Stream as L4Stream},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::Notify,
};

use crate::{
    answer::{Reply, Stop},
    budget::{Limit, Times},
    drain::Drain,
    edge::Edge,
    request::Ctx,
    telemetry::metrics::Event,
};

use client::Client;
use listen::{Connection, Wire};
use tls::Tls;

pub use h2::Http2;

/// The buffer a request's first bytes are read into: a typical MCP request's head and body fit.
const FIRST_READ: usize = 1024;
/// How long a connection refused before its head was parsed lingers to drain what the client
/// still sends (so that the client reads its answer rather than a reset).
const LINGER: Duration = Duration::from_secs(2);

/// A connection kept for its next request.
struct Kept {
    stream: Stream,
    /// The previous session's (`None`: a new connection).
    settings: Option<HttpPersistentSettings>,
    /// Bytes of the next request already read (pipelined after the previous one).
    pipelined: Option<BytesMut>,
}

/// The client side of the proxy: serves the connections `listen` accepts.
pub struct Front {
    edge: Edge,
    /// TLS on the listener (`None`: plaintext).
    tls: Option<Arc<Tls>>,
    /// HTTP/2's per-connection limits (`None`: HTTP/1.1 only).
    http2: Option<Http2>,
    header_deadline: Duration,
    /// Most bytes of an incomplete request head read (`budget::head_bytes`).
    head_bytes: usize,
    times: Times,
    /// Connections waiting for or answering a request (the shutdown waits for them).
    drain: Arc<Drain>,
    /// Set when the service stops accepting: keep-alive connections waiting for a request close.
    closing: AtomicBool,
    closed: Notify,
}

impl Front {
    pub fn new(
        edge: Edge,
        header_deadline: Duration,
        times: Times,
        drain: Arc<Drain>,
        tls: Option<Arc<Tls>>,
        http2: Option<Http2>,
    ) -> Self {
        Self {
            head_bytes: crate::budget::head_bytes(&edge.admission.limits),
            edge,
            tls,
            http2,
            header_deadline,
            times,
            drain,
            closing: AtomicBool::new(false),
            closed: Notify::new(),
        }
    }

    /// A connection `listen` accepted: its TLS handshake if the listener has TLS, then its
    /// requests. A handshake is not waited for by the shutdown (nothing was asked yet); the
    /// connection is, from then on.
    pub async fn accepted(self: Arc<Self>, tcp: L4Stream) {
        match &self.tls {
            None => {
                let _busy = self.drain.enter();
                self.serve(Box::new(Connection::new(tcp)), false).await;
            }
            Some(tls) => {
                // Boxed: a plaintext connection's task does not carry the handshake's state.
                let served = Box::pin(async {
                    if let Some((tls, h2)) = tls.accept(tcp).await {
                        let _busy = self.drain.enter();
                        self.serve(Box::new(Connection::new(tls)), h2).await;
                    }
                });
                served.await;
            }
        }
    }

    /// Serve one client connection until it closes: HTTP/2 when ALPN chose it (`h2`) or the
    /// client opens with HTTP/2's preface (h2c, prior knowledge); else HTTP/1.1, its requests
    /// one at a time. (The connection is boxed: its task holds a pointer while it waits.)
    async fn serve<W: Wire>(self: &Arc<Self>, mut conn: Box<Connection<W>>, h2: bool) {
        let ready = tokio::time::Instant::now();
        if h2 {
            return Box::pin(self.serve_h2(conn, ready)).await;
        }
        // Every request begun counts as the thread's work, the ones refused at their head too
        // (memory.rs: a quiet thread's collection).
        crate::memory::served();
        let first = self.first_read(&mut *conn, self.header_deadline, None);
        let Some(first) = Box::pin(first).await else {
            return;
        };
        if self.http2.is_some() && first.starts_with(h2::PREFACE) {
            conn.rewind(first);
            return Box::pin(self.serve_h2(conn, ready)).await;
        }
        let mut next = Box::pin(self.request(conn, None, first, ready)).await;
        while let Some(Kept {
            mut stream,
            settings,
            pipelined,
        }) = next
        {
            crate::memory::served();
            let ready = tokio::time::Instant::now();
            // Boxed, as the request is: the connection's own future stays a few pointers.
            let arrival = self.arrival(&mut stream, pipelined, ready);
            let Some(first) = Box::pin(arrival).await else {
                return;
            };
            next = Box::pin(self.request(stream, settings, first, ready)).await;
        }
    }

    /// The next request's first bytes on a kept-alive connection, after waiting for them with
    /// nothing but the socket. `None`: the client closed, the header deadline (counted from
    /// `ready`) passed, or the service is stopping.
    async fn arrival(
        &self,
        stream: &mut Stream,
        pipelined: Option<BytesMut>,
        ready: tokio::time::Instant,
    ) -> Option<BytesMut> {
        if pipelined.is_none() && !self.wait(stream).await {
            return None;
        }
        let left = self.header_deadline.saturating_sub(ready.elapsed());
        self.first_read(stream, left, pipelined).await
    }

    /// The first bytes of a request, read into a buffer of [`FIRST_READ`] that pingora then
    /// parses from (and grows only for a larger head): its own would be 4 KiB, held for the
    /// request's life. Read (after what was pipelined, `start`) until the head is complete —
    /// usually the first read — at most `head_bytes`: past that the client gets 431 here.
    /// `None`: the client closed, the head was too large, or the deadline or the shutdown came
    /// first.
    async fn first_read(
        &self,
        stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
        deadline: Duration,
        start: Option<BytesMut>,
    ) -> Option<BytesMut> {
        let mut first = start.unwrap_or_else(|| BytesMut::with_capacity(FIRST_READ));
        let mut scan = HeadScan::default();
        let complete = self
            .unless_closing(deadline, async {
                loop {
                    if !first.is_empty() {
                        if scan.complete(&first) {
                            return Some(true);
                        }
                        if first.len() > self.head_bytes {
                            return Some(false);
                        }
                    }
                    if stream.read_buf(&mut first).await.unwrap_or(0) == 0 {
                        return None;
                    }
                }
            })
            .await
            .flatten();
        match complete {
            Some(true) => Some(first),
            Some(false) => {
                self.edge.state.metrics.spent.count(Limit::HeadBytes);
                let message = format!(
                    "request head larger than {} bytes; at most {} header bytes in {} fields are accepted",
                    self.head_bytes,
                    self.edge.admission.limits.max_header_bytes,
                    self.edge.admission.limits.max_headers
                );
                let reply = Reply::error(431, mcp_protocol::error::INVALID_REQUEST, message);
                // Then a lingering close (nginx's): what the client is still sending is read and
                // dropped for a moment, so that closing does not reset the connection before the
                // client has read its 431.
                let _ = pingora_timeout::fast_timeout::fast_timeout(LINGER, async {
                    stream.write_all(&reply.raw_close()).await?;
                    stream.shutdown().await?;
                    let mut drained = 0;
                    let mut sink = [0u8; 4096];
                    while drained < self.head_bytes {
                        match stream.read(&mut sink).await? {
                            0 => break,
                            n => drained += n,
                        }
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                None
            }
            None => None,
        }
    }

    /// Wait, holding nothing but the socket, until a kept-alive connection's client sends its
    /// next request. `false`: it closed, the header deadline passed, or the service is stopping.
    async fn wait(&self, stream: &mut Stream) -> bool {
        self.unless_closing(self.header_deadline, async {
            stream.try_peek(&mut [0]).await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// `work` within `deadline`; `None` when the service stopped first, `Some(false)` when the
    /// deadline passed (counted).
    async fn unless_closing<T: Default>(
        &self,
        deadline: Duration,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        // Registered before the flag is read: a shutdown in between still ends the wait.
        let closed = self.closed.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        if self.closing.load(Ordering::Acquire) {
            return None;
        }
        tokio::select! {
            biased;
            done = pingora_timeout::fast_timeout::fast_timeout(deadline, work) => Some(done.unwrap_or_else(|_| {
                self.edge.state.metrics.count(Event::HeaderTimeout);
                T::default()
            })),
            () = closed => None,
        }
    }

    /// Read the next request's headers. `false`: there is none (closed, timed out, malformed,
    /// or the service is stopping) and the connection ends.
    async fn read_head(&self, session: &mut ServerSession, deadline: Duration) -> bool {
        let read = self
            .unless_closing(deadline, async { Some(session.read_request().await) })
            .await;
        match read.flatten() {
            None => false,
            Some(Ok(request)) => request,
            Some(Err(e)) => {
                if e.etype() == &ErrorType::InvalidHTTPHeader {
                    let _ = session.respond_error(400).await;
                }
                tracing::debug!("bad request head: {e}");
                session.shutdown().await;
                false
            }
        }
    }

    /// One request on the connection; what the next one reads from, when the connection is
    /// kept.
    async fn request(
        &self,
        stream: Stream,
        settings: Option<HttpPersistentSettings>,
        first: BytesMut,
        ready: tokio::time::Instant,
    ) -> Option<Kept> {
        // Made here, not passed in: an argument moved into a future is stored in it twice.
        let mut session = ServerSession::new_http1(stream);
        match settings {
            Some(settings) => settings.apply_to_session(&mut session),
            None => session.set_keepalive(Some(60)),
        }
        session.set_pipelined_prefix(first);
        session.set_read_timeout(Some(self.times.body));
        let deadline = self.header_deadline.saturating_sub(ready.elapsed());
        // A client may send its next request before this one's answer ends (pipelining, or
        // simply right after a bodiless answer such as a 202): those bytes are kept for the
        // next request instead of being taken for a client that broke the protocol.
        session.set_pipelining_enabled(true);
        if !self.read_head(&mut session, deadline).await {
            return None;
        }
        if self.closing.load(Ordering::Acquire) {
            session.set_keepalive(None);
        }
        if let Some(e) = self.exchange(&mut session).await {
            session.on_proxy_failure(e);
            return None;
        }
        // A body the request left unread (a GET's or DELETE's) is not drained: the connection
        // ends instead, so no body outlives the body deadline.
        if !session.is_body_done() {
            session.set_keepalive(None);
        }
        let settings = HttpPersistentSettings::for_session(&session);
        // Boxed: pingora's finish future (3.7 KiB) would otherwise be part of every request's
        // state, streams included.
        // (Its writes are done: the last body write, bounded by the send timeout, ended it.)
        let (stream, prefix) = Box::pin(session.finish())
            .await
            .ok()
            .flatten()?
            .into_parts();
        let pipelined = prefix;
        Some(Kept {
            stream,
            settings: Some(settings),
            pipelined,
        })
    }

    /// One request whose head is read, whatever the protocol: answered through the phases,
    /// then counted and logged. The error that broke it, if one did.
    async fn exchange(&self, session: &mut ServerSession) -> Option<Box<pingora::Error>> {
        let edge = &self.edge;
        let mut ctx = Ctx::new();
        let mut client = Client::new(session, self.times);
        let error = match edge.handle(&mut client, &mut ctx).await {
            Ok(()) => None,
            Err(Stop::Answer(failure)) => client
                .reply(&failure.reply(ctx.is.id.as_deref()))
                .await
                .err(),
            Err(Stop::Broken(e)) => Some(e),
        };
        if let Some(e) = &error {
            client
                .fail(e, ctx.is.id.as_deref(), ctx.streamed_request())
                .await;
        }
        ctx.finish(
            &client,
            error.as_deref(),
            &edge.state.metrics,
            edge.access.as_ref(),
        );
        error
    }

    /// The service stops accepting: connections waiting for a request close.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.closed.notify_waiters();
    }
}

/// Where a request head's search for its end stands: each byte is looked at once however the
/// head arrives, and blank lines before the request line (which the parser skips) end nothing.
#[derive(Default)]
pub struct HeadScan {
    searched: usize,
    /// Leading CR and LF bytes.
    blank: usize,
}

impl HeadScan {
    /// Whether `buf` (what was scanned before, and more) holds a whole head.
    pub fn complete(&mut self, buf: &[u8]) -> bool {
        if self.blank == self.searched {
            self.blank += buf[self.searched..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        }
        let from = lines::resume_from(self.searched).max(self.blank);
        self.searched = buf.len();
        lines::has_block_end(buf, from)
    }
}

#[cfg(test)]
mod tests {
    use super::HeadScan;

    fn complete(pieces: &[&[u8]]) -> bool {
        let (mut scan, mut buf) = (HeadScan::default(), Vec::new());
        let mut done = false;
        for piece in pieces {
            buf.extend_from_slice(piece);
            done = scan.complete(&buf);
        }
        done
    }

    #[test]
    fn a_head_is_complete_at_its_blank_line_however_it_arrives() {
        assert!(complete(&[b"POST /mcp HTTP/1.1\r\nHost: a\r\n\r\n{}"]));
        assert!(complete(&[b"GET / HTTP/1.1\nHost: a\n\n"]));
        assert!(complete(&[b"GET / HTTP/1.1\nHost: a\n\r\n"]));
        assert!(!complete(&[b"POST /mcp HTTP/1.1\r\nHost: a\r\n"]));
        let head = b"POST /mcp HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 1..head.len() {
            assert!(complete(&[&head[..cut], &head[cut..]]), "cut at {cut}");
            assert!(!complete(&[&head[..cut]]) || cut >= head.len() - 1);
        }
    }

    #[test]
    fn blank_lines_before_the_request_line_end_nothing() {
        assert!(!complete(&[b"\r\n\r\n", b"POST /mcp HTTP/1.1\r\nX: "]));
        assert!(!complete(&[b"\r\n\r\nPOST /mcp HTTP/1.1\r\nX: y"]));
        assert!(complete(&[b"\r\n", b"GET / HTTP/1.1\r\n\r\n"]));
    }
}
