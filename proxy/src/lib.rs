//! mcp-edge: an MCP-aware front proxy on pingora.
//!
//! - [`mcp`]: protocol knowledge (classification, eras, header rules, SSE, error bodies), pure;
//! - [`session`]: legacy sessions minted at the edge, and who serves what right now;
//! - [`route`]: the routing decision, a pure function;
//! - [`upstream`]: the replica set, health checks, discovery, forwarding and its connection pool;
//! - [`front`]: each request from pingora's HTTP server (header deadline, failures, logging);
//! - [`edge`]: one request's steps, wiring the above; [`heads`]: the request fields it reads;
//! - [`metrics`]: Prometheus counters; [`access`]: the access log;
//! - [`auth`]: bearer tokens; [`ratelimit`]: a token bucket per caller; [`limits`]: header and stream limits; [`admin`]: /healthz, /readyz, peer revocations; [`drain`]: shutdown as soon as nothing is in flight; [`embedded`]: the bundled replicas; [`config`]: flags.

pub mod access;
pub mod admin;
pub mod auth;
pub mod config;
pub mod drain;
pub mod edge;
pub mod embedded;
pub mod front;
pub mod heads;
pub mod limits;
pub mod listen;
pub mod mcp;
pub mod metrics;
pub mod ratelimit;
pub mod route;
pub mod session;
pub mod upstream;

pub use config::Config;
