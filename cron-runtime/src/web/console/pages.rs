//! The console's pages and form actions.

// A page's error is itself a page (a `Response`), built at most once per request: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::session::{self, cookie_value, csrf_matches, Session, LOGIN_COOKIE, SESSION_COOKIE};
use crate::domain::describe::{describe, preview};
use crate::domain::draft::{validate_payload, validate_reason};
use crate::domain::incident::{Incident, Recorded};
use crate::domain::{
    Draft, FieldError, JobDefinition, JobRun, JobStatus, ManagedBy, RunReason, RunStatus, Schedule, ScheduleType,
};
use crate::store::definitions::{self, JobFilter};
use crate::store::incidents::{self, IncidentFilter};
use crate::store::instances;
use crate::store::runs::{self, RunFilter, RunNowOutcome};
use crate::store::{Cursor, StoreError};
use crate::web::api::jobs::Job;
use crate::web::auth::identify;
use crate::web::error::ApiError;
use crate::web::AppState;

type PageResult = Result<Response, Response>;

// ---------------------------------------------------------------- layout and helpers

fn layout(title: &str, session: Option<&Session>, current: &str, body: Markup) -> Markup {
    let nav = [
        ("jobs", "/admin/jobs", "Jobs"),
        ("runs", "/admin/runs", "Runs"),
        ("targets", "/admin/targets", "Targets"),
        ("schedulers", "/admin/schedulers", "Schedulers"),
        ("attention", "/admin/attention", "Attention"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cronjobs" }
                link rel="icon" href="/admin/static/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href=(super::css_url());
                script src=(super::js_url()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/admin/jobs" { "cronjobs" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            ul {
                                @for (key, href, label) in nav {
                                    li {
                                        @if key == current {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form.signout method="post" action="/admin/logout" {
                            (csrf_field(session))
                            span.who { (session.name) " · " (session.role.as_str()) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page that only says what went wrong.
pub(super) fn problem_page(session: Option<&Session>, status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html_response(
        status,
        layout(
            title,
            session,
            "",
            html! {
                h1 { (title) }
                p.banner.error role="alert" { (message) }
                p { a href="/admin/jobs" { "Back to jobs" } }
            },
        ),
    )
}

pub(super) fn not_found() -> Response {
    problem_page(None, StatusCode::NOT_FOUND, "No console page has this address.")
}

/// A store error as a page, with the status and message the REST API would give.
fn store_error(session: &Session, e: StoreError) -> Response {
    let api = ApiError::Store(e);
    if let ApiError::Store(StoreError::Database(e)) = &api {
        tracing::error!(error = %e, "database error in the console");
    }
    problem_page(Some(session), api.status(), &api.problem().detail)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Percent-encodes a query-string component.
pub(super) fn encode_component(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn ts_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_owned(), ts)
}

fn time_el(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (ts(t)) } }
}

fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let (n, unit) = match secs.abs() {
        s if s < 60 => (s, "s"),
        s if s < 3600 => (s / 60, "min"),
        s if s < 86400 => (s / 3600, "h"),
        s => (s / 86400, "d"),
    };
    if secs >= 0 {
        format!("in {n} {unit}")
    } else {
        format!("{n} {unit} ago")
    }
}

fn blank(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn status_badge(status: &str) -> Markup {
    html! { span class={"badge s-" (status)} { (status) } }
}

fn run_status(run: &JobRun) -> Markup {
    html! {
        (status_badge(run.status.as_str()))
        @if let Some(reason) = run.reason { " " span.reason { (reason.as_str()) } }
    }
}

/// Field errors of one form, shown beside its fields.
#[derive(Debug, Default)]
struct Submitted {
    form: &'static str,
    values: HashMap<String, String>,
    errors: Vec<FieldError>,
    banner: Option<String>,
}

impl Submitted {
    fn error(&self, form: &str, field: &str) -> Option<String> {
        if self.form != form {
            return None;
        }
        let messages: Vec<&str> = self
            .errors
            .iter()
            .filter(|e| e.field == field || e.field.starts_with(&format!("{field}.")))
            .map(|e| e.message.as_str())
            .collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }

    fn value<'a>(&'a self, form: &str, field: &str, default: &'a str) -> &'a str {
        if self.form == form {
            self.values.get(field).map_or(default, String::as_str)
        } else {
            default
        }
    }
}

/// A labelled field with its error (linked by `aria-describedby`).
fn field(form: &str, name: &str, label: &str, input: Markup, error: Option<String>, hint: Option<&str>) -> Markup {
    let id = format!("{form}-{name}");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            @if let Some(hint) = hint { small.hint id={(id) "-hint"} { (hint) } }
            (input)
            @if let Some(error) = error {
                p.field-error id={(id) "-error"} role="alert" { (error) }
            }
        }
    }
}

fn described_by(form: &str, name: &str, error: bool, hint: bool) -> Option<String> {
    let id = format!("{form}-{name}");
    let mut parts = Vec::new();
    if hint {
        parts.push(format!("{id}-hint"));
    }
    if error {
        parts.push(format!("{id}-error"));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn text_input(form: &str, name: &str, value: &str, error: bool, hint: bool, required: bool) -> Markup {
    html! {
        input type="text" id={(form) "-" (name)} name=(name) value=(value) required[required]
            aria-invalid=[error.then_some("true")] aria-describedby=[described_by(form, name, error, hint)];
    }
}

fn textarea(form: &str, name: &str, value: &str, error: bool, hint: bool) -> Markup {
    html! {
        textarea id={(form) "-" (name)} name=(name) rows="4"
            aria-invalid=[error.then_some("true")] aria-describedby=[described_by(form, name, error, hint)] { (value) }
    }
}

// ---------------------------------------------------------------- sign-in

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

fn safe_next(next: Option<&str>) -> String {
    // Only our own pages: never an absolute or protocol-relative URL.
    match next {
        Some(n) if n.starts_with("/admin/") && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/admin/jobs".to_owned(),
    }
}

fn login_page(state: &AppState, nonce: &str, next: &str, error: Option<&str>, status: StatusCode) -> Response {
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

fn login_nonce(state: &AppState, headers: &axum::http::HeaderMap) -> String {
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

fn signed_in(state: &AppState, cookie: &str, next: &str) -> Response {
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

// ---------------------------------------------------------------- jobs

#[derive(Debug, Default, Deserialize)]
pub(super) struct JobsQuery {
    status: Option<String>,
    target: Option<String>,
    key: Option<String>,
}

fn run_strip(runs: &[JobRun]) -> Markup {
    html! {
        ol.strip aria-label="Last runs, oldest first" {
            @for run in runs.iter().rev() {
                li {
                    a class={"cell s-" (run.status.as_str())} href={"/admin/runs/" (run.id)}
                        title={(run.status.as_str()) " · " (ts(run.scheduled_at))} {
                        span.visually-hidden { (run.status.as_str()) " at " (ts(run.scheduled_at)) }
                    }
                }
            }
        }
    }
}

fn schedule_words(definition: &JobDefinition) -> Markup {
    match (definition.schedule_type, definition.cron_expression.as_deref()) {
        (ScheduleType::Recurring, Some(expression)) => html! {
            span.words { (describe(expression, &definition.timezone)) }
            br;
            code { (expression) }
        },
        _ => html! {
            span.words { "Once, at " (ts_opt(definition.run_at)) }
        },
    }
}

fn paused_note(definition: &JobDefinition) -> Markup {
    html! {
        @if definition.status == JobStatus::Paused {
            span.paused {
                "Paused by " strong { (definition.paused_by.as_deref().unwrap_or("?")) }
                @if let Some(at) = definition.paused_at { " " (relative(at, Utc::now())) }
                ": " q { (definition.pause_reason.as_deref().unwrap_or("")) }
            }
        }
    }
}

pub(super) async fn jobs(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<JobsQuery>,
) -> PageResult {
    let status = blank(query.status).unwrap_or_else(|| "live".to_owned());
    let target = blank(query.target);
    let key = blank(query.key);
    let statuses: Vec<Option<JobStatus>> = match status.as_str() {
        "live" => vec![Some(JobStatus::Active), Some(JobStatus::Paused)],
        "active" => vec![Some(JobStatus::Active)],
        "paused" => vec![Some(JobStatus::Paused)],
        "retired" => vec![Some(JobStatus::Retired)],
        _ => vec![None],
    };
    let mut definitions_found = Vec::new();
    for status in statuses {
        let filter = JobFilter {
            status,
            target: target.clone(),
            schedule_type: None,
            job_key: key.clone(),
        };
        let page = definitions::list(&state.pool, &filter, None, 200)
            .await
            .map_err(|e| store_error(&session, e))?;
        definitions_found.extend(page.items);
    }
    definitions_found.sort_by(|a, b| a.job_key.cmp(&b.job_key).then(b.version.cmp(&a.version)));
    let now = Utc::now();
    let live = instances::live_targets(&state.pool)
        .await
        .map_err(|e| store_error(&session, e))?;
    let mut rows = Vec::new();
    for definition in definitions_found {
        let filter = RunFilter {
            job_key: Some(definition.job_key.clone()),
            ..RunFilter::default()
        };
        let recent = runs::list(&state.pool, &filter, None, 20)
            .await
            .map_err(|e| store_error(&session, e))?;
        rows.push((Job::new(definition, now, &live), recent.items));
    }
    let targets: Vec<&str> = crate::registry::all().iter().map(|t| t.key).collect();
    let body = html! {
        h1 { "Jobs" }
        form.filters method="get" action="/admin/jobs" {
            div.field {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    @for (value, label) in [("live", "Active and paused"), ("active", "Active"), ("paused", "Paused"), ("retired", "Retired"), ("all", "All")] {
                        option value=(value) selected[status == value] { (label) }
                    }
                }
            }
            div.field {
                label for="f-target" { "Target" }
                select id="f-target" name="target" {
                    option value="" { "Any" }
                    @for t in &targets { option value=(t) selected[target.as_deref() == Some(*t)] { (t) } }
                }
            }
            div.field {
                label for="f-key" { "Job key" }
                input type="text" id="f-key" name="key" value=(key.as_deref().unwrap_or(""));
            }
            button type="submit" { "Filter" }
        }
        div data-refresh="jobs" {
            p.count { (rows.len()) " job" @if rows.len() != 1 { "s" } }
            table.list {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Schedule" } th scope="col" { "Next run" } th scope="col" { "Last 20 runs" } th scope="col" { "State" } } }
                tbody {
                    @for (job, recent) in &rows {
                        @let d = &job.definition;
                        tr data-job=(d.job_key) {
                            td data-label="Job" {
                                a href={"/admin/jobs/" (d.id)} { (d.job_key) }
                                " " span.muted { "v" (d.version) }
                                br;
                                span.muted { (d.target) }
                                @if !job.target_available && d.status != JobStatus::Retired {
                                    br; span.warn { "No live scheduler has this target" }
                                }
                            }
                            td data-label="Schedule" { (schedule_words(d)) }
                            td data-label="Next run" class="next-run" {
                                @match job.next_run_at {
                                    Some(at) => { (time_el(at)) br; span.muted { (relative(at, now)) } }
                                    None => { "—" }
                                }
                            }
                            td data-label="Last 20 runs" { (run_strip(recent)) }
                            td data-label="State" {
                                (status_badge(d.status.as_str()))
                                " " span.muted { @if d.managed_by == ManagedBy::File { "file" } @else { "API" } }
                                (paused_note(d))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Jobs", Some(&session), "jobs", body),
    ))
}

pub(super) async fn job(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> PageResult {
    let id = parse_id(&session, &id)?;
    job_page(&state, &session, id, Submitted::default(), StatusCode::OK).await
}

fn parse_id(session: &Session, raw: &str) -> Result<Uuid, Response> {
    raw.parse()
        .map_err(|_| problem_page(Some(session), StatusCode::NOT_FOUND, "No job or run has this id."))
}

/// What changed from `before` to `after`, field by field.
fn changes(before: &JobDefinition, after: &JobDefinition) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: {a} → {b}"));
        }
    };
    diff("target", before.target.clone(), after.target.clone());
    diff(
        "schedule type",
        before.schedule_type.to_string(),
        after.schedule_type.to_string(),
    );
    diff(
        "cron expression",
        before.cron_expression.clone().unwrap_or_else(|| "—".into()),
        after.cron_expression.clone().unwrap_or_else(|| "—".into()),
    );
    diff("run at", ts_opt(before.run_at), ts_opt(after.run_at));
    diff("timezone", before.timezone.clone(), after.timezone.clone());
    diff("payload", before.payload.to_string(), after.payload.to_string());
    diff(
        "description",
        before.description.clone().unwrap_or_else(|| "—".into()),
        after.description.clone().unwrap_or_else(|| "—".into()),
    );
    out
}

async fn job_page(
    state: &AppState,
    session: &Session,
    id: Uuid,
    submitted: Submitted,
    status: StatusCode,
) -> PageResult {
    let definition = definitions::get(&state.pool, id)
        .await
        .map_err(|e| store_error(session, e))?;
    let live = instances::live_targets(&state.pool)
        .await
        .map_err(|e| store_error(session, e))?;
    let now = Utc::now();
    let job = Job::new(definition, now, &live);
    let d = &job.definition;
    let versions = definitions::list(
        &state.pool,
        &JobFilter {
            job_key: Some(d.job_key.clone()),
            ..JobFilter::default()
        },
        None,
        50,
    )
    .await
    .map_err(|e| store_error(session, e))?
    .items;
    let recent = runs::list(
        &state.pool,
        &RunFilter {
            job_key: Some(d.job_key.clone()),
            ..RunFilter::default()
        },
        None,
        20,
    )
    .await
    .map_err(|e| store_error(session, e))?
    .items;
    let job_incidents = incidents::list(
        &state.pool,
        &IncidentFilter {
            job_key: Some(d.job_key.clone()),
            ..IncidentFilter::default()
        },
        None,
        10,
    )
    .await
    .map_err(|e| store_error(session, e))?
    .items;
    let schedule = d
        .cron_expression
        .as_deref()
        .and_then(|e| Schedule::parse(e, &d.timezone).ok());
    let (fire_times, next_dst) = match (&schedule, d.status) {
        (Some(s), JobStatus::Active | JobStatus::Paused) => preview(s, now, 10),
        _ => (Vec::new(), None),
    };
    let admin = session.is_admin();
    let live_job = d.status != JobStatus::Retired;
    let api_managed = d.managed_by == ManagedBy::Api;
    let payload_text = pretty(&d.payload);
    let body = html! {
        p.crumbs { a href="/admin/jobs" { "Jobs" } " / " }
        h1 { (d.job_key) " " span.muted { "v" (d.version) } }
        @if let Some(banner) = &submitted.banner { p.banner.error role="alert" { (banner) } }
        section aria-labelledby="def-h" {
            h2 id="def-h" { "Definition" }
            dl.props {
                dt { "Status" } dd { (status_badge(d.status.as_str())) " " (paused_note(d)) }
                dt { "Schedule" } dd { (schedule_words(d)) }
                dt { "Next run" } dd { @match job.next_run_at { Some(at) => { (time_el(at)) " (" (relative(at, now)) ")" } None => { "—" } } }
                dt { "Target" } dd {
                    a href="/admin/targets" { (d.target) }
                    @if !job.target_available && live_job { " " span.warn { "No live scheduler has this target" } }
                }
                dt { "Managed by" } dd { @if api_managed { "the API" } @else { "a jobs file (cronjobs apply)" } }
                dt { "Description" } dd { (d.description.as_deref().unwrap_or("—")) }
                dt { "Payload" } dd { pre { code { (payload_text) } } }
                dt { "Created" } dd { (ts(d.created_at)) " by " (d.created_by) }
                @if let Some(at) = d.retired_at { dt { "Retired" } dd { (ts(at)) " by " (d.retired_by.as_deref().unwrap_or("?")) } }
                dt { "Id" } dd { code { (d.id) } }
            }
        }
        @if admin && live_job {
            section.actions aria-labelledby="act-h" {
                h2 id="act-h" { "Actions" }
                div.action-grid {
                    @if d.status == JobStatus::Active {
                        form method="post" action={"/admin/jobs/" (d.id) "/pause"} {
                            h3 { "Pause" }
                            (csrf_field(session))
                            @let err = submitted.error("pause", "reason");
                            (field("pause", "reason", "Reason", text_input("pause", "reason", submitted.value("pause", "reason", ""), err.is_some(), true, false), err, Some("Why, in 5 to 300 characters; shown to everyone.")))
                            button type="submit" { "Pause" }
                        }
                    }
                    @if d.status == JobStatus::Paused {
                        form method="post" action={"/admin/jobs/" (d.id) "/resume"} {
                            h3 { "Resume" }
                            (csrf_field(session))
                            p.muted { "Slots count from now on; the paused stretch is not replayed." }
                            button type="submit" { "Resume" }
                        }
                    }
                    form method="post" action={"/admin/jobs/" (d.id) "/run-now"} {
                        h3 { "Run now" }
                        (csrf_field(session))
                        @let err = submitted.error("run-now", "payload");
                        (field("run-now", "payload", "Payload for this run (optional JSON)", textarea("run-now", "payload", submitted.value("run-now", "payload", ""), err.is_some(), true), err, Some("Empty: the job's payload.")))
                        button type="submit" { "Run now" }
                    }
                    @if api_managed {
                        form method="post" action={"/admin/jobs/" (d.id) "/new-version"} {
                            h3 { "New version" }
                            (csrf_field(session))
                            @if d.schedule_type == ScheduleType::Recurring {
                                @let err = submitted.error("new-version", "cron_expression");
                                (field("new-version", "cron_expression", "Cron expression", text_input("new-version", "cron_expression", submitted.value("new-version", "cron_expression", d.cron_expression.as_deref().unwrap_or("")), err.is_some(), false, true), err, None))
                            } @else {
                                @let current = d.run_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                                @let err = submitted.error("new-version", "run_at");
                                (field("new-version", "run_at", "Run at (RFC 3339)", text_input("new-version", "run_at", submitted.value("new-version", "run_at", &current), err.is_some(), false, true), err, None))
                            }
                            @let err = submitted.error("new-version", "timezone");
                            (field("new-version", "timezone", "Timezone", text_input("new-version", "timezone", submitted.value("new-version", "timezone", &d.timezone), err.is_some(), false, true), err, None))
                            @let err = submitted.error("new-version", "target");
                            (field("new-version", "target", "Target", text_input("new-version", "target", submitted.value("new-version", "target", &d.target), err.is_some(), false, true), err, None))
                            @let err = submitted.error("new-version", "payload");
                            (field("new-version", "payload", "Payload (JSON)", textarea("new-version", "payload", submitted.value("new-version", "payload", &payload_text), err.is_some(), false), err, None))
                            @let err = submitted.error("new-version", "description");
                            (field("new-version", "description", "Description", text_input("new-version", "description", submitted.value("new-version", "description", d.description.as_deref().unwrap_or("")), err.is_some(), false, false), err, None))
                            button type="submit" { "Save as new version" }
                        }
                        form method="post" action={"/admin/jobs/" (d.id) "/retire"} data-confirm={"Retire " (d.job_key) "? It stops firing and its key becomes free."} {
                            h3 { "Retire" }
                            (csrf_field(session))
                            p.muted { "The job stops firing; runs in flight finish." }
                            button.danger type="submit" { "Retire" }
                        }
                    } @else {
                        p.muted { "A jobs file manages this job: change or remove it there and run " code { "cronjobs apply" } "." }
                    }
                }
            }
        }
        @if !fire_times.is_empty() {
            section aria-labelledby="next-h" {
                h2 id="next-h" { "Next " (fire_times.len()) " fire times" }
                table.list.preview {
                    thead { tr { th scope="col" { "In " (d.timezone) } th scope="col" { "UTC" } th scope="col" { "Note" } } }
                    tbody {
                        @for t in &fire_times {
                            tr { td data-label="Local" { (t.local) } td data-label="UTC" { (ts(t.at)) } td data-label="Note" { (t.note.as_deref().unwrap_or("")) } }
                        }
                    }
                }
                @if let Some(t) = &next_dst {
                    p.dst-note { "Next daylight-saving change: " strong { (t.local) } " — " (t.note.as_deref().unwrap_or("")) }
                }
            }
        }
        section aria-labelledby="ver-h" {
            h2 id="ver-h" { "Versions" }
            ol.versions reversed {
                @for (i, v) in versions.iter().enumerate() {
                    li {
                        a href={"/admin/jobs/" (v.id)} { "v" (v.version) } " " (status_badge(v.status.as_str()))
                        " · " (ts(v.created_at)) " by " (v.created_by)
                        @if let Some(previous) = versions.get(i + 1) {
                            ul.changes {
                                @for change in changes(previous, v) { li { (change) } }
                            }
                        } @else {
                            " · first version"
                        }
                    }
                }
            }
        }
        section aria-labelledby="inc-h" {
            h2 id="inc-h" { "Incidents" }
            (incidents_table(&job_incidents))
        }
        section aria-labelledby="runs-h" {
            h2 id="runs-h" { "Recent runs" }
            (runs_table(&recent))
            p { a href={"/admin/runs?job_key=" (encode_component(&d.job_key))} { "All runs of " (d.job_key) } }
        }
    };
    Ok(html_response(status, layout(&d.job_key, Some(session), "jobs", body)))
}

/// Incidents, newest first, each one click from the run that last failed.
fn incidents_table(items: &[Incident]) -> Markup {
    html! {
        @if items.is_empty() {
            p.muted { "None." }
        } @else {
            table.list {
                thead { tr { th scope="col" { "Incident" } th scope="col" { "Opened" } th scope="col" { "Failures" } th scope="col" { "Last error" } th scope="col" { "Status" } } }
                tbody {
                    @for i in items {
                        tr {
                            td data-label="Incident" {
                                @match (&i.job_key, i.job_id) {
                                    (Some(key), Some(id)) => a href={"/admin/jobs/" (id)} { (key) },
                                    (Some(key), None) => (key),
                                    _ => "no scheduler alive",
                                }
                            }
                            td data-label="Opened" { (ts(i.opened_at)) }
                            td data-label="Failures" { (i.failures) }
                            td data-label="Last error" {
                                @if let Some(run) = i.last_run_id {
                                    a href={"/admin/runs/" (run)} { "last failing run" } " "
                                }
                                span.muted { (i.last_reason.as_deref().unwrap_or("")) " " (i.last_error.as_deref().unwrap_or("")) }
                            }
                            td data-label="Status" {
                                (status_badge(&i.status))
                                @if let Some(by) = &i.resolved_by { " " span.muted { "by " (by) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn runs_table(items: &[JobRun]) -> Markup {
    html! {
        @if items.is_empty() {
            p.muted { "No runs." }
        } @else {
            table.list.runs {
                thead { tr { th scope="col" { "Run" } th scope="col" { "Job" } th scope="col" { "Status" } th scope="col" { "Trigger" } th scope="col" { "Duration" } } }
                tbody {
                    @for run in items {
                        tr data-run=(run.id) {
                            td data-label="Scheduled" { a href={"/admin/runs/" (run.id)} { (ts(run.scheduled_at)) } }
                            td data-label="Job" { (run.job_key) " " span.muted { "v" (run.job_version) } }
                            td data-label="Status" { (run_status(run)) }
                            td data-label="Trigger" { (run.trigger_type.as_str()) @if let Some(by) = &run.triggered_by { " by " (by) } }
                            td data-label="Duration" { @if let Some(ms) = run.duration_ms { (ms) " ms" } @else { "—" } }
                        }
                    }
                }
            }
        }
    }
}

type FormFields = Form<HashMap<String, String>>;

fn submitted(form: &'static str, values: HashMap<String, String>, errors: Vec<FieldError>) -> Submitted {
    Submitted {
        form,
        values,
        errors,
        banner: None,
    }
}

/// A store conflict (wrong status, managed elsewhere, ...) shown on the job page.
async fn job_conflict(state: &AppState, session: &Session, id: Uuid, e: StoreError) -> PageResult {
    if matches!(e, StoreError::Database(_) | StoreError::JobNotFound(_)) {
        return Err(store_error(session, e));
    }
    let api = ApiError::Store(e);
    let banner = Some(api.problem().detail);
    job_page(
        state,
        session,
        id,
        Submitted {
            banner,
            ..Submitted::default()
        },
        api.status(),
    )
    .await
}

pub(super) async fn pause(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): FormFields,
) -> PageResult {
    let id = parse_id(&session, &id)?;
    let reason = match validate_reason(form.get("reason").map(String::as_str), "the job is paused") {
        Ok(reason) => reason.to_owned(),
        Err(e) => {
            return job_page(
                &state,
                &session,
                id,
                submitted("pause", form, vec![e]),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    match definitions::pause(&state.pool, id, &reason, &session.name, &state.policy)
        .await
        .map(Recorded::announce)
    {
        Ok(_) => Ok(see_other(&format!("/admin/jobs/{id}"))),
        Err(e) => job_conflict(&state, &session, id, e).await,
    }
}

pub(super) async fn resume(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> PageResult {
    let id = parse_id(&session, &id)?;
    match definitions::resume(&state.pool, id, &session.name).await {
        Ok(_) => Ok(see_other(&format!("/admin/jobs/{id}"))),
        Err(e) => job_conflict(&state, &session, id, e).await,
    }
}

fn parse_json(field: &str, text: &str) -> Result<Option<Value>, FieldError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| FieldError::new(field, format!("is not valid JSON: {e}")))
}

pub(super) async fn run_now(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): FormFields,
) -> PageResult {
    let id = parse_id(&session, &id)?;
    let text = form.get("payload").cloned().unwrap_or_default();
    let payload = match parse_json("payload", &text) {
        Ok(payload) => payload,
        Err(e) => {
            return job_page(
                &state,
                &session,
                id,
                submitted("run-now", form, vec![e]),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    if let Some(payload) = &payload {
        let job = definitions::get(&state.pool, id)
            .await
            .map_err(|e| store_error(&session, e))?;
        if let Err(e) = validate_payload(&job.target, payload) {
            return job_page(
                &state,
                &session,
                id,
                submitted("run-now", form, vec![e]),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    }
    match runs::request_run(&state.pool, id, &session.name, payload.as_ref()).await {
        Ok(RunNowOutcome::Pending(run)) => Ok(see_other(&format!("/admin/runs/{}", run.id))),
        Ok(RunNowOutcome::Skipped { run, active_run_id }) => {
            crate::metrics::run_finished(&run);
            let banner = format!(
                "Run {active_run_id} of this job is still active, so this request was recorded as skipped (overlap policy: skip)."
            );
            job_page(
                &state,
                &session,
                id,
                Submitted {
                    banner: Some(banner),
                    ..Submitted::default()
                },
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => job_conflict(&state, &session, id, e).await,
    }
}

pub(super) async fn new_version(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): FormFields,
) -> PageResult {
    let id = parse_id(&session, &id)?;
    let current = definitions::get(&state.pool, id)
        .await
        .map_err(|e| store_error(&session, e))?;
    let get = |name: &str| form.get(name).map(|v| v.trim().to_owned());
    let payload = match parse_json("payload", &get("payload").unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => {
            return job_page(
                &state,
                &session,
                id,
                submitted("new-version", form, vec![e]),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    let recurring = current.schedule_type == ScheduleType::Recurring;
    let draft = Draft {
        job_key: Some(current.job_key.clone()),
        target: get("target"),
        schedule_type: Some(current.schedule_type.as_str().to_owned()),
        cron_expression: if recurring { get("cron_expression") } else { None },
        run_at: if recurring { None } else { get("run_at") },
        timezone: get("timezone").filter(|t| !t.is_empty()),
        payload,
        description: get("description").filter(|d| !d.is_empty()),
    };
    let new = match draft.validate(session.name.clone(), Some(Utc::now())) {
        Ok(new) => new,
        Err(errors) => {
            return job_page(
                &state,
                &session,
                id,
                submitted("new-version", form, errors),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    match definitions::new_version(&state.pool, id, &new, ManagedBy::Api).await {
        Ok(created) => Ok(see_other(&format!("/admin/jobs/{}", created.id))),
        Err(e) => job_conflict(&state, &session, id, e).await,
    }
}

pub(super) async fn retire(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> PageResult {
    let id = parse_id(&session, &id)?;
    match definitions::retire(&state.pool, id, &session.name, ManagedBy::Api, &state.policy)
        .await
        .map(Recorded::announce)
    {
        Ok(_) => Ok(see_other(&format!("/admin/jobs/{id}"))),
        Err(e) => job_conflict(&state, &session, id, e).await,
    }
}

// ---------------------------------------------------------------- runs

#[derive(Debug, Default, Deserialize)]
pub(super) struct RunsQuery {
    job_key: Option<String>,
    status: Option<String>,
    reason: Option<String>,
    target: Option<String>,
    trigger_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

fn parse_enum<T: serde::de::DeserializeOwned>(raw: &str) -> Option<T> {
    serde_json::from_value(Value::String(raw.to_owned())).ok()
}

const RUN_STATUSES: [&str; 7] = [
    "pending",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "missed",
    "cancelled",
];
const RUN_REASONS: [&str; 15] = [
    "overlap",
    "error",
    "panic",
    "timeout",
    "stale",
    "shutdown",
    "scheduler_lost",
    "fenced",
    "cancelled",
    "no_scheduler",
    "target_unavailable",
    "database_unreachable",
    "overloaded",
    "not_started",
    "retired",
];

pub(super) async fn runs(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<RunsQuery>,
) -> PageResult {
    let job_key = blank(query.job_key);
    let status = blank(query.status);
    let reason = blank(query.reason);
    let target = blank(query.target);
    let trigger = blank(query.trigger_type);
    let from = blank(query.from);
    let to = blank(query.to);
    let filter = RunFilter {
        job_id: None,
        job_key: job_key.clone(),
        status: status.as_deref().and_then(parse_enum::<RunStatus>),
        reason: reason.as_deref().and_then(parse_enum::<RunReason>),
        target: target.clone(),
        trigger_type: trigger.as_deref().and_then(parse_enum),
        from: from.as_deref().and_then(|t| crate::domain::draft::parse_time(t).ok()),
        to: to.as_deref().and_then(|t| crate::domain::draft::parse_time(t).ok()),
    };
    let cursor = query.cursor.as_deref().and_then(|c| Cursor::decode(c).ok());
    let page = runs::list(&state.pool, &filter, cursor, 50)
        .await
        .map_err(|e| store_error(&session, e))?;
    let next = page.next_cursor.map(|c| {
        let mut q = vec![format!("cursor={}", encode_component(&c.encode()))];
        for (k, v) in [
            ("job_key", &job_key),
            ("status", &status),
            ("reason", &reason),
            ("target", &target),
            ("trigger_type", &trigger),
            ("from", &from),
            ("to", &to),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", encode_component(v)));
            }
        }
        format!("/admin/runs?{}", q.join("&"))
    });
    let reasons: Vec<&str> = RUN_REASONS
        .into_iter()
        .filter(|r| parse_enum::<RunReason>(r).is_some())
        .collect();
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/admin/runs" {
            div.field { label for="r-key" { "Job key" } input type="text" id="r-key" name="job_key" value=(job_key.as_deref().unwrap_or("")); }
            div.field { label for="r-status" { "Status" } select id="r-status" name="status" {
                option value="" { "Any" }
                @for s in RUN_STATUSES { option value=(s) selected[status.as_deref() == Some(s)] { (s) } }
            } }
            div.field { label for="r-reason" { "Reason" } select id="r-reason" name="reason" {
                option value="" { "Any" }
                @for r in &reasons { option value=(r) selected[reason.as_deref() == Some(*r)] { (r) } }
            } }
            div.field { label for="r-target" { "Target" } input type="text" id="r-target" name="target" value=(target.as_deref().unwrap_or("")); }
            div.field { label for="r-trigger" { "Trigger" } select id="r-trigger" name="trigger_type" {
                option value="" { "Any" }
                @for t in ["scheduled", "manual"] { option value=(t) selected[trigger.as_deref() == Some(t)] { (t) } }
            } }
            div.field { label for="r-from" { "From (RFC 3339)" } input type="text" id="r-from" name="from" value=(from.as_deref().unwrap_or("")) placeholder="2030-01-01T00:00:00Z"; }
            div.field { label for="r-to" { "To (RFC 3339)" } input type="text" id="r-to" name="to" value=(to.as_deref().unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        div data-refresh="runs" {
            (runs_table(&page.items))
        }
        @if let Some(next) = next { p { a href=(next) { "Older runs" } } }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Runs", Some(&session), "runs", body),
    ))
}

pub(super) async fn run(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> PageResult {
    let id = parse_id(&session, &id)?;
    run_page(&state, &session, id, Submitted::default(), StatusCode::OK).await
}

async fn run_page(
    state: &AppState,
    session: &Session,
    id: Uuid,
    submitted: Submitted,
    status: StatusCode,
) -> PageResult {
    let run = runs::get(&state.pool, id).await.map_err(|e| store_error(session, e))?;
    let mut timeline: Vec<(DateTime<Utc>, String)> = vec![
        (run.created_at, "recorded".to_owned()),
        (run.scheduled_at, format!("scheduled ({})", run.trigger_type.as_str())),
    ];
    if let Some(at) = run.started_at {
        timeline.push((
            at,
            format!(
                "started on {}",
                run.scheduler_instance.as_deref().unwrap_or("a scheduler")
            ),
        ));
    }
    if let Some(at) = run.cancel_requested_at {
        timeline.push((
            at,
            format!("cancel requested by {}", run.cancelled_by.as_deref().unwrap_or("?")),
        ));
    }
    if let Some(at) = run.finished_at {
        timeline.push((at, format!("ended {}", run.status.as_str())));
    }
    timeline.sort_by_key(|(at, _)| *at);
    let body = html! {
        p.crumbs { a href="/admin/runs" { "Runs" } " / " }
        h1 { "Run of " a href={"/admin/jobs/" (run.job_definition_id)} { (run.job_key) } " " span.muted { "v" (run.job_version) } }
        @if let Some(banner) = &submitted.banner { p.banner.error role="alert" { (banner) } }
        div data-refresh="run" {
            dl.props {
                dt { "Status" } dd.run-status { (run_status(&run)) }
                dt { "Trigger" } dd { (run.trigger_type.as_str()) @if let Some(by) = &run.triggered_by { " by " (by) } }
                dt { "Target" } dd { (run.target) }
                dt { "Instance" } dd { (run.scheduler_instance.as_deref().unwrap_or("—")) }
                dt { "Duration" } dd { @if let Some(ms) = run.duration_ms { (ms) " ms" } @else { "—" } }
                dt { "Id" } dd { code { (run.id) } }
            }
            h2 { "Timeline" }
            ol.timeline {
                @for (at, what) in &timeline { li { (time_el(*at)) " — " (what) } }
            }
            @if let Some(error) = &run.error { h2 { "Error" } pre.error-text { (error) } }
            @if let Some(output) = &run.output { h2 { "Output" } pre { code { (pretty(output)) } } }
            @if let Some(payload) = &run.payload { h2 { "Payload (this run only)" } pre { code { (pretty(payload)) } } }
        }
        @if session.is_admin() && !run.status.is_terminal() {
            section.actions aria-labelledby="cancel-h" {
                h2 id="cancel-h" { "Cancel" }
                form method="post" action={"/admin/runs/" (run.id) "/cancel"} data-confirm="Cancel this run?" {
                    (csrf_field(session))
                    @let err = submitted.error("cancel", "reason");
                    (field("cancel", "reason", "Reason", text_input("cancel", "reason", submitted.value("cancel", "reason", ""), err.is_some(), true, false), err, Some("Why, in 5 to 300 characters.")))
                    button.danger type="submit" { "Cancel run" }
                }
            }
        }
    };
    Ok(html_response(status, layout("Run", Some(session), "runs", body)))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): FormFields,
) -> PageResult {
    let id = parse_id(&session, &id)?;
    let reason = match validate_reason(form.get("reason").map(String::as_str), "the run is cancelled") {
        Ok(r) => r.to_owned(),
        Err(e) => {
            return run_page(
                &state,
                &session,
                id,
                submitted("cancel", form, vec![e]),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    match runs::cancel(&state.pool, id, &reason, &session.name).await {
        Ok(run) => {
            if run.status == RunStatus::Cancelled {
                crate::metrics::run_finished(&run);
            }
            Ok(see_other(&format!("/admin/runs/{id}")))
        }
        Err(e @ StoreError::RunFinished { .. }) => {
            let api = ApiError::Store(e);
            let banner = Some(api.problem().detail);
            run_page(
                &state,
                &session,
                id,
                Submitted {
                    banner,
                    ..Submitted::default()
                },
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => Err(store_error(&session, e)),
    }
}

// ---------------------------------------------------------------- targets, schedulers, attention

pub(super) async fn targets(State(state): State<AppState>, session: Session) -> PageResult {
    let axum::Json(list) = crate::web::api::targets::list_targets().await;
    let live_jobs = definitions::list_live(&state.pool)
        .await
        .map_err(|e| store_error(&session, e))?;
    let body = html! {
        h1 { "Targets" }
        p.muted { "What this build can run. A job names one target." }
        @for t in &list.items {
            @let users: Vec<&JobDefinition> = live_jobs.iter().filter(|j| j.target == t.key).collect();
            section.card aria-labelledby={"t-" (t.key)} {
                h2 id={"t-" (t.key)} { code { (t.key) } }
                p { (t.description) }
                dl.props {
                    dt { "Timeout" } dd { (t.timeout_secs) " s" }
                    dt { "Payload" } dd {
                        @match &t.payload {
                            Some(p) => {
                                code { (p.type_name) }
                                @if let Some(schema) = &p.schema { details { summary { "JSON schema" } pre { code { (pretty(schema)) } } } }
                            }
                            None => { "none" }
                        }
                    }
                    dt { "Jobs using it" } dd {
                        @if users.is_empty() { "none" }
                        @for (i, j) in users.iter().enumerate() {
                            @if i > 0 { ", " }
                            a href={"/admin/jobs/" (j.id)} { (j.job_key) }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Targets", Some(&session), "targets", body),
    ))
}

pub(super) async fn schedulers(State(state): State<AppState>, session: Session) -> PageResult {
    let list = instances::list(&state.pool)
        .await
        .map_err(|e| store_error(&session, e))?;
    let now = Utc::now();
    let body = html! {
        h1 { "Schedulers" }
        div data-refresh="schedulers" {
            @if list.is_empty() { p.banner.error role="alert" { "No scheduler has registered: nothing runs." } }
            table.list {
                thead { tr { th scope="col" { "Instance" } th scope="col" { "State" } th scope="col" { "Version" } th scope="col" { "Last seen" } th scope="col" { "Targets" } } }
                tbody {
                    @for s in &list {
                        tr {
                            td data-label="Instance" { code { (s.instance) } br; span.muted { (s.hostname) } }
                            td data-label="State" {
                                @if !s.alive { (status_badge("dead")) } @else if s.stopping_since.is_some() { (status_badge("stopping")) } @else { (status_badge("alive")) }
                            }
                            td data-label="Version" { (s.version) @if let Some(c) = &s.commit { " " span.muted { (c.chars().take(12).collect::<String>()) } } }
                            td data-label="Last seen" { (relative(s.last_seen_at, now)) br; span.muted { "since " (ts(s.started_at)) } }
                            td data-label="Targets" { (s.targets.join(", ")) }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Schedulers", Some(&session), "schedulers", body),
    ))
}

pub(super) async fn attention(State(state): State<AppState>, session: Session) -> PageResult {
    let err = |e| store_error(&session, e);
    let now = Utc::now();
    let since = now - Duration::days(1);
    let open = incidents::list(
        &state.pool,
        &IncidentFilter {
            status: Some("open".to_owned()),
            ..IncidentFilter::default()
        },
        None,
        50,
    )
    .await
    .map_err(err)?
    .items;
    let missed = runs::list(
        &state.pool,
        &RunFilter {
            status: Some(RunStatus::Missed),
            from: Some(since),
            ..RunFilter::default()
        },
        None,
        50,
    )
    .await
    .map_err(err)?
    .items;
    let stale = runs::list(
        &state.pool,
        &RunFilter {
            status: Some(RunStatus::Failed),
            reason: Some(RunReason::Stale),
            from: Some(since),
            ..RunFilter::default()
        },
        None,
        50,
    )
    .await
    .map_err(|e| store_error(&session, e))?
    .items;
    let live_jobs = definitions::list_live(&state.pool)
        .await
        .map_err(|e| store_error(&session, e))?;
    let live = instances::live_targets(&state.pool)
        .await
        .map_err(|e| store_error(&session, e))?;
    let orphaned: Vec<&JobDefinition> = live_jobs
        .iter()
        .filter(|j| j.status == JobStatus::Active && !live.has(&j.target))
        .collect();
    let long_paused: Vec<&JobDefinition> = live_jobs
        .iter()
        .filter(|j| j.status == JobStatus::Paused && j.paused_at.is_some_and(|at| at < since))
        .collect();
    let body = html! {
        h1 { "Attention" }
        div data-refresh="attention" {
            section aria-labelledby="a-incidents" {
                h2 id="a-incidents" { "Open incidents" }
                (incidents_table(&open))
            }
            section aria-labelledby="a-missed" {
                h2 id="a-missed" { "Missed runs (last 24 h)" }
                (runs_table(&missed))
            }
            section aria-labelledby="a-stale" {
                h2 id="a-stale" { "Stale runs (last 24 h)" }
                (runs_table(&stale))
            }
            section aria-labelledby="a-orphan" {
                h2 id="a-orphan" { "Jobs no live scheduler can run" }
                @if orphaned.is_empty() { p.muted { "None." } }
                ul { @for j in &orphaned { li { a href={"/admin/jobs/" (j.id)} { (j.job_key) } " — target " code { (j.target) } } } }
            }
            section aria-labelledby="a-paused" {
                h2 id="a-paused" { "Paused for more than a day" }
                @if long_paused.is_empty() { p.muted { "None." } }
                ul { @for j in &long_paused { li { a href={"/admin/jobs/" (j.id)} { (j.job_key) } " — " (paused_note(j)) } } }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Attention", Some(&session), "attention", body),
    ))
}
