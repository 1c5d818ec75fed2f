//! The catalogue: which base backups a bucket holds (a folder with a
//! `backup.json` is complete; one without is not), the WAL archived since
//! the newest, and the drill reports. Read with listings, not a request per
//! object: one listing of `base/`, one small read per complete backup, and
//! one listing of `wal/` that starts at the newest backup's first segment, so
//! a year of older WAL costs nothing. The WAL listing is of versions: it also
//! sees a WAL object rewritten or deleted after it was archived. What is read
//! is parsed and checked by [`crate::format::catalog`].

use crate::format::catalog;
use crate::format::layout::{wal_name_of, BACKUP_JSON, PROGRESS_OBJECT};
use crate::format::{ArchiveUrl, FormatError};
use crate::providers::storage::{Listed, Store};
use crate::providers::ProviderError;
use crate::state::archive::{
    ArchiveLive, BackupEntry, BackupProgress, CopyListing, FailoversLive, WalDamage,
};
use crate::state::drill::DrillsLive;
use crate::state::watch::Leases;
use std::collections::BTreeMap;

/// Why the catalogue could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// An object in the catalogue is not what pgdr wrote.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Every object of every backup folder, by backup id.
pub async fn backup_folders(
    store: &Store,
    url: &ArchiveUrl,
) -> Result<BTreeMap<String, Vec<Listed>>, CatalogError> {
    let base = url.base_prefix();
    let mut folders: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
    for object in store.list(&base, None).await? {
        let Some(id) = catalog::backup_folder_of(&base, &object.key) else {
            continue;
        };
        folders.entry(id.to_string()).or_default().push(object);
    }
    Ok(folders)
}

/// The folders of backups that never finished (no `backup.json`).
pub fn incomplete(folders: &BTreeMap<String, Vec<Listed>>) -> Vec<(&String, &Vec<Listed>)> {
    folders
        .iter()
        .filter(|(_, objects)| !catalog::is_complete(objects.iter().map(|o| o.key.as_str())))
        .collect()
}

/// What the catalogue holds: complete backups (oldest first), the ids of
/// incomplete folders, and every backup folder's objects.
pub struct Catalogue {
    pub backups: Vec<BackupEntry>,
    pub incomplete: Vec<String>,
    /// The progress of incomplete folders that say they are running.
    pub running: Vec<BackupProgress>,
    pub folders: BTreeMap<String, Vec<Listed>>,
}

/// Reads the catalogue: one listing of `base/`, one read per complete backup.
pub async fn read(store: &Store, url: &ArchiveUrl) -> Result<Catalogue, CatalogError> {
    let folders = backup_folders(store, url).await?;
    let incomplete: Vec<String> = incomplete(&folders)
        .into_iter()
        .map(|(id, _)| id.clone())
        .collect();
    let complete = folders.keys().filter(|id| !incomplete.contains(id));
    let entries = futures_util::future::join_all(complete.map(|id| async move {
        let key = format!("{}{BACKUP_JSON}", url.backup_prefix(id));
        let fetched = store
            .get(&key)
            .await?
            .ok_or_else(|| FormatError::Corrupt(format!("{key} vanished while being read")))?;
        Ok::<_, CatalogError>(catalog::backup_entry(&key, id, &fetched.body)?)
    }))
    .await;
    let mut backups = entries.into_iter().collect::<Result<Vec<_>, _>>()?;
    backups.sort_by(|a, b| a.id.cmp(&b.id));
    let running = running(store, url, &folders, &incomplete).await;
    Ok(Catalogue {
        backups,
        incomplete,
        running,
        folders,
    })
}

/// What the incomplete folders with a `progress.json` say. Informational:
/// one that cannot be read is logged and left out, never an error.
async fn running(
    store: &Store,
    url: &ArchiveUrl,
    folders: &BTreeMap<String, Vec<Listed>>,
    incomplete: &[String],
) -> Vec<BackupProgress> {
    let with_progress = incomplete.iter().filter(|id| {
        folders.get(*id).is_some_and(|objects| {
            objects
                .iter()
                .any(|o| o.key.ends_with(&format!("/{PROGRESS_OBJECT}")))
        })
    });
    let read = futures_util::future::join_all(with_progress.map(|id| async move {
        let key = format!("{}{PROGRESS_OBJECT}", url.backup_prefix(id));
        match store.get(&key).await {
            Ok(Some(fetched)) => catalog::backup_progress(&key, id, &fetched.body)
                .map_err(|e| tracing::warn!(target: "pgdr::archive", key, error = %e, "a backup's progress left out"))
                .ok(),
            // Gone: the backup ended between the listing and the read.
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(target: "pgdr::archive", key, error = %e, "a backup's progress could not be read");
                None
            }
        }
    }))
    .await;
    read.into_iter().flatten().collect()
}

/// WAL names archived from `first` (a segment name) on, on its timeline and
/// later: the current objects only (one plain listing from `first`, which a
/// backup polls while it waits for its WAL; `plan` and `restore` read the
/// versions too, through [`wal_objects_from`]).
pub async fn wal_from(
    store: &Store,
    url: &ArchiveUrl,
    first: &str,
) -> Result<Vec<String>, CatalogError> {
    let prefix = url.wal_prefix();
    // Keys sort after this one from `first` on (`first` itself included).
    let start_after = format!(
        "{prefix}{}",
        first.get(..first.len().saturating_sub(1)).unwrap_or(first)
    );
    let listing = WalListing {
        objects: store.list(&prefix, Some(&start_after)).await?,
        damaged: Vec::new(),
    };
    Ok(listing.names(url))
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
    /// The WAL file name of a listed object.
    pub fn name_of<'a>(url: &ArchiveUrl, object: &'a Listed) -> &'a str {
        let prefix = url.wal_prefix();
        wal_name_of(object.key.get(prefix.len()..).unwrap_or(&object.key))
    }

    /// The WAL file names of the current objects, sorted, without duplicates.
    pub fn names(&self, url: &ArchiveUrl) -> Vec<String> {
        let mut names: Vec<String> = self
            .objects
            .iter()
            .map(|o| Self::name_of(url, o).to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every current object's WAL name and when it was archived.
    pub fn archived(&self, url: &ArchiveUrl) -> Vec<(String, i64)> {
        self.objects
            .iter()
            .map(|o| (Self::name_of(url, o).to_string(), o.modified_unix))
            .collect()
    }
}

/// The WAL objects archived from `first` on, through a listing of versions:
/// the same requests as a plain listing, and a key pgdr wrote once but the
/// bucket holds twice (or deleted) is seen at once, not at restore time.
pub async fn wal_objects_from(
    store: &Store,
    url: &ArchiveUrl,
    first: &str,
) -> Result<WalListing, CatalogError> {
    let prefix = url.wal_prefix();
    // Timeline and log of `first`: sorts before every segment from it on.
    let start_after = format!("{prefix}{}", first.get(..16).unwrap_or(first));
    let listed = store.list_versions(&prefix, Some(&start_after)).await?;
    let damaged = catalog::wal_damage(&prefix, first, &listed.rewritten, &listed.deleted);
    Ok(WalListing {
        objects: listed.current,
        damaged,
    })
}

/// The archive's live model for `plan`.
pub async fn observe(store: &Store, url: &ArchiveUrl) -> Result<ArchiveLive, CatalogError> {
    let Catalogue {
        backups,
        incomplete,
        running,
        ..
    } = read(store, url).await?;
    let wal = match backups.last() {
        Some(newest) => wal_objects_from(store, url, &newest.start_wal).await?,
        None => WalListing::default(),
    };
    Ok(ArchiveLive {
        backups,
        incomplete,
        running,
        wal_since_newest: wal.names(url),
        wal_damaged: wal.damaged,
        // Needs a clock: the caller that has one sets it.
        newest_age_seconds: None,
        drills: DrillsLive::default(),
        observed_at_unix: None,
        copies: Vec::new(),
    })
}

/// How many reports back `drills` looks for the newest one that passed.
const DRILLS_SEARCHED: usize = 20;

/// The newest drill report, and the newest that passed (searched among the
/// newest [`DRILLS_SEARCHED`]). One listing and one small read per report read.
pub async fn drills(store: &Store, url: &ArchiveUrl) -> Result<DrillsLive, CatalogError> {
    let prefix = url.drills_prefix();
    let mut listed = store.list(&prefix, None).await?;
    listed.retain(|o| o.key.ends_with(".json"));
    listed.sort_by(|a, b| b.key.cmp(&a.key));
    let mut live = DrillsLive::default();
    // One at a time, newest first: usually the newest passed, and that is one
    // read; reading ahead would cost requests on every plan.
    for object in listed.iter().take(DRILLS_SEARCHED) {
        let Some(fetched) = store.get(&object.key).await? else {
            continue;
        };
        let report = catalog::drill_report(&object.key, &fetched.body)?;
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

/// How many journals back `failovers` looks for the newest that finished.
const FAILOVERS_SEARCHED: usize = 10;

/// The newest role-change journal, and the newest that finished
/// (`failovers/<ts>.json`, newest first; one listing and a read per journal
/// looked at).
pub async fn failovers(store: &Store, url: &ArchiveUrl) -> Result<FailoversLive, CatalogError> {
    let mut listed = store.list(&url.failovers_prefix(), None).await?;
    listed.retain(|o| o.key.ends_with(".json"));
    listed.sort_by(|a, b| b.key.cmp(&a.key));
    let mut live = FailoversLive::default();
    for object in listed.iter().take(FAILOVERS_SEARCHED) {
        let Some(fetched) = store.get(&object.key).await? else {
            continue;
        };
        let journal = catalog::journal(&object.key, &fetched.body)?;
        let done = journal.outcome == "done";
        if live.newest.is_none() {
            live.newest = Some(journal.clone());
        }
        if done {
            live.newest_done = Some(journal);
            break;
        }
    }
    Ok(live)
}

/// The watcher's and the guard's leases, when there is a lease object.
pub async fn leases(
    store: &Store,
    url: &ArchiveUrl,
    cluster: &str,
) -> Result<Option<Leases>, CatalogError> {
    let key = format!("{}{cluster}.json", url.leases_prefix());
    let Some(fetched) = store.get(&key).await? else {
        return Ok(None);
    };
    Ok(Some(catalog::leases(&key, &fetched.body)?))
}

/// The WAL files among `objects` (a listing under `url`'s `wal/`) from
/// `first` on, and every timeline history file: (name, stored at). Pure.
pub fn wal_archived(
    url: &ArchiveUrl,
    objects: &[Listed],
    first: Option<&str>,
) -> Vec<(String, i64)> {
    let mut archived: Vec<(String, i64)> = objects
        .iter()
        .map(|o| (WalListing::name_of(url, o).to_string(), o.modified_unix))
        .collect();
    if let Some(first) = first {
        archived.retain(|(name, _)| name.as_str() >= first || name.ends_with(".history"));
    }
    archived
}

/// The WAL objects from `first`'s log on (one listing), and the history
/// files of timelines 2 up to `first`'s, which sort before it (`.` before
/// `0`) and which every restore onto those timelines reads: one listing each.
pub async fn wal_objects_with_history(
    (store, url): (&Store, &ArchiveUrl),
    first: Option<&str>,
) -> Result<Vec<Listed>, CatalogError> {
    let prefix = url.wal_prefix();
    let start_after = first.map(|f| format!("{prefix}{}", f.get(..16).unwrap_or(f)));
    let timeline = first
        .and_then(|f| f.get(..8))
        .and_then(|t| u32::from_str_radix(t, 16).ok())
        .unwrap_or(1);
    let histories = (2..=timeline.min(4096)).map(|t| {
        let prefix = format!("{prefix}{t:08X}.history");
        async move { store.list(&prefix, None).await }
    });
    let (objects, histories) = tokio::join!(
        store.list(&prefix, start_after.as_deref()),
        futures_util::future::join_all(histories)
    );
    let mut objects = objects?;
    for listed in histories {
        objects.extend(listed?);
    }
    Ok(objects)
}

/// A copy's listings beside home's WAL (`home_wal`: [`wal_archived`] of
/// home's [`wal_objects_with_history`] from `first`, listed once for every
/// copy): the copy's WAL from the same segment, its complete backups and
/// its (region-loss) drill reports. One WAL listing (with the history
/// files'), one of `base/`, and the drills.
pub async fn copy_listing(
    home_wal: &[(String, i64)],
    first: Option<&str>,
    copy: (&Store, &ArchiveUrl),
) -> Result<CopyListing, CatalogError> {
    let (copy_wal, copy_folders, drills) = tokio::join!(
        wal_objects_with_history(copy, first),
        backup_folders(copy.0, copy.1),
        drills(copy.0, copy.1)
    );
    let folders = copy_folders?;
    let incomplete: Vec<&String> = incomplete(&folders).into_iter().map(|(id, _)| id).collect();
    let backups = folders
        .keys()
        .filter(|id| !incomplete.contains(id))
        .cloned()
        .collect();
    Ok(CopyListing {
        home_wal: home_wal.to_vec(),
        wal: wal_archived(copy.1, &copy_wal?, first),
        backups,
        drills: drills?,
    })
}
