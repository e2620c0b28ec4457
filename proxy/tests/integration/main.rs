//! The mcp-edge binary over real HTTP, in one test binary (each binary in `tests/` is linked
//! on its own: one link instead of four).
//!
//! - [`bridge`]: legacy clients asked for sampling, elicitation and roots over 2026-07-28
//!   replicas, and every way such a call ends.
//! - [`edge`]: the proxy as users run it, in front of its embedded replicas or of replicas the
//!   test starts.
//! - [`failover`]: replicas that come, go and die; DNS discovery; SIGTERM.
//! - [`hostile`]: clients that never read, stall, send oversized heads, names and
//!   subscriptions, or pose as peers: each per-client budget holds.
//! - [`push`]: list changes and resource updates fanned out from one listen per replica to
//!   2026-07-28 listen streams and legacy GET streams, across replicas and processes.
//! - [`tasks`]: long-running calls as tasks, polled through either of two processes on the
//!   replica that runs them; replicas that die or drain with tasks running.
//! - [`operate`]: metrics, the access log, rate and header limits, slow headers, hostile
//!   requests, memory bounds.

mod bridge;
mod common;
mod edge;
mod failover;
mod hostile;
mod operate;
mod push;
mod tasks;
