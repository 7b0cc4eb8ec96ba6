//! The scheduler's own HTTP port (when `PORT` is set): `GET /healthz` for the platform's
//! health check and `GET /metrics` for Prometheus.
//!
//! No authentication: the port is meant for the private network (the platform's health
//! checker and a Prometheus scraper), never for a public domain. The metrics carry job
//! targets and counts, no payloads or secrets. The API's `/metrics` needs the admin token.

use std::net::{Ipv4Addr, SocketAddr};

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The routes: `/healthz` and `/metrics`.
pub fn router(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(crate::health::Liveness::now()) }))
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { ([(header::CONTENT_TYPE, crate::metrics::PROMETHEUS_CONTENT_TYPE)], text).into_response() }
            }),
        )
}

/// Binds `0.0.0.0:port` (an error names the port), so a taken port fails the start.
pub async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (PORT) for /healthz and /metrics: {e}"))
}

/// Serves [`router`] on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, metrics: PrometheusHandle, stop: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /healthz and /metrics");
    }
    let served = axum::serve(listener, router(metrics))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the /healthz and /metrics server stopped");
    }
}
