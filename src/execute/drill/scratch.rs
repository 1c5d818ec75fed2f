//! The throw-away server a drill restores into: a private folder, a free
//! loopback port, the PostgreSQL binaries of the backup's major version, and
//! its removal afterwards. A drill interrupted by Ctrl-C removes it at once;
//! one killed outright is removed by the next drill of the same cluster
//! (folders marked kept with `--keep` are left alone).
//!
//! When pgdr runs as root the server runs as `postgres` (PostgreSQL refuses
//! root), and the folder is handed to that user.

use crate::execute::restore::server::{write_socket_hba, Restored};
use crate::execute::ArchiveError;
use crate::providers::local_server::{self, as_user, bin_dir};
use crate::providers::os_user;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// What [`Scratch::start`] turns off, as the drill report lists it.
pub const ISOLATION: [&str; 2] = [
    "archive_mode = off: the restored server archives nothing",
    "max_logical_replication_workers = 0: no subscription of the restored copy can start",
];

/// Libraries that run logical replication workers of their own, which
/// `max_logical_replication_workers` does not stop: a restored copy loading
/// one would connect its subscriptions to the production nodes and consume
/// their slots (pglogical's apply workers), so the scratch server loads
/// none of them.
const REPLICATING_LIBRARIES: [&str; 4] = ["pglogical", "spock", "pgactive", "bdr"];

/// `shared_preload_libraries` without the replicating libraries, and the
/// ones taken out.
fn without_replicating(list: &str) -> (String, Vec<String>) {
    let (dropped, kept): (Vec<&str>, Vec<&str>) = list
        .split(',')
        .map(|l| l.trim().trim_matches('"'))
        .filter(|l| !l.is_empty())
        .partition(|l| REPLICATING_LIBRARIES.contains(&crate::spec::library_name(l)));
    (
        kept.join(","),
        dropped.into_iter().map(str::to_string).collect(),
    )
}

/// Marks a scratch folder kept by `--keep`: the next drill does not remove it.
pub const KEPT: &str = "pgdr-drill-kept";
/// The server's own authentication rules: the Unix socket in the private
/// folder only, so nobody else on the machine reaches the restored data.
const HBA: &str = "pgdr_hba.conf";

/// A drill's private folder `<root>/<cluster>-drill-<ts>` and its server.
pub struct Scratch {
    pub dir: PathBuf,
    pub server: Restored,
}

pub fn free_port() -> Result<u16, ArchiveError> {
    local_server::free_port().map_err(|e| ArchiveError::Failed(e.to_string()))
}

/// Stops the server in `dir` (if one runs) and removes the folder.
fn remove(dir: &Path) -> Result<(), ArchiveError> {
    let data = dir.join("data");
    if data.join("postmaster.pid").is_file() {
        let pg_ctl = pg_ctl_for(&data).unwrap_or_else(|| PathBuf::from("pg_ctl"));
        let run_as = os_user::is_root().then_some("postgres");
        let _ = as_user(run_as, &pg_ctl)
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

/// Removes what earlier drills of `cluster` left (killed before they could
/// clean up); folders kept with `--keep` stay. Returns what was removed.
pub fn clean_leftovers(root: &Path, cluster: &str) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(removed);
    };
    let prefix = format!("{cluster}-drill-");
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with(&prefix) || path.join(KEPT).exists() {
            continue;
        }
        remove(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

impl Scratch {
    /// A new private folder `root/<cluster>-drill-<ts>` for PostgreSQL `major`.
    pub fn create(root: &Path, cluster: &str, ts: &str, major: u32) -> Result<Self, ArchiveError> {
        use std::os::unix::fs::PermissionsExt;
        if !root.exists() {
            // Like /tmp: every user may make a folder in it, and remove only their own.
            std::fs::create_dir_all(root).map_err(|e| ArchiveError::io(root, e))?;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1777))
                .map_err(|e| ArchiveError::io(root, e))?;
        }
        let dir = root.join(format!("{cluster}-drill-{ts}"));
        let server = Restored::new(
            &dir.join("data"),
            &dir.join("server.log"),
            &dir,
            free_port()?,
            major,
        )?;
        std::fs::create_dir(&dir).map_err(|e| ArchiveError::io(&dir, e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ArchiveError::io(&dir, e))?;
        write_socket_hba(&dir.join(HBA), "")?;
        Ok(Scratch { dir, server })
    }

    /// Starts the restored server: archiving off (a drill never writes into
    /// the archive), no logical replication workers (a restored subscriber
    /// would connect to the production publisher and consume its slot), no
    /// library that runs its own (pglogical), no synchronous standbys to wait
    /// for, reachable on the private socket only. Returns what was turned off
    /// beyond [`ISOLATION`], for the report.
    pub fn start(&self) -> Result<Vec<String>, ArchiveError> {
        self.server.adopt(&self.dir)?;
        let preload = self
            .server
            .local
            .configured("shared_preload_libraries")
            .map_err(|e| {
                ArchiveError::Failed(format!("reading the restored configuration: {e}"))
            })?;
        let (kept, dropped) = without_replicating(&preload);
        let mut options = self.options();
        let mut isolation = Vec::new();
        if !dropped.is_empty() {
            options.push_str(&format!(" -c shared_preload_libraries={kept}"));
            isolation.push(format!(
                "shared_preload_libraries without {}: their workers never start, so none of their subscriptions in the restored copy connects to a production node",
                dropped.join(", ")
            ));
        }
        self.server.start(&options)?;
        Ok(isolation)
    }

    fn options(&self) -> String {
        format!(
            "-c listen_addresses=127.0.0.1 -c hba_file={} -c archive_mode=off -c max_logical_replication_workers=0 -c synchronous_standby_names= -c hot_standby=on",
            self.dir.join(HBA).display()
        )
    }

    /// Restarts the server with its own `shared_preload_libraries` (pglogical
    /// loaded), for a drill's re-join: only once the restored node's
    /// pglogical identity is gone (`pglogical::forget`), so nothing of the
    /// production node's can start.
    pub fn restart_with_replication(&self) -> Result<(), ArchiveError> {
        self.server
            .local
            .stop("fast")
            .map_err(|e| ArchiveError::Failed(format!("stopping the restored server: {e}")))?;
        self.server.start(&self.options())
    }

    /// Leaves the folder (and the running server) for inspection.
    pub fn keep(&self) -> Result<(), ArchiveError> {
        std::fs::write(self.dir.join(KEPT), "kept by pgdr drill --keep\n")
            .map_err(|e| ArchiveError::io(&self.dir, e))
    }

    /// Stops the server and removes the folder.
    pub fn remove(&self) -> Result<(), ArchiveError> {
        remove(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_with_their_own_replication_workers_are_left_out() {
        assert_eq!(
            without_replicating("pg_stat_statements, pglogical"),
            (
                "pg_stat_statements".to_string(),
                vec!["pglogical".to_string()]
            )
        );
        assert_eq!(without_replicating(""), (String::new(), vec![]));
        // However the file is named: a path, the suffix.
        assert_eq!(
            without_replicating("$libdir/pglogical.so,auto_explain").1,
            vec!["$libdir/pglogical.so".to_string()]
        );
        assert_eq!(
            without_replicating("auto_explain,pg_stat_statements"),
            ("auto_explain,pg_stat_statements".to_string(), vec![])
        );
    }
}
