//! What both faces (the REST API and the console) do the same way, written once.

use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use crate::domain::draft::validate_payload;
use crate::domain::FieldError;
use crate::registry::Registered;
use crate::store::runs::{self, RunNowOutcome};
use crate::store::{definitions, StoreError};

/// Why a run-now request recorded nothing.
#[derive(Debug)]
pub enum RunNowRefused {
    /// The payload does not fit the job's target.
    Invalid(FieldError),
    Store(StoreError),
}

impl From<StoreError> for RunNowRefused {
    fn from(e: StoreError) -> Self {
        RunNowRefused::Store(e)
    }
}

/// Requests a run of job version `id` by `actor`: `payload` (this run only) is checked against
/// the job's target first; a run recorded `skipped` (another run of the key is active) is
/// counted as finished.
pub async fn run_now(
    state: &AppState,
    id: Uuid,
    actor: &str,
    payload: Option<&Value>,
) -> Result<RunNowOutcome, RunNowRefused> {
    if let Some(payload) = payload {
        let job = definitions::get(&state.pool, id).await?;
        validate_payload(&Registered, &job.target, payload).map_err(RunNowRefused::Invalid)?;
    }
    let outcome = runs::request_run(&state.pool, id, actor, payload).await?;
    if let RunNowOutcome::Skipped { run, .. } = &outcome {
        crate::metrics::run_finished(run);
    }
    Ok(outcome)
}
