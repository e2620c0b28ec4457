//! What is in flight right now, and who serves it: SSE streams open (overall and per legacy
//! session, against `--max-streams*`), client requests streaming from a replica (where a cancel
//! must go), and server→client requests waiting for the client's answer (where it must go).
//! A stream and its owner entry are held by guards, released however the request ends.
//!
//! A response becomes a stream only when the replica answers with `text/event-stream`, so the
//! stream limits apply then: the edge answers in its place (503 overall, 429 per session) and
//! closes the replica's connection, which is how a replica learns a request was abandoned.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use dashmap::DashMap;
use mcp_protocol::error::LIMITED;

use crate::{
    answer::Reply,
    budget::Caller,
    limits::Limits,
    session::ReplicaId,
    telemetry::registry::{Encoder, Source},
};

/// Where a JSON-RPC id is unique: a session, or else the client's connection. Turned into a
/// key only when a stream or an answer needs one (most requests never do).
#[derive(Clone, Copy, Default)]
pub enum Scope {
    #[default]
    Unknown,
    Session([u8; 16]),
    Client(std::net::SocketAddr),
}

impl Scope {
    pub fn key(&self) -> String {
        match self {
            Scope::Unknown => "c:".to_owned(),
            Scope::Session(uid) => format!("s:{}", hex::encode(uid)),
            Scope::Client(addr) => format!("c:{addr}"),
        }
    }
}

/// Most server→client requests awaiting the client's answer; past it, a new one is not
/// recorded (its answer then goes to any replica, which answers it as unknown).
pub const MAX_AWAITED: usize = 100_000;

/// How long a server→client request waits for the client's answer before it is forgotten.
pub const AWAIT_FOR: Duration = Duration::from_secs(600);

/// Who serves what right now, keyed by a scope (the session id, or the client connection when
/// there is no session) and a JSON-RPC id (raw JSON text). Both are bounded: an entry of
/// `streaming` lives as long as its stream (at most `--max-streams`); `asked` holds at most
/// [`MAX_AWAITED`] entries, each for at most [`AWAIT_FOR`].
#[derive(Default)]
pub struct Owners {
    /// Client requests whose response is an open SSE stream: where a cancel must go.
    streaming: DashMap<(Box<str>, Box<str>), ReplicaId>,
    /// Server→client requests seen on a stream: where the client's answer must go, and since
    /// when.
    asked: DashMap<(Box<str>, Box<str>), (ReplicaId, Instant)>,
    /// Server→client requests not recorded (the cap) or forgotten unanswered, so far.
    forgotten: AtomicU64,
}

impl Owners {
    pub fn streaming(&self, scope: &str, id: &str, replica: ReplicaId) {
        self.streaming.insert((scope.into(), id.into()), replica);
    }

    pub fn stream_done(&self, scope: &str, id: &str) {
        self.streaming
            .remove(&(Box::<str>::from(scope), Box::<str>::from(id)));
    }

    pub fn streaming_owner(&self, scope: &str, id: &str) -> Option<ReplicaId> {
        self.streaming
            .get(&(Box::<str>::from(scope), Box::<str>::from(id)))
            .map(|r| r.clone())
    }

    pub fn asked(&self, scope: &str, id: &str, replica: ReplicaId) {
        if self.asked.len() >= MAX_AWAITED {
            self.forgotten.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.asked
            .insert((scope.into(), id.into()), (replica, Instant::now()));
    }

    /// The replica waiting for the client's answer to request `id`; the entry is consumed.
    pub fn answer_owner(&self, scope: &str, id: &str) -> Option<ReplicaId> {
        self.asked
            .remove(&(Box::<str>::from(scope), Box::<str>::from(id)))
            .map(|(_, (r, _))| r)
    }

    /// Forget the server→client requests asked longer than `age` ago.
    pub fn sweep(&self, age: Duration) {
        let before = self.asked.len();
        self.asked.retain(|_, (_, at)| at.elapsed() <= age);
        let gone = before.saturating_sub(self.asked.len());
        self.forgotten.fetch_add(gone as u64, Ordering::Relaxed);
    }

    /// (streams owned, answers awaited, server→client requests forgotten so far).
    pub fn sizes(&self) -> (usize, usize, u64) {
        (
            self.streaming.len(),
            self.asked.len(),
            self.forgotten.load(Ordering::Relaxed),
        )
    }
}

/// Every minute, forgets the server→client requests unanswered for [`AWAIT_FOR`].
pub struct Sweep(pub Arc<Owners>);

#[async_trait::async_trait]
impl crate::ticker::Periodic for Sweep {
    fn name(&self) -> &'static str {
        "answer sweep"
    }
    fn every(&self) -> Duration {
        Duration::from_secs(60)
    }
    async fn tick(&self) {
        self.0.sweep(AWAIT_FOR);
    }
}

/// A client request streaming from a replica; dropping it ends the entry.
pub struct Streaming {
    owners: Arc<Owners>,
    scope: String,
    id: String,
}

impl Owners {
    /// Record that request `id` streams from `replica` until the guard is dropped.
    pub fn hold(self: &Arc<Self>, scope: String, id: &str, replica: ReplicaId) -> Streaming {
        self.streaming(&scope, id, replica);
        Streaming {
            owners: self.clone(),
            scope,
            id: id.to_owned(),
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.owners.stream_done(&self.scope, &self.id);
    }
}

/// SSE streams being relayed, overall and by session uid.
#[derive(Default)]
pub struct Streams {
    open: AtomicUsize,
    by_session: DashMap<[u8; 16], usize>,
    /// Streams each caller holds (`budget::caller`), for its share of `--max-streams`.
    by_caller: DashMap<Caller, usize>,
}

/// Count one more of `key`'s in `table` unless it holds `most` already (0: no limit).
fn take<K: std::hash::Hash + Eq>(table: &DashMap<K, usize>, key: K, most: usize) -> bool {
    let mut held = table.entry(key).or_insert(0);
    if most > 0 && *held >= most {
        return false;
    }
    *held += 1;
    true
}

/// Count one less of `key`'s in `table`.
fn give<K: std::hash::Hash + Eq>(table: &DashMap<K, usize>, key: &K) {
    table.remove_if_mut(key, |_, held| {
        *held = held.saturating_sub(1);
        *held == 0
    });
}

impl Streams {
    /// Count one more stream of `session` (a legacy session's uid) and `caller`, or refuse it.
    pub fn open(
        &self,
        limits: &Limits,
        session: Option<[u8; 16]>,
        caller: Option<Caller>,
    ) -> Result<(), Reply> {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if limits.max_streams > 0 && now > limits.max_streams {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Reply::error(
                503,
                LIMITED,
                format!(
                    "too many open streams at this proxy (limit {}); try again shortly",
                    limits.max_streams
                ),
            ));
        }
        if let Some(caller) = caller
            && !take(&self.by_caller, caller, limits.max_streams_per_caller)
        {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Reply::error(
                429,
                LIMITED,
                format!(
                    "this caller already holds {} open streams (its share of the proxy's)",
                    limits.max_streams_per_caller
                ),
            ));
        }
        if let Some(uid) = session
            && !take(&self.by_session, uid, limits.max_streams_per_session)
        {
            self.close(None, caller);
            return Err(Reply::error(
                429,
                LIMITED,
                format!(
                    "this session already holds {} open streams (the limit)",
                    limits.max_streams_per_session
                ),
            ));
        }
        Ok(())
    }

    pub fn close(&self, session: Option<[u8; 16]>, caller: Option<Caller>) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(uid) = session {
            give(&self.by_session, &uid);
        }
        if let Some(caller) = caller {
            give(&self.by_caller, &caller);
        }
    }

    pub fn open_now(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// One open stream, counted until dropped.
pub struct Stream {
    streams: Arc<Streams>,
    session: Option<[u8; 16]>,
    caller: Option<Caller>,
}

impl Streams {
    /// Count one more stream for as long as the guard lives, or refuse it.
    pub fn hold(
        self: &Arc<Self>,
        limits: &Limits,
        session: Option<[u8; 16]>,
        caller: Option<Caller>,
    ) -> Result<Stream, Reply> {
        self.open(limits, session, caller)?;
        Ok(Stream {
            streams: self.clone(),
            session,
            caller,
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.streams.close(self.session, self.caller);
    }
}

impl Source for Owners {
    fn collect(&self, out: &mut Encoder) {
        let (owned, awaited, forgotten) = self.sizes();
        out.gauge(
            "mcp_edge_streams_owned",
            "Client requests streaming from a replica, with the replica a cancel goes to (one per open stream).",
            owned,
        );
        out.gauge(
            "mcp_edge_answers_awaited",
            "Server-to-client requests waiting for the client's answer (at most 100000, each for at most 600 s).",
            awaited,
        );
        out.counter(
            "mcp_edge_answers_forgotten_total",
            "Server-to-client requests not recorded (the cap) or forgotten unanswered.",
            forgotten,
        );
    }
}

impl Source for Streams {
    fn collect(&self, out: &mut Encoder) {
        out.gauge(
            "mcp_edge_open_streams",
            "SSE responses being relayed now.",
            self.open_now(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_header_bytes: 200,
        max_headers: 3,
        max_streams: 3,
        max_streams_per_session: 2,
        max_streams_per_caller: 0,
    };

    #[test]
    fn owners_route_cancels_and_answers() {
        let owners = Owners::default();
        let r2: ReplicaId = "r2".into();
        owners.streaming("s", "7", r2.clone());
        assert_eq!(owners.streaming_owner("s", "7"), Some(r2.clone()));
        assert_eq!(owners.streaming_owner("other", "7"), None);
        owners.stream_done("s", "7");
        assert_eq!(owners.streaming_owner("s", "7"), None);
        owners.asked("s", "\"srv-1\"", r2.clone());
        assert_eq!(owners.answer_owner("s", "\"srv-1\""), Some(r2.clone()));
        assert_eq!(
            owners.answer_owner("s", "\"srv-1\""),
            None,
            "an answer is delivered once"
        );
        owners.asked("s", "1", r2.clone());
        owners.sweep(Duration::from_secs(60));
        assert_eq!(owners.sizes(), (0, 1, 0), "young enough to keep");
        owners.sweep(Duration::ZERO);
        assert_eq!(owners.sizes(), (0, 0, 1), "unanswered too long: forgotten");
    }

    #[test]
    fn streams_overall_and_per_session() {
        let s = Streams::default();
        let a = Some([1u8; 16]);
        assert!(s.open(&LIMITS, a, None).is_ok());
        assert!(s.open(&LIMITS, a, None).is_ok());
        assert_eq!(
            s.open(&LIMITS, a, None).unwrap_err().status,
            429,
            "the session's third"
        );
        assert!(s.open(&LIMITS, None, None).is_ok());
        assert_eq!(
            s.open(&LIMITS, None, None).unwrap_err().status,
            503,
            "the fourth overall"
        );
        s.close(a, None);
        assert!(s.open(&LIMITS, a, None).is_ok(), "room again after a close");
        s.close(a, None);
        s.close(a, None);
        s.close(None, None);
        assert_eq!(s.open_now(), 0);
        assert!(s.by_session.is_empty());
    }

    #[test]
    fn a_caller_holds_at_most_its_share_of_the_streams() {
        let s = Streams::default();
        let limits = Limits {
            max_streams_per_caller: 2,
            ..LIMITS
        };
        let (one, other) = (Some([1u8; 17]), Some([2u8; 17]));
        assert!(s.open(&limits, None, one).is_ok());
        assert!(s.open(&limits, Some([9; 16]), one).is_ok());
        assert_eq!(
            s.open(&limits, None, one).unwrap_err().status,
            429,
            "the caller's third"
        );
        assert!(
            s.open(&limits, None, other).is_ok(),
            "another caller has room"
        );
        assert_eq!(s.open_now(), 3);
        s.close(None, one);
        assert!(
            s.open(&limits, None, one).is_ok(),
            "room again after a close"
        );
        assert_eq!(s.open(&limits, None, other).unwrap_err().status, 503);
        assert_eq!(s.open_now(), 3, "a refusal takes nothing");
        assert_eq!(s.by_caller.get(&[2u8; 17]).map(|n| *n), Some(1));
    }

    #[test]
    fn guards_release_what_they_hold() {
        let owners = Arc::new(Owners::default());
        let held = owners.hold("s".into(), "7", "r1".into());
        assert_eq!(owners.streaming_owner("s", "7").as_deref(), Some("r1"));
        drop(held);
        assert_eq!(owners.streaming_owner("s", "7"), None);
        let streams = Arc::new(Streams::default());
        let a = streams.hold(&LIMITS, Some([1; 16]), None).unwrap();
        let _b = streams.hold(&LIMITS, Some([1; 16]), None).unwrap();
        assert_eq!(
            streams
                .hold(&LIMITS, Some([1; 16]), None)
                .err()
                .unwrap()
                .status,
            429
        );
        drop(a);
        assert_eq!(streams.open_now(), 1);
        assert!(
            streams.hold(&LIMITS, Some([1; 16]), None).is_ok(),
            "room again"
        );
    }
}
