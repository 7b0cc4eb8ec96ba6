//! Reading a jobs file: TOML with spans kept, so every problem names its line; each entry is
//! validated by the same [`Draft::validate`] as a REST body.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::domain::{Draft, FieldError, ManagedBy, NewDefinition, RetryDraft};
use crate::registry::Registered;

/// A jobs file, read and valid: the source that owns its jobs, and the jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsFile {
    /// Who owns the file's jobs: the file's `source = "..."`, or its path. Applying one
    /// source never touches another source's jobs.
    pub source: String,
    pub jobs: Vec<FileJob>,
}

/// The longest `source` name.
pub const MAX_SOURCE: usize = 200;

/// The source of a file that names none: its path as given, without a leading `./`, so
/// `jobs.toml` and `./jobs.toml` are one source.
pub fn default_source(file: &str) -> String {
    let mut path = file;
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    path.to_owned()
}

/// One job of a jobs file, valid against this build's targets.
#[derive(Debug, Clone, PartialEq)]
pub struct FileJob {
    pub definition: NewDefinition,
    /// Line of the job's `[jobs."<key>"]` header.
    pub line: usize,
    /// Line of each field, to place a later problem (a `run_at` in the past).
    lines: BTreeMap<&'static str, usize>,
}

impl FileJob {
    /// The line of `field` (`run_at`, `cron`, ...), or of the job's header.
    pub fn line_of(&self, field: &str) -> usize {
        self.lines.get(field).copied().unwrap_or(self.line)
    }
}

/// A problem in a jobs file, placed at a line: `jobs.toml:14: reports.digest: payload.team: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: usize,
    /// The job's key, when the problem is in one job.
    pub job_key: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(key) = &self.job_key {
            write!(f, "{key}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The file as TOML sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    /// Who owns the file's jobs (default: the file's path).
    source: Option<Spanned<String>>,
    #[serde(default)]
    jobs: BTreeMap<Spanned<String>, Spanned<Entry>>,
}

/// One `[jobs."<key>"]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    target: Option<Spanned<String>>,
    cron: Option<Spanned<String>>,
    /// A TOML date-time (`2027-01-01T09:00:00Z`) or an RFC 3339 string.
    run_at: Option<Spanned<toml::Value>>,
    timezone: Option<Spanned<String>>,
    payload: Option<Spanned<toml::Table>>,
    description: Option<Spanned<String>>,
    /// The job's own timeout, e.g. "15m".
    timeout: Option<Spanned<String>>,
    /// `retry = { max_attempts = 4, initial_delay = "30s" }`.
    retry: Option<Spanned<RetryDraft>>,
}

/// Parses and validates every job of `text` (the contents of `file`), reporting every problem
/// of every job at once. `actor` is recorded as the creator of what it creates.
pub fn parse(file: &str, text: &str, actor: &str) -> Result<JobsFile, Vec<FileError>> {
    let lines = LineIndex::new(text);
    let document: Document = toml::from_str(text).map_err(|e| {
        vec![FileError {
            file: file.to_owned(),
            line: e.span().map_or(1, |span| lines.line(span.start)),
            job_key: None,
            field: None,
            message: e.message().trim().to_owned(),
        }]
    })?;
    let (mut jobs, mut errors) = (Vec::new(), Vec::new());
    let source = match document.source {
        None => default_source(file),
        Some(named) => {
            let line = lines.line(named.span().start);
            let name = named.into_inner().trim().to_owned();
            let problem = if name.is_empty() {
                Some(
                    "is blank: name the file's jobs (e.g. \"billing\") or leave it out to use the file's path"
                        .to_owned(),
                )
            } else if name.chars().count() > MAX_SOURCE {
                Some(format!("must be at most {MAX_SOURCE} characters"))
            } else if name.chars().any(char::is_control) {
                Some("must not contain control characters".to_owned())
            } else {
                None
            };
            if let Some(message) = problem {
                errors.push(FileError {
                    file: file.to_owned(),
                    line,
                    job_key: None,
                    field: Some("source".to_owned()),
                    message,
                });
            }
            name
        }
    };
    for (key, entry) in document.jobs {
        let at = |span: Range<usize>| lines.line(span.start);
        let header = at(key.span());
        match validate(key.get_ref(), entry.into_inner(), actor, &source, &at) {
            Ok((definition, lines)) => jobs.push(FileJob {
                definition,
                line: header,
                lines,
            }),
            Err(problems) => errors.extend(problems.into_iter().map(|(line, e)| FileError {
                file: file.to_owned(),
                line: line.unwrap_or(header),
                job_key: Some(key.get_ref().clone()),
                field: Some(e.field),
                message: e.message,
            })),
        }
    }
    if errors.is_empty() {
        Ok(JobsFile { source, jobs })
    } else {
        Err(errors)
    }
}

type Placed = (Option<usize>, FieldError);

/// One entry as a [`Draft`], validated; problems carry the line of the field they concern.
fn validate(
    key: &str,
    entry: Entry,
    actor: &str,
    source: &str,
    at: &dyn Fn(Range<usize>) -> usize,
) -> Result<(NewDefinition, BTreeMap<&'static str, usize>), Vec<Placed>> {
    let mut lines = BTreeMap::new();
    let mut line_of = |name: &'static str, span: Range<usize>| {
        lines.insert(name, at(span));
    };
    let mut problems: Vec<Placed> = Vec::new();
    let schedule_type = match (&entry.cron, &entry.run_at) {
        (Some(_), None) => Some("recurring"),
        (None, Some(_)) => Some("one_time"),
        (Some(_), Some(run_at)) => {
            problems.push((
                Some(at(run_at.span())),
                FieldError::new("run_at", "give either cron (recurring) or run_at (one-time), not both"),
            ));
            None
        }
        (None, None) => {
            problems.push((
                None,
                FieldError::new("cron", "is required: give cron (recurring) or run_at (one-time)"),
            ));
            None
        }
    };
    let mut take = |name: &'static str, value: Option<Spanned<String>>| {
        value.map(|v| {
            line_of(name, v.span());
            v.into_inner()
        })
    };
    let target = take("target", entry.target);
    let cron = take("cron", entry.cron);
    let timezone = take("timezone", entry.timezone);
    let description = take("description", entry.description);
    let timeout = take("timeout", entry.timeout);
    let retry = entry.retry.map(|v| {
        line_of("retry", v.span());
        v.into_inner()
    });
    let run_at = entry.run_at.map(|v| {
        line_of("run_at", v.span());
        match v.into_inner() {
            toml::Value::String(s) => s,
            other => other.to_string(),
        }
    });
    let payload = match entry.payload {
        None => None,
        Some(table) => {
            line_of("payload", table.span());
            match serde_json::to_value(table.into_inner()) {
                Ok(json) => Some(json),
                Err(e) => {
                    problems.push((None, FieldError::new("payload", format!("cannot be read as JSON: {e}"))));
                    None
                }
            }
        }
    };
    let draft = Draft {
        job_key: Some(key.to_owned()),
        target,
        schedule_type: schedule_type.map(str::to_owned),
        cron_expression: cron,
        run_at,
        timezone,
        payload,
        description,
        timeout,
        retry,
    };
    match draft.validate(&Registered, actor.to_owned(), None) {
        Ok(definition) if problems.is_empty() => Ok((
            NewDefinition {
                managed_by: ManagedBy::File,
                source: Some(source.to_owned()),
                ..definition
            },
            lines,
        )),
        Ok(_) => Err(problems),
        Err(errors) => {
            problems.extend(errors.into_iter().filter(|e| e.field != "schedule_type").map(|e| {
                let field = file_field(&e.field);
                let line = lines.get(field.split('.').next().unwrap_or_default()).copied();
                (line, FieldError::new(field, e.message))
            }));
            Err(problems)
        }
    }
}

/// The name a REST field has in a jobs file.
fn file_field(field: &str) -> String {
    match field {
        "cron_expression" => "cron".to_owned(),
        "job_key" => "key".to_owned(),
        other => other.to_owned(),
    }
}

/// Byte offset → 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset).max(1)
    }
}
