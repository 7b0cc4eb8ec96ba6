use cron_runtime::{cron_target, JobContext};

#[cron_target(42)]
async fn not_a_string(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
