//! Retention: pruning old runs in batches.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::domain::RunStatus;
use crate::store::StoreError;

/// How old a run gets before retention deletes it, by default (SPEC §2.8: 180 days): the
/// default of `cronjobs prune --older-than` and of the `system.prune` target's `older_than`.
pub const DEFAULT_RETENTION: &str = "180d";

/// Rows [`prune`] deletes per transaction, by default.
pub const DEFAULT_PRUNE_BATCH: i64 = 5_000;

/// What a prune removed (or, in a dry run, would remove), by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub missed: u64,
    pub cancelled: u64,
}

impl Pruned {
    /// Rows in all statuses.
    pub fn total(&self) -> u64 {
        self.succeeded + self.failed + self.skipped + self.missed + self.cancelled
    }

    fn add(&mut self, status: RunStatus, n: u64) {
        match status {
            RunStatus::Succeeded => self.succeeded += n,
            RunStatus::Failed => self.failed += n,
            RunStatus::Skipped => self.skipped += n,
            RunStatus::Missed => self.missed += n,
            RunStatus::Cancelled => self.cancelled += n,
            RunStatus::Pending | RunStatus::Running => {}
        }
    }
}

/// Deletes terminal runs created before `cutoff`, `batch` rows per transaction, so no lock
/// is held for long and the scheduler keeps working meanwhile. Active runs are never touched.
#[tracing::instrument(skip(pool))]
pub async fn prune(pool: &PgPool, cutoff: DateTime<Utc>, batch: i64) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    loop {
        let deleted: Vec<(RunStatus, i64)> = sqlx::query_as(
            "WITH gone AS (
                 DELETE FROM cron_job_runs WHERE id IN (
                     SELECT id FROM cron_job_runs
                     WHERE created_at < $1 AND status NOT IN ('pending', 'running')
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 )
                 RETURNING status
             )
             SELECT status, count(*) FROM gone GROUP BY status",
        )
        .bind(cutoff)
        .bind(batch)
        .fetch_all(pool)
        .await?;
        let removed: i64 = deleted.iter().map(|(_, n)| n).sum();
        for (status, n) in deleted {
            pruned.add(status, n as u64);
        }
        if removed < batch {
            return Ok(pruned);
        }
    }
}

/// Counts what [`prune`] would delete.
pub async fn count_prunable(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<Pruned, StoreError> {
    let counts: Vec<(RunStatus, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM cron_job_runs
         WHERE created_at < $1 AND status NOT IN ('pending', 'running')
         GROUP BY status",
    )
    .bind(cutoff)
    .fetch_all(pool)
    .await?;
    let mut pruned = Pruned::default();
    for (status, n) in counts {
        pruned.add(status, n as u64);
    }
    Ok(pruned)
}
