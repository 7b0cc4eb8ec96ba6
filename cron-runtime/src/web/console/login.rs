//! Signing in and out: the token form, one-time codes, the session cookie.

// A page's error is itself a page (a `Response`), built at most once per request: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::layout::*;
use super::session::{self, cookie_value, csrf_matches, LOGIN_COOKIE, SESSION_COOKIE};
use crate::web::auth::identify;
use crate::web::AppState;

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

pub(super) fn safe_next(next: Option<&str>) -> String {
    // Only our own pages: never an absolute or protocol-relative URL.
    match next {
        Some(n) if n.starts_with("/admin/") && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/admin/jobs".to_owned(),
    }
}

pub(super) fn login_page(
    state: &AppState,
    nonce: &str,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let markup = layout(
        "Sign in",
        None,
        "",
        html! {
            div.signin {
                h1 { "Sign in" }
                p { "Paste your token from " code { "CRON_ADMIN_TOKENS" } " (admin) or " code { "CRON_VIEWER_TOKENS" } " (read-only)." }
                form method="post" action="/admin/login" {
                    input type="hidden" name="csrf" value=(state.console.login_csrf(nonce));
                    input type="hidden" name="next" value=(next);
                    (field("login", "token", "Token",
                        html! {
                            input type="password" id="login-token" name="token" autocomplete="current-password" required
                                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "login-token-error")];
                        },
                        error.map(str::to_owned), None))
                    button type="submit" { "Sign in" }
                }
            }
        },
    );
    let mut response = html_response(status, markup);
    let cookie = state
        .console
        .cookie(LOGIN_COOKIE, nonce, std::time::Duration::from_secs(3600));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub(super) fn login_nonce(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| cookie_value(c, LOGIN_COOKIE))
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| state.console.login_nonce(), str::to_owned)
}

pub(super) async fn login_form(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let nonce = login_nonce(&state, &headers);
    login_page(&state, &nonce, &safe_next(query.next.as_deref()), None, StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: Option<String>,
    csrf: Option<String>,
    next: Option<String>,
}

pub(super) async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let nonce = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| cookie_value(c, LOGIN_COOKIE))
        .map(str::to_owned);
    let csrf_ok = nonce
        .as_deref()
        .is_some_and(|n| csrf_matches(&state.console.login_csrf(n), form.csrf.as_deref()));
    let nonce = nonce.unwrap_or_else(|| state.console.login_nonce());
    if !csrf_ok {
        return login_page(
            &state,
            &nonce,
            &next,
            Some("The sign-in form expired (no valid CSRF token): try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let token = form.token.unwrap_or_default();
    let token = token.trim();
    if identify(&state, token).is_none() {
        return login_page(
            &state,
            &nonce,
            &next,
            Some("This token is not in CRON_ADMIN_TOKENS or CRON_VIEWER_TOKENS."),
            StatusCode::UNAUTHORIZED,
        );
    }
    signed_in(&state, &state.console.issue(token), &next)
}

pub(super) fn signed_in(state: &AppState, cookie: &str, next: &str) -> Response {
    let mut response = see_other(next);
    for value in [
        state.console.cookie(SESSION_COOKIE, cookie, session::MAX_AGE),
        state.console.clear_cookie(LOGIN_COOKIE),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[derive(Deserialize)]
pub(super) struct CodeQuery {
    code: Option<String>,
}

/// `cronjobs dev`'s one-time sign-in link.
pub(super) async fn login_with_code(State(state): State<AppState>, Query(query): Query<CodeQuery>) -> Response {
    match query
        .code
        .as_deref()
        .and_then(|code| state.console.redeem(&state, code))
    {
        Some(cookie) => signed_in(&state, &cookie, "/admin/jobs"),
        None => problem_page(
            None,
            StatusCode::UNAUTHORIZED,
            "This sign-in link was already used or has expired. Sign in with your token instead.",
        ),
    }
}

pub(super) async fn logout(State(state): State<AppState>) -> Response {
    let mut response = see_other("/admin/login");
    if let Ok(value) = HeaderValue::from_str(&state.console.clear_cookie(SESSION_COOKIE)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
