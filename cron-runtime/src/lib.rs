//! cronjobs runtime: a durable cron service on PostgreSQL.
//!
//! - [`domain`]: jobs, runs and schedules (parsed, valid by construction);
//! - [`registry`]: the targets registered with `#[cron_target]`;
//! - [`store`]: SQL, one module per table;
//! - [`api`]: the admin REST API;
//! - [`scheduler`]: timers, execution, recovery and shutdown.

pub mod api;
pub mod config;
pub mod context;
pub mod domain;
pub mod metrics;
pub mod registry;
pub mod scheduler;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use context::JobContext;
pub use cron_macros::cron_target;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
