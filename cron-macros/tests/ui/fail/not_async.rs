use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.not-async")]
fn not_async(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
