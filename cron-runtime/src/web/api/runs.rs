//! `/runs`: run history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{parse_uuid, ApiJson, QueryParams, RunId};
use super::{parse_cursor, parse_enum, parse_limit};
use crate::domain::draft::{parse_time, validate_reason};
use crate::domain::{JobRun, RunReason, RunStatus, TriggerType};
use crate::store::runs::{self, RunFilter};
use crate::web::auth::Actor;
use crate::web::error::{documented, ApiError, Problem};
use crate::web::AppState;

/// A page of runs, newest first (by `scheduled_at`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub items: Vec<JobRun>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of `GET /runs`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters parsed by `list_runs`
pub struct RunListParams {
    /// Runs of this job version (a job id).
    job_id: Option<Uuid>,
    job_key: Option<String>,
    status: Option<RunStatus>,
    /// Why runs ended (e.g. `no_scheduler` with `status=missed`).
    reason: Option<RunReason>,
    target: Option<String>,
    trigger_type: Option<TriggerType>,
    /// Runs scheduled at or after this time (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Runs scheduled before this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists runs, newest first.
#[utoipa::path(get, path = "/api/v2/admin/cron/runs", tag = "runs", params(RunListParams),
    responses(
        (status = 200, description = "A page of runs.", body = RunList),
        (status = 400, response = inline(documented::InvalidQuery)),
        (status = 401, response = inline(documented::NoAdminToken)),
    ))]
pub async fn list_runs(State(state): State<AppState>, mut query: QueryParams) -> Result<Json<RunList>, ApiError> {
    let filter = RunFilter {
        job_id: query.take("job_id", parse_uuid),
        job_key: query.take("job_key", |v| Ok(v.to_owned())),
        status: query.take("status", parse_enum),
        reason: query.take("reason", parse_enum),
        target: query.take("target", |v| Ok(v.to_owned())),
        trigger_type: query.take("trigger_type", parse_enum),
        from: query.take("from", parse_time),
        to: query.take("to", parse_time),
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            query.error("to", "must not be before from");
        }
    }
    let limit = query.take("limit", parse_limit).unwrap_or(super::DEFAULT_LIMIT);
    let cursor = query.take("cursor", parse_cursor);
    query.finish()?;
    let page = runs::list(&state.pool, &filter, cursor, limit).await?;
    Ok(Json(RunList {
        items: page.items,
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// Reads one run.
#[utoipa::path(get, path = "/api/v2/admin/cron/runs/{runId}", tag = "runs",
    params(("runId" = Uuid, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run.", body = JobRun),
        (status = 400, response = inline(documented::InvalidId)),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchRun)),
    ))]
pub async fn get_run(State(state): State<AppState>, RunId(id): RunId) -> Result<Json<JobRun>, ApiError> {
    Ok(Json(runs::get(&state.pool, id).await?))
}

/// The body of `POST /runs/{runId}/cancel`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRun {
    /// Why the run is cancelled: 5 to 300 characters after trimming (stored in the run's `error`).
    #[schema(value_type = String, required = true, min_length = 5, max_length = 300)]
    pub reason: Option<String>,
}

/// Cancels a run: a `pending` one at once; a `running` one's scheduler is told, its handler's
/// `ctx.cancelled()` fires, and it ends `cancelled` when the handler returns (or is aborted
/// after `CRON_SHUTDOWN_GRACE`). The job's next slot runs as usual.
#[utoipa::path(post, path = "/api/v2/admin/cron/runs/{runId}/cancel", tag = "runs", request_body = CancelRun,
    params(("runId" = Uuid, Path, description = "The run's id.")),
    responses(
        (status = 202, description = "The run: `cancelled`, or still `running` with `cancel_requested_at` set until its handler returns.", body = JobRun),
        (status = 400, description = "The id is not a UUID, or the reason is missing or not 5 to 300 characters.", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchRun)),
        (status = 409, description = "The run already ended.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel_run(
    State(state): State<AppState>,
    RunId(id): RunId,
    Actor(actor): Actor,
    ApiJson(body): ApiJson<CancelRun>,
) -> Result<(StatusCode, Json<JobRun>), ApiError> {
    let reason =
        validate_reason(body.reason.as_deref(), "the run is cancelled").map_err(|e| ApiError::Validation(vec![e]))?;
    let run = runs::cancel(&state.pool, id, reason, &actor).await?;
    if run.status == RunStatus::Cancelled {
        crate::metrics::run_finished(&run);
    }
    Ok((StatusCode::ACCEPTED, Json(run)))
}
