//! `/incidents`: job keys whose runs went bad, and the cluster without a scheduler (SPEC §12).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, IncidentId, QueryParams};
use super::{parse_cursor, parse_limit};
use crate::domain::draft::validate_note;
use crate::domain::incident::Incident;
use crate::store::incidents::{self, IncidentFilter};
use crate::web::auth::Actor;
use crate::web::error::{documented, ApiError, Problem};
use crate::web::AppState;

/// A page of incidents, newest first (by `opened_at`).
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentList {
    pub items: Vec<Incident>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of `GET /incidents`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters parsed by `list_incidents`
pub struct IncidentListParams {
    /// `open` or `resolved`.
    status: Option<String>,
    job_key: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn parse_status(raw: &str) -> Result<String, String> {
    match raw {
        "open" | "resolved" => Ok(raw.to_owned()),
        _ => Err("must be open or resolved".to_owned()),
    }
}

/// Lists incidents, newest first.
#[utoipa::path(get, path = "/api/v2/admin/cron/incidents", tag = "incidents", params(IncidentListParams),
    responses(
        (status = 200, description = "A page of incidents.", body = IncidentList),
        (status = 400, response = inline(documented::InvalidQuery)),
        (status = 401, response = inline(documented::NoAdminToken)),
    ))]
pub async fn list_incidents(
    State(state): State<AppState>,
    mut query: QueryParams,
) -> Result<Json<IncidentList>, ApiError> {
    let filter = IncidentFilter {
        status: query.take("status", parse_status),
        job_key: query.take("job_key", |v| Ok(v.to_owned())),
    };
    let limit = query.take("limit", parse_limit).unwrap_or(super::DEFAULT_LIMIT);
    let cursor = query.take("cursor", parse_cursor);
    query.finish()?;
    let page = incidents::list(&state.pool, &filter, cursor, limit).await?;
    Ok(Json(IncidentList {
        items: page.items,
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// The body of acknowledge and resolve.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentNote {
    /// What you are doing about it, or why it is resolved: 5 to 300 characters after trimming.
    #[schema(value_type = String, required = true, min_length = 5, max_length = 300)]
    pub note: Option<String>,
}

/// Acknowledges an open incident: someone is on it. Recorded with the token's name and the
/// note, and sent to the webhooks as `incident.acknowledged`; the incident stays open until a
/// success (or someone) resolves it.
#[utoipa::path(post, path = "/api/v2/admin/cron/incidents/{incidentId}/acknowledge", tag = "incidents",
    request_body = IncidentNote,
    params(("incidentId" = Uuid, Path, description = "The incident's id.")),
    responses(
        (status = 200, description = "The incident, acknowledged.", body = Incident),
        (status = 400, description = "The id is not a UUID, or the note is missing or not 5 to 300 characters.", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchIncident)),
        (status = 409, description = "The incident is resolved, or someone acknowledged it already.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn acknowledge_incident(
    State(state): State<AppState>,
    IncidentId(id): IncidentId,
    Actor(actor): Actor,
    ApiJson(body): ApiJson<IncidentNote>,
) -> Result<Json<Incident>, ApiError> {
    let note = validate_note("note", body.note.as_deref(), "say what you are doing about it")
        .map_err(|e| ApiError::Validation(vec![e]))?;
    let acknowledged = incidents::acknowledge(&state.pool, id, &actor, note, &state.policy).await?;
    Ok(Json(acknowledged.announce()))
}

/// Resolves an open incident by hand, for what no run will resolve: a failed one-time job, a
/// run a deploy interrupted, a fix made elsewhere. Recorded with the token's name and the note
/// (`resolved_by` = `admin`), sent as `incident.resolved`; the key's next failures count anew.
#[utoipa::path(post, path = "/api/v2/admin/cron/incidents/{incidentId}/resolve", tag = "incidents",
    request_body = IncidentNote,
    params(("incidentId" = Uuid, Path, description = "The incident's id.")),
    responses(
        (status = 200, description = "The incident, resolved.", body = Incident),
        (status = 400, description = "The id is not a UUID, or the note is missing or not 5 to 300 characters.", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = inline(documented::NoAdminToken)),
        (status = 404, response = inline(documented::NoSuchIncident)),
        (status = 409, description = "The incident is resolved already.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resolve_incident(
    State(state): State<AppState>,
    IncidentId(id): IncidentId,
    Actor(actor): Actor,
    ApiJson(body): ApiJson<IncidentNote>,
) -> Result<Json<Incident>, ApiError> {
    let note = validate_note("note", body.note.as_deref(), "say why it is resolved")
        .map_err(|e| ApiError::Validation(vec![e]))?;
    let resolved = incidents::resolve_by_hand(&state.pool, id, &actor, note, &state.policy).await?;
    Ok(Json(resolved.announce()))
}
