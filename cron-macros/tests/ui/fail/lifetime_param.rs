use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.lifetime")]
async fn lifetime<'a>(_ctx: JobContext) -> anyhow::Result<&'a str> {
    Ok("")
}
fn main() {}
