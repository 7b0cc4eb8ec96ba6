//! `system.prune` deletes terminal runs older than its `older_than`, as `cronjobs prune` does,
//! so retention can run as a cron job; its payload is validated like any other.

// Links the `targets` crate: nothing here calls into it by name, and without this line its
// `#[cron_target]` registrations would not be linked into this test binary.
use targets as _;

use chrono::{Duration, Utc};
use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobKey, TriggerType};
use cron_runtime::registry::{self, PayloadError};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use cron_runtime::store::runs::{self, DueSlot, RunOutcome, SlotBatch};
use cron_runtime::JobContext;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Records one finished run of `job` per age (days before now) and one still running.
async fn history(pool: &PgPool, ages_in_days: &[i64]) {
    let job = definitions::create(
        pool,
        &NewDefinition {
            job_key: JobKey::parse("history").unwrap(),
            target: "system.heartbeat".into(),
            schedule: ScheduleSpec::Recurring {
                cron_expression: "* * * * *".into(),
            },
            timezone: "UTC".into(),
            payload: json!({}),
            description: None,
            created_by: "test".into(),
            managed_by: cron_runtime::domain::ManagedBy::Api,
            source: None,
            timeout: None,
            retry: Default::default(),
        },
    )
    .await
    .unwrap();
    for (i, age) in ages_in_days.iter().enumerate() {
        // Slots after the job's creation (its `active_since`): earlier ones are not its slots.
        let slot = Utc::now() + Duration::minutes(1 + i as i64);
        let run = runs::insert_scheduled(
            pool,
            SlotBatch::start(&[DueSlot::of(&job, slot)]),
            "test",
            &Policy::default(),
        )
        .await
        .unwrap()
        .value
        .running
        .remove(0)
        .run;
        runs::finish(
            pool,
            run.id,
            &RunOutcome::Succeeded { output: json!(null) },
            &Policy::default(),
        )
        .await
        .unwrap()
        .announce();
        sqlx::query("UPDATE cron_job_runs SET created_at = now() - make_interval(days => $2) WHERE id = $1")
            .bind(run.id)
            .bind(*age as i32)
            .execute(pool)
            .await
            .unwrap();
    }
    // An old run still running: retention never touches an active run.
    let slot = Utc::now() + Duration::minutes(100);
    runs::insert_scheduled(
        pool,
        SlotBatch::start(&[DueSlot::of(&job, slot)]),
        "test",
        &Policy::default(),
    )
    .await
    .unwrap()
    .announce();
    sqlx::query("UPDATE cron_job_runs SET created_at = now() - interval '400 days' WHERE status = 'running'")
        .execute(pool)
        .await
        .unwrap();
}

async fn prune(pool: &PgPool, payload: Value) -> Result<Value, String> {
    let target = registry::get("system.prune").expect("system.prune is always registered");
    let ctx = JobContext::new(
        uuid::Uuid::now_v7(),
        "retention".into(),
        1,
        TriggerType::Scheduled,
        Utc::now(),
        pool.clone(),
        CancellationToken::new(),
    );
    (target.run)(ctx, payload).await.map_err(|failure| failure.message)
}

async fn statuses(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT status FROM cron_job_runs ORDER BY created_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn prune_deletes_terminal_runs_older_than_180_days_by_default(pool: PgPool) {
    history(&pool, &[400, 181, 179, 1]).await;
    let output = prune(&pool, json!({})).await.expect("prunes");
    assert_eq!(output["succeeded"], 2, "{output}");
    assert_eq!(statuses(&pool).await, ["running", "succeeded", "succeeded"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn prune_takes_its_age_from_the_payload(pool: PgPool) {
    history(&pool, &[400, 181, 179, 31, 1]).await;
    let output = prune(&pool, json!({"older_than": "30d"})).await.expect("prunes");
    assert_eq!(output["succeeded"], 4, "{output}");
    assert_eq!(statuses(&pool).await, ["running", "succeeded"]);
}

#[test]
fn prune_payloads_are_validated() {
    assert_eq!(registry::validate_payload("system.prune", &json!({})), Ok(()));
    assert_eq!(
        registry::validate_payload("system.prune", &json!({"older_than": "12w"})),
        Ok(())
    );
    for (bad, why) in [
        (json!({"older_than": "1h"}), "from 1d to 100 years"),
        (json!({"older_than": "1000y"}), "from 1d to 100 years"),
        (json!({"older_than": "soon"}), "180d, 12w or 720h"),
        (json!({"older_than": 180}), "invalid type"),
        (json!({"older_than": "180d", "batch": 1}), "unknown field"),
    ] {
        match registry::validate_payload("system.prune", &bad) {
            Err(PayloadError::Invalid { message, .. }) => assert!(message.contains(why), "{bad}: {message}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}
