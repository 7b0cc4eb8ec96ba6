use cron_runtime::{cron_target, JobContext};

#[cron_target(timeout = "5m")]
async fn missing_key(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
