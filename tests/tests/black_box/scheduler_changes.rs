//! Changes made while the scheduler runs reach it within a second.

use std::time::Duration;

use chrono::Utc;
use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobKey, ManagedBy, RunStatus, TriggerType};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use cron_runtime::store::runs::{self, RunNowOutcome};
use serde_json::json;
use tests::db::TestDb;
use tests::fixtures::{recurring, runs_of, scheduler, wait_for};

#[tokio::test]
async fn pause_stops_new_runs_within_a_second_and_resume_restarts_them() {
    let db = TestDb::create().await;
    let job = recurring(&db.pool, "beat", "system.heartbeat", "* * * * * *", json!({})).await;
    let _process = scheduler(&db, &[]);
    wait_for(Duration::from_secs(15), "2 runs", || async {
        (runs_of(&db.pool, "beat").await.len() >= 2).then_some(())
    })
    .await;

    let paused = definitions::pause(&db.pool, job.id, "testing pause", "test", &Policy::default())
        .await
        .unwrap()
        .value;
    let paused_at = paused.paused_at.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late: Vec<_> = runs_of(&db.pool, "beat")
        .await
        .into_iter()
        .filter(|r| r.scheduled_at > paused_at + chrono::Duration::seconds(1))
        .collect();
    assert!(late.is_empty(), "runs after the pause took effect: {late:?}");

    let resumed_at = Utc::now();
    definitions::resume(&db.pool, job.id, "test").await.unwrap();
    wait_for(Duration::from_secs(3), "a run after resume", || async {
        runs_of(&db.pool, "beat")
            .await
            .iter()
            .any(|r| r.scheduled_at > resumed_at)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn new_version_switches_target_and_payload() {
    let db = TestDb::create().await;
    let v1 = recurring(&db.pool, "switch", "system.heartbeat", "* * * * * *", json!({})).await;
    let _process = scheduler(&db, &[]);
    wait_for(Duration::from_secs(15), "a v1 run", || async {
        (!runs_of(&db.pool, "switch").await.is_empty()).then_some(())
    })
    .await;
    let v2 = NewDefinition {
        job_key: JobKey::parse("switch").unwrap(),
        target: "system.fail".into(),
        schedule: ScheduleSpec::Recurring {
            cron_expression: "* * * * * *".into(),
        },
        timezone: "UTC".into(),
        payload: json!({"message": "version two"}),
        description: None,
        created_by: "test".into(),
        managed_by: ManagedBy::Api,
        source: None,
        timeout: None,
        retry: Default::default(),
    };
    let v2 = definitions::new_version(&db.pool, v1.id, &v2, ManagedBy::Api)
        .await
        .unwrap();
    let switched_at = v2.created_at;
    let later = wait_for(Duration::from_secs(5), "two v2 runs", || async {
        let later: Vec<_> = runs_of(&db.pool, "switch")
            .await
            .into_iter()
            .filter(|r| r.scheduled_at > switched_at + chrono::Duration::seconds(1) && r.status.is_terminal())
            .collect();
        (later.len() >= 2).then_some(later)
    })
    .await;
    for run in later {
        assert_eq!(
            (run.job_version, run.target.as_str(), run.status),
            (2, "system.fail", RunStatus::Failed)
        );
        assert_eq!(run.job_definition_id, v2.id);
        assert_eq!(
            run.error.as_deref(),
            Some("version two"),
            "the new payload reached the target"
        );
    }
}

#[tokio::test]
async fn run_now_executes_within_a_second_and_a_second_request_during_the_run_is_skipped() {
    let db = TestDb::create().await;
    let job = recurring(&db.pool, "manual", "system.sleep", "0 0 1 1 *", json!({"seconds": 2})).await;
    let _process = scheduler(&db, &[]);
    // Let the scheduler finish starting before asking.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let RunNowOutcome::Pending(requested) = runs::request_run(&db.pool, job.id, "alice", None).await.unwrap() else {
        panic!("expected a pending run");
    };
    let started = wait_for(Duration::from_secs(3), "the manual run to start", || async {
        let run = runs::get(&db.pool, requested.id).await.ok()?;
        run.started_at.map(|s| (run, s))
    })
    .await;
    let pickup = (started.1 - requested.created_at).num_milliseconds();
    eprintln!("run-now pickup: {pickup} ms");
    assert!(pickup < 1000, "run-now took {pickup} ms to start");
    assert_eq!(
        (started.0.trigger_type, started.0.triggered_by.as_deref()),
        (TriggerType::Manual, Some("alice"))
    );

    match runs::request_run(&db.pool, job.id, "bob", None).await.unwrap() {
        RunNowOutcome::Skipped { active_run_id, run } => {
            assert_eq!(active_run_id, requested.id);
            assert_eq!(run.status, RunStatus::Skipped);
        }
        other => panic!("expected the overlap to be skipped, got {other:?}"),
    }
    let done = wait_for(Duration::from_secs(6), "the manual run to finish", || async {
        let run = runs::get(&db.pool, requested.id).await.ok()?;
        run.status.is_terminal().then_some(run)
    })
    .await;
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.output, Some(json!({"slept_seconds": 2.0})));
}

#[tokio::test]
async fn scheduled_overlap_is_skipped_and_never_runs_twice_at_once() {
    let db = TestDb::create().await;
    recurring(&db.pool, "slow", "system.sleep", "* * * * * *", json!({"seconds": 3})).await;
    let _process = scheduler(&db, &[]);
    let runs = wait_for(Duration::from_secs(20), "two finished sleeps", || async {
        let runs = runs_of(&db.pool, "slow").await;
        (runs.iter().filter(|r| r.status == RunStatus::Succeeded).count() >= 2).then_some(runs)
    })
    .await;
    let executed: Vec<_> = runs.iter().filter(|r| r.started_at.is_some()).collect();
    for pair in executed.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let a_end = a.finished_at.expect("the earlier run finished before the next started");
        assert!(
            b.started_at.unwrap() >= a_end,
            "two runs of the key were active at once: {a:?} {b:?}"
        );
    }
    let skipped = runs.iter().filter(|r| r.status == RunStatus::Skipped).count();
    assert!(skipped >= 2, "the slots during a run are recorded skipped ({skipped})");
    let seconds = runs
        .iter()
        .map(|r| r.scheduled_at)
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(seconds.len(), runs.len(), "one row per slot");
}
