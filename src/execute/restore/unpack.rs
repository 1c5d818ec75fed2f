//! A base backup's data object written back into a folder: downloaded in
//! ranges, several at once, decompressed and untarred as the ranges arrive in
//! order, every file hashed on the way and checked against the backup's
//! manifest at the end.
//!
//! Memory is bounded by the ranges in flight and queued (about 100 MiB per
//! object, four objects at once), whatever the backup's size; nothing is
//! staged on disk.

use super::extract;
use crate::execute::meter::SharedMeter;
use crate::execute::ArchiveError;
use crate::format::manifest::{check_manifest, Checksum, MANIFEST_ENTRY};
use crate::format::tar::{Keep, Scanned};
use crate::format::ArchiveUrl;
use crate::providers::storage::Store;
use crate::providers::ProviderError;
use crate::state::archive::{BackupEntry, BackupMethod};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The size of one ranged read.
const RANGE: u64 = 16 << 20;
/// Ranged reads in flight at once.
const RANGES_IN_FLIGHT: usize = 4;
/// Ranges downloaded but not yet decompressed.
const QUEUED: usize = 2;
/// A file-level backup's objects written at once.
const OBJECTS_AT_ONCE: usize = 4;

/// What was written.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// Bytes of the tar stream (the backup's size) and of the stored object.
    pub bytes: u64,
    pub stored_bytes: u64,
    /// Files checked against the manifest.
    pub files: usize,
    pub seconds: f64,
    /// A delta restore's: what was kept, fetched and removed.
    pub delta: Option<Delta>,
}

/// What a delta restore did, beside what any restore reports.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// Files already as the backup has them.
    pub kept: usize,
    pub kept_bytes: u64,
    /// Files fetched (missing or different).
    pub fetched: usize,
    /// Files and folders removed (not in the backup).
    pub removed: usize,
}

/// Writes `backup`'s data into `dir` (which exists and is empty) and checks
/// every file against the manifest: a stream's own last file, or a
/// file-level backup's manifest object (also written into `dir`, so
/// `pg_verifybackup` can check the folder). A file-level backup's first
/// object (its folders) is written first, then the others at once.
pub async fn unpack(
    store: &Store,
    url: &ArchiveUrl,
    backup: &BackupEntry,
    dir: &Path,
    progress: bool,
) -> Result<Unpacked, ArchiveError> {
    let started = Instant::now();
    let folder = url.backup_prefix(&backup.id);
    let meter = Arc::new(SharedMeter::new(
        "restore",
        "written",
        backup.size_bytes,
        progress,
    ));
    let (manifest, files, stored_bytes) = match backup.method {
        BackupMethod::Stream => {
            let key = format!("{folder}{}", backup.data_object);
            let (scan, stored) =
                unpack_object(store, backup, &key, dir, None, None, &meter).await?;
            let manifest = scan.manifest.ok_or_else(|| {
                ArchiveError::Corrupt(format!(
                    "backup {}: the stream has no backup_manifest, so its files cannot be checked",
                    backup.id
                ))
            })?;
            (manifest, scan.files, stored)
        }
        BackupMethod::Files => {
            let (first, rest) = backup.bundles.split_first().ok_or_else(|| {
                ArchiveError::Corrupt(format!(
                    "backup {}: a file-level backup with no objects",
                    backup.id
                ))
            })?;
            // The manifest is read while the first object is written.
            let manifest_key = format!("{folder}{}", backup.manifest_object);
            let first_key = format!("{folder}{first}");
            let (manifest, first) = tokio::join!(
                store.get(&manifest_key),
                unpack_object(store, backup, &first_key, dir, None, None, &meter)
            );
            let manifest = manifest?.map(|f| f.body).ok_or_else(|| {
                ArchiveError::Corrupt(format!(
                    "backup {} is listed but its manifest {manifest_key} is missing",
                    backup.id
                ))
            })?;
            let (scan, mut stored) = first?;
            let folders = Arc::new(scan.folders);
            let mut files = scan.files;
            // Owned keys: a closure over borrowed names is not `Send` for
            // every lifetime the drill's async steps need.
            let keys: Vec<String> = rest.iter().map(|name| format!("{folder}{name}")).collect();
            let mut others = futures_util::stream::iter(keys)
                .map(|key| {
                    let folders = folders.clone();
                    let meter = meter.clone();
                    async move {
                        unpack_object(store, backup, &key, dir, Some(folders), None, &meter).await
                    }
                })
                .buffer_unordered(OBJECTS_AT_ONCE);
            while let Some(done) = others.next().await {
                let (scan, bytes) = done?;
                stored += bytes;
                for (path, file) in scan.files {
                    if files.insert(path.clone(), file).is_some() {
                        return Err(ArchiveError::Corrupt(format!(
                            "backup {}: {path} is in two of its objects",
                            backup.id
                        )));
                    }
                }
            }
            let target = dir.join(MANIFEST_ENTRY);
            std::fs::write(&target, &manifest).map_err(|e| ArchiveError::io(&target, e))?;
            (manifest, files, stored)
        }
    };
    let (_, _, end_lsn) = check_manifest(&manifest, &files, backup.manifest_checksum)?;
    if end_lsn != backup.stop_lsn {
        return Err(ArchiveError::Corrupt(format!(
            "backup {}: its manifest ends at {end_lsn}, its backup.json at {}; one of them is not this backup's",
            backup.id, backup.stop_lsn
        )));
    }
    meter.done();
    Ok(Unpacked {
        bytes: files.values().map(|(size, _)| size).sum(),
        stored_bytes,
        files: files.len(),
        seconds: started.elapsed().as_secs_f64(),
        delta: None,
    })
}

/// Downloads one object in ranges, several at once, and writes it into
/// `dir` as they arrive in order: everything it holds, or (with `folders`)
/// only files, into those folders, and (with `keep`) only the entries it
/// keeps. Returns the scan and the object's size.
pub async fn unpack_object(
    store: &Store,
    backup: &BackupEntry,
    key: &str,
    dir: &Path,
    folders: Option<Arc<HashSet<PathBuf>>>,
    keep: Option<Arc<Keep>>,
    meter: &Arc<SharedMeter>,
) -> Result<(Scanned, u64), ArchiveError> {
    let head = store.head(key).await?.ok_or_else(|| {
        ArchiveError::Corrupt(format!(
            "backup {} is listed but its data object {key} is missing",
            backup.id
        ))
    })?;
    let compressed = key.ends_with(".zst");
    let checksum = backup.manifest_checksum;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUED);
    let writer = {
        let dir = dir.to_path_buf();
        let meter = meter.clone();
        tokio::task::spawn_blocking(move || {
            let source = Chunks {
                rx: &mut rx,
                chunk: Vec::new(),
                at: 0,
            };
            write_stream(
                source,
                compressed,
                &dir,
                folders.as_deref(),
                keep.as_deref(),
                checksum,
                &meter,
            )
        })
    };
    let ranges =
        (0..head.size.div_ceil(RANGE)).map(|i| i * RANGE..((i + 1) * RANGE).min(head.size));
    let etag = head.etag.as_deref();
    let mut reads = futures_util::stream::iter(ranges)
        .map(|range| store.get_range(key, range, etag))
        .buffered(RANGES_IN_FLIGHT);
    let mut download_error: Option<ProviderError> = None;
    while let Some(read) = reads.next().await {
        match read {
            Ok(chunk) => {
                // The writer stopped (its error is reported below).
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                download_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    drop(reads);
    let written = writer
        .await
        .map_err(|e| ArchiveError::Failed(format!("restoring {}: {e}", backup.id)))?;
    if let Some(e) = download_error {
        return Err(e.into());
    }
    Ok((written?, head.size))
}

/// The downloaded ranges, in order, as one byte stream.
struct Chunks<'a> {
    rx: &'a mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The blocking half: decompress, untar into `dir`, hash.
fn write_stream(
    source: Chunks<'_>,
    compressed: bool,
    dir: &Path,
    folders: Option<&HashSet<PathBuf>>,
    keep: Option<&Keep>,
    checksum: Checksum,
    meter: &SharedMeter,
) -> Result<Scanned, ArchiveError> {
    let failed = |e: std::io::Error| ArchiveError::Corrupt(format!("reading the backup: {e}"));
    let source: Box<dyn Read + '_> = if compressed {
        Box::new(zstd::stream::read::Decoder::new(source).map_err(failed)?)
    } else {
        Box::new(source)
    };
    let mut metered = Metered {
        inner: source,
        meter,
    };
    let scanned = match folders {
        Some(folders) => extract::extract_files(&mut metered, dir, folders, keep, checksum)?,
        None => extract::extract(&mut metered, dir, checksum)?,
    };
    Ok(scanned)
}

/// The decompressed stream, counted into the progress line as it is read.
struct Metered<'a, R> {
    inner: R,
    meter: &'a SharedMeter,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}
