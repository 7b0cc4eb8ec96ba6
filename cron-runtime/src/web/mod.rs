//! The HTTP side of `cronjobs api`: one router with two faces over one state.
//!
//! - [`api`]: the admin REST API (SPEC §7), its route table tested against the OpenAPI document;
//! - [`console`]: the admin console at `/admin` (server-rendered pages);
//! - [`state`], [`auth`], [`error`]: what both faces share (the pool, the token sets and roles,
//!   the problem-details errors).
//!
//! This module composes the two routers and applies the layers once (body limit, timeout,
//! panic catching, tracing, Sentry), then serves them.

pub mod actions;
pub mod api;
pub mod auth;
pub mod console;
pub mod error;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::config::ApiConfig;
use crate::domain::incident::Policy;
use crate::store::{self, schema};
use error::ApiError;
pub use state::AppState;

/// The largest request body accepted (SPEC §10).
pub const BODY_LIMIT: usize = 64 * 1024;
/// How long a request may take before it is answered with a 503 problem.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Both faces, with auth, body limit, timeout, panic catching and request tracing.
pub fn router(state: AppState) -> Router {
    api::router(state.clone())
        .nest("/admin", console::router(state.clone()))
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
