//! Migrations: applying them, and checking that a database has every one this binary knows.

use std::collections::HashSet;

use sqlx::migrate::Migrator;
use sqlx::PgPool;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How the database's schema compares with this binary's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    /// Every known migration is applied, and nothing else.
    Current,
    /// Every known migration is applied, plus newer ones (a newer deploy migrated it).
    Ahead { unknown: Vec<i64> },
    /// Some migrations this binary knows are not applied: run `cronjobs migrate`.
    Behind { missing: Vec<String> },
}

/// Applies pending migrations. Safe to run from several processes at once: sqlx holds a
/// PostgreSQL advisory lock while it migrates.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Compares the applied migrations with the embedded ones.
pub async fn status(pool: &PgPool) -> Result<SchemaStatus, sqlx::Error> {
    let table_exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let applied: HashSet<i64> = if table_exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    let known: HashSet<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let mut missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    missing.sort();
    if !missing.is_empty() {
        return Ok(SchemaStatus::Behind { missing });
    }
    let mut unknown: Vec<i64> = applied.difference(&known).copied().collect();
    unknown.sort_unstable();
    Ok(if unknown.is_empty() {
        SchemaStatus::Current
    } else {
        SchemaStatus::Ahead { unknown }
    })
}

/// Why a process refuses to start on this database.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the database is missing migrations this binary needs ({}): run `cronjobs migrate` first", .0.join(", "))]
    Behind(Vec<String>),
    #[error("cannot read the database's migrations: {0}")]
    Database(#[from] sqlx::Error),
}

/// Succeeds when every migration this binary knows is applied. A database that is ahead
/// (migrated by a newer deploy while this one still runs) is accepted with a warning.
pub async fn ensure_current(pool: &PgPool) -> Result<(), SchemaError> {
    match status(pool).await? {
        SchemaStatus::Current => Ok(()),
        SchemaStatus::Ahead { unknown } => {
            tracing::warn!(
                ?unknown,
                "the database has migrations this binary does not know (a newer deploy?); continuing"
            );
            Ok(())
        }
        SchemaStatus::Behind { missing } => Err(SchemaError::Behind(missing)),
    }
}
