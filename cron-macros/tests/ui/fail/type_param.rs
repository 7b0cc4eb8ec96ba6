use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.generic")]
async fn generic<P: serde::de::DeserializeOwned>(_ctx: JobContext, _args: P) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
