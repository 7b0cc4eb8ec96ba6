use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.timeout", timeout = "0s")]
async fn timeout_zero(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
