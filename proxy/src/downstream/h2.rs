//! HTTP/2 from clients: over TLS when ALPN chose `h2`, or in clear text with prior knowledge
//! (h2c: the connection opens with HTTP/2's preface). Each stream is one request, answered by
//! the same phases through the same [`Client`](super::client::Client) as an HTTP/1.1 request
//! ([`Front::exchange`]), on a task of its own; the connection's task drives the HTTP/2
//! connection (h2, through pingora's server session) and only accepts streams.
//!
//! What one connection can make mcp-edge hold, and its bound:
//!
//! | what | bound |
//! |---|---|
//! | streams open at once | `--http2-max-streams` (SETTINGS_MAX_CONCURRENT_STREAMS); one more is refused by h2 |
//! | streams the client reset while their work goes on (rapid reset, CVE-2023-44487) | tasks still answering count against [`TASKS_PER_STREAM`] × `--http2-max-streams`: a stream past it is refused (REFUSED_STREAM), and past [`REFUSALS`] refusals the connection ends (GOAWAY, ENHANCE_YOUR_CALM); h2 itself ends a connection with more than 20 resets waiting to be accepted |
//! | a request's header list, CONTINUATION frames included | `--max-header-bytes` and 32 bytes a field for `--max-headers` fields (HPACK's count), checked by h2 while it decodes: past it the stream is refused and a connection that keeps sending is ended (GOAWAY, ENHANCE_YOUR_CALM); within it, admission's own 431 as on HTTP/1.1 |
//! | malformed streams (a forbidden byte in `:path`, conflicting lengths) | pingora resets each; past [`MALFORMED`] the connection ends |
//! | request body received ahead of the request reading it | flow control: [`STREAM_WINDOW`] per stream, [`CONNECTION_WINDOW`] per connection, given back as the request reads |
//! | response bytes waiting for the client | h2's send buffer ([`SEND_BUFFER`] per stream); a write waits for the client's window within `--send-timeout-seconds`, as on HTTP/1.1 |
//! | PING and SETTINGS floods | h2 answers them; a client that does not read its acknowledgements stops being read (h2 holds at most one pending PONG and SETTINGS ACK) |
//! | the connection's handshake | the preface and SETTINGS within `--header-timeout-ms` |
//! | no stream open | after `--header-timeout-ms` the connection ends with GOAWAY naming the last stream taken (a request crossing it is safe to send again), as an idle HTTP/1.1 keep-alive connection closes |
//! | shutdown | GOAWAY at once; streams the client sent within [`DRAIN_ACCEPTS`] of it are served, later ones refused (REFUSED_STREAM, counted against [`REFUSALS`]); once no stream's task is left and h2 has written what they sent (within [`LINGER`]), the last GOAWAY, written within [`LINGER`]; streams in flight go on until they end or the grace period ends the process |

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use super::Front;
use crate::drain::Drain;
use crate::limits::Limits;
use h2::Reason;
use pingora::protocols::{
    Digest, Stream,
    http::{
        ServerSession,
        v2::server::{self, H2Accept, H2Options},
    },
};

/// What a client's HTTP/2 connection opens with (RFC 9113 §3.4), as far as an HTTP/1.1 head
/// scan reads it.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";

/// Tasks per allowed stream that may still be answering before new streams are refused.
pub const TASKS_PER_STREAM: usize = 2;
/// Streams refused on one connection before it ends.
pub const REFUSALS: usize = 100;
/// Malformed streams on one connection before it ends (pingora's own budget).
pub const MALFORMED: usize = 32;
/// Request body bytes a stream may have in flight before the request reads them.
pub const STREAM_WINDOW: u32 = 256 * 1024;
/// The same for the whole connection.
pub const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Response bytes h2 buffers per stream before a write waits (at most 6.4 MiB a connection
/// at 100 streams).
pub const SEND_BUFFER: usize = 64 * 1024;
/// After a shutdown's GOAWAY, how long streams the client sent before it saw it are still
/// taken; later ones are refused (the client retries them elsewhere).
const DRAIN_ACCEPTS: Duration = Duration::from_secs(1);
/// How long a connection ending waits for what h2 still holds to be written, and then for its
/// last GOAWAY.
const LINGER: Duration = Duration::from_secs(2);
/// How often a flushing connection looks whether h2 still holds frames.
const FLUSH_CHECK: Duration = Duration::from_millis(10);

/// HTTP/2's per-connection limits (`--http2`, `--http2-max-streams`).
#[derive(Debug, Clone, Copy)]
pub struct Http2 {
    pub max_streams: u32,
}

impl Http2 {
    fn options(&self, limits: &Limits) -> H2Options {
        // HPACK counts 32 bytes more per field (RFC 7541 §4.1) where the HTTP/1.1 budget counts
        // 4, and counts the pseudo-fields too: so a head within the limits passes h2 and gets
        // admission's own 431 past them.
        let header_list = limits.max_header_bytes + 32 * (limits.max_headers + 5) + 1024;
        let mut options = H2Options::new();
        options
            .max_concurrent_streams(self.max_streams)
            .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX))
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(SEND_BUFFER);
        options
    }
}

/// Resolves once none of a connection's streams has had a task running for `wait` (the
/// connection's own [`Drain`]: the count the shutdown keeps of connections, kept per
/// connection of its streams).
async fn quiet_for(streams: &Drain, wait: Duration) {
    loop {
        while !streams.wait_idle(LINGER).await {}
        tokio::time::sleep(wait).await;
        if streams.busy() == 0 {
            return;
        }
    }
}

/// Why the connection stopped taking streams.
enum Ending {
    /// The client closed it, or it broke.
    Closed,
    /// The service is stopping: GOAWAY sent at this instant; streams in flight finish, streams
    /// sent after [`DRAIN_ACCEPTS`] are refused.
    Draining(tokio::time::Instant),
    /// No stream's task is left (drained, or idle): what h2 still holds for the client is
    /// written before the last GOAWAY, until this instant at most.
    Flushing(tokio::time::Instant),
    /// The last GOAWAY sent, naming the last stream taken: waited for [`LINGER`] at most.
    Lingering,
}

impl Front {
    /// Serve an HTTP/2 connection: accept its streams until it ends, each answered on its own
    /// task (the module's table).
    pub(super) async fn serve_h2(self: &Arc<Self>, stream: Stream, ready: tokio::time::Instant) {
        let Some(http2) = self.http2 else {
            return;
        };
        let digest = Arc::new(Digest {
            ssl_digest: stream.get_ssl_digest(),
            timing_digest: stream.get_timing_digest(),
            proxy_digest: stream.get_proxy_digest(),
            socket_digest: stream.get_socket_digest(),
        });
        let deadline = self.header_deadline.saturating_sub(ready.elapsed());
        let options = http2.options(&self.edge.admission.limits);
        let handshake = server::handshake(stream, Some(options));
        let handshake = self
            .unless_closing(deadline, async { Some(handshake.await) })
            .await;
        let mut conn = match handshake.flatten() {
            Some(Ok(conn)) => conn,
            Some(Err(e)) => {
                tracing::debug!("HTTP/2 handshake: {e}");
                return;
            }
            None => return,
        };
        let streams = Arc::new(Drain::default());
        let most_tasks = TASKS_PER_STREAM * http2.max_streams as usize;
        let (mut refused, mut malformed) = (0, 0);
        let mut ending = None;
        loop {
            let accepted = match ending {
                Some(Ending::Closed) => return,
                Some(Ending::Draining(_)) => {
                    tokio::select! {
                        biased;
                        next = server::HttpSession::from_h2_conn(&mut conn, digest.clone()) => next,
                        () = quiet_for(&streams, Duration::ZERO) => {
                            ending = Some(Ending::Flushing(tokio::time::Instant::now() + LINGER));
                            continue;
                        }
                    }
                }
                Some(Ending::Flushing(until)) => {
                    // A stream h2 still has frames of (a finished task's last bytes, waiting for
                    // the client's window) keeps them: an abrupt GOAWAY would drop them.
                    if !conn.has_streams() || tokio::time::Instant::now() >= until {
                        conn.abrupt_shutdown(Reason::NO_ERROR);
                        ending = Some(Ending::Lingering);
                        continue;
                    }
                    let next = server::HttpSession::from_h2_conn(&mut conn, digest.clone());
                    match pingora_timeout::timeout(FLUSH_CHECK, next).await {
                        Ok(next) => next,
                        Err(_) => continue,
                    }
                }
                Some(Ending::Lingering) => {
                    let next = server::HttpSession::from_h2_conn(&mut conn, digest.clone());
                    match pingora_timeout::timeout(LINGER, next).await {
                        Ok(next) => next,
                        Err(_) => return,
                    }
                }
                None => {
                    // Registered before the flag is read, as in `unless_closing`.
                    let closed = self.closed.notified();
                    tokio::pin!(closed);
                    closed.as_mut().enable();
                    if self.closing.load(Ordering::Acquire) {
                        conn.graceful_shutdown();
                        ending = Some(Ending::Draining(tokio::time::Instant::now()));
                        continue;
                    }
                    tokio::select! {
                        biased;
                        () = closed => {
                            conn.graceful_shutdown();
                            ending = Some(Ending::Draining(tokio::time::Instant::now()));
                            continue;
                        }
                        next = server::HttpSession::from_h2_conn(&mut conn, digest.clone()) => next,
                        () = quiet_for(&streams, self.header_deadline) => {
                            // No stream open: the last GOAWAY will name the last one taken, so
                            // a request crossing it is known unprocessed and safe to send again.
                            ending = Some(Ending::Flushing(tokio::time::Instant::now() + LINGER));
                            continue;
                        }
                    }
                }
            };
            let mut session = match accepted {
                Ok(Some(H2Accept::Session(session))) => session,
                Ok(Some(H2Accept::Rejected)) => {
                    malformed += 1;
                    if malformed > MALFORMED {
                        conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                        ending = Some(Ending::Lingering);
                    }
                    continue;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!("HTTP/2 connection: {e}");
                    ending = Some(Ending::Closed);
                    continue;
                }
            };
            // A stream sent well after a shutdown's GOAWAY, or once the connection is ending,
            // is refused as one past the connection's task budget is.
            let late = match ending {
                Some(Ending::Draining(since)) => since.elapsed() > DRAIN_ACCEPTS,
                Some(Ending::Flushing(_)) => true,
                _ => false,
            };
            if late || streams.busy() >= most_tasks {
                session.shutdown_with_reason(Reason::REFUSED_STREAM);
                refused += 1;
                if refused > REFUSALS {
                    conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    ending = Some(Ending::Lingering);
                }
                continue;
            }
            let (front, stream, busy) = (self.clone(), streams.enter(), self.drain.enter());
            tokio::spawn(async move {
                // The shutdown waits for the stream as for an HTTP/1.1 request.
                let (_open, _busy) = (stream, busy);
                // Each stream counts as the thread's work (memory.rs).
                crate::memory::served();
                let mut session = ServerSession::new_http2(session);
                if front.exchange(&mut session).await.is_some() {
                    // The stream broke: reset it rather than end it as if complete.
                    session.shutdown_with_reason(Reason::INTERNAL_ERROR);
                } else if let Err(e) = session.finish().await {
                    tracing::debug!("ending an HTTP/2 stream: {e}");
                }
            });
        }
    }
}
