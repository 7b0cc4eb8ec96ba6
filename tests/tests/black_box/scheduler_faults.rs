//! Replicas, crashes, a restarted database and shutdown: nothing runs twice, nothing is
//! lost, nothing is left running.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cron_runtime::domain::RunStatus;
use cron_runtime::store::runs::{self, RunNowOutcome};
use serde_json::json;
use tests::db::TestDb;
use tests::fixtures::{recurring, runs_of, scheduler, wait_for};

#[tokio::test]
async fn three_replicas_run_each_slot_exactly_once() {
    let db = TestDb::create().await;
    for i in 0..3 {
        recurring(
            &db.pool,
            &format!("count-{i}"),
            "system.record",
            "* * * * * *",
            json!({}),
        )
        .await;
    }
    let replicas: Vec<_> = (0..3).map(|_| scheduler(&db, &[])).collect();
    let start = Utc::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let end = Utc::now();
    drop(replicas);

    let executions: Vec<(uuid::Uuid, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT run_id, job_key, scheduled_at FROM cron_test_executions")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let mut per_slot: BTreeMap<(String, DateTime<Utc>), usize> = BTreeMap::new();
    for (_, key, at) in &executions {
        *per_slot.entry((key.clone(), *at)).or_default() += 1;
    }
    let doubled: Vec<_> = per_slot.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "slots executed more than once: {doubled:?}");

    let mut instances = HashSet::new();
    for i in 0..3 {
        let key = format!("count-{i}");
        let runs = runs_of(&db.pool, &key).await;
        let slots: HashSet<_> = runs.iter().map(|r| r.scheduled_at).collect();
        assert_eq!(slots.len(), runs.len(), "one row per slot for {key}");
        instances.extend(runs.iter().filter_map(|r| r.scheduler_instance.clone()));
        // Every whole second well inside the window ran (nothing lost).
        let first = start + chrono::Duration::seconds(3);
        let last = end - chrono::Duration::seconds(2);
        let inside: Vec<_> = runs
            .iter()
            .filter(|r| r.scheduled_at >= first && r.scheduled_at <= last)
            .collect();
        let expected = (last - first).num_seconds() as usize;
        assert!(
            inside.len() >= expected,
            "{key}: {} runs for {expected} seconds",
            inside.len()
        );
        // Every slot is one row: executed exactly once, or recorded `skipped` (never executed)
        // when the previous second's run was still being recorded under the suite's load.
        let mut succeeded = 0;
        for run in &inside {
            let executions = per_slot.get(&(key.clone(), run.scheduled_at)).copied().unwrap_or(0);
            match run.status {
                RunStatus::Succeeded => {
                    succeeded += 1;
                    assert_eq!(executions, 1, "executed exactly once: {run:?}");
                }
                RunStatus::Skipped => assert_eq!(executions, 0, "a skipped slot never executes: {run:?}"),
                other => panic!("unexpected status {other:?}: {run:?}"),
            }
        }
        assert!(
            succeeded * 10 >= inside.len() * 9,
            "{key}: only {succeeded} of {} slots ran",
            inside.len()
        );
    }
    eprintln!("slots executed: {}, by {} replicas", executions.len(), instances.len());
}

#[tokio::test]
async fn a_run_orphaned_by_kill_9_is_failed_as_stale_after_restart() {
    let db = TestDb::create().await;
    let job = recurring(&db.pool, "orphan", "system.sleep", "0 0 1 1 *", json!({"seconds": 60})).await;
    let env = [("CRON_STALE_AFTER", "3s"), ("CRON_HEARTBEAT_EVERY", "1s")];
    let mut first = scheduler(&db, &env);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let RunNowOutcome::Pending(run) = runs::request_run(&db.pool, job.id, "test", None).await.unwrap() else {
        panic!()
    };
    wait_for(Duration::from_secs(5), "the run to start", || async {
        (runs::get(&db.pool, run.id).await.ok()?.status == RunStatus::Running).then_some(())
    })
    .await;
    first.kill9();

    let _second = scheduler(&db, &env);
    let failed = wait_for(Duration::from_secs(15), "the orphan to fail", || async {
        let run = runs::get(&db.pool, run.id).await.ok()?;
        (run.status == RunStatus::Failed).then_some(run)
    })
    .await;
    let error = failed.error.unwrap_or_default();
    assert!(error.starts_with("stale"), "{error}");
}

#[tokio::test]
async fn the_scheduler_survives_its_connections_being_terminated() {
    let db = TestDb::create().await;
    recurring(&db.pool, "beat", "system.heartbeat", "* * * * * *", json!({})).await;
    recurring(&db.pool, "nap", "system.sleep", "* * * * * *", json!({"seconds": 0.5})).await;
    let mut process = scheduler(&db, &[]);
    wait_for(Duration::from_secs(15), "runs before the outage", || async {
        (runs_of(&db.pool, "beat").await.len() >= 2).then_some(())
    })
    .await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the scheduler had connections to terminate");
    let after = Utc::now();
    wait_for(Duration::from_secs(15), "runs after the outage", || async {
        let later = runs_of(&db.pool, "beat")
            .await
            .into_iter()
            .filter(|r| r.scheduled_at > after + chrono::Duration::seconds(1) && r.status == RunStatus::Succeeded)
            .count();
        (later >= 3).then_some(())
    })
    .await;
    assert!(process.is_running());
    // No run of the outage is left running once things settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stuck = runs_of(&db.pool, "nap")
        .await
        .into_iter()
        .filter(|r| r.status == RunStatus::Running && r.scheduled_at < Utc::now() - chrono::Duration::seconds(3))
        .count();
    assert_eq!(stuck, 0);
}

async fn sigterm_during(seconds: f64, grace: &str) -> (cron_runtime::domain::JobRun, Duration, String) {
    let db = TestDb::create().await;
    let job = recurring(
        &db.pool,
        "work",
        "system.sleep",
        "0 0 1 1 *",
        json!({"seconds": seconds}),
    )
    .await;
    let mut process = scheduler(&db, &[("CRON_SHUTDOWN_GRACE", grace)]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let RunNowOutcome::Pending(run) = runs::request_run(&db.pool, job.id, "test", None).await.unwrap() else {
        panic!()
    };
    wait_for(Duration::from_secs(5), "the run to start", || async {
        (runs::get(&db.pool, run.id).await.ok()?.status == RunStatus::Running).then_some(())
    })
    .await;
    let asked = Instant::now();
    process.terminate();
    let status = process.wait_exit(Duration::from_secs(20)).expect("the scheduler exits");
    let took = asked.elapsed();
    assert!(status.success(), "exit status {status:?}");
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE status = 'running'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(running, 0, "a clean shutdown leaves nothing running");
    (runs::get(&db.pool, run.id).await.unwrap(), took, process.output())
}

#[tokio::test]
async fn sigterm_lets_a_run_shorter_than_the_grace_finish() {
    let (run, took, _) = sigterm_during(1.5, "5s").await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(took < Duration::from_secs(5), "exited after {took:?}");
}

#[tokio::test]
async fn sigterm_interrupts_a_run_longer_than_the_grace() {
    let (run, took, output) = sigterm_during(30.0, "2s").await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("interrupted by shutdown"));
    assert!(took < Duration::from_secs(4), "exit within grace + 2 s, took {took:?}");
    assert!(output.contains("interrupting in-flight runs"), "{output}");
}
