//! The API as a service: health, readiness, startup checks, targets and schedule previews.

use std::net::IpAddr;

use cron_runtime::config::{AdminToken, ApiConfig, Secret};
use cron_runtime::web;
use tests::api::{send, TestApi};
use tests::db::TestDb;

#[tokio::test]
async fn health_and_readiness_on_a_migrated_database() {
    let api = TestApi::spawn().await;
    let health = send(api.client.get(api.url("/healthz"))).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["version"], env!("CARGO_PKG_VERSION"));
    let ready = send(api.client.get(api.url("/readyz"))).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
}

#[tokio::test]
async fn an_unmigrated_database_is_not_ready() {
    let api = TestApi::spawn_on(TestDb::create_empty().await).await;
    assert_eq!(send(api.client.get(api.url("/healthz"))).await.status, 200);
    let reply = send(api.client.get(api.url("/readyz"))).await;
    let problem = reply.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("cronjobs migrate"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn the_api_refuses_to_start_on_an_unmigrated_database() {
    let db = TestDb::create_empty().await;
    let config = ApiConfig {
        database_url: Secret::new(db.url.clone()),
        host: IpAddr::from([127, 0, 0, 1]),
        port: 0,
        admin_tokens: vec![AdminToken {
            name: "alice".into(),
            token: Secret::new("0123456789abcdef"),
        }],
        viewer_tokens: Vec::new(),
        console_secret: None,
        secure_cookies: false,
        missed_after: cron_runtime::config::DEFAULT_MISSED_AFTER,
        pool_size: cron_runtime::config::DEFAULT_API_POOL_SIZE,
        alerts: Default::default(),
    };
    let error = web::run(config).await.expect_err("refuses to start");
    let message = format!("{error:#}");
    assert!(message.contains("cronjobs migrate"), "{message}");
    assert!(
        message.contains("create cron tables"),
        "names the missing migration: {message}"
    );
}

#[tokio::test]
async fn targets_are_listed_with_their_payload_types() {
    let api = TestApi::spawn().await;
    let reply = api.get("/targets").await;
    assert_eq!(reply.status, 200);
    let items = reply.body["items"].as_array().unwrap();
    let heartbeat = items
        .iter()
        .find(|t| t["key"] == "system.heartbeat")
        .expect("system.heartbeat");
    assert_eq!(heartbeat["payload"], serde_json::Value::Null);
    assert!(heartbeat["timeout_secs"].as_u64().unwrap() > 0);
    assert!(heartbeat["description"].is_string());
    let sleep = items.iter().find(|t| t["key"] == "system.sleep").expect("system.sleep");
    assert!(sleep["payload"]["type_name"].is_string());
    let keys: Vec<&str> = items.iter().map(|t| t["key"].as_str().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "sorted by key");
}

#[tokio::test]
async fn the_schedule_preview_lists_the_next_fire_times() {
    let api = TestApi::spawn().await;
    let reply = api
        .get("/schedule/preview?cron_expression=0%209%20*%20*%20*&timezone=Europe/Berlin")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "default count");
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        items.iter().map(|t| t.as_str().unwrap().parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]));
    assert!(items.iter().all(|t| t.as_str().unwrap().ends_with('Z')));

    let reply = api.get("/schedule/preview?cron_expression=@hourly&count=100").await;
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn a_bad_preview_request_is_a_400_naming_the_parameter() {
    let api = TestApi::spawn().await;
    assert_eq!(api.get("/schedule/preview").await.error_fields(), ["cron_expression"]);
    for (query, field) in [
        ("cron_expression=@hourly&count=0", "count"),
        ("cron_expression=@hourly&count=101", "count"),
        ("cron_expression=@hourly&timezone=Nowhere/City", "timezone"),
        ("cron_expression=@reboot", "cron_expression"),
        ("cron_expression=0%200%2030%202%20*", "cron_expression"),
        ("cron_expression=@hourly&every=2", "every"),
    ] {
        let reply = api.get(&format!("/schedule/preview?{query}")).await;
        assert_eq!(reply.error_fields(), [field], "{query}");
    }
}
