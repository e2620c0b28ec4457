//! What the proxy tells its operators: Prometheus metrics — one [`registry`] that every
//! subsystem registers its families into, the request and event counters in [`metrics`] — and
//! the [`access`] log.

pub mod access;
pub mod metrics;
pub mod registry;
