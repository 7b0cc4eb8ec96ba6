//! `my-cron`: every `cronjobs` subcommand (api, scheduler, dev, migrate, apply, ...), with this
//! service's targets.

// Links the targets crate, so its #[cron_target] registrations are in the registry.
use embed_example as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cron_runtime::cli::run().await
}
