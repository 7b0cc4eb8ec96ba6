//! The definitions store against a real PostgreSQL (a fresh database per test).

use std::collections::HashSet;

use chrono::{Duration, Utc};
use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobKey, JobStatus, ManagedBy, ScheduleType};
use cron_runtime::store::definitions::{self, JobFilter, NewDefinition, ScheduleSpec};
use cron_runtime::store::StoreError;
use serde_json::json;
use sqlx::PgPool;

fn recurring(key: &str) -> NewDefinition {
    NewDefinition {
        job_key: JobKey::parse(key).unwrap(),
        target: "system.heartbeat".into(),
        schedule: ScheduleSpec::Recurring {
            cron_expression: "*/5 * * * *".into(),
        },
        timezone: "UTC".into(),
        payload: json!({}),
        description: Some("test job".into()),
        created_by: "alice".into(),
        managed_by: ManagedBy::Api,
        source: None,
        timeout: None,
        retry: Default::default(),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn create_then_get_returns_every_column(pool: PgPool) {
    let created = definitions::create(&pool, &recurring("reports.daily")).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.status, JobStatus::Active);
    assert_eq!(created.schedule_type, ScheduleType::Recurring);
    assert_eq!(created.cron_expression.as_deref(), Some("*/5 * * * *"));
    assert_eq!(created.created_by, "alice");
    assert_eq!(definitions::get(&pool, created.id).await.unwrap(), created);

    let one_time = NewDefinition {
        schedule: ScheduleSpec::OneTime {
            run_at: Utc::now() + Duration::hours(1),
        },
        ..recurring("once")
    };
    let created = definitions::create(&pool, &one_time).await.unwrap();
    assert_eq!(created.schedule_type, ScheduleType::OneTime);
    assert!(created.cron_expression.is_none() && created.run_at.is_some());
}

#[sqlx::test(migrations = "../migrations")]
async fn create_conflicts_with_a_live_key_and_continues_retired_versions(pool: PgPool) {
    let first = definitions::create(&pool, &recurring("k")).await.unwrap();
    match definitions::create(&pool, &recurring("k")).await {
        Err(StoreError::KeyTaken { existing_id, .. }) => assert_eq!(existing_id, first.id),
        other => panic!("expected KeyTaken, got {other:?}"),
    }
    let second = definitions::new_version(&pool, first.id, &recurring("k"), ManagedBy::Api)
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    // Retire the live one by hand (as a finished one-time job would be), then create again.
    sqlx::query("UPDATE cron_job_definitions SET status = 'retired', retired_at = now() WHERE id = $1")
        .bind(second.id)
        .execute(&pool)
        .await
        .unwrap();
    let third = definitions::create(&pool, &recurring("k")).await.unwrap();
    assert_eq!(
        third.version, 3,
        "create continues the version numbers of a retired key"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn get_unknown_is_not_found(pool: PgPool) {
    let id = uuid::Uuid::now_v7();
    assert!(matches!(definitions::get(&pool, id).await, Err(StoreError::JobNotFound(x)) if x == id));
}

#[sqlx::test(migrations = "../migrations")]
async fn new_version_retires_the_old_one(pool: PgPool) {
    let v1 = definitions::create(&pool, &recurring("k")).await.unwrap();
    let changed = NewDefinition {
        target: "system.fail".into(),
        payload: json!({"message": "x"}),
        ..recurring("k")
    };
    let v2 = definitions::new_version(&pool, v1.id, &changed, ManagedBy::Api)
        .await
        .unwrap();
    assert_eq!(
        (v2.version, v2.status, v2.target.as_str()),
        (2, JobStatus::Active, "system.fail")
    );
    let v1 = definitions::get(&pool, v1.id).await.unwrap();
    assert_eq!(v1.status, JobStatus::Retired);
    assert!(v1.retired_at.is_some());
    assert!(matches!(
        definitions::new_version(&pool, v1.id, &changed, ManagedBy::Api).await,
        Err(StoreError::WrongStatus {
            actual: JobStatus::Retired,
            ..
        })
    ));
}

#[sqlx::test(migrations = "../migrations")]
async fn twenty_concurrent_new_versions_exactly_one_succeeds(pool: PgPool) {
    let v1 = definitions::create(&pool, &recurring("k")).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { definitions::new_version(&pool, v1.id, &recurring("k"), ManagedBy::Api).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(v) => {
                ok += 1;
                assert_eq!(v.version, 2);
            }
            Err(StoreError::WrongStatus {
                actual: JobStatus::Retired,
                ..
            }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_definitions WHERE status <> 'retired'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(live, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn pause_and_resume_transitions_report_conflicts(pool: PgPool) {
    let job = definitions::create(&pool, &recurring("k")).await.unwrap();
    assert!(matches!(
        definitions::resume(&pool, job.id, "test").await,
        Err(StoreError::WrongStatus {
            actual: JobStatus::Active,
            action: "resume",
            ..
        })
    ));
    let paused = definitions::pause(&pool, job.id, "maintenance window", "bob", &Policy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(paused.status, JobStatus::Paused);
    assert_eq!(paused.pause_reason.as_deref(), Some("maintenance window"));
    assert_eq!(paused.paused_by.as_deref(), Some("bob"));
    assert!(paused.paused_at.is_some());
    // A second pause does not overwrite the first one's reason.
    assert!(matches!(
        definitions::pause(&pool, job.id, "another reason", "carol", &Policy::default()).await,
        Err(StoreError::WrongStatus {
            actual: JobStatus::Paused,
            action: "pause",
            ..
        })
    ));
    assert_eq!(
        definitions::get(&pool, job.id).await.unwrap().pause_reason.as_deref(),
        Some("maintenance window")
    );
    let resumed = definitions::resume(&pool, job.id, "test").await.unwrap();
    assert_eq!(resumed.status, JobStatus::Active);
    assert!(resumed.pause_reason.is_none() && resumed.paused_at.is_none());
    let missing = uuid::Uuid::now_v7();
    assert!(matches!(
        definitions::pause(&pool, missing, "why not", "x", &Policy::default()).await,
        Err(StoreError::JobNotFound(_))
    ));
}

#[sqlx::test(migrations = "../migrations")]
async fn list_filters_and_paginates_without_duplicates(pool: PgPool) {
    for i in 0..25 {
        let mut new = recurring(&format!("job-{i:02}"));
        if i % 5 == 0 {
            new.target = "system.sleep".into();
        }
        definitions::create(&pool, &new).await.unwrap();
    }
    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = definitions::list(&pool, &JobFilter::default(), cursor, 10)
            .await
            .unwrap();
        pages += 1;
        for job in &page.items {
            assert!(seen.insert(job.id), "duplicate {}", job.job_key);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (25, 3));

    let first = definitions::list(&pool, &JobFilter::default(), None, 3).await.unwrap();
    let keys: Vec<_> = first.items.iter().map(|j| j.job_key.as_str()).collect();
    assert_eq!(keys, ["job-24", "job-23", "job-22"], "newest first");

    let filter = JobFilter {
        target: Some("system.sleep".into()),
        ..Default::default()
    };
    let sleepers = definitions::list(&pool, &filter, None, 50).await.unwrap();
    assert_eq!(sleepers.items.len(), 5);
    assert!(sleepers.next_cursor.is_none());
    let filter = JobFilter {
        job_key: Some("job-07".into()),
        status: Some(JobStatus::Active),
        ..Default::default()
    };
    assert_eq!(
        definitions::list(&pool, &filter, None, 50).await.unwrap().items.len(),
        1
    );
    let filter = JobFilter {
        status: Some(JobStatus::Paused),
        ..Default::default()
    };
    assert!(definitions::list(&pool, &filter, None, 50)
        .await
        .unwrap()
        .items
        .is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn writes_notify_the_schedulers(pool: PgPool) {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await.unwrap();
    listener.listen(cron_runtime::store::CHANGES_CHANNEL).await.unwrap();
    let job = definitions::create(&pool, &recurring("k")).await.unwrap();
    let note = listener.recv().await.unwrap();
    assert_eq!(note.payload(), format!("definition:{}", job.id));
    definitions::pause(&pool, job.id, "five!", "x", &Policy::default())
        .await
        .unwrap()
        .announce();
    assert_eq!(
        listener.recv().await.unwrap().payload(),
        format!("definition:{}", job.id)
    );
}
