//! The admin REST API (SPEC §7): axum router, auth, problem-details errors, OpenAPI.
//!
//! Routes are declared once, in [`route_table`]: the router is built from it, and tests
//! compare it with the OpenAPI document.

pub mod auth;
pub mod error;
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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::config::{AdminToken, ApiConfig};
use crate::domain::incident::Policy;
use crate::store::schema;
use crate::store::{self, Cursor};
use error::ApiError;

/// Where the admin routes live.
pub const PREFIX: &str = "/api/v2/admin/cron";
/// The largest request body accepted (SPEC §10).
pub const BODY_LIMIT: usize = 64 * 1024;
/// How long a request may take before it is answered with a 503 problem.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Page size when `limit` is omitted.
pub const DEFAULT_LIMIT: usize = 50;
/// Bounds of `limit`.
pub const LIMIT: std::ops::RangeInclusive<usize> = 1..=200;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub admins: Arc<[AdminToken]>,
    /// Read-only tokens.
    pub viewers: Arc<[AdminToken]>,
    /// The console's session keys and one-time sign-in codes.
    pub console: Arc<crate::console::ConsoleState>,
    /// The last readiness answer, reused for a second: `/readyz` is unauthenticated.
    pub readiness: Arc<health::ReadinessCache>,
    /// How incidents are opened and resolved by what the handlers record (pause, retire).
    pub policy: Arc<Policy>,
}

impl AppState {
    /// State over `pool`, accepting `admins`' tokens (no viewers; a random console key, cookies
    /// without `Secure`).
    pub fn new(pool: PgPool, admins: Vec<AdminToken>) -> Self {
        AppState {
            pool,
            admins: admins.into(),
            viewers: Vec::new().into(),
            console: Arc::new(crate::console::ConsoleState::new(None, false)),
            readiness: Arc::default(),
            policy: Arc::default(),
        }
    }

    /// Resolves incidents and writes their webhook events under `policy` (the defaults: none
    /// delivered).
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// Also accepts `viewers`' tokens, read-only.
    pub fn with_viewers(mut self, viewers: Vec<AdminToken>) -> Self {
        self.viewers = viewers.into();
        self
    }

    /// Signs console sessions with `secret` (random when `None`); `secure` adds `Secure` to cookies.
    pub fn with_console(mut self, secret: Option<&crate::config::Secret>, secure: bool) -> Self {
        self.console = Arc::new(crate::console::ConsoleState::new(secret, secure));
        self
    }
}

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
    ]
}

/// Every route the router serves: method, path, whether it needs an admin.
pub fn routes() -> Vec<RouteInfo> {
    route_table().into_iter().map(|r| r.info).collect()
}

/// The API's router, with auth, body limit, timeout, panic catching and request tracing.
pub fn router(state: AppState) -> Router {
    let (mut public, mut admin) = (Router::new(), Router::new());
    for RouteDef { info, handler } in route_table() {
        if info.admin {
            admin = admin.route(info.path, handler);
        } else {
            public = public.route(info.path, handler);
        }
    }
    let admin = admin.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_admin));
    public
        .merge(admin)
        .nest("/admin", crate::console::router(state.clone()))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(timeout))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("request handler panicked");
            ApiError::Internal.into_response()
        }))
        .layer(TraceLayer::new_for_http())
        // Outermost: each request gets its own Sentry hub, so events it causes carry the
        // request (method, URL; headers only without credentials: `send_default_pii` is off).
        .layer(sentry_tower::SentryHttpLayer::new())
        .layer(sentry_tower::NewSentryLayer::<Request>::new_from_top())
        .with_state(state)
}

/// Answers a request that takes longer than [`REQUEST_TIMEOUT`] with a 503 problem.
async fn timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `cronjobs api`: connects, checks the schema, and serves on `HOST:PORT` until SIGTERM/SIGINT.
/// Also runs a watchdog (SPEC §11), so missed slots are recorded while every scheduler is down,
/// and delivers alert webhooks (SPEC §12).
pub async fn run(config: ApiConfig) -> anyhow::Result<()> {
    let pool = store::connect_with(&config.database_url, config.pool_size)
        .await
        .context("cannot connect to the database at DATABASE_URL")?;
    schema::ensure_current(&pool).await?;
    crate::metrics::install();
    let listener = tokio::net::TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    tracing::info!(
        address = %listener.local_addr()?,
        max_connections = config.max_connections(),
        "admin API listening"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let policy = Arc::new(Policy::from(&config.alerts));
    let watchdog = tokio::spawn(crate::maintenance::watchdog::run(
        store::side_pool(&pool, 1),
        config.missed_after,
        policy.clone(),
        stop.clone(),
    ));
    let webhooks = tokio::spawn(crate::alerts::webhooks::run(
        store::side_pool(&pool, 1),
        policy.clone(),
        config.alerts.webhook_secret.clone(),
        stop.clone(),
    ));
    let served = serve(
        listener,
        AppState::new(pool, config.admin_tokens)
            .with_viewers(config.viewer_tokens)
            .with_console(config.console_secret.as_ref(), config.secure_cookies)
            .with_policy(policy),
        crate::shutdown::signal(),
    )
    .await;
    stop.cancel();
    let _ = watchdog.await;
    let _ = webhooks.await;
    served?;
    tracing::info!("admin API stopped");
    Ok(())
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
