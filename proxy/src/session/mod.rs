//! Legacy sessions and the small live state that stickiness needs.
//!
//! [`Sessions`]: the session ids mcp-edge mints for legacy clients (stateless replicas never
//! mint one), with the negotiated protocol version, lifetimes, and — when a replica minted its
//! own id — that replica and id. [`Owners`]: who is serving what right now (requests streaming
//! over SSE, server→client requests waiting for the client's answer, resumable streams).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use dashmap::DashMap;
use rand::RngCore;

/// A replica, as routing refers to it.
pub type ReplicaId = Arc<str>;

/// A replica that minted its own session id and therefore owns the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub replica: ReplicaId,
    pub session_id: String,
}

/// What the proxy knows about one live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub version: String,
    pub owner: Option<Owner>,
}

#[derive(Debug)]
struct Entry {
    view: SessionView,
    created: Instant,
    last_used: Instant,
}

pub struct Sessions {
    live: DashMap<Box<str>, Entry>,
    lifetime: Duration,
    idle: Duration,
}

impl Sessions {
    pub fn new(lifetime: Duration, idle: Duration) -> Self {
        Self { live: DashMap::new(), lifetime, idle }
    }

    /// Mint an unguessable id (256 random bits, hex: visible ASCII) for a new session.
    pub fn mint(&self, version: &str, owner: Option<Owner>) -> String {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let now = Instant::now();
        self.live.insert(
            id.clone().into_boxed_str(),
            Entry { view: SessionView { version: version.to_owned(), owner }, created: now, last_used: now },
        );
        id
    }

    /// The live session `id`, refreshing its idle clock; `None` when unknown, ended or expired.
    pub fn open(&self, id: &str) -> Option<SessionView> {
        let now = Instant::now();
        let mut entry = self.live.get_mut(id)?;
        if now.duration_since(entry.created) > self.lifetime || now.duration_since(entry.last_used) > self.idle {
            drop(entry);
            self.live.remove(id);
            return None;
        }
        entry.last_used = now;
        Some(entry.view.clone())
    }

    /// Record the version the replica actually negotiated (read from the initialize result).
    pub fn set_version(&self, id: &str, version: &str) {
        if let Some(mut entry) = self.live.get_mut(id) {
            entry.view.version = version.to_owned();
        }
    }

    /// End a session (DELETE); `false` when it was not live.
    pub fn end(&self, id: &str) -> bool {
        self.live.remove(id).is_some()
    }

    /// Drop expired entries; returns how many remain. Called periodically.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        self.live.retain(|_, e| now.duration_since(e.created) <= self.lifetime && now.duration_since(e.last_used) <= self.idle);
        self.live.len()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// Who serves what right now, keyed by a scope (the session id, or the client connection when
/// there is no session) and a JSON-RPC id (raw JSON text).
#[derive(Default)]
pub struct Owners {
    /// Client requests whose response is an open SSE stream: where a cancel must go.
    streaming: DashMap<(Box<str>, Box<str>), ReplicaId>,
    /// Server→client requests seen on a stream: where the client's answer must go.
    asked: DashMap<(Box<str>, Box<str>), ReplicaId>,
}

impl Owners {
    pub fn streaming(&self, scope: &str, id: &str, replica: ReplicaId) {
        self.streaming.insert((scope.into(), id.into()), replica);
    }

    pub fn stream_done(&self, scope: &str, id: &str) {
        self.streaming.remove(&(Box::<str>::from(scope), Box::<str>::from(id)));
    }

    pub fn streaming_owner(&self, scope: &str, id: &str) -> Option<ReplicaId> {
        self.streaming.get(&(Box::<str>::from(scope), Box::<str>::from(id))).map(|r| r.clone())
    }

    pub fn asked(&self, scope: &str, id: &str, replica: ReplicaId) {
        self.asked.insert((scope.into(), id.into()), replica);
    }

    /// The replica waiting for the client's answer to request `id`; the entry is consumed.
    pub fn answer_owner(&self, scope: &str, id: &str) -> Option<ReplicaId> {
        self.asked.remove(&(Box::<str>::from(scope), Box::<str>::from(id))).map(|(_, r)| r)
    }

    pub fn in_flight(&self) -> usize {
        self.streaming.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_unguessable_visible_ascii() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let a = sessions.mint("2025-06-18", None);
        let b = sessions.mint("2025-06-18", None);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| (0x21..=0x7e).contains(&c)));
        assert_eq!(sessions.open(&a).unwrap().version, "2025-06-18");
    }

    #[test]
    fn ended_and_expired_sessions_are_gone() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let id = sessions.mint("2025-03-26", None);
        sessions.set_version(&id, "2025-11-25");
        assert_eq!(sessions.open(&id).unwrap().version, "2025-11-25");
        assert!(sessions.end(&id));
        assert!(sessions.open(&id).is_none());
        assert!(!sessions.end(&id));
        let short = Sessions::new(Duration::ZERO, Duration::from_secs(60));
        let id = short.mint("2025-03-26", None);
        assert!(short.open(&id).is_none(), "past its lifetime");
        assert_eq!(short.sweep(), 0);
        assert!(sessions.open("not-a-session").is_none());
    }

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
        assert_eq!(owners.answer_owner("s", "\"srv-1\""), Some(r2));
        assert_eq!(owners.answer_owner("s", "\"srv-1\""), None, "an answer is delivered once");
    }
}
