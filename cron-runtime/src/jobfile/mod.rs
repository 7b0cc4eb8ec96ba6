//! Jobs as code (SPEC §13): a TOML file of jobs that `cronjobs apply` makes live.
//!
//! ```toml
//! [jobs."reports.daily-digest"]        # the job key
//! target = "reports.digest"
//! cron = "0 8 * * MON-FRI"             # or run_at = 2027-01-01T09:00:00Z
//! timezone = "Europe/Berlin"           # default UTC
//! payload = { team = "core" }
//! description = "Weekday digest for the core team"
//! timeout = "15m"                      # default: the target's
//! retry = { max_attempts = 4, initial_delay = "30s", max_delay = "10m", multiplier = 2.0 }
//! ```
//!
//! - [`parse`]: the file, with every problem placed at its line; each entry validated by the
//!   same rules as a REST body ([`crate::domain::Draft`]).
//! - [`plan`]: what applying changes: create, new version (with the changed fields), retire
//!   (jobs of the file's source no longer in the file), unchanged. Each file owns its jobs under
//!   its `source` (default: its path): jobs of the API and of other sources are never touched,
//!   and a paused job stays paused.
//! - [`apply`]: the plan, in one transaction under an advisory lock (two applies serialize;
//!   an invalid entry changes nothing), through the same store functions as the API.

pub mod parse;
pub mod plan;

use std::collections::BTreeSet;

use chrono::Utc;
use sqlx::PgPool;

use crate::alerts;
use crate::domain::incident::Policy;
use crate::domain::{JobDefinition, ManagedBy, ScheduleType};
use crate::store::{definitions, locks, StoreError};
pub use parse::{FileError, FileJob, JobsFile};
pub use plan::{Plan, Step};

/// Why an apply changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FileError>),
    #[error(
        "applying {file} would retire {} of the {} jobs of source {:?}; if that is what you want, \
         apply it again with --allow-retire",
        plan.retiring(), plan.owned, plan.source
    )]
    WouldRetireMost { file: String, plan: Box<Plan> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How `apply` goes about it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// Let the file retire all, or more than half, of its source's jobs (a wrong path or a
    /// truncated file in a deploy command must not do that by itself).
    pub allow_retire: bool,
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        ApplyError::Store(e.into())
    }
}

/// Who `apply` records as the creator and retirer: `file:<name of the file>`.
pub fn actor(file: &str) -> String {
    let name = std::path::Path::new(file)
        .file_name()
        .map_or_else(|| file.to_owned(), |n| n.to_string_lossy().into_owned());
    format!("file:{name}")
}

/// Checks a file against this build's targets, without a database (`cronjobs validate`).
pub fn validate(file: &str, text: &str) -> Result<JobsFile, Vec<FileError>> {
    parse::parse(file, text, &actor(file))
}

/// Makes the jobs of `text` (the contents of `file`) live; with `dry_run`, only plans.
/// Returns the plan it applied. Incidents of retired jobs are resolved under `policy` and
/// announced once the change committed.
pub async fn apply(
    pool: &PgPool,
    file: &str,
    text: &str,
    options: ApplyOptions,
    policy: &Policy,
) -> Result<Plan, ApplyError> {
    let ApplyOptions { dry_run, allow_retire } = options;
    let actor = actor(file);
    let read = parse::parse(file, text, &actor).map_err(ApplyError::Invalid)?;
    let mut tx = pool.begin().await?;
    locks::hold(&mut tx, locks::APPLY).await?;
    let latest = definitions::latest_versions_in(&mut tx).await?;
    let plan = plan::plan(file, &read.source, &read.jobs, &latest, Utc::now()).map_err(ApplyError::Invalid)?;
    if plan.retires_most() && !allow_retire && !dry_run {
        return Err(ApplyError::WouldRetireMost {
            file: file.to_owned(),
            plan: Box::new(plan),
        });
    }
    if dry_run || plan.is_empty() {
        return Ok(plan);
    }
    let (mut resolved, mut activated, mut retired) = (Vec::new(), Vec::new(), Vec::new());
    for step in &plan.steps {
        match step {
            Step::Create(new) => {
                activated.push(definitions::create_in(&mut tx, new).await?.id);
            }
            Step::Change { current, new, .. } => {
                activated.push(
                    definitions::new_version_in(&mut tx, current.id, new, ManagedBy::File)
                        .await?
                        .id,
                );
                retired.push(current.id);
            }
            Step::Retire(current) => {
                let gone = definitions::retire_in(&mut tx, current.id, &actor, ManagedBy::File, policy).await?;
                retired.push(gone.value.id);
                resolved.extend(gone.transitions);
            }
            Step::Adopt(_) | Step::Unchanged { .. } => {}
        }
    }
    // Every key the plan touches whose live version a file applied before sources existed
    // (adopted, changed or retired now) becomes this source's, all its versions.
    let adopted: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::Adopt(current) | Step::Change { current, .. } | Step::Retire(current) => Some(current),
            Step::Create(_) | Step::Unchanged { .. } => None,
        })
        .filter(|current| current.source.is_none())
        .map(|current| current.job_key.clone())
        .collect();
    definitions::adopt_in(&mut tx, &adopted, &plan.source).await?;
    definitions::stamp_changes_in(&mut tx, &activated, &retired).await?;
    tx.commit().await?;
    alerts::announce(&resolved);
    Ok(plan)
}

/// The live jobs as a jobs file (`cronjobs export`): applying it changes nothing. When the
/// file-managed jobs belong to one source, the file names it, so it applies as that source
/// from any path; with several, each job says its source.
pub async fn export(pool: &PgPool) -> Result<String, StoreError> {
    let live = definitions::list_live(pool).await?;
    let mut out =
        String::from("# cronjobs jobs file, exported from the live jobs. Apply with `cronjobs apply FILE`.\n");
    let sources: BTreeSet<&str> = live.iter().filter_map(|job| job.source.as_deref()).collect();
    match sources.len() {
        0 => {}
        1 => out.push_str(&format!(
            "source = {}\n",
            toml_string(sources.iter().next().copied().unwrap_or_default())
        )),
        _ => out.push_str(&format!(
            "# The jobs come from {} sources ({}): apply each source's jobs from a file of its own.\n",
            sources.len(),
            sources.iter().copied().collect::<Vec<_>>().join(", ")
        )),
    }
    for job in &live {
        if let (true, Some(source)) = (sources.len() > 1, &job.source) {
            out.push_str(&format!("\n# source: {source}"));
        }
        out.push('\n');
        out.push_str(&export_one(job));
    }
    Ok(out)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn export_one(job: &JobDefinition) -> String {
    let quote = toml_string;
    let mut out = String::new();
    if job.managed_by == ManagedBy::Api {
        out.push_str("# managed through the API: apply leaves it as it is while the API manages it\n");
    }
    if let (Some(by), Some(reason)) = (&job.paused_by, &job.pause_reason) {
        out.push_str(&format!("# paused by {by}: {}\n", reason.replace('\n', " ")));
    }
    out.push_str(&format!("[jobs.{}]\n", quote(&job.job_key)));
    out.push_str(&format!("target = {}\n", quote(&job.target)));
    match (job.schedule_type, &job.cron_expression, job.run_at) {
        (ScheduleType::Recurring, Some(cron), _) => out.push_str(&format!("cron = {}\n", quote(cron))),
        (_, _, Some(run_at)) => out.push_str(&format!(
            "run_at = {}\n",
            run_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )),
        _ => {}
    }
    if job.timezone != "UTC" {
        out.push_str(&format!("timezone = {}\n", quote(&job.timezone)));
    }
    if job.payload.as_object().is_some_and(|p| !p.is_empty()) {
        match toml::Value::try_from(&job.payload) {
            Ok(payload) => out.push_str(&format!("payload = {payload}\n")),
            // TOML has no null: say so rather than export something that differs.
            Err(e) => out.push_str(&format!("# payload not expressible in TOML ({e}): {}\n", job.payload)),
        }
    }
    if let Some(description) = &job.description {
        out.push_str(&format!("description = {}\n", quote(description)));
    }
    if let Some(timeout) = job.timeout() {
        out.push_str(&format!(
            "timeout = {}\n",
            quote(&humantime::format_duration(timeout).to_string())
        ));
    }
    if job.retry.retries() {
        out.push_str(&format!("retry = {}\n", retry_table(&job.retry)));
    }
    out
}

/// A retry policy as the inline table a jobs file writes.
pub(crate) fn retry_table(policy: &crate::domain::RetryPolicy) -> String {
    let draft = crate::domain::RetryDraft::from(*policy);
    format!(
        "{{ max_attempts = {}, initial_delay = {}, max_delay = {}, multiplier = {:?} }}",
        policy.max_attempts,
        toml_string(draft.initial_delay.as_deref().unwrap_or_default()),
        toml_string(draft.max_delay.as_deref().unwrap_or_default()),
        policy.multiplier
    )
}
