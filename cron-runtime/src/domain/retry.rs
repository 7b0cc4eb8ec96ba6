//! Retry policies (SPEC 17): which failures are retried, and when.
//!
//! A policy counts the first attempt: `max_attempts = 1` (the default) retries nothing. The
//! delay before the n-th retry (attempt n + 1) is `min(max_delay, initial_delay ×
//! multiplier^(n−1))`, give or take 10% so that jobs failing together do not retry together.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FieldError, RunReason};

/// The most attempts a policy may allow (the first included).
pub const MAX_ATTEMPTS: i32 = 20;
/// The shortest `initial_delay`.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// The longest `max_delay`.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);
/// The largest `multiplier`.
pub const MAX_MULTIPLIER: f64 = 10.0;

/// A job's retry policy, as stored (columns `retry_*`) and shown (`"retry": {...}`).
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retries).
    #[sqlx(rename = "retry_max_attempts")]
    pub max_attempts: i32,
    #[sqlx(rename = "retry_initial_delay_ms")]
    pub initial_delay_ms: i64,
    #[sqlx(rename = "retry_max_delay_ms")]
    pub max_delay_ms: i64,
    #[sqlx(rename = "retry_multiplier")]
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// No retries; the delays a policy that only sets `max_attempts` gets.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial_delay_ms: 30_000,
            max_delay_ms: 600_000,
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// `true` when a failed run may be retried at all.
    pub fn retries(&self) -> bool {
        self.max_attempts > 1
    }

    /// The delay before `attempt` (2 for the first retry), before jitter.
    pub fn base_delay(&self, attempt: i32) -> Duration {
        let retry = f64::from(attempt.saturating_sub(1).max(1));
        let millis = self.initial_delay_ms as f64 * self.multiplier.powf(retry - 1.0);
        Duration::from_millis(millis.min(self.max_delay_ms as f64).max(0.0) as u64)
    }

    /// When the attempt after `failed_attempt` is due, if the policy allows one, it can start
    /// before `next_slot` (the job's next fire time, if any), and the failure is retryable.
    /// `jitter` is in `[-1, 1]`: the delay moves by up to 10% of itself.
    pub fn next_attempt_at(
        &self,
        failed_attempt: i32,
        reason: RunReason,
        failed_at: DateTime<Utc>,
        next_slot: Option<DateTime<Utc>>,
        jitter: f64,
    ) -> Option<DateTime<Utc>> {
        if failed_attempt >= self.max_attempts || !is_retryable(reason) {
            return None;
        }
        let base = self.base_delay(failed_attempt + 1).as_secs_f64();
        let delay = base * (1.0 + 0.1 * jitter.clamp(-1.0, 1.0));
        let at = failed_at + chrono::Duration::milliseconds((delay * 1000.0) as i64);
        match next_slot {
            Some(slot) if at >= slot => None,
            _ => Some(at),
        }
    }
}

/// Whether a run that failed for `reason` is retried: a failure of the run itself, not an
/// admin's cancel, a shutdown, or a slot that never started.
pub fn is_retryable(reason: RunReason) -> bool {
    matches!(
        reason,
        RunReason::Error
            | RunReason::Panic
            | RunReason::Timeout
            | RunReason::Stale
            | RunReason::SchedulerLost
            | RunReason::Fenced
    )
}

impl Serialize for RetryPolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RetryDraft::from(*self).serialize(serializer)
    }
}

/// A retry policy as written (REST `retry`, a jobs file's `retry` table, a form): every
/// field optional, durations as text (`30s`, `10m`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDraft {
    /// Attempts in all, the first included: 1 to 20 (default 1, no retries).
    #[schema(example = 4)]
    pub max_attempts: Option<i64>,
    /// The delay before the first retry, at least 1s (default 30s).
    #[schema(example = "30s")]
    pub initial_delay: Option<String>,
    /// The longest delay, up to 24h (default 10m).
    #[schema(example = "10m")]
    pub max_delay: Option<String>,
    /// How much each delay grows: 1.0 (constant) to 10.0 (default 2.0).
    #[schema(example = 2.0)]
    pub multiplier: Option<f64>,
}

impl From<RetryPolicy> for RetryDraft {
    fn from(policy: RetryPolicy) -> Self {
        let text = |ms: i64| humantime::format_duration(Duration::from_millis(ms.max(0) as u64)).to_string();
        RetryDraft {
            max_attempts: Some(i64::from(policy.max_attempts)),
            initial_delay: Some(text(policy.initial_delay_ms)),
            max_delay: Some(text(policy.max_delay_ms)),
            multiplier: Some(policy.multiplier),
        }
    }
}

impl RetryDraft {
    /// Checks every field (named `retry.<field>`), filling in the defaults.
    pub fn validate(&self) -> Result<RetryPolicy, Vec<FieldError>> {
        let defaults = RetryPolicy::default();
        let mut errors = Vec::new();
        let max_attempts = match self.max_attempts {
            None => defaults.max_attempts,
            Some(n) if (1..=i64::from(MAX_ATTEMPTS)).contains(&n) => n as i32,
            Some(n) => {
                errors.push(FieldError::new(
                    "retry.max_attempts",
                    format!("must be 1 to {MAX_ATTEMPTS} (it counts the first attempt; 1 means no retries), got {n}"),
                ));
                defaults.max_attempts
            }
        };
        let mut delay = |field: &str, raw: Option<&str>, default_ms: i64| -> i64 {
            let Some(raw) = raw else { return default_ms };
            match humantime::parse_duration(raw.trim()) {
                Ok(d) if d < MIN_DELAY => {
                    errors.push(FieldError::new(field, format!("must be at least 1s (got {raw:?})")));
                    default_ms
                }
                Ok(d) if d > MAX_DELAY => {
                    errors.push(FieldError::new(field, format!("must be at most 24h (got {raw:?})")));
                    default_ms
                }
                Ok(d) => d.as_millis() as i64,
                Err(e) => {
                    errors.push(FieldError::new(
                        field,
                        format!("{raw:?} is not a duration ({e}); write e.g. 30s, 5m or 1h"),
                    ));
                    default_ms
                }
            }
        };
        let initial_delay_ms = delay(
            "retry.initial_delay",
            self.initial_delay.as_deref(),
            defaults.initial_delay_ms,
        );
        // An omitted max_delay never undercuts the initial delay it was not written against.
        let max_delay_ms = delay(
            "retry.max_delay",
            self.max_delay.as_deref(),
            defaults.max_delay_ms.max(initial_delay_ms),
        );
        if max_delay_ms < initial_delay_ms {
            errors.push(FieldError::new(
                "retry.max_delay",
                "must be at least retry.initial_delay",
            ));
        }
        let multiplier = match self.multiplier {
            None => defaults.multiplier,
            Some(m) if (1.0..=MAX_MULTIPLIER).contains(&m) => m,
            Some(m) => {
                errors.push(FieldError::new(
                    "retry.multiplier",
                    format!("must be 1.0 (constant delays) to {MAX_MULTIPLIER:.1}, got {m}"),
                ));
                defaults.multiplier
            }
        };
        if errors.is_empty() {
            Ok(RetryPolicy {
                max_attempts,
                initial_delay_ms,
                max_delay_ms,
                multiplier,
            })
        } else {
            Err(errors)
        }
    }
}

/// A jitter in `[-1, 1]` (from a random UUID: enough randomness to spread retries, without a
/// dependency for it).
pub fn jitter() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 75) as u64; // 53 random bits
    (bits as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: i32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_delay_ms: 30_000,
            max_delay_ms: 600_000,
            multiplier: 2.0,
        }
    }

    #[test]
    fn delays_grow_by_the_multiplier_up_to_the_cap() {
        let p = policy(10);
        let secs: Vec<u64> = (2..=8).map(|a| p.base_delay(a).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600]);
    }

    #[test]
    fn jitter_moves_a_delay_by_at_most_ten_percent() {
        let at = Utc::now();
        let p = policy(3);
        let early = p.next_attempt_at(1, RunReason::Error, at, None, -1.0).unwrap();
        let late = p.next_attempt_at(1, RunReason::Error, at, None, 1.0).unwrap();
        assert_eq!((early - at).num_seconds(), 27);
        assert_eq!((late - at).num_seconds(), 33);
        for _ in 0..1000 {
            assert!((-1.0..=1.0).contains(&jitter()));
        }
    }

    #[test]
    fn the_last_attempt_and_unretryable_reasons_get_no_retry() {
        let at = Utc::now();
        let p = policy(3);
        assert!(p.next_attempt_at(2, RunReason::Error, at, None, 0.0).is_some());
        assert!(p.next_attempt_at(3, RunReason::Error, at, None, 0.0).is_none());
        for reason in [
            RunReason::Cancelled,
            RunReason::Shutdown,
            RunReason::Overlap,
            RunReason::NotStarted,
        ] {
            assert!(p.next_attempt_at(1, reason, at, None, 0.0).is_none(), "{reason}");
        }
        assert!(policy(1).next_attempt_at(1, RunReason::Error, at, None, 0.0).is_none());
    }

    #[test]
    fn a_retry_that_cannot_start_before_the_next_slot_is_not_scheduled() {
        let at = Utc::now();
        let p = policy(3);
        let soon = at + chrono::Duration::seconds(20);
        let later = at + chrono::Duration::seconds(60);
        assert!(p.next_attempt_at(1, RunReason::Error, at, Some(soon), 0.0).is_none());
        assert!(p.next_attempt_at(1, RunReason::Error, at, Some(later), 0.0).is_some());
    }

    #[test]
    fn drafts_fill_defaults_and_name_each_bad_field() {
        let only_attempts = RetryDraft {
            max_attempts: Some(4),
            ..RetryDraft::default()
        };
        assert_eq!(only_attempts.validate().unwrap(), policy(4));
        let long_first = RetryDraft {
            max_attempts: Some(2),
            initial_delay: Some("1h".into()),
            ..RetryDraft::default()
        };
        assert_eq!(long_first.validate().unwrap().max_delay_ms, 3_600_000);
        let bad = RetryDraft {
            max_attempts: Some(21),
            initial_delay: Some("500ms".into()),
            max_delay: Some("soon".into()),
            multiplier: Some(0.5),
        };
        let mut fields: Vec<String> = bad.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "retry.initial_delay",
                "retry.max_attempts",
                "retry.max_delay",
                "retry.multiplier"
            ]
        );
        let inverted = RetryDraft {
            initial_delay: Some("5m".into()),
            max_delay: Some("1m".into()),
            ..RetryDraft::default()
        };
        assert_eq!(inverted.validate().unwrap_err()[0].field, "retry.max_delay");
    }

    #[test]
    fn a_policy_shows_as_it_is_written() {
        let shown = serde_json::to_value(policy(4)).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({"max_attempts": 4, "initial_delay": "30s", "max_delay": "10m", "multiplier": 2.0})
        );
    }
}
