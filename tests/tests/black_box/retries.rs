//! Retries with backoff (SPEC 17), through the real binaries: the policy over REST, retry rows
//! claimed at their time by any live scheduler, permanent errors, the key held across a chain,
//! a retry that would collide with the next slot left out, and incidents counted per slot.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tests::api::TestApi;
use tests::fixtures::{scheduler, wait_for};

/// A yearly job of `system.record` (so only run-now and retries run it) with `retry`.
fn job(key: &str, payload: Value, retry: Value) -> Value {
    json!({"job_key": key, "target": "system.record", "payload": payload,
           "schedule_type": "recurring", "cron_expression": "0 0 1 1 *", "retry": retry})
}

async fn runs(api: &TestApi, key: &str) -> Vec<Value> {
    let page = api.get(&format!("/runs?job_key={key}&limit=100")).await;
    let mut items = page.body["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|r| r["attempt"].as_i64());
    items
}

fn time(run: &Value, field: &str) -> DateTime<Utc> {
    run[field]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{field} of {run}"))
}

fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    (later - earlier).num_milliseconds() as f64 / 1000.0
}

async fn run_now(api: &TestApi, job: &Value) -> Value {
    let id = job["id"].as_str().unwrap_or_default();
    let reply = api.post_empty(&format!("/jobs/{id}/run-now")).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    reply.body
}

#[tokio::test]
async fn a_failing_run_is_retried_with_growing_delays_and_succeeds_on_attempt_3() {
    let api = TestApi::spawn().await;
    let _scheduler = scheduler(&api.db, &[]);
    let policy = json!({"max_attempts": 4, "initial_delay": "1s", "multiplier": 2.0, "max_delay": "10s"});
    let job = api
        .create_job(&job("flaky", json!({"fail_attempts": 2}), policy.clone()))
        .await;
    assert_eq!(job["retry"], policy, "{job}");
    run_now(&api, &job).await;

    let chain = wait_for(Duration::from_secs(30), "attempt 3 to succeed", || async {
        let runs = runs(&api, "flaky").await;
        (runs.len() == 3 && runs[2]["status"] == "succeeded").then_some(runs)
    })
    .await;
    let (first, second, third) = (&chain[0], &chain[1], &chain[2]);
    assert_eq!(
        [&first["trigger_type"], &second["trigger_type"], &third["trigger_type"]],
        ["manual", "retry", "retry"]
    );
    assert_eq!([&first["attempt"], &second["attempt"], &third["attempt"]], [1, 2, 3]);
    assert_eq!(second["retry_of"], first["id"]);
    assert_eq!(third["retry_of"], second["id"]);
    for run in &chain {
        assert_eq!(
            run["scheduled_at"], first["scheduled_at"],
            "a retry keeps its slot: {run}"
        );
    }
    for failed in [first, second] {
        assert_eq!(failed["status"], "failed");
        assert!(failed["next_retry_at"].is_string(), "{failed}");
    }
    assert!(third["next_retry_at"].is_null());
    // Delays 1s then 2s (±10%), measured from the rows: each retry starts at its time, not before.
    let waited = [
        seconds_between(time(first, "finished_at"), time(second, "started_at")),
        seconds_between(time(second, "finished_at"), time(third, "started_at")),
    ];
    assert!((0.85..2.5).contains(&waited[0]), "first retry after {waited:?}");
    assert!((1.75..3.5).contains(&waited[1]), "second retry after {waited:?}");
    for (failed, retry) in [(first, second), (second, third)] {
        assert!(
            time(retry, "started_at") >= time(failed, "next_retry_at"),
            "started before its time: {retry}"
        );
    }
    // Each attempt executed once.
    let executions: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_test_executions WHERE job_key = 'flaky'")
        .fetch_one(&api.db.pool)
        .await
        .unwrap_or_default();
    assert_eq!(executions, 3);
}

#[tokio::test]
async fn a_permanent_error_is_not_retried() {
    let api = TestApi::spawn().await;
    let _scheduler = scheduler(&api.db, &[]);
    let retry = json!({"max_attempts": 3, "initial_delay": "1s"});
    let job = api.create_job(&job("doomed", json!({"permanent": true}), retry)).await;
    run_now(&api, &job).await;
    let failed = wait_for(Duration::from_secs(20), "the run to fail", || async {
        runs(&api, "doomed").await.into_iter().find(|r| r["status"] == "failed")
    })
    .await;
    assert!(failed["next_retry_at"].is_null(), "{failed}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs(&api, "doomed").await.len(), 1, "nothing follows a permanent error");
}

#[tokio::test]
async fn a_retry_that_would_start_after_the_next_slot_is_not_scheduled() {
    let api = TestApi::spawn().await;
    let _scheduler = scheduler(&api.db, &[]);
    // Every minute, retried after 5 minutes: the next slot always comes first.
    let body = json!({"job_key": "too-slow", "target": "system.record", "payload": {"fail": true},
                      "schedule_type": "recurring", "cron_expression": "* * * * *",
                      "retry": {"max_attempts": 3, "initial_delay": "5m"}});
    let job = api.create_job(&body).await;
    let requested = run_now(&api, &job).await;
    let id = requested["id"].as_str().unwrap_or_default().to_owned();
    let failed = wait_for(Duration::from_secs(20), "the run-now to fail", || async {
        let run = api.get(&format!("/runs/{id}")).await.body;
        (run["status"] == "failed").then_some(run)
    })
    .await;
    assert!(failed["next_retry_at"].is_null(), "{failed}");
    let retries = api.get("/runs?job_key=too-slow&trigger_type=retry").await.body;
    assert_eq!(retries["items"], json!([]), "{retries}");
}

#[tokio::test]
async fn a_pending_retry_survives_a_kill_9_and_another_scheduler_runs_it() {
    let api = TestApi::spawn().await;
    let mut first = scheduler(&api.db, &[]);
    let retry = json!({"max_attempts": 2, "initial_delay": "4s"});
    let job = api
        .create_job(&job("survivor", json!({"fail_attempts": 1}), retry))
        .await;
    run_now(&api, &job).await;
    wait_for(Duration::from_secs(20), "the first attempt to fail", || async {
        runs(&api, "survivor")
            .await
            .iter()
            .any(|r| r["status"] == "failed" && r["next_retry_at"].is_string())
            .then_some(())
    })
    .await;
    first.kill9();
    let _second = scheduler(&api.db, &[]);
    let chain = wait_for(Duration::from_secs(30), "the retry to succeed", || async {
        let runs = runs(&api, "survivor").await;
        (runs.len() == 2 && runs[1]["status"] == "succeeded").then_some(runs)
    })
    .await;
    assert_eq!(chain[1]["attempt"], 2);
    assert_ne!(
        chain[0]["scheduler_instance"], chain[1]["scheduler_instance"],
        "the second scheduler ran the retry"
    );
}

#[tokio::test]
async fn a_slot_that_comes_while_a_retry_runs_is_skipped() {
    let api = TestApi::spawn().await;
    let _scheduler = scheduler(&api.db, &[]);
    // Every 10 s; each attempt works 3 s; attempt 1 fails, its retry comes 5 s later (before
    // the next slot) and is still working when that slot comes.
    let body = json!({"job_key": "held", "target": "system.record",
                      "payload": {"fail_attempts": 1, "sleep_ms": 3000},
                      "schedule_type": "recurring", "cron_expression": "*/10 * * * * *",
                      "retry": {"max_attempts": 2, "initial_delay": "5s"}});
    api.create_job(&body).await;
    let skipped = wait_for(Duration::from_secs(45), "a slot skipped behind a retry", || async {
        let all = runs(&api, "held").await;
        let retries: Vec<&Value> = all.iter().filter(|r| r["trigger_type"] == "retry").collect();
        all.iter()
            .find(|r| {
                r["status"] == "skipped"
                    && retries.iter().any(|retry| {
                        r["error"]
                            .as_str()
                            .is_some_and(|e| e.contains(retry["id"].as_str().unwrap_or("?")))
                    })
            })
            .cloned()
    })
    .await;
    assert_eq!(skipped["reason"], "overlap", "{skipped}");
}

#[tokio::test]
async fn an_incident_opens_once_after_the_last_attempt_and_the_next_success_resolves_it() {
    let api = TestApi::spawn().await;
    let _scheduler = scheduler(&api.db, &[("CRON_ALERT_AFTER_FAILURES", "1")]);
    let retry = json!({"max_attempts": 3, "initial_delay": "2s", "multiplier": 1.0});
    let job = api.create_job(&job("alerting", json!({"fail": true}), retry)).await;
    run_now(&api, &job).await;
    wait_for(Duration::from_secs(20), "attempt 1 to fail", || async {
        (!runs(&api, "alerting").await.is_empty()).then_some(())
    })
    .await;
    let attempts = wait_for(Duration::from_secs(30), "attempt 3 to fail", || async {
        let runs = runs(&api, "alerting").await;
        let failed = runs.iter().filter(|r| r["status"] == "failed").count();
        let incidents = api.get("/incidents?job_key=alerting").await.body["items"].clone();
        // Until the last attempt failed, nothing is open.
        if failed < 3 {
            assert_eq!(incidents, json!([]), "opened before the last attempt: {runs:?}");
        }
        (failed == 3).then_some(runs)
    })
    .await;
    assert!(attempts[2]["next_retry_at"].is_null(), "the chain ends at max_attempts");
    let incidents = api.get("/incidents?job_key=alerting").await.body["items"].clone();
    let incidents = incidents.as_array().cloned().unwrap_or_default();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["failures"], 1, "a slot counts once: {:?}", incidents[0]);

    // The next run-now, with a payload that succeeds, resolves it.
    let id = job["id"].as_str().unwrap_or_default();
    let reply = api.post(&format!("/jobs/{id}/run-now"), &json!({"payload": {}})).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    wait_for(Duration::from_secs(20), "the incident to resolve", || async {
        let items = api.get("/incidents?job_key=alerting").await.body["items"].clone();
        (items[0]["status"] == "resolved").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_bad_retry_policy_is_a_400_naming_each_field() {
    let api = TestApi::spawn().await;
    let cases = [
        (json!({"max_attempts": 0}), "retry.max_attempts"),
        (json!({"max_attempts": 21}), "retry.max_attempts"),
        (json!({"initial_delay": "100ms"}), "retry.initial_delay"),
        (json!({"initial_delay": "soon"}), "retry.initial_delay"),
        (json!({"max_delay": "2days"}), "retry.max_delay"),
        (json!({"initial_delay": "5m", "max_delay": "1m"}), "retry.max_delay"),
        (json!({"multiplier": 0.5}), "retry.multiplier"),
    ];
    for (retry, field) in cases {
        let reply = api.post("/jobs", &job("bad-retry", json!({}), retry.clone())).await;
        assert_eq!(reply.status, 400, "{retry}: {}", reply.text);
        assert_eq!(reply.error_fields(), vec![field.to_owned()], "{retry}: {}", reply.text);
    }
    let unknown = api
        .post("/jobs", &job("bad-retry", json!({}), json!({"attempts": 3})))
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert!(unknown.text.contains("attempts"), "{}", unknown.text);
}

#[tokio::test]
async fn a_new_version_keeps_or_replaces_the_policy_and_null_removes_it() {
    let api = TestApi::spawn().await;
    let job = api
        .create_job(&job("versioned", json!({}), json!({"max_attempts": 3})))
        .await;
    let id = job["id"].as_str().unwrap_or_default();
    let kept = api
        .post(
            &format!("/jobs/{id}/new-version"),
            &json!({"description": "same policy"}),
        )
        .await;
    assert_eq!(kept.status, 201, "{}", kept.text);
    assert_eq!(
        kept.body["retry"],
        json!({"max_attempts": 3, "initial_delay": "30s", "max_delay": "10m", "multiplier": 2.0})
    );
    let v2 = kept.body["id"].as_str().unwrap_or_default();
    let removed = api
        .post(&format!("/jobs/{v2}/new-version"), &json!({"retry": null}))
        .await;
    assert_eq!(removed.status, 201, "{}", removed.text);
    assert_eq!(removed.body["retry"]["max_attempts"], 1);
}

#[tokio::test]
async fn a_new_version_cancels_the_old_versions_waiting_retry_and_frees_the_key() {
    let api = TestApi::spawn().await;
    let _scheduler = scheduler(&api.db, &[]);
    let retry = json!({"max_attempts": 3, "initial_delay": "1m"});
    let job = api.create_job(&job("replaced", json!({"fail": true}), retry)).await;
    run_now(&api, &job).await;
    let waiting = wait_for(Duration::from_secs(20), "a retry to wait", || async {
        runs(&api, "replaced")
            .await
            .into_iter()
            .find(|r| r["trigger_type"] == "retry" && r["status"] == "pending")
    })
    .await;
    let id = job["id"].as_str().unwrap_or_default();
    let v2 = api
        .post(&format!("/jobs/{id}/new-version"), &json!({"payload": {}}))
        .await;
    assert_eq!(v2.status, 201, "{}", v2.text);
    let retry = api
        .get(&format!("/runs/{}", waiting["id"].as_str().unwrap_or_default()))
        .await
        .body;
    assert_eq!(retry["status"], "cancelled", "{retry}");
    assert_eq!(retry["cancelled_by"], "alice", "{retry}");
    let v2_id = v2.body["id"].as_str().unwrap_or_default();
    let again = api.post_empty(&format!("/jobs/{v2_id}/run-now")).await;
    assert_eq!(again.status, 202, "the key is free again: {}", again.text);
    assert_eq!(again.body["status"], "pending", "{}", again.text);
}
