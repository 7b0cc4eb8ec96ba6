//! Jobs and waits for scheduler tests.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobDefinition, JobKey, JobRun, ManagedBy};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use cron_runtime::store::runs::{self, DueSlot, SlotBatch};
use serde_json::Value;
use sqlx::PgPool;

use crate::db::TestDb;
use crate::process::Cronjobs;

/// Creates an active recurring job.
pub async fn recurring(pool: &PgPool, key: &str, target: &str, expression: &str, payload: Value) -> JobDefinition {
    create(
        pool,
        key,
        target,
        ScheduleSpec::Recurring {
            cron_expression: expression.into(),
        },
        payload,
    )
    .await
}

/// Creates an active one-time job.
pub async fn one_time(pool: &PgPool, key: &str, target: &str, run_at: DateTime<Utc>) -> JobDefinition {
    one_time_with(pool, key, target, run_at, serde_json::json!({})).await
}

/// Creates an active one-time job with `payload`.
pub async fn one_time_with(
    pool: &PgPool,
    key: &str,
    target: &str,
    run_at: DateTime<Utc>,
    payload: Value,
) -> JobDefinition {
    create(pool, key, target, ScheduleSpec::OneTime { run_at }, payload).await
}

async fn create(pool: &PgPool, key: &str, target: &str, schedule: ScheduleSpec, payload: Value) -> JobDefinition {
    let new = NewDefinition {
        job_key: JobKey::parse(key).expect("valid key"),
        target: target.into(),
        schedule,
        timezone: "UTC".into(),
        payload,
        description: None,
        created_by: "test".into(),
        managed_by: ManagedBy::Api,
        source: None,
        timeout: None,
        retry: Default::default(),
    };
    definitions::create(pool, &new).await.expect("create job")
}

/// Every run of `job_key`, oldest slot first.
pub async fn runs_of(pool: &PgPool, job_key: &str) -> Vec<JobRun> {
    sqlx::query_as("SELECT * FROM cron_job_runs WHERE job_key = $1 ORDER BY scheduled_at, created_at")
        .bind(job_key)
        .fetch_all(pool)
        .await
        .expect("read runs")
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `cronjobs scheduler` on `db` with fast test settings, plus `extra` variables.
pub fn scheduler(db: &TestDb, extra: &[(&str, &str)]) -> Cronjobs {
    let mut env: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("CRON_HEARTBEAT_EVERY", "1s"),
        ("CRON_RECONCILE_EVERY", "2s"),
        ("CRON_SHUTDOWN_GRACE", "3s"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        // The tests run `system.record`, `system.sleep`, ... (off in production).
        ("CRON_DIAGNOSTIC_TARGETS", "1"),
    ];
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push((key, value));
    }
    Cronjobs::spawn(&["scheduler"], &env)
}

/// Starts `cronjobs api` on `db` on a free port of 127.0.0.1, with the admin `ops:<token>`,
/// plus `extra` variables (which win); waits until `/healthz` answers. Returns the process and
/// the base URL (`http://127.0.0.1:<port>`).
pub async fn api_process(db: &TestDb, token: &str, extra: &[(&str, &str)]) -> (Cronjobs, String) {
    let port = free_port().to_string();
    let tokens = format!("ops:{token}");
    let mut env: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("CRON_ADMIN_TOKENS", tokens.as_str()),
        ("HOST", "127.0.0.1"),
        ("PORT", port.as_str()),
        ("CRON_DIAGNOSTIC_TARGETS", "1"),
    ];
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push((key, value));
    }
    let process = Cronjobs::spawn(&["api"], &env);
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/healthz");
    wait_for(Duration::from_secs(10), "the API to answer", || http_get(&health)).await;
    (process, base)
}

/// A TCP port free right now on 127.0.0.1 (for a process's `PORT`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET url`: status and body, or `None` while nothing answers.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Inserts the slot of `def` at `at` as scheduler `instance` does, and returns its run, now
/// `running`.
pub async fn start_slot(pool: &PgPool, def: &JobDefinition, at: DateTime<Utc>, instance: &str) -> JobRun {
    let inserted = runs::insert_scheduled(
        pool,
        SlotBatch::start(&[DueSlot::of(def, at)]),
        instance,
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    inserted
        .running
        .into_iter()
        .next()
        .expect("the slot was inserted running")
        .run
}
