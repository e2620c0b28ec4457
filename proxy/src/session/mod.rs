//! Legacy sessions: the sessions mcp-edge mints for legacy clients (stateless replicas never
//! mint one). A session lives in its sealed [`token`]; this process keeps only what cannot: the
//! uids revoked by DELETE (until their tokens would have expired anyway) and when each session
//! it served was last used (the idle timeout). Who serves what right now is
//! [`crate::inflight`]'s.

pub mod peers;
pub mod token;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use dashmap::DashMap;
use rand::RngCore;

pub use token::{Claims, Key, Keys, Uid};

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
    pub uid: Uid,
    pub version: String,
    pub owner: Option<Owner>,
    /// When the token stops opening (Unix seconds).
    pub expires: u64,
}

/// What the request's `Mcp-Session-Id` header led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// No header.
    None,
    /// A header naming no live session (unknown, expired or ended).
    Unknown,
    Live(SessionView),
}

/// Why a token opened no session (for logs and metrics; the client sees 404 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Not sealed by our keys: tampered, truncated, foreign or not a token at all.
    Invalid,
    /// Past its absolute lifetime (or issued in the future beyond clock skew).
    Expired,
    /// Unused longer than the idle timeout.
    Idle,
    /// Ended by DELETE.
    Revoked,
    /// Opened with a credential other than the one that started it.
    OtherIdentity,
}

/// Clocks of different mcp-edge processes may differ this much.
const CLOCK_SKEW: u64 = 300;

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Seen {
    last_used: Instant,
    expires: u64,
}

pub struct Sessions {
    keys: Keys,
    lifetime: Duration,
    idle: Duration,
    /// uid → when its token expires anyway (Unix seconds).
    revoked: DashMap<Uid, u64>,
    seen: DashMap<Uid, Seen>,
}

impl Sessions {
    pub fn new(keys: Keys, lifetime: Duration, idle: Duration) -> Self {
        Self {
            keys,
            lifetime,
            idle,
            revoked: DashMap::new(),
            seen: DashMap::new(),
        }
    }

    /// Start a session: its token (visible ASCII, at most 256 characters) and its view.
    pub fn mint(
        &self,
        version: &str,
        owner: Option<Owner>,
        identity: &[u8],
    ) -> Result<(String, SessionView), token::TooLong> {
        self.mint_at(unix_now(), version, owner, identity)
    }

    /// [`Sessions::mint`] with a given issue time (tests, benchmarks).
    pub fn mint_at(
        &self,
        issued: u64,
        version: &str,
        owner: Option<Owner>,
        identity: &[u8],
    ) -> Result<(String, SessionView), token::TooLong> {
        let mut uid = Uid::default();
        rand::rng().fill_bytes(&mut uid);
        let claims = Claims {
            uid,
            issued,
            version: version.to_owned(),
            identity: identity.to_vec(),
            owner,
        };
        let token = self.keys.seal(&claims)?;
        let view = self.view(claims);
        self.seen.insert(
            uid,
            Seen {
                last_used: Instant::now(),
                expires: view.expires,
            },
        );
        Ok((token, view))
    }

    fn view(&self, claims: Claims) -> SessionView {
        SessionView {
            uid: claims.uid,
            version: claims.version,
            owner: claims.owner,
            expires: claims.issued.saturating_add(self.lifetime.as_secs()),
        }
    }

    /// The session a token names, refreshing its idle clock.
    pub fn open(&self, token: &str, identity: &[u8]) -> Result<SessionView, Closed> {
        let claims = self.keys.open(token).ok_or(Closed::Invalid)?;
        let now = unix_now();
        if claims.issued > now + CLOCK_SKEW {
            return Err(Closed::Expired);
        }
        if claims.identity != identity {
            return Err(Closed::OtherIdentity);
        }
        let view = self.view(claims);
        if now >= view.expires {
            return Err(Closed::Expired);
        }
        if self.revoked.contains_key(&view.uid) {
            return Err(Closed::Revoked);
        }
        let at = Instant::now();
        let mut seen = self.seen.entry(view.uid).or_insert(Seen {
            last_used: at,
            expires: view.expires,
        });
        if at.duration_since(seen.last_used) > self.idle {
            drop(seen);
            self.revoke(&view.uid, view.expires);
            return Err(Closed::Idle);
        }
        seen.last_used = at;
        Ok(view)
    }

    /// What a request's token leads to, and whether it named a session past its lifetime or
    /// idle timeout (counted in metrics).
    pub fn state(&self, token: Option<&str>, identity: &[u8]) -> (SessionState, bool) {
        let Some(token) = token else {
            return (SessionState::None, false);
        };
        match self.open(token, identity) {
            Ok(view) => (SessionState::Live(view), false),
            Err(why) => {
                tracing::debug!(?why, "session token refused");
                (
                    SessionState::Unknown,
                    matches!(why, Closed::Expired | Closed::Idle),
                )
            }
        }
    }

    /// End a session here (DELETE, or an idle timeout): its token no longer opens on this process.
    pub fn revoke(&self, uid: &Uid, expires: u64) {
        self.seen.remove(uid);
        self.revoked.insert(*uid, expires);
    }

    /// A peer's announcement: end the session sealed in `token`; `false` when it is not ours.
    pub fn revoke_token(&self, token: &str) -> bool {
        let Some(claims) = self.keys.open(token) else {
            return false;
        };
        let view = self.view(claims);
        self.revoke(&view.uid, view.expires);
        true
    }

    /// Drop what no longer matters: revocations of tokens that expired anyway, and idle
    /// sessions (which become revocations). Returns (sessions seen, revocations held).
    pub fn sweep(&self) -> (usize, usize) {
        let now = unix_now();
        let at = Instant::now();
        let mut idle = Vec::new();
        self.seen.retain(|uid, seen| {
            let keep = now < seen.expires && at.duration_since(seen.last_used) <= self.idle;
            if !keep && now < seen.expires {
                idle.push((*uid, seen.expires));
            }
            keep
        });
        for (uid, expires) in idle {
            self.revoked.insert(uid, expires);
        }
        self.revoked.retain(|_, expires| now < *expires);
        (self.seen.len(), self.revoked.len())
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

/// Every 30 s, forgets what [`Sessions::sweep`] may drop.
pub struct Sweep(pub Arc<Sessions>);

#[async_trait::async_trait]
impl crate::ticker::Periodic for Sweep {
    fn name(&self) -> &'static str {
        "session sweep"
    }
    fn every(&self) -> Duration {
        Duration::from_secs(30)
    }
    async fn tick(&self) {
        let (seen, revoked) = self.0.sweep();
        tracing::debug!(seen, revoked, "sessions swept");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(lifetime: u64, idle: u64) -> Sessions {
        Sessions::new(
            Keys::random(),
            Duration::from_secs(lifetime),
            Duration::from_secs(idle),
        )
    }

    #[test]
    fn a_minted_session_opens_anywhere_with_the_key() {
        let key = [5u8; 32];
        let here = Sessions::new(
            Keys::new(&key, None),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let owner = Owner {
            replica: "r2".into(),
            session_id: "theirs".into(),
        };
        let (token, view) = here.mint("2025-06-18", Some(owner.clone()), b"").unwrap();
        assert_eq!(here.open(&token, b""), Ok(view.clone()));
        let elsewhere = Sessions::new(
            Keys::new(&key, None),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let opened = elsewhere.open(&token, b"").unwrap();
        assert_eq!(
            (opened.version.as_str(), opened.owner),
            ("2025-06-18", Some(owner))
        );
        assert_eq!(
            sessions(60, 60).open(&token, b""),
            Err(Closed::Invalid),
            "another key"
        );
        assert_eq!(
            here.open(&token, b"someone else"),
            Err(Closed::OtherIdentity)
        );
    }

    #[test]
    fn revoked_expired_and_idle_sessions_are_gone() {
        let s = sessions(60, 60);
        let (token, view) = s.mint("2025-03-26", None, b"").unwrap();
        s.revoke(&view.uid, view.expires);
        assert_eq!(s.open(&token, b""), Err(Closed::Revoked));
        let (old, _) = s.mint_at(unix_now() - 61, "2025-03-26", None, b"").unwrap();
        assert_eq!(s.open(&old, b""), Err(Closed::Expired), "past its lifetime");
        let (future, _) = s
            .mint_at(unix_now() + 3600, "2025-03-26", None, b"")
            .unwrap();
        assert_eq!(
            s.open(&future, b""),
            Err(Closed::Expired),
            "issued in the future"
        );
        let idle = Sessions::new(Keys::random(), Duration::from_secs(60), Duration::ZERO);
        let (token, _) = idle.mint("2025-03-26", None, b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && idle.open(&token, b"") != Err(Closed::Idle) {}
        assert_eq!(
            idle.open(&token, b""),
            Err(Closed::Revoked),
            "an idle session stays ended"
        );
        assert_eq!(idle.sweep(), (0, 1));
    }
}
