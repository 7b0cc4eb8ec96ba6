//! Keeps the scheduler's view of the definitions in step with the database.
//!
//! One task owns every read of definitions, so updates reach the timer loop in the order
//! they happened: notifications (LISTEN/NOTIFY) within milliseconds of a change, a full
//! reload after every (re)connection (notifications sent while disconnected are lost), and
//! a reconcile every `CRON_RECONCILE_EVERY` that reloads only when the active set's
//! fingerprint changed, so an idle reconcile is one cheap query.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Event;
use crate::store::{definitions, Change, StoreError, CHANGES_CHANNEL};

type Fingerprint = (i64, Option<DateTime<Utc>>);

/// Watches for changes until `stop` fires, reconnecting with backoff; reads definitions
/// through `pool`, listens on a connection of `listen_pool`, and tells `listening` each time
/// the LISTEN is in place.
pub async fn run(
    pool: PgPool,
    listen_pool: PgPool,
    events: mpsc::UnboundedSender<Event>,
    reconcile_every: Duration,
    listening: std::sync::Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = listen(&listen_pool) => connected,
        };
        match connected {
            Ok(listener) => {
                listening.notify_one();
                delay = Duration::from_millis(100);
                let mut watcher = Watcher {
                    pool: pool.clone(),
                    events: events.clone(),
                    fingerprint: None,
                };
                if !watcher.watch(listener, reconcile_every, &stop).await {
                    return;
                }
            }
            Err(e) => {
                crate::metrics::database_error("listen for changes");
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot LISTEN for changes")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

struct Watcher {
    pool: PgPool,
    events: mpsc::UnboundedSender<Event>,
    /// The active set's fingerprint as of the last full reload; `None` forces a reload.
    fingerprint: Option<Fingerprint>,
}

impl Watcher {
    /// Handles one connection's notifications and reconciles until the connection drops
    /// (`true`: reconnect) or the scheduler stops (`false`).
    async fn watch(&mut self, mut listener: PgListener, reconcile_every: Duration, stop: &CancellationToken) -> bool {
        // The first tick is immediate: the full reload of a new connection.
        let mut reconcile = tokio::time::interval(reconcile_every);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return false,
                _ = reconcile.tick() => self.reconcile().await,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => match notification.payload().parse::<Change>() {
                        Ok(change) => self.apply(change).await,
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed change notification"),
                    },
                    Ok(None) => {
                        tracing::warn!("lost the LISTEN connection; reconnecting and reloading every definition");
                        return true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection failed; reconnecting and reloading every definition");
                        return true;
                    }
                },
            }
            if self.events.is_closed() {
                return false;
            }
        }
    }

    async fn apply(&mut self, change: Change) {
        match change {
            Change::Definition(id) => match definitions::get(&self.pool, id).await {
                Ok(definition) => self.send(Event::Upsert(Box::new(definition))),
                Err(StoreError::JobNotFound(_)) => self.send(Event::Remove(id)),
                Err(e) => {
                    crate::metrics::database_error("read a changed definition");
                    tracing::warn!(error = %e, %id, "cannot read a changed definition; reloading at the next reconcile");
                    self.fingerprint = None;
                }
            },
            Change::RunRequested(_) => self.send(Event::ClaimPending),
            Change::CancelRequested(run_id) => self.send(Event::CancelRun(run_id)),
        }
    }

    /// Reloads every active definition if the active set changed since the last reload,
    /// and asks for pending runs to be claimed (a run-now whose notification was lost).
    async fn reconcile(&mut self) {
        let current = match definitions::active_fingerprint(&self.pool).await {
            Ok(current) => current,
            Err(e) => {
                crate::metrics::database_error("reconcile definitions");
                tracing::warn!(error = %e, "reconcile failed; retrying at the next tick");
                return;
            }
        };
        self.send(Event::ClaimPending);
        if self.fingerprint == Some(current) {
            return;
        }
        match definitions::list_active(&self.pool).await {
            Ok(active) => {
                tracing::debug!(active = active.len(), "reloaded every active definition");
                self.send(Event::ReplaceAll(active));
                self.fingerprint = Some(current);
            }
            Err(e) => {
                crate::metrics::database_error("reload definitions");
                tracing::warn!(error = %e, "reload failed; retrying at the next tick")
            }
        }
    }

    fn send(&self, event: Event) {
        // A closed channel means the scheduler is stopping; `watch` notices and returns.
        let _ = self.events.send(event);
    }
}
