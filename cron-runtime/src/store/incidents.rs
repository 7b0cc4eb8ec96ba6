//! Queries on `cron_incidents` and `cron_alert_outbox` (SPEC §12).
//!
//! Incident states, each transition with its one owner; every one is written in the same
//! transaction as the run outcome (or watchdog pass) that causes it, with one outbox row per
//! configured webhook endpoint:
//!
//! | from     | to       | owner                                                                 |
//! |----------|----------|-----------------------------------------------------------------------|
//! | (new)    | open     | whoever records the `CRON_ALERT_AFTER_FAILURES`th consecutive failed or missed run of the key, or a stale one ([`record_outcomes`]) |
//! | open     | open     | the same, for every further bad run: count, last run, last error (no event) |
//! | open     | resolved | whoever records the key's next succeeded run (`success`); pause (`paused`); retire (`retired`) |
//! | (new)    | open     | the watchdog: no scheduler alive for `CRON_NO_SCHEDULER_AFTER` while active jobs exist (`no_scheduler`) |
//! | open     | resolved | the watchdog, when a scheduler is alive again (`scheduler_up`)        |
//! | open     | open, acknowledged | an admin: `POST /incidents/{id}/acknowledge` ([`acknowledge`]) |
//! | open     | resolved | an admin: `POST /incidents/{id}/resolve` (`admin`, [`resolve_by_hand`]) |
//!
//! Outbox rows: (new) → delivered / given up, by the delivery task of any process
//! (the alerts' webhook delivery).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::page::push_keyset_tail;
use super::{instances, Cursor, Page, StoreError};
use crate::domain::incident::{self, Incident, IncidentEvent, Policy, Recorded, Transition};
use crate::domain::{JobRun, RunReason, RunStatus};

/// Filters of the incident list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    /// `open` or `resolved`.
    pub status: Option<String>,
    pub job_key: Option<String>,
}

/// A bad run: counts toward (or opens) an incident. A run a graceful shutdown interrupted
/// (a deploy) is not: it says nothing about the job.
fn is_bad(run: &JobRun) -> bool {
    matches!(run.status, RunStatus::Failed | RunStatus::Missed) && run.reason != Some(RunReason::Shutdown)
}

/// Opens, updates and resolves the incidents of the keys of `runs` (just recorded, in the
/// caller's transaction), and writes the outbox rows of what opened or resolved.
///
/// The success path costs one statement per batch (the resolve, which only matches open
/// incidents through a partial unique index); a batch of only skipped or cancelled runs none.
pub async fn record_outcomes(
    conn: &mut PgConnection,
    runs: &[JobRun],
    policy: &Policy,
) -> Result<Vec<Transition>, StoreError> {
    let mut by_key: BTreeMap<&str, Vec<&JobRun>> = BTreeMap::new();
    for run in runs.iter().filter(|r| r.status == RunStatus::Succeeded || is_bad(r)) {
        by_key.entry(&run.job_key).or_default().push(run);
    }
    if by_key.is_empty() {
        return Ok(Vec::new());
    }
    let mut transitions = Vec::new();
    let mut successes: Vec<&JobRun> = Vec::new();
    let mut failing: Vec<Vec<&JobRun>> = Vec::new();
    for runs in by_key.values_mut() {
        runs.sort_by_key(|r| (r.scheduled_at, r.id));
        let last_success = runs.iter().rposition(|r| r.status == RunStatus::Succeeded);
        if let Some(i) = last_success {
            successes.push(runs[i]);
        }
        let bad: Vec<&JobRun> = runs[last_success.map_or(0, |i| i + 1)..].to_vec();
        if !bad.is_empty() {
            failing.push(bad);
        }
    }
    if !successes.is_empty() {
        transitions.extend(resolve_on_success(conn, &successes, policy).await?);
    }
    for bad in failing {
        if let Some(opened) = record_failures(conn, &bad, policy).await? {
            transitions.push(opened);
        }
    }
    Ok(transitions)
}

/// open → resolved (`success`) for the keys of `successes`: one statement, matching open
/// incidents only.
async fn resolve_on_success(
    conn: &mut PgConnection,
    successes: &[&JobRun],
    policy: &Policy,
) -> Result<Vec<Transition>, StoreError> {
    let keys: Vec<&str> = successes.iter().map(|r| r.job_key.as_str()).collect();
    let ids: Vec<Uuid> = successes.iter().map(|r| r.id).collect();
    let resolved: Vec<Incident> = sqlx::query_as(
        "UPDATE cron_incidents i
         SET status = 'resolved', resolved_at = clock_timestamp(), resolved_by = 'success',
             resolved_run_id = s.run_id, updated_at = clock_timestamp()
         FROM UNNEST($1::text[], $2::uuid[]) AS s(job_key, run_id)
         WHERE i.status = 'open' AND i.kind = 'job' AND i.job_key = s.job_key
         RETURNING i.*",
    )
    .bind(&keys)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut transitions = Vec::with_capacity(resolved.len());
    for incident in resolved {
        let run = successes.iter().find(|r| Some(&r.job_key) == incident.job_key.as_ref());
        let transition = Transition {
            event: IncidentEvent::Resolved,
            incident,
            run: run.map(|r| (*r).clone()),
        };
        write_outbox(conn, &transition, policy).await?;
        transitions.push(transition);
    }
    Ok(transitions)
}

/// Counts `bad` (consecutive bad runs of one key, oldest first) into its open incident, or
/// opens one when the key has failed `after_failures` times in a row (or a run went stale).
async fn record_failures(
    conn: &mut PgConnection,
    bad: &[&JobRun],
    policy: &Policy,
) -> Result<Option<Transition>, StoreError> {
    let last = bad[bad.len() - 1];
    if update_open(conn, last, bad.len()).await? {
        return Ok(None);
    }
    let stale = bad.iter().any(|r| r.reason == Some(RunReason::Stale));
    let (failures, first_run_id) = if policy.after_failures <= 1 || stale {
        (bad.len() as i64, bad[0].id)
    } else {
        consecutive_failures(conn, &last.job_key).await?
    };
    if failures < i64::from(policy.after_failures) && !stale {
        return Ok(None);
    }
    let opened: Option<Incident> = sqlx::query_as(
        "INSERT INTO cron_incidents
             (id, kind, job_key, job_id, job_version, target, failures, first_run_id, last_run_id,
              last_error, last_reason)
         SELECT $1, 'job', $2, $3, $4, $5, $6, $7, $8, $9, $10
         -- A retired key's recurring runs (one in flight at the retire, a slot the watchdog
         -- records after it) open nothing: nobody waits for its recovery, so nothing would
         -- ever resolve it. A one-time job retires with its run: its failure still counts.
         WHERE EXISTS (SELECT 1 FROM cron_job_definitions d
                       WHERE d.job_key = $2 AND (d.status <> 'retired' OR (d.id = $3 AND d.schedule_type = 'one_time')))
         ON CONFLICT (job_key) WHERE status = 'open' AND kind = 'job' DO NOTHING
         RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(&last.job_key)
    .bind(last.job_definition_id)
    .bind(last.job_version)
    .bind(&last.target)
    .bind(i32::try_from(failures).unwrap_or(i32::MAX))
    .bind(first_run_id)
    .bind(last.id)
    .bind(&last.error)
    .bind(last.reason.map(RunReason::as_str))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(incident) = opened else {
        // A concurrent transaction (the watchdog, another replica) opened it first, or the key
        // is retired.
        update_open(conn, last, bad.len()).await?;
        return Ok(None);
    };
    let transition = Transition {
        event: IncidentEvent::Opened,
        incident,
        run: Some(last.clone()),
    };
    write_outbox(conn, &transition, policy).await?;
    Ok(Some(transition))
}

/// open → open: `n` more bad runs, the last being `last`. `false` if no incident is open.
async fn update_open(conn: &mut PgConnection, last: &JobRun, n: usize) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE cron_incidents
         SET failures = failures + $2, last_run_id = $3, last_error = $4, last_reason = $5,
             updated_at = clock_timestamp()
         WHERE status = 'open' AND kind = 'job' AND job_key = $1",
    )
    .bind(&last.job_key)
    .bind(i32::try_from(n).unwrap_or(i32::MAX))
    .bind(last.id)
    .bind(&last.error)
    .bind(last.reason.map(RunReason::as_str))
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() > 0)
}

/// The key's bad runs since its last success (and since its last incident closed), and the
/// first of them. Only read on the failure path, when more than one failure opens an incident.
async fn consecutive_failures(conn: &mut PgConnection, job_key: &str) -> Result<(i64, Uuid), StoreError> {
    let (count, first): (i64, Option<Uuid>) = sqlx::query_as(
        "SELECT count(*), (array_agg(id ORDER BY scheduled_at, id))[1]
         FROM cron_job_runs
         WHERE job_key = $1 AND status IN ('failed', 'missed') AND reason IS DISTINCT FROM 'shutdown'
           -- A slot counts once: an attempt a retry followed is not its last.
           AND next_retry_at IS NULL
           AND scheduled_at > COALESCE(
               (SELECT max(scheduled_at) FROM cron_job_runs WHERE job_key = $1 AND status = 'succeeded'),
               '-infinity')
           AND finished_at > COALESCE(
               (SELECT max(resolved_at) FROM cron_incidents WHERE job_key = $1 AND kind = 'job'),
               '-infinity')",
    )
    .bind(job_key)
    .fetch_one(conn)
    .await?;
    Ok((count, first.unwrap_or_else(Uuid::nil)))
}

/// open → resolved (`paused` or `retired`) for `job_key`'s open incident, if any.
pub async fn resolve_for_key(
    conn: &mut PgConnection,
    job_key: &str,
    resolved_by: &str,
    policy: &Policy,
) -> Result<Option<Transition>, StoreError> {
    let resolved: Option<Incident> = sqlx::query_as(
        "UPDATE cron_incidents
         SET status = 'resolved', resolved_at = clock_timestamp(), resolved_by = $2, updated_at = clock_timestamp()
         WHERE status = 'open' AND kind = 'job' AND job_key = $1
         RETURNING *",
    )
    .bind(job_key)
    .bind(resolved_by)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(incident) = resolved else {
        return Ok(None);
    };
    let transition = Transition {
        event: IncidentEvent::Resolved,
        incident,
        run: None,
    };
    write_outbox(conn, &transition, policy).await?;
    Ok(Some(transition))
}

/// Opens or resolves the cluster incident `no_scheduler` (the watchdog, once per pass). One
/// read when nothing changes; writes only on a transition.
pub async fn check_no_scheduler(conn: &mut PgConnection, policy: &Policy) -> Result<Option<Transition>, StoreError> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM cron_scheduler_instances i WHERE {alive}),
                EXISTS (SELECT 1 FROM cron_job_definitions WHERE status = 'active'),
                (SELECT since FROM cron_alert_watch WHERE name = 'no_scheduler'),
                EXISTS (SELECT 1 FROM cron_incidents WHERE kind = 'no_scheduler' AND status = 'open'),
                clock_timestamp()",
        alive = instances::ALIVE
    );
    let (alive, active_jobs, since, open, now): (bool, bool, Option<DateTime<Utc>>, bool, DateTime<Utc>) =
        sqlx::query_as(&sql).fetch_one(&mut *conn).await?;
    if alive || !active_jobs {
        if since.is_some() {
            sqlx::query("DELETE FROM cron_alert_watch WHERE name = 'no_scheduler'")
                .execute(&mut *conn)
                .await?;
        }
        if !(alive && open) {
            return Ok(None);
        }
        let resolved: Option<Incident> = sqlx::query_as(
            "UPDATE cron_incidents
             SET status = 'resolved', resolved_at = clock_timestamp(), resolved_by = 'scheduler_up',
                 updated_at = clock_timestamp()
             WHERE status = 'open' AND kind = 'no_scheduler'
             RETURNING *",
        )
        .fetch_optional(&mut *conn)
        .await?;
        return finish_cluster(conn, resolved, IncidentEvent::Resolved, policy).await;
    }
    let Some(since) = since else {
        // Since the last scheduler was seen (a killed one leaves its row), or from now.
        sqlx::query(
            "INSERT INTO cron_alert_watch (name, since)
             SELECT 'no_scheduler', LEAST(clock_timestamp(),
                 COALESCE((SELECT max(last_seen_at) FROM cron_scheduler_instances), clock_timestamp()))
             ON CONFLICT DO NOTHING",
        )
        .execute(&mut *conn)
        .await?;
        return Ok(None);
    };
    let waited = (now - since).to_std().unwrap_or(Duration::ZERO);
    if open || waited < policy.no_scheduler_after {
        return Ok(None);
    }
    let message = format!(
        "no scheduler instance has been alive since {} while active jobs exist: no job runs",
        since.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let opened: Option<Incident> = sqlx::query_as(
        "INSERT INTO cron_incidents (id, kind, last_error, last_reason)
         VALUES ($1, 'no_scheduler', $2, 'no_scheduler')
         ON CONFLICT (kind) WHERE status = 'open' AND kind = 'no_scheduler' DO NOTHING
         RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(message)
    .fetch_optional(&mut *conn)
    .await?;
    finish_cluster(conn, opened, IncidentEvent::Opened, policy).await
}

async fn finish_cluster(
    conn: &mut PgConnection,
    incident: Option<Incident>,
    event: IncidentEvent,
    policy: &Policy,
) -> Result<Option<Transition>, StoreError> {
    let Some(incident) = incident else {
        return Ok(None);
    };
    let transition = Transition {
        event,
        incident,
        run: None,
    };
    write_outbox(conn, &transition, policy).await?;
    Ok(Some(transition))
}

/// One outbox row per configured endpoint for `transition`, all with the same event id and body.
async fn write_outbox(conn: &mut PgConnection, transition: &Transition, policy: &Policy) -> Result<(), StoreError> {
    if policy.endpoints.is_empty() {
        return Ok(());
    }
    let event_id = Uuid::now_v7();
    let body = incident::payload(event_id, transition).to_string();
    let ids: Vec<Uuid> = policy.endpoints.iter().map(|_| Uuid::now_v7()).collect();
    let endpoints: Vec<&str> = policy.endpoints.iter().map(|e| e.id.as_str()).collect();
    sqlx::query(
        "INSERT INTO cron_alert_outbox (id, event_id, incident_id, event, endpoint, body)
         SELECT e.id, $2, $3, $4, e.endpoint, $5 FROM UNNEST($1::uuid[], $6::text[]) AS e(id, endpoint)",
    )
    .bind(&ids)
    .bind(event_id)
    .bind(transition.incident.id)
    .bind(transition.event.as_str())
    .bind(&body)
    .bind(&endpoints)
    .execute(conn)
    .await?;
    Ok(())
}

/// open → acknowledged by `actor` with `note` (it stays open: the next success still resolves
/// it), with its outbox rows. An incident acknowledged already, or resolved, is a conflict.
pub async fn acknowledge(
    pool: &PgPool,
    id: Uuid,
    actor: &str,
    note: &str,
    policy: &Policy,
) -> Result<Recorded<Incident>, StoreError> {
    let mut tx = pool.begin().await?;
    let incident = lock_open(&mut tx, id).await?;
    if let Some(by) = incident.acknowledged_by {
        return Err(StoreError::IncidentAcknowledged { id, by });
    }
    let acknowledged: Incident = sqlx::query_as(
        "UPDATE cron_incidents
         SET acknowledged_at = clock_timestamp(), acknowledged_by = $2, acknowledged_note = $3,
             updated_at = clock_timestamp()
         WHERE id = $1
         RETURNING *",
    )
    .bind(id)
    .bind(actor)
    .bind(note)
    .fetch_one(&mut *tx)
    .await?;
    recorded(tx, acknowledged, IncidentEvent::Acknowledged, policy).await
}

/// open → resolved by `actor` with `note` (`resolved_by` = `admin`), with its outbox rows:
/// for what no run will resolve (a failed one-time job, a deploy that interrupted a run).
/// The key's next bad runs count from here, as after any resolve.
pub async fn resolve_by_hand(
    pool: &PgPool,
    id: Uuid,
    actor: &str,
    note: &str,
    policy: &Policy,
) -> Result<Recorded<Incident>, StoreError> {
    let mut tx = pool.begin().await?;
    lock_open(&mut tx, id).await?;
    let resolved: Incident = sqlx::query_as(
        "UPDATE cron_incidents
         SET status = 'resolved', resolved_at = clock_timestamp(), resolved_by = 'admin', resolver = $2,
             resolved_note = $3, updated_at = clock_timestamp()
         WHERE id = $1
         RETURNING *",
    )
    .bind(id)
    .bind(actor)
    .bind(note)
    .fetch_one(&mut *tx)
    .await?;
    recorded(tx, resolved, IncidentEvent::Resolved, policy).await
}

/// Locks incident `id`, which must exist and be open.
async fn lock_open(conn: &mut PgConnection, id: Uuid) -> Result<Incident, StoreError> {
    let incident: Option<Incident> = sqlx::query_as("SELECT * FROM cron_incidents WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match incident {
        None => Err(StoreError::IncidentNotFound(id)),
        Some(i) if i.status != "open" => Err(StoreError::IncidentResolved {
            id,
            how: i.resolved_by.unwrap_or_default(),
        }),
        Some(i) => Ok(i),
    }
}

/// Writes the outbox rows of an incident's `event`, commits, and returns it to announce.
async fn recorded(
    mut tx: sqlx::Transaction<'_, Postgres>,
    incident: Incident,
    event: IncidentEvent,
    policy: &Policy,
) -> Result<Recorded<Incident>, StoreError> {
    let transition = Transition {
        event,
        incident: incident.clone(),
        run: None,
    };
    write_outbox(&mut tx, &transition, policy).await?;
    tx.commit().await?;
    Ok(Recorded {
        value: incident,
        transitions: vec![transition],
    })
}

/// Reads one incident.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Incident>, StoreError> {
    Ok(sqlx::query_as("SELECT * FROM cron_incidents WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// Lists incidents newest first (by `opened_at`), `limit` at a time, continuing after `after`.
pub async fn list(
    pool: &PgPool,
    filter: &IncidentFilter,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Page<Incident>, StoreError> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT * FROM cron_incidents WHERE TRUE");
    if let Some(status) = &filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(job_key) = &filter.job_key {
        query.push(" AND job_key = ").push_bind(job_key);
    }
    push_keyset_tail(&mut query, "opened_at", after, limit);
    let rows: Vec<Incident> = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, limit, |i| Cursor {
        at: i.opened_at,
        id: i.id,
    }))
}

/// An outbox row claimed for one delivery attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event: String,
    pub endpoint: String,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Claims the oldest due delivery to one of `endpoints` for one attempt: its next attempt is
/// pushed `lease` ahead, so no other process (or a crash of this one) delivers it meanwhile.
pub async fn claim_delivery(
    pool: &PgPool,
    endpoints: &[&str],
    lease: Duration,
) -> Result<Option<Delivery>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE cron_alert_outbox
         SET attempts = attempts + 1, next_attempt_at = clock_timestamp() + make_interval(secs => $2)
         WHERE id = (
             SELECT id FROM cron_alert_outbox
             WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= clock_timestamp()
               AND endpoint = ANY($1)
             ORDER BY next_attempt_at
             LIMIT 1
             FOR UPDATE SKIP LOCKED
         )
         RETURNING id, event_id, event, endpoint, body, attempts, created_at",
    )
    .bind(endpoints)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?)
}

/// (claimed) → delivered.
pub async fn mark_delivered(pool: &PgPool, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE cron_alert_outbox SET delivered_at = clock_timestamp(), last_error = NULL WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// (claimed) → retried after `retry_in`, or given up when `give_up` says so.
pub async fn mark_failed(
    pool: &PgPool,
    id: Uuid,
    error: &str,
    retry_in: Duration,
    give_up: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cron_alert_outbox
         SET last_error = $2, next_attempt_at = clock_timestamp() + make_interval(secs => $3),
             given_up_at = CASE WHEN $4 THEN clock_timestamp() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_in.as_secs_f64())
    .bind(give_up)
    .execute(pool)
    .await?;
    Ok(())
}
