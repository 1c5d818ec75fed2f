//! The catalogue: which base backups a bucket holds (a folder with a
//! `backup.json` is complete; one without is not), and the WAL archived since
//! the newest. Read with listings, not a request per object: one listing of
//! `base/`, one small read per complete backup, and one listing of `wal/` that
//! starts at the newest backup's first segment, so a year of older WAL costs
//! nothing. The WAL listing is of versions: it also sees a WAL object
//! rewritten or deleted after it was archived.

use super::{ArchiveError, ArchiveUrl};
use crate::providers::s3::objects::{self, Listed};
use crate::state::archive::{ArchiveLive, BackupEntry, WalDamage, WalDamageKind};
use crate::state::drill::{DrillReport, DrillsLive};
use aws_sdk_s3::Client;
use std::collections::BTreeMap;

pub const BACKUP_JSON: &str = "backup.json";

/// Every object of every backup folder, by backup id.
pub async fn backup_folders(
    client: &Client,
    url: &ArchiveUrl,
) -> Result<BTreeMap<String, Vec<Listed>>, ArchiveError> {
    let base = url.base_prefix();
    let mut folders: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
    for object in objects::list(client, &url.bucket, &base, None).await? {
        let Some((id, _)) = object.key[base.len()..].split_once('/') else {
            continue;
        };
        folders.entry(id.to_string()).or_default().push(object);
    }
    Ok(folders)
}

/// Complete backups (oldest first) and the ids of incomplete folders.
pub async fn read(
    client: &Client,
    url: &ArchiveUrl,
) -> Result<(Vec<BackupEntry>, Vec<String>, BTreeMap<String, Vec<Listed>>), ArchiveError> {
    let folders = backup_folders(client, url).await?;
    let mut complete = Vec::new();
    let mut incomplete = Vec::new();
    for (id, objects) in &folders {
        if objects
            .iter()
            .any(|o| o.key.ends_with(&format!("/{BACKUP_JSON}")))
        {
            complete.push(id.clone());
        } else {
            incomplete.push(id.clone());
        }
    }
    let entries = futures_util::future::join_all(complete.iter().map(|id| async move {
        let key = format!("{}{BACKUP_JSON}", url.backup_prefix(id));
        let fetched = objects::get(client, &url.bucket, &key)
            .await?
            .ok_or_else(|| ArchiveError::Failed(format!("{key} vanished while being read")))?;
        let entry = serde_json::from_slice::<BackupEntry>(&fetched.body)
            .map_err(|e| ArchiveError::Corrupt(format!("{key} cannot be read: {e}")))?;
        entry.check(id).map_err(|e| {
            ArchiveError::Corrupt(format!(
                "{key} is not a backup entry pgdr wrote ({e}); something other than pgdr wrote it, so the archive is not trusted until it is removed or repaired"
            ))
        })?;
        Ok::<_, ArchiveError>(entry)
    }))
    .await;
    let mut backups = entries.into_iter().collect::<Result<Vec<_>, _>>()?;
    backups.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((backups, incomplete, folders))
}

/// WAL names archived from `first` (a segment name) on, on its timeline and later.
pub async fn wal_from(
    client: &Client,
    url: &ArchiveUrl,
    first: &str,
) -> Result<Vec<String>, ArchiveError> {
    Ok(wal_objects_from(client, url, first).await?.names(url))
}

/// The WAL objects archived from `first` on, and those of them that changed
/// after they were archived.
#[derive(Debug, Clone, Default)]
pub struct WalListing {
    /// Current objects (with their archive times), by key.
    pub objects: Vec<Listed>,
    /// Sorted by name; only names from `first` on (expiry's delete markers on
    /// older WAL are no damage).
    pub damaged: Vec<WalDamage>,
}

impl WalListing {
    /// The WAL file names of the current objects, sorted, without duplicates.
    pub fn names(&self, url: &ArchiveUrl) -> Vec<String> {
        let prefix = url.wal_prefix();
        let mut names: Vec<String> = self
            .objects
            .iter()
            .map(|o| wal_name_of(&o.key[prefix.len()..]).to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The WAL objects archived from `first` on, through a listing of versions:
/// the same requests as a plain listing, and a key pgdr wrote once but the
/// bucket holds twice (or deleted) is seen at once, not at restore time.
pub async fn wal_objects_from(
    client: &Client,
    url: &ArchiveUrl,
    first: &str,
) -> Result<WalListing, ArchiveError> {
    let prefix = url.wal_prefix();
    // Timeline and log of `first`: sorts before every segment from it on.
    let start_after = format!("{prefix}{}", first.get(..16).unwrap_or(first));
    let listed = objects::list_versions(client, &url.bucket, &prefix, Some(&start_after)).await?;
    let name = |key: &str| wal_name_of(&key[prefix.len()..]).to_string();
    let mut damaged: Vec<WalDamage> = listed
        .rewritten
        .iter()
        .map(|(key, versions)| WalDamage {
            name: name(key),
            what: WalDamageKind::Rewritten {
                versions: *versions,
            },
        })
        .chain(listed.deleted.iter().map(|key| WalDamage {
            name: name(key),
            what: WalDamageKind::Deleted,
        }))
        .filter(|d| d.name.as_str() >= first)
        .collect();
    damaged.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(WalListing {
        objects: listed.current,
        damaged,
    })
}

/// The WAL file name of an object name (without `.zst`).
pub fn wal_name_of(object: &str) -> &str {
    object.strip_suffix(".zst").unwrap_or(object)
}

/// The archive's live model for `plan`.
pub async fn observe(client: &Client, url: &ArchiveUrl) -> Result<ArchiveLive, ArchiveError> {
    let (backups, incomplete, _) = read(client, url).await?;
    let wal = match backups.last() {
        Some(newest) => wal_objects_from(client, url, &newest.start_wal).await?,
        None => WalListing::default(),
    };
    Ok(ArchiveLive {
        backups,
        incomplete,
        wal_since_newest: wal.names(url),
        wal_damaged: wal.damaged,
        // Needs a clock: the caller that has one sets it.
        newest_age_seconds: None,
        drills: DrillsLive::default(),
        observed_at_unix: None,
    })
}

/// The drill reports' folder.
pub fn drills_prefix(url: &ArchiveUrl) -> String {
    format!("{}drills/", url.prefix)
}

/// How many reports back `drills` looks for the newest one that passed.
const DRILLS_SEARCHED: usize = 20;

/// The newest drill report, and the newest that passed (searched among the
/// newest [`DRILLS_SEARCHED`]). One listing and one small read per report read.
pub async fn drills(client: &Client, url: &ArchiveUrl) -> Result<DrillsLive, ArchiveError> {
    let prefix = drills_prefix(url);
    let mut listed = objects::list(client, &url.bucket, &prefix, None).await?;
    listed.retain(|o| o.key.ends_with(".json"));
    listed.sort_by(|a, b| b.key.cmp(&a.key));
    let mut live = DrillsLive::default();
    // One at a time, newest first: usually the newest passed, and that is one
    // read; reading ahead would cost requests on every plan.
    for object in listed.iter().take(DRILLS_SEARCHED) {
        let Some(fetched) = objects::get(client, &url.bucket, &object.key).await? else {
            continue;
        };
        let report: DrillReport = serde_json::from_slice(&fetched.body)
            .map_err(|e| ArchiveError::Corrupt(format!("{} cannot be read: {e}", object.key)))?;
        let ok = report.ok;
        if live.newest.is_none() {
            live.newest = Some(report.clone());
        }
        if ok {
            live.newest_ok = Some(report);
            break;
        }
    }
    Ok(live)
}
