//! PostgreSQL access: one module per table, one function per named query.
//!
//! Every write the scheduler must see sends a notification on [`CHANGES_CHANNEL`] in the
//! same transaction, so a listener never hears of a change it cannot yet read.

pub mod definitions;
pub mod incidents;
pub mod instances;
pub mod locks;
pub mod page;
pub mod runs;
pub mod schema;
pub mod watermarks;

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::domain::{JobStatus, ManagedBy, RunStatus};

pub use page::{Cursor, InvalidCursor, Page};

/// The `LISTEN`/`NOTIFY` channel that carries [`Change`]s to the schedulers.
pub const CHANGES_CHANNEL: &str = "cronjobs_changes";

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no job with id {0}")]
    JobNotFound(Uuid),
    #[error("no run with id {0}")]
    RunNotFound(Uuid),
    #[error("job key {job_key:?} is already used by job {existing_id}, which is not retired: change it with new-version, or pick another key")]
    KeyTaken { job_key: String, existing_id: Uuid },
    #[error("job {id} is {actual}; {action} needs a job that is {required}")]
    WrongStatus {
        id: Uuid,
        actual: JobStatus,
        required: &'static str,
        action: &'static str,
    },
    #[error("{}", managed_elsewhere(job_key, *managed_by, action))]
    ManagedElsewhere {
        id: Uuid,
        job_key: String,
        managed_by: ManagedBy,
        action: &'static str,
    },
    #[error("no job with key {0:?} is live (active or paused); its versions are all retired, or it never existed")]
    NoLiveJob(String),
    #[error("run {id} is already {status}; only a pending or running run can be cancelled")]
    RunFinished { id: Uuid, status: RunStatus },
    #[error("no incident with id {0}")]
    IncidentNotFound(Uuid),
    #[error("incident {id} is already resolved ({how}); only an open incident can be acknowledged or resolved")]
    IncidentResolved { id: Uuid, how: String },
    #[error("incident {id} was already acknowledged by {by}; resolve it when it is fixed")]
    IncidentAcknowledged { id: Uuid, by: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn managed_elsewhere(job_key: &str, managed_by: ManagedBy, action: &str) -> String {
    match managed_by {
        ManagedBy::File => format!(
            "job {job_key:?} is managed by a jobs file: {action} it by changing the file and running `cronjobs apply` \
             (the API may pause, resume and run it)"
        ),
        ManagedBy::Api => format!(
            "job {job_key:?} is managed through the API, not by a jobs file: {action} it through the API, \
             or retire it there before adding it to the file"
        ),
    }
}

/// A change a scheduler must react to, as carried on [`CHANGES_CHANNEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A definition was created or changed status: re-read it and re-arm its timer.
    Definition(Uuid),
    /// A run was requested (run-now): claim pending runs.
    RunRequested(Uuid),
    /// An admin asked to cancel a running run: its scheduler stops it.
    CancelRequested(Uuid),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Definition(id) => write!(f, "definition:{id}"),
            Change::RunRequested(id) => write!(f, "run:{id}"),
            Change::CancelRequested(id) => write!(f, "cancel:{id}"),
        }
    }
}

impl FromStr for Change {
    type Err = String;

    fn from_str(payload: &str) -> Result<Self, Self::Err> {
        let (kind, id) = payload
            .split_once(':')
            .ok_or_else(|| format!("malformed change {payload:?}"))?;
        let id = Uuid::parse_str(id).map_err(|e| format!("malformed change {payload:?}: {e}"))?;
        match kind {
            "definition" => Ok(Change::Definition(id)),
            "run" => Ok(Change::RunRequested(id)),
            "cancel" => Ok(Change::CancelRequested(id)),
            _ => Err(format!("unknown change kind in {payload:?}")),
        }
    }
}

/// Sends `change` on [`CHANGES_CHANNEL`]; delivered when the surrounding transaction commits.
pub(crate) async fn notify(conn: &mut sqlx::PgConnection, change: Change) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(change.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

impl StoreError {
    /// The statement gave up waiting for a lock (`lock_timeout`, SQLSTATE 55P03): the database
    /// answered, another transaction held what it needed.
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, StoreError::Database(e)
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03"))
    }
}

/// The name of the constraint a database error violated, if any.
pub(crate) fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    error.as_database_error().and_then(|e| e.constraint())
}

/// Opens a connection pool to `url`.
pub async fn connect(url: &crate::config::Secret) -> Result<sqlx::PgPool, sqlx::Error> {
    connect_with(url, 10).await
}

/// Opens a pool of at most `max_connections` connections.
pub async fn connect_with(url: &crate::config::Secret, max_connections: u32) -> Result<sqlx::PgPool, sqlx::Error> {
    pool_options(max_connections).connect(url.expose()).await
}

/// The database's clock.
pub async fn database_now(pool: &sqlx::PgPool) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(pool).await?)
}

/// A small pool of its own on `pool`'s database, connected lazily: work that must not queue
/// behind a herd of targets waiting for `pool`'s connections gets one.
pub fn side_pool(pool: &sqlx::PgPool, max_connections: u32) -> sqlx::PgPool {
    pool_options(max_connections).connect_lazy_with((*pool.connect_options()).clone())
}

/// A connection idle for longer than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

fn pool_options(max_connections: u32) -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        // sqlx pings a connection when it returns to the pool (and drops it if that fails), and
        // by default again when it hands it out: for a herd of targets, each taking a connection
        // another returned a moment ago, a second round trip per query. Ping again only the ones
        // idle long enough to have been cut since (a restarted database, a proxy's timeout).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_round_trips_through_its_payload() {
        let id = Uuid::now_v7();
        for change in [
            Change::Definition(id),
            Change::RunRequested(id),
            Change::CancelRequested(id),
        ] {
            assert_eq!(change.to_string().parse::<Change>(), Ok(change));
        }
        assert!("job:nope".parse::<Change>().is_err());
        assert!("definition:nope".parse::<Change>().is_err());
    }
}
