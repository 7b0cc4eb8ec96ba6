//! `api`: the admin API with a large run history, under load from `wrk`.
//!
//! Seeds `--api-runs` finished runs (1M by default) over 1,000 definitions, starts the real
//! `cronjobs api`, and runs `wrk` against `GET /runs` (first page, and pages filtered the ways an
//! operator filters) and against `POST /jobs` (each request a new job key, from a Lua script).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sqlx::PgPool;

use crate::db::{self, Server};
use crate::process::{self, Service};
use crate::{Args, Table};

const DATABASE: &str = "cronjobs_bench_api";
pub(crate) const TOKEN: &str = "bench-token-0123456789abcdef";
const DEFINITIONS: u64 = 1_000;
const PREFIX: &str = "/api/v2/admin/cron";

/// What wrk sends.
enum Request {
    Get(String),
    /// `POST /jobs`, a new recurring job per request.
    CreateJob,
}

pub async fn run(args: &Args, server: &Server) -> anyhow::Result<Table> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("api: wrk is missing (apt-get install wrk)");
    }
    eprintln!("api: seeding {} runs", args.api_runs);
    let pool = server.fresh(DATABASE, &args.cronjobs).await?;
    seed_history(&pool, args.api_runs).await?;
    let port = free_port()?;
    let api = start_api(&args.cronjobs, &server.url(DATABASE), port).await?;
    let base = format!("http://127.0.0.1:{port}{PREFIX}");
    let get = |path: &str| Request::Get(path.to_owned());
    let window = format!("/runs?{}", one_hour_window(&pool).await?);
    let cases = [
        ("GET /runs (first page)", get("/runs")),
        ("GET /runs?job_key=", get("/runs?job_key=bench-17")),
        ("GET /runs?status=failed", get("/runs?status=failed")),
        ("GET /runs?trigger_type=manual", get("/runs?trigger_type=manual")),
        ("GET /runs?target= (1% of runs)", get("/runs?target=system.sleep")),
        (
            "GET /runs?target=&status=",
            get("/runs?target=system.heartbeat&status=skipped"),
        ),
        ("GET /runs?from=&to= (one hour)", get(&window)),
        ("POST /jobs", Request::CreateJob),
    ];
    let mut rows = Vec::new();
    for (name, request) in &cases {
        eprintln!("api: {name} for {} s", args.api_seconds);
        let figures = wrk(&base, request, args)?;
        rows.push(vec![
            (*name).to_owned(),
            format!("{:.0}", figures.requests_per_second),
            millis(figures.p50),
            millis(figures.p90),
            millis(figures.p99),
            if figures.failures == 0 {
                "0".to_owned()
            } else {
                format!("{} (!)", figures.failures)
            },
        ]);
    }
    let rss = process::memory_mib(api.pid(), "VmHWM").unwrap_or(0.0);
    api.stop()?;
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(Table {
        title: format!(
            "api: {runs} run rows, wrk -t2 -c{} for {} s per case (API peak RSS {rss:.0} MiB)",
            args.api_connections, args.api_seconds
        ),
        header: vec!["request", "requests/s", "p50", "p90", "p99", "non-2xx"],
        rows,
    })
}

/// `n` finished runs of 1,000 definitions, one per second back from now: 95% succeeded,
/// 4% failed, 1% skipped; one in 500 manual; 10% and 1% of them on two other targets.
async fn seed_history(pool: &PgPool, n: u64) -> anyhow::Result<()> {
    db::seed(pool, DEFINITIONS, "'0 0 * * *'").await?;
    // 10% of the definitions on system.heartbeat, 1% on system.sleep, the rest system.record.
    sqlx::query(
        "UPDATE cron_job_definitions d SET target = CASE WHEN o.n < $1 / 10 THEN 'system.heartbeat' ELSE 'system.sleep' END
         FROM (SELECT id, row_number() OVER (ORDER BY job_key) - 1 AS n FROM cron_job_definitions) AS o
         WHERE o.id = d.id AND o.n < $1 / 10 + $1 / 100",
    )
    .bind(DEFINITIONS as i64)
    .execute(pool)
    .await?;
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO cron_job_runs (id, job_definition_id, job_key, job_version, target, trigger_type,
                                    scheduled_at, status, started_at, finished_at, duration_ms, error, output,
                                    scheduler_instance, created_at)
         SELECT gen_random_uuid(), d.id, d.job_key, 1, d.target,
                CASE WHEN i % 500 = 0 THEN 'manual' ELSE 'scheduled' END,
                t, s.status,
                CASE WHEN s.status <> 'skipped' THEN t + interval '5 ms' END,
                t + interval '25 ms',
                CASE WHEN s.status <> 'skipped' THEN 20 END,
                CASE s.status WHEN 'failed' THEN 'connection refused by upstream'
                              WHEN 'skipped' THEN 'a run of this job was still active' END,
                CASE WHEN s.status = 'succeeded' THEN '{\"rows\": 1}'::jsonb END,
                'bench-seed', t
         FROM generate_series(1, $1) AS i
         CROSS JOIN LATERAL (SELECT date_trunc('second', now()) - i * interval '1 second' AS t) AS at
         CROSS JOIN LATERAL (SELECT CASE WHEN i % 100 = 7 THEN 'skipped'
                                         WHEN i % 25 = 3 THEN 'failed'
                                         ELSE 'succeeded' END AS status) AS s
         JOIN (SELECT id, job_key, target, row_number() OVER (ORDER BY job_key) - 1 AS n
               FROM cron_job_definitions) AS d ON d.n = i % $2",
    )
    .bind(n as i64)
    .bind(DEFINITIONS as i64)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE cron_job_runs").execute(pool).await?;
    eprintln!("api: seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `from=&to=` covering one hour in the middle of the history.
async fn one_hour_window(pool: &PgPool) -> anyhow::Result<String> {
    let (from, to): (String, String) = sqlx::query_as(
        "SELECT to_char(m AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                to_char((m + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         FROM (SELECT min(scheduled_at) + (max(scheduled_at) - min(scheduled_at)) / 2 AS m FROM cron_job_runs) AS w",
    )
    .fetch_one(pool)
    .await?;
    Ok(format!("from={from}&to={to}"))
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `cronjobs api` on `port` and waits until `/readyz` answers 200.
pub(crate) async fn start_api(bin: &Path, database_url: &str, port: u16) -> anyhow::Result<Service> {
    let tokens = format!("bench:{TOKEN}");
    let port_text = port.to_string();
    let api = process::spawn(
        bin,
        "api",
        database_url,
        &[
            ("CRON_ADMIN_TOKENS", &tokens),
            ("HOST", "127.0.0.1"),
            ("PORT", &port_text),
        ],
    )?;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(api);
        }
        if Instant::now() > deadline {
            bail!("cronjobs api was not ready within 30 s:\n{}", api.tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What wrk measured.
struct Figures {
    requests_per_second: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    /// Non-2xx/3xx responses plus socket errors.
    failures: u64,
}

/// Each thread numbers its requests, so every `POST /jobs` creates a new key.
const CREATE_JOB_SCRIPT: &str = r#"
local threads = 0
function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end
function init(args)
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"job_key":"created-%d-%d","target":"system.heartbeat","schedule_type":"recurring","cron_expression":"*/5 * * * *","timezone":"Europe/Berlin","description":"bench"}',
    thread_id, counter)
  return wrk.format(nil, nil, nil, body)
end
"#;

fn wrk(base: &str, request: &Request, args: &Args) -> anyhow::Result<Figures> {
    let mut command = Command::new("wrk");
    command
        .args(["-t2", "-c", &args.api_connections.to_string()])
        .args(["-d", &format!("{}s", args.api_seconds), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
    let script = std::env::temp_dir().join(format!("cronjobs-bench-{}.lua", std::process::id()));
    match request {
        Request::Get(path) => {
            command.arg(format!("{base}{path}"));
        }
        Request::CreateJob => {
            std::fs::write(&script, CREATE_JOB_SCRIPT)?;
            command.arg("-s").arg(&script).arg(format!("{base}/jobs"));
        }
    }
    let out = command.output().context("cannot run wrk")?;
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&stdout).with_context(|| format!("cannot read wrk's output:\n{stdout}"))
}

fn parse_wrk(output: &str) -> Option<Figures> {
    let value_after = |prefix: &str| -> Option<&str> {
        let line = output.lines().map(str::trim).find(|l| l.starts_with(prefix))?;
        line[prefix.len()..].split_whitespace().next()
    };
    let socket_errors: u64 = output
        .lines()
        .find(|l| l.trim().starts_with("Socket errors:"))
        .map(|l| {
            l.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let non_2xx: u64 = value_after("Non-2xx or 3xx responses:").map_or(Some(0), |v| v.parse().ok())?;
    Some(Figures {
        requests_per_second: value_after("Requests/sec:")?.parse().ok()?,
        p50: parse_latency(value_after("50%")?)?,
        p90: parse_latency(value_after("90%")?)?,
        p99: parse_latency(value_after("99%")?)?,
        failures: non_2xx + socket_errors,
    })
}

/// wrk's latencies: `635.91us`, `2.33ms`, `1.02s`.
fn parse_latency(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * scale))
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Creates `n` recurring jobs through `POST /jobs` (8 at a time), daily at varied times like
/// the seeded ones: the way definitions reach a running scheduler in production, one
/// notification each.
pub(crate) async fn create_jobs(port: u16, n: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v2/admin/cron/jobs");
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let body = serde_json::json!({
                    "job_key": format!("api-{i}"),
                    "target": "system.heartbeat",
                    "schedule_type": "recurring",
                    "cron_expression": format!("{} {} * * *", i % 60, (i / 60) % 24),
                });
                let status = client.post(&url).bearer_auth(TOKEN).json(&body).send().await?.status();
                anyhow::ensure!(status.as_u16() == 201, "POST /jobs answered {status}");
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_latency_output() {
        let output = "Running 5s test @ http://127.0.0.1:1/runs
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  300.00us   9.00ms   90.00%
  Latency Distribution
     50%  635.91us
     75%  712.00us
     90%    1.02ms
     99%    2.33ms
  1000 requests in 5.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1234.50
Transfer/sec:    200.00KB
";
        let figures = parse_wrk(output).expect("parsed");
        assert_eq!(figures.p50, Duration::from_secs_f64(635.91e-6));
        assert_eq!(figures.p99, Duration::from_secs_f64(2.33e-3));
        assert_eq!(figures.failures, 7);
        assert!((figures.requests_per_second - 1234.5).abs() < 1e-9);
    }
}
