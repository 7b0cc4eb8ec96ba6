//! `cronjobs`: one binary, one subcommand per process (SPEC §9).

// The targets crate is linked only if something names it; without this line the
// linker drops its `inventory` registrations and the registry is empty.
use targets as _;

mod cli;
mod dev;
mod dev_postgres;
mod process;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::run().await
}
