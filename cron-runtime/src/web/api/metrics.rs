//! `GET /metrics`: this process's Prometheus metrics (admin token required; the scheduler
//! serves its own on its `PORT`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::metrics::PROMETHEUS_CONTENT_TYPE;
use crate::store::instances;
use crate::web::error::documented;
use crate::web::AppState;

/// Prometheus metrics in the text exposition format (names in `docs/runbook.md`).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain"),
        (status = 401, response = inline(documented::NoAdminToken)),
    ))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Read at scrape time: the cluster's figure, whichever API replica is scraped.
    match instances::count_alive(&state.pool).await {
        Ok(alive) => crate::metrics::schedulers_alive(alive),
        Err(e) => tracing::warn!(error = %e, "cannot count the live schedulers for /metrics"),
    }
    let text = crate::metrics::install().render();
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], text).into_response()
}
