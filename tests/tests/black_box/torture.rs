//! The torture test (SPEC 16): a seeded, replayable run that mixes an admin's operations with
//! faults over recurring and one-time jobs, then checks every rule of exactly-once from the
//! database and from what the recording target wrote, with the test's own arithmetic.
//!
//! The cluster: the API (direct to PostgreSQL) and three schedulers, each behind a fault proxy
//! of its own; one runs with a low `CRON_MAX_IN_FLIGHT`. Every job runs `system.record`, which
//! writes each execution's run id, key, slot, start and end past the proxies.
//!
//! Operations (through the REST API, and `cronjobs apply` of a generated jobs file): create
//! recurring and one-time jobs (the one-time ones with a retry policy), pause, resume, new version, retire, run-now with and without a
//! payload, cancel a running run, apply. Faults: kill -9 and restart, LISTEN backends
//! terminated, connections cut, commit replies lost, one scheduler's connections refused for
//! 10–20 s, every scheduler's refused at once (a database outage), a full executor.
//!
//! Checked afterwards: every slot of every recurring job has exactly one row, and no row is
//! for a slot that was not; every one-time job has one row, never `missed`, and ran at most
//! once per attempt; every announced retry exists once, as the next attempt of its slot; no
//! run id executed twice; no two executions of one key overlap in time; nothing is
//! left pending or running; every missed, skipped and failed row has a reason that matches
//! what the test did. The seed, the counts and every anomaly are printed. To replay or soak:
//!
//! ```text
//! scripts/torture --seed <n> --minutes <m>
//! ```
//!
//! (`TORTURE_SEED` and `TORTURE_SECONDS` for this test; default 150 s of operations and faults.)

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use tests::chaos::{self, Rng};
use tests::db::TestDb;
use tests::fault_proxy::FaultProxy;
use tests::fixtures::{api_process, scheduler, wait_for};
use tests::process::Cronjobs;
use uuid::Uuid;

const TOKEN: &str = "torture-token-0123456789abcdef";
const MISSED_AFTER_S: i64 = 3;
const SETTINGS: [(&str, &str); 6] = [
    ("CRON_MISSED_AFTER", "3s"),
    ("CRON_HEARTBEAT_EVERY", "1s"),
    ("CRON_STALE_AFTER", "20s"),
    ("CRON_RECONCILE_EVERY", "2s"),
    ("CRON_SHUTDOWN_GRACE", "3s"),
    ("LOG_FORMAT", "json"),
];
/// The scheduler with a small executor (index into the schedulers).
const SMALL: usize = 2;
const SMALL_MAX_IN_FLIGHT: &str = "3";
/// A slot this close to a toggle of its job (pause, resume, version, retire, apply) may go
/// either way: a scheduler may not have heard of the change yet. Left out of the check.
const RACE_MS: i64 = 1_500;
/// A missed or failed row this close to a fault is explained by it.
const FAULT_REACH_S: i64 = 25;

fn seed() -> u64 {
    match std::env::var("TORTURE_SEED") {
        Ok(raw) => raw.trim().parse().expect("TORTURE_SEED must be an unsigned integer"),
        Err(_) => chaos::seed_from_env(),
    }
}

fn seconds() -> u64 {
    std::env::var("TORTURE_SECONDS").ok().map_or(150, |raw| {
        raw.trim().parse().expect("TORTURE_SECONDS must be whole seconds")
    })
}

/// What a job does when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Short,
    Long,
    Failing,
}

impl Work {
    fn payload(self, rng: &mut Rng) -> Value {
        match self {
            Work::Short => json!({"record_end": true}),
            Work::Long => json!({"record_end": true, "sleep_ms": rng.between(1_500, 4_000)}),
            Work::Failing => json!({"record_end": true, "fail": true}),
        }
    }
}

/// Attempts of a one-time job's slot (its retry policy).
const ONE_TIME_ATTEMPTS: i32 = 3;

/// One definition the test knows of, with every window in which it was active.
#[derive(Debug, Clone)]
struct Definition {
    id: Uuid,
    key: String,
    /// Seconds between fire times (`None`: one-time at `run_at`).
    period: Option<i64>,
    run_at: Option<DateTime<Utc>>,
    fails: bool,
    windows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    file: bool,
    retired: bool,
}

impl Definition {
    fn is_active(&self) -> bool {
        self.windows.last().is_some_and(|(_, until)| until.is_none())
    }

    fn covers(&self, at: DateTime<Utc>) -> bool {
        self.windows
            .iter()
            .any(|(since, until)| *since < at && until.is_none_or(|u| at <= u))
    }

    fn is_fire_time(&self, at: DateTime<Utc>) -> bool {
        match (self.period, self.run_at) {
            (Some(period), _) => at.timestamp_subsec_nanos() == 0 && at.timestamp().rem_euclid(period) == 0,
            (None, Some(run_at)) => at == run_at,
            _ => false,
        }
    }

    /// Every fire time in its windows up to `end`.
    fn slots(&self, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let Some(period) = self.period else { return Vec::new() };
        let mut slots = Vec::new();
        for (since, until) in &self.windows {
            let until = until.map_or(end, |u| u.min(end));
            let mut at = (since.timestamp() + period).div_euclid(period) * period;
            while at <= until.timestamp() {
                let slot = DateTime::from_timestamp(at, 0).expect("in range");
                if slot > *since {
                    slots.push(slot);
                }
                at += period;
            }
        }
        slots
    }

    fn toggles(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.windows
            .iter()
            .flat_map(|(since, until)| std::iter::once(*since).chain(*until))
    }
}

/// A fault and when it was in force.
#[derive(Debug, Clone)]
struct FaultSpan {
    kind: &'static str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

/// The cluster under test.
struct Cluster {
    api: Cronjobs,
    base: String,
    http: reqwest::Client,
    proxies: Vec<FaultProxy>,
    schedulers: Vec<Cronjobs>,
    retired_processes: Vec<Cronjobs>,
    /// When each scheduler process stopped executing (killed, or exited), by pid.
    ended: HashMap<u32, DateTime<Utc>>,
    /// Every process of the small-executor scheduler.
    small_pids: Vec<u32>,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn env_for(&self, i: usize) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push((
            "DATABASE_URL".into(),
            self.proxies[i].url(&self.env_value("CRON_RECORD_DATABASE_URL")),
        ));
        if i == SMALL {
            env.push(("CRON_MAX_IN_FLIGHT".into(), SMALL_MAX_IN_FLIGHT.into()));
        }
        env
    }

    fn env_value(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn start_scheduler(&mut self, db: &TestDb, i: usize) -> Cronjobs {
        let env = self.env_for(i);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let started = scheduler(db, &env);
        if i == SMALL {
            self.small_pids.push(started.pid());
        }
        started
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let url = format!("{}/api/v2/admin/cron{path}", self.base);
        let mut request = self.http.request(method, url).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// `method` on `path`, and when the API answered 503 (the request waited past its timeout,
    /// so its transaction rolled back), the job `id` as it is now: the change happened only if
    /// the job now has status `wanted`. `None` when nothing changed.
    async fn change(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        id: Uuid,
        wanted: &str,
    ) -> Option<(u16, Value)> {
        let reply = self.call(method, path, body).await;
        if !matches!(reply, Some((503, _))) {
            return reply;
        }
        eprintln!("torture: {path} answered 503 (timed out): reading the job back");
        let job = self.call(Method::GET, &format!("/jobs/{id}"), None).await;
        job.filter(|(status, job)| *status == 200 && job["status"] == wanted)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for process in self.schedulers.iter().chain(&self.retired_processes) {
            let _ = writeln!(out, "=== scheduler pid {} ===\n{}", process.pid(), process.output());
        }
        let _ = writeln!(out, "=== api ===\n{}", self.api.output());
        out
    }
}

fn timestamp(value: &Value, field: &str) -> Option<DateTime<Utc>> {
    value[field].as_str()?.parse().ok()
}

fn uuid(value: &Value, field: &str) -> Option<Uuid> {
    value[field].as_str()?.parse().ok()
}

/// The run: what was done, to whom.
struct Torture<'a> {
    rng: Rng,
    db: &'a TestDb,
    cluster: Cluster,
    definitions: Vec<Definition>,
    /// Runs the test asked to cancel.
    cancelled: Vec<Uuid>,
    faults: Vec<FaultSpan>,
    counts: BTreeMap<String, usize>,
    next_key: usize,
    file_path: std::path::PathBuf,
}

impl Torture<'_> {
    fn count(&mut self, what: &str) {
        *self.counts.entry(what.to_owned()).or_default() += 1;
    }

    fn log(&self, began: Instant, what: &str) {
        eprintln!("torture +{:6.1}s {what}", began.elapsed().as_secs_f64());
    }

    fn fresh_key(&mut self, prefix: &str) -> String {
        self.next_key += 1;
        format!("{prefix}-{:03}", self.next_key)
    }

    fn pick_work(&mut self) -> Work {
        self.rng
            .weighted(&[(Work::Short, 5), (Work::Long, 3), (Work::Failing, 1)])
    }

    fn pick_period(&mut self) -> (i64, &'static str) {
        self.rng.weighted(&[
            ((1, "* * * * * *"), 4),
            ((2, "*/2 * * * * *"), 2),
            ((5, "*/5 * * * * *"), 1),
        ])
    }

    fn api_definitions(&mut self, active: bool) -> Vec<usize> {
        (0..self.definitions.len())
            .filter(|&i| {
                let d = &self.definitions[i];
                !d.file && !d.retired && d.period.is_some() && d.is_active() == active
            })
            .collect()
    }

    async fn create_recurring(&mut self) -> String {
        let key = self.fresh_key("rec");
        let work = self.pick_work();
        let (period, expression) = self.pick_period();
        let payload = work.payload(&mut self.rng);
        let body = json!({"job_key": key, "target": "system.record", "schedule_type": "recurring",
                          "cron_expression": expression, "payload": payload});
        match self.cluster.call(Method::POST, "/jobs", Some(body)).await {
            Some((201, job)) => {
                self.definitions.push(Definition {
                    id: uuid(&job, "id").expect("id"),
                    key: key.clone(),
                    period: Some(period),
                    run_at: None,
                    fails: work == Work::Failing,
                    windows: vec![(timestamp(&job, "active_since").expect("active_since"), None)],
                    file: false,
                    retired: false,
                });
                self.count("create recurring");
                format!("create {key} {expression} {work:?}")
            }
            other => panic!("create {key}: {other:?}"),
        }
    }

    async fn create_one_time(&mut self) -> String {
        let key = self.fresh_key("once");
        let work = self.pick_work();
        let payload = work.payload(&mut self.rng);
        let run_at = Utc::now() + chrono::Duration::milliseconds(self.rng.between(0, 4_000) as i64);
        let run_at = chrono::SubsecRound::trunc_subsecs(run_at, 3);
        // Retried: a failing one-time job's chain (attempts 2 and 3, claimed at their time by
        // any scheduler) runs through the same faults as everything else.
        let body = json!({"job_key": key, "target": "system.record", "schedule_type": "one_time",
                          "run_at": run_at.to_rfc3339(), "payload": payload,
                          "retry": {"max_attempts": ONE_TIME_ATTEMPTS, "initial_delay": "1s"}});
        match self.cluster.call(Method::POST, "/jobs", Some(body)).await {
            Some((201, job)) => {
                self.definitions.push(Definition {
                    id: uuid(&job, "id").expect("id"),
                    key: key.clone(),
                    period: None,
                    run_at: timestamp(&job, "run_at"),
                    fails: work == Work::Failing,
                    windows: vec![(timestamp(&job, "active_since").expect("active_since"), None)],
                    file: false,
                    retired: false,
                });
                self.count("create one-time");
                format!("create one-time {key} at {} {work:?}", run_at.to_rfc3339())
            }
            // A run_at a few milliseconds ahead can pass while the request is in flight: the
            // API rightly refuses it, and nothing was created.
            Some((400, problem)) if problem["errors"][0]["field"] == "run_at" => {
                self.count("create one-time refused: run_at passed in flight");
                format!(
                    "create one-time {key} refused: {} passed before it arrived",
                    run_at.to_rfc3339()
                )
            }
            other => panic!("create {key}: {other:?}"),
        }
    }

    async fn pause_or_resume(&mut self) -> Option<String> {
        if self.rng.below(2) == 0 {
            let active = self.api_definitions(true);
            let i = *active.get(self.rng.below(active.len().max(1)))?;
            let id = self.definitions[i].id;
            let reply = self
                .cluster
                .change(
                    Method::PATCH,
                    &format!("/jobs/{id}/pause"),
                    Some(json!({"reason": "torture test"})),
                    id,
                    "paused",
                )
                .await;
            let (200, job) = reply.clone()? else {
                panic!("pause: {reply:?}")
            };
            let at = timestamp(&job, "paused_at").expect("paused_at");
            if let Some(window) = self.definitions[i].windows.last_mut() {
                window.1 = Some(at);
            }
            self.count("pause");
            Some(format!("pause {}", self.definitions[i].key))
        } else {
            let paused = self.api_definitions(false);
            let i = *paused.get(self.rng.below(paused.len().max(1)))?;
            let id = self.definitions[i].id;
            let reply = self
                .cluster
                .change(Method::PATCH, &format!("/jobs/{id}/resume"), None, id, "active")
                .await;
            let (200, job) = reply.clone()? else {
                panic!("resume: {reply:?}")
            };
            let since = timestamp(&job, "active_since").expect("active_since");
            self.definitions[i].windows.push((since, None));
            self.count("resume");
            Some(format!("resume {}", self.definitions[i].key))
        }
    }

    /// Closes definition `i`'s window at its `retired_at`, as the database has it.
    async fn close_retired(&mut self, i: usize) {
        let id = self.definitions[i].id;
        let reply = self.cluster.call(Method::GET, &format!("/jobs/{id}"), None).await;
        let (200, job) = reply.clone().expect("get the retired job") else {
            panic!("get: {reply:?}")
        };
        let retired_at = timestamp(&job, "retired_at").expect("retired_at");
        if let Some(window) = self.definitions[i].windows.last_mut() {
            if window.1.is_none() {
                window.1 = Some(retired_at);
            }
        }
    }

    async fn new_version(&mut self) -> Option<String> {
        let live: Vec<usize> = self
            .api_definitions(true)
            .into_iter()
            .chain(self.api_definitions(false))
            .collect();
        let i = *live.get(self.rng.below(live.len().max(1)))?;
        let id = self.definitions[i].id;
        let work = self.pick_work();
        let (period, expression) = self.pick_period();
        let payload = work.payload(&mut self.rng);
        let body = json!({"cron_expression": expression, "payload": payload});
        let reply = self
            .cluster
            .call(Method::POST, &format!("/jobs/{id}/new-version"), Some(body))
            .await;
        let (201, job) = reply.clone()? else {
            panic!("new version: {reply:?}")
        };
        self.close_retired(i).await;
        self.definitions[i].retired = true;
        let mut next = self.definitions[i].clone();
        next.retired = false;
        next.id = uuid(&job, "id").expect("id");
        next.period = Some(period);
        next.fails = work == Work::Failing;
        next.windows = vec![(timestamp(&job, "active_since").expect("active_since"), None)];
        self.definitions.push(next);
        self.count("new version");
        Some(format!(
            "new version of {} ({expression} {work:?})",
            self.definitions[i].key
        ))
    }

    async fn retire(&mut self) -> Option<String> {
        let live: Vec<usize> = self
            .api_definitions(true)
            .into_iter()
            .chain(self.api_definitions(false))
            .collect();
        let i = *live.get(self.rng.below(live.len().max(1)))?;
        let id = self.definitions[i].id;
        let reply = self.cluster.call(Method::DELETE, &format!("/jobs/{id}"), None).await;
        let (200, job) = reply.clone()? else {
            panic!("retire: {reply:?}")
        };
        let retired_at = timestamp(&job, "retired_at").expect("retired_at");
        if let Some(window) = self.definitions[i].windows.last_mut() {
            if window.1.is_none() {
                window.1 = Some(retired_at);
            }
        }
        self.definitions[i].retired = true;
        self.count("retire");
        Some(format!("retire {}", self.definitions[i].key))
    }

    async fn run_now(&mut self) -> Option<String> {
        let live: Vec<usize> = (0..self.definitions.len())
            .filter(|&i| self.definitions[i].period.is_some() && !self.definitions[i].retired)
            .collect();
        let i = *live.get(self.rng.below(live.len().max(1)))?;
        let id = self.definitions[i].id;
        let with_payload = self.rng.below(2) == 0;
        let body = with_payload.then(|| json!({"payload": {"record_end": true, "sleep_ms": 700}}));
        let reply = self
            .cluster
            .call(Method::POST, &format!("/jobs/{id}/run-now"), body)
            .await?;
        // 202 pending, 200 skipped (overlap), 409 retired meanwhile: all fine.
        self.count(if with_payload {
            "run-now with payload"
        } else {
            "run-now"
        });
        Some(format!("run-now {} -> {}", self.definitions[i].key, reply.0))
    }

    async fn cancel(&mut self) -> Option<String> {
        let running: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM cron_job_runs WHERE status = 'running' ORDER BY random() LIMIT 1")
                .fetch_optional(&self.db.pool)
                .await
                .ok()?;
        let run = running?;
        let reply = self
            .cluster
            .call(
                Method::POST,
                &format!("/runs/{run}/cancel"),
                Some(json!({"reason": "torture test"})),
            )
            .await?;
        if reply.0 == 202 {
            self.cancelled.push(run);
        }
        self.count("cancel");
        Some(format!("cancel run {run} -> {}", reply.0))
    }

    /// Writes a jobs file of 0–3 per-second jobs and applies it with the binary.
    async fn apply(&mut self) -> String {
        let mut text = String::new();
        let keys: Vec<usize> = (0..3).filter(|_| self.rng.below(3) != 0).collect();
        for k in &keys {
            let work = self.pick_work();
            let payload = work.payload(&mut self.rng);
            let mut table = String::new();
            for (name, value) in payload.as_object().expect("an object") {
                let _ = write!(table, "{name} = {value}, ");
            }
            let _ = write!(
                text,
                "[jobs.\"file-{k}\"]\ntarget = \"system.record\"\ncron = \"* * * * * *\"\npayload = {{ {} }}\n\n",
                table.trim_end_matches(", ")
            );
        }
        std::fs::write(&self.file_path, &text).expect("write the jobs file");
        let path = self.file_path.to_string_lossy().into_owned();
        let url = self.cluster.env_value("CRON_RECORD_DATABASE_URL");
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(tests::process::binary())
                // 0 jobs is one of the files it generates: retiring them all is intended.
                .args(["apply", &path, "--allow-retire"])
                .env("DATABASE_URL", url)
                .env("CRON_DIAGNOSTIC_TARGETS", "1")
                .output()
                .expect("run cronjobs apply")
        })
        .await
        .expect("apply ran");
        assert!(
            output.status.success(),
            "apply failed: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.sync_file_jobs().await;
        self.count("apply");
        format!("apply {} file jobs", keys.len())
    }

    /// Reads the file-managed definitions back: windows from `active_since` and `retired_at`.
    async fn sync_file_jobs(&mut self) {
        let rows: Vec<FileDefinition> = sqlx::query_as(
            "SELECT id, job_key, status, payload, active_since, retired_at
             FROM cron_job_definitions WHERE managed_by = 'file'",
        )
        .fetch_all(&self.db.pool)
        .await
        .expect("read the file jobs");
        for FileDefinition {
            id,
            job_key: key,
            status,
            payload,
            active_since: since,
            retired_at,
        } in rows
        {
            match self.definitions.iter_mut().find(|d| d.id == id) {
                Some(known) => {
                    known.retired = status == "retired";
                    if status == "retired" {
                        if let Some(window) = known.windows.last_mut() {
                            if window.1.is_none() {
                                window.1 = retired_at;
                            }
                        }
                    }
                }
                None if status != "retired" => self.definitions.push(Definition {
                    id,
                    key,
                    period: Some(1),
                    run_at: None,
                    fails: payload["fail"] == json!(true),
                    windows: vec![(since, None)],
                    file: true,
                    retired: false,
                }),
                None => {}
            }
        }
    }

    async fn operate(&mut self, began: Instant) {
        #[derive(Clone, Copy)]
        enum Op {
            Recurring,
            OneTime,
            Toggle,
            Version,
            Retire,
            RunNow,
            Cancel,
            Apply,
        }
        let op = self.rng.weighted(&[
            (Op::Recurring, 3),
            (Op::OneTime, 5),
            (Op::Toggle, 4),
            (Op::Version, 2),
            (Op::Retire, 1),
            (Op::RunNow, 3),
            (Op::Cancel, 2),
            (Op::Apply, 1),
        ]);
        let what = match op {
            Op::Recurring => Some(self.create_recurring().await),
            Op::OneTime => Some(self.create_one_time().await),
            Op::Toggle => self.pause_or_resume().await,
            Op::Version => self.new_version().await,
            Op::Retire => self.retire().await,
            Op::RunNow => self.run_now().await,
            Op::Cancel => self.cancel().await,
            Op::Apply => Some(self.apply().await),
        };
        if let Some(what) = what {
            self.log(began, &what);
        }
    }

    /// Injects one fault; long ones (refused connections, lost replies) end at `until`.
    async fn fault(&mut self, began: Instant, busy_until: &mut HashMap<usize, (DateTime<Utc>, &'static str)>) {
        #[derive(Clone, Copy)]
        enum Fault {
            Kill,
            Listen,
            Cut,
            Lose,
            Refuse,
            Outage,
        }
        let fault = self.rng.weighted(&[
            (Fault::Kill, 4),
            (Fault::Listen, 3),
            (Fault::Cut, 3),
            (Fault::Lose, 4),
            (Fault::Refuse, 1),
            (Fault::Outage, 1),
        ]);
        let now = Utc::now();
        let i = self.rng.below(self.cluster.schedulers.len());
        let free = |i: usize| !busy_until.contains_key(&i);
        let what = match fault {
            Fault::Kill => {
                self.cluster.schedulers[i].kill9();
                let mut killed = self.cluster.start_scheduler(self.db, i);
                std::mem::swap(&mut killed, &mut self.cluster.schedulers[i]);
                self.cluster.ended.insert(killed.pid(), Utc::now());
                let what = format!("kill -9 scheduler {i} (pid {}), restarted", killed.pid());
                self.cluster.retired_processes.push(killed);
                self.faults.push(FaultSpan {
                    kind: "kill -9",
                    from: now,
                    until: Utc::now(),
                });
                self.count("kill -9");
                what
            }
            Fault::Listen => {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
                )
                .fetch_one(&self.db.pool)
                .await
                .unwrap_or(0);
                self.faults.push(FaultSpan {
                    kind: "listen",
                    from: now,
                    until: now,
                });
                self.count("LISTEN terminated");
                format!("terminate {n} LISTEN backends")
            }
            Fault::Cut => {
                self.cluster.proxies[i].cut_all();
                self.faults.push(FaultSpan {
                    kind: "cut",
                    from: now,
                    until: now,
                });
                self.count("cut");
                format!("cut scheduler {i}'s connections")
            }
            Fault::Lose if free(i) => {
                let pattern = ["COMMIT", "INSERT INTO cron_job_runs", "UPDATE cron_job_runs"][self.rng.below(3)];
                let percent = self.rng.between(20, 60);
                let lasting = chrono::Duration::milliseconds(self.rng.between(2_000, 5_000) as i64);
                let seed = self.rng.next_u64();
                self.cluster.proxies[i].lose_replies_randomly(pattern, percent as f64 / 100.0, seed);
                busy_until.insert(i, (now + lasting, "lose"));
                self.faults.push(FaultSpan {
                    kind: "lose",
                    from: now,
                    until: now + lasting,
                });
                self.count("lost replies");
                format!("lose {percent}% of scheduler {i}'s replies to {pattern:?} for {lasting}")
            }
            Fault::Refuse if free(i) => {
                let lasting = chrono::Duration::seconds(self.rng.between(10, 20) as i64);
                self.cluster.proxies[i].refuse();
                busy_until.insert(i, (now + lasting, "refuse"));
                self.faults.push(FaultSpan {
                    kind: "refuse",
                    from: now,
                    until: now + lasting,
                });
                self.count("refused 10-20 s");
                format!("refuse scheduler {i}'s connections for {lasting}")
            }
            Fault::Outage if (0..self.cluster.proxies.len()).all(free) => {
                let lasting = chrono::Duration::seconds(self.rng.between(10, 20) as i64);
                for (p, proxy) in self.cluster.proxies.iter().enumerate() {
                    proxy.refuse();
                    busy_until.insert(p, (now + lasting, "refuse"));
                }
                self.faults.push(FaultSpan {
                    kind: "outage",
                    from: now,
                    until: now + lasting,
                });
                self.count("database outage");
                format!("database outage for every scheduler for {lasting}")
            }
            _ => return,
        };
        self.log(began, &what);
    }

    async fn unleash(&mut self, lasting: Duration, began: Instant) {
        let end = Instant::now() + lasting;
        let mut busy_until: HashMap<usize, (DateTime<Utc>, &'static str)> = HashMap::new();
        let mut next_fault = Instant::now() + Duration::from_millis(self.rng.between(1_000, 4_000));
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(self.rng.between(300, 1_200))).await;
            let now = Utc::now();
            busy_until.retain(|&i, (until, kind)| {
                if *until > now {
                    return true;
                }
                match *kind {
                    "refuse" => self.cluster.proxies[i].allow(),
                    _ => self.cluster.proxies[i].disarm_lost_replies(),
                }
                false
            });
            self.operate(began).await;
            if Instant::now() >= next_fault {
                self.fault(began, &mut busy_until).await;
                next_fault = Instant::now() + Duration::from_millis(self.rng.between(2_000, 6_000));
            }
        }
        for proxy in &self.cluster.proxies {
            proxy.allow();
            proxy.disarm_lost_replies();
        }
    }
}

/// A file-managed definition, as the test reads it back after an apply.
#[derive(Debug, sqlx::FromRow)]
struct FileDefinition {
    id: Uuid,
    job_key: String,
    status: String,
    payload: Value,
    active_since: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

/// One execution, as the recording target wrote it.
#[derive(Debug, sqlx::FromRow)]
struct Execution {
    run_id: Uuid,
    job_key: String,
    executed_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// A run row, as the test reads it.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    job_definition_id: Uuid,
    job_key: String,
    trigger_type: String,
    scheduled_at: DateTime<Utc>,
    status: String,
    reason: Option<String>,
    scheduler_instance: Option<String>,
    attempt: i32,
    retry_of: Option<Uuid>,
    next_retry_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_exactly_once_under_operations_and_faults() {
    let seed = seed();
    let seconds = seconds();
    eprintln!(
        "torture seed {seed}, {seconds} s; replay: scripts/torture --seed {seed} --minutes {:.1}",
        seconds as f64 / 60.0
    );
    let began = Instant::now();
    let db = TestDb::create().await;
    sqlx::query(tests::torture::EXECUTIONS_TABLE)
        .execute(&db.pool)
        .await
        .expect("create the executions table");
    let mut env: Vec<(String, String)> = SETTINGS.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    env.push(("CRON_RECORD_DATABASE_URL".into(), db.url.clone()));
    let api_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (api, base) = api_process(&db, TOKEN, &api_env).await;
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(FaultProxy::start(&chaos::server_address(&db.url)).await);
    }
    let mut cluster = Cluster {
        api,
        base,
        http: reqwest::Client::new(),
        proxies,
        schedulers: Vec::new(),
        retired_processes: Vec::new(),
        ended: HashMap::new(),
        small_pids: Vec::new(),
        env,
    };
    for i in 0..3 {
        let started = cluster.start_scheduler(&db, i);
        cluster.schedulers.push(started);
    }
    wait_for(Duration::from_secs(30), "three schedulers to register", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_scheduler_instances")
            .fetch_one(&db.pool)
            .await
            .ok()?;
        (n == 3).then_some(())
    })
    .await;
    let file_path = std::env::temp_dir().join(format!("torture-{}.toml", Uuid::new_v4().simple()));
    let mut torture = Torture {
        rng: Rng::new(seed),
        db: &db,
        cluster,
        definitions: Vec::new(),
        cancelled: Vec::new(),
        faults: Vec::new(),
        counts: BTreeMap::new(),
        next_key: 0,
        file_path,
    };
    for _ in 0..6 {
        let what = torture.create_recurring().await;
        torture.log(began, &what);
    }
    torture.unleash(Duration::from_secs(seconds), began).await;
    torture.log(began, "faults over: settling");
    let mut anomalies = Vec::new();
    let end = settle_and_stop(&mut torture, &mut anomalies).await;
    check(&torture, end, &mut anomalies).await;

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_job_runs")
        .fetch_one(&db.pool)
        .await
        .unwrap_or(0);
    let by_reason: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status || '/' || COALESCE(reason, '-'), count(*) FROM cron_job_runs GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap_or_default();
    let executions: i64 = sqlx::query_scalar("SELECT count(*) FROM cron_test_executions")
        .fetch_one(&db.pool)
        .await
        .unwrap_or(0);
    let mut figures = String::new();
    let _ = writeln!(figures, "--- torture figures ---");
    let _ = writeln!(
        figures,
        "seed          {seed} (scripts/torture --seed {seed} --minutes {:.1})",
        seconds as f64 / 60.0
    );
    let _ = writeln!(figures, "wall          {:.0} s", began.elapsed().as_secs_f64());
    let _ = writeln!(figures, "definitions   {}", torture.definitions.len());
    let _ = writeln!(figures, "operations    {:?}", torture.counts);
    let _ = writeln!(figures, "rows          {rows}: {by_reason:?}");
    let _ = writeln!(figures, "executions    {executions}");
    let _ = write!(figures, "anomalies     {}", anomalies.len());
    eprintln!("{figures}");
    assert!(
        anomalies.is_empty(),
        "{figures}\nanomalies:\n  {}\n\nfaults:\n  {}\n\nlogs of the processes:\n{}",
        anomalies.iter().take(60).cloned().collect::<Vec<_>>().join("\n  "),
        torture
            .faults
            .iter()
            .map(|f| format!("{} {} .. {}", f.kind, f.from.to_rfc3339(), f.until.to_rfc3339()))
            .collect::<Vec<_>>()
            .join("\n  "),
        tail(&torture.cluster.logs(), 400)
    );
    let _ = std::fs::remove_file(&torture.file_path);
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.contains("\"level\":\"DEBUG\"")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Lets the one-time jobs and in-flight runs finish, stops the schedulers with SIGTERM, lets the
/// API's watchdog account for the last slots, stops the API. Returns the end of the window.
async fn settle_and_stop(torture: &mut Torture<'_>, anomalies: &mut Vec<String>) -> DateTime<Utc> {
    let db = torture.db;
    let settled = poll(Duration::from_secs(90), || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM cron_job_definitions WHERE schedule_type = 'one_time' AND status = 'active')
                  + (SELECT count(*) FROM cron_job_runs WHERE status = 'pending')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap_or(1);
        open == 0
    })
    .await;
    if !settled {
        anomalies.push("90 s after the faults, one-time jobs or run-now requests were still waiting".into());
    }
    for scheduler in &torture.cluster.schedulers {
        scheduler.terminate();
    }
    let stopped_at = Utc::now();
    for scheduler in &mut torture.cluster.schedulers {
        let pid = scheduler.pid();
        if scheduler.wait_exit(Duration::from_secs(30)).is_none() {
            anomalies.push(format!("scheduler pid {pid} did not exit on SIGTERM"));
        }
        torture.cluster.ended.insert(pid, Utc::now());
    }
    let accounted = stopped_at + chrono::Duration::seconds(4);
    let caught_up = poll(Duration::from_secs(60), || async {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cron_slot_watermarks w JOIN cron_job_definitions d ON d.id = w.job_definition_id
             WHERE d.status = 'active' AND w.checked_until < $1",
        )
        .bind(accounted)
        .fetch_one(&db.pool)
        .await
        .unwrap_or(1);
        behind == 0
    })
    .await;
    if !caught_up {
        anomalies.push("the API's watchdog did not catch up within 60 s of the stop".into());
    }
    let api_stopped = Utc::now();
    torture.cluster.api.terminate();
    torture.cluster.api.wait_exit(Duration::from_secs(15));
    accounted.min(api_stopped - chrono::Duration::seconds(MISSED_AFTER_S + 2))
}

async fn poll<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Checks every rule of SPEC 16 against the rows and executions, up to `end`.
async fn check(torture: &Torture<'_>, end: DateTime<Utc>, anomalies: &mut Vec<String>) {
    let db = torture.db;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, job_definition_id, job_key, trigger_type, scheduled_at, status, reason, scheduler_instance,
                attempt, retry_of, next_retry_at, started_at
         FROM cron_job_runs ORDER BY job_key, scheduled_at, attempt",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read the runs");
    let executions: Vec<Execution> = sqlx::query_as(
        "SELECT run_id, job_key, executed_at, finished_at FROM cron_test_executions ORDER BY executed_at",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read the executions");
    let definitions: HashMap<Uuid, &Definition> = torture.definitions.iter().map(|d| (d.id, d)).collect();
    let mut by_key: HashMap<&str, Vec<&Definition>> = HashMap::new();
    for d in &torture.definitions {
        by_key.entry(d.key.as_str()).or_default().push(d);
    }
    let near_toggle = |key: &str, at: DateTime<Utc>| {
        by_key.get(key).into_iter().flatten().any(|d| {
            d.toggles()
                .any(|toggle| (at - toggle).num_milliseconds().abs() <= RACE_MS)
        })
    };
    let near_fault = |at: DateTime<Utc>| {
        torture.faults.iter().any(|f| {
            f.from - chrono::Duration::seconds(FAULT_REACH_S) <= at
                && at <= f.until + chrono::Duration::seconds(FAULT_REACH_S)
        })
    };

    // Every slot exactly one scheduled row (per key: a version change keeps the key).
    let mut scheduled: HashMap<(&str, DateTime<Utc>), Vec<&Row>> = HashMap::new();
    for row in rows.iter().filter(|r| r.trigger_type == "scheduled") {
        scheduled
            .entry((row.job_key.as_str(), row.scheduled_at))
            .or_default()
            .push(row);
    }
    let mut slots_checked = 0usize;
    for d in torture.definitions.iter().filter(|d| d.period.is_some()) {
        for slot in d.slots(end) {
            if near_toggle(&d.key, slot) {
                continue;
            }
            slots_checked += 1;
            match scheduled.get(&(d.key.as_str(), slot)).map_or(&[][..], Vec::as_slice) {
                [_] => {}
                [] => anomalies.push(format!("{} @ {}: no row", d.key, slot.to_rfc3339())),
                more => anomalies.push(format!(
                    "{} @ {}: {} rows: {}",
                    d.key,
                    slot.to_rfc3339(),
                    more.len(),
                    more.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                )),
            }
        }
    }
    eprintln!("torture: {slots_checked} recurring slots checked");

    for row in &rows {
        let Some(d) = definitions.get(&row.job_definition_id) else {
            anomalies.push(format!("a run of a definition the test does not know: {row}"));
            continue;
        };
        if matches!(row.status.as_str(), "pending" | "running") {
            anomalies.push(format!(
                "{}: left {} after a clean stop: {row}",
                row.job_key, row.status
            ));
        }
        if row.trigger_type == "scheduled" {
            let in_window = d.period.is_none() || (d.covers(row.scheduled_at) && d.is_fire_time(row.scheduled_at));
            if row.scheduled_at <= end && !in_window && !near_toggle(&row.job_key, row.scheduled_at) {
                anomalies.push(format!("{}: a row for no slot: {row}", row.job_key));
            }
        }
        // Every reason matches what the test did.
        let explained = match (row.status.as_str(), row.reason.as_deref()) {
            ("succeeded", None) => true,
            ("skipped", Some("overlap")) => true,
            ("cancelled", Some("cancelled")) => torture.cancelled.contains(&row.id),
            ("failed", Some("error")) => d.fails,
            // A retry runs seconds after its slot: the fault is near when it started.
            ("failed", Some("fenced" | "scheduler_lost" | "stale")) => {
                near_fault(row.scheduled_at) || row.started_at.is_some_and(near_fault)
            }
            ("failed", Some("shutdown")) => true,
            ("missed", Some("overloaded")) => row.scheduler_instance.as_deref().is_some_and(|instance| {
                torture
                    .cluster
                    .small_pids
                    .iter()
                    .any(|pid| instance.contains(&format!("-{pid}-")))
            }),
            ("missed", Some("database_unreachable" | "not_started" | "no_scheduler")) => near_fault(row.scheduled_at),
            _ => false,
        };
        if !explained {
            anomalies.push(format!("{}: a reason the test did not cause: {row}", row.job_key));
        }
        if d.period.is_none() && row.trigger_type == "scheduled" && row.status == "missed" {
            anomalies.push(format!("{}: a one-time job was recorded missed: {row}", row.job_key));
        }
    }

    // Every one-time job: one scheduled row.
    for d in torture.definitions.iter().filter(|d| d.period.is_none()) {
        let n = rows
            .iter()
            .filter(|r| r.job_definition_id == d.id && r.trigger_type == "scheduled")
            .count();
        if n != 1 {
            anomalies.push(format!("one-time job {} has {n} scheduled rows", d.key));
        }
    }

    // Every retry announced (`next_retry_at`) exists, follows its failed run once, as the next
    // attempt, within the policy.
    let mut retries_of: HashMap<Uuid, Vec<&Row>> = HashMap::new();
    for row in rows.iter().filter(|r| r.trigger_type == "retry") {
        match row.retry_of {
            Some(of) => retries_of.entry(of).or_default().push(row),
            None => anomalies.push(format!("{}: a retry without retry_of: {row}", row.job_key)),
        }
        if row.attempt > ONE_TIME_ATTEMPTS {
            anomalies.push(format!(
                "{}: attempt {} beyond the policy: {row}",
                row.job_key, row.attempt
            ));
        }
    }
    let mut retries = 0usize;
    for row in &rows {
        let followers = retries_of.get(&row.id).map_or(&[][..], Vec::as_slice);
        retries += followers.len();
        match (row.next_retry_at.is_some(), followers) {
            (false, []) => {}
            (true, [retry]) if retry.attempt == row.attempt + 1 && retry.scheduled_at == row.scheduled_at => {}
            (announced, followers) => anomalies.push(format!(
                "{}: run {row} (next_retry_at set: {announced}) has {} retries: {}",
                row.job_key,
                followers.len(),
                followers.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )),
        }
    }
    eprintln!("torture: {retries} retries checked");

    // No run executed twice; no execution without its row; succeeded runs executed once.
    let rows_by_id: HashMap<Uuid, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    let mut per_run: HashMap<Uuid, usize> = HashMap::new();
    for e in &executions {
        *per_run.entry(e.run_id).or_default() += 1;
        match rows_by_id.get(&e.run_id) {
            None => anomalies.push(format!("{}: executed as run {}, which has no row", e.job_key, e.run_id)),
            Some(row) if matches!(row.status.as_str(), "missed" | "skipped") => {
                anomalies.push(format!("{}: executed, yet recorded {row}", e.job_key))
            }
            Some(_) => {}
        }
    }
    for (run, n) in &per_run {
        if *n > 1 {
            anomalies.push(format!("run {run} executed {n} times"));
        }
    }
    for row in rows.iter().filter(|r| r.status == "succeeded") {
        if per_run.get(&row.id).copied().unwrap_or(0) != 1 {
            anomalies.push(format!(
                "{}: succeeded without exactly one execution: {row}",
                row.job_key
            ));
        }
    }

    // No two executions of one key overlap in time. An execution without an end ended when its
    // process did (killed, or stopped).
    let end_of = |e: &Execution| -> DateTime<Utc> {
        e.finished_at.unwrap_or_else(|| {
            rows_by_id
                .get(&e.run_id)
                .and_then(|r| r.scheduler_instance.as_deref())
                .and_then(|instance| {
                    torture
                        .cluster
                        .ended
                        .iter()
                        .find(|(pid, _)| instance.contains(&format!("-{pid}-")))
                        .map(|(_, at)| *at)
                })
                .unwrap_or(Utc::now())
        })
    };
    let mut per_key: HashMap<&str, Vec<&Execution>> = HashMap::new();
    for e in &executions {
        per_key.entry(e.job_key.as_str()).or_default().push(e);
    }
    for (key, list) in per_key {
        let mut latest: Option<(&Execution, DateTime<Utc>)> = None;
        for e in list {
            if let Some((previous, until)) = latest {
                if e.executed_at < until {
                    anomalies.push(format!(
                        "{key}: run {} started at {} while run {} ran until {}",
                        e.run_id,
                        e.executed_at.to_rfc3339(),
                        previous.run_id,
                        until.to_rfc3339()
                    ));
                }
            }
            let until = end_of(e);
            if latest.is_none_or(|(_, u)| until > u) {
                latest = Some((e, until));
            }
        }
    }
}
