//! The cost of `Schedule::next_after`, which the scheduler calls for every definition at
//! startup. A measurement, not an assertion; run it in release mode:
//!
//! ```text
//! cargo test --release -p cron-runtime --test schedule_bench -- --ignored --nocapture
//! ```

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use cron_runtime::domain::Schedule;

#[test]
#[ignore = "timing loop; run in release mode with --ignored --nocapture"]
fn next_after_cost() {
    let cases = [
        ("*/15 * * * *", "UTC"),
        ("0 3 * * *", "Europe/Berlin"),
        ("30 2 * * MON-FRI", "America/New_York"),
        ("0 9 1,15 * *", "Asia/Kolkata"),
        ("*/10 * * * * *", "Europe/Berlin"),
        ("0 0 L * *", "UTC"),
        ("0 0 29 2 *", "UTC"),
    ];
    let start = DateTime::parse_from_rfc3339("2025-06-01T12:34:56Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap();
    for (expression, timezone) in cases {
        let schedule = Schedule::parse(expression, timezone).unwrap();
        let iterations = 20_000;
        let began = Instant::now();
        for i in 0..iterations {
            black_box(schedule.next_after(black_box(start + Duration::seconds(i * 61))));
        }
        let per_call = began.elapsed() / iterations as u32;
        println!("{expression:>20} {timezone:>18}: {per_call:?} per next_after");
    }
}
