use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.not-send")]
async fn not_send(_ctx: JobContext) -> anyhow::Result<()> {
    let rc = std::rc::Rc::new(());
    std::future::ready(()).await;
    drop(rc);
    Ok(())
}
fn main() {}
