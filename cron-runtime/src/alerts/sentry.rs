//! Sentry reports of incidents: one error event per opened incident, grouped per job key, in
//! place of one event per failed run (a job failing every second no longer floods Sentry).
//! A no-op when Sentry is off.

use crate::domain::incident::Incident;

/// Reports an opened incident as one error event.
pub fn report_opened(incident: &Incident) {
    let key = incident.job_key.as_deref().unwrap_or("(cluster)");
    let error = incident.last_error.as_deref().unwrap_or("(no error recorded)");
    let message = match incident.kind.as_str() {
        "no_scheduler" => format!("incident opened: no scheduler is running: {error}"),
        _ => format!(
            "incident opened: job {key} is failing ({} failed or missed runs in a row): {error}",
            incident.failures
        ),
    };
    ::sentry::with_scope(
        |scope| {
            scope.set_tag("incident_id", incident.id);
            scope.set_tag("incident_kind", &incident.kind);
            if let Some(key) = &incident.job_key {
                scope.set_tag("job_key", key);
            }
            if let Some(version) = incident.job_version {
                scope.set_tag("version", version);
            }
            if let Some(target) = &incident.target {
                scope.set_tag("target", target);
            }
            if let Some(run) = incident.last_run_id {
                scope.set_tag("run_id", run);
            }
            scope.set_fingerprint(Some(["cronjobs.incident", key].as_slice()));
        },
        || ::sentry::capture_message(&message, ::sentry::Level::Error),
    );
}

/// Sentry Crons: one monitor per job key (the slug), `in_progress` when a run starts and
/// `ok`/`error` when it ends, each carrying the monitor's config so Sentry creates and updates
/// the monitor itself and alerts when a check-in is late.
pub mod crons {
    use std::sync::OnceLock;
    use std::time::Duration;

    use ::sentry::protocol::{EnvelopeItem, MonitorCheckIn, MonitorCheckInStatus, MonitorConfig, MonitorSchedule};

    use crate::domain::{JobRun, RunStatus};

    static MARGIN: OnceLock<Duration> = OnceLock::new();

    /// Sets the check-in margin (`CRON_MISSED_AFTER`): a slot not started by then is missed.
    pub fn configure(missed_after: Duration) {
        let _ = MARGIN.set(missed_after);
    }

    /// The crontab Sentry takes for `expression` (5 fields, minute resolution), or `None`.
    ///
    /// A 6-field expression drops its seconds: Sentry's smallest unit is a minute, and a run at
    /// second 30 is well within the margin of the minute's check-in. Macros are expanded.
    /// Expressions Sentry's crontab parser refuses (`L`, `#`, `W`, names) get no monitor config:
    /// their check-ins still arrive, and the monitor's schedule is set in Sentry by hand.
    pub fn crontab(expression: &str) -> Option<String> {
        let expanded = match expression.trim().to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 1 * *".to_owned(),
            "@weekly" => "0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 * * *".to_owned(),
            "@hourly" => "0 * * * *".to_owned(),
            _ => {
                let fields: Vec<&str> = expression.split_whitespace().collect();
                match fields.len() {
                    5 => fields.join(" "),
                    6 => fields[1..].join(" "),
                    _ => return None,
                }
            }
        };
        MonitorSchedule::from_crontab(&expanded).ok().map(|_| expanded)
    }

    /// The monitor config of `run`'s job: schedule, timezone, margin and max runtime (the
    /// run's timeout: the job's own or its target's; minutes, rounded up).
    pub fn monitor_config(
        cron_expression: Option<&str>,
        timezone: &str,
        timeout: Option<Duration>,
    ) -> Option<MonitorConfig> {
        let value = crontab(cron_expression?)?;
        let minutes = |d: Duration| d.as_secs().div_ceil(60).max(1);
        Some(MonitorConfig {
            schedule: MonitorSchedule::Crontab { value },
            checkin_margin: Some(minutes(
                MARGIN.get().copied().unwrap_or(crate::config::DEFAULT_MISSED_AFTER),
            )),
            max_runtime: timeout.map(minutes),
            timezone: Some(timezone.to_owned()),
            failure_issue_threshold: None,
            recovery_threshold: None,
        })
    }

    fn send(check_in: MonitorCheckIn) {
        let Some(client) = ::sentry::Hub::current().client().filter(|c| c.is_enabled()) else {
            return;
        };
        let mut envelope = ::sentry::protocol::Envelope::new();
        envelope.add_item(EnvelopeItem::MonitorCheckIn(check_in));
        client.send_envelope(envelope);
    }

    fn enabled() -> bool {
        ::sentry::Hub::current().client().is_some_and(|c| c.is_enabled())
    }

    fn environment() -> Option<String> {
        ::sentry::Hub::current()
            .client()
            .and_then(|c| c.options().environment.as_ref().map(|e| e.to_string()))
    }

    /// `in_progress` for a run that started (the run id is the check-in id). Runs of one-time
    /// jobs have no schedule to monitor and send none.
    pub fn started(run: &JobRun, cron_expression: Option<&str>, timezone: &str, timeout: Option<Duration>) {
        if cron_expression.is_none() || !enabled() {
            return;
        }
        send(MonitorCheckIn {
            check_in_id: run.id,
            monitor_slug: run.job_key.clone(),
            status: MonitorCheckInStatus::InProgress,
            environment: environment(),
            duration: None,
            monitor_config: monitor_config(cron_expression, timezone, timeout),
        });
    }

    /// `ok` or `error` with the duration, for a run that ended.
    pub fn finished(run: &JobRun, cron_expression: Option<&str>, timezone: &str, timeout: Option<Duration>) {
        if cron_expression.is_none() || !enabled() {
            return;
        }
        let status = match run.status {
            RunStatus::Succeeded => MonitorCheckInStatus::Ok,
            _ => MonitorCheckInStatus::Error,
        };
        send(MonitorCheckIn {
            check_in_id: run.id,
            monitor_slug: run.job_key.clone(),
            status,
            environment: environment(),
            duration: run.duration_ms.map(|ms| ms as f64 / 1000.0),
            monitor_config: monitor_config(cron_expression, timezone, timeout),
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sentry_gets_five_fields() {
            assert_eq!(crontab("*/5 * * * *").as_deref(), Some("*/5 * * * *"));
            assert_eq!(crontab("30 */5 * * * *").as_deref(), Some("*/5 * * * *"));
            assert_eq!(crontab("* * * * * *").as_deref(), Some("* * * * *"));
            assert_eq!(crontab("@daily").as_deref(), Some("0 0 * * *"));
        }
    }
}
