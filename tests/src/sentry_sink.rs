//! A stand-in for Sentry: an HTTP endpoint on a random port that accepts envelopes
//! (`POST /api/<project>/envelope/`) and keeps them for the test to read.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;

type Received = Arc<Mutex<Vec<String>>>;

/// The endpoint; it stops when dropped.
pub struct SentrySink {
    port: u16,
    received: Received,
    server: tokio::task::JoinHandle<()>,
}

impl SentrySink {
    /// Serves on `127.0.0.1:<random port>`.
    pub async fn start() -> SentrySink {
        let received = Received::default();
        let app = Router::new()
            .route("/api/{project}/envelope/", post(receive))
            .with_state(received.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the Sentry sink");
        let port = listener.local_addr().expect("sink address").port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SentrySink { port, received, server }
    }

    /// A DSN pointing here: `http://<key>[:<secret>]@127.0.0.1:<port>/1`.
    pub fn dsn(&self, public_key: &str, secret_key: Option<&str>) -> String {
        let secret = secret_key.map(|s| format!(":{s}")).unwrap_or_default();
        format!("http://{public_key}{secret}@127.0.0.1:{}/1", self.port)
    }

    /// Every envelope received so far, as text.
    pub fn envelopes(&self) -> Vec<String> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The Sentry Crons check-ins (envelope items with a `check_in_id`) received so far.
    pub fn check_ins(&self) -> Vec<Value> {
        self.envelopes()
            .iter()
            .flat_map(|envelope| envelope.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .filter(|item| item.get("check_in_id").is_some() && item.get("monitor_slug").is_some())
            .collect()
    }

    /// The events (envelope items with tags) received so far.
    pub fn events(&self) -> Vec<Value> {
        self.envelopes()
            .iter()
            .flat_map(|envelope| envelope.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            // The envelope header has an event_id too, but no platform.
            .filter(|item| item.get("event_id").is_some() && item.get("platform").is_some())
            .collect()
    }
}

impl Drop for SentrySink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    if let Ok(mut received) = received.lock() {
        received.push(String::from_utf8_lossy(&body).into_owned());
    }
    "{}"
}

/// The value of tag `name` of `event`, if it has it.
pub fn tag<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    event.get("tags")?.get(name)?.as_str()
}
