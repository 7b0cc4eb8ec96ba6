//! `cronjobs-bench`: runs the real `cronjobs scheduler` against scenarios of issue 6 and prints
//! figures, beside PostgreSQL's own ceiling measured with `pgbench` in the same run.
//!
//! Each scenario creates its database (`cronjobs_bench_<scenario>`, dropped first), applies the
//! migrations with `cronjobs migrate`, seeds definitions with one `INSERT ... SELECT
//! generate_series`, and runs the scheduler as a child process. Jobs use the `system.record`
//! target, which inserts `clock_timestamp()` into `cron_test_executions`: lag is that time minus
//! the slot. See `docs/benchmarks.md`.

mod api;
mod db;
mod process;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use cron_runtime::domain::Schedule;
use sqlx::PgPool;

use db::{PgbenchWork, Server};
use process::{spawn_scheduler, CpuSnapshot};

/// Benchmarks the cronjobs scheduler (see docs/benchmarks.md).
#[derive(Debug, Parser)]
#[command(name = "cronjobs-bench")]
struct Args {
    /// Scenarios to run (all but `schedule` when none is given).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// The `cronjobs` binary under test (build it with --release).
    #[arg(long, default_value = "target/release/cronjobs")]
    cronjobs: PathBuf,
    /// Any database on the server; scenario databases are created beside it.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Herd sizes.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 10_000, 50_000])]
    herd: Vec<u64>,
    /// Client connections for pgbench: the scheduler's pool size.
    #[arg(long, default_value_t = 20)]
    clients: u32,
    /// Per-second definitions tried by `sustained`, in order, until one is not held.
    #[arg(long, value_delimiter = ',', default_values_t = [500u64, 1_000, 2_000, 2_500, 3_000, 3_500, 4_000, 5_000, 6_000, 8_000])]
    rates: Vec<u64>,
    /// How long `sustained` holds each rate, seconds (issue 6: 60).
    #[arg(long, default_value_t = 60)]
    step_seconds: u64,
    /// How long `idle` measures, seconds (issue 6 asks for 120).
    #[arg(long, default_value_t = 120)]
    idle_seconds: u64,
    /// Definitions for `idle`.
    #[arg(long, default_value_t = 10_000)]
    idle_definitions: u64,
    /// Definitions for `startup`.
    #[arg(long, default_value_t = 100_000)]
    startup_definitions: u64,
    /// Startup trials (the median is reported).
    #[arg(long, default_value_t = 3)]
    startup_trials: usize,
    /// Finished runs seeded for `api`.
    #[arg(long, default_value_t = 1_000_000)]
    api_runs: u64,
    /// How long wrk loads each `api` request, seconds.
    #[arg(long, default_value_t = 15)]
    api_seconds: u64,
    /// wrk's concurrent connections for `api`.
    #[arg(long, default_value_t = 8)]
    api_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Herd,
    Sustained,
    Idle,
    Startup,
    /// The admin API under load: 1M run rows, `GET /runs` and `POST /jobs` (needs `wrk`).
    Api,
    /// The cost of `Schedule::next_after` (no database).
    Schedule,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.scenarios.is_empty() {
        args.scenarios = vec![
            Scenario::Herd,
            Scenario::Sustained,
            Scenario::Idle,
            Scenario::Startup,
            Scenario::Api,
        ];
    }
    if !args.cronjobs.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p app`",
            args.cronjobs.display()
        );
    }
    let server = Server::from_url(&args.database_url)?;
    let mut tables = Vec::new();
    for scenario in args.scenarios.clone() {
        let figures = match scenario {
            Scenario::Herd => vec![herd(&args, &server).await?],
            Scenario::Sustained => vec![sustained(&args, &server).await?],
            Scenario::Idle => vec![
                idle(&args, &server).await?,
                idle_after_api_creates(&args, &server).await?,
            ],
            Scenario::Startup => vec![startup(&args, &server).await?],
            Scenario::Api => vec![api::run(&args, &server).await?],
            Scenario::Schedule => vec![schedule()?],
        };
        for table in figures {
            println!("{table}");
            tables.push(table);
        }
    }
    println!("\n# all figures\n");
    for table in tables {
        println!("{table}");
    }
    Ok(())
}

/// A markdown table.
struct Table {
    title: String,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, String::len))
                    .chain([self.header[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        writeln!(f, "\n## {}\n", self.title)?;
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            format!("| {} |", padded.join(" | "))
        };
        writeln!(f, "{}", line(self.header.clone()))?;
        writeln!(
            f,
            "{}",
            line(
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
                    .collect()
            )
        )?;
        for row in &self.rows {
            writeln!(f, "{}", line(row.iter().map(String::as_str).collect()))?;
        }
        Ok(())
    }
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Sleeps until the wall-clock time `epoch`.
async fn sleep_until_epoch(epoch: f64) {
    let wait = epoch - now_epoch();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// A 6-field expression firing daily at the UTC second `epoch`.
fn daily_at(epoch: u64) -> String {
    format!("{} {} {} * * *", epoch % 60, (epoch / 60) % 60, (epoch / 3600) % 24)
}

fn secs(s: f64) -> String {
    format!("{s:.3} s")
}

/// `herd`: N jobs due at the same second.
async fn herd(args: &Args, server: &Server) -> anyhow::Result<Table> {
    let mut rows = Vec::new();
    for &n in &args.herd {
        let name = "cronjobs_bench_herd";
        eprintln!("herd {n}: preparing");
        let pool = server.fresh(name, &args.cronjobs).await?;
        // Far enough ahead for the scheduler to start and arm every timer first.
        let slot = now_epoch().ceil() as u64 + 5 + n / 5_000;
        db::seed(&pool, n, &format!("'{}'", daily_at(slot))).await?;
        let mut scheduler = spawn_scheduler(&args.cronjobs, &server.url(name))?;
        let armed = scheduler.wait_armed(Duration::from_secs(120))?;
        if now_epoch() > slot as f64 - 0.5 {
            bail!("herd {n}: the scheduler armed too late ({armed:?}) for the slot");
        }
        sleep_until_epoch(slot as f64 - 0.5).await;
        let cpu_before = process::cpu_seconds(scheduler.pid()).unwrap_or(0.0);
        let deadline = slot as f64 + 60.0 + n as f64 / 200.0;
        let (from, to) = (slot as f64, slot as f64 + 1.0);
        let (terminal, skipped, failed) = loop {
            let counts = db::run_counts(&pool, from, to).await?;
            if counts.0 >= n as i64 || now_epoch() > deadline {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let recorded_after = now_epoch() - slot as f64;
        let cpu = process::cpu_seconds(scheduler.pid()).unwrap_or(0.0) - cpu_before;
        let peak = process::memory_mib(scheduler.pid(), "VmHWM").unwrap_or(0.0);
        let lag = db::lag(&pool, from, to).await?;
        scheduler.stop()?;
        eprintln!("herd {n}: pgbench baseline");
        let baseline = db::pgbench(&server.url(name), args.clients, PgbenchWork::Transactions(n))?;
        pool.close().await;
        let ok = lag.count == n as i64 && lag.duplicates == 0 && skipped == 0 && failed == 0;
        rows.push(vec![
            n.to_string(),
            format!("{}/{n}{}", lag.count, if ok { "" } else { " (!)" }),
            secs(lag.p50),
            secs(lag.p99),
            secs(lag.max),
            secs(lag.all_ran_after),
            format!("≤ {recorded_after:.1} s ({terminal} terminal)"),
            secs(baseline.seconds()),
            format!("{:.2}×", lag.all_ran_after / baseline.seconds()),
            format!("{cpu:.2}"),
            format!("{peak:.1}"),
        ]);
    }
    Ok(Table {
        title: format!(
            "herd: N jobs due at one second (pgbench: N one-row inserts, {} clients)",
            args.clients
        ),
        header: vec![
            "N",
            "ran",
            "p50 lag",
            "p99 lag",
            "max lag",
            "all ran",
            "all recorded",
            "pgbench",
            "ratio",
            "CPU s",
            "peak RSS MiB",
        ],
        rows,
    })
}

/// `sustained`: K per-second definitions, raised until p99 lag exceeds 500 ms.
async fn sustained(args: &Args, server: &Server) -> anyhow::Result<Table> {
    let name = "cronjobs_bench_sustained";
    let pool = server.fresh(name, &args.cronjobs).await?;
    eprintln!("sustained: pgbench ceiling");
    let ceiling = db::pgbench(
        &server.url(name),
        args.clients,
        PgbenchWork::For(Duration::from_secs(10)),
    )?;
    let mut rows = Vec::new();
    let mut best = 0;
    for &k in &args.rates {
        eprintln!("sustained: {k} fires/s for {} s", args.step_seconds);
        // CASCADE: incidents, their outbox and the watermarks reference runs and definitions.
        sqlx::query("TRUNCATE cron_test_executions, cron_job_runs, cron_job_definitions CASCADE")
            .execute(&pool)
            .await?;
        db::seed(&pool, k, "'* * * * * *'").await?;
        let mut scheduler = spawn_scheduler(&args.cronjobs, &server.url(name))?;
        scheduler.wait_armed(Duration::from_secs(120))?;
        // Two seconds of warm-up, then the measured window.
        let from = now_epoch().ceil() + 2.0;
        let to = from + args.step_seconds as f64;
        sleep_until_epoch(from).await;
        let cpu_before = process::cpu_seconds(scheduler.pid()).unwrap_or(0.0);
        sleep_until_epoch(to).await;
        let cpu = process::cpu_seconds(scheduler.pid()).unwrap_or(0.0) - cpu_before;
        // Let the window's last slots finish (a run later than this has missed the target anyway).
        sleep_until_epoch(to + 1.5).await;
        let lag = db::lag(&pool, from, to).await?;
        let (_, skipped, failed) = db::run_counts(&pool, from, to).await?;
        scheduler.stop()?;
        let expected = (k * args.step_seconds) as i64;
        let held = lag.count == expected && skipped == 0 && failed == 0 && lag.duplicates == 0 && lag.p99 <= 0.5;
        rows.push(vec![
            k.to_string(),
            format!("{}/{expected}", lag.count),
            skipped.to_string(),
            secs(lag.p50),
            secs(lag.p99),
            secs(lag.max),
            format!("{:.2}", cpu / args.step_seconds as f64),
            if held { "held" } else { "not held" }.to_owned(),
        ]);
        if !held {
            break;
        }
        best = k;
    }
    pool.close().await;
    rows.push(vec![
        format!("best {best}/s"),
        format!("pgbench {:.0} tps", ceiling.tps),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        format!("{:.0}% of pgbench", 100.0 * best as f64 / ceiling.tps),
    ]);
    Ok(Table {
        title: format!(
            "sustained: K per-second jobs, {} s per step (pgbench ceiling: one-row inserts, {} clients, 10 s)",
            args.step_seconds, args.clients
        ),
        header: vec![
            "fires/s",
            "ran",
            "skipped",
            "p50 lag",
            "p99 lag",
            "max lag",
            "scheduler CPU (cores)",
            "verdict",
        ],
        rows,
    })
}

/// `idle`: definitions none of which is due for an hour.
async fn idle(args: &Args, server: &Server) -> anyhow::Result<Table> {
    let name = "cronjobs_bench_idle";
    let pool = server.fresh(name, &args.cronjobs).await?;
    // Daily, ten minutes ago: next due in 23 h 50 min.
    let slot = now_epoch() as u64 - 600;
    db::seed(&pool, args.idle_definitions, &format!("'{}'", daily_at(slot))).await?;
    // Created five minutes ago (after that slot): the watchdog's first visit of each new
    // definition then happens at startup, and the window measures the steady state.
    sqlx::query("UPDATE cron_job_definitions SET active_since = now() - interval '5 minutes'")
        .execute(&pool)
        .await?;
    let mut scheduler = spawn_scheduler(&args.cronjobs, &server.url(name))?;
    scheduler.wait_armed(Duration::from_secs(120))?;
    let accounted = db::wait_slots_accounted(&pool, Duration::from_secs(120)).await?;
    eprintln!("idle: the watchdog accounted for every new definition in {accounted:.1} s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("idle: measuring for {} s", args.idle_seconds);
    let measure = |pool: PgPool, pid: u32| async move {
        let backends = db::backend_pids(&pool, name).await?;
        anyhow::Ok((CpuSnapshot::of(&[pid]), CpuSnapshot::of(&backends), backends.len()))
    };
    let (sched_before, backends_before, _) = measure(pool.clone(), scheduler.pid()).await?;
    let lines_before = scheduler.lines();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (sched_after, backends_after, connections) = measure(pool.clone(), scheduler.pid()).await?;
    let rss = process::memory_mib(scheduler.pid(), "VmRSS").unwrap_or(0.0);
    let peak = process::memory_mib(scheduler.pid(), "VmHWM").unwrap_or(0.0);
    let lines = scheduler.lines() - lines_before;
    scheduler.stop()?;
    pool.close().await;
    let sched = sched_after.since(&sched_before);
    let backends = backends_after.since(&backends_before);
    let per_120 = |cpu: f64| cpu * 120.0 / elapsed;
    Ok(Table {
        title: format!(
            "idle: {} definitions, none due for an hour, measured {:.0} s",
            args.idle_definitions, elapsed
        ),
        header: vec![
            "scheduler CPU s / 120 s",
            "its backends CPU s / 120 s",
            "total",
            "backends",
            "RSS MiB",
            "peak RSS MiB",
            "log lines",
        ],
        rows: vec![vec![
            format!("{:.3}", per_120(sched)),
            format!("{:.3}", per_120(backends)),
            format!("{:.3}", per_120(sched + backends)),
            connections.to_string(),
            format!("{rss:.1}"),
            format!("{peak:.1}"),
            lines.to_string(),
        ]],
    })
}

/// `idle` for definitions created through the API while the scheduler runs (one notification
/// each, then the reconcile's full reload): the scheduler's memory once it has settled.
async fn idle_after_api_creates(args: &Args, server: &Server) -> anyhow::Result<Table> {
    let name = "cronjobs_bench_idle_api";
    let pool = server.fresh(name, &args.cronjobs).await?;
    let url = server.url(name);
    let mut scheduler = spawn_scheduler(&args.cronjobs, &url)?;
    scheduler.wait_armed(Duration::from_secs(60))?;
    let port = api::free_port()?;
    let api_process = api::start_api(&args.cronjobs, &url, port).await?;
    let before = process::memory_mib(scheduler.pid(), "VmRSS").unwrap_or(0.0);
    let started = Instant::now();
    api::create_jobs(port, args.idle_definitions).await?;
    let created_in = started.elapsed().as_secs_f64();
    let after_creates = process::memory_mib(scheduler.pid(), "VmRSS").unwrap_or(0.0);
    eprintln!(
        "idle (API): {} jobs created in {created_in:.1} s; waiting for a reconcile",
        args.idle_definitions
    );
    // CRON_RECONCILE_EVERY is 30 s: one full reload, and a little more.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let settled = process::memory_mib(scheduler.pid(), "VmRSS").unwrap_or(0.0);
    let peak = process::memory_mib(scheduler.pid(), "VmHWM").unwrap_or(0.0);
    api_process.stop()?;
    scheduler.stop()?;
    pool.close().await;
    Ok(Table {
        title: format!(
            "idle (API): {} definitions created through POST /jobs while the scheduler runs",
            args.idle_definitions
        ),
        header: vec![
            "RSS before MiB",
            "after the creates",
            "after a reconcile",
            "peak RSS MiB",
            "creates took",
        ],
        rows: vec![vec![
            format!("{before:.1}"),
            format!("{after_creates:.1}"),
            format!("{settled:.1}"),
            format!("{peak:.1}"),
            format!("{created_in:.1} s"),
        ]],
    })
}

/// `startup`: time from process start to every timer armed.
async fn startup(args: &Args, server: &Server) -> anyhow::Result<Table> {
    let name = "cronjobs_bench_startup";
    let pool = server.fresh(name, &args.cronjobs).await?;
    // Varied daily expressions (minute and hour from the row number).
    db::seed(
        &pool,
        args.startup_definitions,
        "format('%s %s * * *', i % 60, (i / 60) % 24)",
    )
    .await?;
    let mut times = Vec::new();
    let mut peak: f64 = 0.0;
    for trial in 0..args.startup_trials.max(1) {
        eprintln!("startup: trial {}", trial + 1);
        let mut scheduler = spawn_scheduler(&args.cronjobs, &server.url(name))?;
        let armed = scheduler
            .wait_armed(Duration::from_secs(300))
            .context("startup: waiting for the armed line")?;
        peak = peak.max(process::memory_mib(scheduler.pid(), "VmHWM").unwrap_or(0.0));
        scheduler.stop()?;
        times.push(armed.as_secs_f64());
    }
    pool.close().await;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Table {
        title: format!(
            "startup: {} active definitions, process start to \"{}\"",
            args.startup_definitions,
            process::ARMED_LINE
        ),
        header: vec!["median", "trials", "peak RSS MiB"],
        rows: vec![vec![
            secs(sorted[sorted.len() / 2]),
            times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(", "),
            format!("{peak:.1}"),
        ]],
    })
}

/// `schedule`: what one `Schedule::next_after` costs, which the scheduler pays per definition at
/// startup and per fire.
fn schedule() -> anyhow::Result<Table> {
    let cases = [
        ("*/15 * * * *", "UTC"),
        ("0 3 * * *", "Europe/Berlin"),
        ("30 2 * * MON-FRI", "America/New_York"),
        ("0 9 1,15 * *", "Asia/Kolkata"),
        ("*/10 * * * * *", "Europe/Berlin"),
        ("0 0 L * *", "UTC"),
        ("0 0 29 2 *", "UTC"),
    ];
    let start = chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
    let iterations: u32 = 20_000;
    let mut rows = Vec::new();
    for (expression, timezone) in cases {
        let began = Instant::now();
        let schedule = Schedule::parse(expression, timezone)?;
        let parse = began.elapsed();
        let began = Instant::now();
        for i in 0..iterations {
            black_box(schedule.next_after(black_box(start + chrono::Duration::seconds(i64::from(i) * 61))));
        }
        let per_call = began.elapsed() / iterations;
        rows.push(vec![
            format!("`{expression}`"),
            timezone.to_owned(),
            format!("{parse:?}"),
            format!("{per_call:?}"),
        ]);
    }
    Ok(Table {
        title: format!("schedule: Schedule::next_after, mean of {iterations} calls"),
        header: vec!["expression", "timezone", "parse", "next_after"],
        rows,
    })
}
