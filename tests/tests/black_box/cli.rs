//! The `cronjobs` binary's one-shot subcommands (targets, migrate, prune) and `.env` loading.

use std::process::{Command, Output};

use cron_runtime::domain::incident::Policy;
use cron_runtime::registry;
use cron_runtime::store::runs::{self, RunOutcome};
use serde_json::json;
use tests::db::TestDb;
use tests::fixtures::recurring;
use tests::process::binary;

fn cronjobs(args: &[&str], database_url: Option<&str>) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.output().expect("run cronjobs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn targets_listing(diagnostic: Option<&str>) -> String {
    let mut command = Command::new(binary());
    command
        .arg("targets")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Some(value) = diagnostic {
        command.env("CRON_DIAGNOSTIC_TARGETS", value);
    }
    let output = command.output().expect("run cronjobs");
    assert!(output.status.success(), "{output:?}");
    stdout(&output)
}

#[test]
fn targets_lists_every_registered_target() {
    let listed = targets_listing(Some("1"));
    // The test crate links the same `targets` crate as the binary, so the registries match.
    registry::enable_diagnostic_targets();
    let expected = registry::all();
    assert!(expected.len() >= 5, "the diagnostic targets are registered");
    for target in expected {
        assert!(
            listed.lines().any(|l| l.starts_with(target.key)),
            "{} missing from:\n{listed}",
            target.key
        );
    }
    assert!(listed.contains("SleepArgs"), "payload types are shown:\n{listed}");
}

#[test]
fn diagnostic_targets_are_listed_only_when_enabled() {
    for off in [None, Some("0")] {
        let listed = targets_listing(off);
        assert!(listed.contains("system.heartbeat"), "{listed}");
        for key in ["system.sleep", "system.fail", "system.panic", "system.record"] {
            assert!(
                !listed.contains(key),
                "{key} listed with CRON_DIAGNOSTIC_TARGETS={off:?}:\n{listed}"
            );
        }
    }
}

#[tokio::test]
async fn migrate_is_idempotent_and_safe_to_run_twice_at_once() {
    let db = TestDb::create_empty().await;
    let url = db.url.clone();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || cronjobs(&["migrate"], Some(&url)))
        })
        .collect();
    for handle in handles {
        let output = handle.join().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let again = cronjobs(&["migrate"], Some(&url));
    assert!(again.status.success());
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('cron_job_definitions', 'cron_job_runs')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(tables, 2);
}

#[test]
fn commands_that_need_a_database_say_so() {
    let output = cronjobs(&["migrate"], None);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL is not set"));
}

#[tokio::test]
async fn prune_deletes_old_terminal_runs_and_dry_run_only_counts() {
    let db = TestDb::create().await;
    let job = recurring(&db.pool, "old", "system.heartbeat", "* * * * *", json!({})).await;
    for minute in 0..3 {
        let at = chrono::Utc::now() + chrono::Duration::minutes(minute + 1);
        let run = tests::fixtures::start_slot(&db.pool, &job, at, "test").await;
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
    sqlx::query("UPDATE cron_job_runs SET created_at = now() - interval '181 days'")
        .execute(&db.pool)
        .await
        .unwrap();

    // Without --older-than, the retention of SPEC §2.8: 180 days.
    let dry = cronjobs(&["prune", "--dry-run"], Some(&db.url));
    assert!(dry.status.success(), "{dry:?}");
    assert!(stdout(&dry).starts_with("would delete 3 runs"), "{}", stdout(&dry));
    let younger = cronjobs(&["prune", "--older-than", "182d", "--dry-run"], Some(&db.url));
    assert!(
        stdout(&younger).starts_with("would delete 0 runs"),
        "{}",
        stdout(&younger)
    );
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cron_job_runs")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 3);

    let real = cronjobs(&["prune", "--older-than", "180d", "--batch-size", "2"], Some(&db.url));
    assert!(real.status.success(), "{real:?}");
    assert!(stdout(&real).starts_with("deleted 3 runs"), "{}", stdout(&real));
    assert_eq!(count().await, 0);

    let bad = cronjobs(&["prune", "--older-than", "soon"], Some(&db.url));
    assert!(!bad.status.success());
}

/// `cronjobs scheduler` in a directory holding `.env`, with `APP_ENV` set or not.
fn scheduler_in_dir_with_dotenv(app_env: Option<&str>) -> String {
    let dir = std::env::temp_dir().join(format!("cronjobs-dotenv-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Malformed on purpose, so the scheduler stops at configuration and says what it read.
    std::fs::write(dir.join(".env"), "CRON_STALE_AFTER=from-dotenv\n").expect("write .env");
    let mut command = Command::new(binary());
    command
        .arg("scheduler")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Some(app_env) = app_env {
        command.env("APP_ENV", app_env);
    }
    let output = command.output().expect("run cronjobs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn dotenv_is_read_in_development_only() {
    for app_env in [None, Some("development")] {
        let stderr = scheduler_in_dir_with_dotenv(app_env);
        assert!(stderr.contains("CRON_STALE_AFTER"), "{app_env:?}: .env read: {stderr}");
    }
    for app_env in ["staging", "production"] {
        let stderr = scheduler_in_dir_with_dotenv(Some(app_env));
        assert!(stderr.contains("DATABASE_URL"), "{stderr}");
        assert!(
            !stderr.contains("CRON_STALE_AFTER"),
            "{app_env}: .env ignored: {stderr}"
        );
    }
}
