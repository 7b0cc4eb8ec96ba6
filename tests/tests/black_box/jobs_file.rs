//! An operator keeps jobs in a TOML file and makes them live with `cronjobs apply`: plans
//! like Terraform's, idempotent, one transaction, never touching jobs made through the API;
//! `cronjobs validate` checks the file in CI without a database, `cronjobs export` writes the
//! live jobs back as such a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cron_runtime::domain::incident::Policy;
use cron_runtime::domain::{JobDefinition, JobStatus, ManagedBy};
use cron_runtime::store::definitions;
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use tests::api::{send, TestApi};
use tests::db::TestDb;
use tests::fixtures::recurring;
use tests::process::binary;

/// A fresh directory for a test's files.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cronjobs-jobs-file-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// What one `cronjobs` command did.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn from(output: Output) -> Ran {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    fn assert_ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:#?}");
        &self.stdout
    }

    #[track_caller]
    fn assert_invalid(&self) -> &str {
        assert_eq!(self.code, Some(1), "{self:#?}");
        assert!(
            self.stderr.contains("nothing was changed"),
            "says nothing changed: {self:#?}"
        );
        &self.stderr
    }
}

/// `cronjobs <args>` in `dir` (so files are named as an operator types them), with only PATH,
/// the diagnostic targets on and, when given, DATABASE_URL in its environment.
fn cronjobs_in(dir: &Path, args: &[&str], database_url: Option<&str>) -> Ran {
    let mut command = Command::new(binary());
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // The files below use diagnostic targets (system.sleep, system.fail).
        .env("CRON_DIAGNOSTIC_TARGETS", "1");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    Ran::from(command.output().expect("run cronjobs"))
}

/// The same, off the test's runtime (the in-process API keeps serving meanwhile).
async fn cronjobs(dir: &Path, args: &[&str], database_url: Option<&str>) -> Ran {
    let (dir, url) = (dir.to_owned(), database_url.map(str::to_owned));
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cronjobs_in(&dir, &args, url.as_deref())
    })
    .await
    .expect("cronjobs ran")
}

/// Writes `text` as `dir/jobs.toml` and applies it.
async fn apply(dir: &Path, db_url: &str, text: &str) -> Ran {
    std::fs::write(dir.join("jobs.toml"), text).expect("write jobs.toml");
    cronjobs(dir, &["apply", "jobs.toml"], Some(db_url)).await
}

/// Every version of every key, oldest first.
async fn versions(pool: &PgPool) -> BTreeMap<String, Vec<JobDefinition>> {
    let all: Vec<JobDefinition> = sqlx::query_as("SELECT * FROM cron_job_definitions ORDER BY job_key, version")
        .fetch_all(pool)
        .await
        .expect("read definitions");
    let mut by_key: BTreeMap<String, Vec<JobDefinition>> = BTreeMap::new();
    for definition in all {
        by_key.entry(definition.job_key.clone()).or_default().push(definition);
    }
    by_key
}

async fn count_definitions(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM cron_job_definitions")
        .fetch_one(pool)
        .await
        .expect("count definitions")
}

const TWO_JOBS: &str = r#"# Jobs of the reporting team.
[jobs."reports.daily-digest"]
target = "system.sleep"
cron = "0 8 * * MON-FRI"
timezone = "Europe/Berlin"
payload = { seconds = 1 }
description = "Weekday digest"

[jobs."reports.year-end"]
target = "system.heartbeat"
run_at = 2099-12-31T23:00:00Z
"#;

#[tokio::test]
async fn applying_the_same_file_twice_changes_nothing_the_second_time() {
    let db = TestDb::create().await;
    let dir = workdir();
    std::fs::write(dir.join("jobs.toml"), TWO_JOBS).unwrap();

    let dry = cronjobs(&dir, &["apply", "jobs.toml", "--dry-run"], Some(&db.url)).await;
    let plan = dry.assert_ok();
    assert!(plan.contains("  + reports.daily-digest  (create: "), "{plan}");
    assert!(
        plan.contains("Plan: 2 to create, 0 to change, 0 to retire, 0 unchanged."),
        "{plan}"
    );
    assert!(plan.contains("Dry run: nothing changed."), "{plan}");
    assert_eq!(count_definitions(&db.pool).await, 0, "a dry run writes nothing");

    let first = apply(&dir, &db.url, TWO_JOBS).await;
    let out = first.assert_ok();
    assert!(out.contains("  + reports.daily-digest  (create: "), "{out}");
    assert!(out.contains("  + reports.year-end  (create: "), "{out}");
    assert!(
        out.contains("Plan: 2 to create, 0 to change, 0 to retire, 0 unchanged."),
        "{out}"
    );
    assert!(out.trim_end().ends_with("Applied."), "{out}");
    let created = versions(&db.pool).await;
    assert_eq!(created.len(), 2);
    let digest = &created["reports.daily-digest"][0];
    assert_eq!(
        (digest.managed_by, digest.created_by.as_str(), digest.status),
        (ManagedBy::File, "file:jobs.toml", JobStatus::Active)
    );
    assert_eq!(digest.cron_expression.as_deref(), Some("0 8 * * MON-FRI"));
    assert_eq!(digest.timezone, "Europe/Berlin");
    assert_eq!(digest.payload, json!({"seconds": 1}));
    assert_eq!(digest.description.as_deref(), Some("Weekday digest"));
    let year_end = &created["reports.year-end"][0];
    assert_eq!(
        year_end.run_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2099-12-31T23:00:00+00:00")
    );

    let second = apply(&dir, &db.url, TWO_JOBS).await;
    let out = second.assert_ok();
    assert!(out.contains("  = reports.daily-digest\n"), "{out}");
    assert!(
        out.contains("Plan: 0 to create, 0 to change, 0 to retire, 2 unchanged."),
        "{out}"
    );
    assert!(
        out.trim_end().ends_with("Nothing to do: the live jobs match the file."),
        "{out}"
    );
    assert_eq!(versions(&db.pool).await, created, "not a row written or touched");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn changing_one_field_makes_one_new_version_and_a_paused_job_stays_paused() {
    let db = TestDb::create().await;
    let dir = workdir();
    apply(&dir, &db.url, TWO_JOBS).await.assert_ok();
    let v1 = definitions::get_live(&db.pool, "reports.daily-digest").await.unwrap();
    definitions::pause(&db.pool, v1.id, "holidays until Monday", "alice", &Policy::default())
        .await
        .unwrap()
        .announce();

    let changed = TWO_JOBS.replace("0 8 * * MON-FRI", "30 7 * * MON-FRI");
    let out = apply(&dir, &db.url, &changed).await;
    let out = out.assert_ok();
    assert!(
        out.contains(r#"  ~ reports.daily-digest  (version 1 -> 2: cron: "0 8 * * MON-FRI" -> "30 7 * * MON-FRI")"#),
        "{out}"
    );
    assert!(out.contains("  = reports.year-end\n"), "{out}");
    assert!(
        out.contains("Plan: 0 to create, 1 to change, 0 to retire, 1 unchanged."),
        "{out}"
    );
    assert!(out.trim_end().ends_with("Applied."), "{out}");

    let all = versions(&db.pool).await;
    assert_eq!(all["reports.year-end"].len(), 1, "the unchanged job keeps its version");
    let digest = &all["reports.daily-digest"];
    assert_eq!(digest.len(), 2, "exactly one new version");
    assert_eq!(digest[0].status, JobStatus::Retired);
    assert_eq!(digest[0].retired_by.as_deref(), Some("file:jobs.toml"));
    let v2 = &digest[1];
    assert_eq!(v2.version, 2);
    assert_eq!(v2.cron_expression.as_deref(), Some("30 7 * * MON-FRI"));
    assert_eq!(v2.managed_by, ManagedBy::File);
    assert_eq!(v2.status, JobStatus::Paused, "apply leaves the pause as it is");
    assert_eq!(v2.pause_reason.as_deref(), Some("holidays until Monday"));
    assert_eq!(v2.paused_by.as_deref(), Some("alice"));

    // Every other field is compared too: a description change is one more version.
    let described = changed.replace("Weekday digest", "Weekday digest for the core team");
    let out = apply(&dir, &db.url, &described).await;
    let out = out.assert_ok();
    assert!(
        out.contains(r#"(version 2 -> 3: description: "Weekday digest" -> "Weekday digest for the core team")"#),
        "{out}"
    );
    assert_eq!(versions(&db.pool).await["reports.daily-digest"].len(), 3);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_job_removed_from_the_file_is_retired() {
    let db = TestDb::create().await;
    let dir = workdir();
    apply(&dir, &db.url, TWO_JOBS).await.assert_ok();
    let year_end = definitions::get_live(&db.pool, "reports.year-end").await.unwrap();

    let only_digest = TWO_JOBS.split("[jobs.\"reports.year-end\"]").next().unwrap();
    let out = apply(&dir, &db.url, only_digest).await;
    let out = out.assert_ok();
    assert!(
        out.contains("  - reports.year-end  (retire version 1: no longer in the file)"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 0 to create, 0 to change, 1 to retire, 1 unchanged."),
        "{out}"
    );
    let retired = definitions::get(&db.pool, year_end.id).await.unwrap();
    assert_eq!(retired.status, JobStatus::Retired);
    assert_eq!(retired.retired_by.as_deref(), Some("file:jobs.toml"));
    assert!(retired.retired_at.is_some());
    assert!(definitions::get_live(&db.pool, "reports.year-end").await.is_err());
    assert_eq!(count_definitions(&db.pool).await, 2, "retiring writes no new version");

    // Applying the shorter file again: nothing left to retire.
    let out = apply(&dir, &db.url, only_digest).await;
    assert!(out.assert_ok().contains("Nothing to do"), "{out:#?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_file_that_would_retire_most_of_its_jobs_needs_allow_retire() {
    // A wrong path, an emptied or a truncated file in a deploy command must not retire a
    // source's jobs silently.
    let db = TestDb::create().await;
    let dir = workdir();
    apply(&dir, &db.url, TWO_JOBS).await.assert_ok();
    // An emptied file, and one whose every key changed (retiring half is allowed: see above).
    for text in [
        "# nothing here\n",
        &TWO_JOBS.replace("[jobs.\"reports.", "[jobs.\"renamed."),
    ] {
        let refused = apply(&dir, &db.url, text).await;
        assert_eq!(refused.code, Some(1), "{refused:#?}");
        assert!(refused.stderr.contains("--allow-retire"), "{refused:#?}");
        assert!(refused.stdout.contains("to retire"), "the plan is shown: {refused:#?}");
        assert_eq!(
            definitions::list_live(&db.pool).await.unwrap().len(),
            2,
            "nothing retired"
        );
    }
    let refused = apply(&dir, &db.url, "# nothing here\n").await;
    assert!(
        refused
            .stderr
            .contains("would retire 2 of the 2 jobs of source \"jobs.toml\""),
        "{refused:#?}"
    );
    // A dry run shows the plan and says what applying it takes; the flag does it.
    let plan = cronjobs(&dir, &["apply", "jobs.toml", "--dry-run"], Some(&db.url)).await;
    let plan = plan.assert_ok();
    assert!(
        plan.contains("2 to retire") && plan.contains("takes --allow-retire"),
        "{plan}"
    );
    cronjobs(&dir, &["apply", "jobs.toml", "--allow-retire"], Some(&db.url))
        .await
        .assert_ok();
    assert!(definitions::list_live(&db.pool).await.unwrap().is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

/// A one-job file for source tests.
fn one_job(source: Option<&str>, key: &str) -> String {
    let source = source.map(|s| format!("source = \"{s}\"\n")).unwrap_or_default();
    format!("{source}[jobs.\"{key}\"]\ntarget = \"system.heartbeat\"\ncron = \"0 * * * *\"\n")
}

#[tokio::test]
async fn each_jobs_file_owns_its_own_jobs() {
    let db = TestDb::create().await;
    let dir = workdir();
    std::fs::write(dir.join("billing.toml"), one_job(None, "billing.invoices")).unwrap();
    std::fs::write(dir.join("reports.toml"), TWO_JOBS).unwrap();
    cronjobs(&dir, &["apply", "billing.toml"], Some(&db.url))
        .await
        .assert_ok();
    let out = cronjobs(&dir, &["apply", "./reports.toml"], Some(&db.url)).await;
    let out = out.assert_ok();
    // The plan names its source, and leaves the other file's job alone.
    assert!(out.contains("Source \"reports.toml\""), "{out}");
    assert!(!out.contains("billing.invoices"), "{out}");
    assert_eq!(definitions::list_live(&db.pool).await.unwrap().len(), 3);
    let billing = definitions::get_live(&db.pool, "billing.invoices").await.unwrap();
    assert_eq!(billing.source.as_deref(), Some("billing.toml"));

    // Naming another file's job is refused, naming its source.
    std::fs::write(dir.join("grab.toml"), one_job(None, "billing.invoices")).unwrap();
    let grab = cronjobs(&dir, &["apply", "grab.toml"], Some(&db.url)).await;
    let stderr = grab.assert_invalid();
    assert!(
        stderr.contains("managed by the jobs file with source \"billing.toml\""),
        "{stderr}"
    );

    // The source is the owner wherever the file is: another path naming it is the same owner.
    std::fs::create_dir_all(dir.join("moved")).unwrap();
    std::fs::write(
        dir.join("moved/b.toml"),
        one_job(Some("billing.toml"), "billing.invoices"),
    )
    .unwrap();
    let moved = cronjobs(&dir, &["apply", "moved/b.toml"], Some(&db.url)).await;
    assert!(moved.assert_ok().contains("Nothing to do"), "{moved:#?}");
    // A new source name takes over nothing by itself.
    std::fs::write(dir.join("billing.toml"), one_job(Some("billing"), "billing.invoices")).unwrap();
    let renamed = cronjobs(&dir, &["apply", "billing.toml"], Some(&db.url)).await;
    assert!(
        renamed.assert_invalid().contains("source \"billing.toml\""),
        "{renamed:#?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn jobs_applied_before_sources_existed_are_adopted_without_a_new_version() {
    let db = TestDb::create().await;
    let dir = workdir();
    apply(&dir, &db.url, TWO_JOBS).await.assert_ok();
    // What a database upgraded from before sources existed holds.
    sqlx::query("UPDATE cron_job_definitions SET source = NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    let out = apply(&dir, &db.url, TWO_JOBS).await;
    let out = out.assert_ok();
    assert!(out.contains("  & reports.daily-digest  (adopt version 1"), "{out}");
    assert!(out.contains(", 2 to adopt."), "{out}");
    for job in definitions::list_live(&db.pool).await.unwrap() {
        assert_eq!((job.version, job.source.as_deref()), (1, Some("jobs.toml")), "{job:?}");
    }
    assert!(apply(&dir, &db.url, TWO_JOBS)
        .await
        .assert_ok()
        .contains("Nothing to do"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn jobs_made_through_the_api_are_never_touched_by_a_file() {
    let db = TestDb::create().await;
    let dir = workdir();
    let api_job = recurring(&db.pool, "ops.cleanup", "system.heartbeat", "*/5 * * * *", json!({})).await;

    // Absent from the file: left alone.
    let out = apply(&dir, &db.url, TWO_JOBS).await;
    let out = out.assert_ok();
    assert!(!out.contains("ops.cleanup"), "{out}");
    assert_eq!(definitions::get(&db.pool, api_job.id).await.unwrap(), api_job);

    // In the file but different: refused, naming the entry's line; nothing written.
    let before = versions(&db.pool).await;
    let differing =
        format!("{TWO_JOBS}\n[jobs.\"ops.cleanup\"]\ntarget = \"system.heartbeat\"\ncron = \"*/10 * * * *\"\n");
    let header_line = differing.lines().position(|l| l == "[jobs.\"ops.cleanup\"]").unwrap() + 1;
    let refused = apply(&dir, &db.url, &differing).await;
    let stderr = refused.assert_invalid();
    let expected = format!("jobs.toml:{header_line}: ops.cleanup: key: is a live job managed through the API");
    assert!(stderr.contains(&expected), "wanted {expected:?} in:\n{stderr}");
    assert!(!refused.stdout.contains("Applied"), "{refused:#?}");
    assert_eq!(versions(&db.pool).await, before, "nothing written");

    // In the file and identical: unchanged, still the API's.
    let identical = differing.replace("*/10 * * * *", "*/5 * * * *");
    let out = apply(&dir, &db.url, &identical).await;
    let out = out.assert_ok();
    assert!(
        out.contains("  = ops.cleanup  (managed through the API; the file agrees with it)"),
        "{out}"
    );
    assert!(out.contains("Nothing to do"), "{out}");
    assert_eq!(definitions::get(&db.pool, api_job.id).await.unwrap(), api_job);

    // Dropped from the file again: the file never owned it, so it is not retired.
    apply(&dir, &db.url, TWO_JOBS).await.assert_ok();
    assert_eq!(definitions::get(&db.pool, api_job.id).await.unwrap(), api_job);
    let _ = std::fs::remove_dir_all(dir);
}

/// A file with a valid job and an entry `bad` broken in one way, and where the problem is.
struct Broken {
    what: &'static str,
    text: String,
    /// `jobs.toml:<line>: ...`: the start of the line on stderr that reports it.
    reported: String,
    /// Only `apply` can tell (it depends on the time of applying).
    apply_only: bool,
}

/// Lines 1-3: the valid job; 5-8: `bad`; 9 onwards: whatever a case appends.
const GOOD_AND_BAD: &str = "[jobs.good]
target = \"system.heartbeat\"
cron = \"*/5 * * * *\"

[jobs.bad]
target = \"system.sleep\"
cron = \"0 * * * *\"
payload = { seconds = 1 }
";

fn broken_files() -> Vec<Broken> {
    let case = |what, text: String, reported: &str, apply_only| Broken {
        what,
        text,
        reported: reported.to_owned(),
        apply_only,
    };
    vec![
        case(
            "unknown target",
            GOOD_AND_BAD.replace("\"system.sleep\"", "\"reports.nope\""),
            "jobs.toml:6: bad: target: no target is registered under \"reports.nope\"",
            false,
        ),
        case(
            "bad payload field",
            GOOD_AND_BAD.replace("seconds = 1", "seconds = \"x\""),
            "jobs.toml:8: bad: payload.seconds: ",
            false,
        ),
        case(
            "bad cron",
            GOOD_AND_BAD.replace("\"0 * * * *\"", "\"61 * * * *\""),
            "jobs.toml:7: bad: cron: ",
            false,
        ),
        case(
            "bad timezone",
            format!("{GOOD_AND_BAD}timezone = \"Mars/Olympus\"\n"),
            "jobs.toml:9: bad: timezone: ",
            false,
        ),
        case(
            "unknown key in an entry",
            format!("{GOOD_AND_BAD}retries = 3\n"),
            "jobs.toml:9: unknown field `retries`",
            false,
        ),
        case(
            "duplicate key",
            format!("{GOOD_AND_BAD}\n[jobs.bad]\ntarget = \"system.heartbeat\"\ncron = \"* * * * *\"\n"),
            "jobs.toml:10: ",
            false,
        ),
        case(
            "TOML syntax",
            GOOD_AND_BAD.replace("cron = \"0 * * * *\"", "cron = \"0 * * * *"),
            "jobs.toml:7: ",
            false,
        ),
        case(
            "one-time run_at in the past",
            GOOD_AND_BAD.replace("cron = \"0 * * * *\"", "run_at = 2020-01-01T00:00:00Z"),
            "jobs.toml:7: bad: run_at: must be in the future",
            true,
        ),
    ]
}

/// The lines of `stderr` that report a problem in `jobs.toml`.
fn reported(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("jobs.toml:")).collect()
}

#[tokio::test]
async fn an_invalid_entry_fails_the_apply_naming_its_line_and_changes_nothing() {
    let db = TestDb::create().await;
    let dir = workdir();
    for broken in broken_files() {
        let ran = apply(&dir, &db.url, &broken.text).await;
        let stderr = ran.assert_invalid();
        let lines = reported(stderr);
        assert!(
            lines.len() == 1 && lines[0].starts_with(&broken.reported),
            "{}: wanted one line starting {:?} in:\n{stderr}",
            broken.what,
            broken.reported
        );
        assert!(ran.stdout.is_empty(), "{}: no plan printed: {ran:#?}", broken.what);
        assert_eq!(
            count_definitions(&db.pool).await,
            0,
            "{}: not even the valid job is created",
            broken.what
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn validate_needs_no_database_and_reports_the_same_lines() {
    let dir = workdir();
    for broken in broken_files() {
        std::fs::write(dir.join("jobs.toml"), &broken.text).unwrap();
        let ran = cronjobs_in(&dir, &["validate", "jobs.toml"], None);
        if broken.apply_only {
            // Without a clock to apply at, a past one-time job may simply have run already.
            assert_eq!(ran.code, Some(0), "{}: {ran:#?}", broken.what);
            continue;
        }
        let stderr = ran.assert_invalid();
        let lines = reported(stderr);
        assert!(
            lines.len() == 1 && lines[0].starts_with(&broken.reported),
            "{}: wanted one line starting {:?} in:\n{stderr}",
            broken.what,
            broken.reported
        );
        assert!(!stderr.contains("DATABASE_URL"), "{stderr}");
    }
    std::fs::write(dir.join("jobs.toml"), TWO_JOBS).unwrap();
    let valid = cronjobs_in(&dir, &["validate", "jobs.toml"], None);
    assert_eq!(
        valid.assert_ok().trim(),
        "jobs.toml: 2 jobs of source \"jobs.toml\", valid"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_exported_file_applies_without_a_change() {
    let api = TestApi::spawn().await;
    let dir = workdir();
    // Jobs of a file...
    apply(&dir, &api.db.url, TWO_JOBS).await.assert_ok();
    let yearly = definitions::get_live(&api.db.pool, "reports.year-end").await.unwrap();
    definitions::pause(&api.db.pool, yearly.id, "not this year", "alice", &Policy::default())
        .await
        .unwrap()
        .announce();
    // ...and jobs of the API, with the fields an export has to get exactly right.
    for body in [
        json!({
            "job_key": "ops.nap",
            "target": "system.sleep",
            "schedule_type": "recurring",
            "cron_expression": "15 2 * * *",
            "timezone": "America/New_York",
            "payload": {"seconds": 0.25, "hold_connection": true},
            "description": "Größe \"quoted\" and a backslash \\ too",
        }),
        json!({
            "job_key": "ops.alarm",
            "target": "system.fail",
            "schedule_type": "one_time",
            "run_at": "2098-06-01T12:30:00Z",
            "payload": {"message": "line one\nline \"two\""},
        }),
        json!({
            "job_key": "ops.beat",
            "target": "system.heartbeat",
            "schedule_type": "recurring",
            "cron_expression": "0 */6 * * *",
            "timezone": "UTC",
            "description": "",
        }),
    ] {
        api.create_job(&body).await;
    }
    let beat = api.get("/jobs/by-key/ops.beat").await.body;
    api.pause(beat["id"].as_str().unwrap()).await;
    let before = versions(&api.db.pool).await;

    let exported = cronjobs(&dir, &["export"], Some(&api.db.url)).await;
    let text = exported.assert_ok().to_owned();
    for key in [
        "reports.daily-digest",
        "reports.year-end",
        "ops.nap",
        "ops.alarm",
        "ops.beat",
    ] {
        assert!(text.contains(&format!("[jobs.\"{key}\"]")), "{key} exported:\n{text}");
    }
    std::fs::write(dir.join("exported.toml"), &text).unwrap();
    let reapplied = cronjobs(&dir, &["apply", "exported.toml"], Some(&api.db.url)).await;
    let out = reapplied.assert_ok();
    assert!(
        out.contains("Plan: 0 to create, 0 to change, 0 to retire, 5 unchanged."),
        "{out}\nexported:\n{text}"
    );
    assert!(out.contains("Nothing to do"), "{out}");
    assert_eq!(versions(&api.db.pool).await, before, "nothing written");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn concurrent_applies_of_the_same_file_create_each_job_once() {
    let db = TestDb::create().await;
    let dir = workdir();
    let text: String = (0..5)
        .map(|i| format!("[jobs.\"batch.job-{i}\"]\ntarget = \"system.heartbeat\"\ncron = \"{i} * * * *\"\n\n"))
        .collect();
    std::fs::write(dir.join("jobs.toml"), &text).unwrap();
    let applies: Vec<_> = (0..4)
        .map(|_| {
            let (dir, url) = (dir.clone(), db.url.clone());
            std::thread::spawn(move || cronjobs_in(&dir, &["apply", "jobs.toml"], Some(&url)))
        })
        .collect();
    let results: Vec<Ran> = applies.into_iter().map(|a| a.join().unwrap()).collect();
    for ran in &results {
        ran.assert_ok();
    }
    let applied = results.iter().filter(|r| r.stdout.contains("Applied.")).count();
    let nothing = results.iter().filter(|r| r.stdout.contains("Nothing to do")).count();
    assert_eq!(
        (applied, nothing),
        (1, 3),
        "one applies, the others find it done: {results:#?}"
    );
    let all = versions(&db.pool).await;
    assert_eq!(all.len(), 5);
    for (key, versions) in &all {
        assert_eq!(versions.len(), 1, "{key}: exactly one version");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_api_may_pause_resume_and_run_a_file_job_but_not_change_or_retire_it() {
    let api = TestApi::spawn().await;
    let dir = workdir();
    apply(&dir, &api.db.url, TWO_JOBS).await.assert_ok();
    let job = api.get("/jobs/by-key/reports.daily-digest").await.body;
    assert_eq!(job["managed_by"], "file");
    assert_eq!(job["created_by"], "file:jobs.toml");
    let id = job["id"].as_str().unwrap();

    let new_version = api
        .post(
            &format!("/jobs/{id}/new-version"),
            &json!({"cron_expression": "0 9 * * *"}),
        )
        .await;
    assert_eq!(
        new_version.problem(409)["type"],
        "urn:cronjobs:problem:managed-elsewhere"
    );
    let retire = send(api.request(Method::DELETE, &format!("/jobs/{id}"))).await;
    assert_eq!(retire.problem(409)["type"], "urn:cronjobs:problem:managed-elsewhere");
    assert_eq!(
        versions(&api.db.pool).await["reports.daily-digest"].len(),
        1,
        "no version written"
    );

    let paused = api.pause(id).await;
    assert_eq!(paused["status"], "paused");
    let resumed = api.patch_empty(&format!("/jobs/{id}/resume")).await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    assert_eq!(resumed.body["status"], "active");
    let run = api.post_empty(&format!("/jobs/{id}/run-now")).await;
    assert_eq!(run.status, 202, "{}", run.text);
    assert_eq!(run.body["job_definition_id"], job["id"]);

    let live = api.get("/jobs/by-key/reports.daily-digest").await.body;
    assert_eq!(
        (live["id"].clone(), live["version"].clone()),
        (job["id"].clone(), json!(1))
    );
    let _ = std::fs::remove_dir_all(dir);
}
