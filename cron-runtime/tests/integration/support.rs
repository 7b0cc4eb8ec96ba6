//! What the store tests share: a job to run slots of, slot times inside its active window, and
//! a slot started as the scheduler starts it.

use chrono::{DateTime, TimeZone, Utc};
use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobDefinition, JobKey, JobRun, ManagedBy};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use cron_runtime::store::runs::{self, DueSlot, SlotBatch};
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
            source: None,
            timeout: None,
            retry: Default::default(),
        },
    )
    .await
    .unwrap()
}

/// A slot time after every job's `active_since` (its creation): earlier ones are not its slots.
pub fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, second).unwrap()
}

/// Inserts the slot of `def` at `at` as scheduler `instance` does, and returns its run, now
/// `running`.
pub async fn start_slot(pool: &PgPool, def: &JobDefinition, at: DateTime<Utc>, instance: &str) -> JobRun {
    let inserted = runs::insert_scheduled(
        pool,
        SlotBatch::start(&[DueSlot::of(def, at)]),
        instance,
        &Policy::default(),
    )
    .await
    .unwrap()
    .value;
    inserted
        .running
        .into_iter()
        .next()
        .expect("the slot was inserted running")
        .run
}
