//! What every handler of both faces (the REST API and the console) shares.

use std::sync::Arc;

use sqlx::PgPool;

use super::api::health::ReadinessCache;
use super::console::ConsoleState;
use crate::config::AdminToken;
use crate::domain::incident::Policy;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub admins: Arc<[AdminToken]>,
    /// Read-only tokens.
    pub viewers: Arc<[AdminToken]>,
    /// The console's session keys and one-time sign-in codes.
    pub console: Arc<ConsoleState>,
    /// The last readiness answer, reused for a second: `/readyz` is unauthenticated.
    pub readiness: Arc<ReadinessCache>,
    /// How incidents are opened and resolved by what the handlers record (pause, retire).
    pub policy: Arc<Policy>,
}

impl AppState {
    /// State over `pool`, accepting `admins`' tokens (no viewers; a random console key, cookies
    /// without `Secure`).
    pub fn new(pool: PgPool, admins: Vec<AdminToken>) -> Self {
        AppState {
            pool,
            admins: admins.into(),
            viewers: Vec::new().into(),
            console: Arc::new(ConsoleState::new(None, false)),
            readiness: Arc::default(),
            policy: Arc::default(),
        }
    }

    /// Resolves incidents and writes their webhook events under `policy` (the defaults: none
    /// delivered).
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// Also accepts `viewers`' tokens, read-only.
    pub fn with_viewers(mut self, viewers: Vec<AdminToken>) -> Self {
        self.viewers = viewers.into();
        self
    }

    /// Signs console sessions with `secret` (random when `None`); `secure` adds `Secure` to cookies.
    pub fn with_console(mut self, secret: Option<&crate::config::Secret>, secure: bool) -> Self {
        self.console = Arc::new(ConsoleState::new(secret, secure));
        self
    }
}
