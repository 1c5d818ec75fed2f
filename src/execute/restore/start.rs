//! `restore --start`: starts the restored folder, waits until it promoted,
//! reads what it recovered, and checks its extensions against the binaries
//! it runs. The server's socket is in the folder (only
//! its user may enter it) and trusted first, before the folder's own
//! pg_hba.conf rules.

use super::server::{write_socket_hba, Restored};
use crate::execute::drill::scratch;
use crate::execute::ArchiveError;
use crate::plan::recovery::drill::recovery_limit;
use crate::settings::PgEnv;
use crate::state::drill::Objectives;
use std::path::{Path, PathBuf};

/// The restored server, running.
pub struct Started {
    pub port: u16,
    pub log: PathBuf,
    pub seconds: f64,
    /// The last transaction recovery replayed, or why there is none.
    pub last_transaction: String,
    pub replay_lsn: String,
    /// Every installed extension available at its version on these
    /// binaries (the drill's `extensions` check).
    pub extensions: crate::state::drill::CheckResult,
}

/// Starts the folder `dir` (PostgreSQL `major`) on `port` (or a free one),
/// connecting as `(user, dbname)`; waits up to [`recovery_limit`].
pub async fn start(
    dir: &Path,
    port: Option<u16>,
    major: u32,
    (user, dbname): (&str, &str),
    objectives: &Objectives,
) -> Result<Started, ArchiveError> {
    let port = match port {
        Some(p) => p,
        None => scratch::free_port()?,
    };
    let log = dir.join("pgdr-start.log");
    let server = Restored::new(dir, &log, dir, port, major)?;
    let conf = dir.join("postgresql.conf");
    if !conf.exists() {
        // A Debian-style source keeps its configuration outside the folder.
        std::fs::write(&conf, "# written by pgdr restore --start\n")
            .map_err(|e| ArchiveError::io(&conf, e))?;
    }
    let own_rules = std::fs::read_to_string(dir.join("pg_hba.conf")).unwrap_or_default();
    let hba = dir.join("pgdr_hba.conf");
    write_socket_hba(&hba, &own_rules)?;
    server.adopt(dir)?;
    let clock = std::time::Instant::now();
    server.start(&format!("-c hba_file={}", hba.display()))?;
    let info = crate::spec::Conninfo::parse(&server.conninfo(user, dbname))
        .map_err(|e| ArchiveError::Failed(format!("the restored server's conninfo: {e}")))?;
    let pg = server
        .wait_promoted(&info, &PgEnv::default(), recovery_limit(objectives))
        .await
        .map_err(ArchiveError::Failed)?;
    let replayed = crate::providers::postgres::backup::replayed(&pg).await?;
    let extensions = crate::execute::drill::checks::extensions_check(&pg, &server, user).await;
    Ok(Started {
        port,
        log,
        seconds: clock.elapsed().as_secs_f64(),
        last_transaction: replayed
            .commit_text
            .unwrap_or_else(|| "none (the data is as of the backup's end)".to_string()),
        replay_lsn: replayed.lsn.map(|l| l.to_string()).unwrap_or_default(),
        extensions,
    })
}
