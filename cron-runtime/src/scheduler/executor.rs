//! Executes the runs this scheduler owns (inserted `running`, or claimed): each in its own
//! task, under its target's timeout, with a cancellation signal, heartbeats while it runs, and
//! its outcome recorded.
//!
//! A target that errors, panics or times out fails its run; the scheduler lives on. A run that
//! a heartbeat finds no longer `running` (the sweep ended it) is stopped. A run an admin
//! cancels (heard by NOTIFY, or at the next heartbeat) sees `ctx.cancelled()` fire, gets the
//! shutdown grace to return, and is aborted after it; it is recorded `cancelled`.
//!
//! Targets get the application's pool through `ctx.db()`; every write of the executor's own
//! (heartbeats, outcomes) goes through connections targets never hold, so twenty targets
//! holding twenty connections cannot starve a heartbeat.
//!
//! Outcomes are recorded by one recorder task in batches (one transaction for every outcome
//! that arrived while the previous batch committed), on a connection of its own so a herd's
//! targets queueing for the pool cannot hold recording up. Each run's task waits for its
//! outcome to be committed, so shutdown's wait on the tasks still means "recorded".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::retry::retry_until;
use crate::alerts::sentry::crons;
use crate::context::JobContext;
use crate::domain::incident::{Policy, Recorded};
use crate::domain::job::millis_to_duration;
use crate::domain::{JobRun, RunReason};
use crate::failure::Failure;
use crate::store;
use crate::store::runs::{self, ClaimedRun, RunOutcome};
use crate::telemetry::{log_finished, log_started};
use crate::{metrics, registry, telemetry};
use sentry::SentryFutureExt;
use tracing::Instrument;

/// How the error of a run whose target panicked begins.
const PANICKED: &str = "panicked: ";

/// How long a cancelled target gets to return before its task is aborted.
const CANCEL_GRACE: Duration = Duration::from_millis(500);
/// Most outcomes one recording transaction carries.
const RECORD_BATCH: usize = 1_000;
/// The error of a run its scheduler stopped because it lost the database for too long.
const FENCED: &str = "fenced: this scheduler could not reach the database for too long and stopped the run \
                      before another replica could take the job over";
/// What a run that is no longer `running` in the database ends with here (it is not recorded).
const REVOKED: &str = "the run was ended elsewhere while it ran (sweep or cancel)";

/// The runs this scheduler executes, and the tasks executing them.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    /// The application's pool, handed to targets as `ctx.db()`.
    targets_pool: PgPool,
    /// The scheduler's own connections (heartbeats).
    bookkeeping: PgPool,
    instance: String,
    /// Running runs (for heartbeats), each with the signal that stops it if it is revoked.
    in_flight: Mutex<HashMap<Uuid, InFlight>>,
    tasks: TaskTracker,
    /// `max_in_flight` permits; each run holds one until it is recorded.
    capacity: Arc<Semaphore>,
    /// How long a cancelled handler gets to return before it is aborted.
    cancel_grace: Duration,
    /// Cancelled when shutdown's grace period is over: in-flight runs are interrupted.
    interrupt: CancellationToken,
    /// Outcomes waiting for the recorder.
    outcomes: mpsc::UnboundedSender<Outcome>,
    /// Signalled whenever a run gives its permit back: a claimer with no room waits for it
    /// without queueing for permits it has no work for yet.
    freed: Notify,
    /// Set while this scheduler is fenced ([`super::fence`]): runs are stopped, none start.
    fenced: std::sync::atomic::AtomicBool,
    /// How long a fenced handler gets to return before it is aborted.
    fence_grace: Duration,
    /// How incidents of the outcomes it records are opened.
    policy: Arc<Policy>,
}

/// How much an executor runs at once, and how long a stopped handler gets to return.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_in_flight: usize,
    /// After an admin's cancel, or at the end of shutdown's grace.
    pub cancel_grace: Duration,
    /// After this scheduler fenced itself.
    pub fence_grace: Duration,
}

/// A run being executed.
struct InFlight {
    run: JobRun,
    /// Fired when the run is no longer `running` in the database: stop executing it.
    revoked: CancellationToken,
    /// Fired when an admin cancels the run.
    cancelled: CancellationToken,
    /// Fired when this scheduler fences itself (it lost the database for too long).
    fenced: CancellationToken,
}

/// Why an executing run is stopped from outside.
#[derive(Clone)]
struct Stops {
    revoked: CancellationToken,
    cancelled: CancellationToken,
    fenced: CancellationToken,
}

/// Room for runs under the in-flight limit: one permit per run. What is not used is given back
/// when it is dropped, and the claimer is told.
pub struct Room {
    permits: Option<OwnedSemaphorePermit>,
    /// The executor was full when asked: this room was waited for.
    pub waited: bool,
    executor: Executor,
}

impl Room {
    /// How many runs fit.
    pub fn runs(&self) -> usize {
        self.permits.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    fn take_one(&mut self) -> Option<OwnedSemaphorePermit> {
        let permits = self.permits.as_mut()?;
        if permits.num_permits() > 1 {
            permits.split(1)
        } else {
            self.permits.take()
        }
    }

    fn merge(&mut self, more: OwnedSemaphorePermit) {
        match self.permits.as_mut() {
            Some(permits) => permits.merge(more),
            None => self.permits = Some(more),
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        if self.permits.take().is_some() {
            self.executor.inner.freed.notify_one();
        }
    }
}

/// An outcome for the recorder, and where to say how recording went.
struct Outcome {
    run_id: Uuid,
    outcome: RunOutcome,
    recorded: oneshot::Sender<RecordReply>,
}

/// How recording one outcome went.
enum RecordReply {
    /// `running` → terminal, committed.
    Finished(Box<JobRun>),
    /// The run was no longer running (the stale sweep failed it first).
    NotRunning,
    /// The database stayed unreachable until shutdown's grace was over.
    Failed,
}

impl Executor {
    /// An executor running as scheduler `instance` within `limits`: targets get
    /// `targets_pool`, heartbeats go through `bookkeeping`, outcomes through a connection of
    /// their own, their incidents under `policy`. Must be called inside a Tokio runtime (it
    /// starts the recorder).
    pub fn new(
        targets_pool: PgPool,
        bookkeeping: PgPool,
        instance: String,
        limits: Limits,
        policy: Arc<Policy>,
    ) -> Self {
        let interrupt = CancellationToken::new();
        let (outcomes, queue) = mpsc::unbounded_channel();
        let recorder_pool = store::side_pool(&bookkeeping, 1);
        // Ends when the executor (the last sender) is dropped.
        tokio::spawn(record_batches(recorder_pool, queue, policy.clone(), interrupt.clone()));
        let max_in_flight = limits.max_in_flight.max(1);
        Executor {
            inner: Arc::new(Inner {
                targets_pool,
                bookkeeping,
                instance,
                in_flight: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                capacity: Arc::new(Semaphore::new(max_in_flight)),
                cancel_grace: limits.cancel_grace,
                interrupt,
                outcomes,
                freed: Notify::new(),
                fenced: std::sync::atomic::AtomicBool::new(false),
                fence_grace: limits.fence_grace,
                policy,
            }),
        }
    }

    /// The incident policy this scheduler records outcomes under.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// This scheduler's instance name (recorded on the runs it starts).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Ids of the runs executing now.
    pub fn in_flight(&self) -> Vec<Uuid> {
        self.lock_in_flight().keys().copied().collect()
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, InFlight>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts/removes).
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns work that may start runs (inserting or claiming them): shutdown waits for it as
    /// for the runs, so a run it starts after shutdown began still gets the grace and is
    /// recorded, never left `running`.
    pub fn track<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(work);
    }

    /// Room for up to `runs` more runs under the in-flight limit, for due work the caller
    /// already has: whatever is free now, or else the first permit to free up (`None` if
    /// `give_up` fires first). Never queues for more than one permit, so a large batch cannot
    /// hold up a small one while capacity is free. Hand the room to [`Executor::spawn`].
    pub async fn room(&self, runs: usize, give_up: impl std::future::Future<Output = ()>) -> Option<Room> {
        if runs == 0 {
            return None;
        }
        if let Some(free) = self.free_room(runs) {
            return Some(free);
        }
        let first = tokio::select! {
            biased;
            () = give_up => return None,
            permit = self.inner.capacity.clone().acquire_owned() => permit.ok()?,
        };
        let mut room = self.wrap(first, true);
        if let Some(mut more) = self.free_room(runs - 1) {
            if let Some(permits) = more.permits.take() {
                room.merge(permits);
            }
        }
        Some(room)
    }

    /// The room free right now, up to `runs` permits, without waiting; `None` when there is none.
    pub fn free_room(&self, runs: usize) -> Option<Room> {
        loop {
            let free = u32::try_from(self.available_room().min(runs)).unwrap_or(u32::MAX);
            if free == 0 {
                return None;
            }
            // Another task may take permits between the count and the take: count again.
            if let Ok(permits) = self.inner.capacity.clone().try_acquire_many_owned(free) {
                return Some(self.wrap(permits, false));
            }
        }
    }

    /// How many more runs fit now.
    pub fn available_room(&self) -> usize {
        self.inner.capacity.available_permits()
    }

    fn wrap(&self, permits: OwnedSemaphorePermit, waited: bool) -> Room {
        Room {
            permits: Some(permits),
            waited,
            executor: self.clone(),
        }
    }

    /// Waits until a run gives its permit back (or one already did since the last wait).
    pub async fn room_freed(&self) {
        self.inner.freed.notified().await;
    }

    /// Stops every run in flight (`ctx.cancelled()`, then aborted after the fence grace; they
    /// end `failed` / `fenced`) and starts none until [`Executor::unfence`].
    pub fn fence(&self) {
        self.inner.fenced.store(true, std::sync::atomic::Ordering::SeqCst);
        for in_flight in self.lock_in_flight().values() {
            in_flight.fenced.cancel();
        }
    }

    /// Lets runs start again (a heartbeat committed).
    pub fn unfence(&self) {
        self.inner.fenced.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether this scheduler is fenced: it must not insert or claim runs.
    pub fn is_fenced(&self) -> bool {
        self.inner.fenced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts executing claimed runs, each in its own task holding one permit of `room`
    /// (reserved for as many runs, if any); the permits left over are released. Runs beyond
    /// the room still run: a run this scheduler owns is never left unexecuted. A run id this
    /// executor is executing already is refused: no path can hand a run to a target twice.
    pub fn spawn(&self, claimed: Vec<ClaimedRun>, mut room: Option<Room>) {
        for ClaimedRun {
            run,
            target_payload,
            cron_expression,
            timezone,
            job_timeout_ms,
        } in claimed
        {
            // Looked up once: the run's timeout (the job's own, else its target's) is also its
            // Sentry monitor's max runtime. An unknown target fails the run at once.
            let target = registry::get(&run.target);
            let timeout = millis_to_duration(job_timeout_ms).or(target.map(|t| t.timeout));
            let stops = Stops {
                revoked: CancellationToken::new(),
                cancelled: CancellationToken::new(),
                fenced: CancellationToken::new(),
            };
            {
                let mut in_flight = self.lock_in_flight();
                if in_flight.contains_key(&run.id) {
                    tracing::error!(
                        job_key = %run.job_key, run_id = %run.id,
                        "refusing to execute a run that is executing already"
                    );
                    metrics::duplicate_refused();
                    continue;
                }
                if self.is_fenced() {
                    stops.fenced.cancel();
                }
                in_flight.insert(
                    run.id,
                    InFlight {
                        run: run.clone(),
                        revoked: stops.revoked.clone(),
                        cancelled: stops.cancelled.clone(),
                        fenced: stops.fenced.clone(),
                    },
                );
            }
            let permit = room.as_mut().and_then(Room::take_one);
            log_started(&run);
            crons::started(&run, cron_expression.as_deref(), &timezone, timeout);
            metrics::runs_in_flight(1.0);
            let executor = self.clone();
            self.inner.tasks.spawn(async move {
                let id = run.id;
                let revoked = stops.revoked.clone();
                let outcome = executor.execute(&run, target, target_payload, timeout, stops).await;
                // The handler is done: a heartbeat meanwhile has nothing left to stop.
                revoked.cancel();
                if let Some(finished) = executor.record(&run, outcome).await {
                    crons::finished(&finished, cron_expression.as_deref(), &timezone, timeout);
                }
                executor.lock_in_flight().remove(&id);
                metrics::runs_in_flight(-1.0);
                drop(permit);
                executor.inner.freed.notify_one();
            });
        }
    }

    async fn execute(
        &self,
        run: &JobRun,
        target: Option<&'static registry::Target>,
        payload: serde_json::Value,
        timeout: Option<Duration>,
        stops: Stops,
    ) -> RunOutcome {
        let Some(target) = target else {
            return RunOutcome::Failed {
                reason: RunReason::Error,
                error: format!("target {:?} is not registered in this build of cronjobs", run.target),
            };
        };
        if stops.fenced.is_cancelled() {
            return RunOutcome::Failed {
                reason: RunReason::Fenced,
                error: FENCED.to_owned(),
            };
        }
        let cancel = CancellationToken::new();
        let ctx = JobContext::new(
            run.id,
            run.job_key.clone(),
            run.job_version,
            run.trigger_type,
            run.scheduled_at,
            self.inner.targets_pool.clone(),
            cancel.clone(),
        )
        .with_attempt(run.attempt);
        let stopped = async {
            let (reason, error, grace) = tokio::select! {
                () = self.inner.interrupt.cancelled() => (RunReason::Shutdown, "interrupted by shutdown", CANCEL_GRACE),
                () = stops.revoked.cancelled() => (RunReason::Error, REVOKED, CANCEL_GRACE),
                () = stops.cancelled.cancelled() => (RunReason::Cancelled, "cancelled by an admin", self.inner.cancel_grace),
                () = stops.fenced.cancelled() => (RunReason::Fenced, FENCED, self.inner.fence_grace),
            };
            Stop {
                reason,
                error: error.to_owned(),
                grace,
            }
        };
        // Bound to a hub of its own, so Sentry's panic report carries the run's tags.
        let handler = (target.run)(ctx, payload).bind_hub(telemetry::run_hub(run));
        supervise(
            handler,
            (&run.job_key, run.id),
            cancel,
            timeout.unwrap_or(target.timeout),
            stopped,
        )
        .await
    }

    /// Cancels run `run_id` if this scheduler executes it (an admin's cancel).
    pub fn cancel(&self, run_id: Uuid) {
        if let Some(in_flight) = self.lock_in_flight().get(&run_id) {
            tracing::info!(job_key = %in_flight.run.job_key, %run_id, "cancelling the run, as an admin asked");
            in_flight.cancelled.cancel();
        }
    }

    /// `running` → terminal through the recorder, which retries while the database is
    /// unreachable (until shutdown is over, when the run is left to the stale sweep).
    async fn record(&self, run: &JobRun, outcome: RunOutcome) -> Option<JobRun> {
        let started = Instant::now();
        let (recorded, reply) = oneshot::channel();
        let sent = self.inner.outcomes.send(Outcome {
            run_id: run.id,
            outcome,
            recorded,
        });
        let recorded = match sent {
            Ok(()) => reply.await.unwrap_or(RecordReply::Failed),
            Err(_) => RecordReply::Failed,
        };
        match recorded {
            RecordReply::Finished(finished) => {
                log_finished(&finished);
                return Some(*finished);
            }
            RecordReply::NotRunning => tracing::warn!(
                job_key = %run.job_key, version = run.job_version, run_id = %run.id,
                "run finished, but it was no longer running (ended by the sweep or a cancel, or recorded by an attempt whose reply was lost)"
            ),
            RecordReply::Failed => tracing::error!(
                job_key = %run.job_key, run_id = %run.id, waited_ms = started.elapsed().as_millis() as u64,
                "could not record the run's outcome; the stale sweep will fail it"
            ),
        }
        None
    }

    /// Heartbeats every running run, every `every`, until `stop` fires; a run the database no
    /// longer has `running` is revoked (cancelled here, not recorded again). `fence` hears of
    /// every heartbeat that committed.
    pub async fn heartbeat_loop(&self, every: Duration, fence: &super::fence::Fence, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let ids = self.in_flight();
            let sent_at = Instant::now();
            if ids.is_empty() {
                fence.runs_committed(sent_at);
                continue;
            }
            match runs::heartbeat(&self.inner.bookkeeping, &ids).await {
                Ok(beats) => {
                    fence.runs_committed(sent_at);
                    for beat in beats.iter().filter(|b| b.cancel_requested) {
                        self.cancel(beat.id);
                    }
                    let running: Vec<Uuid> = beats.iter().map(|b| b.id).collect();
                    self.revoke_all_but(&ids, &running);
                }
                Err(e) => {
                    metrics::database_error("heartbeat runs");
                    tracing::warn!(error = %e, runs = ids.len(), "heartbeat failed; retrying at the next tick");
                }
            }
        }
    }

    /// Revokes the runs of `heartbeated` missing from `running`.
    fn revoke_all_but(&self, heartbeated: &[Uuid], running: &[Uuid]) {
        if heartbeated.len() == running.len() {
            return;
        }
        let running: std::collections::HashSet<&Uuid> = running.iter().collect();
        for id in heartbeated.iter().filter(|id| !running.contains(id)) {
            if let Some(in_flight) = self.lock_in_flight().get(id).filter(|r| !r.revoked.is_cancelled()) {
                tracing::warn!(
                    job_key = %in_flight.run.job_key, run_id = %id,
                    "run is no longer running in the database (ended by the sweep or a cancel); cancelling it"
                );
                in_flight.revoked.cancel();
            }
        }
    }

    /// Waits up to `grace` for in-flight runs, then interrupts the rest: they are cancelled
    /// and recorded `failed` ("interrupted by shutdown").
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.tasks.close();
        let running = self.in_flight().len();
        if running > 0 {
            tracing::info!(running, grace = %humantime::format_duration(grace), "waiting for in-flight runs");
        }
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!(
                running = self.in_flight().len(),
                "grace period over: interrupting in-flight runs"
            );
            self.inner.interrupt.cancel();
            if tokio::time::timeout(CANCEL_GRACE * 3, self.inner.tasks.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    running = self.in_flight().len(),
                    "runs still unrecorded at exit; the stale sweep will fail them"
                );
            }
        }
    }
}

/// The recorder: takes every outcome waiting (up to [`RECORD_BATCH`]), records them in one
/// transaction, retrying while the database is unreachable until `interrupt` (shutdown's
/// grace is over), then makes one last try.
async fn record_batches(
    pool: PgPool,
    mut queue: mpsc::UnboundedReceiver<Outcome>,
    policy: Arc<Policy>,
    interrupt: CancellationToken,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while queue.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let outcomes: Vec<(Uuid, &RunOutcome)> = batch.iter().map(|o| (o.run_id, &o.outcome)).collect();
        let finished = match retry_until(&interrupt, "record run outcomes", || {
            runs::finish_many(&pool, &outcomes, &policy)
        })
        .await
        {
            Some(finished) => Some(finished),
            None => runs::finish_many(&pool, &outcomes, &policy).await.ok(),
        }
        .map(Recorded::announce);
        drop(outcomes);
        let mut finished: Option<HashMap<Uuid, JobRun>> =
            finished.map(|runs| runs.into_iter().map(|r| (r.id, r)).collect());
        for Outcome { run_id, recorded, .. } in batch.drain(..) {
            let result = match finished.as_mut() {
                None => RecordReply::Failed,
                Some(runs) => runs
                    .remove(&run_id)
                    .map_or(RecordReply::NotRunning, |run| RecordReply::Finished(Box::new(run))),
            };
            // The run's task is gone only if the runtime is shutting down.
            let _ = recorded.send(result);
        }
    }
}

/// Why a run was stopped before its handler returned, and how long the handler then gets to
/// return by itself before its task is aborted.
pub(crate) struct Stop {
    pub reason: RunReason,
    pub error: String,
    pub grace: Duration,
}

/// Runs a target's handler to its outcome: what it returned, a panic, or, when `timeout`
/// elapses or `stopped` completes first, the stop's reason after `cancel` fired and the
/// handler returned or its grace ran out. The one place that decides how a run ends; the
/// executor and the target test kit (`crate::testing`) both run handlers through it.
pub(crate) async fn supervise<H>(
    handler: H,
    (job_key, run_id): (&str, Uuid),
    cancel: CancellationToken,
    timeout: Duration,
    stopped: impl std::future::Future<Output = Stop>,
) -> RunOutcome
where
    H: std::future::Future<Output = Result<serde_json::Value, crate::failure::Failure>> + Send + 'static,
{
    // Its own task, so a panic is caught as a JoinError instead of unwinding through us; in
    // the run's span, so the target's own log lines carry the job key and run id.
    let span = tracing::info_span!("run", %job_key, %run_id);
    let mut handle = tokio::spawn(handler.instrument(span));
    let stop = tokio::select! {
        joined = &mut handle => return match joined {
            Ok(Ok(output)) => RunOutcome::Succeeded { output },
            Ok(Err(Failure { message, permanent: true })) => RunOutcome::FailedPermanently { error: message },
            Ok(Err(Failure { message, .. })) => RunOutcome::Failed { reason: RunReason::Error, error: message },
            Err(e) => describe_join_error(e),
        },
        () = tokio::time::sleep(timeout) => Stop {
            reason: RunReason::Timeout,
            error: format!("timed out after {}", humantime::format_duration(timeout)),
            grace: CANCEL_GRACE,
        },
        stop = stopped => stop,
    };
    cancel.cancel();
    let Stop { reason, error, grace } = stop;
    match tokio::time::timeout(grace, &mut handle).await {
        // The handler returned after a cancel: the store records it `cancelled` regardless.
        Ok(Ok(Ok(output))) if reason == RunReason::Cancelled => RunOutcome::Succeeded { output },
        Ok(_) => RunOutcome::Failed { reason, error },
        Err(_) => {
            handle.abort();
            tracing::warn!(
                %job_key, %run_id, grace_ms = grace.as_millis() as u64,
                "the handler ignored its cancellation; aborted"
            );
            RunOutcome::Failed { reason, error }
        }
    }
}

fn describe_join_error(error: tokio::task::JoinError) -> RunOutcome {
    if !error.is_panic() {
        return RunOutcome::Failed {
            reason: RunReason::Error,
            error: "the run's task was cancelled".to_owned(),
        };
    }
    let panic = error.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned());
    RunOutcome::Failed {
        reason: RunReason::Panic,
        error: format!("{PANICKED}{message}"),
    }
}
