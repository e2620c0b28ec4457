//! Legacy sessions: the sessions mcp-edge mints for legacy clients (stateless replicas never
//! mint one). A session lives in its sealed [`token`]; this process keeps only what cannot, each
//! in bounded memory: the sessions it ended ([`revoked`], until their tokens would have expired
//! anyway) and when each session it served was last used ([`idle`], for the idle timeout). Who
//! serves what right now is [`crate::inflight`]'s. Each caller starts sessions at a bounded rate
//! (`--session-rate-limit`): every session a client starts and abandons is remembered as ended
//! until its token expires, so one caller minting as fast as it can would otherwise fill the
//! table of ended sessions and fold it, ending everyone's sessions (see [`revoked`]).

pub mod idle;
pub mod peers;
pub mod profile;
pub mod revoked;
pub mod token;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rand::RngCore;

use crate::{
    budget::Caller,
    ratelimit::RateLimit,
    telemetry::registry::{Encoder, Source},
};
use idle::{Idle, IdleStats};
pub use profile::Profile;
use revoked::{Revoked, RevokedStats};
pub use token::{Claims, Key, Keys, Uid};

/// The 8 bytes of a uid the per-process tables keep (uids are random).
pub type Short = u64;

fn short(uid: &Uid) -> Short {
    Short::from_le_bytes(uid[..8].try_into().expect("a uid has 16 bytes"))
}

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
    /// What the client declared at `initialize` (empty for format-1 tokens).
    pub profile: Profile,
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

/// What the tables hold, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    pub idle: IdleStats,
    pub revoked: RevokedStats,
}

pub struct Sessions {
    keys: Keys,
    lifetime: Duration,
    revoked: Revoked,
    idle: Idle,
    /// `false` with `--session-format 1`: profiles are not sealed (a rollout over old releases).
    seal_profiles: bool,
    /// Sessions each caller may start (`None`: no limit).
    starts: Option<Arc<RateLimit>>,
}

impl Sessions {
    /// Sessions of `lifetime` that end after `idle` unused; each table holds at most `cap`.
    pub fn new(keys: Keys, lifetime: Duration, idle: Duration, cap: usize) -> Self {
        Self {
            keys,
            lifetime,
            revoked: Revoked::new(cap, lifetime),
            idle: Idle::new(cap, idle),
            seal_profiles: true,
            starts: None,
        }
    }

    /// Each caller starts sessions within `limit` (`None`: no limit).
    pub fn with_start_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.starts = limit.map(Arc::new);
        self
    }

    /// The start limit, for the periodic sweep that forgets callers whose bucket is full again
    /// (every 5 s, as the request rate limit's: so that new callers fill the table slowly and
    /// share its overflow bucket only under a flood of addresses).
    pub fn start_limit(&self) -> Option<Arc<RateLimit>> {
        self.starts.clone()
    }

    /// May `caller` start a session now? `Err`: how long until it may.
    pub fn may_start(&self, caller: Caller) -> Result<(), Duration> {
        match &self.starts {
            Some(starts) => starts.check(caller, Instant::now()),
            None => Ok(()),
        }
    }

    /// Seal format-1 tokens only (no client profile, so no bridging) while processes of a
    /// release that cannot open format 2 still serve the same sessions.
    pub fn without_profiles(mut self) -> Self {
        self.seal_profiles = false;
        self
    }

    /// Start a session: its token (visible ASCII, at most 256 characters) and its view.
    pub fn mint(
        &self,
        version: &str,
        owner: Option<Owner>,
        identity: &[u8],
        profile: Profile,
    ) -> Result<(String, SessionView), token::TooLong> {
        self.mint_at(unix_now(), version, owner, identity, profile)
    }

    /// [`Sessions::mint`] with a given issue time (tests, benchmarks).
    pub fn mint_at(
        &self,
        issued: u64,
        version: &str,
        owner: Option<Owner>,
        identity: &[u8],
        profile: Profile,
    ) -> Result<(String, SessionView), token::TooLong> {
        let mut uid = Uid::default();
        rand::rng().fill_bytes(&mut uid);
        let claims = Claims {
            uid,
            issued,
            version: version.to_owned(),
            identity: identity.to_vec(),
            // A session owned by a stateful replica is never bridged: its replica asks itself.
            profile: if self.seal_profiles && owner.is_none() {
                profile
            } else {
                Profile::default()
            },
            owner,
        };
        let token = self.keys.seal(&claims)?;
        let view = self.view(claims);
        // A fresh uid is never idle.
        let _ = self.idle.touch(short(&uid), view.expires);
        Ok((token, view))
    }

    fn view(&self, claims: Claims) -> SessionView {
        SessionView {
            uid: claims.uid,
            version: claims.version,
            owner: claims.owner,
            expires: claims.issued.saturating_add(self.lifetime.as_secs()),
            profile: claims.profile,
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
        let uid = short(&view.uid);
        if self.revoked.contains(uid, view.expires) {
            return Err(Closed::Revoked);
        }
        if self.idle.touch(uid, view.expires).is_err() {
            self.revoked.insert(uid, view.expires);
            return Err(Closed::Idle);
        }
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
        let uid = short(uid);
        self.idle.forget(uid);
        self.revoked.insert(uid, expires);
    }

    /// A peer's announcement: end the session sealed in `token`; its uid, `None` when it is
    /// not ours or already over.
    pub fn revoke_token(&self, token: &str) -> Option<Uid> {
        let (uid, expires) = self.for_peer(token)?;
        self.revoke(&uid, expires);
        Some(uid)
    }

    /// The session a peer's request names with `token`, and when it stops opening (Unix
    /// seconds): the checks of [`Sessions::open`] but the identity binding (the peer checked the
    /// caller's credential) and the idle clock. `None`: not ours, expired, or ended.
    pub fn for_peer(&self, token: &str) -> Option<(Uid, u64)> {
        let claims = self.keys.open(token)?;
        let now = unix_now();
        if claims.issued > now + CLOCK_SKEW {
            return None;
        }
        let view = self.view(claims);
        let ended = now >= view.expires || self.revoked.contains(short(&view.uid), view.expires);
        (!ended).then_some((view.uid, view.expires))
    }

    /// Drop what no longer matters: revocations of tokens that expired anyway, and idle
    /// sessions (which become revocations).
    pub fn sweep(&self) -> SessionStats {
        let now = unix_now();
        for (uid, expires) in self.idle.sweep(now) {
            self.revoked.insert(uid, expires);
        }
        self.revoked.sweep(now);
        self.stats()
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            idle: self.idle.stats(),
            revoked: self.revoked.stats(),
        }
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
        let stats = self.0.sweep();
        tracing::debug!(?stats, "sessions swept");
    }
}

impl Source for Sessions {
    fn collect(&self, out: &mut Encoder) {
        let SessionStats { idle, revoked } = self.stats();
        out.gauge(
            "mcp_edge_sessions_tracked",
            "Legacy sessions tracked for the idle timeout (at most --max-tracked-sessions).",
            idle.tracked,
        );
        out.counter(
            "mcp_edge_sessions_untracked_total",
            "Requests in legacy sessions served without idle tracking because the table was full.",
            idle.untracked,
        );
        out.gauge(
            "mcp_edge_session_revocations",
            "Ended sessions remembered until their tokens expire (at most --max-tracked-sessions).",
            revoked.held,
        );
        out.gauge(
            "mcp_edge_session_revocation_watermark_seconds",
            "Tokens expiring no later than this Unix time are refused: revocations past the cap were folded (0: never).",
            revoked.watermark,
        );
        out.counter(
            "mcp_edge_session_revocation_folds_total",
            "Times the revocations reached the cap and their earliest-expiring bucket was folded into the watermark.",
            revoked.folded,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn sessions(lifetime: u64, idle: u64) -> Sessions {
        Sessions::new(
            Keys::random(),
            Duration::from_secs(lifetime),
            Duration::from_secs(idle),
            1000,
        )
    }

    #[test]
    fn a_minted_session_opens_anywhere_with_the_key() {
        let key = [5u8; 32];
        let here = Sessions::new(
            Keys::new(&key, None),
            Duration::from_secs(60),
            Duration::from_secs(60),
            1000,
        );
        let owner = Owner {
            replica: "r2".into(),
            session_id: "theirs".into(),
        };
        let (token, view) = here
            .mint("2025-06-18", Some(owner.clone()), b"", Profile::default())
            .unwrap();
        assert_eq!(here.open(&token, b""), Ok(view.clone()));
        let elsewhere = Sessions::new(
            Keys::new(&key, None),
            Duration::from_secs(60),
            Duration::from_secs(60),
            1000,
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
        let (token, view) = s.mint("2025-03-26", None, b"", Profile::default()).unwrap();
        s.revoke(&view.uid, view.expires);
        assert_eq!(s.open(&token, b""), Err(Closed::Revoked));
        let (old, _) = s
            .mint_at(unix_now() - 61, "2025-03-26", None, b"", Profile::default())
            .unwrap();
        assert_eq!(s.open(&old, b""), Err(Closed::Expired), "past its lifetime");
        let (future, _) = s
            .mint_at(
                unix_now() + 3600,
                "2025-03-26",
                None,
                b"",
                Profile::default(),
            )
            .unwrap();
        assert_eq!(
            s.open(&future, b""),
            Err(Closed::Expired),
            "issued in the future"
        );
        let idle = Sessions::new(
            Keys::random(),
            Duration::from_secs(60),
            Duration::ZERO,
            1000,
        );
        let (token, _) = idle
            .mint("2025-03-26", None, b"", Profile::default())
            .unwrap();
        // Idle time is counted in whole seconds.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && idle.open(&token, b"") != Err(Closed::Idle) {}
        assert_eq!(
            idle.open(&token, b""),
            Err(Closed::Revoked),
            "an idle session stays ended"
        );
        let stats = idle.sweep();
        assert_eq!((stats.idle.tracked, stats.revoked.held), (0, 1));
    }

    #[test]
    fn a_deleted_session_stays_refused_after_the_cap_is_passed_many_times_over() {
        let s = sessions(3600, 3600);
        let (token, view) = s.mint("2025-06-18", None, b"", Profile::default()).unwrap();
        s.revoke(&view.uid, view.expires);
        for _ in 0..5000 {
            let (_, other) = s.mint("2025-06-18", None, b"", Profile::default()).unwrap();
            s.revoke(&other.uid, other.expires);
        }
        let stats = s.stats();
        assert!(stats.revoked.held <= 1000, "{stats:?}");
        assert_eq!(s.open(&token, b""), Err(Closed::Revoked));
        // The flood's revocations were folded: tokens expiring up to the last one are refused,
        // a session started a second later is not.
        let (fresh, _) = s
            .mint_at(unix_now() + 1, "2025-06-18", None, b"", Profile::default())
            .unwrap();
        assert!(s.open(&fresh, b"").is_ok(), "a new session still opens");
    }
}
