//! This scheduler's row in `cron_scheduler_instances` (SPEC §11): written before it starts
//! any run, refreshed every heartbeat interval, marked stopping on SIGTERM and deleted after a
//! clean exit. Other processes read it to tell whether this instance is alive (its runs are
//! failed `scheduler_lost` once it is not) and which targets a live scheduler can run.
//!
//! Each heartbeat also measures this process's clock against the database's (recorded in the
//! row, exported as a metric, warned about above a second; the timer loop fires by the
//! database's clock), tells the [`Fence`] it committed, and publishes the settings that every
//! process must agree on, warning at start when a live peer reads them differently.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::fence::Fence;
use super::retry::retry_until;
use crate::registry;
use crate::store::instances::{self, Registration};

/// A clock offset above this is logged as a warning.
const SKEW_WARNING_MS: i64 = 1_000;
/// A heartbeat slower than this does not measure the clock offset.
const MAX_MEASURED_ROUND_TRIP_MS: i64 = 200;

/// This process's clock minus the database's, in milliseconds: shared with the timer loop,
/// which fires slots when the database's clock reaches them.
#[derive(Debug, Default)]
pub struct ClockOffset(AtomicI64);

impl ClockOffset {
    /// The database's time now, as this process estimates it.
    pub fn database_now(&self) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::milliseconds(self.0.load(Ordering::Relaxed))
    }

    fn millis(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Records a measurement: the database said `database` between `sent` and `received`.
    fn measure(&self, sent: DateTime<Utc>, received: DateTime<Utc>, database: DateTime<Utc>) -> i64 {
        let midpoint = sent + (received - sent) / 2;
        let offset = (midpoint - database).num_milliseconds();
        self.0.store(offset, Ordering::Relaxed);
        offset
    }
}

/// How registering went.
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    /// The database was unreachable at first.
    pub after_outage: bool,
}

/// This scheduler, as recorded in the database.
pub struct Instance {
    pool: PgPool,
    name: String,
    hostname: String,
    targets: Vec<&'static str>,
    heartbeat_every: Duration,
    settings: serde_json::Value,
    clock: Arc<ClockOffset>,
    fence: Arc<Fence>,
}

impl Instance {
    /// The instance `name`, heartbeating every `heartbeat_every` through `pool`, publishing
    /// `settings`, keeping `clock` measured and `fence` told of every committed heartbeat.
    pub fn new(
        pool: PgPool,
        name: String,
        heartbeat_every: Duration,
        settings: serde_json::Value,
        clock: Arc<ClockOffset>,
        fence: Arc<Fence>,
    ) -> Self {
        Instance {
            pool,
            name,
            hostname: super::hostname(),
            targets: registry::all().iter().map(|t| t.key).collect(),
            heartbeat_every,
            settings,
            clock,
            fence,
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
            clock_offset_ms: Some(self.clock.millis()),
            settings: &self.settings,
        }
    }

    /// One heartbeat: refreshes the row, measures the clock, tells the fence.
    async fn beat(&self) -> Result<(), crate::store::StoreError> {
        // The connection first: a wait for the pool must not count as the round trip.
        let mut conn = self.pool.acquire().await?;
        let (sent_at, sent) = (Instant::now(), Utc::now());
        let database = instances::heartbeat(&mut *conn, &self.registration()).await?;
        let received = Utc::now();
        self.fence.instance_committed(sent_at);
        let offset = match received - sent < chrono::Duration::milliseconds(MAX_MEASURED_ROUND_TRIP_MS) {
            true => self.clock.measure(sent, received, database),
            // A slow round trip says little about the offset: keep the last good one.
            false => self.clock.millis(),
        };
        crate::metrics::clock_offset(offset);
        if offset.abs() > SKEW_WARNING_MS {
            tracing::warn!(
                clock_offset_ms = offset,
                "this host's clock differs from the database's by more than a second: slots fire by the database's clock; fix the host's time sync (NTP)"
            );
        }
        Ok(())
    }

    /// Writes the row, retrying while the database is away; `None` if `stop` fired first.
    /// Then warns about live peers that read the shared settings differently.
    pub async fn register(&self, stop: &CancellationToken) -> Option<Registered> {
        let mut attempts = 0u32;
        let registered = retry_until(stop, "register the scheduler instance", || {
            attempts += 1;
            self.beat()
        })
        .await
        .map(|()| Registered {
            after_outage: attempts > 1,
        });
        if registered.is_some() {
            match instances::disagreeing(&self.pool, &self.name, &self.settings).await {
                Ok(peers) => {
                    for (peer, theirs) in peers {
                        tracing::warn!(
                            %peer, ours = %self.settings, %theirs,
                            "a live scheduler reads CRON_MISSED_AFTER, CRON_STALE_AFTER or the webhook URLs differently: give every process the same settings"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot compare settings with the other schedulers"),
            }
        }
        registered
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
            if let Err(e) = self.beat().await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_offset_is_measured_at_the_round_trips_midpoint() {
        let clock = ClockOffset::default();
        let at = |ms| Utc.timestamp_millis_opt(ms).unwrap();
        // Sent at 1000, answered at 1100; the database said 2050: its clock is a second ahead.
        assert_eq!(clock.measure(at(1_000), at(1_100), at(2_050)), -1_000);
        assert_eq!(clock.measure(at(1_000), at(1_100), at(550)), 500);
        assert_eq!(clock.millis(), 500);
    }
}
