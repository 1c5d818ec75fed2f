//! A base backup's data object written back into a folder: downloaded in
//! ranges, several at once, decompressed and untarred as the ranges arrive in
//! order, every file hashed on the way and checked against the backup's
//! manifest at the end.
//!
//! Memory is bounded by the ranges in flight and queued (about 100 MiB),
//! whatever the backup's size; nothing is staged on disk.

use super::extract;
use crate::execute::meter::Meter;
use crate::execute::ArchiveError;
use crate::format::manifest::check_manifest;
use crate::format::tar::Scanned;
use crate::format::ArchiveUrl;
use crate::providers::storage::Store;
use crate::providers::ProviderError;
use crate::state::archive::BackupEntry;
use futures_util::StreamExt;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

/// The size of one ranged read.
const RANGE: u64 = 16 << 20;
/// Ranged reads in flight at once.
const RANGES_IN_FLIGHT: usize = 4;
/// Ranges downloaded but not yet decompressed.
const QUEUED: usize = 2;

/// What was written.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// Bytes of the tar stream (the backup's size) and of the stored object.
    pub bytes: u64,
    pub stored_bytes: u64,
    /// Files checked against the manifest.
    pub files: usize,
    pub seconds: f64,
}

/// Writes `backup`'s data into `dir` (which exists and is empty) and checks
/// every file against the manifest in the stream.
pub async fn unpack(
    store: &Store,
    url: &ArchiveUrl,
    backup: &BackupEntry,
    dir: &Path,
    progress: bool,
) -> Result<Unpacked, ArchiveError> {
    let started = Instant::now();
    let key = format!("{}{}", url.backup_prefix(&backup.id), backup.data_object);
    let head = store.head(&key).await?.ok_or_else(|| {
        ArchiveError::Corrupt(format!(
            "backup {} is listed but its data object {key} is missing",
            backup.id
        ))
    })?;
    let compressed = backup.data_object.ends_with(".zst");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUED);
    let writer = {
        let dir = dir.to_path_buf();
        let total = backup.size_bytes;
        tokio::task::spawn_blocking(move || {
            let source = Chunks {
                rx: &mut rx,
                chunk: Vec::new(),
                at: 0,
            };
            write_stream(source, compressed, &dir, total, progress)
        })
    };
    let ranges =
        (0..head.size.div_ceil(RANGE)).map(|i| i * RANGE..((i + 1) * RANGE).min(head.size));
    let etag = head.etag.as_deref();
    let mut reads = futures_util::stream::iter(ranges)
        .map(|range| store.get_range(&key, range, etag))
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
    let scan = written?;
    let manifest = scan.manifest.as_deref().ok_or_else(|| {
        ArchiveError::Corrupt(format!(
            "backup {}: the stream has no backup_manifest, so its files cannot be checked",
            backup.id
        ))
    })?;
    let (_, _, end_lsn) = check_manifest(manifest, &scan.files)?;
    if end_lsn != backup.stop_lsn {
        return Err(ArchiveError::Corrupt(format!(
            "backup {}: its manifest ends at {end_lsn}, its backup.json at {}; one of them is not this backup's",
            backup.id, backup.stop_lsn
        )));
    }
    Ok(Unpacked {
        bytes: scan.bytes(),
        stored_bytes: head.size,
        files: scan.files.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
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
    total: u64,
    progress: bool,
) -> Result<Scanned, ArchiveError> {
    let failed = |e: std::io::Error| ArchiveError::Corrupt(format!("reading the backup: {e}"));
    let source: Box<dyn Read + '_> = if compressed {
        Box::new(zstd::stream::read::Decoder::new(source).map_err(failed)?)
    } else {
        Box::new(source)
    };
    let mut metered = Metered {
        inner: source,
        read: 0,
        meter: Meter::new("restore", "written", total, progress),
    };
    let scanned = extract::extract(&mut metered, dir)?;
    metered.meter.done(metered.read);
    Ok(scanned)
}

/// The decompressed stream, showing progress as it is read.
struct Metered<R> {
    inner: R,
    read: u64,
    meter: Meter,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.meter.show(self.read);
        Ok(n)
    }
}
