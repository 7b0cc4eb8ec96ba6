//! Sentry delivery for real: a `cronjobs scheduler` process reports to a local endpoint
//! that accepts Sentry envelopes, and the events arrive with their tags.

use std::time::Duration;

use cron_runtime::domain::RunStatus;
use serde_json::{json, Value};
use tests::api::recurring_body;
use tests::db::TestDb;
use tests::fixtures::{api_process, recurring, runs_of, scheduler, wait_for};
use tests::sentry_sink::{tag, SentrySink};

/// Waits for an event tagged `job_key` whose text contains `needle`.
async fn event_of(sink: &SentrySink, job_key: &str, needle: &str) -> Value {
    wait_for(
        Duration::from_secs(20),
        &format!("a Sentry event of {job_key} containing {needle:?}"),
        || async {
            sink.events()
                .into_iter()
                .find(|e| tag(e, "job_key") == Some(job_key) && e.to_string().contains(needle))
        },
    )
    .await
}

/// A failing job opens one incident, reported once however many runs fail (not one event per
/// failed run), with the tags of the run that opened it.
#[tokio::test]
async fn a_failing_job_reaches_sentry_once_per_incident_with_its_tags() {
    let db = TestDb::create().await;
    let sink = SentrySink::start().await;
    let message = format!("sentry-test failure {}", uuid::Uuid::new_v4());
    let job = recurring(
        &db.pool,
        "fails",
        "system.fail",
        "* * * * * *",
        json!({ "message": message }),
    )
    .await;
    let dsn = sink.dsn("publickey", None);
    let mut process = scheduler(&db, &[("SENTRY_DSN", dsn.as_str()), ("APP_ENV", "staging")]);

    let event = event_of(&sink, "fails", &message).await;
    // `level` is left out when it is `error`, Sentry's default.
    assert!(event.get("level").is_none_or(|l| l == "error"), "{event}");
    assert_eq!(event["environment"], "staging", "{event}");
    assert_eq!(tag(&event, "service"), Some("scheduler"), "{event}");
    assert_eq!(tag(&event, "target"), Some("system.fail"), "{event}");
    assert_eq!(
        tag(&event, "version"),
        Some(job.version.to_string().as_str()),
        "{event}"
    );
    assert!(
        event["release"].as_str().is_some_and(|r| r.starts_with("cronjobs@")),
        "{event}"
    );
    let run_id: uuid::Uuid = tag(&event, "run_id")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("run_id tag: {event}"));
    let runs = runs_of(&db.pool, "fails").await;
    let run = runs.iter().find(|r| r.id == run_id).expect("the tagged run exists");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some(message.as_str()));

    // More failures update the open incident; Sentry hears nothing more of them.
    wait_for(Duration::from_secs(20), "3 more failed runs", || async {
        let failed = runs_of(&db.pool, "fails")
            .await
            .iter()
            .filter(|r| r.status == RunStatus::Failed)
            .count();
        (failed >= 4).then_some(())
    })
    .await;
    process.terminate();
    process.wait_exit(Duration::from_secs(15));
    let events: Vec<Value> = sink
        .events()
        .into_iter()
        .filter(|e| tag(e, "job_key") == Some("fails"))
        .collect();
    assert_eq!(
        events.len(),
        1,
        "one event per incident, not per failed run: {events:?}"
    );
}

#[tokio::test]
async fn sentry_crons_check_ins_carry_the_monitor_and_its_config() {
    let db = TestDb::create().await;
    let sink = SentrySink::start().await;
    recurring(&db.pool, "beats", "system.heartbeat", "*/2 * * * * *", json!({})).await;
    recurring(
        &db.pool,
        "breaks",
        "system.fail",
        "* * * * * *",
        json!({ "message": "no" }),
    )
    .await;
    let dsn = sink.dsn("publickey", None);
    let _process = scheduler(&db, &[("SENTRY_DSN", dsn.as_str()), ("CRON_MISSED_AFTER", "90s")]);

    let of = |slug: &'static str, status: &'static str| {
        let sink = &sink;
        move || async move {
            sink.check_ins()
                .into_iter()
                .find(|c| c["monitor_slug"] == slug && c["status"] == status)
        }
    };
    let started = wait_for(
        Duration::from_secs(20),
        "an in_progress check-in",
        of("beats", "in_progress"),
    )
    .await;
    let ok = wait_for(Duration::from_secs(20), "an ok check-in", of("beats", "ok")).await;
    let error = wait_for(Duration::from_secs(20), "an error check-in", of("breaks", "error")).await;
    assert!(ok["duration"].as_f64().is_some(), "{ok}");
    assert!(error["duration"].as_f64().is_some(), "{error}");
    let config = &started["monitor_config"];
    // Sentry's smallest unit is a minute: the seconds field is dropped.
    assert_eq!(
        config["schedule"],
        json!({"type": "crontab", "value": "* * * * *"}),
        "{started}"
    );
    assert_eq!(config["timezone"], "UTC", "{started}");
    assert_eq!(
        config["checkin_margin"], 2,
        "90 s, in whole minutes rounded up: {started}"
    );
    assert_eq!(
        config["max_runtime"], 1,
        "system.heartbeat's 1-minute timeout: {started}"
    );
}

#[tokio::test]
async fn a_panicking_target_is_reported_by_the_panic_integration_with_the_run_tags() {
    let db = TestDb::create().await;
    let sink = SentrySink::start().await;
    recurring(&db.pool, "panics", "system.panic", "* * * * * *", json!({})).await;
    let dsn = sink.dsn("publickey", None);
    let _process = scheduler(&db, &[("SENTRY_DSN", dsn.as_str())]);

    // The panic's own event (the incident the failed run opens is reported too, without an exception).
    let event = wait_for(Duration::from_secs(20), "the panic's Sentry event", || async {
        sink.events().into_iter().find(|e| {
            let text = e.to_string();
            tag(e, "job_key") == Some("panics")
                && text.contains("system.panic was asked to panic")
                && text.contains("\"exception\"")
        })
    })
    .await;
    assert_eq!(event["environment"], "development", "{event}");
    assert_eq!(tag(&event, "service"), Some("scheduler"), "{event}");
    assert_eq!(tag(&event, "target"), Some("system.panic"), "{event}");
    assert!(tag(&event, "run_id").is_some(), "{event}");
    assert!(
        event.to_string().contains("\"exception\""),
        "the panic integration reports an exception: {event}"
    );
}

#[tokio::test]
async fn the_api_reports_server_errors_to_sentry_but_not_client_errors() {
    let db = TestDb::create().await;
    let sink = SentrySink::start().await;
    let dsn = sink.dsn("publickey", None);
    let token = "sentry-test-token-0123456789";
    let (_api, base) = api_process(&db, token, &[("SENTRY_DSN", dsn.as_str())]).await;
    let client = reqwest::Client::new();
    let post_job = || {
        client
            .post(format!("{base}/api/v2/admin/cron/jobs"))
            .bearer_auth(token)
            .json(&recurring_body("twice"))
            .send()
    };
    assert_eq!(post_job().await.expect("first create").status().as_u16(), 201);
    // A client error (409: the key is taken) is the caller's to fix, not an incident.
    assert_eq!(post_job().await.expect("second create").status().as_u16(), 409);

    // A server error is: the run table is gone, so listing runs fails with a database error.
    sqlx::query("ALTER TABLE cron_job_runs RENAME TO cron_job_runs_gone")
        .execute(&db.pool)
        .await
        .expect("rename the run table");
    let listed = client
        .get(format!("{base}/api/v2/admin/cron/runs"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list runs");
    assert_eq!(listed.status().as_u16(), 500);
    let event = wait_for(
        Duration::from_secs(20),
        "a Sentry event of the database error",
        || async {
            sink.events()
                .into_iter()
                .find(|e| e.to_string().contains("cron_job_runs"))
        },
    )
    .await;
    assert_eq!(tag(&event, "service"), Some("api"), "{event}");
    // Events leave in order, so the 409's would have arrived first.
    let events = sink.events();
    assert!(
        !events.iter().any(|e| e.to_string().contains("already used")),
        "a 409 became a Sentry event: {events:?}"
    );
}
