use cron_runtime::{cron_target, JobContext};

#[cron_target("reports/digest")]
async fn bad_character(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
