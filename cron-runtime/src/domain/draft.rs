//! A definition as someone wrote it (a REST body, an entry of a jobs file), and the one place
//! that checks it: every rule a definition must meet, reporting every problem at once with
//! the field it concerns. The API and `cronjobs apply` both validate through [`Draft::validate`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::schedule::parse_timezone;
use super::target::{PayloadError, TargetCatalog};
use super::{JobKey, ManagedBy, Schedule, ScheduleType};

/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION: usize = 500;
/// The range of a job's own `timeout`.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(86_400);
/// Bounds of a pause or cancel reason, in characters after trimming.
pub const REASON_LENGTH: std::ops::RangeInclusive<usize> = 5..=300;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field: a body field (`job_key`, `payload.seconds`), a query parameter, a path
    /// parameter (`jobId`), or `body` for the body as a whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// When a new definition fires.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleSpec {
    Recurring { cron_expression: String },
    OneTime { run_at: DateTime<Utc> },
}

/// A validated definition to insert (by create, new-version or apply).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDefinition {
    pub job_key: JobKey,
    pub target: String,
    pub schedule: ScheduleSpec,
    pub timezone: String,
    pub payload: Value,
    pub description: Option<String>,
    pub created_by: String,
    /// Who will own its versions: the API, or a jobs file.
    pub managed_by: ManagedBy,
    /// The jobs file's source, for `ManagedBy::File`.
    pub source: Option<String>,
    /// The job's own timeout; `None`: its target's.
    pub timeout: Option<Duration>,
    /// How its failed runs are retried.
    pub retry: super::RetryPolicy,
}

/// A definition as submitted, before validation. `run_at` is text (RFC 3339) as received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    pub job_key: Option<String>,
    pub target: Option<String>,
    pub schedule_type: Option<String>,
    pub cron_expression: Option<String>,
    pub run_at: Option<String>,
    pub timezone: Option<String>,
    pub payload: Option<Value>,
    pub description: Option<String>,
    /// A duration such as `90s` or `15m` (humantime), as received.
    pub timeout: Option<String>,
    /// The retry policy as written; `None`: no retries.
    pub retry: Option<super::RetryDraft>,
}

impl Draft {
    /// Checks every field, reporting every problem at once. A one-time `run_at` must be after
    /// `now` when it is given (a jobs file checked without a database may list a one-time job
    /// that already ran; `apply` checks the ones it creates).
    pub fn validate(
        self,
        targets: &impl TargetCatalog,
        actor: String,
        now: Option<DateTime<Utc>>,
    ) -> Result<NewDefinition, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| errors.push(FieldError::new(field, message));

        let job_key = match self.job_key.as_deref().map(JobKey::parse) {
            None => fail_none(&mut fail, "job_key", "is required".into()),
            Some(Err(e)) => fail_none(&mut fail, "job_key", e.to_string()),
            Some(Ok(key)) => Some(key),
        };
        let target = match self.target {
            None => fail_none(&mut fail, "target", "is required".into()),
            Some(t) if !targets.has(&t) => fail_none(&mut fail, "target", unknown_target(targets, &t)),
            Some(t) => Some(t),
        };
        let schedule_type = match self.schedule_type.as_deref() {
            None => fail_none(&mut fail, "schedule_type", "is required: recurring or one_time".into()),
            Some("recurring") => Some(ScheduleType::Recurring),
            Some("one_time") => Some(ScheduleType::OneTime),
            Some(other) => fail_none(
                &mut fail,
                "schedule_type",
                format!("unknown variant `{other}`, expected `recurring` or `one_time`"),
            ),
        };
        let timezone = match parse_timezone(self.timezone.as_deref().unwrap_or("UTC")) {
            Ok(tz) => Some(tz),
            Err(e) => fail_none(&mut fail, e.field(), e.to_string()),
        };
        let schedule = match schedule_type {
            None => None,
            Some(ScheduleType::Recurring) => {
                if self.run_at.is_some() {
                    fail(
                        "run_at",
                        "must be omitted for a recurring job (run_at is for one_time jobs)".into(),
                    );
                }
                match self.cron_expression {
                    None => fail_none(&mut fail, "cron_expression", "is required for a recurring job".into()),
                    Some(expression) => {
                        // With a bad timezone, still check the expression (in UTC) so both are reported.
                        let tz = timezone.map_or("UTC", |tz| tz.name());
                        match Schedule::parse(&expression, tz) {
                            Ok(_) => Some(ScheduleSpec::Recurring {
                                cron_expression: expression,
                            }),
                            Err(e) => fail_none(&mut fail, e.field(), e.to_string()),
                        }
                    }
                }
            }
            Some(ScheduleType::OneTime) => {
                if self.cron_expression.is_some() {
                    fail(
                        "cron_expression",
                        "must be omitted for a one_time job (cron_expression is for recurring jobs)".into(),
                    );
                }
                match self.run_at.as_deref().map(parse_time) {
                    None => fail_none(&mut fail, "run_at", "is required for a one_time job".into()),
                    Some(Err(message)) => fail_none(&mut fail, "run_at", message),
                    Some(Ok(run_at)) if now.is_some_and(|now| run_at <= now) => {
                        fail_none(&mut fail, "run_at", in_the_past(run_at, now.unwrap_or(run_at)))
                    }
                    Some(Ok(run_at)) => Some(ScheduleSpec::OneTime { run_at }),
                }
            }
        };
        let payload = self.payload.unwrap_or_else(|| Value::Object(Default::default()));
        match &target {
            Some(target) => {
                if let Err(e) = validate_payload(targets, target, &payload) {
                    fail(&e.field, e.message);
                }
            }
            None if !payload.is_object() => fail("payload", "must be a JSON object".into()),
            None => {}
        }
        if let Some(description) = &self.description {
            let length = description.chars().count();
            if length > MAX_DESCRIPTION {
                fail(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} characters (got {length})"),
                );
            }
        }
        let timeout = self.timeout.as_deref().and_then(|raw| match parse_timeout(raw) {
            Ok(timeout) => Some(timeout),
            Err(message) => fail_none(&mut fail, "timeout", message),
        });
        let retry = match self.retry.as_ref().map(super::RetryDraft::validate) {
            None => super::RetryPolicy::default(),
            Some(Ok(policy)) => policy,
            Some(Err(problems)) => {
                for problem in problems {
                    fail(&problem.field, problem.message);
                }
                super::RetryPolicy::default()
            }
        };
        match (job_key, target, schedule, timezone) {
            (Some(job_key), Some(target), Some(schedule), Some(timezone)) if errors.is_empty() => Ok(NewDefinition {
                job_key,
                target,
                schedule,
                timezone: timezone.name().to_owned(),
                payload,
                description: self.description,
                created_by: actor,
                managed_by: ManagedBy::Api,
                source: None,
                timeout,
                retry,
            }),
            _ => Err(errors),
        }
    }
}

fn fail_none<T>(fail: &mut impl FnMut(&str, String), field: &str, message: String) -> Option<T> {
    fail(field, message);
    None
}

/// Parses a job's `timeout` (`90s`, `15m`, `2h`), within [`TIMEOUT_RANGE`].
pub fn parse_timeout(raw: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("{raw:?} is not a duration ({e}); write e.g. 90s, 15m or 2h"))?;
    if TIMEOUT_RANGE.contains(&timeout) {
        Ok(timeout)
    } else {
        Err(format!(
            "must be between 1s and 24h (got {}); leave it out to use the target's timeout",
            humantime::format_duration(timeout)
        ))
    }
}

/// Why a one-time `run_at` is refused.
pub fn in_the_past(run_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "must be in the future (got {}, now is {})",
        run_at.to_rfc3339(),
        now.to_rfc3339()
    )
}

/// Checks `payload` against what `target` accepts: a JSON object its payload type
/// deserializes from. The error names the field (`payload.team`).
pub fn validate_payload(targets: &impl TargetCatalog, target: &str, payload: &Value) -> Result<(), FieldError> {
    if !payload.is_object() {
        return Err(FieldError::new("payload", "must be a JSON object"));
    }
    match targets.check_payload(target, payload) {
        Ok(()) => Ok(()),
        Err(PayloadError::Invalid { path, message }) => {
            let field = if path.is_empty() || path == "." {
                "payload".to_owned()
            } else {
                format!("payload.{path}")
            };
            Err(FieldError::new(field, message))
        }
        Err(e) => Err(FieldError::new("payload", e.to_string())),
    }
}

/// A pause or cancel reason: trimmed, 5 to 300 characters; `doing` completes "say why …".
pub fn validate_reason<'a>(reason: Option<&'a str>, doing: &str) -> Result<&'a str, FieldError> {
    validate_note("reason", reason, &format!("say why {doing}"))
}

/// Checks a free-text note a person must give (`field`), 5 to 300 characters after trimming;
/// `asking` says what to write ("say why the job is paused").
pub fn validate_note<'a>(field: &str, note: Option<&'a str>, asking: &str) -> Result<&'a str, FieldError> {
    let note = note.map(str::trim).unwrap_or_default();
    let length = note.chars().count();
    if REASON_LENGTH.contains(&length) {
        Ok(note)
    } else {
        let (min, max) = (REASON_LENGTH.start(), REASON_LENGTH.end());
        Err(FieldError::new(
            field,
            format!("is required: {asking} in {min} to {max} characters (got {length} after trimming)"),
        ))
    }
}

/// Parses an RFC 3339 timestamp.
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{raw:?} is not an RFC 3339 timestamp ({e}); write e.g. 2030-01-01T09:00:00Z"))
}

fn unknown_target(targets: &impl TargetCatalog, key: &str) -> String {
    let known = targets.keys();
    match known.len() {
        0 => format!("no target is registered under {key:?} (this build has no targets)"),
        1..=20 => format!(
            "no target is registered under {key:?}; registered targets: {}",
            known.join(", ")
        ),
        _ => format!("no target is registered under {key:?}; see GET /api/v2/admin/cron/targets or `cronjobs targets`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert!(validate_reason(None, "x").is_err());
        assert!(validate_reason(Some("   "), "x").is_err());
        assert!(validate_reason(Some("abcd"), "x").is_err());
        assert_eq!(validate_reason(Some("  abcde  "), "x").ok(), Some("abcde"));
        assert!(validate_reason(Some(&"x".repeat(300)), "x").is_ok());
        assert!(validate_reason(Some(&"x".repeat(301)), "x").is_err());
    }

    #[test]
    fn validation_reports_every_problem() {
        let draft = Draft {
            job_key: Some("Bad Key".into()),
            schedule_type: Some("one_time".into()),
            cron_expression: Some("* * * * *".into()),
            timezone: Some("Mars/Olympus".into()),
            payload: Some(Value::Array(vec![])),
            description: Some("x".repeat(501)),
            ..Draft::default()
        };
        let errors = draft
            .validate(&crate::registry::Registered, "alice".into(), Some(Utc::now()))
            .expect_err("invalid");
        let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "cron_expression",
                "description",
                "job_key",
                "payload",
                "run_at",
                "target",
                "timezone"
            ]
        );
    }
}
