//! The sweeper: fails `running` runs nobody is executing any more, whichever replica ran
//! them. Runs at startup and every heartbeat interval:
//! - runs of a scheduler instance that is no longer alive (`scheduler_lost`), within one
//!   heartbeat interval of it turning dead (5 of its heartbeat intervals without a sign);
//! - runs without a heartbeat for `CRON_STALE_AFTER` (`stale`): a run whose own heartbeats
//!   stopped while its instance lives, or whose instance left no row.
//!
//! After an outage (a sweep failed), liveness is counted from the sweeper's reconnection:
//! nobody could heartbeat while the database was away, so every instance gets its whole
//! window again. An instance cut off longer than that fenced its own runs already
//! ([`super::fence`]); one that heartbeats again in time keeps them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::incident::Policy;
use crate::store::{self, instances, runs, StoreError};
use crate::telemetry::log_finished;

/// Fails every lost or stale run, logging each; `reconnected_at` as in [`runs::fail_lost`].
pub async fn sweep_once(
    pool: &PgPool,
    stale_after: Duration,
    reconnected_at: Option<DateTime<Utc>>,
    policy: &Policy,
) -> Result<usize, StoreError> {
    let lost = runs::fail_lost(pool, reconnected_at, policy).await?.announce();
    let stale = runs::fail_stale(pool, stale_after, reconnected_at, policy)
        .await?
        .announce();
    for run in &stale {
        crate::metrics::run_stale(run);
    }
    for run in lost.iter().chain(&stale) {
        log_finished(run);
    }
    Ok(lost.len() + stale.len())
}

/// How often rows of instances dead for a day are removed (they only clutter the list).
const FORGET_EVERY: Duration = Duration::from_secs(600);

/// Sweeps every `every` (the heartbeat interval) until `stop` fires; forgets instances dead
/// for a day every [`FORGET_EVERY`].
pub async fn run(pool: PgPool, stale_after: Duration, every: Duration, policy: Arc<Policy>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the startup sweep already ran
    let mut forgotten_at = tokio::time::Instant::now();
    // `Some(None)`: the last sweep failed, the reconnection time is still to be read.
    let mut reconnected_at: Option<Option<DateTime<Utc>>> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if reconnected_at == Some(None) {
            match store::database_now(&pool).await {
                Ok(now) => {
                    tracing::info!("database reachable again: every scheduler gets its liveness window from now");
                    reconnected_at = Some(Some(now));
                }
                Err(_) => continue,
            }
        }
        match sweep_once(&pool, stale_after, reconnected_at.flatten(), &policy).await {
            Ok(_) => {}
            Err(e) => {
                crate::metrics::database_error("sweep dead runs");
                tracing::warn!(error = %e, "sweep failed; retrying at the next tick");
                reconnected_at = Some(None);
            }
        }
        if forgotten_at.elapsed() >= FORGET_EVERY {
            forgotten_at = tokio::time::Instant::now();
            if let Err(e) = instances::forget_dead(&pool).await {
                tracing::warn!(error = %e, "cannot forget dead scheduler instances; retrying later");
            }
        }
    }
}
