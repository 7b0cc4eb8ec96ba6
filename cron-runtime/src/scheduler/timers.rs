//! The timer queue: one min-heap of next fire times for every armed definition.
//!
//! The scheduler's loop sleeps until the earliest entry, pops everything due, and re-arms
//! recurring definitions. Re-arming or disarming bumps a definition's generation, and heap
//! entries of an older generation are dropped when they surface (lazy deletion), so every
//! change is O(log n) and nothing scans the queue.
//!
//! A one-time definition fires once per process: once popped it is remembered, and arming it
//! again (a reload while its run executes, a notification) is refused. Slots a little in the
//! past are caught up (`catch_up`, a little under `CRON_MISSED_AFTER`): a definition armed
//! just after it became active, or a loop that was starved for a moment, starts those slots
//! late instead of leaving them to be recorded missed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{JobDefinition, JobStatus, Schedule, ScheduleType};
use crate::store::runs::DueSlot;

/// One armed definition.
#[derive(Debug)]
struct Armed {
    definition: JobDefinition,
    /// `None` for one-time definitions; shared by definitions with the same schedule.
    schedule: Option<Arc<Schedule>>,
    generation: u64,
    /// The next fire time in the heap.
    next: DateTime<Utc>,
}

/// Why a definition is not armed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotArmed {
    /// Paused or retired.
    NotActive,
    /// The stored expression or timezone no longer parses (it was validated when created).
    BadSchedule(String),
    /// The schedule has no future fire time.
    NeverFires,
    /// A one-time definition that fired in this process already.
    Fired,
}

/// Parsed schedules by (expression, timezone). Parsing is the costliest step of arming
/// (croner builds its bit sets), and many definitions share a schedule: each distinct
/// schedule is parsed once and its definitions share the result, however they were armed (a
/// reload, or one notification per created job). Entries no armed definition uses any more
/// are dropped at the next reload.
type ParseCache = HashMap<(String, String), Result<Arc<Schedule>, String>>;

/// Next fire times of every armed definition.
#[derive(Debug, Default)]
pub struct TimerQueue {
    armed: HashMap<Uuid, Armed>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, u64, Uuid)>>,
    next_generation: u64,
    parsed: ParseCache,
    /// One-time definitions popped by this queue, with the activation they fired in: never
    /// again in that activation here. A resume (a new activation) arms it again: if the first
    /// fire found it paused and recorded nothing, it must still run; if it did record a row,
    /// the slot guard makes the second fire a no-op.
    fired_once: HashMap<Uuid, DateTime<Utc>>,
    /// How far back slots are still fired when arming or after a starved loop.
    catch_up: chrono::Duration,
}

impl TimerQueue {
    /// An empty queue that fires no slot from the past (but a one-time definition's).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue that still fires the slots of the last `catch_up`.
    pub fn with_catch_up(catch_up: std::time::Duration) -> Self {
        TimerQueue {
            catch_up: chrono::Duration::from_std(catch_up).unwrap_or(chrono::Duration::zero()),
            ..Self::default()
        }
    }

    /// The earliest instant whose slots still fire at `now`.
    fn oldest_fired(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.catch_up
    }

    /// How many definitions are armed.
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    /// `true` when nothing is armed.
    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// Arms (or re-arms) `definition` for its next fire time after `now`; a one-time
    /// definition fires at `run_at`, immediately if that has passed.
    /// Re-arming a definition armed already with the same activation keeps its timer.
    pub fn arm(&mut self, definition: JobDefinition, now: DateTime<Utc>) -> Result<DateTime<Utc>, NotArmed> {
        if definition.status == JobStatus::Active {
            if let Some(armed) = self.armed.get(&definition.id) {
                if armed.definition.active_since == definition.active_since {
                    return Ok(armed.next);
                }
            }
        }
        self.disarm(definition.id);
        if definition.status != JobStatus::Active {
            return Err(NotArmed::NotActive);
        }
        if self.fired_once.get(&definition.id) == Some(&definition.active_since) {
            return Err(NotArmed::Fired);
        }
        let (schedule, first) = match (definition.schedule_type, &definition.cron_expression, definition.run_at) {
            (ScheduleType::OneTime, _, Some(run_at)) => (None, run_at),
            (ScheduleType::Recurring, Some(expression), _) => {
                let schedule = self
                    .parsed
                    .entry((expression.clone(), definition.timezone.clone()))
                    .or_insert_with(|| {
                        Schedule::parse(expression, &definition.timezone)
                            .map(Arc::new)
                            .map_err(|e| e.to_string())
                    })
                    .clone()
                    .map_err(NotArmed::BadSchedule)?;
                // Slots since it became active, as far back as they still fire.
                let from = definition.active_since.max(self.oldest_fired(now));
                let first = schedule.next_after(from).ok_or(NotArmed::NeverFires)?;
                (Some(schedule), first)
            }
            // The database's CHECK constraint rules this out.
            _ => return Err(NotArmed::BadSchedule("schedule type and fields disagree".into())),
        };
        self.next_generation += 1;
        let generation = self.next_generation;
        self.heap.push(Reverse((first, generation, definition.id)));
        self.armed.insert(
            definition.id,
            Armed {
                definition,
                schedule,
                generation,
                next: first,
            },
        );
        Ok(first)
    }

    /// Forgets `id`; its heap entry is dropped when it surfaces.
    pub fn disarm(&mut self, id: Uuid) -> bool {
        self.armed.remove(&id).is_some()
    }

    /// Makes the armed set exactly `active`: arms new definitions and drops missing ones.
    /// Definitions armed already keep their timers (definitions are immutable, so the
    /// same id means the same schedule). Returns the ids that could not be armed.
    pub fn replace_all(&mut self, active: Vec<JobDefinition>, now: DateTime<Utc>) -> Vec<(Uuid, NotArmed)> {
        let keep: HashSet<Uuid> = active.iter().map(|d| d.id).collect();
        self.armed.retain(|id, _| keep.contains(id));
        // A fired one-time definition no longer active (its run ended) needs no memory.
        self.fired_once.retain(|id, _| keep.contains(id));
        let mut failed = Vec::new();
        for definition in active {
            let fired = self.fired_once.get(&definition.id) == Some(&definition.active_since);
            if !self.armed.contains_key(&definition.id) && !fired {
                let id = definition.id;
                if let Err(why) = self.arm(definition, now) {
                    failed.push((id, why));
                }
            }
        }
        // Keep only the schedules an armed definition still shares.
        self.parsed
            .retain(|_, parsed| parsed.as_ref().is_ok_and(|schedule| Arc::strong_count(schedule) > 1));
        // Rebuild the heap when lazy deletion has left it much larger than the armed set.
        if self.heap.len() > 2 * self.armed.len() + 1024 {
            self.heap
                .retain(|Reverse((_, generation, id))| self.armed.get(id).is_some_and(|a| a.generation == *generation));
        }
        failed
    }

    /// When the earliest armed definition is due.
    pub fn next_due(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse((at, generation, id))) = self.heap.peek() {
            if self.armed.get(id).is_some_and(|a| a.generation == *generation) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops every slot due at or before `now`, re-arming recurring definitions for their
    /// next fire time. A window missed by more than one period (the process was stopped
    /// or starved) is not replayed beyond the catch-up: the next time is computed from
    /// `now` minus the catch-up.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Vec<DueSlot> {
        let oldest = self.oldest_fired(now);
        let mut due = Vec::new();
        while let Some(Reverse((at, generation, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(armed) = self.armed.get_mut(&id).filter(|a| a.generation == generation) else {
                continue;
            };
            due.push(DueSlot::of(&armed.definition, at));
            match armed.schedule.as_ref().and_then(|s| s.next_after(at.max(oldest))) {
                Some(next) => {
                    armed.next = next;
                    self.heap.push(Reverse((next, generation, id)));
                }
                None => {
                    if armed.schedule.is_none() {
                        self.fired_once.insert(id, armed.definition.active_since);
                    }
                    self.armed.remove(&id);
                }
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn definition(expression: Option<&str>, run_at: Option<DateTime<Utc>>) -> JobDefinition {
        let now = Utc::now();
        JobDefinition {
            id: Uuid::now_v7(),
            job_key: "k".into(),
            version: 1,
            target: "t".into(),
            schedule_type: if expression.is_some() {
                ScheduleType::Recurring
            } else {
                ScheduleType::OneTime
            },
            cron_expression: expression.map(str::to_owned),
            timezone: "UTC".into(),
            run_at,
            payload: json!({}),
            description: None,
            status: JobStatus::Active,
            pause_reason: None,
            paused_at: None,
            paused_by: None,
            resumed_by: None,
            resumed_at: None,
            created_by: "x".into(),
            created_at: now,
            updated_at: now,
            retired_at: None,
            // Long before the instants the tests arm at.
            active_since: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            retired_by: None,
            managed_by: crate::domain::ManagedBy::Api,
            source: None,
            timeout_ms: None,
            retry: Default::default(),
        }
    }

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap()
    }

    #[test]
    fn inactive_definitions_are_not_armed() {
        let mut queue = TimerQueue::new();
        let mut paused = definition(Some("* * * * *"), None);
        paused.status = JobStatus::Paused;
        assert_eq!(queue.arm(paused, t(0, 0, 0)), Err(NotArmed::NotActive));
        assert!(queue.is_empty());
        assert_eq!(queue.next_due(), None);
    }

    #[test]
    fn due_slots_pop_in_order_and_recurring_ones_rearm() {
        let mut queue = TimerQueue::new();
        let every_minute = definition(Some("* * * * *"), None);
        let once = definition(None, Some(t(0, 1, 30)));
        let (every_id, once_id) = (every_minute.id, once.id);
        assert_eq!(queue.arm(every_minute, t(0, 0, 10)), Ok(t(0, 1, 0)));
        assert_eq!(queue.arm(once, t(0, 0, 10)), Ok(t(0, 1, 30)));
        assert_eq!(queue.next_due(), Some(t(0, 1, 0)));
        assert!(queue.pop_due(t(0, 0, 59)).is_empty());

        let due = queue.pop_due(t(0, 1, 0));
        assert_eq!(
            due.iter()
                .map(|s| (s.definition_id, s.scheduled_at))
                .collect::<Vec<_>>(),
            [(every_id, t(0, 1, 0))]
        );
        assert_eq!(queue.next_due(), Some(t(0, 1, 30)));
        let due = queue.pop_due(t(0, 2, 0));
        assert_eq!(
            due.iter()
                .map(|s| (s.definition_id, s.scheduled_at))
                .collect::<Vec<_>>(),
            [(once_id, t(0, 1, 30)), (every_id, t(0, 2, 0))]
        );
        assert_eq!(queue.len(), 1, "the one-time definition fired once and left the queue");
    }

    #[test]
    fn missed_windows_are_not_replayed() {
        let mut queue = TimerQueue::new();
        queue.arm(definition(Some("* * * * *"), None), t(0, 0, 10)).unwrap();
        // The process was starved for ten minutes: one slot fires, then the next after now.
        assert_eq!(queue.pop_due(t(0, 10, 5)).len(), 1);
        assert_eq!(queue.next_due(), Some(t(0, 11, 0)));
    }

    #[test]
    fn disarm_and_replace_all_change_the_armed_set() {
        let mut queue = TimerQueue::new();
        let a = definition(Some("* * * * *"), None);
        let b = definition(Some("*/5 * * * *"), None);
        let (a_id, b_id) = (a.id, b.id);
        queue.arm(a.clone(), t(0, 0, 0)).unwrap();
        assert!(queue.disarm(a_id));
        assert_eq!(queue.next_due(), None, "a disarmed entry never fires");
        queue.arm(a.clone(), t(0, 0, 0)).unwrap();
        queue.arm(a.clone(), t(0, 0, 0)).unwrap();
        assert_eq!(queue.pop_due(t(0, 1, 0)).len(), 1, "re-arming does not double a slot");
        assert!(queue.replace_all(vec![b], t(0, 1, 0)).is_empty());
        assert_eq!(queue.len(), 1);
        assert_eq!(
            queue
                .pop_due(t(0, 5, 0))
                .iter()
                .map(|s| s.definition_id)
                .collect::<Vec<_>>(),
            [b_id]
        );
    }

    #[test]
    fn definitions_armed_one_by_one_share_their_parsed_schedule() {
        // Each job created through the API arrives alone: it must still share the parse.
        let mut queue = TimerQueue::new();
        let (a, b) = (definition(Some("0 8 * * *"), None), definition(Some("0 8 * * *"), None));
        let (a_id, b_id) = (a.id, b.id);
        queue.arm(a, t(0, 0, 0)).unwrap();
        queue.arm(b, t(0, 0, 0)).unwrap();
        let schedule = |id: &Uuid| queue.armed[id].schedule.clone().expect("recurring");
        assert!(Arc::ptr_eq(&schedule(&a_id), &schedule(&b_id)));
        // A reload forgets schedules nothing uses any more.
        assert!(queue.replace_all(vec![], t(0, 0, 0)).is_empty());
        assert!(queue.parsed.is_empty());
    }

    #[test]
    fn a_fired_one_time_definition_is_never_armed_again() {
        // Its run executes while the definition stays active: a reload or a notification
        // must not fire it a second time.
        let mut queue = TimerQueue::new();
        let once = definition(None, Some(t(0, 1, 0)));
        queue.arm(once.clone(), t(0, 0, 0)).unwrap();
        assert_eq!(queue.pop_due(t(0, 1, 0)).len(), 1);
        assert!(queue.replace_all(vec![once.clone()], t(0, 1, 1)).is_empty());
        assert_eq!(queue.arm(once.clone(), t(0, 1, 2)), Err(NotArmed::Fired));
        assert!(queue.pop_due(t(0, 5, 0)).is_empty(), "fired once, and only once");
        // Resumed (a new activation; its first fire may have found it paused): armed again.
        let mut resumed = once.clone();
        resumed.active_since = t(0, 5, 30);
        assert_eq!(queue.arm(resumed, t(0, 6, 0)), Ok(t(0, 1, 0)));
        assert_eq!(queue.pop_due(t(0, 6, 0)).len(), 1);
        // Once it is no longer active (its run ended and retired it), the memory goes.
        queue.replace_all(vec![], t(0, 7, 0));
        assert!(queue.fired_once.is_empty());
    }

    #[test]
    fn slots_since_activation_within_the_catch_up_fire_late() {
        let mut queue = TimerQueue::with_catch_up(std::time::Duration::from_secs(10));
        let mut every_second = definition(Some("* * * * * *"), None);
        // Activated at 00:00:05, armed (the notification arrived) at 00:00:08.
        every_second.active_since = t(0, 0, 5);
        assert_eq!(queue.arm(every_second.clone(), t(0, 0, 8)), Ok(t(0, 0, 6)));
        let due: Vec<_> = queue.pop_due(t(0, 0, 8)).iter().map(|s| s.scheduled_at).collect();
        assert_eq!(due, [t(0, 0, 6), t(0, 0, 7), t(0, 0, 8)]);
        // Re-arming the same activation keeps the timer: nothing fires twice.
        assert_eq!(queue.arm(every_second, t(0, 0, 8)), Ok(t(0, 0, 9)));
        assert_eq!(queue.pop_due(t(0, 0, 9)).len(), 1);
        // Activated long ago: only the catch-up window fires.
        let mut old = definition(Some("* * * * * *"), None);
        old.active_since = t(0, 0, 0);
        assert_eq!(queue.arm(old, t(0, 1, 0)), Ok(t(0, 0, 51)));
    }

    #[test]
    fn a_definition_that_never_fires_is_reported() {
        let mut queue = TimerQueue::new();
        let mut bad = definition(Some("* * * * *"), None);
        bad.timezone = "Mars/Olympus".into();
        assert!(matches!(queue.arm(bad, t(0, 0, 0)), Err(NotArmed::BadSchedule(_))));
    }
}
