//! Cross-check against croniter, an independent implementation: the fixture holds 20 UTC fire
//! times for each of 600 random 5-field expressions (see `scripts/gen_cron_fixture.py`).

use chrono::{DateTime, Utc};
use cron_runtime::domain::Schedule;
use serde_json::Value;

const FIXTURE: &str = include_str!("../fixtures/croniter_utc.json");

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?} in fixture: {e}"))
        .with_timezone(&Utc)
}

#[test]
fn fire_times_match_croniter() {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    let start = instant(fixture["start"].as_str().expect("start"));
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(cases.len() >= 500, "fixture has only {} cases", cases.len());

    let mut mismatches = Vec::new();
    for case in cases {
        let expression = case["expression"].as_str().expect("expression");
        let expected: Vec<DateTime<Utc>> = case["fires"]
            .as_array()
            .expect("fires")
            .iter()
            .map(|f| instant(f.as_str().expect("fire")))
            .collect();
        let schedule = match Schedule::parse(expression, "UTC") {
            Ok(schedule) => schedule,
            Err(e) => {
                mismatches.push(format!("{expression:?}: rejected: {e}"));
                continue;
            }
        };
        let actual = schedule.upcoming(start, expected.len());
        if actual != expected {
            let first = actual
                .iter()
                .zip(&expected)
                .position(|(a, e)| a != e)
                .unwrap_or(actual.len());
            mismatches.push(format!(
                "{expression:?}: fire #{first} differs: ours {:?}, croniter {:?}",
                actual.get(first),
                expected.get(first)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} expressions differ from croniter:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}
