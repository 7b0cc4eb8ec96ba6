//! Alerts (SPEC §12) for real: `cronjobs` processes open and resolve incidents and POST them
//! to a local webhook receiver, signed, at least once, once per event across replicas.

use std::time::Duration;

use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobDefinition, JobKey, ManagedBy, RunStatus};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use cron_runtime::store::runs;
use serde_json::{json, Value};
use sqlx::PgPool;
use tests::api::TestApi;
use tests::db::TestDb;
use tests::fixtures::{api_process, free_port, http_get, recurring, runs_of, scheduler, wait_for};
use tests::webhook_receiver::{Received, WebhookReceiver};

const SECRET: &str = "whsec-test-0123456789";
const WAIT: Duration = Duration::from_secs(30);

/// Runs of `job_key` with `status`.
async fn count(pool: &PgPool, job_key: &str, status: RunStatus) -> usize {
    runs_of(pool, job_key)
        .await
        .iter()
        .filter(|r| r.status == status)
        .count()
}

/// Replaces `job` by a new version running `system.heartbeat`: the key starts succeeding.
async fn make_it_succeed(pool: &PgPool, job: &JobDefinition) -> JobDefinition {
    let new = NewDefinition {
        job_key: JobKey::parse(&job.job_key).unwrap(),
        target: "system.heartbeat".into(),
        schedule: ScheduleSpec::Recurring {
            cron_expression: "* * * * * *".into(),
        },
        timezone: "UTC".into(),
        payload: json!({}),
        description: None,
        created_by: "test".into(),
        managed_by: ManagedBy::Api,
        source: None,
        timeout: None,
        retry: Default::default(),
    };
    definitions::new_version(pool, job.id, &new, ManagedBy::Api)
        .await
        .expect("new version")
}

/// A job that never fires on its own (1 January): runs come from run-now only.
async fn on_demand(pool: &PgPool, key: &str, target: &str) -> JobDefinition {
    recurring(pool, key, target, "0 0 1 1 *", json!({ "message": "disk full" })).await
}

/// Asks for a run of `job` and waits until the key has `done` runs with `status`.
async fn run_now_and_wait(pool: &PgPool, job: &JobDefinition, status: RunStatus, done: usize) {
    runs::request_run(pool, job.id, "test", None).await.expect("run now");
    wait_for(WAIT, &format!("{done} {status} runs of {}", job.job_key), || async {
        (count(pool, &job.job_key, status).await >= done).then_some(())
    })
    .await;
}

/// Waits until `receiver` has been delivered `n` events named `event`.
async fn delivered(receiver: &WebhookReceiver, event: &str, n: usize) -> Vec<Received> {
    wait_for(WAIT, &format!("{n} {event} deliveries"), || async {
        let got = receiver.delivered_events(event);
        (got.len() >= n).then_some(got)
    })
    .await
}

fn webhook_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CRON_ALERT_WEBHOOK_URLS", url.to_owned()),
        ("CRON_ALERT_WEBHOOK_SECRET", SECRET.to_owned()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_job_failing_three_times_then_succeeding_alerts_once_and_recovers_once() {
    let db = TestDb::create().await;
    let receiver = WebhookReceiver::start().await;
    let job = recurring(
        &db.pool,
        "flaky",
        "system.fail",
        "* * * * * *",
        json!({ "message": "disk full" }),
    )
    .await;
    let env = webhook_env(&receiver.url());
    let _scheduler = scheduler(&db, &as_refs(&env));

    wait_for(WAIT, "3 failed runs", || async {
        (count(&db.pool, "flaky", RunStatus::Failed).await >= 3).then_some(())
    })
    .await;
    let v2 = make_it_succeed(&db.pool, &job).await;
    let resolved = delivered(&receiver, "incident.resolved", 1).await;
    let opened = receiver.delivered_events("incident.opened");

    assert_eq!(opened.len(), 1, "one alert however many failures: {opened:?}");
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    for r in opened.iter().chain(&resolved) {
        assert!(r.signed_with(SECRET), "a valid signature: {r:?}");
        assert_eq!(r.event_id.as_deref(), r.json()["id"].as_str(), "header and body agree");
    }
    let (opened, resolved) = (opened[0].json(), resolved[0].json());
    assert_eq!(opened["kind"], "job");
    assert_eq!(opened["job"]["key"], "flaky");
    assert_eq!(opened["job"]["id"], json!(job.id));
    assert_eq!(opened["job"]["target"], "system.fail");
    assert_eq!(opened["run"]["status"], "failed");
    assert!(
        opened["text"]
            .as_str()
            .is_some_and(|t| t.contains("flaky") && t.contains("disk full") && !t.contains('\n')),
        "{opened}"
    );
    assert_eq!(resolved["incident_id"], opened["incident_id"]);
    assert!(resolved["failures"].as_i64().unwrap() >= 3, "{resolved}");
    assert_eq!(resolved["run"]["status"], "succeeded");
    assert!(
        resolved["text"].as_str().is_some_and(|t| t.contains("recovered")),
        "{resolved}"
    );
    // The resolving run is of the new version (the key is what an incident follows).
    let run_id: uuid::Uuid = resolved["run"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(runs::get(&db.pool, run_id).await.unwrap().job_definition_id, v2.id);
}

#[tokio::test]
async fn with_three_failures_required_two_failures_alert_nobody() {
    let db = TestDb::create().await;
    let receiver = WebhookReceiver::start().await;
    let job = on_demand(&db.pool, "patient", "system.fail").await;
    let mut env = webhook_env(&receiver.url());
    env.push(("CRON_ALERT_AFTER_FAILURES", "3".into()));
    let _scheduler = scheduler(&db, &as_refs(&env));

    run_now_and_wait(&db.pool, &job, RunStatus::Failed, 1).await;
    run_now_and_wait(&db.pool, &job, RunStatus::Failed, 2).await;
    let incidents: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_incidents")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(incidents, 0, "two failures of three: no incident");

    run_now_and_wait(&db.pool, &job, RunStatus::Failed, 3).await;
    let opened = delivered(&receiver, "incident.opened", 1).await;
    assert_eq!(opened[0].json()["failures"], 3, "{:?}", opened[0].body);
    // Nothing was sent for the first two: the only request is the one for the third.
    assert_eq!(receiver.received().len(), 1, "{:?}", receiver.received());
}

#[tokio::test]
async fn a_receiver_answering_500_twice_gets_the_same_event_a_third_time() {
    let db = TestDb::create().await;
    let receiver = WebhookReceiver::start().await;
    receiver.fail_next(2);
    let job = on_demand(&db.pool, "once", "system.fail").await;
    let port = free_port();
    let mut env = webhook_env(&receiver.url());
    env.push(("PORT", port.to_string()));
    let _scheduler = scheduler(&db, &as_refs(&env));

    run_now_and_wait(&db.pool, &job, RunStatus::Failed, 1).await;
    delivered(&receiver, "incident.opened", 1).await;
    let attempts = receiver.received();
    let statuses: Vec<u16> = attempts.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200], "{attempts:?}");
    let ids: Vec<_> = attempts.iter().map(|r| r.event_id.clone().unwrap()).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one event id across retries: {ids:?}"
    );
    assert!(attempts.iter().all(|r| r.body == attempts[0].body), "the same body");
    // The receiver saw the 200 before the sender could record it: wait for the record.
    let tries = wait_for(WAIT, "the delivery recorded", || async {
        let (delivered, tries): (bool, i32) =
            sqlx::query_as("SELECT delivered_at IS NOT NULL, attempts FROM cron_alert_outbox")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        delivered.then_some(tries)
    })
    .await;
    assert_eq!(tries, 3);

    // Counted in the scheduler's /metrics.
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let text = wait_for(WAIT, "the delivery counted", || async {
        http_get(&metrics)
            .await
            .map(|(_, text)| text)
            .filter(|t| t.contains(r#"cronjobs_alert_deliveries_total{result="delivered"} 1"#))
    })
    .await;
    assert!(
        text.contains(r#"cronjobs_alert_deliveries_total{result="retry"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"cronjobs_incidents_total{kind="job",event="incident.opened"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_alert_arrives_after_the_receiver_was_down_and_the_scheduler_killed() {
    let db = TestDb::create().await;
    let port = free_port();
    let url = WebhookReceiver::url_on(port);
    let job = on_demand(&db.pool, "unheard", "system.fail").await;
    let env = webhook_env(&url);
    let mut first = scheduler(&db, &as_refs(&env));

    run_now_and_wait(&db.pool, &job, RunStatus::Failed, 1).await;
    wait_for(WAIT, "a failed delivery attempt", || async {
        let tried: Option<bool> =
            sqlx::query_scalar("SELECT attempts > 0 AND last_error IS NOT NULL FROM cron_alert_outbox")
                .fetch_optional(&db.pool)
                .await
                .unwrap();
        tried.filter(|t| *t)
    })
    .await;
    first.kill9();
    let logs = first.output();
    assert!(
        !logs.contains("s3cr3tPathPart"),
        "a webhook URL's path is never logged:\n{logs}"
    );
    assert!(logs.contains("127.0.0.1"), "the endpoint's host is:\n{logs}");

    let _second = scheduler(&db, &as_refs(&env));
    let receiver = WebhookReceiver::start_on(port).await;
    let opened = delivered(&receiver, "incident.opened", 1).await;
    assert_eq!(opened[0].json()["job"]["key"], "unheard");
}

#[tokio::test]
async fn three_replicas_deliver_each_event_once() {
    let db = TestDb::create().await;
    let receiver = WebhookReceiver::start().await;
    let job = recurring(
        &db.pool,
        "shared",
        "system.fail",
        "* * * * * *",
        json!({ "message": "boom" }),
    )
    .await;
    let env = webhook_env(&receiver.url());
    let _replicas: Vec<_> = (0..3).map(|_| scheduler(&db, &as_refs(&env))).collect();

    wait_for(WAIT, "2 failed runs", || async {
        (count(&db.pool, "shared", RunStatus::Failed).await >= 2).then_some(())
    })
    .await;
    make_it_succeed(&db.pool, &job).await;
    delivered(&receiver, "incident.resolved", 1).await;
    // Give a duplicate the time it would need to show up: every replica polls each second.
    let undelivered = || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_alert_outbox WHERE delivered_at IS NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (left == 0).then_some(())
    };
    wait_for(WAIT, "the outbox drained", undelivered).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a duplicate would arrive within a poll
    let by_id = receiver.delivered();
    assert_eq!(by_id.len(), 2, "opened and resolved: {by_id:?}");
    assert!(
        by_id.values().all(|r| r.len() == 1),
        "one delivery per event id: {by_id:?}"
    );
}

#[tokio::test]
async fn no_scheduler_opens_while_none_runs_and_resolves_when_one_starts() {
    let db = TestDb::create().await;
    let receiver = WebhookReceiver::start().await;
    recurring(&db.pool, "lonely", "system.heartbeat", "* * * * * *", json!({})).await;
    let mut env = webhook_env(&receiver.url());
    env.push(("CRON_NO_SCHEDULER_AFTER", "3s".into()));
    env.push(("CRON_MISSED_AFTER", "2s".into()));
    let (_api, _base) = api_process(&db, "alerts-test-token-0123456789", &as_refs(&env)).await;

    let is_cluster = |r: &Received| r.json()["kind"] == "no_scheduler";
    let opened = wait_for(WAIT, "no_scheduler opened", || async {
        receiver
            .delivered_events("incident.opened")
            .into_iter()
            .find(is_cluster)
    })
    .await;
    let body = opened.json();
    assert_eq!(body["job"], Value::Null, "{body}");
    assert!(
        body["text"].as_str().is_some_and(|t| t.contains("no scheduler")),
        "{body}"
    );

    let _scheduler = scheduler(&db, &as_refs(&env));
    let resolved = wait_for(WAIT, "no_scheduler resolved", || async {
        receiver
            .delivered_events("incident.resolved")
            .into_iter()
            .find(is_cluster)
    })
    .await;
    assert_eq!(resolved.json()["incident_id"], body["incident_id"]);
    assert!(resolved.signed_with(SECRET));
}

#[tokio::test]
async fn incidents_are_listed_with_filters_and_bad_filters_are_named() {
    let api = TestApi::spawn().await;
    let job = on_demand(&api.db.pool, "listed", "system.fail").await;
    // Record a failed run through the store, as a scheduler would.
    let pending = match runs::request_run(&api.db.pool, job.id, "test", None).await.unwrap() {
        runs::RunNowOutcome::Pending(run) => run,
        other => panic!("{other:?}"),
    };
    sqlx::query("UPDATE cron_job_runs SET status = 'running', started_at = now(), heartbeat_at = now() WHERE id = $1")
        .bind(pending.id)
        .execute(&api.db.pool)
        .await
        .unwrap();
    let outcome = runs::RunOutcome::Failed {
        reason: cron_runtime::domain::RunReason::Error,
        error: "disk full".into(),
    };
    runs::finish(&api.db.pool, pending.id, &outcome, &Policy::default())
        .await
        .unwrap()
        .value
        .unwrap();

    let open = api.get("/api/v2/admin/cron/incidents?status=open&job_key=listed").await;
    assert_eq!(open.status, 200, "{}", open.text);
    let items = open.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", open.text);
    assert_eq!(items[0]["job_key"], "listed");
    assert_eq!(items[0]["status"], "open");
    assert_eq!(items[0]["last_error"], "disk full");
    assert_eq!(items[0]["first_run_id"], json!(pending.id));
    let resolved = api.get("/api/v2/admin/cron/incidents?status=resolved").await;
    assert_eq!(resolved.body["items"], json!([]), "{}", resolved.text);

    let bad = api.get("/api/v2/admin/cron/incidents?status=closed&limit=0").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.error_fields(), ["limit", "status"], "{}", bad.text);
}

#[tokio::test]
async fn removing_a_failing_job_from_the_jobs_file_resolves_its_incident_with_a_webhook() {
    // `cronjobs apply` retires the job and resolves its incident in one transaction: the
    // resolution reaches the webhooks like any other (it used to be silent).
    let db = TestDb::create().await;
    let receiver = WebhookReceiver::start().await;
    let env = webhook_env(&receiver.url());
    let _scheduler = scheduler(&db, &as_refs(&env));
    let dir = std::env::temp_dir().join(format!("cronjobs-alerts-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let file = dir.join("jobs.toml");
    let failing = "[jobs.\"nightly.export\"]\ntarget = \"system.fail\"\ncron = \"* * * * * *\"\npayload = { message = \"upstream down\" }\n\n[jobs.\"keep\"]\ntarget = \"system.heartbeat\"\ncron = \"0 0 1 1 *\"\n";
    let apply = |text: &str| {
        std::fs::write(&file, text).expect("write jobs.toml");
        let mut command = std::process::Command::new(tests::process::binary());
        command
            .args(["apply", &file.to_string_lossy()])
            .env("DATABASE_URL", &db.url)
            .env("CRON_DIAGNOSTIC_TARGETS", "1");
        for (key, value) in &env {
            command.env(key, value);
        }
        command.output().expect("run cronjobs apply")
    };
    assert!(apply(failing).status.success());
    delivered(&receiver, "incident.opened", 1).await;
    let removed = apply("[jobs.\"keep\"]\ntarget = \"system.heartbeat\"\ncron = \"0 0 1 1 *\"\n");
    assert!(removed.status.success(), "{removed:?}");
    let resolved = delivered(&receiver, "incident.resolved", 1).await;
    let body = resolved[0].json();
    assert_eq!(body["job"]["key"], "nightly.export", "{body}");
    assert!(resolved[0].signed_with(SECRET));
    let _ = std::fs::remove_dir_all(dir);
}

/// `POST` `body` to the admin API at `base` as `ops`.
async fn post_as_ops(base: &str, path: &str, token: &str, body: Value) -> tests::api::Reply {
    let client = reqwest::Client::new();
    tests::api::send(
        client
            .post(format!("{base}/api/v2/admin/cron{path}"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn an_incident_acknowledged_and_resolved_by_hand_tells_the_webhooks_who_and_why() {
    const TOKEN: &str = "ops-token-0123456789abcdef";
    let db = TestDb::create().await;
    let receiver = WebhookReceiver::start().await;
    let mut env = webhook_env(&receiver.url());
    env.push(("CRON_ALERT_AFTER_FAILURES", "1".into()));
    let (_api, base) = api_process(&db, TOKEN, &as_refs(&env)).await;
    let _scheduler = scheduler(&db, &as_refs(&env));
    let job = on_demand(&db.pool, "nightly", "system.fail").await;
    run_now_and_wait(&db.pool, &job, RunStatus::Failed, 1).await;
    let opened = delivered(&receiver, "incident.opened", 1).await;
    let id = opened[0].json()["incident_id"].as_str().unwrap_or_default().to_owned();

    // Bad input names the field; unknown ids are 404.
    let no_note = post_as_ops(&base, &format!("/incidents/{id}/acknowledge"), TOKEN, json!({})).await;
    assert_eq!(no_note.error_fields(), vec!["note".to_owned()], "{}", no_note.text);
    let bad_id = post_as_ops(&base, "/incidents/nope/resolve", TOKEN, json!({"note": "fixed it"})).await;
    assert_eq!(bad_id.error_fields(), vec!["incidentId".to_owned()], "{}", bad_id.text);
    let unknown = format!("/incidents/{}/resolve", uuid::Uuid::now_v7());
    assert_eq!(
        post_as_ops(&base, &unknown, TOKEN, json!({"note": "fixed it"}))
            .await
            .status,
        404
    );

    let acknowledged = post_as_ops(
        &base,
        &format!("/incidents/{id}/acknowledge"),
        TOKEN,
        json!({"note": "looking at the disk"}),
    )
    .await;
    assert_eq!(acknowledged.status, 200, "{}", acknowledged.text);
    let incident = &acknowledged.body;
    assert_eq!(
        (incident["status"].as_str(), incident["acknowledged_by"].as_str()),
        (Some("open"), Some("ops"))
    );
    let again = post_as_ops(
        &base,
        &format!("/incidents/{id}/acknowledge"),
        TOKEN,
        json!({"note": "me too!"}),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.text);

    let resolved = post_as_ops(
        &base,
        &format!("/incidents/{id}/resolve"),
        TOKEN,
        json!({"note": "one-time cleanup, done by hand"}),
    )
    .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    let incident = &resolved.body;
    assert_eq!(
        (
            incident["status"].as_str(),
            incident["resolved_by"].as_str(),
            incident["resolver"].as_str()
        ),
        (Some("resolved"), Some("admin"), Some("ops"))
    );
    let twice = post_as_ops(
        &base,
        &format!("/incidents/{id}/resolve"),
        TOKEN,
        json!({"note": "again, to be sure"}),
    )
    .await;
    assert_eq!(twice.status, 409, "{}", twice.text);

    let told = delivered(&receiver, "incident.acknowledged", 1).await[0].json();
    assert_eq!(
        (told["by"].as_str(), told["note"].as_str()),
        (Some("ops"), Some("looking at the disk"))
    );
    assert!(
        told["text"]
            .as_str()
            .unwrap_or_default()
            .contains("ops acknowledged it"),
        "{told}"
    );
    let told = delivered(&receiver, "incident.resolved", 1).await[0].json();
    assert_eq!(told["by"], "ops", "{told}");

    // The key's failures count anew: the next one opens a new incident.
    run_now_and_wait(&db.pool, &job, RunStatus::Failed, 2).await;
    let reopened = delivered(&receiver, "incident.opened", 2).await;
    assert_ne!(reopened[1].json()["incident_id"], json!(id));
}

#[tokio::test]
async fn a_run_interrupted_by_a_graceful_shutdown_opens_no_incident() {
    let db = TestDb::create().await;
    let mut env = vec![("CRON_ALERT_AFTER_FAILURES", "1".to_owned())];
    env.push(("CRON_SHUTDOWN_GRACE", "1s".to_owned()));
    let mut scheduler = scheduler(&db, &as_refs(&env));
    let job = recurring(
        &db.pool,
        "deploy-me",
        "system.sleep",
        "0 0 1 1 *",
        json!({"seconds": 60}),
    )
    .await;
    runs::request_run(&db.pool, job.id, "test", None)
        .await
        .expect("run now");
    wait_for(WAIT, "the run to start", || async {
        (count(&db.pool, "deploy-me", RunStatus::Running).await == 1).then_some(())
    })
    .await;
    scheduler.terminate();
    scheduler
        .wait_exit(Duration::from_secs(15))
        .expect("the scheduler exits on SIGTERM");
    let run = &runs_of(&db.pool, "deploy-me").await[0];
    assert_eq!(
        (run.status, run.reason.map(|r| r.to_string())),
        (RunStatus::Failed, Some("shutdown".to_owned()))
    );
    let (incidents,): (i64,) = sqlx::query_as("SELECT count(*) FROM cron_incidents")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(incidents, 0, "a deploy is not an incident");
}
