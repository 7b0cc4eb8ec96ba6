//! Console sessions: a signed cookie (HMAC-SHA256), no table.
//!
//! The cookie holds who signed in (name, role), a fingerprint of their token (so removing or
//! rotating the token ends the session), when the session began and when it was last used, and
//! a random session id from which the CSRF token is derived. A session ends
//! [`MAX_AGE`] after sign-in, or [`IDLE_TIMEOUT`] after its last request.

use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::web::auth::Role;
use crate::web::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cronjobs_session";
/// The sign-in form's CSRF cookie (before there is a session).
pub const LOGIN_COOKIE: &str = "cronjobs_login";
/// A session ends this long after its last request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// A session ends this long after sign-in, however busy.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a one-time sign-in code (`cronjobs dev`'s link) is valid.
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// The cookie is re-issued (sliding the idle timeout) at most this often.
const REFRESH_EVERY: i64 = 60;

type HmacSha256 = Hmac<Sha256>;

/// The console's keys and pending one-time sign-in codes.
pub struct ConsoleState {
    key: Vec<u8>,
    /// Whether cookies carry `Secure`.
    pub secure: bool,
    codes: Mutex<Vec<OneTimeCode>>,
}

struct OneTimeCode {
    code_hash: [u8; 32],
    fingerprint: String,
    expires: i64,
}

/// A signed-in user, as the pages see them.
#[derive(Debug, Clone)]
pub struct Session {
    pub name: String,
    pub role: Role,
    /// The token every form carries back.
    pub csrf: String,
}

impl Session {
    /// Whether this user may change things.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SessionData {
    /// Token fingerprint.
    f: String,
    /// Signed in at (unix seconds).
    i: i64,
    /// Last request at (unix seconds).
    l: i64,
    /// Session id.
    s: String,
}

fn random_hex() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl ConsoleState {
    /// Keys from `secret`, or random ones when `None`.
    pub fn new(secret: Option<&Secret>, secure: bool) -> Self {
        let material = secret.map_or_else(random_hex, |s| s.expose().to_owned());
        ConsoleState {
            key: Sha256::digest(format!("cronjobs console v1\0{material}").as_bytes()).to_vec(),
            secure,
            codes: Mutex::new(Vec::new()),
        }
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn fingerprint(&self, token: &str) -> String {
        hex::encode(&self.mac("token", token.as_bytes())[..16])
    }

    /// The CSRF token of the sign-in form, bound to its cookie's nonce.
    pub fn login_csrf(&self, nonce: &str) -> String {
        hex::encode(&self.mac("login-csrf", nonce.as_bytes())[..16])
    }

    /// A fresh nonce for the sign-in form's cookie.
    pub fn login_nonce(&self) -> String {
        random_hex()
    }

    /// A session cookie value for the holder of `token` (already identified).
    pub fn issue(&self, token: &str) -> String {
        let now = Utc::now().timestamp();
        self.encode(&SessionData {
            f: self.fingerprint(token),
            i: now,
            l: now,
            s: random_hex(),
        })
    }

    fn encode(&self, data: &SessionData) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(data).expect("serializable"));
        let mac = URL_SAFE_NO_PAD.encode(self.mac("session", body.as_bytes()));
        format!("{body}.{mac}")
    }

    /// The session a cookie value carries, if it is genuine, unexpired, and its token is still
    /// configured. Also returns a refreshed cookie value when the idle clock should slide.
    pub fn open(&self, state: &AppState, cookie: &str) -> Option<(Session, Option<String>)> {
        let (body, mac) = cookie.split_once('.')?;
        let expected = self.mac("session", body.as_bytes());
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if !bool::from(expected.ct_eq(&given)) {
            return None;
        }
        let data: SessionData = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let now = Utc::now().timestamp();
        if now - data.i > MAX_AGE.as_secs() as i64 || now - data.l > IDLE_TIMEOUT.as_secs() as i64 {
            return None;
        }
        let (name, role) = self.holder(state, &data.f)?;
        let refreshed = (now - data.l > REFRESH_EVERY).then(|| self.encode(&SessionData { l: now, ..data.clone() }));
        let csrf = hex::encode(&self.mac("csrf", data.s.as_bytes())[..16]);
        Some((Session { name, role, csrf }, refreshed))
    }

    /// Who holds the configured token with this fingerprint.
    fn holder(&self, state: &AppState, fingerprint: &str) -> Option<(String, Role)> {
        let admins = state.admins.iter().map(|t| (t, Role::Admin));
        let viewers = state.viewers.iter().map(|t| (t, Role::Viewer));
        let mut found = None;
        for (token, role) in admins.chain(viewers) {
            let matches = self
                .fingerprint(token.token.expose())
                .as_bytes()
                .ct_eq(fingerprint.as_bytes());
            if bool::from(matches) && found.is_none() {
                found = Some((token.name.clone(), role));
            }
        }
        found
    }

    /// A one-time sign-in code for the holder of `token`, valid for [`CODE_TTL`].
    pub fn one_time_code(&self, token: &str) -> String {
        let code = random_hex();
        let mut codes = self.codes.lock().expect("codes lock");
        let now = Utc::now().timestamp();
        codes.retain(|c| c.expires > now);
        codes.push(OneTimeCode {
            code_hash: Sha256::digest(code.as_bytes()).into(),
            fingerprint: self.fingerprint(token),
            expires: now + CODE_TTL.as_secs() as i64,
        });
        code
    }

    /// Spends a one-time code: a session cookie value if it was valid (it is valid once).
    pub fn redeem(&self, state: &AppState, code: &str) -> Option<String> {
        let hash: [u8; 32] = Sha256::digest(code.as_bytes()).into();
        let now = Utc::now().timestamp();
        let fingerprint = {
            let mut codes = self.codes.lock().expect("codes lock");
            codes.retain(|c| c.expires > now);
            let index = codes.iter().position(|c| bool::from(c.code_hash.ct_eq(&hash)))?;
            codes.remove(index).fingerprint
        };
        self.holder(state, &fingerprint)?;
        Some(self.encode(&SessionData {
            f: fingerprint,
            i: now,
            l: now,
            s: random_hex(),
        }))
    }

    /// A `Set-Cookie` value.
    pub fn cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        )
    }

    /// A `Set-Cookie` value that deletes `name`.
    pub fn clear_cookie(&self, name: &str) -> String {
        self.cookie(name, "", Duration::ZERO)
    }
}

/// Whether `given` is the expected CSRF token, in constant time.
pub fn csrf_matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| bool::from(expected.as_bytes().ct_eq(g.as_bytes())))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdminToken;

    fn state() -> AppState {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://localhost/none")
            .expect("lazy pool");
        AppState::new(
            pool,
            vec![AdminToken {
                name: "alice".into(),
                token: Secret::new("alice-token-0123456789"),
            }],
        )
        .with_viewers(vec![AdminToken {
            name: "victor".into(),
            token: Secret::new("victor-token-0123456789"),
        }])
    }

    #[tokio::test]
    async fn a_signed_session_opens_and_a_tampered_one_does_not() {
        let state = state();
        let console = &state.console;
        let cookie = console.issue("victor-token-0123456789");
        let (session, refreshed) = console.open(&state, &cookie).expect("valid");
        assert_eq!((session.name.as_str(), session.role), ("victor", Role::Viewer));
        assert!(refreshed.is_none());
        let (body, mac) = cookie.split_once('.').expect("two parts");
        let mut forged = body.to_owned();
        forged.push('A');
        assert!(console.open(&state, &format!("{forged}.{mac}")).is_none());
        // Another process's key (no shared CRON_CONSOLE_SECRET) does not accept it.
        let other = ConsoleState::new(None, false);
        assert!(other.open(&state, &cookie).is_none());
    }

    #[tokio::test]
    async fn idle_and_old_sessions_expire() {
        let state = state();
        let console = &state.console;
        let now = Utc::now().timestamp();
        let fingerprint = console.fingerprint("alice-token-0123456789");
        let idle = console.encode(&SessionData {
            f: fingerprint.clone(),
            i: now - 13 * 3600,
            l: now - 12 * 3600 - 1,
            s: "x".into(),
        });
        assert!(console.open(&state, &idle).is_none());
        let busy = console.encode(&SessionData {
            f: fingerprint,
            i: now - 3600,
            l: now - 120,
            s: "x".into(),
        });
        let (_, refreshed) = console.open(&state, &busy).expect("valid");
        assert!(refreshed.is_some(), "the idle clock slides");
    }

    #[tokio::test]
    async fn one_time_codes_work_once() {
        let state = state();
        let code = state.console.one_time_code("alice-token-0123456789");
        let cookie = state.console.redeem(&state, &code).expect("first use");
        assert_eq!(state.console.open(&state, &cookie).expect("valid").0.name, "alice");
        assert!(state.console.redeem(&state, &code).is_none());
        assert!(state.console.redeem(&state, "made-up").is_none());
    }
}
