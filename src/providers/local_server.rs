//! PostgreSQL servers on this machine, driven through their own binaries
//! (`pg_ctl`, `pg_rewind`, `pg_amcheck`, ... of the server's major version,
//! Debian's layout): the one driver for the servers a drill or
//! `restore --start` starts from a restored folder, and for an old primary
//! this machine runs that a role change restarts as a standby.
//!
//! PostgreSQL refuses to run as root: when pgdr does, every program runs as
//! the data folder's owner (`runuser`), looked up through NSS.

use super::os_user::{self, OsUser};
use super::poll::{poll_until, Polled};
use super::postgres;
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Why a local server could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    #[error("PostgreSQL {major} is not installed here (no /usr/lib/postgresql/{major}/bin/pg_ctl); the backup starts only with the binaries of its major version. Install postgresql-{major}")]
    NotInstalled { major: u32 },
    #[error("pgdr runs as root, and PostgreSQL refuses to; the server would run as `postgres`, but there is no such user")]
    NoPostgresUser,
    #[error("no free loopback port: {0}")]
    NoPort(std::io::Error),
    /// A program could not be started.
    #[error("{what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    /// A program ran and failed; its output (stdout and stderr).
    #[error("{what} failed: {output}")]
    Failed { what: String, output: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A server that did not come up (it exited, or not in time), with why.
    #[error("{0}")]
    NotUp(String),
}

impl LocalServerError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        LocalServerError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Where PostgreSQL `major`'s binaries are (Debian's layout), if installed.
pub fn bin_dir(major: u32) -> Option<PathBuf> {
    let dir = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    dir.join("pg_ctl").is_file().then_some(dir)
}

/// `program` of PostgreSQL `major`, if installed (`pg_basebackup`).
pub fn program(major: u32, program: &str) -> Option<PathBuf> {
    let path = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/{program}"));
    path.is_file().then_some(path)
}

/// A free TCP port on loopback, for a server pgdr starts.
pub fn free_port() -> Result<u16, LocalServerError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(LocalServerError::NoPort)
}

/// `program` run as `user` (through `runuser`) when given, else as pgdr.
pub fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A server's data folder on this machine, the binaries of its major
/// version, and the user its programs run as.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalServer {
    pub data: PathBuf,
    bin: PathBuf,
    /// Who runs its programs when pgdr runs as root (PostgreSQL refuses root).
    run_as: Option<OsUser>,
}

impl LocalServer {
    /// A folder pgdr restored and starts itself: run as `postgres` when pgdr
    /// runs as root.
    pub fn restored(data: &Path, major: u32) -> Result<Self, LocalServerError> {
        let bin = bin_dir(major).ok_or(LocalServerError::NotInstalled { major })?;
        let run_as = if os_user::is_root() {
            Some(os_user::by_name("postgres").ok_or(LocalServerError::NoPostgresUser)?)
        } else {
            None
        };
        Ok(LocalServer {
            data: data.to_path_buf(),
            bin,
            run_as,
        })
    }

    /// The server behind `info` that answered with `data_directory` and
    /// `port`, if this machine runs it. Proven, not assumed: the host is
    /// loopback (or a socket), and the data folder here holds a
    /// `postmaster.pid` for that port.
    pub fn running(info: &Conninfo, data_directory: &str, port: i32, major: u32) -> Option<Self> {
        let host = info
            .get("host")
            .or(info.get("hostaddr"))
            .unwrap_or("localhost");
        if !is_loopback(host) {
            return None;
        }
        let data = PathBuf::from(data_directory);
        let pid = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
        // postmaster.pid: pid, data directory, start time, port, ...
        if pid.lines().nth(3)?.trim() != port.to_string() {
            return None;
        }
        let bin = bin_dir(major)?;
        let uid = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&data).ok()?.uid()
        };
        let run_as = if os_user::is_root() && uid != 0 {
            Some(os_user::by_uid(uid)?)
        } else {
            None
        };
        Some(LocalServer { data, bin, run_as })
    }

    /// One of its programs (`pg_ctl`), run as its user, stdin closed.
    pub fn command(&self, program: &str) -> Command {
        let mut c = as_user(
            self.run_as.as_ref().map(|u| u.name.as_str()),
            &self.bin.join(program),
        );
        c.stdin(Stdio::null());
        c
    }

    /// The uid and gid its files belong to, when pgdr runs as root.
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.run_as.as_ref().map(|u| (u.uid, u.gid))
    }

    /// The path of one of its programs.
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bin.join(program)
    }

    /// Runs `command`; its output (stdout and stderr) on success.
    pub fn run(&self, mut command: Command, what: &str) -> Result<String, LocalServerError> {
        let out = command.output().map_err(|source| LocalServerError::Spawn {
            what: what.to_string(),
            source,
        })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(LocalServerError::Failed {
                what: what.to_string(),
                output: text.trim().to_string(),
            })
        }
    }

    /// The value its configuration files give `name` (`postgres -C`, which
    /// reads them without starting anything).
    pub fn configured(&self, name: &str) -> Result<String, LocalServerError> {
        let what = format!("postgres -C {name}");
        let mut command = self.command("postgres");
        command.arg("-C").arg(name).arg("-D").arg(&self.data);
        let out = command.output().map_err(|source| LocalServerError::Spawn {
            what: what.clone(),
            source,
        })?;
        if !out.status.success() {
            return Err(LocalServerError::Failed {
                what,
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Starts it without waiting (`pg_ctl -W`; recovery runs first), logging
    /// to `log`, with `options` for `postgres` (`-c name=value ...`).
    pub fn start(&self, log: &Path, options: &str) -> Result<(), LocalServerError> {
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(log)
            .args(["-W", "-o", options, "start"])
            .stdout(Stdio::null());
        self.run(start, "pg_ctl start").map(|_| ())
    }

    /// Stops it (`fast` or `immediate`), waiting until it has.
    pub fn stop(&self, mode: &str) -> Result<(), LocalServerError> {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "stop"]);
        self.run(stop, "pg_ctl stop").map(|_| ())
    }

    /// Gives `path` (and everything under it) to its user, when pgdr runs as root.
    pub fn adopt(&self, path: &Path) -> std::io::Result<()> {
        match &self.run_as {
            Some(user) => chown_tree(path, (user.uid, user.gid)),
            None => Ok(()),
        }
    }

    /// Waits until its `postmaster.pid` says it is up (`ready` or `standby`);
    /// a server that exits on the way is reported at once, not at the limit.
    pub async fn wait_running(&self, limit: Duration) -> Result<(), WaitFailed> {
        let mut seen_alive = false;
        let waited = poll_until(Duration::from_millis(50), limit, || {
            let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
            let up = pid
                .lines()
                .nth(7)
                .is_some_and(|status| status.trim() == "ready" || status.trim() == "standby");
            // A server that exits (a port taken, a bad setting) removes its
            // pid file.
            let alive = pid
                .lines()
                .next()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            seen_alive |= alive;
            let exited = seen_alive && !alive;
            async move {
                Ok::<_, WaitFailed>(match (up, exited) {
                    (true, _) => Polled::Ready(()),
                    (false, true) => return Err(WaitFailed::Exited),
                    (false, false) => Polled::Waiting(()),
                })
            }
        })
        .await?;
        waited.map_err(|()| WaitFailed::TimedOut)
    }

    /// Waits until it accepts connections as `info` and has left recovery.
    /// A server whose pid file went away (or never came within 30 s) has
    /// stopped: said at once, with the end of `log`.
    pub async fn wait_promoted(
        &self,
        info: &Conninfo,
        env: &PgEnv,
        limit: Duration,
        log: &Path,
    ) -> Result<tokio_postgres::Client, String> {
        let started = std::time::Instant::now();
        let seen_running = std::sync::atomic::AtomicBool::new(false);
        let waited = poll_until(Duration::from_millis(200), limit, || async {
            // pg_ctl returns before the server writes postmaster.pid.
            let running = self.data.join("postmaster.pid").exists();
            let was = seen_running.fetch_or(running, std::sync::atomic::Ordering::Relaxed);
            if !running && (was || started.elapsed() > Duration::from_secs(30)) {
                return Err(format!(
                    "the restored server stopped during recovery{}",
                    log_tail(log)
                ));
            }
            Ok(match postgres::connect("restored", info, env).await {
                Ok(pg) => match postgres::backup::in_recovery(&pg).await {
                    Ok(false) => Polled::Ready(pg),
                    Ok(true) => Polled::Waiting("still in recovery".to_string()),
                    Err(e) => Polled::Waiting(e.message),
                },
                Err(e) => Polled::Waiting(e.to_string()),
            })
        })
        .await?;
        waited.map_err(|last| {
            format!(
                "the restored server had not finished recovery after {}s ({last}){}",
                limit.as_secs(),
                log_tail(log)
            )
        })
    }
}

/// Why a server did not come up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFailed {
    /// It started and exited.
    Exited,
    TimedOut,
}

/// The last error and last lines of a server's log, for error messages:
/// `; its log ends:\n  ...`, or nothing when the log is empty.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut shown: Vec<&str> = lines
        .iter()
        .rev()
        .find(|l| l.contains("FATAL:") || l.contains("PANIC:") || l.contains("ERROR:"))
        .into_iter()
        .copied()
        .collect();
    shown.extend(&lines[lines.len().saturating_sub(3)..]);
    if shown.is_empty() {
        String::new()
    } else {
        format!("; its log ends:\n  {}", shown.join("\n  "))
    }
}

/// Gives everything under `dir` (and `dir`) to `owner`; links are not followed.
pub fn chown_tree(dir: &Path, owner: (u32, u32)) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(owner.0), Some(owner.1))?;
    if dir.is_symlink() || !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        chown_tree(&entry?.path(), owner)?;
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host.starts_with('/')
        || host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_can_be_on_this_machine() {
        for host in [
            "127.0.0.1",
            "127.0.0.3",
            "localhost",
            "/var/run/postgresql",
            "::1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.0.0.1", "db.internal"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
