use cron_runtime::{cron_target, JobContext};

#[cron_target(key = "fail.named-key")]
async fn named_key(_ctx: JobContext) -> anyhow::Result<()> {
    Ok(())
}

fn main() {}
