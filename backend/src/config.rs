//! Command line and environment → [`Config`].

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

/// The default Origin allow-list: browsers on this machine, any port (mcp-edge uses it too).
pub use mcp_protocol::post::LOOPBACK_ORIGINS;

/// Protocol revisions this backend serves, oldest first.
pub use mcp_protocol::version::KNOWN as PROTOCOL_VERSIONS;

/// A fast stateless MCP server for both protocol eras (2025-03-26 … 2025-11-25 and 2026-07-28).
///
/// Serves POST /mcp (Streamable HTTP, no sessions), GET /healthz, /readyz and /version.
/// Every flag can also be set through the environment variable named in brackets.
#[derive(Debug, Clone, Parser)]
#[command(name = "mcp-backend", version, about, long_about = None)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on (host:port).
    #[arg(long, env = "MCP_BACKEND_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Replica id sent in every response's X-Served-By header and in /version
    /// (default: the host name).
    #[arg(long, env = "MCP_BACKEND_REPLICA_ID")]
    pub replica_id: Option<String>,

    /// Largest accepted POST body in bytes; larger bodies get 413.
    #[arg(long, env = "MCP_BACKEND_BODY_LIMIT", default_value_t = 4 * 1024 * 1024)]
    pub body_limit: usize,

    /// How long in-flight requests and open SSE streams may run after SIGTERM, in seconds.
    #[arg(long, env = "MCP_BACKEND_GRACE_SECONDS", default_value_t = 10.0)]
    pub grace_seconds: f64,

    /// Browser origins allowed to call the server, comma separated ("http://localhost:*" style,
    /// "*" for any). Requests without an Origin header are always allowed; others get 403.
    /// Default: loopback origins on any port.
    #[arg(
        long,
        env = "MCP_BACKEND_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = LOOPBACK_ORIGINS
    )]
    pub allowed_origins: Vec<String>,

    /// Key (hex, at least 32 bytes) that signs multi round-trip `requestState`. Every replica
    /// behind one address needs the same key, or a retry that lands on another replica is
    /// rejected. Default: a random key (state then opens only on this process).
    #[arg(
        long,
        env = "MCP_BACKEND_STATE_KEY",
        hide_env_values = true,
        conflicts_with = "state_key_file"
    )]
    pub state_key: Option<String>,

    /// A file holding the request-state key as hex (a Docker/Swarm secret).
    #[arg(long, env = "MCP_BACKEND_STATE_KEY_FILE")]
    pub state_key_file: Option<std::path::PathBuf>,

    /// Also serve the official conformance suite's fixtures (the `test_*` tools, fixture
    /// resources, templates and prompts, the tasks scenarios' tools) beside the template's:
    /// for the conformance suite and the project's tests, not for users. mcp-edge's bundled
    /// replicas read it from the environment too.
    #[arg(long, env = "MCP_BACKEND_CONFORMANCE_FIXTURES", value_parser = clap::builder::BoolishValueParser::new())]
    pub conformance_fixtures: bool,

    /// Log filter (tracing syntax). rmcp logs every JSON-RPC error answer (a client calling an
    /// unknown tool) as a warning; the default keeps those out of the operator's log.
    #[arg(
        long,
        env = "MCP_BACKEND_LOG",
        default_value = "info,rmcp::service=error"
    )]
    pub log: String,
}

/// Subcommands (none: serve).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Exit 0 when the replica configured like this one (same --listen / environment) is ready
    /// (GET /readyz answers 200), 1 otherwise: for container health checks, without curl.
    Health,
}

impl Config {
    /// Defaults for an in-process replica (tests, mcp-edge's embedded mode).
    pub fn embedded(replica_id: impl Into<String>) -> Self {
        let mut config = Self::parse_from(["mcp-backend"]);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.replica_id = Some(replica_id.into());
        config
    }

    /// What this replica serves.
    pub fn catalog(&self) -> crate::catalog::Catalog {
        if self.conformance_fixtures {
            crate::catalog::Catalog::WithFixtures
        } else {
            crate::catalog::Catalog::Template
        }
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs_f64(self.grace_seconds.max(0.0))
    }

    /// The replica id, falling back to the host name.
    pub fn replica_id(&self) -> String {
        self.replica_id.clone().unwrap_or_else(hostname)
    }

    /// The request-state key as bytes, or an error a person can act on.
    pub fn state_key_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        let hex_key = match (&self.state_key, &self.state_key_file) {
            (Some(key), _) => key.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("MCP_BACKEND_STATE_KEY_FILE {}: {e}", path.display()))?,
            (None, None) => return Ok(None),
        };
        let key = hex::decode(hex_key.trim())
            .map_err(|e| format!("MCP_BACKEND_STATE_KEY is not hex: {e}"))?;
        if key.len() < 32 {
            return Err(format!(
                "MCP_BACKEND_STATE_KEY must be at least 32 bytes (64 hex digits), got {}",
                key.len()
            ));
        }
        Ok(Some(key))
    }
}

/// The machine's host name (a container's is its id): the default replica id, and `/version`'s
/// `hostname`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "mcp-backend".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let c = Config::parse_from(["mcp-backend"]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.body_limit, 4 * 1024 * 1024);
        assert_eq!(c.grace(), Duration::from_secs(10));
        assert!(c.allowed_origins.iter().any(|o| o == "http://localhost:*"));
    }

    #[test]
    fn short_state_key_is_rejected_with_reason() {
        let mut c = Config::embedded("r1");
        c.state_key = Some("abcd".into());
        assert!(
            c.state_key_bytes()
                .unwrap_err()
                .contains("at least 32 bytes")
        );
        c.state_key = Some("zz".into());
        assert!(c.state_key_bytes().unwrap_err().contains("not hex"));
        c.state_key = Some("00".repeat(32));
        assert_eq!(c.state_key_bytes().unwrap().unwrap().len(), 32);
    }
}
