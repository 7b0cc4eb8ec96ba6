//! `cronjobs`: one binary, one subcommand per process. The reference binary of library mode:
//! the command line is `cron_runtime::cli`; this crate only links the targets.

// The targets crate is linked only if something names it; without this line the
// linker drops its `inventory` registrations and the registry is empty.
use targets as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cron_runtime::cli::run().await
}
