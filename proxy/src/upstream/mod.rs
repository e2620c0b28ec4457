//! The replica set: round robin over healthy replicas, passive ejection after consecutive
//! failures, and an active check ([`health`]) that readmits them.

pub mod health;
pub mod relay;

use std::{
    net::{SocketAddr, ToSocketAddrs},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
};

use crate::session::ReplicaId;

/// One replica: where it is, and whether it may take requests.
#[derive(Debug)]
pub struct Replica {
    pub id: ReplicaId,
    pub addr: SocketAddr,
    /// `host:port`, sent as the `Host` header (stateless servers bound to loopback check it).
    pub authority: String,
    /// The replica's MCP path (e.g. `/mcp`).
    pub path: String,
    healthy: AtomicBool,
    failures: AtomicU32,
}

impl Replica {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Where replicas come from: `http://host:port/path`, with an optional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub id: Option<String>,
    pub url: String,
}

/// Parse `http://host:port/path` into (authority, socket address, path).
pub fn parse_url(url: &str) -> Result<(String, SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// replicas are supported (mcp-edge talks plain HTTP to replicas)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/mcp"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: cannot resolve {with_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: {with_port} resolves to no address"))?;
    Ok((authority.to_owned(), addr, path.to_owned()))
}

pub struct Replicas {
    list: Vec<Arc<Replica>>,
    next: AtomicUsize,
    eject_after: u32,
}

impl Replicas {
    pub fn new(specs: &[ReplicaSpec], eject_after: u32) -> Result<Self, String> {
        let mut list = Vec::with_capacity(specs.len());
        for spec in specs {
            let (authority, addr, path) = parse_url(&spec.url)?;
            let id: ReplicaId = spec.id.clone().unwrap_or_else(|| authority.clone()).into();
            if list.iter().any(|r: &Arc<Replica>| r.id == id) {
                return Err(format!("replica {id} is listed twice"));
            }
            list.push(Arc::new(Replica {
                id,
                addr,
                authority,
                path,
                healthy: AtomicBool::new(true),
                failures: AtomicU32::new(0),
            }));
        }
        if list.is_empty() {
            return Err("no replica configured".into());
        }
        Ok(Self { list, next: AtomicUsize::new(0), eject_after: eject_after.max(1) })
    }

    pub fn all(&self) -> &[Arc<Replica>] {
        &self.list
    }

    /// The next healthy replica in round-robin order, skipping `tried`.
    pub fn pick(&self, tried: &[ReplicaId]) -> Option<Arc<Replica>> {
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.list[(start + i) % n])
            .find(|r| r.is_healthy() && !tried.iter().any(|t| *t == r.id))
            .cloned()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Replica>> {
        self.list.iter().find(|r| &*r.id == id).cloned()
    }

    /// In the set and healthy: able to serve what it owns.
    pub fn is_alive(&self, id: &str) -> bool {
        self.get(id).is_some_and(|r| r.is_healthy())
    }

    pub fn healthy_count(&self) -> usize {
        self.list.iter().filter(|r| r.is_healthy()).count()
    }

    /// A request to `replica` failed (connect error, broken connection); enough in a row eject it.
    pub fn failed(&self, replica: &Replica) -> bool {
        let n = replica.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.eject_after && replica.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = %replica.id, failures = n, "replica ejected after consecutive failures");
            return true;
        }
        false
    }

    pub fn succeeded(&self, replica: &Replica) {
        if replica.failures.load(Ordering::Relaxed) != 0 {
            replica.failures.store(0, Ordering::Relaxed);
        }
    }

    /// The active check's verdict.
    pub fn set_health(&self, replica: &Replica, healthy: bool) {
        let was = replica.healthy.swap(healthy, Ordering::Relaxed);
        if healthy {
            replica.failures.store(0, Ordering::Relaxed);
        }
        if was != healthy {
            tracing::info!(replica = %replica.id, healthy, "replica health changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Replicas {
        let specs: Vec<ReplicaSpec> = (1..=3)
            .map(|i| ReplicaSpec { id: Some(format!("r{i}")), url: format!("http://127.0.0.1:{}/mcp", 9000 + i) })
            .collect();
        Replicas::new(&specs, 2).unwrap()
    }

    #[test]
    fn round_robin_visits_every_healthy_replica() {
        let r = three();
        let picks: Vec<String> = (0..6).map(|_| r.pick(&[]).unwrap().id.to_string()).collect();
        assert_eq!(picks, ["r1", "r2", "r3", "r1", "r2", "r3"]);
    }

    #[test]
    fn ejection_and_readmission() {
        let r = three();
        let r2 = r.get("r2").unwrap();
        assert!(!r.failed(&r2));
        assert!(r.failed(&r2), "second consecutive failure ejects");
        assert!(!r.is_alive("r2"));
        for _ in 0..4 {
            assert_ne!(&*r.pick(&[]).unwrap().id, "r2");
        }
        r.set_health(&r2, true);
        assert!(r.is_alive("r2"));
        assert_eq!(r.pick(&["r1".into(), "r3".into()]).unwrap().id.as_ref(), "r2");
        assert!(r.pick(&["r1".into(), "r2".into(), "r3".into()]).is_none());
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("http://127.0.0.1:8000/mcp").unwrap().2, "/mcp");
        assert_eq!(parse_url("http://127.0.0.1:8000").unwrap().2, "/mcp");
        assert_eq!(parse_url("http://localhost/x").unwrap().1.port(), 80);
        assert!(parse_url("https://a:1/mcp").unwrap_err().contains("only http://"));
        assert!(Replicas::new(&[], 3).is_err());
    }
}
