//! No secrets in the logs: a scheduler and an API logging at `trace`, with a database
//! password, admin tokens and a Sentry DSN key in their environment, never print any of
//! them, while the scheduler's run transitions carry their fields.

use std::time::Duration;

use cron_runtime::domain::RunStatus;
use serde_json::{json, Value};
use tests::db::TestDb;
use tests::fixtures::{api_process, free_port, http_get, recurring, runs_of, scheduler, wait_for};
use tests::sentry_sink::SentrySink;

const ROLE: &str = "cronjobs_secret_test";
const PASSWORD: &str = "hunter2-db-password-7f3c9a";
const ADMIN_TOKEN: &str = "admin-token-secret-5d81e0b2c4";
const DSN_PUBLIC_KEY: &str = "dsnpublickey0a1b2c3d";
const DSN_SECRET_KEY: &str = "dsnsecretkey9f8e7d6c";

/// A role with a password, allowed to use `db` (the test server trusts 127.0.0.1, so the
/// password is not checked, but it is in the URL the process gets).
async fn role_with_password(db: &TestDb) -> String {
    let create = format!(
        "DO $$ BEGIN CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    );
    for statement in [
        create,
        format!("GRANT ALL ON DATABASE {} TO {ROLE}", db.name),
        format!("GRANT USAGE ON SCHEMA public TO {ROLE}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}"),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE}"),
    ] {
        sqlx::query(&statement).execute(&db.pool).await.expect(&statement);
    }
    // postgres://user@host/db → postgres://ROLE:PASSWORD@host/db
    let (scheme, rest) = db.url.split_once("://").expect("a URL");
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    format!("{scheme}://{ROLE}:{PASSWORD}@{host_and_db}")
}

#[tokio::test]
async fn trace_logs_carry_run_fields_and_no_secrets() {
    let db = TestDb::create().await;
    let database_url = role_with_password(&db).await;
    let sink = SentrySink::start().await;
    let dsn = sink.dsn(DSN_PUBLIC_KEY, Some(DSN_SECRET_KEY));
    recurring(&db.pool, "beats", "system.heartbeat", "* * * * * *", json!({})).await;
    recurring(
        &db.pool,
        "fails",
        "system.fail",
        "* * * * * *",
        json!({ "message": "expected" }),
    )
    .await;
    let port = free_port().to_string();
    let tokens = format!("ops:{ADMIN_TOKEN}");
    let mut process = scheduler(
        &db,
        &[
            ("DATABASE_URL", database_url.as_str()),
            ("SENTRY_DSN", dsn.as_str()),
            ("CRON_ADMIN_TOKENS", tokens.as_str()),
            ("RUST_LOG", "trace"),
            ("PORT", port.as_str()),
        ],
    );

    wait_for(Duration::from_secs(20), "runs and a Sentry envelope", || async {
        let ok = runs_of(&db.pool, "beats")
            .await
            .iter()
            .any(|r| r.status == RunStatus::Succeeded);
        let failed = runs_of(&db.pool, "fails")
            .await
            .iter()
            .any(|r| r.status == RunStatus::Failed);
        (ok && failed && !sink.envelopes().is_empty()).then_some(())
    })
    .await;
    let (status, _) = http_get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("/metrics");
    assert_eq!(status, 200);
    process.terminate();
    process.wait_exit(Duration::from_secs(15)).expect("clean exit");
    let output = process.output();

    assert!(output.contains(r#""level":"DEBUG""#), "debug logging is on:\n{output}");
    for secret in [PASSWORD, ADMIN_TOKEN, DSN_PUBLIC_KEY, DSN_SECRET_KEY] {
        assert!(!output.contains(secret), "{secret:?} was logged");
    }

    let lines: Vec<Value> = output.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let finished = |status: &str| {
        lines
            .iter()
            .find(|l| l["message"] == "run finished" && l["status"] == status)
            .cloned()
            .unwrap_or_else(|| panic!("no {status} `run finished` line in\n{output}"))
    };
    for line in [finished("succeeded"), finished("failed")] {
        for field in [
            "job_key",
            "version",
            "run_id",
            "target",
            "slot",
            "status",
            "duration_ms",
        ] {
            assert!(line.get(field).is_some(), "{field} missing from {line}");
        }
    }
    assert_eq!(finished("failed")["error"], "expected");
    let started = lines
        .iter()
        .find(|l| l["message"] == "run started")
        .expect("a `run started` line");
    for field in ["job_key", "version", "run_id", "target", "slot", "status", "trigger"] {
        assert!(started.get(field).is_some(), "{field} missing from {started}");
    }
}

#[tokio::test]
async fn the_api_logs_requests_without_tokens_or_secrets() {
    let db = TestDb::create().await;
    let database_url = role_with_password(&db).await;
    let sink = SentrySink::start().await;
    let dsn = sink.dsn(DSN_PUBLIC_KEY, Some(DSN_SECRET_KEY));
    let (mut process, base) = api_process(
        &db,
        ADMIN_TOKEN,
        &[
            ("DATABASE_URL", database_url.as_str()),
            ("SENTRY_DSN", dsn.as_str()),
            ("RUST_LOG", "trace"),
            ("LOG_FORMAT", "json"),
        ],
    )
    .await;

    let client = reqwest::Client::new();
    let jobs = format!("{base}/api/v2/admin/cron/jobs");
    let wrong_token = "wrong-token-also-secret-31c7a2";
    let created = client
        .post(&jobs)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "job_key": "beats", "target": "system.heartbeat",
            "schedule_type": "recurring", "cron_expression": "* * * * *"
        }))
        .send()
        .await
        .expect("create a job");
    assert_eq!(created.status().as_u16(), 201);
    for (token, expected) in [(Some(ADMIN_TOKEN), 200), (None, 401), (Some(wrong_token), 401)] {
        for url in [jobs.clone(), format!("{base}/metrics")] {
            let request = client.get(&url);
            let request = match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            };
            let status = request.send().await.expect("request").status().as_u16();
            assert_eq!(status, expected, "GET {url} with {token:?}");
        }
    }
    process.terminate();
    process.wait_exit(Duration::from_secs(15)).expect("clean exit");
    let output = process.output();

    assert!(
        output.contains("/api/v2/admin/cron/jobs"),
        "requests are logged:\n{output}"
    );
    for secret in [PASSWORD, ADMIN_TOKEN, wrong_token, DSN_PUBLIC_KEY, DSN_SECRET_KEY] {
        assert!(!output.contains(secret), "{secret:?} was logged");
    }
}
