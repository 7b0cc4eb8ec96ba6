//! Run-now requests and their claims, and cancelling a run.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::RunNowOutcome;
use crate::domain::{JobDefinition, JobRun, JobStatus, RunStatus};
use crate::store::{notify, Change, StoreError};

/// (new) → `pending` for an admin's run-now, or `skipped` when a run of the key is active.
/// Allowed on active and paused jobs; a retired job is a conflict. `payload` (validated by the
/// caller) replaces the job's for this run only.
#[tracing::instrument(skip(pool, payload))]
pub async fn request_run(
    pool: &PgPool,
    definition_id: Uuid,
    actor: &str,
    payload: Option<&Value>,
) -> Result<RunNowOutcome, StoreError> {
    let mut tx = pool.begin().await?;
    // FOR SHARE: a concurrent new-version cannot retire the job under this request.
    let definition: Option<JobDefinition> =
        sqlx::query_as("SELECT * FROM cron_job_definitions WHERE id = $1 FOR SHARE")
            .bind(definition_id)
            .fetch_optional(&mut *tx)
            .await?;
    let definition = definition.ok_or(StoreError::JobNotFound(definition_id))?;
    if definition.status == JobStatus::Retired {
        return Err(StoreError::WrongStatus {
            id: definition_id,
            actual: JobStatus::Retired,
            required: "active or paused",
            action: "run-now",
        });
    }
    // The active run can finish between the failed insert and the lookup: then try again.
    for _ in 0..3 {
        let manual = ManualRun {
            definition: &definition,
            actor,
            payload,
        };
        if let Some(run) = insert_manual(&mut tx, &manual, RunStatus::Pending, None).await? {
            notify(&mut tx, Change::RunRequested(run.id)).await?;
            tx.commit().await?;
            return Ok(RunNowOutcome::Pending(run));
        }
        let active: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM cron_job_runs WHERE job_key = $1 AND status IN ('pending', 'running')")
                .bind(&definition.job_key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(active_run_id) = active {
            let error = format!("skipped: run {active_run_id} of this job was still active (overlap policy: skip)");
            if let Some(run) = insert_manual(&mut tx, &manual, RunStatus::Skipped, Some(&error)).await? {
                tx.commit().await?;
                return Ok(RunNowOutcome::Skipped { run, active_run_id });
            }
        }
    }
    Err(StoreError::Database(sqlx::Error::Protocol(
        "run-now could not record a run after 3 attempts (the job's runs changed too fast)".into(),
    )))
}

/// What a run-now request asks for.
struct ManualRun<'a> {
    definition: &'a JobDefinition,
    actor: &'a str,
    payload: Option<&'a Value>,
}

async fn insert_manual(
    conn: &mut PgConnection,
    manual: &ManualRun<'_>,
    status: RunStatus,
    error: Option<&str>,
) -> Result<Option<JobRun>, StoreError> {
    let definition = manual.definition;
    let run = sqlx::query_as(
        "INSERT INTO cron_job_runs
             (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at,
              status, finished_at, reason, error, triggered_by, payload)
         VALUES ($1, $2, $3, $4, $5, 'manual', clock_timestamp(), $6,
                 CASE WHEN $6 = 'skipped' THEN clock_timestamp() END,
                 CASE WHEN $6 = 'skipped' THEN 'overlap' END, $7, $8, $9)
         ON CONFLICT DO NOTHING
         RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(definition.id)
    .bind(&definition.job_key)
    .bind(definition.version)
    .bind(&definition.target)
    .bind(status)
    .bind(error)
    .bind(manual.actor)
    .bind(manual.payload)
    .fetch_optional(conn)
    .await?;
    Ok(run)
}

/// `pending` → `cancelled` at once; for a `running` run, records the request (who, why) and
/// tells its scheduler (NOTIFY), which stops the run and records it `cancelled` when its
/// handler returns. A terminal run is a conflict. Asking again changes nothing.
#[tracing::instrument(skip(pool, reason))]
pub async fn cancel(pool: &PgPool, run_id: Uuid, reason: &str, actor: &str) -> Result<JobRun, StoreError> {
    let mut tx = pool.begin().await?;
    let status: Option<RunStatus> = sqlx::query_scalar("SELECT status FROM cron_job_runs WHERE id = $1 FOR UPDATE")
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
    let sql = match status.ok_or(StoreError::RunNotFound(run_id))? {
        RunStatus::Pending => {
            "UPDATE cron_job_runs
             SET status = 'cancelled', reason = 'cancelled', finished_at = clock_timestamp(),
                 error = $2, cancelled_by = $3
             WHERE id = $1 RETURNING *"
        }
        RunStatus::Running => {
            "UPDATE cron_job_runs
             SET cancel_requested_at = COALESCE(cancel_requested_at, clock_timestamp()),
                 error = COALESCE(error, $2), cancelled_by = COALESCE(cancelled_by, $3)
             WHERE id = $1 RETURNING *"
        }
        status => return Err(StoreError::RunFinished { id: run_id, status }),
    };
    let run: JobRun = sqlx::query_as(sql)
        .bind(run_id)
        .bind(reason)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await?;
    if run.status == RunStatus::Running {
        notify(&mut tx, Change::CancelRequested(run_id)).await?;
    } else {
        // A cancelled pending retry ends its one-time job's slot.
        super::retire_finished_one_time(&mut tx, [&run]).await?;
    }
    tx.commit().await?;
    Ok(run)
}

/// A run this scheduler owns (inserted `running`, or claimed), with what it needs to execute it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClaimedRun {
    #[sqlx(flatten)]
    pub run: JobRun,
    /// What the target gets: the run's own payload (a run-now's), else the definition's.
    pub target_payload: Value,
    /// The definition's schedule (null for a one-time job) and timezone: a Sentry Crons
    /// check-in carries them as its monitor's config.
    pub cron_expression: Option<String>,
    pub timezone: String,
    /// The definition's own timeout (`None`: the target's).
    pub job_timeout_ms: Option<i64>,
}

/// `pending` → `running` for up to `limit` pending runs of the given targets, oldest first:
/// run-now requests, retries that are due, backfill runs (and runs left `pending` by an older
/// version of the scheduler). Only
/// targets this binary has are claimed, so during a deploy an old replica leaves a new target's
/// runs to the new one.
///
/// A claim whose reply was lost leaves its runs `running` under `instance`, unexecuted: after
/// a failed claim, the scheduler takes them back with [`claimed_not_executing`].
pub async fn claim_pending(
    pool: &PgPool,
    targets: &[&str],
    limit: i64,
    instance: &str,
) -> Result<Vec<ClaimedRun>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE cron_job_runs r
         SET status = 'running', started_at = clock_timestamp(), heartbeat_at = clock_timestamp(),
             scheduler_instance = $3
         FROM cron_job_definitions d
         WHERE d.id = r.job_definition_id AND r.id IN (
             SELECT id FROM cron_job_runs
             WHERE status = 'pending' AND target = ANY($1::text[])
               AND (not_before IS NULL OR not_before <= clock_timestamp())
             ORDER BY scheduled_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         RETURNING r.*, COALESCE(r.payload, d.payload) AS target_payload, d.cron_expression, d.timezone, d.timeout_ms AS job_timeout_ms",
    )
    .bind(targets)
    .bind(limit)
    .bind(instance)
    .fetch_all(pool)
    .await?)
}

/// How long until the earliest pending run of `targets` that waits for its time (a retry's
/// `not_before`) is due; `None` when none waits.
pub async fn next_pending_due_in(pool: &PgPool, targets: &[&str]) -> Result<Option<std::time::Duration>, StoreError> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM min(not_before) - clock_timestamp())::float8 FROM cron_job_runs
         WHERE status = 'pending' AND target = ANY($1::text[]) AND not_before IS NOT NULL",
    )
    .bind(targets)
    .fetch_one(pool)
    .await?;
    Ok(seconds.map(|s| std::time::Duration::from_secs_f64(s.max(0.0))))
}

/// Claimed runs (run-now, retry, backfill) `running` under `instance` other than `executing`: what a claim whose reply was
/// lost took. Only sound while no other claim of `instance` is in flight (the scheduler claims
/// one batch at a time) and `executing` lists every run it started.
pub async fn claimed_not_executing(
    pool: &PgPool,
    instance: &str,
    executing: &[Uuid],
) -> Result<Vec<ClaimedRun>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT r.*, COALESCE(r.payload, d.payload) AS target_payload, d.cron_expression, d.timezone, d.timeout_ms AS job_timeout_ms FROM cron_job_runs r JOIN cron_job_definitions d ON d.id = r.job_definition_id
         WHERE r.status = 'running' AND r.trigger_type <> 'scheduled' AND r.scheduler_instance = $1
           AND r.id <> ALL($2::uuid[])",
    )
    .bind(instance)
    .bind(executing)
    .fetch_all(pool)
    .await?)
}
