//! Malformed requests get a 4xx problem a person can act on: never a 5xx, never plain text,
//! never a partial write (SPEC §10).

use reqwest::Method;
use serde_json::json;
use tests::api::{one_time_body, send, TestApi};

async fn definitions(api: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM cron_job_definitions")
        .fetch_one(&api.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let api = TestApi::spawn().await;
    for body in ["{", "{\"job_key\": }", "[]", "null", "{} {}", ""] {
        let reply = send(
            api.request(Method::POST, "/jobs")
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(reply.error_fields(), ["body"], "{body:?}");
    }
    assert_eq!(definitions(&api).await, 0);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_problem() {
    let api = TestApi::spawn().await;
    let reply = send(
        api.request(Method::POST, "/jobs")
            .header("content-type", "text/plain")
            .body(one_time_body("x").to_string()),
    )
    .await;
    assert_eq!(reply.error_fields(), ["body"]);
    let reply = send(api.request(Method::POST, "/jobs").body(one_time_body("x").to_string())).await;
    assert_eq!(reply.error_fields(), ["body"], "no content type");
}

#[tokio::test]
async fn unknown_fields_are_rejected_by_name() {
    let api = TestApi::spawn().await;
    let mut body = one_time_body("x");
    body["schedule"] = json!("daily");
    assert_eq!(api.post("/jobs", &body).await.error_fields(), ["schedule"]);
    let job = api.one_time_job("x").await;
    let id = job["id"].as_str().unwrap();
    let reply = api
        .patch(
            &format!("/jobs/{id}/pause"),
            &json!({"reason": "long enough", "until": "monday"}),
        )
        .await;
    assert_eq!(reply.error_fields(), ["until"]);
    let reply = api
        .post(&format!("/jobs/{id}/new-version"), &json!({"cron": "* * * * *"}))
        .await;
    assert_eq!(reply.error_fields(), ["cron"]);
    assert_eq!(definitions(&api).await, 1);
}

#[tokio::test]
async fn a_wrongly_typed_field_is_named() {
    let api = TestApi::spawn().await;
    let mut body = one_time_body("x");
    body["description"] = json!(42);
    assert_eq!(api.post("/jobs", &body).await.error_fields(), ["description"]);
    body["description"] = json!("fine");
    body["job_key"] = json!(["a"]);
    assert_eq!(api.post("/jobs", &body).await.error_fields(), ["job_key"]);
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_problem() {
    let api = TestApi::spawn().await;
    let mut body = one_time_body("big");
    body["description"] = json!("");
    let base = body.to_string().len();
    body["description"] = json!("x".repeat(64 * 1024 + 1 - base));
    let text = body.to_string();
    assert_eq!(text.len(), 64 * 1024 + 1);
    let reply = send(
        api.request(Method::POST, "/jobs")
            .header("content-type", "application/json")
            .body(text),
    )
    .await;
    reply.problem(413);
    assert_eq!(definitions(&api).await, 0);

    // Exactly 64 KiB is read (and rejected for its description, not its size).
    body["description"] = json!("x".repeat(64 * 1024 - base));
    assert_eq!(api.post("/jobs", &body).await.error_fields(), ["description"]);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let api = TestApi::spawn().await;
    api.get("/nothing-here").await.problem(404);
    send(api.client.get(format!("{}/", api.base))).await.problem(404);
    send(api.request(Method::DELETE, "/jobs")).await.problem(405);
}

#[tokio::test]
async fn a_nul_character_is_a_400_not_a_database_error() {
    let api = TestApi::spawn().await;
    let job = api.one_time_job("nul").await;
    let reply = api
        .patch(
            &format!("/jobs/{}/pause", job["id"].as_str().unwrap()),
            &json!({"reason": "bad\u{0}reason"}),
        )
        .await;
    assert_eq!(reply.error_fields(), ["reason"]);
    let mut body = one_time_body("nul2");
    body["payload"] = json!({"k": "v\u{0}"});
    assert_eq!(api.post("/jobs", &body).await.error_fields(), ["payload.k"]);
    assert_eq!(api.get("/jobs?job_key=a%00b").await.error_fields(), ["query"]);
}
