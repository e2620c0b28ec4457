//! Freed memory handed back to the system once a worker thread goes quiet.
//!
//! mimalloc frees lazily: the pages a thread freed are collected, and their memory returned,
//! during that thread's later allocations. A worker thread that served a burst and then sits
//! idle kept its peak resident: `benches/abuse` measured RSS 15 → 30 MiB after 200 clients
//! sending oversized heads for a minute, and still 30 MiB a minute after they stopped. Each
//! worker thread's accept loop therefore collects its thread's heap every [`EVERY`], without
//! forcing: mimalloc keeps a few free pages per size class and honours its purge delay, so
//! under load nothing the thread is about to reuse goes back (a forced collection also visits
//! full pages and purges every arena at once, on the thread's runtime; it returned 0.4 MiB more
//! in the measurement above). With `--work-stealing` the accept tasks may run on any worker, so
//! some workers may go uncollected.
//!
//! The other long-lived threads collect the same way: the admin listener's thread (peers'
//! requests, scrapes) and the bundled replicas' worker run [`tidy`] beside their work, and the
//! ticker's thread (health checks, discovery, sweeps) runs [`Tidy`] as one more periodic job. mimalloc collects only the
//! calling thread's heap, so each thread that allocates must do it itself.

use std::time::Duration;

use async_trait::async_trait;

use crate::ticker::Periodic;

/// How often each worker thread collects.
pub const EVERY: Duration = Duration::from_secs(5);

/// Collect this thread's heap: pages whose blocks are all free go back to the arenas, and
/// arena memory free for longer than mimalloc's purge delay goes back to the system.
pub fn collect() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect has no preconditions; it releases only memory no block is in.
    unsafe {
        libmimalloc_sys::mi_collect(false);
    }
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
