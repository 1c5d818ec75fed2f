//! The catalogue files read back from the bucket, parsed and checked: a
//! backup's `backup.json`, a drill report, and what a listing of WAL versions
//! says about damage. Whoever holds the bucket's key can write these, so each
//! is checked before it is returned, and a bad one names its key. Pure.

use super::layout::{wal_name_of, BACKUP_JSON};
use super::FormatError;
use crate::state::archive::{BackupEntry, BackupProgress, WalDamage, WalDamageKind};
use crate::state::drill::DrillReport;
use crate::state::journal::Journal;
use crate::state::watch::Leases;

/// The backup id of a key under `base/` (`<base>/<id>/...`), if it is in a folder.
pub fn backup_folder_of<'a>(base_prefix: &str, key: &'a str) -> Option<&'a str> {
    let (id, _) = key.get(base_prefix.len()..)?.split_once('/')?;
    Some(id)
}

/// Whether a backup folder's keys include its `backup.json` (written last:
/// only a complete backup has it).
pub fn is_complete<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| k.ends_with(&format!("/{BACKUP_JSON}")))
}

/// `<folder>/backup.json` at `key`: parsed, and checked to be an entry pgdr
/// could have written for `folder`.
pub fn backup_entry(key: &str, folder: &str, bytes: &[u8]) -> Result<BackupEntry, FormatError> {
    let entry = serde_json::from_slice::<BackupEntry>(bytes)
        .map_err(|e| FormatError::Corrupt(format!("{key} cannot be read: {e}")))?;
    entry.check(folder).map_err(|e| {
        FormatError::Corrupt(format!(
            "{key} is not a backup entry pgdr wrote ({e}); something other than pgdr wrote it, so the archive is not trusted until it is removed or repaired"
        ))
    })?;
    Ok(entry)
}

/// `<folder>/progress.json` at `key`: what a running backup last said of
/// itself; refused when it names another backup.
pub fn backup_progress(
    key: &str,
    folder: &str,
    bytes: &[u8],
) -> Result<BackupProgress, FormatError> {
    let progress = serde_json::from_slice::<BackupProgress>(bytes)
        .map_err(|e| FormatError::Corrupt(format!("{key} cannot be read: {e}")))?;
    if progress.id != folder {
        return Err(FormatError::Corrupt(format!(
            "{key} names backup `{}`, not its folder's",
            progress.id
        )));
    }
    Ok(progress)
}

/// A drill report at `key`.
pub fn drill_report(key: &str, bytes: &[u8]) -> Result<DrillReport, FormatError> {
    serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Corrupt(format!("{key} cannot be read: {e}")))
}

/// The WAL damage a listing of versions under `wal_prefix` shows, from the
/// segment `first` on (expiry's delete markers on older WAL are no damage),
/// sorted by name.
pub fn wal_damage(
    wal_prefix: &str,
    first: &str,
    rewritten: &[(String, usize)],
    deleted: &[String],
) -> Vec<WalDamage> {
    let name = |key: &str| wal_name_of(key.get(wal_prefix.len()..).unwrap_or(key)).to_string();
    let mut damaged: Vec<WalDamage> = rewritten
        .iter()
        .map(|(key, versions)| WalDamage {
            name: name(key),
            what: WalDamageKind::Rewritten {
                versions: *versions,
            },
        })
        .chain(deleted.iter().map(|key| WalDamage {
            name: name(key),
            what: WalDamageKind::Deleted,
        }))
        .filter(|d| d.name.as_str() >= first)
        .collect();
    damaged.sort_by(|a, b| a.name.cmp(&b.name));
    damaged
}

/// A role change's journal at `key`.
pub fn journal(key: &str, bytes: &[u8]) -> Result<Journal, FormatError> {
    serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Corrupt(format!("{key} cannot be read: {e}")))
}

/// The lease object at `key`.
pub fn leases(key: &str, bytes: &[u8]) -> Result<Leases, FormatError> {
    serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Corrupt(format!("{key} cannot be read: {e}")))
}
