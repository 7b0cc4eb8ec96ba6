//! A stand-in for a webhook receiver (Slack, PagerDuty, your own service): an HTTP endpoint on
//! 127.0.0.1 that records every POST and answers 200, or 500 for the next `n` requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use cron_runtime::alerts::webhooks::signature;
use cron_runtime::config::Secret;
use serde_json::Value;
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-Cronjobs-Event-Id`.
    pub event_id: Option<String>,
    /// `X-Cronjobs-Signature`.
    pub signature: Option<String>,
    /// The raw body.
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// `true` when the signature is the HMAC of the body under `secret`.
    pub fn signed_with(&self, secret: &str) -> bool {
        self.signature.as_deref() == Some(signature(&Secret::new(secret), self.body.as_bytes()).as_str())
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    fail_next: AtomicUsize,
}

/// The receiver; it stops when dropped.
pub struct WebhookReceiver {
    port: u16,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Serves on `127.0.0.1:<random port>`.
    pub async fn start() -> WebhookReceiver {
        Self::start_on(0).await
    }

    /// Serves on `127.0.0.1:port` (a port reserved earlier, to come up after the service).
    pub async fn start_on(port: u16) -> WebhookReceiver {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/hook/{*rest}", post(receive))
            .with_state(shared.clone());
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the webhook receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver { port, shared, server }
    }

    /// The URL to configure; its path looks like a secret, as a Slack webhook's does.
    pub fn url(&self) -> String {
        Self::url_on(self.port)
    }

    /// The receiver's URL on `port`.
    pub fn url_on(port: u16) -> String {
        format!("http://127.0.0.1:{port}/hook/T000/B000/s3cr3tPathPart")
    }

    /// Answers 500 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Requests answered 200, by event id.
    pub fn delivered(&self) -> BTreeMap<String, Vec<Received>> {
        let mut by_id: BTreeMap<String, Vec<Received>> = BTreeMap::new();
        for r in self.received().into_iter().filter(|r| r.status == 200) {
            by_id.entry(r.event_id.clone().unwrap_or_default()).or_default().push(r);
        }
        by_id
    }

    /// Bodies of the requests answered 200 with `event` (`incident.opened`, ...).
    pub fn delivered_events(&self, event: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.status == 200 && r.json()["event"] == event)
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let failing = shared
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    if let Ok(mut received) = shared.received.lock() {
        received.push(Received {
            event_id: header("x-cronjobs-event-id"),
            signature: header("x-cronjobs-signature"),
            body: String::from_utf8_lossy(&body).into_owned(),
            status: status.as_u16(),
        });
    }
    status
}
