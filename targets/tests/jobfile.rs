//! Jobs files checked against the registry of this crate's targets (`cronjobs validate`): every
//! problem names its line and field.

// Links the `targets` crate: nothing here calls into it by name, and without this line its
// registrations would be dropped.
use targets as _;

use cron_runtime::domain::ManagedBy;
use cron_runtime::jobfile;

/// The files below use diagnostic targets (`system.sleep`): on, as in the tests' processes.
fn enable_diagnostic_targets() {
    cron_runtime::registry::enable_diagnostic_targets();
}

fn errors(text: &str) -> Vec<String> {
    enable_diagnostic_targets();
    jobfile::validate("jobs.toml", text)
        .expect_err("invalid")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_valid_file_gives_its_jobs_with_their_lines() {
    enable_diagnostic_targets();
    let text = "# jobs\n\n[jobs.\"dod.heartbeat\"]\ntarget = \"system.heartbeat\"\ncron = \"*/5 * * * *\"\n\n\
                [jobs.nap]\ntarget = \"system.sleep\"\nrun_at = 2099-01-01T09:00:00Z\npayload = { seconds = 1 }\n";
    let read = jobfile::validate("./deploy/jobs.toml", text).expect("valid");
    // A file that names no source is owned by its path, however it is spelled.
    assert_eq!(read.source, "deploy/jobs.toml");
    let jobs = read.jobs;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].definition.job_key.as_str(), "dod.heartbeat");
    assert_eq!((jobs[0].line, jobs[1].line), (3, 7));
    assert_eq!(jobs[1].line_of("run_at"), 9);
    assert_eq!(jobs[1].definition.payload, serde_json::json!({"seconds": 1}));
    assert_eq!(jobs[1].definition.created_by, "file:jobs.toml");
    assert_eq!(jobs[1].definition.managed_by, ManagedBy::File);
    assert_eq!(jobs[1].definition.source.as_deref(), Some("deploy/jobs.toml"));
}

#[test]
fn a_named_source_owns_the_jobs_and_a_blank_one_is_refused() {
    let text =
        "source = \"billing\"\n[jobs.\"dod.heartbeat\"]\ntarget = \"system.heartbeat\"\ncron = \"*/5 * * * *\"\n";
    let read = jobfile::validate("jobs.toml", text).expect("valid");
    assert_eq!(read.source, "billing");
    assert_eq!(read.jobs[0].definition.source.as_deref(), Some("billing"));
    let errors = jobfile::validate("jobs.toml", "source = \"  \"\n").expect_err("a blank source");
    assert_eq!(errors[0].field.as_deref(), Some("source"), "{errors:?}");
    assert_eq!(errors[0].line, 1);
}

#[test]
fn every_problem_names_the_line_and_the_field() {
    let text = "[jobs.a]\ntarget = \"no.such\"\ncron = \"* * * * *\"\n\n[jobs.b]\ntarget = \"system.sleep\"\n\
                cron = \"61 * * * *\"\ntimezone = \"Mars/Olympus\"\npayload = { secs = 1 }\n";
    let found = errors(text);
    let has = |prefix: &str| found.iter().any(|e| e.starts_with(prefix));
    assert!(has("jobs.toml:2: a: target: no target is registered"), "{found:?}");
    assert!(has("jobs.toml:7: b: cron: minute 61"), "{found:?}");
    assert!(has("jobs.toml:8: b: timezone: unknown timezone"), "{found:?}");
    assert!(has("jobs.toml:9: b: payload"), "{found:?}");
}

#[test]
fn toml_mistakes_name_their_line() {
    let unknown = errors("[jobs.a]\ntarget = \"system.heartbeat\"\ncron = \"* * * * *\"\nschedule = \"x\"\n");
    assert!(
        unknown[0].starts_with("jobs.toml:4:") && unknown[0].contains("schedule"),
        "{unknown:?}"
    );
    let duplicate = errors("[jobs.a]\ntarget = \"system.heartbeat\"\ncron = \"* * * * *\"\n[jobs.a]\ntarget = \"x\"\n");
    assert!(duplicate[0].starts_with("jobs.toml:4:"), "{duplicate:?}");
    let neither = errors("[jobs.a]\ntarget = \"system.heartbeat\"\n");
    assert!(
        neither[0].starts_with("jobs.toml:1: a: cron: is required"),
        "{neither:?}"
    );
    let both = errors("[jobs.a]\ntarget = \"system.heartbeat\"\ncron = \"* * * * *\"\nrun_at = 2099-01-01T00:00:00Z\n");
    assert!(both[0].starts_with("jobs.toml:4: a: run_at: give either"), "{both:?}");
    let bad_key = errors("[jobs.\"Bad Key\"]\ntarget = \"system.heartbeat\"\ncron = \"* * * * *\"\n");
    assert!(bad_key[0].starts_with("jobs.toml:1: Bad Key: key:"), "{bad_key:?}");
}

#[test]
fn the_shipped_jobs_file_is_valid() {
    let text = include_str!("../../jobs.toml");
    let jobs = jobfile::validate("jobs.toml", text).expect("jobs.toml is valid").jobs;
    assert!(jobs.iter().any(|j| j.definition.job_key.as_str() == "dod.heartbeat"));
}

#[test]
fn a_jobs_timeout_is_read_and_a_bad_one_is_placed_at_its_line() {
    let text = "[jobs.nightly]\ntarget = \"system.heartbeat\"\ncron = \"0 2 * * *\"\ntimeout = \"15m\"\n";
    let read = jobfile::validate("jobs.toml", text).expect("valid");
    assert_eq!(
        read.jobs[0].definition.timeout,
        Some(std::time::Duration::from_secs(900))
    );
    let errors = jobfile::validate("jobs.toml", &text.replace("15m", "2days")).expect_err("too long");
    assert_eq!(
        (errors[0].field.as_deref(), errors[0].line),
        (Some("timeout"), 4),
        "{errors:?}"
    );
    assert!(errors[0].message.contains("between 1s and 24h"), "{errors:?}");
}
