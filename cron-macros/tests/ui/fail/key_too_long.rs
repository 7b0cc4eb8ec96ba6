use cron_runtime::{cron_target, JobContext};

#[cron_target("a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789x")]
async fn too_long(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
