//! Job runs.
//!
//! Run status state machine, each transition with its one owner:
//!
//! | from    | to        | owner                                                        |
//! |---------|-----------|--------------------------------------------------------------|
//! | (new)   | running   | the scheduler whose insert made the slot's row (slot guard)  |
//! | (new)   | pending   | API run-now                                                  |
//! | (new)   | skipped   | either, when an active run of the key exists (overlap `skip`) |
//! | pending | running   | the scheduler that claims it (`FOR UPDATE SKIP LOCKED`)      |
//! | running | succeeded | the executing scheduler                                      |
//! | running | failed    | the executing scheduler (error, panic, timeout, shutdown)    |
//! | running | failed    | the stale sweep, after `CRON_STALE_AFTER` without a heartbeat |
//!
//! `pending` and `running` are *active*: at most one active run per `job_key`.
//! `succeeded`, `failed` and `skipped` are terminal.

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
        }
    }

    /// `true` for `succeeded`, `failed` and `skipped`.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Skipped)
    }
}

/// What caused a run: its schedule, or an admin's run-now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TriggerType {
    Scheduled,
    Manual,
}

impl TriggerType {
    /// The trigger type as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Scheduled => "scheduled",
            TriggerType::Manual => "manual",
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
    /// What the target returned (JSON), on success.
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
    pub triggered_by: Option<String>,
    pub scheduler_instance: Option<String>,
    pub created_at: DateTime<Utc>,
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
