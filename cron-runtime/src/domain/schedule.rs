//! Schedules: cron expressions evaluated in a timezone (SPEC §5, §5a).
//!
//! TODO(schedule engine): implemented by the schedule-engine work.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed cron expression bound to a timezone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    timezone: Tz,
}

/// Why an expression or timezone was rejected; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    InvalidExpression(String),
    #[error("unknown timezone {0:?}: use an IANA name such as \"UTC\" or \"Europe/Berlin\"")]
    UnknownTimezone(String),
}

impl ScheduleError {
    /// The request field the error is about: `cron_expression` or `timezone`.
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::UnknownTimezone(_) => "timezone",
            _ => "cron_expression",
        }
    }
}

/// Parses an IANA timezone name.
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse()
        .map_err(|_| ScheduleError::UnknownTimezone(name.to_owned()))
}

impl Schedule {
    /// Parses `expression` (5 or 6 fields, or a macro) to be evaluated in `timezone`.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let timezone = parse_timezone(timezone)?;
        Ok(Schedule {
            expression: expression.to_owned(),
            timezone,
        })
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let _ = (after, &self.expression, self.timezone);
        todo!("schedule engine")
    }

    /// The next `count` fire times strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut times = Vec::with_capacity(count);
        let mut cursor = after;
        while times.len() < count {
            match self.next_after(cursor) {
                Some(next) => {
                    times.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        times
    }
}
