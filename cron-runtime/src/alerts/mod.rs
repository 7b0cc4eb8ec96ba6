//! Alerts (SPEC §12): incidents are opened and resolved by the store, in the transaction of the
//! run outcome that causes them ([`crate::store::incidents`]); this module holds the policy they
//! follow, the webhook payload, and the services that tell people:
//! - [`webhooks`]: delivers the outbox to `CRON_ALERT_WEBHOOK_URLS`, from every `api` and
//!   `scheduler` process, one attempt per event at a time across the cluster;
//! - [`sentry`]: one Sentry error event per opened incident (instead of one per failed run).
//!
//! See docs/alerts.md for the payload, headers, signature and retry policy.

pub mod sentry;
pub mod webhooks;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{AlertConfig, Secret};
use crate::store::incidents::Transition;

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Opened,
    Resolved,
}

impl Event {
    /// The event's name in payloads and the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Opened => "incident.opened",
            Event::Resolved => "incident.resolved",
        }
    }
}

/// A webhook endpoint. Its id (a hash of the URL) is what the outbox stores: the URL itself is
/// a secret.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub url: Secret,
}

impl Endpoint {
    /// The endpoint at `url`.
    pub fn new(url: Secret) -> Self {
        let digest = Sha256::digest(url.expose().as_bytes());
        Endpoint {
            id: hex(&digest[..8]),
            url,
        }
    }

    /// The URL's host (and port): all of it that may be logged (path, query and userinfo of a
    /// webhook URL are credentials).
    pub fn host(&self) -> String {
        match reqwest::Url::parse(self.url.expose()) {
            Ok(url) => match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                _ => "(no host)".to_owned(),
            },
            Err(_) => "(invalid url)".to_owned(),
        }
    }
}

/// How incidents are opened and where their events go; set once per process by [`configure`].
#[derive(Debug, Clone)]
pub struct Policy {
    /// Consecutive failed or missed runs that open an incident.
    pub after_failures: u32,
    pub endpoints: Vec<Endpoint>,
    /// No scheduler alive for this long (with active jobs) opens `no_scheduler`.
    pub no_scheduler_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from(&AlertConfig::default())
    }
}

impl From<&AlertConfig> for Policy {
    fn from(config: &AlertConfig) -> Self {
        Policy {
            after_failures: config.after_failures.max(1),
            endpoints: config.webhook_urls.iter().cloned().map(Endpoint::new).collect(),
            no_scheduler_after: config.no_scheduler_after,
        }
    }
}

static POLICY: RwLock<Option<Arc<Policy>>> = RwLock::new(None);

/// Sets this process's policy (at start, from its configuration).
pub fn configure(config: &AlertConfig) {
    let policy = Arc::new(Policy::from(config));
    *POLICY.write().unwrap_or_else(|p| p.into_inner()) = Some(policy);
}

/// This process's policy (the defaults until [`configure`]d).
pub fn policy() -> Arc<Policy> {
    POLICY
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(|| Arc::new(Policy::default()))
}

/// The webhook body of `transition` (SPEC §12), as event `event_id`.
pub fn payload(event_id: Uuid, transition: &Transition) -> Value {
    let incident = &transition.incident;
    let job = incident.job_key.as_ref().map(|key| {
        json!({
            "id": incident.job_id,
            "key": key,
            "version": incident.job_version,
            "target": incident.target,
        })
    });
    let run = transition.run.as_ref().map(|run| {
        json!({
            "id": run.id,
            "status": run.status,
            "reason": run.reason,
            "scheduled_at": run.scheduled_at,
            "finished_at": run.finished_at,
            "error": run.error,
        })
    });
    let occurred_at = match transition.event {
        Event::Opened => incident.opened_at,
        Event::Resolved => incident.resolved_at.unwrap_or(incident.updated_at),
    };
    let message = message(transition);
    let icon = match transition.event {
        Event::Opened => ":rotating_light:",
        Event::Resolved => ":white_check_mark:",
    };
    json!({
        "id": event_id,
        "event": transition.event.as_str(),
        "kind": incident.kind,
        "incident_id": incident.id,
        "job": job,
        "run": run,
        "failures": incident.failures,
        "message": message,
        "text": format!("{icon} cronjobs: {message}"),
        "occurred_at": occurred_at,
    })
}

/// A one-line summary of `transition`.
fn message(transition: &Transition) -> String {
    let incident = &transition.incident;
    let plural = |n: i32| if n == 1 { "" } else { "s" };
    let error = incident
        .last_error
        .as_deref()
        .map(|e| one_line(e, 300))
        .unwrap_or_default();
    match (incident.job_key.as_deref(), transition.event) {
        (Some(key), Event::Opened) => format!(
            "job {key} is failing: {n} failed or missed run{s} in a row; last: {error}",
            n = incident.failures,
            s = plural(incident.failures)
        ),
        (Some(key), Event::Resolved) => {
            let how = match incident.resolved_by.as_deref() {
                Some("paused") => "the job was paused",
                Some("retired") => "the job was retired",
                _ => "a run succeeded",
            };
            format!(
                "job {key} recovered: {how} after {n} failed or missed run{s}",
                n = incident.failures,
                s = plural(incident.failures)
            )
        }
        (None, Event::Opened) => format!("no scheduler is running: {error}"),
        (None, Event::Resolved) => "a scheduler is running again".to_owned(),
    }
}

/// `text` on one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        format!("{}…", line.chars().take(max).collect::<String>())
    }
}

/// Logs what committed transitions did and reports opened incidents to Sentry. Call after the
/// transaction that wrote them committed.
pub fn announce(transitions: &[Transition]) {
    for t in transitions {
        let incident = &t.incident;
        let job_key = incident.job_key.as_deref().unwrap_or("-");
        match t.event {
            Event::Opened => {
                tracing::warn!(
                    incident_id = %incident.id, kind = %incident.kind, %job_key, failures = incident.failures,
                    error = incident.last_error.as_deref().unwrap_or_default(), "incident opened"
                );
                sentry::report_opened(incident);
            }
            Event::Resolved => tracing::info!(
                incident_id = %incident.id, kind = %incident.kind, %job_key, failures = incident.failures,
                resolved_by = incident.resolved_by.as_deref().unwrap_or_default(), "incident resolved"
            ),
        }
        crate::metrics::incident(incident, t.event);
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_logs_its_host_only() {
        let e = Endpoint::new(Secret::new(
            "https://user:pw@hooks.slack.com/services/T0/B0/XyZ?token=abc",
        ));
        assert_eq!(e.host(), "hooks.slack.com");
        assert_eq!(e.id.len(), 16);
        assert_eq!(
            Endpoint::new(Secret::new("http://127.0.0.1:8123/hook")).host(),
            "127.0.0.1:8123"
        );
    }

    #[test]
    fn long_errors_are_cut_to_one_line() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
