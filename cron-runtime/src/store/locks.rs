//! The cluster-wide advisory locks, each held for one transaction. One place names them all, so
//! no two uses can pick the same number by accident.

use sqlx::PgConnection;

use super::StoreError;

/// `cronjobs apply`: one apply at a time ("cronappl").
pub const APPLY: i64 = 0x6372_6f6e_6170_706c;
/// A watchdog pass: one at a time across the cluster ("cronwdog").
pub const WATCHDOG_PASS: i64 = 0x6372_6f6e_7764_6f67;

/// Waits for `lock` and holds it until the transaction of `conn` ends.
pub async fn hold(conn: &mut PgConnection, lock: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(conn)
        .await?;
    Ok(())
}
