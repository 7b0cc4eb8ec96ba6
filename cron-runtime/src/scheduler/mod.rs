//! The scheduler: fires jobs at their times and records every run (SPEC §8).
//!
//! Components, one per file:
//! - [`timers`]: one min-heap of next fire times driving one `sleep_until` (no polling, no
//!   task per job);
//! - [`watcher`]: keeps the armed set in step with the database (LISTEN/NOTIFY, reconcile);
//! - [`executor`]: runs targets under their timeout, heartbeats, records outcomes;
//! - [`sweeper`]: fails runs whose scheduler stopped heartbeating;
//! - [`http`]: `/healthz` and `/metrics` on `PORT`, when set.
//!
//! Who moves a run between states (the state machine itself is in [`crate::domain::run`]):
//!
//! | transition                  | owner                                                  |
//! |-----------------------------|--------------------------------------------------------|
//! | (new) → running / skipped   | the timer loop, at a slot (`store::runs::insert_scheduled`) |
//! | (new) → pending             | the API's run-now                                      |
//! | pending → running           | any replica's pending claim                            |
//! | running → succeeded/failed  | the executor that started it (error, panic, timeout, shutdown) |
//! | running → failed (stale)    | the sweeper of any replica                             |
//!
//! Any number of replicas may run at once: the slot guard makes each slot one row, executed
//! by the replica whose insert made it, and `FOR UPDATE SKIP LOCKED` claims make each run-now
//! execute once.

mod executor;
pub mod http;
mod retry;
mod sweeper;
pub mod timers;
mod watcher;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SchedulerConfig;
use crate::domain::JobDefinition;
use crate::registry;
use crate::store::runs::{self, DueSlot};
use crate::store::{self, schema};

pub use executor::Executor;
use retry::retry_until;
use timers::TimerQueue;

/// What the timer loop hears from the rest of the scheduler.
#[derive(Debug)]
pub(crate) enum Event {
    /// A definition changed: arm it if active, disarm it otherwise.
    Upsert(Box<JobDefinition>),
    /// A definition is gone.
    Remove(Uuid),
    /// The complete set of active definitions.
    ReplaceAll(Vec<JobDefinition>),
    /// Pending runs may be waiting (run-now): claim them.
    ClaimPending,
}

/// How many slots one insert statement carries: the first batch of a herd is small so its
/// runs start within milliseconds; each next batch is inserted (on the slot pool) while the
/// previous one runs. 1,000 kept ahead of execution and beat 5,000 in `scripts/bench herd`.
const FIRST_INSERT_BATCH: usize = 500;
const INSERT_BATCH: usize = 1_000;
/// Connections for inserting due slots and claiming pending runs, apart from the pool targets use.
const SLOT_POOL_SIZE: u32 = 2;
/// How many pending runs one claim takes.
const CLAIM_BATCH: i64 = 500;
/// How long a recurring slot is retried while the database is away before it counts as
/// missed (one-time slots are retried until they run).
const SLOT_RETRY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A name for this process, recorded on the runs it starts.
pub fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "scheduler".to_owned());
    let suffix = Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}

/// Runs the scheduler until `shutdown` fires, then drains in-flight runs.
pub async fn run(pool: PgPool, config: SchedulerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    schema::ensure_current(&pool).await?;
    let metrics = crate::metrics::install();
    let listener = match config.port {
        Some(port) => Some(http::bind(port).await?),
        None => None,
    };
    let instance = instance_name();
    tracing::info!(%instance, targets = registry::all().len(), "scheduler starting");
    let executor = Executor::new(pool.clone(), instance);
    let background = CancellationToken::new();
    // Up until the end of the drain, so /metrics shows the last runs.
    let http = listener.map(|listener| tokio::spawn(http::serve(listener, metrics, background.clone())));

    // Recovery first: fail what died with a previous scheduler, then run what is pending.
    if retry_until(&shutdown, "sweep stale runs at startup", || {
        sweeper::sweep_once(&pool, config.stale_after)
    })
    .await
    .is_none()
    {
        background.cancel();
        return Ok(());
    }
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let _ = events_tx.send(Event::ClaimPending);
    let watcher = tokio::spawn(watcher::run(
        pool.clone(),
        events_tx,
        config.reconcile_every,
        background.clone(),
    ));
    let sweeper = tokio::spawn(sweeper::run(pool.clone(), config.stale_after, background.clone()));
    let heartbeats = tokio::spawn({
        let (executor, every, stop) = (executor.clone(), config.heartbeat_every, background.clone());
        async move { executor.heartbeat_loop(every, stop).await }
    });

    TimerLoop {
        slot_pool: store::side_pool(&pool, SLOT_POOL_SIZE),
        executor: executor.clone(),
        timers: TimerQueue::new(),
        shutdown: shutdown.clone(),
    }
    .run(events_rx)
    .await;

    tracing::info!("scheduler stopping: no more timers or claims");
    executor.shutdown(config.shutdown_grace).await;
    background.cancel();
    let _ = tokio::join!(watcher, sweeper, heartbeats);
    if let Some(http) = http {
        let _ = http.await;
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

/// The one loop that owns the timer queue. It never waits on the database: inserting,
/// claiming and executing happen in tasks it spawns.
struct TimerLoop {
    /// Inserts and claims runs. Apart from the pool targets use, so the next batch of a herd
    /// is inserted while the previous batch's targets hold every connection of that pool.
    slot_pool: PgPool,
    executor: Executor,
    timers: TimerQueue,
    shutdown: CancellationToken,
}

impl TimerLoop {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        loop {
            let next_due = self.timers.next_due();
            let sleep = tokio::time::sleep_until(instant_at(next_due));
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                () = sleep, if next_due.is_some() => {
                    let due = self.timers.pop_due(Utc::now());
                    self.fire(due);
                }
                event = events.recv() => match event {
                    Some(event) => self.handle(event),
                    None => return,
                },
            }
            crate::metrics::active_definitions(self.timers.len());
        }
    }

    fn handle(&mut self, event: Event) {
        let now = Utc::now();
        match event {
            Event::Upsert(definition) => self.arm(*definition, now),
            Event::Remove(id) => {
                if self.timers.disarm(id) {
                    tracing::info!(job_id = %id, "definition removed: timer disarmed");
                }
            }
            Event::ReplaceAll(active) => {
                let known: Vec<JobDefinition> = active.into_iter().filter(has_target).collect();
                let total = known.len();
                for (id, why) in self.timers.replace_all(known, now) {
                    tracing::error!(job_id = %id, reason = ?why, "definition cannot be armed");
                }
                tracing::info!(
                    armed = self.timers.len(),
                    active = total,
                    "timers armed for every active definition"
                );
            }
            Event::ClaimPending => self.claim_pending(),
        }
    }

    fn arm(&mut self, definition: JobDefinition, now: DateTime<Utc>) {
        let (id, key, version, status) = (
            definition.id,
            definition.job_key.clone(),
            definition.version,
            definition.status,
        );
        if !has_target(&definition) {
            self.timers.disarm(id);
            return;
        }
        match self.timers.arm(definition, now) {
            Ok(next) => tracing::info!(job_key = %key, version, job_id = %id, next = %next.to_rfc3339(), "timer armed"),
            Err(timers::NotArmed::NotActive) => {
                tracing::info!(job_key = %key, version, job_id = %id, %status, "timer disarmed")
            }
            Err(why) => {
                tracing::error!(job_key = %key, version, job_id = %id, reason = ?why, "definition cannot be armed")
            }
        }
    }

    /// Inserts and starts the due slots, in a task of their own (batch by batch, until shutdown).
    fn fire(&self, due: Vec<DueSlot>) {
        if due.is_empty() {
            return;
        }
        let (pool, executor, shutdown) = (self.slot_pool.clone(), self.executor.clone(), self.shutdown.clone());
        self.executor.track(async move {
            let (first, rest) = due.split_at(due.len().min(FIRST_INSERT_BATCH));
            for batch in std::iter::once(first).chain(rest.chunks(INSERT_BATCH)) {
                if shutdown.is_cancelled() {
                    return;
                }
                fire_batch(&pool, &executor, batch, &shutdown).await;
            }
        });
    }

    fn claim_pending(&self) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let (pool, executor) = (self.slot_pool.clone(), self.executor.clone());
        self.executor.track(async move {
            let targets: Vec<&str> = registry::all().iter().map(|t| t.key).collect();
            loop {
                let room = executor.reserve(CLAIM_BATCH as usize).await;
                match runs::claim_pending(&pool, &targets, CLAIM_BATCH, executor.instance()).await {
                    Ok(claimed) => {
                        let full = claimed.len() as i64 == CLAIM_BATCH;
                        executor.spawn(claimed, room);
                        if !full {
                            return;
                        }
                    }
                    Err(e) => {
                        crate::metrics::database_error("claim pending runs");
                        tracing::warn!(error = %e, "cannot claim pending runs; the next reconcile retries");
                        return;
                    }
                }
            }
        });
    }
}

/// Inserts one batch of slots (retrying while the database is away), records overlaps as
/// skipped, and starts what it inserted.
async fn fire_batch(pool: &PgPool, executor: &Executor, batch: &[DueSlot], shutdown: &CancellationToken) {
    // Room first: while a herd bigger than MAX_IN_FLIGHT runs, the rest of it waits here.
    let room = tokio::select! {
        room = executor.reserve(batch.len()) => room,
        () = shutdown.cancelled() => return,
    };
    // Give up on a recurring slot after SLOT_RETRY_WINDOW; one-time slots are kept (and
    // re-armed from the database at the next reload if this process stops).
    let give_up = CancellationToken::new();
    let oldest = batch.iter().map(|s| s.scheduled_at).min().unwrap_or_else(Utc::now);
    let watchdog = {
        let (give_up, shutdown) = (give_up.clone(), shutdown.clone());
        let window = (oldest + SLOT_RETRY_WINDOW - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(window) => {}
            }
            give_up.cancel();
        })
    };
    let inserted = retry_until(&give_up, "insert due runs", || {
        runs::insert_scheduled(pool, batch, executor.instance())
    })
    .await;
    watchdog.abort();
    let Some(inserted) = inserted else {
        tracing::error!(slots = batch.len(), slot = %oldest.to_rfc3339(), "slots missed: the database was unreachable");
        return;
    };
    for run in &inserted.skipped {
        executor::log_finished(run);
    }
    // Inserted as running by this process, so executed even if shutdown began meanwhile: they
    // get the shutdown grace like every other in-flight run (this task is tracked).
    executor.spawn(inserted.running, room);
}

fn has_target(definition: &JobDefinition) -> bool {
    let known = registry::get(&definition.target).is_some();
    if !known {
        tracing::warn!(
            job_key = %definition.job_key, target = %definition.target,
            "target not in this build: leaving the job to a replica that has it"
        );
    }
    known
}

/// The monotonic instant of a wall-clock time (now if it has passed or is unknown).
fn instant_at(at: Option<DateTime<Utc>>) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match at {
        Some(at) => now + (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
        None => now + Duration::from_secs(3600),
    }
}
