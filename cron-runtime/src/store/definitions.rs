//! Queries on `cron_job_definitions`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::page::push_keyset_tail;
use super::{incidents, notify, violated_constraint, Change, Cursor, Page, StoreError};
use crate::domain::incident::{Policy, Recorded};
use crate::domain::{JobDefinition, JobStatus, ManagedBy, ScheduleType};

pub use crate::domain::{NewDefinition, ScheduleSpec};

/// Filters of the job list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub target: Option<String>,
    pub schedule_type: Option<ScheduleType>,
    pub job_key: Option<String>,
}

const UNIQUE_LIVE_KEY: &str = "cron_job_definitions_one_live_per_key";
const UNIQUE_KEY_VERSION: &str = "cron_job_definitions_key_version";

/// Creates version 1 of a key, or the next version of a key whose versions are all retired.
#[tracing::instrument(skip_all, fields(job_key = %new.job_key))]
pub async fn create(pool: &PgPool, new: &NewDefinition) -> Result<JobDefinition, StoreError> {
    let mut tx = pool.begin().await?;
    match create_in(&mut tx, new).await {
        Err(StoreError::KeyTaken { job_key, .. }) => {
            drop(tx);
            Err(key_taken(pool, &job_key).await)
        }
        Err(e) => Err(e),
        Ok(created) => {
            tx.commit().await?;
            Ok(created)
        }
    }
}

/// [`create`] inside the caller's transaction (a taken key reports a nil `existing_id`).
pub async fn create_in(conn: &mut PgConnection, new: &NewDefinition) -> Result<JobDefinition, StoreError> {
    let created = match insert_next_version(conn, new, None).await {
        Err(StoreError::Database(e)) if is_key_conflict(&e) => {
            return Err(StoreError::KeyTaken {
                job_key: new.job_key.to_string(),
                existing_id: Uuid::nil(),
            })
        }
        other => other?,
    };
    notify(conn, Change::Definition(created.id)).await?;
    Ok(created)
}

/// Replaces the live definition `previous_id` with `new` (which keeps its key): the old one
/// is retired (by `new.created_by`) and the new one inserted as the next version, in one
/// transaction. Of several concurrent calls on the same definition exactly one succeeds; the
/// others find it retired. Only `writer` may version a definition it manages.
#[tracing::instrument(skip_all, fields(%previous_id))]
pub async fn new_version(
    pool: &PgPool,
    previous_id: Uuid,
    new: &NewDefinition,
    writer: ManagedBy,
) -> Result<JobDefinition, StoreError> {
    let mut tx = pool.begin().await?;
    let created = new_version_in(&mut tx, previous_id, new, writer).await?;
    tx.commit().await?;
    Ok(created)
}

/// [`new_version`] inside the caller's transaction. The API's new version is active; a jobs
/// file's keeps the pause of the version it replaces (`apply` leaves pause state alone).
pub async fn new_version_in(
    conn: &mut PgConnection,
    previous_id: Uuid,
    new: &NewDefinition,
    writer: ManagedBy,
) -> Result<JobDefinition, StoreError> {
    let previous = lock_live(conn, previous_id, writer, "new-version").await?;
    mark_retired(conn, previous_id, &new.created_by).await?;
    let keep_pause = (writer == ManagedBy::File && previous.status == JobStatus::Paused).then_some(&previous);
    let created = insert_next_version(conn, new, keep_pause).await?;
    notify(conn, Change::Definition(previous_id)).await?;
    notify(conn, Change::Definition(created.id)).await?;
    Ok(created)
}

/// active | paused → retired, by `actor` (SPEC §13's `DELETE /jobs/:id`). Only `writer` may
/// retire a definition it manages.
#[tracing::instrument(skip(pool, policy))]
pub async fn retire(
    pool: &PgPool,
    id: Uuid,
    actor: &str,
    writer: ManagedBy,
    policy: &Policy,
) -> Result<Recorded<JobDefinition>, StoreError> {
    let mut tx = pool.begin().await?;
    let retired = retire_in(&mut tx, id, actor, writer, policy).await?;
    tx.commit().await?;
    Ok(retired)
}

/// [`retire`] inside the caller's transaction, and the job key's open incident resolved
/// (`retired`), if it had one.
pub async fn retire_in(
    conn: &mut PgConnection,
    id: Uuid,
    actor: &str,
    writer: ManagedBy,
    policy: &Policy,
) -> Result<Recorded<JobDefinition>, StoreError> {
    lock_live(conn, id, writer, "retire").await?;
    let retired = mark_retired(conn, id, actor).await?;
    notify(conn, Change::Definition(id)).await?;
    // A new version keeps the key (and its incident); retiring the key ends it.
    let resolved = incidents::resolve_for_key(conn, &retired.job_key, "retired", policy).await?;
    Ok(Recorded {
        value: retired,
        transitions: resolved.into_iter().collect(),
    })
}

/// Stamps the definitions a long transaction activated and retired with one instant, taken
/// just before it commits: `active_since` of the ones now active, `retired_at` of the retired
/// ones. Slots count from when the scheduler can see the change, not from when the
/// transaction began (a jobs file applied in one transaction), so none is recorded `missed`
/// for the time the change was invisible, and a version's window ends where the next begins.
pub async fn stamp_changes_in(conn: &mut PgConnection, activated: &[Uuid], retired: &[Uuid]) -> Result<(), StoreError> {
    if activated.is_empty() && retired.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH stamp AS (SELECT clock_timestamp() AS at)
         UPDATE cron_job_definitions d
         SET active_since = CASE WHEN d.id = ANY($1) AND d.status = 'active' THEN stamp.at ELSE d.active_since END,
             retired_at = CASE WHEN d.id = ANY($2) AND d.status = 'retired' THEN stamp.at ELSE d.retired_at END
         FROM stamp
         WHERE d.id = ANY($1) OR d.id = ANY($2)",
    )
    .bind(activated)
    .bind(retired)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes jobs file `source` the owner of every version of `job_keys` that a file applied
/// before sources existed (`cronjobs apply` adopting them). Ownership is not part of a
/// version, so this versions nothing and the scheduler sees no change.
pub async fn adopt_in(conn: &mut PgConnection, job_keys: &[String], source: &str) -> Result<(), StoreError> {
    if job_keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE cron_job_definitions SET source = $2
         WHERE job_key = ANY($1) AND managed_by = 'file' AND source IS NULL",
    )
    .bind(job_keys)
    .bind(source)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks definition `id` for a change by `writer`: it must exist, be live, and be `writer`'s.
async fn lock_live(
    conn: &mut PgConnection,
    id: Uuid,
    writer: ManagedBy,
    action: &'static str,
) -> Result<JobDefinition, StoreError> {
    let current: Option<JobDefinition> =
        sqlx::query_as("SELECT * FROM cron_job_definitions WHERE id = $1 FOR NO KEY UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let current = current.ok_or(StoreError::JobNotFound(id))?;
    if current.status == JobStatus::Retired {
        return Err(StoreError::WrongStatus {
            id,
            actual: JobStatus::Retired,
            required: "active or paused",
            action,
        });
    }
    if current.managed_by != writer {
        return Err(StoreError::ManagedElsewhere {
            id,
            job_key: current.job_key,
            managed_by: current.managed_by,
            action,
        });
    }
    Ok(current)
}

async fn mark_retired(conn: &mut PgConnection, id: Uuid, actor: &str) -> Result<JobDefinition, StoreError> {
    let retired = sqlx::query_as(
        "UPDATE cron_job_definitions
         SET status = 'retired', retired_at = clock_timestamp(), retired_by = $2, updated_at = now()
         WHERE id = $1 RETURNING *",
    )
    .bind(id)
    .bind(actor)
    .fetch_one(&mut *conn)
    .await?;
    super::runs::cancel_waiting_retries(conn, id, actor).await?;
    Ok(retired)
}

/// Inserts `new` as the next version of its key: active, or paused like `paused_as`.
async fn insert_next_version(
    conn: &mut PgConnection,
    new: &NewDefinition,
    paused_as: Option<&JobDefinition>,
) -> Result<JobDefinition, StoreError> {
    let (schedule_type, cron_expression, run_at) = match &new.schedule {
        ScheduleSpec::Recurring { cron_expression } => (ScheduleType::Recurring, Some(cron_expression.as_str()), None),
        ScheduleSpec::OneTime { run_at } => (ScheduleType::OneTime, None, Some(*run_at)),
    };
    let pause = paused_as.map(|p| (p.pause_reason.as_deref(), p.paused_at, p.paused_by.as_deref()));
    let created = sqlx::query_as(
        "INSERT INTO cron_job_definitions
             (id, job_key, version, target, schedule_type, cron_expression, timezone, run_at,
              payload, description, status, created_by, managed_by, pause_reason, paused_at, paused_by,
              active_since, source, timeout_ms,
              retry_max_attempts, retry_initial_delay_ms, retry_max_delay_ms, retry_multiplier)
         SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9,
                CASE WHEN $12::text IS NULL THEN 'active' ELSE 'paused' END, $10, $11, $12, $13, $14,
                clock_timestamp(), $15, $16, $17, $18, $19, $20
         FROM cron_job_definitions WHERE job_key = $2
         RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(new.job_key.as_str())
    .bind(&new.target)
    .bind(schedule_type)
    .bind(cron_expression)
    .bind(&new.timezone)
    .bind(run_at)
    .bind(&new.payload)
    .bind(&new.description)
    .bind(&new.created_by)
    .bind(new.managed_by)
    .bind(pause.and_then(|p| p.0))
    .bind(pause.and_then(|p| p.1))
    .bind(pause.and_then(|p| p.2))
    .bind(&new.source)
    .bind(new.timeout.map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)))
    .bind(new.retry.max_attempts)
    .bind(new.retry.initial_delay_ms)
    .bind(new.retry.max_delay_ms)
    .bind(new.retry.multiplier)
    .fetch_one(conn)
    .await?;
    Ok(created)
}

fn is_key_conflict(error: &sqlx::Error) -> bool {
    matches!(violated_constraint(error), Some(UNIQUE_LIVE_KEY | UNIQUE_KEY_VERSION))
}

async fn key_taken(pool: &PgPool, job_key: &str) -> StoreError {
    let existing: Result<Option<Uuid>, _> =
        sqlx::query_scalar("SELECT id FROM cron_job_definitions WHERE job_key = $1 AND status <> 'retired'")
            .bind(job_key)
            .fetch_optional(pool)
            .await;
    match existing {
        Ok(existing) => StoreError::KeyTaken {
            job_key: job_key.to_owned(),
            // A concurrent create that won and was retired since is vanishingly rare; nil says "unknown".
            existing_id: existing.unwrap_or_else(Uuid::nil),
        },
        Err(e) => e.into(),
    }
}

/// The live (active or paused) version of `job_key`.
pub async fn get_live(pool: &PgPool, job_key: &str) -> Result<JobDefinition, StoreError> {
    sqlx::query_as("SELECT * FROM cron_job_definitions WHERE job_key = $1 AND status <> 'retired'")
        .bind(job_key)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::NoLiveJob(job_key.to_owned()))
}

/// Reads one definition.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<JobDefinition, StoreError> {
    sqlx::query_as("SELECT * FROM cron_job_definitions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::JobNotFound(id))
}

/// Lists definitions newest first, `limit` at a time, continuing after `after`.
pub async fn list(
    pool: &PgPool,
    filter: &JobFilter,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<JobDefinition>, StoreError> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT * FROM cron_job_definitions WHERE TRUE");
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(target) = &filter.target {
        query.push(" AND target = ").push_bind(target);
    }
    if let Some(schedule_type) = filter.schedule_type {
        query.push(" AND schedule_type = ").push_bind(schedule_type);
    }
    if let Some(job_key) = &filter.job_key {
        query.push(" AND job_key = ").push_bind(job_key);
    }
    push_keyset_tail(&mut query, "created_at", after, limit);
    let rows: Vec<JobDefinition> = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, limit, |d| Cursor {
        at: d.created_at,
        id: d.id,
    }))
}

/// Every live (active or paused) definition, by key.
pub async fn list_live(pool: &PgPool) -> Result<Vec<JobDefinition>, StoreError> {
    Ok(
        sqlx::query_as("SELECT * FROM cron_job_definitions WHERE status <> 'retired' ORDER BY job_key")
            .fetch_all(pool)
            .await?,
    )
}

/// The newest version of every key, retired or not (what `cronjobs apply` compares a file with).
pub async fn latest_versions_in(conn: &mut PgConnection) -> Result<Vec<JobDefinition>, StoreError> {
    Ok(
        sqlx::query_as("SELECT DISTINCT ON (job_key) * FROM cron_job_definitions ORDER BY job_key, version DESC")
            .fetch_all(conn)
            .await?,
    )
}

/// Every active definition: what the scheduler arms timers for.
pub async fn list_active(pool: &PgPool) -> Result<Vec<JobDefinition>, StoreError> {
    Ok(
        sqlx::query_as("SELECT * FROM cron_job_definitions WHERE status = 'active'")
            .fetch_all(pool)
            .await?,
    )
}

/// A cheap summary of the active definitions: it changes whenever one is added, removed,
/// paused or resumed. The scheduler's reconcile compares it before reloading everything.
pub async fn active_fingerprint(pool: &PgPool) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
    Ok(
        sqlx::query_as("SELECT count(*), max(updated_at) FROM cron_job_definitions WHERE status = 'active'")
            .fetch_one(pool)
            .await?,
    )
}

/// `active` → `paused`, recording why and by whom. Any other status is a conflict. Pausing a
/// failing job ends its incident (SPEC §12): nobody waits for its recovery.
#[tracing::instrument(skip(pool, reason, policy))]
pub async fn pause(
    pool: &PgPool,
    id: Uuid,
    reason: &str,
    actor: &str,
    policy: &Policy,
) -> Result<Recorded<JobDefinition>, StoreError> {
    transition(
        pool,
        id,
        "UPDATE cron_job_definitions
         SET status = 'paused', pause_reason = $2, paused_at = now(), paused_by = $3, updated_at = now()
         WHERE id = $1 AND status = 'active' RETURNING *",
        &[reason, actor],
        ("active", "pause"),
        Some(("paused", policy)),
    )
    .await
}

/// `paused` → `active` by `actor`, clearing the pause record. Its slots count from now on: the
/// paused window is not replayed, nor recorded as missed. Any other status is a conflict.
#[tracing::instrument(skip(pool))]
pub async fn resume(pool: &PgPool, id: Uuid, actor: &str) -> Result<JobDefinition, StoreError> {
    transition(
        pool,
        id,
        "UPDATE cron_job_definitions
         SET status = 'active', pause_reason = NULL, paused_at = NULL, paused_by = NULL,
             active_since = clock_timestamp(), resumed_at = clock_timestamp(), resumed_by = $2,
             updated_at = now()
         WHERE id = $1 AND status = 'paused' RETURNING *",
        &[actor],
        ("paused", "resume"),
        None,
    )
    .await
    .map(|resumed| resumed.value)
}

/// Runs a conditional status update; when it matches nothing, says whether the job is
/// missing or in the wrong status (never overwrites a concurrent change).
async fn transition(
    pool: &PgPool,
    id: Uuid,
    sql: &'static str,
    binds: &[&str],
    (required, action): (&'static str, &'static str),
    resolves: Option<(&str, &Policy)>,
) -> Result<Recorded<JobDefinition>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut query = sqlx::query_as::<_, JobDefinition>(sql).bind(id);
    for value in binds {
        query = query.bind(*value);
    }
    match query.fetch_optional(&mut *tx).await? {
        Some(updated) => {
            notify(&mut tx, Change::Definition(id)).await?;
            let resolved = match resolves {
                Some((by, policy)) => incidents::resolve_for_key(&mut tx, &updated.job_key, by, policy).await?,
                None => None,
            };
            tx.commit().await?;
            Ok(Recorded {
                value: updated,
                transitions: resolved.into_iter().collect(),
            })
        }
        None => {
            let current = get(pool, id).await?;
            Err(StoreError::WrongStatus {
                id,
                actual: current.status,
                required,
                action,
            })
        }
    }
}
