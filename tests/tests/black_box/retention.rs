//! Retention as a cron job: a job on `system.prune` deletes the run history older than its
//! `older_than`, through the real scheduler, and reports what it deleted on its run.

use std::time::Duration;

use cron_runtime::domain::incident::Policy;
use cron_runtime::store::runs::{self, RunOutcome};
use serde_json::json;
use tests::db::TestDb;
use tests::fixtures::{recurring, runs_of, scheduler, wait_for};

#[tokio::test]
async fn a_system_prune_job_deletes_runs_older_than_its_retention() {
    let db = TestDb::create().await;
    let history = recurring(&db.pool, "history", "system.heartbeat", "0 0 1 1 *", json!({})).await;
    // Slots after the job's creation (its active window); the ages come from created_at below.
    for minutes_ahead in 1..=4 {
        let slot = chrono::Utc::now() + chrono::Duration::minutes(minutes_ahead);
        let run = tests::fixtures::start_slot(&db.pool, &history, slot, "test").await;
        runs::finish(
            &db.pool,
            run.id,
            &RunOutcome::Succeeded { output: json!(null) },
            &Policy::default(),
        )
        .await
        .unwrap()
        .announce();
    }
    // Three of the four are older than the retention.
    sqlx::query(
        "UPDATE cron_job_runs SET created_at = now() - interval '181 days'
         WHERE id IN (SELECT id FROM cron_job_runs ORDER BY scheduled_at LIMIT 3)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    recurring(
        &db.pool,
        "ops.retention",
        "system.prune",
        "* * * * * *",
        json!({"older_than": "180d"}),
    )
    .await;

    let _scheduler = scheduler(&db, &[]);
    let prune = wait_for(Duration::from_secs(30), "a prune run to succeed", || async {
        runs_of(&db.pool, "ops.retention")
            .await
            .into_iter()
            .find(|r| r.status.as_str() == "succeeded")
    })
    .await;

    let left = runs_of(&db.pool, "history").await;
    assert_eq!(left.len(), 1, "the recent run stays: {left:?}");
    // The first prune deleted the three; any later one found nothing more to delete.
    let deleted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum((output->>'succeeded')::bigint), 0)::bigint FROM cron_job_runs
         WHERE job_key = 'ops.retention' AND status = 'succeeded'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(deleted, 3, "first prune's output: {:?}", prune.output);
}
