//! Whatever a client sends as `cursor`, the lists answer 200 or a 400 naming `cursor`: never
//! a 5xx (a crafted cursor once reached PostgreSQL with a year it cannot hold).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use tests::api::{send, TestApi};

/// Cursor strings: arbitrary text, and well-formed envelopes (`micros|id`, base64) around any
/// number and any, mostly valid, id, which is where a decoder's bounds matter.
fn cursors() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        any::<u128>().prop_map(|n| format!("{{{}}}", uuid::Uuid::from_u128(n))),
        "[0-9a-fA-F-]{0,40}",
        any::<String>(),
    ];
    let micros = prop_oneof![any::<i64>().prop_map(|n| n.to_string()), "-?[0-9]{1,25}"];
    prop_oneof![
        any::<String>(),
        (micros, id).prop_map(|(m, id)| URL_SAFE_NO_PAD.encode(format!("{m}|{id}"))),
    ]
}

fn any_cursor_is_200_or_400(list: &'static str) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let api = runtime.block_on(TestApi::spawn());
    // A page of each list exists, so a valid cursor reaches the database's comparison.
    runtime.block_on(async {
        let job = api.one_time_job("cursor-fuzz").await;
        let reply = api
            .post_empty(&format!("/jobs/{}/run-now", job["id"].as_str().unwrap()))
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    });
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    let outcome = runner.run(&cursors(), |cursor| {
        let reply = runtime.block_on(send(api.request(Method::GET, list).query(&[("cursor", &cursor)])));
        match reply.status {
            200 => Ok(()),
            400 if reply.text.contains("cursor") => Ok(()),
            status => Err(TestCaseError::fail(format!(
                "GET {list}?cursor={cursor:?} answered {status}: {}",
                reply.text
            ))),
        }
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[test]
fn any_cursor_on_the_job_list_is_200_or_a_400_naming_it() {
    any_cursor_is_200_or_400("/jobs");
}

#[test]
fn any_cursor_on_the_run_list_is_200_or_a_400_naming_it() {
    any_cursor_is_200_or_400("/runs");
}

#[tokio::test]
async fn the_issue_s_crafted_cursor_is_a_400() {
    let api = TestApi::spawn().await;
    let crafted = "LTcwMDAwMDAwMDAwMDAwMDAwMDB8MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw";
    for list in ["/jobs", "/runs"] {
        let reply = api.get(&format!("{list}?cursor={crafted}")).await;
        assert_eq!(reply.status, 400, "{list}: {}", reply.text);
        assert!(reply.text.contains("cursor"), "{list}: {}", reply.text);
    }
}
