//! Retries (SPEC 17): the pending run that follows a failed one, written in the transaction
//! that records the failure, so a failure and its retry commit together or not at all.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::retry::jitter;
use crate::domain::{JobDefinition, JobRun, RunStatus, Schedule, ScheduleType};
use crate::store::{notify, Change, StoreError};

/// For each run of `ended` that failed for a retryable reason (and not [`crate::Permanent`]ly:
/// `permanent`), of an active job whose policy allows another attempt that can start before
/// the job's next slot: inserts the retry (`pending` until `not_before`) and records
/// `next_retry_at` on the failed run (in `ended` too). Returns the failed runs a retry now
/// follows: their failure is not their slot's last, so it opens no incident and retires no
/// one-time job.
///
/// Safe to repeat: a failed run has at most one retry (`cron_job_runs_one_retry_per_run`).
/// A retry holds the job key like any active run; when the key was taken meanwhile, no retry
/// is written and the failure is the slot's last.
pub(super) async fn schedule(
    conn: &mut PgConnection,
    ended: &mut [JobRun],
    permanent: &HashSet<Uuid>,
) -> Result<HashSet<Uuid>, StoreError> {
    let candidates: Vec<&JobRun> = ended
        .iter()
        .filter(|r| r.status == RunStatus::Failed && !permanent.contains(&r.id))
        .filter(|r| r.reason.is_some_and(crate::domain::retry::is_retryable))
        .collect();
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let definition_ids: Vec<Uuid> = candidates.iter().map(|r| r.job_definition_id).collect();
    // FOR SHARE: a retire or new version committing meanwhile either waits for this
    // transaction (and then cancels the retry it wrote) or is seen here (and no retry is written).
    let definitions: Vec<JobDefinition> = sqlx::query_as(
        "SELECT * FROM cron_job_definitions WHERE id = ANY($1) AND status = 'active' AND retry_max_attempts > 1
         FOR SHARE",
    )
    .bind(&definition_ids)
    .fetch_all(&mut *conn)
    .await?;
    if definitions.is_empty() {
        return Ok(HashSet::new());
    }
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await?;
    let mut failed_ids = Vec::new();
    let mut retry_ids = Vec::new();
    let mut due = Vec::new();
    for run in candidates {
        let Some(definition) = definitions.iter().find(|d| d.id == run.job_definition_id) else {
            continue;
        };
        let Some(reason) = run.reason else { continue };
        if let Some(at) =
            definition
                .retry
                .next_attempt_at(run.attempt, reason, now, next_slot(definition, now), jitter())
        {
            failed_ids.push(run.id);
            retry_ids.push(Uuid::now_v7());
            due.push(at);
        }
    }
    if failed_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let followed: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "WITH retry AS (
             INSERT INTO cron_job_runs
                 (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at,
                  status, attempt, retry_of, not_before, payload, triggered_by)
             SELECT r.id, f.job_definition_id, f.job_key, f.job_version, f.target, 'retry', f.scheduled_at,
                    'pending', f.attempt + 1, f.id, r.not_before, f.payload, f.triggered_by
             FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[]) AS r(failed_id, id, not_before)
             JOIN cron_job_runs f ON f.id = r.failed_id
             ON CONFLICT DO NOTHING
             RETURNING retry_of, not_before
         )
         UPDATE cron_job_runs f SET next_retry_at = retry.not_before
         FROM retry WHERE f.id = retry.retry_of
         RETURNING f.id, f.next_retry_at",
    )
    .bind(&failed_ids)
    .bind(&retry_ids)
    .bind(&due)
    .fetch_all(&mut *conn)
    .await?;
    if let Some((first, _)) = followed.first() {
        // Every claimer hears of it and sleeps until the earliest pending retry is due.
        notify(conn, Change::RunRequested(*first)).await?;
    }
    for run in ended.iter_mut() {
        if let Some((_, at)) = followed.iter().find(|(id, _)| *id == run.id) {
            run.next_retry_at = Some(*at);
        }
    }
    Ok(followed.into_iter().map(|(id, _)| id).collect())
}

/// The job's next fire time after `now`: a one-time job's `run_at` while it is ahead (a
/// retry of a run-now must not push the job's own run late).
fn next_slot(definition: &JobDefinition, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match (definition.schedule_type, &definition.cron_expression) {
        (ScheduleType::Recurring, Some(expression)) => Schedule::parse(expression, &definition.timezone)
            .ok()
            .and_then(|schedule| schedule.next_after(now)),
        _ => definition.run_at.filter(|at| *at > now),
    }
}

/// `pending` → `cancelled` for the retries of `definition_id` still waiting, in the transaction
/// that retires it (retire, new version): a retry of a version that no longer exists must not
/// hold the key, nor run the old target and payload.
pub(crate) async fn cancel_waiting(
    conn: &mut PgConnection,
    definition_id: Uuid,
    actor: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cron_job_runs
         SET status = 'cancelled', reason = 'cancelled', finished_at = clock_timestamp(), cancelled_by = $2,
             error = 'cancelled: its job version was retired before the retry was due'
         WHERE job_definition_id = $1 AND status = 'pending' AND trigger_type = 'retry'",
    )
    .bind(definition_id)
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(())
}
