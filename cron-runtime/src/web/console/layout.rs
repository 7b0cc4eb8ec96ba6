//! The console's page layout and the helpers every page uses (times, badges, form fields,
//! error pages).

// A page's error is itself a page (a `Response`), built at most once per request: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;
use uuid::Uuid;

use super::session::Session;
use crate::domain::incident::Incident;
use crate::domain::{FieldError, JobDefinition, JobRun, JobStatus};
use crate::store::StoreError;
use crate::web::error::ApiError;

pub(super) type PageResult = Result<Response, Response>;

pub(super) fn layout(title: &str, session: Option<&Session>, current: &str, body: Markup) -> Markup {
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

pub(super) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

pub(super) fn html_response(status: StatusCode, markup: Markup) -> Response {
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
/// A store error, shown as the console's error page: `.or_error_page(&session)?` in a handler.
pub(super) trait OrErrorPage<T> {
    fn or_error_page(self, session: &Session) -> Result<T, Response>;
}

impl<T> OrErrorPage<T> for Result<T, StoreError> {
    fn or_error_page(self, session: &Session) -> Result<T, Response> {
        self.map_err(|e| store_error(session, e))
    }
}

pub(super) fn store_error(session: &Session, e: StoreError) -> Response {
    let api = ApiError::Store(e);
    if let ApiError::Store(StoreError::Database(e)) = &api {
        tracing::error!(error = %e, "database error in the console");
    }
    problem_page(Some(session), api.status(), &api.problem().detail)
}

pub(super) fn see_other(to: &str) -> Response {
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

pub(super) fn utc_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `text` with its `backtick` spans as `<code>` (target descriptions are doc comments, which
/// use Markdown's inline code); text with unpaired backticks is shown as it is.
pub(super) fn inline_code(text: &str) -> Markup {
    let parts: Vec<&str> = text.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return html! { (text) };
    }
    html! {
        @for (i, part) in parts.iter().enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

pub(super) fn utc_text_or_dash(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_owned(), utc_text)
}

pub(super) fn time_el(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (utc_text(t)) } }
}

pub(super) fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
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

pub(super) fn non_blank(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

pub(super) fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub(super) fn status_badge(status: &str) -> Markup {
    html! { span class={"badge s-" (status)} { (status) } }
}

pub(super) fn run_status(run: &JobRun) -> Markup {
    html! {
        (status_badge(run.status.as_str()))
        @if let Some(reason) = run.reason { " " span.reason { (reason.as_str()) } }
    }
}

/// Field errors of one form, shown beside its fields.
#[derive(Debug, Default)]
pub(super) struct SubmittedForm {
    pub(super) form: &'static str,
    pub(super) values: HashMap<String, String>,
    pub(super) errors: Vec<FieldError>,
    pub(super) banner: Option<String>,
}

impl SubmittedForm {
    pub(super) fn error(&self, form: &str, field: &str) -> Option<String> {
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

    pub(super) fn value<'a>(&'a self, form: &str, field: &str, default: &'a str) -> &'a str {
        if self.form == form {
            self.values.get(field).map_or(default, String::as_str)
        } else {
            default
        }
    }
}

/// A labelled field with its error (linked by `aria-describedby`).
pub(super) fn field(
    form: &str,
    name: &str,
    label: &str,
    input: Markup,
    error: Option<String>,
    hint: Option<&str>,
) -> Markup {
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

pub(super) fn described_by(form: &str, name: &str, error: bool, hint: bool) -> Option<String> {
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

pub(super) fn text_input(form: &str, name: &str, value: &str, error: bool, hint: bool, required: bool) -> Markup {
    html! {
        input type="text" id={(form) "-" (name)} name=(name) value=(value) required[required]
            aria-invalid=[error.then_some("true")] aria-describedby=[described_by(form, name, error, hint)];
    }
}

pub(super) fn textarea(form: &str, name: &str, value: &str, error: bool, hint: bool) -> Markup {
    html! {
        textarea id={(form) "-" (name)} name=(name) rows="4"
            aria-invalid=[error.then_some("true")] aria-describedby=[described_by(form, name, error, hint)] { (value) }
    }
}

pub(super) fn paused_note(definition: &JobDefinition) -> Markup {
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

pub(super) fn parse_id(session: &Session, raw: &str) -> Result<Uuid, Response> {
    raw.parse()
        .map_err(|_| problem_page(Some(session), StatusCode::NOT_FOUND, "No job or run has this id."))
}

/// Incidents, newest first, each one click from the run that last failed; an admin can
/// acknowledge or resolve an open one with a note (and comes back to `back`).
pub(super) fn incidents_table(items: &[Incident], session: &Session, back: &str) -> Markup {
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
                            td data-label="Opened" { (utc_text(i.opened_at)) }
                            td data-label="Failures" { (i.failures) }
                            td data-label="Last error" {
                                @if let Some(run) = i.last_run_id {
                                    a href={"/admin/runs/" (run)} { "last failing run" } " "
                                }
                                span.muted { (i.last_reason.as_deref().unwrap_or("")) " " (i.last_error.as_deref().unwrap_or("")) }
                            }
                            td data-label="Status" {
                                (status_badge(&i.status))
                                @if let Some(by) = &i.resolved_by {
                                    " " span.muted { "by " (i.resolver.as_deref().unwrap_or(by)) }
                                    @if let Some(note) = &i.resolved_note { " " span.muted { "(" (note) ")" } }
                                }
                                @if let Some(by) = &i.acknowledged_by {
                                    br; span.muted { "acknowledged by " (by) ": " (i.acknowledged_note.as_deref().unwrap_or("")) }
                                }
                                @if session.is_admin() && i.status == "open" {
                                    form.incident-action method="post" action={"/admin/incidents/" (i.id) "/acknowledge"} {
                                        (csrf_field(session))
                                        input type="hidden" name="back" value=(back);
                                        label for={"note-" (i.id)} { "Note" }
                                        input type="text" id={"note-" (i.id)} name="note" required minlength="5" maxlength="300"
                                            placeholder="What is being done, or why it is over";
                                        @if i.acknowledged_by.is_none() { button type="submit" { "Acknowledge" } }
                                        button type="submit" formaction={"/admin/incidents/" (i.id) "/resolve"} { "Resolve" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn runs_table(items: &[JobRun]) -> Markup {
    html! {
        @if items.is_empty() {
            p.muted { "No runs." }
        } @else {
            table.list.runs {
                thead { tr { th scope="col" { "Run" } th scope="col" { "Job" } th scope="col" { "Status" } th scope="col" { "Trigger" } th scope="col" { "Duration" } } }
                tbody {
                    @for run in items {
                        tr data-run=(run.id) {
                            td data-label="Scheduled" { a href={"/admin/runs/" (run.id)} { (utc_text(run.scheduled_at)) } }
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

pub(super) type FormFields = Form<HashMap<String, String>>;

pub(super) fn submitted_form(
    form: &'static str,
    values: HashMap<String, String>,
    errors: Vec<FieldError>,
) -> SubmittedForm {
    SubmittedForm {
        form,
        values,
        errors,
        banner: None,
    }
}

#[cfg(test)]
mod tests {
    use super::inline_code;

    #[test]
    fn backtick_spans_become_code_and_unpaired_ones_stay_text() {
        assert_eq!(
            inline_code("Runs `system.prune` with <older_than>").into_string(),
            "Runs <code>system.prune</code> with &lt;older_than&gt;"
        );
        assert_eq!(inline_code("a ` alone").into_string(), "a ` alone");
    }
}
