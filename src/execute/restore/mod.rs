//! `pgdr restore`: a base backup and the WAL after it, back into a folder
//! ready to start. Which backup and how far the archive takes it are the
//! planner's decisions ([`crate::plan::recovery::restore`]); here the archive
//! is read for them ([`choose`]), the backup is downloaded, extracted and
//! checked against its manifest ([`unpack`]) into a folder that is only ever
//! new or empty ([`folder`]), and the recovery settings are written.

pub mod chain;
pub mod choose;
pub mod delta;
pub mod extract;
pub mod folder;
pub mod server;
pub mod start;
pub mod unpack;

pub use choose::choose_in_archive;
pub use folder::{check_dir, chown_tree, intended_owner, prepare_dir};

use super::ArchiveError;
use crate::format::ArchiveUrl;
use crate::plan::recovery::restore::Target;
use crate::providers::storage::Store;
use crate::spec::time::rfc3339;
use crate::state::archive::BackupEntry;
use std::io::Write;
use std::path::Path;
use unpack::Unpacked;

/// The marker a restore in progress leaves in its folder: a folder holding it
/// is an interrupted restore, which the next restore clears and starts again.
pub const IN_PROGRESS: &str = ".pgdr-restore-in-progress";

/// What `restore` needs beyond the backup.
pub struct RestoreRequest<'a> {
    pub url: &'a ArchiveUrl,
    /// `--region` for `wal-fetch`, when not the default.
    pub region: Option<&'a str>,
    pub backup: &'a BackupEntry,
    /// What restoring it needs: its full first, `backup` last (itself alone
    /// for a full).
    pub chain: &'a [BackupEntry],
    pub target: Target,
    pub dir: &'a Path,
    /// How the restored server calls pgdr (`restore_command`).
    pub pgdr: &'a str,
    /// `wal-fetch --until`: the last segment archived without a gap when the
    /// restore was made ([`Chosen::wal_until`]).
    pub wal_until: Option<&'a str>,
    /// The loss past a gap was accepted: `wal-fetch --accept-loss`.
    pub accept_loss: bool,
    /// Over the data folder already in `dir`, fetching only what differs
    /// ([`delta`]); otherwise `dir` is new or empty.
    pub delta: bool,
    /// Extra settings for the restored server (a drill turns archiving off).
    pub extra_settings: &'a [(&'a str, String)],
    pub progress: bool,
}

/// A single-quoted configuration value.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The settings that make the restored folder recover to `target` from the
/// archive and then promote. Pure.
pub fn recovery_settings(request: &RestoreRequest<'_>) -> Vec<(String, String)> {
    let mut command = format!("{} wal-fetch {} %f %p", request.pgdr, request.url);
    if let Some(region) = request.region {
        command.push_str(&format!(" --region {region}"));
    }
    // What makes recovery stop (FATAL) instead of promoting when the archive
    // ends early: see `wal-fetch`'s guard (commands/wal.rs).
    if let Some(until) = request.wal_until {
        command.push_str(&format!(" --until {until}"));
    }
    if request.accept_loss {
        command.push_str(" --accept-loss");
    }
    let mut settings = vec![("restore_command".to_string(), command)];
    match &request.target {
        Target::Latest => {}
        // PostgreSQL's own timestamp form: it does not take RFC 3339's `T`/`Z`.
        Target::Time(t) => settings.push((
            "recovery_target_time".into(),
            rfc3339(*t).replace('T', " ").replace('Z', "+00"),
        )),
        Target::Lsn(l) => settings.push(("recovery_target_lsn".into(), l.to_string())),
    }
    settings.push(("recovery_target_timeline".into(), "latest".into()));
    if request.target != Target::Latest {
        settings.push(("recovery_target_action".into(), "promote".into()));
    }
    for (name, value) in request.extra_settings {
        settings.push((name.to_string(), value.clone()));
    }
    settings
}

/// Restores `request.backup` into `request.dir` and writes the recovery
/// configuration. The folder is marked in progress until the very end, and
/// PostgreSQL itself refuses to start a folder whose `global/pg_control` (the
/// stream's last file) never arrived, so an interrupted restore never looks
/// like a finished one.
pub async fn restore(
    store: &Store,
    request: &RestoreRequest<'_>,
) -> Result<Unpacked, ArchiveError> {
    if request.delta {
        delta::check_target(request.dir)?;
    } else if prepare_dir(request.dir)? {
        tracing::warn!(
            target: "pgdr::archive",
            dir = %request.dir.display(),
            "cleared an interrupted restore (it had {IN_PROGRESS}) and started again"
        );
    }
    let marker = request.dir.join(IN_PROGRESS);
    std::fs::write(&marker, format!("{}\n", request.backup.id))
        .map_err(|e| ArchiveError::io(&marker, e))?;
    // A backup with maps is restored through them (alone or as a chain);
    // a stream, or a file-level backup from before maps, object by object.
    let unpacked = if request.delta {
        delta::restore_over(store, request.url, request.chain, request.dir).await?
    } else if request.backup.maps.is_empty() {
        unpack::unpack(
            store,
            request.url,
            request.backup,
            request.dir,
            request.progress,
        )
        .await?
    } else {
        chain::unpack_chain(
            store,
            request.url,
            request.chain,
            request.dir,
            request.progress,
        )
        .await?
    };
    let auto_conf = request.dir.join("postgresql.auto.conf");
    let mut text = format!(
        "\n# Recovery settings written by pgdr restore of backup {}, target {}.\n# If the archive ends early (a segment up to {} missing or failing its digest,\n# or missing while later WAL is archived, or the archive unreachable),\n# wal-fetch exits 126 and PostgreSQL stops recovery instead of promoting;\n# a time or LSN target not reached stops it too (PostgreSQL 13+).\n",
        request.backup.id,
        request.target.describe(),
        request.wal_until.unwrap_or("the newest archived")
    );
    for (name, value) in recovery_settings(request) {
        text.push_str(&format!("{name} = {}\n", quoted(&value)));
    }
    // Tablespaces come back as folders inside pg_tblspc (the places their
    // links pointed to may be another server's), which PostgreSQL accepts
    // only with this setting (at the end of recovery it refuses them
    // otherwise).
    let tablespaces = std::fs::read_dir(request.dir.join("pg_tblspc"))
        .map(|entries| entries.flatten().any(|e| e.path().is_dir()))
        .unwrap_or(false);
    if tablespaces {
        text.push_str("# Tablespaces restored inside pg_tblspc/ (in place), not at their old locations.\nallow_in_place_tablespaces = 'on'\n");
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&auto_conf)
        .map_err(|e| ArchiveError::io(&auto_conf, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| ArchiveError::io(&auto_conf, e))?;
    file.sync_all()
        .map_err(|e| ArchiveError::io(&auto_conf, e))?;
    let signal = request.dir.join("recovery.signal");
    std::fs::File::create(&signal)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArchiveError::io(&signal, e))?;
    std::fs::remove_file(&marker).map_err(|e| ArchiveError::io(&marker, e))?;
    // The data files are not synced one by one: a backup's control file never
    // says "shut down", so PostgreSQL syncs the whole folder when it first
    // starts, before recovery (recovery_init_sync_method).
    std::fs::File::open(request.dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArchiveError::io(request.dir, e))?;
    Ok(unpacked)
}
