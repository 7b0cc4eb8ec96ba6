//! `cronjobs dev`: the API and the scheduler in one process, for local work.
//!
//! Needs no configuration on a machine with PostgreSQL installed: without `DATABASE_URL` it
//! uses (and creates) the `cronjobs_dev` database on 127.0.0.1:5432 (or `$CRONJOBS_DEV_SERVER`),
//! and when no server answers there it starts a private one ([`super::dev_postgres`]), stopped
//! on exit. Without `CRON_ADMIN_TOKENS` it makes up a token and prints a ready `curl` line.
//! `PORT` is the API's; the embedded scheduler serves no port of its own.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{ApiConfig, CommonConfig, Env, ProcessEnv, SchedulerConfig, Secret};
use crate::domain::incident::Policy;
use crate::{scheduler, store, telemetry, web};
use anyhow::Context;

use super::dev_postgres::PrivatePostgres;
use super::process::{both, open_database, open_registry, shutdown_on_signal};

/// The database `cronjobs dev` uses when `DATABASE_URL` is unset.
const DEV_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const DEV_DATABASE: &str = "cronjobs_dev";

/// The process environment with defaults filled in for local work.
struct DevEnv {
    defaults: Vec<(&'static str, String)>,
}

impl Env for DevEnv {
    fn var(&self, name: &str) -> Option<String> {
        ProcessEnv
            .var(name)
            .or_else(|| self.defaults.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
    }
}

/// Runs the API and the scheduler until SIGTERM/SIGINT.
pub async fn run() -> anyhow::Result<()> {
    let common = CommonConfig::from_env(&ProcessEnv)?;
    let _telemetry = telemetry::init(&common, "dev");
    open_registry(&common)?;

    let generated_token = format!("dev-{}", uuid::Uuid::new_v4().simple());
    let mut defaults = vec![
        ("HOST", "127.0.0.1".to_owned()),
        ("CRON_ADMIN_TOKENS", format!("dev:{generated_token}")),
        // Ctrl-C should not wait half a minute for a run in flight.
        ("CRON_SHUTDOWN_GRACE", "5s".to_owned()),
    ];
    // Kept until the end of `run`: dropping it stops the private server.
    let mut private_server = None;
    if ProcessEnv.var("DATABASE_URL").is_none() {
        let server = match ProcessEnv.var("CRONJOBS_DEV_SERVER") {
            Some(server) => server,
            None => DEV_SERVER.to_owned(),
        };
        let server = match answers(&server).await {
            true => server,
            false => {
                println!("cronjobs dev: no PostgreSQL answers at {server}; starting a private one");
                let started = PrivatePostgres::start()?;
                let url = started.server_url();
                private_server = Some(started);
                url
            }
        };
        defaults.push(("DATABASE_URL", create_dev_database(&server).await?));
    }
    let env = DevEnv { defaults };
    let (api_config, mut scheduler_config) = both(ApiConfig::from_env(&env), SchedulerConfig::from_env(&env))?;
    // One process: PORT is the API's, and it already serves /healthz and /metrics.
    scheduler_config.port = None;

    // One pool serves the API and the targets here: the scheduler's size (DATABASE_POOL_SIZE).
    let pool = open_database(&api_config.database_url, scheduler_config.pool_size).await?;
    store::schema::migrate(&pool).await.context("cannot apply migrations")?;
    let listener = tokio::net::TcpListener::bind((api_config.host, api_config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", api_config.host, api_config.port))?;
    let address = listener.local_addr()?;
    let first_admin = api_config.admin_tokens.first().map(|a| a.token.expose().to_owned());
    let state = web::AppState::new(pool.clone(), api_config.admin_tokens)
        .with_viewers(api_config.viewer_tokens)
        .with_console(api_config.console_secret.as_ref(), api_config.secure_cookies)
        .with_policy(Arc::new(Policy::from(&api_config.alerts)));
    // A one-time link that signs the developer in as the first admin, carrying a code (valid
    // once, for 10 minutes), never the token itself.
    let login_code = first_admin.map(|token| state.console.one_time_code(&token));
    print_banner(
        &api_config.database_url,
        address.ip(),
        address.port(),
        ProcessEnv
            .var("CRON_ADMIN_TOKENS")
            .is_none()
            .then_some(&generated_token),
        login_code.as_deref(),
    );

    let shutdown = shutdown_on_signal();
    let server = tokio::spawn(web::serve(listener, state, {
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    }));
    let scheduled = scheduler::run(pool, scheduler_config, shutdown.clone()).await;
    // The scheduler also returns early on error: take the API down with it.
    shutdown.cancel();
    server.await.context("the API task failed")??;
    drop(private_server);
    scheduled
}

/// Whether a PostgreSQL server answers at `server`.
async fn answers(server: &str) -> bool {
    let url = Secret::new(format!("{server}/postgres"));
    match tokio::time::timeout(std::time::Duration::from_secs(3), store::connect_with(&url, 1)).await {
        Ok(Ok(pool)) => {
            pool.close().await;
            true
        }
        _ => false,
    }
}

/// Creates `cronjobs_dev` on `server` if it does not exist; returns its URL.
async fn create_dev_database(server: &str) -> anyhow::Result<String> {
    let admin = store::connect_with(&Secret::new(format!("{server}/postgres")), 1)
        .await
        .with_context(|| format!("cannot connect to the development PostgreSQL at {server}"))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(DEV_DATABASE)
        .fetch_one(&admin)
        .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE {DEV_DATABASE}"))
            .execute(&admin)
            .await?;
        tracing::info!(database = DEV_DATABASE, "created the development database");
    }
    admin.close().await;
    Ok(format!("{server}/{DEV_DATABASE}"))
}

fn print_banner(
    database: &Secret,
    host: IpAddr,
    port: u16,
    generated_token: Option<&String>,
    login_code: Option<&str>,
) {
    let base = format!("http://{host}:{port}");
    println!("\ncronjobs dev: API and scheduler in one process");
    println!("  database {}", without_password(database.expose()));
    println!("           (the other commands use it with: export DATABASE_URL=<this URL>)");
    println!("  console  {base}/admin");
    if let Some(code) = login_code {
        println!("  sign in  {base}/admin/login/code?code={code}   (one-time link, valid 10 minutes)");
    }
    println!("  API      {base}/api/v2/admin/cron   (OpenAPI: {base}/api/v2/admin/cron/openapi.json)");
    match generated_token {
        Some(token) => {
            println!("  token    {token}   (generated for this run; set CRON_ADMIN_TOKENS to choose your own)");
            println!("\nTry it:\n  curl -s {base}/api/v2/admin/cron/targets -H 'Authorization: Bearer {token}'\n");
        }
        None => println!("  token    one of CRON_ADMIN_TOKENS\n"),
    }
}

/// `url` with its password (if any) replaced by `***`, to print.
fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn the_printed_database_url_hides_its_password() {
        assert_eq!(
            without_password("postgres://app:s3cret@db.internal:5432/cron"),
            "postgres://app:***@db.internal:5432/cron"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1:5432/cronjobs_dev"),
            "postgres://postgres@127.0.0.1:5432/cronjobs_dev"
        );
    }
}
