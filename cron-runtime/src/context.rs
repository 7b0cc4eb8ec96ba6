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
            db,
            cancel,
        }
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
