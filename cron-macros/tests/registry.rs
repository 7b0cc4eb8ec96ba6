//! A target registered by `#[cron_target]` is in the registry, described, and runnable.
//!
//! This test binary links only its own registrations, so the registry holds exactly the targets
//! defined here.

use std::time::Duration;

use cron_runtime::domain::TriggerType;
use cron_runtime::failure::Failure;
use cron_runtime::registry::{self, PayloadError};
use cron_runtime::{cron_target, JobContext, Permanent};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Waits a little.
///
/// Then says how long.
#[cron_target("test.wait", timeout = "1m 30s")]
async fn wait(_ctx: JobContext, args: WaitArgs) -> anyhow::Result<Waited> {
    anyhow::ensure!(args.seconds >= 0.0, "seconds must not be negative");
    Ok(Waited { waited: args.seconds })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct WaitArgs {
    seconds: f64,
}

#[derive(Serialize)]
struct Waited {
    waited: f64,
}

/// Reports the run it belongs to.
#[cron_target("test.whoami")]
pub(crate) async fn whoami(ctx: JobContext) -> Result<String, String> {
    Ok(ctx.job_key.clone())
}

/// Fails with an error no retry can fix, under context.
#[cron_target("test.refuse")]
async fn refuse(_ctx: JobContext) -> anyhow::Result<()> {
    Err(anyhow::Error::new(Permanent::new("customer 42 does not exist")).context("sending the invoice"))
}

/// Fails with [`Permanent`] as its error type.
#[cron_target("test.refuse-typed")]
async fn refuse_typed(_ctx: JobContext) -> Result<(), Permanent> {
    Err(Permanent::new("the report was deleted"))
}

mod plain {
    use super::*;

    #[derive(Deserialize)]
    pub struct Untyped {
        #[allow(dead_code)]
        pub n: u32,
    }

    #[cron_target("test.no-schema")]
    async fn no_schema(_ctx: JobContext, _args: Untyped) -> anyhow::Result<()> {
        Ok(())
    }
}

fn context(job_key: &str) -> JobContext {
    // A lazy pool connects on first use; these targets never use it.
    let db = sqlx::PgPool::connect_lazy("postgres://localhost/none").expect("a valid URL");
    JobContext::new(
        uuid::Uuid::now_v7(),
        job_key.to_owned(),
        1,
        TriggerType::Manual,
        chrono::Utc::now(),
        db,
        tokio_util::sync::CancellationToken::new(),
    )
}

#[test]
fn registrations_are_listed_sorted_with_their_metadata() {
    let keys: Vec<_> = registry::all().iter().map(|t| t.key).collect();
    // The runtime's built-in target is registered beside this crate's own.
    assert_eq!(
        keys,
        [
            "http.request",
            "test.no-schema",
            "test.refuse",
            "test.refuse-typed",
            "test.wait",
            "test.whoami"
        ]
    );
    assert!(registry::check().is_ok());

    let wait = registry::get("test.wait").expect("registered");
    assert_eq!(wait.description, "Waits a little.\n\nThen says how long.");
    assert_eq!(wait.timeout, Duration::from_secs(90));
    assert_eq!(wait.function, "wait");
    assert!(wait.file.ends_with("registry.rs"), "{}", wait.file);
    let payload = wait.payload.as_ref().expect("takes a payload");
    assert_eq!(payload.type_name, "WaitArgs");
    let schema = (payload.schema)().expect("WaitArgs derives JsonSchema");
    assert_eq!(schema["properties"]["seconds"]["type"], "number", "{schema}");

    let whoami = registry::get("test.whoami").expect("registered");
    assert_eq!(whoami.description, "Reports the run it belongs to.");
    assert_eq!(whoami.timeout, Duration::from_secs(600), "the default timeout");
    assert!(whoami.payload.is_none());

    let no_schema = registry::get("test.no-schema").expect("registered");
    assert_eq!(no_schema.description, "");
    let payload = no_schema.payload.as_ref().expect("takes a payload");
    assert_eq!(payload.type_name, "Untyped");
    assert_eq!((payload.schema)(), None, "Untyped does not implement JsonSchema");
}

#[test]
fn payloads_are_validated_with_a_path() {
    assert_eq!(
        registry::validate_payload("test.wait", &json!({"seconds": 1.5})),
        Ok(())
    );
    match registry::validate_payload("test.wait", &json!({"seconds": "x"})) {
        Err(PayloadError::Invalid { path, message }) => {
            assert_eq!(path, "seconds");
            assert!(message.contains("invalid type"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(matches!(
        registry::validate_payload("test.wait", &json!({"seconds": 1, "extra": true})),
        Err(PayloadError::Invalid { .. })
    ));
    assert_eq!(
        registry::validate_payload("test.whoami", &json!({"x": 1})),
        Err(PayloadError::Unexpected("test.whoami".into()))
    );
    assert_eq!(registry::validate_payload("test.whoami", &json!({})), Ok(()));
}

#[tokio::test]
async fn run_decodes_calls_and_encodes() {
    let wait = registry::get("test.wait").expect("registered");
    let output = (wait.run)(context("a.job"), json!({"seconds": 2.5})).await;
    assert_eq!(output, Ok(json!({"waited": 2.5})));

    let failed = (wait.run)(context("a.job"), json!({"seconds": -1.0})).await;
    assert_eq!(failed, Err(Failure::new("seconds must not be negative")));

    let invalid = (wait.run)(context("a.job"), json!({"seconds": "x"})).await;
    let message = invalid.expect_err("a bad payload fails the run").message;
    assert!(message.starts_with("invalid payload: at seconds: "), "{message}");

    let refuse = registry::get("test.refuse").expect("registered");
    let failure = (refuse.run)(context("a.job"), json!({})).await.expect_err("it fails");
    assert_eq!(
        failure,
        Failure {
            message: "sending the invoice: customer 42 does not exist".into(),
            permanent: true
        }
    );
    let typed = registry::get("test.refuse-typed").expect("registered");
    let failure = (typed.run)(context("a.job"), json!({})).await.expect_err("it fails");
    assert!(failure.permanent, "{failure:?}");
    assert_eq!(failure.message, "the report was deleted");

    let whoami = registry::get("test.whoami").expect("registered");
    let output = (whoami.run)(context("the.key"), json!({})).await;
    assert_eq!(output, Ok(json!("the.key")));
}
