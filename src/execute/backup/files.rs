//! A file-level base backup, on the database host: `pg_backup_start` in a
//! session held open, the data folder walked (PostgreSQL's own exclusions,
//! [`crate::format::datadir`]), its files read by `jobs` workers at once,
//! every page's checksum checked as it is read, each worker's files into one
//! tar object, then `pg_backup_stop` and a first object with the folders,
//! `pg_control` and the `backup_label` the server returned. The manifest is
//! written here in PostgreSQL's format, so `pg_verifybackup` checks a restore.
//!
//! Files change while they are read (the server keeps running): that is
//! what the WAL from the backup's start to its end repairs, as for
//! `pg_basebackup`. A file that grows is read to the size it had when it was
//! opened; one that shrinks is padded with zeros; one that is gone is left
//! out; a page changed after the backup started is not checked (replay
//! rewrites it). Tablespaces are walked through their links and stored under
//! `pg_tblspc/<oid>/`, where a restore keeps them in its own folder.

use super::parts::{upload_parts, PartWriter, QUEUED_PARTS};
use super::{BackupRequest, Progress, Stored};
use crate::execute::ArchiveError;
use crate::format::datadir::{self, Folder};
use crate::format::layout::bundle_object;
use crate::format::manifest::{render_manifest, ManifestFile};
use crate::format::page::{self, PAGE, PAGES_PER_SEGMENT};
use crate::providers::postgres::BackupSession;
use crate::providers::storage::Store;
use crate::spec::Compression;
use crate::state::wal::Lsn;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How much of a file is read at once (a whole number of pages).
const CHUNK: usize = 128 * PAGE;
/// Written into the first object after `pg_backup_stop`: the last file a
/// pg_basebackup stream carries, read last here too.
const CONTROL_FILE: &str = "global/pg_control";

/// A folder of the copy.
#[derive(Debug, Clone)]
struct FolderEntry {
    path: String,
    mode: u32,
    modified: i64,
}

/// A file to copy: where it is stored and where it is read.
#[derive(Debug, Clone)]
struct FileEntry {
    path: String,
    source: PathBuf,
    size: u64,
}

/// The data folder as walked.
#[derive(Debug, Default)]
struct Tree {
    folders: Vec<FolderEntry>,
    files: Vec<FileEntry>,
}

/// Everything a bundle's writer shares with the others.
struct Shared {
    /// Pages changed before this position are checked; `None`: no checksums.
    check_before: Option<Lsn>,
    progress: Arc<Progress>,
    /// Set by the first writer that fails: the others stop at their next file.
    cancelled: AtomicBool,
    compression: Compression,
}

/// Takes the backup: see the module's header. On a failure what it stored
/// is deleted (and the server ends the backup with the session).
pub async fn take(
    store: &Store,
    request: &BackupRequest,
    data_dir: &Path,
    jobs: usize,
    (folder, id): (&str, &str),
    progress: &Arc<Progress>,
) -> Result<Stored, ArchiveError> {
    let (session, start) = BackupSession::start(
        &request.role,
        &request.conninfo,
        &request.pg,
        request.facts.version_num,
        &format!("pgdr {id}"),
    )
    .await?;
    let root = data_dir.to_path_buf();
    let tree = tokio::task::spawn_blocking(move || walk(&root))
        .await
        .map_err(|e| ArchiveError::Failed(format!("walking the data folder: {e}")))??;
    let shared = Arc::new(Shared {
        check_before: request.facts.page_checksums.then_some(start),
        progress: progress.clone(),
        cancelled: AtomicBool::new(false),
        compression: request.compression,
    });
    let (control, files): (Vec<FileEntry>, Vec<FileEntry>) =
        tree.files.into_iter().partition(|f| f.path == CONTROL_FILE);
    let Some(control) = control.into_iter().next() else {
        return Err(ArchiveError::Failed(format!(
            "{} has no {CONTROL_FILE}: it is not a data folder",
            data_dir.display()
        )));
    };
    let bundles = split(files, jobs.max(1));
    let keys: Vec<String> = (0..=bundles.len())
        .map(|i| format!("{folder}{}", bundle_object(i, request.compression)))
        .collect();
    let copied = async {
        let (mut listed, mut stored_bytes) =
            copy_files(store, bundles, &keys[1..], &shared).await?;
        crate::execute::failpoint::reached("backup-files-stored").await;
        // pg_control is read before the backup ends, as pg_basebackup reads it last.
        let control_bytes =
            std::fs::read(&control.source).map_err(|e| ArchiveError::io(&control.source, e))?;
        let stopped = session.stop().await?;
        let timeline = label_timeline(&stopped.label_file).ok_or_else(|| {
            ArchiveError::Failed(format!(
                "pg_backup_stop returned a backup_label without START TIMELINE: {:?}",
                stopped.label_file
            ))
        })?;
        let first = vec![
            (
                CONTROL_FILE.to_string(),
                control_bytes,
                modified(&control.source),
            ),
            (
                "backup_label".to_string(),
                stopped.label_file.into_bytes(),
                crate::spec::time::now_unix(),
            ),
        ];
        let (files, bytes) = store_first(store, &keys[0], &shared, tree.folders, first).await?;
        listed.extend(files);
        stored_bytes += bytes;
        Ok::<_, ArchiveError>((listed, stored_bytes, timeline, stopped.lsn))
    };
    let (mut listed, stored_bytes, timeline, end) = match copied.await {
        Ok(copied) => copied,
        Err(e) => {
            remove_stored(store, &keys).await;
            return Err(e);
        }
    };
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Stored {
        objects: keys
            .iter()
            .map(|k| k.trim_start_matches(folder).to_string())
            .collect(),
        manifest: render_manifest(&listed, timeline, start, end),
        raw_bytes: listed.iter().map(|f| f.size).sum(),
        files: listed
            .into_iter()
            .map(|f| (f.path, (f.size, f.sha256)))
            .collect(),
        stored_bytes,
    })
}

/// The data files, one group per job into its object (`keys`), at once.
async fn copy_files(
    store: &Store,
    groups: Vec<Vec<FileEntry>>,
    keys: &[String],
    shared: &Arc<Shared>,
) -> Result<(Vec<ManifestFile>, u64), ArchiveError> {
    let copied =
        futures_util::future::join_all(groups.into_iter().zip(keys).map(|(files, key)| {
            let shared = shared.clone();
            store_bundle(store, key.clone(), shared.clone(), move |tar| {
                let mut listed = Vec::new();
                for file in &files {
                    if shared.cancelled.load(Ordering::Relaxed) {
                        return Err(ArchiveError::Failed(
                            "stopped: another part of the backup failed".into(),
                        ));
                    }
                    listed.extend(copy_file(tar, file, &shared)?);
                }
                Ok(listed)
            })
        }))
        .await;
    let mut listed = Vec::new();
    let mut stored_bytes = 0;
    let mut cause = None;
    for result in copied {
        match result {
            Ok((files, bytes)) => {
                listed.extend(files);
                stored_bytes += bytes;
            }
            // A corrupt page is the cause; the others stopped because of it.
            Err(e) => {
                if cause.is_none() || matches!(e, ArchiveError::Corrupt(_)) {
                    cause = Some(e);
                }
            }
        }
    }
    match cause {
        Some(e) => Err(e),
        None => Ok((listed, stored_bytes)),
    }
}

/// The first object: every folder, then `pg_control` and `backup_label`.
async fn store_first(
    store: &Store,
    key: &str,
    shared: &Arc<Shared>,
    folders: Vec<FolderEntry>,
    files: Vec<(String, Vec<u8>, i64)>,
) -> Result<(Vec<ManifestFile>, u64), ArchiveError> {
    store_bundle(store, key.to_string(), shared.clone(), move |tar| {
        for f in &folders {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(f.mode);
            header.set_mtime(f.modified.max(0) as u64);
            header.set_size(0);
            tar.append_data(&mut header, &f.path, std::io::empty())
                .map_err(|e| written(&f.path, e))?;
        }
        let mut listed = Vec::new();
        for (path, bytes, at) in &files {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o600);
            header.set_mtime((*at).max(0) as u64);
            header.set_size(bytes.len() as u64);
            tar.append_data(&mut header, path, bytes.as_slice())
                .map_err(|e| written(path, e))?;
            listed.push(ManifestFile {
                path: path.clone(),
                size: bytes.len() as u64,
                modified: *at,
                sha256: crate::spec::sha256_hex(bytes),
            });
        }
        Ok(listed)
    })
    .await
}

/// The timeline a backup started on, from its `backup_label`.
fn label_timeline(label: &str) -> Option<u32> {
    label
        .lines()
        .find_map(|l| l.strip_prefix("START TIMELINE: "))
        .and_then(|t| t.trim().parse().ok())
}

/// Deletes what this backup stored after it failed (what a delete misses,
/// the next backup's clean-up removes: the folder has no `backup.json`).
async fn remove_stored(store: &Store, keys: &[String]) {
    if let Err(e) = store.delete(keys).await {
        tracing::warn!(target: "pgdr::archive", error = %e, "could not remove a failed backup's objects");
    }
}

/// Writes one tar object: `write` fills it on a blocking thread while its
/// parts are uploaded here. Returns what `write` listed and the bytes stored;
/// on any failure the upload is aborted and the others are told to stop.
async fn store_bundle<W>(
    store: &Store,
    key: String,
    shared: Arc<Shared>,
    write: W,
) -> Result<(Vec<ManifestFile>, u64), ArchiveError>
where
    W: FnOnce(&mut tar::Builder<PartWriter>) -> Result<Vec<ManifestFile>, ArchiveError>
        + Send
        + 'static,
{
    let fail = |e: ArchiveError| {
        shared.cancelled.store(true, Ordering::Relaxed);
        e
    };
    let upload = store
        .start_upload(&key, &HashMap::new())
        .await
        .map_err(|e| fail(e.into()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED_PARTS);
    let compression = shared.compression;
    let writer = tokio::task::spawn_blocking(move || {
        let out = PartWriter::new(compression, tx).map_err(|e| written(&key, e))?;
        let mut tar = tar::Builder::new(out);
        let listed = write(&mut tar)?;
        let out = tar.into_inner().map_err(|e| written(&key, e))?;
        out.finish().map_err(|e| written(&key, e))?;
        Ok::<_, ArchiveError>(listed)
    });
    let uploaded = upload_parts(&upload, rx, &shared.progress.stored).await;
    let listed = writer
        .await
        .map_err(|e| ArchiveError::Failed(format!("a backup worker stopped: {e}")))
        .and_then(|r| r);
    match (uploaded, listed) {
        (Ok((parts, bytes)), Ok(listed)) => {
            upload.complete(parts).await.map_err(|e| fail(e.into()))?;
            Ok((listed, bytes))
        }
        // The upload's error is the cause when the writer only saw it stop.
        (Err(e), _) => {
            upload.abort().await;
            Err(fail(e.into()))
        }
        (Ok(_), Err(e)) => {
            upload.abort().await;
            Err(fail(e))
        }
    }
}

/// A write into the tar object failed: a corrupt page found while reading
/// (the reader's `InvalidData`), or the upload stopping.
fn written(what: &str, e: std::io::Error) -> ArchiveError {
    if e.kind() == ErrorKind::InvalidData {
        return ArchiveError::Corrupt(e.to_string());
    }
    ArchiveError::Failed(format!("copying {what}: {e}"))
}

/// Copies one file into the tar object; `None` when it is gone (dropped,
/// or a relation's segment truncated away: replay does the same).
fn copy_file(
    tar: &mut tar::Builder<PartWriter>,
    file: &FileEntry,
    shared: &Shared,
) -> Result<Option<ManifestFile>, ArchiveError> {
    let opened = match std::fs::File::open(&file.source) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ArchiveError::io(&file.source, e)),
    };
    let meta = opened
        .metadata()
        .map_err(|e| ArchiveError::io(&file.source, e))?;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(meta.mode() & 0o7777);
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(meta.len());
    let mut reader = PageReader {
        file: opened,
        path: &file.path,
        size: meta.len(),
        pos: 0,
        segment: shared
            .check_before
            .and_then(|_| page::checksummed_segment(&file.path)),
        check_before: shared.check_before.map_or(0, |l| l.0),
        chunk: Vec::with_capacity(CHUNK),
        at: 0,
        hasher: Sha256::new(),
        shared,
    };
    tar.append_data(&mut header, &file.path, &mut reader)
        .map_err(|e| written(&file.path, e))?;
    Ok(Some(ManifestFile {
        path: file.path.clone(),
        size: meta.len(),
        modified: meta.mtime(),
        sha256: reader
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }))
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
    hasher: Sha256,
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
            for (i, bytes) in self.chunk[..got].chunks_exact(PAGE).enumerate() {
                let page: &[u8; PAGE] = bytes.try_into().expect("a whole page");
                let offset = self.pos + (i * PAGE) as u64;
                let block = (offset / PAGE as u64) as u32 + segment * PAGES_PER_SEGMENT;
                if page::is_corrupt(page, block, self.check_before) {
                    self.recheck(page, offset, block)?;
                }
            }
        }
        self.hasher.update(&self.chunk);
        self.pos += want as u64;
        self.at = 0;
        self.shared.progress.meter.add(want as u64);
        Ok(())
    }

    /// A page that failed its checksum may have been read while the server
    /// wrote it: read it again once, as pg_basebackup does, and fail only if
    /// it still does.
    fn recheck(&self, first: &[u8; PAGE], offset: u64, block: u32) -> std::io::Result<()> {
        let mut again = [0u8; PAGE];
        let still = match self.file.read_exact_at(&mut again, offset) {
            Ok(()) => page::is_corrupt(&again, block, self.check_before),
            // Truncated meanwhile: replay takes care of it.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(e),
        };
        if !still {
            return Ok(());
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

/// Seconds since the epoch a file was last changed (0 when unknown).
fn modified(path: &Path) -> i64 {
    std::fs::metadata(path).map_or(0, |m| m.mtime())
}

/// Splits files into `jobs` groups of about equal bytes (largest first, each
/// into the lightest group), each group in path order. Pure.
fn split(mut files: Vec<FileEntry>, jobs: usize) -> Vec<Vec<FileEntry>> {
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let mut groups: Vec<(u64, Vec<FileEntry>)> = vec![(0, Vec::new()); jobs];
    for file in files {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        lightest.0 += file.size;
        lightest.1.push(file);
    }
    groups
        .into_iter()
        .map(|(_, mut files)| {
            files.sort_by(|a, b| a.path.cmp(&b.path));
            files
        })
        .collect()
}

/// Walks the data folder under PostgreSQL's exclusion rules.
fn walk(root: &Path) -> Result<Tree, ArchiveError> {
    let mut tree = Tree::default();
    walk_into(root, "", &mut tree)?;
    Ok(tree)
}

fn walk_into(dir: &Path, rel: &str, tree: &mut Tree) -> Result<(), ArchiveError> {
    let mut entries: Vec<(String, std::fs::Metadata)> = Vec::new();
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        // A folder dropped while the backup runs (a database, a temp folder).
        Err(e) if e.kind() == ErrorKind::NotFound && !rel.is_empty() => return Ok(()),
        Err(e) => return Err(ArchiveError::io(dir, e)),
    };
    for entry in listing {
        let entry = entry.map_err(|e| ArchiveError::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            tracing::warn!(target: "pgdr::archive", dir = %dir.display(), "a file name that is not UTF-8 is left out");
            continue;
        };
        match entry.metadata() {
            Ok(meta) => entries.push((name, meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io(&entry.path(), e)),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let unlogged = datadir::unlogged_relations(
        entries
            .iter()
            .filter(|(_, m)| m.is_file())
            .map(|(n, _)| n.as_str()),
    );
    for (name, meta) in entries {
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let source = dir.join(&name);
        let kind = meta.file_type();
        if kind.is_symlink() {
            let tablespace = rel == "pg_tblspc";
            if tablespace || path == "pg_wal" {
                // A tablespace's files (or WAL kept elsewhere, initdb -X):
                // copied as a folder of the data folder's own.
                let target =
                    std::fs::metadata(&source).map_err(|e| ArchiveError::io(&source, e))?;
                folder_entry(tree, &path, &target);
                if tablespace {
                    walk_into(&source, &path, tree)?;
                } else {
                    empty_folder(tree, &path, &target);
                }
            } else {
                tracing::warn!(target: "pgdr::archive", path, "a link in the data folder is left out (only tablespace links and pg_wal are followed)");
            }
        } else if kind.is_dir() {
            match datadir::folder(&path) {
                Folder::Walk => {
                    folder_entry(tree, &path, &meta);
                    walk_into(&source, &path, tree)?;
                }
                Folder::Empty => {
                    folder_entry(tree, &path, &meta);
                    empty_folder(tree, &path, &meta);
                }
                Folder::Skip => {}
            }
        } else if kind.is_file() && !datadir::file_skipped(&path, &unlogged) {
            tree.files.push(FileEntry {
                path,
                source,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

fn folder_entry(tree: &mut Tree, path: &str, meta: &std::fs::Metadata) {
    tree.folders.push(FolderEntry {
        path: path.to_string(),
        mode: meta.mode() & 0o7777,
        modified: meta.mtime(),
    });
}

/// The folders an emptied folder keeps (`pg_wal/archive_status`).
fn empty_folder(tree: &mut Tree, path: &str, meta: &std::fs::Metadata) {
    for inside in datadir::kept_inside(path) {
        folder_entry(tree, &format!("{path}/{inside}"), meta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            source: PathBuf::from(path),
            size,
        }
    }

    #[test]
    fn files_are_split_into_groups_of_about_equal_size() {
        let files = vec![
            file("a", 100),
            file("b", 60),
            file("c", 50),
            file("d", 30),
            file("e", 10),
        ];
        let groups = split(files, 2);
        let sizes: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(|f| f.size).sum())
            .collect();
        assert_eq!(sizes, vec![130, 120]);
        assert!(groups
            .iter()
            .all(|g| g.windows(2).all(|w| w[0].path < w[1].path)));
        assert_eq!(
            split(vec![file("a", 1)], 3)
                .iter()
                .filter(|g| g.is_empty())
                .count(),
            2
        );
    }

    #[test]
    fn the_timeline_is_read_from_the_label() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-07 03:00:00 UTC\nLABEL: pgdr x\nSTART TIMELINE: 3\n";
        assert_eq!(label_timeline(label), Some(3));
        assert_eq!(label_timeline("nothing"), None);
    }

    #[test]
    fn the_walk_follows_the_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["base/5", "global", "pg_wal/archive_status", "pg_replslot/s"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        for file in [
            "PG_VERSION",
            "postmaster.pid",
            "global/pg_control",
            "base/5/16384",
            "base/5/16390",
            "base/5/16390_init",
            "pg_wal/000000010000000000000001",
            "pg_replslot/s/state",
        ] {
            std::fs::write(root.join(file), b"x").unwrap();
        }
        let tree = walk(root).unwrap();
        let files: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            files,
            [
                "PG_VERSION",
                "base/5/16384",
                "base/5/16390_init",
                "global/pg_control"
            ]
        );
        let folders: Vec<&str> = tree.folders.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            folders,
            [
                "base",
                "base/5",
                "global",
                "pg_replslot",
                "pg_wal",
                "pg_wal/archive_status"
            ]
        );
    }
}
