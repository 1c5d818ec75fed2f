//! A file-level backup with maps written back into a folder, alone or as a
//! chain (a full, then the diff or incrementals down to the one asked for):
//! streamed straight into the target folder, no staging copy.
//!
//! The newest backup's maps say, for every file, which objects hold its
//! bytes (a whole copy, then block deltas). Its first object is written
//! first (folders, `pg_control`, `backup_label`); then each backup of the
//! chain, oldest first, has its data objects written at once, keeping only
//! the entries the maps name: a file is written whole once, by the backup
//! that last stored it whole, and patched by the deltas after it; copies an
//! older backup holds of a file stored again later are read past, never
//! written. At the end every file is cut to its size and checked against the
//! newest backup's manifest (its checksums): a file written in one piece is hashed
//! as it is written, one patched is read back once.
//!
//! Memory: the maps' records without their block hashes (a few hundred
//! bytes per file) plus what a single backup's restore holds.

use super::unpack::{unpack_object, Unpacked};
use crate::execute::meter::SharedMeter;
use crate::execute::ArchiveError;
use crate::format::blockmap::{FileRecord, MapReader};
use crate::format::manifest::{check_manifest, Checksum, MANIFEST_ENTRY};
use crate::format::tar::Keep;
use crate::format::ArchiveUrl;
use crate::providers::storage::reader::ObjectsReader;
use crate::providers::storage::Store;
use crate::state::archive::BackupEntry;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A file-level backup's objects written at once.
const OBJECTS_AT_ONCE: usize = 4;
/// Patched files read back at once.
const CHECKS_AT_ONCE: usize = 4;

/// Restores `chain` (full first, the backup asked for last) into `dir`.
pub async fn unpack_chain(
    store: &Store,
    url: &ArchiveUrl,
    chain: &[BackupEntry],
    dir: &Path,
    progress: bool,
) -> Result<Unpacked, ArchiveError> {
    let started = Instant::now();
    let backup = chain.last().expect("a chain has a backup");
    let folder = url.backup_prefix(&backup.id);
    let meter = Arc::new(SharedMeter::new(
        "restore",
        "written",
        backup.size_bytes,
        progress,
    ));
    let manifest_key = format!("{folder}{}", backup.manifest_object);
    let first_key = format!("{folder}{}", backup.data_object);
    let (records, manifest, first) = tokio::join!(
        read_records(store, url, backup),
        store.get(&manifest_key),
        unpack_object(store, backup, &first_key, dir, None, None, &meter)
    );
    let records = Arc::new(records?);
    let manifest = manifest?.map(|f| f.body).ok_or_else(|| {
        ArchiveError::Corrupt(format!(
            "backup {} is listed but its manifest {manifest_key} is missing",
            backup.id
        ))
    })?;
    let (scan, mut stored) = first?;
    let folders = Arc::new(scan.folders);
    let mut files = scan.files;
    for member in chain {
        let member_folder = url.backup_prefix(&member.id);
        let objects: Vec<String> = member.bundles.iter().skip(1).cloned().collect();
        let mut writes = futures_util::stream::iter(objects)
            .map(|object| {
                let key = format!("{member_folder}{object}");
                let keep = keep_for(&records, &member.id, &object);
                let folders = folders.clone();
                let meter = meter.clone();
                async move {
                    unpack_object(store, member, &key, dir, Some(folders), Some(keep), &meter).await
                }
            })
            .buffer_unordered(OBJECTS_AT_ONCE);
        while let Some(done) = writes.next().await {
            let (scan, bytes) = done?;
            stored += bytes;
            for (path, file) in scan.files {
                if files.insert(path.clone(), file).is_some() {
                    return Err(ArchiveError::Corrupt(format!(
                        "backup {}: {path} is stored whole twice",
                        member.id
                    )));
                }
            }
        }
    }
    let checked = finish_files(dir, &records, files, backup.manifest_checksum).await?;
    let target = dir.join(MANIFEST_ENTRY);
    std::fs::write(&target, &manifest).map_err(|e| ArchiveError::io(&target, e))?;
    let (_, _, end_lsn) = check_manifest(&manifest, &checked, backup.manifest_checksum)?;
    if end_lsn != backup.stop_lsn {
        return Err(ArchiveError::Corrupt(format!(
            "backup {}: its manifest ends at {end_lsn}, its backup.json at {}; one of them is not this backup's",
            backup.id, backup.stop_lsn
        )));
    }
    meter.done();
    Ok(Unpacked {
        bytes: checked.values().map(|(size, _)| size).sum(),
        stored_bytes: stored,
        files: checked.len(),
        seconds: started.elapsed().as_secs_f64(),
        delta: None,
    })
}

/// Which entries of `object` of backup `id` to write: those the records
/// name as a source of their file, whole or delta as named.
fn keep_for(records: &Arc<HashMap<String, FileRecord>>, id: &str, object: &str) -> Arc<Keep> {
    let records = records.clone();
    let (id, object) = (id.to_string(), object.to_string());
    Arc::new(move |path: &str, delta: bool| {
        records.get(path).is_some_and(|r| {
            r.sources
                .iter()
                .any(|s| s.backup == id && s.object == object && s.delta == delta)
        })
    })
}

/// Every file's record, from all of `backup`'s maps (block hashes read
/// past). Streamed: memory is the records, not the maps.
pub async fn read_records(
    store: &Store,
    url: &ArchiveUrl,
    backup: &BackupEntry,
) -> Result<HashMap<String, FileRecord>, ArchiveError> {
    let folder = url.backup_prefix(&backup.id);
    let keys: Vec<String> = backup.maps.iter().map(|m| format!("{folder}{m}")).collect();
    let store = store.clone();
    let id = backup.id.clone();
    tokio::task::spawn_blocking(move || {
        let objects = ObjectsReader::new(store, keys, tokio::runtime::Handle::current());
        let decoder = zstd::stream::read::Decoder::new(objects)
            .map_err(|e| ArchiveError::Failed(format!("reading backup {id}'s maps: {e}")))?;
        let mut reader = MapReader::new(decoder, format!("of backup {id}"));
        let mut records = HashMap::new();
        while let Some((record, _)) = reader.next_record(false)? {
            if let Some(twice) = records.insert(record.path.clone(), record) {
                return Err(ArchiveError::Corrupt(format!(
                    "backup {id}'s maps list {} twice",
                    twice.path
                )));
            }
        }
        Ok(records)
    })
    .await
    .map_err(|e| ArchiveError::Failed(format!("reading the maps: {e}")))?
}

/// Cuts every patched file to its size and hashes it; returns path →
/// (size, checksum) of every file the records name, for the manifest check.
async fn finish_files(
    dir: &Path,
    records: &Arc<HashMap<String, FileRecord>>,
    mut whole: BTreeMap<String, (u64, String)>,
    checksum: Checksum,
) -> Result<BTreeMap<String, (u64, String)>, ArchiveError> {
    let patched: Vec<(String, u64)> = records
        .values()
        .filter(|r| r.sources.len() > 1)
        .map(|r| (r.path.clone(), r.size))
        .collect();
    let mut checks = futures_util::stream::iter(patched)
        .map(|(path, size)| {
            let target = dir.join(&path);
            tokio::task::spawn_blocking(move || {
                let hashed =
                    cut_and_hash(&target, size, checksum).map_err(|e| ArchiveError::io(&target, e));
                (path, size, hashed)
            })
        })
        .buffer_unordered(CHECKS_AT_ONCE);
    while let Some(done) = checks.next().await {
        let (path, size, hashed) =
            done.map_err(|e| ArchiveError::Failed(format!("checking a restored file: {e}")))?;
        whole.insert(path, (size, hashed?));
    }
    Ok(whole)
}

/// Sets a patched file's length (it may have shrunk since its whole copy)
/// and returns its checksum.
pub fn cut_and_hash(path: &Path, size: u64, checksum: Checksum) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.set_len(size)?;
    let mut hasher = checksum.hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}
