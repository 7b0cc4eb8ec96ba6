//! `/incidents`: job keys whose runs went bad, and the cluster without a scheduler (SPEC §12).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::QueryParams;
use super::{parse_cursor, parse_limit};
use crate::domain::incident::Incident;
use crate::store::incidents::{self, IncidentFilter};
use crate::web::error::{documented, ApiError};
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
