//! Diagnostic targets, for operators and for the service's own tests and benchmarks.
//!
//! `system.heartbeat` is always on (the Definition-of-Done job runs it). The others are marked
//! `diagnostic`, off unless the process runs with `CRON_DIAGNOSTIC_TARGETS=1`: they panic, fail,
//! hold run capacity for up to a day or create a table on purpose, which no production job needs.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use cron_runtime::store::runs::Pruned;
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
#[cron_target("system.sleep", timeout = "1day 1m", diagnostic)]
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
#[cron_target("system.fail", timeout = "1m", diagnostic)]
pub async fn fail(_ctx: JobContext, args: FailArgs) -> anyhow::Result<()> {
    Err(anyhow!(args.message))
}

/// Panics ("system.panic was asked to panic"). The run must be recorded as failed with that
/// message and the scheduler must carry on: the scheduler's tests use it to prove both.
#[cron_target("system.panic", timeout = "1m", diagnostic)]
pub async fn panic(_ctx: JobContext) -> anyhow::Result<()> {
    panic!("system.panic was asked to panic")
}

/// The payload of `system.record` (every field optional: `{}` records and returns at once).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordArgs {
    /// Work this long after recording the start, in milliseconds (0 to 600000).
    #[serde(default)]
    #[schemars(range(min = 0, max = 600_000))]
    pub sleep_ms: u64,
    /// Fail (after the work) instead of succeeding.
    #[serde(default)]
    pub fail: bool,
    /// Also record when the execution ended (`finished_at`, a column the test's table must
    /// have): on return, on cancellation, and when the handler is aborted.
    #[serde(default)]
    pub record_end: bool,
    /// Fail the first `fail_attempts` attempts of each slot, then succeed (`ctx.attempt()`):
    /// something for a retry policy to retry.
    #[serde(default)]
    #[schemars(range(min = 0, max = 20))]
    pub fail_attempts: i32,
    /// Fail with an error marked [`cron_runtime::Permanent`]: no retry follows.
    #[serde(default)]
    pub permanent: bool,
}

/// The longest `system.record` works.
const MAX_RECORD_SLEEP_MS: u64 = 600_000;

/// Inserts a row (run id, job key, slot, time of execution) into `cron_test_executions`,
/// creating the table if needed, then works for `sleep_ms` and succeeds (or fails with
/// `fail`). Tests and benchmarks count executions with it; the table this target creates has
/// a primary key on run_id, so a run that executes twice fails (the torture test makes its own
/// table without one, with `finished_at`, to see every execution and how long it lasted).
/// `CRON_RECORD_DATABASE_URL`, when set, is where it writes: tests point it past their fault
/// proxy, so an execution is recorded even while the scheduler's connections are being cut.
#[cron_target("system.record", timeout = "11m", diagnostic)]
pub async fn record(ctx: JobContext, args: RecordArgs) -> anyhow::Result<()> {
    if args.sleep_ms > MAX_RECORD_SLEEP_MS {
        return Err(anyhow!("sleep_ms must be at most {MAX_RECORD_SLEEP_MS}"));
    }
    let db = record_pool(&ctx);
    match insert_execution(&ctx, &db).await {
        Err(e) if is_undefined_table(&e) => {
            create_executions_table(&db).await?;
            insert_execution(&ctx, &db).await?;
        }
        result => {
            result?;
        }
    }
    let end = args.record_end.then(|| RecordEnd {
        db: db.clone(),
        run_id: ctx.run_id,
        recorded: false,
    });
    let worked = match args.sleep_ms {
        0 => Ok(()),
        ms => tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(()),
            () = ctx.cancelled() => Err(anyhow!("cancelled")),
        },
    };
    // Before returning, so the end is in the table before the run's outcome is.
    if let Some(end) = end {
        end.record().await;
    }
    worked?;
    if args.permanent {
        return Err(cron_runtime::Permanent::new("failing for good on purpose (system.record with permanent)").into());
    }
    if ctx.attempt() <= args.fail_attempts {
        return Err(anyhow!(
            "failing attempt {} of {} on purpose (system.record with fail_attempts)",
            ctx.attempt(),
            args.fail_attempts
        ));
    }
    match args.fail {
        true => Err(anyhow!("failing on purpose (system.record with fail)")),
        false => Ok(()),
    }
}

/// Where `system.record` writes: `CRON_RECORD_DATABASE_URL`'s database, else `ctx.db()`.
fn record_pool(ctx: &JobContext) -> sqlx::PgPool {
    static POOL: std::sync::OnceLock<Option<sqlx::PgPool>> = std::sync::OnceLock::new();
    let own = POOL.get_or_init(|| {
        let url = std::env::var("CRON_RECORD_DATABASE_URL").ok()?;
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy(&url)
            .ok()
    });
    own.clone().unwrap_or_else(|| ctx.db().clone())
}

/// Records the end of an execution: when the handler returns ([`RecordEnd::record`]), or when
/// it is aborted (dropped unrecorded: then from a task of its own, a little late).
struct RecordEnd {
    db: sqlx::PgPool,
    run_id: sqlx::types::Uuid,
    recorded: bool,
}

const RECORD_END: &str =
    "UPDATE cron_test_executions SET finished_at = clock_timestamp() WHERE run_id = $1 AND finished_at IS NULL";

impl RecordEnd {
    async fn record(mut self) {
        match sqlx::query(RECORD_END).bind(self.run_id).execute(&self.db).await {
            // Aborted before this point, the drop records the end instead.
            Ok(_) => self.recorded = true,
            Err(e) => {
                tracing::warn!(error = %e, run_id = %self.run_id, "system.record could not record the end of its execution")
            }
        }
    }
}

impl Drop for RecordEnd {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let (db, run_id) = (self.db.clone(), self.run_id);
        tokio::spawn(async move {
            if let Err(e) = sqlx::query(RECORD_END).bind(run_id).execute(&db).await {
                tracing::warn!(error = %e, %run_id, "system.record could not record the end of its aborted execution");
            }
        });
    }
}

async fn insert_execution(ctx: &JobContext, db: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cron_test_executions (run_id, job_key, scheduled_at, executed_at) \
         VALUES ($1, $2, $3, clock_timestamp())",
    )
    .bind(ctx.run_id)
    .bind(&ctx.job_key)
    .bind(ctx.scheduled_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Creates `cron_test_executions`. Two concurrent `CREATE TABLE IF NOT EXISTS` can both try to
/// create it and one fail (on `pg_type`), so creation is serialized with an advisory lock.
async fn create_executions_table(db: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
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

/// The payload of `system.prune`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneArgs {
    /// Delete terminal runs created longer ago than this: a duration such as `180d`, `12w` or
    /// `720h`, from `1d` to 100 years (default `180d`, the documented retention).
    #[serde(default)]
    pub older_than: Retention,
}

/// How old a run must be for `system.prune` to delete it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Duration);

/// The shortest retention `system.prune` accepts: a job should not be able to wipe the history
/// an operator is looking at (`cronjobs prune` can, by hand).
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// The longest: a cut-off before year 1 would delete nothing anyway.
pub const MAX_RETENTION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Retention {
    /// Parses a humantime duration within [`MIN_RETENTION`]..=[`MAX_RETENTION`].
    pub fn parse(raw: &str) -> Result<Self, String> {
        let duration = humantime::parse_duration(raw.trim())
            .map_err(|e| format!("{e}; write a duration such as 180d, 12w or 720h"))?;
        if !(MIN_RETENTION..=MAX_RETENTION).contains(&duration) {
            return Err(format!("must be from 1d to 100 years (got {raw:?})"));
        }
        Ok(Retention(duration))
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention::parse(cron_runtime::store::runs::DEFAULT_RETENTION).expect("a valid default")
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Retention::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(self.0))
    }
}

impl schemars::JsonSchema for Retention {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Retention".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as 180d, 12w or 720h, from 1d to 100 years.",
            "examples": ["180d"]
        })
    }
}

/// Deletes terminal runs older than `older_than` (default `180d`), in batches of 5,000 rows
/// per transaction so no lock is held for long, exactly as `cronjobs prune` does. Schedule it
/// (e.g. `0 3 * * *`) to keep run history within its retention. Returns the counts by status.
#[cron_target("system.prune", timeout = "1h")]
pub async fn prune(ctx: JobContext, args: PruneArgs) -> anyhow::Result<Pruned> {
    use cron_runtime::store::runs;
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(args.older_than.0)?;
    tokio::select! {
        // Each batch commits on its own: a cancelled prune keeps what it deleted.
        pruned = runs::prune(ctx.db(), cutoff, runs::DEFAULT_PRUNE_BATCH) => {
            let pruned = pruned.context("cannot prune runs")?;
            tracing::info!(deleted = pruned.total(), cutoff = %cutoff, "pruned runs");
            Ok(pruned)
        }
        () = ctx.cancelled() => Err(anyhow!("cancelled")),
    }
}
