//! When each session this process serves was last used, for the idle timeout, for at most
//! `--max-tracked-sessions` sessions.
//!
//! An entry is 16 bytes (8 of the uid, the last use in seconds since the process started, the
//! token's expiry). A session the table has no room for is served untracked: its lifetime
//! still holds, its idle timeout does not until a sweep makes room and its next request is
//! tracked again. Refusing it instead would let a client that opens sessions by the million
//! end everyone else's.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use dashmap::{DashMap, mapref::entry::Entry};

use super::Short;

struct Seen {
    /// Seconds since [`Idle::epoch`].
    last_used: u32,
    /// Unix seconds (u32 lasts until 2106).
    expires: u32,
}

/// What a scrape shows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IdleStats {
    pub tracked: usize,
    /// Requests of sessions served without idle tracking because the table was full, so far.
    pub untracked: u64,
}

pub struct Idle {
    cap: usize,
    timeout: u32,
    epoch: Instant,
    len: AtomicUsize,
    untracked: AtomicU64,
    seen: DashMap<Short, Seen, foldhash::fast::RandomState>,
}

/// A session unused longer than the idle timeout.
#[derive(Debug, PartialEq, Eq)]
pub struct WentIdle;

impl Idle {
    pub fn new(cap: usize, timeout: Duration) -> Self {
        Self {
            cap,
            timeout: u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX),
            epoch: Instant::now(),
            len: AtomicUsize::new(0),
            untracked: AtomicU64::new(0),
            seen: DashMap::default(),
        }
    }

    fn now(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// A session used now: tracked from here when there is room; `WentIdle` (and forgotten)
    /// when its last use is older than the timeout.
    pub fn touch(&self, uid: Short, expires: u64) -> Result<(), WentIdle> {
        let now = self.now();
        match self.seen.entry(uid) {
            Entry::Occupied(mut seen) => {
                if now.saturating_sub(seen.get().last_used) > self.timeout {
                    seen.remove();
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    return Err(WentIdle);
                }
                seen.get_mut().last_used = now;
            }
            Entry::Vacant(vacant) => {
                // Reserve a place first, so that racing inserts cannot pass the cap.
                if self.len.fetch_add(1, Ordering::Relaxed) >= self.cap {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    self.untracked.fetch_add(1, Ordering::Relaxed);
                } else {
                    vacant.insert(Seen {
                        last_used: now,
                        expires: u32::try_from(expires).unwrap_or(u32::MAX),
                    });
                }
            }
        }
        Ok(())
    }

    /// Stop tracking a session (it was revoked).
    pub fn forget(&self, uid: Short) {
        if self.seen.remove(&uid).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drop the sessions past their lifetime (Unix seconds `now`) and return those gone idle,
    /// with their expiry, to be revoked.
    pub fn sweep(&self, now: u64) -> Vec<(Short, u64)> {
        let at = self.now();
        let mut idle = Vec::new();
        self.seen.retain(|uid, seen| {
            let expires = u64::from(seen.expires);
            let keep = now < expires && at.saturating_sub(seen.last_used) <= self.timeout;
            if !keep {
                self.len.fetch_sub(1, Ordering::Relaxed);
                if now < expires {
                    idle.push((*uid, expires));
                }
            }
            keep
        });
        idle
    }

    pub fn stats(&self) -> IdleStats {
        IdleStats {
            tracked: self.len.load(Ordering::Relaxed),
            untracked: self.untracked.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_sessions_are_served_untracked_until_a_sweep_makes_room() {
        let idle = Idle::new(2, Duration::from_secs(60));
        for uid in 1..=3 {
            assert_eq!(idle.touch(uid, 1000), Ok(()));
        }
        assert_eq!(
            idle.stats(),
            IdleStats {
                tracked: 2,
                untracked: 1
            }
        );
        assert_eq!(
            idle.sweep(1000),
            vec![],
            "past their lifetime: dropped, not revoked"
        );
        assert_eq!(idle.stats().tracked, 0);
        assert_eq!(idle.touch(3, 2000), Ok(()));
        assert_eq!(idle.stats().tracked, 1, "tracked once there is room");
        idle.forget(3);
        assert_eq!(idle.stats().tracked, 0);
    }
}
