//! Databases for the scenarios: created fresh, migrated by the real binary, seeded with SQL;
//! and PostgreSQL's own figures from `pgbench`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

/// The PostgreSQL server the benchmark uses.
#[derive(Debug, Clone)]
pub struct Server {
    /// `postgres://user@host:port` (no database).
    pub base: String,
    /// A database to connect to for `CREATE DATABASE`.
    pub admin_db: String,
}

impl Server {
    /// Parses a URL such as `postgres://postgres@127.0.0.1:5432/postgres`.
    pub fn from_url(url: &str) -> anyhow::Result<Server> {
        let after_scheme = url.find("://").map(|i| i + 3).context("DATABASE_URL has no scheme")?;
        let (base, admin_db) = match url[after_scheme..].find('/') {
            Some(i) => (&url[..after_scheme + i], &url[after_scheme + i + 1..]),
            None => (url, "postgres"),
        };
        let admin_db = admin_db.split('?').next().unwrap_or("postgres");
        Ok(Server {
            base: base.to_owned(),
            admin_db: if admin_db.is_empty() { "postgres" } else { admin_db }.to_owned(),
        })
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Drops and creates `name`, applies the migrations with `<bin> migrate`, creates the
    /// table the `system.record` target writes, and returns a small pool on it.
    pub async fn fresh(&self, name: &str, bin: &Path) -> anyhow::Result<PgPool> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url(&self.admin_db))
            .await
            .context("cannot connect to PostgreSQL (set DATABASE_URL)")?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
        admin.close().await;
        let out = Command::new(bin)
            .arg("migrate")
            .env("DATABASE_URL", self.url(name))
            .env("LOG_FORMAT", "json")
            .output()?;
        if !out.status.success() {
            bail!("cronjobs migrate failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        // Named, so the backends of the scheduler under test can be told from the bench's own.
        let options: sqlx::postgres::PgConnectOptions = self.url(name).parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options.application_name(BENCH_APPLICATION))
            .await?;
        // The same table `system.record` creates on first use (created here so no run pays for it).
        sqlx::query(
            "CREATE TABLE cron_test_executions (run_id uuid PRIMARY KEY, job_key text NOT NULL,
                 scheduled_at timestamptz NOT NULL, executed_at timestamptz NOT NULL DEFAULT clock_timestamp())",
        )
        .execute(&pool)
        .await?;
        sqlx::query("CREATE TABLE bench_baseline (LIKE cron_test_executions INCLUDING ALL)")
            .execute(&pool)
            .await?;
        Ok(pool)
    }
}

/// The `application_name` of the bench's own connections.
const BENCH_APPLICATION: &str = "cronjobs-bench";

/// Inserts `n` active recurring `system.record` definitions, keys `bench-1` .. `bench-n`;
/// `expression_sql` is an SQL expression of `i` (the row number) giving the cron expression.
pub async fn seed(pool: &PgPool, n: u64, expression_sql: &str) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO cron_job_definitions (id, job_key, version, target, schedule_type, cron_expression, created_by)
         SELECT gen_random_uuid(), 'bench-' || i, 1, 'system.record', 'recurring', {expression_sql}, 'bench'
         FROM generate_series(1, $1) AS i"
    ))
    .bind(n as i64)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE cron_job_definitions").execute(pool).await?;
    Ok(())
}

/// Waits until the watchdog has visited every definition (none is due for a check within the
/// hour); returns how long that took, seconds.
pub async fn wait_slots_accounted(pool: &PgPool, timeout: std::time::Duration) -> anyhow::Result<f64> {
    let started = std::time::Instant::now();
    loop {
        let due: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cron_slot_watermarks WHERE next_check_at < now() + interval '1 hour'",
        )
        .fetch_one(pool)
        .await?;
        if due == 0 {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "the watchdog left {due} definitions unvisited for {timeout:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Lag figures of the executions whose slot is in `[from, to)` (epoch seconds).
#[derive(Debug, Clone, Default)]
pub struct Lag {
    pub count: i64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// From the earliest slot to the last execution, seconds.
    pub all_ran_after: f64,
    /// Executions beyond one per key (must be zero).
    pub duplicates: i64,
}

/// Lag (executed_at − scheduled_at) of the `system.record` executions with slots in the window.
pub async fn lag(pool: &PgPool, from: f64, to: f64) -> anyhow::Result<Lag> {
    let row = sqlx::query(
        "SELECT count(*),
                COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM executed_at - scheduled_at)), 0),
                COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM executed_at - scheduled_at)), 0),
                COALESCE(max(extract(epoch FROM executed_at - scheduled_at))::float8, 0),
                COALESCE(extract(epoch FROM max(executed_at) - min(scheduled_at))::float8, 0),
                count(*) - count(DISTINCT (job_key, scheduled_at))
         FROM cron_test_executions
         WHERE scheduled_at >= to_timestamp($1) AND scheduled_at < to_timestamp($2)",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    Ok(Lag {
        count: row.get(0),
        p50: row.get(1),
        p99: row.get(2),
        max: row.get(3),
        all_ran_after: row.get(4),
        duplicates: row.get(5),
    })
}

/// Counts of runs by status with slots in `[from, to)`: (terminal, skipped, failed).
pub async fn run_counts(pool: &PgPool, from: f64, to: f64) -> anyhow::Result<(i64, i64, i64)> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'skipped')),
                count(*) FILTER (WHERE status = 'skipped'),
                count(*) FILTER (WHERE status = 'failed')
         FROM cron_job_runs WHERE scheduled_at >= to_timestamp($1) AND scheduled_at < to_timestamp($2)",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Process ids of the server backends connected to `database`, other than the bench's own.
pub async fn backend_pids(pool: &PgPool, database: &str) -> anyhow::Result<Vec<u32>> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'
           AND application_name <> $2",
    )
    .bind(database)
    .bind(BENCH_APPLICATION)
    .fetch_all(pool)
    .await?;
    Ok(pids.into_iter().map(|p| p as u32).collect())
}

/// What `pgbench` measured.
#[derive(Debug, Clone, Copy)]
pub struct Pgbench {
    /// Transactions per second, without connection time.
    pub tps: f64,
    /// Transactions run.
    pub transactions: u64,
}

impl Pgbench {
    /// Seconds PostgreSQL needed for the transactions.
    pub fn seconds(&self) -> f64 {
        self.transactions as f64 / self.tps
    }
}

/// The one-row insert pgbench commits: the same row `system.record` writes.
const INSERT_SCRIPT: &str =
    "INSERT INTO bench_baseline (run_id, job_key, scheduled_at, executed_at) VALUES (gen_random_uuid(), 'bench', now(), clock_timestamp());\n";

/// Runs `pgbench` with `clients` clients on `url`: `transactions` in all, or for `duration`.
pub fn pgbench(url: &str, clients: u32, work: PgbenchWork) -> anyhow::Result<Pgbench> {
    let script = std::env::temp_dir().join(format!("cronjobs-bench-{}.sql", std::process::id()));
    std::fs::write(&script, INSERT_SCRIPT)?;
    let mut command = Command::new("pgbench");
    command
        .args(["-n", "-c", &clients.to_string(), "-j", "2", "-f"])
        .arg(&script)
        .arg(url);
    match work {
        PgbenchWork::Transactions(total) => command.args(["-t", &(total / u64::from(clients)).max(1).to_string()]),
        PgbenchWork::For(duration) => command.args(["-T", &duration.as_secs().to_string()]),
    };
    let out = command
        .output()
        .context("cannot run pgbench (install postgresql-contrib / postgresql-client)")?;
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    let field = |prefix: &str| -> Option<f64> {
        let line = stdout.lines().find(|l| l.starts_with(prefix))?;
        line[prefix.len()..]
            .split_whitespace()
            .next()?
            .split('/')
            .next()?
            .parse()
            .ok()
    };
    let tps = field("tps = ").context("no tps in pgbench's output")?;
    let transactions =
        field("number of transactions actually processed: ").context("no transaction count in pgbench's output")?;
    Ok(Pgbench {
        tps,
        transactions: transactions as u64,
    })
}

/// How much work pgbench does.
#[derive(Debug, Clone, Copy)]
pub enum PgbenchWork {
    Transactions(u64),
    For(Duration),
}
