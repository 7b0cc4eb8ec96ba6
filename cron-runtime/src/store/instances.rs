//! Queries on `cron_scheduler_instances`: the schedulers that are up, what their builds can
//! run, and whether they are alive (SPEC §11).
//!
//! | change                   | owner                                              |
//! |--------------------------|----------------------------------------------------|
//! | (new) / refreshed        | the scheduler itself, at start and every heartbeat |
//! | `stopping_since` set     | the scheduler itself, on SIGTERM                   |
//! | deleted                  | the scheduler itself, after a clean exit; the sweep, a day after an instance died |

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::StoreError;

/// SQL condition on an instance row `i`: it heartbeated within 5 of its own heartbeat intervals.
pub(crate) const ALIVE: &str = "i.last_seen_at > now() - make_interval(secs => i.heartbeat_interval_ms * 5 / 1000.0)";

/// SQL condition on an instance row `i`: alive and not shutting down, so it starts new runs.
pub(crate) const ACCEPTING: &str = "i.stopping_since IS NULL
    AND i.last_seen_at > now() - make_interval(secs => i.heartbeat_interval_ms * 5 / 1000.0)";

/// How long the row of an instance that died stays listed (with `alive: false`).
const FORGET_DEAD_AFTER: &str = "1 day";

/// What a scheduler says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration<'a> {
    pub instance: &'a str,
    pub hostname: &'a str,
    pub version: &'a str,
    pub commit: Option<&'a str>,
    pub targets: &'a [&'a str],
    pub heartbeat_every: Duration,
    /// This process's clock minus the database's, as last measured.
    pub clock_offset_ms: Option<i64>,
    /// The settings every process of a cluster must agree on, as this one reads them.
    pub settings: &'a serde_json::Value,
}

/// A row of `cron_scheduler_instances`, with whether it is alive; the API's view of a scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Scheduler)]
pub struct SchedulerInstance {
    pub instance: String,
    pub hostname: String,
    pub version: String,
    pub commit: Option<String>,
    /// The targets compiled into its build.
    pub targets: Vec<String>,
    pub heartbeat_interval_ms: i64,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// When it received SIGTERM: it finishes its runs and starts no new ones.
    pub stopping_since: Option<DateTime<Utc>>,
    /// Its clock minus the database's, in milliseconds, at its last heartbeat.
    pub clock_offset_ms: Option<i64>,
    /// `CRON_MISSED_AFTER`, `CRON_STALE_AFTER` and a digest of the webhook URLs as it reads them.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// It heartbeated within 5 of its heartbeat intervals.
    pub alive: bool,
}

/// Inserts or refreshes the instance's row (`last_seen_at` = now). A row deleted meanwhile
/// comes back; `stopping_since` survives a refresh. Returns the database's clock.
pub async fn heartbeat(conn: impl sqlx::PgExecutor<'_>, me: &Registration<'_>) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO cron_scheduler_instances
             (instance, hostname, version, commit, targets, heartbeat_interval_ms, clock_offset_ms, settings)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (instance) DO UPDATE
             SET last_seen_at = now(), clock_offset_ms = EXCLUDED.clock_offset_ms, settings = EXCLUDED.settings
         RETURNING clock_timestamp()",
    )
    .bind(me.instance)
    .bind(me.hostname)
    .bind(me.version)
    .bind(me.commit)
    .bind(me.targets)
    .bind(i64::try_from(me.heartbeat_every.as_millis()).unwrap_or(i64::MAX).max(1))
    .bind(me.clock_offset_ms)
    .bind(me.settings)
    .fetch_one(conn)
    .await?)
}

/// The settings published by the other alive instances that differ from `settings`, by instance.
pub async fn disagreeing(
    pool: &PgPool,
    instance: &str,
    settings: &serde_json::Value,
) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    let sql = format!(
        "SELECT i.instance, i.settings FROM cron_scheduler_instances i
         WHERE {ALIVE} AND i.instance <> $1 AND i.settings <> '{{}}'::jsonb AND i.settings <> $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(instance)
        .bind(settings)
        .fetch_all(pool)
        .await?)
}

/// Records that the instance received SIGTERM: it no longer counts for new runs.
pub async fn mark_stopping(pool: &PgPool, instance: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cron_scheduler_instances SET stopping_since = COALESCE(stopping_since, now()), last_seen_at = now()
         WHERE instance = $1",
    )
    .bind(instance)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes the instance's row after a clean exit.
pub async fn remove(pool: &PgPool, instance: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM cron_scheduler_instances WHERE instance = $1")
        .bind(instance)
        .execute(pool)
        .await?;
    Ok(())
}

/// Removes rows of instances dead for a day whose runs were all ended (by the sweep).
pub async fn forget_dead(pool: &PgPool) -> Result<u64, StoreError> {
    let sql = format!(
        "DELETE FROM cron_scheduler_instances i
         WHERE i.last_seen_at < now() - interval '{FORGET_DEAD_AFTER}'
           AND NOT EXISTS (SELECT 1 FROM cron_job_runs r
                           WHERE r.status = 'running' AND r.scheduler_instance = i.instance)"
    );
    Ok(sqlx::query(&sql).execute(pool).await?.rows_affected())
}

/// Every known instance, alive ones first, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<SchedulerInstance>, StoreError> {
    let sql = format!(
        "SELECT i.*, ({ALIVE}) AS alive FROM cron_scheduler_instances i
         ORDER BY ({ALIVE}) DESC, started_at DESC, instance"
    );
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

/// What the live schedulers can run, as of now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveTargets {
    /// Alive instances that accept new runs.
    pub accepting: usize,
    /// The targets of their builds.
    pub targets: HashSet<String>,
}

impl LiveTargets {
    /// Whether a live scheduler has `target` in its build.
    pub fn has(&self, target: &str) -> bool {
        self.targets.contains(target)
    }
}

/// The targets of every alive, accepting instance.
pub async fn live_targets(conn: impl sqlx::PgExecutor<'_>) -> Result<LiveTargets, StoreError> {
    let sql = format!("SELECT i.targets FROM cron_scheduler_instances i WHERE {ACCEPTING}");
    let rows: Vec<Vec<String>> = sqlx::query_scalar(&sql).fetch_all(conn).await?;
    Ok(LiveTargets {
        accepting: rows.len(),
        targets: rows.into_iter().flatten().collect(),
    })
}

/// When each known instance counted as alive: from its start to 5 of its heartbeat intervals
/// after it was last seen. A slot no window covers had no scheduler at its time.
pub async fn alive_windows(conn: impl sqlx::PgExecutor<'_>) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT i.started_at, i.last_seen_at + make_interval(secs => i.heartbeat_interval_ms * 5 / 1000.0)
         FROM cron_scheduler_instances i",
    )
    .fetch_all(conn)
    .await?)
}

/// How many instances are alive (for the `cronjobs_schedulers_alive` gauge).
pub async fn count_alive(pool: &PgPool) -> Result<i64, StoreError> {
    let sql = format!("SELECT count(*) FROM cron_scheduler_instances i WHERE {ALIVE}");
    Ok(sqlx::query_scalar(&sql).fetch_one(pool).await?)
}
