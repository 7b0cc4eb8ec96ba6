//! Job definitions.
//!
//! A definition is immutable except for its status. Its state machine:
//!
//! | from     | to       | owner                                         |
//! |----------|----------|-----------------------------------------------|
//! | (new)    | active   | API create / new-version                      |
//! | active   | paused   | API pause (a reason is required)              |
//! | paused   | active   | API resume (`active_since` restarts)          |
//! | active   | retired  | API new-version or retire, `cronjobs apply`; the scheduler after a one-time run |
//! | paused   | retired  | API new-version or retire, `cronjobs apply`   |
//!
//! `retired` is final. At most one definition per `job_key` is not retired. A definition
//! `managed_by` a jobs file is versioned and retired only by `cronjobs apply`; the API may
//! pause, resume and run it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Lifecycle status of a definition (see the module docs for the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Active,
    Paused,
    Retired,
}

/// Who owns a definition's versions: the REST API, or a jobs file through `cronjobs apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ManagedBy {
    Api,
    File,
}

/// Whether a definition fires on a cron expression or once at `run_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ScheduleType {
    Recurring,
    OneTime,
}

impl JobStatus {
    /// The status as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Active => "active",
            JobStatus::Paused => "paused",
            JobStatus::Retired => "retired",
        }
    }
}

impl ScheduleType {
    /// The schedule type as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleType::Recurring => "recurring",
            ScheduleType::OneTime => "one_time",
        }
    }
}

/// A job key: `^[a-z0-9][a-z0-9._-]{0,99}$`. Stable across versions of a job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobKey(String);

/// Why a string is not a valid job key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobKeyError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 100 characters (got {0})")]
    TooLong(usize),
    #[error("must start with a lowercase letter or digit and contain only a-z, 0-9, '.', '_' and '-' (found {0:?})")]
    BadCharacter(char),
}

impl JobKey {
    /// Maximum length of a key, in characters.
    pub const MAX_LEN: usize = 100;

    /// Parses a job key, explaining what is wrong with a bad one.
    pub fn parse(raw: &str) -> Result<Self, JobKeyError> {
        let first = raw.chars().next().ok_or(JobKeyError::Empty)?;
        if raw.len() > Self::MAX_LEN {
            return Err(JobKeyError::TooLong(raw.chars().count()));
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(JobKeyError::BadCharacter(first));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
        {
            return Err(JobKeyError::BadCharacter(bad));
        }
        Ok(JobKey(raw.to_owned()))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A row of `cron_job_definitions`; the API shows it with its next fire time (`api::jobs::Job`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobDefinition {
    pub id: Uuid,
    pub job_key: String,
    pub version: i32,
    pub target: String,
    pub schedule_type: ScheduleType,
    pub cron_expression: Option<String>,
    pub timezone: String,
    pub run_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub description: Option<String>,
    pub status: JobStatus,
    pub pause_reason: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
    /// Who last resumed it, and when (`None` if it was never paused and resumed).
    pub resumed_by: Option<String>,
    pub resumed_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    /// When the definition last became active (create, new version, resume): its slots
    /// are the fire times after this (SPEC §11).
    pub active_since: DateTime<Utc>,
    /// Who retired it: an admin, `cronjobs apply`, or `scheduler` (a one-time job after its run).
    pub retired_by: Option<String>,
    pub managed_by: ManagedBy,
    /// The jobs file that owns it (its `source`, or its path); `None` for jobs of the API.
    pub source: Option<String>,
    /// The job's own timeout (e.g. `"15m"`), overriding its target's; null: the target's.
    #[serde(rename = "timeout", serialize_with = "timeout_text")]
    #[schema(value_type = Option<String>)]
    pub timeout_ms: Option<i64>,
    /// How a failed run is retried (`max_attempts: 1`: it is not).
    #[sqlx(flatten)]
    #[schema(value_type = super::RetryDraft)]
    pub retry: super::RetryPolicy,
}

impl JobDefinition {
    /// The job's own timeout, if it sets one (its target's applies otherwise).
    pub fn timeout(&self) -> Option<std::time::Duration> {
        millis_to_duration(self.timeout_ms)
    }
}

/// A stored `timeout_ms` as a duration (the database checks its range).
pub fn millis_to_duration(millis: Option<i64>) -> Option<std::time::Duration> {
    millis
        .and_then(|ms| u64::try_from(ms).ok())
        .map(std::time::Duration::from_millis)
}

fn timeout_text<S: serde::Serializer>(millis: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match millis_to_duration(*millis) {
        Some(timeout) => serializer.serialize_str(&humantime::format_duration(timeout).to_string()),
        None => serializer.serialize_none(),
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ScheduleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_key_accepts_the_documented_alphabet() {
        for ok in ["a", "0", "reports.daily-digest_v2", &"a".repeat(100)] {
            assert!(JobKey::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn job_key_rejects_with_a_reason() {
        assert_eq!(JobKey::parse(""), Err(JobKeyError::Empty));
        assert_eq!(JobKey::parse(&"a".repeat(101)), Err(JobKeyError::TooLong(101)));
        assert_eq!(JobKey::parse("-a"), Err(JobKeyError::BadCharacter('-')));
        assert_eq!(JobKey::parse("Reports"), Err(JobKeyError::BadCharacter('R')));
        assert_eq!(JobKey::parse("a b"), Err(JobKeyError::BadCharacter(' ')));
        assert_eq!(JobKey::parse("é"), Err(JobKeyError::BadCharacter('é')));
    }
}
