//! The throw-away server a drill restores into: a private folder, a free
//! loopback port, the PostgreSQL binaries of the backup's major version, and
//! its removal afterwards. A drill interrupted by Ctrl-C removes it at once;
//! one killed outright is removed by the next drill of the same cluster
//! (folders marked kept with `--keep` are left alone).
//!
//! When pgdr runs as root the server runs as `postgres` (PostgreSQL refuses
//! root), and the folder is handed to that user.

use super::restore;
use super::ArchiveError;
use crate::providers::postgres;
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Marks a scratch folder kept by `--keep`: the next drill does not remove it.
pub const KEPT: &str = "pgdr-drill-kept";
/// The server's own authentication rules: the Unix socket in the private
/// folder only, so nobody else on the machine reaches the restored data.
const HBA: &str = "pgdr_hba.conf";

/// A server pgdr starts from a restored folder: the binaries of its major
/// version, as `postgres` when pgdr runs as root, its socket in `socket_dir`.
pub struct Server {
    pub data: PathBuf,
    pub log: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    run_as: Option<String>,
    owner: Option<(u32, u32)>,
}

/// A drill's private folder `<root>/<cluster>-drill-<ts>` and its server.
pub struct Scratch {
    pub dir: PathBuf,
    pub server: Server,
}

/// Where PostgreSQL `major`'s binaries are (Debian's layout), if installed.
pub fn bin_dir(major: u32) -> Option<PathBuf> {
    let dir = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    dir.join("pg_ctl").is_file().then_some(dir)
}

pub fn free_port() -> Result<u16, ArchiveError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ArchiveError::Failed(format!("no free loopback port: {e}")))
}

/// Stops the server in `dir` (if one runs) and removes the folder.
fn remove(dir: &Path, bin: Option<&Path>, run_as: Option<&str>) -> Result<(), ArchiveError> {
    let data = dir.join("data");
    if data.join("postmaster.pid").is_file() {
        let pg_ctl = bin
            .map(|b| b.join("pg_ctl"))
            .or_else(|| pg_ctl_for(&data))
            .unwrap_or_else(|| PathBuf::from("pg_ctl"));
        let mut command = as_user(run_as, &pg_ctl);
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    std::fs::remove_dir_all(dir).map_err(|e| ArchiveError::io(dir, e))
}

/// pg_ctl of the version in `data/PG_VERSION`.
fn pg_ctl_for(data: &Path) -> Option<PathBuf> {
    let major: u32 = std::fs::read_to_string(data.join("PG_VERSION"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    bin_dir(major).map(|b| b.join("pg_ctl"))
}

pub(crate) fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Removes what earlier drills of `cluster` left (killed before they could
/// clean up); folders kept with `--keep` stay. Returns what was removed.
pub fn clean_leftovers(root: &Path, cluster: &str) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(removed);
    };
    let prefix = format!("{cluster}-drill-");
    let run_as = restore::runs_as_root().then_some("postgres");
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with(&prefix) || path.join(KEPT).exists() {
            continue;
        }
        remove(&path, None, run_as)?;
        removed.push(path);
    }
    Ok(removed)
}

impl Server {
    /// A server for the restored folder `data` of PostgreSQL `major`.
    pub fn new(
        data: &Path,
        log: &Path,
        socket_dir: &Path,
        port: u16,
        major: u32,
    ) -> Result<Self, ArchiveError> {
        let bin = bin_dir(major).ok_or_else(|| {
            ArchiveError::Failed(format!(
                "PostgreSQL {major} is not installed here (no /usr/lib/postgresql/{major}/bin/pg_ctl); the backup starts only with the binaries of its major version. Install postgresql-{major}"
            ))
        })?;
        let (run_as, owner) = if restore::runs_as_root() {
            let ids = crate::providers::os_user::by_name("postgres")
                .map(|u| (u.uid, u.gid))
                .ok_or_else(|| {
                ArchiveError::Failed("pgdr runs as root, and PostgreSQL refuses to; the server would run as `postgres`, but there is no such user".into())
            })?;
            (Some("postgres".to_string()), Some(ids))
        } else {
            (None, None)
        };
        Ok(Server {
            data: data.to_path_buf(),
            log: log.to_path_buf(),
            socket_dir: socket_dir.to_path_buf(),
            port,
            bin,
            run_as,
            owner,
        })
    }

    /// The conninfo of the server: its socket, as `user`.
    pub fn conninfo(&self, user: &str, dbname: &str) -> String {
        format!(
            "host={} port={} user={user} dbname={dbname} sslmode=disable connect_timeout=5",
            self.socket_dir.display(),
            self.port
        )
    }

    pub fn bin(&self, program: &str) -> PathBuf {
        self.bin.join(program)
    }

    /// Starts the server without waiting (recovery runs first), with `options`
    /// for `postgres` (`-c name=value ...`) after its port and socket.
    pub fn start(&self, options: &str) -> Result<(), ArchiveError> {
        let options = format!(
            "-p {} -k {} {options}",
            self.port,
            self.socket_dir.display()
        );
        let status = as_user(self.run_as.as_deref(), &self.bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-W", "-o", &options, "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| ArchiveError::io(&self.bin("pg_ctl"), e))?;
        if !status.status.success() {
            return Err(ArchiveError::Failed(format!(
                "the restored server did not start: {}{}",
                String::from_utf8_lossy(&status.stderr).trim(),
                self.log_tail()
            )));
        }
        Ok(())
    }

    /// Hands `dir` to the server's user (when pgdr runs as root).
    pub fn adopt(&self, dir: &Path) -> Result<(), ArchiveError> {
        match self.owner {
            Some(owner) => restore::chown_tree(dir, owner),
            None => Ok(()),
        }
    }

    /// The server's last error and last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
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

    /// Polls until the server accepts connections and has left recovery.
    pub async fn wait_promoted(
        &self,
        info: &Conninfo,
        env: &PgEnv,
        limit: Duration,
    ) -> Result<tokio_postgres::Client, String> {
        let deadline = Instant::now() + limit;
        let started = Instant::now();
        let mut seen_running = false;
        let mut last;
        loop {
            // pg_ctl returns before the server writes postmaster.pid: a server is
            // dead when its pid file went away, or never came within 30 s.
            let running = self.data.join("postmaster.pid").exists();
            seen_running |= running;
            if !running && (seen_running || started.elapsed() > Duration::from_secs(30)) {
                return Err(format!(
                    "the restored server stopped during recovery{}",
                    self.log_tail()
                ));
            }
            match postgres::connect("restored", info, env).await {
                Ok(pg) => match pg.query_one("SELECT pg_is_in_recovery()", &[]).await {
                    Ok(row) if !row.get::<_, bool>(0) => return Ok(pg),
                    Ok(_) => last = "still in recovery".into(),
                    Err(e) => last = postgres::error_text(&e),
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the restored server had not finished recovery after {}s ({last}){}",
                    limit.as_secs(),
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Writes `hba` in `dir`: the Unix socket (in a folder only the server's user
/// may enter) trusted first, then `then` (the restored server's own rules).
pub fn write_socket_hba(hba: &Path, then: &str) -> Result<(), ArchiveError> {
    std::fs::write(
        hba,
        format!("# written by pgdr: its own socket first\nlocal all all trust\n{then}"),
    )
    .map_err(|e| ArchiveError::io(hba, e))
}

impl Scratch {
    /// A new private folder `root/<cluster>-drill-<ts>` for PostgreSQL `major`.
    pub fn create(root: &Path, cluster: &str, ts: &str, major: u32) -> Result<Self, ArchiveError> {
        if !root.exists() {
            // Like /tmp: every user may make a folder in it, and remove only their own.
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(root).map_err(|e| ArchiveError::io(root, e))?;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1777))
                .map_err(|e| ArchiveError::io(root, e))?;
        }
        let dir = root.join(format!("{cluster}-drill-{ts}"));
        let server = Server::new(
            &dir.join("data"),
            &dir.join("server.log"),
            &dir,
            free_port()?,
            major,
        )?;
        std::fs::create_dir(&dir).map_err(|e| ArchiveError::io(&dir, e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| ArchiveError::io(&dir, e))?;
        }
        write_socket_hba(&dir.join(HBA), "")?;
        Ok(Scratch { dir, server })
    }

    /// Starts the restored server: archiving off (a drill never writes into
    /// the archive), no synchronous standbys to wait for, reachable on the
    /// private socket only.
    pub fn start(&self) -> Result<(), ArchiveError> {
        self.server.adopt(&self.dir)?;
        self.server.start(&format!(
            "-c listen_addresses=127.0.0.1 -c hba_file={} -c archive_mode=off -c synchronous_standby_names= -c hot_standby=on",
            self.dir.join(HBA).display()
        ))
    }

    /// Leaves the folder (and the running server) for inspection.
    pub fn keep(&self) -> Result<(), ArchiveError> {
        std::fs::write(self.dir.join(KEPT), "kept by pgdr drill --keep\n")
            .map_err(|e| ArchiveError::io(&self.dir, e))
    }

    /// Stops the server and removes the folder.
    pub fn remove(&self) -> Result<(), ArchiveError> {
        remove(
            &self.dir,
            Some(&self.server.bin),
            self.server.run_as.as_deref(),
        )
    }
}
