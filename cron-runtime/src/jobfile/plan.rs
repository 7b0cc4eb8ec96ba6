//! What applying a jobs file would change, computed against the definitions in the database:
//! like `terraform plan`, one line per job and a summary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};

use super::parse::{FileError, FileJob};
use crate::domain::draft::in_the_past;
use crate::domain::{JobDefinition, JobStatus, ManagedBy, NewDefinition, ScheduleSpec, ScheduleType};

/// What happens to one job key.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `+`: a new job (or the next version of a key whose versions are all retired).
    Create(NewDefinition),
    /// `~`: a new version of a file-managed job, with the fields that change.
    Change {
        current: Box<JobDefinition>,
        new: NewDefinition,
        fields: Vec<FieldChange>,
    },
    /// `-`: a job of this source no longer in the file.
    Retire(Box<JobDefinition>),
    /// `&`: a file-managed job from before sources existed, unchanged, that this source owns
    /// from now on.
    Adopt(Box<JobDefinition>),
    /// `=`: nothing to do (`why` says so when it is not plain equality).
    Unchanged { job_key: String, why: Option<&'static str> },
}

/// One field that differs between the live version and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub from: String,
    pub to: String,
}

/// Every step, in key order, for one source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The source the file's jobs belong to.
    pub source: String,
    /// The live jobs the source owned before this apply (those from before sources existed
    /// included).
    pub owned: usize,
    pub steps: Vec<Step>,
}

impl Plan {
    /// `true` when applying changes nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.iter().all(|s| matches!(s, Step::Unchanged { .. }))
    }

    /// How many jobs it retires.
    pub fn retiring(&self) -> usize {
        self.count(|s| matches!(s, Step::Retire(_)))
    }

    /// `true` when it retires all, or more than half, of the source's jobs: what a wrong path
    /// or a truncated file looks like, so applying it takes `--allow-retire`.
    pub fn retires_most(&self) -> bool {
        let retiring = self.retiring();
        retiring > 0 && (retiring == self.owned || retiring * 2 > self.owned)
    }

    fn count(&self, which: fn(&Step) -> bool) -> usize {
        self.steps.iter().filter(|s| which(s)).count()
    }
}

/// Who owns a live job, seen from the source being applied.
enum Owner<'a> {
    Api,
    ThisSource,
    /// Applied by a file before sources existed: the first source applied adopts it.
    NoSource,
    OtherSource(&'a str),
}

fn owner<'a>(job: &'a JobDefinition, source: &str) -> Owner<'a> {
    match (job.managed_by, job.source.as_deref()) {
        (ManagedBy::Api, _) => Owner::Api,
        (ManagedBy::File, None) => Owner::NoSource,
        (ManagedBy::File, Some(owner)) if owner == source => Owner::ThisSource,
        (ManagedBy::File, Some(other)) => Owner::OtherSource(other),
    }
}

/// The plan that makes the file's jobs live for `source`. `latest` is the newest version of
/// every key in the database. A file may not take over a key the API or another source
/// manages, nor create or change a one-time job whose `run_at` has passed.
pub fn plan(
    file: &str,
    source: &str,
    jobs: &[FileJob],
    latest: &[JobDefinition],
    now: DateTime<Utc>,
) -> Result<Plan, Vec<FileError>> {
    let latest: BTreeMap<&str, &JobDefinition> = latest.iter().map(|d| (d.job_key.as_str(), d)).collect();
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    let mut problem = |job: &FileJob, field: &str, message: String| {
        errors.push(FileError {
            file: file.to_owned(),
            line: job.line_of(field),
            job_key: Some(job.definition.job_key.to_string()),
            field: Some(field.to_owned()),
            message,
        })
    };
    for job in jobs {
        let new = &job.definition;
        let key = new.job_key.to_string();
        let current = latest.get(key.as_str()).copied();
        let fields = current.map(|c| changed_fields(c, new)).unwrap_or_default();
        let live = current.filter(|c| c.status != JobStatus::Retired);
        if let Some(Owner::OtherSource(other)) = live.map(|c| owner(c, source)) {
            problem(
                job,
                "key",
                format!(
                    "is managed by the jobs file with source {other:?}: keep each job in one file (remove it here or \
                     there); if this is that file, moved or renamed, write `source = {other:?}` in it"
                ),
            );
            continue;
        }
        let step = match current {
            Some(c) if c.status != JobStatus::Retired && c.managed_by == ManagedBy::Api => {
                if fields.is_empty() {
                    Step::Unchanged {
                        job_key: key,
                        why: Some("managed through the API; the file agrees with it"),
                    }
                } else {
                    problem(
                        job,
                        "key",
                        "is a live job managed through the API: retire it there (DELETE /jobs/{id}) before the file \
                         manages it, or rename this entry"
                            .into(),
                    );
                    continue;
                }
            }
            Some(c) if c.status != JobStatus::Retired && fields.is_empty() && c.source.is_none() => {
                Step::Adopt(Box::new(c.clone()))
            }
            Some(c) if c.status != JobStatus::Retired && fields.is_empty() => Step::Unchanged {
                job_key: key,
                why: None,
            },
            Some(c) if c.status != JobStatus::Retired => Step::Change {
                current: Box::new(c.clone()),
                new: new.clone(),
                fields,
            },
            // A one-time job of the file that ran (and was retired by the scheduler) stays done.
            Some(c) if c.schedule_type == ScheduleType::OneTime && fields.is_empty() => Step::Unchanged {
                job_key: key,
                why: Some("one-time job already ran"),
            },
            _ => Step::Create(new.clone()),
        };
        let writes = matches!(step, Step::Create(_) | Step::Change { .. });
        if let (true, ScheduleSpec::OneTime { run_at }) = (writes, &new.schedule) {
            if *run_at <= now {
                problem(job, "run_at", in_the_past(*run_at, now));
                continue;
            }
        }
        steps.push(step);
    }
    let in_file: BTreeSet<&str> = jobs.iter().map(|j| j.definition.job_key.as_str()).collect();
    let mut owned = 0;
    for current in latest.values() {
        let ours = matches!(owner(current, source), Owner::ThisSource | Owner::NoSource);
        if !ours || current.status == JobStatus::Retired {
            continue;
        }
        owned += 1;
        if !in_file.contains(current.job_key.as_str()) {
            steps.push(Step::Retire(Box::new((*current).clone())));
        }
    }
    steps.sort_by(|a, b| key_of(a).cmp(key_of(b)));
    if errors.is_empty() {
        Ok(Plan {
            source: source.to_owned(),
            owned,
            steps,
        })
    } else {
        Err(errors)
    }
}

fn key_of(step: &Step) -> &str {
    match step {
        Step::Create(new) | Step::Change { new, .. } => new.job_key.as_str(),
        Step::Retire(current) | Step::Adopt(current) => &current.job_key,
        Step::Unchanged { job_key, .. } => job_key,
    }
}

/// The fields of `new` that differ from `current`, as the file names them.
fn changed_fields(current: &JobDefinition, new: &NewDefinition) -> Vec<FieldChange> {
    let (cron, run_at) = match &new.schedule {
        ScheduleSpec::Recurring { cron_expression } => (Some(cron_expression.clone()), None),
        ScheduleSpec::OneTime { run_at } => (None, Some(*run_at)),
    };
    let show = |v: &Option<String>| v.as_deref().map_or("(none)".to_owned(), |s| format!("{s:?}"));
    let time = |t: Option<DateTime<Utc>>| t.map_or("(none)".to_owned(), |t| t.to_rfc3339());
    let mut fields = Vec::new();
    let mut compare = |field: &'static str, from: String, to: String| {
        if from != to {
            fields.push(FieldChange { field, from, to });
        }
    };
    compare("target", format!("{:?}", current.target), format!("{:?}", new.target));
    compare("cron", show(&current.cron_expression), show(&cron));
    compare("run_at", time(current.run_at), time(run_at));
    compare(
        "timezone",
        format!("{:?}", current.timezone),
        format!("{:?}", new.timezone),
    );
    compare("payload", current.payload.to_string(), new.payload.to_string());
    compare("description", show(&current.description), show(&new.description));
    let duration = |t: Option<std::time::Duration>| {
        t.map_or("(the target's)".to_owned(), |t| {
            humantime::format_duration(t).to_string()
        })
    };
    compare("timeout", duration(current.timeout()), duration(new.timeout));
    let retry = |p: &crate::domain::RetryPolicy| match p.retries() {
        true => super::retry_table(p),
        false => "(none)".to_owned(),
    };
    compare("retry", retry(&current.retry), retry(&new.retry));
    fields
}

impl fmt::Display for Plan {
    /// The source, one line per job (`+` create, `~` new version, `-` retire, `&` adopt,
    /// `=` unchanged), then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Source {:?} ({} live jobs):", self.source, self.owned)?;
        for step in &self.steps {
            match step {
                Step::Create(new) => writeln!(f, "  + {}  (create: {})", new.job_key, describe(new))?,
                Step::Change { current, fields, .. } => {
                    let changes: Vec<String> = fields
                        .iter()
                        .map(|c| format!("{}: {} -> {}", c.field, c.from, c.to))
                        .collect();
                    writeln!(
                        f,
                        "  ~ {}  (version {} -> {}: {})",
                        current.job_key,
                        current.version,
                        current.version + 1,
                        changes.join("; ")
                    )?
                }
                Step::Retire(current) => writeln!(
                    f,
                    "  - {}  (retire version {}: no longer in the file)",
                    current.job_key, current.version
                )?,
                Step::Adopt(current) => writeln!(
                    f,
                    "  & {}  (adopt version {}: applied before jobs files had sources; owned by {:?} from now on)",
                    current.job_key, current.version, self.source
                )?,
                Step::Unchanged { job_key, why } => match why {
                    Some(why) => writeln!(f, "  = {job_key}  ({why})")?,
                    None => writeln!(f, "  = {job_key}")?,
                },
            }
        }
        write!(
            f,
            "Plan: {} to create, {} to change, {} to retire, {} unchanged",
            self.count(|s| matches!(s, Step::Create(_))),
            self.count(|s| matches!(s, Step::Change { .. })),
            self.retiring(),
            self.count(|s| matches!(s, Step::Unchanged { .. })),
        )?;
        match self.count(|s| matches!(s, Step::Adopt(_))) {
            0 => f.write_str("."),
            adopting => write!(f, ", {adopting} to adopt."),
        }
    }
}

fn describe(new: &NewDefinition) -> String {
    let when = match &new.schedule {
        ScheduleSpec::Recurring { cron_expression } => format!("{cron_expression:?} in {}", new.timezone),
        ScheduleSpec::OneTime { run_at } => format!("once at {}", run_at.to_rfc3339()),
    };
    format!("{}, {when}", new.target)
}
