//! `/jobs`: create, list, read, pause, resume, new-version and run-now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, JobId, JobKeyParam, OptionalJson, QueryParams};
use super::{parse_cursor, parse_enum, parse_limit};
use crate::domain::draft::{validate_reason, Draft};
use crate::domain::{JobDefinition, JobRun, JobStatus, ManagedBy, RetryDraft, Schedule, ScheduleType};
use crate::registry::Registered;
use crate::store::definitions::{self, JobFilter};
use crate::store::instances::{self, LiveTargets};
use crate::store::runs::RunNowOutcome;
use crate::web::actions::{self, RunNowRefused};
use crate::web::auth::Actor;
use crate::web::error::{documented, ApiError, Problem};
use crate::web::AppState;

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
    /// The job's own timeout, e.g. `"15m"` (1s to 24h); omitted: the target's.
    #[schema(example = "15m")]
    pub timeout: Option<String>,
    /// How a failed run is retried; omitted: it is not.
    pub retry: Option<RetryDraft>,
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
    /// The job's own timeout, e.g. `"15m"`; `null` goes back to the target's.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub timeout: Option<Option<String>>,
    /// The retry policy, replacing the current one whole; `null`: no retries.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RetryDraft>)]
    pub retry: Option<Option<RetryDraft>>,
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
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 409, description = "A job with this key that is not retired exists.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = inline(documented::BodyTooLarge)),
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
        timeout: body.timeout,
        retry: body.retry,
    };
    let new = draft
        .validate(&Registered, actor, Some(now))
        .map_err(ApiError::Validation)?;
    let created = definitions::create(&state.pool, &new).await?;
    let live = instances::live_targets(&state.pool).await?;
    Ok((StatusCode::CREATED, Json(Job::new(created, now, &live))))
}

/// Lists jobs (every version), newest first.
#[utoipa::path(get, path = "/api/v2/admin/cron/jobs", tag = "jobs", params(JobListParams),
    responses(
        (status = 200, description = "A page of jobs.", body = JobList),
        (status = 400, response = inline(documented::InvalidQuery)),
        (status = 401, response = inline(documented::NoAdminToken)),
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
        (status = 400, response = inline(documented::InvalidId)),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchJob)),
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
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchJob)),
        (status = 409, description = "The job is not active.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = inline(documented::BodyTooLarge)),
    ))]
pub async fn pause_job(
    State(state): State<AppState>,
    JobId(id): JobId,
    Actor(actor): Actor,
    ApiJson(body): ApiJson<PauseJob>,
) -> Result<Json<Job>, ApiError> {
    let reason =
        validate_reason(body.reason.as_deref(), "the job is paused").map_err(|e| ApiError::Validation(vec![e]))?;
    let paused = definitions::pause(&state.pool, id, reason, &actor, &state.policy)
        .await?
        .announce();
    let live = instances::live_targets(&state.pool).await?;
    Ok(Json(Job::new(paused, Utc::now(), &live)))
}

/// Resumes a paused job.
#[utoipa::path(patch, path = "/api/v2/admin/cron/jobs/{jobId}/resume", tag = "jobs",
    params(("jobId" = Uuid, Path, description = "The job version's id.")),
    responses(
        (status = 200, description = "The resumed job.", body = Job),
        (status = 400, response = inline(documented::InvalidId)),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchJob)),
        (status = 409, description = "The job is not paused.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resume_job(
    State(state): State<AppState>,
    JobId(id): JobId,
    Actor(actor): Actor,
) -> Result<Json<Job>, ApiError> {
    let resumed = definitions::resume(&state.pool, id, &actor).await?;
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
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchJob)),
        (status = 409, description = "The job is retired (a newer version replaced it).", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = inline(documented::BodyTooLarge)),
    ))]
pub async fn new_version(
    State(state): State<AppState>,
    JobId(id): JobId,
    Actor(actor): Actor,
    ApiJson(body): ApiJson<NewVersion>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let now = Utc::now();
    let current = definitions::get(&state.pool, id).await?;
    let new = merge(&current, body)
        .validate(&Registered, actor, Some(now))
        .map_err(ApiError::Validation)?;
    // The store re-checks under a row lock: of concurrent calls, one wins and the rest get 409.
    let created = definitions::new_version(&state.pool, id, &new, ManagedBy::Api).await?;
    let live = instances::live_targets(&state.pool).await?;
    Ok((StatusCode::CREATED, Json(Job::new(created, now, &live))))
}

/// The optional body of `POST /jobs/{jobId}/run-now`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunNow {
    /// This run's payload instead of the job's (checked against the target like a job's);
    /// the job itself does not change.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
}

/// Requests a run now (allowed on active and paused jobs); a scheduler picks it up. An
/// optional `payload` replaces the job's for this run only.
#[utoipa::path(post, path = "/api/v2/admin/cron/jobs/{jobId}/run-now", tag = "jobs",
    params(("jobId" = Uuid, Path, description = "The job version's id.")),
    request_body(content = Option<RunNow>, description = "Optional: `{\"payload\": {...}}` for this run only."),
    responses(
        (status = 202, description = "The run, `pending` until a scheduler claims it.", body = JobRun,
            links(("GetRun" = (operation_id = "get_run", parameters(("runId" = "$response.body#/id")))))),
        (status = 400, description = "The id is not a UUID, or the payload does not fit the target (`errors` names the field).", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchJob)),
        (status = 409, description = "A run of the job is active (`active_run_id`; a `skipped` run was recorded), or the job is retired.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn run_now(
    State(state): State<AppState>,
    JobId(id): JobId,
    Actor(actor): Actor,
    OptionalJson(body): OptionalJson<RunNow>,
) -> Result<(StatusCode, Json<JobRun>), ApiError> {
    let payload = body.and_then(|b| b.payload);
    let outcome = actions::run_now(&state, id, &actor, payload.as_ref())
        .await
        .map_err(|refused| match refused {
            RunNowRefused::Invalid(e) => ApiError::Validation(vec![e]),
            RunNowRefused::Store(e) => e.into(),
        })?;
    match outcome {
        RunNowOutcome::Pending(run) => Ok((StatusCode::ACCEPTED, Json(run))),
        RunNowOutcome::Skipped { run, active_run_id } => Err(ApiError::Overlap {
            active_run_id,
            skipped_run_id: run.id,
        }),
    }
}

/// Retires a job: it stops firing, and its key is free for a new job. Runs in
/// flight finish. A job managed by a jobs file is retired by removing it from the file.
#[utoipa::path(delete, path = "/api/v2/admin/cron/jobs/{jobId}", tag = "jobs",
    params(("jobId" = Uuid, Path, description = "The job version's id.")),
    responses(
        (status = 200, description = "The job, now `retired` (`retired_by` is the admin).", body = Job),
        (status = 400, response = inline(documented::InvalidId)),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchJob)),
        (status = 409, description = "The job is already retired, or a jobs file manages it.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn retire_job(
    State(state): State<AppState>,
    JobId(id): JobId,
    Actor(actor): Actor,
) -> Result<Json<Job>, ApiError> {
    let retired = definitions::retire(&state.pool, id, &actor, ManagedBy::Api, &state.policy)
        .await?
        .announce();
    let live = instances::live_targets(&state.pool).await?;
    Ok(Json(Job::new(retired, Utc::now(), &live)))
}

/// Reads the live (active or paused) version of a job by its key, which stays the same across
/// versions while the id changes with each.
#[utoipa::path(get, path = "/api/v2/admin/cron/jobs/by-key/{jobKey}", tag = "jobs",
    params(("jobKey" = String, Path, description = "The job's key.")),
    responses(
        (status = 200, description = "The live version.", body = Job),
        (status = 400, description = "Not a valid job key.", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, description = "No live job has this key.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_job_by_key(
    State(state): State<AppState>,
    JobKeyParam(key): JobKeyParam,
) -> Result<Json<Job>, ApiError> {
    let definition = definitions::get_live(&state.pool, key.as_str()).await?;
    let live = instances::live_targets(&state.pool).await?;
    Ok(Json(Job::new(definition, Utc::now(), &live)))
}

/// `body` over `current`: omitted fields carry over, except the other schedule type's field.
fn merge(current: &JobDefinition, body: NewVersion) -> Draft {
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
        timeout: body
            .timeout
            .unwrap_or_else(|| current.timeout().map(|t| humantime::format_duration(t).to_string())),
        retry: body.retry.unwrap_or_else(|| Some(current.retry.into())),
    }
}
