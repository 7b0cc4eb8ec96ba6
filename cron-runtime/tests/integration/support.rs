//! What the store tests share: a job to run slots of, and slot times inside its active window.

use chrono::{DateTime, TimeZone, Utc};
use cron_runtime::domain::{JobDefinition, JobKey, ManagedBy};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use serde_json::json;
use sqlx::PgPool;

/// Creates an active recurring job (API-managed, empty payload).
pub async fn recurring(pool: &PgPool, key: &str, target: &str, cron: &str) -> JobDefinition {
    definitions::create(
        pool,
        &NewDefinition {
            job_key: JobKey::parse(key).unwrap(),
            target: target.into(),
            schedule: ScheduleSpec::Recurring {
                cron_expression: cron.into(),
            },
            timezone: "UTC".into(),
            payload: json!({}),
            description: None,
            created_by: "test".into(),
            managed_by: ManagedBy::Api,
        },
    )
    .await
    .unwrap()
}

/// A slot time after every job's `active_since` (its creation): earlier ones are not its slots.
pub fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, second).unwrap()
}
