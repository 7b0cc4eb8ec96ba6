//! Queries on `cron_job_runs`. See [`crate::domain::run`] for the state machine these
//! queries implement; each function names the transition it owns.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{incidents, instances, notify, Change, Cursor, Page, StoreError};
use crate::domain::incident::{Policy, Recorded};
use crate::domain::{JobDefinition, JobRun, JobStatus, RunReason, RunStatus, ScheduleType, TriggerType};

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
    Succeeded { output: Value },
    Failed { reason: RunReason, error: String },
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

/// (new) → `running` (owned by `instance`), `skipped` or `missed` for a batch of due slots, in
/// one transaction that is safe to repeat.
///
/// The slot guard makes every slot a single row however many replicas (and the watchdog)
/// insert it, and the replica whose insert made the row executes it: a slot is inserted
/// already claimed, so each run row is written twice (inserted, finished), not three times.
/// The one-active-run-per-key index makes the overlap check race-free: a slot that found an
/// active run is recorded `skipped`. Slots of definitions no longer active are dropped.
///
/// Idempotent: when a call's commit succeeded but its reply was lost, the retry finds its
/// slots taken; the rows with the slots' own run ids still `running` under `instance` are
/// returned again to be executed: only an earlier attempt of the same batch can have written
/// them. A slot fired twice (a one-time job re-armed by a reload, another replica) carries
/// other ids and gets nothing back. See docs/decisions.md and docs/reliability.md.
#[tracing::instrument(skip_all, fields(start = batch.start.len(), missed = batch.missed.len()))]
pub async fn insert_scheduled(
    pool: &PgPool,
    batch: SlotBatch<'_>,
    instance: &str,
    policy: &Policy,
) -> Result<Recorded<InsertedSlots>, StoreError> {
    if batch.len() == 0 {
        return Ok(Recorded::quiet(InsertedSlots::default()));
    }
    let mut tx = pool.begin().await?;
    let mut running = insert_running(&mut tx, &SlotColumns::of(batch.start), instance).await?;
    if running.len() == batch.len() {
        // The common case: one statement, one commit.
        tx.commit().await?;
        return Ok(Recorded::quiet(InsertedSlots {
            running,
            ..InsertedSlots::default()
        }));
    }
    let not_started = slots_without(batch.start, running.iter().map(|c| &c.run));
    let skipped = insert_skipped(&mut tx, &SlotColumns::of(&not_started)).await?;
    let reasons = vec![batch.missed_reason; batch.missed.len()];
    let missed = insert_missed(&mut tx, batch.missed, &reasons, MissedBy::Scheduler(instance)).await?;
    let unrecorded: Vec<DueSlot> = slots_without(&not_started, skipped.iter())
        .into_iter()
        .chain(slots_without(batch.missed, missed.iter()))
        .collect();
    running.extend(owned_running(&mut tx, &unrecorded, instance).await?);
    let deferred = busy_one_time(&mut tx, &unrecorded, &running).await?;
    retire_finished_one_time(&mut tx, skipped.iter().chain(&missed)).await?;
    let transitions = incidents::record_outcomes(&mut tx, &missed, policy).await?;
    tx.commit().await?;
    Ok(Recorded {
        value: InsertedSlots {
            running,
            skipped,
            missed,
            deferred,
        },
        transitions,
    })
}

/// The one-time slots of `unrecorded` (none of them in `running`) of definitions still active
/// that have no row: their key was busy.
async fn busy_one_time(
    conn: &mut PgConnection,
    unrecorded: &[DueSlot],
    running: &[ClaimedRun],
) -> Result<Vec<DueSlot>, StoreError> {
    let started: HashSet<Uuid> = running.iter().map(|r| r.run.id).collect();
    let one_time: Vec<&DueSlot> = unrecorded
        .iter()
        .filter(|s| !s.recurring && !started.contains(&s.run_id))
        .collect();
    if one_time.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = one_time.iter().map(|s| s.definition_id).collect();
    let times: Vec<DateTime<Utc>> = one_time.iter().map(|s| s.scheduled_at).collect();
    let waiting: Vec<Uuid> = sqlx::query_scalar(
        "SELECT s.definition_id FROM UNNEST($1::uuid[], $2::timestamptz[]) AS s(definition_id, scheduled_at)
         JOIN cron_job_definitions d ON d.id = s.definition_id AND d.status = 'active'
         WHERE NOT EXISTS (SELECT 1 FROM cron_job_runs r
                           WHERE r.job_definition_id = s.definition_id AND r.scheduled_at = s.scheduled_at
                             AND r.trigger_type = 'scheduled')",
    )
    .bind(&ids)
    .bind(&times)
    .fetch_all(&mut *conn)
    .await?;
    Ok(one_time
        .into_iter()
        .filter(|s| waiting.contains(&s.definition_id))
        .cloned()
        .collect())
}

/// The slots of `slots` that none of `runs` records.
fn slots_without<'r>(slots: &[DueSlot], runs: impl Iterator<Item = &'r JobRun>) -> Vec<DueSlot> {
    let recorded: HashSet<(Uuid, DateTime<Utc>)> = runs.map(|r| (r.job_definition_id, r.scheduled_at)).collect();
    slots
        .iter()
        .filter(|s| !recorded.contains(&(s.definition_id, s.scheduled_at)))
        .cloned()
        .collect()
}

/// Due slots as the column arrays `UNNEST` takes.
struct SlotColumns<'a> {
    ids: Vec<Uuid>,
    definition_ids: Vec<Uuid>,
    keys: Vec<&'a str>,
    versions: Vec<i32>,
    targets: Vec<&'a str>,
    times: Vec<DateTime<Utc>>,
}

impl<'a> SlotColumns<'a> {
    fn of(slots: &'a [DueSlot]) -> Self {
        SlotColumns {
            ids: slots.iter().map(|s| s.run_id).collect(),
            definition_ids: slots.iter().map(|s| s.definition_id).collect(),
            keys: slots.iter().map(|s| s.job_key.as_str()).collect(),
            versions: slots.iter().map(|s| s.job_version).collect(),
            targets: slots.iter().map(|s| s.target.as_str()).collect(),
            times: slots.iter().map(|s| s.scheduled_at).collect(),
        }
    }

    /// Binds the arrays as `$1` .. `$6` of a query selecting `FROM` [`DUE_SLOTS`] or [`UNRECORDED_SLOTS`].
    fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(&self.ids)
            .bind(&self.definition_ids)
            .bind(&self.keys)
            .bind(&self.versions)
            .bind(&self.targets)
            .bind(&self.times)
    }
}

/// The slots of [`SlotColumns::bind`], as rows `s`, of definitions still active, and (recurring ones) active since before the
/// slot: one paused or retired a moment ago, or paused and resumed while this scheduler did not
/// hear of it, does not fire for a slot outside its current active window. In a definition's
/// first minute, a slot another version of the key recorded already is not its slot: a
/// replica that had not yet heard of a new version may have fired the old one for it (the
/// slot guard is per definition), and the new version's catch-up must not run it again.
const DUE_SLOTS: &str = "UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::timestamptz[])
         AS s(id, definition_id, job_key, job_version, target, scheduled_at)
     JOIN cron_job_definitions d ON d.id = s.definition_id AND d.status = 'active'
         AND (d.schedule_type = 'one_time' OR s.scheduled_at > d.active_since)
         AND (s.scheduled_at > d.active_since + interval '1 minute' OR NOT EXISTS (
             SELECT 1 FROM cron_job_runs o
             WHERE o.job_key = s.job_key AND o.scheduled_at = s.scheduled_at
               AND o.trigger_type = 'scheduled' AND o.job_definition_id <> s.definition_id))";

/// The slots of [`SlotColumns::bind`], as rows `s`, that the watchdog records: a slot of the key that another version recorded
/// already (at a version change) is accounted for.
const UNRECORDED_SLOTS: &str =
    "(SELECT u.* FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::timestamptz[])
             AS u(id, definition_id, job_key, job_version, target, scheduled_at)
         WHERE NOT EXISTS (
             SELECT 1 FROM cron_job_runs o
             WHERE o.job_key = u.job_key AND o.scheduled_at = u.scheduled_at AND o.trigger_type = 'scheduled')
     ) AS s";

async fn insert_running(
    conn: &mut PgConnection,
    slots: &SlotColumns<'_>,
    instance: &str,
) -> Result<Vec<ClaimedRun>, StoreError> {
    if slots.ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH inserted AS (
             INSERT INTO cron_job_runs
                 (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at,
                  status, started_at, heartbeat_at, scheduler_instance)
             SELECT s.id, s.definition_id, s.job_key, s.job_version, s.target, 'scheduled', s.scheduled_at,
                    'running', clock_timestamp(), clock_timestamp(), $7
             FROM {DUE_SLOTS}
             ON CONFLICT DO NOTHING
             RETURNING *
         )
         SELECT inserted.*, d.payload AS target_payload, d.cron_expression, d.timezone FROM inserted JOIN cron_job_definitions d ON d.id = inserted.job_definition_id"
    );
    Ok(slots.bind(sqlx::query_as(&sql)).bind(instance).fetch_all(conn).await?)
}

async fn insert_skipped(conn: &mut PgConnection, slots: &SlotColumns<'_>) -> Result<Vec<JobRun>, StoreError> {
    if slots.ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO cron_job_runs
             (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at,
              status, finished_at, reason, error)
         SELECT s.id, s.definition_id, s.job_key, s.job_version, s.target, 'scheduled', s.scheduled_at,
                'skipped', now(), 'overlap',
                COALESCE('skipped: run ' || (
                    SELECT a.id FROM cron_job_runs a
                    WHERE a.job_key = s.job_key AND a.status IN ('pending', 'running') LIMIT 1
                ) || ' of this job was still active (overlap policy: skip)',
                'skipped: another run of this job was active (overlap policy: skip)')
         FROM {DUE_SLOTS}
         WHERE d.schedule_type = 'recurring'
         ON CONFLICT DO NOTHING
         RETURNING *"
    );
    Ok(slots.bind(sqlx::query_as(&sql)).fetch_all(conn).await?)
}

/// Who records a slot as missed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MissedBy<'a> {
    /// The scheduler (instance) that could not start it: only slots of the definition's current
    /// active window count (it may not have heard of a pause while the database was away).
    Scheduler(&'a str),
    /// The watchdog, which computes each definition's windows itself.
    Watchdog,
}

/// (new) → `missed` for slots that were not started in time, each with its reason. Slots
/// recorded already are left as they are (the slot guard), so a late scheduler and the watchdog
/// never both win.
pub(crate) async fn insert_missed(
    conn: &mut PgConnection,
    slots: &[DueSlot],
    reasons: &[RunReason],
    by: MissedBy<'_>,
) -> Result<Vec<JobRun>, StoreError> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let columns = SlotColumns::of(slots);
    let errors: Vec<&str> = reasons.iter().map(|r| r.missed_message()).collect();
    let reasons: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
    let (slots_sql, instance) = match by {
        MissedBy::Scheduler(instance) => (DUE_SLOTS, Some(instance)),
        MissedBy::Watchdog => (UNRECORDED_SLOTS, None),
    };
    let sql = format!(
        "INSERT INTO cron_job_runs
             (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at,
              status, finished_at, reason, error, scheduler_instance)
         SELECT s.id, s.definition_id, s.job_key, s.job_version, s.target, 'scheduled', s.scheduled_at,
                'missed', clock_timestamp(), m.reason, m.error, $9
         FROM {slots_sql}
         JOIN UNNEST($1::uuid[], $7::text[], $8::text[]) AS m(id, reason, error) ON m.id = s.id
         ON CONFLICT DO NOTHING
         RETURNING *"
    );
    Ok(columns
        .bind(sqlx::query_as(&sql))
        .bind(reasons)
        .bind(errors)
        .bind(instance)
        .fetch_all(conn)
        .await?)
}

/// The runs of `slots` that are `running` under `instance` with the slots' own run ids: what
/// an earlier attempt of the same batch inserted when its reply was lost.
async fn owned_running(
    conn: &mut PgConnection,
    slots: &[DueSlot],
    instance: &str,
) -> Result<Vec<ClaimedRun>, StoreError> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = slots.iter().map(|s| s.run_id).collect();
    Ok(sqlx::query_as(
        "SELECT r.*, d.payload AS target_payload, d.cron_expression, d.timezone
         FROM cron_job_runs r
         JOIN cron_job_definitions d ON d.id = r.job_definition_id
         WHERE r.id = ANY($1) AND r.status = 'running' AND r.scheduler_instance = $2",
    )
    .bind(&ids)
    .bind(instance)
    .fetch_all(conn)
    .await?)
}

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
        let manual = Manual {
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
struct Manual<'a> {
    definition: &'a JobDefinition,
    actor: &'a str,
    payload: Option<&'a Value>,
}

async fn insert_manual(
    conn: &mut PgConnection,
    manual: &Manual<'_>,
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
}

/// `pending` → `running` for up to `limit` pending runs of the given targets, oldest first:
/// run-now requests (and runs left `pending` by an older version of the scheduler). Only
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
             ORDER BY scheduled_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         RETURNING r.*, COALESCE(r.payload, d.payload) AS target_payload, d.cron_expression, d.timezone",
    )
    .bind(targets)
    .bind(limit)
    .bind(instance)
    .fetch_all(pool)
    .await?)
}

/// Manual runs `running` under `instance` other than `executing`: what a claim whose reply was
/// lost took. Only sound while no other claim of `instance` is in flight (the scheduler claims
/// one batch at a time) and `executing` lists every run it started.
pub async fn claimed_not_executing(
    pool: &PgPool,
    instance: &str,
    executing: &[Uuid],
) -> Result<Vec<ClaimedRun>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT r.*, COALESCE(r.payload, d.payload) AS target_payload, d.cron_expression, d.timezone FROM cron_job_runs r JOIN cron_job_definitions d ON d.id = r.job_definition_id
         WHERE r.status = 'running' AND r.trigger_type = 'manual' AND r.scheduler_instance = $1
           AND r.id <> ALL($2::uuid[])",
    )
    .bind(instance)
    .bind(executing)
    .fetch_all(pool)
    .await?)
}

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
    retire_finished_one_time(&mut tx, &finished).await?;
    // Only the runs this call ended: an earlier attempt's (below) were counted by it.
    let transitions = incidents::record_outcomes(&mut tx, &finished, policy).await?;
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
    let failed: Vec<JobRun> = sqlx::query_as(
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
    retire_finished_one_time(&mut tx, &failed).await?;
    let transitions = incidents::record_outcomes(&mut tx, &failed, policy).await?;
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
    let failed: Vec<JobRun> = sqlx::query_as(&sql).bind(reconnected_at).fetch_all(&mut *tx).await?;
    retire_finished_one_time(&mut tx, &failed).await?;
    let transitions = incidents::record_outcomes(&mut tx, &failed, policy).await?;
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
    let failed: Vec<JobRun> = sqlx::query_as(
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
    retire_finished_one_time(&mut tx, &failed).await?;
    let transitions = incidents::record_outcomes(&mut tx, &failed, policy).await?;
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
         WHERE r.status = 'pending' AND r.created_at < clock_timestamp() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM live WHERE r.target = ANY(live.targets))
         RETURNING r.*",
        accepting = instances::ACCEPTING
    );
    Ok(sqlx::query_as(&sql)
        .bind(missed_after.as_secs_f64())
        .bind(RunReason::TargetUnavailable.missed_message())
        .bind(RunReason::NoScheduler.missed_message())
        .fetch_all(conn)
        .await?)
}

/// active → retired for one-time definitions whose scheduled run reached a terminal status.
async fn retire_finished_one_time<'r>(
    conn: &mut PgConnection,
    runs: impl IntoIterator<Item = &'r JobRun>,
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = runs
        .into_iter()
        .filter(|r| r.trigger_type == TriggerType::Scheduled && r.status.is_terminal())
        .map(|r| r.job_definition_id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let retired: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE cron_job_definitions SET status = 'retired', retired_at = now(), retired_by = 'scheduler', updated_at = now()
         WHERE id = ANY($1) AND schedule_type = 'one_time' AND status <> 'retired'
         RETURNING id",
    )
    .bind(ids)
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
    if let Some(cursor) = after {
        query
            .push(" AND (scheduled_at, id) < (")
            .push_bind(cursor.at)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    query
        .push(" ORDER BY scheduled_at DESC, id DESC LIMIT ")
        .push_bind(limit as i64 + 1);
    let rows: Vec<JobRun> = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.scheduled_at,
        id: r.id,
    }))
}

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
