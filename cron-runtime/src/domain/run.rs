//! Job runs.
//!
//! Run status state machine, each transition with its one owner:
//!
//! | from    | to        | owner (reason)                                                 |
//! |---------|-----------|----------------------------------------------------------------|
//! | (new)   | running   | the scheduler whose insert made the slot's row (slot guard)    |
//! | (new)   | pending   | API run-now                                                    |
//! | (new)   | skipped   | either, when an active run of the key exists (`overlap`)       |
//! | (new)   | missed    | the scheduler, for a slot it could not start by T + `CRON_MISSED_AFTER` (`overloaded`, `database_unreachable`) |
//! | (new)   | missed    | the watchdog, for a slot nobody recorded (`no_scheduler`, `target_unavailable`, `not_started`) |
//! | (new)   | pending   | the store, in the transaction that fails a run its policy retries (`retry`) |
//! | pending | running   | the scheduler that claims it (`FOR UPDATE SKIP LOCKED`), a retry not before its `not_before` |
//! | pending | missed    | the watchdog, when no live scheduler has the target (`no_scheduler`, `target_unavailable`) |
//! | running | succeeded | the executing scheduler                                        |
//! | running | failed    | the executing scheduler (`error`, `panic`, `timeout`, `shutdown`) |
//! | running | failed    | the sweep: no heartbeat for `CRON_STALE_AFTER` (`stale`), or its scheduler instance is no longer alive (`scheduler_lost`) |
//! | pending | cancelled | API cancel (`cancelled`)                                       |
//! | running | cancelled | the executing scheduler, when the handler returns after an API cancel (`cancelled`) |
//!
//! `pending` and `running` are *active*: at most one active run per `job_key`.
//! `succeeded`, `failed`, `skipped`, `missed` and `cancelled` are terminal; every terminal run
//! but a `succeeded` one has a [`RunReason`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Status of a run (see the module docs for the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Missed,
    Cancelled,
}

impl RunStatus {
    /// The status as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Missed => "missed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// `true` for every status but `pending` and `running`.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

/// Why a run ended as it did: a stable code on every terminal run but a `succeeded` one
/// (the human message is in `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunReason {
    /// Skipped: another run of the job was active.
    Overlap,
    /// Failed: the target returned an error.
    Error,
    /// Failed: the target panicked.
    Panic,
    /// Failed: the target ran past its timeout.
    Timeout,
    /// Failed: no heartbeat for `CRON_STALE_AFTER`.
    Stale,
    /// Failed: interrupted when the scheduler's shutdown grace ran out.
    Shutdown,
    /// Failed: the scheduler instance running it stopped heartbeating.
    SchedulerLost,
    /// Failed: its scheduler lost the database for too long and stopped the run itself, before
    /// any peer could count it lost and start the job elsewhere.
    Fenced,
    /// Cancelled by an admin.
    Cancelled,
    /// Missed: no scheduler instance was alive.
    NoScheduler,
    /// Missed: no live scheduler has the target in its build.
    TargetUnavailable,
    /// Missed: the scheduler could not reach the database in time.
    DatabaseUnreachable,
    /// Missed: the scheduler had no room to start it in time.
    Overloaded,
    /// Missed: a live scheduler with the target did not start it in time.
    NotStarted,
}

impl RunReason {
    /// The reason as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            RunReason::Overlap => "overlap",
            RunReason::Error => "error",
            RunReason::Panic => "panic",
            RunReason::Timeout => "timeout",
            RunReason::Stale => "stale",
            RunReason::Shutdown => "shutdown",
            RunReason::SchedulerLost => "scheduler_lost",
            RunReason::Fenced => "fenced",
            RunReason::Cancelled => "cancelled",
            RunReason::NoScheduler => "no_scheduler",
            RunReason::TargetUnavailable => "target_unavailable",
            RunReason::DatabaseUnreachable => "database_unreachable",
            RunReason::Overloaded => "overloaded",
            RunReason::NotStarted => "not_started",
        }
    }

    /// The message stored in `error` for a missed slot.
    pub fn missed_message(self) -> &'static str {
        match self {
            RunReason::NoScheduler => "missed: no scheduler instance was alive",
            RunReason::TargetUnavailable => "missed: no live scheduler has this target in its build",
            RunReason::DatabaseUnreachable => "missed: the scheduler could not reach the database in time",
            RunReason::Overloaded => {
                "missed: the scheduler had no room to start it in time (CRON_MAX_IN_FLIGHT runs in flight)"
            }
            _ => "missed: not started in time",
        }
    }
}

impl std::fmt::Display for RunReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What caused a run: its schedule, an admin's run-now, or a retry of a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TriggerType {
    Scheduled,
    Manual,
    /// A later attempt of a failed run (SPEC 17).
    Retry,
}

impl TriggerType {
    /// The trigger type as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Scheduled => "scheduled",
            TriggerType::Manual => "manual",
            TriggerType::Retry => "retry",
        }
    }
}

/// A row of `cron_job_runs`; also the API's view of a run (every column but the internal
/// `heartbeat_at`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Run)]
pub struct JobRun {
    pub id: Uuid,
    pub job_definition_id: Uuid,
    pub job_key: String,
    pub job_version: i32,
    pub target: String,
    pub trigger_type: TriggerType,
    pub scheduled_at: DateTime<Utc>,
    pub status: RunStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    #[serde(skip)]
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Why the run ended as it did (every terminal status but `succeeded`).
    pub reason: Option<RunReason>,
    /// What the target returned (JSON), on success.
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
    pub triggered_by: Option<String>,
    /// A run-now's own payload; null when the job's payload was used.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    /// When an admin asked to cancel the run while it was running.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Who cancelled the run.
    pub cancelled_by: Option<String>,
    pub scheduler_instance: Option<String>,
    pub created_at: DateTime<Utc>,
    /// 1 for a slot's first run, 2 for its first retry, and so on.
    pub attempt: i32,
    /// The failed run this retry follows.
    pub retry_of: Option<Uuid>,
    /// On a failed run: when its retry is due; null when no retry follows.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// A pending retry is not started before this.
    pub not_before: Option<DateTime<Utc>>,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for TriggerType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
