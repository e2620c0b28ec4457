//! Discovery: a DNS name re-resolved on an interval, every A/AAAA record a replica
//! (`--discover dns://tasks.backend:8000/mcp`; Swarm's `tasks.<service>` names each task).
//!
//! Answers are not cached (Swarm's resolver gives long TTLs while tasks come and go). A replica
//! that appears is checked at once and joins when the check passes; one that disappears leaves
//! the rotation, its open streams finish. A failed lookup changes nothing; an answer with no
//! records empties the set (the service was scaled to zero).

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
};

use super::{Replicas, health::HealthCheck, split_url};
use crate::ticker::Periodic;

/// `dns://name:port/path`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let http = spec
            .strip_prefix("dns://")
            .map(|rest| format!("http://{rest}"))
            .ok_or_else(|| format!("{spec}: discovery takes dns://name:port/path"))?;
        let (authority, path) = split_url(&http).map_err(|e| e.replace("http://", "dns://"))?;
        let (name, port) = authority
            .rsplit_once(':')
            .and_then(|(n, p)| Some((n.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("{spec}: name the replicas' port (dns://name:port/path)"))?;
        Ok(Self { name, port, path })
    }
}

/// A resolver without a cache, from the system configuration or for one given server.
pub fn resolver(server: Option<SocketAddr>, timeout: Duration) -> Result<TokioResolver, String> {
    let mut builder = match server {
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut ns.connections {
                connection.port = addr.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.timeout = timeout;
    options.attempts = 2;
    options.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
    builder
        .build()
        .map_err(|e| format!("cannot build a DNS resolver: {e}"))
}

pub struct Discovery {
    pub target: Target,
    pub resolver: TokioResolver,
    pub interval: Duration,
    pub replicas: Arc<Replicas>,
    pub health: HealthCheck,
    /// The last lookup failed.
    pub failing: AtomicBool,
}

impl Discovery {
    /// Resolve once and update the set; `Err` when the lookup failed (the set is unchanged).
    pub async fn refresh(&self) -> Result<(), String> {
        let ips: Vec<IpAddr> = match self.resolver.lookup_ip(self.target.name.as_str()).await {
            Ok(lookup) => lookup.iter().collect(),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", self.target.name)),
        };
        let mut addrs: Vec<SocketAddr> = ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, self.target.port))
            .collect();
        addrs.sort();
        let (added, removed) = self.replicas.replace(&addrs, &self.target.path);
        for replica in &removed {
            tracing::info!(replica = %replica.id, "replica left DNS: no new requests, open streams finish");
        }
        if !added.is_empty() {
            for replica in &added {
                tracing::info!(replica = %replica.id, "replica found in DNS: joins after a health check");
            }
            self.health.check(&added).await;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Periodic for Discovery {
    fn name(&self) -> &'static str {
        "replica discovery"
    }
    fn every(&self) -> Duration {
        self.interval
    }
    async fn tick(&self) {
        match self.refresh().await {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            // Said once per outage, not at every tick.
            Err(e) if !self.failing.swap(true, Ordering::Relaxed) => {
                tracing::warn!(error = %e, "DNS discovery failed; keeping the current replicas");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("dns://tasks.backend:8000/mcp").unwrap(),
            Target {
                name: "tasks.backend".into(),
                port: 8000,
                path: "/mcp".into()
            }
        );
        assert_eq!(Target::parse("dns://backend:8000").unwrap().path, "/mcp");
        assert!(
            Target::parse("dns://backend/mcp")
                .unwrap_err()
                .contains("port")
        );
        assert!(
            Target::parse("http://backend:1/mcp")
                .unwrap_err()
                .contains("dns://")
        );
    }
}
