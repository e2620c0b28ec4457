//! Freed memory handed back to the system once a worker thread goes quiet.
//!
//! mimalloc frees lazily: the pages a thread freed are collected, and their memory returned,
//! during that thread's later allocations. A worker thread that served a burst and then sits
//! idle kept its peak resident: `benches/abuse` measured RSS 15 → 30 MiB after 200 clients
//! sending oversized heads for a minute, and still 30 MiB a minute after they stopped. Each
//! worker thread's accept loop therefore collects its thread's heap every [`EVERY`] (a
//! collection with nothing to collect costs a few microseconds; under load it returns nothing
//! the thread is about to reuse, as mimalloc retains a few free pages per size class).

use std::time::Duration;

/// How often each worker thread collects.
pub const EVERY: Duration = Duration::from_secs(5);

/// Collect this thread's heap: pages whose blocks are all free go back to the arenas, and
/// arena memory free for mimalloc's purge delay goes back to the system.
pub fn collect() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect only walks and releases the calling thread's own free memory.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
