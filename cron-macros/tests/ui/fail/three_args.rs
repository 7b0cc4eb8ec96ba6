use cron_runtime::{cron_target, JobContext};

#[derive(serde::Deserialize)]
struct Args {}

#[cron_target("fail.three-args")]
async fn three_args(_ctx: JobContext, _args: Args, _extra: u32) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
