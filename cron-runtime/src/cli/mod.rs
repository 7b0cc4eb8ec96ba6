//! The command line: every subcommand of `cronjobs`, as one entry point.
//!
//! This is library mode (README, "Use it from your own service"): a team's own binary that
//! links its own targets crate calls [`run`] from its `main` and behaves exactly like
//! `cronjobs`, with the same subcommands, configuration and behaviour:
//!
//! ```ignore
//! use my_targets as _; // links the crate, so its #[cron_target]s are registered
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     cron_runtime::cli::run().await
//! }
//! ```

mod dev;
mod dev_postgres;
mod process;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::config::{self, ApiConfig, CommonConfig, ProcessEnv, SchedulerConfig, Secret};
use crate::domain::incident::Policy;
use crate::{jobfile, registry, scheduler, store, telemetry};

use process::{both, open_database, open_registry, shutdown_on_signal};
use tokio_util::sync::CancellationToken;

/// A durable cron service on PostgreSQL.
#[derive(Debug, Parser)]
#[command(
    name = "cronjobs",
    version,
    about = "cronjobs: a durable cron service on PostgreSQL (api, scheduler, dev, migrate, apply, validate, export, prune, targets)"
)]
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
    /// Run the scheduler: fire jobs at their times and record every run.
    Scheduler,
    /// Local development: migrations, then the API and the scheduler in one process.
    Dev,
    /// Make the jobs of a TOML jobs file live: create, new version, retire (`--dry-run`: plan only).
    /// A file owns the jobs of its `source` (default: its path) and never touches others'.
    Apply {
        /// The jobs file, e.g. jobs.toml.
        file: PathBuf,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Let the file retire all, or more than half, of its source's jobs (asked on a
        /// terminal; refused otherwise). `--allow-empty`, its name before sources, still works.
        #[arg(long, alias = "allow-empty")]
        allow_retire: bool,
    },
    /// Check a jobs file against this build's targets (needs no database; for CI).
    Validate {
        /// The jobs file, e.g. jobs.toml.
        file: PathBuf,
    },
    /// Print the live jobs as a jobs file.
    Export,
    /// Delete terminal runs older than a cut-off (retention: 180 days; the `system.prune` target
    /// does the same as a cron job).
    Prune {
        /// Age of the newest run to delete, e.g. `180d`, `12w`, `720h`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = store::runs::DEFAULT_RETENTION)]
        older_than: Duration,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Rows deleted per transaction (keeps locks short while the scheduler runs).
        #[arg(long, default_value_t = store::runs::DEFAULT_PRUNE_BATCH, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch_size: i64,
    },
}

/// Parses the command line and runs the subcommand; the exit code says whether it worked.
/// Call it from `main` in a Tokio runtime; the targets registered are those of every crate
/// the binary links.
pub async fn run() -> ExitCode {
    if let Err(e) = load_dotenv() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Api => api().await,
        Command::Migrate => migrate().await,
        Command::Targets => print_targets(),
        Command::Scheduler => scheduler().await,
        Command::Dev => dev::run().await,
        Command::Apply {
            file,
            dry_run,
            allow_retire,
        } => apply(&file, jobfile::ApplyOptions { dry_run, allow_retire }).await,
        Command::Validate { file } => validate(&file),
        Command::Export => export().await,
        Command::Prune {
            older_than,
            dry_run,
            batch_size,
        } => prune(older_than, dry_run, batch_size).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads `./.env` into the environment, in development only: when `APP_ENV` is unset or
/// `development`. Staging and production take every variable from the platform, so a stray
/// `.env` baked into an image or left on a host can never override or add to them. Variables
/// already set win over the file. Only the working directory is searched (not its parents),
/// so a checkout's `.env` does not leak into processes started elsewhere, such as the tests'.
/// Says which variables it took from the file (names only), so a setting that came from `.env`
/// is never a surprise.
fn load_dotenv() -> anyhow::Result<()> {
    match std::env::var("APP_ENV").as_deref() {
        Err(_) | Ok("development") => {}
        Ok(_) => return Ok(()),
    }
    let entries = match dotenvy::from_path_iter(".env") {
        Ok(entries) => entries,
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(dotenv_error(e)),
    };
    let mut taken = Vec::new();
    for entry in entries {
        let (name, value) = entry.map_err(dotenv_error)?;
        if std::env::var_os(&name).is_none() {
            std::env::set_var(&name, value);
            taken.push(name);
        }
    }
    if !taken.is_empty() {
        eprintln!(
            "cronjobs: using {} from .env (variables set in the environment win)",
            taken.join(", ")
        );
    }
    process::remember_dotenv(taken);
    Ok(())
}

fn dotenv_error(error: dotenvy::Error) -> anyhow::Error {
    match error {
        // dotenvy's own message quotes the line, which may hold a secret.
        dotenvy::Error::LineParse(_, at) => {
            anyhow::anyhow!("cannot parse .env: a line is malformed at character {at} (expected KEY=value)")
        }
        e => anyhow::anyhow!("cannot read .env: {e}"),
    }
}

async fn api() -> anyhow::Result<()> {
    let (common, config) = both(CommonConfig::from_env(&ProcessEnv), ApiConfig::from_env(&ProcessEnv))?;
    let telemetry = telemetry::init(&common, "api");
    open_registry(&common)?;
    let result = crate::web::run(config).await;
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "api stopped with an error");
    }
    telemetry.flush();
    result
}

async fn migrate() -> anyhow::Result<()> {
    let url = config::database_url(&ProcessEnv)?;
    let pool = open_database(&url, 2).await?;
    store::schema::migrate(&pool).await?;
    println!("migrations applied: {}", store::schema::MIGRATOR.iter().count());
    Ok(())
}

/// Reads a jobs file, naming it in the error.
fn read_jobs_file(file: &Path) -> anyhow::Result<(String, String)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok((file.display().to_string(), text))
}

fn validate(file: &Path) -> anyhow::Result<()> {
    // A file may name diagnostic targets only where they are enabled (tests, benchmarks).
    open_registry(&CommonConfig::from_env(&ProcessEnv)?)?;
    let (name, text) = read_jobs_file(file)?;
    match jobfile::validate(&name, &text) {
        Ok(read) => {
            let jobs = match read.jobs.len() {
                1 => "1 job".to_owned(),
                n => format!("{n} jobs"),
            };
            println!("{name}: {jobs} of source {:?}, valid", read.source);
            Ok(())
        }
        Err(errors) => Err(invalid_file(&name, &errors)),
    }
}

async fn apply(file: &Path, mut options: jobfile::ApplyOptions) -> anyhow::Result<()> {
    let dry_run = options.dry_run;
    open_registry(&CommonConfig::from_env(&ProcessEnv)?)?;
    let (name, text) = read_jobs_file(file)?;
    let url = config::database_url(&ProcessEnv)?;
    // Retiring a failing job resolves its incident: told to the webhooks like the services tell it.
    let policy = Policy::from(&config::AlertConfig::from_env(&ProcessEnv)?);
    let pool = open_database(&url, 2).await?;
    store::schema::ensure_current(&pool).await?;
    let mut applied = jobfile::apply(&pool, &name, &text, options, &policy).await;
    if let Err(jobfile::ApplyError::WouldRetireMost { plan, .. }) = &applied {
        println!("{plan}");
        if confirm_on_terminal(plan.retiring(), plan.owned)? {
            options.allow_retire = true;
            applied = jobfile::apply(&pool, &name, &text, options, &policy).await;
        }
    }
    match applied {
        Ok(plan) => {
            if dry_run && plan.retires_most() {
                println!(
                    "Note: this retires {} of the {} jobs of source {:?}; applying it takes --allow-retire.",
                    plan.retiring(),
                    plan.owned,
                    plan.source
                );
            }
            println!("{plan}");
            let done = if plan.is_empty() {
                "Nothing to do: the live jobs match the file."
            } else if dry_run {
                "Dry run: nothing changed."
            } else {
                "Applied."
            };
            println!("{done}");
            Ok(())
        }
        Err(jobfile::ApplyError::Invalid(errors)) => Err(invalid_file(&name, &errors)),
        Err(e) => Err(e.into()),
    }
}

/// Asks on a terminal whether to retire `retiring` of `owned` jobs; `false` when stdin is not
/// a terminal (a deploy command), so only `--allow-retire` lets it happen there.
fn confirm_on_terminal(retiring: usize, owned: usize) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("Retire {retiring} of the {owned} jobs of this source? Type yes to apply: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

fn invalid_file(name: &str, errors: &[jobfile::FileError]) -> anyhow::Error {
    for error in errors {
        eprintln!("{error}");
    }
    let count = match errors.len() {
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    anyhow::anyhow!("{name} is invalid ({count}); nothing was changed")
}

async fn export() -> anyhow::Result<()> {
    let url = config::database_url(&ProcessEnv)?;
    let pool = open_database(&url, 2).await?;
    store::schema::ensure_current(&pool).await?;
    print!("{}", jobfile::export(&pool).await?);
    Ok(())
}

async fn prune(older_than: Duration, dry_run: bool, batch_size: i64) -> anyhow::Result<()> {
    let url = config::database_url(&ProcessEnv)?;
    let pool = open_database(&url, 2).await?;
    store::schema::ensure_current(&pool).await?;
    let age = chrono::Duration::from_std(older_than)?;
    let cutoff = chrono::Utc::now() - age;
    let (verb, pruned) = if dry_run {
        ("would delete", store::runs::count_prunable(&pool, cutoff).await?)
    } else {
        ("deleted", store::runs::prune(&pool, cutoff, batch_size).await?)
    };
    println!(
        "{verb} {} runs created before {} ({} succeeded, {} failed, {} skipped, {} missed, {} cancelled)",
        pruned.total(),
        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        pruned.succeeded,
        pruned.failed,
        pruned.skipped,
        pruned.missed,
        pruned.cancelled
    );
    Ok(())
}

async fn scheduler() -> anyhow::Result<()> {
    let (common, config) = (
        CommonConfig::from_env(&ProcessEnv),
        SchedulerConfig::from_env(&ProcessEnv),
    );
    let (common, config) = both(common, config)?;
    let telemetry = telemetry::init(&common, "scheduler");
    open_registry(&common)?;
    if let Some(warning) = config.draining_warning() {
        tracing::warn!("{warning}");
    }
    let shutdown = shutdown_on_signal();
    let Some(pool) = connect_until(&config.database_url, config.pool_size, &shutdown).await else {
        return Ok(());
    };
    let result = scheduler::run(pool, config, shutdown).await;
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "scheduler stopped with an error");
    }
    // Send what is queued (the last runs' failures) before the process exits.
    telemetry.flush();
    result
}

/// Connects, retrying with backoff while the database is unreachable (a scheduler that
/// starts before its database waits for it); `None` if shut down first.
async fn connect_until(url: &Secret, size: u32, shutdown: &CancellationToken) -> Option<sqlx::PgPool> {
    let mut delay = Duration::from_millis(200);
    loop {
        match store::connect_with(url, size).await {
            Ok(pool) => return Some(pool),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot connect to the database")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn print_targets() -> anyhow::Result<()> {
    open_registry(&CommonConfig::from_env(&ProcessEnv)?)?;
    println!("{:<24} {:>8}  {:<16} DESCRIPTION", "KEY", "TIMEOUT", "PAYLOAD");
    for target in registry::all() {
        let payload = target.payload.as_ref().map_or("-", |p| p.type_name);
        let timeout = humantime_short(target.timeout);
        let description = target.description.split_whitespace().collect::<Vec<_>>().join(" ");
        println!("{:<24} {:>8}  {:<16} {description}", target.key, timeout, payload);
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
