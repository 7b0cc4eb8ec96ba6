//! Diagnostic targets, for operators and for the service's own tests and benchmarks.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use cron_runtime::{cron_target, JobContext};
use serde::{Deserialize, Deserializer, Serialize};

/// Logs "cron heartbeat" with the job key, slot and run id. Schedule it to check that the
/// scheduler fires jobs.
#[cron_target("system.heartbeat", timeout = "1m")]
pub async fn heartbeat(ctx: JobContext) -> anyhow::Result<()> {
    tracing::info!(
        job_key = %ctx.job_key,
        slot = %ctx.scheduled_at,
        run_id = %ctx.run_id,
        "cron heartbeat"
    );
    Ok(())
}

/// The payload of `system.sleep`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    /// How long to sleep, in seconds (0 to 86400; fractions allowed).
    #[serde(deserialize_with = "sleep_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub seconds: f64,
    /// Hold a connection of the application's pool (`ctx.db()`) while sleeping, like a
    /// target in a long transaction (tests use it to exhaust the pool).
    #[serde(default)]
    pub hold_connection: bool,
    /// Keep sleeping when the run is cancelled, like a handler that never checks
    /// `ctx.cancelled()` (tests use it to prove such a handler is aborted).
    #[serde(default)]
    pub ignore_cancellation: bool,
}

/// The longest `system.sleep` accepts: one day.
pub const MAX_SLEEP_SECONDS: f64 = 86_400.0;

fn sleep_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    if (0.0..=MAX_SLEEP_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be between 0 and {MAX_SLEEP_SECONDS} seconds (got {seconds})"
        )))
    }
}

/// The output of `system.sleep`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slept {
    pub slept_seconds: f64,
}

/// Sleeps for `seconds` (0 to 86400), then succeeds; fails with "cancelled" if the run is
/// cancelled first (timeout or shutdown). Use it to test timeouts, overlap and shutdown;
/// with `hold_connection`, it also holds a database connection while it sleeps.
#[cron_target("system.sleep", timeout = "1day 1m")]
pub async fn sleep(ctx: JobContext, args: SleepArgs) -> anyhow::Result<Slept> {
    let duration = Duration::try_from_secs_f64(args.seconds)
        .with_context(|| format!("cannot sleep for {} seconds", args.seconds))?;
    let _held = match args.hold_connection {
        true => Some(ctx.db().acquire().await.context("cannot get a database connection")?),
        false => None,
    };
    let cancelled = async {
        match args.ignore_cancellation {
            true => std::future::pending().await,
            false => ctx.cancelled().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(duration) => Ok(Slept { slept_seconds: args.seconds }),
        () = cancelled => Err(anyhow!("cancelled")),
    }
}

/// The payload of `system.fail`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailArgs {
    /// The error the run fails with.
    pub message: String,
}

/// Always fails, with the payload's `message` as the run's error. Use it to test alerting and
/// the failed-run path.
#[cron_target("system.fail", timeout = "1m")]
pub async fn fail(_ctx: JobContext, args: FailArgs) -> anyhow::Result<()> {
    Err(anyhow!(args.message))
}

/// Panics ("system.panic was asked to panic"). The run must be recorded as failed with that
/// message and the scheduler must carry on: the scheduler's tests use it to prove both.
#[cron_target("system.panic", timeout = "1m")]
pub async fn panic(_ctx: JobContext) -> anyhow::Result<()> {
    panic!("system.panic was asked to panic")
}

/// Inserts a row (run id, job key, slot, time of execution) into `cron_test_executions`,
/// creating the table if needed. Tests and benchmarks count executions with it; the table's
/// primary key on run_id makes a run that executes twice fail.
#[cron_target("system.record", timeout = "1m")]
pub async fn record(ctx: JobContext) -> anyhow::Result<()> {
    match insert_execution(&ctx).await {
        Err(e) if is_undefined_table(&e) => {
            create_executions_table(&ctx).await?;
            insert_execution(&ctx).await?;
        }
        result => {
            result?;
        }
    }
    Ok(())
}

async fn insert_execution(ctx: &JobContext) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cron_test_executions (run_id, job_key, scheduled_at, executed_at) \
         VALUES ($1, $2, $3, clock_timestamp())",
    )
    .bind(ctx.run_id)
    .bind(&ctx.job_key)
    .bind(ctx.scheduled_at)
    .execute(ctx.db())
    .await?;
    Ok(())
}

/// Creates `cron_test_executions`. Two concurrent `CREATE TABLE IF NOT EXISTS` can both try to
/// create it and one fail (on `pg_type`), so creation is serialized with an advisory lock.
async fn create_executions_table(ctx: &JobContext) -> Result<(), sqlx::Error> {
    let mut tx = ctx.db().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cron_test_executions'))")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS cron_test_executions (\
             run_id uuid PRIMARY KEY, \
             job_key text NOT NULL, \
             scheduled_at timestamptz NOT NULL, \
             executed_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

fn is_undefined_table(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P01")
}
