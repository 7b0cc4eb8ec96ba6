use cron_runtime::{cron_target, JobContext};

#[cron_target("Reports.Digest")]
async fn malformed_key(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
