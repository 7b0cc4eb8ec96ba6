//! The README works as written: its command blocks of "Run it" and "Manage jobs", run in order
//! by bash against a fresh database, as a newcomer pastes them.
//!
//! What the test changes, and only this: `cargo run -p app --bin cronjobs --` and
//! `cargo install --locked --path app` become the binary this suite built (on PATH, as the
//! install would put it); port 8080 becomes a free port; the `cronjobs_dev` database becomes a
//! fresh test database; `<the printed token>` becomes the token `dev` printed. Blocks that need
//! ids from earlier answers (`$API`, `$ID`) are reference, not steps, and are skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::db::TestDb;
use tests::fixtures::{free_port, http_get, wait_for};
use tests::process::{binary, Cronjobs};

/// A fenced `sh` block of the README and the section it is in.
struct Block {
    section: String,
    text: String,
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn sh_blocks(markdown: &str) -> Vec<Block> {
    let (mut blocks, mut section, mut open): (Vec<Block>, String, Option<String>) = (Vec::new(), String::new(), None);
    for line in markdown.lines() {
        match &mut open {
            Some(text) if line.trim_start() == "```" => {
                blocks.push(Block {
                    section: section.clone(),
                    text: std::mem::take(text),
                });
                open = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None if line.starts_with("## ") => section = line.trim_start_matches("## ").to_owned(),
            None if line.trim_start() == "```sh" => open = Some(String::new()),
            None => {}
        }
    }
    blocks
}

/// The repository's jobs file, copied into a directory of the test's own (a block writes
/// `export > jobs.toml`).
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cronjobs-readme-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../jobs.toml");
    std::fs::copy(jobs, dir.join("jobs.toml")).expect("copy jobs.toml");
    dir
}

#[tokio::test]
async fn the_readme_commands_work_as_written() {
    let blocks: Vec<Block> = sh_blocks(&readme())
        .into_iter()
        .filter(|b| b.section == "Run it" || b.section.starts_with("Manage jobs"))
        .collect();
    let dev_line = "cargo run -p app --bin cronjobs -- dev";
    assert_eq!(
        blocks.first().map(|b| b.text.trim()),
        Some(dev_line),
        "Run it starts with dev"
    );

    let db = TestDb::create().await;
    let port = free_port().to_string();
    let mut dev = Cronjobs::spawn(&["dev"], &[("DATABASE_URL", db.url.as_str()), ("PORT", port.as_str())]);
    let health = format!("http://127.0.0.1:{port}/healthz");
    wait_for(Duration::from_secs(20), "dev to answer", || http_get(&health)).await;
    let banner = dev.output();
    let token = banner
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("token")
                .map(|rest| rest.split_whitespace().next().map(str::to_owned))
        })
        .flatten()
        .unwrap_or_else(|| panic!("dev prints a token:\n{banner}"));
    assert!(
        banner.contains(&format!("database {}", db.url)),
        "dev says which database:\n{banner}"
    );

    let bin_dir = binary().parent().expect("the binary's directory").to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let dir = workdir();
    // One shell for every block, as in one terminal: `TOKEN=...` and `export` carry over.
    let steps: Vec<(&Block, String)> = blocks[1..]
        .iter()
        .filter(|block| !block.text.contains("$API") && !block.text.contains("$ID"))
        .map(|block| {
            let script = block
                .text
                .replace(
                    "cargo install --locked --path app",
                    ": cargo install, done: the built binary is on PATH",
                )
                .replace("cargo run -p app --bin cronjobs --", "cronjobs")
                .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
                .replace("<the printed token>", &token)
                .replace("postgres://postgres@127.0.0.1:5432/cronjobs_dev", &db.url);
            (block, script)
        })
        .collect();
    let session: String = steps
        .iter()
        .enumerate()
        .map(|(i, (_, script))| format!("echo '<<<step {i}>>>'\n{script}\necho\n"))
        .collect();
    let output = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &session])
        .current_dir(&dir)
        .env("PATH", &path)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run bash");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "the README's commands failed:\n{session}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let ran = steps.len();
    for (i, (block, script)) in steps.iter().enumerate() {
        let printed = stdout
            .split(&format!("<<<step {i}>>>"))
            .nth(1)
            .and_then(|rest| rest.split("<<<step ").next())
            .unwrap_or_else(|| panic!("step {i} printed its marker:\n{stdout}"));
        // curl -s exits 0 on a 4xx: an answer that is a problem is a failure too.
        assert!(
            !printed.contains("urn:cronjobs:problem"),
            "README block in {:?} got an error answer:\n{script}\n{printed}",
            block.section
        );
    }
    assert!(ran >= 4, "ran {ran} blocks: the README lost its steps?");
    let live: Vec<String> = sqlx::query_scalar("SELECT job_key FROM cron_job_definitions WHERE status = 'active'")
        .fetch_all(&db.pool)
        .await
        .expect("read the jobs");
    assert!(
        live.contains(&"dod.heartbeat".to_owned()),
        "the README's job exists: {live:?}"
    );
    dev.terminate();
    let _ = dev.wait_exit(Duration::from_secs(15));
    let _ = std::fs::remove_dir_all(dir);
}
