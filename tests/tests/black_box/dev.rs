//! `cronjobs dev` as a newcomer runs it: one process, the README's steps, a job that runs; and
//! on a machine with PostgreSQL installed but not running, a private server of its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tests::db::TestDb;
use tests::fixtures::{free_port, http_get, wait_for};
use tests::process::{binary, Cronjobs};

const TOKEN: &str = "dev-test-token-0123456789abcdef";

/// Creates a per-second heartbeat job through the API at `base` and waits for a run of it to
/// succeed, as the README's "Run it" does (with a faster schedule).
async fn a_job_runs(base: &str) {
    let client = reqwest::Client::new();
    let jobs = format!("{base}/api/v2/admin/cron/jobs");
    let created = client
        .post(&jobs)
        .bearer_auth(TOKEN)
        .json(&json!({"job_key": "dod.heartbeat", "target": "system.heartbeat",
            "schedule_type": "recurring", "cron_expression": "* * * * * *"}))
        .send()
        .await
        .expect("POST /jobs");
    assert_eq!(created.status().as_u16(), 201);
    let runs = format!("{base}/api/v2/admin/cron/runs?job_key=dod.heartbeat&status=succeeded");
    wait_for(Duration::from_secs(20), "a succeeded run of the job", || async {
        let body: Value = client
            .get(&runs)
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (!body["items"].as_array()?.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn dev_serves_the_api_on_port_and_runs_jobs() {
    let db = TestDb::create().await;
    let port = free_port().to_string();
    let tokens = format!("dev:{TOKEN}");
    // PORT used to be bound twice (the API and the embedded scheduler's metrics).
    let mut dev = Cronjobs::spawn(
        &["dev"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("PORT", port.as_str()),
            ("CRON_ADMIN_TOKENS", tokens.as_str()),
            ("CRON_HEARTBEAT_EVERY", "1s"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/healthz");
    wait_for(Duration::from_secs(20), "dev to answer", || http_get(&health)).await;
    a_job_runs(&base).await;
    dev.terminate();
    let status = dev.wait_exit(Duration::from_secs(15)).expect("dev exits on SIGTERM");
    assert!(status.success(), "{}", dev.output());
}

#[tokio::test]
async fn dev_starts_a_private_postgres_when_none_answers() {
    let Some(initdb) = ["/usr/local/bin/initdb", "/usr/bin/initdb"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .or_else(|| glob_postgres_bin())
    else {
        eprintln!("skipped: PostgreSQL's initdb is not installed here");
        return;
    };
    let bin_dir = Path::new(&initdb).parent().expect("a directory").to_owned();
    let dir = std::env::temp_dir().join(format!("cronjobs-dev-pg-{}", uuid::Uuid::new_v4().simple()));
    let port = free_port().to_string();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let env = [
        ("PATH", path.as_str()),
        // Nothing answers here: dev must start its own server.
        ("CRONJOBS_DEV_SERVER", "postgres://postgres@127.0.0.1:1"),
        ("CRONJOBS_DEV_POSTGRES_DIR", dir.to_str().expect("a UTF-8 path")),
        ("PORT", port.as_str()),
        ("CRON_ADMIN_TOKENS", &format!("dev:{TOKEN}")),
    ];
    let log_path = std::env::temp_dir().join(format!("{}.log", dir.display().to_string().replace('/', "_")));
    let log = std::fs::File::create(&log_path).expect("a log file");
    let (mut command, program) = as_a_normal_user(&dir);
    command.arg(program).arg("dev").env_clear();
    command
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let mut dev = command.spawn().expect("start cronjobs dev");
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/healthz");
    let printed = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let answered = tokio::time::timeout(Duration::from_secs(60), async {
        while http_get(&health).await.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        answered.is_ok(),
        "dev did not answer on its private PostgreSQL:\n{}",
        printed()
    );
    assert!(printed().contains("starting a private one"), "{}", printed());
    a_job_runs(&base).await;

    // Ctrl-C to dev itself (runuser, when it is in between, does not pass the signal on).
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(dev_pid(dev.id()).to_string())
        .status();
    let status = dev.wait().expect("dev exits");
    assert!(status.success(), "dev exited with {status}:\n{}", printed());
    assert!(
        !dir.join("data/postmaster.pid").exists(),
        "the private server is stopped when dev exits"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(dir.with_extension("bin"));
    let _ = std::fs::remove_file(&log_path);
}

/// The pid of `cronjobs dev`: the child of `runuser`, or `launched` itself (`env` execs it).
fn dev_pid(launched: u32) -> u32 {
    Command::new("pgrep")
        .args(["-P", &launched.to_string()])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next()?.trim().parse().ok())
        .unwrap_or(launched)
}

/// `initdb` refuses to run as root: as root, run a copy of the binary that `nobody` can reach
/// (the checkout may be in root's home) through `runuser -u nobody`.
fn as_a_normal_user(dir: &Path) -> (Command, std::path::PathBuf) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return (Command::new("env"), binary());
    }
    let copy = dir.with_extension("bin");
    std::fs::create_dir_all(&copy).expect("a directory for the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let program = copy.join("cronjobs");
    std::fs::copy(binary(), &program).expect("copy the binary");
    let mut command = Command::new("/usr/sbin/runuser");
    command.args(["-u", "nobody", "--"]);
    (command, program)
}

/// Debian's versioned install directory, when initdb is not on a usual path.
fn glob_postgres_bin() -> Option<&'static str> {
    let entry = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin/initdb"))
        .find(|p| p.exists())?;
    Some(Box::leak(entry.to_string_lossy().into_owned().into_boxed_str()))
}
