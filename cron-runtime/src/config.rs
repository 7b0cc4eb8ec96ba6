//! Configuration from the environment (SPEC §9).
//!
//! Each process reads only what it uses, and reports every missing or malformed variable
//! in one error, so a misconfigured deploy is fixed in one go.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Where configuration values come from: the process environment, or a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }
}

/// Every problem found in the environment, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Staging,
    Production,
}

impl AppEnv {
    /// The name as written in `APP_ENV`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Staging => "staging",
            AppEnv::Production => "production",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A secret value (token, DSN, database URL): never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// An admin: the name recorded as the actor, and the bearer token that identifies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub name: String,
    pub token: Secret,
}

/// Settings every process uses.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub app_env: AppEnv,
    pub log_format: LogFormat,
    pub sentry_dsn: Option<Secret>,
}

/// Settings of `cronjobs api`.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub database_url: Secret,
    pub host: IpAddr,
    pub port: u16,
    pub admin_tokens: Vec<AdminToken>,
    /// Read-only tokens (`CRON_VIEWER_TOKENS`): the console shows them everything and lets them
    /// change nothing; the REST API answers their writes 403.
    pub viewer_tokens: Vec<AdminToken>,
    /// The key that signs console session cookies (`CRON_CONSOLE_SECRET`); when unset, a random
    /// one per process (sessions end when the process restarts and do not cross replicas).
    pub console_secret: Option<Secret>,
    /// Whether console cookies carry `Secure` (everywhere but `APP_ENV=development`).
    pub secure_cookies: bool,
    /// A slot not started this long after its time is missed (the API's watchdog records it).
    pub missed_after: Duration,
}

/// Settings of `cronjobs scheduler`.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub database_url: Secret,
    pub stale_after: Duration,
    pub heartbeat_every: Duration,
    pub reconcile_every: Duration,
    pub shutdown_grace: Duration,
    /// A slot not started this long after its time is recorded `missed` instead.
    pub missed_after: Duration,
    /// Most runs executing (or waiting for a connection) at once; more due slots wait for room.
    pub max_in_flight: usize,
    /// When set, the scheduler serves `/healthz` and `/metrics` on this port.
    pub port: Option<u16>,
}

/// The default of `CRON_MISSED_AFTER` (SPEC §15).
pub const DEFAULT_MISSED_AFTER: Duration = Duration::from_secs(60);
/// The default of `CRON_MAX_IN_FLIGHT`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;

/// Collects values and problems while reading the environment.
struct Reader<'a> {
    env: &'a dyn Env,
    problems: Vec<String>,
}

impl<'a> Reader<'a> {
    fn new(env: &'a dyn Env) -> Self {
        Reader {
            env,
            problems: Vec::new(),
        }
    }

    fn required(&mut self, name: &str, hint: &str) -> Option<String> {
        let value = self.env.var(name);
        if value.is_none() {
            self.problems.push(format!("{name} is not set: {hint}"));
        }
        value
    }

    fn parsed<T>(&mut self, name: &str, default: T, parse: impl Fn(&str) -> Result<T, String>) -> T
    where
        T: Clone,
    {
        match self.env.var(name) {
            None => default,
            Some(raw) => parse(raw.trim()).unwrap_or_else(|why| {
                self.problems.push(format!("{name}={raw:?} is invalid: {why}"));
                default
            }),
        }
    }

    fn duration(&mut self, name: &str, default: Duration) -> Duration {
        self.parsed(name, default, |raw| match humantime::parse_duration(raw) {
            Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
            Ok(d) => Ok(d),
            Err(e) => Err(format!("{e}; write a duration such as 30s, 15m or 500ms")),
        })
    }

    fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError(self.problems))
        }
    }
}

fn parse_port(raw: &str) -> Result<u16, String> {
    raw.parse::<u16>()
        .map_err(|_| "must be a port number between 0 and 65535".to_owned())
}

/// The minimum length of an admin token.
pub const MIN_TOKEN_LEN: usize = 16;

fn parse_admin_tokens(raw: &str) -> Result<Vec<AdminToken>, String> {
    let mut tokens = Vec::new();
    let mut problems = Vec::new();
    for (i, pair) in raw.split(',').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
        let n = i + 1;
        match pair.split_once(':') {
            None => problems.push(format!("entry {n} is not a name:token pair")),
            Some((name, _)) if name.trim().is_empty() => problems.push(format!("entry {n} has an empty name")),
            Some((name, token)) if token.trim().chars().count() < MIN_TOKEN_LEN => problems.push(format!(
                "the token of {:?} is shorter than {MIN_TOKEN_LEN} characters",
                name.trim()
            )),
            Some((name, token)) => tokens.push(AdminToken {
                name: name.trim().to_owned(),
                token: Secret::new(token.trim()),
            }),
        }
    }
    if tokens.is_empty() && problems.is_empty() {
        problems.push("no name:token pairs".into());
    }
    if problems.is_empty() {
        Ok(tokens)
    } else {
        Err(format!(
            "{} (expected comma-separated name:token pairs, e.g. alice:<32 random characters>)",
            problems.join("; ")
        ))
    }
}

const DATABASE_URL_HINT: &str = "set it to a PostgreSQL URL, e.g. postgres://user:password@host:5432/cronjobs";

impl CommonConfig {
    /// Reads `APP_ENV`, `LOG_FORMAT` and `SENTRY_DSN`.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut r = Reader::new(env);
        let app_env = r.parsed("APP_ENV", AppEnv::Development, |raw| match raw {
            "development" => Ok(AppEnv::Development),
            "staging" => Ok(AppEnv::Staging),
            "production" => Ok(AppEnv::Production),
            _ => Err("must be development, staging or production".into()),
        });
        let default_format = if app_env == AppEnv::Development {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        };
        let log_format = r.parsed("LOG_FORMAT", default_format, |raw| match raw {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be pretty or json".into()),
        });
        // Checked here because the Sentry client would silently stay off with a bad DSN, and
        // not through `parsed`, whose message would echo the value (the DSN holds a key).
        let sentry_dsn = env.var("SENTRY_DSN").map(|raw| raw.trim().to_owned());
        if let Some(dsn) = &sentry_dsn {
            if dsn.parse::<sentry::types::Dsn>().is_err() {
                r.problems.push(
                    "SENTRY_DSN is invalid: expected a Sentry DSN such as https://<key>@<host>/<project id>".into(),
                );
            }
        }
        let sentry_dsn = sentry_dsn.map(Secret::new);
        r.finish(CommonConfig {
            app_env,
            log_format,
            sentry_dsn,
        })
    }
}

impl ApiConfig {
    /// Reads what `cronjobs api` needs.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut r = Reader::new(env);
        let database_url = r.required("DATABASE_URL", DATABASE_URL_HINT).map(Secret::new);
        let host = r.parsed("HOST", IpAddr::from([0, 0, 0, 0]), |raw| {
            raw.parse()
                .map_err(|_| "must be an IP address such as 0.0.0.0 or 127.0.0.1".to_owned())
        });
        let port = r.parsed("PORT", 8080, parse_port);
        let admin_tokens = match r.required(
            "CRON_ADMIN_TOKENS",
            "set it to comma-separated name:token pairs, e.g. alice:<32 random characters>",
        ) {
            // Not through `parsed`: its message would echo the value, and these are secrets.
            Some(raw) => parse_admin_tokens(&raw).unwrap_or_else(|why| {
                r.problems.push(format!("CRON_ADMIN_TOKENS is invalid: {why}"));
                Vec::new()
            }),
            None => Vec::new(),
        };
        let viewer_tokens = match env.var("CRON_VIEWER_TOKENS") {
            Some(raw) => parse_admin_tokens(&raw).unwrap_or_else(|why| {
                r.problems.push(format!("CRON_VIEWER_TOKENS is invalid: {why}"));
                Vec::new()
            }),
            None => Vec::new(),
        };
        for viewer in &viewer_tokens {
            if admin_tokens.iter().any(|a| a.token == viewer.token) {
                r.problems.push(format!(
                    "CRON_VIEWER_TOKENS: the token of {:?} is also an admin token; give viewers their own",
                    viewer.name
                ));
            }
        }
        let console_secret = env.var("CRON_CONSOLE_SECRET").map(|raw| raw.trim().to_owned());
        if console_secret.as_ref().is_some_and(|s| s.chars().count() < 32) {
            r.problems
                .push("CRON_CONSOLE_SECRET is invalid: it must be at least 32 characters".into());
        }
        let secure_cookies = env.var("APP_ENV").is_some_and(|e| e.trim() != "development");
        let missed_after = r.duration("CRON_MISSED_AFTER", DEFAULT_MISSED_AFTER);
        let config = ApiConfig {
            database_url: database_url.unwrap_or_else(|| Secret::new("")),
            host,
            port,
            admin_tokens,
            viewer_tokens,
            console_secret: console_secret.map(Secret::new),
            secure_cookies,
            missed_after,
        };
        r.finish(config)
    }
}

impl SchedulerConfig {
    /// Reads what `cronjobs scheduler` needs.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut r = Reader::new(env);
        let database_url = r.required("DATABASE_URL", DATABASE_URL_HINT).map(Secret::new);
        let stale_after = r.duration("CRON_STALE_AFTER", Duration::from_secs(15 * 60));
        let heartbeat_every = r.duration("CRON_HEARTBEAT_EVERY", Duration::from_secs(30));
        let reconcile_every = r.duration("CRON_RECONCILE_EVERY", Duration::from_secs(30));
        let shutdown_grace = r.duration("CRON_SHUTDOWN_GRACE", Duration::from_secs(30));
        let missed_after = r.duration("CRON_MISSED_AFTER", DEFAULT_MISSED_AFTER);
        let max_in_flight = r.parsed("CRON_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, |raw| {
            match raw.parse::<usize>() {
                Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
                _ => Err("must be a whole number from 1 to 1000000".into()),
            }
        });
        let port = r.parsed("PORT", None, |raw| parse_port(raw).map(Some));
        if heartbeat_every >= stale_after {
            r.problems.push(format!(
                "CRON_HEARTBEAT_EVERY ({}) must be shorter than CRON_STALE_AFTER ({}), or healthy runs would be marked stale",
                humantime::format_duration(heartbeat_every),
                humantime::format_duration(stale_after)
            ));
        }
        let config = SchedulerConfig {
            database_url: database_url.unwrap_or_else(|| Secret::new("")),
            stale_after,
            heartbeat_every,
            reconcile_every,
            shutdown_grace,
            missed_after,
            max_in_flight,
            port,
        };
        r.finish(config)
    }
}

/// Reads `DATABASE_URL` alone (for `migrate` and `prune`).
pub fn database_url(env: &dyn Env) -> Result<Secret, ConfigError> {
    let mut r = Reader::new(env);
    let url = r.required("DATABASE_URL", DATABASE_URL_HINT).map(Secret::new);
    r.finish(url.unwrap_or_else(|| Secret::new("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_config_names_every_problem_at_once() {
        let err = ApiConfig::from_env(&[("PORT", "http"), ("HOST", "localhost")]).unwrap_err();
        let text = err.to_string();
        for name in ["DATABASE_URL", "CRON_ADMIN_TOKENS", "PORT", "HOST"] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(err.0.len(), 4);
    }

    #[test]
    fn viewer_tokens_and_the_console_secret_are_optional_and_checked() {
        let base = [
            ("DATABASE_URL", "postgres://x"),
            ("CRON_ADMIN_TOKENS", "alice:0123456789abcdef"),
        ];
        let plain = ApiConfig::from_env(&base).unwrap();
        assert!(plain.viewer_tokens.is_empty() && plain.console_secret.is_none());
        assert!(!plain.secure_cookies, "APP_ENV defaults to development");
        let ok = ApiConfig::from_env(&[
            base[0],
            base[1],
            ("CRON_VIEWER_TOKENS", "victor:viewer-token-0123456789"),
            ("CRON_CONSOLE_SECRET", "0123456789abcdef0123456789abcdef"),
            ("APP_ENV", "production"),
        ])
        .unwrap();
        assert_eq!(ok.viewer_tokens[0].name, "victor");
        assert!(ok.secure_cookies);
        let err = ApiConfig::from_env(&[
            base[0],
            base[1],
            ("CRON_VIEWER_TOKENS", "victor:0123456789abcdef,eve:short"),
            ("CRON_CONSOLE_SECRET", "too short"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("CRON_VIEWER_TOKENS is invalid"), "{err}");
        assert!(err.contains("CRON_CONSOLE_SECRET is invalid"), "{err}");
        assert!(!err.contains("0123456789abcdef"), "never echoes a token: {err}");
    }

    #[test]
    fn admin_tokens_are_parsed_and_short_ones_rejected() {
        let ok = ApiConfig::from_env(&[
            ("DATABASE_URL", "postgres://x"),
            ("CRON_ADMIN_TOKENS", "alice:0123456789abcdef, bob:fedcba9876543210xyz"),
        ])
        .unwrap();
        assert_eq!(ok.admin_tokens.len(), 2);
        assert_eq!(ok.admin_tokens[1].name, "bob");
        assert_eq!(ok.admin_tokens[1].token.expose(), "fedcba9876543210xyz");

        let err = ApiConfig::from_env(&[
            ("DATABASE_URL", "postgres://x"),
            ("CRON_ADMIN_TOKENS", "alice:short,nocolon"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("shorter than 16"), "{err}");
        assert!(err.contains("entry 2 is not a name:token pair"), "{err}");
        assert!(!err.contains("short,"), "the token itself must not be echoed: {err}");
    }

    #[test]
    fn scheduler_durations_are_validated() {
        let err = SchedulerConfig::from_env(&[
            ("DATABASE_URL", "postgres://x"),
            ("CRON_STALE_AFTER", "10s"),
            ("CRON_HEARTBEAT_EVERY", "1m"),
            ("CRON_SHUTDOWN_GRACE", "soon"),
        ])
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        let ok = SchedulerConfig::from_env(&[
            ("DATABASE_URL", "postgres://x"),
            ("CRON_STALE_AFTER", "3s"),
            ("CRON_HEARTBEAT_EVERY", "500ms"),
        ])
        .unwrap();
        assert_eq!(ok.stale_after, Duration::from_secs(3));
        assert_eq!(ok.reconcile_every, Duration::from_secs(30));
    }

    #[test]
    fn a_bad_sentry_dsn_is_reported_without_its_value() {
        let err = CommonConfig::from_env(&[("SENTRY_DSN", "not-a-dsn-secretvalue")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("SENTRY_DSN is invalid"), "{text}");
        assert!(!text.contains("secretvalue"), "{text}");
        let ok = CommonConfig::from_env(&[("SENTRY_DSN", "https://public@sentry.example.com/42")]).unwrap();
        assert!(ok.sentry_dsn.is_some());
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("postgres://u:hunter2@h/db")), "Secret(***)");
    }
}
