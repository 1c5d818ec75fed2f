//! The old primary, when it runs on this machine: after a role change it is
//! stopped, rewound with `pg_rewind` when its WAL went past the point where
//! the new primary's timeline began, and started again as a standby of the
//! new primary — with the options it was started with (`postmaster.opts`).
//!
//! "On this machine" is proven, not assumed: the server's host is loopback (or
//! a socket), and its data directory here holds a `postmaster.pid` for the
//! port pgdr reached it on. Anything else is reported for a person to rejoin.

use crate::archive::{restore, scratch};
use crate::providers::pg_role::RoleState;
use crate::spec::Conninfo;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A server this machine runs: its data directory, binaries and owner.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalServer {
    pub data: PathBuf,
    bin: PathBuf,
    /// The data directory's owner, when pgdr runs as root (PostgreSQL refuses root).
    run_as: Option<(String, u32, u32)>,
}

/// The configuration files pg_rewind overwrites with the source's (it copies
/// the whole data directory): the server's own port, addresses and access
/// rules live there on many hosts (ALTER SYSTEM, an initdb layout), so they are
/// kept, as Patroni keeps them.
const OWN_CONFIG: [&str; 4] = [
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
];

/// One of [`OWN_CONFIG`] as it was: its name and, when it existed, its bytes
/// and mode.
type SavedFile = (&'static str, Option<(Vec<u8>, u32)>);

fn is_loopback(host: &str) -> bool {
    host.starts_with('/')
        || host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The server behind `info`, if this machine runs it.
pub fn find(info: &Conninfo, state: &RoleState) -> Option<LocalServer> {
    let host = info
        .get("host")
        .or(info.get("hostaddr"))
        .unwrap_or("localhost");
    if !is_loopback(host) {
        return None;
    }
    let data = PathBuf::from(state.data_directory.as_deref()?);
    let pid = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    // postmaster.pid: pid, data directory, start time, port, ...
    if pid.lines().nth(3)?.trim() != state.port.to_string() {
        return None;
    }
    let bin = scratch::bin_dir(state.major)?;
    let meta = std::fs::metadata(&data).ok()?;
    let run_as = if restore::runs_as_root() && meta.uid() != 0 {
        Some((
            crate::providers::os_user::by_uid(meta.uid())?.name,
            meta.uid(),
            meta.gid(),
        ))
    } else {
        None
    };
    Some(LocalServer { data, bin, run_as })
}

impl LocalServer {
    fn command(&self, program: &str) -> Command {
        let mut c = scratch::as_user(
            self.run_as.as_ref().map(|(name, _, _)| name.as_str()),
            &self.bin.join(program),
        );
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, mut c: Command, what: &str) -> Result<String, String> {
        let out = c.output().map_err(|e| format!("{what}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{what} failed: {}", text.trim()))
        }
    }

    /// Writes `name` in the data directory, owned like the directory.
    fn write_file(&self, name: &str, text: &str, append: bool) -> Result<(), String> {
        use std::io::Write;
        let path = self.data.join(name);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some((_, uid, gid)) = &self.run_as {
            std::os::unix::fs::chown(&path, Some(*uid), Some(*gid))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The options the server was started with (after `-D DIR`), as pg_ctl's
    /// `-o` takes them, so it comes back on the same port and addresses.
    fn start_options(&self) -> Result<String, String> {
        let path = self.data.join("postmaster.opts");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(postmaster_options(&text))
    }

    /// The log this module starts the server with.
    pub fn log(&self) -> PathBuf {
        self.data.join("log").join("pgdr-rejoin.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(4)..].join("\n  ")
    }

    /// Stops the server, rewinds it from `source` (libpq conninfo of the new
    /// primary) if needed, keeps its own configuration files, writes
    /// standby.signal and starts it as a standby. `primary_conninfo` and the
    /// slot are already in its `postgresql.auto.conf` (ALTER SYSTEM, before
    /// the stop). Returns what pg_rewind did.
    pub fn rejoin(&self, source: &str) -> Result<String, String> {
        let options = self.start_options()?;
        // Before the stop: a crash from here on leaves a server that starts
        // as a standby (primary_conninfo is already set), never as a writer.
        self.write_file("standby.signal", "", false)?;
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]);
        self.run(stop, "pg_ctl stop")?;
        let own = self.save_config()?;
        let mut rewind = self.command("pg_rewind");
        // --write-recovery-conf: pg_rewind itself leaves standby.signal (it
        // removes ours, which the new primary does not have), so a crash
        // after it still leaves a standby.
        rewind
            .arg("--target-pgdata")
            .arg(&self.data)
            .arg(format!("--source-server={source}"))
            .arg("--write-recovery-conf");
        let rewound = match self.run(rewind, "pg_rewind") {
            Ok(out) if out.contains("no rewind required") => "no rewind was needed".to_string(),
            Ok(_) => "rewound with pg_rewind".to_string(),
            // pg_rewind needs data checksums or wal_log_hints; without them the
            // server may still follow if its WAL did not go past the fork.
            Err(e) if e.contains("wal_log_hints") => {
                "pg_rewind cannot run here (neither wal_log_hints nor data checksums): started without it".to_string()
            }
            Err(e) => {
                // pg_rewind may have copied some files before it failed.
                self.restore_config(&own)?;
                return Err(e);
            }
        };
        // pg_rewind copies the new primary's configuration files: its port and
        // addresses would make this server collide with the new primary.
        self.restore_config(&own)?;
        // Again: pg_rewind removes what the new primary does not have.
        self.write_file("standby.signal", "", false)?;
        let log_dir = self.data.join("log");
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        if let Some((_, uid, gid)) = &self.run_as {
            std::os::unix::fs::chown(&log_dir, Some(*uid), Some(*gid))
                .map_err(|e| format!("{}: {e}", log_dir.display()))?;
        }
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.log())
            .args(["-W", "-o", &options, "start"])
            .stdout(Stdio::null());
        self.run(start, "pg_ctl start")?;
        Ok(rewound)
    }

    /// The configuration files in the data directory, as they are now (or
    /// their absence), before pg_rewind replaces them with the source's.
    fn save_config(&self) -> Result<Vec<SavedFile>, String> {
        OWN_CONFIG
            .iter()
            .map(|name| {
                let path = self.data.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        let mode = std::fs::metadata(&path)
                            .map_err(|e| format!("{}: {e}", path.display()))?
                            .mode();
                        Ok((*name, Some((bytes, mode & 0o7777))))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((*name, None)),
                    Err(e) => Err(format!("{}: {e}", path.display())),
                }
            })
            .collect()
    }

    /// Puts back what [`Self::save_config`] read: each file written whole
    /// (a temporary file renamed over it, mode and owner kept), and a file
    /// the server did not have removed.
    fn restore_config(&self, saved: &[SavedFile]) -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        for (name, content) in saved {
            let path = self.data.join(name);
            let Some((bytes, mode)) = content else {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(format!("{}: {e}", path.display()))
                    }
                    _ => continue,
                }
            };
            let tmp = self.data.join(format!("{name}.pgdr-tmp"));
            let written = (|| {
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(bytes)?;
                file.set_permissions(std::fs::Permissions::from_mode(*mode))?;
                if let Some((_, uid, gid)) = &self.run_as {
                    std::os::unix::fs::fchown(&file, Some(*uid), Some(*gid))?;
                }
                file.sync_all()?;
                std::fs::rename(&tmp, &path)
            })();
            written.map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Waits until the server's pid file is there and it has not exited.
    pub fn wait_running(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut seen = false;
        loop {
            let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
            if pid
                .lines()
                .nth(7)
                .is_some_and(|status| status.trim() == "ready" || status.trim() == "standby")
            {
                return Ok(());
            }
            // A server that exits (a port taken, a bad setting) removes its
            // pid file: say so now rather than at the deadline.
            let alive = pid
                .lines()
                .next()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            seen |= alive;
            let exited = seen && !alive;
            if exited || Instant::now() > deadline {
                return Err(format!(
                    "the old primary did not come up as a standby ({}); its log ({}) ends:\n  {}",
                    if exited {
                        "it exited".to_string()
                    } else {
                        format!("not within {}s", limit.as_secs())
                    },
                    self.log().display(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Why it is not streaming, from its log, for a failed rejoin.
    pub fn why_not_streaming(&self) -> String {
        format!(
            "its log ({}) ends:\n  {}",
            self.log().display(),
            self.log_tail()
        )
    }
}

/// `postmaster.opts` (`/usr/lib/…/postgres "-D" "/data" "-p" "5433" …`) as the
/// `-o` of pg_ctl: every argument after the program except `-D DIR`, each
/// single-quoted for the shell pg_ctl starts the server through.
fn postmaster_options(text: &str) -> String {
    let mut args = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (arg, after) = if let Some(r) = rest.strip_prefix('"') {
            match r.find('"') {
                Some(end) => (&r[..end], &r[end + 1..]),
                None => (r, ""),
            }
        } else {
            match rest.find(' ') {
                Some(end) => (&rest[..end], &rest[end..]),
                None => (rest, ""),
            }
        };
        args.push(arg.to_string());
        rest = after.trim_start();
    }
    let mut out = Vec::new();
    let mut iter = args.into_iter().skip(1);
    while let Some(arg) = iter.next() {
        if arg == "-D" {
            iter.next();
            continue;
        }
        out.push(format!("'{}'", arg.replace('\'', "'\\''")));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_options_come_from_postmaster_opts_without_the_data_directory() {
        let opts = "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/tmp/x/pg/data\" \"-p\" \"5433\" \"-k\" \"/tmp/x/pg\" \"-c\" \"listen_addresses=127.0.0.2\"\n";
        assert_eq!(
            postmaster_options(opts),
            "'-p' '5433' '-k' '/tmp/x/pg' '-c' 'listen_addresses=127.0.0.2'"
        );
        assert_eq!(postmaster_options("/usr/bin/postgres\n"), "");
    }

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
