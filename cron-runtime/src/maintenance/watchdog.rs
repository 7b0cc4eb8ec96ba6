//! The watchdog (SPEC §11): no slot of a recurring definition is left without a run row.
//!
//! Every `api` and `scheduler` process runs one; an advisory lock lets one pass at a time run
//! across the cluster. A pass:
//! - ends `missed` the run-now requests that no live scheduler can start (none alive, or none
//!   with the target), older than `CRON_MISSED_AFTER`;
//! - walks the definitions whose watermark is due (`cron_slot_watermarks`), enumerates their
//!   slots between the watermark and now − `CRON_MISSED_AFTER` − one interval, and records
//!   each slot without a row as `missed` through the slot guard (`ON CONFLICT DO NOTHING`), so a
//!   late scheduler insert and the watchdog never both win; then advances the watermark.
//!
//! - opens and resolves the cluster incident `no_scheduler` (SPEC §12), and counts the missed
//!   rows it writes into their keys' incidents, in the pass's transaction.
//!
//! Work per pass is bounded ([`DEFINITIONS_PER_PASS`], [`ROWS_PER_PASS`]); after an outage the
//! next passes follow at once until it has caught up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::alerts;
use crate::domain::incident::Policy;
use crate::domain::{JobStatus, RunReason, Schedule};
use crate::store::runs::{self, DueSlot};
use crate::store::watermarks::{self, Advance, Watched};
use crate::store::{incidents, instances, locks, StoreError};
use crate::telemetry::log_finished;

/// How long a pass waits for a lock before giving way (the next tick tries again). A pass
/// holds the watermarks of up to [`DEFINITIONS_PER_PASS`] definitions, and a pause, resume or
/// version of one of them waits for it: a pass stuck behind a slow scheduler transaction (one
/// inserting the same slots) must not hold those admin operations past their request timeout.
const LOCK_TIMEOUT: &str = "2s";
/// Definitions one pass accounts for.
const DEFINITIONS_PER_PASS: i64 = 500;
/// Missed rows one pass may write (a per-second job down for a day has 86,400 slots).
const ROWS_PER_PASS: usize = 5_000;
/// Passes in a row while catching up, before waiting for the next tick.
const CATCH_UP_PASSES: usize = 50;

/// How often the watchdog runs (1 s to 15 s). A pass records slots older than `missed_after`
/// plus one interval, which leaves the first word to a late scheduler, whose reason
/// (`database_unreachable`, `overloaded`) is more precise than the watchdog's; a slot is still
/// recorded by T + `missed_after` + 2 intervals (SPEC §11 allows 30 s).
pub fn interval(missed_after: Duration) -> Duration {
    (missed_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(15))
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Another process held the pass lock: this one did nothing.
    pub locked_out: bool,
    pub definitions: usize,
    /// Slots recorded `missed`.
    pub missed_slots: usize,
    /// Run-now requests ended `missed`.
    pub missed_requests: usize,
    /// The pass stopped at a bound: another should follow at once.
    pub more: bool,
}

/// A time this process could not reach the database: from its last pass that worked to the
/// first that worked again. Slots in it are missed for that reason (`database_unreachable`),
/// whatever the cluster looks like when they are finally recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// An acquire this slow (or slower than an interval) means the database was away.
const SLOW_ACQUIRE: Duration = Duration::from_secs(3);
/// How many recent outages a watchdog remembers.
const OUTAGES_KEPT: usize = 8;

/// Runs passes every [`interval`] until `stop` fires.
pub async fn run(pool: PgPool, missed_after: Duration, policy: Arc<Policy>, stop: CancellationToken) {
    let every = interval(missed_after);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outages: Vec<Outage> = Vec::new();
    // When a pass last had the database, and whether one failed since.
    let (mut last_ok, mut failing) = (Utc::now(), false);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        for _ in 0..CATCH_UP_PASSES {
            let asked = std::time::Instant::now();
            let connection = pool.acquire().await;
            let connected = Utc::now();
            // The pool retries a refused connect until its acquire timeout, so an outage
            // shorter than that shows as a slow acquire, not as an error. A busy pool or a
            // starved task waits too, but not for this long.
            let waited = asked.elapsed() > every.max(SLOW_ACQUIRE);
            let ending = (failing || waited).then_some(Outage {
                from: last_ok,
                until: connected,
            });
            let known: Vec<Outage> = outages.iter().copied().chain(ending).collect();
            let result = match connection {
                Ok(mut conn) => pass(&mut *conn, missed_after, &known, &policy).await,
                Err(e) => Err(e.into()),
            };
            // A lock timeout is an answer too: the database is there, the slots wait a tick.
            let answered = result.as_ref().map_or_else(StoreError::is_lock_timeout, |_| true);
            if answered {
                if let Some(outage) = ending {
                    remember(&mut outages, outage);
                    failing = false;
                }
                last_ok = connected;
            }
            match result {
                Ok(report) if report.more && !stop.is_cancelled() => continue,
                Ok(_) => break,
                Err(e) if answered => {
                    tracing::info!(error = %e, "watchdog pass gave way to another transaction; retrying at the next tick");
                    break;
                }
                Err(e) => {
                    failing = true;
                    crate::metrics::database_error("watchdog pass");
                    tracing::warn!(error = %e, "watchdog pass failed; retrying at the next tick");
                    break;
                }
            }
        }
    }
}

/// Keeps `outage` among the last [`OUTAGES_KEPT`].
fn remember(outages: &mut Vec<Outage>, outage: Outage) {
    outages.push(outage);
    if outages.len() > OUTAGES_KEPT {
        outages.remove(0);
    }
}

/// One pass, in one transaction under the cluster-wide pass lock. Slots within one of
/// `outages` (this process's own) are missed `database_unreachable`. Incidents follow
/// `policy`; the pass announces them once it committed.
#[tracing::instrument(skip_all)]
pub async fn pass<'c>(
    db: impl sqlx::Acquire<'c, Database = sqlx::Postgres>,
    missed_after: Duration,
    outages: &[Outage],
    policy: &Policy,
) -> Result<PassReport, StoreError> {
    let mut tx = db.begin().await?;
    let (locked, now, _): (bool, DateTime<Utc>, String) =
        sqlx::query_as("SELECT pg_try_advisory_xact_lock($1), clock_timestamp(), set_config('lock_timeout', $2, true)")
            .bind(locks::WATCHDOG_PASS)
            .bind(LOCK_TIMEOUT)
            .fetch_one(&mut *tx)
            .await?;
    if !locked {
        return Ok(PassReport {
            locked_out: true,
            ..PassReport::default()
        });
    }
    let requests = runs::miss_unstartable_pending(&mut tx, missed_after).await?;
    let wait = missed_after + interval(missed_after);
    let horizon = now - chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    let due = watermarks::due(&mut tx, horizon, DEFINITIONS_PER_PASS).await?;
    // Who is alive only matters for slots to record (an idle pass skips the queries).
    let (live, alive_windows) = match due.is_empty() {
        true => (instances::LiveTargets::default(), Vec::new()),
        false => (
            instances::live_targets(&mut *tx).await?,
            instances::alive_windows(&mut *tx).await?,
        ),
    };
    let cluster = Cluster {
        live: &live,
        alive_windows: &alive_windows,
        outages,
    };

    let mut schedules: HashMap<(&str, &str), Option<Arc<Schedule>>> = HashMap::new();
    let (mut slots, mut reasons, mut advances) = (Vec::new(), Vec::new(), Vec::new());
    let mut more = due.len() as i64 == DEFINITIONS_PER_PASS;
    for watched in &due {
        let budget = ROWS_PER_PASS - slots.len();
        if budget == 0 {
            more = true;
            break;
        }
        let schedule = schedules
            .entry((&watched.cron_expression, &watched.timezone))
            .or_insert_with(|| {
                Schedule::parse(&watched.cron_expression, &watched.timezone)
                    .ok()
                    .map(Arc::new)
            });
        let Some(schedule) = schedule else {
            tracing::error!(job_key = %watched.job_key, job_id = %watched.id, "stored schedule no longer parses; its slots are not accounted for");
            advances.push(park(watched));
            continue;
        };
        let account = account(watched, |t| schedule.next_after(t), horizon, budget);
        more |= account.truncated;
        for at in account.slots {
            slots.push(slot_of(watched, at));
            reasons.push(cluster.miss_reason(&watched.target, at));
        }
        advances.push(account.advance);
    }
    let missed = runs::insert_missed(&mut tx, &slots, &reasons, runs::MissedBy::Watchdog).await?;
    watermarks::advance(&mut tx, &advances).await?;
    let mut transitions = incidents::record_outcomes(&mut tx, &requests, policy).await?;
    transitions.extend(incidents::record_outcomes(&mut tx, &missed, policy).await?);
    transitions.extend(incidents::check_no_scheduler(&mut tx, policy).await?);
    tx.commit().await?;
    alerts::announce(&transitions);

    for run in requests.iter().chain(&missed) {
        log_finished(run);
    }
    Ok(PassReport {
        locked_out: false,
        definitions: advances.len(),
        missed_slots: missed.len(),
        missed_requests: requests.len(),
        more,
    })
}

/// What the watchdog knows of the cluster, to say why a slot was missed.
struct Cluster<'a> {
    live: &'a instances::LiveTargets,
    /// When each known scheduler instance was alive.
    alive_windows: &'a [(DateTime<Utc>, DateTime<Utc>)],
    /// This process's own recent outages.
    outages: &'a [Outage],
}

impl Cluster<'_> {
    /// Why nobody started the slot of `target` at `at`: as the cluster was at the slot's time
    /// where that is known (this process's outages, which schedulers were alive then), else as
    /// the live schedulers tell now.
    fn miss_reason(&self, target: &str, at: DateTime<Utc>) -> RunReason {
        if self.outages.iter().any(|o| o.from <= at && at <= o.until) {
            return RunReason::DatabaseUnreachable;
        }
        let alive_then = self
            .alive_windows
            .iter()
            .any(|(from, until)| *from <= at && at <= *until);
        if !alive_then {
            return RunReason::NoScheduler;
        }
        miss_reason(self.live, target)
    }
}

/// Why nobody started a slot of `target`, as far as the live schedulers tell.
fn miss_reason(live: &instances::LiveTargets, target: &str) -> RunReason {
    if live.accepting == 0 {
        RunReason::NoScheduler
    } else if !live.has(target) {
        RunReason::TargetUnavailable
    } else {
        RunReason::NotStarted
    }
}

fn slot_of(watched: &Watched, at: DateTime<Utc>) -> DueSlot {
    DueSlot {
        run_id: uuid::Uuid::now_v7(),
        definition_id: watched.id,
        job_key: watched.job_key.clone(),
        job_version: watched.version,
        target: watched.target.clone(),
        scheduled_at: at,
        recurring: true,
    }
}

/// `(from, until]` stretches of earlier active windows, oldest first.
type Stretches = Vec<(DateTime<Utc>, DateTime<Utc>)>;

/// The slots of one definition to check, and where its watermark goes next.
#[derive(Debug, Clone, PartialEq)]
struct Account {
    slots: Vec<DateTime<Utc>>,
    advance: Advance,
    /// More slots are due than `max` allowed.
    truncated: bool,
}

/// The slots of `watched` to check, at most `max`: first those of its backlog (stretches of
/// earlier active windows a quick pause and resume left behind) up to `horizon`, then those
/// after its watermark (and after `active_since`) up to `horizon` (and up to when it stopped
/// being active); `next_after` is its schedule.
fn account(
    watched: &Watched,
    next_after: impl Fn(DateTime<Utc>) -> Option<DateTime<Utc>>,
    horizon: DateTime<Utc>,
    max: usize,
) -> Account {
    let mut slots = Vec::new();
    let (backlog, backlog_truncated) = account_backlog(&watched.backlog(), &next_after, horizon, max, &mut slots);
    let end = watched.active_until.map_or(horizon, |until| until.min(horizon));
    let mut checked_until = watched.checked_until.max(watched.active_since);
    let mut next = next_after(checked_until);
    let mut truncated = backlog_truncated;
    while let Some(at) = next.filter(|at| *at <= end && !truncated) {
        if slots.len() == max {
            truncated = true;
            break;
        }
        slots.push(at);
        checked_until = at;
        next = next_after(at);
    }
    if !truncated {
        checked_until = checked_until.max(end);
    }
    let window_closed = match watched.active_until {
        Some(until) => next.is_none_or(|at| at > until),
        None => false,
    };
    let mut next_check_at = if window_closed { None } else { next };
    // The backlog's next slot comes first (its lower bound is early enough).
    if let Some((from, _)) = backlog.first() {
        next_check_at = Some(next_check_at.map_or(*from, |at| at.min(*from)));
    }
    Account {
        slots,
        advance: Advance {
            id: watched.id,
            checked_until,
            forget: window_closed && backlog.is_empty() && watched.status == JobStatus::Retired,
            next_check_at,
            backlog,
        },
        truncated,
    }
}

/// Appends the backlog's slots up to `horizon` to `slots` (up to `max` in all); returns what is
/// left of the backlog, and whether `max` cut it short.
fn account_backlog(
    backlog: &[(DateTime<Utc>, DateTime<Utc>)],
    next_after: &impl Fn(DateTime<Utc>) -> Option<DateTime<Utc>>,
    horizon: DateTime<Utc>,
    max: usize,
    slots: &mut Vec<DateTime<Utc>>,
) -> (Stretches, bool) {
    let mut left = Vec::new();
    let mut truncated = false;
    for &(from, until) in backlog {
        if truncated {
            left.push((from, until));
            continue;
        }
        let mut cursor = from;
        while let Some(at) = next_after(cursor).filter(|at| *at <= until.min(horizon)) {
            if slots.len() == max {
                truncated = true;
                break;
            }
            slots.push(at);
            cursor = at;
        }
        // Slots after the horizon (a pause a moment ago) wait for a later pass.
        if truncated || until > horizon {
            left.push((cursor, until));
        }
    }
    (left, truncated)
}

/// Stops watching a definition whose schedule cannot be evaluated.
fn park(watched: &Watched) -> Advance {
    Advance {
        id: watched.id,
        checked_until: watched.checked_until,
        next_check_at: None,
        forget: false,
        backlog: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn t(m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, m, s).unwrap()
    }

    /// Every 10 seconds.
    fn every_10s(after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let secs = after.timestamp();
        Utc.timestamp_opt(secs - secs.rem_euclid(10) + 10, 0).single()
    }

    fn watched(status: JobStatus, active_since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Watched {
        Watched {
            id: Uuid::now_v7(),
            job_key: "k".into(),
            version: 1,
            target: "system.heartbeat".into(),
            cron_expression: "*/10 * * * * *".into(),
            timezone: "UTC".into(),
            status,
            active_since,
            active_until: until,
            checked_until: active_since,
            backlog_from: Vec::new(),
            backlog_until: Vec::new(),
        }
    }

    #[test]
    fn an_active_definition_accounts_for_every_slot_up_to_the_horizon() {
        let w = watched(JobStatus::Active, t(0, 5), None);
        let a = account(&w, every_10s, t(1, 0), 100);
        assert_eq!(
            a.slots,
            (1..=6)
                .map(|i| t(0, 0) + chrono::Duration::seconds(10 * i))
                .collect::<Vec<_>>()
        );
        assert_eq!(a.advance.checked_until, t(1, 0));
        assert_eq!(a.advance.next_check_at, Some(t(1, 10)));
        assert!(!a.truncated && !a.advance.forget);
    }

    #[test]
    fn active_since_is_exclusive_and_the_watermark_wins_when_later() {
        let mut w = watched(JobStatus::Active, t(0, 10), None);
        assert_eq!(account(&w, every_10s, t(0, 30), 100).slots, [t(0, 20), t(0, 30)]);
        w.checked_until = t(0, 20);
        assert_eq!(account(&w, every_10s, t(0, 30), 100).slots, [t(0, 30)]);
    }

    #[test]
    fn a_long_outage_is_caught_up_in_bounded_steps() {
        let w = watched(JobStatus::Active, t(0, 0), None);
        let a = account(&w, every_10s, t(10, 0), 4);
        assert_eq!(a.slots.len(), 4);
        assert!(a.truncated);
        assert_eq!(a.advance.checked_until, t(0, 40));
        assert_eq!(a.advance.next_check_at, Some(t(0, 50)), "due again at once");
    }

    #[test]
    fn a_paused_definition_is_accounted_up_to_its_pause_then_parked() {
        let w = watched(JobStatus::Paused, t(0, 0), Some(t(0, 25)));
        let a = account(&w, every_10s, t(5, 0), 100);
        assert_eq!(a.slots, [t(0, 10), t(0, 20)]);
        assert_eq!(a.advance.next_check_at, None);
        assert!(!a.advance.forget, "a paused definition keeps its row for its resume");
    }

    #[test]
    fn a_recent_pause_keeps_watching_until_the_horizon_passes_it() {
        let w = watched(JobStatus::Paused, t(0, 0), Some(t(0, 45)));
        let a = account(&w, every_10s, t(0, 25), 100);
        assert_eq!(a.slots, [t(0, 10), t(0, 20)]);
        assert_eq!(a.advance.next_check_at, Some(t(0, 30)));
    }

    #[test]
    fn a_retired_definition_is_forgotten_once_done() {
        let w = watched(JobStatus::Retired, t(0, 0), Some(t(0, 15)));
        let a = account(&w, every_10s, t(5, 0), 100);
        assert_eq!(a.slots, [t(0, 10)]);
        assert!(a.advance.forget);
    }

    #[test]
    fn a_stretch_left_behind_by_a_quick_pause_and_resume_is_accounted_first() {
        // Active from 0:05, paused at 0:25 before the watchdog got past 0:05, resumed at 0:40.
        let mut w = watched(JobStatus::Active, t(0, 40), None);
        w.checked_until = t(0, 5);
        w.backlog_from = vec![t(0, 5)];
        w.backlog_until = vec![t(0, 25)];
        let a = account(&w, every_10s, t(1, 0), 100);
        assert_eq!(
            a.slots,
            [t(0, 10), t(0, 20), t(0, 50), t(1, 0)],
            "not 0:30: paused then"
        );
        assert!(a.advance.backlog.is_empty());
        // With a small budget, the backlog is kept where it stopped.
        let a = account(&w, every_10s, t(1, 0), 1);
        assert_eq!(a.slots, [t(0, 10)]);
        assert!(a.truncated);
        assert_eq!(a.advance.backlog, [(t(0, 10), t(0, 25))]);
        assert_eq!(a.advance.next_check_at, Some(t(0, 10)));
        assert_eq!(a.advance.checked_until, t(0, 40), "the current window is untouched");
        // A pause newer than the horizon: the stretch beyond it waits.
        let a = account(&w, every_10s, t(0, 15), 100);
        assert_eq!(a.slots, [t(0, 10)]);
        assert_eq!(a.advance.backlog, [(t(0, 10), t(0, 25))]);
    }

    #[test]
    fn the_reason_says_what_the_live_schedulers_lacked() {
        let mut live = instances::LiveTargets::default();
        assert_eq!(miss_reason(&live, "a"), RunReason::NoScheduler);
        live.accepting = 1;
        live.targets.insert("b".into());
        assert_eq!(miss_reason(&live, "a"), RunReason::TargetUnavailable);
        assert_eq!(miss_reason(&live, "b"), RunReason::NotStarted);
    }
}
