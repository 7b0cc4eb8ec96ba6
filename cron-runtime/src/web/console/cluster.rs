//! Targets, schedulers, and what needs attention (open incidents).

// A page's error is itself a page (a `Response`), built at most once per request: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use maud::html;

use super::layout::*;
use super::session::Session;
use crate::domain::{JobDefinition, JobStatus, RunReason, RunStatus};
use crate::store::definitions;
use crate::store::incidents::{self, IncidentFilter};
use crate::store::instances;
use crate::store::runs::{self, RunFilter};
use crate::web::AppState;

pub(super) async fn targets(State(state): State<AppState>, session: Session) -> PageResult {
    let axum::Json(list) = crate::web::api::targets::list_targets().await;
    let live_jobs = definitions::list_live(&state.pool).await.or_error_page(&session)?;
    let body = html! {
        h1 { "Targets" }
        p.muted { "What this build can run. A job names one target." }
        @for t in &list.items {
            @let users: Vec<&JobDefinition> = live_jobs.iter().filter(|j| j.target == t.key).collect();
            section.card aria-labelledby={"t-" (t.key)} {
                h2 id={"t-" (t.key)} { code { (t.key) } }
                p { (inline_code(&t.description)) }
                dl.props {
                    dt { "Timeout" } dd { (t.timeout_secs) " s" }
                    dt { "Payload" } dd {
                        @match &t.payload {
                            Some(p) => {
                                code { (p.type_name) }
                                @if let Some(schema) = &p.schema { details { summary { "JSON schema" } pre { code { (pretty_json(schema)) } } } }
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
    let list = instances::list(&state.pool).await.or_error_page(&session)?;
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
                            td data-label="Last seen" { (relative(s.last_seen_at, now)) br; span.muted { "since " (utc_text(s.started_at)) } }
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
    .or_error_page(&session)?
    .items;
    let live_jobs = definitions::list_live(&state.pool).await.or_error_page(&session)?;
    let live = instances::live_targets(&state.pool).await.or_error_page(&session)?;
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
                (incidents_table(&open, &session, "/admin/attention"))
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
