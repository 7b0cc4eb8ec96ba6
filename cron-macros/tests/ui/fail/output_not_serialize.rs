use cron_runtime::{cron_target, JobContext};

struct NotSerialize;

#[cron_target("fail.output")]
async fn output(_ctx: JobContext) -> anyhow::Result<NotSerialize> {
    Ok(NotSerialize)
}
fn main() {}
