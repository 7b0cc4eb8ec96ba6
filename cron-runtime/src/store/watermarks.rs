//! Queries on `cron_slot_watermarks`: how far the watchdog has accounted for each recurring
//! definition's slots. A trigger creates or re-arms the row whenever a definition becomes
//! active (see the migration); the watchdog alone advances, parks and deletes it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::domain::JobStatus;

/// A recurring definition with slots the watchdog has yet to account for.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Watched {
    pub id: Uuid,
    pub job_key: String,
    pub version: i32,
    pub target: String,
    pub cron_expression: String,
    pub timezone: String,
    pub status: JobStatus,
    pub active_since: DateTime<Utc>,
    /// When it stopped being active (paused or retired); `None` while active.
    pub active_until: Option<DateTime<Utc>>,
    /// Every slot at or before this has a row.
    pub checked_until: DateTime<Utc>,
    /// Stretches of earlier active windows still to account for (a pause and resume came
    /// before the watchdog reached them): each `(from, until]`, oldest first.
    pub backlog_from: Vec<DateTime<Utc>>,
    pub backlog_until: Vec<DateTime<Utc>>,
}

impl Watched {
    /// The backlog as `(from, until]` stretches, oldest first.
    pub fn backlog(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.backlog_from
            .iter()
            .copied()
            .zip(self.backlog_until.iter().copied())
            .collect()
    }
}

/// Where the watchdog got to with one definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Advance {
    pub id: Uuid,
    pub checked_until: DateTime<Utc>,
    /// The next slot to account for; `None` when the definition has none left (paused and
    /// done: re-armed by resume).
    pub next_check_at: Option<DateTime<Utc>>,
    /// Retired and done: the row can go.
    pub forget: bool,
    /// What is left of the backlog, `(from, until]` each.
    pub backlog: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Up to `limit` definitions whose next unaccounted slot is at or before `horizon`, locked
/// for this transaction (another pass skips them).
pub async fn due(conn: &mut PgConnection, horizon: DateTime<Utc>, limit: i64) -> Result<Vec<Watched>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT d.id, d.job_key, d.version, d.target, d.cron_expression, d.timezone, d.status, d.active_since,
                CASE WHEN d.status = 'active' THEN NULL ELSE COALESCE(d.paused_at, d.retired_at) END AS active_until,
                w.checked_until,
                ARRAY(SELECT lower(r) FROM unnest(w.backlog) AS r ORDER BY 1) AS backlog_from,
                ARRAY(SELECT upper(r) FROM unnest(w.backlog) AS r ORDER BY 1) AS backlog_until
         FROM cron_slot_watermarks w
         JOIN cron_job_definitions d ON d.id = w.job_definition_id
         WHERE w.next_check_at <= $1 AND d.schedule_type = 'recurring'
         ORDER BY w.next_check_at
         LIMIT $2
         FOR UPDATE OF w SKIP LOCKED",
    )
    .bind(horizon)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Records how far each definition is accounted for.
pub async fn advance(conn: &mut PgConnection, advances: &[Advance]) -> Result<(), StoreError> {
    let (kept, forgotten): (Vec<&Advance>, Vec<&Advance>) = advances.iter().partition(|a| !a.forget);
    if !kept.is_empty() {
        let ids: Vec<Uuid> = kept.iter().map(|a| a.id).collect();
        let checked: Vec<DateTime<Utc>> = kept.iter().map(|a| a.checked_until).collect();
        let next: Vec<Option<DateTime<Utc>>> = kept.iter().map(|a| a.next_check_at).collect();
        let backlogs: Vec<String> = kept.iter().map(|a| multirange(&a.backlog)).collect();
        sqlx::query(
            "UPDATE cron_slot_watermarks w
             SET checked_until = a.checked_until, next_check_at = a.next_check_at, backlog = a.backlog::tstzmultirange
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::text[])
                 AS a(id, checked_until, next_check_at, backlog)
             WHERE w.job_definition_id = a.id",
        )
        .bind(ids)
        .bind(checked)
        .bind(next)
        .bind(backlogs)
        .execute(&mut *conn)
        .await?;
    }
    if !forgotten.is_empty() {
        let ids: Vec<Uuid> = forgotten.iter().map(|a| a.id).collect();
        sqlx::query("DELETE FROM cron_slot_watermarks WHERE job_definition_id = ANY($1)")
            .bind(ids)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `(from, until]` stretches as a `tstzmultirange` literal.
fn multirange(stretches: &[(DateTime<Utc>, DateTime<Utc>)]) -> String {
    let ranges: Vec<String> = stretches
        .iter()
        .map(|(from, until)| format!("(\"{}\",\"{}\"]", from.to_rfc3339(), until.to_rfc3339()))
        .collect();
    format!("{{{}}}", ranges.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stretches_are_written_as_a_multirange_literal() {
        let at = |s| Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, s).unwrap();
        assert_eq!(multirange(&[]), "{}");
        assert_eq!(
            multirange(&[(at(1), at(2))]),
            "{(\"2026-03-01T12:00:01+00:00\",\"2026-03-01T12:00:02+00:00\"]}"
        );
    }
}
