//! SPEC §11 under chaos: three scheduler replicas and an API, every one of them reaching
//! PostgreSQL through one fault proxy, while a seeded generator kills replicas, cuts
//! connections, loses replies after the server committed, refuses connections and pauses
//! jobs. Afterwards every slot of every recurring job has exactly one run row (counted with the
//! test's own arithmetic, not the product's schedule code), and no slot ran twice.
//!
//! The test prints its seed first, each fault as it injects it, and a block of figures at the
//! end (on failure, in the panic message too). To replay a run:
//!
//! ```text
//! CHAOS_SEED=<n> CHAOS_SECONDS=<s> scripts/test -E 'test(every_slot_has_exactly_one_row)' --no-capture
//! ```
//!
//! `CHAOS_SECONDS` (default 120) is how long the faults go on; the whole test takes about 10 s
//! more. The seed replays the same faults at the same offsets, but the processes keep their
//! own timing, so a race a run hit may take a few replays to hit again.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cron_runtime::domain::incident::Policy;
use cron_runtime::store::definitions;
use serde_json::{json, Value};
use tests::chaos::{self, Rng};
use tests::db::TestDb;
use tests::fault_proxy::{FaultProxy, ProxyStats};
use tests::fixtures::{api_process, recurring, scheduler, wait_for};
use tests::process::Cronjobs;
use uuid::Uuid;

/// `CRON_MISSED_AFTER`, in seconds.
const MISSED_AFTER: i64 = 3;
/// What every process gets, apart from `DATABASE_URL`.
const SETTINGS: [(&str, &str); 5] = [
    ("CRON_MISSED_AFTER", "3s"),
    ("CRON_HEARTBEAT_EVERY", "1s"),
    ("CRON_STALE_AFTER", "20s"),
    ("CRON_RECONCILE_EVERY", "2s"),
    ("CRON_SHUTDOWN_GRACE", "5s"),
];
const REPLICAS: usize = 3;
const ADMIN_TOKEN: &str = "chaos-token-0123456789abcdef";
/// Statements whose replies the proxy loses (after the server ran them): the slot inserts, the
/// run updates (outcomes, heartbeats, sweeps), and every commit (slot batches, outcome batches,
/// watchdog passes).
const LOSABLE: [&str; 3] = ["INSERT INTO cron_job_runs", "UPDATE cron_job_runs", "COMMIT"];
/// A slot this close to a pause or a resume is a pause racing a fire, and may go either way: the
/// store stamps `paused_at` and `active_since` with the start of its transaction while a
/// replica's insert sees the change only once committed, and a replica that has not heard of the
/// change yet still fires the job (its insert keeps a slot while the job is active). So a slot
/// just after a pause may get a row, and one just before a resume too. The test skips them.
const RACE_MS: i64 = 1_000;

/// The schedules the jobs use, with the test's own idea of their fire times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Every {
    Second,
    TwoSeconds,
    Minute,
}

impl Every {
    fn expression(self) -> &'static str {
        match self {
            Every::Second => "* * * * * *",
            Every::TwoSeconds => "*/2 * * * * *",
            Every::Minute => "0 * * * * *",
        }
    }

    /// Seconds between fire times. Each divides a minute and Unix time has no leap seconds, so
    /// in UTC the fire times are exactly the Unix times divisible by it.
    fn period(self) -> i64 {
        match self {
            Every::Second => 1,
            Every::TwoSeconds => 2,
            Every::Minute => 60,
        }
    }
}

/// A group of alike jobs the test creates.
struct Group {
    prefix: &'static str,
    count: usize,
    target: &'static str,
    every: Every,
    payload: Value,
    /// The chaos pauses and resumes these.
    pausable: bool,
}

fn groups() -> Vec<Group> {
    let group = |prefix, count, target, every, payload, pausable| Group {
        prefix,
        count,
        target,
        every,
        payload,
        pausable,
    };
    vec![
        group("record-1s", 90, "system.record", Every::Second, json!({}), false),
        group("record-2s", 15, "system.record", Every::TwoSeconds, json!({}), false),
        group("record-1m", 8, "system.record", Every::Minute, json!({}), false),
        // Busy for three of its one-second periods: most of its slots are skipped (overlap).
        group(
            "sleep-3s",
            4,
            "system.sleep",
            Every::Second,
            json!({"seconds": 3}),
            false,
        ),
        group(
            "fail",
            4,
            "system.fail",
            Every::Second,
            json!({"message": "failing on purpose"}),
            false,
        ),
        // In no build: every slot is missed (target_unavailable, then no_scheduler).
        group("removed", 1, "removed.target", Every::Second, json!({}), false),
        group("pausable", 6, "system.record", Every::Second, json!({}), true),
    ]
}

/// A job the test created, with every window in which it was active.
struct Job {
    key: String,
    id: Uuid,
    target: &'static str,
    every: Every,
    pausable: bool,
    /// (became active, paused) as the store returned them: `active_since` of the created or
    /// resumed definition, `paused_at` of the paused one; `None` while active.
    windows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl Job {
    fn is_paused(&self) -> bool {
        self.windows.last().is_some_and(|(_, paused)| paused.is_some())
    }

    /// Within [`RACE_MS`] of a pause or a resume (not of the creation: nothing was armed before).
    fn near_toggle(&self, at: DateTime<Utc>) -> bool {
        let resumes = self.windows.iter().skip(1).map(|(since, _)| *since);
        let pauses = self.windows.iter().filter_map(|(_, paused)| *paused);
        resumes
            .chain(pauses)
            .any(|toggle| (at - toggle).num_milliseconds().abs() <= RACE_MS)
    }

    /// Whether `at` is a fire time inside one of the active windows (`since < at <= paused`).
    fn is_slot(&self, at: DateTime<Utc>) -> bool {
        at.timestamp_subsec_nanos() == 0
            && at.timestamp().rem_euclid(self.every.period()) == 0
            && self
                .windows
                .iter()
                .any(|(since, paused)| *since < at && paused.is_none_or(|p| at <= p))
    }

    /// The slots up to `end` that must have a row, and how many were left out as racing a toggle.
    fn slots(&self, end: DateTime<Utc>) -> (Vec<DateTime<Utc>>, usize) {
        let period = self.every.period();
        let (mut slots, mut racing) = (Vec::new(), 0);
        for (since, paused) in &self.windows {
            let until = paused.map_or(end, |p| p.min(end));
            // The first whole second after `since`, rounded up to the period; then every period
            // up to `until` included.
            let first = (since.timestamp() + 1 + period - 1).div_euclid(period) * period;
            let mut at = first;
            while at <= until.timestamp() {
                let slot = DateTime::from_timestamp(at, 0).expect("a time in range");
                if self.near_toggle(slot) {
                    racing += 1;
                } else {
                    slots.push(slot);
                }
                at += period;
            }
        }
        (slots, racing)
    }
}

/// The kinds of fault the chaos injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill9,
    CutAll,
    LoseReplies,
    Refuse,
    PauseOrResume,
}

/// A row of `cron_job_runs`, as the test reads it (plain text, not the product's types).
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    job_key: String,
    target: String,
    trigger_type: String,
    scheduled_at: DateTime<Utc>,
    status: String,
    reason: Option<String>,
    scheduler_instance: Option<String>,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}/{} by {}",
            self.id,
            self.trigger_type,
            self.scheduled_at.to_rfc3339(),
            self.status,
            self.reason.as_deref().unwrap_or("-"),
            self.scheduler_instance.as_deref().unwrap_or("-")
        )
    }
}

/// Something that breaks the invariant, with the slot it is about (to find its log lines).
struct Anomaly {
    what: String,
    slot: Option<(String, DateTime<Utc>)>,
}

impl Anomaly {
    fn at(job_key: &str, slot: DateTime<Utc>, what: String) -> Anomaly {
        Anomaly {
            what: format!("{job_key} @ {}: {what}", slot.to_rfc3339()),
            slot: Some((job_key.to_owned(), slot)),
        }
    }

    fn general(what: String) -> Anomaly {
        Anomaly { what, slot: None }
    }
}

/// What the run did, printed at the end (and in the panic message).
struct Figures {
    seed: u64,
    seconds: u64,
    wall: Duration,
    groups: String,
    definitions: usize,
    window: (DateTime<Utc>, DateTime<Utc>),
    slots_checked: usize,
    slots_racing: usize,
    by_status: BTreeMap<String, usize>,
    by_reason: BTreeMap<String, usize>,
    executions: usize,
    faults: BTreeMap<String, u32>,
    proxy: ProxyStats,
    anomalies: usize,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |map: &mut dyn Iterator<Item = (String, String)>| {
            map.map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
        };
        writeln!(f, "--- chaos figures ---")?;
        writeln!(f, "seed           {} ({})", self.seed, replay(self.seed, self.seconds))?;
        writeln!(
            f,
            "chaos          {} s of faults, {:.0} s wall time",
            self.seconds,
            self.wall.as_secs_f64()
        )?;
        writeln!(f, "definitions    {} ({})", self.definitions, self.groups)?;
        writeln!(
            f,
            "window         {} .. {}",
            self.window.0.to_rfc3339(),
            self.window.1.to_rfc3339()
        )?;
        writeln!(
            f,
            "slots checked  {} (left out as racing a pause/resume: {})",
            self.slots_checked, self.slots_racing
        )?;
        let rows: usize = self.by_status.values().sum();
        let by_status = list(&mut self.by_status.iter().map(|(k, v)| (k.clone(), v.to_string())));
        let by_reason = list(&mut self.by_reason.iter().map(|(k, v)| (k.clone(), v.to_string())));
        writeln!(f, "rows           {rows}: {by_status}")?;
        writeln!(f, "reasons        {by_reason}")?;
        writeln!(f, "executions     {}", self.executions)?;
        let faults: u32 = self.faults.values().sum();
        let kinds = list(&mut self.faults.iter().map(|(k, v)| (k.clone(), v.to_string())));
        writeln!(f, "faults         {faults}: {kinds}")?;
        let ProxyStats {
            accepted,
            cut,
            refused,
            replies_lost,
        } = self.proxy;
        writeln!(
            f,
            "proxy          accepted={accepted}, cut={cut}, refused={refused}, replies_lost={replies_lost}"
        )?;
        write!(f, "anomalies      {}", self.anomalies)
    }
}

fn replay(seed: u64, seconds: u64) -> String {
    format!(
        "CHAOS_SEED={seed} CHAOS_SECONDS={seconds} scripts/test -E 'test(every_slot_has_exactly_one_row)' --no-capture"
    )
}

/// The processes of the cluster: the live replicas, the killed ones (kept for their logs) and the API.
struct Cluster {
    replicas: Vec<Cronjobs>,
    killed: Vec<Cronjobs>,
    api: Cronjobs,
}

impl Cluster {
    /// The API and the replicas, all with `env`; returns once every replica has registered.
    async fn start(db: &TestDb, env: &[(&str, &str)]) -> Cluster {
        let (api, _) = api_process(db, ADMIN_TOKEN, env).await;
        let cluster = Cluster {
            replicas: (0..REPLICAS).map(|_| scheduler(db, env)).collect(),
            killed: Vec::new(),
            api,
        };
        wait_for(Duration::from_secs(30), "the replicas to register", || async {
            let live: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_scheduler_instances")
                .fetch_one(&db.pool)
                .await
                .ok()?;
            (live == REPLICAS as i64).then_some(())
        })
        .await;
        cluster
    }

    /// The output of every process, labelled.
    fn logs(&self) -> Vec<(String, String)> {
        let replicas = self
            .replicas
            .iter()
            .map(|p| (format!("replica pid {}", p.pid()), p.output()));
        let killed = self
            .killed
            .iter()
            .map(|p| (format!("killed replica pid {}", p.pid()), p.output()));
        let api = std::iter::once((format!("api pid {}", self.api.pid()), self.api.output()));
        replicas.chain(killed).chain(api).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slot_has_exactly_one_row_under_random_faults() {
    let seed = chaos::seed_from_env();
    let seconds = chaos::seconds_from_env(120);
    eprintln!(
        "chaos seed {seed}, {seconds} s of faults; replay: {}",
        replay(seed, seconds)
    );
    let began = Instant::now();

    // Multi-threaded: the proxy runs on this runtime and must keep relaying while the test
    // waits on a process.
    let db = TestDb::create().await;
    let proxy = FaultProxy::start(&chaos::server_address(&db.url)).await;
    let proxied = proxy.url(&db.url);
    let mut env = SETTINGS.to_vec();
    env.push(("DATABASE_URL", proxied.as_str()));
    // JSON logs for the API too (the scheduler fixture sets it), so a slot's lines are found by
    // its `slot` field.
    env.push(("LOG_FORMAT", "json"));
    let mut cluster = Cluster::start(&db, &env).await;
    let groups = groups();
    let mut jobs = create_jobs(&db, &groups).await;

    let mut chaos = Chaos {
        rng: Rng::new(seed),
        db: &db,
        proxy: &proxy,
        env: &env,
        faults: BTreeMap::new(),
    };
    chaos
        .unleash(Duration::from_secs(seconds), &mut cluster, &mut jobs)
        .await;
    proxy.allow();
    proxy.disarm_lost_replies();

    let mut anomalies = Vec::new();
    let end = stop_cleanly(&db, &mut cluster, &jobs, &mut anomalies).await;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, job_key, target, trigger_type, scheduled_at, status, reason, scheduler_instance
         FROM cron_job_runs ORDER BY job_key, scheduled_at",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read the runs");
    let executions = executions(&db).await;
    let (slots_checked, slots_racing) = check(&jobs, &rows, &executions, end, &mut anomalies);

    let figures = Figures {
        seed,
        seconds,
        wall: began.elapsed(),
        groups: groups
            .iter()
            .map(|g| format!("{} {} {}", g.count, g.target, g.every.expression()))
            .collect::<Vec<_>>()
            .join(", "),
        definitions: jobs.len(),
        window: (jobs.iter().map(|j| j.windows[0].0).min().expect("jobs"), end),
        slots_checked,
        slots_racing,
        by_status: count_by(&rows, |row| row.status.clone()),
        by_reason: count_by(&rows, |row| row.reason.clone().unwrap_or("-".into())),
        executions: executions.len(),
        faults: chaos.faults,
        proxy: proxy.stats(),
        anomalies: anomalies.len(),
    };
    eprintln!("{figures}");
    assert!(
        anomalies.is_empty(),
        "{figures}\n{}",
        explain(&anomalies, &rows, &cluster.logs())
    );
}

/// Creates the jobs of `groups` through the store (so a target in no build is accepted).
async fn create_jobs(db: &TestDb, groups: &[Group]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for group in groups {
        for i in 0..group.count {
            let key = format!("{}-{i:02}", group.prefix);
            let expression = group.every.expression();
            let created = recurring(&db.pool, &key, group.target, expression, group.payload.clone()).await;
            jobs.push(Job {
                key,
                id: created.id,
                target: group.target,
                every: group.every,
                pausable: group.pausable,
                windows: vec![(created.active_since, None)],
            });
        }
    }
    jobs
}

/// The fault generator: every decision comes from `rng`, so a seed replays the same faults.
struct Chaos<'a> {
    rng: Rng,
    db: &'a TestDb,
    proxy: &'a FaultProxy,
    /// The replicas' environment (to restart a killed one).
    env: &'a [(&'a str, &'a str)],
    /// How many faults of each kind.
    faults: BTreeMap<String, u32>,
}

impl Chaos<'_> {
    /// A fault every 1 to 4 s for `lasting`. Refusing connections and losing replies go on for
    /// a few seconds, and other faults can strike meanwhile; the others are instants.
    async fn unleash(&mut self, lasting: Duration, cluster: &mut Cluster, jobs: &mut [Job]) {
        let start = Instant::now();
        let end = start + lasting;
        let mut next_fault = start + self.gap();
        let (mut refusing_until, mut losing_until): (Option<Instant>, Option<Instant>) = (None, None);
        loop {
            let wake = [Some(next_fault), refusing_until, losing_until, Some(end)]
                .into_iter()
                .flatten()
                .min()
                .expect("the end at least");
            tokio::time::sleep_until(wake.into()).await;
            let now = Instant::now();
            let offset = (now - start).as_secs_f64();
            if refusing_until.is_some_and(|until| until <= now) {
                self.proxy.allow();
                refusing_until = None;
                eprintln!("chaos +{offset:6.1}s   connections allowed again");
            }
            if losing_until.is_some_and(|until| until <= now) {
                self.proxy.disarm_lost_replies();
                losing_until = None;
                eprintln!("chaos +{offset:6.1}s   replies no longer lost");
            }
            if now >= end {
                return;
            }
            if now < next_fault {
                continue;
            }
            next_fault = now + self.gap();
            let mut choices = vec![(Fault::Kill9, 4), (Fault::CutAll, 4), (Fault::PauseOrResume, 4)];
            if refusing_until.is_none() {
                choices.push((Fault::Refuse, 3));
            }
            if losing_until.is_none() {
                choices.push((Fault::LoseReplies, 5));
            }
            let what = match self.rng.weighted(&choices) {
                Fault::Kill9 => self.kill_a_replica(cluster),
                Fault::CutAll => {
                    self.proxy.cut_all();
                    self.count("cut all");
                    "cut every connection".to_owned()
                }
                Fault::LoseReplies => {
                    let pattern = LOSABLE[self.rng.below(LOSABLE.len())];
                    let percent = self.rng.between(20, 60);
                    let lasting = Duration::from_millis(self.rng.between(2_000, 5_000));
                    let seed = self.rng.next_u64();
                    self.proxy.lose_replies_randomly(pattern, percent as f64 / 100.0, seed);
                    losing_until = Some(now + lasting);
                    self.count(&format!("lose {pattern}"));
                    format!("lose {percent}% of the replies to {pattern:?} for {lasting:?}")
                }
                Fault::Refuse => {
                    let lasting = Duration::from_millis(self.rng.between(1_000, 3_000));
                    self.proxy.refuse();
                    refusing_until = Some(now + lasting);
                    self.count("refuse");
                    format!("refuse connections for {lasting:?}")
                }
                Fault::PauseOrResume => self.pause_or_resume(jobs).await,
            };
            eprintln!("chaos +{offset:6.1}s {what}");
        }
    }

    fn gap(&mut self) -> Duration {
        Duration::from_millis(self.rng.between(1_000, 4_000))
    }

    fn count(&mut self, kind: &str) {
        *self.faults.entry(kind.to_owned()).or_default() += 1;
    }

    /// Kills a replica with SIGKILL and starts another in its place.
    fn kill_a_replica(&mut self, cluster: &mut Cluster) -> String {
        let i = self.rng.below(REPLICAS);
        cluster.replicas[i].kill9();
        let fresh = scheduler(self.db, self.env);
        let killed = std::mem::replace(&mut cluster.replicas[i], fresh);
        let what = format!(
            "kill -9 replica pid {}, restarted as pid {}",
            killed.pid(),
            cluster.replicas[i].pid()
        );
        cluster.killed.push(killed);
        self.count("kill -9");
        what
    }

    /// Pauses a pausable job, or resumes it if paused, recording the instant in its windows.
    /// Through the test's own pool: the proxy's faults are for the product.
    async fn pause_or_resume(&mut self, jobs: &mut [Job]) -> String {
        let pausable: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].pausable).collect();
        let job = &mut jobs[pausable[self.rng.below(pausable.len())]];
        if job.is_paused() {
            let resumed = definitions::resume(&self.db.pool, job.id, "test")
                .await
                .expect("resume");
            job.windows.push((resumed.active_since, None));
            self.count("resume");
            format!(
                "resume {} (active since {})",
                job.key,
                resumed.active_since.to_rfc3339()
            )
        } else {
            let paused = definitions::pause(&self.db.pool, job.id, "chaos", "chaos-test", &Policy::default())
                .await
                .expect("pause")
                .value;
            let at = paused.paused_at.expect("a paused job has paused_at");
            if let Some(window) = job.windows.last_mut() {
                window.1 = Some(at);
            }
            self.count("pause");
            format!("pause {} (at {})", job.key, at.to_rfc3339())
        }
    }
}

/// Lets the cluster settle, stops the replicas with SIGTERM, leaves the API's watchdog to record
/// the slots nobody runs any more, then stops the API. Returns the end of the window to check.
async fn stop_cleanly(db: &TestDb, cluster: &mut Cluster, jobs: &[Job], anomalies: &mut Vec<Anomaly>) -> DateTime<Utc> {
    // Every replica up again, and the runs of the killed ones swept: once the replicas stop
    // nothing sweeps, so a killed replica's run still `running` then would stay so.
    let pids: Vec<u32> = cluster.replicas.iter().map(Cronjobs::pid).collect();
    if !poll_until(Duration::from_secs(60), || settled(db, &pids)).await {
        anomalies.push(Anomaly::general(
            "60 s after the chaos, a replica was still not up, or a killed replica's run still pending/running".into(),
        ));
    }

    for replica in &cluster.replicas {
        replica.terminate();
    }
    let stopped_at = Utc::now();
    for replica in &mut cluster.replicas {
        let pid = replica.pid();
        match exited(replica, Duration::from_secs(20)).await {
            Some(status) if status.success() => {}
            other => anomalies.push(Anomaly::general(format!(
                "replica pid {pid} did not exit cleanly on SIGTERM: {other:?}"
            ))),
        }
    }

    // Slots keep coming (the jobs stay active), so "no new rows" never happens: instead wait
    // until the watchdog has accounted for every job's last slot a few seconds past the stop.
    let accounted = stopped_at + chrono::Duration::seconds(5);
    if !poll_until(Duration::from_secs(60), || caught_up(db, jobs, accounted)).await {
        anomalies.push(Anomaly::general(format!(
            "60 s after the replicas stopped, the API's watchdog had not accounted for the slots up to {}",
            accounted.to_rfc3339()
        )));
    }
    let api_stopped = Utc::now();
    cluster.api.terminate();
    if exited(&mut cluster.api, Duration::from_secs(15)).await.is_none() {
        anomalies.push(Anomaly::general("the API did not exit on SIGTERM".into()));
    }
    // The watchdog records a slot CRON_MISSED_AFTER after it, once per pass: what it was sure to
    // have reached before the API stopped (and no later than what the wait above saw).
    accounted.min(api_stopped - chrono::Duration::seconds(MISSED_AFTER + 2))
}

/// How many rows have each value of `key`.
fn count_by(rows: &[Row], key: impl Fn(&Row) -> String) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(key(row)).or_default() += 1;
    }
    counts
}

/// Polls `check` every 200 ms until it holds or `timeout` passes; whether it held.
async fn poll_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every replica in `pids` heartbeats, and no run is pending or running outside them.
async fn settled(db: &TestDb, pids: &[u32]) -> bool {
    let fresh: Vec<String> = sqlx::query_scalar(
        "SELECT instance FROM cron_scheduler_instances WHERE last_seen_at > now() - interval '3 seconds'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap_or_default();
    // An instance is named `<hostname>-<pid>-<random>`.
    let live: Vec<String> = fresh
        .into_iter()
        .filter(|instance| pids.iter().any(|pid| instance.contains(&format!("-{pid}-"))))
        .collect();
    if live.len() < pids.len() {
        return false;
    }
    let orphans: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM cron_job_runs
         WHERE status IN ('pending', 'running') AND NOT COALESCE(scheduler_instance = ANY($1), false)",
    )
    .bind(&live)
    .fetch_one(&db.pool)
    .await
    .ok();
    orphans == Some(0)
}

/// Every job's last slot at or before `until` has a row.
async fn caught_up(db: &TestDb, jobs: &[Job], until: DateTime<Utc>) -> bool {
    let last: Vec<(&str, DateTime<Utc>)> = jobs
        .iter()
        .filter_map(|job| Some((job.key.as_str(), job.slots(until).0.pop()?)))
        .collect();
    let (keys, slots): (Vec<&str>, Vec<DateTime<Utc>>) = last.iter().copied().unzip();
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM cron_job_runs r
         JOIN UNNEST($1::text[], $2::timestamptz[]) AS s(job_key, at)
           ON r.job_key = s.job_key AND r.scheduled_at = s.at AND r.trigger_type = 'scheduled'",
    )
    .bind(&keys)
    .bind(&slots)
    .fetch_one(&db.pool)
    .await
    .ok();
    found == Some(last.len() as i64)
}

/// Waits for `process` to exit, without blocking the runtime the proxy runs on.
async fn exited(process: &mut Cronjobs, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while process.is_running() {
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process.wait_exit(Duration::from_secs(1))
}

/// `cron_test_executions`: (run id, job key, slot) of every execution of `system.record`.
async fn executions(db: &TestDb) -> Vec<(Uuid, String, DateTime<Utc>)> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('cron_test_executions') IS NOT NULL")
        .fetch_one(&db.pool)
        .await
        .expect("look for the executions table");
    if !exists {
        return Vec::new();
    }
    sqlx::query_as("SELECT run_id, job_key, scheduled_at FROM cron_test_executions")
        .fetch_all(&db.pool)
        .await
        .expect("read the executions")
}

/// Checks the rows against the test's own slots up to `end`; returns (slots checked, slots left
/// out as racing a pause or resume).
fn check(
    jobs: &[Job],
    rows: &[Row],
    executions: &[(Uuid, String, DateTime<Utc>)],
    end: DateTime<Utc>,
    anomalies: &mut Vec<Anomaly>,
) -> (usize, usize) {
    let jobs_by_key: HashMap<&str, &Job> = jobs.iter().map(|j| (j.key.as_str(), j)).collect();
    let mut per_slot: HashMap<(&str, DateTime<Utc>), Vec<&Row>> = HashMap::new();
    for row in rows {
        if row.trigger_type != "scheduled" {
            anomalies.push(Anomaly::general(format!("a run nobody requested: {row}")));
            continue;
        }
        per_slot.entry((&row.job_key, row.scheduled_at)).or_default().push(row);
    }

    // Exactly one row for every slot.
    let (mut checked, mut racing) = (0, 0);
    for job in jobs {
        let (slots, near) = job.slots(end);
        racing += near;
        for slot in slots {
            checked += 1;
            match per_slot.get(&(job.key.as_str(), slot)).map_or(&[][..], Vec::as_slice) {
                [_] => {}
                [] => anomalies.push(Anomaly::at(&job.key, slot, "no row".into())),
                more => anomalies.push(Anomaly::at(
                    &job.key,
                    slot,
                    format!(
                        "{} rows: {}",
                        more.len(),
                        more.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                    ),
                )),
            }
        }
    }

    // No row but for a slot, and every row finished, with its reason.
    for row in rows.iter().filter(|r| r.trigger_type == "scheduled") {
        let Some(job) = jobs_by_key.get(row.job_key.as_str()) else {
            anomalies.push(Anomaly::general(format!(
                "a run of a job the test did not create: {row}"
            )));
            continue;
        };
        if row.scheduled_at <= end && !job.is_slot(row.scheduled_at) && !job.near_toggle(row.scheduled_at) {
            anomalies.push(Anomaly::at(
                &row.job_key,
                row.scheduled_at,
                format!("a row for no slot (paused then, or not a fire time): {row}"),
            ));
        }
        if matches!(row.status.as_str(), "pending" | "running") {
            anomalies.push(Anomaly::at(
                &row.job_key,
                row.scheduled_at,
                format!("left {} after a clean stop: {row}", row.status),
            ));
        }
        if row.status != "succeeded" && row.reason.is_none() {
            anomalies.push(Anomaly::at(&row.job_key, row.scheduled_at, format!("no reason: {row}")));
        }
        if job.target == "removed.target" && row.status != "missed" {
            anomalies.push(Anomaly::at(
                &row.job_key,
                row.scheduled_at,
                format!("a target in no build did not miss: {row}"),
            ));
        }
    }

    // No slot executed twice, no execution without its row, and each succeeded record run
    // executed exactly once.
    let rows_by_id: HashMap<Uuid, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    let mut per_run: HashMap<Uuid, usize> = HashMap::new();
    let mut per_executed_slot: HashMap<(&str, DateTime<Utc>), usize> = HashMap::new();
    for (run_id, key, slot) in executions {
        *per_run.entry(*run_id).or_default() += 1;
        *per_executed_slot.entry((key.as_str(), *slot)).or_default() += 1;
        match rows_by_id.get(run_id) {
            None => anomalies.push(Anomaly::at(
                key,
                *slot,
                format!("executed as run {run_id}, which has no row"),
            )),
            Some(row) if matches!(row.status.as_str(), "missed" | "skipped") => {
                anomalies.push(Anomaly::at(key, *slot, format!("executed, yet recorded {row}")))
            }
            Some(_) => {}
        }
    }
    for ((key, slot), times) in &per_executed_slot {
        if *times > 1 {
            anomalies.push(Anomaly::at(key, *slot, format!("executed {times} times")));
        }
    }
    for row in rows
        .iter()
        .filter(|r| r.target == "system.record" && r.status == "succeeded")
    {
        let times = per_run.get(&row.id).copied().unwrap_or(0);
        if times != 1 {
            anomalies.push(Anomaly::at(
                &row.job_key,
                row.scheduled_at,
                format!("succeeded with {times} executions: {row}"),
            ));
        }
    }
    (checked, racing)
}

/// The anomalies, then for the first few: the rows of their slot and the log lines about it.
fn explain(anomalies: &[Anomaly], rows: &[Row], logs: &[(String, String)]) -> String {
    const DETAILED: usize = 5;
    const LINES: usize = 20;
    let mut out = String::from("anomalies:\n");
    for anomaly in anomalies.iter().take(50) {
        out.push_str(&format!("  {}\n", anomaly.what));
    }
    if anomalies.len() > 50 {
        out.push_str(&format!("  ... and {} more\n", anomalies.len() - 50));
    }
    for anomaly in anomalies.iter().filter(|a| a.slot.is_some()).take(DETAILED) {
        let Some((key, slot)) = &anomaly.slot else { continue };
        out.push_str(&format!(
            "\n{key} @ {}:\n  rows of the job around it:\n",
            slot.to_rfc3339()
        ));
        let near = |at: DateTime<Utc>| (at - *slot).num_seconds().abs() <= 3;
        for row in rows.iter().filter(|r| &r.job_key == key && near(r.scheduled_at)) {
            out.push_str(&format!("    {row}\n"));
        }
        // Log lines naming the slot: the product logs slots as RFC 3339 with `+00:00` (the lines'
        // own timestamps end in `Z`, so they do not match).
        let stamp = slot.to_rfc3339();
        out.push_str("  log lines naming it:\n");
        for (process, output) in logs {
            let lines: Vec<&str> = output
                .lines()
                .filter(|line| line.contains(key.as_str()) && line.contains(&stamp))
                .take(LINES)
                .collect();
            for line in lines {
                out.push_str(&format!("    [{process}] {line}\n"));
            }
        }
    }
    out
}
