//! `/metrics` (and the scheduler's `/healthz`): the real binaries, scraped over HTTP.

use std::time::Duration;

use cron_runtime::domain::RunStatus;
use serde_json::json;
use tests::db::TestDb;
use tests::fixtures::{api_process, free_port, http_get, recurring, runs_of, scheduler, wait_for};

/// The value of the first sample of `text` whose line starts with `name{` and has every label.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn the_scheduler_serves_health_and_prometheus_metrics_on_port() {
    let db = TestDb::create().await;
    recurring(&db.pool, "beats", "system.heartbeat", "* * * * * *", json!({})).await;
    recurring(
        &db.pool,
        "fails",
        "system.fail",
        "* * * * * *",
        json!({ "message": "expected failure" }),
    )
    .await;
    let port = free_port().to_string();
    let _process = scheduler(&db, &[("PORT", port.as_str()), ("CRONJOBS_COMMIT", "0123abc")]);
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/healthz");

    let (status, body) = wait_for(Duration::from_secs(10), "/healthz to answer", || http_get(&health)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).ok(),
        Some(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "commit": "0123abc" }))
    );

    wait_for(Duration::from_secs(15), "a succeeded and a failed run", || async {
        let ok = runs_of(&db.pool, "beats")
            .await
            .iter()
            .any(|r| r.status == RunStatus::Succeeded);
        let failed = runs_of(&db.pool, "fails")
            .await
            .iter()
            .any(|r| r.status == RunStatus::Failed);
        (ok && failed).then_some(())
    })
    .await;
    let text = wait_for(Duration::from_secs(5), "the runs in /metrics", || async {
        let (status, text) = http_get(&format!("{base}/metrics")).await?;
        assert_eq!(status, 200, "{text}");
        let failed = sample(
            &text,
            "cronjobs_runs_total",
            &[r#"target="system.fail""#, r#"status="failed""#],
        );
        (failed >= Some(1.0)).then_some(text)
    })
    .await;
    let succeeded = sample(
        &text,
        "cronjobs_runs_total",
        &[r#"target="system.heartbeat""#, r#"status="succeeded""#],
    );
    assert!(succeeded >= Some(1.0), "{text}");
    assert!(text.contains("# TYPE cronjobs_fire_lag_seconds histogram"), "{text}");
    assert!(
        sample(&text, "cronjobs_fire_lag_seconds_count", &[]) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "cronjobs_fire_lag_seconds_bucket", &[r#"le="+Inf""#]) >= Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "cronjobs_active_definitions", &[]), Some(2.0), "{text}");
    assert!(sample(&text, "cronjobs_runs_in_flight", &[]).is_some(), "{text}");
}

#[tokio::test]
async fn the_api_serves_metrics_to_admins_only() {
    let db = TestDb::create().await;
    let token = "metrics-test-token-0123456789";
    let (_api, base) = api_process(&db, token, &[]).await;
    let url = format!("{base}/metrics");
    let (status, _) = http_get(&url).await.expect("GET /metrics");
    assert_eq!(status, 401, "no token, no metrics");
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
}
