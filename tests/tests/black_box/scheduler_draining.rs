//! On Railway the platform kills a service `RAILWAY_DEPLOYMENT_DRAINING_SECONDS` after SIGTERM
//! (3 s unless set): a scheduler whose shutdown grace is longer says so when it starts.

use std::time::Duration;

use tests::db::TestDb;
use tests::fixtures::{scheduler, wait_for};

const WARNING: &str = "RAILWAY_DEPLOYMENT_DRAINING_SECONDS (3s) is shorter than CRON_SHUTDOWN_GRACE (30s)";

#[tokio::test]
async fn the_scheduler_warns_when_the_platform_would_kill_it_before_its_grace_is_over() {
    let db = TestDb::create().await;
    let short = scheduler(
        &db,
        &[
            ("CRON_SHUTDOWN_GRACE", "30s"),
            ("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "3"),
        ],
    );
    wait_for(Duration::from_secs(30), "the warning", || async {
        short.output().contains(WARNING).then_some(())
    })
    .await;
    assert!(short.output().contains("at least 45"), "{}", short.output());
}

#[tokio::test]
async fn the_scheduler_is_quiet_when_the_platform_waits_long_enough() {
    let db = TestDb::create().await;
    let long = scheduler(
        &db,
        &[
            ("CRON_SHUTDOWN_GRACE", "30s"),
            ("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "45"),
        ],
    );
    wait_for(Duration::from_secs(30), "the scheduler to start", || async {
        long.output().contains("scheduler starting").then_some(())
    })
    .await;
    assert!(
        !long.output().contains("RAILWAY_DEPLOYMENT_DRAINING_SECONDS"),
        "{}",
        long.output()
    );
}
