//! Command line and environment → [`Config`].

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

use crate::upstream::ReplicaSpec;

/// mcp-edge: one address for many MCP servers.
///
/// Accepts legacy (2025-era, session-keeping) and 2026-07-28 (stateless) MCP clients, mints
/// Mcp-Session-Id for legacy sessions over stateless replicas, round-robins every request over
/// healthy replicas, and routes stickily only what a stream needs (cancellations, answers to
/// server requests, stream resumption).
///
/// With no --backend, three bundled mcp-backend replicas start in-process (ids r1, r2, r3).
/// Every flag can also be set through the environment variable named in brackets.
#[derive(Debug, Clone, Parser)]
#[command(name = "mcp-edge", version, about, long_about)]
pub struct Config {
    /// Address serving MCP (host:port).
    #[arg(long, env = "MCP_EDGE_LISTEN", default_value = "127.0.0.1:8150")]
    pub listen: SocketAddr,

    /// Address serving /healthz and /readyz.
    #[arg(long, env = "MCP_EDGE_ADMIN_LISTEN", default_value = "127.0.0.1:9150")]
    pub admin_listen: SocketAddr,

    /// A replica to front, as http://host:port/path (repeatable; the environment variable takes
    /// a comma list). None: start the bundled replicas in-process.
    #[arg(long = "backend", env = "MCP_EDGE_BACKENDS", value_delimiter = ',')]
    pub backends: Vec<String>,

    /// How many bundled replicas to start when no --backend is given.
    #[arg(long, env = "MCP_EDGE_EMBEDDED_REPLICAS", default_value_t = 3)]
    pub embedded_replicas: usize,

    /// The path clients use for MCP; other paths get 404.
    #[arg(long, env = "MCP_EDGE_PATH", default_value = "/mcp")]
    pub path: String,

    /// Largest accepted request body in bytes (413 beyond it).
    #[arg(long, env = "MCP_EDGE_BODY_LIMIT", default_value_t = 4 * 1024 * 1024)]
    pub body_limit: usize,

    /// Browser origins allowed, comma separated (scheme://host[:port], scheme://host:* or *).
    /// Requests without Origin pass; others not listed get 403. Default: loopback origins.
    #[arg(
        long,
        env = "MCP_EDGE_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = mcp_backend::config::LOOPBACK_ORIGINS
    )]
    pub allowed_origins: Vec<String>,

    /// Worker threads (0: one per core). Work stealing is off: each connection stays on its thread.
    #[arg(long, env = "MCP_EDGE_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// After SIGTERM: seconds for in-flight requests and streams to finish.
    #[arg(long, env = "MCP_EDGE_GRACE_SECONDS", default_value_t = 10)]
    pub grace_seconds: u64,

    /// Upstream TCP connect timeout, in milliseconds.
    #[arg(long, env = "MCP_EDGE_CONNECT_TIMEOUT_MS", default_value_t = 1000)]
    pub connect_timeout_ms: u64,

    /// Longest silence on an upstream response (first byte, or between SSE events), in seconds.
    #[arg(long, env = "MCP_EDGE_STREAM_IDLE_SECONDS", default_value_t = 600)]
    pub stream_idle_seconds: u64,

    /// Path probed by the active health check (any status below 500 is healthy).
    #[arg(long, env = "MCP_EDGE_HEALTH_PATH", default_value = "/readyz")]
    pub health_path: String,

    /// Milliseconds between active health checks.
    #[arg(long, env = "MCP_EDGE_HEALTH_INTERVAL_MS", default_value_t = 2000)]
    pub health_interval_ms: u64,

    /// Consecutive failures that eject a replica until a health check readmits it.
    #[arg(long, env = "MCP_EDGE_EJECT_AFTER", default_value_t = 3)]
    pub eject_after: u32,

    /// Absolute lifetime of a legacy session, in seconds.
    #[arg(long, env = "MCP_EDGE_SESSION_LIFETIME_SECONDS", default_value_t = 24 * 3600)]
    pub session_lifetime_seconds: u64,

    /// A legacy session unused this long (seconds) expires.
    #[arg(long, env = "MCP_EDGE_SESSION_IDLE_SECONDS", default_value_t = 3600)]
    pub session_idle_seconds: u64,

    /// Log filter (tracing syntax). The default leaves out two kinds of noise: rmcp logging every
    /// JSON-RPC error answer (a client calling an unknown tool) as a warning, and pingora's
    /// connection pool logging a harmless reuse race ("failed to acquire reusable stream", a
    /// fresh connection is made) as an error under load.
    #[arg(long, env = "MCP_EDGE_LOG", default_value = "info,rmcp::service=error,pingora_core::connectors=off")]
    pub log: String,
}

impl Config {
    pub fn threads(&self) -> usize {
        if self.threads > 0 { self.threads } else { std::thread::available_parallelism().map_or(1, |n| n.get()) }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn stream_idle(&self) -> Duration {
        Duration::from_secs(self.stream_idle_seconds)
    }

    /// The configured replicas (none: embedded mode).
    pub fn replica_specs(&self) -> Vec<ReplicaSpec> {
        self.backends
            .iter()
            .map(|b| b.trim())
            .filter(|b| !b.is_empty())
            .map(|url| ReplicaSpec { id: None, url: url.to_owned() })
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
    fn backends_repeat() {
        let c = Config::parse_from(["mcp-edge", "--backend", "http://127.0.0.1:1/mcp", "--backend", "http://127.0.0.1:2/mcp"]);
        assert_eq!(c.replica_specs().len(), 2);
    }
}
