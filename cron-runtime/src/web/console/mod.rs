//! The admin console (SPEC §14): server-rendered pages at `/admin`, a sibling of the REST API.
//!
//! Pages read through the same `store/` functions as the REST handlers and validate forms with
//! the same `domain/` checks, so the console can show nothing the API would not and accept
//! nothing the API would refuse. Templates are `maud` macros, checked at compile time. Every
//! page works without JavaScript; `console.js` only refreshes lists and confirms destructive
//! actions. Sessions are signed cookies ([`session`]); every POST carries a CSRF token.

mod cluster;
mod incidents;
mod job_actions;
mod jobs;
mod layout;
mod login;
mod runs;
pub mod session;

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use sha2::{Digest, Sha256};

use crate::web::AppState;
pub use session::ConsoleState;
use session::{cookie_value, csrf_matches, Session, SESSION_COOKIE};

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");
const ICON: &str = include_str!("static/favicon.svg");

/// Content hashes of the static files: their URLs change when they do, so they can be cached forever.
static CSS_HASH: LazyLock<String> = LazyLock::new(|| short_hash(CSS));
static JS_HASH: LazyLock<String> = LazyLock::new(|| short_hash(JS));

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

/// No inline script or style anywhere: everything the page runs or styles with is ours, by URL.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, to be nested at `/admin`.
pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/", get(|| async { Redirect::to("/admin/jobs") }))
        .route("/jobs", get(jobs::jobs))
        .route("/jobs/{id}", get(jobs::job))
        .route("/jobs/{id}/pause", post(job_actions::pause))
        .route("/jobs/{id}/resume", post(job_actions::resume))
        .route("/jobs/{id}/run-now", post(job_actions::run_now))
        .route("/jobs/{id}/new-version", post(job_actions::new_version))
        .route("/jobs/{id}/retire", post(job_actions::retire))
        .route("/runs", get(runs::runs))
        .route("/runs/{id}", get(runs::run))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/incidents/{id}/acknowledge", post(incidents::acknowledge))
        .route("/incidents/{id}/resolve", post(incidents::resolve))
        .route("/targets", get(cluster::targets))
        .route("/schedulers", get(cluster::schedulers))
        .route("/attention", get(cluster::attention))
        .route("/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_session));
    Router::new()
        .route("/login", get(login::login_form).post(login::login))
        .route("/login/code", get(login::login_with_code))
        .route(
            "/static/console.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/static/console.js",
            get(|| async { asset(JS, "text/javascript; charset=utf-8") }),
        )
        .route("/static/favicon.svg", get(|| async { asset(ICON, "image/svg+xml") }))
        .merge(signed_in)
        .fallback(|| async { layout::not_found() })
        .layer(middleware::from_fn(security_headers))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // URLs carry the content hash (`?v=`), so a changed file is a new URL.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// The stylesheet's URL.
fn css_url() -> String {
    format!("/admin/static/console.css?v={}", *CSS_HASH)
}

/// The script's URL.
fn js_url() -> String {
    format!("/admin/static/console.js?v={}", *JS_HASH)
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The largest form accepted (the same limit as a REST body).
const FORM_LIMIT: usize = crate::web::BODY_LIMIT;

/// Middleware of every signed-in page: a valid session, or a redirect to sign in. On a POST, the
/// form's CSRF token must match the session's, and the session must be an admin's (except to
/// sign out): a viewer's or a forged POST is answered 403 before any handler runs.
async fn require_session(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let opened = request
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|cookies| cookie_value(cookies, SESSION_COOKIE))
        .and_then(|cookie| state.console.open(&state, cookie));
    let Some((session, refreshed)) = opened else {
        let next_path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/admin/jobs");
        let target = if request.method() == Method::GET {
            format!("/admin/login?next={}", layout::encode_component(next_path))
        } else {
            "/admin/login".to_owned()
        };
        return Redirect::to(&target).into_response();
    };
    let mut request = request;
    if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
            return layout::problem_page(Some(&session), StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
        };
        let form = Form::<Vec<(String, String)>>::from_request(
            Request::from_parts(parts.clone(), Body::from(bytes.clone())),
            &(),
        )
        .await
        .map(|Form(fields)| fields)
        .unwrap_or_default();
        let given = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
        if !csrf_matches(&session.csrf, given) {
            return layout::problem_page(
                Some(&session),
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console (no valid CSRF token). Reload the page and try again.",
            );
        }
        if !session.is_admin() && parts.uri.path() != "/admin/logout" && !parts.uri.path().ends_with("/logout") {
            return layout::problem_page(
                Some(&session),
                StatusCode::FORBIDDEN,
                "You signed in with a viewer token: you can see everything but change nothing.",
            );
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(session);
    let mut response = next.run(request).await;
    if let Some(value) = refreshed {
        let cookie = state.console.cookie(SESSION_COOKIE, &value, session::MAX_AGE);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Response> {
        // Absent only on a route mounted without `require_session`: send to sign-in.
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| Redirect::to("/admin/login").into_response())
    }
}
