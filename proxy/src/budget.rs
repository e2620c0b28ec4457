//! What one client can make mcp-edge hold, in bytes and in time, and how a budget that ran out
//! is counted (`mcp_edge_client_limits_total{limit}`).
//!
//! | limit | flag (default) | held until | the client sees |
//! |---|---|---|---|
//! | `head_bytes`: a request head still incomplete past the header limits | `--max-header-bytes` (32 KiB) | read by mcp-edge, never pingora's 1 MiB | 431, connection closed |
//! | `body_time`: a body not complete within the deadline (trickled, or stalled) | `--body-timeout-seconds` (60) | the deadline | 408, connection closed |
//! | `send_time`: a client that takes none of its answer for the deadline (a write blocked) | `--send-timeout-seconds` (60) | the deadline; then its stream slot and replica connection are released | connection closed |
//! | `stream_lifetime`: a listen or legacy GET stream older than the lifetime | `--max-stream-seconds` (3600) | the lifetime, on its own timer | the stream ends as at a shutdown (a listen with its response); the client listens again |
//! | `session_starts`: legacy sessions a caller starts past its rate | `--session-rate-limit` (50/s, 500 at once) | every ended session is remembered until its token expires | 429 with Retry-After; the initialize never reaches a replica |
//!
//! Subscriptions have their shares in [`crate::push::filter`] (a session's, a listen's) and
//! [`crate::push`] (the process's), counted as `mcp_edge_push_subscriptions_refused_total`.
//!
//! Names a client chooses (tool names) become metric labels only when a replica listed them in
//! `tools/list`, and reach labels and the access log cut to [`NAME_LIMIT`] bytes.

use std::{
    net::IpAddr,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Longest tool name kept for labels and log fields (MCP tool names are 1-128 characters).
pub const NAME_LIMIT: usize = 128;

/// `name` cut to at most `limit` bytes, on a character boundary.
pub fn bounded(name: &str, limit: usize) -> &str {
    if name.len() <= limit {
        return name;
    }
    let mut end = limit;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Deadlines longer than this many seconds run on tokio's timer, shorter ones on pingora's
/// shared one (pingora's `fast_timeout_to_tokio_threshold_seconds`, 900 by default).
///
/// pingora's fast timer shares one timer per 10 ms tick and keeps it until its deadline even
/// when every request waiting on it is long done; tokio's is freed with the request. Our deadlines
/// are long and almost never reached (300 s for a replica's first byte, 600 s between two SSE
/// events, 60 s to send, 30 s for the next head): on pingora's timer, every request of the last
/// ten minutes left one behind. Measured (heaptrack, benches/abuse one minute, system
/// allocator): the live heap climbed 1.6 → 3.1 MiB in a quiet minute and kept 3.7 MiB after the
/// attack, 2.7 MiB of it timers (`register_timer` and its tree) waiting for deadlines minutes
/// away; on tokio's timer it stays at 1.2 MiB through the quiet minute and is back to 1.2 MiB
/// ten seconds after the attack (its peak 13.3 → 9.1 MiB).
pub const TOKIO_TIMERS_ABOVE_SECONDS: u64 = 1;

/// Who a share of a global cap belongs to ([`caller`]).
pub type Caller = [u8; 17];

/// The caller of a request: its credential (its hash) with authentication on, else its network
/// ([`network`]).
pub fn caller(identity: Option<&[u8; 16]>, addr: Option<IpAddr>) -> Caller {
    let mut key = [0u8; 17];
    match (identity, addr.map(network)) {
        (Some(identity), _) => {
            key[0] = 1;
            key[1..].copy_from_slice(identity);
        }
        (None, Some(IpAddr::V4(v4))) => {
            key[0] = 4;
            key[1..5].copy_from_slice(&v4.octets());
        }
        (None, Some(IpAddr::V6(v6))) => {
            key[0] = 6;
            key[1..].copy_from_slice(&v6.octets());
        }
        (None, None) => {}
    }
    key
}

/// The network one client host has: its IPv4 address, or the /64 of its IPv6 address (one
/// host's addresses, as home and cloud networks hand them out).
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// `work` within `limit`, taking a timer only when it must wait: polled once first (a write
/// into a buffer, a body that came with its head, a request that fits the socket — most of
/// them — completes there), and only then bounded by a timer (pingora's `fast_timeout`, which
/// hands deadlines above [`TOKIO_TIMERS_ABOVE_SECONDS`] to tokio; its creation checks pingora's
/// clock thread: measurable on every request). `Err`: the limit passed. The work is
/// pinned where it was made (`std::pin::pin!`): a write's future moved into here by value was
/// copied at each call, measured (+300 instructions a request).
pub async fn within<F: Future>(limit: Duration, mut work: Pin<&mut F>) -> Result<F::Output, ()> {
    if let Some(done) = futures::FutureExt::now_or_never(work.as_mut()) {
        return Ok(done);
    }
    pingora_timeout::fast_timeout::fast_timeout(limit, work)
        .await
        .map_err(|_| ())
}

/// The time budgets of one client connection.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// A request body must be complete this long after its head.
    pub body: Duration,
    /// A write to the client may wait this long for it to read.
    pub send: Duration,
    /// An SSE stream ends this long after it began (`None`: never).
    pub stream: Option<Duration>,
}

impl Default for Times {
    fn default() -> Self {
        Self {
            body: Duration::from_secs(60),
            send: Duration::from_secs(60),
            stream: Some(Duration::from_secs(3600)),
        }
    }
}

/// The most bytes of a request head read before it must be complete: the header limits plus
/// what the wire adds to them (the request line's two spaces and version, each field's `: `
/// and line end, the blank line).
pub fn head_bytes(limits: &crate::limits::Limits) -> usize {
    limits.max_header_bytes + 4 * (limits.max_headers + 1) + 16
}

/// A budget that ran out (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Limit {
    HeadBytes,
    BodyTime,
    SendTime,
    StreamLifetime,
    SessionStarts,
}

/// Each limit with its metric label, in the order of [`Limit`] (a test checks).
pub const LIMITS: [(Limit, &str); 5] = [
    (Limit::HeadBytes, "head_bytes"),
    (Limit::BodyTime, "body_time"),
    (Limit::SendTime, "send_time"),
    (Limit::StreamLifetime, "stream_lifetime"),
    (Limit::SessionStarts, "session_starts"),
];

/// How often each budget ran out.
#[derive(Default)]
pub struct Spent([AtomicU64; LIMITS.len()]);

impl Spent {
    pub fn count(&self, limit: Limit) {
        self.0[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, limit: Limit) -> u64 {
        self.0[limit as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("echo", NAME_LIMIT), "echo");
        assert_eq!(bounded("abcdef", 3), "abc");
        // 'é' is two bytes: a cut inside it steps back.
        assert_eq!(bounded("aé", 2), "a");
    }

    #[test]
    fn a_caller_is_its_credential_else_its_ipv4_address_or_ipv6_64() {
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(
            caller(None, ip("2001:db8:1:2::1")),
            caller(None, ip("2001:db8:1:2:ffff::9")),
            "one /64 is one caller"
        );
        assert_ne!(
            caller(None, ip("2001:db8:1:2::1")),
            caller(None, ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            caller(None, ip("::ffff:10.0.0.1")),
            caller(None, ip("10.0.0.1"))
        );
        assert_ne!(caller(None, ip("10.0.0.1")), caller(None, ip("10.0.0.2")));
        assert_ne!(
            caller(Some(&[1; 16]), ip("10.0.0.1")),
            caller(Some(&[2; 16]), ip("10.0.0.1")),
            "with authentication, the credential is the caller"
        );
    }

    #[test]
    fn every_limit_is_in_the_order_of_the_enum() {
        for (i, (limit, _)) in LIMITS.iter().enumerate() {
            assert_eq!(*limit as usize, i);
        }
    }
}
