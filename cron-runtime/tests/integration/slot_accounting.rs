//! SPEC §11 at the store level: idempotent run-row writes, missed slots, the watchdog's pass,
//! scheduler instances and the lost-run sweep, against a real PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobDefinition, RunReason, RunStatus};
use cron_runtime::maintenance::watchdog;
use cron_runtime::store::definitions;
use cron_runtime::store::instances::{self, Registration};
use cron_runtime::store::locks;
use cron_runtime::store::runs::{self, DueSlot, RunNowOutcome, SlotBatch};
use serde_json::json;
use sqlx::PgPool;

use crate::support::{at, recurring as job};

async fn statuses(pool: &PgPool, key: &str) -> Vec<(RunStatus, Option<RunReason>)> {
    sqlx::query_as("SELECT status, reason FROM cron_job_runs WHERE job_key = $1 ORDER BY scheduled_at")
        .bind(key)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn register(pool: &PgPool, instance: &str, targets: &[&str]) {
    instances::heartbeat(
        pool,
        &Registration {
            instance,
            hostname: "host",
            version: "test",
            commit: None,
            targets,
            heartbeat_every: Duration::from_secs(1),
            clock_offset_ms: None,
            settings: &serde_json::json!({}),
        },
    )
    .await
    .unwrap();
}

/// Makes the definition's slots count from `since` (as if created then).
async fn active_since(pool: &PgPool, def: &JobDefinition, since: DateTime<Utc>) {
    sqlx::query("UPDATE cron_job_definitions SET active_since = $2 WHERE id = $1")
        .bind(def.id)
        .bind(since)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE cron_slot_watermarks SET checked_until = $2, next_check_at = $2 WHERE job_definition_id = $1")
        .bind(def.id)
        .bind(since)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_retried_batch_gets_back_the_runs_its_lost_reply_committed(pool: PgPool) {
    let (a, b) = (
        job(&pool, "a", "system.heartbeat", "* * * * * *").await,
        job(&pool, "b", "system.heartbeat", "* * * * * *").await,
    );
    let other = job(&pool, "busy", "system.heartbeat", "* * * * * *").await;
    // "busy" has an active run: its slot is skipped.
    runs::request_run(&pool, other.id, "x", None).await.unwrap();
    let slots = [
        DueSlot::of(&a, at(0)),
        DueSlot::of(&b, at(0)),
        DueSlot::of(&other, at(0)),
    ];
    let first = runs::insert_scheduled(&pool, SlotBatch::start(&slots), "sched-a", &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!((first.running.len(), first.skipped.len()), (2, 1));

    // The reply of that commit was lost: the same scheduler retries the same batch.
    let retry = runs::insert_scheduled(&pool, SlotBatch::start(&slots), "sched-a", &Policy::default())
        .await
        .unwrap()
        .value;
    let mut again: Vec<_> = retry.running.iter().map(|c| c.run.id).collect();
    let mut before: Vec<_> = first.running.iter().map(|c| c.run.id).collect();
    again.sort();
    before.sort();
    assert_eq!(again, before, "the retry executes what its first attempt inserted");
    assert!(retry.skipped.is_empty(), "the skipped row is not written twice");
    assert_eq!(retry.running[0].target_payload, json!({}));

    // Another replica inserting the same slots gets nothing to run.
    let replica = runs::insert_scheduled(&pool, SlotBatch::start(&slots), "sched-b", &Policy::default())
        .await
        .unwrap()
        .value;
    assert!(replica.running.is_empty() && replica.skipped.is_empty() && replica.missed.is_empty());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE trigger_type = 'scheduled'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn late_slots_are_recorded_missed_with_their_reason(pool: PgPool) {
    let (a, b) = (
        job(&pool, "a", "system.heartbeat", "* * * * * *").await,
        job(&pool, "b", "system.heartbeat", "* * * * * *").await,
    );
    let start = [DueSlot::of(&a, at(0))];
    let late = [DueSlot::of(&b, at(0))];
    let batch = SlotBatch {
        start: &start,
        missed: &late,
        missed_reason: RunReason::Overloaded,
    };
    let inserted = runs::insert_scheduled(&pool, batch, "s", &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!((inserted.running.len(), inserted.missed.len()), (1, 1));
    let missed = &inserted.missed[0];
    assert_eq!(
        (missed.status, missed.reason),
        (RunStatus::Missed, Some(RunReason::Overloaded))
    );
    assert!(missed.finished_at.is_some() && missed.started_at.is_none());
    assert_eq!(missed.scheduler_instance.as_deref(), Some("s"));
    // A retry of a batch whose slot was running by then, now late: the run is executed, not missed.
    let retry = SlotBatch {
        start: &[],
        missed: &start,
        missed_reason: RunReason::DatabaseUnreachable,
    };
    let retried = runs::insert_scheduled(&pool, retry, "s", &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(retried.running.len(), 1);
    assert!(retried.missed.is_empty());
    assert_eq!(statuses(&pool, "a").await, [(RunStatus::Running, None)]);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_lost_claim_is_found_again_and_only_by_its_instance(pool: PgPool) {
    let def = job(&pool, "k", "system.heartbeat", "0 0 1 1 *").await;
    let RunNowOutcome::Pending(run) = runs::request_run(&pool, def.id, "x", None).await.unwrap() else {
        panic!("expected a pending run")
    };
    // The claim committed; its reply never arrived.
    runs::claim_pending(&pool, &["system.heartbeat"], 10, "sched-a")
        .await
        .unwrap();
    let found = runs::claimed_not_executing(&pool, "sched-a", &[]).await.unwrap();
    assert_eq!(found.iter().map(|c| c.run.id).collect::<Vec<_>>(), [run.id]);
    assert!(runs::claimed_not_executing(&pool, "sched-a", &[run.id])
        .await
        .unwrap()
        .is_empty());
    assert!(runs::claimed_not_executing(&pool, "sched-b", &[])
        .await
        .unwrap()
        .is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_heartbeat_reports_which_runs_are_still_running(pool: PgPool) {
    let (a, b) = (
        job(&pool, "a", "system.heartbeat", "* * * * * *").await,
        job(&pool, "b", "system.heartbeat", "* * * * * *").await,
    );
    let slots = [DueSlot::of(&a, at(0)), DueSlot::of(&b, at(0))];
    let ids: Vec<_> = runs::insert_scheduled(&pool, SlotBatch::start(&slots), "s", &Policy::default())
        .await
        .unwrap()
        .value
        .running
        .iter()
        .map(|c| c.run.id)
        .collect();
    sqlx::query(
        "UPDATE cron_job_runs SET status = 'failed', reason = 'stale', finished_at = now() WHERE job_key = 'a'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let running = runs::heartbeat(&pool, &ids).await.unwrap();
    assert_eq!(running.len(), 1);
    assert!(!running[0].cancel_requested);
    assert_eq!(runs::get(&pool, running[0].id).await.unwrap().job_key, "b");
}

#[sqlx::test(migrations = "../migrations")]
async fn runs_of_a_dead_instance_fail_as_scheduler_lost(pool: PgPool) {
    let (a, b) = (
        job(&pool, "a", "system.heartbeat", "* * * * * *").await,
        job(&pool, "b", "system.heartbeat", "* * * * * *").await,
    );
    register(&pool, "dead", &["system.heartbeat"]).await;
    register(&pool, "alive", &["system.heartbeat"]).await;
    runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&a, at(0))]),
        "dead",
        &Policy::default(),
    )
    .await
    .unwrap()
    .announce();
    runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&b, at(0))]),
        "alive",
        &Policy::default(),
    )
    .await
    .unwrap()
    .announce();
    assert!(
        runs::fail_lost(&pool, None, &Policy::default())
            .await
            .unwrap()
            .value
            .is_empty(),
        "both instances are alive"
    );
    // Five heartbeat intervals (5 s) without a sign.
    sqlx::query(
        "UPDATE cron_scheduler_instances SET last_seen_at = now() - interval '6 seconds' WHERE instance = 'dead'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let lost = runs::fail_lost(&pool, None, &Policy::default()).await.unwrap().value;
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (lost[0].job_key.as_str(), lost[0].status, lost[0].reason),
        ("a", RunStatus::Failed, Some(RunReason::SchedulerLost))
    );
    assert!(lost[0].error.as_deref().unwrap().contains("dead"));
    assert_eq!(statuses(&pool, "b").await, [(RunStatus::Running, None)]);
    let listed = instances::list(&pool).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|i| (i.instance.as_str(), i.alive))
            .collect::<Vec<_>>(),
        [("alive", true), ("dead", false)]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_watchdog_records_every_unrecorded_slot_once_with_why(pool: PgPool) {
    let every_second = job(&pool, "tick", "system.heartbeat", "* * * * * *").await;
    let gone = job(&pool, "gone", "removed.target", "* * * * * *").await;
    let since = Utc.timestamp_opt(Utc::now().timestamp() - 20, 0).unwrap();
    active_since(&pool, &every_second, since).await;
    active_since(&pool, &gone, since).await;
    // A slot the scheduler did record stays as it is.
    let recorded = DueSlot::of(&every_second, since + chrono::Duration::seconds(3));
    runs::insert_scheduled(&pool, SlotBatch::start(&[recorded]), "s", &Policy::default())
        .await
        .unwrap()
        .announce();

    // No scheduler at all.
    let report = watchdog::pass(&pool, Duration::from_secs(5), &[], &Policy::default())
        .await
        .unwrap();
    assert!(!report.locked_out);
    let tick = statuses(&pool, "tick").await;
    // CRON_MISSED_AFTER is 5 s, and the watchdog waits one interval (1.25 s) more.
    assert!(
        (12..=16).contains(&tick.len()),
        "one row per slot from 20 s ago to ~6 s ago: {}",
        tick.len()
    );
    assert_eq!(
        tick.iter().filter(|s| s.0 == RunStatus::Running).count(),
        1,
        "the recorded slot kept its row"
    );
    assert!(tick
        .iter()
        .filter(|s| s.0 != RunStatus::Running)
        .all(|s| *s == (RunStatus::Missed, Some(RunReason::NoScheduler))));

    // A scheduler alive at the slots' time without the target: target_unavailable; with it:
    // not_started. (Slots from before any scheduler started stay no_scheduler: the reason
    // describes the cluster at the slot's time.)
    register(&pool, "s1", &["system.heartbeat"]).await;
    sqlx::query("UPDATE cron_scheduler_instances SET started_at = now() - interval '1 minute'")
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    watchdog::pass(&pool, Duration::from_secs(5), &[], &Policy::default())
        .await
        .unwrap();
    let gone_rows = statuses(&pool, "gone").await;
    assert_eq!(
        gone_rows.last(),
        Some(&(RunStatus::Missed, Some(RunReason::TargetUnavailable)))
    );
    let tick = statuses(&pool, "tick").await;
    assert_eq!(tick.last(), Some(&(RunStatus::Missed, Some(RunReason::NotStarted))));

    // Exactly one row per slot, whatever ran twice.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM cron_job_runs GROUP BY job_definition_id, scheduled_at HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_watchdog_stops_at_a_pause_and_resumes_from_the_resume(pool: PgPool) {
    let def = job(&pool, "k", "system.heartbeat", "* * * * * *").await;
    active_since(&pool, &def, Utc::now() - chrono::Duration::seconds(30)).await;
    sqlx::query(
        "UPDATE cron_job_definitions SET status = 'paused', pause_reason = 'hold on', paused_by = 'x',
             paused_at = now() - interval '20 seconds' WHERE id = $1",
    )
    .bind(def.id)
    .execute(&pool)
    .await
    .unwrap();
    watchdog::pass(&pool, Duration::from_secs(1), &[], &Policy::default())
        .await
        .unwrap();
    let paused = statuses(&pool, "k").await.len();
    assert!((9..=11).contains(&paused), "slots up to the pause only: {paused}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    watchdog::pass(&pool, Duration::from_secs(1), &[], &Policy::default())
        .await
        .unwrap();
    assert_eq!(statuses(&pool, "k").await.len(), paused, "nothing while paused");
    let next_check: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT next_check_at FROM cron_slot_watermarks WHERE job_definition_id = $1")
            .bind(def.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(next_check, None, "parked until resumed");

    definitions::resume(&pool, def.id, "test").await.unwrap();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    watchdog::pass(&pool, Duration::from_secs(1), &[], &Policy::default())
        .await
        .unwrap();
    let resumed = statuses(&pool, "k").await.len() - paused;
    assert!((1..=3).contains(&resumed), "slots since the resume only: {resumed}");
}

#[sqlx::test(migrations = "../migrations")]
async fn one_watchdog_pass_at_a_time(pool: PgPool) {
    let mut holder = pool.begin().await.unwrap();
    locks::hold(&mut holder, locks::WATCHDOG_PASS).await.unwrap();
    let report = watchdog::pass(&pool, Duration::from_secs(1), &[], &Policy::default())
        .await
        .unwrap();
    assert!(report.locked_out, "another pass holds the lock");
    holder.rollback().await.unwrap();
    assert!(
        !watchdog::pass(&pool, Duration::from_secs(1), &[], &Policy::default())
            .await
            .unwrap()
            .locked_out
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_pending_run_nobody_can_start_ends_missed(pool: PgPool) {
    let gone = job(&pool, "gone", "removed.target", "0 0 1 1 *").await;
    let here = job(&pool, "here", "system.heartbeat", "0 0 1 1 *").await;
    register(&pool, "s1", &["system.heartbeat"]).await;
    for def in [&gone, &here] {
        runs::request_run(&pool, def.id, "x", None).await.unwrap();
    }
    sqlx::query("UPDATE cron_job_runs SET created_at = now() - interval '10 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    let report = watchdog::pass(&pool, Duration::from_secs(5), &[], &Policy::default())
        .await
        .unwrap();
    assert_eq!(report.missed_requests, 1);
    assert_eq!(
        statuses(&pool, "gone").await,
        [(RunStatus::Missed, Some(RunReason::TargetUnavailable))]
    );
    assert_eq!(
        statuses(&pool, "here").await,
        [(RunStatus::Pending, None)],
        "a live scheduler will claim it"
    );
    // The key is free again: a new run-now is pending, not skipped.
    assert!(matches!(
        runs::request_run(&pool, gone.id, "x", None).await.unwrap(),
        RunNowOutcome::Pending(_)
    ));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_clean_exit_fails_what_its_instance_still_owns(pool: PgPool) {
    let def = job(&pool, "k", "system.heartbeat", "* * * * * *").await;
    runs::insert_scheduled(
        &pool,
        SlotBatch::start(&[DueSlot::of(&def, at(0))]),
        "leaving",
        &Policy::default(),
    )
    .await
    .unwrap()
    .announce();
    let failed = runs::fail_owned(&pool, "leaving", &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].status, failed[0].reason),
        (RunStatus::Failed, Some(RunReason::Shutdown))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn rows_written_without_a_reason_get_one(pool: PgPool) {
    // What a scheduler of the previous release writes during a deploy overlap.
    let def = job(&pool, "k", "system.heartbeat", "* * * * * *").await;
    sqlx::query(
        "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type,
             scheduled_at, status, started_at, finished_at, error)
         VALUES (gen_random_uuid(), $1, 'k', 1, 'system.heartbeat', 'scheduled', now(), 'failed', now(), now(),
                 'timed out after 1m')",
    )
    .bind(def.id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        statuses(&pool, "k").await,
        [(RunStatus::Failed, Some(RunReason::Timeout))]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_scheduler_records_nothing_outside_the_current_active_window(pool: PgPool) {
    // A scheduler cut off from the database hears neither the pause nor the resume: its late
    // inserts must not record slots of the paused stretch, missed or otherwise.
    let def = job(&pool, "k", "system.heartbeat", "* * * * * *").await;
    let slot = |s: u32| DueSlot::of(&def, at(s));
    definitions::pause(&pool, def.id, "hold on", "x", &Policy::default())
        .await
        .unwrap()
        .announce();
    let (start, late) = ([slot(1)], [slot(2)]);
    let batch = SlotBatch {
        start: &start,
        missed: &late,
        missed_reason: RunReason::DatabaseUnreachable,
    };
    let paused = runs::insert_scheduled(&pool, batch, "s", &Policy::default())
        .await
        .unwrap()
        .value;
    assert!(paused.running.is_empty() && paused.missed.is_empty(), "{paused:?}");
    definitions::resume(&pool, def.id, "test").await.unwrap();
    sqlx::query("UPDATE cron_job_definitions SET active_since = $2 WHERE id = $1")
        .bind(def.id)
        .bind(at(5))
        .execute(&pool)
        .await
        .unwrap();
    let (before, after) = ([slot(4)], [slot(6)]);
    let batch = SlotBatch {
        start: &after,
        missed: &before,
        missed_reason: RunReason::DatabaseUnreachable,
    };
    let resumed = runs::insert_scheduled(&pool, batch, "s", &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(resumed.running.len(), 1, "the slot after the resume runs");
    assert!(
        resumed.missed.is_empty(),
        "the slot before the resume is not this window's"
    );
    assert_eq!(statuses(&pool, "k").await, [(RunStatus::Running, None)]);
}

#[sqlx::test(migrations = "../migrations")]
async fn slots_from_before_a_restart_are_missed_for_no_scheduler(pool: PgPool) {
    // Every scheduler was down across these slots; one has started since. The missed rows say
    // what the cluster was at the slots' time (no scheduler), not what it is now.
    let tick = job(&pool, "tick", "system.heartbeat", "* * * * * *").await;
    let since = Utc.timestamp_opt(Utc::now().timestamp() - 20, 0).unwrap();
    active_since(&pool, &tick, since).await;
    register(&pool, "restarted", &["system.heartbeat"]).await;
    watchdog::pass(&pool, Duration::from_secs(5), &[], &Policy::default())
        .await
        .unwrap();
    let rows = statuses(&pool, "tick").await;
    assert!(rows.len() >= 10, "{rows:?}");
    assert!(
        rows.iter()
            .all(|s| *s == (RunStatus::Missed, Some(RunReason::NoScheduler))),
        "{rows:?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_quick_pause_and_resume_leaves_no_slot_of_the_earlier_window_unaccounted(pool: PgPool) {
    // Found by the torture test: during an outage nobody recorded a job's slots; it was paused
    // and resumed before the watchdog reached them, and the resume's new `active_since` made the
    // watchdog skip them. The resume now keeps that stretch for the watchdog.
    let tick = job(&pool, "tick", "system.heartbeat", "* * * * * *").await;
    let since = Utc.timestamp_opt(Utc::now().timestamp() - 20, 0).unwrap();
    active_since(&pool, &tick, since).await;
    sqlx::query("UPDATE cron_slot_watermarks SET checked_until = $1, next_check_at = $1")
        .bind(since)
        .execute(&pool)
        .await
        .unwrap();
    definitions::pause(&pool, tick.id, "a quick look", "alice", &Policy::default())
        .await
        .unwrap()
        .announce();
    let paused_at = definitions::get(&pool, tick.id).await.unwrap().paused_at.unwrap();
    definitions::resume(&pool, tick.id, "alice").await.unwrap();

    watchdog::pass(&pool, Duration::from_secs(1), &[], &Policy::default())
        .await
        .unwrap();
    let times: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT scheduled_at FROM cron_job_runs WHERE job_key = 'tick' ORDER BY scheduled_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected: Vec<DateTime<Utc>> = (1..)
        .map(|s| since + chrono::Duration::seconds(s))
        .take_while(|at| *at <= paused_at && *at <= Utc::now() - chrono::Duration::milliseconds(2_500))
        .collect();
    assert!(expected.len() >= 15, "{expected:?}");
    assert_eq!(
        times[..expected.len()],
        expected[..],
        "every slot of the earlier window has its row"
    );
    assert!(statuses(&pool, "tick")
        .await
        .iter()
        .all(|(status, _)| *status == RunStatus::Missed));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_watchdog_pass_behind_a_slow_scheduler_transaction_gives_way_and_frees_a_resume(pool: PgPool) {
    // Found by the 30-minute torture soak: a scheduler transaction inserting a slot, slowed by
    // its link, held the pass's insert of the same slot; the pass held the watermarks, and a
    // resume (whose trigger moves its watermark) waited past the API's 30 s request timeout.
    let def = job(&pool, "k", "system.heartbeat", "* * * * * *").await;
    let since = Utc.timestamp_opt(Utc::now().timestamp() - 20, 0).unwrap();
    active_since(&pool, &def, since).await;
    let slot = since + chrono::Duration::seconds(2);
    let mut slow = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type,
                                    scheduled_at, status, finished_at, reason, error)
         VALUES ($1, $2, 'k', 1, 'system.heartbeat', 'scheduled', $3, 'missed', now(), 'not_started', 'x')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(def.id)
    .bind(slot)
    .execute(&mut *slow)
    .await
    .unwrap();

    let began = std::time::Instant::now();
    let error = watchdog::pass(&pool, Duration::from_secs(5), &[], &Policy::default())
        .await
        .expect_err("the pass waits on the slot's row, then gives way");
    assert!(error.is_lock_timeout(), "{error}");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "gave way after {:?}",
        began.elapsed()
    );
    // Nothing of the pass stayed: its watermark is where it was, so the next pass records the
    // slots (the slow transaction's row among them, once it commits).
    slow.commit().await.unwrap();
    watchdog::pass(&pool, Duration::from_secs(5), &[], &Policy::default())
        .await
        .unwrap();
    let recorded = statuses(&pool, "k").await;
    assert!(recorded.len() >= 10, "the slots of the 20 s are recorded: {recorded:?}");
}
