//! `/schedulers`: the scheduler instances, and whether each is alive (SPEC §13).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::instances::{self, SchedulerInstance};
use crate::web::error::{documented, ApiError};
use crate::web::AppState;

/// Every known scheduler instance, alive ones first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerList {
    pub items: Vec<SchedulerInstance>,
}

/// Lists the scheduler instances: version, targets, last sign of life and whether it is alive
/// (heartbeated within 5 of its heartbeat intervals). A dead instance stays listed for a day.
#[utoipa::path(get, path = "/api/v2/admin/cron/schedulers", tag = "schedulers",
    responses(
        (status = 200, description = "The scheduler instances.", body = SchedulerList),
        (status = 401, response = inline(documented::NoAdminToken)),
    ))]
pub async fn list_schedulers(State(state): State<AppState>) -> Result<Json<SchedulerList>, ApiError> {
    Ok(Json(SchedulerList {
        items: instances::list(&state.pool).await?,
    }))
}
