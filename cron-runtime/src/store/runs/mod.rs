//! Queries on `cron_job_runs`. See [`crate::domain::run`] for the state machine these
//! queries implement; each function names the transition it owns.

mod finish;
mod requests;
mod retention;
mod retries;
pub(crate) use retries::cancel_waiting as cancel_waiting_retries;
mod slots;

pub(crate) use finish::miss_unstartable_pending;
pub use finish::{fail_lost, fail_owned, fail_stale, finish, finish_many, heartbeat, Beat};
pub use requests::{cancel, claim_pending, claimed_not_executing, next_pending_due_in, request_run, ClaimedRun};
pub use retention::{count_prunable, prune, Pruned, DEFAULT_PRUNE_BATCH, DEFAULT_RETENTION};
pub use slots::insert_scheduled;
pub(crate) use slots::{insert_missed, MissedBy};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use std::collections::HashSet;

use super::page::push_keyset_tail;
use super::{incidents, notify, Change, Cursor, Page, StoreError};
use crate::domain::incident::{Policy, Transition};
use crate::domain::{JobDefinition, JobRun, RunReason, RunStatus, ScheduleType, TriggerType};

/// A slot of a definition that is due: what the scheduler inserts.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSlot {
    /// The id its run row gets. Fixed when the slot fires, so a retried insert recognizes the
    /// rows an earlier attempt of the same batch wrote (and only those) by their ids.
    pub run_id: Uuid,
    pub definition_id: Uuid,
    pub job_key: String,
    pub job_version: i32,
    pub target: String,
    pub scheduled_at: DateTime<Utc>,
    /// A slot of a recurring definition (it can be missed); a one-time slot runs, late if need be.
    pub recurring: bool,
}

impl DueSlot {
    /// The slot of `definition` at `scheduled_at`.
    pub fn of(definition: &JobDefinition, scheduled_at: DateTime<Utc>) -> Self {
        DueSlot {
            run_id: Uuid::now_v7(),
            definition_id: definition.id,
            job_key: definition.job_key.clone(),
            job_version: definition.version,
            target: definition.target.clone(),
            scheduled_at,
            recurring: definition.schedule_type == ScheduleType::Recurring,
        }
    }
}

/// Due slots to record: the ones to start, and the ones too late to start (SPEC §11: a
/// scheduler never starts a slot later than T + `CRON_MISSED_AFTER`).
#[derive(Debug, Clone, Copy)]
pub struct SlotBatch<'a> {
    pub start: &'a [DueSlot],
    pub missed: &'a [DueSlot],
    /// Why the `missed` slots were not started.
    pub missed_reason: RunReason,
}

impl<'a> SlotBatch<'a> {
    /// Every slot of `slots` to start.
    pub fn start(slots: &'a [DueSlot]) -> Self {
        SlotBatch {
            start: slots,
            missed: &[],
            missed_reason: RunReason::NotStarted,
        }
    }

    fn len(&self) -> usize {
        self.start.len() + self.missed.len()
    }
}

/// What recording a batch of due slots did.
#[derive(Debug, Default)]
pub struct InsertedSlots {
    /// Runs `running` under the calling scheduler that it must execute: inserted by this call,
    /// or by an earlier attempt of the same batch whose reply was lost.
    pub running: Vec<ClaimedRun>,
    /// Runs this call recorded as `skipped` because a run of the key was still active.
    pub skipped: Vec<JobRun>,
    /// Runs this call recorded as `missed`.
    pub missed: Vec<JobRun>,
    /// One-time slots not recorded because a run of their key was active: a one-time job runs
    /// once, late if need be, so the caller tries them again later instead of a `skipped` row.
    pub deferred: Vec<DueSlot>,
    // Slots in none of the lists were recorded already: by another scheduler replica, by the
    // watchdog, or (skipped and missed rows) by an earlier attempt of this batch.
}

/// What a run-now request did.
#[derive(Debug)]
pub enum RunNowOutcome {
    /// The run was recorded as `pending`; a scheduler will claim it.
    Pending(JobRun),
    /// A run of the key was active, so this one was recorded as `skipped`.
    Skipped { run: JobRun, active_run_id: Uuid },
}

/// How an executed run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Succeeded {
        output: Value,
    },
    Failed {
        reason: RunReason,
        error: String,
    },
    /// The target's error was [`crate::Permanent`]: failed (`error`), and never retried.
    FailedPermanently {
        error: String,
    },
}

/// Filters of the run list; `None` matches everything. `from`/`to` bound `scheduled_at`
/// (`from` inclusive, `to` exclusive).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub job_id: Option<Uuid>,
    pub job_key: Option<String>,
    pub status: Option<RunStatus>,
    pub reason: Option<RunReason>,
    pub target: Option<String>,
    pub trigger_type: Option<TriggerType>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// What ending the runs of `ended` (just recorded in the caller's transaction) sets off, in
/// that transaction: the retries its jobs' policies ask for (none for `permanent` failures),
/// then, for the runs that are their slot's last attempt, one-time jobs retired and incidents.
async fn after_ended(
    conn: &mut PgConnection,
    ended: &mut [JobRun],
    permanent: &HashSet<Uuid>,
    policy: &Policy,
) -> Result<Vec<Transition>, StoreError> {
    let followed = retries::schedule(conn, ended, permanent).await?;
    if followed.is_empty() {
        retire_finished_one_time(conn, ended.iter()).await?;
        return incidents::record_outcomes(conn, ended, policy).await;
    }
    let last: Vec<JobRun> = ended.iter().filter(|r| !followed.contains(&r.id)).cloned().collect();
    retire_finished_one_time(conn, &last).await?;
    incidents::record_outcomes(conn, &last, policy).await
}

/// active → retired for one-time definitions whose slot ended: its scheduled run, or a retry
/// of it, reached a terminal status with no retry to follow.
async fn retire_finished_one_time<'r>(
    conn: &mut PgConnection,
    runs: impl IntoIterator<Item = &'r JobRun>,
) -> Result<(), StoreError> {
    let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = runs
        .into_iter()
        .filter(|r| matches!(r.trigger_type, TriggerType::Scheduled | TriggerType::Retry) && r.status.is_terminal())
        .map(|r| (r.job_definition_id, r.scheduled_at))
        .unzip();
    if ids.is_empty() {
        return Ok(());
    }
    // A retry's slot is the job's run_at (a retry of a run-now on a one-time job is not).
    let retired: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE cron_job_definitions d
         SET status = 'retired', retired_at = now(), retired_by = 'scheduler', updated_at = now()
         FROM UNNEST($1::uuid[], $2::timestamptz[]) AS s(id, scheduled_at)
         WHERE d.id = s.id AND d.schedule_type = 'one_time' AND d.status <> 'retired'
           AND d.run_at = s.scheduled_at
         RETURNING d.id",
    )
    .bind(ids)
    .bind(times)
    .fetch_all(&mut *conn)
    .await?;
    for id in retired {
        notify(conn, Change::Definition(id)).await?;
    }
    Ok(())
}

/// Reads one run.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<JobRun, StoreError> {
    sqlx::query_as("SELECT * FROM cron_job_runs WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::RunNotFound(id))
}

/// Lists runs newest first (by `scheduled_at`), `limit` at a time, continuing after `after`.
pub async fn list(
    pool: &PgPool,
    filter: &RunFilter,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<JobRun>, StoreError> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT * FROM cron_job_runs WHERE TRUE");
    if let Some(job_id) = filter.job_id {
        query.push(" AND job_definition_id = ").push_bind(job_id);
    }
    if let Some(job_key) = &filter.job_key {
        query.push(" AND job_key = ").push_bind(job_key);
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(reason) = filter.reason {
        query.push(" AND reason = ").push_bind(reason);
    }
    if let Some(target) = &filter.target {
        query.push(" AND target = ").push_bind(target);
    }
    if let Some(trigger_type) = filter.trigger_type {
        query.push(" AND trigger_type = ").push_bind(trigger_type);
    }
    if let Some(from) = filter.from {
        query.push(" AND scheduled_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND scheduled_at < ").push_bind(to);
    }
    push_keyset_tail(&mut query, "scheduled_at", after, limit);
    let rows: Vec<JobRun> = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.scheduled_at,
        id: r.id,
    }))
}
