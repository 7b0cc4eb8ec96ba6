//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{health, incidents, jobs, metrics, runs, schedule, schedulers, targets};
use crate::domain::{JobStatus, ManagedBy, RunReason, RunStatus, ScheduleType, TriggerType};
use crate::store::CHANGES_CHANNEL;
use crate::web::error;

/// The admin API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "cronjobs admin API"),
    paths(
        health::healthz,
        health::readyz,
        metrics::metrics,
        openapi_json,
        jobs::create_job,
        jobs::list_jobs,
        jobs::get_job,
        jobs::pause_job,
        jobs::resume_job,
        jobs::new_version,
        jobs::run_now,
        jobs::retire_job,
        jobs::get_job_by_key,
        runs::list_runs,
        runs::get_run,
        runs::cancel_run,
        targets::list_targets,
        schedule::preview_schedule,
        schedulers::list_schedulers,
        incidents::list_incidents,
        incidents::acknowledge_incident,
        incidents::resolve_incident,
    ),
    components(schemas(
        error::Problem,
        error::FieldError,
        JobStatus,
        ManagedBy,
        ScheduleType,
        RunStatus,
        RunReason,
        TriggerType,
    )),
    modifiers(&Security, &Description),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Job definitions: create, version, pause, resume, run now, retire, look up by key."),
        (name = "runs", description = "Run history; cancel a run."),
        (name = "targets", description = "The targets compiled into this build."),
        (name = "schedule", description = "Cron expression previews."),
        (name = "schedulers", description = "Scheduler instances and whether they are alive."),
        (name = "incidents", description = "Alerts: job keys whose runs went bad, and the cluster without a scheduler; acknowledge and resolve them by hand."),
        (name = "health", description = "Liveness and readiness (no auth), metrics (admin token)."),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from CRON_ADMIN_TOKENS (`name:token` pairs); the name is recorded as the actor.",
                    ))
                    .build(),
            ),
        );
    }
}

struct Description;

impl Modify for Description {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.description = Some(format!(
            "Admin REST API of cronjobs, a durable cron service on PostgreSQL.\n\n\
             Every `/api/v2/admin/cron` route except this document requires `Authorization: Bearer <token>`. \
             Errors are RFC 9457 problem details (`application/problem+json`) with `errors: [{{field, message}}]` \
             naming every invalid field. Timestamps are RFC 3339, output in UTC. Lists are newest first with an \
             opaque `cursor`.\n\n\
             Every write a scheduler must see (create, pause, resume, new-version, retire, run-now, cancel) sends a \
             PostgreSQL NOTIFY on the channel `{CHANGES_CHANNEL}` in the same transaction; the payload is \
             `definition:<job id>`, `run:<run id>` or `cancel:<run id>`."
        ));
    }
}

/// The document, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        camel_case_link_fields(&mut document);
        document.to_string()
    })
}

/// utoipa 5.5 serializes the fields of a Link Object in snake case (`operation_id`), which no
/// OpenAPI tool reads; the specification spells them `operationId`, `operationRef` and
/// `requestBody`.
fn camel_case_link_fields(document: &mut serde_json::Value) {
    let Some(paths) = document.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}

/// This OpenAPI document (no auth).
#[utoipa::path(get, path = "/api/v2/admin/cron/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}
