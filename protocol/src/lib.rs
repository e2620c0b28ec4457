//! mcp-protocol: what mcp-edge and mcp-backend know of MCP over Streamable HTTP, stated once.
//! Pure (no I/O, no runtime): everything here is unit-tested on bytes and strings.
//!
//! - [`version`]: the revisions, and the defaults the spec assumes;
//! - [`headers`]: header names, and what `Accept` allows;
//! - [`methods`]: the one method table (metric label, safe to repeat, era, `Mcp-Name`);
//! - [`message`]: a POST body classified ([`classify`]), its era, the 2026-07-28 header rules;
//! - [`lines`]: where a block of lines ends, the rule HTTP/1 heads and SSE events share;
//! - [`sse`]: server-sent events read event by event (and a whole body's last response);
//! - [`tasks`]: task ids that name their replica, rewritten in responses and requests;
//! - [`error`]: JSON-RPC error codes and the one error body;
//! - [`post`]: the POST header checks and the Origin allow-list, each with its rejection;
//! - [`cors`]: what a browser's preflight is answered, and what every answer to an allowed origin carries;
//! - `probe` (feature `probe`, the only I/O): the small HTTP client of health checks.

pub mod cors;
pub mod error;
pub mod headers;
pub mod lines;
pub mod message;
pub mod methods;
pub mod post;
#[cfg(feature = "probe")]
pub mod probe;
pub mod sse;
pub mod tasks;
pub mod version;

pub use error::RpcError;
pub use message::{Era, Invalid, Kind, Message, classify, era, header_mismatch};
