//! cronjobs runtime: a durable cron service on PostgreSQL.
//!
//! Layers, lowest first (docs/architecture.md): a module imports only from the layers below it.
//!
//! - [`config`]: settings from the environment, every problem reported at once;
//! - [`domain`]: jobs, runs, schedules and incidents (parsed, valid by construction); no I/O;
//! - [`registry`] and [`context`]: the targets registered with `#[cron_target]`, and what a
//!   target gets when it runs;
//! - [`health`], [`metrics`], [`telemetry`], [`shutdown`]: what every process reports about
//!   itself (liveness, Prometheus metrics, logs and Sentry, the signal that stops it);
//! - [`store`]: SQL, one module per table; writers return what they changed, never announce;
//! - [`builtin`]: the targets every build has (`http.request`);
//! - [`alerts`]: announcing incidents (logs, metrics, Sentry) and delivering their webhooks;
//! - [`maintenance`]: the background services both processes run (the watchdog);
//! - [`scheduler`]: timers, execution, fencing, recovery and shutdown;
//! - [`web`]: the HTTP side of `cronjobs api`: the admin REST API and the console over one
//!   shared state, auth and error type;
//! - [`jobfile`]: jobs as code (`cronjobs apply`, `validate`, `export`);
//! - [`testing`]: the target test kit, running a target as the scheduler would;
//! - [`cli`]: the command line, every subcommand as one entry point ([`cli::run`]), for
//!   `cronjobs` and for a team's own binary (library mode).

pub mod alerts;
pub mod builtin;
pub mod cli;
pub mod config;
pub mod context;
pub mod domain;
pub mod failure;
pub mod health;
pub mod jobfile;
pub mod maintenance;
pub mod metrics;
pub mod registry;
pub mod scheduler;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod web;

pub use context::JobContext;
pub use failure::Permanent;

/// What this process was built from, as reported by `/healthz` and the scheduler instance row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The package version.
    pub version: &'static str,
    /// The commit, when the image or platform says (`CRONJOBS_COMMIT`, or Railway's
    /// `RAILWAY_GIT_COMMIT_SHA`).
    pub commit: Option<&'static str>,
}

/// This process's [`BuildInfo`].
pub fn build_info() -> &'static BuildInfo {
    static INFO: std::sync::OnceLock<BuildInfo> = std::sync::OnceLock::new();
    INFO.get_or_init(|| BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: ["CRONJOBS_COMMIT", "RAILWAY_GIT_COMMIT_SHA"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
            .map(|commit| &*Box::leak(commit.trim().to_owned().into_boxed_str())),
    })
}
pub use cron_macros::cron_target;

// `#[cron_target]` names `::cron_runtime`; this lets the built-in targets use it here too.
extern crate self as cron_runtime;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
