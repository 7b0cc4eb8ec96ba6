//! What every subcommand that runs a service shares: the registry check, the shutdown signal,
//! and reading two configurations at once.

use crate::config::{CommonConfig, ConfigError};
use crate::{builtin, registry, shutdown};
use tokio_util::sync::CancellationToken;

/// Both configurations, or every problem of both in one error.
pub fn both<A, B>(a: Result<A, ConfigError>, b: Result<B, ConfigError>) -> Result<(A, B), ConfigError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => {
            let mut problems = a.err().map(|e| e.0).unwrap_or_default();
            problems.extend(b.err().map(|e| e.0).unwrap_or_default());
            Err(ConfigError(problems))
        }
    }
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
        cancel.cancel();
    });
    token
}

/// Checks the registry, then enables the diagnostic targets if `CRON_DIAGNOSTIC_TARGETS` asks.
pub fn open_registry(common: &CommonConfig) -> anyhow::Result<()> {
    check_registry()?;
    builtin::configure(common);
    if common.diagnostic_targets {
        registry::enable_diagnostic_targets();
        tracing::info!("diagnostic targets enabled (CRON_DIAGNOSTIC_TARGETS)");
    }
    Ok(())
}

/// Fails with every duplicate or malformed target key, naming the functions.
pub fn check_registry() -> anyhow::Result<()> {
    registry::check().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::anyhow!("the target registry is invalid:\n{}", lines.join("\n"))
    })
}
