//! mcp-edge: an MCP-aware front proxy on pingora. Calls go one way: the client side, then the
//! phases, then pure decisions, then upstream I/O.
//!
//! - client side: [`downstream`] (listeners, the keep-alive loop, the only code touching the
//!   client's `ServerSession`);
//! - the phases: [`edge`] (the phase chart) delegating to [`admit`], [`exchange`] (the exchange
//!   phase), [`relay::respond`] (the relay phase's bytes), with [`request`] holding one request's state;
//! - pure decisions: [`route`] (`decide`, `after_failure`), [`relay`] (the response policy),
//!   [`answer`] (replies and the failure table), `mcp_protocol` (classification, SSE, errors);
//! - state: [`session`] (sealed legacy sessions), [`inflight`] (streams and owners, by guard),
//!   [`tools`] (tool annotations learned), [`tasks`] (task ids that name their replica),
//!   [`auth`], [`ratelimit`], [`limits`], [`drain`]; [`state`]: what the process shares of it;
//! - upstream I/O: [`upstream`] (replica set, round robin, health, discovery, pool, exchange);
//! - around it: [`app`] (flags → shared state → services), [`ticker`] (the periodic jobs),
//!   [`admin`], [`telemetry`],
//!   [`embedded`] (the bundled replicas), [`config`], [`memory`] (freed memory handed back).

pub mod admin;
pub mod admit;
pub mod answer;
pub mod app;
pub mod auth;
pub mod bridge;
pub mod budget;
pub mod config;
pub mod downstream;
pub mod drain;
pub mod edge;
pub mod embedded;
pub mod exchange;
pub mod inflight;
pub mod limits;
pub mod memory;
pub mod push;
pub mod ratelimit;
pub mod relay;
pub mod request;
pub mod route;
pub mod session;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod ticker;
pub mod tools;
pub mod upstream;

pub use config::Config;
