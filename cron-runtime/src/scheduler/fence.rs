//! Self-fencing (SPEC 16): a scheduler cut off from the database stops its own runs before
//! any peer may count it lost and start its jobs elsewhere.
//!
//! Peers fail the runs of an instance whose row has not been refreshed for 5 of its heartbeat
//! intervals (`scheduler_lost`, by the database's clock), and a run without a heartbeat for
//! `CRON_STALE_AFTER` (`stale`). This scheduler counts from the moment it *sent* its last
//! heartbeat that committed (which the database stamped no earlier), and once
//! [`fence_after`] has passed without another it fences: every run in flight sees
//! `ctx.cancelled()`, is aborted after the fence grace ([`fence_grace`]), and ends `failed` /
//! `fenced` when the database is back; nothing is inserted or claimed until heartbeats commit
//! again. The runs' own heartbeats count too (peers fail a run whose heartbeat is older than
//! `CRON_STALE_AFTER`): the older of the two decides. So a handler is gone before any peer can
//! take its key over.

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

/// Tracks the last committed heartbeats and fences the executor when they are too old.
pub struct Fence {
    executor: Executor,
    after: Duration,
    /// When the last committed heartbeats were sent. Decisions to fence and unfence are taken
    /// under this lock, so a heartbeat committing meanwhile cannot be overtaken by a fence.
    beats: Mutex<Beats>,
}

/// When the last heartbeat of each kind that committed was sent.
#[derive(Debug, Clone, Copy)]
struct Beats {
    /// The instance row (peers' `scheduler_lost` counts from it).
    instance: Instant,
    /// The runs' own heartbeats (peers' `stale` counts from them): current by definition
    /// while no run is in flight.
    runs: Instant,
}

impl Beats {
    fn oldest(&self) -> Instant {
        self.instance.min(self.runs)
    }
}

impl Fence {
    /// A fence over `executor`, closing `after` without committed heartbeats.
    pub fn new(executor: Executor, after: Duration) -> Self {
        let now = Instant::now();
        Fence {
            executor,
            after,
            beats: Mutex::new(Beats {
                instance: now,
                runs: now,
            }),
        }
    }

    fn beats(&self) -> std::sync::MutexGuard<'_, Beats> {
        self.beats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instance heartbeat sent at `sent_at` committed.
    pub fn instance_committed(&self, sent_at: Instant) {
        let mut beats = self.beats();
        beats.instance = beats.instance.max(sent_at);
        if self.executor.in_flight().is_empty() {
            beats.runs = beats.runs.max(sent_at);
        }
        self.maybe_unfence(&beats);
    }

    /// The runs' heartbeat sent at `sent_at` committed (or no run was in flight then).
    pub fn runs_committed(&self, sent_at: Instant) {
        let mut beats = self.beats();
        beats.runs = beats.runs.max(sent_at);
        self.maybe_unfence(&beats);
    }

    fn maybe_unfence(&self, beats: &Beats) {
        if self.executor.is_fenced() && beats.oldest().elapsed() <= self.after {
            self.executor.unfence();
            crate::metrics::fenced(false);
            tracing::warn!("heartbeats commit again: this scheduler starts runs again");
        }
    }

    /// Fences at the moment the oldest committed heartbeat is `after` old (not at a tick
    /// after it), until `stop` fires.
    pub async fn watch(&self, stop: CancellationToken) {
        let poll = (self.after / 8).max(Duration::from_millis(50));
        loop {
            let wake = match self.executor.is_fenced() {
                // Fenced: the heartbeats lift it; check now and then only for the log.
                true => Instant::now() + poll,
                false => self.beats().oldest() + self.after + Duration::from_millis(1),
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            }
            let beats = self.beats();
            let silent = beats.oldest().elapsed();
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
