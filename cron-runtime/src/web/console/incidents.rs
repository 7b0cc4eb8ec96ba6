//! The incident forms (on the Attention and Job pages): acknowledge, resolve by hand.

// A page's error is itself a page (a `Response`), built at most once per request.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Form;

use super::layout::*;
use super::session::Session;
use crate::domain::draft::validate_note;
use crate::domain::incident::Policy;
use crate::domain::incident::{Incident, Recorded};
use crate::store::incidents;
use crate::store::StoreError;
use crate::web::AppState;

pub(super) async fn acknowledge(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): FormFields,
) -> PageResult {
    act(
        &state,
        &session,
        &id,
        &form,
        "say what you are doing about it",
        incidents::acknowledge,
    )
    .await
}

pub(super) async fn resolve(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): FormFields,
) -> PageResult {
    act(
        &state,
        &session,
        &id,
        &form,
        "say why it is resolved",
        incidents::resolve_by_hand,
    )
    .await
}

/// Checks the note, runs `change` as the session's admin, and goes back to the page the form
/// was on (only ever a console page).
async fn act<F>(
    state: &AppState,
    session: &Session,
    id: &str,
    form: &std::collections::HashMap<String, String>,
    asking: &str,
    change: F,
) -> PageResult
where
    F: for<'a> AsyncFn(
        &'a sqlx::PgPool,
        uuid::Uuid,
        &'a str,
        &'a str,
        &'a Policy,
    ) -> Result<Recorded<Incident>, StoreError>,
{
    let id = id
        .parse()
        .map_err(|_| problem_page(Some(session), StatusCode::NOT_FOUND, "No incident has this id."))?;
    let note = validate_note("note", form.get("note").map(String::as_str), asking).map_err(|e| {
        problem_page(
            Some(session),
            StatusCode::BAD_REQUEST,
            &format!("The note {}.", e.message),
        )
    })?;
    change(&state.pool, id, &session.name, note, &state.policy)
        .await
        .map(Recorded::announce)
        .map_err(|e| store_error(session, e))?;
    let back = form
        .get("back")
        .filter(|back| back.starts_with("/admin/") && !back.starts_with("//"))
        .map_or("/admin/attention", String::as_str);
    Ok(see_other(back))
}
