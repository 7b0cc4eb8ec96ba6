//! The scheduler: fires jobs at their times and records every run (SPEC §8, §11).
//!
//! Components, one per file:
//! - [`timers`]: one min-heap of next fire times driving one `sleep_until` (no polling, no
//!   task per job);
//! - [`watcher`]: keeps the armed set in step with the database (LISTEN/NOTIFY, reconcile);
//! - [`executor`]: runs targets under their timeout, heartbeats, records outcomes;
//! - [`claims`]: claims run-now requests, one batch at a time;
//! - [`instances`]: this scheduler's row in `cron_scheduler_instances`;
//! - [`sweeper`]: fails runs whose scheduler died (`scheduler_lost`) or stopped heartbeating (`stale`);
//! - [`crate::maintenance::watchdog`]: records every slot nobody recorded as `missed` (also run
//!   by the API);
//! - [`http`]: `/healthz` and `/metrics` on `PORT`, when set;
//! - [`crate::alerts::webhooks`]: delivers incident webhooks (also run by the API).
//!
//! Who moves a run between states (the state machine itself is in [`crate::domain::run`]):
//!
//! | transition                          | owner                                                  |
//! |-------------------------------------|--------------------------------------------------------|
//! | (new) → running / skipped / missed  | the timer loop, at a slot (`store::runs::insert_scheduled`) |
//! | (new) → pending                     | the API's run-now                                      |
//! | (new) → missed, pending → missed    | the watchdog of any process                            |
//! | pending → running                   | any replica's claimer                                  |
//! | running → succeeded/failed          | the executor that started it (error, panic, timeout, shutdown) |
//! | running → failed (stale, lost)      | the sweeper of any replica                             |
//!
//! Any number of replicas may run at once: the slot guard makes each slot one row, executed
//! by the replica whose insert made it, and `FOR UPDATE SKIP LOCKED` claims make each run-now
//! execute once.
//!
//! Connections: targets get the application's pool (`ctx.db()`); the scheduler's own work
//! (inserts, claims, heartbeats, sweeps, the watchdog, definition reads) uses a small pool of
//! its own and outcomes one more connection, so no bookkeeping ever waits behind target work.

mod claims;
mod executor;
pub(crate) use executor::{supervise, Stop};
pub mod fence;
pub mod http;
mod instances;
mod retry;
mod sweeper;
pub mod timers;
mod watcher;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SchedulerConfig;
use crate::domain::incident::{Policy, Recorded};
use crate::domain::{JobDefinition, RunReason};
use crate::registry;
use crate::store::runs::{self, DueSlot, SlotBatch};
use crate::store::{self, schema};

use claims::ClaimRequests;
pub use executor::Executor;
use fence::Fence;
use instances::{ClockOffset, Instance};
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
    /// An admin asked to cancel a run: stop it if it runs here.
    CancelRun(Uuid),
}

/// How many slots one insert statement carries: the first batch of a herd is small so its
/// runs start within milliseconds; each next batch is inserted (on the bookkeeping pool) while
/// the previous one runs. 1,000 kept ahead of execution and beat 5,000 in `scripts/bench herd`.
const FIRST_INSERT_BATCH: usize = 500;
/// How long a one-time slot whose key is busy waits before it is tried again.
const ONE_TIME_RETRY: Duration = Duration::from_secs(1);
const INSERT_BATCH: usize = 1_000;

/// The name of this host.
pub(crate) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "scheduler".to_owned())
}

/// A name for this process, unique to it, recorded on the runs it starts.
pub fn instance_name() -> String {
    let suffix = Uuid::new_v4().simple().to_string();
    format!("{}-{}-{}", hostname(), std::process::id(), &suffix[..6])
}

/// Runs the scheduler until `shutdown` fires, then drains in-flight runs. `pool` is the
/// application's pool that targets get as `ctx.db()`.
pub async fn run(pool: PgPool, config: SchedulerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    schema::ensure_current(&pool).await?;
    let metrics = crate::metrics::install();
    let listener = match config.port {
        Some(port) => Some(http::bind(port).await?),
        None => None,
    };
    // The scheduler's own pool: slot inserts, claims, heartbeats, sweeps, the watchdog and
    // definition reads (`CRON_SCHEDULER_POOL_SIZE`). Outcomes are recorded on one connection more.
    let bookkeeping = store::side_pool(&pool, config.bookkeeping_pool_size);
    let name = instance_name();
    tracing::info!(
        instance = %name,
        targets = registry::all().len(),
        max_connections = config.max_connections(),
        "scheduler starting"
    );
    // Built once: every outcome this process records opens incidents under it.
    let policy = Arc::new(Policy::from(&config.alerts));
    let limits = executor::Limits {
        max_in_flight: config.max_in_flight,
        cancel_grace: config.shutdown_grace,
        fence_grace: fence::fence_grace(config.heartbeat_every, config.shutdown_grace),
    };
    let executor = Executor::new(pool.clone(), bookkeeping.clone(), name.clone(), limits, policy.clone());
    let fence = Arc::new(Fence::new(
        executor.clone(),
        fence::fence_after(config.heartbeat_every, config.stale_after),
    ));
    let clock = Arc::new(ClockOffset::default());
    let instance = Instance::new(
        bookkeeping.clone(),
        name,
        config.heartbeat_every,
        config.shared_settings(),
        clock.clone(),
        fence.clone(),
    );
    crate::alerts::sentry::crons::configure(config.missed_after);
    let background = CancellationToken::new();
    // Up until the end of the drain, so /metrics shows the last runs.
    let http = listener.map(|listener| tokio::spawn(http::serve(listener, metrics, background.clone())));

    // Listening first: once this instance's row is there, every change after it is heard (a
    // notification sent before the LISTEN would only be caught by the next reload).
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let listening = Arc::new(tokio::sync::Notify::new());
    // LISTEN holds a connection for good: its own, not one of the bookkeeping pool's.
    let watcher = tokio::spawn(watcher::run(
        bookkeeping.clone(),
        store::side_pool(&pool, 1),
        events_tx,
        config.reconcile_every,
        listening.clone(),
        background.clone(),
    ));
    tokio::select! {
        () = listening.notified() => {}
        () = shutdown.cancelled() => {}
    }
    // Recovery next: say who we are (before owning any run), fail what died with a previous
    // scheduler, then run what is pending.
    let recovered = match instance.register(&shutdown).await {
        None => false,
        Some(registered) => {
            // Started while the database was away: peers could not heartbeat either, so their
            // liveness counts from now.
            let reconnected_at = match registered.after_outage {
                true => store::database_now(&bookkeeping).await.ok(),
                false => None,
            };
            retry_until(&shutdown, "sweep dead runs at startup", || {
                sweeper::sweep_once(&bookkeeping, config.stale_after, reconnected_at, &policy)
            })
            .await
            .is_some()
        }
    };
    if !recovered {
        background.cancel();
        instance.remove().await;
        return Ok(());
    }
    let claims = claims::spawn(bookkeeping.clone(), executor.clone(), shutdown.clone());
    claims.request();
    let services = [
        watcher,
        tokio::spawn(sweeper::run(
            bookkeeping.clone(),
            config.stale_after,
            config.heartbeat_every,
            policy.clone(),
            background.clone(),
        )),
        tokio::spawn(crate::maintenance::watchdog::run(
            bookkeeping.clone(),
            config.missed_after,
            policy.clone(),
            background.clone(),
        )),
        // Its own connection: a slow receiver never holds up the scheduler's bookkeeping.
        tokio::spawn(crate::alerts::webhooks::run(
            store::side_pool(&pool, 1),
            policy.clone(),
            config.alerts.webhook_secret.clone(),
            background.clone(),
        )),
        tokio::spawn({
            let (executor, every, stop) = (executor.clone(), config.heartbeat_every, background.clone());
            let fence = fence.clone();
            async move { executor.heartbeat_loop(every, &fence, stop).await }
        }),
        tokio::spawn({
            let (fence, stop) = (fence.clone(), background.clone());
            async move { fence.watch(stop).await }
        }),
    ];
    let instance_heartbeats = {
        let stop = background.clone();
        async { instance.heartbeat_loop(stop).await }
    };

    let drained = async {
        TimerLoop {
            slot_pool: bookkeeping.clone(),
            executor: executor.clone(),
            claims,
            timers: TimerQueue::with_catch_up(catch_up(config.missed_after)),
            clock,
            missed_after: config.missed_after,
            shutdown: shutdown.clone(),
        }
        .run(events_rx)
        .await;
        tracing::info!("scheduler stopping: no more timers or claims");
        instance.mark_stopping().await;
        executor.shutdown(config.shutdown_grace).await;
        background.cancel();
    };
    tokio::join!(drained, instance_heartbeats);
    for service in services {
        let _ = service.await;
    }
    fail_unfinished(&bookkeeping, executor.instance(), &policy).await;
    instance.remove().await;
    if let Some(http) = http {
        let _ = http.await;
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

/// Fails the runs this instance still owns after its drain (outcomes it could not record, a
/// claim whose reply was lost), so a clean shutdown leaves none `running`.
async fn fail_unfinished(pool: &PgPool, instance: &str, policy: &Policy) {
    match runs::fail_owned(pool, instance, policy).await.map(Recorded::announce) {
        Ok(failed) => {
            for run in &failed {
                crate::telemetry::log_finished(run);
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot fail this scheduler's unfinished runs; the stale sweep will"),
    }
}

/// The one loop that owns the timer queue. It never waits on the database: inserting,
/// claiming and executing happen in tasks it spawns.
struct TimerLoop {
    /// Inserts runs. Apart from the pool targets use, so the next batch of a herd is inserted
    /// while the previous batch's targets hold every connection of that pool.
    slot_pool: PgPool,
    executor: Executor,
    claims: ClaimRequests,
    timers: TimerQueue,
    /// Slots fire when the database's clock reaches them, not this host's.
    clock: Arc<ClockOffset>,
    missed_after: Duration,
    shutdown: CancellationToken,
}

impl TimerLoop {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        loop {
            let next_due = self.timers.next_due();
            let sleep = tokio::time::sleep_until(instant_at(next_due, self.clock.database_now()));
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                () = sleep, if next_due.is_some() => {
                    let due = self.timers.pop_due(self.clock.database_now());
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
        let now = self.clock.database_now();
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
            Event::ClaimPending => self.claims.request(),
            Event::CancelRun(run_id) => self.executor.cancel(run_id),
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
            Err(timers::NotArmed::Fired) => {
                tracing::debug!(job_key = %key, version, job_id = %id, "one-time job fired already in this process")
            }
            Err(why) => {
                tracing::error!(job_key = %key, version, job_id = %id, reason = ?why, "definition cannot be armed")
            }
        }
    }

    /// Records and starts the due slots, in a task of their own (batch by batch, until shutdown).
    fn fire(&self, due: Vec<DueSlot>) {
        if due.is_empty() {
            return;
        }
        let (pool, executor, shutdown) = (self.slot_pool.clone(), self.executor.clone(), self.shutdown.clone());
        let (missed_after, clock) = (self.missed_after, self.clock.clone());
        self.executor.track(async move {
            let (first, rest) = due.split_at(due.len().min(FIRST_INSERT_BATCH));
            for batch in std::iter::once(first).chain(rest.chunks(INSERT_BATCH)) {
                if shutdown.is_cancelled() {
                    return;
                }
                let firing = Firing {
                    pool: &pool,
                    executor: &executor,
                    clock: &clock,
                    missed_after,
                    shutdown: &shutdown,
                };
                firing.fire_batch(batch).await;
            }
        });
    }
}

/// What a fire task needs to record and start due slots.
struct Firing<'a> {
    pool: &'a PgPool,
    executor: &'a Executor,
    /// Lateness is judged by the database's clock, as the slots were fired.
    clock: &'a ClockOffset,
    missed_after: Duration,
    shutdown: &'a CancellationToken,
}

impl Firing<'_> {
    fn missed_after(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.missed_after).unwrap_or(chrono::Duration::MAX)
    }

    /// A recurring slot not started by T + `missed_after` is late; a one-time slot never is.
    fn is_late(&self, slot: &DueSlot, now: DateTime<Utc>) -> bool {
        slot.recurring && now > slot.scheduled_at + self.missed_after()
    }

    /// Records one batch of due slots and starts what it inserted, as room allows: each round
    /// takes the room free (or waits for the first permit to free up), starts that many slots,
    /// and goes on with the rest. A recurring slot it cannot start by T + `missed_after` is
    /// recorded `missed` instead: `overloaded` when it waited for room all that time,
    /// `database_unreachable` when inserting failed until then. A one-time slot is never
    /// missed: it waits for room, late if need be. Stops at shutdown (the watchdog records
    /// what is left).
    async fn fire_batch(&self, batch: &[DueSlot]) {
        let mut waiting = batch.to_vec();
        while !waiting.is_empty() {
            // While the executor is full the slots wait here, until the oldest recurring one is late.
            let deadline = waiting
                .iter()
                .filter(|s| s.recurring)
                .map(|s| s.scheduled_at + self.missed_after())
                .min();
            let room = self
                .executor
                .room(waiting.len(), async {
                    tokio::select! {
                        () = self.shutdown.cancelled() => {}
                        () = sleep_until_time(deadline, self.clock.database_now()) => {}
                    }
                })
                .await;
            if self.shutdown.is_cancelled() {
                return;
            }
            let now = self.clock.database_now();
            let (late_now, timely): (Vec<DueSlot>, Vec<DueSlot>) =
                waiting.into_iter().partition(|s| self.is_late(s, now));
            let fits = room.as_ref().map_or(0, executor::Room::runs).min(timely.len());
            let (start, rest) = timely.split_at(fits);
            // Late after waiting for room: the limit was reached for the whole window. Late
            // without waiting (the loop or the process was starved): not started in time.
            let missed_reason = match &room {
                Some(room) if !room.waited => RunReason::NotStarted,
                _ => RunReason::Overloaded,
            };
            let recording = Recording {
                start: start.to_vec(),
                missed: late_now,
                missed_reason,
            };
            let deferred = self.insert_until_recorded(recording, room).await;
            if self.shutdown.is_cancelled() {
                return;
            }
            waiting = rest.to_vec();
            if !deferred.is_empty() {
                // One-time slots whose key is busy: again in a moment, late if need be.
                if waiting.is_empty() {
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(ONE_TIME_RETRY) => {}
                    }
                }
                waiting.extend(deferred);
            }
        }
    }

    /// Inserts the slots to start (in `room`) and the missed ones, retrying while the database
    /// is unreachable. Slots that turn late meanwhile move to the missed ones
    /// (`database_unreachable`); once nothing is left to start, the late slots are left to the
    /// watchdog rather than retried, so an outage holds no growing pile of tasks and slots
    /// (one-time slots are never late: they are retried until recorded). Returns at shutdown,
    /// and the one-time slots whose key was busy, to be tried again.
    async fn insert_until_recorded(&self, mut recording: Recording, room: Option<executor::Room>) -> Vec<DueSlot> {
        let mut retry_in = Duration::from_millis(100);
        loop {
            let outcome = if self.executor.is_fenced() {
                Err("this scheduler is fenced until its heartbeats commit again".to_owned())
            } else {
                let slots = SlotBatch {
                    start: &recording.start,
                    missed: &recording.missed,
                    missed_reason: recording.missed_reason,
                };
                runs::insert_scheduled(self.pool, slots, self.executor.instance(), self.executor.policy())
                    .await
                    .map(Recorded::announce)
                    .map_err(|e| e.to_string())
            };
            let slots = recording.start.len() + recording.missed.len();
            match outcome {
                Ok(inserted) => {
                    for run in inserted.skipped.iter().chain(&inserted.missed) {
                        crate::telemetry::log_finished(run);
                    }
                    // Inserted as running by this process, so executed even if shutdown began
                    // meanwhile: they get the shutdown grace like every other in-flight run.
                    self.executor.spawn(inserted.running, room);
                    return inserted.deferred;
                }
                Err(e) => {
                    crate::metrics::database_error("insert due runs");
                    tracing::warn!(error = %e, slots, retry_in_ms = retry_in.as_millis() as u64, "cannot record due slots; retrying");
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    tracing::warn!(slots, "shutdown while the database was unreachable: the watchdog will record these slots");
                    return Vec::new();
                }
                () = tokio::time::sleep(retry_in) => {}
            }
            retry_in = (retry_in * 2).min(Duration::from_secs(5));
            let now = self.clock.database_now();
            let (late, timely): (Vec<DueSlot>, Vec<DueSlot>) = std::mem::take(&mut recording.start)
                .into_iter()
                .partition(|s| self.is_late(s, now));
            recording.start = timely;
            if !late.is_empty() {
                recording.missed.extend(late);
                recording.missed_reason = RunReason::DatabaseUnreachable;
            }
            if recording.start.is_empty() {
                tracing::warn!(
                    slots = recording.missed.len(),
                    "due slots became too late while the database was unreachable: the watchdog records them"
                );
                return Vec::new();
            }
        }
    }
}

/// Slots of one round of [`Firing::fire_batch`]: to start, and too late to start.
struct Recording {
    start: Vec<DueSlot>,
    missed: Vec<DueSlot>,
    missed_reason: RunReason,
}

/// How far back the timer queue still fires slots: `CRON_MISSED_AFTER` less a margin (half
/// of it, at most a second), so a slot caught up is still in time when its insert runs.
fn catch_up(missed_after: Duration) -> Duration {
    missed_after.saturating_sub((missed_after / 2).min(Duration::from_secs(1)))
}

/// Sleeps until `at` on a clock that reads `now` (forever when `None`).
async fn sleep_until_time(at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    match at {
        Some(at) => tokio::time::sleep_until(instant_at(Some(at), now)).await,
        None => std::future::pending().await,
    }
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

/// The monotonic instant of a wall-clock time `at`, on a clock that reads `now` (soon if it
/// has passed, in an hour if unknown).
fn instant_at(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> tokio::time::Instant {
    let monotonic = tokio::time::Instant::now();
    match at {
        Some(at) => monotonic + (at - now).to_std().unwrap_or(Duration::ZERO),
        None => monotonic + Duration::from_secs(3600),
    }
}
