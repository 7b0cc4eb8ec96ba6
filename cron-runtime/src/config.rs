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
    /// `CRON_DIAGNOSTIC_TARGETS`: put the diagnostic targets (`system.sleep`, `system.fail`,
    /// `system.panic`, `system.record`) in the registry. Off by default; tests and benchmarks.
    pub diagnostic_targets: bool,
    /// `CRON_HTTP_ALLOWED_HOSTS`: the hosts the `http.request` target may call; `None` (unset)
    /// allows every host.
    pub http_allowed_hosts: Option<AllowedHosts>,
}

/// The hosts an `http.request` job may call (`CRON_HTTP_ALLOWED_HOSTS`): exact names, or
/// `*.example.com` for every subdomain of `example.com`. Compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// Parses a comma-separated list such as `api.example.com, *.internal.example.com`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut hosts = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let name = entry.strip_prefix("*.").unwrap_or(entry);
            let valid = !name.is_empty()
                && name
                    .split('.')
                    .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            if !valid {
                return Err(format!(
                    "{entry:?} is not a host name; list names such as api.example.com or *.example.com, separated by commas"
                ));
            }
            hosts.push(entry.to_ascii_lowercase());
        }
        if hosts.is_empty() {
            return Err("lists no host; unset it to allow every host".into());
        }
        Ok(AllowedHosts(hosts))
    }

    /// Whether `host` (a name or an IP address from a URL) is on the list.
    pub fn permits(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.0.iter().any(|allowed| match allowed.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => *allowed == host,
        })
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// How long a stopping scheduler, or an admin's cancel, gives running handlers to return
/// (`CRON_SHUTDOWN_GRACE` unset).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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
    /// `DATABASE_POOL_SIZE`: connections serving requests (the watchdog has one more).
    pub pool_size: u32,
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
    /// `DATABASE_POOL_SIZE`: the targets' pool (`ctx.db()`).
    pub pool_size: u32,
    /// `CRON_SCHEDULER_POOL_SIZE`: the scheduler's own bookkeeping (slot inserts, claims,
    /// heartbeats, sweeps, the watchdog), kept apart so busy targets cannot starve it.
    pub bookkeeping_pool_size: u32,
    /// `RAILWAY_DEPLOYMENT_DRAINING_SECONDS`, set by the operator on Railway: how long the
    /// platform waits between SIGTERM and SIGKILL (Railway's default is 3 s).
    pub platform_draining: Option<Duration>,
    /// Incidents, webhooks and Sentry Crons (SPEC §12).
    pub alerts: AlertConfig,
}

impl ApiConfig {
    /// The most connections the process opens: its pool, the watchdog's connection, and the
    /// webhook sender's when webhooks are configured.
    pub fn max_connections(&self) -> u32 {
        self.pool_size + 1 + u32::from(!self.alerts.webhook_urls.is_empty())
    }
}

/// What a scheduler needs after `CRON_SHUTDOWN_GRACE` to fail what is left and leave the
/// cluster cleanly (a few database writes); the platform's draining time should add it.
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(15);

impl SchedulerConfig {
    /// A warning when the platform kills the process before its shutdown grace is over: runs
    /// would die mid-flight and be failed later by a sweep instead of at shutdown.
    pub fn draining_warning(&self) -> Option<String> {
        let draining = self.platform_draining?;
        (draining < self.shutdown_grace).then(|| {
            format!(
                "RAILWAY_DEPLOYMENT_DRAINING_SECONDS ({}s) is shorter than CRON_SHUTDOWN_GRACE ({}): \
                 a deploy kills runs before their grace is over; set it to at least {}",
                draining.as_secs(),
                humantime::format_duration(self.shutdown_grace),
                (self.shutdown_grace + SHUTDOWN_MARGIN).as_secs()
            )
        })
    }

    /// The settings every process of a cluster must read alike, as published in the instance
    /// row: the slot and staleness windows, and a digest of the webhook URLs (never the URLs).
    pub fn shared_settings(&self) -> serde_json::Value {
        use sha2::Digest;
        let mut urls: Vec<&str> = self.alerts.webhook_urls.iter().map(Secret::expose).collect();
        urls.sort_unstable();
        let digest = sha2::Sha256::digest(urls.join("\n").as_bytes());
        serde_json::json!({
            "missed_after_ms": self.missed_after.as_millis() as u64,
            "stale_after_ms": self.stale_after.as_millis() as u64,
            "webhook_urls_sha256": hex::encode(&digest[..8]),
        })
    }

    /// The most connections the process opens: the targets' pool, the bookkeeping pool, the
    /// connection that records outcomes, the LISTEN connection, and the webhook sender's when
    /// webhooks are configured.
    pub fn max_connections(&self) -> u32 {
        self.pool_size + self.bookkeeping_pool_size + 2 + u32::from(!self.alerts.webhook_urls.is_empty())
    }
}

/// The default of `CRON_MISSED_AFTER` (SPEC §15).
pub const DEFAULT_MISSED_AFTER: Duration = Duration::from_secs(60);
/// The default of `CRON_MAX_IN_FLIGHT`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;
/// The default of `DATABASE_POOL_SIZE` for `cronjobs api`.
pub const DEFAULT_API_POOL_SIZE: u32 = 10;
/// The default of `DATABASE_POOL_SIZE` for `cronjobs scheduler` (the targets' `ctx.db()`).
pub const DEFAULT_TARGETS_POOL_SIZE: u32 = 20;
/// The default of `CRON_SCHEDULER_POOL_SIZE`.
pub const DEFAULT_BOOKKEEPING_POOL_SIZE: u32 = 4;

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

    /// A pool size within `min..=1000`.
    fn pool_size(&mut self, name: &str, default: u32, min: u32, why_min: &str) -> u32 {
        self.parsed(name, default, |raw| match raw.parse::<u32>() {
            Ok(n) if (min..=1000).contains(&n) => Ok(n),
            Ok(n) if n < min && !why_min.is_empty() => Err(format!("must be at least {min}: {why_min}")),
            _ => Err(format!("must be a whole number from {min} to 1000")),
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

fn parse_switch(raw: &str) -> Result<bool, String> {
    match raw {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err("must be 1 (on) or 0 (off)".into()),
    }
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
    problems.extend(duplicate_admins(&tokens));
    if problems.is_empty() {
        Ok(tokens)
    } else {
        Err(format!(
            "{} (expected comma-separated name:token pairs, e.g. alice:<32 random characters>)",
            problems.join("; ")
        ))
    }
}

/// Names given twice, and tokens given twice (named by their admins, never echoed): with either,
/// who made a change would depend on the order of the list.
fn duplicate_admins(tokens: &[AdminToken]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, admin) in tokens.iter().enumerate() {
        for earlier in &tokens[..i] {
            if earlier.name == admin.name {
                problems.push(format!("the name {:?} is given twice", admin.name));
            }
            if earlier.token == admin.token {
                problems.push(format!(
                    "{:?} and {:?} have the same token: give each admin their own",
                    earlier.name, admin.name
                ));
            }
        }
    }
    problems
}

const DATABASE_URL_HINT: &str = "set it to a PostgreSQL URL, e.g. postgres://user:password@host:5432/cronjobs \
     (the database `cronjobs dev` uses is postgres://postgres@127.0.0.1:5432/cronjobs_dev)";

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
        let diagnostic_targets = r.parsed("CRON_DIAGNOSTIC_TARGETS", false, parse_switch);
        let http_allowed_hosts = r.parsed("CRON_HTTP_ALLOWED_HOSTS", None, |raw| {
            AllowedHosts::parse(raw).map(Some)
        });
        r.finish(CommonConfig {
            app_env,
            log_format,
            sentry_dsn,
            diagnostic_targets,
            http_allowed_hosts,
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
        let pool_size = r.pool_size("DATABASE_POOL_SIZE", DEFAULT_API_POOL_SIZE, 1, "");
        let alerts = r.alerts();
        let config = ApiConfig {
            database_url: database_url.unwrap_or_else(|| Secret::new("")),
            host,
            port,
            admin_tokens,
            viewer_tokens,
            console_secret: console_secret.map(Secret::new),
            secure_cookies,
            missed_after,
            pool_size,
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
        let shutdown_grace = r.duration("CRON_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE);
        let missed_after = r.duration("CRON_MISSED_AFTER", DEFAULT_MISSED_AFTER);
        let max_in_flight = r.parsed("CRON_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, |raw| {
            match raw.parse::<usize>() {
                Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
                _ => Err("must be a whole number from 1 to 1000000".into()),
            }
        });
        let port = r.parsed("PORT", None, |raw| parse_port(raw).map(Some));
        let pool_size = r.pool_size("DATABASE_POOL_SIZE", DEFAULT_TARGETS_POOL_SIZE, 1, "");
        let bookkeeping_pool_size = r.pool_size(
            "CRON_SCHEDULER_POOL_SIZE",
            DEFAULT_BOOKKEEPING_POOL_SIZE,
            2,
            "with one connection, heartbeats would wait behind a large slot insert",
        );
        let platform_draining = r.parsed("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", None, |raw| {
            raw.parse::<u64>()
                .map(|s| Some(Duration::from_secs(s)))
                .map_err(|_| "must be a whole number of seconds".to_owned())
        });
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
            pool_size,
            bookkeeping_pool_size,
            platform_draining,
            alerts,
        };
        r.finish(config)
    }
}

/// Reads `DATABASE_URL` alone (for `migrate` and `prune`).
/// Reads only the alerting variables: for commands that change jobs outside the two services
/// (`cronjobs apply`), so the incidents they resolve are announced as the services would.
impl AlertConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let mut r = Reader::new(env);
        let alerts = r.alerts();
        r.finish(alerts)
    }
}

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
    fn duplicate_admin_names_and_tokens_are_rejected_without_echoing_tokens() {
        let config =
            |tokens: &str| ApiConfig::from_env(&[("DATABASE_URL", "postgres://x"), ("CRON_ADMIN_TOKENS", tokens)]);
        let err = config("alice:0123456789abcdef,alice:fedcba9876543210")
            .unwrap_err()
            .to_string();
        assert!(err.contains(r#"the name "alice" is given twice"#), "{err}");
        assert!(
            !err.contains("0123456789abcdef") && !err.contains("fedcba9876543210"),
            "{err}"
        );

        let err = config("alice:0123456789abcdef,bob:0123456789abcdef")
            .unwrap_err()
            .to_string();
        assert!(err.contains(r#""alice" and "bob" have the same token"#), "{err}");
        assert!(!err.contains("0123456789abcdef"), "{err}");

        assert_eq!(
            config("alice:0123456789abcdef,bob:fedcba9876543210")
                .unwrap()
                .admin_tokens
                .len(),
            2
        );
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
    fn diagnostic_targets_are_off_unless_switched_on() {
        assert!(!CommonConfig::from_env(&[]).unwrap().diagnostic_targets);
        assert!(
            CommonConfig::from_env(&[("CRON_DIAGNOSTIC_TARGETS", "1")])
                .unwrap()
                .diagnostic_targets
        );
        assert!(
            !CommonConfig::from_env(&[("CRON_DIAGNOSTIC_TARGETS", "0")])
                .unwrap()
                .diagnostic_targets
        );
        let err = CommonConfig::from_env(&[("CRON_DIAGNOSTIC_TARGETS", "yes")]).unwrap_err();
        assert!(err.to_string().contains("CRON_DIAGNOSTIC_TARGETS"), "{err}");
    }

    #[test]
    fn pool_sizes_have_defaults_and_are_validated_together() {
        let url = ("DATABASE_URL", "postgres://x");
        let scheduler = SchedulerConfig::from_env(&[url]).unwrap();
        assert_eq!((scheduler.pool_size, scheduler.bookkeeping_pool_size), (20, 4));
        assert_eq!(scheduler.max_connections(), 26);
        let tokens = ("CRON_ADMIN_TOKENS", "alice:0123456789abcdef");
        let api = ApiConfig::from_env(&[url, tokens]).unwrap();
        assert_eq!((api.pool_size, api.max_connections()), (10, 11));

        let small =
            SchedulerConfig::from_env(&[url, ("DATABASE_POOL_SIZE", "3"), ("CRON_SCHEDULER_POOL_SIZE", "2")]).unwrap();
        assert_eq!(small.max_connections(), 7);

        let err = SchedulerConfig::from_env(&[url, ("DATABASE_POOL_SIZE", "0"), ("CRON_SCHEDULER_POOL_SIZE", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_POOL_SIZE=\"0\" is invalid"), "{err}");
        assert!(
            err.contains("CRON_SCHEDULER_POOL_SIZE=\"1\" is invalid: must be at least 2"),
            "{err}"
        );
        let err = ApiConfig::from_env(&[url, tokens, ("DATABASE_POOL_SIZE", "many")]).unwrap_err();
        assert!(err.to_string().contains("DATABASE_POOL_SIZE"), "{err}");
    }

    #[test]
    fn a_platform_draining_time_shorter_than_the_grace_is_warned_about() {
        let config = |draining: &str| {
            SchedulerConfig::from_env(&[
                ("DATABASE_URL", "postgres://x"),
                ("CRON_SHUTDOWN_GRACE", "30s"),
                ("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", draining),
            ])
        };
        let warning = config("3").unwrap().draining_warning().expect("a warning");
        assert!(
            warning.contains("(3s) is shorter than CRON_SHUTDOWN_GRACE (30s)"),
            "{warning}"
        );
        assert!(warning.contains("at least 45"), "{warning}");
        assert_eq!(config("45").unwrap().draining_warning(), None);
        let unset = SchedulerConfig::from_env(&[("DATABASE_URL", "postgres://x")]).unwrap();
        assert_eq!(unset.draining_warning(), None);
        assert!(config("45s")
            .unwrap_err()
            .to_string()
            .contains("RAILWAY_DEPLOYMENT_DRAINING_SECONDS"));
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
