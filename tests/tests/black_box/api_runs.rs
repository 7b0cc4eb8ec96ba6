//! An admin triggers runs and reads the run history through the API.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};
use tests::api::{Reply, TestApi, ADMIN_NAME};

fn count(reply: Reply) -> usize {
    reply.body["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn run_now_queues_a_pending_manual_run() {
    let api = TestApi::spawn().await;
    let job = api.one_time_job("now").await;
    let reply = api
        .post_empty(&format!("/jobs/{}/run-now", job["id"].as_str().unwrap()))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let run = reply.body;
    assert_eq!(run["status"], "pending");
    assert_eq!(run["trigger_type"], "manual");
    assert_eq!(run["triggered_by"], ADMIN_NAME);
    assert_eq!(run["job_definition_id"], job["id"]);
    assert_eq!(run["job_key"], "now");
    assert_eq!(run["job_version"], 1);
    assert_eq!(run["target"], "system.heartbeat");
    assert!(run.get("heartbeat_at").is_none(), "heartbeat_at is internal");
    for column in [
        "id",
        "scheduled_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "error",
        "output",
        "scheduler_instance",
        "created_at",
    ] {
        assert!(run.get(column).is_some(), "run JSON lacks {column}: {run}");
    }

    let read = api.get(&format!("/runs/{}", run["id"].as_str().unwrap())).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, run);
}

#[tokio::test]
async fn run_now_while_a_run_is_active_records_a_skip_and_answers_409() {
    let api = TestApi::spawn().await;
    let job = api.one_time_job("busy").await;
    let path = format!("/jobs/{}/run-now", job["id"].as_str().unwrap());
    let first = api.post_empty(&path).await;
    assert_eq!(first.status, 202);
    let reply = api.post_empty(&path).await;
    let problem = reply.problem(409);
    assert_eq!(problem["active_run_id"], first.body["id"]);
    let skipped = api
        .get(&format!("/runs/{}", problem["skipped_run_id"].as_str().unwrap()))
        .await;
    assert_eq!(skipped.body["status"], "skipped");
    assert_eq!(count(api.get("/runs?job_key=busy").await), 2);
}

#[tokio::test]
async fn run_now_works_on_a_paused_job_but_not_on_a_retired_or_missing_one() {
    let api = TestApi::spawn().await;
    let job = api.one_time_job("paused-run").await;
    let id = job["id"].as_str().unwrap();
    api.pause(id).await;
    assert_eq!(api.post_empty(&format!("/jobs/{id}/run-now")).await.status, 202);

    let v2 = api.post(&format!("/jobs/{id}/new-version"), &json!({})).await;
    assert_eq!(v2.status, 201, "{}", v2.text);
    api.post_empty(&format!("/jobs/{id}/run-now")).await.problem(409);
    api.post_empty(&format!("/jobs/{}/run-now", uuid::Uuid::now_v7()))
        .await
        .problem(404);
    assert_eq!(api.post_empty("/jobs/123/run-now").await.error_fields(), ["jobId"]);
}

#[tokio::test]
async fn of_fifty_concurrent_run_nows_exactly_one_is_accepted() {
    let api = Arc::new(TestApi::spawn().await);
    let job = api.one_time_job("stampede").await;
    let path = format!("/jobs/{}/run-now", job["id"].as_str().unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (api, path) = (api.clone(), path.clone());
        tasks.spawn(async move { api.post_empty(&path).await });
    }
    let mut accepted = Vec::new();
    let mut active_ids = HashSet::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        if reply.status == 202 {
            accepted.push(reply.body["id"].to_string());
        } else {
            active_ids.insert(reply.problem(409)["active_run_id"].to_string());
        }
    }
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        active_ids,
        HashSet::from([accepted[0].clone()]),
        "every 409 names the accepted run"
    );
    let skipped: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE status = 'skipped'")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(skipped, 49);
}

#[tokio::test]
async fn runs_are_listed_newest_first_across_pages_and_filtered() {
    let api = TestApi::spawn().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let job = api.one_time_job(&format!("r{i}")).await;
        let path = format!("/jobs/{}/run-now", job["id"].as_str().unwrap());
        ids.push(api.post_empty(&path).await.body["id"].clone());
        ids.push(api.post_empty(&path).await.body["skipped_run_id"].clone());
    }
    ids.reverse();

    let mut seen: Vec<Value> = Vec::new();
    let mut path = "/runs?limit=3".to_owned();
    loop {
        let reply = api.get(&path).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        seen.extend(reply.body["items"].as_array().unwrap().iter().map(|r| r["id"].clone()));
        match reply.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/runs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, each once");

    assert_eq!(count(api.get("/runs?status=skipped").await), 4);
    assert_eq!(count(api.get("/runs?status=pending&job_key=r0").await), 1);
    assert_eq!(count(api.get("/runs?trigger_type=scheduled").await), 0);
    assert_eq!(count(api.get("/runs?target=system.heartbeat").await), 8);
    assert_eq!(
        count(api.get("/runs?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z").await),
        8
    );
    assert_eq!(count(api.get("/runs?to=2000-01-01T00:00:00Z").await), 0);
    let one_run = api.get(&format!("/runs/{}", ids[0].as_str().unwrap())).await.body;
    let by_job = api
        .get(&format!(
            "/runs?job_id={}",
            one_run["job_definition_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(count(by_job), 2);
}

#[tokio::test]
async fn bad_run_filters_and_ids_are_400_and_missing_runs_404() {
    let api = TestApi::spawn().await;
    for (query, field) in [
        ("job_id=nope", "job_id"),
        ("status=done", "status"),
        ("trigger_type=cron", "trigger_type"),
        ("from=yesterday", "from"),
        ("from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", "to"),
        ("limit=500", "limit"),
        ("cursor=%zz", "query"),
    ] {
        let reply = api.get(&format!("/runs?{query}")).await;
        assert_eq!(reply.error_fields(), [field], "{query}");
    }
    api.get(&format!("/runs/{}", uuid::Uuid::now_v7())).await.problem(404);
    assert_eq!(api.get("/runs/xyz").await.error_fields(), ["runId"]);
}
