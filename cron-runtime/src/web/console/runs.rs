//! The Runs list, the Run page and its cancel form.

// A page's error is itself a page (a `Response`), built at most once per request: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Form;
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::layout::*;
use super::session::Session;
use crate::domain::draft::validate_reason;
use crate::domain::{RunReason, RunStatus};
use crate::store::runs::{self, RunFilter};
use crate::store::{Cursor, StoreError};
use crate::web::error::ApiError;
use crate::web::AppState;

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

pub(super) fn parse_enum<T: serde::de::DeserializeOwned>(raw: &str) -> Option<T> {
    serde_json::from_value(Value::String(raw.to_owned())).ok()
}

pub(super) const RUN_STATUSES: [&str; 7] = [
    "pending",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "missed",
    "cancelled",
];
pub(super) const RUN_REASONS: [&str; 15] = [
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
    let job_key = non_blank(query.job_key);
    let status = non_blank(query.status);
    let reason = non_blank(query.reason);
    let target = non_blank(query.target);
    let trigger = non_blank(query.trigger_type);
    let from = non_blank(query.from);
    let to = non_blank(query.to);
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
        .or_error_page(&session)?;
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
    run_page(&state, &session, id, SubmittedForm::default(), StatusCode::OK).await
}

pub(super) async fn run_page(
    state: &AppState,
    session: &Session,
    id: Uuid,
    submitted: SubmittedForm,
    status: StatusCode,
) -> PageResult {
    let run = runs::get(&state.pool, id).await.or_error_page(session)?;
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
            @if let Some(output) = &run.output { h2 { "Output" } pre { code { (pretty_json(output)) } } }
            @if let Some(payload) = &run.payload { h2 { "Payload (this run only)" } pre { code { (pretty_json(payload)) } } }
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
                submitted_form("cancel", form, vec![e]),
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
                SubmittedForm {
                    banner,
                    ..SubmittedForm::default()
                },
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => Err(store_error(&session, e)),
    }
}
