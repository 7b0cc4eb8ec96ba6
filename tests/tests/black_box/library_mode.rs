//! Library mode: `my-cron` (examples/embed), a team's own binary with its own target and a
//! five-line main, behaves like `cronjobs`.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tests::db::TestDb;
use tests::fixtures::{free_port, http_get, wait_for};
use tests::process::{embedded_binary, Cronjobs};

const TOKEN: &str = "embed-test-token-0123456789abcdef";

#[test]
fn my_cron_lists_its_own_target_beside_the_built_in_ones() {
    let output = Command::new(embedded_binary())
        .arg("targets")
        .env_clear()
        .output()
        .expect("run my-cron targets");
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{listed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(listed.contains("example.greet"), "{listed}");
    assert!(listed.contains("http.request"), "{listed}");
    // This repository's targets crate is not linked into the team's binary.
    assert!(!listed.contains("system.heartbeat"), "{listed}");
}

#[tokio::test]
async fn my_cron_dev_runs_its_own_target_with_the_run_in_its_log_lines() {
    let db = TestDb::create().await;
    let port = free_port().to_string();
    let tokens = format!("ops:{TOKEN}");
    let mut dev = Cronjobs::spawn_program(
        &embedded_binary(),
        &["dev"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("PORT", port.as_str()),
            ("CRON_ADMIN_TOKENS", tokens.as_str()),
            ("LOG_FORMAT", "json"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/healthz");
    wait_for(Duration::from_secs(20), "my-cron dev to answer", || http_get(&health)).await;

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/v2/admin/cron/jobs"))
        .bearer_auth(TOKEN)
        .json(
            &json!({"job_key": "greet.ada", "target": "example.greet", "payload": {"name": "Ada"},
            "schedule_type": "recurring", "cron_expression": "* * * * * *"}),
        )
        .send()
        .await
        .expect("POST /jobs");
    assert_eq!(
        created.status().as_u16(),
        201,
        "{}",
        created.text().await.unwrap_or_default()
    );
    let runs = format!("{base}/api/v2/admin/cron/runs?job_key=greet.ada&status=succeeded");
    let run = wait_for(Duration::from_secs(20), "a succeeded run of example.greet", || async {
        let page: Value = client
            .get(&runs)
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        page["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(run["output"]["greeting"], "hello, Ada", "{run}");

    let run_id = run["id"].as_str().unwrap_or_default().to_owned();
    wait_for(Duration::from_secs(5), "the target's log line with its run", || async {
        dev.output()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| {
                line["message"] == "greeting"
                    && line["spans"].as_array().is_some_and(|spans| {
                        spans
                            .iter()
                            .any(|s| s["job_key"] == "greet.ada" && s["run_id"] == run_id)
                    })
            })
    })
    .await;
    dev.terminate();
    assert!(
        dev.wait_exit(Duration::from_secs(15)).is_some_and(|s| s.success()),
        "{}",
        dev.output()
    );
}
