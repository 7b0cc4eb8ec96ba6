//! Command-line parsing and the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cron_runtime::config::{self, ProcessEnv};
use cron_runtime::{registry, store, telemetry};

/// A durable cron service on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "cronjobs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the admin REST API on HOST:PORT (needs DATABASE_URL and CRON_ADMIN_TOKENS).
    Api,
    /// Apply database migrations (idempotent; safe to run from several processes at once).
    Migrate,
    /// Print the registered targets: key, timeout, payload type and description.
    Targets,
}

/// Parses the command line and runs the subcommand; the exit code says whether it worked.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Api => api().await,
        Command::Migrate => migrate().await,
        Command::Targets => print_targets(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn api() -> anyhow::Result<()> {
    let common = config::CommonConfig::from_env(&ProcessEnv);
    let api = config::ApiConfig::from_env(&ProcessEnv);
    let (common, api) = match (common, api) {
        (Ok(common), Ok(api)) => (common, api),
        // Report the problems of both at once, so one deploy fixes them all.
        (common, api) => {
            let problems = [common.err(), api.err()]
                .into_iter()
                .flatten()
                .flat_map(|e| e.0)
                .collect();
            return Err(config::ConfigError(problems).into());
        }
    };
    telemetry::init(&common, "api");
    check_registry()?;
    cron_runtime::api::run(api).await
}

async fn migrate() -> anyhow::Result<()> {
    let url = config::database_url(&ProcessEnv)?;
    let pool = store::connect(&url).await?;
    store::schema::migrate(&pool).await?;
    println!("migrations applied: {}", store::schema::MIGRATOR.iter().count());
    Ok(())
}

fn print_targets() -> anyhow::Result<()> {
    check_registry()?;
    println!("{:<24} {:>8}  {:<16} DESCRIPTION", "KEY", "TIMEOUT", "PAYLOAD");
    for target in registry::all() {
        let payload = target.payload.as_ref().map_or("-", |p| p.type_name);
        let timeout = humantime_short(target.timeout);
        println!(
            "{:<24} {:>8}  {:<16} {}",
            target.key, timeout, payload, target.description
        );
    }
    Ok(())
}

fn humantime_short(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Fails with every duplicate or malformed target key, naming the functions.
fn check_registry() -> anyhow::Result<()> {
    registry::check().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::anyhow!("the target registry is invalid:\n{}", lines.join("\n"))
    })
}
