use cron_runtime::{cron_target, JobContext};

struct Jobs;

impl Jobs {
    #[cron_target("fail.self")]
    async fn with_self(&self, _ctx: JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}
fn main() {}
