//! Heartbeats and every way a run ends: its outcome, stale, its scheduler lost, shutdown,
//! a request nobody can start.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{after_ended, retire_finished_one_time, RunOutcome};
use crate::domain::incident::{Policy, Recorded};
use crate::domain::{JobRun, RunReason, RunStatus};
use crate::store::{instances, StoreError};

/// A run still `running` at a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Beat {
    pub id: Uuid,
    /// An admin asked to cancel it (the executor may have missed the notification).
    pub cancel_requested: bool,
}

/// Records a sign of life for running runs (the executing scheduler calls this periodically).
/// Returns the runs that are still `running`: the others were ended meanwhile by someone else
/// (the sweep), and their executor must stop them; so must it those with a cancel request.
pub async fn heartbeat(pool: &PgPool, run_ids: &[Uuid]) -> Result<Vec<Beat>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE cron_job_runs SET heartbeat_at = clock_timestamp()
         WHERE id = ANY($1) AND status = 'running'
         RETURNING id, cancel_requested_at IS NOT NULL AS cancel_requested",
    )
    .bind(run_ids)
    .fetch_all(pool)
    .await?)
}

/// `running` → `succeeded` | `failed`, or `cancelled` whatever the outcome when an admin asked
/// for it (the reason text stays in `error`). Returns `None` if the run was no longer running
/// (the sweep got there first). A scheduled one-time job is retired with its run.
pub async fn finish(
    pool: &PgPool,
    run_id: Uuid,
    outcome: &RunOutcome,
    policy: &Policy,
) -> Result<Recorded<Option<JobRun>>, StoreError> {
    let Recorded { mut value, transitions } = finish_many(pool, &[(run_id, outcome)], policy).await?;
    Ok(Recorded {
        value: value.pop(),
        transitions,
    })
}

/// [`finish`] for many runs in one transaction (one `UPDATE ... FROM UNNEST`): the executor
/// records outcomes in batches, so a herd costs a few commits rather than one per run.
/// Returns the runs that were still running, now finished (in no particular order).
#[tracing::instrument(skip_all, fields(runs = outcomes.len()))]
pub async fn finish_many(
    pool: &PgPool,
    outcomes: &[(Uuid, &RunOutcome)],
    policy: &Policy,
) -> Result<Recorded<Vec<JobRun>>, StoreError> {
    if outcomes.is_empty() {
        return Ok(Recorded::quiet(Vec::new()));
    }
    let mut ids = Vec::with_capacity(outcomes.len());
    let mut statuses = Vec::with_capacity(outcomes.len());
    let mut outputs = Vec::with_capacity(outcomes.len());
    let mut reasons = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::with_capacity(outcomes.len());
    let mut permanent = HashSet::new();
    for (id, outcome) in outcomes {
        ids.push(*id);
        match outcome {
            RunOutcome::Succeeded { output } => {
                statuses.push(RunStatus::Succeeded.as_str());
                outputs.push(Some(output));
                reasons.push(None);
                errors.push(None);
            }
            RunOutcome::Failed { reason, error } => {
                statuses.push(RunStatus::Failed.as_str());
                outputs.push(None);
                reasons.push(Some(reason.as_str()));
                errors.push(Some(error.as_str()));
            }
            RunOutcome::FailedPermanently { error } => {
                permanent.insert(*id);
                statuses.push(RunStatus::Failed.as_str());
                outputs.push(None);
                reasons.push(Some(RunReason::Error.as_str()));
                errors.push(Some(error.as_str()));
            }
        }
    }
    let asked: std::collections::HashMap<Uuid, (&str, Option<&str>)> = ids
        .iter()
        .zip(statuses.iter().zip(&reasons))
        .map(|(id, (status, reason))| (*id, (*status, *reason)))
        .collect();
    let mut tx = pool.begin().await?;
    let mut finished: Vec<JobRun> = sqlx::query_as(
        "UPDATE cron_job_runs r
         SET status = CASE WHEN r.cancel_requested_at IS NULL THEN o.status ELSE 'cancelled' END,
             reason = CASE WHEN r.cancel_requested_at IS NULL THEN o.reason ELSE 'cancelled' END,
             error = CASE WHEN r.cancel_requested_at IS NULL THEN o.error ELSE r.error END,
             output = o.output, finished_at = clock_timestamp(),
             duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM clock_timestamp() - r.started_at) * 1000)::bigint)
         FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::text[])
             AS o(id, status, output, reason, error)
         WHERE r.id = o.id AND r.status = 'running'
         RETURNING r.*",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(outputs)
    .bind(&reasons)
    .bind(errors)
    .fetch_all(&mut *tx)
    .await?;
    // Only the runs this call ended: an earlier attempt's (below) were followed up by it.
    let transitions = after_ended(&mut tx, &mut finished, &permanent, policy).await?;
    if finished.len() < ids.len() {
        // A retry after a lost reply: the runs its first attempt ended are reported as ended
        // here too (same status and reason), so they are logged and counted once.
        let updated: HashSet<Uuid> = finished.iter().map(|r| r.id).collect();
        let others: Vec<Uuid> = ids.iter().filter(|id| !updated.contains(id)).copied().collect();
        let earlier: Vec<JobRun> = sqlx::query_as("SELECT * FROM cron_job_runs WHERE id = ANY($1)")
            .bind(others)
            .fetch_all(&mut *tx)
            .await?;
        finished.extend(earlier.into_iter().filter(|run| {
            asked.get(&run.id).is_some_and(|(status, reason)| {
                run.status.as_str() == *status && run.reason.map(RunReason::as_str) == *reason
            })
        }));
    }
    tx.commit().await?;
    Ok(Recorded {
        value: finished,
        transitions,
    })
}

/// `running` → `failed` (`stale`) for runs without a heartbeat for `stale_after`, whichever
/// scheduler ran them (a replica recovers another's dead runs); a run an admin asked to cancel
/// ends `cancelled`, keeping the admin's reason. `reconnected_at`: when the caller's access to
/// the database came back after an outage (nobody could heartbeat before it), so a run counts
/// as stale only `stale_after` after that too.
#[tracing::instrument(skip(pool, policy))]
pub async fn fail_stale(
    pool: &PgPool,
    stale_after: Duration,
    reconnected_at: Option<DateTime<Utc>>,
    policy: &Policy,
) -> Result<Recorded<Vec<JobRun>>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut failed: Vec<JobRun> = sqlx::query_as(
        "UPDATE cron_job_runs
         SET status = CASE WHEN cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END,
             reason = CASE WHEN cancel_requested_at IS NULL THEN 'stale' ELSE 'cancelled' END,
             finished_at = clock_timestamp(),
             duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM clock_timestamp() - started_at) * 1000)::bigint),
             error = CASE WHEN cancel_requested_at IS NOT NULL THEN error ELSE
                     'stale: no heartbeat for more than ' || $2 || ' (last at '
                     || to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                     || ' from scheduler ' || COALESCE(scheduler_instance, 'unknown')
                     || '); presumed dead' END
         WHERE id IN (
             SELECT id FROM cron_job_runs
             WHERE status = 'running' AND heartbeat_at < clock_timestamp() - make_interval(secs => $1)
               AND ($3::timestamptz IS NULL OR $3 < clock_timestamp() - make_interval(secs => $1))
             FOR UPDATE SKIP LOCKED
         )
         RETURNING *",
    )
    .bind(stale_after.as_secs_f64())
    .bind(humantime::format_duration(stale_after).to_string())
    .bind(reconnected_at)
    .fetch_all(&mut *tx)
    .await?;
    let transitions = after_ended(&mut tx, &mut failed, &HashSet::new(), policy).await?;
    tx.commit().await?;
    Ok(Recorded {
        value: failed,
        transitions,
    })
}

/// `running` → `failed` (`scheduler_lost`) for runs whose scheduler instance is no longer
/// alive (SPEC §11): a deploy that killed the old scheduler after SIGTERM does not block its
/// jobs until `CRON_STALE_AFTER`. A run an admin asked to cancel ends `cancelled`. Runs of an instance without a row (a release before
/// instances were recorded) are left to [`fail_stale`]. `reconnected_at`: when the caller's
/// access to the database came back after an outage; an instance gets its whole liveness
/// window counted from then, since nobody could heartbeat while the database was away.
#[tracing::instrument(skip(pool, policy))]
pub async fn fail_lost(
    pool: &PgPool,
    reconnected_at: Option<DateTime<Utc>>,
    policy: &Policy,
) -> Result<Recorded<Vec<JobRun>>, StoreError> {
    let mut tx = pool.begin().await?;
    let sql = format!(
        "UPDATE cron_job_runs r
         SET status = CASE WHEN r.cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END,
             reason = CASE WHEN r.cancel_requested_at IS NULL THEN 'scheduler_lost' ELSE 'cancelled' END,
             finished_at = clock_timestamp(),
             duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM clock_timestamp() - r.started_at) * 1000)::bigint),
             error = CASE WHEN r.cancel_requested_at IS NOT NULL THEN r.error ELSE
                     'scheduler_lost: scheduler ' || i.instance || ' stopped heartbeating (last seen '
                     || to_char(i.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                     || '); presumed dead' END
         FROM cron_scheduler_instances i
         WHERE i.instance = r.scheduler_instance AND r.id IN (
             SELECT lost.id FROM cron_job_runs lost
             JOIN cron_scheduler_instances i ON i.instance = lost.scheduler_instance
             WHERE lost.status = 'running' AND NOT ({alive})
               AND ($1::timestamptz IS NULL
                    OR $1 < now() - make_interval(secs => i.heartbeat_interval_ms * 5 / 1000.0))
             FOR UPDATE OF lost SKIP LOCKED
         )
         RETURNING r.*",
        alive = instances::ALIVE
    );
    let mut failed: Vec<JobRun> = sqlx::query_as(&sql).bind(reconnected_at).fetch_all(&mut *tx).await?;
    let transitions = after_ended(&mut tx, &mut failed, &HashSet::new(), policy).await?;
    tx.commit().await?;
    Ok(Recorded {
        value: failed,
        transitions,
    })
}

/// `running` → `failed` (`shutdown`) for the runs `instance` still owns when it exits after
/// its drain: outcomes it could not record, or a claim whose reply was lost.
pub async fn fail_owned(pool: &PgPool, instance: &str, policy: &Policy) -> Result<Recorded<Vec<JobRun>>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut failed: Vec<JobRun> = sqlx::query_as(
        "UPDATE cron_job_runs
         SET status = 'failed', reason = 'shutdown', finished_at = clock_timestamp(),
             duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM clock_timestamp() - started_at) * 1000)::bigint),
             error = 'interrupted by shutdown'
         WHERE status = 'running' AND scheduler_instance = $1
         RETURNING *",
    )
    .bind(instance)
    .fetch_all(&mut *tx)
    .await?;
    let transitions = after_ended(&mut tx, &mut failed, &HashSet::new(), policy).await?;
    tx.commit().await?;
    Ok(Recorded {
        value: failed,
        transitions,
    })
}

/// `pending` → `missed` for run-now requests older than `missed_after` that no live scheduler
/// can start: none is alive (`no_scheduler`), or none has the target (`target_unavailable`).
/// Without this a request for a removed target would block its key forever.
pub(crate) async fn miss_unstartable_pending(
    conn: &mut PgConnection,
    missed_after: Duration,
) -> Result<Vec<JobRun>, StoreError> {
    let sql = format!(
        "WITH live AS (SELECT targets FROM cron_scheduler_instances i WHERE {accepting})
         UPDATE cron_job_runs r
         SET status = 'missed', finished_at = clock_timestamp(),
             reason = CASE WHEN EXISTS (SELECT 1 FROM live) THEN 'target_unavailable' ELSE 'no_scheduler' END,
             error = CASE WHEN EXISTS (SELECT 1 FROM live)
                          THEN $2 ELSE $3 END
         -- A retry is late from its time on, not from when it was written.
         WHERE r.status = 'pending'
           AND COALESCE(r.not_before, r.created_at) < clock_timestamp() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM live WHERE r.target = ANY(live.targets))
         RETURNING r.*",
        accepting = instances::ACCEPTING
    );
    let missed: Vec<JobRun> = sqlx::query_as(&sql)
        .bind(missed_after.as_secs_f64())
        .bind(RunReason::TargetUnavailable.missed_message())
        .bind(RunReason::NoScheduler.missed_message())
        .fetch_all(&mut *conn)
        .await?;
    // A one-time job whose retry is missed has no attempt left: its slot is done.
    retire_finished_one_time(conn, &missed).await?;
    Ok(missed)
}
