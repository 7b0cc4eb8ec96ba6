//! The runs store against a real PostgreSQL (a fresh database per test), races included.

use std::collections::HashSet;
use std::time::Duration;

use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobDefinition, JobKey, JobStatus, ManagedBy, RunReason, RunStatus, TriggerType};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use cron_runtime::store::runs::{self, DueSlot, RunFilter, RunNowOutcome, RunOutcome, SlotBatch};
use cron_runtime::store::StoreError;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{self, at};

async fn job(pool: &PgPool, key: &str) -> JobDefinition {
    support::recurring(pool, key, "system.heartbeat", "* * * * * *").await
}

async fn finish_ok(pool: &PgPool, run_id: uuid::Uuid) {
    runs::finish(
        pool,
        run_id,
        &RunOutcome::Succeeded { output: json!(null) },
        &Policy::default(),
    )
    .await
    .unwrap()
    .value
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_slot_runs_through_insert_heartbeat_and_finish(pool: PgPool) {
    let def = job(&pool, "k").await;
    let mut inserted = runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&def, at(0))]),
        "sched-a",
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    assert_eq!((inserted.running.len(), inserted.skipped.len()), (1, 0));
    let claimed = inserted.running.remove(0);
    let run = &claimed.run;
    assert_eq!(
        (run.status, run.trigger_type, run.scheduled_at, run.job_version),
        (RunStatus::Running, TriggerType::Scheduled, at(0), 1)
    );
    assert_eq!(claimed.target_payload, json!({}));
    assert_eq!(run.scheduler_instance.as_deref(), Some("sched-a"));
    assert!(run.started_at.is_some() && run.heartbeat_at.is_some());
    let again = runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&def, at(0))]),
        "sched-b",
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    assert!(
        again.running.is_empty() && again.skipped.is_empty(),
        "the slot is one run, executed by the replica that inserted it"
    );
    assert_eq!(
        runs::heartbeat(&pool, &[run.id]).await.unwrap(),
        [runs::Beat {
            id: run.id,
            cancel_requested: false
        }]
    );

    let done = runs::finish(
        &pool,
        run.id,
        &RunOutcome::Succeeded {
            output: json!({"n": 1}),
        },
        &Policy::default(),
    )
    .await
    .unwrap()
    .value
    .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.output, Some(json!({"n": 1})));
    assert!(done.finished_at.is_some() && done.duration_ms.is_some());
    assert!(runs::finish(
        &pool,
        run.id,
        &RunOutcome::Failed {
            reason: RunReason::Error,
            error: "late".into()
        },
        &Policy::default()
    )
    .await
    .unwrap()
    .value
    .is_none());
    assert_eq!(runs::get(&pool, run.id).await.unwrap().status, RunStatus::Succeeded);
}

#[sqlx::test(migrations = "../migrations")]
async fn failure_records_the_error(pool: PgPool) {
    let def = job(&pool, "k").await;
    let run = support::start_slot(&pool, &def, at(0), "s").await;
    let failed = runs::finish(
        &pool,
        run.id,
        &RunOutcome::Failed {
            reason: RunReason::Error,
            error: "boom".into(),
        },
        &Policy::default(),
    )
    .await
    .unwrap()
    .value
    .unwrap();
    assert_eq!(
        (failed.status, failed.reason, failed.error.as_deref(), failed.output),
        (RunStatus::Failed, Some(RunReason::Error), Some("boom"), None)
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn overlapping_slot_is_recorded_skipped(pool: PgPool) {
    let def = job(&pool, "k").await;
    let first = support::start_slot(&pool, &def, at(0), "s").await;
    let second = runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&def, at(1))]),
        "s",
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    assert!(second.running.is_empty());
    assert_eq!(second.skipped.len(), 1);
    let skipped = &second.skipped[0];
    assert_eq!((skipped.status, skipped.scheduled_at), (RunStatus::Skipped, at(1)));
    assert!(skipped.error.as_deref().unwrap().contains(&first.id.to_string()));
    // The same slot again (another replica) adds nothing.
    let again = runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&def, at(1))]),
        "s",
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    assert!(again.running.is_empty() && again.skipped.is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn fifty_tasks_inserting_the_same_slot_make_one_row(pool: PgPool) {
    let def = job(&pool, "k").await;
    // Fifty replicas: each instance name is one scheduler process.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (pool, slot) = (pool.clone(), DueSlot::of(&def, at(7)));
            tokio::spawn(async move {
                runs::insert_scheduled(&pool, SlotBatch::start(&[slot]), &format!("s{i}"), &Policy::default())
                    .await
                    .unwrap()
                    .value
            })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        inserted += outcome.running.len() + outcome.skipped.len();
    }
    assert_eq!(inserted, 1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn fifty_tasks_claiming_ten_pending_runs_claim_each_once(pool: PgPool) {
    let mut ids = Vec::new();
    for i in 0..10 {
        let def = job(&pool, &format!("k{i}")).await;
        let RunNowOutcome::Pending(run) = runs::request_run(&pool, def.id, "x", None).await.unwrap() else {
            panic!("expected a pending run")
        };
        ids.push(run.id);
    }
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                runs::claim_pending(&pool, &["system.heartbeat"], 3, &format!("s{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap().into_iter().map(|c| c.run.id));
    }
    claimed.sort();
    ids.sort();
    assert_eq!(claimed, ids, "every pending run claimed exactly once");
}

#[sqlx::test(migrations = "../migrations")]
async fn batch_insert_handles_a_herd(pool: PgPool) {
    let mut slots = Vec::new();
    for i in 0..200 {
        slots.push(DueSlot::of(&job(&pool, &format!("herd-{i}")).await, at(0)));
    }
    let first = runs::insert_scheduled(&pool, SlotBatch::start(&slots), "s", &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(first.running.len(), 200);
    // The next second: every job is still running, so every slot is skipped, in one call.
    let next: Vec<DueSlot> = slots
        .iter()
        .map(|s| DueSlot {
            run_id: uuid::Uuid::now_v7(),
            scheduled_at: at(1),
            ..s.clone()
        })
        .collect();
    let second = runs::insert_scheduled(&pool, SlotBatch::start(&next), "s", &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!((second.running.len(), second.skipped.len()), (0, 200));
}

#[sqlx::test(migrations = "../migrations")]
async fn stale_runs_fail_and_fresh_ones_do_not(pool: PgPool) {
    let (a, b) = (job(&pool, "a").await, job(&pool, "b").await);
    runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&a, at(0)), DueSlot::of(&b, at(0))]),
        "dead-scheduler",
        &Policy::default(),
    )
    .await
    .unwrap()
    .announce();
    sqlx::query("UPDATE cron_job_runs SET heartbeat_at = now() - interval '20 minutes' WHERE job_key = 'a'")
        .execute(&pool)
        .await
        .unwrap();
    let failed = runs::fail_stale(&pool, Duration::from_secs(15 * 60), None, &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].job_key.as_str(), failed[0].status), ("a", RunStatus::Failed));
    assert_eq!(failed[0].reason, Some(RunReason::Stale));
    let error = failed[0].error.as_deref().unwrap();
    assert!(
        error.starts_with("stale") && error.contains("dead-scheduler") && error.contains("15m"),
        "{error}"
    );
    let b_run = runs::list(
        &pool,
        &RunFilter {
            job_key: Some("b".into()),
            ..Default::default()
        },
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(b_run.items[0].status, RunStatus::Running);
}

#[sqlx::test(migrations = "../migrations")]
async fn run_now_records_pending_then_skips_while_active(pool: PgPool) {
    let def = job(&pool, "k").await;
    let RunNowOutcome::Pending(first) = runs::request_run(&pool, def.id, "alice", None).await.unwrap() else {
        panic!("expected a pending run")
    };
    assert_eq!(
        (first.trigger_type, first.triggered_by.as_deref()),
        (TriggerType::Manual, Some("alice"))
    );
    match runs::request_run(&pool, def.id, "bob", None).await.unwrap() {
        RunNowOutcome::Skipped { run, active_run_id } => {
            assert_eq!(active_run_id, first.id);
            assert_eq!(run.status, RunStatus::Skipped);
        }
        other => panic!("expected a skip, got {other:?}"),
    }
    // Paused jobs may be run by hand; retired ones may not.
    let claimed = runs::claim_pending(&pool, &["system.heartbeat"], 10, "s")
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|c| c.run.id).collect::<Vec<_>>(), [first.id]);
    finish_ok(&pool, first.id).await;
    definitions::pause(&pool, def.id, "on hold", "x", &Policy::default())
        .await
        .unwrap()
        .announce();
    assert!(matches!(
        runs::request_run(&pool, def.id, "x", None).await.unwrap(),
        RunNowOutcome::Pending(_)
    ));
    let v2 = definitions::new_version(
        &pool,
        def.id,
        &{
            let mut n = NewDefinition {
                job_key: JobKey::parse("k").unwrap(),
                target: "system.heartbeat".into(),
                schedule: ScheduleSpec::Recurring {
                    cron_expression: "* * * * *".into(),
                },
                timezone: "UTC".into(),
                payload: json!({}),
                description: None,
                created_by: "x".into(),
                managed_by: ManagedBy::Api,
                source: None,
                timeout: None,
                retry: Default::default(),
            };
            n.description = Some("v2".into());
            n
        },
        ManagedBy::Api,
    )
    .await
    .unwrap();
    assert_eq!(v2.status, JobStatus::Active);
    assert!(matches!(
        runs::request_run(&pool, def.id, "x", None).await,
        Err(StoreError::WrongStatus {
            actual: JobStatus::Retired,
            ..
        })
    ));
}

#[sqlx::test(migrations = "../migrations")]
async fn fifty_concurrent_run_nows_make_one_pending_run(pool: PgPool) {
    let def = job(&pool, "k").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { runs::request_run(&pool, def.id, "x", None).await.unwrap() })
        })
        .collect();
    let mut pending = 0;
    for task in tasks {
        if let RunNowOutcome::Pending(_) = task.await.unwrap() {
            pending += 1;
        }
    }
    assert_eq!(pending, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn one_time_definition_retires_after_its_terminal_run(pool: PgPool) {
    let def = definitions::create(
        &pool,
        &NewDefinition {
            job_key: JobKey::parse("once").unwrap(),
            target: "system.heartbeat".into(),
            schedule: ScheduleSpec::OneTime { run_at: at(5) },
            timezone: "UTC".into(),
            payload: json!({}),
            description: None,
            created_by: "x".into(),
            managed_by: ManagedBy::Api,
            source: None,
            timeout: None,
            retry: Default::default(),
        },
    )
    .await
    .unwrap();
    let run = support::start_slot(&pool, &def, at(5), "s").await;
    assert_eq!(definitions::get(&pool, def.id).await.unwrap().status, JobStatus::Active);
    finish_ok(&pool, run.id).await;
    let def = definitions::get(&pool, def.id).await.unwrap();
    assert_eq!(def.status, JobStatus::Retired);
    assert!(def.retired_at.is_some());
}

#[sqlx::test(migrations = "../migrations")]
async fn run_list_filters_and_paginates(pool: PgPool) {
    let (a, b) = (job(&pool, "a").await, job(&pool, "b").await);
    for second in 0..30 {
        let inserted = runs::insert_scheduled(
            &pool,
            SlotBatch::start(&[DueSlot::of(&a, at(second)), DueSlot::of(&b, at(second))]),
            "s",
            &Policy::default(),
        )
        .await
        .unwrap()
        .value;
        for id in inserted.running.iter().map(|c| c.run.id) {
            finish_ok(&pool, id).await;
        }
    }
    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut last_at = None;
    loop {
        let page = runs::list(&pool, &RunFilter::default(), cursor, 7).await.unwrap();
        for run in &page.items {
            assert!(seen.insert(run.id));
            if let Some(last) = last_at {
                assert!(run.scheduled_at <= last, "newest first");
            }
            last_at = Some(run.scheduled_at);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 60);
    let filter = RunFilter {
        job_id: Some(a.id),
        from: Some(at(10)),
        to: Some(at(20)),
        ..Default::default()
    };
    let page = runs::list(&pool, &filter, None, 200).await.unwrap();
    assert_eq!(page.items.len(), 10);
    assert!(page
        .items
        .iter()
        .all(|r| r.job_key == "a" && r.scheduled_at >= at(10) && r.scheduled_at < at(20)));
    let filter = RunFilter {
        status: Some(RunStatus::Failed),
        ..Default::default()
    };
    assert!(runs::list(&pool, &filter, None, 200).await.unwrap().items.is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn paused_definitions_do_not_fire_and_unknown_targets_are_not_claimed(pool: PgPool) {
    let def = job(&pool, "k").await;
    definitions::pause(&pool, def.id, "hold on", "x", &Policy::default())
        .await
        .unwrap()
        .announce();
    let inserted = runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&def, at(0))]),
        "s",
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    assert!(
        inserted.running.is_empty() && inserted.skipped.is_empty(),
        "a paused job's slot is dropped"
    );
    let RunNowOutcome::Pending(run) = runs::request_run(&pool, def.id, "x", None).await.unwrap() else {
        panic!()
    };
    assert!(runs::claim_pending(&pool, &["other.target"], 10, "old-replica")
        .await
        .unwrap()
        .is_empty());
    let claimed = runs::claim_pending(&pool, &["system.heartbeat"], 10, "new-replica")
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|c| c.run.id).collect::<Vec<_>>(), [run.id]);
}

#[sqlx::test(migrations = "../migrations")]
async fn active_fingerprint_changes_with_the_active_set(pool: PgPool) {
    let empty = definitions::active_fingerprint(&pool).await.unwrap();
    let def = job(&pool, "k").await;
    let one = definitions::active_fingerprint(&pool).await.unwrap();
    assert_ne!(empty, one);
    definitions::pause(&pool, def.id, "hold on", "x", &Policy::default())
        .await
        .unwrap()
        .announce();
    let paused = definitions::active_fingerprint(&pool).await.unwrap();
    assert_ne!(one, paused);
    definitions::resume(&pool, def.id, "test").await.unwrap();
    assert_ne!(definitions::active_fingerprint(&pool).await.unwrap(), paused);
}

#[sqlx::test(migrations = "../migrations")]
async fn prune_deletes_old_terminal_runs_in_batches_and_keeps_the_rest(pool: PgPool) {
    let def = job(&pool, "k").await;
    for second in 0..25 {
        let run = support::start_slot(&pool, &def, at(second), "s").await;
        finish_ok(&pool, run.id).await;
    }
    let active = support::start_slot(&pool, &def, at(30), "s").await;
    // Everything so far is "old"; one more recent terminal run must stay.
    sqlx::query("UPDATE cron_job_runs SET created_at = now() - interval '200 days'")
        .execute(&pool)
        .await
        .unwrap();
    let recent = runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&def, at(31))]),
        "s",
        &Policy::default(),
    )
    .await
    .unwrap()
    .value
    .skipped
    .remove(0);
    let cutoff = chrono::Utc::now() - chrono::Duration::days(180);

    let would = runs::count_prunable(&pool, cutoff).await.unwrap();
    assert_eq!((would.succeeded, would.total()), (25, 25));
    let pruned = runs::prune(&pool, cutoff, 10).await.unwrap();
    assert_eq!(pruned, would);
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM cron_job_runs ORDER BY scheduled_at")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, [active.id, recent.id], "the active run and the recent one stay");
}
