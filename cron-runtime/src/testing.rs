//! Test a target the way the scheduler runs it, in a normal `#[tokio::test]` or
//! `#[sqlx::test]`: by key, with a JSON payload validated exactly as the API validates it, a
//! real database pool, and the scheduler's timeout, cancel and panic rules.
//!
//! ```ignore
//! use cron_runtime::testing::Invocation;
//! use cron_runtime::store::runs::RunOutcome;
//!
//! #[sqlx::test]
//! async fn the_digest_counts_yesterdays_orders(db: sqlx::PgPool) {
//!     let outcome = Invocation::of("reports.digest")
//!         .payload(serde_json::json!({"recipients": ["ops@example.com"]}))
//!         .run(&db)
//!         .await
//!         .unwrap();
//!     assert!(matches!(outcome, RunOutcome::Succeeded { .. }));
//! }
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::JobContext;
use crate::domain::target::PayloadError;
use crate::domain::{RunReason, TriggerType};
use crate::registry;
use crate::scheduler::{supervise, Stop};
pub use crate::store::runs::RunOutcome;

/// One run of a target, set up like the scheduler would; [`Invocation::run`] executes it.
#[derive(Debug, Clone)]
pub struct Invocation {
    target: String,
    payload: Value,
    job_key: String,
    job_version: i32,
    trigger: TriggerType,
    attempt: i32,
    scheduled_at: DateTime<Utc>,
    timeout: Option<Duration>,
    cancel_after: Option<Duration>,
}

/// Why an invocation did not run: what the API would have answered 400 to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    /// The key names no usable target (a diagnostic one needs
    /// `registry::enable_diagnostic_targets()` first), or the crate defining it is not linked.
    #[error("no target is registered under {0:?}: is the crate that defines it linked (`use my_targets as _;`)?")]
    UnknownTarget(String),
    /// The payload does not fit the target.
    #[error("the payload of {target:?} is invalid: {error}")]
    InvalidPayload { target: String, error: PayloadError },
}

impl Invocation {
    /// A scheduled run of `target` now, with an empty payload, under the target's timeout.
    pub fn of(target: &str) -> Self {
        Invocation {
            target: target.to_owned(),
            payload: Value::Object(Default::default()),
            job_key: format!("test.{target}"),
            job_version: 1,
            trigger: TriggerType::Scheduled,
            attempt: 1,
            scheduled_at: Utc::now(),
            timeout: None,
            cancel_after: None,
        }
    }

    /// The job's payload (validated when the invocation runs).
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }

    /// The job key the target sees (default `test.<target>`).
    pub fn job_key(mut self, key: &str) -> Self {
        self.job_key = key.to_owned();
        self
    }

    /// What started the run (default: the schedule).
    pub fn trigger(mut self, trigger: TriggerType) -> Self {
        self.trigger = trigger;
        self
    }

    /// Which attempt of its slot the run is (default 1; a retry is 2 or later, with
    /// [`TriggerType::Retry`]).
    pub fn attempt(mut self, attempt: i32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The slot the run belongs to (default: now).
    pub fn scheduled_at(mut self, slot: DateTime<Utc>) -> Self {
        self.scheduled_at = slot;
        self
    }

    /// A timeout instead of the target's own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Cancels the run after `delay`, as an admin's cancel would: `ctx.cancelled()` fires and
    /// the handler gets a grace period to return.
    pub fn cancel_after(mut self, delay: Duration) -> Self {
        self.cancel_after = Some(delay);
        self
    }

    /// Validates the payload like the API, runs the target like the scheduler (its own task,
    /// timeout, cancel, panics caught) with `db` as `ctx.db()`, and returns the outcome the
    /// scheduler would record. A run cancelled by [`Invocation::cancel_after`] is
    /// `Failed { reason: Cancelled }` unless the handler returned successfully in its grace;
    /// an error marked [`crate::Permanent`] is `FailedPermanently` (no retry would follow).
    pub async fn run(self, db: &PgPool) -> Result<RunOutcome, InvocationError> {
        let target = registry::get(&self.target).ok_or_else(|| InvocationError::UnknownTarget(self.target.clone()))?;
        registry::validate_payload(target.key, &self.payload).map_err(|error| InvocationError::InvalidPayload {
            target: self.target.clone(),
            error,
        })?;
        let cancel = CancellationToken::new();
        let run_id = Uuid::now_v7();
        let ctx = JobContext::new(
            run_id,
            self.job_key.clone(),
            self.job_version,
            self.trigger,
            self.scheduled_at,
            db.clone(),
            cancel.clone(),
        )
        .with_attempt(self.attempt);
        let cancel_after = self.cancel_after;
        let stopped = async move {
            match cancel_after {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
            Stop {
                reason: RunReason::Cancelled,
                error: "cancelled by an admin".to_owned(),
                grace: CANCEL_GRACE,
            }
        };
        let timeout = self.timeout.unwrap_or(target.timeout);
        let handler = (target.run)(ctx, self.payload);
        Ok(supervise(handler, (&self.job_key, run_id), cancel, timeout, stopped).await)
    }
}

/// The grace a cancelled handler gets here: the scheduler's default (`CRON_SHUTDOWN_GRACE`).
const CANCEL_GRACE: Duration = crate::config::DEFAULT_SHUTDOWN_GRACE;
