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

/// The variables `.env` supplied (set once, at startup).
static FROM_DOTENV: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Records which variables came from `.env`, so errors can say so.
pub fn remember_dotenv(names: Vec<String>) {
    let _ = FROM_DOTENV.set(names);
}

/// Where a setting came from, for an error message: ` (from .env)` or nothing.
pub fn origin_of(name: &str) -> &'static str {
    match FROM_DOTENV.get().is_some_and(|names| names.iter().any(|n| n == name)) {
        true => " (from .env)",
        false => "",
    }
}

/// Connects a one-shot command (`migrate`, `apply`, `export`, `prune`, `dev`) to `url`, with
/// one readable error naming DATABASE_URL and where it came from.
pub async fn open_database(url: &crate::config::Secret, size: u32) -> anyhow::Result<sqlx::PgPool> {
    crate::store::connect_with(url, size).await.map_err(|e| {
        // sqlx's text repeats the server's message through its source: say it once.
        let why = match &e {
            sqlx::Error::Database(db) => db.message().to_owned(),
            other => other.to_string(),
        };
        anyhow::anyhow!("cannot connect to DATABASE_URL{}: {why}", origin_of("DATABASE_URL"))
    })
}
