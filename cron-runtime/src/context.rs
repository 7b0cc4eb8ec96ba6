//! What a target sees of the run it executes.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::TriggerType;

/// The run a target executes: identity, trigger, a database pool and a cancellation signal.
///
/// The signal fires when the run's timeout elapses or the scheduler shuts down; a
/// long-running target should `select!` on [`JobContext::cancelled`] and return early.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Id of the run (`cron_job_runs.id`).
    pub run_id: Uuid,
    /// Key of the job.
    pub job_key: String,
    /// Version of the job definition being run.
    pub job_version: i32,
    /// Whether the schedule or an admin's run-now started this run.
    pub trigger_type: TriggerType,
    /// The slot this run belongs to (for run-now: when it was requested).
    pub scheduled_at: DateTime<Utc>,
    /// 1 for a slot's first run, 2 for its first retry, and so on.
    pub attempt: i32,
    db: PgPool,
    cancel: CancellationToken,
}

impl JobContext {
    /// Builds a context; the scheduler does this for every run.
    pub fn new(
        run_id: Uuid,
        job_key: String,
        job_version: i32,
        trigger_type: TriggerType,
        scheduled_at: DateTime<Utc>,
        db: PgPool,
        cancel: CancellationToken,
    ) -> Self {
        JobContext {
            run_id,
            job_key,
            job_version,
            trigger_type,
            scheduled_at,
            attempt: 1,
            db,
            cancel,
        }
    }

    /// The same context for attempt `attempt` of its slot (see [`JobContext::attempt`]).
    pub fn with_attempt(mut self, attempt: i32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Which attempt of its slot this run is: 1 for the first, 2 for the first retry of a
    /// failed run (its job's `retry` policy), and so on.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// What started this run: its schedule, an admin's run-now, or a retry.
    pub fn trigger(&self) -> TriggerType {
        self.trigger_type
    }

    /// The slot this run is for. A retry gets its failed run's slot, so a daily job computes
    /// the day it was meant for; a run-now gets the time it was requested.
    pub fn scheduled_at(&self) -> DateTime<Utc> {
        self.scheduled_at
    }

    /// The application's database pool.
    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// Completes when the run should stop (timeout or shutdown).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// `true` once the run should stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
