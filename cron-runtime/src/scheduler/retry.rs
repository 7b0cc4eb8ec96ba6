//! Retrying database work with backoff while the database is away.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds (`Some`) or `stop` fires (`None`), doubling the delay
/// between attempts up to 5 s and logging each failure.
pub async fn retry_until<T, F, Fut>(stop: &CancellationToken, what: &'static str, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut delay = FIRST_DELAY;
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(e) => {
                crate::metrics::database_error(what);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "could not {what}")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}
