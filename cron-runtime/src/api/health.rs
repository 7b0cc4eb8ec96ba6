//! `/healthz` (the process is up) and `/readyz` (it can serve: database and schema).

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::AppState;
use crate::store::schema::{self, SchemaStatus};

/// How long readiness waits for the database before calling it unreachable.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// The process is up, and which build it runs (so a deploy can tell the new build from the old).
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// `ok`.
    pub status: &'static str,
    /// The package version.
    pub version: &'static str,
    /// The commit, when the image or platform provides it (`CRONJOBS_COMMIT`,
    /// `RAILWAY_GIT_COMMIT_SHA`); null otherwise.
    pub commit: Option<&'static str>,
}

impl Liveness {
    /// This process's answer.
    pub fn now() -> Self {
        let build = crate::build_info();
        Liveness {
            status: "ok",
            version: build.version,
            commit: build.commit,
        }
    }
}

/// The process is up (no dependencies checked), with its version and commit (SPEC §15).
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The process is up.", body = Liveness)))]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness::now())
}

/// The database answers and has every migration this binary knows.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready to serve.", body = Health),
        (status = 503, description = "The database is unreachable or lacks migrations.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, schema::status(&state.pool)).await {
        Ok(Ok(SchemaStatus::Current | SchemaStatus::Ahead { .. })) => Ok(Json(Health { status: "ready".into() })),
        Ok(Ok(SchemaStatus::Behind { missing })) => Err(ApiError::NotReady(format!(
            "the database lacks migrations ({}): run `cronjobs migrate`",
            missing.join(", ")
        ))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            Err(ApiError::NotReady("the database is unreachable".into()))
        }
        Err(_) => Err(ApiError::NotReady(format!(
            "the database did not answer within {} seconds",
            READY_TIMEOUT.as_secs()
        ))),
    }
}
