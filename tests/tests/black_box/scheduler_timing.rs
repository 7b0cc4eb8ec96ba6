//! The scheduler fires on time: the real binary against a fresh database.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use cron_runtime::domain::{JobStatus, RunStatus};
use cron_runtime::store::definitions;
use serde_json::json;
use tests::db::TestDb;
use tests::fixtures::{one_time, recurring, runs_of, scheduler, wait_for};

#[tokio::test]
async fn every_second_heartbeat_runs_once_per_second_on_whole_seconds() {
    let db = TestDb::create().await;
    recurring(&db.pool, "heartbeat", "system.heartbeat", "*/1 * * * * *", json!({})).await;
    let process = scheduler(&db, &[]);
    let runs = wait_for(Duration::from_secs(20), "6 succeeded runs", || async {
        let runs = runs_of(&db.pool, "heartbeat").await;
        (runs.iter().filter(|r| r.status == RunStatus::Succeeded).count() >= 6).then_some(runs)
    })
    .await;
    let done: Vec<_> = runs.iter().filter(|r| r.status == RunStatus::Succeeded).collect();
    for pair in done.windows(2) {
        assert_eq!(
            (pair[1].scheduled_at - pair[0].scheduled_at).num_milliseconds(),
            1000,
            "one run per second"
        );
    }
    let mut lags: Vec<i64> = done
        .iter()
        .map(|r| {
            assert_eq!(
                r.scheduled_at,
                r.scheduled_at.trunc_subsecs(0),
                "slot on a whole second"
            );
            (r.started_at.expect("started") - r.scheduled_at).num_milliseconds()
        })
        .collect();
    lags.sort_unstable();
    let p95 = lags[(lags.len() * 95).div_ceil(100) - 1];
    eprintln!("fire lag ms (sorted): {lags:?}; p95 {p95}");
    assert!(p95 < 500, "p95 lag {p95} ms");
    assert!(
        process.output().contains("cron heartbeat"),
        "the heartbeat target logs its line"
    );
}

#[tokio::test]
async fn a_one_time_job_runs_exactly_once_and_retires() {
    let db = TestDb::create().await;
    let run_at = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(2);
    let job = one_time(&db.pool, "once", "system.heartbeat", run_at).await;
    let _process = scheduler(&db, &[]);
    wait_for(Duration::from_secs(10), "the one-time job to retire", || async {
        (definitions::get(&db.pool, job.id).await.ok()?.status == JobStatus::Retired).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = runs_of(&db.pool, "once").await;
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].status, runs[0].scheduled_at), (RunStatus::Succeeded, run_at));
}

#[tokio::test]
async fn a_one_time_job_missed_while_no_scheduler_ran_runs_once_at_startup() {
    let db = TestDb::create().await;
    let run_at = Utc::now().trunc_subsecs(0) - chrono::Duration::minutes(5);
    let job = one_time(&db.pool, "late", "system.heartbeat", run_at).await;
    let mut first = scheduler(&db, &[]);
    wait_for(Duration::from_secs(10), "the late job to run", || async {
        (definitions::get(&db.pool, job.id).await.ok()?.status == JobStatus::Retired).then_some(())
    })
    .await;
    first.terminate();
    first.wait_exit(Duration::from_secs(10)).expect("clean exit");
    // A restart does not run it again.
    let _second = scheduler(&db, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = runs_of(&db.pool, "late").await;
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].status, runs[0].scheduled_at), (RunStatus::Succeeded, run_at));
}

#[tokio::test]
async fn a_panicking_target_fails_its_run_and_the_next_slot_still_runs() {
    let db = TestDb::create().await;
    recurring(&db.pool, "panics", "system.panic", "* * * * * *", json!({})).await;
    recurring(&db.pool, "beats", "system.heartbeat", "* * * * * *", json!({})).await;
    let mut process = scheduler(&db, &[]);
    let failed = wait_for(Duration::from_secs(15), "3 failed runs", || async {
        let failed: Vec<_> = runs_of(&db.pool, "panics")
            .await
            .into_iter()
            .filter(|r| r.status == RunStatus::Failed)
            .collect();
        (failed.len() >= 3).then_some(failed)
    })
    .await;
    assert!(
        failed[0].error.as_deref().unwrap_or("").contains("panicked"),
        "{:?}",
        failed[0].error
    );
    assert!(process.is_running());
    let beats = runs_of(&db.pool, "beats").await;
    assert!(beats.iter().filter(|r| r.status == RunStatus::Succeeded).count() >= 2);
}
