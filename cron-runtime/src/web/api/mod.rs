//! The admin REST API (SPEC §7): its routes, handlers and OpenAPI document (auth, state and
//! problem-details errors are the web layer's, shared with the console).
//!
//! Routes are declared once, in [`route_table`]: the router is built from it, and tests
//! compare it with the OpenAPI document.

pub mod extract;
pub mod health;
pub mod incidents;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod runs;
pub mod schedule;
pub mod schedulers;
pub mod targets;

use axum::handler::Handler;
use axum::middleware;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;

use super::{auth, AppState};
use crate::store::Cursor;

/// Where the admin routes live.
pub const PREFIX: &str = "/api/v2/admin/cron";
/// Page size when `limit` is omitted.
pub const DEFAULT_LIMIT: usize = 50;
/// Bounds of `limit`.
pub const LIMIT: std::ops::RangeInclusive<usize> = 1..=200;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    /// The method's name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One route the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteInfo {
    pub verb: Verb,
    /// The path, with `{param}` placeholders (the same syntax as OpenAPI's).
    pub path: &'static str,
    /// Whether an admin token is required.
    pub admin: bool,
}

struct RouteDef {
    info: RouteInfo,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(verb: Verb, path: &'static str, admin: bool, handler: H) -> RouteDef
where
    H: Handler<T, AppState>,
    T: 'static,
{
    RouteDef {
        info: RouteInfo { verb, path, admin },
        handler: on(verb.filter(), handler),
    }
}

macro_rules! admin_path {
    ($path:literal) => {
        concat!("/api/v2/admin/cron", $path)
    };
}

/// Every route, once.
fn route_table() -> Vec<RouteDef> {
    use Verb::{Delete, Get, Patch, Post};
    vec![
        route(Get, "/healthz", false, health::healthz),
        route(Get, "/readyz", false, health::readyz),
        route(Get, "/metrics", true, metrics::metrics),
        route(Get, admin_path!("/openapi.json"), false, openapi::openapi_json),
        route(Post, admin_path!("/jobs"), true, jobs::create_job),
        route(Get, admin_path!("/jobs"), true, jobs::list_jobs),
        route(Get, admin_path!("/jobs/{jobId}"), true, jobs::get_job),
        route(Delete, admin_path!("/jobs/{jobId}"), true, jobs::retire_job),
        route(Get, admin_path!("/jobs/by-key/{jobKey}"), true, jobs::get_job_by_key),
        route(Patch, admin_path!("/jobs/{jobId}/pause"), true, jobs::pause_job),
        route(Patch, admin_path!("/jobs/{jobId}/resume"), true, jobs::resume_job),
        route(Post, admin_path!("/jobs/{jobId}/new-version"), true, jobs::new_version),
        route(Post, admin_path!("/jobs/{jobId}/run-now"), true, jobs::run_now),
        route(Get, admin_path!("/runs"), true, runs::list_runs),
        route(Get, admin_path!("/runs/{runId}"), true, runs::get_run),
        route(Post, admin_path!("/runs/{runId}/cancel"), true, runs::cancel_run),
        route(Get, admin_path!("/targets"), true, targets::list_targets),
        route(Get, admin_path!("/schedule/preview"), true, schedule::preview_schedule),
        route(Get, admin_path!("/schedulers"), true, schedulers::list_schedulers),
        route(Get, admin_path!("/incidents"), true, incidents::list_incidents),
        route(
            Post,
            admin_path!("/incidents/{incidentId}/acknowledge"),
            true,
            incidents::acknowledge_incident,
        ),
        route(
            Post,
            admin_path!("/incidents/{incidentId}/resolve"),
            true,
            incidents::resolve_incident,
        ),
    ]
}

/// The API's routes, the admin ones behind [`auth::require_admin`]; [`super::router`] adds the
/// console and the layers.
pub fn router(state: AppState) -> Router<AppState> {
    let (mut public, mut admin) = (Router::new(), Router::new());
    for RouteDef { info, handler } in route_table() {
        if info.admin {
            admin = admin.route(info.path, handler);
        } else {
            public = public.route(info.path, handler);
        }
    }
    public.merge(admin.route_layer(middleware::from_fn_with_state(state, auth::require_admin)))
}

/// Every route the router serves: method, path, whether it needs an admin.
pub fn routes() -> Vec<RouteInfo> {
    route_table().into_iter().map(|r| r.info).collect()
}

/// Parses a page size.
fn parse_limit(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if LIMIT.contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number from {} to {}",
            LIMIT.start(),
            LIMIT.end()
        )),
    }
}

/// Parses an opaque cursor.
fn parse_cursor(raw: &str) -> Result<Cursor, String> {
    Cursor::decode(raw).map_err(|e| e.to_string())
}

/// Parses a snake_case enum value (status, schedule type, ...), listing the valid ones.
fn parse_enum<T: DeserializeOwned>(raw: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).map_err(|e| e.to_string())
}
