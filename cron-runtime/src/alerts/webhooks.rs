//! Webhook delivery from the outbox (`cron_alert_outbox`), in every `api` and `scheduler`
//! process that has `CRON_ALERT_WEBHOOK_URLS`, on a connection of its own (never on the
//! scheduler's timer or run path).
//!
//! At least once: an attempt claims one row (`FOR UPDATE SKIP LOCKED`) and leases it for
//! [`LEASE`] by moving its next attempt ahead, so replicas never attempt the same row at once
//! and a process that dies mid-attempt leaves it to another after the lease. A 2xx answer
//! delivers it; anything else (or a timeout) retries with exponential backoff ([`backoff`]),
//! for [`GIVE_UP_AFTER`] from the event, then gives up (logged, counted).
//!
//! Headers: `X-Cronjobs-Event-Id` (the same on every attempt and endpoint: receivers
//! deduplicate by it), `X-Cronjobs-Event`, and with `CRON_ALERT_WEBHOOK_SECRET`
//! `X-Cronjobs-Signature: sha256=<hex HMAC-SHA256 of the body>`. Logs name an endpoint by its
//! host only.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::domain::incident::{Endpoint, Policy};
use crate::store::incidents::{self, Delivery};

/// How long one attempt owns its row; longer than [`REQUEST_TIMEOUT`].
pub const LEASE: Duration = Duration::from_secs(30);
/// How long a receiver gets to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries stop this long after the event.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// How often an idle task looks for due deliveries.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s ... capped at 10 minutes.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(10);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(600))
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers due outbox rows until `stop` fires. Does nothing without endpoints.
pub async fn run(pool: PgPool, policy: std::sync::Arc<Policy>, secret: Option<Secret>, stop: CancellationToken) {
    if policy.endpoints.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("cronjobs/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; alerts are not delivered by this process");
            return;
        }
    };
    let endpoints: HashMap<&str, &Endpoint> = policy.endpoints.iter().map(|e| (e.id.as_str(), e)).collect();
    let ids: Vec<&str> = endpoints.keys().copied().collect();
    tracing::info!(
        endpoints = ?policy.endpoints.iter().map(Endpoint::host).collect::<Vec<_>>(),
        signed = secret.is_some(),
        "delivering alert webhooks"
    );
    loop {
        let claimed = tokio::select! {
            () = stop.cancelled() => return,
            claimed = incidents::claim_delivery(&pool, &ids, LEASE) => claimed,
        };
        match claimed {
            Ok(Some(delivery)) => {
                let endpoint = endpoints[delivery.endpoint.as_str()];
                attempt(&pool, &client, endpoint, secret.as_ref(), delivery).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                crate::metrics::database_error("claim alert delivery");
                tracing::warn!(error = %e, "cannot read the alert outbox; retrying");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// One POST of `delivery`, and its result recorded.
async fn attempt(
    pool: &PgPool,
    client: &reqwest::Client,
    endpoint: &Endpoint,
    secret: Option<&Secret>,
    delivery: Delivery,
) {
    let mut request = client
        .post(endpoint.url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Cronjobs-Event-Id", delivery.event_id.to_string())
        .header("X-Cronjobs-Event", &delivery.event);
    if let Some(secret) = secret {
        request = request.header("X-Cronjobs-Signature", signature(secret, delivery.body.as_bytes()));
    }
    let host = endpoint.host();
    let failure = match request.body(delivery.body.clone()).send().await {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("answered {}", response.status())),
        // reqwest's error text includes the URL: describe the failure without it.
        Err(e) => Some(describe(e)),
    };
    let (event_id, event, attempts) = (delivery.event_id, &delivery.event, delivery.attempts);
    let recorded = match &failure {
        None => {
            tracing::info!(%event_id, event, endpoint = %host, attempts, "alert delivered");
            crate::metrics::alert_delivery("delivered");
            incidents::mark_delivered(pool, delivery.id).await
        }
        Some(error) => {
            let age = (chrono::Utc::now() - delivery.created_at).to_std().unwrap_or_default();
            let give_up = age >= GIVE_UP_AFTER;
            let retry_in = backoff(attempts);
            if give_up {
                tracing::error!(%event_id, event, endpoint = %host, attempts, error, "alert not delivered after 24 h; giving up");
                crate::metrics::alert_delivery("gave_up");
            } else {
                tracing::warn!(
                    %event_id, event, endpoint = %host, attempts, error,
                    retry_in_ms = retry_in.as_millis() as u64, "alert delivery failed; will retry"
                );
                crate::metrics::alert_delivery("retry");
            }
            incidents::mark_failed(pool, delivery.id, error, retry_in, give_up).await
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and the row is attempted again: at least once, never lost.
        crate::metrics::database_error("record alert delivery");
        tracing::warn!(%event_id, error = %e, "cannot record the delivery attempt; it will be retried after its lease");
    }
}

/// What went wrong with a request, without its URL.
fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        format!("timed out after {}", humantime::format_duration(REQUEST_TIMEOUT))
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        format!("request failed: {}", error.without_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(40), Duration::from_secs(600));
    }

    #[test]
    fn the_signature_is_a_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        let secret = Secret::new("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
