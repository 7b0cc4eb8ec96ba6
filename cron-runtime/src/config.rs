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
    /// A slot not started this long after its time is missed (the API's watchdog records it).
    pub missed_after: Duration,
    /// Incidents and their webhooks (SPEC §12).
    pub alerts: AlertConfig,
}

/// Alerting settings, read by `api` and `scheduler` alike (SPEC §12, §15).
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Consecutive failed or missed runs of a key that open an incident (`CRON_ALERT_AFTER_FAILURES`).
    pub after_failures: u32,
    /// Where incident events are POSTed (`CRON_ALERT_WEBHOOK_URLS`); secrets, like the URLs of
    /// Slack's incoming webhooks.
    pub webhook_urls: Vec<Secret>,
    /// Signs every webhook body (`CRON_ALERT_WEBHOOK_SECRET`).
    pub webhook_secret: Option<Secret>,
    /// How long no scheduler may be alive, while active jobs exist, before the cluster incident
    /// `no_scheduler` opens (`CRON_NO_SCHEDULER_AFTER`).
    pub no_scheduler_after: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            after_failures: 1,
            webhook_urls: Vec::new(),
            webhook_secret: None,
            no_scheduler_after: DEFAULT_NO_SCHEDULER_AFTER,
        }
    }
}

/// The default of `CRON_NO_SCHEDULER_AFTER` (SPEC §12: two minutes).
pub const DEFAULT_NO_SCHEDULER_AFTER: Duration = Duration::from_secs(120);

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
    /// Incidents, webhooks and Sentry Crons (SPEC §12).
    pub alerts: AlertConfig,
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

    /// Reads the alerting variables (shared by `api` and `scheduler`).
    fn alerts(&mut self) -> AlertConfig {
        let after_failures = self.parsed("CRON_ALERT_AFTER_FAILURES", 1, |raw| match raw.parse::<u32>() {
            Ok(n) if (1..=1_000).contains(&n) => Ok(n),
            _ => Err("must be a whole number from 1 to 1000".into()),
        });
        let mut webhook_urls = Vec::new();
        if let Some(raw) = self.env.var("CRON_ALERT_WEBHOOK_URLS") {
            // Not through `parsed`: its message would echo the value, and webhook URLs are secrets.
            for (i, url) in raw.split(',').map(str::trim).filter(|u| !u.is_empty()).enumerate() {
                match url.parse::<reqwest::Url>() {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() => {
                        webhook_urls.push(Secret::new(url))
                    }
                    _ => self.problems.push(format!(
                        "CRON_ALERT_WEBHOOK_URLS is invalid: entry {} is not an http(s) URL (expected comma-separated URLs)",
                        i + 1
                    )),
                }
            }
        }
        let webhook_secret = self.env.var("CRON_ALERT_WEBHOOK_SECRET").map(Secret::new);
        let no_scheduler_after = self.duration("CRON_NO_SCHEDULER_AFTER", DEFAULT_NO_SCHEDULER_AFTER);
        AlertConfig {
            after_failures,
            webhook_urls,
            webhook_secret,
            no_scheduler_after,
        }
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
        let missed_after = r.duration("CRON_MISSED_AFTER", DEFAULT_MISSED_AFTER);
        let alerts = r.alerts();
        let config = ApiConfig {
            database_url: database_url.unwrap_or_else(|| Secret::new("")),
            host,
            port,
            admin_tokens,
            missed_after,
            alerts,
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
        let alerts = r.alerts();
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
            alerts,
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
    fn alert_settings_are_read_and_webhook_urls_never_echoed() {
        let ok = SchedulerConfig::from_env(&[
            ("DATABASE_URL", "postgres://x"),
            ("CRON_ALERT_AFTER_FAILURES", "3"),
            (
                "CRON_ALERT_WEBHOOK_URLS",
                "https://hooks.slack.com/services/T0/B0/secret, http://127.0.0.1:9/x",
            ),
            ("CRON_NO_SCHEDULER_AFTER", "5s"),
        ])
        .unwrap();
        assert_eq!(ok.alerts.after_failures, 3);
        assert_eq!(ok.alerts.webhook_urls.len(), 2);
        assert_eq!(ok.alerts.no_scheduler_after, Duration::from_secs(5));
        let err = ApiConfig::from_env(&[
            ("DATABASE_URL", "postgres://x"),
            ("CRON_ADMIN_TOKENS", "alice:0123456789abcdef"),
            ("CRON_ALERT_AFTER_FAILURES", "0"),
            ("CRON_ALERT_WEBHOOK_URLS", "hooks.slack.com/services/T0/B0/secretpart"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("CRON_ALERT_AFTER_FAILURES"), "{err}");
        assert!(err.contains("entry 1 is not an http(s) URL"), "{err}");
        assert!(!err.contains("secretpart"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("postgres://u:hunter2@h/db")), "Secret(***)");
    }
}
