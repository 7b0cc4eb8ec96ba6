use cron_runtime::{cron_target, JobContext};

#[cron_target("")]
async fn empty_key(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
