use cron_runtime::cron_target;

#[cron_target("Bad Key", timeout = "never")]
fn all_wrong() {}
fn main() {}
