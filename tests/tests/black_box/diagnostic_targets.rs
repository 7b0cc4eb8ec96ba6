//! The diagnostic targets (`system.sleep`, `system.fail`, `system.panic`, `system.record`) are
//! off in a process started without `CRON_DIAGNOSTIC_TARGETS=1`: the API neither lists nor
//! accepts them, and the scheduler neither advertises nor runs them. `system.heartbeat` stays.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tests::db::TestDb;
use tests::fixtures::{api_process, one_time, runs_of, scheduler, wait_for};

const TOKEN: &str = "diagnostic-test-token-0123456789";
const DIAGNOSTIC: [&str; 4] = ["system.fail", "system.panic", "system.record", "system.sleep"];

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.bearer_auth(TOKEN).send().await.expect("request");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn listed_targets(base: &str) -> Vec<String> {
    let (status, body) = send(reqwest::Client::new().get(format!("{base}/api/v2/admin/cron/targets"))).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_api_neither_lists_nor_accepts_diagnostic_targets_unless_enabled() {
    let db = TestDb::create().await;
    let (_api, base) = api_process(&db, TOKEN, &[("CRON_DIAGNOSTIC_TARGETS", "0")]).await;
    let listed = listed_targets(&base).await;
    assert!(listed.contains(&"system.heartbeat".to_owned()), "{listed:?}");
    for key in DIAGNOSTIC {
        assert!(!listed.contains(&key.to_owned()), "{key} listed: {listed:?}");
        let (status, body) = send(
            reqwest::Client::new()
                .post(format!("{base}/api/v2/admin/cron/jobs"))
                .json(&json!({
                    "job_key": "diag",
                    "target": key,
                    "schedule_type": "recurring",
                    "cron_expression": "* * * * *",
                })),
        )
        .await;
        assert_eq!(status, 400, "{key}: {body}");
        assert_eq!(body["errors"][0]["field"], "target", "{key}: {body}");
    }
}

#[tokio::test]
async fn the_api_lists_diagnostic_targets_when_enabled() {
    let db = TestDb::create().await;
    // The fixture enables them, as the test suite and the benchmarks do.
    let (_api, base) = api_process(&db, TOKEN, &[]).await;
    let listed = listed_targets(&base).await;
    for key in DIAGNOSTIC {
        assert!(listed.contains(&key.to_owned()), "{key} not listed: {listed:?}");
    }
}

#[tokio::test]
async fn the_scheduler_neither_advertises_nor_runs_diagnostic_targets_unless_enabled() {
    let db = TestDb::create().await;
    // Written through the store, as a job created while they were enabled would be.
    one_time(&db.pool, "diag-record", "system.record", Utc::now()).await;
    one_time(&db.pool, "diag-heartbeat", "system.heartbeat", Utc::now()).await;
    let _scheduler = scheduler(&db, &[("CRON_DIAGNOSTIC_TARGETS", "0")]);

    let targets: Vec<String> = wait_for(Duration::from_secs(30), "the scheduler to register", || async {
        sqlx::query_scalar("SELECT targets FROM cron_scheduler_instances")
            .fetch_optional(&db.pool)
            .await
            .unwrap()
    })
    .await;
    assert!(targets.contains(&"system.heartbeat".to_owned()), "{targets:?}");
    for key in DIAGNOSTIC {
        assert!(!targets.contains(&key.to_owned()), "{key} advertised: {targets:?}");
    }
    // The heartbeat job, due at the same time, runs: by then the other was seen and left alone.
    wait_for(Duration::from_secs(30), "the heartbeat job to run", || async {
        runs_of(&db.pool, "diag-heartbeat")
            .await
            .iter()
            .any(|r| r.status.as_str() == "succeeded")
            .then_some(())
    })
    .await;
    assert!(runs_of(&db.pool, "diag-record").await.is_empty());
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('cron_test_executions')::text")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(table, None, "system.record ran and created its table");
}
