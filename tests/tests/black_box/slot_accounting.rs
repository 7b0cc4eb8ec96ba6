//! Every slot accounted for (SPEC §11), with the real binaries: lost replies, a database that
//! goes away, no scheduler, a removed target, a scheduler killed mid-drain, a full executor.
//! Each slot ends with exactly one row, nothing runs twice, nothing is left running.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use cron_runtime::domain::{JobDefinition, JobKey, JobRun, JobStatus, ManagedBy, RunReason, RunStatus, TriggerType};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use cron_runtime::store::runs::{self, RunNowOutcome};
use serde_json::{json, Value};
use tests::api::TestApi;
use tests::db::{server_url, TestDb};
use tests::fault_proxy::FaultProxy;
use tests::fixtures::{api_process, recurring, runs_of, scheduler, wait_for};
use uuid::Uuid;

const TOKEN: &str = "slot-accounting-token-0123456789";

/// The PostgreSQL server's `host:port`, for the fault proxy to forward to.
fn upstream() -> String {
    let url = server_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// How many runs of `job_key` have `status` (and `reason`, when given).
async fn count(db: &TestDb, job_key: &str, status: RunStatus, reason: Option<RunReason>) -> usize {
    runs_of(&db.pool, job_key)
        .await
        .iter()
        .filter(|r| r.status == status && (reason.is_none() || r.reason == reason))
        .count()
}

/// What `system.record` wrote: run id → (job key, slot). Empty until its table exists.
async fn executions(db: &TestDb) -> HashMap<Uuid, (String, DateTime<Utc>)> {
    let rows: Vec<(Uuid, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT run_id, job_key, scheduled_at FROM cron_test_executions")
            .fetch_all(&db.pool)
            .await
            .unwrap_or_default();
    rows.into_iter().map(|(id, key, at)| (id, (key, at))).collect()
}

/// An admin's run-now, which must be recorded `pending`.
async fn run_now(db: &TestDb, job: &JobDefinition) -> JobRun {
    match runs::request_run(&db.pool, job.id, "test", None)
        .await
        .expect("run-now")
    {
        RunNowOutcome::Pending(run) => run,
        RunNowOutcome::Skipped { run, .. } => panic!("run-now was skipped: {run:?}"),
    }
}

/// Waits until run `id` satisfies `done`, and returns it.
async fn wait_run(db: &TestDb, id: Uuid, timeout: Duration, what: &str, done: impl Fn(&JobRun) -> bool) -> JobRun {
    wait_for(timeout, what, || async {
        let run = runs::get(&db.pool, id).await.ok()?;
        done(&run).then_some(run)
    })
    .await
}

/// A job created in the store (no target validation), with any schedule and payload.
async fn job(db: &TestDb, key: &str, target: &str, schedule: ScheduleSpec, payload: Value) -> JobDefinition {
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
    definitions::create(&db.pool, &new).await.expect("create job")
}

/// A one-time job due at `run_at` with `payload` (the fixture's has none).
async fn one_time(db: &TestDb, key: &str, target: &str, run_at: DateTime<Utc>, payload: Value) -> JobDefinition {
    job(db, key, target, ScheduleSpec::OneTime { run_at }, payload).await
}

/// The whole seconds in `(from, to]`: the slots of a per-second job in that window.
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut at = from.trunc_subsecs(0) + TimeDelta::seconds(1);
    let mut slots = Vec::new();
    while at <= to {
        slots.push(at);
        at += TimeDelta::seconds(1);
    }
    slots
}

/// The scheduled runs of `job_key` per slot, once every slot in `(from, to]` has a row and
/// no run up to `to` is still active; panics after `timeout`.
async fn settled_slots(
    db: &TestDb,
    job_key: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    timeout: Duration,
) -> BTreeMap<DateTime<Utc>, Vec<JobRun>> {
    let what = format!("every slot of {job_key} in the window recorded and ended");
    wait_for(timeout, &what, || async {
        let runs = runs_of(&db.pool, job_key).await;
        if runs.iter().any(|r| r.scheduled_at <= to && !r.status.is_terminal()) {
            return None;
        }
        let mut slots: BTreeMap<DateTime<Utc>, Vec<JobRun>> = seconds_between(from, to)
            .into_iter()
            .map(|at| (at, Vec::new()))
            .collect();
        for run in runs.into_iter().filter(|r| r.trigger_type == TriggerType::Scheduled) {
            if let Some(rows) = slots.get_mut(&run.scheduled_at) {
                rows.push(run);
            }
        }
        slots.values().all(|rows| !rows.is_empty()).then_some(slots)
    })
    .await
}

/// Asserts that no slot has more than one row, that only `succeeded` and `skipped` rows exist,
/// and that exactly the succeeded runs were executed, each once. Returns (succeeded, skipped).
fn assert_each_slot_ran_once(
    slots: &BTreeMap<DateTime<Utc>, Vec<JobRun>>,
    executed: &HashMap<Uuid, (String, DateTime<Utc>)>,
) -> (usize, usize) {
    let (mut succeeded, mut skipped) = (0, 0);
    for (at, rows) in slots {
        assert_eq!(rows.len(), 1, "slot {at} has {} rows: {rows:#?}", rows.len());
        let run = &rows[0];
        let execution = executed.get(&run.id);
        match run.status {
            RunStatus::Succeeded => {
                succeeded += 1;
                assert_eq!(
                    execution,
                    Some(&(run.job_key.clone(), run.scheduled_at)),
                    "a succeeded run was executed: {run:?}"
                );
            }
            RunStatus::Skipped => {
                skipped += 1;
                assert_eq!(execution, None, "a skipped slot never executes: {run:?}");
            }
            other => panic!("unexpected status {other}: {run:?}"),
        }
    }
    // The executions table's primary key is the run id; a slot is executed by one run at most.
    let mut per_slot: HashMap<&(String, DateTime<Utc>), usize> = HashMap::new();
    for slot in executed.values() {
        *per_slot.entry(slot).or_default() += 1;
    }
    let doubled: Vec<_> = per_slot.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "slots executed more than once: {doubled:?}");
    (succeeded, skipped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_to_the_slot_insert_still_runs_the_slot_once() {
    let db = TestDb::create().await;
    let proxy = FaultProxy::start(&upstream()).await;
    let keys = ["tally-a", "tally-b", "tally-c"];
    for key in keys {
        recurring(&db.pool, key, "system.record", "* * * * * *", json!({})).await;
    }
    let url = proxy.url(&db.url);
    let process = scheduler(&db, &[("DATABASE_URL", url.as_str())]);
    // The executions table exists before the faults begin (creating it is a transaction too).
    wait_for(Duration::from_secs(20), "first executions", || async {
        (executions(&db).await.len() >= keys.len()).then_some(())
    })
    .await;

    // The insert statement's reply lost: the transaction rolls back and the batch is retried.
    let from = Utc::now();
    proxy.lose_replies_randomly("INSERT INTO cron_job_runs", 0.3, 7);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let lost_inserts = proxy.stats().replies_lost;
    // The commit's reply lost: the rows are in, and the retry must find and run them, once.
    proxy.lose_replies_randomly("COMMIT", 0.3, 11);
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.disarm_lost_replies();
    let to = Utc::now();
    let lost_commits = proxy.stats().replies_lost - lost_inserts;
    assert!(lost_inserts > 0, "no insert reply was lost: {:?}", proxy.stats());
    assert!(lost_commits > 0, "no commit reply was lost: {:?}", proxy.stats());

    let executed_before = executions(&db).await.len();
    let mut figures = Vec::new();
    for key in keys {
        let slots = settled_slots(&db, key, from, to, Duration::from_secs(40)).await;
        let executed = executions(&db).await;
        let (succeeded, skipped) = assert_each_slot_ran_once(&slots, &executed);
        assert!(
            succeeded * 2 >= slots.len(),
            "{key}: only {succeeded} of {} slots ran",
            slots.len()
        );
        figures.push((key, slots.len(), succeeded, skipped));
    }
    let output = process.output();
    eprintln!(
        "replies lost: {lost_inserts} inserts, {lost_commits} commits; slot inserts retried {}; (job, slots, succeeded, skipped): {figures:?}; executions {executed_before}",
        output.matches("cannot record due slots; retrying").count()
    );
    assert!(!output.contains("panicked"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_to_an_outcome_or_a_claim_runs_nothing_twice() {
    let db = TestDb::create().await;
    let proxy = FaultProxy::start(&upstream()).await;
    let ticking = ["tick-a", "tick-b"];
    for key in ticking {
        recurring(&db.pool, key, "system.record", "* * * * * *", json!({})).await;
    }
    let mut manual = Vec::new();
    for i in 0..3 {
        manual.push(
            recurring(
                &db.pool,
                &format!("manual-{i}"),
                "system.record",
                "0 0 1 1 *",
                json!({}),
            )
            .await,
        );
    }
    let url = proxy.url(&db.url);
    let process = scheduler(&db, &[("DATABASE_URL", url.as_str())]);
    wait_for(Duration::from_secs(20), "first executions", || async {
        (executions(&db).await.len() >= ticking.len()).then_some(())
    })
    .await;

    // Outcomes (`finish`), claims of run-now requests and heartbeats are all UPDATEs of runs.
    let from = Utc::now();
    proxy.lose_replies_randomly("UPDATE cron_job_runs", 0.3, 5);
    let mut requested = Vec::new();
    for round in 0..3 {
        let mut this_round = Vec::new();
        for job in &manual {
            this_round.push(run_now(&db, job).await.id);
        }
        for id in &this_round {
            let what = format!("run-now {id} of round {round} to end");
            wait_run(&db, *id, Duration::from_secs(30), &what, |r| r.status.is_terminal()).await;
        }
        requested.extend(this_round);
    }
    // Faults for 12 s at least, so the per-second jobs' outcomes meet them too.
    let armed_for = (Utc::now() - from).to_std().unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(armed_for)).await;
    let lost_at_random = proxy.stats().replies_lost;
    assert!(lost_at_random > 0, "no reply was lost: {:?}", proxy.stats());

    // And for certain once: a claim that committed (it is one autocommit UPDATE) but whose
    // reply was lost. Its run is `running` under the scheduler, which must find and run it.
    proxy.lose_reply_to("SET status = 'running'", 1);
    let claimed = run_now(&db, &manual[0]).await.id;
    wait_run(
        &db,
        claimed,
        Duration::from_secs(30),
        "the lost claim's run to end",
        |r| r.status.is_terminal(),
    )
    .await;
    assert_eq!(
        proxy.stats().replies_lost,
        lost_at_random + 1,
        "the claim's reply was lost"
    );
    requested.push(claimed);
    proxy.disarm_lost_replies();
    let to = Utc::now();

    wait_for(
        Duration::from_secs(30),
        "nothing active left from the fault window",
        || async {
            let active: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM cron_job_runs WHERE status IN ('pending', 'running') AND scheduled_at <= $1",
            )
            .bind(to)
            .fetch_one(&db.pool)
            .await
            .ok()?;
            (active == 0).then_some(())
        },
    )
    .await;
    let executed = executions(&db).await;
    for id in &requested {
        let run = runs::get(&db.pool, *id).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        assert_eq!(
            executed.get(id),
            Some(&(run.job_key.clone(), run.scheduled_at)),
            "the run-now executed: {run:?}"
        );
    }
    let mut figures = Vec::new();
    for key in ticking {
        let slots = settled_slots(&db, key, from, to, Duration::from_secs(30)).await;
        let (succeeded, skipped) = assert_each_slot_ran_once(&slots, &executed);
        figures.push((key, slots.len(), succeeded, skipped));
    }
    let output = process.output();
    let made_good = output.matches("claimed by a claim whose reply was lost").count();
    assert!(made_good >= 1, "the lost claim was not taken back: {output}");
    eprintln!(
        "replies lost: {}; failed claims {}, made good {made_good}; outcomes retried {}; (job, slots, succeeded, skipped): {figures:?}",
        proxy.stats().replies_lost,
        output.matches("cannot claim pending runs").count(),
        output.matches("could not record run outcomes").count(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_unreachable_across_a_slot_records_it_missed_then_runs_normally() {
    let db = TestDb::create().await;
    let proxy = FaultProxy::start(&upstream()).await;
    recurring(&db.pool, "beat", "system.heartbeat", "* * * * * *", json!({})).await;
    let url = proxy.url(&db.url);
    let process = scheduler(&db, &[("DATABASE_URL", url.as_str()), ("CRON_MISSED_AFTER", "3s")]);
    wait_for(Duration::from_secs(20), "runs before the outage", || async {
        (count(&db, "beat", RunStatus::Succeeded, None).await >= 2).then_some(())
    })
    .await;

    let down = Utc::now();
    proxy.refuse();
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.allow();
    let up = Utc::now();

    // Every slot of the outage has one row: missed (by the scheduler once the database was back,
    // or by the watchdog, which may get to a slot first while the scheduler's retry backs off),
    // or, for the last seconds, run in time once the database was back.
    let outage = settled_slots(&db, "beat", down, up, Duration::from_secs(40)).await;
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for (at, rows) in &outage {
        assert_eq!(rows.len(), 1, "slot {at}: {rows:#?}");
        let run = &rows[0];
        let label = match (run.status, run.reason) {
            (RunStatus::Missed, Some(reason)) => reason.as_str(),
            (RunStatus::Succeeded, _) => "succeeded",
            _ => panic!("a slot of the outage was neither missed nor run: {run:?}"),
        };
        *reasons.entry(label).or_default() += 1;
    }
    eprintln!("outage {down} .. {up}: {reasons:?}");
    // A slot due 1.5 to 3 s before the database came back is retried just after T + 3 s: the
    // scheduler itself records it missed, and says why.
    assert!(
        reasons.contains_key("database_unreachable"),
        "no slot recorded database_unreachable: {reasons:?}"
    );
    assert!(
        outage.len() - reasons.get("succeeded").copied().unwrap_or(0) >= 4,
        "most slots of an 8 s outage are missed: {reasons:?}"
    );
    // No slot started more than CRON_MISSED_AFTER (+1 s for clocks and commits) late.
    let late: Vec<JobRun> = runs_of(&db.pool, "beat")
        .await
        .into_iter()
        .filter(|r| r.started_at.is_some_and(|s| s - r.scheduled_at > TimeDelta::seconds(4)))
        .collect();
    assert!(late.is_empty(), "slots started late: {late:#?}");

    wait_for(Duration::from_secs(20), "slots after the outage to succeed", || async {
        let after = runs_of(&db.pool, "beat")
            .await
            .into_iter()
            .filter(|r| r.scheduled_at > up + TimeDelta::seconds(1) && r.status == RunStatus::Succeeded)
            .count();
        (after >= 3).then_some(())
    })
    .await;
    assert!(proxy.stats().refused > 0, "{:?}", proxy.stats());
    drop(process);
}

#[tokio::test]
async fn with_every_scheduler_stopped_the_apis_watchdog_records_missed_slots() {
    let db = TestDb::create().await;
    let (_api, base) = api_process(&db, TOKEN, &[("CRON_MISSED_AFTER", "2s")]).await;
    let created = reqwest::Client::new()
        .post(format!("{base}/api/v2/admin/cron/jobs"))
        .bearer_auth(TOKEN)
        .json(&json!({"job_key": "unwatched", "target": "system.heartbeat",
            "schedule_type": "recurring", "cron_expression": "* * * * * *"}))
        .send()
        .await
        .expect("POST /jobs");
    assert_eq!(created.status().as_u16(), 201, "{:?}", created.text().await);

    wait_for(
        Duration::from_secs(20),
        "slots recorded missed, no scheduler",
        || async {
            (count(&db, "unwatched", RunStatus::Missed, Some(RunReason::NoScheduler)).await >= 3).then_some(())
        },
    )
    .await;
    let before = runs_of(&db.pool, "unwatched").await;
    assert!(
        before
            .iter()
            .all(|r| (r.status, r.reason) == (RunStatus::Missed, Some(RunReason::NoScheduler))),
        "{before:#?}"
    );

    let started = Utc::now();
    let _scheduler = scheduler(&db, &[("CRON_MISSED_AFTER", "2s")]);
    wait_for(
        Duration::from_secs(20),
        "slots to succeed once a scheduler runs",
        || async {
            let ran = runs_of(&db.pool, "unwatched")
                .await
                .into_iter()
                .filter(|r| r.status == RunStatus::Succeeded && r.scheduled_at > started)
                .count();
            (ran >= 3).then_some(())
        },
    )
    .await;
    // Every slot since the job was created has exactly one row.
    let last = runs_of(&db.pool, "unwatched").await.last().expect("runs").scheduled_at;
    let active_since = before[0].scheduled_at - TimeDelta::seconds(1);
    let slots = settled_slots(&db, "unwatched", active_since, last, Duration::from_secs(10)).await;
    assert!(slots.values().all(|rows| rows.len() == 1), "{slots:#?}");
}

#[tokio::test]
async fn a_job_whose_target_no_scheduler_has_is_recorded_missed_and_its_run_now_does_not_block() {
    let api = TestApi::spawn().await;
    let db = &api.db;
    let orphan = recurring(&db.pool, "orphan", "removed.target", "* * * * * *", json!({})).await;
    let beat = recurring(&db.pool, "beat", "system.heartbeat", "0 0 1 1 *", json!({})).await;
    let _scheduler = scheduler(db, &[("CRON_MISSED_AFTER", "2s")]);

    let available = |id: Uuid| {
        let api = &api;
        async move { api.get(&format!("/jobs/{id}")).await.body["target_available"].clone() }
    };
    wait_for(
        Duration::from_secs(20),
        "the scheduler to offer system.heartbeat",
        || async { (available(beat.id).await == json!(true)).then_some(()) },
    )
    .await;
    assert_eq!(available(orphan.id).await, json!(false));

    wait_for(Duration::from_secs(20), "slots recorded target_unavailable", || async {
        let missed = count(db, "orphan", RunStatus::Missed, Some(RunReason::TargetUnavailable)).await;
        (missed >= 3).then_some(())
    })
    .await;

    let request = run_now(db, &orphan).await;
    let ended = wait_run(
        db,
        request.id,
        Duration::from_secs(10),
        "the run-now to be missed",
        |r| r.status.is_terminal(),
    )
    .await;
    assert_eq!(
        (ended.status, ended.reason),
        (RunStatus::Missed, Some(RunReason::TargetUnavailable)),
        "{ended:?}"
    );
    // It does not block the key: the next request is pending again, not skipped.
    run_now(db, &orphan).await;

    let runs = runs_of(&db.pool, "orphan").await;
    let scheduled: Vec<&JobRun> = runs
        .iter()
        .filter(|r| r.trigger_type == TriggerType::Scheduled)
        .collect();
    for run in &scheduled {
        assert_eq!(
            (run.status, run.reason),
            (RunStatus::Missed, Some(RunReason::TargetUnavailable)),
            "{run:?}"
        );
    }
    // One row per slot, with no slot left out between the first and the last.
    let (first, last) = (scheduled[0].scheduled_at, scheduled[scheduled.len() - 1].scheduled_at);
    let slots = settled_slots(
        db,
        "orphan",
        first - TimeDelta::seconds(1),
        last,
        Duration::from_secs(5),
    )
    .await;
    assert!(slots.values().all(|rows| rows.len() == 1), "{slots:#?}");
    assert_eq!(available(beat.id).await, json!(true), "the scheduler is alive");
}

#[tokio::test]
async fn a_scheduler_killed_after_sigterm_has_its_runs_failed_as_scheduler_lost() {
    let db = TestDb::create().await;
    recurring(&db.pool, "long", "system.sleep", "* * * * * *", json!({"seconds": 600})).await;
    let env = [
        ("CRON_HEARTBEAT_EVERY", "1s"),
        ("CRON_SHUTDOWN_GRACE", "30s"),
        ("CRON_STALE_AFTER", "10m"),
    ];
    let mut a = scheduler(&db, &env);
    let in_flight = wait_for(Duration::from_secs(20), "a run in flight under A", || async {
        runs_of(&db.pool, "long")
            .await
            .into_iter()
            .find(|r| r.status == RunStatus::Running)
    })
    .await;
    let a_name = in_flight.scheduler_instance.clone().expect("owned by A");

    // A deploy: SIGTERM, then the platform loses patience during the drain.
    a.terminate();
    wait_for(Duration::from_secs(10), "A to record that it is stopping", || async {
        let stopping: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar("SELECT stopping_since FROM cron_scheduler_instances WHERE instance = $1")
                .bind(&a_name)
                .fetch_optional(&db.pool)
                .await
                .ok()?;
        stopping.flatten().map(|_| ())
    })
    .await;
    a.kill9();

    let _b = scheduler(&db, &env);
    let failed = wait_run(&db, in_flight.id, Duration::from_secs(15), "A's run to fail", |r| {
        r.status.is_terminal()
    })
    .await;
    assert_eq!(
        (failed.status, failed.reason),
        (RunStatus::Failed, Some(RunReason::SchedulerLost)),
        "{failed:?}"
    );
    let next = wait_for(Duration::from_secs(15), "the next slot to run under B", || async {
        runs_of(&db.pool, "long").await.into_iter().find(|r| {
            r.status == RunStatus::Running && r.scheduled_at > failed.scheduled_at && r.scheduler_instance.is_some()
        })
    })
    .await;
    assert_ne!(next.scheduler_instance.as_deref(), Some(a_name.as_str()), "{next:?}");
}

#[tokio::test]
async fn twenty_five_targets_holding_connections_do_not_starve_heartbeats() {
    let db = TestDb::create().await;
    // Held longer than CRON_STALE_AFTER, so only heartbeats keep the runs alive; and shorter
    // than the targets' pool acquire timeout (10 s), so the five beyond its 20 connections wait
    // for one instead of failing.
    let run_at = Utc::now().trunc_subsecs(0) + TimeDelta::seconds(3);
    let mut keys = Vec::new();
    for i in 0..25 {
        let key = format!("hold-{i:02}");
        one_time(
            &db,
            &key,
            "system.sleep",
            run_at,
            json!({"seconds": 7, "hold_connection": true}),
        )
        .await;
        keys.push(key);
    }
    let env = [("CRON_HEARTBEAT_EVERY", "1s"), ("CRON_STALE_AFTER", "4s")];
    let _a = scheduler(&db, &env);
    wait_for(Duration::from_secs(20), "the runs to start under A", || async {
        let running: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE status = 'running'")
            .fetch_one(&db.pool)
            .await
            .ok()?;
        (running == 25).then_some(())
    })
    .await;
    // A second replica sweeps (stale and lost runs) while A's targets hold their connections.
    let _b = scheduler(&db, &env);

    let ended = wait_for(Duration::from_secs(45), "every run to end", || async {
        let runs: Vec<JobRun> = sqlx::query_as("SELECT * FROM cron_job_runs ORDER BY job_key")
            .fetch_all(&db.pool)
            .await
            .ok()?;
        (runs.len() == 25 && runs.iter().all(|r| r.status.is_terminal())).then_some(runs)
    })
    .await;
    let not_succeeded: Vec<&JobRun> = ended.iter().filter(|r| r.status != RunStatus::Succeeded).collect();
    assert!(not_succeeded.is_empty(), "{not_succeeded:#?}");
}

#[tokio::test]
async fn when_the_executor_is_full_due_slots_are_recorded_overloaded_not_run_late() {
    let db = TestDb::create().await;
    let run_at = Utc::now().trunc_subsecs(0) + TimeDelta::seconds(3);
    let long = one_time(&db, "long", "system.sleep", run_at, json!({"seconds": 10})).await;
    recurring(&db.pool, "tick", "system.record", "* * * * * *", json!({})).await;
    let _scheduler = scheduler(&db, &[("CRON_MAX_IN_FLIGHT", "1"), ("CRON_MISSED_AFTER", "2s")]);

    let long_run = wait_for(Duration::from_secs(40), "the long run to finish", || async {
        let run = runs_of(&db.pool, "long").await.pop()?;
        (run.status == RunStatus::Succeeded).then_some(run)
    })
    .await;
    assert_eq!(long_run.job_definition_id, long.id);
    let (started, finished) = (
        long_run.started_at.expect("started"),
        long_run.finished_at.expect("finished"),
    );
    // Room comes back: ticks run again.
    wait_for(Duration::from_secs(15), "ticks to run after the long run", || async {
        let after = runs_of(&db.pool, "tick")
            .await
            .into_iter()
            .filter(|r| r.scheduled_at > finished && r.status == RunStatus::Succeeded)
            .count();
        (after >= 2).then_some(())
    })
    .await;

    let ticks = runs_of(&db.pool, "tick").await;
    // A tick due while the long run held the only room, that could not get it before
    // T + CRON_MISSED_AFTER, was recorded overloaded (0.5 s margin for clocks and commits).
    let squeezed: Vec<&JobRun> = ticks
        .iter()
        .filter(|r| r.scheduled_at > started && r.scheduled_at + TimeDelta::milliseconds(2500) < finished)
        .collect();
    assert!(squeezed.len() >= 5, "{started} .. {finished}: {squeezed:#?}");
    for run in &squeezed {
        assert_eq!(
            (run.status, run.reason),
            (RunStatus::Missed, Some(RunReason::Overloaded)),
            "{run:?}"
        );
    }
    let late: Vec<&JobRun> = ticks
        .iter()
        .filter(|r| r.started_at.is_some_and(|s| s - r.scheduled_at > TimeDelta::seconds(3)))
        .collect();
    assert!(
        late.is_empty(),
        "ticks started more than CRON_MISSED_AFTER + 1 s late: {late:#?}"
    );
    let executed = executions(&db).await;
    for run in &ticks {
        assert_eq!(
            executed.contains_key(&run.id),
            run.status == RunStatus::Succeeded,
            "executed iff succeeded: {run:?}"
        );
    }
}

#[tokio::test]
async fn a_stopping_scheduler_claims_no_run_now() {
    let db = TestDb::create().await;
    let draining = recurring(&db.pool, "draining", "system.sleep", "0 0 1 1 *", json!({"seconds": 5})).await;
    let later = recurring(&db.pool, "later", "system.heartbeat", "0 0 1 1 *", json!({})).await;
    let mut process = scheduler(&db, &[("CRON_SHUTDOWN_GRACE", "10s")]);
    let run = run_now(&db, &draining).await;
    wait_run(&db, run.id, Duration::from_secs(20), "the long run to start", |r| {
        r.status == RunStatus::Running
    })
    .await;

    process.terminate();
    wait_for(
        Duration::from_secs(10),
        "the scheduler to record that it is stopping",
        || async {
            let stopping: i64 =
                sqlx::query_scalar("SELECT count(*) FROM cron_scheduler_instances WHERE stopping_since IS NOT NULL")
                    .fetch_one(&db.pool)
                    .await
                    .ok()?;
            (stopping == 1).then_some(())
        },
    )
    .await;
    let request = run_now(&db, &later).await;
    // Until the drain is over, the request waits for another scheduler.
    let deadline = Instant::now() + Duration::from_secs(20);
    while process.is_running() {
        let run = runs::get(&db.pool, request.id).await.unwrap();
        assert_eq!(
            (run.status, run.scheduler_instance.as_deref()),
            (RunStatus::Pending, None),
            "claimed by a stopping scheduler: {run:?}"
        );
        assert!(Instant::now() < deadline, "the scheduler did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = runs::get(&db.pool, request.id).await.unwrap();
    assert_eq!((after.status, after.scheduler_instance), (RunStatus::Pending, None));
    let drained = runs::get(&db.pool, run.id).await.unwrap();
    assert_eq!(
        drained.status,
        RunStatus::Succeeded,
        "the drain let it finish: {drained:?}"
    );
}

#[tokio::test]
async fn a_scheduler_started_while_a_run_now_waits_executes_it() {
    let db = TestDb::create().await;
    let job = recurring(&db.pool, "waiting", "system.record", "0 0 1 1 *", json!({})).await;
    let request = run_now(&db, &job).await;
    let _scheduler = scheduler(&db, &[]);
    let run = wait_run(&db, request.id, Duration::from_secs(20), "the run-now to end", |r| {
        r.status.is_terminal()
    })
    .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert!(executions(&db).await.contains_key(&request.id));
}

#[tokio::test]
async fn a_job_created_through_the_api_is_run_by_a_separate_scheduler_process() {
    let db = TestDb::create().await;
    let (_api, base) = api_process(&db, TOKEN, &[]).await;
    let _scheduler = scheduler(&db, &[]);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/v2/admin/cron/jobs"))
        .bearer_auth(TOKEN)
        .json(&json!({"job_key": "beat", "target": "system.heartbeat",
            "schedule_type": "recurring", "cron_expression": "* * * * * *"}))
        .send()
        .await
        .expect("POST /jobs");
    assert_eq!(created.status().as_u16(), 201, "{:?}", created.text().await);
    wait_for(Duration::from_secs(20), "the job's runs to succeed", || async {
        (count(&db, "beat", RunStatus::Succeeded, None).await >= 3).then_some(())
    })
    .await;

    let listed: Value = client
        .get(format!("{base}/api/v2/admin/cron/schedulers"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /schedulers")
        .json()
        .await
        .expect("JSON");
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["alive"], json!(true), "{listed}");
    let targets: HashSet<&str> = items[0]["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(targets.contains("system.heartbeat"), "{listed}");
    let ran_by = runs_of(&db.pool, "beat").await[0].scheduler_instance.clone();
    assert_eq!(ran_by.as_deref(), items[0]["instance"].as_str(), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_job_due_during_an_outage_runs_when_the_database_returns() {
    let db = TestDb::create().await;
    let proxy = FaultProxy::start(&upstream()).await;
    let url = proxy.url(&db.url);
    let process = scheduler(&db, &[("DATABASE_URL", url.as_str()), ("CRON_MISSED_AFTER", "3s")]);
    wait_for(Duration::from_secs(20), "the scheduler to register", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_scheduler_instances")
            .fetch_one(&db.pool)
            .await
            .ok()?;
        (n == 1).then_some(())
    })
    .await;
    let run_at = Utc::now().trunc_subsecs(0) + TimeDelta::seconds(3);
    let job = one_time(&db, "once", "system.record", run_at, json!({})).await;
    wait_for(Duration::from_secs(10), "the scheduler to arm the job", || async {
        process
            .output()
            .lines()
            .any(|l| l.contains("timer armed") && l.contains("\"once\""))
            .then_some(())
    })
    .await;
    assert!(
        Utc::now() < run_at,
        "armed only after the job was due; too slow a machine"
    );

    proxy.refuse();
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.allow();
    let up = Utc::now();

    wait_for(
        Duration::from_secs(30),
        "the one-time job to run and retire",
        || async {
            let retired = definitions::get(&db.pool, job.id).await.ok()?.status == JobStatus::Retired;
            retired.then_some(())
        },
    )
    .await;
    let runs = runs_of(&db.pool, "once").await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!((runs[0].status, runs[0].scheduled_at), (RunStatus::Succeeded, run_at));
    let executed = executions(&db).await;
    assert_eq!(executed.len(), 1, "{executed:?}");
    assert!(executed.contains_key(&runs[0].id));
    assert!(
        runs[0].started_at.expect("started") > up,
        "it ran after the outage (one-time jobs run late, never missed): {:?}",
        runs[0]
    );
}
