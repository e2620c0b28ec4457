//! The replica set: round robin over healthy replicas, passive ejection after consecutive
//! failures (with a growing backoff before readmission), an active check ([`health`]) that
//! readmits and retires replicas, and discovery ([`discover`]) that replaces the set as DNS
//! changes.
//!
//! The set is a snapshot swapped whole: a replica removed from it takes no new request, while
//! requests and streams already on it hold their own reference and finish.

pub mod attempt;
pub mod discover;
pub mod health;
pub mod http1;
pub mod pool;

use std::{
    net::{SocketAddr, ToSocketAddrs},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

use crate::{
    session::ReplicaId,
    telemetry::registry::{Encoder, Kind, Source},
};

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
    /// Consecutive failed requests (passive health).
    failures: AtomicU32,
    /// Consecutive passed / failed active checks.
    passes: AtomicU32,
    fails: AtomicU32,
    /// Ejections in a row without a quiet period: the backoff grows with them.
    ejections: AtomicU32,
    /// Milliseconds since [`Replicas`] started: not readmitted before, last ejected at.
    ejected_until: AtomicU64,
    ejected_at: AtomicU64,
    /// It answered `server/discover` with 2026-07-28 among its versions (bridged calls go
    /// only to such replicas).
    modern: AtomicBool,
    /// Its `server/discover` declared a change it announces on listen streams (a list's
    /// `listChanged`, or `resources.subscribe`): the fan-out follows only such replicas.
    pushes: AtomicBool,
    /// Its last health check got an HTTP answer, passing or not (a draining replica's 503):
    /// the process is there to serve its tasks.
    answering: AtomicBool,
}

impl Replica {
    fn new(
        id: ReplicaId,
        addr: SocketAddr,
        authority: String,
        path: String,
        healthy: bool,
    ) -> Self {
        Self {
            id,
            addr,
            authority,
            path,
            healthy: AtomicBool::new(healthy),
            failures: AtomicU32::new(0),
            passes: AtomicU32::new(0),
            fails: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejected_at: AtomicU64::new(0),
            modern: AtomicBool::new(false),
            pushes: AtomicBool::new(false),
            answering: AtomicBool::new(healthy),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether it speaks 2026-07-28, as last learnt.
    pub fn is_modern(&self) -> bool {
        self.modern.load(Ordering::Relaxed)
    }

    pub fn set_modern(&self, modern: bool) {
        self.modern.store(modern, Ordering::Relaxed);
    }

    /// Whether it announces changes on listen streams, as last learnt.
    pub fn pushes(&self) -> bool {
        self.pushes.load(Ordering::Relaxed)
    }

    pub fn set_pushes(&self, pushes: bool) {
        self.pushes.store(pushes, Ordering::Relaxed);
    }

    /// Healthy, or at least answering health checks (draining): it can serve its own tasks.
    pub fn answers(&self) -> bool {
        self.is_healthy() || self.answering.load(Ordering::Relaxed)
    }

    /// Whether its last health check got an HTTP answer, passing or not.
    pub fn answering(&self) -> bool {
        self.answering.load(Ordering::Relaxed)
    }

    /// Record whether a health check got an HTTP answer.
    pub fn set_answering(&self, answering: bool) {
        self.answering.store(answering, Ordering::Relaxed);
    }
}

/// `--bridge` and `--push`: what runs over 2026-07-28 replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BridgeMode {
    Auto,
    On,
    Off,
}

/// Where replicas come from: `http://host:port/path`, with an optional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub id: Option<String>,
    pub url: String,
}

/// Parse `http://host:port/path` into (authority, socket address, path).
pub fn parse_url(url: &str) -> Result<(String, SocketAddr, String), String> {
    let (authority, path) = split_url(url)?;
    let with_port = with_port(&authority);
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: cannot resolve {with_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: {with_port} resolves to no address"))?;
    Ok((authority, addr, path))
}

/// `http://host[:port][/path]` → (authority, path); the path defaults to `/mcp`.
pub fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!(
            "{url}: only http:// replicas are supported (mcp-edge talks plain HTTP to replicas)"
        )
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/mcp"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

fn with_port(authority: &str) -> String {
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    }
}

/// Health policy: how many checks or failures change a replica's state, and for how long an
/// ejected replica stays out.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Consecutive failed requests that eject a replica.
    pub eject_after: u32,
    /// First ejection lasts this long; each further one in a row doubles it, up to 32 times.
    pub eject_backoff: Duration,
    /// Consecutive passed checks that (re)admit a replica.
    pub pass_after: u32,
    /// Consecutive failed checks that take a replica out.
    pub fail_after: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            eject_after: 3,
            eject_backoff: Duration::from_secs(1),
            pass_after: 1,
            fail_after: 2,
        }
    }
}

pub struct Replicas {
    list: ArcSwap<Vec<Arc<Replica>>>,
    next: AtomicUsize,
    policy: Policy,
    epoch: Instant,
    /// Replicas that left the set (their DNS record went: Swarm removes a task's record before
    /// it stops it) and may still be draining: probed until they stop answering, and reached
    /// only by requests for the tasks they run ([`Replicas::home`]). At most [`DEPARTED`].
    departed: std::sync::Mutex<Vec<Arc<Replica>>>,
}

/// Most departed replicas kept for their tasks (the oldest go first).
pub const DEPARTED: usize = 64;

impl Replicas {
    /// A fixed set, all healthy until shown otherwise.
    pub fn new(specs: &[ReplicaSpec], policy: Policy) -> Result<Self, String> {
        let mut list = Vec::with_capacity(specs.len());
        for spec in specs {
            let (authority, addr, path) = parse_url(&spec.url)?;
            let id: ReplicaId = spec.id.clone().unwrap_or_else(|| authority.clone()).into();
            if list.iter().any(|r: &Arc<Replica>| r.id == id) {
                return Err(format!("replica {id} is listed twice"));
            }
            list.push(Arc::new(Replica::new(id, addr, authority, path, true)));
        }
        if list.is_empty() {
            return Err("no replica configured".into());
        }
        Ok(Self::from_list(list, policy))
    }

    /// An empty set that [`Replicas::replace`] fills (discovery).
    pub fn discovered(policy: Policy) -> Self {
        Self::from_list(Vec::new(), policy)
    }

    fn from_list(list: Vec<Arc<Replica>>, policy: Policy) -> Self {
        let policy = Policy {
            eject_after: policy.eject_after.max(1),
            pass_after: policy.pass_after.max(1),
            fail_after: policy.fail_after.max(1),
            ..policy
        };
        Self {
            list: ArcSwap::from_pointee(list),
            next: AtomicUsize::new(0),
            policy,
            epoch: Instant::now(),
            departed: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The current set (a snapshot).
    pub fn all(&self) -> Arc<Vec<Arc<Replica>>> {
        self.list.load_full()
    }

    /// Replace the set with the replicas at `addrs` (all serving `path`). Replicas still present
    /// keep their state; new ones start out of rotation until a health check passes; the ones
    /// gone leave the rotation. Returns (added, removed).
    pub fn replace(
        &self,
        addrs: &[SocketAddr],
        path: &str,
    ) -> (Vec<Arc<Replica>>, Vec<Arc<Replica>>) {
        let current = self.list.load_full();
        let mut next = Vec::with_capacity(addrs.len());
        let mut added = Vec::new();
        for addr in addrs {
            if next.iter().any(|r: &Arc<Replica>| r.addr == *addr) {
                continue;
            }
            match current.iter().find(|r| r.addr == *addr) {
                Some(r) => next.push(r.clone()),
                None => {
                    let authority = addr.to_string();
                    let replica = Arc::new(Replica::new(
                        authority.clone().into(),
                        *addr,
                        authority,
                        path.to_owned(),
                        false,
                    ));
                    added.push(replica.clone());
                    next.push(replica);
                }
            }
        }
        let removed: Vec<_> = current
            .iter()
            .filter(|r| !next.iter().any(|n| n.addr == r.addr))
            .cloned()
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            self.list.store(Arc::new(next));
            let mut departed = self.departed.lock().expect("departed");
            departed.retain(|d| !addrs.contains(&d.addr));
            departed.extend(removed.iter().filter(|r| r.answering()).cloned());
            let over = departed.len().saturating_sub(DEPARTED);
            departed.drain(..over);
        }
        (added, removed)
    }

    /// The replicas that left the set but still answered when last probed.
    pub fn departed(&self) -> Vec<Arc<Replica>> {
        self.departed.lock().expect("departed").clone()
    }

    /// Forget the departed replicas that stopped answering.
    pub fn forget_silent(&self) {
        self.departed
            .lock()
            .expect("departed")
            .retain(|d| d.answering());
    }

    /// Where the tasks of replica `id` run: the replica, while it answers — in the set
    /// (healthy, or draining), or departed (its health checks are only probes: answering).
    pub fn home(&self, id: &str) -> Option<Arc<Replica>> {
        if let Some(replica) = self.get(id) {
            return replica.answers().then_some(replica);
        }
        let departed = self.departed.lock().expect("departed");
        departed
            .iter()
            .find(|r| &*r.id == id && r.answering())
            .cloned()
    }

    /// The next healthy replica in round-robin order that `fits`, skipping `tried`.
    pub fn pick(
        &self,
        tried: &[ReplicaId],
        fits: impl Fn(&Replica) -> bool,
    ) -> Option<Arc<Replica>> {
        let list = self.list.load();
        let n = list.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &list[(start + i) % n])
            .find(|r| r.is_healthy() && fits(r) && !tried.iter().any(|t| *t == r.id))
            .cloned()
    }

    /// Whether what needs 2026-07-28 replicas runs now in `mode`: never when off; with `on`,
    /// whenever a replica is healthy; else when a healthy one `qualifies` (speaks 2026-07-28
    /// for the bridge; also announces changes, for the fan-out).
    pub fn modern_ready(&self, mode: BridgeMode, qualifies: impl Fn(&Replica) -> bool) -> bool {
        match mode {
            BridgeMode::Off => false,
            BridgeMode::On => self.healthy_count() > 0,
            BridgeMode::Auto => self
                .list
                .load()
                .iter()
                .any(|r| r.is_healthy() && qualifies(r)),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Replica>> {
        self.list.load().iter().find(|r| &*r.id == id).cloned()
    }

    /// In the set and healthy: able to serve what it owns.
    pub fn is_alive(&self, id: &str) -> bool {
        self.get(id).is_some_and(|r| r.is_healthy())
    }

    /// Answering, healthy or not (a draining replica still answers), in the set or departed:
    /// able to serve the tasks it runs.
    pub fn answers(&self, id: &str) -> bool {
        self.home(id).is_some()
    }

    pub fn healthy_count(&self) -> usize {
        self.list.load().iter().filter(|r| r.is_healthy()).count()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request to `replica` failed (connect error, broken connection); enough in a row eject
    /// it for a backoff that doubles with each ejection in a row. `true` when this ejected it.
    pub fn failed(&self, replica: &Replica) -> bool {
        let n = replica.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.policy.eject_after || !replica.healthy.swap(false, Ordering::Relaxed) {
            return false;
        }
        let now = self.now_ms();
        // Quiet for a minute since the last ejection: start the backoff over.
        if now.saturating_sub(replica.ejected_at.load(Ordering::Relaxed)) > 60_000 {
            replica.ejections.store(0, Ordering::Relaxed);
        }
        let k = replica.ejections.fetch_add(1, Ordering::Relaxed).min(5);
        let backoff = self.policy.eject_backoff * (1 << k);
        replica.ejected_at.store(now, Ordering::Relaxed);
        replica
            .ejected_until
            .store(now + backoff.as_millis() as u64, Ordering::Relaxed);
        replica.passes.store(0, Ordering::Relaxed);
        tracing::warn!(replica = %replica.id, failures = n, ?backoff, "replica ejected after consecutive failures");
        true
    }

    pub fn succeeded(&self, replica: &Replica) {
        if replica.failures.load(Ordering::Relaxed) != 0 {
            replica.failures.store(0, Ordering::Relaxed);
        }
    }

    /// An active check's verdict: `pass_after` passes in a row (re)admit a replica once its
    /// ejection backoff is over; `fail_after` failures in a row take it out. `true`: the first
    /// pass after a start or a failure (a replica that may be new, or may have changed).
    pub fn checked(&self, replica: &Replica, passed: bool) -> bool {
        let was = replica.is_healthy();
        let mut first_pass = false;
        let now = if passed {
            replica.fails.store(0, Ordering::Relaxed);
            let passes = replica.passes.fetch_add(1, Ordering::Relaxed) + 1;
            first_pass = passes == 1;
            let backoff_over = self.now_ms() >= replica.ejected_until.load(Ordering::Relaxed);
            was || (passes >= self.policy.pass_after && backoff_over)
        } else {
            replica.passes.store(0, Ordering::Relaxed);
            let fails = replica.fails.fetch_add(1, Ordering::Relaxed) + 1;
            was && fails < self.policy.fail_after
        };
        if now != was {
            if now {
                replica.failures.store(0, Ordering::Relaxed);
            }
            replica.healthy.store(now, Ordering::Relaxed);
            tracing::info!(replica = %replica.id, healthy = now, "replica health changed");
        }
        first_pass
    }
}

impl Source for Replicas {
    fn collect(&self, out: &mut Encoder) {
        let mut family = out.family(
            "mcp_edge_replica_healthy",
            Kind::Gauge,
            "1 when the replica takes requests, 0 when it is out of rotation.",
        );
        for r in self.all().iter() {
            family.sample(
                &[("replica", &r.id), ("address", &r.addr.to_string())],
                u8::from(r.is_healthy()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Replicas {
        let specs: Vec<ReplicaSpec> = (1..=3)
            .map(|i| ReplicaSpec {
                id: Some(format!("r{i}")),
                url: format!("http://127.0.0.1:{}/mcp", 9000 + i),
            })
            .collect();
        Replicas::new(
            &specs,
            Policy {
                eject_after: 2,
                eject_backoff: Duration::ZERO,
                ..Policy::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn round_robin_visits_every_healthy_replica() {
        let r = three();
        let picks: Vec<String> = (0..6)
            .map(|_| r.pick(&[], |_| true).unwrap().id.to_string())
            .collect();
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
            assert_ne!(&*r.pick(&[], |_| true).unwrap().id, "r2");
        }
        r.checked(&r2, true);
        assert!(r.is_alive("r2"));
        assert_eq!(
            r.pick(&["r1".into(), "r3".into()], |_| true)
                .unwrap()
                .id
                .as_ref(),
            "r2"
        );
        assert!(
            r.pick(&["r1".into(), "r2".into(), "r3".into()], |_| true)
                .is_none()
        );
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("http://127.0.0.1:8000/mcp").unwrap().2, "/mcp");
        assert_eq!(parse_url("http://127.0.0.1:8000").unwrap().2, "/mcp");
        assert_eq!(parse_url("http://localhost/x").unwrap().1.port(), 80);
        assert!(
            parse_url("https://a:1/mcp")
                .unwrap_err()
                .contains("only http://")
        );
        assert!(Replicas::new(&[], Policy::default()).is_err());
    }

    #[test]
    fn active_checks_need_their_thresholds_and_the_backoff() {
        let r = Replicas::new(
            &[ReplicaSpec {
                id: Some("r1".into()),
                url: "http://127.0.0.1:9001/mcp".into(),
            }],
            Policy {
                eject_after: 1,
                eject_backoff: Duration::from_secs(3600),
                pass_after: 2,
                fail_after: 2,
            },
        )
        .unwrap();
        let r1 = r.get("r1").unwrap();
        r.checked(&r1, false);
        assert!(r1.is_healthy(), "one failed check is not enough");
        r.checked(&r1, false);
        assert!(!r1.is_healthy());
        r.checked(&r1, true);
        assert!(!r1.is_healthy(), "one pass is not enough");
        r.checked(&r1, true);
        assert!(r1.is_healthy());
        assert!(r.failed(&r1), "ejected by a failed request");
        for _ in 0..5 {
            r.checked(&r1, true);
        }
        assert!(
            !r1.is_healthy(),
            "passing checks wait for the ejection backoff"
        );
    }

    #[test]
    fn discovery_keeps_known_replicas_and_admits_new_ones_after_a_check() {
        let r = Replicas::discovered(Policy::default());
        let a: SocketAddr = "127.0.0.2:8000".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:8000".parse().unwrap();
        let (added, removed) = r.replace(&[a, b], "/mcp");
        assert_eq!((added.len(), removed.len()), (2, 0));
        assert!(r.pick(&[], |_| true).is_none(), "not before a health check");
        r.checked(&added[0], true);
        assert_eq!(r.pick(&[], |_| true).unwrap().addr, a);
        let (added, removed) = r.replace(&[a], "/mcp");
        assert_eq!((added.len(), removed.len()), (0, 1));
        assert!(r.get("127.0.0.2:8000").unwrap().is_healthy(), "state kept");
        assert!(r.get("127.0.0.3:8000").is_none());
        assert_eq!(r.replace(&[], "/mcp").1.len(), 1);
        assert!(r.pick(&[], |_| true).is_none());
    }

    #[test]
    fn a_departed_replica_still_serves_its_tasks_while_it_answers() {
        let r = Replicas::discovered(Policy::default());
        let a: SocketAddr = "127.0.0.2:8000".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:8000".parse().unwrap();
        let (added, _) = r.replace(&[a, b], "/mcp");
        for replica in &added {
            r.checked(replica, true);
            replica.set_answering(true);
        }
        r.replace(&[a], "/mcp");
        let gone = "127.0.0.3:8000";
        assert!(r.get(gone).is_none(), "out of the set: no new work");
        assert_eq!(r.home(gone).unwrap().addr, b, "its tasks still reach it");
        assert!(r.pick(&[], |_| true).is_some_and(|p| p.addr == a));
        // It stops answering (it exited): forgotten.
        r.departed()[0].set_answering(false);
        r.forget_silent();
        assert!(r.home(gone).is_none() && r.departed().is_empty());
        // One that comes back is in the set again, not departed twice.
        r.replace(&[a, b], "/mcp");
        r.replace(&[a], "/mcp");
        assert!(r.departed().is_empty(), "never answered since it came back");
    }
}
