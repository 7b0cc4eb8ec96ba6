//! The target tested the way the scheduler runs it, through the target test kit.

use cron_runtime::domain::RunReason;
use cron_runtime::testing::{Invocation, InvocationError, RunOutcome};
use serde_json::json;

// Links the crate under test, so `example.greet` is registered.
use embed_example as _;

async fn database() -> sqlx::PgPool {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    sqlx::PgPool::connect(&url)
        .await
        .expect("DATABASE_URL reaches a PostgreSQL")
}

#[tokio::test]
async fn greet_says_hello_with_the_database_time() {
    let db = database().await;
    let outcome = Invocation::of("example.greet")
        .payload(json!({"name": "Ada"}))
        .run(&db)
        .await
        .expect("a valid payload");
    let RunOutcome::Succeeded { output } = outcome else {
        panic!("expected success, got {outcome:?}");
    };
    assert_eq!(output["greeting"], "hello, Ada");
    assert!(
        output["database_time"].as_str().is_some_and(|t| !t.is_empty()),
        "{output}"
    );
}

#[tokio::test]
async fn a_blank_name_fails_the_run_with_its_message() {
    let db = database().await;
    let outcome = Invocation::of("example.greet")
        .payload(json!({"name": " "}))
        .run(&db)
        .await;
    assert_eq!(
        outcome,
        Ok(RunOutcome::Failed {
            reason: RunReason::Error,
            error: "name is blank: say who to greet".into()
        })
    );
}

#[tokio::test]
async fn a_payload_the_api_would_refuse_is_refused_here_too() {
    let db = database().await;
    let refused = Invocation::of("example.greet")
        .payload(json!({"nmae": "Ada"}))
        .run(&db)
        .await;
    let Err(InvocationError::InvalidPayload { error, .. }) = refused else {
        panic!("expected an invalid payload, got {refused:?}");
    };
    assert!(error.to_string().contains("nmae"), "{error}");
}
