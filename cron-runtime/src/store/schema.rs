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

/// Earlier texts of landed migrations: `(version, SHA-384 of the text a database may have
/// applied)`. Each was edited after it landed (before the rule below was written down), and sqlx
/// refuses to migrate a database whose stored checksum differs from the file's. Their schema
/// differences are made good by `20261130000003_integrity_constraints.sql` (`IF [NOT] EXISTS`),
/// so only the stored checksum needs rewriting. Never add to this list: never edit a landed
/// migration, add a new file (a test pins every checksum).
const EARLIER_TEXTS: &[(i64, &str)] = &[
    // First text: without the reconcile fingerprint index.
    (
        20261127000001,
        "49a326780fc203abfa65aa90b0f67f0a8ca50e3ea5cf0800c4435d9ca33b59b62d0a1fc8c28cc859afedf6edd538d133",
    ),
    // First text: without `DROP INDEX cron_job_runs_definition_idx`.
    (
        20261127000002,
        "a672ef9a7c6c0c58b2def20022dc82dd1d2a3f001914394a7f662d7432e9c9bf5cc01d16a4d3795f2c2dc4dbaacc2f31",
    ),
    // Second text: a comment worded differently.
    (
        20261127000002,
        "55b1e42683ce77b2468c64f62fd02b8a7fa44c9b07085e03f615046948414742fb60cbcea387fff5702c1fb89b97e8ba",
    ),
];

/// Applies pending migrations. Safe to run from several processes at once: sqlx holds a
/// PostgreSQL advisory lock while it migrates (and the checksum rewrite is idempotent).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    accept_earlier_texts(pool).await?;
    MIGRATOR.run(pool).await
}

/// Rewrites the stored checksum of a migration applied from one of its [`EARLIER_TEXTS`] to the
/// checksum of its text today, so the migrator accepts the database.
async fn accept_earlier_texts(pool: &PgPool) -> Result<(), sqlx::Error> {
    let table_exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !table_exists {
        return Ok(());
    }
    for (version, earlier) in EARLIER_TEXTS {
        let Some(current) = MIGRATOR.iter().find(|m| m.version == *version) else {
            continue;
        };
        let rewritten = sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2 AND encode(checksum, 'hex') = $3",
        )
        .bind(current.checksum.as_ref())
        .bind(version)
        .bind(earlier)
        .execute(pool)
        .await?;
        if rewritten.rows_affected() > 0 {
            tracing::info!(version, "accepted an earlier text of a landed migration");
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every landed migration and the SHA-384 sqlx stores for it. A new migration appends a line.
    const LANDED: &[(i64, &str)] = &[
        (
            20261127000001,
            "5af0bc375274e5d3741ff23f42d94f617c9b2bb7df83f868cd6eff0a578eee955879dbdddb75f1f25a89249d6cdc0ee1",
        ),
        (
            20261127000002,
            "134642f37f28ae2607058482b8ce4d7b1ca3717ebe8c9703e401a9a7aeed81d7f26579eec08da83bbe3bbc8174a71b0a",
        ),
        (
            20261130000001,
            "c4c428262a044fcf78f367c06e46657d61b1e849d0e4b3a12529dad1f7ec59831506c88bb9e6052aa8f38fff5a0026bc",
        ),
        (
            20261130000002,
            "1c10a24a9fe356ce7f0c0196eb4b7a9753d2b75fe860958e5ee2feedcd92e126506f8cafe107036f282c162f38d53404",
        ),
        (
            20261130000003,
            "9b3788856303d7e2912776480e831266da78052c462ad0ea63140fa03026c73da7fa21d2ecb1d52ab58f514bb39da70c",
        ),
        (
            20261130000004,
            "3b4f04813523c0b76f8c6f2a3075bc48d07e11e9492ed5481ebd5750ebafc1a48a7e2794b999a3d8e2c1956b983dd506",
        ),
        (
            20261203000001,
            "ee176c785d0d111aa037b8fd6f97101d6789016ce60c62a7565e5a597a3d4b27d51bfd3a1c09fa8c1e48acb1720e10b3",
        ),
        (
            20261203000002,
            "68b44679685cd20cd07784d5224e8f4a5c68aa875bbbbf353a043395caa43af04fa5797c446aa7c02f7e419e22ef8dfa",
        ),
        (
            20261203000003,
            "8f3e83e7c352d19593302c96bed0fa6943631731a1725b6b9abf8887869588dc67438130a939bb29f3819a1c796309fe",
        ),
        (
            20261204000001,
            "ae644c68a6f378045f958f1b81a99cd1f276776dcacfb4c4a26937a281879232e5714a0f919f2fc300512b874306537b",
        ),
        (
            20261204000002,
            "19ae35ed68c3def75fded434521257650c0acf3aecd4870756eac326a3270447df313bc9322bb95c9cabe4e081592405",
        ),
        (
            20261204000003,
            "46c22cc6ce1e81a639b712cb1f67d72ea779f1fb896dbbf3ead85f9e5834e57427250ee133df284cdf4614e1e433f788",
        ),
        (
            20261207000001,
            "b08cbf590291dacc4908cb9902072c636189cf542c9e462de5eeb3dd5e3eb507fd27f7e0eeb163171953933c07b48e01",
        ),
        (
            20261207000002,
            "0daec7d828449b7616ccd33db075a4f7b7bd06850ec8441921a92a681ba5a8ddc632908a59b3dd12d69505592492f160",
        ),
        (
            20261207000003,
            "ad16870b4022119c44f2782c8a28c855a95a0413f02dd883537b873de6f8806762db9b445fbafc434a794f5d8debaa7d",
        ),
        (
            20261207000004,
            "ca9e407c2baf78bcc87dbd76b9876c55a02ab9c11949e6d6d77f4bb32bf84d841828eab17d9295e10a48dfe4a2e7e55c",
        ),
        (
            20261207000005,
            "468db6f32f3d5cc0f139b46c80118804411729c203490d896df477335bad6343299728f85c1115b829955d30c0e5caad",
        ),
    ];

    #[test]
    fn landed_migrations_never_change() {
        for (version, pinned) in LANDED {
            let migration = MIGRATOR
                .iter()
                .find(|m| m.version == *version)
                .unwrap_or_else(|| panic!("landed migration {version} is gone: never delete a landed migration"));
            assert_eq!(
                hex::encode(&*migration.checksum),
                *pinned,
                "migration {version} ({}) changed: databases that applied it will refuse `cronjobs migrate`. \
                 Never edit a landed migration: add a new file",
                migration.description
            );
        }
    }

    #[test]
    fn every_migration_is_pinned() {
        for migration in MIGRATOR.iter() {
            assert!(
                LANDED.iter().any(|(v, _)| *v == migration.version),
                "migration {} is not pinned: append ({}, \"{}\") to LANDED once its text is final",
                migration.version,
                migration.version,
                hex::encode(&*migration.checksum)
            );
        }
    }

    #[test]
    fn earlier_texts_are_of_known_migrations_and_differ_from_today() {
        for (version, earlier) in EARLIER_TEXTS {
            let (_, current) = LANDED.iter().find(|(v, _)| v == version).expect("a landed migration");
            assert_ne!(current, earlier);
        }
    }
}
