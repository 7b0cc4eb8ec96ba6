//! Authentication: `Authorization: Bearer <token>` against `CRON_ADMIN_TOKENS`, and against
//! `CRON_VIEWER_TOKENS` for reads (a viewer's write is answered 403).
//!
//! The presented token and every configured one are hashed (SHA-256) and the digests compared
//! in constant time, all of them on every request: a digest has a fixed size, so response timing
//! reveals neither a token's prefix, nor its length, nor which admin matched.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::config::AdminToken;

/// The authenticated admin's name: recorded as `created_by`, `paused_by`, `triggered_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads and changes (`CRON_ADMIN_TOKENS`).
    Admin,
    /// Reads only (`CRON_VIEWER_TOKENS`).
    Viewer,
}

impl Role {
    /// The role's name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// The name and role of whoever holds `token`, comparing every configured token in constant time.
pub fn identify(state: &AppState, token: &str) -> Option<(String, Role)> {
    let admin = find_admin(&state.admins, token);
    let viewer = find_admin(&state.viewers, token);
    match (admin, viewer) {
        (Some(a), _) => Some((a.name.clone(), Role::Admin)),
        (None, Some(v)) => Some((v.name.clone(), Role::Viewer)),
        (None, None) => None,
    }
}

/// Middleware: lets the request through with an [`Actor`] when it carries an admin's token,
/// or a viewer's on a read.
pub async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    let (name, role) = identify(&state, token).ok_or(ApiError::Unauthorized)?;
    if role == Role::Viewer && !matches!(*request.method(), Method::GET | Method::HEAD) {
        return Err(ApiError::Forbidden);
    }
    request.extensions_mut().insert(Actor(name));
    Ok(next.run(request).await)
}

fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn find_admin<'a>(admins: &'a [AdminToken], token: &str) -> Option<&'a AdminToken> {
    let presented = Sha256::digest(token.as_bytes());
    let mut matched = None;
    for admin in admins {
        let configured = Sha256::digest(admin.token.expose().as_bytes());
        // Tokens are unique (config.rs rejects duplicates), so at most one matches.
        if bool::from(configured.ct_eq(&presented)) {
            matched = Some(admin);
        }
    }
    matched
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // Absent only on a route mounted without the middleware: refuse rather than guess.
        parts.extensions.get::<Actor>().cloned().ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn bearer_tokens_match_exactly() {
        let admins = vec![
            AdminToken {
                name: "alice".into(),
                token: Secret::new("0123456789abcdef"),
            },
            AdminToken {
                name: "bob".into(),
                token: Secret::new("fedcba9876543210"),
            },
        ];
        assert_eq!(
            find_admin(&admins, "fedcba9876543210").map(|a| a.name.as_str()),
            Some("bob")
        );
        assert!(find_admin(&admins, "0123456789abcde").is_none());
        assert!(find_admin(&admins, "0123456789abcdef0").is_none());
        assert!(find_admin(&admins, "").is_none());
        assert!(find_admin(&admins, &"0123456789abcdef".repeat(1000)).is_none());
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
