use cron_runtime::cron_target;

#[cron_target("fail.no-args")]
async fn no_args() -> anyhow::Result<()> {
    Ok(())
}
fn main() {}
