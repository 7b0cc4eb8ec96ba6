use cron_runtime::{cron_target, JobContext};

#[cron_target("fail.no-return")]
async fn no_return_type(_ctx: JobContext) {}
fn main() {}
