//! Schedules in words ("At 08:00, Monday through Friday, in Europe/Berlin") and the daylight-
//! saving notes of their fire times, for people reading the console.
//!
//! No maintained crate reads our dialect (SPEC §5: 5 or 6 fields, `L`, `LW`, `15W`, `5L`,
//! `1#2`, names, `?`, macros), so this module describes the normalized form that
//! [`Schedule::parse`] checks: every name is a number by then, and `?` is `*`.

use chrono::{DateTime, Duration, LocalResult, NaiveTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::schedule::normalize;
use super::Schedule;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 8] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `expression` in words, with its timezone; the expression itself when it does not parse.
pub fn describe(expression: &str, timezone: &str) -> String {
    let Ok(normalized) = normalize(expression.trim()) else {
        return expression.to_owned();
    };
    let fields: Vec<&str> = normalized.split(' ').collect();
    let [second, minute, hour, dom, month, dow] = fields[..] else {
        return expression.to_owned();
    };
    let mut parts = vec![time_part(second, minute, hour)];
    if let Some(days) = day_part(dom, dow) {
        parts.push(days);
    }
    if month != "*" {
        parts.push(format!("in {}", list(month, Unit::Month)));
    }
    parts.push(format!("in {timezone}"));
    parts.join(", ")
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Unit {
    fn noun(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::DayOfMonth => "day",
            Unit::Month => "month",
            Unit::DayOfWeek => "day of the week",
        }
    }

    fn value(self, n: u32) -> String {
        match self {
            Unit::Month => MONTHS
                .get(n as usize - 1)
                .map_or_else(|| n.to_string(), |m| (*m).to_owned()),
            Unit::DayOfWeek => DAYS.get(n as usize).map_or_else(|| n.to_string(), |d| (*d).to_owned()),
            Unit::Hour => format!("{n:02}:00"),
            _ => n.to_string(),
        }
    }
}

fn single(field: &str) -> Option<u32> {
    field.parse().ok()
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn join(items: Vec<String>) -> String {
    match items.len() {
        0 => String::new(),
        1 => items.into_iter().next().unwrap_or_default(),
        _ => {
            let (last, rest) = items.split_last().expect("two or more");
            format!("{} and {last}", rest.join(", "))
        }
    }
}

/// One list field (`1,15-20,*/5`) in words.
fn list(field: &str, unit: Unit) -> String {
    join(field.split(',').map(|item| item_words(item, unit)).collect())
}

fn item_words(item: &str, unit: Unit) -> String {
    if let Some((range, step)) = item.split_once('/') {
        let step: u32 = step.parse().unwrap_or(1);
        let clock = matches!(unit, Unit::Second | Unit::Minute | Unit::Hour);
        let every = match step {
            1 => format!("every {}", unit.noun()),
            // "every 15 minutes", but "every 2nd day of the week".
            _ if clock => format!("every {step} {}s", unit.noun()),
            _ => format!("every {} {}", ordinal(step), unit.noun()),
        };
        let point = |raw: &str| {
            let n = raw.parse().unwrap_or(0);
            match unit {
                Unit::Second | Unit::Minute => format!("{} {n}", unit.noun()),
                _ => unit.value(n),
            }
        };
        return match range.split_once('-') {
            _ if range == "*" => every,
            Some((a, b)) => format!(
                "{every} from {} through {}",
                point(a),
                unit.value(b.parse().unwrap_or(0))
            ),
            None => format!("{every} from {}", point(range)),
        };
    }
    if item == "*" {
        return format!("every {}", unit.noun());
    }
    if let Some((a, b)) = item.split_once('-') {
        return format!(
            "{} through {}",
            unit.value(a.parse().unwrap_or(0)),
            unit.value(b.parse().unwrap_or(0))
        );
    }
    item.parse().map_or_else(|_| item.to_owned(), |n| unit.value(n))
}

fn time_part(second: &str, minute: &str, hour: &str) -> String {
    let hours: Option<Vec<u32>> = hour.split(',').map(single).collect();
    match (single(second), single(minute), hours) {
        // Fixed times of day: "At 08:00", "At 08:00 and 17:00", "At 08:00:30".
        (Some(s), Some(m), Some(hours)) => {
            let times = hours
                .into_iter()
                .map(|h| {
                    if s == 0 {
                        format!("{h:02}:{m:02}")
                    } else {
                        format!("{h:02}:{m:02}:{s:02}")
                    }
                })
                .collect();
            format!("At {}", join(times))
        }
        (second_value, _, _) => {
            let seconds = match second_value {
                Some(0) => None,
                _ if second == "*" => Some("every second".to_owned()),
                _ if second.contains('/') => Some(list(second, Unit::Second)),
                _ => Some(format!("at second {}", list(second, Unit::Second))),
            };
            let minutes = match minute {
                // "every 10 seconds" already says every minute; "at second 30" does not.
                "*" if second.contains(['*', '/']) => None,
                "*" => Some("every minute".to_owned()),
                _ if minute.contains('/') => Some(list(minute, Unit::Minute)),
                _ => Some(format!("at minute {}", list(minute, Unit::Minute))),
            };
            let hours = match hour {
                "*" => None,
                _ if hour.contains('/') && minute.contains(['*', '/']) => Some(list(hour, Unit::Hour)),
                _ if hour.contains('/') => Some(format!("past {}", list(hour, Unit::Hour))),
                _ if minute.contains(['*', '/']) => Some(format!("during hour {}", list(hour, Unit::Minute))),
                _ => Some(format!("past hour {}", list(hour, Unit::Minute))),
            };
            let mut text = [seconds, minutes, hours]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
                .replace(", past", " past");
            if hour == "*" && !minute.contains(['*', '/']) {
                text.push_str(" past every hour");
            }
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default()
        }
    }
}

fn dom_item(item: &str) -> String {
    match item {
        "L" => "on the last day of the month".into(),
        "LW" => "on the last weekday of the month".into(),
        _ => match item.strip_suffix('W') {
            Some(day) => format!("on the weekday nearest day {day} of the month"),
            None => format!("on day {} of the month", item_words(item, Unit::DayOfMonth)),
        },
    }
}

fn dow_item(item: &str) -> String {
    if let Some((day, nth)) = item.split_once('#') {
        let day = Unit::DayOfWeek.value(day.parse().unwrap_or(0));
        let nth = match nth {
            "1" => "first",
            "2" => "second",
            "3" => "third",
            "4" => "fourth",
            _ => "fifth",
        };
        return format!("on the {nth} {day} of the month");
    }
    if let Some(day) = item.strip_suffix('L') {
        return format!(
            "on the last {} of the month",
            Unit::DayOfWeek.value(day.parse().unwrap_or(0))
        );
    }
    let words = item_words(item, Unit::DayOfWeek);
    if item.contains('-') && !item.contains('/') {
        words
    } else {
        format!("on {words}")
    }
}

fn day_part(dom: &str, dow: &str) -> Option<String> {
    let dom_words = (dom != "*").then(|| join(dom.split(',').map(dom_item).collect()));
    let dow_words = (dow != "*").then(|| {
        // Plain days read as one list: "on Monday, Wednesday and Friday".
        if dow.split(',').all(|d| single(d).is_some()) {
            format!("on {}", list(dow, Unit::DayOfWeek))
        } else {
            join(dow.split(',').map(dow_item).collect())
        }
    });
    match (dom_words, dow_words) {
        (None, None) => None,
        (Some(d), None) | (None, Some(d)) => Some(d),
        // The Vixie rule: either day field matching is enough.
        (Some(a), Some(b)) => Some(format!("{a} or {b}")),
    }
}

/// One upcoming fire time, as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FireTime {
    pub at: DateTime<Utc>,
    /// The wall-clock time in the schedule's timezone, with its UTC offset: `2027-03-28 03:00 +02:00`.
    pub local: String,
    /// What daylight saving does to this fire time, if anything.
    pub note: Option<String>,
}

/// The next `count` fire times after `now` with their DST notes, and the next DST change that
/// affects the schedule when none of those fire times is affected (searched up to a year ahead,
/// so a daily job shows its spring-forward in November).
pub fn preview(schedule: &Schedule, now: DateTime<Utc>, count: usize) -> (Vec<FireTime>, Option<FireTime>) {
    let times: Vec<FireTime> = schedule
        .upcoming(now, count)
        .into_iter()
        .map(|at| fire_time(schedule, at))
        .collect();
    if times.iter().any(|t| t.note.is_some()) {
        return (times, None);
    }
    let after = times.last().map_or(now, |t| t.at);
    (times, next_affected(schedule, after))
}

fn local_text(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
        .replace(":00 ", " ")
}

fn fire_time(schedule: &Schedule, at: DateTime<Utc>) -> FireTime {
    FireTime {
        at,
        local: local_text(schedule.timezone(), at),
        note: dst_note(schedule, at),
    }
}

/// The wall-clock time a fixed-time schedule names (second, minute, hour all single values).
fn fixed_time(schedule: &Schedule) -> Option<NaiveTime> {
    let normalized = normalize(schedule.expression()).ok()?;
    let fields: Vec<&str> = normalized.split(' ').collect();
    NaiveTime::from_hms_opt(single(fields[2])?, single(fields[1])?, single(fields[0])?)
}

fn dst_note(schedule: &Schedule, at: DateTime<Utc>) -> Option<String> {
    let tz = schedule.timezone();
    let local = at.with_timezone(&tz);
    let shown = local.format("%H:%M").to_string();
    if schedule.is_fixed_time() {
        let wanted = fixed_time(schedule)?;
        if local.time().with_nanosecond(0) != Some(wanted) {
            // Its wall-clock time does not exist that day: it runs just after the gap.
            return Some(format!(
                "clock moves forward: runs at {shown} instead of {}",
                wanted.format("%H:%M")
            ));
        }
        if let LocalResult::Ambiguous(first, _) = tz.from_local_datetime(&local.naive_local()) {
            if first.with_timezone(&Utc) == at {
                return Some(format!(
                    "clock moves back: {shown} happens twice; runs once, at the first ({})",
                    first.offset().fix()
                ));
            }
        }
        return None;
    }
    match tz.from_local_datetime(&local.naive_local()) {
        LocalResult::Ambiguous(first, _) => {
            let which = if first.with_timezone(&Utc) == at {
                "first"
            } else {
                "second"
            };
            Some(format!(
                "clock moves back: {shown} happens twice and runs both times (this is the {which})"
            ))
        }
        _ => {
            // An interval schedule skips times in a spring-forward gap: note the first fire after one.
            let before = (at - Duration::hours(1)).with_timezone(&tz).offset().fix();
            (before != local.offset().fix() && before.local_minus_utc() < local.offset().fix().local_minus_utc())
                .then(|| "clock moves forward: the skipped hour's times do not run".to_owned())
        }
    }
}

/// The first fire time after `after` (within a year) that daylight saving changes.
fn next_affected(schedule: &Schedule, after: DateTime<Utc>) -> Option<FireTime> {
    let tz = schedule.timezone();
    let mut day = after;
    let end = after + Duration::days(400);
    while day < end {
        let next_day = day + Duration::days(1);
        let (a, b) = (
            day.with_timezone(&tz).offset().fix(),
            next_day.with_timezone(&tz).offset().fix(),
        );
        if a != b {
            // A change within this day: look at the fire times around it.
            let mut cursor = day - Duration::hours(1);
            for _ in 0..200 {
                let at = schedule.next_after(cursor)?;
                if at > next_day + Duration::hours(1) {
                    break;
                }
                let fire = fire_time(schedule, at);
                if fire.note.is_some() {
                    return Some(fire);
                }
                cursor = at;
            }
        }
        day = next_day;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syntax_form_reads_in_words() {
        let table = [
            ("0 8 * * 1-5", "At 08:00, Monday through Friday, in UTC"),
            ("30 2 * * *", "At 02:30, in UTC"),
            ("0 8,17 * * *", "At 08:00 and 17:00, in UTC"),
            ("15 30 8 * * *", "At 08:30:15, in UTC"),
            ("* * * * *", "Every minute, in UTC"),
            ("* * * * * *", "Every second, in UTC"),
            ("*/10 * * * * *", "Every 10 seconds, in UTC"),
            ("*/15 * * * *", "Every 15 minutes, in UTC"),
            ("5 * * * *", "At minute 5 past every hour, in UTC"),
            ("0 */2 * * *", "At minute 0 past every 2 hours, in UTC"),
            ("*/15 9-17 * * *", "Every 15 minutes, during hour 9 through 17, in UTC"),
            ("*/30 */3 * * *", "Every 30 minutes, every 3 hours, in UTC"),
            ("30 * * * * *", "At second 30, every minute, in UTC"),
            ("0,30 9-17 * * *", "At minute 0 and 30 past hour 9 through 17, in UTC"),
            ("10/15 * * * *", "Every 15 minutes from minute 10, in UTC"),
            ("0-30/10 * * * *", "Every 10 minutes from minute 0 through 30, in UTC"),
            ("0 0 1 * *", "At 00:00, on day 1 of the month, in UTC"),
            (
                "0 0 1,15 * *",
                "At 00:00, on day 1 of the month and on day 15 of the month, in UTC",
            ),
            ("0 0 L * *", "At 00:00, on the last day of the month, in UTC"),
            ("0 0 LW * *", "At 00:00, on the last weekday of the month, in UTC"),
            (
                "0 0 15W * *",
                "At 00:00, on the weekday nearest day 15 of the month, in UTC",
            ),
            ("0 0 * * 5L", "At 00:00, on the last Friday of the month, in UTC"),
            ("0 0 * * 1#2", "At 00:00, on the second Monday of the month, in UTC"),
            (
                "0 0 * * MON,WED,FRI",
                "At 00:00, on Monday, Wednesday and Friday, in UTC",
            ),
            ("0 0 * * 0", "At 00:00, on Sunday, in UTC"),
            ("0 0 * * 7", "At 00:00, on Sunday, in UTC"),
            (
                "0 0 * * 1/2",
                "At 00:00, on every 2nd day of the week from Monday through Saturday, in UTC",
            ),
            ("0 0 13 * FRI", "At 00:00, on day 13 of the month or on Friday, in UTC"),
            ("0 0 ? * MON", "At 00:00, on Monday, in UTC"),
            (
                "0 0 1 JAN-MAR *",
                "At 00:00, on day 1 of the month, in January through March, in UTC",
            ),
            (
                "0 0 1 6,12 *",
                "At 00:00, on day 1 of the month, in June and December, in UTC",
            ),
            ("@yearly", "At 00:00, on day 1 of the month, in January, in UTC"),
            ("@annually", "At 00:00, on day 1 of the month, in January, in UTC"),
            ("@monthly", "At 00:00, on day 1 of the month, in UTC"),
            ("@weekly", "At 00:00, on Sunday, in UTC"),
            ("@daily", "At 00:00, in UTC"),
            ("@midnight", "At 00:00, in UTC"),
            ("@hourly", "At minute 0 past every hour, in UTC"),
        ];
        for (expression, words) in table {
            assert_eq!(describe(expression, "UTC"), words, "{expression}");
        }
        assert_eq!(
            describe("0 8 * * 1-5", "Europe/Berlin"),
            "At 08:00, Monday through Friday, in Europe/Berlin"
        );
        assert_eq!(describe("not cron", "UTC"), "not cron");
    }

    #[test]
    fn spring_forward_is_noted_even_months_ahead() {
        let schedule = Schedule::parse("30 2 * * *", "Europe/Berlin").expect("valid");
        let now = "2026-11-30T03:00:00Z".parse().expect("time");
        let (times, next) = preview(&schedule, now, 10);
        assert_eq!(times.len(), 10);
        assert!(times.iter().all(|t| t.note.is_none()));
        assert!(times[0].local.ends_with("+01:00"), "{}", times[0].local);
        let next = next.expect("the March change");
        assert_eq!(next.local, "2027-03-28 03:00 +02:00");
        assert_eq!(
            next.note.as_deref(),
            Some("clock moves forward: runs at 03:00 instead of 02:30")
        );
    }

    #[test]
    fn fall_back_is_noted() {
        let schedule = Schedule::parse("30 2 * * *", "Europe/Berlin").expect("valid");
        let now = "2026-10-24T12:00:00Z".parse().expect("time");
        let (times, _) = preview(&schedule, now, 3);
        assert_eq!(
            times[0].note.as_deref(),
            Some("clock moves back: 02:30 happens twice; runs once, at the first (+02:00)")
        );
        let interval = Schedule::parse("*/30 * * * *", "Europe/Berlin").expect("valid");
        let (times, _) = preview(&interval, "2026-10-25T00:10:00Z".parse().expect("time"), 4);
        assert!(times
            .iter()
            .any(|t| t.note.as_deref().is_some_and(|n| n.contains("twice"))));
        let utc = Schedule::parse("0 8 * * *", "UTC").expect("valid");
        assert_eq!(preview(&utc, now, 10).1, None);
    }
}
