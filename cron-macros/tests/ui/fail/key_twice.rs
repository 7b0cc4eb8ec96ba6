use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.one", "fail.two")]
async fn key_twice(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
