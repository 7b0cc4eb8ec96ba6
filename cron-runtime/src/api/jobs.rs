//! `/jobs`: create, list, read, pause, resume, new-version and run-now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::Actor;
use super::error::{ApiError, FieldError, Problem};
use super::extract::{ApiJson, JobId, QueryParams};
use super::{parse_cursor, parse_enum, parse_limit, AppState};
use crate::domain::schedule::parse_timezone;
use crate::domain::{JobDefinition, JobKey, JobRun, JobStatus, Schedule, ScheduleType};
use crate::registry::{self, PayloadError};
use crate::store::definitions::{self, JobFilter, NewDefinition, ScheduleSpec};
use crate::store::instances::{self, LiveTargets};
use crate::store::runs::{self, RunNowOutcome};

/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION: usize = 500;
/// Bounds of a pause reason, in characters after trimming.
pub const PAUSE_REASON: std::ops::RangeInclusive<usize> = 5..=300;

/// A job definition (one version of a job), with its next fire time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    #[serde(flatten)]
    pub definition: JobDefinition,
    /// When the job fires next; null unless the job is active.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Whether a live scheduler has the job's target in its build (if not, its slots are
    /// recorded `missed` with reason `target_unavailable` or `no_scheduler`).
    pub target_available: bool,
}

impl Job {
    /// The API view of `definition` at `now`, given what the live schedulers can run.
    pub fn new(definition: JobDefinition, now: DateTime<Utc>, live: &LiveTargets) -> Self {
        let next_run_at = next_run_at(&definition, now);
        Job {
            target_available: live.has(&definition.target),
            definition,
            next_run_at,
        }
    }
}

/// The next fire time of an active definition: the schedule engine's for a recurring job,
/// `run_at` for a one-time job (even when past: the scheduler runs it on startup).
fn next_run_at(definition: &JobDefinition, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if definition.status != JobStatus::Active {
        return None;
    }
    match definition.schedule_type {
        ScheduleType::OneTime => definition.run_at,
        ScheduleType::Recurring => {
            let expression = definition.cron_expression.as_deref()?;
            Schedule::parse(expression, &definition.timezone).ok()?.next_after(now)
        }
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub items: Vec<Job>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The body of `POST /jobs`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    /// Stable across versions: `^[a-z0-9][a-z0-9._-]{0,99}$`.
    #[schema(value_type = String, required = true, pattern = "^[a-z0-9][a-z0-9._-]{0,99}$", example = "reports.daily-digest")]
    pub job_key: Option<String>,
    /// The key of a registered target (see `GET /targets`).
    #[schema(value_type = String, required = true, example = "system.heartbeat")]
    pub target: Option<String>,
    #[schema(value_type = ScheduleType, required = true)]
    pub schedule_type: Option<String>,
    /// Required for `recurring` jobs, omitted for `one_time`: 5 or 6 fields, or a macro such as `@daily`.
    #[schema(example = "*/5 * * * *")]
    pub cron_expression: Option<String>,
    /// Required for `one_time` jobs (RFC 3339, in the future), omitted for `recurring`.
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub run_at: Option<String>,
    /// IANA timezone the cron expression is evaluated in; default `UTC`.
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// The target's payload (a JSON object); default `{}`.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// The body of `POST /jobs/{jobId}/new-version`: every field optional; an omitted (or null)
/// field carries over from the current version, except that when `schedule_type` changes the
/// other type's field (`cron_expression` or `run_at`) is dropped. `description: null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    #[schema(example = "system.heartbeat")]
    pub target: Option<String>,
    #[schema(value_type = Option<ScheduleType>)]
    pub schedule_type: Option<String>,
    pub cron_expression: Option<String>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub run_at: Option<String>,
    pub timezone: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub description: Option<Option<String>>,
}

/// Distinguishes `null` (`Some(None)`) from an absent field (`None`, via `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// The body of `PATCH /jobs/{jobId}/pause`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseJob {
    /// Why the job is paused: 5 to 300 characters after trimming.
    #[schema(value_type = String, required = true, min_length = 5, max_length = 300)]
    pub reason: Option<String>,
}

/// Query parameters of `GET /jobs`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters parsed by `list_jobs`
pub struct JobListParams {
    status: Option<JobStatus>,
    target: Option<String>,
    schedule_type: Option<ScheduleType>,
    job_key: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Creates version 1 of a job (or the next version of a key whose versions are all retired).
#[utoipa::path(post, path = "/api/v2/admin/cron/jobs", tag = "jobs", request_body = CreateJob,
    responses(
        (status = 201, description = "The job was created.", body = Job,
            links(
                ("GetJob" = (operation_id = "get_job", parameters(("jobId" = "$response.body#/id")))),
                ("PauseJob" = (operation_id = "pause_job", parameters(("jobId" = "$response.body#/id")))),
                ("ResumeJob" = (operation_id = "resume_job", parameters(("jobId" = "$response.body#/id")))),
                ("NewVersion" = (operation_id = "new_version", parameters(("jobId" = "$response.body#/id")))),
                ("RunNow" = (operation_id = "run_now", parameters(("jobId" = "$response.body#/id")))),
            )),
        (status = 400, description = "The body is invalid; `errors` names every bad field.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job with this key that is not retired exists.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_job(
    State(state): State<AppState>,
    Actor(actor): Actor,
    ApiJson(body): ApiJson<CreateJob>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let now = Utc::now();
    let draft = Draft {
        job_key: body.job_key,
        target: body.target,
        schedule_type: body.schedule_type,
        cron_expression: body.cron_expression,
        run_at: body.run_at,
        timezone: body.timezone,
        payload: body.payload,
        description: body.description,
    };
    let new = draft.validate(actor, now)?;
    let created = definitions::create(&state.pool, &new).await?;
    let live = instances::live_targets(&state.pool).await?;
    Ok((StatusCode::CREATED, Json(Job::new(created, now, &live))))
}

/// Lists jobs (every version), newest first.
#[utoipa::path(get, path = "/api/v2/admin/cron/jobs", tag = "jobs", params(JobListParams),
    responses(
        (status = 200, description = "A page of jobs.", body = JobList),
        (status = 400, description = "A query parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_jobs(State(state): State<AppState>, mut query: QueryParams) -> Result<Json<JobList>, ApiError> {
    let filter = JobFilter {
        status: query.take("status", parse_enum),
        target: query.take("target", |v| Ok(v.to_owned())),
        schedule_type: query.take("schedule_type", parse_enum),
        job_key: query.take("job_key", |v| Ok(v.to_owned())),
    };
    let limit = query.take("limit", parse_limit).unwrap_or(super::DEFAULT_LIMIT);
    let cursor = query.take("cursor", parse_cursor);
    query.finish()?;
    let page = definitions::list(&state.pool, &filter, cursor, limit).await?;
    let now = Utc::now();
    let live = instances::live_targets(&state.pool).await?;
    Ok(Json(JobList {
        items: page.items.into_iter().map(|d| Job::new(d, now, &live)).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// Reads one job version.
#[utoipa::path(get, path = "/api/v2/admin/cron/jobs/{jobId}", tag = "jobs",
    params(("jobId" = Uuid, Path, description = "The job version's id.")),
    responses(
        (status = 200, description = "The job.", body = Job),
        (status = 400, description = "The id is not a UUID.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_job(State(state): State<AppState>, JobId(id): JobId) -> Result<Json<Job>, ApiError> {
    let definition = definitions::get(&state.pool, id).await?;
    let live = instances::live_targets(&state.pool).await?;
    Ok(Json(Job::new(definition, Utc::now(), &live)))
}

/// Pauses an active job; the reason and the admin are recorded.
#[utoipa::path(patch, path = "/api/v2/admin/cron/jobs/{jobId}/pause", tag = "jobs", request_body = PauseJob,
    params(("jobId" = Uuid, Path, description = "The job version's id.")),
    responses(
        (status = 200, description = "The paused job.", body = Job),
        (status = 400, description = "The id or the reason is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not active.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn pause_job(
    State(state): State<AppState>,
    JobId(id): JobId,
    Actor(actor): Actor,
    ApiJson(body): ApiJson<PauseJob>,
) -> Result<Json<Job>, ApiError> {
    let reason = validate_reason(body.reason.as_deref())?;
    let paused = definitions::pause(&state.pool, id, reason, &actor).await?;
    let live = instances::live_targets(&state.pool).await?;
    Ok(Json(Job::new(paused, Utc::now(), &live)))
}

/// The trimmed reason, if it is 5 to 300 characters long.
fn validate_reason(reason: Option<&str>) -> Result<&str, ApiError> {
    let reason = reason.map(str::trim).unwrap_or_default();
    let length = reason.chars().count();
    if PAUSE_REASON.contains(&length) {
        Ok(reason)
    } else {
        let (min, max) = (PAUSE_REASON.start(), PAUSE_REASON.end());
        Err(ApiError::invalid(
            "reason",
            format!(
                "is required: say why the job is paused in {min} to {max} characters (got {length} after trimming)"
            ),
        ))
    }
}

/// Resumes a paused job.
#[utoipa::path(patch, path = "/api/v2/admin/cron/jobs/{jobId}/resume", tag = "jobs",
    params(("jobId" = Uuid, Path, description = "The job version's id.")),
    responses(
        (status = 200, description = "The resumed job.", body = Job),
        (status = 400, description = "The id is not a UUID.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not paused.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resume_job(State(state): State<AppState>, JobId(id): JobId) -> Result<Json<Job>, ApiError> {
    let resumed = definitions::resume(&state.pool, id).await?;
    let live = instances::live_targets(&state.pool).await?;
    Ok(Json(Job::new(resumed, Utc::now(), &live)))
}

/// Replaces a job with a new version (active); the current one is retired.
#[utoipa::path(post, path = "/api/v2/admin/cron/jobs/{jobId}/new-version", tag = "jobs", request_body = NewVersion,
    params(("jobId" = Uuid, Path, description = "The id of the version to replace.")),
    responses(
        (status = 201, description = "The new version.", body = Job,
            links(
                ("GetJob" = (operation_id = "get_job", parameters(("jobId" = "$response.body#/id")))),
                ("PauseJob" = (operation_id = "pause_job", parameters(("jobId" = "$response.body#/id")))),
                ("ResumeJob" = (operation_id = "resume_job", parameters(("jobId" = "$response.body#/id")))),
                ("NewVersion" = (operation_id = "new_version", parameters(("jobId" = "$response.body#/id")))),
                ("RunNow" = (operation_id = "run_now", parameters(("jobId" = "$response.body#/id")))),
            )),
        (status = 400, description = "The id or the merged definition is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is retired (a newer version replaced it).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn new_version(
    State(state): State<AppState>,
    JobId(id): JobId,
    Actor(actor): Actor,
    ApiJson(body): ApiJson<NewVersion>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let now = Utc::now();
    let current = definitions::get(&state.pool, id).await?;
    let new = Draft::merge(&current, body).validate(actor, now)?;
    // The store re-checks under a row lock: of concurrent calls, one wins and the rest get 409.
    let created = definitions::new_version(&state.pool, id, &new).await?;
    let live = instances::live_targets(&state.pool).await?;
    Ok((StatusCode::CREATED, Json(Job::new(created, now, &live))))
}

/// Requests a run now (allowed on active and paused jobs); a scheduler picks it up.
#[utoipa::path(post, path = "/api/v2/admin/cron/jobs/{jobId}/run-now", tag = "jobs",
    params(("jobId" = Uuid, Path, description = "The job version's id.")),
    responses(
        (status = 202, description = "The run, `pending` until a scheduler claims it.", body = JobRun,
            links(("GetRun" = (operation_id = "get_run", parameters(("runId" = "$response.body#/id")))))),
        (status = 400, description = "The id is not a UUID.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job with this id.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A run of the job is active (`active_run_id`; a `skipped` run was recorded), or the job is retired.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn run_now(
    State(state): State<AppState>,
    JobId(id): JobId,
    Actor(actor): Actor,
) -> Result<(StatusCode, Json<JobRun>), ApiError> {
    match runs::request_run(&state.pool, id, &actor).await? {
        RunNowOutcome::Pending(run) => Ok((StatusCode::ACCEPTED, Json(run))),
        RunNowOutcome::Skipped { run, active_run_id } => {
            crate::metrics::run_finished(&run);
            Err(ApiError::Overlap {
                active_run_id,
                skipped_run_id: run.id,
            })
        }
    }
}

/// A definition as submitted (create) or merged with the current version (new-version),
/// before validation.
#[derive(Debug, Default)]
struct Draft {
    job_key: Option<String>,
    target: Option<String>,
    schedule_type: Option<String>,
    cron_expression: Option<String>,
    run_at: Option<String>,
    timezone: Option<String>,
    payload: Option<Value>,
    description: Option<String>,
}

impl Draft {
    /// `body` over `current`: omitted fields carry over, except the other schedule type's field.
    fn merge(current: &JobDefinition, body: NewVersion) -> Self {
        let schedule_type = body
            .schedule_type
            .unwrap_or_else(|| current.schedule_type.as_str().to_owned());
        let same_type = schedule_type == current.schedule_type.as_str();
        Draft {
            job_key: Some(current.job_key.clone()),
            target: Some(body.target.unwrap_or_else(|| current.target.clone())),
            cron_expression: body
                .cron_expression
                .or_else(|| current.cron_expression.clone().filter(|_| same_type)),
            run_at: body
                .run_at
                .or_else(|| current.run_at.filter(|_| same_type).map(|t| t.to_rfc3339())),
            schedule_type: Some(schedule_type),
            timezone: Some(body.timezone.unwrap_or_else(|| current.timezone.clone())),
            payload: Some(body.payload.unwrap_or_else(|| current.payload.clone())),
            description: body.description.unwrap_or_else(|| current.description.clone()),
        }
    }

    /// Checks every field, reporting every problem at once.
    fn validate(self, actor: String, now: DateTime<Utc>) -> Result<NewDefinition, ApiError> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| errors.push(FieldError::new(field, message));

        let job_key = match self.job_key.as_deref().map(JobKey::parse) {
            None => fail_none(&mut fail, "job_key", "is required".into()),
            Some(Err(e)) => fail_none(&mut fail, "job_key", e.to_string()),
            Some(Ok(key)) => Some(key),
        };
        let target = match self.target {
            None => fail_none(&mut fail, "target", "is required".into()),
            Some(t) if registry::get(&t).is_none() => fail_none(&mut fail, "target", unknown_target(&t)),
            Some(t) => Some(t),
        };
        let schedule_type = match self.schedule_type.as_deref() {
            None => fail_none(&mut fail, "schedule_type", "is required: recurring or one_time".into()),
            Some(raw) => parse_enum::<ScheduleType>(raw)
                .map_err(|m| fail("schedule_type", m))
                .ok(),
        };
        let timezone = match parse_timezone(self.timezone.as_deref().unwrap_or("UTC")) {
            Ok(tz) => Some(tz),
            Err(e) => fail_none(&mut fail, e.field(), e.to_string()),
        };
        let schedule = match schedule_type {
            None => None,
            Some(ScheduleType::Recurring) => {
                if self.run_at.is_some() {
                    fail(
                        "run_at",
                        "must be omitted for a recurring job (run_at is for one_time jobs)".into(),
                    );
                }
                match self.cron_expression {
                    None => fail_none(&mut fail, "cron_expression", "is required for a recurring job".into()),
                    Some(expression) => {
                        // With a bad timezone, still check the expression (in UTC) so both are reported.
                        let tz = timezone.map_or("UTC", |tz| tz.name());
                        match Schedule::parse(&expression, tz) {
                            Ok(_) => Some(ScheduleSpec::Recurring {
                                cron_expression: expression,
                            }),
                            Err(e) => fail_none(&mut fail, e.field(), e.to_string()),
                        }
                    }
                }
            }
            Some(ScheduleType::OneTime) => {
                if self.cron_expression.is_some() {
                    fail(
                        "cron_expression",
                        "must be omitted for a one_time job (cron_expression is for recurring jobs)".into(),
                    );
                }
                match self.run_at.as_deref().map(parse_time) {
                    None => fail_none(&mut fail, "run_at", "is required for a one_time job".into()),
                    Some(Err(message)) => fail_none(&mut fail, "run_at", message),
                    Some(Ok(run_at)) if run_at <= now => fail_none(
                        &mut fail,
                        "run_at",
                        format!(
                            "must be in the future (got {}, now is {})",
                            run_at.to_rfc3339(),
                            now.to_rfc3339()
                        ),
                    ),
                    Some(Ok(run_at)) => Some(ScheduleSpec::OneTime { run_at }),
                }
            }
        };
        let payload = self.payload.unwrap_or_else(|| Value::Object(Default::default()));
        if !payload.is_object() {
            fail("payload", "must be a JSON object".into());
        } else if let Some(target) = &target {
            match registry::validate_payload(target, &payload) {
                Ok(()) => {}
                Err(PayloadError::Invalid { path, message }) => {
                    let field = if path.is_empty() || path == "." {
                        "payload".to_owned()
                    } else {
                        format!("payload.{path}")
                    };
                    fail(&field, message);
                }
                Err(e) => fail("payload", e.to_string()),
            }
        }
        if let Some(description) = &self.description {
            let length = description.chars().count();
            if length > MAX_DESCRIPTION {
                fail(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} characters (got {length})"),
                );
            }
        }
        match (job_key, target, schedule, timezone) {
            (Some(job_key), Some(target), Some(schedule), Some(timezone)) if errors.is_empty() => Ok(NewDefinition {
                job_key,
                target,
                schedule,
                timezone: timezone.name().to_owned(),
                payload,
                description: self.description,
                created_by: actor,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

fn fail_none<T>(fail: &mut impl FnMut(&str, String), field: &str, message: String) -> Option<T> {
    fail(field, message);
    None
}

/// Parses an RFC 3339 timestamp.
pub(super) fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{raw:?} is not an RFC 3339 timestamp ({e}); write e.g. 2030-01-01T09:00:00Z"))
}

fn unknown_target(key: &str) -> String {
    let known: Vec<&str> = registry::all().iter().map(|t| t.key).collect();
    match known.len() {
        0 => format!("no target is registered under {key:?} (this build has no targets)"),
        1..=20 => format!(
            "no target is registered under {key:?}; registered targets: {}",
            known.join(", ")
        ),
        _ => format!("no target is registered under {key:?}; see GET /api/v2/admin/cron/targets"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_reason_is_trimmed_and_bounded() {
        assert!(validate_reason(None).is_err());
        assert!(validate_reason(Some("   ")).is_err());
        assert!(validate_reason(Some("abcd")).is_err());
        assert_eq!(validate_reason(Some("  abcde  ")).ok(), Some("abcde"));
        assert!(validate_reason(Some(&"x".repeat(300))).is_ok());
        assert!(validate_reason(Some(&"x".repeat(301))).is_err());
    }

    #[test]
    fn validation_reports_every_problem() {
        let draft = Draft {
            job_key: Some("Bad Key".into()),
            schedule_type: Some("one_time".into()),
            cron_expression: Some("* * * * *".into()),
            timezone: Some("Mars/Olympus".into()),
            payload: Some(Value::Array(vec![])),
            description: Some("x".repeat(501)),
            ..Draft::default()
        };
        let Err(ApiError::Validation(errors)) = draft.validate("alice".into(), Utc::now()) else {
            panic!("expected a validation error");
        };
        let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "cron_expression",
                "description",
                "job_key",
                "payload",
                "run_at",
                "target",
                "timezone"
            ]
        );
    }
}
