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

use super::copy::{copy_file, written, Shared, MANIFEST_CHECKSUM};
use super::incremental::Parent;
use super::parts::{upload_parts, PartWriter, QUEUED_PARTS};
use super::walk::{split, walk, FileEntry, FolderEntry};
use super::{BackupRequest, Progress, Stored};
use crate::execute::ArchiveError;
use crate::format::blockmap::{write_record, FileRecord, Source};
use crate::format::layout::{bundle_object, map_object};
use crate::format::manifest::{render_manifest, ManifestFile};
use crate::providers::postgres::BackupSession;
use crate::providers::storage::Store;
use crate::spec::Compression;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Written into the first object after `pg_backup_stop`: the last file a
/// pg_basebackup stream carries, read last here too.
const CONTROL_FILE: &str = "global/pg_control";

/// A job's output: the manifest lines and map records of its files.
type Listed = Vec<ManifestFile>;

/// Takes the backup: see the module's header. On a failure what it stored
/// is deleted (and the server ends the backup with the session).
pub async fn take(
    store: &Store,
    request: &BackupRequest,
    data_dir: &Path,
    jobs: usize,
    parent: Option<Arc<Parent>>,
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
    let walked_parent = parent.clone();
    let walked_store = store.clone();
    let tree = tokio::task::spawn_blocking(move || {
        let mut tree = walk(&root)?;
        if let Some(parent) = &walked_parent {
            let reused = parent.mark_unchanged(&walked_store, &mut tree.files)?;
            tracing::info!(target: "pgdr::archive", parent = parent.entry.id, reused, files = tree.files.len(), "files not written since the parent are not read");
        }
        Ok::<_, ArchiveError>(tree)
    })
    .await
    .map_err(|e| ArchiveError::Failed(format!("walking the data folder: {e}")))??;
    let shared = Arc::new(Shared {
        check_before: request.facts.page_checksums.then_some(start.0),
        progress: progress.clone(),
        cancelled: AtomicBool::new(false),
        compression: request.compression,
        id: id.to_string(),
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
    let names: Vec<(String, String)> = (0..=bundles.len())
        .map(|i| (bundle_object(i, request.compression), map_object(i)))
        .collect();
    let keys: Vec<String> = names
        .iter()
        .flat_map(|(data, map)| [format!("{folder}{data}"), format!("{folder}{map}")])
        .collect();
    let copied = async {
        let (mut listed, mut stored_bytes) =
            copy_files(store, folder, bundles, &names[1..], parent, &shared).await?;
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
        let (files, bytes) =
            store_first(store, folder, &names[0], &shared, tree.folders, first).await?;
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
        objects: names.iter().map(|(data, _)| data.clone()).collect(),
        maps: names.into_iter().map(|(_, map)| map).collect(),
        checksum: MANIFEST_CHECKSUM,
        manifest: render_manifest(&listed, MANIFEST_CHECKSUM, timeline, start, end),
        raw_bytes: listed.iter().map(|f| f.size).sum(),
        files: listed
            .into_iter()
            .map(|f| (f.path, (f.size, f.checksum)))
            .collect(),
        stored_bytes,
    })
}

/// The data files, one run of paths per job into its object and map
/// (`names`), at once; each file reused from `parent` or copied.
async fn copy_files(
    store: &Store,
    folder: &str,
    groups: Vec<Vec<FileEntry>>,
    names: &[(String, String)],
    parent: Option<Arc<Parent>>,
    shared: &Arc<Shared>,
) -> Result<(Listed, u64), ArchiveError> {
    let copied = futures_util::future::join_all(groups.into_iter().zip(names).map(
        |(files, (object, map))| {
            let shared = shared.clone();
            let parent = parent.clone();
            let object = object.clone();
            let cursor_store = store.clone();
            store_bundle(
                store,
                folder,
                (object.clone(), map.clone()),
                shared.clone(),
                move |tar, map| {
                    let mut cursor = parent.map(|p| p.cursor(&cursor_store)).transpose()?;
                    let mut listed = Vec::new();
                    for file in &files {
                        if shared.cancelled.load(Ordering::Relaxed) {
                            return Err(ArchiveError::Failed(
                                "stopped: another part of the backup failed".into(),
                            ));
                        }
                        let before = match &mut cursor {
                            Some(cursor) => cursor.find(&file.path)?,
                            None => None,
                        };
                        match before {
                            Some((record, hashes)) if file.reuse => {
                                listed.push(ManifestFile {
                                    path: record.path.clone(),
                                    size: record.size,
                                    modified: record.mtime_ns.div_euclid(1_000_000_000),
                                    checksum: record.checksum.clone(),
                                });
                                write_record(map, &record, &hashes)
                                    .map_err(|e| written(&file.path, e))?;
                            }
                            before => {
                                if let Some(copied) =
                                    copy_file(tar, &object, file, before, &shared)?
                                {
                                    write_record(map, &copied.record, &copied.hashes)
                                        .map_err(|e| written(&file.path, e))?;
                                    listed.push(copied.manifest);
                                }
                            }
                        }
                    }
                    Ok(listed)
                },
            )
        },
    ))
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
    folder: &str,
    (object, map): &(String, String),
    shared: &Arc<Shared>,
    folders: Vec<FolderEntry>,
    files: Vec<(String, Vec<u8>, i64)>,
) -> Result<(Listed, u64), ArchiveError> {
    let id = shared.id.clone();
    let object = object.clone();
    store_bundle(
        store,
        folder,
        (object.clone(), map.clone()),
        shared.clone(),
        move |tar, map| {
            for f in &folders {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(f.mode);
                header.set_mtime(f.modified.max(0) as u64);
                header.set_size(0);
                tar.append_data(&mut header, &f.path, std::io::empty())
                    .map_err(|e| written(&f.path, e))?;
            }
            tar.get_mut().end_frame().map_err(|e| written(&object, e))?;
            let mut listed = Vec::new();
            for (path, bytes, at) in &files {
                let start = tar.get_ref().position();
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o600);
                header.set_mtime((*at).max(0) as u64);
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, path, bytes.as_slice())
                    .map_err(|e| written(path, e))?;
                tar.get_mut().end_frame().map_err(|e| written(path, e))?;
                let checksum = MANIFEST_CHECKSUM.of(bytes);
                let record = FileRecord {
                    path: path.clone(),
                    size: bytes.len() as u64,
                    ino: 0,
                    mtime_ns: at * 1_000_000_000,
                    ctime_ns: 0,
                    checksum: checksum.clone(),
                    sources: vec![Source {
                        backup: id.clone(),
                        object: object.clone(),
                        offset: start,
                        length: tar.get_ref().position() - start,
                        delta: false,
                    }],
                    blocks: 0,
                };
                write_record(map, &record, &[]).map_err(|e| written(path, e))?;
                listed.push(ManifestFile {
                    path: path.clone(),
                    size: bytes.len() as u64,
                    modified: *at,
                    checksum,
                });
            }
            Ok(listed)
        },
    )
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

/// Writes one tar object and its map: `write` fills them on a blocking
/// thread while their parts are uploaded here. Returns what `write` listed
/// and the bytes stored; on any failure the uploads are aborted and the
/// other jobs are told to stop.
async fn store_bundle<W>(
    store: &Store,
    folder: &str,
    (object, map): (String, String),
    shared: Arc<Shared>,
    write: W,
) -> Result<(Listed, u64), ArchiveError>
where
    W: FnOnce(&mut tar::Builder<PartWriter>, &mut PartWriter) -> Result<Listed, ArchiveError>
        + Send
        + 'static,
{
    let fail = |e: ArchiveError| {
        shared.cancelled.store(true, Ordering::Relaxed);
        e
    };
    let key = format!("{folder}{object}");
    let map_key = format!("{folder}{map}");
    let no_metadata = HashMap::new();
    let (upload, map_upload) = tokio::try_join!(
        store.start_upload(&key, &no_metadata),
        store.start_upload(&map_key, &no_metadata)
    )
    .map_err(|e| fail(e.into()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED_PARTS);
    let (map_tx, map_rx) = tokio::sync::mpsc::channel(QUEUED_PARTS);
    let compression = shared.compression;
    let writer = tokio::task::spawn_blocking(move || {
        let out = PartWriter::new(compression, tx).map_err(|e| written(&key, e))?;
        let mut map =
            PartWriter::new(Compression::Zstd, map_tx).map_err(|e| written(&map_key, e))?;
        let mut tar = tar::Builder::new(out);
        let listed = write(&mut tar, &mut map)?;
        let out = tar.into_inner().map_err(|e| written(&key, e))?;
        out.finish().map_err(|e| written(&key, e))?;
        map.finish().map_err(|e| written(&map_key, e))?;
        Ok::<_, ArchiveError>(listed)
    });
    let map_stored = std::sync::atomic::AtomicU64::new(0);
    let (uploaded, map_uploaded) = tokio::join!(
        upload_parts(&upload, rx, &shared.progress.stored),
        upload_parts(&map_upload, map_rx, &map_stored)
    );
    let listed = writer
        .await
        .map_err(|e| ArchiveError::Failed(format!("a backup worker stopped: {e}")))
        .and_then(|r| r);
    match (uploaded, map_uploaded, listed) {
        (Ok((parts, bytes)), Ok((map_parts, map_bytes)), Ok(listed)) => {
            upload.complete(parts).await.map_err(|e| fail(e.into()))?;
            map_upload
                .complete(map_parts)
                .await
                .map_err(|e| fail(e.into()))?;
            Ok((listed, bytes + map_bytes))
        }
        // An upload's error is the cause when the writer only saw it stop.
        (uploaded, map_uploaded, listed) => {
            upload.abort().await;
            map_upload.abort().await;
            let cause = match (uploaded, map_uploaded) {
                (Err(e), _) | (_, Err(e)) => e.into(),
                _ => listed.expect_err("one of them failed"),
            };
            Err(fail(cause))
        }
    }
}

/// Seconds since the epoch a file was last changed (0 when unknown).
fn modified(path: &Path) -> i64 {
    std::fs::metadata(path).map_or(0, |m| m.mtime())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_is_read_from_the_label() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-07 03:00:00 UTC\nLABEL: pgdr x\nSTART TIMELINE: 3\n";
        assert_eq!(label_timeline(label), Some(3));
        assert_eq!(label_timeline("nothing"), None);
    }
}
