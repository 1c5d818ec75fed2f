//! The old primary, when it runs on this machine: after a role change it is
//! stopped, rewound with `pg_rewind` when its WAL went past the point where
//! the new primary's timeline began, and started again as a standby of the
//! new primary — with the options it was started with (`postmaster.opts`).
//!
//! "On this machine" is proven, not assumed: the server's host is loopback (or
//! a socket), and its data directory here holds a `postmaster.pid` for the
//! port pgdr reached it on. Anything else is reported for a person to rejoin.

use crate::providers::local_server::{LocalServer, LocalServerError, WaitFailed};
use crate::providers::postgres::role::RoleState;
use crate::spec::Conninfo;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

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

/// The server behind `info`, if this machine runs it.
pub fn find(info: &Conninfo, state: &RoleState) -> Option<LocalServer> {
    LocalServer::running(
        info,
        state.data_directory.as_deref()?,
        state.port,
        state.major,
    )
}

/// The log the rejoined server is started with.
pub fn log_of(server: &LocalServer) -> PathBuf {
    server.data.join("log").join("pgdr-rejoin.log")
}

/// An old primary on this machine, for its rejoin.
pub struct Rejoining<'a>(pub &'a LocalServer);

impl Rejoining<'_> {
    /// Writes `name` in the data directory, owned like the directory.
    fn write_file(&self, name: &str, text: &str, append: bool) -> Result<(), LocalServerError> {
        use std::io::Write;
        let path = self.0.data.join(name);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&path)
            .map_err(|e| LocalServerError::io(&path, e))?;
        file.write_all(text.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| LocalServerError::io(&path, e))?;
        if let Some((uid, gid)) = self.0.owner() {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|e| LocalServerError::io(&path, e))?;
        }
        Ok(())
    }

    /// The options the server was started with (after `-D DIR`), as pg_ctl's
    /// `-o` takes them, so it comes back on the same port and addresses.
    fn start_options(&self) -> Result<String, LocalServerError> {
        let path = self.0.data.join("postmaster.opts");
        let text = std::fs::read_to_string(&path).map_err(|e| LocalServerError::io(&path, e))?;
        Ok(postmaster_options(&text))
    }

    fn log(&self) -> PathBuf {
        log_of(self.0)
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
    pub fn rejoin(&self, source: &str) -> Result<String, LocalServerError> {
        let options = self.start_options()?;
        // Before the stop: a crash from here on leaves a server that starts
        // as a standby (primary_conninfo is already set), never as a writer.
        self.write_file("standby.signal", "", false)?;
        self.0.stop("fast")?;
        let own = self.save_config()?;
        let mut rewind = self.0.command("pg_rewind");
        // --write-recovery-conf: pg_rewind itself leaves standby.signal (it
        // removes ours, which the new primary does not have), so a crash
        // after it still leaves a standby.
        rewind
            .arg("--target-pgdata")
            .arg(&self.0.data)
            .arg(format!("--source-server={source}"))
            .arg("--write-recovery-conf");
        let rewound = match self.0.run(rewind, "pg_rewind") {
            Ok(out) if out.contains("no rewind required") => "no rewind was needed".to_string(),
            Ok(_) => "rewound with pg_rewind".to_string(),
            // pg_rewind needs data checksums or wal_log_hints; without them the
            // server may still follow if its WAL did not go past the fork.
            // (pg_rewind says so only in its output.)
            Err(LocalServerError::Failed { output, .. }) if output.contains("wal_log_hints") => {
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
        let log_dir = self.0.data.join("log");
        std::fs::create_dir_all(&log_dir).map_err(|e| LocalServerError::io(&log_dir, e))?;
        if let Some((uid, gid)) = self.0.owner() {
            std::os::unix::fs::chown(&log_dir, Some(uid), Some(gid))
                .map_err(|e| LocalServerError::io(&log_dir, e))?;
        }
        self.0.start(&self.log(), &options)?;
        Ok(rewound)
    }

    /// The configuration files in the data directory, as they are now (or
    /// their absence), before pg_rewind replaces them with the source's.
    fn save_config(&self) -> Result<Vec<SavedFile>, LocalServerError> {
        OWN_CONFIG
            .iter()
            .map(|name| {
                let path = self.0.data.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        let mode = std::fs::metadata(&path)
                            .map_err(|e| LocalServerError::io(&path, e))?
                            .mode();
                        Ok((*name, Some((bytes, mode & 0o7777))))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((*name, None)),
                    Err(e) => Err(LocalServerError::io(&path, e)),
                }
            })
            .collect()
    }

    /// Puts back what [`Self::save_config`] read: each file written whole
    /// (a temporary file renamed over it, mode and owner kept), and a file
    /// the server did not have removed.
    fn restore_config(&self, saved: &[SavedFile]) -> Result<(), LocalServerError> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        for (name, content) in saved {
            let path = self.0.data.join(name);
            let Some((bytes, mode)) = content else {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(LocalServerError::io(&path, e))
                    }
                    _ => continue,
                }
            };
            let tmp = self.0.data.join(format!("{name}.pgdr-tmp"));
            let written = (|| {
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(bytes)?;
                file.set_permissions(std::fs::Permissions::from_mode(*mode))?;
                if let Some((uid, gid)) = self.0.owner() {
                    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
                }
                file.sync_all()?;
                std::fs::rename(&tmp, &path)
            })();
            written.map_err(|e| LocalServerError::io(&path, e))?;
        }
        Ok(())
    }

    /// Waits until the server is up as a standby; one that exits is
    /// reported at once.
    pub async fn wait_running(&self, limit: Duration) -> Result<(), LocalServerError> {
        self.0.wait_running(limit).await.map_err(|failed| {
            LocalServerError::NotUp(format!(
                "the old primary did not come up as a standby ({}); its log ({}) ends:\n  {}",
                match failed {
                    WaitFailed::Exited => "it exited".to_string(),
                    WaitFailed::TimedOut => format!("not within {}s", limit.as_secs()),
                },
                self.log().display(),
                self.log_tail()
            ))
        })
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
}
