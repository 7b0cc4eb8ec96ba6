//! Known cases for the schedule engine (SPEC §5, §5a): every syntax form, the day-of-month /
//! day-of-week OR rule, leap days, seconds, DST gaps and folds, and rejections.

use chrono::{DateTime, Timelike, Utc};
use cron_runtime::domain::{Schedule, ScheduleError};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?}: {e}"))
        .with_timezone(&Utc)
}

fn schedule(expression: &str, timezone: &str) -> Schedule {
    Schedule::parse(expression, timezone).unwrap_or_else(|e| panic!("{expression:?} in {timezone}: {e}"))
}

/// Asserts the first fire times after `start`; expected instants are RFC 3339 with the local
/// offset, so a DST case reads as wall-clock time.
fn assert_fires(expression: &str, timezone: &str, start: &str, expected: &[&str]) {
    let schedule = schedule(expression, timezone);
    let actual = schedule.upcoming(at(start), expected.len());
    let expected: Vec<DateTime<Utc>> = expected.iter().map(|e| at(e)).collect();
    let local = |times: &[DateTime<Utc>]| -> Vec<String> {
        times
            .iter()
            .map(|t| t.with_timezone(&schedule.timezone()).to_rfc3339())
            .collect()
    };
    assert_eq!(
        local(&actual),
        local(&expected),
        "{expression:?} in {timezone} after {start}"
    );
}

const NEW_YEAR_2025: &str = "2025-01-01T00:00:00Z"; // a Wednesday

#[test]
fn steps_lists_and_ranges() {
    let cases: &[(&str, &[&str])] = &[
        (
            "*/5 * * * *",
            &["2025-01-01T00:05:00Z", "2025-01-01T00:10:00Z", "2025-01-01T00:15:00Z"],
        ),
        (
            "1-30/10 0 * * *",
            &[
                "2025-01-01T00:01:00Z",
                "2025-01-01T00:11:00Z",
                "2025-01-01T00:21:00Z",
                "2025-01-02T00:01:00Z",
            ],
        ),
        (
            "10/15 * * * *",
            &[
                "2025-01-01T00:10:00Z",
                "2025-01-01T00:25:00Z",
                "2025-01-01T00:40:00Z",
                "2025-01-01T00:55:00Z",
                "2025-01-01T01:10:00Z",
            ],
        ),
        (
            "0 8,12,18 * * *",
            &[
                "2025-01-01T08:00:00Z",
                "2025-01-01T12:00:00Z",
                "2025-01-01T18:00:00Z",
                "2025-01-02T08:00:00Z",
            ],
        ),
        (
            "0 9-11 * * *",
            &[
                "2025-01-01T09:00:00Z",
                "2025-01-01T10:00:00Z",
                "2025-01-01T11:00:00Z",
                "2025-01-02T09:00:00Z",
            ],
        ),
        (
            "15,45 9-10/1 * * *",
            &[
                "2025-01-01T09:15:00Z",
                "2025-01-01T09:45:00Z",
                "2025-01-01T10:15:00Z",
                "2025-01-01T10:45:00Z",
            ],
        ),
        ("0 0 3-3 * *", &["2025-01-03T00:00:00Z", "2025-02-03T00:00:00Z"]),
        (
            "0 0 1 */4 *",
            &["2025-05-01T00:00:00Z", "2025-09-01T00:00:00Z", "2026-01-01T00:00:00Z"],
        ),
        ("  0   0 * * *  ", &["2025-01-02T00:00:00Z"]),
    ];
    for (expression, expected) in cases {
        assert_fires(expression, "UTC", NEW_YEAR_2025, expected);
    }
}

#[test]
fn names_are_case_insensitive_and_sunday_is_0_or_7() {
    let cases: &[(&str, &[&str])] = &[
        ("0 0 1 jan,Jul *", &["2025-07-01T00:00:00Z", "2026-01-01T00:00:00Z"]),
        (
            "0 0 1 MAR-may *",
            &[
                "2025-03-01T00:00:00Z",
                "2025-04-01T00:00:00Z",
                "2025-05-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
            ],
        ),
        ("0 0 * * sun", &["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
        ("0 0 * * 0", &["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
        ("0 0 * * 7", &["2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"]),
        (
            "0 0 * * Mon-fri",
            &["2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z", "2025-01-06T00:00:00Z"],
        ),
        (
            "0 0 * * FRI-SUN",
            &[
                "2025-01-03T00:00:00Z",
                "2025-01-04T00:00:00Z",
                "2025-01-05T00:00:00Z",
                "2025-01-10T00:00:00Z",
            ],
        ),
        (
            "0 0 * * 5-7",
            &[
                "2025-01-03T00:00:00Z",
                "2025-01-04T00:00:00Z",
                "2025-01-05T00:00:00Z",
                "2025-01-10T00:00:00Z",
            ],
        ),
        (
            "0 0 * * tue,THU",
            &["2025-01-02T00:00:00Z", "2025-01-07T00:00:00Z", "2025-01-09T00:00:00Z"],
        ),
        // `a/n` in day-of-week ends on Saturday: Sunday is not added again as 7.
        (
            "0 0 * * 1/2",
            &["2025-01-03T00:00:00Z", "2025-01-06T00:00:00Z", "2025-01-08T00:00:00Z"],
        ),
        ("0 0 * * 6/1", &["2025-01-04T00:00:00Z", "2025-01-11T00:00:00Z"]),
        ("0 0 ? * MON", &["2025-01-06T00:00:00Z", "2025-01-13T00:00:00Z"]),
        ("0 0 1 * ?", &["2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z"]),
    ];
    for (expression, expected) in cases {
        assert_fires(expression, "UTC", NEW_YEAR_2025, expected);
    }
}

#[test]
fn macros() {
    let cases: &[(&str, &str)] = &[
        ("@yearly", "2026-01-01T00:00:00Z"),
        ("@annually", "2026-01-01T00:00:00Z"),
        ("@monthly", "2025-02-01T00:00:00Z"),
        ("@weekly", "2025-01-05T00:00:00Z"),
        ("@daily", "2025-01-02T00:00:00Z"),
        ("@midnight", "2025-01-02T00:00:00Z"),
        ("@hourly", "2025-01-01T01:00:00Z"),
        ("@Daily", "2025-01-02T00:00:00Z"),
    ];
    for (expression, expected) in cases {
        assert_fires(expression, "UTC", NEW_YEAR_2025, &[expected]);
        assert_eq!(schedule(expression, "UTC").to_string(), *expression);
    }
}

#[test]
fn extended_day_syntax() {
    let cases: &[(&str, &str, &[&str])] = &[
        // L: last day of the month, including Feb 29 in a leap year.
        (
            "0 0 L * *",
            NEW_YEAR_2025,
            &["2025-01-31T00:00:00Z", "2025-02-28T00:00:00Z", "2025-03-31T00:00:00Z"],
        ),
        (
            "0 0 L 2 *",
            "2023-06-01T00:00:00Z",
            &["2024-02-29T00:00:00Z", "2025-02-28T00:00:00Z"],
        ),
        // 5L: last Friday.
        (
            "0 0 * * 5L",
            NEW_YEAR_2025,
            &["2025-01-31T00:00:00Z", "2025-02-28T00:00:00Z", "2025-03-28T00:00:00Z"],
        ),
        ("0 0 * * friL", NEW_YEAR_2025, &["2025-01-31T00:00:00Z"]),
        // 1#2: second Monday.
        (
            "0 0 * * 1#2",
            NEW_YEAR_2025,
            &["2025-01-13T00:00:00Z", "2025-02-10T00:00:00Z", "2025-03-10T00:00:00Z"],
        ),
        (
            "0 0 * * MON#1,FRI#5",
            NEW_YEAR_2025,
            &["2025-01-06T00:00:00Z", "2025-01-31T00:00:00Z", "2025-02-03T00:00:00Z"],
        ),
        // 15W: nearest weekday; Sat 15 Feb -> Fri 14, Sun 15 Jun -> Mon 16.
        (
            "0 0 15W * *",
            NEW_YEAR_2025,
            &[
                "2025-01-15T00:00:00Z",
                "2025-02-14T00:00:00Z",
                "2025-03-14T00:00:00Z",
                "2025-04-15T00:00:00Z",
            ],
        ),
        ("0 0 15W 6 *", NEW_YEAR_2025, &["2025-06-16T00:00:00Z"]),
        // 1W never leaves the month: Sat 1 Feb -> Mon 3 Feb.
        ("0 0 1W 2 *", NEW_YEAR_2025, &["2025-02-03T00:00:00Z"]),
        // LW: last weekday; Sat 31 May -> Fri 30.
        (
            "0 0 LW * *",
            "2025-04-01T00:00:00Z",
            &["2025-04-30T00:00:00Z", "2025-05-30T00:00:00Z", "2025-06-30T00:00:00Z"],
        ),
    ];
    for (expression, start, expected) in cases {
        assert_fires(expression, "UTC", start, expected);
    }
}

#[test]
fn day_of_month_or_day_of_week_when_both_restricted() {
    // Every 13th and every Friday.
    assert_fires(
        "0 0 13 * FRI",
        "UTC",
        NEW_YEAR_2025,
        &[
            "2025-01-03T00:00:00Z",
            "2025-01-10T00:00:00Z",
            "2025-01-13T00:00:00Z",
            "2025-01-17T00:00:00Z",
        ],
    );
    // `*/2` is restricted: odd days OR Mondays (Mon 6 Jan is even).
    assert_fires(
        "0 0 */2 * MON",
        "UTC",
        NEW_YEAR_2025,
        &[
            "2025-01-03T00:00:00Z",
            "2025-01-05T00:00:00Z",
            "2025-01-06T00:00:00Z",
            "2025-01-07T00:00:00Z",
        ],
    );
    // A `*` day field defers to the other one.
    assert_fires(
        "0 0 13 * *",
        "UTC",
        NEW_YEAR_2025,
        &["2025-01-13T00:00:00Z", "2025-02-13T00:00:00Z"],
    );
    assert_fires(
        "0 0 * * FRI",
        "UTC",
        NEW_YEAR_2025,
        &["2025-01-03T00:00:00Z", "2025-01-10T00:00:00Z"],
    );
    // OR also with the extended syntax: the last day or the first Monday.
    assert_fires(
        "0 0 L * 1#1",
        "UTC",
        NEW_YEAR_2025,
        &[
            "2025-01-06T00:00:00Z",
            "2025-01-31T00:00:00Z",
            "2025-02-03T00:00:00Z",
            "2025-02-28T00:00:00Z",
        ],
    );
    // The impossible day-of-month does not sink the expression when day-of-week can fire.
    assert_fires(
        "0 0 30 2 MON",
        "UTC",
        NEW_YEAR_2025,
        &["2025-02-03T00:00:00Z", "2025-02-10T00:00:00Z"],
    );
}

#[test]
fn leap_day() {
    assert_fires(
        "0 0 29 2 *",
        "UTC",
        NEW_YEAR_2025,
        &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
    );
    assert_fires("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", &["2104-02-29T00:00:00Z"]);
}

#[test]
fn seconds_field_and_sub_second_starts() {
    assert_fires(
        "* * * * * *",
        "UTC",
        "2025-01-01T12:00:00.5Z",
        &["2025-01-01T12:00:01Z", "2025-01-01T12:00:02Z"],
    );
    assert_fires(
        "*/20 * * * * *",
        "UTC",
        "2025-01-01T12:00:00.5Z",
        &["2025-01-01T12:00:20Z", "2025-01-01T12:00:40Z", "2025-01-01T12:01:00Z"],
    );
    assert_fires(
        "30 0 12 * * *",
        "UTC",
        "2025-01-01T12:00:29.999Z",
        &["2025-01-01T12:00:30Z", "2025-01-02T12:00:30Z"],
    );
    // A 5-field expression fires at second 0.
    assert_fires("* * * * *", "UTC", "2025-01-01T12:00:00.5Z", &["2025-01-01T12:01:00Z"]);
    let every_second = schedule("* * * * * *", "UTC");
    let fire = at("2025-01-01T12:00:00Z");
    assert_eq!(
        every_second.next_after(fire),
        Some(at("2025-01-01T12:00:01Z")),
        "strictly after"
    );
    assert_eq!(every_second.next_after(fire).map(|t| t.nanosecond()), Some(0));
}

#[test]
fn fixed_time_classification() {
    for expression in [
        "30 2 * * *",
        "0 0 * * *",
        "15 30 2 * * *",
        "@daily",
        "@weekly",
        "0 12 * * MON-FRI",
        "5 4 L * *",
    ] {
        assert!(
            schedule(expression, "UTC").is_fixed_time(),
            "{expression:?} is fixed-time"
        );
    }
    for expression in [
        "*/15 * * * *",
        "0,30 1 * * *",
        "0 */2 * * *",
        "@hourly",
        "* 2 * * *",
        "0 1-2 * * *",
        "*/10 30 2 * * *",
    ] {
        assert!(
            !schedule(expression, "UTC").is_fixed_time(),
            "{expression:?} is an interval expression"
        );
    }
}

// Spring forward. Europe/Berlin 2025-03-30 02:00 CET -> 03:00 CEST;
// America/New_York 2025-03-09 02:00 EST -> 03:00 EDT.

#[test]
fn dst_gap_fixed_time_fires_once_after_the_gap() {
    for expression in ["30 2 * * *", "0 2 * * *", "59 2 * * *"] {
        assert_fires(
            expression,
            "Europe/Berlin",
            "2025-03-29T12:00:00Z",
            &["2025-03-30T03:00:00+02:00"],
        );
        assert_fires(
            expression,
            "America/New_York",
            "2025-03-08T12:00:00Z",
            &["2025-03-09T03:00:00-04:00"],
        );
    }
    assert_fires(
        "30 2 * * *",
        "Europe/Berlin",
        "2025-03-29T12:00:00Z",
        &["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"],
    );
    // A fixed time after the gap is unaffected.
    assert_fires(
        "30 3 * * *",
        "Europe/Berlin",
        "2025-03-29T12:00:00Z",
        &["2025-03-30T03:30:00+02:00"],
    );
    // The gap-adjusted fire still honours the day fields: not on the 30th here.
    assert_fires(
        "30 2 31 3 *",
        "Europe/Berlin",
        "2025-03-29T12:00:00Z",
        &["2025-03-31T02:30:00+02:00"],
    );
}

#[test]
fn dst_gap_interval_skips_missing_times() {
    assert_fires(
        "*/15 * * * *",
        "Europe/Berlin",
        "2025-03-30T01:30:00+01:00",
        &[
            "2025-03-30T01:45:00+01:00",
            "2025-03-30T03:00:00+02:00",
            "2025-03-30T03:15:00+02:00",
        ],
    );
    assert_fires(
        "*/15 * * * *",
        "America/New_York",
        "2025-03-09T01:30:00-05:00",
        &[
            "2025-03-09T01:45:00-05:00",
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T03:15:00-04:00",
        ],
    );
    // Every listed time is in the gap, so the day is skipped.
    assert_fires(
        "0,30 2 * * *",
        "Europe/Berlin",
        "2025-03-29T12:00:00Z",
        &["2025-03-31T02:00:00+02:00", "2025-03-31T02:30:00+02:00"],
    );
}

// Fall back. Europe/Berlin 2025-10-26 03:00 CEST -> 02:00 CET;
// America/New_York 2025-11-02 02:00 EDT -> 01:00 EST.

#[test]
fn dst_fold_fixed_time_fires_at_first_occurrence_only() {
    assert_fires(
        "30 2 * * *",
        "Europe/Berlin",
        "2025-10-25T12:00:00Z",
        &["2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"],
    );
    assert_fires(
        "0 2 * * *",
        "Europe/Berlin",
        "2025-10-25T12:00:00Z",
        &["2025-10-26T02:00:00+02:00", "2025-10-27T02:00:00+01:00"],
    );
    assert_fires(
        "30 1 * * *",
        "America/New_York",
        "2025-11-01T12:00:00Z",
        &["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"],
    );
    // Starting between the two occurrences does not fire at the second.
    assert_fires(
        "30 1 * * *",
        "America/New_York",
        "2025-11-02T01:45:00-04:00",
        &["2025-11-03T01:30:00-05:00"],
    );
    assert_fires(
        "30 1 * * *",
        "America/New_York",
        "2025-11-02T01:00:00-05:00",
        &["2025-11-03T01:30:00-05:00"],
    );
}

#[test]
fn dst_fold_interval_fires_at_both_occurrences() {
    let new_york = schedule("*/15 * * * *", "America/New_York");
    let fires = new_york.upcoming(at("2025-11-02T00:50:00-04:00"), 9);
    let expected: Vec<DateTime<Utc>> = [
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:15:00-04:00",
        "2025-11-02T01:30:00-04:00",
        "2025-11-02T01:45:00-04:00",
        "2025-11-02T01:00:00-05:00",
        "2025-11-02T01:15:00-05:00",
        "2025-11-02T01:30:00-05:00",
        "2025-11-02T01:45:00-05:00",
        "2025-11-02T02:00:00-05:00",
    ]
    .iter()
    .map(|t| at(t))
    .collect();
    assert_eq!(fires, expected);
    assert!(
        fires.windows(2).all(|w| w[1] - w[0] == chrono::Duration::minutes(15)),
        "every 15 real minutes"
    );

    let berlin = schedule("*/15 * * * *", "Europe/Berlin");
    let fires = berlin.upcoming(at("2025-10-26T01:50:00+02:00"), 12);
    let in_repeated_hour = fires
        .iter()
        .filter(|t| {
            let local = t.with_timezone(&berlin.timezone());
            local.date_naive().to_string() == "2025-10-26" && local.hour() == 2
        })
        .count();
    assert_eq!(in_repeated_hour, 8, "{fires:?}");

    // Starting inside the second occurrence continues there.
    assert_fires(
        "*/15 * * * *",
        "America/New_York",
        "2025-11-02T01:20:00-05:00",
        &[
            "2025-11-02T01:30:00-05:00",
            "2025-11-02T01:45:00-05:00",
            "2025-11-02T02:00:00-05:00",
        ],
    );
    // Starting inside the first occurrence reaches the second one.
    assert_fires(
        "0,30 1 * * *",
        "America/New_York",
        "2025-11-02T01:40:00-04:00",
        &[
            "2025-11-02T01:00:00-05:00",
            "2025-11-02T01:30:00-05:00",
            "2025-11-03T01:00:00-05:00",
        ],
    );
}

#[test]
fn rejections_say_why() {
    let cases: &[(&str, &str)] = &[
        ("0 0 * * * * 2025", "got 7 — a year field is not supported"),
        (
            "* * *",
            "expected 5 fields (min hour dom month dow) or 6 (sec min hour dom month dow); got 3",
        ),
        ("", "empty"),
        ("   ", "empty"),
        ("@reboot", "@reboot is not supported"),
        ("@fortnightly", "unknown macro"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("60 * * * * *", "second 60 is out of range 0-59"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0-30 * * *", "hour 30 is out of range 0-23"),
        ("0 0 * FOO *", "month \"FOO\" is not a valid value"),
        ("0 0 * MON *", "month \"MON\" is not a valid value"),
        ("0 0 * * JAN", "day-of-week \"JAN\" is not a valid value"),
        ("0 0 * * MON#6", "must be 1-5"),
        ("0 0 * * L", "5L is the last Friday"),
        ("0 0 L-2 * *", "use L for the last day"),
        ("*/0 * * * *", "minute step \"0\""),
        ("0 */24 * * *", "must be a number in 1-23"),
        ("30-10 * * * *", "runs backwards"),
        ("0 0 * * 5-0", "Sunday is also 7"),
        (
            "0 ? * * *",
            "? is only allowed in the day-of-month and day-of-week fields",
        ),
        ("0 0 1,,2 * *", "empty list item"),
        ("/5 * * * *", "missing value"),
        ("0 0 1-? * *", "day-of-month"),
        ("0 0 30 2 *", "can never fire"),
        ("0 0 31 4 *", "can never fire"),
        ("0 0 31 2,4,6,9,11 *", "can never fire"),
        ("0 0 30W 2 *", "can never fire"),
    ];
    for (expression, message) in cases {
        match Schedule::parse(expression, "UTC") {
            Ok(_) => panic!("{expression:?} should be rejected"),
            Err(e) => {
                assert!(
                    e.to_string().contains(message),
                    "{expression:?}: {e:?} should contain {message:?}"
                );
                assert_eq!(e.field(), "cron_expression");
            }
        }
    }
}

#[test]
fn rare_but_possible_expressions_are_accepted() {
    // The fifth Monday of a February happens once every 28 years or so.
    let fifth_monday_of_february = schedule("0 0 * 2 1#5", "UTC");
    assert_eq!(
        fifth_monday_of_february.next_after(at(NEW_YEAR_2025)),
        Some(at("2044-02-29T00:00:00Z"))
    );
}

#[test]
fn unknown_timezone() {
    let error = Schedule::parse("0 0 * * *", "Mars/Olympus_Mons").expect_err("unknown timezone");
    assert!(matches!(error, ScheduleError::UnknownTimezone(_)));
    assert_eq!(error.field(), "timezone");
    assert!(error.to_string().contains("IANA"), "{error}");
    assert!(Schedule::parse("0 0 * * *", "Asia/Kolkata").is_ok());
}

#[test]
fn display_and_accessors_return_the_original_text() {
    let schedule = schedule(" 0 9 * * Mon-Fri ", "Europe/Berlin");
    assert_eq!(schedule.to_string(), "0 9 * * Mon-Fri");
    assert_eq!(schedule.expression(), "0 9 * * Mon-Fri");
    assert_eq!(schedule.timezone(), chrono_tz::Europe::Berlin);
}
