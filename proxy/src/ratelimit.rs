//! Rate limiting: a token bucket per caller ([`crate::budget::caller`]: the bearer credential
//! when authentication is on, else the client's IP address, an IPv6 /64). `rate` a second on
//! average, up to `burst` at once; past it the client is answered 429 with `Retry-After`
//! ([`limited`]) and nothing reaches a replica. Two limits use it: requests (`--rate-limit`)
//! and legacy sessions started (`--session-rate-limit`).
//!
//! Buckets that have refilled completely carry no information and are dropped by a sweep, so
//! memory follows the callers active in the last `burst / rate` seconds (and is capped).

use std::time::{Duration, Instant};

use dashmap::DashMap;
use mcp_protocol::error::LIMITED;

use crate::{
    answer::Reply,
    budget::Caller,
    telemetry::registry::{Encoder, Source},
};

/// Most callers tracked at once; beyond it, unknown callers share one bucket (so a flood of
/// new addresses cannot grow memory without bound).
const MAX_CALLERS: usize = 100_000;

/// The bucket callers past [`MAX_CALLERS`] share (no caller key has this tag).
const OVERFLOW: Caller = [0xff; 17];

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: DashMap<Caller, Bucket>,
}

impl RateLimit {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: f64, burst: u32) -> Option<Self> {
        (rate > 0.0).then(|| Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: DashMap::new(),
        })
    }

    /// Take a token for `caller` at `now`: `Err(wait)` when none is left, with how long until one is.
    pub fn check(&self, caller: Caller, now: Instant) -> Result<(), Duration> {
        let caller = if self.buckets.len() >= MAX_CALLERS && !self.buckets.contains_key(&caller) {
            OVERFLOW
        } else {
            caller
        };
        let mut bucket = self.buckets.entry(caller).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Drop buckets that are full again by `now`.
    pub fn sweep(&self, now: Instant) {
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.rate < self.burst
        });
    }

    pub fn callers(&self) -> usize {
        self.buckets.len()
    }
}

/// The 429 for a caller past a limit: `what` was exceeded; `wait` until a token is back.
pub fn limited(what: &str, wait: Duration) -> Reply {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    Reply::error(
        429,
        LIMITED,
        format!("{what} exceeded; retry in {seconds} s"),
    )
    .with_header("retry-after", seconds.to_string())
}

/// Drops refilled buckets every few seconds.
pub struct Sweep(pub std::sync::Arc<RateLimit>);

#[async_trait::async_trait]
impl crate::ticker::Periodic for Sweep {
    fn name(&self) -> &'static str {
        "rate limit sweep"
    }
    fn every(&self) -> Duration {
        Duration::from_secs(5)
    }
    async fn tick(&self) {
        self.0.sweep(Instant::now());
    }
}

impl Source for RateLimit {
    fn collect(&self, out: &mut Encoder) {
        out.gauge(
            "mcp_edge_rate_limit_callers",
            "Callers the rate limit tracks (at most 100000; past it, new callers share one bucket).",
            self.callers(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limit = RateLimit::new(10.0, 3).unwrap();
        let ip = |s: &str| Some(s.parse().unwrap());
        let caller = crate::budget::caller(None, ip("127.0.0.1"));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.check(caller, t0), Ok(()));
        }
        let wait = limit.check(caller, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another caller has its own bucket.
        assert_eq!(
            limit.check(crate::budget::caller(None, ip("127.0.0.2")), t0),
            Ok(())
        );
        // One token back after 1/rate.
        assert_eq!(limit.check(caller, t0 + Duration::from_millis(100)), Ok(()));
        assert!(
            limit
                .check(caller, t0 + Duration::from_millis(100))
                .is_err()
        );
        // Full again after burst/rate: swept.
        limit.sweep(t0 + Duration::from_secs(1));
        assert_eq!(limit.callers(), 0);
        assert!(RateLimit::new(0.0, 10).is_none(), "rate 0 is no limit");
    }
}
