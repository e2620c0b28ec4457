//! Server push over stateless replicas: list changes and resource updates, fanned out.
//!
//! ```text
//!  replica r1 ─┐ one subscriptions/listen per replica per mcp-edge process (link), opened
//!  replica r2 ─┼─▶ with the union of what its listeners want: every list change, and each
//!  replica r3 ─┘   URI subscribed ──▶ the hub: one broadcast of ready-made notes
//!                                     ├─▶ 2026-07-28 listen streams (their own subscriptionId)
//!                                     └─▶ legacy sessions' GET streams (their resources/subscribe)
//! ```
//!
//! A client's listen is acknowledged only once every replica this process follows has
//! acknowledged a stream covering it (or missed a 2 s deadline), with the filter they all
//! agreed to: a change right after the client's acknowledgement is not missed, whichever
//! replica it happens on. Each client gets only the types (and URIs) it asked for. A replica
//! that joins is followed; one that leaves is dropped. After a replica joins, or its stream is
//! opened again after a break, every listener gets one hint per type it listens to (and per URI)
//! — the replica may serve a different list (a rolling update), or a change may have been lost
//! while the stream was down; a spurious hint costs a client one re-list. The links exist while
//! a listener does (closed 5 s after the last one leaves). Legacy sessions' resource
//! subscriptions are kept by every process ([`subscribed`]): a `resources/subscribe` is told to
//! the peers, so the process holding the session's GET stream has it wherever it arrived.

pub mod filter;
pub mod link;
pub mod stream;
pub mod subscribed;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use pingora::connectors::TransportConnector;
use rand::RngCore;
use tokio::sync::{broadcast, watch};

use crate::{
    budget::Caller,
    config::BridgeMode,
    session::ReplicaId,
    telemetry::registry::{Encoder, Kind, Source},
    ticker::Periodic,
    upstream::{Replica, Replicas, attempt::Timeouts},
};
use filter::{Filter, Note, Topic, Uri};
use link::{Acked, Link};

/// Notes kept for a slow listener before it falls behind (then it gets hints instead).
const BACKLOG: usize = 4096;
/// Links are closed this long after the last listener left.
const LINGER: Duration = Duration::from_secs(5);
/// Most bytes of distinct URIs every upstream listen asks for (the union of every listener's
/// and legacy session's): far below what a replica accepts in one request body (mcp-backend:
/// 4 MiB), so that no set of clients can make the listen too large for the replicas.
pub const WANTED_BYTES: usize = 256 << 10;
/// Most of those bytes one caller's listens and sessions may want (URIs counted once for each
/// listen or session that wants them): a quarter, so that no one caller fills them.
pub const CALLER_BYTES: usize = WANTED_BYTES / 4;

/// Which kind of client listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Listener {
    /// A 2026-07-28 `subscriptions/listen` stream.
    Modern,
    /// A legacy session's GET stream.
    Legacy,
}

#[derive(Default)]
struct Counts {
    received: AtomicU64,
    relayed: AtomicU64,
    dropped: AtomicU64,
    hints: AtomicU64,
    opened: AtomicU64,
    broke: AtomicU64,
}

/// This process's fan-out.
pub struct Push {
    pub mode: BridgeMode,
    /// This process, as its upstream listen ids name it.
    process: u64,
    replicas: Arc<Replicas>,
    connector: TransportConnector,
    timeouts: Timeouts,
    notes: broadcast::Sender<Arc<Note>>,
    links: Mutex<HashMap<ReplicaId, Link>>,
    /// What every link asks its replica for.
    wanted: watch::Sender<Arc<Filter>>,
    /// How many listeners (and legacy subscriptions) want each URI.
    uris: Mutex<Wanted>,
    listeners: [AtomicUsize; 2],
    idle_since: Mutex<Option<Instant>>,
    /// Legacy sessions' `resources/subscribe` URIs, and their GET streams here.
    pub sessions: subscribed::Subscribed,
    ending: watch::Sender<bool>,
    counts: Counts,
    /// Subscriptions and listens refused because the union would pass [`WANTED_BYTES`].
    refused: AtomicU64,
    /// Per-client budgets that ran out (the metrics' counters): streams ended at their lifetime.
    pub spent: Arc<crate::budget::Spent>,
}

/// The URIs wanted upstream: how many listeners want each, their bytes in all, and how many
/// bytes each caller wants.
#[derive(Default)]
struct Wanted {
    counts: BTreeMap<Uri, usize>,
    bytes: usize,
    by_caller: HashMap<Caller, usize>,
}

/// A listener's place in the hub, given up when dropped.
pub struct Joined {
    push: Arc<Push>,
    kind: Listener,
    uris: Vec<Uri>,
    caller: Option<Caller>,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.push.listeners[self.kind as usize].fetch_sub(1, Ordering::Relaxed);
        self.push.unwant(&self.uris, self.caller);
    }
}

impl Push {
    pub fn new(
        mode: BridgeMode,
        replicas: Arc<Replicas>,
        timeouts: Timeouts,
        spent: Arc<crate::budget::Spent>,
    ) -> Arc<Self> {
        Arc::new(Self {
            mode,
            process: rand::rng().next_u64(),
            replicas,
            connector: TransportConnector::new(None),
            timeouts,
            notes: broadcast::channel(BACKLOG).0,
            links: Mutex::new(HashMap::new()),
            wanted: watch::channel(Arc::new(Filter::lists())).0,
            uris: Mutex::new(Wanted::default()),
            listeners: [AtomicUsize::new(0), AtomicUsize::new(0)],
            idle_since: Mutex::new(None),
            sessions: subscribed::Subscribed::default(),
            ending: watch::channel(false).0,
            counts: Counts::default(),
            refused: AtomicU64::new(0),
            spent,
        })
    }

    /// Whether mcp-edge serves listen streams now: `--push` is not off, and a healthy replica
    /// speaks 2026-07-28 and declares a change it announces (with `on`, any healthy replica is
    /// taken to).
    pub fn ready(&self) -> bool {
        self.replicas.modern_ready(self.mode, announces)
    }

    fn follows(&self, replica: &Replica) -> bool {
        replica.is_healthy() && (self.mode == BridgeMode::On || announces(replica))
    }

    /// A listener of `caller`'s arrives: counted, its URIs wanted, the links opened if they
    /// were not. `Err`: its URIs are past the caller's share or the process's (nothing is
    /// counted).
    pub fn join(
        self: &Arc<Self>,
        kind: Listener,
        uris: &[Uri],
        caller: Option<Caller>,
    ) -> Result<Joined, String> {
        self.want(uris, caller)?;
        self.listeners[kind as usize].fetch_add(1, Ordering::Relaxed);
        self.reconcile();
        Ok(Joined {
            push: self.clone(),
            kind,
            uris: uris.to_vec(),
            caller,
        })
    }

    /// Count `uris` as wanted once more (by `caller`; `None`: a peer's word, counted there);
    /// the links follow when one is new. `Err`: they would take the caller past
    /// [`CALLER_BYTES`], or the union past [`WANTED_BYTES`] (nothing is counted).
    pub fn want(&self, uris: &[Uri], caller: Option<Caller>) -> Result<(), String> {
        if uris.is_empty() {
            return Ok(());
        }
        let mut wanted = self.uris.lock().expect("uris");
        let asked: usize = uris.iter().map(|u| u.len()).sum();
        let held = caller.map_or(0, |c| wanted.by_caller.get(&c).copied().unwrap_or(0));
        if caller.is_some() && held + asked > CALLER_BYTES {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "one caller's listens and sessions may follow at most {CALLER_BYTES} bytes of \
                 subscribed URIs here"
            ));
        }
        let new: usize = uris
            .iter()
            .filter(|u| !wanted.counts.contains_key(*u))
            .map(|u| u.len())
            .sum();
        if wanted.bytes + new > WANTED_BYTES {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "mcp-edge follows at most {WANTED_BYTES} bytes of distinct subscribed URIs, and \
                 they are taken; try again later"
            ));
        }
        for uri in uris {
            *wanted.counts.entry(uri.clone()).or_insert(0) += 1;
        }
        wanted.bytes += new;
        if let Some(caller) = caller {
            *wanted.by_caller.entry(caller).or_insert(0) += asked;
        }
        if new > 0 {
            self.publish_wanted(&wanted.counts);
        }
        Ok(())
    }

    /// Count `uris` as wanted once less (by `caller`, as [`Push::want`] counted them); the links
    /// follow when one is no longer wanted.
    pub fn unwant(&self, uris: &[Uri], caller: Option<Caller>) {
        if uris.is_empty() {
            return;
        }
        let mut wanted = self.uris.lock().expect("uris");
        if let Some(caller) = caller
            && let std::collections::hash_map::Entry::Occupied(mut held) =
                wanted.by_caller.entry(caller)
        {
            let asked: usize = uris.iter().map(|u| u.len()).sum();
            *held.get_mut() = held.get().saturating_sub(asked);
            if *held.get() == 0 {
                held.remove();
            }
        }
        let mut changed = false;
        for uri in uris {
            if let Some(n) = wanted.counts.get_mut(uri) {
                *n -= 1;
                if *n == 0 {
                    wanted.counts.remove(uri);
                    wanted.bytes -= uri.len();
                    changed = true;
                }
            }
        }
        if changed {
            self.publish_wanted(&wanted.counts);
        }
    }

    fn publish_wanted(&self, wanted: &BTreeMap<Uri, usize>) {
        let mut filter = Filter::lists();
        filter.uris = wanted.keys().cloned().collect();
        self.wanted.send_replace(Arc::new(filter));
    }

    fn listening(&self) -> usize {
        self.listeners
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Follow every healthy replica that speaks 2026-07-28 while someone listens; drop the
    /// links of replicas gone, unhealthy, or not needed any more.
    pub fn reconcile(self: &Arc<Self>) {
        let mut links = self.links.lock().expect("links");
        let idle = {
            let mut since = self.idle_since.lock().expect("idle");
            if self.listening() > 0 {
                *since = None;
                false
            } else {
                since.get_or_insert_with(Instant::now).elapsed() >= LINGER
            }
        };
        if idle {
            links.clear();
            return;
        }
        if self.listening() == 0 && links.is_empty() {
            return;
        }
        let replicas = self.replicas.all();
        links.retain(|id, _| replicas.iter().any(|r| r.id == *id && self.follows(r)));
        let joining = !links.is_empty();
        for replica in replicas.iter().filter(|r| self.follows(r)) {
            if !links.contains_key(&replica.id) {
                let link = Link::start(self.clone(), replica.clone(), joining);
                links.insert(replica.id.clone(), link);
            }
        }
    }

    /// Wait (at most `within`) until every followed replica has acknowledged a stream that
    /// covers `needed`: what they all agreed to of it, or `None` when none did.
    pub async fn cover(&self, needed: &Filter, within: Duration) -> Option<Filter> {
        let waiting: Vec<_> = self
            .links
            .lock()
            .expect("links")
            .values()
            .map(|l| l.acked.clone())
            .collect();
        let until = tokio::time::Instant::now() + within;
        let mut agreed: Option<Filter> = None;
        for mut acked in waiting {
            let covers =
                |a: &Option<Acked>| a.as_ref().is_some_and(|a| a.asked.has_uris_of(needed));
            let Ok(Ok(got)) = tokio::time::timeout_at(until, acked.wait_for(covers)).await else {
                continue;
            };
            let theirs = got.as_ref().expect("covered").agreed.intersect(needed);
            agreed = Some(match agreed {
                None => theirs,
                Some(so_far) => so_far.intersect(&theirs),
            });
        }
        agreed
    }

    /// Whether links are open (someone listens here).
    pub fn active(&self) -> bool {
        !self.links.lock().expect("links").is_empty()
    }

    /// A replica's message on its listen stream.
    fn relay(&self, message: &[u8]) {
        if let Some(note) = Note::from_upstream(message) {
            self.counts.received.fetch_add(1, Ordering::Relaxed);
            let _ = self.notes.send(Arc::new(note));
        }
    }

    /// Tell every listener that what `filter` covers may have changed.
    fn hint(&self, filter: &Filter) {
        for topic in Topic::all_of(filter) {
            self.counts.hints.fetch_add(1, Ordering::Relaxed);
            let _ = self.notes.send(Arc::new(Note::hint(topic)));
        }
    }

    fn opened(&self, replica: &Replica, acked: &Acked) {
        self.counts.opened.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(replica = %replica.id, agreed = %acked.agreed.to_json(), "listen stream acknowledged");
    }

    fn broke(&self) {
        self.counts.broke.fetch_add(1, Ordering::Relaxed);
    }

    /// The notes from now on.
    pub fn notes(&self) -> broadcast::Receiver<Arc<Note>> {
        self.notes.subscribe()
    }

    /// Shutdown: every listen stream ends (2026-07-28 ones with their response).
    pub fn end_all(&self) {
        self.ending.send_replace(true);
    }

    /// A legacy session ended: its subscriptions are forgotten, its GET stream here ends.
    pub fn end_session(&self, uid: &crate::session::Uid) {
        let (caller, uris) = self.sessions.end(uid);
        self.unwant(&uris, caller);
    }
}

impl Source for Push {
    /// The fan-out's series.
    fn collect(&self, out: &mut Encoder) {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut family = out.family(
            "mcp_edge_push_listeners",
            Kind::Gauge,
            "Clients listening for server push at this process: 2026-07-28 listen streams and legacy GET streams.",
        );
        for (era, kind) in [
            ("2026-07-28", Listener::Modern),
            ("legacy", Listener::Legacy),
        ] {
            family.sample(
                &[("era", era)],
                self.listeners[kind as usize].load(Ordering::Relaxed),
            );
        }
        let mut links: Vec<_> = self
            .links
            .lock()
            .expect("links")
            .iter()
            .map(|(id, l)| (id.clone(), l.acked.borrow().is_some()))
            .collect();
        links.sort();
        let mut family = out.family(
            "mcp_edge_push_upstream_streams",
            Kind::Gauge,
            "Listen streams this process holds open to each replica (acknowledged: 1).",
        );
        for (id, up) in links {
            family.sample(&[("replica", &id)], u8::from(up));
        }
        let c = &self.counts;
        out.counters(
            "mcp_edge_push_notifications_total",
            "Notifications: received from replicas, relayed to clients (one per client), dropped for clients that fell behind, and hints mcp-edge made (a replica joined, a stream re-opened).",
            "outcome",
            [
                ("received", &c.received),
                ("relayed", &c.relayed),
                ("dropped", &c.dropped),
                ("hint", &c.hints),
            ],
        );
        out.counter(
            "mcp_edge_push_upstream_opened_total",
            "Listen streams to replicas acknowledged (first opens, re-opens, filter changes).",
            load(&c.opened),
        );
        out.counter(
            "mcp_edge_push_upstream_broken_total",
            "Listen streams to replicas that ended or failed to open (each is opened again).",
            load(&c.broke),
        );
        out.gauge(
            "mcp_edge_push_resource_subscriptions",
            "Legacy sessions' resources/subscribe URIs this process knows.",
            self.sessions.subscriptions(),
        );
        let wanted = self.uris.lock().expect("uris").bytes;
        out.gauge(
            "mcp_edge_push_wanted_bytes",
            "Bytes of distinct URIs the upstream listens ask for (at most 262144).",
            wanted,
        );
        out.counter(
            "mcp_edge_push_subscriptions_refused_total",
            "Subscriptions and listens refused because the URIs every listen asks for would pass 262144 bytes.",
            load(&self.refused),
        );
    }
}

fn announces(replica: &Replica) -> bool {
    replica.is_modern() && replica.pushes()
}

/// The periodic job: links follow the replica set; expired sessions' subscriptions go.
pub struct Tick(pub Arc<Push>);

#[async_trait::async_trait]
impl Periodic for Tick {
    fn name(&self) -> &'static str {
        "push links"
    }
    fn every(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn tick(&self) {
        self.0.reconcile();
        for (caller, uris) in self.0.sessions.sweep(crate::session::unix_now()) {
            self.0.unwant(&uris, caller);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> Arc<Push> {
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            first_byte: Duration::from_secs(1),
            idle: Duration::from_secs(1),
        };
        let policy = crate::upstream::Policy {
            eject_after: 3,
            eject_backoff: Duration::from_secs(1),
            pass_after: 1,
            fail_after: 2,
        };
        let replicas = Arc::new(Replicas::discovered(policy));
        Push::new(BridgeMode::Off, replicas, timeouts, Default::default())
    }

    fn uris(prefix: &str, n: usize, len: usize) -> Vec<Uri> {
        (0..n)
            .map(|i| Uri::from(format!("{prefix}{i:0>len$}")))
            .collect()
    }

    #[test]
    fn a_caller_wants_at_most_its_share_and_all_of_them_at_most_the_union() {
        let push = push();
        let bytes = || push.uris.lock().unwrap().bytes;
        let one = Some([1u8; 17]);
        // Within a quarter: taken; a little more: refused, nothing counted.
        push.want(&uris("a", 60, 1000), one).unwrap();
        assert!(
            push.want(&uris("b", 6, 1000), one)
                .unwrap_err()
                .contains("one caller")
        );
        assert_eq!(bytes(), 60 * 1001);
        // The same URIs wanted again count for the caller, not for the union.
        push.unwant(&uris("a", 60, 1000), one);
        assert_eq!(bytes(), 0);
        assert!(push.uris.lock().unwrap().by_caller.is_empty());
        // Many callers fill the union, then anyone's new URI is refused; a peer's word (None)
        // is held to the union only.
        let full = (0..8u8)
            .find_map(|c| {
                push.want(&uris(&format!("c{c}-"), 64, 1000), Some([c + 10; 17]))
                    .err()
            })
            .expect("the union fills");
        assert!(full.contains("are taken"), "{full}");
        assert!(push.want(&uris("late-", 6, 1000), None).is_err());
        assert!(bytes() <= WANTED_BYTES);
        assert_eq!(push.refused.load(Ordering::Relaxed), 3);
    }
}
