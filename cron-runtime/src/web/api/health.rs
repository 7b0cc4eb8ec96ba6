//! `/healthz` (the process is up) and `/readyz` (it can serve: database and schema).

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::health::Liveness;
use crate::store::schema::{self, SchemaStatus};
use crate::web::error::{ApiError, Problem};
use crate::web::AppState;

/// How long readiness waits for the database before calling it unreachable.
const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a readiness answer is reused: probes and anyone on the internet may call `/readyz`
/// as often as they like, and each real check costs two catalog queries.
const READY_CACHED_FOR: Duration = Duration::from_secs(1);

/// The last readiness answer (`Err` holds the 503's message) and when it was found.
#[derive(Debug, Default)]
pub struct ReadinessCache(std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>);

impl ReadinessCache {
    fn fresh(&self) -> Option<Result<(), String>> {
        let last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < READY_CACHED_FOR)
            .map(|(_, answer)| answer.clone())
    }

    fn store(&self, answer: &Result<(), String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), answer.clone()));
    }
}

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// The process is up (no dependencies checked), with its version and commit.
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
    let answer = match state.readiness.fresh() {
        Some(answer) => answer,
        None => {
            let answer = check_ready(&state).await;
            state.readiness.store(&answer);
            answer
        }
    };
    match answer {
        Ok(()) => Ok(Json(Health { status: "ready".into() })),
        Err(why) => Err(ApiError::NotReady(why)),
    }
}

async fn check_ready(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(READY_TIMEOUT, schema::status(&state.pool)).await {
        Ok(Ok(SchemaStatus::Current | SchemaStatus::Ahead { .. })) => Ok(()),
        Ok(Ok(SchemaStatus::Behind { missing })) => Err(format!(
            "the database lacks migrations ({}): run `cronjobs migrate`",
            missing.join(", ")
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            Err("the database is unreachable".into())
        }
        Err(_) => Err(format!(
            "the database did not answer within {} seconds",
            READY_TIMEOUT.as_secs()
        )),
    }
}
