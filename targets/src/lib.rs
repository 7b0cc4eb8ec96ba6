//! The application's cron targets: the code jobs run.
//!
//! # Adding a target
//!
//! Write one annotated async function, anywhere in this crate:
//!
//! ```ignore
//! use cron_runtime::{cron_target, JobContext};
//!
//! /// Mails the daily digest. (The doc comment is the target's description in `GET /targets`.)
//! #[cron_target("reports.digest", timeout = "5m")]
//! async fn digest(ctx: JobContext, args: DigestArgs) -> anyhow::Result<DigestSummary> {
//!     // ...
//! }
//! ```
//!
//! The optional second argument is the job's payload (`serde::Deserialize`; derive
//! `schemars::JsonSchema` too so the API can publish its schema, and use
//! `#[serde(deny_unknown_fields)]` so a typo is a 400 rather than a silently ignored field). The
//! output (`serde::Serialize`) is stored on the run; an error fails the run with its message. See
//! `cron_runtime::cron_target` for the rules; misuse is a compile error.
//!
//! # Linking
//!
//! `#[cron_target]` registers functions through `inventory`, which only sees crates that are
//! linked. Nothing calls into this crate by name, so the binary, and every test crate that needs
//! the targets, must name it:
//!
//! ```ignore
//! // Links the `targets` crate so its `#[cron_target]` registrations are in the registry.
//! use targets as _;
//! ```
//!
//! # Diagnostic targets
//!
//! [`system`] holds targets for operating and testing the service itself: `system.heartbeat`,
//! `system.prune` (retention as a cron job),
//! `system.sleep`, `system.fail`, `system.panic` and `system.record`. All but `system.heartbeat`
//! are off unless `CRON_DIAGNOSTIC_TARGETS=1` (see [`system`]).

pub mod system;
