//! The sessions this process ended (DELETE, idle timeout, a peer's announcement), held until
//! their tokens would have expired anyway, in bounded memory.
//!
//! Each revocation is 8 bytes of its uid (uids are random: a false match needs 2⁶⁴ tries),
//! kept in the bucket of the time its token expires; a bucket spans 1/256 of the session
//! lifetime and goes when its last token has expired. Past the cap, the bucket of the tokens
//! nearest their end is folded into a watermark, the latest expiry it held: every token
//! expiring no later is refused, as if revoked. A revoked token is never accepted again; the
//! cost of the bound is that sessions end early (404, and the client initializes anew), those
//! nearest their end first. Under a flood of more revocations than the cap within one bucket's
//! span, every bucket is folded, the newest last: every live session ends (404), not only
//! those started in that span; sessions started after the fold are unaffected. A caller starts
//! at most `--session-rate-limit` sessions a second (50): at the defaults (a million entries,
//! a bucket spans 337 s of a 24 h lifetime) one caller adds at most ~17 000 to a bucket, so a
//! fold takes some 60 callers at their full rate at once.
//! Lookups take a read lock, and none while nothing was ever revoked.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use super::Short;

/// Buckets over one lifetime.
const BUCKETS_PER_LIFETIME: u64 = 256;

/// What a scrape shows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RevokedStats {
    /// Revocations held.
    pub held: usize,
    /// Tokens expiring no later (Unix seconds) are refused: 0 while the cap was never reached.
    pub watermark: u64,
    /// Buckets folded into the watermark so far.
    pub folded: u64,
}

#[derive(Default)]
struct Bucket {
    uids: HashSet<Short, foldhash::fast::RandomState>,
    /// The latest expiry among them.
    latest: u64,
}

#[derive(Default)]
struct Inner {
    /// Bucket number (expiry / width) → the revoked uids whose tokens expire in it.
    buckets: BTreeMap<u64, Bucket>,
    held: usize,
    watermark: u64,
    folded: u64,
}

pub struct Revoked {
    cap: usize,
    /// Seconds of expiry time one bucket covers.
    width: u64,
    /// Whether anything was ever revoked (lookups skip the lock until then).
    used: AtomicBool,
    inner: RwLock<Inner>,
}

impl Revoked {
    /// At most `cap` revocations (at least one) for sessions of `lifetime`.
    pub fn new(cap: usize, lifetime: Duration) -> Self {
        Self {
            cap: cap.max(1),
            width: (lifetime.as_secs() / BUCKETS_PER_LIFETIME).max(1),
            used: AtomicBool::new(false),
            inner: RwLock::default(),
        }
    }

    /// Whether the token of `uid`, expiring at `expires`, was revoked (or falls under the
    /// watermark).
    pub fn contains(&self, uid: Short, expires: u64) -> bool {
        if !self.used.load(Ordering::Acquire) {
            return false;
        }
        let inner = self.inner.read().expect("not poisoned");
        expires <= inner.watermark
            || inner
                .buckets
                .get(&(expires / self.width))
                .is_some_and(|b| b.uids.contains(&uid))
    }

    /// Revoke the token of `uid`, expiring at `expires`.
    pub fn insert(&self, uid: Short, expires: u64) {
        let mut inner = self.inner.write().expect("not poisoned");
        self.used.store(true, Ordering::Release);
        if expires <= inner.watermark {
            return;
        }
        let bucket = inner.buckets.entry(expires / self.width).or_default();
        bucket.latest = bucket.latest.max(expires);
        if bucket.uids.insert(uid) {
            inner.held += 1;
        }
        while inner.held > self.cap {
            let Some((_, bucket)) = inner.buckets.pop_first() else {
                break;
            };
            inner.held -= bucket.uids.len();
            inner.watermark = bucket.latest;
            inner.folded += 1;
            tracing::warn!(
                watermark = inner.watermark,
                "revocations reached --max-tracked-sessions: tokens expiring before the watermark are refused"
            );
        }
    }

    /// Forget the buckets whose tokens have all expired by `now` (Unix seconds).
    pub fn sweep(&self, now: u64) {
        let mut inner = self.inner.write().expect("not poisoned");
        let live = now / self.width;
        while let Some(entry) = inner.buckets.first_entry() {
            if *entry.key() >= live {
                break;
            }
            let gone = entry.remove().uids.len();
            inner.held -= gone;
        }
    }

    pub fn stats(&self) -> RevokedStats {
        let inner = self.inner.read().expect("not poisoned");
        RevokedStats {
            held: inner.held,
            watermark: inner.watermark,
            folded: inner.folded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: u64) -> Short {
        n
    }

    #[test]
    fn a_revoked_uid_is_found_until_its_bucket_expires() {
        let r = Revoked::new(10, Duration::from_secs(2560));
        assert!(!r.contains(uid(1), 1000), "nothing revoked yet");
        r.insert(uid(1), 1000);
        assert!(r.contains(uid(1), 1000));
        assert!(!r.contains(uid(2), 1000), "another uid");
        r.insert(uid(1), 1000);
        assert_eq!(r.stats().held, 1, "revoking twice holds one");
        r.sweep(1009);
        assert!(
            r.contains(uid(1), 1000),
            "the bucket 1000..1010 is still live"
        );
        r.sweep(1010);
        assert_eq!(r.stats().held, 0);
    }

    #[test]
    fn past_the_cap_the_earliest_tokens_fall_under_the_watermark_and_none_reopens() {
        // Width 10 s: expiries 100, 110, 120 … each in a bucket of their own.
        let r = Revoked::new(3, Duration::from_secs(2560));
        for n in 0..3 {
            r.insert(uid(n), 100 + 10 * n);
        }
        assert_eq!(r.stats().watermark, 0);
        r.insert(uid(3), 130);
        let stats = r.stats();
        assert_eq!((stats.held, stats.watermark, stats.folded), (3, 100, 1));
        for n in 0..4 {
            assert!(
                r.contains(uid(n), 100 + 10 * n),
                "revocation {n} still refused"
            );
        }
        assert!(
            r.contains(uid(99), 99),
            "an unrevoked token expiring before the watermark is refused too"
        );
        assert!(!r.contains(uid(99), 101));
        r.insert(uid(50), 100);
        assert_eq!(r.stats().held, 3, "at the watermark nothing is stored");
    }
}
