//! The Job page's forms: pause, resume, run now, new version, retire.

// A page's error is itself a page (a `Response`), built at most once per request: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Form;
use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use super::jobs::job_page;
use super::layout::*;
use super::session::Session;
use crate::domain::draft::validate_reason;
use crate::domain::incident::Recorded;
use crate::domain::{Draft, FieldError, ManagedBy, RetryDraft, ScheduleType};
use crate::registry::Registered;
use crate::store::definitions;
use crate::store::runs::RunNowOutcome;
use crate::store::StoreError;
use crate::web::actions::{self, RunNowRefused};
use crate::web::error::ApiError;
use crate::web::AppState;

/// A store conflict (wrong status, managed elsewhere, ...) shown on the job page.
pub(super) async fn job_conflict(state: &AppState, session: &Session, id: Uuid, e: StoreError) -> PageResult {
    if matches!(e, StoreError::Database(_) | StoreError::JobNotFound(_)) {
        return Err(store_error(session, e));
    }
    let api = ApiError::Store(e);
    let banner = Some(api.problem().detail);
    job_page(
        state,
        session,
        id,
        SubmittedForm {
            banner,
            ..SubmittedForm::default()
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
                submitted_form("pause", form, vec![e]),
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

pub(super) fn parse_json(field: &str, text: &str) -> Result<Option<Value>, FieldError> {
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
                submitted_form("run-now", form, vec![e]),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    match actions::run_now(&state, id, &session.name, payload.as_ref()).await {
        Ok(RunNowOutcome::Pending(run)) => Ok(see_other(&format!("/admin/runs/{}", run.id))),
        Ok(RunNowOutcome::Skipped { active_run_id, .. }) => {
            let banner = format!(
                "Run {active_run_id} of this job is still active, so this request was recorded as skipped (overlap policy: skip)."
            );
            job_page(
                &state,
                &session,
                id,
                SubmittedForm {
                    banner: Some(banner),
                    ..SubmittedForm::default()
                },
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(RunNowRefused::Invalid(e)) => {
            job_page(
                &state,
                &session,
                id,
                submitted_form("run-now", form, vec![e]),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(RunNowRefused::Store(e)) => job_conflict(&state, &session, id, e).await,
    }
}

pub(super) async fn new_version(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): FormFields,
) -> PageResult {
    let id = parse_id(&session, &id)?;
    let current = definitions::get(&state.pool, id).await.or_error_page(&session)?;
    let get = |name: &str| form.get(name).map(|v| v.trim().to_owned());
    let payload = match parse_json("payload", &get("payload").unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => {
            return job_page(
                &state,
                &session,
                id,
                submitted_form("new-version", form, vec![e]),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    let retry = match retry_from_form(&get) {
        Ok(retry) => retry,
        Err(e) => {
            return job_page(
                &state,
                &session,
                id,
                submitted_form("new-version", form, vec![e]),
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
        timeout: get("timeout").filter(|t| !t.trim().is_empty()),
        retry,
    };
    let new = match draft.validate(&Registered, session.name.clone(), Some(Utc::now())) {
        Ok(new) => new,
        Err(errors) => {
            return job_page(
                &state,
                &session,
                id,
                submitted_form("new-version", form, errors),
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

/// The form's `retry.*` fields as a policy draft (`None` when all are empty: no retries).
fn retry_from_form(get: &impl Fn(&str) -> Option<String>) -> Result<Option<RetryDraft>, FieldError> {
    let text = |name: &str| get(name).filter(|v| !v.is_empty());
    let max_attempts = match text("retry.max_attempts") {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
            FieldError::new(
                "retry.max_attempts",
                format!("{raw:?} is not a whole number; write 1 to 20"),
            )
        })?),
    };
    let multiplier = match text("retry.multiplier") {
        None => None,
        Some(raw) => Some(
            raw.parse::<f64>()
                .map_err(|_| FieldError::new("retry.multiplier", format!("{raw:?} is not a number; write e.g. 2.0")))?,
        ),
    };
    let draft = RetryDraft {
        max_attempts,
        initial_delay: text("retry.initial_delay"),
        max_delay: text("retry.max_delay"),
        multiplier,
    };
    Ok((draft != RetryDraft::default()).then_some(draft))
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
