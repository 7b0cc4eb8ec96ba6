//! Prometheus metrics: every metric the service exports is named here, once.
//!
//! Code records through the functions below (the `metrics` facade); [`install`] puts a
//! Prometheus recorder behind the facade once per process and returns the handle that
//! renders the text format for `GET /metrics` (the scheduler's `PORT`, and the API). Until
//! [`install`] runs, recording is a no-op, so library code and unit tests need no setup.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::{JobRun, RunStatus, TriggerType};

/// The content type of the Prometheus text format, as `/metrics` serves it.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counter, labels `target`, `status`: runs that reached a terminal status (`succeeded`,
/// `failed`, `skipped`, `missed`, `cancelled`), counted by the process that recorded the
/// transition (a missed slot by the scheduler or watchdog that recorded it).
pub const RUNS_TOTAL: &str = "cronjobs_runs_total";
/// Counter, labels `target`, `attempt` (`2`, `3`, … `10+`), `status`: retries (attempt 2 and
/// later) that reached a terminal status, also counted in [`RUNS_TOTAL`]. How often a job needs
/// its retries, and whether they help.
pub const RETRY_RUNS_TOTAL: &str = "cronjobs_retry_runs_total";
/// Counter, label `target`: runs the stale sweep failed (no heartbeat for `CRON_STALE_AFTER`);
/// they are also counted in [`RUNS_TOTAL`] as `failed`.
pub const RUNS_STALE_TOTAL: &str = "cronjobs_runs_stale_total";
/// Histogram, seconds: `started_at - scheduled_at` of scheduled runs (how late a slot fired).
pub const FIRE_LAG_SECONDS: &str = "cronjobs_fire_lag_seconds";
/// Gauge: definitions with an armed timer in this scheduler.
pub const ACTIVE_DEFINITIONS: &str = "cronjobs_active_definitions";
/// Gauge: runs this scheduler is executing now.
pub const RUNS_IN_FLIGHT: &str = "cronjobs_runs_in_flight";
/// Counter, label `operation`: database calls that failed (each retry counts).
pub const DATABASE_ERRORS_TOTAL: &str = "cronjobs_database_errors_total";
/// Gauge (API): scheduler instances alive in the cluster, read at scrape time.
pub const SCHEDULERS_ALIVE: &str = "cronjobs_schedulers_alive";

/// Counter: run ids the executor refused because it was executing them already (always 0 unless
/// a path hands a run over twice: the refusal is the guard, this counter the alarm).
pub const DUPLICATE_RUNS_REFUSED_TOTAL: &str = "cronjobs_duplicate_runs_refused_total";
/// Gauge, milliseconds: this scheduler's clock minus the database's, at its last heartbeat.
pub const CLOCK_OFFSET_MS: &str = "cronjobs_clock_offset_milliseconds";
/// Gauge: 1 while this scheduler is fenced (it lost the database and stopped its runs).
pub const FENCED: &str = "cronjobs_fenced";

/// Counter, labels `kind`, `event` (`incident.opened`, `incident.resolved`): incident
/// transitions this process recorded.
pub const INCIDENTS_TOTAL: &str = "cronjobs_incidents_total";
/// Counter, label `result` (`delivered`, `retry`, `gave_up`): webhook delivery attempts.
pub const ALERT_DELIVERIES_TOTAL: &str = "cronjobs_alert_deliveries_total";

/// Buckets of [`FIRE_LAG_SECONDS`]: the target is well under a second; minutes mean trouble.
const FIRE_LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (first call) and returns the handle that renders it.
/// Later calls return the same handle, so the API and the scheduler can share a process.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(FIRE_LAG_SECONDS.to_owned()), FIRE_LAG_BUCKETS)
                .expect("the fire-lag bucket list is a non-empty constant");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder already installed (only possible in tests): ours stays detached
            // and renders nothing, which is visible at /metrics rather than fatal.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            let upkeep = handle.clone();
            // Without scrapes, histogram samples would pile up until the next render.
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(RUNS_TOTAL, "Runs that reached a terminal status, by target and status.");
    describe_counter!(
        RETRY_RUNS_TOTAL,
        "Retries (attempt 2 and later) that reached a terminal status, by target, attempt and status."
    );
    describe_counter!(
        RUNS_STALE_TOTAL,
        "Runs failed by the stale sweep (their scheduler stopped heartbeating)."
    );
    describe_histogram!(
        FIRE_LAG_SECONDS,
        Unit::Seconds,
        "How late scheduled runs started: started_at - scheduled_at."
    );
    describe_gauge!(ACTIVE_DEFINITIONS, "Definitions with an armed timer in this scheduler.");
    describe_gauge!(RUNS_IN_FLIGHT, "Runs this scheduler is executing now.");
    describe_counter!(DATABASE_ERRORS_TOTAL, "Database calls that failed, by operation.");
    describe_gauge!(SCHEDULERS_ALIVE, "Scheduler instances alive in the cluster (API only).");
    describe_counter!(
        DUPLICATE_RUNS_REFUSED_TOTAL,
        "Run ids refused because this scheduler was executing them already (should stay 0)."
    );
    describe_gauge!(
        CLOCK_OFFSET_MS,
        "This scheduler's clock minus the database's, in milliseconds, at its last heartbeat."
    );
    describe_gauge!(
        FENCED,
        "1 while this scheduler is fenced: cut off from the database, runs stopped."
    );
    describe_counter!(INCIDENTS_TOTAL, "Incidents opened and resolved, by kind and event.");
    describe_counter!(
        ALERT_DELIVERIES_TOTAL,
        "Webhook delivery attempts, by result (delivered, retry, gave_up)."
    );
}

/// An incident was opened or resolved.
pub fn incident(incident: &crate::domain::incident::Incident, event: crate::domain::incident::IncidentEvent) {
    counter!(INCIDENTS_TOTAL, "kind" => incident.kind.clone(), "event" => event.as_str()).increment(1);
}

/// A webhook delivery attempt ended with `result`.
pub fn alert_delivery(result: &'static str) {
    counter!(ALERT_DELIVERIES_TOTAL, "result" => result).increment(1);
}

/// A run reached a terminal status (succeeded, failed or skipped).
pub fn run_finished(run: &JobRun) {
    counter!(RUNS_TOTAL, "target" => run.target.clone(), "status" => run.status.to_string()).increment(1);
    if run.attempt > 1 {
        let attempt = match run.attempt {
            n @ 2..=9 => n.to_string(),
            _ => "10+".to_owned(),
        };
        counter!(RETRY_RUNS_TOTAL, "target" => run.target.clone(), "attempt" => attempt, "status" => run.status.to_string())
            .increment(1);
    }
}

/// The stale sweep failed `run`.
pub fn run_stale(run: &JobRun) {
    counter!(RUNS_STALE_TOTAL, "target" => run.target.clone()).increment(1);
}

/// A run started: records the fire lag of scheduled runs.
pub fn run_started(run: &JobRun) {
    if run.trigger_type != TriggerType::Scheduled || run.status != RunStatus::Running {
        return;
    }
    if let Some(started_at) = run.started_at {
        let lag = (started_at - run.scheduled_at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        histogram!(FIRE_LAG_SECONDS).record(lag.max(0.0));
    }
}

/// The number of armed timers changed.
pub fn active_definitions(armed: usize) {
    gauge!(ACTIVE_DEFINITIONS).set(armed as f64);
}

/// One more (`+1`) or one fewer (`-1`) run executing.
pub fn runs_in_flight(delta: f64) {
    gauge!(RUNS_IN_FLIGHT).increment(delta);
}

/// The executor refused a run id it was executing already.
pub fn duplicate_refused() {
    counter!(DUPLICATE_RUNS_REFUSED_TOTAL).increment(1);
}

/// This scheduler's clock offset from the database's, as last measured.
pub fn clock_offset(offset_ms: i64) {
    gauge!(CLOCK_OFFSET_MS).set(offset_ms as f64);
}

/// This scheduler fenced itself (`true`) or came back (`false`).
pub fn fenced(fenced: bool) {
    gauge!(FENCED).set(f64::from(u8::from(fenced)));
}

/// Sets the number of live scheduler instances.
pub fn schedulers_alive(alive: i64) {
    gauge!(SCHEDULERS_ALIVE).set(alive as f64);
}

/// A database call failed; `operation` names it as the log line does.
pub fn database_error(operation: &'static str) {
    counter!(DATABASE_ERRORS_TOTAL, "operation" => operation).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_twice_shares_one_recorder_and_renders_the_names() {
        let handle = install();
        let again = install();
        metrics::counter!(RUNS_TOTAL, "target" => "t", "status" => "succeeded").increment(2);
        histogram!(FIRE_LAG_SECONDS).record(0.02);
        database_error("test");
        let text = again.render();
        assert!(
            text.contains(r#"cronjobs_runs_total{target="t",status="succeeded"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cronjobs_fire_lag_seconds_bucket{le="0.025"} 1"#),
            "{text}"
        );
        assert!(text.contains("# TYPE cronjobs_fire_lag_seconds histogram"), "{text}");
        assert!(handle
            .render()
            .contains(r#"cronjobs_database_errors_total{operation="test"}"#));
    }
}
