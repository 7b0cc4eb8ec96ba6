//! What the domain needs to know of targets, declared here so the domain depends on nothing
//! above it: the registry (`crate::registry::Registered`) implements [`TargetCatalog`].

use serde_json::Value;

/// The targets a definition may name, and what payload each accepts.
pub trait TargetCatalog {
    /// Whether a usable target is registered under `key`.
    fn has(&self, key: &str) -> bool;
    /// Every usable key, sorted.
    fn keys(&self) -> Vec<&'static str>;
    /// Checks that `payload` fits the target `key`.
    fn check_payload(&self, key: &str, payload: &Value) -> Result<(), PayloadError>;
}

/// Why a payload does not fit its target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("no target is registered under {0:?}")]
    UnknownTarget(String),
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("target {0:?} takes no payload: send {{}} or omit the field")]
    Unexpected(String),
    #[error("{}{message}", if path.is_empty() || path == "." { String::new() } else { format!("at {path}: ") })]
    Invalid {
        /// Where in the payload the problem is (serde's path, e.g. `items[2].name`; `.` for the root).
        path: String,
        /// serde's message, e.g. `missing field `seconds``.
        message: String,
    },
}
