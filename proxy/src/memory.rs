//! Freed memory handed back to the system once a worker thread goes quiet.
//!
//! mimalloc frees lazily: the pages a thread freed are collected, and their memory returned,
//! during that thread's later allocations. A worker thread that served a burst and then sits
//! idle kept its peak resident: `benches/abuse` measured RSS 15 → 30 MiB after 200 clients
//! sending oversized heads for a minute, and still 30 MiB a minute after they stopped. Each
//! worker thread's accept loop therefore collects its thread's heap every [`EVERY`]:
//!
//! | the thread since the last collection | collection | why |
//! |---|---|---|
//! | served requests ([`served`]) | normal: empty pages back to their segments | under load nothing the thread is about to reuse goes back; the freed spans of a segment are purged by the thread's own later allocations in it, once mimalloc's purge delay has passed |
//! | served none, for the first time since it last did | forced: spans freed in live segments purged now, every arena's expired purges done | a quiet thread makes no allocation that would purge them: without it, what a burst freed stayed resident (the forced collection is what `mi_collect(false)` leaves out) |
//! | served none, again | normal | nothing new to give back |
//!
//! "Served" counts the requests a thread began (their heads refused included), not the work
//! still in flight: a thread whose whole load is long streams counts as quiet and gets its one
//! forced collection while they run (a heap visit, no harm beyond its cost). With
//! `--work-stealing` the accept tasks may run on any worker, so some workers may go uncollected
//! and the counts are a guide only.
//!
//! The other long-lived threads collect the same way: the admin listener's thread (peers'
//! requests, scrapes; each connection counts as served) and the bundled replicas' worker run
//! [`tidy`] beside their work, and the ticker's thread (health checks, discovery, sweeps) runs
//! [`Tidy`] as one more periodic job (those two never count as served: one forced collection,
//! then normal ones). mimalloc collects only the
//! calling thread's heap, so each thread that allocates must do it itself.

use std::{cell::Cell, time::Duration};

use async_trait::async_trait;

use crate::ticker::Periodic;

/// How often each worker thread collects.
pub const EVERY: Duration = Duration::from_secs(5);

thread_local! {
    /// Requests this thread began serving, ever.
    static SERVED: Cell<u64> = const { Cell::new(0) };
    /// [`SERVED`] at the last collection, and whether the thread was quiet since a forced one.
    static SEEN: Cell<(u64, bool)> = const { Cell::new((0, false)) };
}

/// This thread began serving a request (the collection's measure of quiet).
pub fn served() {
    SERVED.with(|n| n.set(n.get().wrapping_add(1)));
}

/// Collect this thread's heap (the module's table): pages whose blocks are all free go back
/// to the arenas; on the first collection of a quiet spell, the memory they held goes back to
/// the system too.
pub fn collect() {
    let (force, seen) = plan(SERVED.with(Cell::get), SEEN.with(Cell::get));
    SEEN.with(|s| s.set(seen));
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect has no preconditions; it releases only memory no block is in.
    unsafe {
        libmimalloc_sys::mi_collect(force);
    }
    #[cfg(not(feature = "mimalloc"))]
    let _ = force;
}

/// The module's table: whether a collection at `served` requests forces, given what the last
/// one saw (its count, and whether the thread had been quiet); and what this one saw.
fn plan(served: u64, (seen, was_quiet): (u64, bool)) -> (bool, (u64, bool)) {
    let quiet = served == seen;
    (quiet && !was_quiet, (served, quiet))
}

/// Collect this thread's heap every [`EVERY`], forever: spawned beside a current-thread
/// runtime's server, it runs on that thread.
pub async fn tidy() {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        collect();
    }
}

/// The ticker's job: collect the heap of the thread the periodic jobs run on.
pub struct Tidy;

#[async_trait]
impl Periodic for Tidy {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn every(&self) -> Duration {
        EVERY
    }

    async fn tick(&self) {
        collect();
    }
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn a_thread_forces_one_collection_when_it_goes_quiet_and_none_while_it_serves() {
        let mut seen = (0, false);
        let mut forced = Vec::new();
        // Served 5, 9, then nothing for three collections, then 12, then nothing again.
        for served in [5, 9, 9, 9, 9, 12, 12, 12] {
            let (force, now) = plan(served, seen);
            forced.push(force);
            seen = now;
        }
        assert_eq!(
            forced,
            [false, false, true, false, false, false, true, false]
        );
    }
}
