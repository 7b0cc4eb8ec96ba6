//! The diagnostic targets behave as documented, run through the registry as the scheduler runs
//! them. (`system.record` needs a database; the black-box tests in `tests/` cover it.)

// Links the `targets` crate: nothing here calls into it by name, and without this line its
// `#[cron_target]` registrations would not be linked into this test binary.
use targets as _;

use std::time::{Duration, Instant};

use cron_runtime::domain::TriggerType;
use cron_runtime::{registry, JobContext};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn context(cancel: CancellationToken) -> JobContext {
    // A lazy pool connects on first use; these targets never use it.
    let db = sqlx::PgPool::connect_lazy("postgres://localhost/none").expect("a valid URL");
    let now = chrono::Utc::now();
    JobContext::new(
        uuid::Uuid::now_v7(),
        "diag.job".into(),
        1,
        TriggerType::Manual,
        now,
        db,
        cancel,
    )
}

async fn run(key: &str, payload: Value, cancel: CancellationToken) -> Result<Value, String> {
    // As `CRON_DIAGNOSTIC_TARGETS=1` does in the binary.
    registry::enable_diagnostic_targets();
    let target = registry::get(key).unwrap_or_else(|| panic!("{key} is not registered"));
    (target.run)(context(cancel), payload)
        .await
        .map_err(|failure| failure.message)
}

#[tokio::test]
async fn heartbeat_succeeds_without_output() {
    assert_eq!(
        run("system.heartbeat", json!({}), CancellationToken::new()).await,
        Ok(Value::Null)
    );
}

#[tokio::test]
async fn sleep_sleeps_and_reports_how_long() {
    let started = Instant::now();
    let output = run("system.sleep", json!({"seconds": 0.05}), CancellationToken::new()).await;
    assert_eq!(output, Ok(json!({"slept_seconds": 0.05})));
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn sleep_stops_early_when_cancelled() {
    let cancel = CancellationToken::new();
    let run = tokio::spawn(run("system.sleep", json!({"seconds": 3600}), cancel.clone()));
    tokio::task::yield_now().await;
    cancel.cancel();
    let output = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("returns promptly once cancelled")
        .expect("does not panic");
    assert_eq!(output, Err("cancelled".to_owned()));
}

#[tokio::test]
async fn sleep_refuses_an_out_of_range_payload_at_run_time_too() {
    let output = run("system.sleep", json!({"seconds": -1}), CancellationToken::new()).await;
    let message = output.expect_err("a negative sleep is refused");
    assert!(
        message.starts_with("invalid payload: at seconds: must be between 0"),
        "{message}"
    );
}

#[tokio::test]
async fn fail_fails_with_the_message() {
    let output = run("system.fail", json!({"message": "boom"}), CancellationToken::new()).await;
    assert_eq!(output, Err("boom".to_owned()));
}

#[tokio::test]
async fn panic_panics_with_its_message() {
    let joined = tokio::spawn(run("system.panic", json!({}), CancellationToken::new())).await;
    let panic = joined.expect_err("the target panics").into_panic();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"system.panic was asked to panic"));
}

/// `system.record`'s `fail_attempts` and `permanent`, through the target test kit: what a
/// retry policy sees of a target that fails its first attempts, or fails for good.
mod attempts {
    use cron_runtime::domain::{RunReason, TriggerType};
    use cron_runtime::testing::{Invocation, RunOutcome};
    use serde_json::json;

    fn record(payload: serde_json::Value) -> Invocation {
        cron_runtime::registry::enable_diagnostic_targets();
        Invocation::of("system.record").payload(payload)
    }

    #[sqlx::test]
    async fn fail_attempts_fails_the_first_attempts_then_succeeds(db: sqlx::PgPool) {
        let payload = json!({"fail_attempts": 2});
        for attempt in 1..=2 {
            let outcome = record(payload.clone())
                .trigger(if attempt == 1 {
                    TriggerType::Scheduled
                } else {
                    TriggerType::Retry
                })
                .attempt(attempt)
                .run(&db)
                .await
                .expect("a valid invocation");
            assert!(
                matches!(&outcome, RunOutcome::Failed { reason: RunReason::Error, error }
                    if error.contains(&format!("failing attempt {attempt} of 2"))),
                "attempt {attempt}: {outcome:?}"
            );
        }
        let third = record(payload).trigger(TriggerType::Retry).attempt(3).run(&db).await;
        assert!(matches!(third, Ok(RunOutcome::Succeeded { .. })), "{third:?}");
    }

    #[sqlx::test]
    async fn permanent_fails_so_that_no_retry_follows(db: sqlx::PgPool) {
        let outcome = record(json!({"permanent": true})).run(&db).await;
        assert!(
            matches!(&outcome, Ok(RunOutcome::FailedPermanently { error }) if error.contains("for good")),
            "{outcome:?}"
        );
    }
}
