//! How a target fails: an error message for the run's `error`, and whether retrying could
//! help (SPEC 17). A target marks an error that no retry can fix with [`Permanent`]:
//!
//! ```
//! use cron_runtime::{cron_target, JobContext, Permanent};
//!
//! /// Sends the invoice; a customer that does not exist will not exist on a retry either.
//! #[cron_target("billing.send-invoice")]
//! async fn send_invoice(_ctx: JobContext) -> anyhow::Result<()> {
//!     let customer_exists = false;
//!     if !customer_exists {
//!         return Err(Permanent::new("customer 42 does not exist").into());
//!     }
//!     Ok(())
//! }
//! ```

use std::error::Error;
use std::fmt;

/// An error that retrying cannot fix: the run fails (reason `error`) and its job's retry
/// policy does not retry it. Return it as the target's error, or anywhere in its chain (an
/// `anyhow` error with context on top still counts).
pub struct Permanent {
    error: Box<dyn Error + Send + Sync + 'static>,
}

impl Permanent {
    /// Marks `error` (an error, or a message) as permanent.
    pub fn new(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Permanent { error: error.into() }
    }
}

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Permanent").field(&self.error).finish()
    }
}

impl Error for Permanent {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.source()
    }
}

/// A failed handler: what the run records in `error`, and whether it was [`Permanent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub permanent: bool,
}

impl Failure {
    /// A failure a retry may fix.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            permanent: false,
        }
    }
}

/// Whether `error` or any error in its chain is [`Permanent`].
pub(crate) fn chain_is_permanent(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<Permanent>() {
            return true;
        }
        next = error.source();
    }
    false
}
