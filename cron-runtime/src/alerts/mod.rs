//! Alerts (SPEC §12): telling people about incidents. The store opens and resolves incidents in
//! the transaction of the run outcome that causes them, under the policy its caller passes
//! ([`crate::domain::incident::Policy`]),
//! and returns them ([`Recorded`]); the caller announces them once it committed. Here:
//! - [`announce`] / [`Recorded::announce`]: logs, metrics and a Sentry event per opened incident;
//! - [`webhooks`]: delivers the outbox to `CRON_ALERT_WEBHOOK_URLS`, from every `api` and
//!   `scheduler` process, one attempt per event at a time across the cluster;
//! - [`sentry`]: one Sentry error event per opened incident (instead of one per failed run).
//!
//! See docs/alerts.md for the payload, headers, signature and retry policy.

pub mod sentry;
pub mod webhooks;

use crate::domain::incident::{IncidentEvent, Recorded, Transition};

impl<T> Recorded<T> {
    /// Announces what was recorded (call once its transaction committed) and gives back the
    /// value.
    pub fn announce(self) -> T {
        announce(&self.transitions);
        self.value
    }
}

/// Logs what committed transitions did and reports opened incidents to Sentry. Call after the
/// transaction that wrote them committed.
pub fn announce(transitions: &[Transition]) {
    for t in transitions {
        let incident = &t.incident;
        let job_key = incident.job_key.as_deref().unwrap_or("-");
        match t.event {
            IncidentEvent::Opened => {
                tracing::warn!(
                    incident_id = %incident.id, kind = %incident.kind, %job_key, failures = incident.failures,
                    error = incident.last_error.as_deref().unwrap_or_default(), "incident opened"
                );
                sentry::report_opened(incident);
            }
            IncidentEvent::Acknowledged => tracing::info!(
                incident_id = %incident.id, kind = %incident.kind, %job_key,
                by = incident.acknowledged_by.as_deref().unwrap_or_default(), "incident acknowledged"
            ),
            IncidentEvent::Resolved => tracing::info!(
                incident_id = %incident.id, kind = %incident.kind, %job_key, failures = incident.failures,
                resolved_by = incident.resolved_by.as_deref().unwrap_or_default(),
                by = incident.resolver.as_deref().unwrap_or_default(), "incident resolved"
            ),
        }
        crate::metrics::incident(incident, t.event);
    }
}
