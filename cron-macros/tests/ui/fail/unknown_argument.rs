use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.unknown", retries = 3)]
async fn unknown_argument(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
