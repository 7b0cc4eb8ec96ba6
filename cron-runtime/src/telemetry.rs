//! Logging: human-readable in development, JSON elsewhere; `RUST_LOG` filters.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{CommonConfig, LogFormat};

/// Installs the global subscriber. `service` (`api`, `scheduler`, ...) names the process.
pub fn init(config: &CommonConfig, service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
    };
    if result.is_ok() {
        tracing::debug!(service, app_env = config.app_env.as_str(), "logging initialised");
    }
}
