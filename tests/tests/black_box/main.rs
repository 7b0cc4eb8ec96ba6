//! The black-box suite: the real `cronjobs` binary, a real PostgreSQL, real HTTP.
//!
//! One test binary with a module per area, not a binary per file: every binary links the whole
//! dependency tree, so thirteen of them cost thirteen links and gigabytes of disk for nothing.
//! `cargo nextest` still runs each test in its own process.

mod alerts;
mod api_auth;
mod api_cursors;
mod api_errors;
mod api_jobs;
mod api_openapi;
mod api_runs;
mod api_schedulers;
mod api_service;
mod chaos;
mod cli;
mod connection_budget;
mod console;
mod dev;
mod diagnostic_targets;
mod exactly_once;
mod http_target;
mod job_timeout;
mod jobs_file;
mod library_mode;
mod lifecycle;
mod metrics;
mod readme;
mod retention;
mod retries;
mod scheduler_changes;
mod scheduler_draining;
mod scheduler_faults;
mod scheduler_timing;
mod sentry;
mod slot_accounting;
mod telemetry;
mod torture;
