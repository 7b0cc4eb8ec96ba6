//! The team's own targets. Nothing here knows about the scheduler: a target is an async
//! function marked `#[cron_target]`, registered when this crate is linked.

use cron_runtime::{cron_target, JobContext};
use serde::{Deserialize, Serialize};

/// The payload of `example.greet`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GreetArgs {
    /// Who to greet.
    pub name: String,
}

/// What a run of `example.greet` records.
#[derive(Debug, Serialize)]
pub struct Greeting {
    pub greeting: String,
    /// The database's clock when the run asked it (shows `ctx.db()` at work).
    pub database_time: String,
}

/// Greets `name`, with the database's time: the smallest target that uses the database.
#[cron_target("example.greet", timeout = "30s")]
pub async fn greet(ctx: JobContext, args: GreetArgs) -> anyhow::Result<Greeting> {
    if args.name.trim().is_empty() {
        anyhow::bail!("name is blank: say who to greet");
    }
    let (now,): (String,) = sqlx::query_as("SELECT now()::text").fetch_one(ctx.db()).await?;
    // Logged inside the run's span: the line carries the job key and run id.
    tracing::info!(name = %args.name, "greeting");
    Ok(Greeting {
        greeting: format!("hello, {}", args.name),
        database_time: now,
    })
}
