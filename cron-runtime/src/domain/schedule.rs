//! Schedules: cron expressions evaluated in a timezone (SPEC §5, §5a).
//!
//! A [`Schedule`] is parsed once, at the boundary, and is valid by construction afterwards:
//! it has 5 or 6 fields, every value is in range and it fires at least once. Evaluation is
//! done by the `croner` crate; this module owns the grammar (so errors name the field and
//! the allowed range) and the guarantees the rest of the service relies on.
//!
//! # Syntax
//!
//! ```text
//! ┌───────────── second (0-59), only in the 6-field form
//! │ ┌─────────── minute (0-59)
//! │ │ ┌───────── hour (0-23)
//! │ │ │ ┌─────── day of month (1-31, L, LW, 15W, ?)
//! │ │ │ │ ┌───── month (1-12 or JAN-DEC)
//! │ │ │ │ │ ┌─── day of week (0-7 or SUN-SAT; 0 and 7 are Sunday; 5L, 1#2, ?)
//! * * * * * *
//! ```
//!
//! Each field is a comma-separated list of `*`, a value, a range `a-b`, or a step `*/n`,
//! `a-b/n` or `a/n` (from `a` to the end of the field's range; in day-of-week that end is
//! Saturday, so `1/2` is Mon, Wed, Fri). Names are case-insensitive.
//! `?` is a synonym for `*` in the two day fields. Macros: `@yearly`/`@annually`
//! (`0 0 1 1 *`), `@monthly` (`0 0 1 * *`), `@weekly` (`0 0 * * 0`), `@daily`/`@midnight`
//! (`0 0 * * *`) and `@hourly` (`0 * * * *`). A year field and `@reboot` are rejected.
//!
//! Extended day syntax, with croner's meanings:
//! - `L` in day-of-month: the last day of the month (`0 0 L * *` fires on Jan 31, Feb 28/29,
//!   ...). `LW`: the last weekday (Mon-Fri) of the month.
//! - `15W` in day-of-month: the weekday nearest the 15th, within the same month. A Saturday
//!   moves back to Friday (forward to Monday when the 1st is a Saturday); a Sunday moves to
//!   Monday (back to Friday when it is the last day of the month).
//! - `5L` in day-of-week: the last Friday of the month.
//! - `1#2` in day-of-week: the second Monday of the month (`#1` to `#5`).
//!
//! When both day fields are restricted, a day matches if EITHER matches (the Vixie rule):
//! `0 0 13 * FRI` fires on every 13th and on every Friday. A day field is unrestricted only
//! when it is exactly `*` or `?`; `*/2` counts as restricted.
//!
//! # Daylight-saving transitions (SPEC §5a)
//!
//! An expression is *fixed-time* when its second, minute and hour fields each name a single
//! value (`30 2 * * *`; a 5-field expression has second 0); every other expression is an
//! *interval* expression (`*/15 * * * *`, `0,30 1 * * *`, `0 */2 * * *`).
//! - Spring forward: a fixed-time expression whose wall-clock time does not exist fires once,
//!   at the first instant after the gap (`30 2 * * *` in Europe/Berlin on the last Sunday of
//!   March fires at 03:00 CEST). An interval expression skips the missing times.
//! - Fall back: a fixed-time expression fires at the first occurrence of a repeated time
//!   only; an interval expression fires at both, in real-time order (`*/15 * * * *` fires
//!   eight times in the repeated hour).
//! - Fire times returned by [`Schedule::next_after`] are strictly increasing.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, JobType};

/// A parsed cron expression bound to a timezone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    timezone: Tz,
    cron: Cron,
    fixed_time: bool,
}

/// Why an expression or timezone was rejected; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Malformed syntax, a wrong field count, an out-of-range value or an unsupported form.
    #[error("{0}")]
    InvalidExpression(String),
    /// Well-formed, but no date ever matches (`0 0 30 2 *`).
    #[error("{0:?} can never fire: no date matches its day-of-month, month and day-of-week fields")]
    NeverFires(String),
    /// Not an IANA timezone name.
    #[error("unknown timezone {0:?}: use an IANA name such as \"UTC\" or \"Europe/Berlin\"")]
    UnknownTimezone(String),
}

impl ScheduleError {
    /// The request field the error is about: `cron_expression` or `timezone`.
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::UnknownTimezone(_) => "timezone",
            ScheduleError::InvalidExpression(_) | ScheduleError::NeverFires(_) => "cron_expression",
        }
    }
}

/// Parses an IANA timezone name.
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    name.trim()
        .parse()
        .map_err(|_| ScheduleError::UnknownTimezone(name.to_owned()))
}

impl Schedule {
    /// Parses `expression` (5 or 6 fields, or a macro) to be evaluated in `timezone`.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let expression = expression.trim();
        let normalized = normalize(expression)?;
        let timezone = parse_timezone(timezone)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            // `10/15` (from 10 to the end of the range) is SPEC syntax; croner calls it sloppy.
            .sloppy_ranges(true)
            .build()
            .parse(&normalized)
            // `normalize` accepts only what croner accepts, so this is a safety net.
            .map_err(|e| ScheduleError::InvalidExpression(format!("invalid cron expression: {e}")))?;
        if !ever_fires(&cron) {
            return Err(ScheduleError::NeverFires(expression.to_owned()));
        }
        let fixed_time = cron.determine_job_type() == JobType::FixedTime;
        Ok(Schedule {
            expression: expression.to_owned(),
            timezone,
            cron,
            fixed_time,
        })
    }

    /// The expression as given, without surrounding whitespace.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The timezone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Whether second, minute and hour are each a single value (SPEC §5a's DST rules).
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// The first fire time strictly after `after`.
    ///
    /// `None` only if croner finds nothing before its search limit (the year 5000), which
    /// [`Schedule::parse`] makes unreachable for realistic instants.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut cursor = after.with_timezone(&self.timezone);
        // croner answers strictly after its start, at whole seconds; the loop only guards the
        // "strictly increasing" promise should a DST corner case ever disagree.
        for _ in 0..4 {
            let next = self.cron.find_next_occurrence(&cursor, false).ok()?;
            let next_utc = next.with_timezone(&Utc);
            if next_utc > after {
                return Some(next_utc);
            }
            cursor = next;
        }
        None
    }

    /// The next `count` fire times strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut times = Vec::with_capacity(count);
        let mut cursor = after;
        while times.len() < count {
            match self.next_after(cursor) {
                Some(next) => {
                    times.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        times
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

const FIELD_COUNT_HELP: &str = "expected 5 fields (min hour dom month dow) or 6 (sec min hour dom month dow)";

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl FieldKind {
    const ALL: [FieldKind; 6] = [
        FieldKind::Second,
        FieldKind::Minute,
        FieldKind::Hour,
        FieldKind::DayOfMonth,
        FieldKind::Month,
        FieldKind::DayOfWeek,
    ];

    fn name(self) -> &'static str {
        match self {
            FieldKind::Second => "second",
            FieldKind::Minute => "minute",
            FieldKind::Hour => "hour",
            FieldKind::DayOfMonth => "day-of-month",
            FieldKind::Month => "month",
            FieldKind::DayOfWeek => "day-of-week",
        }
    }

    fn range(self) -> (u32, u32) {
        match self {
            FieldKind::Second | FieldKind::Minute => (0, 59),
            FieldKind::Hour => (0, 23),
            FieldKind::DayOfMonth => (1, 31),
            FieldKind::Month => (1, 12),
            FieldKind::DayOfWeek => (0, 7),
        }
    }

    fn range_text(self) -> String {
        let (min, max) = self.range();
        match self {
            FieldKind::Month => format!("{min}-{max} or JAN-DEC"),
            FieldKind::DayOfWeek => format!("{min}-{max} or SUN-SAT"),
            _ => format!("{min}-{max}"),
        }
    }

    fn is_day(self) -> bool {
        matches!(self, FieldKind::DayOfMonth | FieldKind::DayOfWeek)
    }
}

fn invalid(message: String) -> ScheduleError {
    ScheduleError::InvalidExpression(message)
}

/// Checks the grammar and rewrites `expression` as six numeric fields for croner, whose own
/// parser is lenient with names (it replaces `MON` anywhere) and terse in its errors.
pub(crate) fn normalize(expression: &str) -> Result<String, ScheduleError> {
    if expression.is_empty() {
        return Err(invalid(format!("the cron expression is empty: {FIELD_COUNT_HELP}")));
    }
    let expanded = if let Some(name) = expression.strip_prefix('@') {
        match name.to_ascii_lowercase().as_str() {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            "reboot" => {
                return Err(invalid(
                    "@reboot is not supported: the service has no boot-time semantics; use a \
                     time-based expression"
                        .to_owned(),
                ))
            }
            _ => {
                return Err(invalid(format!(
                    "unknown macro {expression:?}: expected one of @yearly, @annually, @monthly, \
                     @weekly, @daily, @midnight, @hourly"
                )))
            }
        }
    } else {
        expression
    };

    let mut fields: Vec<&str> = expanded.split_whitespace().collect();
    match fields.len() {
        5 => fields.insert(0, "0"),
        6 => {}
        7 => {
            return Err(invalid(format!(
                "{FIELD_COUNT_HELP}; got 7 — a year field is not supported"
            )))
        }
        n => return Err(invalid(format!("{FIELD_COUNT_HELP}; got {n}"))),
    }

    let mut out = Vec::with_capacity(6);
    for (kind, field) in FieldKind::ALL.into_iter().zip(fields) {
        out.push(normalize_field(kind, &field.to_ascii_uppercase())?);
    }
    Ok(out.join(" "))
}

fn normalize_field(kind: FieldKind, field: &str) -> Result<String, ScheduleError> {
    if field == "?" {
        return if kind.is_day() {
            Ok("*".to_owned())
        } else {
            Err(invalid(format!(
                "{} field \"?\": ? is only allowed in the day-of-month and day-of-week fields",
                kind.name()
            )))
        };
    }
    let mut items = Vec::new();
    for item in field.split(',') {
        if item.is_empty() {
            return Err(invalid(format!(
                "{} field {field:?} has an empty list item: separate values with single commas",
                kind.name()
            )));
        }
        items.push(normalize_item(kind, item)?);
    }
    Ok(items.join(","))
}

fn normalize_item(kind: FieldKind, item: &str) -> Result<String, ScheduleError> {
    let name = kind.name();
    if item == "*" {
        return Ok("*".to_owned());
    }
    if item == "?" {
        return Err(invalid(format!(
            "{name} field: ? must be the whole field, not a list item"
        )));
    }
    if kind == FieldKind::DayOfMonth {
        if item == "L" || item == "LW" {
            return Ok(item.to_owned());
        }
        if let Some(day) = item.strip_suffix('W') {
            let day = value(kind, day, false)?;
            return Ok(format!("{day}W"));
        }
        if item.contains('L') {
            return Err(invalid(format!(
                "{name} {item:?} is not supported: use L for the last day or LW for the last weekday"
            )));
        }
    }
    if kind == FieldKind::DayOfWeek {
        if let Some((day, nth)) = item.split_once('#') {
            let day = value(kind, day, false)?;
            let nth: u32 = nth.parse().ok().filter(|n| (1..=5).contains(n)).ok_or_else(|| {
                invalid(format!(
                    "{name} {item:?}: the occurrence after # must be 1-5 (1#2 = second Monday)"
                ))
            })?;
            return Ok(format!("{day}#{nth}"));
        }
        if item == "L" {
            return Err(invalid(format!(
                "{name} \"L\" needs a weekday before it: 5L is the last Friday of the month"
            )));
        }
        if let Some(day) = item.strip_suffix('L') {
            let day = value(kind, day, false)?;
            return Ok(format!("{day}L"));
        }
    }

    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    let step = step
        .map(|step| {
            let (min, max) = kind.range();
            let span = if kind == FieldKind::DayOfWeek { 7 } else { max - min };
            step.parse::<u32>()
                .ok()
                .filter(|s| (1..=span).contains(s))
                .ok_or_else(|| invalid(format!("{name} step {step:?} in {item:?} must be a number in 1-{span}")))
        })
        .transpose()?;
    let range = if range == "*" {
        if step.is_none() {
            return Ok("*".to_owned());
        }
        "*".to_owned()
    } else if let Some((start, end)) = range.split_once('-') {
        let start = value(kind, start, false)?;
        let end = value(kind, end, true)?;
        if start > end {
            let hint = if kind == FieldKind::DayOfWeek && end == 0 {
                " (Sunday is also 7)"
            } else {
                ""
            };
            return Err(invalid(format!(
                "{name} range {item:?} runs backwards: write the smaller value first{hint}"
            )));
        }
        format!("{start}-{end}")
    } else if kind == FieldKind::DayOfWeek && step.is_some() {
        // `a/n` runs to the end of the week, Saturday: croner would run on to 7 and add Sunday
        // again (`1/2` would be Mon, Wed, Fri and Sun). croniter agrees with this reading.
        let start = value(kind, range, false)?;
        format!("{start}-{}", start.max(6))
    } else {
        value(kind, range, false)?.to_string()
    };
    Ok(match step {
        Some(step) => format!("{range}/{step}"),
        None => range,
    })
}

/// Parses one value (a number, or a name where the field has names) and checks its range.
/// `SUN` as the end of a range is 7, so `FRI-SUN` reads as written.
fn value(kind: FieldKind, text: &str, range_end: bool) -> Result<u32, ScheduleError> {
    let name = kind.name();
    let (min, max) = kind.range();
    if text.is_empty() {
        return Err(invalid(format!(
            "{name} field has a missing value: allowed values are {}",
            kind.range_text()
        )));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(invalid(format!("{name} {text} is out of range {}", kind.range_text()))),
        };
    }
    let named = match kind {
        FieldKind::Month => MONTH_NAMES.iter().position(|m| *m == text).map(|i| i as u32 + 1),
        FieldKind::DayOfWeek => {
            DAY_NAMES
                .iter()
                .position(|d| *d == text)
                .map(|i| if i == 0 && range_end { 7 } else { i as u32 })
        }
        _ => None,
    };
    named.ok_or_else(|| {
        invalid(format!(
            "{name} {text:?} is not a valid value: allowed values are {}",
            kind.range_text()
        ))
    })
}

/// Whether any date matches the day, month and day-of-week fields. Every time field matches
/// at least one value, and the Gregorian calendar repeats every 400 years, so one cycle
/// decides. Feasible expressions stop at their first matching day.
fn ever_fires(cron: &Cron) -> bool {
    let pattern = &cron.pattern;
    let Some(mut date) = NaiveDate::from_ymd_opt(2000, 1, 1) else {
        return true;
    };
    let Some(end) = NaiveDate::from_ymd_opt(2400, 1, 1) else {
        return true;
    };
    while date < end {
        if !pattern.month_match(date.month()).unwrap_or(false) {
            date = match first_of_next_month(date) {
                Some(next) => next,
                None => return false,
            };
            continue;
        }
        let weekday = croner::Weekday::from_days_from_sunday(date.weekday().num_days_from_sunday());
        if pattern
            .day_match(date.year(), date.month(), date.day(), weekday)
            .unwrap_or(false)
        {
            return true;
        }
        date = match date.succ_opt() {
            Some(next) => next,
            None => return false,
        };
    }
    false
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    let (year, month) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
}
