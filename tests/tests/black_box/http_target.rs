//! `http.request`, the built-in target that calls an endpoint: run by the real scheduler
//! against a local server; validated by the real API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use axum::Router;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use tests::api::{send, TestApi};
use tests::db::TestDb;
use tests::fixtures::{api_process, scheduler, wait_for};

const TOKEN: &str = "http-target-token-0123456789";
const SECRET: &str = "s3cret-never-stored";

/// What the endpoint heard: the path and the headers of every request.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<(String, HeaderMap, String)>>>);

/// A local service with the answers a job meets in the wild.
async fn endpoint() -> (String, Heard) {
    let heard = Heard::default();
    let record = |path: &'static str| {
        move |State(heard): State<Heard>, headers: HeaderMap, body: String| async move {
            if let Ok(mut all) = heard.0.lock() {
                all.push((path.to_owned(), headers, body));
            }
        }
    };
    let app = Router::new()
        .route(
            "/ok",
            any(
                move |state: State<Heard>, headers: HeaderMap, body: String| async move {
                    record("/ok")(state, headers, body.clone()).await;
                    format!("pong: {body}")
                },
            ),
        )
        .route(
            "/unavailable",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(120)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { "x".repeat(10_000) }))
        .route("/moved", get(|| async { Redirect::temporary("/ok").into_response() }))
        // The same server under another name: another origin.
        .route(
            "/away",
            get(|| async { Redirect::temporary("http://localhost:9/ok").into_response() }),
        )
        .with_state(heard.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, heard)
}

fn one_time(key: &str, payload: Value) -> Value {
    json!({
        "job_key": key,
        "target": "http.request",
        "schedule_type": "one_time",
        "run_at": (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339_opts(SecondsFormat::Millis, true),
        "payload": payload,
    })
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> tests::api::Reply {
    send(client.post(url).bearer_auth(TOKEN).json(body)).await
}

/// The one run of `key` once it ended.
async fn finished_run(client: &reqwest::Client, base: &str, key: &str) -> Value {
    let url = format!("{base}/api/v2/admin/cron/runs?job_key={key}");
    wait_for(Duration::from_secs(30), &format!("the run of {key} to end"), || async {
        let page = send(client.get(&url).bearer_auth(TOKEN)).await.body;
        let run = page["items"].as_array()?.first()?.clone();
        (!["pending", "running"].contains(&run["status"].as_str()?)).then_some(run)
    })
    .await
}

#[tokio::test]
async fn http_request_records_the_answer_and_keeps_secrets_out_of_the_database() {
    let db = TestDb::create().await;
    let (base_url, heard) = endpoint().await;
    let (_api, base) = api_process(&db, TOKEN, &[]).await;
    let _scheduler = scheduler(&db, &[("CRON_SECRET_HOOK_TOKEN", SECRET)]);
    let client = reqwest::Client::new();
    let jobs = format!("{base}/api/v2/admin/cron/jobs");
    let cases = [
        (
            "http.ok",
            json!({"method": "POST", "url": format!("{base_url}/ok"), "body": {"hello": "world"},
                   "headers": {"Authorization": "Bearer ${CRON_SECRET_HOOK_TOKEN}"}}),
        ),
        (
            "http.unavailable",
            json!({"method": "GET", "url": format!("{base_url}/unavailable")}),
        ),
        (
            "http.accepts-503",
            json!({"method": "GET", "url": format!("{base_url}/unavailable"), "expect_status": [503]}),
        ),
        (
            "http.slow",
            json!({"method": "GET", "url": format!("{base_url}/slow"), "timeout": "1s"}),
        ),
        ("http.big", json!({"method": "GET", "url": format!("{base_url}/big")})),
        (
            "http.moved",
            json!({"method": "GET", "url": format!("{base_url}/moved"), "expect_status": [307]}),
        ),
        (
            "http.follows",
            json!({"method": "GET", "url": format!("{base_url}/moved"), "follow_redirects": true}),
        ),
        (
            "http.leaves",
            json!({"method": "GET", "url": format!("{base_url}/away"), "follow_redirects": true}),
        ),
        (
            "http.unset-variable",
            json!({"method": "GET", "url": format!("{base_url}/ok"), "headers": {"X-Key": "${CRON_SECRET_NOT_SET}"}}),
        ),
    ];
    for (key, payload) in &cases {
        let reply = post(&client, &jobs, &one_time(key, payload.clone())).await;
        assert_eq!(reply.status, 201, "{key}: {}", reply.text);
    }

    let ok = finished_run(&client, &base, "http.ok").await;
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(ok["output"]["status"], 200, "{ok}");
    assert_eq!(ok["output"]["body"], r#"pong: {"hello":"world"}"#, "{ok}");
    assert!(ok["output"]["duration_ms"].is_u64(), "{ok}");
    let requests = heard.0.lock().map(|all| all.clone()).unwrap_or_default();
    let (_, headers, _) = requests
        .iter()
        .find(|(path, ..)| path == "/ok")
        .expect("the endpoint was called");
    assert_eq!(headers["authorization"], format!("Bearer {SECRET}"));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-cronjobs-run-id"].to_str().ok(), ok["id"].as_str());

    let unavailable = finished_run(&client, &base, "http.unavailable").await;
    assert_eq!(unavailable["status"], "failed", "{unavailable}");
    let error = unavailable["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("503") && error.contains("expected 2xx") && error.contains("down for maintenance"),
        "{error}"
    );
    assert_eq!(
        finished_run(&client, &base, "http.accepts-503").await["status"],
        "succeeded"
    );

    let slow = finished_run(&client, &base, "http.slow").await;
    assert_eq!(slow["status"], "failed", "{slow}");
    assert!(
        slow["error"].as_str().unwrap_or_default().contains("timed out"),
        "{slow}"
    );

    let big = finished_run(&client, &base, "http.big").await;
    assert_eq!(big["output"]["body"].as_str().map(str::len), Some(4096), "{big}");
    assert_eq!(big["output"]["body_truncated"], true, "{big}");

    let moved = finished_run(&client, &base, "http.moved").await;
    assert_eq!(
        (moved["status"].as_str(), moved["output"]["status"].as_u64()),
        (Some("succeeded"), Some(307)),
        "{moved}"
    );
    let follows = finished_run(&client, &base, "http.follows").await;
    assert_eq!(follows["output"]["body"], "pong: ", "{follows}");

    let elsewhere = finished_run(&client, &base, "http.leaves").await;
    assert_eq!(elsewhere["status"], "failed", "{elsewhere}");
    assert!(
        elsewhere["error"]
            .as_str()
            .unwrap_or_default()
            .contains("another origin"),
        "{elsewhere}"
    );

    let unset = finished_run(&client, &base, "http.unset-variable").await;
    assert_eq!(unset["status"], "failed", "{unset}");
    assert!(
        unset["error"]
            .as_str()
            .unwrap_or_default()
            .contains("${CRON_SECRET_NOT_SET}"),
        "{unset}"
    );

    // The secret went to the endpoint and nowhere else.
    let (stored,): (i64,) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM cron_job_runs r WHERE r::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM cron_job_definitions d WHERE d::text LIKE '%' || $1 || '%')",
    )
    .bind(SECRET)
    .fetch_one(&db.pool)
    .await
    .expect("search the tables");
    assert_eq!(stored, 0, "the secret is stored in a run or a definition");
}

#[tokio::test]
async fn a_cancelled_http_request_stops_waiting_for_the_server() {
    let db = TestDb::create().await;
    let (base_url, _heard) = endpoint().await;
    let (_api, base) = api_process(&db, TOKEN, &[]).await;
    // A handler that ignored its cancel would run on for this grace before being aborted.
    let _scheduler = scheduler(&db, &[("CRON_SHUTDOWN_GRACE", "60s")]);
    let client = reqwest::Client::new();
    let payload = json!({"method": "GET", "url": format!("{base_url}/slow"), "timeout": "5m"});
    let reply = post(
        &client,
        &format!("{base}/api/v2/admin/cron/jobs"),
        &one_time("http.cancelled", payload),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let runs = format!("{base}/api/v2/admin/cron/runs?job_key=http.cancelled&status=running");
    let run_id = wait_for(Duration::from_secs(20), "the request to be under way", || async {
        let page = send(client.get(&runs).bearer_auth(TOKEN)).await.body;
        page["items"].as_array()?.first()?["id"].as_str().map(str::to_owned)
    })
    .await;
    let cancelled_at = Utc::now();
    let cancel = post(
        &client,
        &format!("{base}/api/v2/admin/cron/runs/{run_id}/cancel"),
        &json!({"reason": "the endpoint hangs"}),
    )
    .await;
    assert_eq!(cancel.status, 202, "{}", cancel.text);
    let run = finished_run(&client, &base, "http.cancelled").await;
    assert_eq!(run["status"], "cancelled", "{run}");
    let took = chrono::DateTime::parse_from_rfc3339(run["finished_at"].as_str().unwrap_or_default())
        .map(|finished| (finished.with_timezone(&Utc) - cancelled_at).num_seconds());
    assert!(
        took.is_ok_and(|s| s < 10),
        "the handler did not stop at the cancel: {run}"
    );
}

#[tokio::test]
async fn a_bad_http_request_payload_is_a_400_naming_the_field() {
    let api = TestApi::spawn().await;
    let cases = [
        (json!({"method": "GET", "url": "localhost/hook"}), "payload.url"),
        (
            json!({"method": "SEND", "url": "https://api.example.com"}),
            "payload.method",
        ),
        (
            json!({"method": "GET", "url": "https://api.example.com", "headers": {"Authorization": "Bearer ${TOKEN"}}),
            "payload.headers",
        ),
        (
            // The scheduler's own settings are not for sending.
            json!({"method": "GET", "url": "https://api.example.com", "headers": {"X-Leak": "${DATABASE_URL}"}}),
            "payload.headers",
        ),
        (
            json!({"method": "GET", "url": "https://api.example.com", "timeout": "2h"}),
            "payload.timeout",
        ),
        (json!({"url": "https://api.example.com"}), "payload"),
    ];
    for (payload, field) in cases {
        let reply = api.post("/jobs", &one_time("http.bad", payload.clone())).await;
        assert_eq!(
            reply.error_fields(),
            vec![field.to_owned()],
            "{payload}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn cron_http_allowed_hosts_refuses_other_hosts_when_the_job_is_defined() {
    let db = TestDb::create().await;
    let (_api, base) = api_process(
        &db,
        TOKEN,
        &[("CRON_HTTP_ALLOWED_HOSTS", "api.example.com, *.internal.example")],
    )
    .await;
    let client = reqwest::Client::new();
    let jobs = format!("{base}/api/v2/admin/cron/jobs");
    let refused = post(
        &client,
        &jobs,
        &one_time(
            "http.elsewhere",
            json!({"method": "GET", "url": "http://127.0.0.1:9/x"}),
        ),
    )
    .await;
    let message = refused.error_message("payload.url");
    assert!(message.contains("CRON_HTTP_ALLOWED_HOSTS"), "{message}");
    let allowed = json!({"method": "GET", "url": "https://billing.internal.example/charge"});
    assert_eq!(
        post(&client, &jobs, &one_time("http.allowed", allowed)).await.status,
        201
    );
}
