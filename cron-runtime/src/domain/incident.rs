//! Incidents (SPEC §12): what they are, the policy that opens them, and the webhook body that
//! tells of them. Shared by the store (which writes them in the run outcome's transaction) and
//! the alerts (which tell people once that transaction committed).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::JobRun;
use crate::config::{AlertConfig, Secret};

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentEvent {
    Opened,
    /// Someone took it on (by hand: `POST /incidents/{id}/acknowledge`); it stays open.
    Acknowledged,
    Resolved,
}

impl IncidentEvent {
    /// The event's name in payloads and the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentEvent::Opened => "incident.opened",
            IncidentEvent::Acknowledged => "incident.acknowledged",
            IncidentEvent::Resolved => "incident.resolved",
        }
    }
}

/// An incident: a job key whose runs went bad, or the cluster without a scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Incident {
    pub id: Uuid,
    /// `job` (one job key) or `no_scheduler` (the cluster).
    pub kind: String,
    /// The job key (null for `no_scheduler`).
    pub job_key: Option<String>,
    /// The job version (definition id) of the run that opened it.
    pub job_id: Option<Uuid>,
    pub job_version: Option<i32>,
    pub target: Option<String>,
    /// `open` or `resolved`.
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// `success`, `paused`, `retired`, `scheduler_up` or `admin` (by hand).
    pub resolved_by: Option<String>,
    /// Failed or missed runs counted into it.
    pub failures: i32,
    pub first_run_id: Option<Uuid>,
    pub last_run_id: Option<Uuid>,
    /// The succeeded run that resolved it.
    pub resolved_run_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub last_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// When someone acknowledged it, who (the token's name), and their note.
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_note: Option<String>,
    /// Who resolved it by hand (`resolved_by` = `admin`), and why.
    pub resolver: Option<String>,
    pub resolved_note: Option<String>,
}

/// An incident that was opened or resolved, and the run that did it (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub event: IncidentEvent,
    pub incident: Incident,
    pub run: Option<JobRun>,
}

/// What a store writer changed, with the incidents it opened or resolved in the same
/// transaction. Whoever committed announces them (`alerts`' `Recorded::announce`); the compiler
/// flags a result dropped unannounced.
#[must_use = "announce the transitions once the transaction committed (Recorded::announce)"]
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<T> {
    pub value: T,
    pub transitions: Vec<Transition>,
}

impl<T> Recorded<T> {
    /// `value`, with nothing to announce.
    pub fn quiet(value: T) -> Self {
        Recorded {
            value,
            transitions: Vec::new(),
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
            id: hex::encode(&digest[..8]),
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

/// How incidents are opened and where their events go; built once per process from its
/// configuration and passed to whoever records run outcomes.
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
            "trigger_type": run.trigger_type,
            "attempt": run.attempt,
            "scheduled_at": run.scheduled_at,
            "finished_at": run.finished_at,
            "error": run.error,
        })
    });
    let occurred_at = match transition.event {
        IncidentEvent::Opened => incident.opened_at,
        IncidentEvent::Acknowledged => incident.acknowledged_at.unwrap_or(incident.updated_at),
        IncidentEvent::Resolved => incident.resolved_at.unwrap_or(incident.updated_at),
    };
    // Who acted by hand, and their note (null for what the service did by itself).
    let (by, note) = match transition.event {
        IncidentEvent::Opened => (None, None),
        IncidentEvent::Acknowledged => (
            incident.acknowledged_by.as_deref(),
            incident.acknowledged_note.as_deref(),
        ),
        IncidentEvent::Resolved => (incident.resolver.as_deref(), incident.resolved_note.as_deref()),
    };
    let message = message(transition);
    let icon = match transition.event {
        IncidentEvent::Opened => ":rotating_light:",
        IncidentEvent::Acknowledged => ":eyes:",
        IncidentEvent::Resolved => ":white_check_mark:",
    };
    json!({
        "id": event_id,
        "event": transition.event.as_str(),
        "kind": incident.kind,
        "incident_id": incident.id,
        "job": job,
        "run": run,
        "failures": incident.failures,
        "by": by,
        "note": note,
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
    let hand = |verb: &str, who: &Option<String>, note: &Option<String>| {
        let who = who.as_deref().unwrap_or("an admin");
        match note.as_deref() {
            Some(note) => format!("{who} {verb} it: {}", one_line(note, 300)),
            None => format!("{who} {verb} it"),
        }
    };
    let subject = match incident.job_key.as_deref() {
        Some(key) => format!("job {key}"),
        None => "no scheduler is running".to_owned(),
    };
    match (incident.job_key.as_deref(), transition.event) {
        (_, IncidentEvent::Acknowledged) => format!(
            "{subject}: {}",
            hand("acknowledged", &incident.acknowledged_by, &incident.acknowledged_note)
        ),
        (_, IncidentEvent::Resolved) if incident.resolved_by.as_deref() == Some("admin") => {
            format!(
                "{subject}: {}",
                hand("resolved", &incident.resolver, &incident.resolved_note)
            )
        }
        (Some(key), IncidentEvent::Opened) => format!(
            "job {key} is failing: {n} failed or missed run{s} in a row; last: {error}",
            n = incident.failures,
            s = plural(incident.failures)
        ),
        (Some(key), IncidentEvent::Resolved) => {
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
        (None, IncidentEvent::Opened) => format!("no scheduler is running: {error}"),
        (None, IncidentEvent::Resolved) => "a scheduler is running again".to_owned(),
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
