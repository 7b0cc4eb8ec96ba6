//! The scheduler opens no more connections than its configured budget
//! (`DATABASE_POOL_SIZE` + `CRON_SCHEDULER_POOL_SIZE` + 2), however many targets want one.

use std::time::Duration;

use cron_runtime::store::runs;
use serde_json::json;
use tests::db::TestDb;
use tests::fixtures::{recurring, scheduler, wait_for};

/// The process's TCP connections to PostgreSQL's `port`: its sockets (`/proc/<pid>/fd`)
/// matched by inode against the kernel's TCP table. (tokio's signal handling holds a socket
/// pair too, so counting every socket would not do.)
fn database_connections(pid: u32, port: u16) -> usize {
    let remote_port = format!(":{port:04X}");
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // rem_address is `<hex ip>:<hex port>` (5432 is 1538).
            fields.len() > 9 && fields[2].ends_with(&remote_port) && inodes.iter().any(|i| i == fields[9])
        })
        .count()
}

#[tokio::test]
async fn targets_holding_connections_stay_within_the_configured_pools() {
    let db = TestDb::create().await;
    let scheduler = scheduler(&db, &[("DATABASE_POOL_SIZE", "2"), ("CRON_SCHEDULER_POOL_SIZE", "2")]);
    wait_for(Duration::from_secs(30), "the scheduler to start", || async {
        scheduler.output().contains("scheduler starting").then_some(())
    })
    .await;
    assert!(
        scheduler.output().contains(r#""max_connections":6"#),
        "{}",
        scheduler.output()
    );

    // Five runs that each hold a `ctx.db()` connection for 3 s: two at a time get one, the
    // others wait (well within the pool's 10 s acquire timeout).
    for i in 0..5 {
        let job = recurring(
            &db.pool,
            &format!("hold-{i}"),
            "system.sleep",
            "0 0 1 1 *",
            json!({"seconds": 3, "hold_connection": true}),
        )
        .await;
        runs::request_run(&db.pool, job.id, "test", None)
            .await
            .expect("run-now");
    }
    let port = reqwest::Url::parse(&db.url).ok().and_then(|u| u.port()).unwrap_or(5432);
    let (pid, pool) = (scheduler.pid(), &db.pool);
    let mut most = 0;
    wait_for(Duration::from_secs(45), "every run to end", || {
        most = most.max(database_connections(pid, port));
        async move {
            let ended: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE finished_at IS NOT NULL")
                .fetch_one(pool)
                .await
                .ok()?;
            (ended == 5).then_some(())
        }
    })
    .await;
    let succeeded: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs WHERE status = 'succeeded'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(succeeded, 5, "the waiting runs got a connection in turn");
    assert!(most >= 3, "sampled the scheduler's connections ({most})");
    assert!(most <= 6, "the scheduler had {most} connections open; its budget is 6");
}
