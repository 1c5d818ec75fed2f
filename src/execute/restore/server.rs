//! A restored folder that pgdr starts itself (a drill's scratch server,
//! `restore --start`): on a port of its own, its socket in a folder only its
//! user may enter, and trusted there first (`write_socket_hba`), so nobody
//! else on the machine reaches the restored data. Driven through
//! [`LocalServer`].

use crate::execute::ArchiveError;
use crate::providers::local_server::{self, LocalServer, LocalServerError};
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Restored {
    pub local: LocalServer,
    pub log: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
}

impl Restored {
    /// The restored folder `data` of PostgreSQL `major`, logging to `log`.
    pub fn new(
        data: &Path,
        log: &Path,
        socket_dir: &Path,
        port: u16,
        major: u32,
    ) -> Result<Self, ArchiveError> {
        Ok(Restored {
            local: LocalServer::restored(data, major)
                .map_err(|e| ArchiveError::Failed(e.to_string()))?,
            log: log.to_path_buf(),
            socket_dir: socket_dir.to_path_buf(),
            port,
        })
    }

    pub fn data(&self) -> &Path {
        &self.local.data
    }

    /// The conninfo of the server: its socket, as `user`.
    pub fn conninfo(&self, user: &str, dbname: &str) -> String {
        format!(
            "host={} port={} user={user} dbname={dbname} sslmode=disable connect_timeout=5",
            self.socket_dir.display(),
            self.port
        )
    }

    /// Starts the server without waiting (recovery runs first), with `options`
    /// for `postgres` (`-c name=value ...`) after its port and socket.
    pub fn start(&self, options: &str) -> Result<(), ArchiveError> {
        let options = format!(
            "-p {} -k {} {options}",
            self.port,
            self.socket_dir.display()
        );
        self.local.start(&self.log, &options).map_err(|e| {
            let why = match e {
                LocalServerError::Failed { output, .. } => output,
                other => other.to_string(),
            };
            ArchiveError::Failed(format!(
                "the restored server did not start: {why}{}",
                local_server::log_tail(&self.log)
            ))
        })
    }

    /// Hands `dir` to the server's user (when pgdr runs as root).
    pub fn adopt(&self, dir: &Path) -> Result<(), ArchiveError> {
        self.local.adopt(dir).map_err(|e| ArchiveError::io(dir, e))
    }

    /// Waits until it accepts connections and has left recovery.
    pub async fn wait_promoted(
        &self,
        info: &Conninfo,
        env: &PgEnv,
        limit: Duration,
    ) -> Result<tokio_postgres::Client, String> {
        self.local.wait_promoted(info, env, limit, &self.log).await
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
