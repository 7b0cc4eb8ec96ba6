//! Upgrading databases: `cronjobs migrate` accepts a database that applied an earlier text of a
//! landed migration, and the integrity migration repairs rows the new rules would reject.

use std::borrow::Cow;

use cron_runtime::store::schema::{self, MIGRATOR};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::PgPool;
use uuid::Uuid;

/// The integrity constraints' migration.
const INTEGRITY: i64 = 20261130000003;

/// The embedded migrations before `version`, with `replace` swapped in by version.
fn migrator_before(version: i64, replace: Option<Migration>) -> Migrator {
    let migrations: Vec<Migration> = MIGRATOR
        .iter()
        .filter(|m| m.version < version)
        .map(|m| match &replace {
            Some(r) if r.version == m.version => r.clone(),
            _ => m.clone(),
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

async fn checksum_of(pool: &PgPool, version: i64) -> Vec<u8> {
    sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = $1")
        .bind(version)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn index_exists(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_database_that_applied_the_first_text_of_a_landed_migration_migrates(pool: PgPool) {
    // 20261127000002 as it first landed (git show 04aea83): without its last DROP INDEX.
    let first_text = Migration::new(
        20261127000002,
        "run history filter indexes".into(),
        MigrationType::Simple,
        include_str!("../fixtures/20261127000002_first_text.sql").into(),
        false,
    );
    migrator_before(20261130000000, Some(first_text.clone()))
        .run(&pool)
        .await
        .expect("the old texts apply");
    assert_eq!(checksum_of(&pool, 20261127000002).await, first_text.checksum.to_vec());
    assert!(index_exists(&pool, "cron_job_runs_definition_idx").await);
    // What sqlx alone does with it: refuses, so `cronjobs migrate` failed on such a database.
    assert!(matches!(
        MIGRATOR.run(&pool).await,
        Err(sqlx::migrate::MigrateError::VersionMismatch(20261127000002))
    ));

    schema::migrate(&pool)
        .await
        .expect("cronjobs migrate accepts the earlier text");

    let current = MIGRATOR.iter().find(|m| m.version == 20261127000002).unwrap();
    assert_eq!(checksum_of(&pool, 20261127000002).await, current.checksum.to_vec());
    assert!(
        !index_exists(&pool, "cron_job_runs_definition_idx").await,
        "the later text's DROP INDEX is made good"
    );
    assert_eq!(schema::status(&pool).await.unwrap(), schema::SchemaStatus::Current);
    schema::migrate(&pool).await.expect("and again: idempotent");
}

#[sqlx::test(migrations = false)]
async fn pause_reasons_written_by_hand_are_repaired_by_the_upgrade(pool: PgPool) {
    migrator_before(INTEGRITY, None).run(&pool).await.unwrap();
    let long = "x".repeat(400);
    for (key, reason) in [
        ("short", "x"),
        ("blank", "   "),
        ("long", long.as_str()),
        ("fine", "maintenance"),
    ] {
        sqlx::query(
            "INSERT INTO cron_job_definitions (id, job_key, version, target, schedule_type, cron_expression,
                                               status, pause_reason, paused_at, paused_by, created_by)
             VALUES ($1, $2, 1, 'system.heartbeat', 'recurring', '* * * * *', 'paused', $3, now(), 'ops', 'ops')",
        )
        .bind(Uuid::now_v7())
        .bind(key)
        .bind(reason)
        .execute(&pool)
        .await
        .unwrap();
    }

    schema::migrate(&pool).await.expect("the integrity migration applies");

    let reasons: Vec<(String, String)> =
        sqlx::query_as("SELECT job_key, pause_reason FROM cron_job_definitions ORDER BY job_key")
            .fetch_all(&pool)
            .await
            .unwrap();
    let reason = |key: &str| reasons.iter().find(|(k, _)| k == key).unwrap().1.clone();
    assert_eq!(reason("fine"), "maintenance");
    assert_eq!(reason("long"), "x".repeat(300));
    assert!(reason("short").starts_with("x (no reason given"), "{}", reason("short"));
    assert!(reason("blank").starts_with("(no reason given"), "{}", reason("blank"));
}
