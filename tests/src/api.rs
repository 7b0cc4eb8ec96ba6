//! The admin API served in-process on a random port, over a fresh database, with request
//! helpers that authenticate as a known admin.

use chrono::{Duration, SecondsFormat, Utc};
use cron_runtime::config::{AdminToken, Secret};
use cron_runtime::web::{self, AppState};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::db::TestDb;

/// The admin the harness authenticates as.
pub const ADMIN_NAME: &str = "alice";
/// Alice's token.
pub const ADMIN_TOKEN: &str = "alice-token-0123456789abcdef";
/// The admin routes' prefix.
pub const PREFIX: &str = "/api/v2/admin/cron";

/// A running API and its database.
pub struct TestApi {
    pub db: TestDb,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub client: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

/// A response, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body as JSON (`Null` if it is not JSON).
    pub body: Value,
}

impl TestApi {
    /// Serves the API over a fresh, migrated database.
    pub async fn spawn() -> TestApi {
        TestApi::spawn_on(TestDb::create().await).await
    }

    /// Serves the API over `db`.
    pub async fn spawn_on(db: TestDb) -> TestApi {
        // What `CRON_DIAGNOSTIC_TARGETS=1` does in the binary: the tests create jobs on
        // `system.sleep` and friends. (For the default, start the binary: `api_process`.)
        cron_runtime::registry::enable_diagnostic_targets();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let admins = vec![AdminToken {
            name: ADMIN_NAME.into(),
            token: Secret::new(ADMIN_TOKEN),
        }];
        let state = AppState::new(db.pool.clone(), admins);
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(web::serve(listener, state, async {
            let _ = stopped.await;
        }));
        TestApi {
            db,
            base,
            client: reqwest::Client::new(),
            _shutdown: shutdown,
        }
    }

    /// The URL of `path`; paths not starting with `/healthz` or `/readyz` are under [`PREFIX`].
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/healthz") || path.starts_with("/readyz") || path.starts_with(PREFIX) {
            format!("{}{path}", self.base)
        } else {
            format!("{}{PREFIX}{path}", self.base)
        }
    }

    /// A request as the admin.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN)
    }

    /// `GET path` as the admin.
    pub async fn get(&self, path: &str) -> Reply {
        send(self.request(Method::GET, path)).await
    }

    /// `POST path` with a JSON body as the admin.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        send(self.request(Method::POST, path).json(body)).await
    }

    /// `POST path` without a body as the admin.
    pub async fn post_empty(&self, path: &str) -> Reply {
        send(self.request(Method::POST, path)).await
    }

    /// `PATCH path` with a JSON body as the admin.
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        send(self.request(Method::PATCH, path).json(body)).await
    }

    /// `PATCH path` without a body as the admin.
    pub async fn patch_empty(&self, path: &str) -> Reply {
        send(self.request(Method::PATCH, path)).await
    }

    /// Creates a job, asserting 201, and returns it.
    pub async fn create_job(&self, body: &Value) -> Value {
        let reply = self.post("/jobs", body).await;
        assert_eq!(reply.status, 201, "create failed: {}", reply.text);
        reply.body
    }

    /// Creates a one-time `system.heartbeat` job an hour from now (no schedule maths needed).
    pub async fn one_time_job(&self, job_key: &str) -> Value {
        self.create_job(&one_time_body(job_key)).await
    }

    /// Pauses a job, asserting 200.
    pub async fn pause(&self, job_id: &str) -> Value {
        let reply = self
            .patch(
                &format!("/jobs/{job_id}/pause"),
                &json!({"reason": "maintenance window"}),
            )
            .await;
        assert_eq!(reply.status, 200, "pause failed: {}", reply.text);
        reply.body
    }
}

/// The body of a one-time `system.heartbeat` job an hour from now.
pub fn one_time_body(job_key: &str) -> Value {
    json!({
        "job_key": job_key,
        "target": "system.heartbeat",
        "schedule_type": "one_time",
        // Whole seconds: the database keeps microseconds, so finer input would not round-trip exactly.
        "run_at": (Utc::now() + Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

/// The body of a recurring `system.heartbeat` job every five minutes.
pub fn recurring_body(job_key: &str) -> Value {
    json!({
        "job_key": job_key,
        "target": "system.heartbeat",
        "schedule_type": "recurring",
        "cron_expression": "*/5 * * * *",
    })
}

/// Sends a request and reads the whole response.
pub async fn send(request: RequestBuilder) -> Reply {
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("read the body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        body,
    }
}

impl Reply {
    /// Asserts this is a problem+json with `status`, and returns it for more checks.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        let content_type = self.headers.get("content-type").and_then(|v| v.to_str().ok());
        assert_eq!(content_type, Some("application/problem+json"), "body: {}", self.text);
        assert_eq!(self.body["status"], status, "{}", self.text);
        for member in ["type", "title", "detail"] {
            assert!(self.body[member].is_string(), "problem lacks {member}: {}", self.text);
        }
        assert!(self.body["errors"].is_array(), "problem lacks errors: {}", self.text);
        &self.body
    }

    /// The fields named in a 400 problem's `errors`, sorted.
    #[track_caller]
    pub fn error_fields(&self) -> Vec<String> {
        let problem = self.problem(400);
        let mut fields: Vec<String> = problem["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
            .collect();
        fields.sort();
        fields
    }

    /// The message of the error about `field` in a 400 problem.
    #[track_caller]
    pub fn error_message(&self, field: &str) -> String {
        self.problem(400)["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["field"] == field)
            .and_then(|e| e["message"].as_str())
            .unwrap_or_else(|| panic!("no error about {field}: {}", self.text))
            .to_owned()
    }
}
