//! Scheduled slots: the scheduler's inserts (running, skipped or missed), the watchdog's
//! missed rows, and what a retry after a lost reply gets back.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use super::{retire_finished_one_time, ClaimedRun, DueSlot, InsertedSlots, SlotBatch};
use crate::domain::incident::{Policy, Recorded};
use crate::domain::{JobRun, RunReason};
use crate::store::{incidents, StoreError};

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
         SELECT inserted.*, d.payload AS target_payload, d.cron_expression, d.timezone, d.timeout_ms AS job_timeout_ms FROM inserted JOIN cron_job_definitions d ON d.id = inserted.job_definition_id"
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
        "SELECT r.*, d.payload AS target_payload, d.cron_expression, d.timezone, d.timeout_ms AS job_timeout_ms
         FROM cron_job_runs r
         JOIN cron_job_definitions d ON d.id = r.job_definition_id
         WHERE r.id = ANY($1) AND r.status = 'running' AND r.scheduler_instance = $2",
    )
    .bind(&ids)
    .bind(instance)
    .fetch_all(conn)
    .await?)
}
