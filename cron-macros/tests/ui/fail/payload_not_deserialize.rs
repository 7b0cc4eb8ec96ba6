use cron_runtime::{cron_target, JobContext};

struct NotDeserialize;

#[cron_target("fail.payload")]
async fn payload(_ctx: JobContext, _args: NotDeserialize) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
