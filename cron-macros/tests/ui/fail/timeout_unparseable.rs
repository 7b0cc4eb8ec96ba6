use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.timeout", timeout = "five minutes")]
async fn timeout_unparseable(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
