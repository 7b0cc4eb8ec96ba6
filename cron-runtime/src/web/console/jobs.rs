//! The Jobs list and the Job page.

// A page's error is itself a page (a `Response`), built at most once per request: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::*;
use super::session::Session;
use crate::domain::describe::{describe, preview};
use crate::domain::{JobDefinition, JobRun, JobStatus, ManagedBy, Schedule, ScheduleType};
use crate::registry;
use crate::store::definitions::{self, JobFilter};
use crate::store::incidents::{self, IncidentFilter};
use crate::store::instances;
use crate::store::runs::{self, RunFilter};
use crate::web::api::jobs::Job;
use crate::web::AppState;

#[derive(Debug, Default, Deserialize)]
pub(super) struct JobsQuery {
    status: Option<String>,
    target: Option<String>,
    key: Option<String>,
}

pub(super) fn run_strip(runs: &[JobRun]) -> Markup {
    html! {
        ol.strip aria-label="Last runs, oldest first" {
            @for run in runs.iter().rev() {
                li {
                    a class={"cell s-" (run.status.as_str())} href={"/admin/runs/" (run.id)}
                        title={(run.status.as_str()) " · " (utc_text(run.scheduled_at))} {
                        span.visually-hidden { (run.status.as_str()) " at " (utc_text(run.scheduled_at)) }
                    }
                }
            }
        }
    }
}

pub(super) fn schedule_words(definition: &JobDefinition) -> Markup {
    match (definition.schedule_type, definition.cron_expression.as_deref()) {
        (ScheduleType::Recurring, Some(expression)) => html! {
            span.words { (describe(expression, &definition.timezone)) }
            br;
            code { (expression) }
        },
        _ => html! {
            span.words { "Once, at " (utc_text_or_dash(definition.run_at)) }
        },
    }
}

pub(super) async fn jobs(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<JobsQuery>,
) -> PageResult {
    let status = non_blank(query.status).unwrap_or_else(|| "live".to_owned());
    let target = non_blank(query.target);
    let key = non_blank(query.key);
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
            .or_error_page(&session)?;
        definitions_found.extend(page.items);
    }
    definitions_found.sort_by(|a, b| a.job_key.cmp(&b.job_key).then(b.version.cmp(&a.version)));
    let now = Utc::now();
    let live = instances::live_targets(&state.pool).await.or_error_page(&session)?;
    let mut rows = Vec::new();
    for definition in definitions_found {
        let filter = RunFilter {
            job_key: Some(definition.job_key.clone()),
            ..RunFilter::default()
        };
        let recent = runs::list(&state.pool, &filter, None, 20)
            .await
            .or_error_page(&session)?;
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
    job_page(&state, &session, id, SubmittedForm::default(), StatusCode::OK).await
}

/// What changed from `before` to `after`, field by field.
pub(super) fn changes(before: &JobDefinition, after: &JobDefinition) -> Vec<String> {
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
    diff(
        "run at",
        utc_text_or_dash(before.run_at),
        utc_text_or_dash(after.run_at),
    );
    diff("timezone", before.timezone.clone(), after.timezone.clone());
    diff("payload", before.payload.to_string(), after.payload.to_string());
    diff(
        "description",
        before.description.clone().unwrap_or_else(|| "—".into()),
        after.description.clone().unwrap_or_else(|| "—".into()),
    );
    diff("timeout", timeout_words(before), timeout_words(after));
    diff("retry", retry_words(&before.retry), retry_words(&after.retry));
    out
}

pub(super) async fn job_page(
    state: &AppState,
    session: &Session,
    id: Uuid,
    submitted: SubmittedForm,
    status: StatusCode,
) -> PageResult {
    let definition = definitions::get(&state.pool, id).await.or_error_page(session)?;
    let live = instances::live_targets(&state.pool).await.or_error_page(session)?;
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
    .or_error_page(session)?
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
    .or_error_page(session)?
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
    .or_error_page(session)?
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
    let payload_text = pretty_json(&d.payload);
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
                dt { "Timeout" } dd { (timeout_words(d)) }
                dt { "Retries" } dd { (retry_words(&d.retry)) }
                dt { "Managed by" } dd {
                    @if api_managed { "the API" }
                    @else if let Some(source) = &d.source { "the jobs file " code { (source) } " (cronjobs apply)" }
                    @else { "a jobs file (cronjobs apply)" }
                }
                dt { "Description" } dd { (d.description.as_deref().unwrap_or("—")) }
                dt { "Payload" } dd { pre { code { (payload_text) } } }
                dt { "Created" } dd { (utc_text(d.created_at)) " by " (d.created_by) }
                @if let Some(at) = d.retired_at { dt { "Retired" } dd { (utc_text(at)) " by " (d.retired_by.as_deref().unwrap_or("?")) } }
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
                            @let err = submitted.error("new-version", "timeout");
                            @let own_timeout = d.timeout().map(|t| humantime::format_duration(t).to_string()).unwrap_or_default();
                            (field("new-version", "timeout", "Timeout", text_input("new-version", "timeout", submitted.value("new-version", "timeout", &own_timeout), err.is_some(), true, false), err, Some("e.g. 90s or 15m; empty: the target's.")))
                            @let retry = crate::domain::RetryDraft::from(d.retry);
                            @for (name, label, current, hint) in [
                                ("retry.max_attempts", "Attempts (retries + 1)", retry.max_attempts.map(|n| n.to_string()).unwrap_or_default(), "1 to 20; 1: no retries."),
                                ("retry.initial_delay", "First retry after", retry.initial_delay.unwrap_or_default(), "e.g. 30s; at least 1s."),
                                ("retry.max_delay", "Longest delay", retry.max_delay.unwrap_or_default(), "e.g. 10m; up to 24h."),
                                ("retry.multiplier", "Delay multiplier", retry.multiplier.map(|m| m.to_string()).unwrap_or_default(), "1.0 (constant) to 10.0."),
                            ] {
                                @let err = submitted.error("new-version", name);
                                (field("new-version", name, label, text_input("new-version", name, submitted.value("new-version", name, &current), err.is_some(), true, false), err, Some(hint)))
                            }
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
                            tr { td data-label="Local" { (t.local) } td data-label="UTC" { (t.at.format("%Y-%m-%d %H:%M:%S")) } td data-label="Note" { (t.note.as_deref().unwrap_or("")) } }
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
                        " · " (utc_text(v.created_at)) " by " (v.created_by)
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
            (incidents_table(&job_incidents, session, &format!("/admin/jobs/{}", d.id)))
        }
        section aria-labelledby="runs-h" {
            h2 id="runs-h" { "Recent runs" }
            (runs_table(&recent))
            p { a href={"/admin/runs?job_key=" (encode_component(&d.job_key))} { "All runs of " (d.job_key) } }
        }
    };
    Ok(html_response(status, layout(&d.job_key, Some(session), "jobs", body)))
}

/// A retry policy in words.
pub(super) fn retry_words(policy: &crate::domain::RetryPolicy) -> String {
    if !policy.retries() {
        return "none (a failed run stays failed)".to_owned();
    }
    let shown = crate::domain::RetryDraft::from(*policy);
    format!(
        "up to {} attempts; first retry after {}, each delay ×{}, at most {}",
        policy.max_attempts,
        shown.initial_delay.unwrap_or_default(),
        policy.multiplier,
        shown.max_delay.unwrap_or_default()
    )
}

/// The job's timeout in words: its own, or its target's.
fn timeout_words(d: &JobDefinition) -> String {
    match (d.timeout(), registry::get(&d.target)) {
        (Some(own), _) => humantime::format_duration(own).to_string(),
        (None, Some(target)) => format!("{} (the target's)", humantime::format_duration(target.timeout)),
        (None, None) => "the target's".to_owned(),
    }
}
