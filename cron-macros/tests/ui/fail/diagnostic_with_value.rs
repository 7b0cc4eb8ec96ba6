use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.diagnostic", diagnostic = true)]
async fn diagnostic_with_value(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
