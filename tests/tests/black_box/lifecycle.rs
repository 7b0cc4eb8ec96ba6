//! An admin manages a job's whole life through the API: retires it, finds its live version by
//! key, cancels its runs (pending ones at once, running ones through their scheduler, even a
//! handler that ignores the cancel, even a scheduler that missed the notification), and runs it
//! now with a payload of its own.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tests::api::{send, Reply, TestApi, ADMIN_NAME};
use tests::fault_proxy::FaultProxy;
use tests::fixtures::{scheduler, wait_for};
use tests::process::Cronjobs;

/// A cron expression that never fires during a test: the jobs below only run when asked to.
const NEVER: &str = "0 0 1 1 *";

/// Creates a recurring `system.sleep` job with `payload`, returning its id.
async fn sleep_job(api: &TestApi, key: &str, payload: Value) -> String {
    let job = api
        .create_job(&json!({
            "job_key": key,
            "target": "system.sleep",
            "schedule_type": "recurring",
            "cron_expression": NEVER,
            "payload": payload,
        }))
        .await;
    job["id"].as_str().expect("job id").to_owned()
}

/// `POST /jobs/{id}/run-now` without a body, asserting 202; returns the run's id.
async fn run_now(api: &TestApi, job_id: &str) -> String {
    let reply = api.post_empty(&format!("/jobs/{job_id}/run-now")).await;
    assert_eq!(reply.status, 202, "run-now: {}", reply.text);
    assert_eq!(reply.body["status"], "pending");
    reply.body["id"].as_str().expect("run id").to_owned()
}

async fn cancel(api: &TestApi, run_id: &str, reason: &str) -> Reply {
    api.post(&format!("/runs/{run_id}/cancel"), &json!({ "reason": reason }))
        .await
}

async fn delete(api: &TestApi, path: &str) -> Reply {
    send(api.request(Method::DELETE, path)).await
}

/// Polls `GET /runs/{id}` until the run has `status`.
async fn wait_run(api: &TestApi, run_id: &str, status: &str, timeout: Duration) -> Value {
    let what = format!("run {run_id} to be {status}");
    wait_for(timeout, &what, || async {
        let run = api.get(&format!("/runs/{run_id}")).await.body;
        (run["status"] == status).then_some(run)
    })
    .await
}

/// Asserts `run` ended `cancelled` because `ADMIN_NAME` cancelled it saying `reason`.
#[track_caller]
fn assert_cancelled_by_admin(run: &Value, reason: &str) {
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["reason"], "cancelled", "{run}");
    assert_eq!(run["cancelled_by"], ADMIN_NAME, "{run}");
    assert_eq!(run["error"], reason, "the admin's reason is the run's error: {run}");
    assert!(run["finished_at"].is_string(), "{run}");
}

/// Starts a scheduler on the API's database, with `extra` settings.
fn scheduler_for(api: &TestApi, extra: &[(&str, &str)]) -> Cronjobs {
    scheduler(&api.db, extra)
}

#[tokio::test]
async fn retiring_a_job_frees_its_key_and_a_new_job_continues_its_versions() {
    let api = TestApi::spawn().await;
    let job = api.create_job(&tests::api::recurring_body("reports.weekly")).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["managed_by"], "api");
    assert!(job["retired_by"].is_null(), "{job}");

    let retired = delete(&api, &format!("/jobs/{id}")).await;
    assert_eq!(retired.status, 200, "{}", retired.text);
    assert_eq!(retired.body["id"], job["id"]);
    assert_eq!(retired.body["status"], "retired");
    assert_eq!(retired.body["retired_by"], ADMIN_NAME);
    assert!(retired.body["retired_at"].is_string(), "{}", retired.text);
    assert!(retired.body["next_run_at"].is_null(), "a retired job never fires");
    assert_eq!(api.get(&format!("/jobs/{id}")).await.body, retired.body);

    let again = delete(&api, &format!("/jobs/{id}")).await;
    again.problem(409);
    delete(&api, &format!("/jobs/{}", uuid::Uuid::now_v7()))
        .await
        .problem(404);
    assert_eq!(delete(&api, "/jobs/123").await.error_fields(), ["jobId"]);
    api.get("/jobs/by-key/reports.weekly").await.problem(404);

    let reborn = api.create_job(&tests::api::recurring_body("reports.weekly")).await;
    assert_eq!(reborn["version"], 2, "the key's versions continue: {reborn}");
    assert_eq!(reborn["status"], "active");
    let live = api.get("/jobs/by-key/reports.weekly").await;
    assert_eq!(live.status, 200, "{}", live.text);
    assert_eq!(live.body["id"], reborn["id"]);
}

#[tokio::test]
async fn by_key_follows_the_live_version_across_new_versions_and_pauses() {
    let api = TestApi::spawn().await;
    let v1 = api.create_job(&tests::api::recurring_body("billing.sync")).await;
    let v1_id = v1["id"].as_str().unwrap();
    let found = api.get("/jobs/by-key/billing.sync").await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["id"], v1["id"]);

    let v2 = api
        .post(
            &format!("/jobs/{v1_id}/new-version"),
            &json!({"cron_expression": "*/10 * * * *"}),
        )
        .await;
    assert_eq!(v2.status, 201, "{}", v2.text);
    assert_ne!(v2.body["id"], v1["id"], "a new version has its own id");
    let found = api.get("/jobs/by-key/billing.sync").await.body;
    assert_eq!(found["id"], v2.body["id"]);
    assert_eq!(found["job_key"], "billing.sync");
    assert_eq!(found["version"], 2);
    assert_eq!(found["cron_expression"], "*/10 * * * *");

    // A paused job is still the live version of its key.
    api.pause(v2.body["id"].as_str().unwrap()).await;
    let found = api.get("/jobs/by-key/billing.sync").await.body;
    assert_eq!(
        (found["id"].clone(), found["status"].clone()),
        (v2.body["id"].clone(), json!("paused"))
    );

    assert_eq!(api.get("/jobs/by-key/Bad%20Key").await.error_fields(), ["jobKey"]);
    api.get("/jobs/by-key/no.such.job").await.problem(404);
}

#[tokio::test]
async fn cancelling_a_pending_run_ends_it_at_once_and_frees_the_job() {
    // No scheduler: the run-now stays pending until someone cancels it.
    let api = TestApi::spawn().await;
    let job = api.one_time_job("exports.nightly").await;
    let job_id = job["id"].as_str().unwrap();
    let run_id = run_now(&api, job_id).await;

    assert_eq!(cancel(&api, &run_id, "nah ").await.error_fields(), ["reason"]);
    assert_eq!(cancel(&api, &run_id, &"x".repeat(301)).await.error_fields(), ["reason"]);
    let no_reason = api.post(&format!("/runs/{run_id}/cancel"), &json!({})).await;
    assert_eq!(no_reason.error_fields(), ["reason"]);
    assert_eq!(
        api.get(&format!("/runs/{run_id}")).await.body["status"],
        "pending",
        "a refused cancel changes nothing"
    );

    let cancelled = cancel(&api, &run_id, "  triggered by mistake  ").await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text);
    assert_cancelled_by_admin(&cancelled.body, "triggered by mistake");
    assert!(cancelled.body["started_at"].is_null(), "it never ran");
    assert_eq!(api.get(&format!("/runs/{run_id}")).await.body, cancelled.body);

    let twice = cancel(&api, &run_id, "triggered by mistake").await;
    assert_eq!(twice.problem(409)["type"], "urn:cronjobs:problem:run-finished");
    cancel(&api, &uuid::Uuid::now_v7().to_string(), "triggered by mistake")
        .await
        .problem(404);
    assert_eq!(
        cancel(&api, "123", "triggered by mistake").await.error_fields(),
        ["runId"]
    );

    // The cancelled run no longer holds the job: the next run-now is accepted.
    let next = run_now(&api, job_id).await;
    assert_ne!(next, run_id);
}

#[tokio::test]
async fn cancelling_a_running_run_stops_its_handler_within_two_seconds() {
    let api = TestApi::spawn().await;
    let job_id = sleep_job(&api, "etl.load", json!({"seconds": 600})).await;
    let _scheduler = scheduler_for(&api, &[("CRON_SHUTDOWN_GRACE", "3s")]);
    let run_id = run_now(&api, &job_id).await;
    wait_run(&api, &run_id, "running", Duration::from_secs(30)).await;

    let asked = Instant::now();
    let reply = cancel(&api, &run_id, "wrong input file").await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    // Still running: only its scheduler can stop the handler.
    assert_eq!(reply.body["status"], "running", "{}", reply.text);
    assert!(reply.body["cancel_requested_at"].is_string(), "{}", reply.text);
    assert_eq!(reply.body["cancelled_by"], ADMIN_NAME);

    let run = wait_run(&api, &run_id, "cancelled", Duration::from_secs(30)).await;
    let took = asked.elapsed();
    eprintln!("cancel of a running run took {took:?}");
    assert!(took < Duration::from_secs(2), "cancelled after {took:?}");
    assert_cancelled_by_admin(&run, "wrong input file");
    assert!(run["output"].is_null(), "{run}");

    // The job is free again and runs normally (a short payload, so it finishes).
    let next = api
        .post(
            &format!("/jobs/{job_id}/run-now"),
            &json!({"payload": {"seconds": 0.1}}),
        )
        .await;
    assert_eq!(next.status, 202, "{}", next.text);
    let next = wait_run(
        &api,
        next.body["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(30),
    )
    .await;
    assert!(next["cancelled_by"].is_null(), "{next}");
}

#[tokio::test]
async fn a_handler_that_ignores_its_cancellation_is_aborted_after_the_grace() {
    let api = TestApi::spawn().await;
    let job_id = sleep_job(&api, "stubborn", json!({"seconds": 600, "ignore_cancellation": true})).await;
    let scheduler = scheduler_for(&api, &[("CRON_SHUTDOWN_GRACE", "2s")]);
    let run_id = run_now(&api, &job_id).await;
    wait_run(&api, &run_id, "running", Duration::from_secs(30)).await;

    let asked = Instant::now();
    assert_eq!(cancel(&api, &run_id, "it hangs forever").await.status, 202);
    let run = wait_run(&api, &run_id, "cancelled", Duration::from_secs(30)).await;
    let took = asked.elapsed();
    eprintln!("cancel of a handler ignoring it took {took:?}");
    // It got its grace (2 s) to return, then was aborted.
    assert!(
        took >= Duration::from_millis(1900),
        "aborted before the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "aborted after {took:?}");
    assert_cancelled_by_admin(&run, "it hangs forever");
    let aborted = format!("\"run_id\":\"{run_id}\"");
    let output = scheduler.output();
    assert!(
        output
            .lines()
            .any(|l| l.contains("the handler ignored its cancellation; aborted") && l.contains(&aborted)),
        "the scheduler says it aborted the run:\n{output}"
    );
}

#[tokio::test]
async fn a_cancel_reaches_the_replica_that_owns_the_run() {
    let api = TestApi::spawn().await;
    let job_id = sleep_job(&api, "fanout", json!({"seconds": 600})).await;
    let replicas = [scheduler_for(&api, &[]), scheduler_for(&api, &[])];
    wait_for(Duration::from_secs(30), "both replicas to register", || async {
        let alive = api.get("/schedulers").await.body["items"]
            .as_array()
            .map_or(0, |items| items.iter().filter(|i| i["alive"] == true).count());
        (alive == 2).then_some(())
    })
    .await;

    let run_id = run_now(&api, &job_id).await;
    let running = wait_run(&api, &run_id, "running", Duration::from_secs(30)).await;
    let owner_instance = running["scheduler_instance"].as_str().expect("an owner").to_owned();
    // Instance names are `<host>-<pid>-<random>`: the pid says which process owns the run.
    let owns = |p: &Cronjobs| owner_instance.contains(&format!("-{}-", p.pid()));
    let owner = replicas
        .iter()
        .position(owns)
        .expect("the owner is one of the replicas");
    let other = 1 - owner;

    assert_eq!(cancel(&api, &run_id, "duplicate of a manual fix").await.status, 202);
    let run = wait_run(&api, &run_id, "cancelled", Duration::from_secs(30)).await;
    assert_cancelled_by_admin(&run, "duplicate of a manual fix");
    assert_eq!(run["scheduler_instance"], owner_instance.as_str());

    let cancelling = |p: &Cronjobs| {
        p.output()
            .lines()
            .any(|l| l.contains("cancelling the run, as an admin asked") && l.contains(&run_id))
    };
    assert!(
        cancelling(&replicas[owner]),
        "the owner cancels it:\n{}",
        replicas[owner].output()
    );
    assert!(
        !cancelling(&replicas[other]),
        "the other replica leaves it alone:\n{}",
        replicas[other].output()
    );
}

#[tokio::test]
async fn a_cancel_missed_while_disconnected_is_applied_at_the_next_heartbeat() {
    let api = TestApi::spawn().await;
    let job_id = sleep_job(&api, "offline", json!({"seconds": 600})).await;
    let proxy = FaultProxy::start("127.0.0.1:5432").await;
    let through_proxy = proxy.url(&api.db.url);
    let _scheduler = scheduler_for(
        &api,
        &[
            ("DATABASE_URL", through_proxy.as_str()),
            ("CRON_HEARTBEAT_EVERY", "1s"),
            // Far away: the run must end cancelled, not stale.
            ("CRON_STALE_AFTER", "60s"),
        ],
    );
    let run_id = run_now(&api, &job_id).await;
    wait_run(&api, &run_id, "running", Duration::from_secs(30)).await;

    // The scheduler loses every connection, its LISTEN one too: the NOTIFY never reaches it.
    proxy.refuse();
    let reply = cancel(&api, &run_id, "cancelled during an outage").await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    // A fixed wait: nothing to poll for, the point is that the scheduler cannot hear of it yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        api.get(&format!("/runs/{run_id}")).await.body["status"],
        "running",
        "a disconnected scheduler cannot have recorded anything"
    );
    assert!(proxy.stats().cut > 0, "the proxy cut the scheduler's connections");

    let back = Instant::now();
    proxy.allow();
    let run = wait_run(&api, &run_id, "cancelled", Duration::from_secs(30)).await;
    let took = back.elapsed();
    eprintln!("cancel applied {took:?} after the scheduler could reconnect");
    assert!(took < Duration::from_secs(10), "applied after {took:?}");
    assert_cancelled_by_admin(&run, "cancelled during an outage");
}

#[tokio::test]
async fn run_now_with_a_payload_runs_it_once_without_changing_the_job() {
    let api = TestApi::spawn().await;
    let job_id = sleep_job(&api, "resize", json!({"seconds": 600})).await;
    let path = format!("/jobs/{job_id}/run-now");

    // Refused payloads are checked before anything is recorded.
    let bad = api.post(&path, &json!({"payload": {"seconds": "x"}})).await;
    assert_eq!(bad.error_fields(), ["payload.seconds"]);
    let unknown = api
        .post(&path, &json!({"payload": {"seconds": 1, "colour": "red"}}))
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert!(
        unknown.error_fields().iter().all(|f| f.starts_with("payload")),
        "{}",
        unknown.text
    );
    let stray = api.post(&path, &json!({"payload": {}, "priority": 1})).await;
    assert_eq!(stray.error_fields(), ["priority"]);
    let not_object = api.post(&path, &json!({"payload": [1]})).await;
    assert_eq!(not_object.status, 400, "{}", not_object.text);
    assert!(api.get("/runs?job_key=resize").await.body["items"]
        .as_array()
        .unwrap()
        .is_empty());

    let _scheduler = scheduler_for(&api, &[]);
    let reply = api.post(&path, &json!({"payload": {"seconds": 0.2}})).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["payload"], json!({"seconds": 0.2}));
    let run_id = reply.body["id"].as_str().unwrap().to_owned();
    let run = wait_run(&api, &run_id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(
        run["output"],
        json!({"slept_seconds": 0.2}),
        "the run's payload was used"
    );
    assert_eq!(run["payload"], json!({"seconds": 0.2}));
    assert!(run["duration_ms"].as_i64().unwrap() < 60_000, "{run}");
    let late = cancel(&api, &run_id, "too late to cancel").await;
    assert_eq!(late.problem(409)["type"], "urn:cronjobs:problem:run-finished");

    let job = api.get(&format!("/jobs/{job_id}")).await.body;
    assert_eq!(job["version"], 1, "no new version: {job}");
    assert_eq!(job["status"], "active");
    assert_eq!(job["payload"], json!({"seconds": 600}));
    assert_eq!(api.get("/jobs/by-key/resize").await.body["id"], job_id.as_str());

    // Without a body, the job's own payload is used and none is stored on the run.
    let plain = api.post_empty(&path).await;
    assert_eq!(plain.status, 202, "{}", plain.text);
    assert!(plain.body["payload"].is_null(), "{}", plain.text);
}

/// The property names of a schema of the OpenAPI document (following `$ref`, `allOf`, and the
/// `oneOf`/`anyOf` an optional body is described with).
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return properties(doc, &doc["components"]["schemas"][name]);
    }
    let mut names: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for combinator in ["allOf", "oneOf", "anyOf"] {
        for part in schema[combinator].as_array().into_iter().flatten() {
            names.extend(properties(doc, part));
        }
    }
    names
}

/// `api_openapi` already proves the document lists exactly the served routes; this checks the
/// lifecycle's operations are among them and its new fields are described.
#[tokio::test]
async fn the_openapi_document_describes_the_lifecycle() {
    let api = TestApi::spawn().await;
    let doc = send(api.client.get(format!("{}/api/v2/admin/cron/openapi.json", api.base)))
        .await
        .body;
    let paths = &doc["paths"];
    for (path, method) in [
        ("/api/v2/admin/cron/jobs/{jobId}", "delete"),
        ("/api/v2/admin/cron/jobs/by-key/{jobKey}", "get"),
        ("/api/v2/admin/cron/runs/{runId}/cancel", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} documented");
    }
    let cancel = &paths["/api/v2/admin/cron/runs/{runId}/cancel"]["post"];
    for status in ["202", "400", "404", "409"] {
        assert!(cancel["responses"][status].is_object(), "cancel documents {status}");
    }
    let retire = &paths["/api/v2/admin/cron/jobs/{jobId}"]["delete"];
    for status in ["200", "404", "409"] {
        assert!(retire["responses"][status].is_object(), "retire documents {status}");
    }

    let schemas = &doc["components"]["schemas"];
    let job = properties(&doc, &schemas["Job"]);
    for field in ["managed_by", "retired_by"] {
        assert!(job.contains(field), "Job has {field}: {job:?}");
    }
    let run = properties(&doc, &schemas["Run"]);
    for field in ["payload", "cancel_requested_at", "cancelled_by"] {
        assert!(run.contains(field), "Run has {field}: {run:?}");
    }
    let cancel_body = &cancel["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        properties(&doc, cancel_body).contains("reason"),
        "the cancel body has reason: {cancel_body}"
    );
    let run_now = &paths["/api/v2/admin/cron/jobs/{jobId}/run-now"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert!(
        properties(&doc, run_now).contains("payload"),
        "the run-now body has payload: {run_now}"
    );
}
