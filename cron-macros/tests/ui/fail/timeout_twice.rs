use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.timeout", timeout = "1m", timeout = "2m")]
async fn timeout_twice(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
