//! Logging and error reporting.
//!
//! Logs: human-readable in development, JSON elsewhere; `RUST_LOG` filters. Run
//! transitions are one line each with `job_key`, `version`, `run_id`, `target`, `slot`,
//! `status`, `duration_ms` and `error` ([`log_started`], [`log_finished`]).
//!
//! Sentry, when `SENTRY_DSN` is set: events carry `environment` = `APP_ENV`, release
//! `cronjobs@<version>` and tag `service` (`api`, `scheduler`). Error-level log lines become
//! events and warn-level ones breadcrumbs; panics are reported by the panic integration;
//! a failed run is not an event of its own: the incident it opens is, once
//! (the alerts' Sentry reports).
//!
//! Secrets: configuration values that are secrets are [`crate::config::Secret`]s and never
//! logged; `send_default_pii` stays off, so Sentry attaches no request headers or user data.

use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{CommonConfig, LogFormat};
use crate::domain::{JobRun, RunReason};
use crate::metrics;

/// The release reported to Sentry.
pub const RELEASE: &str = concat!("cronjobs@", env!("CARGO_PKG_VERSION"));

/// How long the process waits at exit for queued Sentry events to be sent.
const SENTRY_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps Sentry running; dropping it (at exit) flushes queued events. Hold it for the whole
/// process.
#[must_use = "dropping the guard shuts Sentry down"]
pub struct TelemetryGuard {
    sentry: Option<sentry::ClientInitGuard>,
}

impl TelemetryGuard {
    /// `true` when Sentry is on.
    pub fn sentry_enabled(&self) -> bool {
        self.sentry.as_ref().is_some_and(|g| g.is_enabled())
    }

    /// Sends queued Sentry events, waiting up to two seconds.
    pub fn flush(&self) {
        if let Some(guard) = &self.sentry {
            guard.flush(Some(SENTRY_FLUSH_TIMEOUT));
        }
    }
}

/// Installs the global subscriber and, when `SENTRY_DSN` is set, Sentry. `service`
/// (`api`, `scheduler`, ...) names the process.
pub fn init(config: &CommonConfig, service: &'static str) -> TelemetryGuard {
    let sentry = config
        .sentry_dsn
        .as_ref()
        .map(|dsn| init_sentry(dsn.expose(), config, service));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Per-layer filters: the global `RUST_LOG` filter applies first, then these pick levels.
    let sentry_layers = sentry.as_ref().map(|_| {
        sentry_tracing::ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(sentry_tracing::BreadcrumbLayer::new().with_filter(LevelFilter::WARN))
    });
    let registry = tracing_subscriber::registry().with(filter).with(sentry_layers);
    let result = match config.log_format {
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
    };
    if result.is_ok() {
        tracing::debug!(
            service,
            app_env = config.app_env.as_str(),
            sentry = sentry.is_some(),
            "logging initialised"
        );
    }
    TelemetryGuard { sentry }
}

fn init_sentry(dsn: &str, config: &CommonConfig, service: &'static str) -> sentry::ClientInitGuard {
    // Field by field: `ClientOptions` is non-exhaustive.
    let mut options = sentry::ClientOptions::new();
    // Validated by `CommonConfig::from_env`; an unparsable DSN would only disable Sentry.
    options.dsn = dsn.parse().ok();
    options.release = Some(RELEASE.into());
    options.environment = Some(config.app_env.as_str().into());
    options.send_default_pii = false;
    options.shutdown_timeout = SENTRY_FLUSH_TIMEOUT;
    // On every event rather than on the scope: events from any thread or hub get it.
    options.before_send = Some(Arc::new(move |mut event: sentry::protocol::Event<'static>| {
        event.tags.insert("service".into(), service.into());
        Some(event)
    }));
    sentry::init(options)
}

/// A hub for one run's execution: events it captures (a panic in the target, error logs)
/// carry the run's tags. Bind the target's future to it with `SentryFutureExt::bind_hub`.
pub fn run_hub(run: &JobRun) -> Arc<sentry::Hub> {
    let hub = Arc::new(sentry::Hub::new_from_top(sentry::Hub::current()));
    hub.configure_scope(|scope| set_run_tags(scope, run));
    hub
}

fn set_run_tags(scope: &mut sentry::Scope, run: &JobRun) {
    scope.set_tag("job_key", &run.job_key);
    scope.set_tag("version", run.job_version);
    scope.set_tag("run_id", run.id);
    scope.set_tag("target", &run.target);
    scope.set_tag("trigger", run.trigger_type);
    scope.set_tag("attempt", run.attempt);
}

/// One structured line per transition: pending → running.
pub fn log_started(run: &JobRun) {
    tracing::info!(
        job_key = %run.job_key, version = run.job_version, run_id = %run.id, target = %run.target,
        slot = %run.scheduled_at.to_rfc3339(), trigger = %run.trigger_type, attempt = run.attempt, status = "running",
        "run started"
    );
    metrics::run_started(run);
}

/// One structured line per transition to a terminal status: running → succeeded / failed,
/// (new) → skipped / missed, pending → missed. Also counts the run. A failure is not reported
/// to Sentry run by run: the incident it opens is, once (the alerts' Sentry reports), and a
/// panic by the panic integration.
pub fn log_finished(run: &JobRun) {
    use crate::domain::RunStatus;
    metrics::run_finished(run);
    let (job_key, version, run_id, slot) = (&run.job_key, run.job_version, run.id, run.scheduled_at.to_rfc3339());
    let (duration_ms, reason) = (run.duration_ms.unwrap_or(0), run.reason.map(RunReason::as_str));
    let error = run.error.as_deref().unwrap_or_default();
    match run.status {
        RunStatus::Skipped => tracing::info!(
            %job_key, version, %run_id, target = %run.target, %slot, status = %run.status, reason, error, "run skipped"
        ),
        RunStatus::Missed => tracing::warn!(
            %job_key, version, %run_id, target = %run.target, %slot, status = %run.status, reason, error, "slot missed"
        ),
        RunStatus::Succeeded => tracing::info!(
            %job_key, version, %run_id, target = %run.target, %slot, status = %run.status, duration_ms, "run finished"
        ),
        _ => tracing::warn!(
            %job_key, version, %run_id, target = %run.target, %slot, status = %run.status, reason, duration_ms, error,
            "run finished"
        ),
    }
}
