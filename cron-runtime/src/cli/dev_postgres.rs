//! A private PostgreSQL for `cronjobs dev` on a machine where PostgreSQL is installed but no
//! server runs: initialized once under `target/cronjobs-dev-postgres` (or
//! `$CRONJOBS_DEV_POSTGRES_DIR`), started on a free port of 127.0.0.1 with its own socket
//! directory, and stopped when `dev` exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context};

/// Where PostgreSQL's binaries are looked for besides `PATH` (Debian, Homebrew).
const BINARY_DIRS: &[&str] = &["/usr/lib/postgresql", "/opt/homebrew/opt", "/usr/local/opt"];

/// The one command that installs PostgreSQL, per platform.
const INSTALL_HINT: &str = "install PostgreSQL (Debian/Ubuntu: `sudo apt-get install postgresql`; macOS: \
                            `brew install postgresql@16`), or set DATABASE_URL";

/// A running private server; stopped on drop.
pub struct PrivatePostgres {
    pg_ctl: PathBuf,
    data: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Initializes (once) and starts the private server.
    pub fn start() -> anyhow::Result<Self> {
        if running_as_root() {
            bail!(
                "no PostgreSQL answers and initdb refuses to run as root: start PostgreSQL and set DATABASE_URL, \
                 or run `cronjobs dev` as a normal user"
            );
        }
        let bin =
            find_binaries().with_context(|| format!("no PostgreSQL answers and none is installed: {INSTALL_HINT}"))?;
        let base = std::env::var_os("CRONJOBS_DEV_POSTGRES_DIR")
            .map_or_else(|| PathBuf::from("target/cronjobs-dev-postgres"), PathBuf::from);
        let base = std::path::absolute(&base).unwrap_or(base);
        let data = base.join("data");
        if !data.join("PG_VERSION").exists() {
            std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
            println!("cronjobs dev: initializing a private PostgreSQL in {}", data.display());
            succeed(
                Command::new(bin.join("initdb"))
                    .args([
                        "--username=postgres",
                        "--auth=trust",
                        "--encoding=UTF8",
                        "--no-instructions",
                        "-D",
                    ])
                    .arg(&data)
                    .output(),
                "initdb",
            )?;
        }
        let pg_ctl = bin.join("pg_ctl");
        // A server left running by a `dev` that was killed: stop it, so the port below is its port.
        if Command::new(&pg_ctl)
            .arg("status")
            .arg("-D")
            .arg(&data)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let _ = Command::new(&pg_ctl)
                .args(["stop", "-m", "fast", "-D"])
                .arg(&data)
                .output();
        }
        let port = free_port()?;
        // The socket directory is the data directory's parent: short enough for a socket path,
        // and nothing else's (no clash with a system server's /var/run/postgresql).
        let options = format!("-p {port} -c listen_addresses=127.0.0.1 -k {}", base.display());
        succeed(
            Command::new(&pg_ctl)
                .args(["start", "-w", "-t", "30", "-l"])
                .arg(base.join("postgres.log"))
                .arg("-o")
                .arg(options)
                .arg("-D")
                .arg(&data)
                .output(),
            "pg_ctl start",
        )?;
        Ok(PrivatePostgres { pg_ctl, data, port })
    }

    /// The server's URL (database `postgres`).
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let stopped = Command::new(&self.pg_ctl)
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(&self.data)
            .output();
        if !stopped.is_ok_and(|o| o.status.success()) {
            eprintln!(
                "cronjobs dev: could not stop the private PostgreSQL in {}",
                self.data.display()
            );
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`: on `PATH`, else the newest install found.
fn find_binaries() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| has_binaries(dir));
    if let Some(dir) = on_path {
        return Ok(dir);
    }
    let mut installed: Vec<PathBuf> = BINARY_DIRS
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flat_map(|entries| entries.filter_map(Result::ok).map(|e| e.path().join("bin")))
        .filter(|dir| has_binaries(dir))
        .collect();
    // Version directories sort by name (15 < 16, postgresql@15 < postgresql@16).
    installed.sort();
    installed.pop().context("initdb and pg_ctl not found")
}

fn has_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn succeed(output: std::io::Result<Output>, what: &str) -> anyhow::Result<()> {
    let output = output.with_context(|| format!("cannot run {what}"))?;
    if output.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
