//! Self-fencing (SPEC 16): a scheduler cut off from the database stops its own runs before
//! any peer may count it lost and start its jobs elsewhere.
//!
//! Peers fail the runs of an instance whose row has not been refreshed for 5 of its heartbeat
//! intervals (`scheduler_lost`, by the database's clock), and a run without a heartbeat for
//! `CRON_STALE_AFTER` (`stale`). This scheduler counts from the moment it *sent* its last
//! heartbeat that committed (which the database stamped no earlier), and once
//! [`fence_after`] has passed without another it fences: every run in flight sees
//! `ctx.cancelled()`, is aborted after the fence grace ([`fence_grace`]), and ends `failed` /
//! `fenced` when the database is back; nothing is inserted or claimed until a heartbeat
//! commits again. So a handler is gone before any peer can take its key over.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Executor;

/// How long without a committed heartbeat before this scheduler fences itself: 4 heartbeat
/// intervals, and a heartbeat interval before `CRON_STALE_AFTER` if that comes first.
pub fn fence_after(heartbeat_every: Duration, stale_after: Duration) -> Duration {
    (heartbeat_every * 4)
        .min(stale_after.saturating_sub(heartbeat_every))
        .max(heartbeat_every / 2)
}

/// How long a fenced handler gets to return before it is aborted: the shutdown grace, but at
/// most half a heartbeat interval, so it is gone before the fifth interval ends.
pub fn fence_grace(heartbeat_every: Duration, shutdown_grace: Duration) -> Duration {
    shutdown_grace.min(heartbeat_every / 2)
}

/// Tracks the last committed heartbeat and fences the executor when it is too old.
pub struct Fence {
    executor: Executor,
    after: Duration,
    /// When the last heartbeat that committed was sent.
    committed: Mutex<Instant>,
}

impl Fence {
    /// A fence over `executor`, closing `after` without a committed heartbeat.
    pub fn new(executor: Executor, after: Duration) -> Self {
        Fence {
            executor,
            after,
            committed: Mutex::new(Instant::now()),
        }
    }

    /// A heartbeat sent at `sent_at` committed: the scheduler is reachable, and unfenced.
    pub fn committed(&self, sent_at: Instant) {
        {
            let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
            *committed = (*committed).max(sent_at);
        }
        if self.executor.is_fenced() {
            self.executor.unfence();
            crate::metrics::fenced(false);
            tracing::warn!("heartbeat committed again: this scheduler starts runs again");
        }
    }

    fn since_commit(&self) -> Duration {
        self.committed.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    /// Checks often (an eighth of the fence time) until `stop` fires; fences when due.
    pub async fn watch(&self, stop: CancellationToken) {
        let mut ticker = tokio::time::interval((self.after / 8).max(Duration::from_millis(50)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let silent = self.since_commit();
            if silent > self.after && !self.executor.is_fenced() {
                tracing::error!(
                    silent_ms = silent.as_millis() as u64,
                    fence_after_ms = self.after.as_millis() as u64,
                    runs = self.executor.in_flight().len(),
                    "no heartbeat committed for too long: fencing this scheduler (its runs are stopped and end `fenced`; none start until the database answers)"
                );
                crate::metrics::fenced(true);
                self.executor.fence();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_closes_before_peers_count_the_scheduler_lost() {
        let s = Duration::from_secs;
        // Defaults: 30 s heartbeats, 15 min stale: 4 intervals.
        assert_eq!(fence_after(s(30), s(900)), s(120));
        // A stale time shorter than 5 intervals wins.
        assert_eq!(fence_after(s(1), s(3)), s(2));
        // The handler's grace ends within the fifth interval.
        assert_eq!(fence_grace(s(30), s(30)), s(15));
        assert_eq!(fence_grace(s(30), s(5)), s(5));
        for (heartbeat, stale, grace) in [(1, 20, 5), (30, 900, 30), (1, 3, 5), (10, 45, 2)] {
            let (heartbeat, stale, grace) = (s(heartbeat), s(stale), s(grace));
            let gone = fence_after(heartbeat, stale) + fence_grace(heartbeat, grace);
            assert!(gone < heartbeat * 5, "{gone:?} must be under 5 × {heartbeat:?}");
            assert!(gone < stale, "{gone:?} must be under the stale time {stale:?}");
        }
    }
}
