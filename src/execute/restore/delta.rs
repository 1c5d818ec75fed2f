//! `restore --delta`: a file-level backup (alone or a chain) written over a
//! data folder that is already there (a failed old primary `pg_rewind`
//! cannot fix, a standby far behind), fetching only what differs.
//!
//! 1. The folder must be a data folder (`PG_VERSION`) that no running server
//!    holds (a `postmaster.pid` naming a live process is refused; a stale
//!    one is removed with the rest the backup lacks).
//! 2. The backup's first object is written over the folder: its folders
//!    are kept or made (a link or a file where a folder belongs is removed),
//!    `pg_control` and `backup_label` written new.
//! 3. Every file the backup's maps list is compared with the one in the
//!    folder: a relation file block by block (each block's XXH3-64 against
//!    the map's), any other by its checksum against the manifest's. Several
//!    files at once; the maps are streamed, so memory is a few files' hashes.
//! 4. Everything in the folder the backup does not have is removed (stale
//!    WAL, `postmaster.opts`, a dropped relation, signal files).
//! 5. Each file that differs is fetched alone: the byte ranges of its
//!    sources (its zstd frame in each object), whole then deltas, checked
//!    against the manifest like every restore.
//!
//! A crash at any point leaves the in-progress marker; running the same
//! `restore --delta` again compares again and finishes the job.

use super::chain::{cut_and_hash, read_records};
use super::extract;
use super::unpack::{Delta, Unpacked};
use crate::execute::ArchiveError;
use crate::format::blockmap::{block_hash, FileRecord, MapReader, BLOCK};
use crate::format::manifest::{check_manifest, Checksum, MANIFEST_ENTRY};
use crate::format::ArchiveUrl;
use crate::providers::storage::reader::ObjectsReader;
use crate::providers::storage::Store;
use crate::state::archive::BackupEntry;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Files compared, and files fetched, at once.
const AT_ONCE: usize = 4;
/// Written by the backup's first object: never compared, always written.
const FIRST_OBJECT_FILES: [&str; 2] = ["global/pg_control", "backup_label"];

/// Whether `dir` may be restored over, changing nothing: a data folder
/// (`PG_VERSION` or `global/pg_control`, or the marker of an interrupted
/// restore) that no running
/// server holds. A delta restore removes whatever the backup lacks, so a
/// folder that is not a data folder (a typo, its parent) is refused.
pub fn check_target(dir: &Path) -> Result<(), ArchiveError> {
    if !dir.is_dir() {
        return Err(ArchiveError::Usage(format!(
            "--delta restores over an existing data folder, and {} is not a folder",
            dir.display()
        )));
    }
    let marks = ["PG_VERSION", "global/pg_control", super::IN_PROGRESS];
    if !marks.iter().any(|m| dir.join(m).is_file()) {
        return Err(ArchiveError::Usage(format!(
            "{} has no PG_VERSION nor global/pg_control, so it is not a PostgreSQL data folder; a delta restore removes everything there the backup lacks, so it only restores over a data folder (for a new or empty folder, leave out --delta)",
            dir.display()
        )));
    }
    let pid_file = dir.join("postmaster.pid");
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let pid: i32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    // Signal 0: is the process there (EPERM: there, someone else's).
    let alive = pid > 0 && {
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    };
    if alive {
        return Err(ArchiveError::Usage(format!(
            "{} belongs to a running server (postmaster.pid names process {pid}); stop it before a delta restore",
            dir.display()
        )));
    }
    // A stale one is removed with everything else the backup lacks.
    Ok(())
}

/// Restores `chain` (full first) over the data folder `dir`; see the
/// module's header.
pub async fn restore_over(
    store: &Store,
    url: &ArchiveUrl,
    chain: &[BackupEntry],
    dir: &Path,
) -> Result<Unpacked, ArchiveError> {
    let started = Instant::now();
    let backup = chain.last().expect("a chain has a backup");
    if backup.maps.is_empty() {
        return Err(ArchiveError::Usage(format!(
            "backup {} has no maps ({} backup{}), so a delta restore cannot tell which files differ; restore into an empty folder instead",
            backup.id,
            backup.method.as_str(),
            if backup.method == crate::state::archive::BackupMethod::Files { " taken before maps existed" } else { "" }
        )));
    }
    let folder = url.backup_prefix(&backup.id);
    let manifest_key = format!("{folder}{}", backup.manifest_object);
    let manifest = store
        .get(&manifest_key)
        .await?
        .map(|f| f.body)
        .ok_or_else(|| {
            ArchiveError::Corrupt(format!(
                "backup {} is listed but its manifest is missing",
                backup.id
            ))
        })?;
    // 2. The first object, over what is there.
    for name in FIRST_OBJECT_FILES {
        remove_any(&dir.join(name))?;
    }
    // Read in ranges, as every data object (a multipart object's checksum
    // is per part).
    let scan = {
        let dir = dir.to_path_buf();
        let key = format!("{folder}{}", backup.data_object);
        let store = store.clone();
        let checksum = backup.manifest_checksum;
        tokio::task::spawn_blocking(move || {
            let objects =
                ObjectsReader::new(store, vec![key.clone()], tokio::runtime::Handle::current());
            let body: Box<dyn Read> = if key.ends_with(".zst") {
                Box::new(
                    zstd::stream::read::Decoder::new(objects)
                        .map_err(|e| ArchiveError::Corrupt(format!("{key}: {e}")))?,
                )
            } else {
                Box::new(objects)
            };
            Ok::<_, ArchiveError>(extract::extract_over(body, &dir, checksum)?)
        })
        .await
        .map_err(|e| ArchiveError::Failed(format!("writing the first object: {e}")))??
    };
    let folders = Arc::new(scan.folders);
    let mut checked = scan.files;
    // 3. Compare.
    let records = Arc::new(read_records(store, url, backup).await?);
    let differ = compare_all(store, url, backup, dir).await?;
    // 4. Remove what the backup does not have.
    let mut delta = Delta {
        removed: remove_extra(dir, Path::new(""), &records, &folders)?,
        ..Delta::default()
    };
    let checksum = backup.manifest_checksum;
    // 5. Fetch what differs.
    let mut fetches = futures_util::stream::iter(differ.iter().cloned())
        .map(|path| {
            let record = records.get(&path).cloned();
            let folders = folders.clone();
            let store = store.clone();
            let url = url.clone();
            let dir = dir.to_path_buf();
            async move {
                let record =
                    record.ok_or_else(|| ArchiveError::Failed(format!("{path} has no record")))?;
                tokio::task::spawn_blocking(move || {
                    fetch_file(&store, &url, &dir, &record, &folders, checksum)
                })
                .await
                .map_err(|e| ArchiveError::Failed(format!("fetching {path}: {e}")))?
            }
        })
        .buffer_unordered(AT_ONCE);
    while let Some(done) = fetches.next().await {
        let (path, size, sha) = done?;
        checked.insert(path, (size, sha));
        delta.fetched += 1;
    }
    for record in records.values() {
        if FIRST_OBJECT_FILES.contains(&record.path.as_str()) || checked.contains_key(&record.path)
        {
            continue;
        }
        delta.kept += 1;
        delta.kept_bytes += record.size;
        checked.insert(record.path.clone(), (record.size, record.checksum.clone()));
    }
    let target = dir.join(MANIFEST_ENTRY);
    std::fs::write(&target, &manifest).map_err(|e| ArchiveError::io(&target, e))?;
    check_manifest(&manifest, &checked, backup.manifest_checksum)?;
    let bytes = checked.values().map(|(size, _)| size).sum();
    Ok(Unpacked {
        bytes,
        stored_bytes: 0,
        files: checked.len(),
        seconds: started.elapsed().as_secs_f64(),
        delta: Some(delta),
    })
}

/// The files of `backup` that are missing from `dir` or differ, compared
/// several at once as the maps stream past.
async fn compare_all(
    store: &Store,
    url: &ArchiveUrl,
    backup: &BackupEntry,
    dir: &Path,
) -> Result<Vec<String>, ArchiveError> {
    let folder = url.backup_prefix(&backup.id);
    let keys: Vec<String> = backup.maps.iter().map(|m| format!("{folder}{m}")).collect();
    let store = store.clone();
    let dir = dir.to_path_buf();
    let id = backup.id.clone();
    let checksum = backup.manifest_checksum;
    tokio::task::spawn_blocking(move || {
        let objects = ObjectsReader::new(store, keys, tokio::runtime::Handle::current());
        let decoder = zstd::stream::read::Decoder::new(objects)
            .map_err(|e| ArchiveError::Failed(format!("reading backup {id}'s maps: {e}")))?;
        let mut reader = MapReader::new(decoder, format!("of backup {id}"));
        let differ = Mutex::new(Vec::new());
        let (tx, rx) = std::sync::mpsc::sync_channel::<(FileRecord, Vec<u64>)>(AT_ONCE);
        let rx = Mutex::new(rx);
        std::thread::scope(|scope| {
            for _ in 0..AT_ONCE {
                scope.spawn(|| loop {
                    let next = rx.lock().unwrap().recv();
                    let Ok((record, hashes)) = next else { return };
                    if !same(&dir.join(&record.path), &record, &hashes, checksum) {
                        differ.lock().unwrap().push(record.path);
                    }
                });
            }
            let sent = (|| {
                while let Some((record, hashes)) = reader.next_record(true)? {
                    if FIRST_OBJECT_FILES.contains(&record.path.as_str()) {
                        continue;
                    }
                    if tx.send((record, hashes)).is_err() {
                        break;
                    }
                }
                Ok::<_, ArchiveError>(())
            })();
            drop(tx);
            sent
        })?;
        Ok(differ.into_inner().unwrap())
    })
    .await
    .map_err(|e| ArchiveError::Failed(format!("comparing the folder: {e}")))?
}

/// Whether the regular file at `path` holds what `record` says (read
/// errors count as different: the file is fetched).
fn same(path: &Path, record: &FileRecord, hashes: &[u64], checksum: Checksum) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() != record.size {
        return false;
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; 128 * BLOCK];
    let mut sha = checksum.hasher();
    let mut block = 0usize;
    loop {
        let n = match read_full(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => return false,
        };
        if hashes.is_empty() {
            sha.update(&buf[..n]);
        } else {
            for piece in buf[..n].chunks(BLOCK) {
                if hashes.get(block) != Some(&block_hash(piece)) {
                    return false;
                }
                block += 1;
            }
        }
    }
    if hashes.is_empty() {
        sha.finish() == record.checksum
    } else {
        block == hashes.len()
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Removes, under `rel`, what is neither a file of the backup nor one of
/// its folders; returns how many entries went.
fn remove_extra(
    dir: &Path,
    rel: &Path,
    records: &HashMap<String, FileRecord>,
    folders: &HashSet<PathBuf>,
) -> Result<usize, ArchiveError> {
    let here = dir.join(rel);
    let mut removed = 0;
    for entry in std::fs::read_dir(&here).map_err(|e| ArchiveError::io(&here, e))? {
        let entry = entry.map_err(|e| ArchiveError::io(&here, e))?;
        let path = rel.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| ArchiveError::io(&entry.path(), e))?;
        let name = path.to_string_lossy();
        let wanted = if kind.is_dir() {
            folders.contains(&path)
        } else {
            kind.is_file()
                && (records.contains_key(name.as_ref())
                    || FIRST_OBJECT_FILES.contains(&name.as_ref())
                    || name == super::IN_PROGRESS)
        };
        if !wanted {
            remove_any(&entry.path())?;
            removed += 1;
        } else if kind.is_dir() {
            removed += remove_extra(dir, &path, records, folders)?;
        }
    }
    Ok(removed)
}

/// Removes a file, a link or a whole folder (never following a link).
fn remove_any(path: &Path) -> Result<(), ArchiveError> {
    let removed = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    removed.map_err(|e| ArchiveError::io(path, e))
}

/// Fetches one file from its sources (the range of each holding its frame),
/// whole then deltas, into `dir`; returns its path, size and checksum.
/// Blocking.
fn fetch_file(
    store: &Store,
    url: &ArchiveUrl,
    dir: &Path,
    record: &FileRecord,
    folders: &HashSet<PathBuf>,
    checksum: Checksum,
) -> Result<(String, u64, String), ArchiveError> {
    let target = dir.join(&record.path);
    remove_any(&target)?;
    let wanted = record.path.clone();
    let keep = move |path: &str, _: bool| path == wanted;
    let mut whole = None;
    for source in &record.sources {
        let key = format!("{}{}", url.backup_prefix(&source.backup), source.object);
        let range = source.offset..source.offset + source.length;
        let bytes = ObjectsReader::range(
            store.clone(),
            key.clone(),
            range,
            tokio::runtime::Handle::current(),
        );
        let reader: Box<dyn Read> = if source.object.ends_with(".zst") {
            Box::new(
                zstd::stream::read::Decoder::new(bytes)
                    .map_err(|e| ArchiveError::Corrupt(format!("{key}: {e}")))?,
            )
        } else {
            Box::new(bytes)
        };
        let scan = extract::extract_files(reader, dir, folders, Some(&keep), checksum)?;
        if !source.delta {
            whole = scan.files.get(&record.path).cloned();
            if whole.is_none() {
                return Err(ArchiveError::Corrupt(format!(
                    "{key} at {} does not hold {} as its map says",
                    source.offset, record.path
                )));
            }
        }
    }
    let (size, sha) = match (whole, record.sources.len()) {
        (Some(found), 1) => found,
        _ => {
            let sha = cut_and_hash(&target, record.size, checksum)
                .map_err(|e| ArchiveError::io(&target, e))?;
            (record.size, sha)
        }
    };
    Ok((record.path.clone(), size, sha))
}
