use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.timeout", timeout = 300)]
async fn timeout_not_a_string(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
