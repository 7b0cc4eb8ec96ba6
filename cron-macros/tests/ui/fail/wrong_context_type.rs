use cron_runtime::cron_target;

#[cron_target("fail.context")]
async fn wrong_context(_ctx: String) -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
