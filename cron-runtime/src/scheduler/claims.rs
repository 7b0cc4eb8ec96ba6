//! Claims pending runs (run-now requests) for this scheduler, one batch at a time.
//!
//! One task owns every claim of this instance: it claims when asked (a notification, the
//! reconcile, startup) until no pending run of its targets is left, and stops claiming at
//! shutdown. Claims are serialized so that a claim that failed, possibly after its UPDATE
//! committed (a lost reply), can be made good: the manual runs `running` under this instance
//! that the executor is not executing are exactly what it took.
//!
//! A claim takes at most the room that is free when it starts (up to [`CLAIM_BATCH`]) and holds
//! no permit while it asks the database: due slots are never recorded `overloaded` behind a
//! claim that finds nothing pending.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Executor;
use crate::registry;
use crate::store::runs;

/// The most pending runs one claim takes.
const CLAIM_BATCH: i64 = 500;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// The longest the claimer sleeps without looking for pending runs that became due.
const WAITING_CHECK: Duration = Duration::from_secs(30);

/// Asks the claimer to claim pending runs.
#[derive(Clone, Default)]
pub struct ClaimRequests(Arc<Notify>);

impl ClaimRequests {
    /// Claims soon (requests made while a claim runs coalesce into one more round).
    pub fn request(&self) {
        self.0.notify_one();
    }
}

/// Starts the claimer as work the executor tracks (shutdown waits for its last claim).
pub fn spawn(pool: PgPool, executor: Executor, shutdown: CancellationToken) -> ClaimRequests {
    let requests = ClaimRequests::default();
    let claimer = Claimer {
        pool,
        executor: executor.clone(),
        shutdown,
        targets: registry::all().iter().map(|t| t.key).collect(),
        unsure: false,
    };
    executor.track(claimer.run(requests.clone()));
    requests
}

struct Claimer {
    pool: PgPool,
    executor: Executor,
    shutdown: CancellationToken,
    targets: Vec<&'static str>,
    /// A claim failed: it may have taken runs without this process hearing of it.
    unsure: bool,
}

impl Claimer {
    async fn run(mut self, requests: ClaimRequests) {
        let mut next_due: Option<Duration> = None;
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                () = requests.0.notified() => {}
                () = tokio::time::sleep(next_due.unwrap_or(WAITING_CHECK).min(WAITING_CHECK)) => {}
            }
            if !self.claim_until_drained().await {
                return;
            }
            next_due = self.next_waiting_due().await;
        }
    }

    /// When the earliest retry waiting for its time is due (a notification announces each new
    /// one; [`WAITING_CHECK`] bounds the wait should one be missed).
    async fn next_waiting_due(&self) -> Option<Duration> {
        match runs::next_pending_due_in(&self.pool, &self.targets).await {
            // Claimed at its time, not a moment before it (`not_before <= clock_timestamp()`).
            Ok(due) => due.map(|d| d + Duration::from_millis(5)),
            Err(e) => {
                self.failed("find when the next retry is due", &e);
                Some(FIRST_RETRY)
            }
        }
    }

    /// Claims batches until one comes back short. `false` once shutdown began.
    async fn claim_until_drained(&mut self) -> bool {
        let mut retry_in = FIRST_RETRY;
        loop {
            if self.shutdown.is_cancelled() {
                return false;
            }
            // Only as many as fit now, and no permit held across the claim's round trip:
            // whether anything is pending is unknown until the claim, and due slots must not
            // wait behind a guess. A full executor is asked again when a run gives room back.
            let limit = self.executor.available_room().min(CLAIM_BATCH as usize);
            if limit == 0 || self.executor.is_fenced() {
                tokio::select! {
                    () = self.shutdown.cancelled() => return false,
                    () = self.executor.room_freed() => {}
                    // A fenced scheduler claims nothing until its heartbeats commit again.
                    () = tokio::time::sleep(MAX_RETRY) => {}
                }
                continue;
            }
            let limit = limit as i64;
            if self.unsure {
                match runs::claimed_not_executing(&self.pool, self.executor.instance(), &self.executor.in_flight())
                    .await
                {
                    Ok(taken) => {
                        if !taken.is_empty() {
                            tracing::info!(
                                runs = taken.len(),
                                "executing runs claimed by a claim whose reply was lost"
                            );
                        }
                        self.unsure = false;
                        let room = self.executor.free_room(taken.len());
                        self.executor.spawn(taken, room);
                        continue;
                    }
                    Err(e) => self.failed("find runs of a failed claim", &e),
                }
            } else {
                match runs::claim_pending(&self.pool, &self.targets, limit, self.executor.instance()).await {
                    Ok(claimed) => {
                        let full = claimed.len() as i64 == limit;
                        // The room taken after the claim: a slot may have taken some meanwhile;
                        // the runs beyond it still run (a claimed run is never left unexecuted).
                        let room = self.executor.free_room(claimed.len());
                        self.executor.spawn(claimed, room);
                        if !full {
                            return true;
                        }
                        retry_in = FIRST_RETRY;
                        continue;
                    }
                    Err(e) => {
                        self.unsure = true;
                        self.failed("claim pending runs", &e);
                    }
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return false,
                () = tokio::time::sleep(retry_in) => {}
            }
            retry_in = (retry_in * 2).min(MAX_RETRY);
        }
    }

    fn failed(&self, what: &'static str, error: &crate::store::StoreError) {
        crate::metrics::database_error(what);
        tracing::warn!(error = %error, "cannot {what}; retrying");
    }
}
