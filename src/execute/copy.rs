//! `pgdr copy`: fills a copy of the archive (`archive.copies`) with what home
//! holds and the copy lacks: the WAL from the oldest backup's first segment
//! on, then each complete backup. `wal-push` already stores each WAL file in
//! the copies as it archives; this catches up after a copy was unreachable,
//! and is the only way backups reach a copy.
//!
//! The archive's rules hold in the copy:
//! - nothing is overwritten: every write is `If-None-Match: *`, and a key
//!   the copy already holds with other contents is reported, never replaced;
//! - nothing untrusted is copied: each WAL file is decompressed and checked
//!   against the digest pgdr stored with it at home before it is written
//!   (a rewritten home object stays at home, named in the report);
//! - nothing looks complete before it is: a backup's `backup.json` is
//!   written only after every other object of its folder is in the copy, so
//!   a catch-up cut short leaves an incomplete folder, which the next run
//!   finishes (objects already there with the same size are kept);
//! - large objects are copied in ranges, never whole in memory.

use super::ArchiveError;
use crate::format::layout::{wal_name_of, BACKUP_JSON, META_DIGEST, PROGRESS_OBJECT};
use crate::format::{codec, ArchiveUrl};
use crate::observe::archive as catalog;
use crate::plan::recovery::copy::lag_of;
use crate::providers::storage::{Listed, PutOutcome, Store};
use crate::spec::Compression;
use crate::state::archive::BackupEntry;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};

/// Objects up to this size are copied in one request; larger ones in parts
/// of this size.
const PART: u64 = 64 << 20;

/// What one catch-up did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Copied {
    /// WAL files stored in the copy.
    pub wal: usize,
    /// Backups made complete in the copy.
    pub backups: Vec<String>,
    pub bytes: u64,
    /// Objects not copied, and why (home's rewritten, or the copy holding
    /// other contents under the key).
    pub refused: Vec<String>,
}

/// One side of the copy: the store and the archive's URL in it.
pub type Side<'a> = (&'a Store, &'a ArchiveUrl);

/// Home as read once for every copy: the backups the copies hold (oldest
/// first), every backup folder's objects, and the WAL objects from the
/// oldest of those backups on (with the timeline history files).
pub struct Home<'a> {
    pub store: &'a Store,
    pub url: &'a ArchiveUrl,
    pub backups: Vec<BackupEntry>,
    pub folders: BTreeMap<String, Vec<Listed>>,
    pub wal: Vec<Listed>,
}

impl<'a> Home<'a> {
    /// Lists home's WAL from the oldest of `backups` on; `folders` come
    /// with the catalogue already read.
    pub async fn read(
        (store, url): Side<'a>,
        backups: Vec<BackupEntry>,
        folders: BTreeMap<String, Vec<Listed>>,
    ) -> Result<Home<'a>, ArchiveError> {
        let first = backups.first().map(|b| b.start_wal.clone());
        let wal = catalog::wal_objects_with_history((store, url), first.as_deref())
            .await
            .map_err(|e| ArchiveError::Failed(e.to_string()))?;
        Ok(Home {
            store,
            url,
            backups,
            folders,
            wal,
        })
    }

    /// The first WAL segment the copies need.
    pub fn first(&self) -> Option<&str> {
        self.backups.first().map(|b| b.start_wal.as_str())
    }

    /// Home's WAL files from [`Home::first`] on, as the lag compares them.
    pub fn wal_archived(&self) -> Vec<(String, i64)> {
        catalog::wal_archived(self.url, &self.wal, self.first())
    }

    pub fn backup_ids(&self) -> Vec<String> {
        self.backups.iter().map(|b| b.id.clone()).collect()
    }
}

/// Copies into `copy` what `home` holds and it lacks. `parallel` objects at
/// once.
pub async fn catch_up(
    home: &Home<'_>,
    copy: Side<'_>,
    parallel: usize,
) -> Result<Copied, ArchiveError> {
    let listing = catalog::copy_listing(&home.wal_archived(), home.first(), copy)
        .await
        .map_err(|e| ArchiveError::Failed(e.to_string()))?;
    let lag = lag_of(&listing, &home.backup_ids());
    let mut copied = Copied::default();

    // The keys of the missing WAL files as home stores them (`.zst` or not).
    let home_wal_prefix = home.url.wal_prefix();
    let keys: HashMap<String, String> = home
        .wal
        .iter()
        .filter_map(|o| {
            let relative = o.key.strip_prefix(&home_wal_prefix)?.to_string();
            Some((wal_name_of(&relative).to_string(), relative))
        })
        .collect();
    let mut failed: Vec<&str> = Vec::new();
    let mut wal = Vec::new();
    for name in &lag.wal_missing {
        match keys.get(name) {
            Some(relative) => wal.push((name.as_str(), relative)),
            None => {
                failed.push(name);
                copied.refused.push(format!(
                    "{name}: gone from home while being copied (expired meanwhile?)"
                ));
            }
        }
    }
    let results: Vec<(&str, Result<u64, String>)> = futures_util::stream::iter(wal)
        .map(|(name, relative)| async move {
            (name, copy_wal((home.store, home.url), copy, relative).await)
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    for (name, result) in results {
        match result {
            Ok(bytes) => {
                copied.wal += 1;
                copied.bytes += bytes;
            }
            Err(why) => {
                failed.push(name);
                copied.refused.push(why);
            }
        }
    }

    for id in &lag.backups_missing {
        let Some(objects) = home.folders.get(id) else {
            copied
                .refused
                .push(format!("backup {id}: gone from home while being copied"));
            continue;
        };
        // Its WAL must be in the copy before it may look complete there.
        let entry = home.backups.iter().find(|b| &b.id == id);
        let needs = |name: &str| {
            entry.is_some_and(|b| name >= b.start_wal.as_str() && name <= b.stop_wal.as_str())
        };
        if let Some(missing) = failed.iter().find(|name| needs(name)) {
            copied.refused.push(format!(
                "backup {id}: not made complete in the copy: its WAL {missing} could not be copied"
            ));
            continue;
        }
        match copy_backup((home.store, home.url), copy, id, objects, parallel).await? {
            Ok(bytes) => {
                copied.bytes += bytes;
                copied.backups.push(id.clone());
            }
            Err(why) => copied.refused.push(why),
        }
    }
    Ok(copied)
}

/// One backup folder: its objects (`parallel` at once), then its
/// `backup.json`. `Ok(Err(why))`: left incomplete in the copy, and why.
async fn copy_backup(
    home: Side<'_>,
    copy: Side<'_>,
    id: &str,
    objects: &[Listed],
    parallel: usize,
) -> Result<Result<u64, String>, ArchiveError> {
    let mut bytes = 0;
    let home_folder = home.1.backup_prefix(id);
    let names: Vec<(String, u64)> = objects
        .iter()
        .filter_map(|o| Some((o.key.strip_prefix(&home_folder)?.to_string(), o.size)))
        .filter(|(name, _)| {
            name != BACKUP_JSON
                && name != PROGRESS_OBJECT
                && crate::state::archive::is_object_name(name)
        })
        .collect();
    let copy_folder = copy.1.backup_prefix(id);
    let pairs: Vec<(String, String, u64)> = names
        .iter()
        .map(|(name, size)| {
            (
                format!("{home_folder}{name}"),
                format!("{copy_folder}{name}"),
                *size,
            )
        })
        .collect();
    let results: Vec<Result<u64, ArchiveError>> = futures_util::stream::iter(&pairs)
        .map(|(from, to, size)| copy_object(home.0, copy.0, (from, to), *size))
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut failed = Vec::new();
    for result in results {
        match result {
            Ok(copied) => bytes += copied,
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        return Ok(Err(format!(
            "backup {id}: left incomplete in the copy: {}",
            failed.join("; ")
        )));
    }
    // Last: only now does the copy's folder say it is complete.
    let json = format!("{home_folder}{BACKUP_JSON}");
    let size = objects.iter().find(|o| o.key == json).map_or(0, |o| o.size);
    bytes += copy_object(
        home.0,
        copy.0,
        (&json, &format!("{}{BACKUP_JSON}", copy.1.backup_prefix(id))),
        size,
    )
    .await?;
    Ok(Ok(bytes))
}

/// One WAL file: read at home, checked against its stored digest, written
/// once into the copy. `Err` names what was refused.
async fn copy_wal(home: Side<'_>, copy: Side<'_>, relative: &str) -> Result<u64, String> {
    let from = format!("{}{relative}", home.1.wal_prefix());
    let to = format!("{}{relative}", copy.1.wal_prefix());
    let fail = |why: String| format!("{from}: {why}");
    let fetched = home
        .0
        .get(&from)
        .await
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("vanished at home (expired meanwhile)".into()))?;
    let compression = if relative.ends_with(".zst") {
        Compression::Zstd
    } else {
        Compression::None
    };
    let body = fetched.body;
    let raw = codec::decode(body.clone(), compression).map_err(|e| fail(e.to_string()))?;
    codec::verify(&from, &raw, &fetched.metadata).map_err(|e| format!("{e}; not copied"))?;
    let bytes = body.len() as u64;
    match copy
        .0
        .put_new(&to, body, &fetched.metadata)
        .await
        .map_err(|e| fail(e.to_string()))?
    {
        PutOutcome::Stored { .. } => Ok(bytes),
        PutOutcome::Exists => {
            let there = copy.0.head(&to).await.map_err(|e| fail(e.to_string()))?;
            let digest = there.and_then(|h| h.metadata.get(META_DIGEST).cloned());
            if digest.as_ref() == fetched.metadata.get(META_DIGEST) {
                Ok(0)
            } else {
                Err(format!(
                    "{to}: the copy holds other contents under this key; left as it is (compare the two, list-object-versions)"
                ))
            }
        }
    }
}

/// One object of a backup folder, `(from, to)`: kept when the copy already
/// holds it at the same size (a catch-up cut short), else written once, in
/// parts when large. Returns the bytes written.
async fn copy_object(
    home: &Store,
    copy: &Store,
    (from, to): (&str, &str),
    size: u64,
) -> Result<u64, ArchiveError> {
    if let Some(there) = copy.head(to).await? {
        if there.size == size {
            return Ok(0);
        }
        return Err(ArchiveError::Failed(format!(
            "{to}: the copy holds {} bytes under this key, home {size}; left as it is",
            there.size
        )));
    }
    let head = home
        .head(from)
        .await?
        .ok_or_else(|| ArchiveError::Failed(format!("{from} vanished at home")))?;
    // Read by range, as restore reads backups: a multipart object's
    // checksum is of its parts, not of the whole.
    if head.size <= PART {
        let body = match head.size {
            0 => Vec::new(),
            size => home.get_range(from, 0..size, head.etag.as_deref()).await?,
        };
        let bytes = body.len() as u64;
        return match copy.put_new(to, body, &head.metadata).await? {
            PutOutcome::Stored { .. } => Ok(bytes),
            PutOutcome::Exists => Err(ArchiveError::Failed(format!(
                "{to} appeared in the copy while it was written; left as it is"
            ))),
        };
    }
    let upload = copy.start_upload(to, &head.metadata).await?;
    let mut parts = Vec::new();
    let mut at = 0;
    while at < head.size {
        let end = (at + PART).min(head.size);
        let sent = async {
            let body = home.get_range(from, at..end, head.etag.as_deref()).await?;
            upload.send_part(parts.len() as i32 + 1, body).await
        }
        .await;
        match sent {
            Ok(part) => parts.push(part),
            Err(e) => {
                upload.abort().await;
                return Err(e.into());
            }
        }
        at = end;
    }
    upload.complete(parts).await?;
    Ok(head.size)
}
