//! Properties of `Schedule::upcoming` for random expressions, start instants and timezones:
//! fire times are strictly increasing, after the start, each one matches the expression
//! (checked by an independent matcher below, with SPEC §5a's DST rules), and no matching
//! instant between two nearby fires is skipped.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use cron_runtime::domain::{Schedule, ScheduleError};
use proptest::prelude::*;

const TIMEZONES: [&str; 5] = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];

/// One field, parsed independently of the code under test.
#[derive(Debug, Default)]
struct Field {
    star: bool,
    values: Vec<bool>,
    last_day: bool,
    last_weekday: bool,
    nearest_weekday: Vec<u32>,
    nth: Vec<(u32, u32)>,
    last_of: Vec<u32>,
}

impl Field {
    fn parse(text: &str, min: u32, max: u32, dow: bool) -> Field {
        let mut field = Field {
            values: vec![false; 61],
            ..Field::default()
        };
        if text == "*" || text == "?" {
            field.star = true;
            field.values.iter_mut().for_each(|v| *v = true);
            return field;
        }
        let norm = |n: u32| if dow && n == 7 { 0 } else { n };
        for item in text.split(',') {
            if item == "L" {
                field.last_day = true;
            } else if item == "LW" {
                field.last_weekday = true;
            } else if let Some(day) = item.strip_suffix('W') {
                field.nearest_weekday.push(day.parse().unwrap());
            } else if let Some((day, k)) = item.split_once('#') {
                field.nth.push((norm(day.parse().unwrap()), k.parse().unwrap()));
            } else if let Some(day) = item.strip_suffix('L') {
                field.last_of.push(norm(day.parse().unwrap()));
            } else {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => (r, s.parse::<u32>().unwrap()),
                    None => (item, 1),
                };
                let (a, b) = if range == "*" {
                    (min, max)
                } else if let Some((a, b)) = range.split_once('-') {
                    (a.parse().unwrap(), b.parse().unwrap())
                } else if item.contains('/') {
                    // `a/n` in day-of-week ends on Saturday (6), not on Sunday again (7).
                    let a: u32 = range.parse().unwrap();
                    (a, if dow { a.max(6) } else { max })
                } else {
                    let n = range.parse().unwrap();
                    (n, n)
                };
                let mut v = a;
                while v <= b {
                    field.values[norm(v) as usize] = true;
                    v += step;
                }
            }
        }
        field
    }

    fn has(&self, v: u32) -> bool {
        self.values[v as usize]
    }

    fn single(&self) -> Option<u32> {
        let set: Vec<u32> = (0..60).filter(|v| self.has(*v)).collect();
        (set.len() == 1).then(|| set[0])
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap().pred_opt().unwrap().day()
}

struct Expr {
    second: Field,
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
    fixed_time: bool,
    six_fields: bool,
}

impl Expr {
    fn parse(text: &str) -> Expr {
        let mut parts: Vec<&str> = text.split_whitespace().collect();
        let six_fields = parts.len() == 6;
        if !six_fields {
            parts.insert(0, "0");
        }
        let second = Field::parse(parts[0], 0, 59, false);
        let minute = Field::parse(parts[1], 0, 59, false);
        let hour = Field::parse(parts[2], 0, 23, false);
        // SPEC §5a: fixed-time when second, minute and hour are each a single value, written
        // without `*` or a step.
        let plain = |t: &str| !t.contains('*') && !t.contains('/');
        let fixed_time = [(&second, parts[0]), (&minute, parts[1]), (&hour, parts[2])]
            .iter()
            .all(|(f, t)| plain(t) && f.single().is_some());
        Expr {
            second,
            minute,
            hour,
            dom: Field::parse(parts[3], 1, 31, false),
            month: Field::parse(parts[4], 1, 12, false),
            dow: Field::parse(parts[5], 0, 7, true),
            fixed_time,
            six_fields,
        }
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let (day, len) = (date.day(), days_in_month(date.year(), date.month()));
        let weekday = date.weekday().num_days_from_sunday();
        let is_weekday = |d: NaiveDate| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
        let dom = self.dom.has(day)
            || (self.dom.last_day && day == len)
            || (self.dom.last_weekday
                && is_weekday(date)
                && (day == len || (day + 1..=len).all(|d| !is_weekday(date.with_day(d).unwrap()))))
            || self.dom.nearest_weekday.iter().any(|&w| {
                let Some(target) = date.with_day(w) else { return false };
                let moved = match target.weekday() {
                    Weekday::Sat if w > 1 => w - 1,
                    Weekday::Sat => w + 2,
                    Weekday::Sun if w < len => w + 1,
                    Weekday::Sun => w - 2,
                    _ => w,
                };
                moved == day
            });
        let dow = self.dow.has(weekday)
            || self
                .dow
                .nth
                .iter()
                .any(|&(d, k)| d == weekday && (day - 1) / 7 + 1 == k)
            || self.dow.last_of.iter().any(|&d| d == weekday && day + 7 > len);
        match (self.dom.star, self.dow.star) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    fn date_matches(&self, date: NaiveDate) -> bool {
        self.month.has(date.month()) && self.day_matches(date)
    }

    fn matches(&self, local: NaiveDateTime) -> bool {
        self.second.has(local.second())
            && self.minute.has(local.minute())
            && self.hour.has(local.hour())
            && self.date_matches(local.date())
    }

    /// Whether the schedule should fire at `instant` (a whole second), per SPEC §5a.
    fn fires_at(&self, tz: Tz, instant: DateTime<Utc>) -> bool {
        let local = instant.with_timezone(&tz).naive_local();
        if self.matches(local) {
            // A fixed-time expression skips the second occurrence of a repeated time.
            return !(self.fixed_time
                && matches!(tz.from_local_datetime(&local), LocalResult::Ambiguous(_, later) if later == instant));
        }
        if !self.fixed_time {
            return false;
        }
        // A fixed time inside a spring-forward gap fires at the first instant after it.
        let before = (instant - Duration::seconds(1)).with_timezone(&tz).naive_local();
        if local - before <= Duration::seconds(1) {
            return false;
        }
        let (Some(h), Some(m), Some(s)) = (self.hour.single(), self.minute.single(), self.second.single()) else {
            return false;
        };
        let Some(wanted) = local.date().and_hms_opt(h, m, s) else {
            return false;
        };
        before < wanted && wanted < local && self.date_matches(local.date())
    }
}

fn item(min: u32, max: u32) -> impl Strategy<Value = String> {
    let span = max - min;
    prop_oneof![
        3 => (min..=max).prop_map(|n| n.to_string()),
        2 => (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        2 => (1..=span).prop_map(|s| format!("*/{s}")),
        1 => (min..=max, min..=max, 1..=span).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
        1 => (min..=max, 1..=span).prop_map(|(a, s)| format!("{a}/{s}")),
    ]
}

fn list(min: u32, max: u32) -> impl Strategy<Value = String> {
    prop::collection::vec(item(min, max), 1..=3).prop_map(|items| items.join(","))
}

fn time_field(min: u32, max: u32) -> impl Strategy<Value = String> {
    prop_oneof![1 => Just("*".to_owned()), 4 => list(min, max)]
}

fn dom_field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        3 => list(1, 31),
        1 => Just("L".to_owned()),
        1 => Just("LW".to_owned()),
        1 => (1u32..=31).prop_map(|d| format!("{d}W")),
        1 => (1u32..=28).prop_map(|d| format!("{d},L")),
    ]
}

fn dow_field() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        3 => list(0, 7),
        1 => (0u32..=7).prop_map(|d| format!("{d}L")),
        1 => (0u32..=7, 1u32..=5).prop_map(|(d, k)| format!("{d}#{k}")),
        1 => (0u32..=7, 1u32..=4, 0u32..=6).prop_map(|(d, k, e)| format!("{d}#{k},{e}")),
    ]
}

/// A fixed-time (or nearly fixed-time) field in the small hours, where DST transitions are.
fn small_hours() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        3 => (0u32..60, 0u32..=3).prop_map(|(m, h)| (m.to_string(), h.to_string())),
        1 => (0u32..60, 0u32..=3).prop_map(|(m, h)| (format!("{m},{}", (m + 30) % 60), h.to_string())),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    let minute_hour = prop_oneof![
        2 => (time_field(0, 59), time_field(0, 23)),
        1 => small_hours(),
    ];
    (
        prop::option::weighted(
            0.3,
            prop_oneof![2 => time_field(0, 59), 1 => (0u32..60).prop_map(|s| s.to_string())],
        ),
        minute_hour,
        dom_field(),
        prop_oneof![3 => Just("*".to_owned()), 1 => list(1, 12)],
        dow_field(),
    )
        .prop_map(|(second, (minute, hour), dom, month, dow)| {
            let five = format!("{minute} {hour} {dom} {month} {dow}");
            match second {
                Some(second) => format!("{second} {five}"),
                None => five,
            }
        })
}

/// A start instant: anywhere in 2020-2035, or in the small hours of a Sunday in a month with
/// DST transitions, to land near gaps and folds often.
fn start(tz: Tz) -> impl Strategy<Value = DateTime<Utc>> {
    let anywhere = (1_577_836_800i64..2_082_758_400, 0u32..1000)
        .prop_map(|(secs, ms)| DateTime::from_timestamp(secs, ms * 1_000_000).unwrap());
    let near_dst = (
        2020i32..2035,
        prop::sample::select(vec![3u32, 4, 10, 11]),
        0u32..5,
        0u32..14_400,
        0u32..1000,
    )
        .prop_map(move |(year, month, week, secs, ms)| {
            let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap();
            let to_sunday = (7 - first.weekday().num_days_from_sunday()) % 7;
            let mut day = first + Duration::days((to_sunday + 7 * week) as i64);
            if day.month() != month {
                day -= Duration::days(7);
            }
            let local = day.and_hms_opt(0, 0, 0).unwrap() + Duration::seconds(secs as i64);
            let base = tz
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&local));
            base + Duration::milliseconds(ms as i64)
        });
    prop_oneof![anywhere, near_dst]
}

fn case() -> impl Strategy<Value = (String, Tz, DateTime<Utc>)> {
    (expression(), prop::sample::select(TIMEZONES.to_vec())).prop_flat_map(|(expr, tz)| {
        let tz: Tz = tz.parse().unwrap();
        (Just(expr), Just(tz), start(tz))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn upcoming_fires_match_and_increase((text, tz, start) in case()) {
        let schedule = match Schedule::parse(&text, tz.name()) {
            Ok(schedule) => schedule,
            Err(ScheduleError::NeverFires(_)) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{text:?} rejected: {e}"))),
        };
        let expr = Expr::parse(&text);
        prop_assert_eq!(schedule.is_fixed_time(), expr.fixed_time, "fixed-time classification of {:?}", text);
        let fires = schedule.upcoming(start, 20);
        prop_assert_eq!(fires.len(), 20, "{:?} in {}", text, tz);
        let mut previous = start;
        for fire in &fires {
            prop_assert!(*fire > previous, "{:?} in {}: {} not after {}", text, tz, fire, previous);
            prop_assert_eq!(fire.nanosecond(), 0);
            prop_assert!(
                expr.fires_at(tz, *fire),
                "{:?} in {}: {} ({}) does not match",
                text, tz, fire, fire.with_timezone(&tz)
            );
            // Nothing skipped between nearby fires.
            let (unit_secs, limit) = if expr.six_fields { (1, 600) } else { (60, 360) };
            let first = (previous.timestamp().div_euclid(unit_secs) + 1) * unit_secs;
            let last = fire.timestamp();
            if (last - first) / unit_secs <= limit {
                let mut t = first;
                while t < last {
                    let instant = DateTime::from_timestamp(t, 0).unwrap();
                    prop_assert!(
                        !expr.fires_at(tz, instant),
                        "{:?} in {}: skipped {} ({}) before {}",
                        text, tz, instant, instant.with_timezone(&tz), fire
                    );
                    t += unit_secs;
                }
            }
            previous = *fire;
        }
    }
}
