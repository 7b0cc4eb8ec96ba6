//! `cronjobs` services under test as child processes, and what `/proc` says about processes.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The log line the scheduler writes after its first full reload.
pub const ARMED_LINE: &str = "timers armed for every active definition";

/// A `cronjobs` service process; killed if dropped without [`Service::stop`].
pub struct Service {
    child: Child,
    started: Instant,
    armed: Arc<OnceLock<Instant>>,
    lines: Arc<AtomicU64>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Service {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a scheduler logs [`ARMED_LINE`]; returns the time since it was spawned.
    pub fn wait_armed(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.armed.get() {
                return Ok(*at - self.started);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the scheduler exited ({status}) before arming:\n{}", self.tail());
            }
            if Instant::now() > deadline {
                bail!("the scheduler did not arm within {timeout:?}:\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Lines the process has written so far.
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    /// The last lines the process wrote.
    pub fn tail(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Stops the process with SIGTERM (SIGKILL after 30 s).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("the service did not stop within 30 s of SIGTERM")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_lines(
    output: impl Read + Send + 'static,
    armed: Arc<OnceLock<Instant>>,
    lines: Arc<AtomicU64>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { return };
            if armed.get().is_none() && line.contains(ARMED_LINE) {
                let _ = armed.set(Instant::now());
            }
            lines.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut tail) = tail.lock() {
                if tail.len() == 30 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    });
}

/// Starts `<bin> scheduler` on `database_url`, logging JSON, its output read by threads.
pub fn spawn_scheduler(bin: &Path, database_url: &str) -> anyhow::Result<Service> {
    spawn(bin, "scheduler", database_url, &[])
}

/// Starts `<bin> <subcommand>` on `database_url` as in production (JSON logs, no Sentry), with
/// `env` added; its output is read by threads.
pub fn spawn(bin: &Path, subcommand: &str, database_url: &str, env: &[(&str, &str)]) -> anyhow::Result<Service> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg(subcommand)
        .env("DATABASE_URL", database_url)
        .env("LOG_FORMAT", "json")
        .env("APP_ENV", "production")
        // The benchmark jobs run `system.record` (and `system.sleep`), diagnostic targets.
        .env("CRON_DIAGNOSTIC_TARGETS", "1")
        .env_remove("RUST_LOG")
        .env_remove("SENTRY_DSN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let armed: Arc<OnceLock<Instant>> = Arc::default();
    let lines: Arc<AtomicU64> = Arc::default();
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
    for output in [
        child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
        child.stderr.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        read_lines(output, armed.clone(), lines.clone(), tail.clone());
    }
    Ok(Service {
        child,
        started,
        armed,
        lines,
        tail,
    })
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user + system) `pid` has used, or `None` if it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// A `VmXxx` figure of `/proc/<pid>/status`, in MiB.
pub fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds of a set of processes, to diff against a later snapshot.
#[derive(Debug, Default, Clone)]
pub struct CpuSnapshot(pub HashMap<u32, f64>);

impl CpuSnapshot {
    /// The CPU seconds of each of `pids` now.
    pub fn of(pids: &[u32]) -> CpuSnapshot {
        CpuSnapshot(pids.iter().filter_map(|&p| cpu_seconds(p).map(|c| (p, c))).collect())
    }

    /// CPU seconds used since `earlier` (processes new since then count from zero).
    pub fn since(&self, earlier: &CpuSnapshot) -> f64 {
        self.0
            .iter()
            .map(|(pid, now)| now - earlier.0.get(pid).copied().unwrap_or(0.0))
            .sum()
    }
}
