//! The compile-time registry of targets.
//!
//! `#[cron_target]` emits one [`Target`] per function through `inventory::submit!`;
//! this module collects them, checks them once at startup, and looks them up by key.
//! inventory's iteration order is unspecified, so every listing here is sorted by key.
//!
//! Diagnostic targets (`#[cron_target(..., diagnostic)]`: they panic, sleep for a day or create
//! tables on purpose) are left out of every lookup unless [`enable_diagnostic_targets`] was
//! called: the API lists and accepts only what [`all`] and [`get`] return, and the scheduler
//! runs and advertises only those, so this is the one switch.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::context::JobContext;
pub use crate::domain::target::PayloadError;
use crate::domain::target::TargetCatalog;
use crate::domain::JobKey;

/// The future a target's type-erased entry point returns: its output as JSON, or its failure.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<Value, crate::failure::Failure>> + Send + 'static>>;

/// One registered target, as emitted by `#[cron_target]`.
pub struct Target {
    /// The key jobs name in their `target` field.
    pub key: &'static str,
    /// The function's doc comment.
    pub description: &'static str,
    /// How long a run may take before it is cancelled and failed.
    pub timeout: Duration,
    /// The payload type, if the function takes one.
    pub payload: Option<PayloadSpec>,
    /// A target for testing the service itself: off unless enabled (see the module doc).
    pub diagnostic: bool,
    /// Runs the function: decodes the payload, calls it, encodes its output.
    pub run: fn(JobContext, Value) -> RunFuture,
    /// The function's name, for messages.
    pub function: &'static str,
    /// Where the function is, for messages.
    pub file: &'static str,
    /// Where the function is, for messages.
    pub line: u32,
}

/// The typed payload a target takes.
pub struct PayloadSpec {
    /// The Rust type's name as written in the signature.
    pub type_name: &'static str,
    /// Checks that a JSON value deserializes into the type.
    pub validate: fn(&Value) -> Result<(), PayloadError>,
    /// A JSON Schema of the type, when it implements `schemars::JsonSchema`.
    pub schema: fn() -> Option<Value>,
}

inventory::collect!(Target);

impl Target {
    /// Where the target is defined, as `function (file:line)`.
    pub fn location(&self) -> String {
        format!("{} ({}:{})", self.function, self.file, self.line)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("payload", &self.payload.as_ref().map(|p| p.type_name))
            .field("location", &self.location())
            .finish()
    }
}

/// Why the registry is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("target key {key:?} is registered twice: by {first} and by {second}")]
    DuplicateKey { key: String, first: String, second: String },
    #[error("target key {key:?} of {location} is malformed: {reason}")]
    MalformedKey {
        key: String,
        location: String,
        reason: String,
    },
}

static DIAGNOSTICS_ENABLED: AtomicBool = AtomicBool::new(false);

/// Puts the diagnostic targets in the registry for the rest of the process
/// (`CRON_DIAGNOSTIC_TARGETS=1`; the tests and benchmarks use them).
pub fn enable_diagnostic_targets() {
    DIAGNOSTICS_ENABLED.store(true, Ordering::Relaxed);
}

/// Whether [`enable_diagnostic_targets`] was called.
pub fn diagnostic_targets_enabled() -> bool {
    DIAGNOSTICS_ENABLED.load(Ordering::Relaxed)
}

fn usable(target: &Target) -> bool {
    !target.diagnostic || diagnostic_targets_enabled()
}

/// Every registered target, enabled or not, sorted by key.
fn registered() -> Vec<&'static Target> {
    let mut targets: Vec<&'static Target> = inventory::iter::<Target>.into_iter().collect();
    targets.sort_by(|a, b| a.key.cmp(b.key).then(a.file.cmp(b.file)).then(a.line.cmp(&b.line)));
    targets
}

/// Every usable target (diagnostic ones only when enabled), sorted by key.
pub fn all() -> Vec<&'static Target> {
    registered().into_iter().filter(|t| usable(t)).collect()
}

/// Checks the registry: every key well-formed and unique, diagnostic targets included (a
/// build must not be broken only where they are enabled). Run once at startup.
pub fn check() -> Result<(), Vec<RegistryError>> {
    let mut errors = Vec::new();
    let targets = registered();
    for target in &targets {
        if let Err(reason) = JobKey::parse(target.key) {
            errors.push(RegistryError::MalformedKey {
                key: target.key.to_owned(),
                location: target.location(),
                reason: reason.to_string(),
            });
        }
    }
    for pair in targets.windows(2) {
        if pair[0].key == pair[1].key {
            errors.push(RegistryError::DuplicateKey {
                key: pair[0].key.to_owned(),
                first: pair[0].location(),
                second: pair[1].location(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Looks a usable target up by key.
pub fn get(key: &str) -> Option<&'static Target> {
    static BY_KEY: OnceLock<HashMap<&'static str, &'static Target>> = OnceLock::new();
    BY_KEY
        .get_or_init(|| registered().into_iter().map(|t| (t.key, t)).collect())
        .get(key)
        .copied()
        .filter(|t| usable(t))
}

/// Checks that `payload` fits the target `key`: an object that deserializes into its payload
/// type, or `{}` for a target that takes none.
pub fn validate_payload(key: &str, payload: &Value) -> Result<(), PayloadError> {
    let target = get(key).ok_or_else(|| PayloadError::UnknownTarget(key.to_owned()))?;
    let object = payload.as_object().ok_or(PayloadError::NotAnObject)?;
    match &target.payload {
        Some(spec) => (spec.validate)(payload),
        None if object.is_empty() => Ok(()),
        None => Err(PayloadError::Unexpected(key.to_owned())),
    }
}

/// This build's targets, as validation sees them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registered;

impl TargetCatalog for Registered {
    fn has(&self, key: &str) -> bool {
        get(key).is_some()
    }

    fn keys(&self) -> Vec<&'static str> {
        all().iter().map(|t| t.key).collect()
    }

    fn check_payload(&self, key: &str, payload: &Value) -> Result<(), PayloadError> {
        validate_payload(key, payload)
    }
}
