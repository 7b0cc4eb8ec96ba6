//! Exactly once in every mode (SPEC 16), one regression test per defect the review found,
//! with the real binaries: a one-time job in flight across reloads, slots missed while capacity
//! was free, a one-time job missed behind a full executor, activation that loses slots, a
//! scheduler cut off from the database, and an outage longer than the liveness window.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cron_runtime::domain::{JobStatus, RunReason, RunStatus};
use cron_runtime::store::definitions;
use serde_json::json;
use tests::db::TestDb;
use tests::fault_proxy::FaultProxy;
use tests::fixtures::{one_time_with, recurring, runs_of, scheduler, wait_for};
use tests::process::Cronjobs;
use uuid::Uuid;

/// One execution of `system.record`, as its table has it.
#[derive(Debug, sqlx::FromRow)]
struct Execution {
    run_id: Uuid,
    job_key: String,
    executed_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// Creates the executions table the way the torture test does: no key on `run_id` (so a
/// second execution of a run is a second row, not an error), and when each one ended.
async fn create_executions_table(db: &TestDb) {
    sqlx::query(tests::torture::EXECUTIONS_TABLE)
        .execute(&db.pool)
        .await
        .expect("create the executions table");
}

async fn executions(db: &TestDb, job_key: &str) -> Vec<Execution> {
    sqlx::query_as(
        "SELECT run_id, job_key, executed_at, finished_at FROM cron_test_executions
         WHERE job_key = $1 ORDER BY executed_at",
    )
    .bind(job_key)
    .fetch_all(&db.pool)
    .await
    .expect("read the executions")
}

/// Terminates every LISTEN connection of the database (the schedulers reconnect and reload).
async fn terminate_listeners(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_one(&db.pool)
    .await
    .expect("terminate the LISTEN connections")
}

/// How many times the scheduler's log says it started `run_id`.
fn started_lines(scheduler: &Cronjobs, run_id: Uuid) -> usize {
    let id = run_id.to_string();
    scheduler
        .output()
        .lines()
        .filter(|line| line.contains("run started") && line.contains(&id))
        .count()
}

#[tokio::test]
async fn a_one_time_job_in_flight_executes_once_across_reloads_and_listen_reconnects() {
    // The review's reproduction: a one-time job runs while other jobs are created (each a
    // reload at the next reconcile) and the LISTEN connection is lost (a reload on reconnect).
    let db = TestDb::create().await;
    create_executions_table(&db).await;
    let mut scheduler = scheduler(&db, &[("CRON_RECONCILE_EVERY", "500ms")]);
    let job = one_time_with(
        &db.pool,
        "once",
        "system.record",
        Utc::now(),
        json!({"sleep_ms": 5000, "record_end": true}),
    )
    .await;
    let run = wait_for(Duration::from_secs(15), "the one-time run to start", || async {
        runs_of(&db.pool, "once")
            .await
            .into_iter()
            .find(|r| r.status == RunStatus::Running)
    })
    .await;
    for i in 0..3 {
        recurring(
            &db.pool,
            &format!("other-{i}"),
            "system.heartbeat",
            "0 0 1 1 *",
            json!({}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(terminate_listeners(&db).await >= 1, "the scheduler listens");
    tokio::time::sleep(Duration::from_millis(700)).await;
    recurring(&db.pool, "other-last", "system.heartbeat", "0 0 1 1 *", json!({})).await;

    let finished = wait_for(Duration::from_secs(20), "the one-time run to end", || async {
        runs_of(&db.pool, "once")
            .await
            .into_iter()
            .find(|r| r.status.is_terminal())
    })
    .await;
    // Reloads after the run ended must not fire it either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = runs_of(&db.pool, "once").await;
    let executed = executions(&db, "once").await;
    let log_lines = started_lines(&scheduler, run.id);
    scheduler.kill9();
    assert_eq!(runs.len(), 1, "one row: {runs:?}");
    assert_eq!(finished.status, RunStatus::Succeeded, "{finished:?}");
    assert_eq!(executed.len(), 1, "executed once: {executed:?}");
    assert_eq!(executed[0].run_id, run.id);
    assert_eq!(log_lines, 1, "started once:\n{}", scheduler.output());
    let definition = definitions::get(&db.pool, job.id).await.expect("the job");
    assert_eq!(definition.status, JobStatus::Retired);
}

#[tokio::test]
async fn no_slot_is_missed_while_the_executor_has_room() {
    // One long run of five permits in flight, a per-second job, reconciles every 500 ms: each
    // reconcile's claim used to queue for five permits and hold every slot behind it.
    let db = TestDb::create().await;
    let mut scheduler = scheduler(
        &db,
        &[
            ("CRON_MAX_IN_FLIGHT", "5"),
            ("CRON_RECONCILE_EVERY", "500ms"),
            ("CRON_MISSED_AFTER", "2s"),
        ],
    );
    one_time_with(&db.pool, "long", "system.sleep", Utc::now(), json!({"seconds": 30})).await;
    wait_for(Duration::from_secs(15), "the long run to start", || async {
        runs_of(&db.pool, "long")
            .await
            .into_iter()
            .find(|r| r.status == RunStatus::Running)
    })
    .await;
    recurring(&db.pool, "every-second", "system.record", "* * * * * *", json!({})).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let runs = runs_of(&db.pool, "every-second").await;
    scheduler.kill9();
    let missed: Vec<_> = runs.iter().filter(|r| r.status == RunStatus::Missed).collect();
    assert!(runs.len() >= 8, "the job fired every second: {} runs", runs.len());
    assert!(missed.is_empty(), "missed with 4 of 5 permits free: {missed:?}");
}

#[tokio::test]
async fn a_one_time_job_behind_a_full_executor_runs_late_and_is_never_missed() {
    let db = TestDb::create().await;
    let mut scheduler = scheduler(&db, &[("CRON_MAX_IN_FLIGHT", "1"), ("CRON_MISSED_AFTER", "2s")]);
    one_time_with(&db.pool, "busy", "system.sleep", Utc::now(), json!({"seconds": 6})).await;
    wait_for(Duration::from_secs(15), "the busy run to start", || async {
        runs_of(&db.pool, "busy")
            .await
            .into_iter()
            .find(|r| r.status == RunStatus::Running)
    })
    .await;
    // Due while the only permit is taken, in the same batch as a recurring job's slots.
    let at = chrono::SubsecRound::trunc_subsecs(Utc::now() + chrono::Duration::seconds(2), 0);
    recurring(&db.pool, "every-second", "system.record", "* * * * * *", json!({})).await;
    let once = one_time_with(&db.pool, "late-once", "system.record", at, json!({})).await;
    let run = wait_for(Duration::from_secs(30), "the one-time run to end", || async {
        runs_of(&db.pool, "late-once")
            .await
            .into_iter()
            .find(|r| r.status.is_terminal())
    })
    .await;
    let recurring_runs = runs_of(&db.pool, "every-second").await;
    scheduler.kill9();
    assert_eq!(run.status, RunStatus::Succeeded, "ran late, not missed: {run:?}");
    assert!(
        run.started_at.is_some_and(|s| s > at + chrono::Duration::seconds(2)),
        "late: {run:?}"
    );
    assert_eq!(
        definitions::get(&db.pool, once.id).await.expect("the job").status,
        JobStatus::Retired
    );
    // The recurring slots while the executor was full are missed as overloaded, truly.
    assert!(
        recurring_runs
            .iter()
            .any(|r| r.status == RunStatus::Missed && r.reason == Some(RunReason::Overloaded)),
        "{recurring_runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_applied_in_a_slow_transaction_lose_no_slot_and_raise_no_incident() {
    // `cronjobs apply` holds one transaction for the whole file; through a proxy adding latency
    // it lasts seconds. Its per-second jobs count from the commit, not from the transaction's
    // start, so nothing is recorded missed for the time they were invisible.
    let db = TestDb::create().await;
    let proxy = FaultProxy::start(&tests::chaos::server_address(&db.url)).await;
    let mut scheduler = scheduler(&db, &[("CRON_MISSED_AFTER", "1s")]);
    let dir = tempdir();
    let file = dir.join("jobs.toml");
    let jobs: String = (0..4)
        .map(|i| format!("[jobs.\"applied-{i}\"]\ntarget = \"system.record\"\ncron = \"* * * * * *\"\n\n"))
        .collect();
    std::fs::write(&file, jobs).expect("write the jobs file");
    proxy.set_latency(Duration::from_millis(250));
    let proxied = proxy.url(&db.url);
    let file_arg = file.to_string_lossy().into_owned();
    let applied = tokio::task::spawn_blocking(move || {
        std::process::Command::new(tests::process::binary())
            .args(["apply", &file_arg])
            .env("DATABASE_URL", proxied)
            .env("CRON_DIAGNOSTIC_TARGETS", "1")
            .output()
            .expect("run cronjobs apply")
    })
    .await
    .expect("apply finished");
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    // Past CRON_MISSED_AFTER and a watchdog pass.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let missed: Vec<(String, DateTime<Utc>, Option<String>)> = sqlx::query_as(
        "SELECT job_key, scheduled_at, reason FROM cron_job_runs WHERE status = 'missed' ORDER BY scheduled_at",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read missed runs");
    let incidents: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_incidents")
        .fetch_one(&db.pool)
        .await
        .expect("count incidents");
    let ran: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE status = 'succeeded'")
        .fetch_one(&db.pool)
        .await
        .expect("count runs");
    scheduler.kill9();
    assert!(missed.is_empty(), "activation recorded missed slots: {missed:?}");
    assert_eq!(incidents, 0, "activation opened an incident");
    assert!(ran >= 4 * 4, "the applied jobs run every second ({ran} runs)");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cronjobs-exactly-once-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// Two schedulers behind one proxy each, `system.record` jobs of 10 s every second, and one
/// scheduler's proxy cut off for `outage`; returns the database, the schedulers and the keys.
async fn partitioned_cluster(outage: Duration, cut_both: bool) -> (TestDb, Vec<Cronjobs>, FaultProxy, FaultProxy) {
    let db = TestDb::create().await;
    create_executions_table(&db).await;
    let (a, b) = (
        FaultProxy::start(&tests::chaos::server_address(&db.url)).await,
        FaultProxy::start(&tests::chaos::server_address(&db.url)).await,
    );
    let settings = [
        ("CRON_HEARTBEAT_EVERY", "1s"),
        ("CRON_STALE_AFTER", "20s"),
        ("CRON_MISSED_AFTER", "3s"),
        ("CRON_SHUTDOWN_GRACE", "5s"),
        ("CRON_RECORD_DATABASE_URL", db.url.as_str()),
    ];
    let (url_a, url_b) = (a.url(&db.url), b.url(&db.url));
    let with_url = |url: &str| {
        let mut env = settings.to_vec();
        env.push(("DATABASE_URL", url));
        scheduler(&db, &env)
    };
    let mut schedulers = vec![with_url(&url_a)];
    for i in 0..4 {
        recurring(
            &db.pool,
            &format!("long-{i}"),
            "system.record",
            "* * * * * *",
            json!({"sleep_ms": 10000, "record_end": true}),
        )
        .await;
    }
    // The first scheduler takes every key before the second one starts.
    wait_for(Duration::from_secs(15), "scheduler A to run every key", || async {
        let running: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE status = 'running'")
            .fetch_one(&db.pool)
            .await
            .ok()?;
        (running == 4).then_some(())
    })
    .await;
    schedulers.push(with_url(&url_b));
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.refuse();
    if cut_both {
        b.refuse();
    }
    tokio::time::sleep(outage).await;
    a.allow();
    b.allow();
    (db, schedulers, a, b)
}

/// Pairs of executions of one key that overlap in time (an unfinished one ends at `end`).
fn overlaps(executions: &[Execution], end: DateTime<Utc>) -> Vec<String> {
    let mut found = Vec::new();
    for (i, first) in executions.iter().enumerate() {
        for second in &executions[i + 1..] {
            let first_end = first.finished_at.unwrap_or(end);
            if first.job_key == second.job_key
                && second.executed_at < first_end
                && first.executed_at < second.finished_at.unwrap_or(end)
            {
                found.push(format!("{first:?} overlaps {second:?}"));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_cut_off_from_the_database_fences_its_runs_before_a_peer_takes_over() {
    // A is cut off for 12 s (12 heartbeat intervals): it fences its runs at 4, its peer B
    // counts it lost at 5 and runs the jobs; no two executions of a key ever overlap.
    let (db, mut schedulers, _a, _b) = partitioned_cluster(Duration::from_secs(12), false).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    for scheduler in &schedulers {
        scheduler.terminate();
    }
    for scheduler in &mut schedulers {
        scheduler.wait_exit(Duration::from_secs(30));
    }
    let mut all = Vec::new();
    for i in 0..4 {
        all.extend(executions(&db, &format!("long-{i}")).await);
    }
    let open: Vec<_> = all.iter().filter(|e| e.finished_at.is_none()).collect();
    assert!(open.is_empty(), "every execution recorded its end: {open:?}");
    let overlapping = overlaps(&all, Utc::now());
    let a_output = schedulers[0].output();
    assert!(overlapping.is_empty(), "{overlapping:#?}\nA:\n{a_output}");
    assert!(
        a_output.contains("fencing this scheduler"),
        "A fenced itself:\n{a_output}"
    );
    let lost: i64 =
        sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE reason IN ('scheduler_lost', 'fenced')")
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert!(lost >= 1, "A's runs ended lost or fenced");
    assert!(
        all.iter()
            .any(|e| e.executed_at > Utc::now() - chrono::Duration::seconds(15)),
        "B took the jobs over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_longer_than_the_liveness_window_runs_end_fenced_not_lost() {
    // Both schedulers lose the database for 8 s (8 heartbeat intervals): both fence. When it
    // returns, neither sweeper may fail the other's runs `scheduler_lost` (they heartbeat
    // again within their window, counted from the reconnection): the runs end `fenced`.
    let (db, mut schedulers, _a, _b) = partitioned_cluster(Duration::from_secs(8), true).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    for scheduler in &schedulers {
        scheduler.terminate();
    }
    for scheduler in &mut schedulers {
        scheduler.wait_exit(Duration::from_secs(30));
    }
    let reasons: Vec<(String, i64)> = sqlx::query_as(
        "SELECT COALESCE(reason, status), count(*) FROM cron_job_runs WHERE status <> 'skipped' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("count");
    let count = |reason: &str| reasons.iter().find(|(r, _)| r == reason).map_or(0, |(_, n)| *n);
    assert_eq!(count("scheduler_lost"), 0, "{reasons:?}");
    assert!(count("fenced") >= 1, "{reasons:?}");
    // The slots of the outage are missed for what it was.
    assert_eq!(count("not_started") + count("no_scheduler"), 0, "{reasons:?}");
    assert!(count("database_unreachable") >= 1, "{reasons:?}");
    let mut all = Vec::new();
    for i in 0..4 {
        all.extend(executions(&db, &format!("long-{i}")).await);
    }
    assert!(overlaps(&all, Utc::now()).is_empty());
}

#[tokio::test]
async fn schedulers_publish_their_clock_offset_and_warn_when_settings_disagree() {
    let db = TestDb::create().await;
    let port = tests::fixtures::free_port().to_string();
    let mut first = scheduler(&db, &[("CRON_MISSED_AFTER", "30s"), ("PORT", port.as_str())]);
    let (offset, settings): (Option<i64>, serde_json::Value) =
        wait_for(Duration::from_secs(15), "the instance row", || async {
            sqlx::query_as("SELECT clock_offset_ms, settings FROM cron_scheduler_instances")
                .fetch_optional(&db.pool)
                .await
                .ok()
                .flatten()
        })
        .await;
    // This host's clock and the database's are the same clock here.
    assert!(offset.is_some_and(|ms| ms.abs() < 1_000), "{offset:?}");
    assert_eq!(settings["missed_after_ms"], 30_000, "{settings}");
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let metrics = wait_for(Duration::from_secs(10), "the scheduler's /metrics", || {
        tests::fixtures::http_get(&metrics_url)
    })
    .await;
    assert!(
        metrics.1.contains("cronjobs_clock_offset_milliseconds"),
        "{}",
        metrics.1
    );

    // A second scheduler reading CRON_MISSED_AFTER differently is told so at start.
    let mut second = scheduler(&db, &[("CRON_MISSED_AFTER", "5s")]);
    wait_for(Duration::from_secs(15), "the disagreement warning", || async {
        second
            .output()
            .contains("reads CRON_MISSED_AFTER, CRON_STALE_AFTER or the webhook URLs differently")
            .then_some(())
    })
    .await;
    first.kill9();
    second.kill9();
}

#[tokio::test]
async fn a_one_time_job_whose_key_is_busy_runs_when_it_is_free_instead_of_being_skipped() {
    // A run-now of the one-time job holds its key across `run_at`: the scheduled run waits and
    // runs after it (it used to be recorded `skipped` and the job retired, never executed).
    let db = TestDb::create().await;
    create_executions_table(&db).await;
    let mut scheduler = scheduler(&db, &[]);
    let at = Utc::now() + chrono::Duration::seconds(2);
    let job = one_time_with(
        &db.pool,
        "busy-once",
        "system.record",
        at,
        json!({"sleep_ms": 3000, "record_end": true}),
    )
    .await;
    cron_runtime::store::runs::request_run(&db.pool, job.id, "test", None)
        .await
        .expect("run-now");
    let runs = wait_for(Duration::from_secs(30), "both runs to end", || async {
        let runs = runs_of(&db.pool, "busy-once").await;
        (runs.len() == 2 && runs.iter().all(|r| r.status.is_terminal())).then_some(runs)
    })
    .await;
    let executed = executions(&db, "busy-once").await;
    scheduler.kill9();
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded), "{runs:?}");
    assert_eq!(executed.len(), 2, "{executed:?}");
    assert!(overlaps(&executed, Utc::now()).is_empty(), "{executed:?}");
    assert_eq!(
        definitions::get(&db.pool, job.id).await.expect("the job").status,
        JobStatus::Retired
    );
}
