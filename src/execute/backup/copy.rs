//! One file of a file-level backup into its job's tar object, and its map
//! record: read in chunks of whole pages, every page's checksum checked,
//! the file checksummed (CRC-32C, for the manifest) and each block of a relation
//! file hashed (for the next incremental). A file the parent had is stored
//! as its changed blocks only (a delta entry per chunk that changed);
//! otherwise whole. Each file is one zstd frame of the object, so a restore
//! can fetch it alone.
//! The delta entry's form is [`crate::format::blockmap::DELTA_KEY`]'s.

use super::parts::PartWriter;
use super::walk::FileEntry;
use super::Progress;
use crate::execute::ArchiveError;
use crate::format::blockmap::{block_hash, FileRecord, Source, DELTA_BLOCKS, DELTA_KEY};
use crate::format::manifest::{Checksum, FileHasher, ManifestFile};
use crate::format::page::{self, PAGE, PAGES_PER_SEGMENT};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The manifest checksums of a file-level backup (see `format::manifest`).
pub const MANIFEST_CHECKSUM: Checksum = Checksum::Crc32c;

/// How much of a file is read at once: a whole number of pages, and the
/// stretch one delta entry covers.
pub const CHUNK: usize = DELTA_BLOCKS * PAGE;

/// What every job of one backup shares.
pub struct Shared {
    /// Pages changed before this position are checked; `None`: no checksums.
    pub check_before: Option<u64>,
    pub progress: Arc<Progress>,
    /// Set by the first job that fails: the others stop at their next file.
    pub cancelled: AtomicBool,
    pub compression: crate::spec::Compression,
    /// This backup's id, for the sources it records.
    pub id: String,
}

/// A file as stored: its manifest line, its map record and block hashes.
pub struct Copied {
    pub manifest: ManifestFile,
    pub record: FileRecord,
    pub hashes: Vec<u64>,
}

/// Copies `file` into `tar` (object `object`): whole, or its blocks that
/// differ from `parent`'s record of it. `None` when the file is gone
/// (dropped, or a relation's segment truncated away: replay does the same).
pub fn copy_file(
    tar: &mut tar::Builder<PartWriter>,
    object: &str,
    file: &FileEntry,
    parent: Option<(FileRecord, Vec<u64>)>,
    shared: &Shared,
) -> Result<Option<Copied>, ArchiveError> {
    let opened = match std::fs::File::open(&file.source) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ArchiveError::io(&file.source, e)),
    };
    let meta = opened
        .metadata()
        .map_err(|e| ArchiveError::io(&file.source, e))?;
    let segment = page::checksummed_segment(&file.path);
    let mut reader = PageReader {
        file: opened,
        path: &file.path,
        size: meta.len(),
        pos: 0,
        segment: shared.check_before.and(segment),
        check_before: shared.check_before.unwrap_or(0),
        chunk: Vec::with_capacity(CHUNK),
        at: 0,
        hasher: MANIFEST_CHECKSUM.hasher(),
        hashes: segment.map(|_| Vec::new()),
        shared,
    };
    let start = tar.get_ref().position();
    let parent = parent.filter(|(record, hashes)| {
        segment.is_some() && record.blocks as usize == hashes.len() && !hashes.is_empty()
    });
    match &parent {
        Some((_, before)) => write_delta(tar, &mut reader, before)?,
        None => {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(meta.mode() & 0o7777);
            header.set_mtime(meta.mtime().max(0) as u64);
            header.set_size(meta.len());
            tar.append_data(&mut header, &file.path, &mut reader)
                .map_err(|e| written(&file.path, e))?;
        }
    }
    tar.get_mut()
        .end_frame()
        .map_err(|e| written(&file.path, e))?;
    let end = tar.get_ref().position();
    let this = Source {
        backup: shared.id.clone(),
        object: object.to_string(),
        offset: start,
        length: end - start,
        delta: parent.is_some(),
    };
    let sources = match parent {
        // Nothing changed: the bytes are where they were.
        Some((record, _)) if end == start => record.sources,
        Some((record, _)) => record.sources.into_iter().chain([this]).collect(),
        None => vec![this],
    };
    let checksum = reader.hasher.clone().finish();
    let hashes = reader.hashes.take().unwrap_or_default();
    Ok(Some(Copied {
        manifest: ManifestFile {
            path: file.path.clone(),
            size: meta.len(),
            modified: meta.mtime(),
            checksum: checksum.clone(),
        },
        record: FileRecord {
            path: file.path.clone(),
            size: meta.len(),
            ino: meta.ino(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            checksum,
            sources,
            blocks: hashes.len() as u32,
        },
        hashes,
    }))
}

/// Reads the whole file and writes a delta entry for each chunk with a
/// block whose hash is not the parent's (or that the parent did not have).
fn write_delta(
    tar: &mut tar::Builder<PartWriter>,
    reader: &mut PageReader<'_>,
    before: &[u64],
) -> Result<(), ArchiveError> {
    while reader.pos < reader.size {
        let offset = reader.pos;
        reader.refill().map_err(|e| written(reader.path, e))?;
        let first = (offset / PAGE as u64) as usize;
        let hashes = reader.hashes.as_deref().unwrap_or_default();
        let mut bitmap = 0u128;
        let mut payload = Vec::new();
        for (i, block) in reader.chunk.chunks(PAGE).enumerate() {
            let n = first + i;
            if before.get(n) != hashes.get(n) {
                bitmap |= 1 << i;
                payload.extend_from_slice(block);
            }
        }
        if bitmap == 0 {
            continue;
        }
        let mut entry = Vec::with_capacity(24 + payload.len());
        entry.extend_from_slice(&reader.size.to_le_bytes());
        entry.extend_from_slice(&bitmap.to_le_bytes());
        entry.extend_from_slice(&payload);
        let at = offset.to_string();
        tar.append_pax_extensions([(DELTA_KEY, at.as_bytes())])
            .map_err(|e| written(reader.path, e))?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_size(entry.len() as u64);
        tar.append_data(&mut header, reader.path, entry.as_slice())
            .map_err(|e| written(reader.path, e))?;
    }
    reader.at = reader.chunk.len();
    Ok(())
}

/// A write into the tar object failed: a corrupt page found while reading
/// (the reader's `InvalidData`), or the upload stopping.
pub fn written(what: &str, e: std::io::Error) -> ArchiveError {
    if e.kind() == ErrorKind::InvalidData {
        return ArchiveError::Corrupt(e.to_string());
    }
    ArchiveError::Failed(format!("copying {what}: {e}"))
}

/// A file as the tar writer reads it: exactly `size` bytes (padded with
/// zeros if it shrank), hashed, each whole page's checksum checked.
struct PageReader<'a> {
    file: std::fs::File,
    path: &'a str,
    size: u64,
    pos: u64,
    /// The relation segment number, when pages are checked.
    segment: Option<u32>,
    check_before: u64,
    chunk: Vec<u8>,
    at: usize,
    hasher: FileHasher,
    /// Each block's hash, for a relation file.
    hashes: Option<Vec<u64>>,
    shared: &'a Shared,
}

impl PageReader<'_> {
    /// Reads the next chunk, checks its pages and hashes it.
    fn refill(&mut self) -> std::io::Result<()> {
        let want = (self.size - self.pos).min(CHUNK as u64) as usize;
        self.chunk.clear();
        self.chunk.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.file.read(&mut self.chunk[got..]) {
                Ok(0) => break, // shrank: the rest stays zeros
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(segment) = self.segment {
            let mut reread = Vec::new();
            for (i, bytes) in self.chunk[..got].chunks_exact(PAGE).enumerate() {
                let page: &[u8; PAGE] = bytes.try_into().expect("a whole page");
                let offset = self.pos + (i * PAGE) as u64;
                let block = (offset / PAGE as u64) as u32 + segment * PAGES_PER_SEGMENT;
                if page::is_corrupt(page, block, self.check_before) {
                    reread.push((i, self.recheck(page, offset, block)?));
                }
            }
            // The backup keeps the good second read, not the torn first one:
            // a torn page with an old header would fail a check of the
            // restored folder before replay rewrites it (the drill's
            // page-checksums).
            for (i, page) in reread {
                self.chunk[i * PAGE..(i + 1) * PAGE].copy_from_slice(&page);
            }
        }
        if let Some(hashes) = &mut self.hashes {
            hashes.extend(self.chunk.chunks(PAGE).map(block_hash));
        }
        self.hasher.update(&self.chunk);
        self.pos += want as u64;
        self.at = 0;
        self.shared.progress.meter.add(want as u64);
        Ok(())
    }

    /// A page that failed its checksum may have been read while the server
    /// wrote it: read it again once, as pg_basebackup does, and fail only if
    /// it still does. Returns the page to keep: the second read, or (the file
    /// truncated meanwhile, which replay repeats) a new, all-zero page.
    fn recheck(&self, first: &[u8; PAGE], offset: u64, block: u32) -> std::io::Result<[u8; PAGE]> {
        let mut again = [0u8; PAGE];
        let still = match self.file.read_exact_at(&mut again, offset) {
            Ok(()) => page::is_corrupt(&again, block, self.check_before),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                again = [0u8; PAGE];
                false
            }
            Err(e) => return Err(e),
        };
        if !still {
            return Ok(again);
        }
        let header = page::header(first);
        Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "checksum verification failed in file \"{}\", block {}: calculated {:04X} but expected {:04X}; the backup was stopped and not recorded (a damaged page is copied into no backup: find it with pg_amcheck, restore the relation or the cluster from an earlier backup)",
                self.path,
                offset / PAGE as u64,
                page::checksum(&again, block),
                header.checksum
            ),
        ))
    }
}

impl Read for PageReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.chunk.len() {
            if self.pos == self.size {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
