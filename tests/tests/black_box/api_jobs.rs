//! An admin creates, reads, lists, pauses, resumes and versions jobs through the API.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use tests::api::{one_time_body, recurring_body, Reply, TestApi, ADMIN_NAME};

async fn count_definitions(api: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM cron_job_definitions")
        .fetch_one(&api.db.pool)
        .await
        .unwrap()
}

fn keys(reply: &Reply) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_admin_creates_a_one_time_job_and_reads_it_back() {
    let api = TestApi::spawn().await;
    let body = one_time_body("reports.once");
    let job = api.create_job(&body).await;

    assert_eq!(job["job_key"], "reports.once");
    assert_eq!(job["version"], 1);
    assert_eq!(job["status"], "active");
    assert_eq!(job["schedule_type"], "one_time");
    assert_eq!(job["cron_expression"], Value::Null);
    assert_eq!(job["timezone"], "UTC");
    assert_eq!(job["payload"], json!({}));
    assert_eq!(job["created_by"], ADMIN_NAME);
    let run_at: DateTime<Utc> = job["run_at"].as_str().unwrap().parse().unwrap();
    let requested: DateTime<Utc> = body["run_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(run_at, requested);
    assert_eq!(job["next_run_at"], job["run_at"], "a one-time job next fires at run_at");
    assert!(job["run_at"].as_str().unwrap().ends_with('Z'), "timestamps are UTC");
    for column in [
        "id",
        "description",
        "pause_reason",
        "paused_at",
        "paused_by",
        "created_at",
        "updated_at",
        "retired_at",
    ] {
        assert!(job.get(column).is_some(), "job JSON lacks {column}: {job}");
    }

    let read = api.get(&format!("/jobs/{}", job["id"].as_str().unwrap())).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, job);
}

#[tokio::test]
async fn an_admin_creates_a_recurring_job_with_its_next_fire_time() {
    let api = TestApi::spawn().await;
    let mut body = recurring_body("heartbeat");
    body["timezone"] = json!("Europe/Berlin");
    body["description"] = json!("proves the scheduler is alive");
    let job = api.create_job(&body).await;
    assert_eq!(job["cron_expression"], "*/5 * * * *");
    assert_eq!(job["timezone"], "Europe/Berlin");
    assert_eq!(job["run_at"], Value::Null);
    let next: DateTime<Utc> = job["next_run_at"].as_str().expect("next_run_at set").parse().unwrap();
    assert!(next > Utc::now() && next <= Utc::now() + Duration::minutes(5), "{next}");
}

#[tokio::test]
async fn a_job_with_a_typed_payload_is_checked_against_the_target() {
    let api = TestApi::spawn().await;
    let mut body = one_time_body("sleepy");
    body["target"] = json!("system.sleep");
    body["payload"] = json!({"seconds": "ten"});
    let reply = api.post("/jobs", &body).await;
    assert_eq!(reply.error_fields(), ["payload.seconds"]);

    body["payload"] = json!([1, 2]);
    assert_eq!(api.post("/jobs", &body).await.error_fields(), ["payload"]);

    body["payload"] = json!({"seconds": 1});
    let job = api.create_job(&body).await;
    assert_eq!(job["payload"], json!({"seconds": 1}));

    let mut heartbeat = one_time_body("beat");
    heartbeat["payload"] = json!({"unexpected": true});
    assert_eq!(api.post("/jobs", &heartbeat).await.error_fields(), ["payload"]);
}

#[tokio::test]
async fn every_problem_of_a_bad_create_is_reported_at_once() {
    let api = TestApi::spawn().await;
    let reply = api
        .post(
            "/jobs",
            &json!({
                "job_key": "Bad Key",
                "target": "no.such.target",
                "schedule_type": "one_time",
                "cron_expression": "* * * * *",
                "run_at": (Utc::now() - Duration::minutes(1)).to_rfc3339(),
                "timezone": "Mars/Olympus",
                "description": "x".repeat(501),
            }),
        )
        .await;
    assert_eq!(
        reply.error_fields(),
        [
            "cron_expression",
            "description",
            "job_key",
            "run_at",
            "target",
            "timezone"
        ]
    );
    assert!(reply.error_message("run_at").contains("future"));
    assert!(
        reply.error_message("target").contains("system.heartbeat"),
        "lists the known targets"
    );
    assert_eq!(count_definitions(&api).await, 0, "no partial write");
}

#[tokio::test]
async fn required_fields_and_schedule_consistency_are_enforced() {
    let api = TestApi::spawn().await;
    let reply = api.post("/jobs", &json!({})).await;
    assert_eq!(reply.error_fields(), ["job_key", "schedule_type", "target"]);

    let reply = api
        .post(
            "/jobs",
            &json!({"job_key": "a", "target": "system.heartbeat", "schedule_type": "recurring",
                    "run_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(reply.error_fields(), ["cron_expression", "run_at"]);

    let reply = api
        .post(
            "/jobs",
            &json!({"job_key": "a", "target": "system.heartbeat", "schedule_type": "one_time"}),
        )
        .await;
    assert_eq!(reply.error_fields(), ["run_at"]);

    let reply = api
        .post(
            "/jobs",
            &json!({"job_key": "a", "target": "system.heartbeat", "schedule_type": "sometimes"}),
        )
        .await;
    assert_eq!(reply.error_fields(), ["schedule_type"]);

    let mut bad_time = one_time_body("a");
    bad_time["run_at"] = json!("tomorrow at noon");
    assert_eq!(api.post("/jobs", &bad_time).await.error_fields(), ["run_at"]);

    let mut at_limit = one_time_body("a");
    at_limit["description"] = json!("é".repeat(500));
    api.create_job(&at_limit).await;
}

#[tokio::test]
async fn a_bad_cron_expression_is_a_400_with_the_engines_message() {
    let api = TestApi::spawn().await;
    let mut body = recurring_body("never");
    body["cron_expression"] = json!("0 0 30 2 *");
    let reply = api.post("/jobs", &body).await;
    assert_eq!(reply.error_fields(), ["cron_expression"]);
    assert!(!reply.error_message("cron_expression").is_empty());
}

#[tokio::test]
async fn a_key_in_use_is_a_conflict_and_a_retired_key_continues_its_versions() {
    let api = TestApi::spawn().await;
    let first = api.one_time_job("nightly").await;
    api.post("/jobs", &one_time_body("nightly")).await.problem(409);
    assert_eq!(count_definitions(&api).await, 1);

    sqlx::query("UPDATE cron_job_definitions SET status = 'retired', retired_at = now() WHERE id = $1")
        .bind(uuid::Uuid::parse_str(first["id"].as_str().unwrap()).unwrap())
        .execute(&api.db.pool)
        .await
        .unwrap();
    let again = api.one_time_job("nightly").await;
    assert_eq!(again["version"], 2);
}

#[tokio::test]
async fn a_missing_job_is_404_and_a_malformed_id_is_400() {
    let api = TestApi::spawn().await;
    let missing = uuid::Uuid::now_v7();
    api.get(&format!("/jobs/{missing}")).await.problem(404);
    let reply = api.get("/jobs/not-a-uuid").await;
    assert_eq!(reply.error_fields(), ["jobId"]);
}

#[tokio::test]
async fn jobs_are_listed_newest_first_across_pages_without_duplicates() {
    let api = TestApi::spawn().await;
    for i in 0..7 {
        api.one_time_job(&format!("job-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut path = "/jobs?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let reply = api.get(&path).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        pages += 1;
        seen.extend(keys(&reply));
        match reply.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/jobs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).rev().map(|i| format!("job-{i}")).collect();
    assert_eq!(seen, expected, "newest first, each once");
}

#[tokio::test]
async fn jobs_are_filtered_by_status_target_type_and_key() {
    let api = TestApi::spawn().await;
    let a = api.one_time_job("a").await;
    api.one_time_job("b").await;
    api.pause(a["id"].as_str().unwrap()).await;

    assert_eq!(keys(&api.get("/jobs?status=paused").await), ["a"]);
    assert_eq!(keys(&api.get("/jobs?job_key=b").await), ["b"]);
    assert!(keys(&api.get("/jobs?schedule_type=recurring").await).is_empty());
    assert_eq!(
        keys(&api.get("/jobs?target=system.heartbeat&schedule_type=one_time").await).len(),
        2
    );
}

#[tokio::test]
async fn bad_list_parameters_are_400s_naming_the_parameter() {
    let api = TestApi::spawn().await;
    for (query, field) in [
        ("status=sleeping", "status"),
        ("schedule_type=weekly", "schedule_type"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
        ("stauts=active", "stauts"),
        ("status=active&status=paused", "status"),
    ] {
        let reply = api.get(&format!("/jobs?{query}")).await;
        assert_eq!(reply.error_fields(), [field], "{query}");
    }
    assert_eq!(api.get("/jobs?limit=200").await.status, 200);
    assert_eq!(api.get("/jobs?limit=1").await.status, 200);
}

#[tokio::test]
async fn an_admin_pauses_with_a_reason_and_resumes() {
    let api = TestApi::spawn().await;
    let job = api.one_time_job("pausable").await;
    let id = job["id"].as_str().unwrap();

    let paused = api
        .patch(&format!("/jobs/{id}/pause"), &json!({"reason": "  upstream outage  "}))
        .await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    assert_eq!(paused.body["status"], "paused");
    assert_eq!(paused.body["pause_reason"], "upstream outage", "stored trimmed");
    assert_eq!(paused.body["paused_by"], ADMIN_NAME);
    assert!(paused.body["paused_at"].is_string());
    assert_eq!(paused.body["next_run_at"], Value::Null, "null unless active");

    api.patch(&format!("/jobs/{id}/pause"), &json!({"reason": "again please"}))
        .await
        .problem(409);

    let resumed = api.patch_empty(&format!("/jobs/{id}/resume")).await;
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.body["status"], "active");
    assert_eq!(resumed.body["pause_reason"], Value::Null);
    // Every action is attributed, resume too.
    assert_eq!(resumed.body["resumed_by"], ADMIN_NAME);
    assert!(resumed.body["resumed_at"].is_string(), "{}", resumed.text);
    assert_eq!(resumed.body["next_run_at"], job["run_at"]);

    api.patch_empty(&format!("/jobs/{id}/resume")).await.problem(409);
}

#[tokio::test]
async fn the_pause_reason_must_be_5_to_300_characters_after_trimming() {
    let api = TestApi::spawn().await;
    let job = api.one_time_job("bounds").await;
    let path = format!("/jobs/{}/pause", job["id"].as_str().unwrap());
    for bad in [
        json!({}),
        json!({"reason": null}),
        json!({"reason": ""}),
        json!({"reason": "     "}),
        json!({"reason": "abcd"}),
        json!({"reason": "   abcd   "}),
        json!({"reason": "x".repeat(301)}),
    ] {
        let reply = api.patch(&path, &bad).await;
        assert_eq!(reply.error_fields(), ["reason"], "{bad}");
    }
    let status: String = sqlx::query_scalar("SELECT status FROM cron_job_definitions")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "active", "a rejected pause changes nothing");

    for good in ["abcde".to_owned(), "x".repeat(300), format!("  {}  ", "y".repeat(300))] {
        let reply = api.patch(&path, &json!({ "reason": good })).await;
        assert_eq!(reply.status, 200, "{good:?}: {}", reply.text);
        assert_eq!(reply.body["pause_reason"], good.trim());
        api.patch_empty(&path.replace("/pause", "/resume")).await;
    }
}

#[tokio::test]
async fn pause_and_resume_of_a_missing_job_are_404() {
    let api = TestApi::spawn().await;
    let missing = uuid::Uuid::now_v7();
    api.patch(&format!("/jobs/{missing}/pause"), &json!({"reason": "not there"}))
        .await
        .problem(404);
    api.patch_empty(&format!("/jobs/{missing}/resume")).await.problem(404);
    assert_eq!(api.patch_empty("/jobs/nope/resume").await.error_fields(), ["jobId"]);
}

#[tokio::test]
async fn a_new_version_carries_omitted_fields_over_and_retires_the_old_one() {
    let api = TestApi::spawn().await;
    let mut body = one_time_body("versioned");
    body["description"] = json!("first");
    body["timezone"] = json!("Europe/Paris");
    let v1 = api.create_job(&body).await;
    let id = v1["id"].as_str().unwrap();

    let reply = api
        .post(&format!("/jobs/{id}/new-version"), &json!({"description": "second"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let v2 = reply.body;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["status"], "active");
    assert_eq!(v2["job_key"], "versioned");
    assert_eq!(v2["description"], "second");
    assert_eq!(v2["timezone"], "Europe/Paris");
    assert_eq!(v2["run_at"], v1["run_at"]);
    let old = api.get(&format!("/jobs/{id}")).await.body;
    assert_eq!(old["status"], "retired");
    assert!(old["retired_at"].is_string());
    assert_eq!(old["next_run_at"], Value::Null);

    api.post(&format!("/jobs/{id}/new-version"), &json!({}))
        .await
        .problem(409);

    // Switching the schedule type drops the other type's field.
    let v2_id = v2["id"].as_str().unwrap();
    let reply = api
        .post(
            &format!("/jobs/{v2_id}/new-version"),
            &json!({"schedule_type": "recurring", "cron_expression": "0 3 * * *", "description": null}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["run_at"], Value::Null);
    assert_eq!(reply.body["description"], Value::Null, "null clears the description");
    assert_eq!(reply.body["version"], 3);
}

#[tokio::test]
async fn a_new_version_is_validated_after_merging() {
    let api = TestApi::spawn().await;
    let v1 = api.one_time_job("merge").await;
    let v1_id = v1["id"].as_str().unwrap();
    let path = format!("/jobs/{v1_id}/new-version");
    // Recurring without an expression: the old run_at is not carried, and an expression is needed.
    let reply = api.post(&path, &json!({"schedule_type": "recurring"})).await;
    assert_eq!(reply.error_fields(), ["cron_expression"]);
    let reply = api.post(&path, &json!({"job_key": "renamed"})).await;
    assert_eq!(reply.error_fields(), ["job_key"], "job_key is not a new-version field");
    let reply = api.post(&path, &json!({"target": "nope"})).await;
    assert_eq!(reply.error_fields(), ["target"]);
    assert_eq!(count_definitions(&api).await, 1, "no partial write");
    assert_eq!(api.get(&format!("/jobs/{v1_id}")).await.body["status"], "active");

    let missing = uuid::Uuid::now_v7();
    api.post(&format!("/jobs/{missing}/new-version"), &json!({}))
        .await
        .problem(404);
}

#[tokio::test]
async fn of_ten_concurrent_new_versions_exactly_one_wins() {
    let api = std::sync::Arc::new(TestApi::spawn().await);
    let v1 = api.one_time_job("contended").await;
    let path = format!("/jobs/{}/new-version", v1["id"].as_str().unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (api, path) = (api.clone(), path.clone());
        tasks.spawn(async move { api.post(&path, &json!({ "description": format!("attempt {i}") })).await });
    }
    let mut created = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        if reply.status == 201 {
            created += 1;
        } else {
            reply.problem(409);
        }
    }
    assert_eq!(created, 1);
    assert_eq!(count_definitions(&api).await, 2);
}
