//! What the API tells about slot accounting (SPEC §11, §13): the scheduler instances and their
//! liveness, missed runs and their reasons, and whether a job's target can run anywhere.

use std::time::Duration;

use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::RunReason;
use cron_runtime::store::instances::{self, Registration};
use cron_runtime::store::runs::{self, DueSlot, SlotBatch};
use serde_json::{json, Value};
use tests::api::TestApi;
use tests::db::TestDb;
use tests::fixtures::{api_process, recurring, scheduler, wait_for};

const TOKEN: &str = "schedulers-test-token-0123456789";

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// The value of the gauge `name` in a Prometheus text page.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(&format!("{name} ")))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn an_operator_sees_each_live_scheduler_and_its_departure() {
    let db = TestDb::create().await;
    // A deploy tells the new build from the old by its commit: both services report it.
    let commit = [("CRONJOBS_COMMIT", "5eed1e55")];
    let (_api, base) = api_process(&db, TOKEN, &commit).await;
    let (_, health) = get(&format!("{base}/healthz")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap()["commit"],
        json!("5eed1e55")
    );
    let mut scheduler = scheduler(&db, &commit);
    let schedulers = format!("{base}/api/v2/admin/cron/schedulers");
    let listed: Value = wait_for(Duration::from_secs(20), "the scheduler to register", || async {
        let (status, text) = get(&schedulers).await;
        assert_eq!(status, 200, "{text}");
        let body: Value = serde_json::from_str(&text).ok()?;
        (body["items"].as_array()?.len() == 1).then_some(body)
    })
    .await;
    let instance = &listed["items"][0];
    assert_eq!(instance["alive"], json!(true), "{instance}");
    assert_eq!(instance["heartbeat_interval_ms"], json!(1000));
    assert_eq!(instance["stopping_since"], Value::Null);
    assert_eq!(instance["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(instance["commit"], json!("5eed1e55"));
    let targets: Vec<&str> = instance["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(targets.contains(&"system.heartbeat"), "{targets:?}");
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(gauge(&metrics, "cronjobs_schedulers_alive"), Some(1.0), "{metrics}");

    // A clean exit removes the instance: nothing is left that looks like a dead scheduler.
    scheduler.terminate();
    assert!(
        scheduler.wait_exit(Duration::from_secs(15)).is_some(),
        "the scheduler exits"
    );
    let (_, text) = get(&schedulers).await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["items"], json!([]));
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(gauge(&metrics, "cronjobs_schedulers_alive"), Some(0.0), "{metrics}");
}

#[tokio::test]
async fn a_dead_scheduler_is_listed_as_not_alive() {
    let api = TestApi::spawn().await;
    register(&api, "gone-1", &["system.heartbeat"]).await;
    sqlx::query("UPDATE cron_scheduler_instances SET last_seen_at = now() - interval '1 minute'")
        .execute(&api.db.pool)
        .await
        .unwrap();
    register(&api, "here-2", &["system.heartbeat"]).await;
    let reply = api.get("/schedulers").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let alive: Vec<(&str, bool)> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["instance"].as_str().unwrap(), i["alive"].as_bool().unwrap()))
        .collect();
    assert_eq!(alive, [("here-2", true), ("gone-1", false)], "alive ones first");
}

#[tokio::test]
async fn missed_runs_are_listed_by_status_and_reason() {
    let api = TestApi::spawn().await;
    let job = recurring(&api.db.pool, "k", "system.heartbeat", "* * * * * *", json!({})).await;
    let at = |s: i64| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
    let late = [DueSlot::of(&job, at(0))];
    let unreachable = [DueSlot::of(&job, at(1))];
    for (slots, reason) in [
        (&late, RunReason::Overloaded),
        (&unreachable, RunReason::DatabaseUnreachable),
    ] {
        let batch = SlotBatch {
            start: &[],
            missed: slots,
            missed_reason: reason,
        };
        runs::insert_scheduled(&api.db.pool, batch, "s", &Policy::default())
            .await
            .unwrap()
            .announce();
    }
    let reply = api.get("/runs?status=missed&reason=overloaded").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], json!("missed"));
    assert_eq!(items[0]["reason"], json!("overloaded"));
    assert!(
        items[0]["error"].as_str().unwrap().starts_with("missed:"),
        "{}",
        items[0]
    );
    assert_eq!(
        api.get("/runs?status=missed").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let bad = api.get("/runs?reason=sunspots").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.body["errors"][0]["field"], json!("reason"));
}

#[tokio::test]
async fn a_job_says_whether_a_live_scheduler_can_run_its_target() {
    let api = TestApi::spawn().await;
    let heartbeat = api
        .create_job(&json!({"job_key": "beat", "target": "system.heartbeat", "schedule_type": "recurring", "cron_expression": "* * * * *"}))
        .await;
    assert_eq!(
        heartbeat["target_available"],
        json!(false),
        "no scheduler is up: {heartbeat}"
    );
    register(&api, "s1", &["system.heartbeat"]).await;
    let id = heartbeat["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/jobs/{id}")).await.body["target_available"],
        json!(true)
    );
    let failing = api
        .create_job(
            &json!({"job_key": "fail", "target": "system.fail", "schedule_type": "recurring",
            "cron_expression": "* * * * *", "payload": {"message": "x"}}),
        )
        .await;
    assert_eq!(failing["target_available"], json!(false), "s1's build lacks it");
    let listed = api.get("/jobs").await;
    assert!(listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["target_available"] == json!(j["job_key"] == json!("beat"))));
    // A scheduler that is stopping starts nothing new: its targets no longer count.
    instances::mark_stopping(&api.db.pool, "s1").await.unwrap();
    assert_eq!(
        api.get(&format!("/jobs/{id}")).await.body["target_available"],
        json!(false)
    );
}

async fn register(api: &TestApi, instance: &str, targets: &[&str]) {
    instances::heartbeat(
        &api.db.pool,
        &Registration {
            instance,
            hostname: "test-host",
            version: "0.0.0",
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
