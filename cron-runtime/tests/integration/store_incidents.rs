//! Incidents (SPEC §12) against a real PostgreSQL: opened after N bad runs or by a stale one,
//! counted without a new event, resolved by a success, a pause or a retire; the cluster
//! incident `no_scheduler`; one outbox row per endpoint for each transition.

use std::time::Duration;

use cron_runtime::config::Secret;
use cron_runtime::domain::incident::{Endpoint, IncidentEvent, Policy, Transition};
use cron_runtime::domain::{JobDefinition, JobRun, ManagedBy};
use cron_runtime::store::definitions;
use cron_runtime::store::incidents::{self, IncidentFilter};
use cron_runtime::store::runs;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::{self, at};

fn policy(after_failures: u32) -> Policy {
    Policy {
        after_failures,
        endpoints: vec![
            Endpoint::new(Secret::new("https://hooks.example.com/a/secret")),
            Endpoint::new(Secret::new("http://127.0.0.1:9/b")),
        ],
        no_scheduler_after: Duration::from_secs(60),
    }
}

async fn job(pool: &PgPool, key: &str) -> JobDefinition {
    support::recurring(pool, key, "system.fail", "* * * * * *").await
}

/// Writes a terminal run of `def` at `second` as the scheduler would have recorded it.
async fn ended(pool: &PgPool, def: &JobDefinition, second: u32, status: &str, reason: Option<&str>) -> JobRun {
    sqlx::query_as(
        "INSERT INTO cron_job_runs
             (id, job_definition_id, job_key, job_version, target, trigger_type, scheduled_at, status,
              started_at, finished_at, duration_ms, reason, error)
         VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7, now(), now(), 1, $8, $9)
         RETURNING *",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(def.id)
    .bind(&def.job_key)
    .bind(def.version)
    .bind(&def.target)
    .bind(at(second))
    .bind(status)
    .bind(reason)
    .bind(reason.map(|r| format!("{r}: it went wrong at {second}")))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Records `runs`' outcomes under `policy`, as the writer of the runs does in its transaction.
async fn record(pool: &PgPool, runs: &[JobRun], policy: &Policy) -> Vec<Transition> {
    let mut tx = pool.begin().await.unwrap();
    let transitions = incidents::record_outcomes(&mut tx, runs, policy).await.unwrap();
    tx.commit().await.unwrap();
    transitions
}

async fn outbox(pool: &PgPool) -> Vec<(String, String, Value)> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT event, endpoint, body FROM cron_alert_outbox ORDER BY created_at, endpoint")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(e, p, b)| (e, p, serde_json::from_str(&b).unwrap()))
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn two_failures_of_two_open_one_incident_further_ones_count_and_a_success_resolves(pool: PgPool) {
    let def = job(&pool, "k").await;
    let policy = policy(2);

    let first = ended(&pool, &def, 1, "failed", Some("error")).await;
    assert!(
        record(&pool, std::slice::from_ref(&first), &policy).await.is_empty(),
        "one failure of two"
    );
    let second = ended(&pool, &def, 2, "missed", Some("no_scheduler")).await;
    let opened = record(&pool, std::slice::from_ref(&second), &policy).await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].event, IncidentEvent::Opened);
    let incident = &opened[0].incident;
    assert_eq!(
        (incident.failures, incident.first_run_id, incident.last_run_id),
        (2, Some(first.id), Some(second.id))
    );
    assert_eq!(incident.last_reason.as_deref(), Some("no_scheduler"));

    let more = [
        ended(&pool, &def, 3, "failed", Some("timeout")).await,
        ended(&pool, &def, 4, "skipped", Some("overlap")).await,
    ];
    assert!(
        record(&pool, &more, &policy).await.is_empty(),
        "no new event while open"
    );
    let open = incidents::get(&pool, incident.id).await.unwrap().unwrap();
    assert_eq!(
        (open.failures, open.last_run_id),
        (3, Some(more[0].id)),
        "a skip counts for nothing"
    );

    let success = ended(&pool, &def, 5, "succeeded", None).await;
    let resolved = record(&pool, std::slice::from_ref(&success), &policy).await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].event, IncidentEvent::Resolved);
    assert_eq!(resolved[0].incident.resolved_by.as_deref(), Some("success"));
    assert_eq!(resolved[0].incident.resolved_run_id, Some(success.id));

    let rows = outbox(&pool).await;
    assert_eq!(
        rows.len(),
        4,
        "one row per endpoint for each of the two events: {rows:?}"
    );
    let events: Vec<&str> = rows.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(
        events,
        [
            "incident.opened",
            "incident.opened",
            "incident.resolved",
            "incident.resolved"
        ]
    );
    assert!(rows
        .iter()
        .all(|(_, endpoint, _)| !endpoint.contains("secret") && endpoint.len() == 16));
    let (_, _, body) = &rows[0];
    assert_eq!(body["event"], "incident.opened");
    assert_eq!(body["job"]["key"], "k");
    assert_eq!(body["failures"], 2);
    assert_eq!(rows[0].2["id"], rows[1].2["id"], "one event id for every endpoint");
    assert_ne!(rows[0].2["id"], rows[2].2["id"]);

    let later = ended(&pool, &def, 6, "failed", Some("error")).await;
    assert!(
        record(&pool, &[later], &policy).await.is_empty(),
        "after a success the count starts again"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stale_run_opens_an_incident_at_once(pool: PgPool) {
    let def = job(&pool, "stuck").await;
    let stale = ended(&pool, &def, 1, "failed", Some("stale")).await;
    let opened = record(&pool, &[stale], &policy(5)).await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].incident.failures, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_store_writers_record_incidents_in_their_transaction(pool: PgPool) {
    // Default policy (one failure opens), as a process without alert settings has.
    let def = job(&pool, "sweep").await;
    let mut inserted = runs::insert_scheduled(
        &pool,
        runs::SlotBatch::start(&[runs::DueSlot::of(&def, at(1))]),
        "s1",
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    let run = inserted.running.remove(0).run;
    sqlx::query("UPDATE cron_job_runs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1")
        .bind(run.id)
        .execute(&pool)
        .await
        .unwrap();
    runs::fail_stale(&pool, Duration::from_secs(60), None, &Policy::default())
        .await
        .unwrap()
        .announce();
    let page = incidents::list(&pool, &IncidentFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "the sweep opened it");
    assert_eq!(page.items[0].last_reason.as_deref(), Some("stale"));

    let mut next = runs::insert_scheduled(
        &pool,
        runs::SlotBatch::start(&[runs::DueSlot::of(&def, at(2))]),
        "s1",
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    let ok = runs::RunOutcome::Succeeded { output: json!(null) };
    runs::finish_many(&pool, &[(next.running.remove(0).run.id, &ok)], &Policy::default())
        .await
        .unwrap()
        .announce();
    let open = IncidentFilter {
        status: Some("open".into()),
        job_key: None,
    };
    assert!(
        incidents::list(&pool, &open, None, 10).await.unwrap().items.is_empty(),
        "finish_many resolved it"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn pausing_or_retiring_a_failing_job_resolves_its_incident(pool: PgPool) {
    let paused = job(&pool, "paused").await;
    let retired = job(&pool, "retired").await;
    let p1 = ended(&pool, &paused, 1, "failed", Some("error")).await;
    let r1 = ended(&pool, &retired, 1, "failed", Some("error")).await;
    assert_eq!(record(&pool, &[p1, r1], &policy(1)).await.len(), 2);

    definitions::pause(
        &pool,
        paused.id,
        "investigating the failures",
        "alice",
        &Policy::default(),
    )
    .await
    .unwrap()
    .announce();
    definitions::retire(&pool, retired.id, "alice", ManagedBy::Api, &Policy::default())
        .await
        .unwrap()
        .announce();
    let resolved = IncidentFilter {
        status: Some("resolved".into()),
        job_key: None,
    };
    let mut by: Vec<(Option<String>, Option<String>)> = incidents::list(&pool, &resolved, None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| (i.job_key, i.resolved_by))
        .collect();
    by.sort();
    assert_eq!(
        by,
        [
            (Some("paused".into()), Some("paused".into())),
            (Some("retired".into()), Some("retired".into()))
        ]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_retired_keys_late_failures_open_no_incident(pool: PgPool) {
    // A run in flight when its job was retired fails afterwards: nothing would ever resolve an
    // incident it opened (no success can follow), so it opens none.
    let gone = job(&pool, "gone").await;
    definitions::retire(&pool, gone.id, "alice", ManagedBy::Api, &Policy::default())
        .await
        .unwrap()
        .announce();
    let late = ended(&pool, &gone, 1, "failed", Some("error")).await;
    assert!(record(&pool, &[late], &policy(1)).await.is_empty());
    let open = IncidentFilter {
        status: Some("open".into()),
        job_key: None,
    };
    assert!(incidents::list(&pool, &open, None, 10).await.unwrap().items.is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn one_open_incident_per_key(pool: PgPool) {
    let def = job(&pool, "k").await;
    let run = ended(&pool, &def, 1, "failed", Some("error")).await;
    record(&pool, &[run], &policy(1)).await;
    let second = sqlx::query("INSERT INTO cron_incidents (id, kind, job_key) VALUES ($1, 'job', 'k')")
        .bind(uuid::Uuid::now_v7())
        .execute(&pool)
        .await;
    assert!(
        second.is_err(),
        "the unique partial index refuses a second open incident"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn no_scheduler_opens_after_its_delay_and_resolves_when_one_is_alive(pool: PgPool) {
    job(&pool, "any").await;
    let mut policy = policy(1);
    policy.no_scheduler_after = Duration::from_secs(120);
    let check = |policy: Policy| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            let t = incidents::check_no_scheduler(&mut tx, &policy).await.unwrap();
            tx.commit().await.unwrap();
            t
        }
    };
    assert!(check(policy.clone()).await.is_none(), "first sight starts the clock");
    assert!(check(policy.clone()).await.is_none(), "not for 2 minutes yet");
    sqlx::query("UPDATE cron_alert_watch SET since = now() - interval '3 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    let opened = check(policy.clone()).await.expect("opened");
    assert_eq!(
        (opened.event, opened.incident.kind.as_str()),
        (IncidentEvent::Opened, "no_scheduler")
    );
    assert!(check(policy.clone()).await.is_none(), "opened once");

    sqlx::query(
        "INSERT INTO cron_scheduler_instances (instance, hostname, version, targets, heartbeat_interval_ms)
         VALUES ('s1', 'h', '0', '{}', 1000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let resolved = check(policy.clone()).await.expect("resolved");
    assert_eq!(resolved.event, IncidentEvent::Resolved);
    assert_eq!(resolved.incident.resolved_by.as_deref(), Some("scheduler_up"));
    assert_eq!(outbox(&pool).await.len(), 4);
}
