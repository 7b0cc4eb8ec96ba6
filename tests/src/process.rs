//! `cronjobs` as a separate process: spawned with an environment, its output captured,
//! stopped with SIGTERM or SIGKILL.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `cronjobs` binary built beside this test (`scripts/test` builds it first).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/cronjobs
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let binary = profile_dir.join("cronjobs");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p app` (scripts/test does)",
        binary.display()
    );
    binary
}

/// `my-cron`, the library-mode example (`examples/embed`), built into the same target
/// directory by `scripts/test`.
pub fn embedded_binary() -> PathBuf {
    let binary = binary().with_file_name("my-cron");
    assert!(
        binary.exists(),
        "{} is missing: build examples/embed with CARGO_TARGET_DIR set to this target directory (scripts/test does)",
        binary.display()
    );
    binary
}

/// A running `cronjobs` process; killed when dropped.
pub struct Cronjobs {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Cronjobs {
    /// Starts `cronjobs <args>` with exactly `env` (plus PATH), capturing stdout and stderr.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Cronjobs {
        Cronjobs::spawn_program(&binary(), args, env)
    }

    /// Starts another binary of the same kind (library mode's `my-cron`) the same way.
    pub fn spawn_program(program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Cronjobs {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        capture(stdout, output.clone());
        capture(stderr, output.clone());
        Cronjobs { child, output }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (what Docker and Railway send on deploy).
    pub fn terminate(&self) {
        signal(self.pid(), "-TERM");
    }

    /// Sends SIGKILL: the process dies without cleaning up.
    pub fn kill9(&mut self) {
        signal(self.pid(), "-KILL");
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `true` while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Cronjobs {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- cronjobs output (pid {}) ---\n{}", self.pid(), self.output());
        }
    }
}

fn signal(pid: u32, which: &str) {
    let _ = Command::new("kill").arg(which).arg(pid.to_string()).status();
}

fn capture(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut output) = into.lock() {
                output.push_str(&line);
                output.push('\n');
            }
        }
    });
}
