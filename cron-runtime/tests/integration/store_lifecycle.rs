//! SPEC §13 at the store level: retire, look up by key, cancel, run-now payloads, and who may
//! version a job (the API or a jobs file).

use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobDefinition, JobKey, JobStatus, ManagedBy, RunReason, RunStatus};
use cron_runtime::store::definitions::{self, NewDefinition, ScheduleSpec};
use cron_runtime::store::runs::{self, RunNowOutcome, RunOutcome};
use cron_runtime::store::StoreError;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{self, at};

fn new(key: &str, cron: &str, managed_by: ManagedBy) -> NewDefinition {
    NewDefinition {
        job_key: JobKey::parse(key).unwrap(),
        target: "system.sleep".into(),
        schedule: ScheduleSpec::Recurring {
            cron_expression: cron.into(),
        },
        timezone: "UTC".into(),
        payload: json!({"seconds": 1}),
        description: None,
        created_by: "alice".into(),
        managed_by,
        source: (managed_by == ManagedBy::File).then(|| "jobs.toml".to_owned()),
        timeout: None,
        retry: Default::default(),
    }
}

async fn job(pool: &PgPool, key: &str, managed_by: ManagedBy) -> JobDefinition {
    definitions::create(pool, &new(key, "* * * * *", managed_by))
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn retiring_frees_the_key_and_records_who(pool: PgPool) {
    let v1 = job(&pool, "k", ManagedBy::Api).await;
    assert_eq!(definitions::get_live(&pool, "k").await.unwrap().id, v1.id);
    let retired = definitions::retire(&pool, v1.id, "bob", ManagedBy::Api, &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(
        (retired.status, retired.retired_by.as_deref()),
        (JobStatus::Retired, Some("bob"))
    );
    assert!(matches!(
        definitions::get_live(&pool, "k").await,
        Err(StoreError::NoLiveJob(_))
    ));
    assert!(matches!(
        definitions::retire(&pool, v1.id, "bob", ManagedBy::Api, &Policy::default()).await,
        Err(StoreError::WrongStatus { .. })
    ));
    let v2 = job(&pool, "k", ManagedBy::Api).await;
    assert_eq!(v2.version, 2, "a new job of a retired key continues its versions");
}

#[sqlx::test(migrations = "../migrations")]
async fn only_its_manager_versions_or_retires_a_job(pool: PgPool) {
    let filed = job(&pool, "filed", ManagedBy::File).await;
    let by_api = job(&pool, "by-api", ManagedBy::Api).await;
    for result in [
        definitions::retire(&pool, filed.id, "bob", ManagedBy::Api, &Policy::default())
            .await
            .map(|retired| retired.value),
        definitions::new_version(
            &pool,
            filed.id,
            &new("filed", "0 * * * *", ManagedBy::Api),
            ManagedBy::Api,
        )
        .await,
        definitions::retire(&pool, by_api.id, "file:jobs.toml", ManagedBy::File, &Policy::default())
            .await
            .map(|retired| retired.value),
    ] {
        assert!(matches!(result, Err(StoreError::ManagedElsewhere { .. })), "{result:?}");
    }
    // A jobs file's new version of a paused job stays paused.
    definitions::pause(&pool, filed.id, "hold it", "bob", &Policy::default())
        .await
        .unwrap()
        .announce();
    let v2 = definitions::new_version(
        &pool,
        filed.id,
        &new("filed", "0 * * * *", ManagedBy::File),
        ManagedBy::File,
    )
    .await
    .unwrap();
    assert_eq!(
        (v2.status, v2.pause_reason.as_deref(), v2.version),
        (JobStatus::Paused, Some("hold it"), 2)
    );
    let old = definitions::get(&pool, filed.id).await.unwrap();
    assert_eq!(old.retired_by.as_deref(), Some("alice"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_pending_run_is_cancelled_at_once_and_frees_its_key(pool: PgPool) {
    let def = job(&pool, "k", ManagedBy::Api).await;
    let RunNowOutcome::Pending(run) = runs::request_run(&pool, def.id, "alice", None).await.unwrap() else {
        panic!("expected a pending run")
    };
    let cancelled = runs::cancel(&pool, run.id, "wrong input", "bob").await.unwrap();
    assert_eq!(
        (
            cancelled.status,
            cancelled.reason,
            cancelled.error.as_deref(),
            cancelled.cancelled_by.as_deref()
        ),
        (
            RunStatus::Cancelled,
            Some(RunReason::Cancelled),
            Some("wrong input"),
            Some("bob")
        )
    );
    assert!(cancelled.finished_at.is_some());
    assert!(matches!(
        runs::cancel(&pool, run.id, "again please", "bob").await,
        Err(StoreError::RunFinished { .. })
    ));
    assert!(matches!(
        runs::request_run(&pool, def.id, "alice", None).await.unwrap(),
        RunNowOutcome::Pending(_)
    ));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_cancelled_running_run_ends_cancelled_whatever_its_handler_returns(pool: PgPool) {
    let def = job(&pool, "k", ManagedBy::Api).await;
    let run = support::start_slot(&pool, &def, at(0), "s").await;
    let asked = runs::cancel(&pool, run.id, "stuck on a lock", "bob").await.unwrap();
    assert_eq!(asked.status, RunStatus::Running, "the handler has not returned yet");
    assert!(asked.cancel_requested_at.is_some());
    let beats = runs::heartbeat(&pool, &[run.id]).await.unwrap();
    assert!(
        beats[0].cancel_requested,
        "a heartbeat tells the owner it missed the notification"
    );
    let done = runs::finish(
        &pool,
        run.id,
        &RunOutcome::Succeeded { output: json!(null) },
        &Policy::default(),
    )
    .await
    .unwrap()
    .value
    .unwrap();
    assert_eq!(
        (done.status, done.reason, done.error.as_deref()),
        (
            RunStatus::Cancelled,
            Some(RunReason::Cancelled),
            Some("stuck on a lock")
        )
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_now_payload_is_the_runs_own(pool: PgPool) {
    let def = job(&pool, "k", ManagedBy::Api).await;
    let payload = json!({"seconds": 0.1});
    runs::request_run(&pool, def.id, "alice", Some(&payload)).await.unwrap();
    let claimed = runs::claim_pending(&pool, &["system.sleep"], 10, "s").await.unwrap();
    assert_eq!(claimed[0].run.payload, Some(payload.clone()));
    assert_eq!(claimed[0].target_payload, payload, "the handler gets the run's payload");
    assert_eq!(
        definitions::get(&pool, def.id).await.unwrap().payload,
        json!({"seconds": 1})
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_cancelled_run_whose_scheduler_died_ends_cancelled_with_the_admins_reason(pool: PgPool) {
    let def = job(&pool, "k", ManagedBy::Api).await;
    let run = support::start_slot(&pool, &def, at(0), "gone").await;
    runs::cancel(&pool, run.id, "stuck on a lock", "bob").await.unwrap();
    sqlx::query("UPDATE cron_job_runs SET heartbeat_at = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    let swept = runs::fail_stale(&pool, std::time::Duration::from_secs(60), None, &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(
        (swept[0].status, swept[0].reason, swept[0].error.as_deref()),
        (
            RunStatus::Cancelled,
            Some(RunReason::Cancelled),
            Some("stuck on a lock")
        )
    );
}
