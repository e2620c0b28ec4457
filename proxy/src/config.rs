//! Command line and environment → [`Config`].

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

pub use crate::upstream::BridgeMode;
use crate::{
    session::token::{Key, parse_key},
    upstream::ReplicaSpec,
};

// The groups of --help, in the order docs/configuration.md lists them.
const LISTEN: &str = "Listen";
const REPLICAS: &str = "Replicas";
const HEALTH: &str = "Health";
const ACCESS: &str = "Access";
const LIMITS: &str = "Limits";
const SESSIONS: &str = "Sessions";
const BRIDGE_AND_PUSH: &str = "Bridge and push";
const LOGS: &str = "Logs";

/// mcp-edge: one address for many MCP servers.
///
/// Accepts legacy (2025-era, session-keeping) and 2026-07-28 (stateless) MCP clients, mints
/// Mcp-Session-Id for legacy sessions over stateless replicas, round-robins every request over
/// healthy replicas, and routes stickily only what a stream needs (cancellations, answers to
/// server requests, stream resumption).
///
/// Replicas come from --backend (a fixed list) or --discover (DNS, re-resolved); with neither,
/// three bundled mcp-backend replicas start in-process (ids r1, r2, r3). Every flag can also be
/// set through the environment variable named in brackets.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mcp-edge",
    version,
    about,
    long_about,
    args_override_self = true
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address serving MCP (host:port).
    #[arg(long, env = "MCP_EDGE_LISTEN", default_value = "127.0.0.1:8150", help_heading = LISTEN)]
    pub listen: SocketAddr,

    /// Address serving /healthz and /readyz.
    #[arg(long, env = "MCP_EDGE_ADMIN_LISTEN", default_value = "127.0.0.1:9150", help_heading = LISTEN)]
    pub admin_listen: SocketAddr,

    /// The path clients use for MCP; other paths get 404.
    #[arg(long, env = "MCP_EDGE_PATH", default_value = "/mcp", help_heading = LISTEN)]
    pub path: String,

    /// Worker threads (0: one per core).
    #[arg(long, env = "MCP_EDGE_THREADS", default_value_t = 0, help_heading = LISTEN)]
    pub threads: usize,

    /// Let idle worker threads take work from busy ones (tokio's multi-thread scheduler) instead
    /// of one runtime per thread, each serving the connections its own listening socket accepted.
    #[arg(long, env = "MCP_EDGE_WORK_STEALING", default_value_t = false, action = clap::ArgAction::Set, help_heading = LISTEN)]
    pub work_stealing: bool,

    /// After SIGTERM: seconds for in-flight requests and streams to finish.
    #[arg(long, env = "MCP_EDGE_GRACE_SECONDS", default_value_t = 10, help_heading = LISTEN)]
    pub grace_seconds: u64,

    /// TLS on the MCP listener: the certificate chain, PEM (the server's certificate first).
    /// Read again when the file changes (a rotation), without a restart. Without it the listener
    /// is plaintext, for loopback or behind a proxy that terminates TLS.
    #[arg(long, env = "MCP_EDGE_TLS_CERT", requires = "tls_key", help_heading = LISTEN)]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1); read again with it.
    #[arg(long, env = "MCP_EDGE_TLS_KEY", requires = "tls_cert", help_heading = LISTEN)]
    pub tls_key: Option<std::path::PathBuf>,

    /// A TLS handshake must be done within this many milliseconds of the connection's accept;
    /// otherwise the connection is closed.
    #[arg(long, env = "MCP_EDGE_TLS_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000, help_heading = LISTEN)]
    pub tls_handshake_timeout_ms: u64,

    /// Serve HTTP/2: over TLS when the client's ALPN offers h2, and in clear text to clients
    /// that open with HTTP/2's preface (h2c, prior knowledge).
    #[arg(long, env = "MCP_EDGE_HTTP2", default_value_t = true, action = clap::ArgAction::Set, help_heading = LISTEN)]
    pub http2: bool,

    /// Most streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS;
    /// nginx: 128, HAProxy: 100).
    #[arg(long, env = "MCP_EDGE_HTTP2_MAX_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), help_heading = LISTEN)]
    pub http2_max_streams: u32,

    /// A replica to front, as http://host:port/path (repeatable; the environment variable takes
    /// a comma list). None: start the bundled replicas in-process.
    #[arg(
        long = "backend",
        env = "MCP_EDGE_BACKENDS",
        value_delimiter = ',',
        conflicts_with = "discover",
        help_heading = REPLICAS,
    )]
    pub backends: Vec<String>,

    /// Discover replicas in DNS: dns://name:port/path, every A/AAAA record of `name` is a replica
    /// (Swarm: dns://tasks.backend:8000/mcp). Re-resolved every --discover-interval-ms.
    #[arg(long, env = "MCP_EDGE_DISCOVER", help_heading = REPLICAS)]
    pub discover: Option<String>,

    /// Milliseconds between DNS lookups of --discover.
    #[arg(long, env = "MCP_EDGE_DISCOVER_INTERVAL_MS", default_value_t = 2000, help_heading = REPLICAS)]
    pub discover_interval_ms: u64,

    /// DNS server for --discover (ip:port). Default: the system's (/etc/resolv.conf).
    #[arg(long, env = "MCP_EDGE_DNS_SERVER", help_heading = REPLICAS)]
    pub dns_server: Option<SocketAddr>,

    /// How many bundled replicas to start when no --backend is given.
    #[arg(long, env = "MCP_EDGE_EMBEDDED_REPLICAS", default_value_t = 3, help_heading = REPLICAS)]
    pub embedded_replicas: usize,

    /// Upstream TCP connect timeout, in milliseconds.
    #[arg(long, env = "MCP_EDGE_CONNECT_TIMEOUT_MS", default_value_t = 1000, help_heading = REPLICAS)]
    pub connect_timeout_ms: u64,

    /// Longest wait for a replica's response headers, in seconds (504 after it).
    #[arg(
        long,
        env = "MCP_EDGE_FIRST_BYTE_TIMEOUT_SECONDS",
        default_value_t = 300,
        help_heading = REPLICAS,
    )]
    pub first_byte_timeout_seconds: u64,

    /// Longest silence in an upstream response body (between SSE events), in seconds.
    #[arg(long, env = "MCP_EDGE_STREAM_IDLE_SECONDS", default_value_t = 600, help_heading = REPLICAS)]
    pub stream_idle_seconds: u64,

    /// Path probed by the active health check (any status below 500 is healthy).
    #[arg(long, env = "MCP_EDGE_HEALTH_PATH", default_value = "/readyz", help_heading = HEALTH)]
    pub health_path: String,

    /// Milliseconds between active health checks.
    #[arg(long, env = "MCP_EDGE_HEALTH_INTERVAL_MS", default_value_t = 2000, help_heading = HEALTH)]
    pub health_interval_ms: u64,

    /// A health check not answered within this many milliseconds fails.
    #[arg(long, env = "MCP_EDGE_HEALTH_TIMEOUT_MS", default_value_t = 1000, help_heading = HEALTH)]
    pub health_timeout_ms: u64,

    /// Consecutive passed health checks that admit a replica (a new one, or one taken out).
    #[arg(long, env = "MCP_EDGE_HEALTH_PASS_AFTER", default_value_t = 1, help_heading = HEALTH)]
    pub health_pass_after: u32,

    /// Consecutive failed health checks that take a replica out of rotation.
    #[arg(long, env = "MCP_EDGE_HEALTH_FAIL_AFTER", default_value_t = 2, help_heading = HEALTH)]
    pub health_fail_after: u32,

    /// Consecutive failed requests (connect errors, broken connections) that eject a replica.
    #[arg(long, env = "MCP_EDGE_EJECT_AFTER", default_value_t = 3, help_heading = HEALTH)]
    pub eject_after: u32,

    /// An ejected replica stays out at least this many milliseconds, doubled for each further
    /// ejection in a row (up to 32 times); then a passing health check readmits it.
    #[arg(long, env = "MCP_EDGE_EJECT_BACKOFF_MS", default_value_t = 1000, help_heading = HEALTH)]
    pub eject_backoff_ms: u64,

    /// Bearer tokens accepted on the MCP listener (comma list). Set: every request needs
    /// `Authorization: Bearer <one of them>` (401 otherwise), sessions are bound to the token
    /// that opened them, and the header is not passed to replicas. None: no authentication.
    #[arg(
        long,
        env = "MCP_EDGE_AUTH_TOKENS",
        hide_env_values = true,
        value_delimiter = ',',
        conflicts_with = "auth_tokens_file",
        help_heading = ACCESS,
    )]
    pub auth_tokens: Vec<String>,

    /// A file of bearer tokens, one per line (a Docker/Swarm secret); `#` starts a comment.
    #[arg(long, env = "MCP_EDGE_AUTH_TOKENS_FILE", help_heading = ACCESS)]
    pub auth_tokens_file: Option<std::path::PathBuf>,

    /// Browser origins allowed, comma separated (scheme://host[:port], scheme://host:* or *).
    /// Requests without Origin pass; others not listed get 403. Pages of these origins get
    /// CORS: preflights answered here, every answer readable. Default: loopback origins.
    #[arg(
        long,
        env = "MCP_EDGE_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = mcp_protocol::post::LOOPBACK_ORIGINS,
        help_heading = ACCESS,
    )]
    pub allowed_origins: Vec<String>,

    /// Requests per second allowed to each caller (its bearer token with authentication on,
    /// else its IP address); beyond it 429 with Retry-After. 0: no limit.
    #[arg(long, env = "MCP_EDGE_RATE_LIMIT", default_value_t = 0.0, value_parser = rate, help_heading = ACCESS)]
    pub rate_limit: f64,

    /// Requests a caller may make at once before the rate applies. 0: the rate, at least 1.
    #[arg(long, env = "MCP_EDGE_RATE_LIMIT_BURST", default_value_t = 0, help_heading = ACCESS)]
    pub rate_limit_burst: u32,

    /// Legacy sessions each caller (as for --rate-limit) may start per second, ten seconds'
    /// worth at once; beyond it `initialize` gets 429 with Retry-After and never reaches a
    /// replica. Each session started is remembered until its token expires once it ends, so
    /// this keeps one caller from filling --max-tracked-sessions and ending everyone's
    /// sessions. Per process: with N peers a caller may start N times as many, and every
    /// process remembers each one ended. Behind a proxy or NAT that hides client addresses,
    /// every client is one caller: raise it, or turn authentication on. 0: no limit
    /// (benchmarks that measure routing alone).
    #[arg(long, env = "MCP_EDGE_SESSION_RATE_LIMIT", default_value_t = 50.0, value_parser = rate, help_heading = ACCESS)]
    pub session_rate_limit: f64,

    /// Largest accepted request body in bytes (413 beyond it).
    #[arg(long, env = "MCP_EDGE_BODY_LIMIT", default_value_t = 4 * 1024 * 1024, help_heading = LIMITS)]
    pub body_limit: usize,

    /// Most request header bytes (names, values and the request line); beyond it 431.
    #[arg(long, env = "MCP_EDGE_MAX_HEADER_BYTES", default_value_t = 32 * 1024, help_heading = LIMITS)]
    pub max_header_bytes: usize,

    /// Most request header fields; beyond it 431. (pingora itself refuses more than 256.)
    #[arg(long, env = "MCP_EDGE_MAX_HEADERS", default_value_t = 100, help_heading = LIMITS)]
    pub max_headers: usize,

    /// A request's headers must be complete within this many milliseconds of the connection
    /// being ready for it (accepted, or the previous response sent); otherwise the connection is
    /// closed. Also how long an idle keep-alive connection stays open.
    #[arg(long, env = "MCP_EDGE_HEADER_TIMEOUT_MS", default_value_t = 30_000, help_heading = LIMITS)]
    pub header_timeout_ms: u64,

    /// A request body must be complete within this many seconds of its headers (a trickled or
    /// stalled body gets 408 and the connection closes; nginx: client_body_timeout, HAProxy:
    /// timeout http-request).
    #[arg(long, env = "MCP_EDGE_BODY_TIMEOUT_SECONDS", default_value_t = 60, help_heading = LIMITS)]
    pub body_timeout_seconds: u64,

    /// A client that takes none of its answer for this many seconds (a write to it waits that
    /// long) is cut: its connection closes, its stream slot and its replica connection are
    /// released (nginx: send_timeout, HAProxy: timeout client).
    #[arg(long, env = "MCP_EDGE_SEND_TIMEOUT_SECONDS", default_value_t = 60, help_heading = LIMITS)]
    pub send_timeout_seconds: u64,

    /// Longest life of a listen or legacy GET stream, in seconds; then it ends as at a shutdown
    /// (a listen with its response) and the client listens again. 0: no limit.
    #[arg(long, env = "MCP_EDGE_MAX_STREAM_SECONDS", default_value_t = 3600, help_heading = LIMITS)]
    pub max_stream_seconds: u64,

    /// Most SSE streams relayed at once; a response that would open one more is refused with 503
    /// (and its replica connection closed). 0: no limit.
    #[arg(long, env = "MCP_EDGE_MAX_STREAMS", default_value_t = 10_000, help_heading = LIMITS)]
    pub max_streams: usize,

    /// Most SSE streams one legacy session may hold open; one more is refused with 429. 0: no limit.
    #[arg(long, env = "MCP_EDGE_MAX_STREAMS_PER_SESSION", default_value_t = 100, help_heading = LIMITS)]
    pub max_streams_per_session: usize,

    /// Most SSE streams (bridged calls and listens included) one caller may hold open: its bearer
    /// token with authentication on, else its IP address (an IPv6 /64); one more is refused with
    /// 429. Keeps one caller from taking every --max-streams slot. 0: no limit.
    #[arg(long, env = "MCP_EDGE_MAX_STREAMS_PER_CALLER", default_value_t = 1_000, help_heading = LIMITS)]
    pub max_streams_per_caller: usize,

    /// Most bridged calls in flight in this process; past it, a call that would be bridged gets
    /// JSON-RPC error -32603 "too many bridged calls" (HTTP 200), and the count is in the metrics.
    #[arg(long, env = "MCP_EDGE_MAX_BRIDGES", default_value_t = 10_000, help_heading = LIMITS)]
    pub max_bridges: usize,

    /// Key sealing legacy session tokens: 64 hex digits (`openssl rand -hex 32`). Every mcp-edge
    /// process with the same key serves the same sessions, across restarts. Prefer the
    /// environment or --session-key-file to a flag (flags show in `ps`). None: a random key,
    /// and sessions end with the process.
    #[arg(
        long,
        env = "MCP_EDGE_SESSION_KEY",
        hide_env_values = true,
        conflicts_with = "session_key_file",
        help_heading = SESSIONS,
    )]
    pub session_key: Option<String>,

    /// A file holding the session key as hex (a Docker/Swarm secret, e.g. /run/secrets/session_key).
    #[arg(long, env = "MCP_EDGE_SESSION_KEY_FILE", help_heading = SESSIONS)]
    pub session_key_file: Option<std::path::PathBuf>,

    /// The key before a rotation: tokens it sealed still open (new ones use the current key).
    #[arg(
        long,
        env = "MCP_EDGE_SESSION_KEY_PREVIOUS",
        hide_env_values = true,
        conflicts_with = "session_key_previous_file",
        help_heading = SESSIONS,
    )]
    pub session_key_previous: Option<String>,

    /// A file holding the previous session key as hex.
    #[arg(long, env = "MCP_EDGE_SESSION_KEY_PREVIOUS_FILE", help_heading = SESSIONS)]
    pub session_key_previous_file: Option<std::path::PathBuf>,

    /// Absolute lifetime of a legacy session, in seconds.
    #[arg(long, env = "MCP_EDGE_SESSION_LIFETIME_SECONDS", default_value_t = 24 * 3600, help_heading = SESSIONS)]
    pub session_lifetime_seconds: u64,

    /// A legacy session unused this long (seconds) expires.
    #[arg(long, env = "MCP_EDGE_SESSION_IDLE_SECONDS", default_value_t = 3600, help_heading = SESSIONS)]
    pub session_idle_seconds: u64,

    /// Most legacy sessions this process tracks for the idle timeout, and most ended sessions
    /// it remembers (each table; about 45 and 30 bytes an entry, measured). Past it, new sessions are
    /// served without an idle timeout (their lifetime holds), and the ended sessions nearest
    /// their expiry are folded into a watermark: tokens expiring before it get 404 (the client
    /// initializes again). An ended session's token is never accepted again.
    #[arg(
        long,
        env = "MCP_EDGE_MAX_TRACKED_SESSIONS",
        default_value_t = 1_000_000,
        help_heading = SESSIONS,
    )]
    pub max_tracked_sessions: usize,

    /// Session token format sealed: 2 carries what a legacy client declared at `initialize`
    /// (needed to bridge its calls), 1 is the format of releases before the bridge. Both
    /// always open. Set 1 only while rolling out over processes of such a release (they would
    /// answer 404 to format 2), then drop it.
    #[arg(long, env = "MCP_EDGE_SESSION_FORMAT", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2), help_heading = SESSIONS)]
    pub session_format: u8,

    /// Another mcp-edge process's admin listener (host:port; repeatable, the environment variable
    /// takes a comma list). A DELETE revokes its session on every peer too. A name resolving to
    /// several addresses (Swarm's tasks.<service>) reaches each of them.
    #[arg(long = "peer", env = "MCP_EDGE_PEERS", value_delimiter = ',', help_heading = SESSIONS)]
    pub peers: Vec<String>,

    /// Bridge legacy clients' sampling, elicitation and roots over stateless replicas: a
    /// `tools/call`, `prompts/get` or `resources/read` from a client that declared one of them
    /// goes to 2026-07-28 replicas as a multi round-trip request, and mcp-edge asks the client
    /// on the call's SSE stream. auto: onto the replicas that answer `server/discover` with
    /// 2026-07-28 (asked at each replica's first passing health check); on: onto every healthy
    /// replica (replicas known to speak 2026-07-28 without answering `server/discover`); off:
    /// never (the replicas answer such calls as they would directly).
    #[arg(long, env = "MCP_EDGE_BRIDGE", value_enum, default_value_t = BridgeMode::Auto, help_heading = BRIDGE_AND_PUSH)]
    pub bridge: BridgeMode,

    /// A bridged call waits at most this long (seconds) for the client's answers in each
    /// round; then the client gets notifications/cancelled for what is pending and error -32001.
    #[arg(
        long,
        env = "MCP_EDGE_BRIDGE_INPUT_TIMEOUT_SECONDS",
        default_value_t = 300,
        help_heading = BRIDGE_AND_PUSH,
    )]
    pub bridge_input_timeout_seconds: u64,

    /// Serve server push over stateless replicas: a 2026-07-28 client's `subscriptions/listen`
    /// and a legacy session's GET stream (with its `resources/subscribe`) are fed by one listen
    /// stream per replica per mcp-edge process, fanned out to every client. auto: when replicas
    /// answer `server/discover` with 2026-07-28; on: with every healthy replica; off: listens go
    /// to one replica as any request, and GET is 405.
    #[arg(long, env = "MCP_EDGE_PUSH", value_enum, default_value_t = BridgeMode::Auto, help_heading = BRIDGE_AND_PUSH)]
    pub push: BridgeMode,

    /// Log filter (tracing syntax). The default leaves out two kinds of noise: rmcp logging every
    /// JSON-RPC error answer (a client calling an unknown tool) as a warning, and pingora's
    /// connection pool logging a harmless reuse race ("failed to acquire reusable stream", a
    /// fresh connection is made) as an error under load.
    #[arg(
        long,
        env = "MCP_EDGE_LOG",
        default_value = "info,rmcp::service=error,pingora_core::connectors=off",
        help_heading = LOGS,
    )]
    pub log: String,

    /// Access log on stdout, one line per request: json, text or off. Written in batches by a
    /// background thread (within 50 ms); if stdout cannot keep up, lines are dropped, and
    /// counted on stderr, rather than slowing requests.
    #[arg(long, env = "MCP_EDGE_ACCESS_LOG", value_enum, default_value_t = AccessLog::Json, help_heading = LOGS)]
    pub access_log: AccessLog,
}

/// Access log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessLog {
    Json,
    Text,
    Off,
}

/// Subcommands (none: run the proxy).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Exit 0 when the mcp-edge configured like this one (same --admin-listen / environment) is
    /// ready, 1 otherwise: for container health checks, without curl in the image.
    Health,
}

/// A rate flag's value: a number of 0 (no limit) or more.
fn rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if rate >= 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!("a number of 0 or more (per second), got {value:?}")),
    }
}

impl Config {
    /// Each caller's session starts (`--session-rate-limit`): ten seconds' worth at once.
    pub fn session_start_limit(&self) -> Option<crate::ratelimit::RateLimit> {
        let burst = (self.session_rate_limit * 10.0)
            .ceil()
            .min(f64::from(u32::MAX)) as u32;
        crate::ratelimit::RateLimit::new(self.session_rate_limit, burst)
    }

    pub fn rate_limit(&self) -> Option<crate::ratelimit::RateLimit> {
        let burst = if self.rate_limit_burst > 0 {
            self.rate_limit_burst
        } else {
            self.rate_limit.ceil().max(1.0) as u32
        };
        crate::ratelimit::RateLimit::new(self.rate_limit, burst)
    }

    pub fn limits(&self) -> crate::limits::Limits {
        crate::limits::Limits {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            max_streams: self.max_streams,
            max_streams_per_session: self.max_streams_per_session,
            max_streams_per_caller: self.max_streams_per_caller,
        }
    }

    /// The time budgets of a client connection.
    pub fn times(&self) -> crate::budget::Times {
        crate::budget::Times {
            body: Duration::from_secs(self.body_timeout_seconds.max(1)),
            send: Duration::from_secs(self.send_timeout_seconds.max(1)),
            stream: (self.max_stream_seconds > 0)
                .then(|| Duration::from_secs(self.max_stream_seconds)),
        }
    }

    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_secs(self.first_byte_timeout_seconds)
    }

    pub fn policy(&self) -> crate::upstream::Policy {
        crate::upstream::Policy {
            eject_after: self.eject_after,
            eject_backoff: Duration::from_millis(self.eject_backoff_ms),
            pass_after: self.health_pass_after,
            fail_after: self.health_fail_after,
        }
    }

    pub fn threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn stream_idle(&self) -> Duration {
        Duration::from_secs(self.stream_idle_seconds)
    }

    /// The session keys (current, previous) from flags, environment or files; `None`: none configured.
    pub fn session_keys(&self) -> Result<Option<(Key, Option<Key>)>, String> {
        fn one(
            value: &Option<String>,
            file: &Option<std::path::PathBuf>,
            what: &str,
        ) -> Result<Option<Key>, String> {
            let text = match (value, file) {
                (Some(v), _) => v.clone(),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| format!("{what} file {}: {e}", path.display()))?,
                (None, None) => return Ok(None),
            };
            parse_key(&text)
                .map(Some)
                .map_err(|e| format!("{what}: {e}"))
        }
        let current = one(&self.session_key, &self.session_key_file, "session key")?;
        let previous = one(
            &self.session_key_previous,
            &self.session_key_previous_file,
            "previous session key",
        )?;
        match (current, previous) {
            (None, Some(_)) => Err(
                "a previous session key is set without a current one (MCP_EDGE_SESSION_KEY[_FILE])"
                    .into(),
            ),
            (None, None) => Ok(None),
            (Some(current), previous) => Ok(Some((current, previous))),
        }
    }

    /// Bearer authentication, when tokens are configured.
    pub fn auth(&self) -> Result<Option<crate::auth::Auth>, String> {
        let tokens = match &self.auth_tokens_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("auth tokens file {}: {e}", path.display()))?;
                crate::auth::parse_tokens(&text, '\n')
            }
            None => self
                .auth_tokens
                .iter()
                .flat_map(|t| crate::auth::parse_tokens(t, ','))
                .collect(),
        };
        if tokens.is_empty() {
            if self.auth_tokens_file.is_some() {
                return Err("the auth tokens file holds no token".into());
            }
            return Ok(None);
        }
        crate::auth::Auth::new(&tokens).map(Some)
    }

    /// The configured replicas (none: embedded mode).
    pub fn replica_specs(&self) -> Vec<ReplicaSpec> {
        self.backends
            .iter()
            .map(|b| b.trim())
            .filter(|b| !b.is_empty())
            .map(|url| ReplicaSpec {
                id: None,
                url: url.to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::parse_from(["mcp-edge"]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8150");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9150");
        assert!(c.replica_specs().is_empty());
        assert_eq!(c.body_limit, 4 << 20);
        assert_eq!(c.stream_idle(), Duration::from_secs(600));
    }

    #[test]
    fn session_keys_from_values_and_files() {
        let key = "11".repeat(32);
        let c = Config::parse_from(["mcp-edge", "--session-key", &key]);
        assert_eq!(c.session_keys().unwrap(), Some(([0x11; 32], None)));
        let file = std::env::temp_dir().join(format!("mcp-edge-key-{}", std::process::id()));
        std::fs::write(&file, format!("{}\n", "22".repeat(32))).unwrap();
        let c = Config::parse_from([
            "mcp-edge",
            "--session-key",
            &key,
            "--session-key-previous-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(
            c.session_keys().unwrap(),
            Some(([0x11; 32], Some([0x22; 32])))
        );
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            Config::parse_from(["mcp-edge"]).session_keys().unwrap(),
            None
        );
        assert!(
            Config::parse_from(["mcp-edge", "--session-key", "abc"])
                .session_keys()
                .unwrap_err()
                .contains("session key")
        );
        assert!(
            Config::parse_from(["mcp-edge", "--session-key-file", "/nonexistent/key"])
                .session_keys()
                .unwrap_err()
                .contains("/nonexistent/key")
        );
        assert!(
            Config::parse_from(["mcp-edge", "--session-key-previous", &key])
                .session_keys()
                .is_err()
        );
    }

    #[test]
    fn backends_repeat() {
        let c = Config::parse_from([
            "mcp-edge",
            "--backend",
            "http://127.0.0.1:1/mcp",
            "--backend",
            "http://127.0.0.1:2/mcp",
        ]);
        assert_eq!(c.replica_specs().len(), 2);
    }
}
