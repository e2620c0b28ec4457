//! Shutdown that waits for work, not for the clock: the client connections with a request in
//! progress are counted, so that after SIGTERM the process exits as soon as the last request
//! and stream are done, and waits the grace period only when something is still running.
//!
//! A connection counts from the moment it waits for a request's headers until its answer is
//! written. (An HTTP/2 connection keeps a `Drain` of its own, over its streams' tasks:
//! `downstream::h2`.) At shutdown the connections that wait for headers are ended ([`crate::downstream`]), so
//! what remains counted is real work: requests being answered and SSE streams being relayed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::Notify;

/// The count of busy client connections, and a wake-up when it falls to zero.
#[derive(Default)]
pub struct Drain {
    busy: AtomicUsize,
    idle: Notify,
}

/// One busy connection; dropping it ends the count's share.
pub struct Busy(Arc<Drain>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// Count a connection as busy until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Wait until no connection is busy, or `limit` passes. `true`: nothing is left running.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the count is read, so a fall to zero in between is not missed.
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.busy() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.busy() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_ends_when_the_last_busy_connection_is_done() {
        let drain = Arc::new(Drain::default());
        assert!(
            drain.wait_idle(Duration::ZERO).await,
            "nothing busy: idle at once"
        );
        let (a, b) = (drain.enter(), drain.enter());
        assert_eq!(drain.busy(), 2);
        assert!(
            !drain.wait_idle(Duration::from_millis(10)).await,
            "still busy when the limit passes"
        );
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.wait_idle(Duration::from_secs(30)).await }
        });
        drop(a);
        drop(b);
        assert!(waiter.await.unwrap());
        assert_eq!(drain.busy(), 0);
    }
}
