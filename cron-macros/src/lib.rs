//! The `#[cron_target]` attribute of cronjobs.
//!
//! Use it through `cron_runtime::cron_target`: the code it generates names
//! `::cron_runtime::__private`, so the crate that uses it must depend on `cron-runtime`.

mod target;

use proc_macro::TokenStream;

/// Registers an async function as a cron target: code a job can run, by key.
///
/// ```ignore
/// use cron_runtime::{cron_target, JobContext};
///
/// /// Logs a heartbeat (the doc comment becomes the target's description).
/// #[cron_target("system.heartbeat")]
/// async fn heartbeat(ctx: JobContext) -> anyhow::Result<()> {
///     tracing::info!(job_key = %ctx.job_key, "cron heartbeat");
///     Ok(())
/// }
///
/// #[derive(serde::Deserialize)]
/// struct DigestArgs { recipients: Vec<String> }
///
/// #[derive(serde::Serialize)]
/// struct DigestSummary { sent: usize }
///
/// /// Mails the daily digest.
/// #[cron_target("reports.digest", timeout = "5m")]
/// async fn digest(ctx: JobContext, args: DigestArgs) -> anyhow::Result<DigestSummary> {
///     Ok(DigestSummary { sent: args.recipients.len() })
/// }
/// ```
///
/// # Arguments
///
/// - the key (required, first): a string matching `^[a-z0-9][a-z0-9._-]{0,99}$`, checked at
///   compile time; jobs name it in their `target` field;
/// - `timeout = "..."` (optional, default `10m`): a humantime duration (`90s`, `5m`, `1h 30m`)
///   after which a run is cancelled and fails. It must not be zero.
/// - `diagnostic` (optional): a target for testing the service itself, not for production jobs.
///   It is left out of the registry (not listed, rejected by the API, not run) unless the
///   process runs with `CRON_DIAGNOSTIC_TARGETS=1`.
///
/// # The function
///
/// `async fn name(ctx: JobContext) -> Result<T, E>` or
/// `async fn name(ctx: JobContext, args: P) -> Result<T, E>`, where the payload `P` is
/// `serde::de::DeserializeOwned`, the output `T` is `serde::Serialize` (stored on the run) and the
/// error `E` is `Display` (an `anyhow::Error` is recorded with its whole chain). No generics, no
/// `self`. The future must be `Send + 'static`. When `P` implements `schemars::JsonSchema`, its
/// schema is published with the target.
///
/// The function is kept as written; the attribute adds, beside it, an `inventory` registration
/// whose description is the function's doc comment. A crate of targets is only linked, and so only
/// registered, if the binary names it (`use targets as _;`).
#[proc_macro_attribute]
pub fn cron_target(args: TokenStream, item: TokenStream) -> TokenStream {
    target::expand(args.into(), item.into()).into()
}
