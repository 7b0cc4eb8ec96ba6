//! The API's one error type, and the one place errors become HTTP responses.
//!
//! Every error is an RFC 9457 problem (`application/problem+json`). Store errors map to
//! statuses here and nowhere else; database errors are logged and answered with a generic
//! 500, so no SQL or connection detail reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::StoreError;

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The error responses several routes share, for their OpenAPI annotations
/// (`response = inline(documented::NoAdminToken)`): each is a [`Problem`] body described once.
pub mod documented {
    // The types only describe responses; nothing builds them.
    #![allow(dead_code)]

    use super::Problem;

    #[derive(utoipa::ToResponse)]
    #[response(description = "No admin token.", content_type = "application/problem+json")]
    pub struct NoAdminToken(Problem);

    #[derive(utoipa::ToResponse)]
    #[response(description = "No job with this id.", content_type = "application/problem+json")]
    pub struct NoSuchJob(Problem);

    #[derive(utoipa::ToResponse)]
    #[response(description = "No run with this id.", content_type = "application/problem+json")]
    pub struct NoSuchRun(Problem);

    #[derive(utoipa::ToResponse)]
    #[response(description = "No incident with this id.", content_type = "application/problem+json")]
    pub struct NoSuchIncident(Problem);

    #[derive(utoipa::ToResponse)]
    #[response(description = "The id is not a UUID.", content_type = "application/problem+json")]
    pub struct InvalidId(Problem);

    #[derive(utoipa::ToResponse)]
    #[response(
        description = "A query parameter is invalid.",
        content_type = "application/problem+json"
    )]
    pub struct InvalidQuery(Problem);

    #[derive(utoipa::ToResponse)]
    #[response(description = "The body is over 64 KiB.", content_type = "application/problem+json")]
    pub struct BodyTooLarge(Problem);
}

/// A problem detail (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:cronjobs:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request, and how to fix it.
    pub detail: String,
    /// One entry per invalid field (empty unless the request was invalid).
    pub errors: Vec<FieldError>,
    /// On a run-now overlap: the run of this job that is still active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_run_id: Option<Uuid>,
    /// On a run-now overlap: the `skipped` run recorded for this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_run_id: Option<Uuid>,
}

pub use crate::domain::FieldError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or invalid; every problem found is listed.
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    /// 401: no bearer token, or not an admin's.
    #[error("an admin bearer token is required")]
    Unauthorized,
    /// 403: a viewer's token on a request that changes something.
    #[error("viewers may only read")]
    Forbidden,
    /// 404: no route with this path.
    #[error("no route")]
    RouteNotFound,
    /// 405: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: the body is larger than the limit.
    #[error("body too large")]
    PayloadTooLarge,
    /// 409: run-now found an active run and recorded a skipped one.
    #[error("a run of this job is still active")]
    Overlap { active_run_id: Uuid, skipped_run_id: Uuid },
    /// 503: the request took longer than the server allows.
    #[error("timed out")]
    Timeout,
    /// 503: the service cannot serve yet (readiness).
    #[error("not ready: {0}")]
    NotReady(String),
    /// 500: a bug (a panic); the details are in the log.
    #[error("internal error")]
    Internal,
    /// 404 / 409 / 500 by kind: see [`ApiError::status`].
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A 400 with a single field error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Overlap { .. } => StatusCode::CONFLICT,
            ApiError::Timeout | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(e) => match e {
                StoreError::JobNotFound(_)
                | StoreError::RunNotFound(_)
                | StoreError::NoLiveJob(_)
                | StoreError::IncidentNotFound(_) => StatusCode::NOT_FOUND,
                StoreError::KeyTaken { .. }
                | StoreError::WrongStatus { .. }
                | StoreError::ManagedElsewhere { .. }
                | StoreError::RunFinished { .. }
                | StoreError::IncidentResolved { .. }
                | StoreError::IncidentAcknowledged { .. } => StatusCode::CONFLICT,
                StoreError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The problem document of this error.
    pub fn problem(&self) -> Problem {
        let (kind, title, detail): (&str, &str, String) = match self {
            ApiError::Validation(errors) => (
                "validation",
                "Invalid request",
                match errors.as_slice() {
                    [one] => format!("{}: {}", one.field, one.message),
                    _ => format!("{} fields are invalid: see errors", errors.len()),
                },
            ),
            ApiError::Unauthorized => (
                "unauthorized",
                "Unauthorized",
                "send an admin token as `Authorization: Bearer <token>`: one of CRON_ADMIN_TOKENS, or under `cronjobs dev` the one it printed".into(),
            ),
            ApiError::Forbidden => (
                "forbidden",
                "Forbidden",
                "this token is a viewer's (CRON_VIEWER_TOKENS): it may read but not change anything".into(),
            ),
            ApiError::RouteNotFound => ("not-found", "Not found", "no route matches this path".into()),
            ApiError::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                "this path does not accept this method; see the OpenAPI document".into(),
            ),
            ApiError::PayloadTooLarge => (
                "payload-too-large",
                "Payload too large",
                format!("request bodies are limited to {} bytes", super::BODY_LIMIT),
            ),
            ApiError::Overlap { active_run_id, .. } => (
                "overlap",
                "Run already active",
                format!(
                    "run {active_run_id} of this job is still active, so this run was recorded as skipped (overlap policy: skip)"
                ),
            ),
            ApiError::Timeout => (
                "timeout",
                "Request timed out",
                format!("the request took longer than {} seconds; try again", super::REQUEST_TIMEOUT.as_secs()),
            ),
            ApiError::NotReady(why) => ("not-ready", "Not ready", why.clone()),
            ApiError::Internal => ("internal", "Internal server error", GENERIC_500.into()),
            ApiError::Store(e) => match e {
                StoreError::JobNotFound(_) => ("job-not-found", "Job not found", e.to_string()),
                StoreError::RunNotFound(_) => ("run-not-found", "Run not found", e.to_string()),
                StoreError::KeyTaken { .. } => ("job-key-taken", "Job key taken", e.to_string()),
                StoreError::WrongStatus { .. } => ("wrong-status", "Wrong job status", e.to_string()),
                StoreError::NoLiveJob(_) => ("job-not-found", "Job not found", e.to_string()),
                StoreError::ManagedElsewhere { .. } => ("managed-elsewhere", "Job managed elsewhere", e.to_string()),
                StoreError::RunFinished { .. } => ("run-finished", "Run already finished", e.to_string()),
                StoreError::IncidentNotFound(_) => ("incident-not-found", "Incident not found", e.to_string()),
                StoreError::IncidentResolved { .. } => ("incident-resolved", "Incident already resolved", e.to_string()),
                StoreError::IncidentAcknowledged { .. } => {
                    ("incident-acknowledged", "Incident already acknowledged", e.to_string())
                }
                StoreError::Database(_) => ("internal", "Internal server error", GENERIC_500.into()),
            },
        };
        let (active_run_id, skipped_run_id) = match self {
            ApiError::Overlap {
                active_run_id,
                skipped_run_id,
            } => (Some(*active_run_id), Some(*skipped_run_id)),
            _ => (None, None),
        };
        Problem {
            kind: format!("urn:cronjobs:problem:{kind}"),
            title: title.into(),
            status: self.status().as_u16(),
            detail,
            errors: match self {
                ApiError::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
            active_run_id,
            skipped_run_id,
        }
    }
}

const GENERIC_500: &str = "the server failed to handle this request; it has been logged";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(StoreError::Database(e)) = &self {
            crate::metrics::database_error("api request");
            tracing::error!(error = %e, "database error");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
