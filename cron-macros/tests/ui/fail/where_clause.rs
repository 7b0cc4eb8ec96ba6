use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.where")]
async fn where_clause(_ctx: JobContext) -> anyhow::Result<()>
where
    (): Send,
{
    Ok(())
}
fn main() {}
