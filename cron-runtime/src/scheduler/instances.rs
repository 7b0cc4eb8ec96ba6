//! This scheduler's row in `cron_scheduler_instances` (SPEC §11): written before it starts
//! any run, refreshed every heartbeat interval, marked stopping on SIGTERM and deleted after a
//! clean exit. Other processes read it to tell whether this instance is alive (its runs are
//! failed `scheduler_lost` once it is not) and which targets a live scheduler can run.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::retry::retry_until;
use crate::registry;
use crate::store::instances::{self, Registration};

/// This scheduler, as recorded in the database.
pub struct Instance {
    pool: PgPool,
    name: String,
    hostname: String,
    targets: Vec<&'static str>,
    heartbeat_every: Duration,
}

impl Instance {
    /// The instance `name`, heartbeating every `heartbeat_every` through `pool`.
    pub fn new(pool: PgPool, name: String, heartbeat_every: Duration) -> Self {
        Instance {
            pool,
            name,
            hostname: super::hostname(),
            targets: registry::all().iter().map(|t| t.key).collect(),
            heartbeat_every,
        }
    }

    fn registration(&self) -> Registration<'_> {
        let build = crate::build_info();
        Registration {
            instance: &self.name,
            hostname: &self.hostname,
            version: build.version,
            commit: build.commit,
            targets: &self.targets,
            heartbeat_every: self.heartbeat_every,
        }
    }

    /// Writes the row, retrying while the database is away; `false` if `stop` fired first.
    pub async fn register(&self, stop: &CancellationToken) -> bool {
        let me = self.registration();
        retry_until(stop, "register the scheduler instance", || {
            instances::heartbeat(&self.pool, &me)
        })
        .await
        .is_some()
    }

    /// Refreshes the row every heartbeat interval until `stop` fires.
    pub async fn heartbeat_loop(&self, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(self.heartbeat_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(e) = instances::heartbeat(&self.pool, &self.registration()).await {
                crate::metrics::database_error("refresh the scheduler instance");
                tracing::warn!(error = %e, "cannot refresh this scheduler's instance row; retrying at the next tick");
            }
        }
    }

    /// Records SIGTERM, so no process counts on this instance for new runs (best effort).
    pub async fn mark_stopping(&self) {
        if let Err(e) = instances::mark_stopping(&self.pool, &self.name).await {
            tracing::warn!(error = %e, "cannot mark this scheduler as stopping");
        }
    }

    /// Deletes the row after a clean exit (best effort: a row left behind reads as dead).
    pub async fn remove(&self) {
        if let Err(e) = instances::remove(&self.pool, &self.name).await {
            tracing::warn!(error = %e, "cannot remove this scheduler's instance row");
        }
    }
}
