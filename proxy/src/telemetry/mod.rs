//! What the proxy tells its operators: Prometheus [`metrics`] (counters from one event table,
//! gauges read at the scrape) and the [`access`] log.

pub mod access;
pub mod metrics;
