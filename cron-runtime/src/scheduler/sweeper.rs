//! The stale sweep: fails `running` runs whose scheduler stopped heartbeating, whichever
//! replica ran them. Runs at startup and periodically.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::executor::log_finished;
use crate::store::{runs, StoreError};

/// Fails every run without a heartbeat for `stale_after`, logging each.
pub async fn sweep_once(pool: &PgPool, stale_after: Duration) -> Result<usize, StoreError> {
    let failed = runs::fail_stale(pool, stale_after).await?;
    for run in &failed {
        crate::metrics::run_stale(run);
        log_finished(run);
    }
    Ok(failed.len())
}

/// How often to sweep: often enough to catch a stale run soon after it turns stale.
pub fn interval(stale_after: Duration) -> Duration {
    (stale_after / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Sweeps every [`interval`] until `stop` fires.
pub async fn run(pool: PgPool, stale_after: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval(stale_after));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the startup sweep already ran
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = sweep_once(&pool, stale_after).await {
            crate::metrics::database_error("sweep stale runs");
            tracing::warn!(error = %e, "stale sweep failed; retrying at the next tick");
        }
    }
}
