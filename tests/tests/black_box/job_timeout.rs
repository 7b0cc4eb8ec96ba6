//! A job's own `timeout` (SPEC 21): set through REST (and the jobs file), enforced by the
//! scheduler instead of the target's default, refused with the field named when it is bad.

use std::time::Duration;

use serde_json::{json, Value};
use tests::api::TestApi;
use tests::fixtures::{scheduler, wait_for};

fn sleeper(key: &str, timeout: Value) -> Value {
    json!({"job_key": key, "target": "system.sleep", "payload": {"seconds": 30},
           "schedule_type": "recurring", "cron_expression": "0 0 1 1 *", "timeout": timeout})
}

#[tokio::test]
async fn a_jobs_own_timeout_stops_its_run_and_null_goes_back_to_the_targets() {
    let api = TestApi::spawn().await;
    let _scheduler = scheduler(&api.db, &[]);
    let job = api.create_job(&sleeper("sleepy", json!("2s"))).await;
    assert_eq!(job["timeout"], "2s", "{job}");
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let queued = api.post_empty(&format!("/jobs/{id}/run-now")).await;
    assert_eq!(queued.status, 202, "{}", queued.text);
    let run = wait_for(Duration::from_secs(20), "the run to time out", || async {
        let page = api.get("/runs?job_key=sleepy&status=failed").await.body;
        page["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(run["reason"], "timeout", "{run}");
    assert_eq!(run["error"], "timed out after 2s", "{run}");
    let took = run["duration_ms"].as_u64().unwrap_or_default();
    assert!(
        (2_000..10_000).contains(&took),
        "stopped at the job's 2s, not the target's day: {run}"
    );

    let v2 = api
        .post(&format!("/jobs/{id}/new-version"), &json!({"timeout": null}))
        .await;
    assert_eq!(v2.status, 201, "{}", v2.text);
    assert!(v2.body["timeout"].is_null(), "{}", v2.text);
}

#[tokio::test]
async fn a_bad_timeout_is_a_400_naming_the_field() {
    let api = TestApi::spawn().await;
    for bad in [json!("0s"), json!("soon"), json!("2days"), json!(30)] {
        let reply = api.post("/jobs", &sleeper("bad-timeout", bad.clone())).await;
        assert_eq!(
            reply.error_fields(),
            vec!["timeout".to_owned()],
            "{bad}: {}",
            reply.text
        );
    }
}
