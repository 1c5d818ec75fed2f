//! `pgdr backup`: one base backup into `<prefix>base/<id>/`, taken one of two
//! ways, with a `backup_manifest` kept beside it and a `backup.json`
//! catalogue entry written last:
//!
//! - **files** ([`files`]): where pgdr runs on the database host (it can read
//!   the data folder, as the archive_command host does), pgdr reads the files
//!   itself between `pg_backup_start` and `pg_backup_stop`, several at once,
//!   checking every page's checksum, into a few large objects, and writes the
//!   manifest in PostgreSQL's format;
//! - **stream** ([`stream`]): elsewhere, `pg_basebackup`'s tar stream (one
//!   server process reading) into one object, with the server's manifest.
//!
//! Why this shape:
//! - **Few requests.** On an object store, requests cost more than bytes:
//!   files are bundled into a few multipart objects (`data.tar.zst`, or one
//!   per job), in parts of 16 MiB and up, plus two small objects. A 100 GB
//!   database is a few thousand requests, not one per file.
//! - **Bounded memory and no scratch disk.** Files are read, hashed,
//!   compressed and cut into parts on the way; at most a handful of parts per
//!   object are held at once, whatever the database's size.
//! - **Verified end to end.** Page checksums are checked as pages are read
//!   (a corrupt page fails the backup, naming file and block); every file's
//!   checksum is in the manifest and checked again at restore, and S3 verifies
//!   every part's SHA-256 before storing it.
//! - **Usable alone, or not listed.** The WAL from the backup's start to its
//!   end must be in the archive before `backup.json` is written; a backup
//!   killed at any point has no `backup.json`, so nothing lists or restores it,
//!   and the next backup aborts its uploads and removes its objects.

pub mod copy;
pub mod files;
pub mod incremental;
pub mod parts;
pub mod stream;
pub mod walk;

use super::ArchiveError;
use crate::execute::meter::SharedMeter;
use crate::format::layout::{BACKUP_JSON, MANIFEST_OBJECT, PROGRESS_OBJECT};
use crate::format::manifest::check_manifest;
use crate::format::ArchiveUrl;
use crate::observe::archive as catalog;
use crate::providers::poll::{poll_until, Polled};
use crate::providers::postgres::BackupFacts;
use crate::providers::storage::{PutOutcome, Store, When};
use crate::settings::PgEnv;
use crate::spec::time::Timestamp;
use crate::spec::{Compression, Conninfo};
use crate::state::archive::{BackupEntry, BackupMethod, BackupProgress, BackupType, Checksum};
use crate::state::wal::{missing_segments, segment_name, Lsn};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How this backup is taken.
pub enum Method {
    /// pg_basebackup of the server's major version.
    Stream { pg_basebackup: PathBuf },
    /// The data folder read here, by `jobs` workers into `jobs` objects;
    /// with a parent, only what changed since it.
    Files {
        data_dir: PathBuf,
        jobs: usize,
        parent: Option<Arc<incremental::Parent>>,
    },
}

pub struct BackupRequest {
    pub url: ArchiveUrl,
    pub cluster: String,
    /// `primary` or `standby <name>`.
    pub source: String,
    /// The plan file's role of the source (`primary`, `standby.b`), for messages.
    pub role: String,
    pub conninfo: Conninfo,
    pub pg: PgEnv,
    pub facts: BackupFacts,
    pub method: Method,
    /// `full`, or the type of the changes a file-level method's parent takes.
    pub backup_type: BackupType,
    pub compression: Compression,
    /// How long to wait for the backup's last WAL segment to be archived.
    pub wal_timeout: Duration,
    /// Draw a progress line on stderr.
    pub progress: bool,
}

/// What a running backup has done: drawn on a terminal, and reported into
/// its folder (`progress.json`) for `status` every [`PROGRESS_EVERY`].
pub struct Progress {
    /// Bytes of the database read.
    pub meter: SharedMeter,
    /// Compressed bytes uploaded.
    pub stored: AtomicU64,
    /// A report was stored (and is removed at the end).
    reported: AtomicBool,
}

/// How often a running backup reports; a backup shorter than this writes
/// no report at all.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Stores the backup's progress every [`PROGRESS_EVERY`] until dropped:
/// created with `If-None-Match`, then replaced with `If-Match` on its own
/// ETag, so it never overwrites anything else. A report that cannot be
/// stored is logged; the backup goes on.
async fn report_progress(
    store: &Store,
    key: &str,
    mut report: BackupProgress,
    progress: &Progress,
) -> std::convert::Infallible {
    let mut etag: Option<String> = None;
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        report.updated = Timestamp(crate::spec::time::now_unix());
        report.read_bytes = progress.meter.read();
        report.stored_bytes = progress.stored.load(Ordering::Relaxed);
        let body = serde_json::to_vec_pretty(&report).expect("progress serialises");
        let when = match &etag {
            None => When::Absent,
            Some(tag) => When::Matches(tag),
        };
        match store.put_if(key, body, &HashMap::new(), when).await {
            Ok(PutOutcome::Stored { etag: Some(tag) }) => {
                etag = Some(tag);
                progress.reported.store(true, Ordering::Relaxed);
            }
            // Without an ETag (or with the object changed by someone else)
            // a next report could not be conditional: stop reporting.
            Ok(PutOutcome::Stored { etag: None }) | Ok(PutOutcome::Exists) => {
                progress.reported.store(true, Ordering::Relaxed);
                tracing::warn!(target: "pgdr::archive", key, "progress reports stopped: the report cannot be replaced safely");
                return std::future::pending().await;
            }
            Err(e) => {
                tracing::warn!(target: "pgdr::archive", key, error = %e, "a progress report was not stored");
            }
        }
    }
}

/// What a method stored: its objects in restore order, and the manifest
/// with the size and checksum of every file stored (checked against each
/// other before anything is recorded).
pub struct Stored {
    pub objects: Vec<String>,
    /// A file-level backup's maps, one per object.
    pub maps: Vec<String>,
    pub manifest: Vec<u8>,
    /// How the manifest checksums files (`files`' second field).
    pub checksum: Checksum,
    pub files: BTreeMap<String, (u64, String)>,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// Where pg_basebackup of a major version lives (Debian's layout), if installed.
pub fn pg_basebackup_for(version_num: u32) -> Option<PathBuf> {
    let path = PathBuf::from(format!(
        "/usr/lib/postgresql/{}/bin/pg_basebackup",
        version_num / 10000
    ));
    path.is_file().then_some(path)
}

/// A backup id: the UTC start time, `20261124T101500Z`.
pub fn backup_id(at: SystemTime) -> String {
    crate::spec::time::compact(unix(at))
}

fn unix(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Removes what killed backups left: open multipart uploads under `base/` and
/// the objects of folders without `backup.json`. Run with the cluster's backup
/// lock held, so no backup of this cluster is running. Returns what it removed.
pub async fn clean_leftovers(store: &Store, url: &ArchiveUrl) -> Result<Vec<String>, ArchiveError> {
    let mut removed = Vec::new();
    for (key, upload_id) in store.open_uploads(&url.base_prefix()).await? {
        store.abort_upload(&key, &upload_id).await;
        removed.push(format!("upload of {key}"));
    }
    let folders = catalog::backup_folders(store, url).await?;
    let keys: Vec<String> = catalog::incomplete(&folders)
        .into_iter()
        .flat_map(|(_, objects)| objects.iter().map(|o| o.key.clone()))
        .collect();
    if !keys.is_empty() {
        for (key, why) in store.delete(&keys).await? {
            tracing::warn!(target: "pgdr::archive", key, why, "leftover not removed");
        }
        removed.extend(keys);
    }
    Ok(removed)
}

/// What [`clean_leftovers`] removed, said once for `backup` and `expire`.
pub fn leftovers_message(removed: &[String]) -> Option<String> {
    (!removed.is_empty()).then(|| {
        format!(
            "Removed what interrupted backups left: {}.",
            removed.join(", ")
        )
    })
}

/// Takes one base backup. On any failure its uploads are aborted and no
/// `backup.json` exists.
pub async fn take(
    store: &Store,
    request: &BackupRequest,
    switch_wal: impl std::future::Future<Output = ()>,
) -> Result<BackupEntry, ArchiveError> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let id = backup_id(started);
    let folder = request.url.backup_prefix(&id);
    if !store.list(&folder, None).await?.is_empty() {
        return Err(ArchiveError::Failed(format!(
            "{folder} already exists; wait a second and run the backup again"
        )));
    }
    let progress = Arc::new(Progress {
        meter: SharedMeter::new(
            "backup",
            "read",
            request.facts.total_bytes,
            request.progress,
        ),
        stored: AtomicU64::new(0),
        reported: AtomicBool::new(false),
    });
    let method = match request.method {
        Method::Stream { .. } => BackupMethod::Stream,
        Method::Files { .. } => BackupMethod::Files,
    };
    let taking = async {
        match &request.method {
            Method::Stream { pg_basebackup } => {
                stream::take(store, request, pg_basebackup, (&folder, &id), &progress).await
            }
            Method::Files {
                data_dir,
                jobs,
                parent,
            } => {
                let parent = parent.clone();
                files::take(
                    store,
                    request,
                    data_dir,
                    *jobs,
                    parent,
                    (&folder, &id),
                    &progress,
                )
                .await
            }
        }
    };
    let progress_key = format!("{folder}{PROGRESS_OBJECT}");
    let report = BackupProgress {
        id: id.clone(),
        source: request.source.clone(),
        method,
        host: crate::providers::os_user::this_host(),
        pid: std::process::id(),
        started: Timestamp(unix(started)),
        updated: Timestamp(unix(started)),
        read_bytes: 0,
        total_bytes: request.facts.total_bytes,
        stored_bytes: 0,
    };
    let taken = tokio::select! {
        taken = taking => taken,
        never = report_progress(store, &progress_key, report, &progress) => match never {},
    };
    progress.meter.done();
    // The report goes with the run, whatever its outcome: what is left of a
    // failed one is an incomplete folder, which says so itself.
    if progress.reported.load(Ordering::Relaxed) {
        if let Err(e) = store.delete(std::slice::from_ref(&progress_key)).await {
            tracing::warn!(target: "pgdr::archive", key = progress_key, error = %e, "could not remove the backup's progress report");
        }
    }
    let mut stored = taken?;
    let (timeline, start_lsn, end_lsn) =
        check_manifest(&stored.manifest, &stored.files, stored.checksum)?;
    store
        .put_new(
            &format!("{folder}{MANIFEST_OBJECT}"),
            std::mem::take(&mut stored.manifest),
            &HashMap::new(),
        )
        .await?;

    let segment_size = request.facts.wal_segment_size;
    let start_wal = segment_name(timeline, start_lsn.segno(segment_size), segment_size);
    // The segment holding the last byte of the range (End-LSN is exclusive).
    let stop_wal = segment_name(
        timeline,
        Lsn(end_lsn.0.saturating_sub(1).max(start_lsn.0)).segno(segment_size),
        segment_size,
    );
    wait_for_wal(store, request, &start_wal, &stop_wal, switch_wal).await?;

    let entry = catalogue_entry(
        request,
        stored,
        (&id, method),
        (started, clock),
        (timeline, start_lsn, end_lsn),
        (start_wal, stop_wal),
    );
    let json = serde_json::to_vec_pretty(&entry).expect("entry serialises");
    store
        .put_new(&format!("{folder}{BACKUP_JSON}"), json, &HashMap::new())
        .await?;
    Ok(entry)
}

/// The catalogue entry of a backup that is complete: its data, manifest
/// and WAL are in the archive.
fn catalogue_entry(
    request: &BackupRequest,
    stored: Stored,
    (id, method): (&str, BackupMethod),
    (started, clock): (SystemTime, Instant),
    (timeline, start_lsn, end_lsn): (u32, Lsn, Lsn),
    (start_wal, stop_wal): (String, String),
) -> BackupEntry {
    let segment_size = request.facts.wal_segment_size;
    BackupEntry {
        format_version: 1,
        id: id.to_string(),
        cluster: request.cluster.clone(),
        source: request.source.clone(),
        start_time: Timestamp(unix(started)),
        stop_time: Timestamp(unix(SystemTime::now())),
        start_lsn,
        stop_lsn: end_lsn,
        timeline,
        start_wal,
        stop_wal,
        wal_segment_size: segment_size,
        system_identifier: request.facts.system_identifier.clone(),
        pg_version: request.facts.version_num,
        size_bytes: stored.raw_bytes,
        stored_bytes: stored.stored_bytes,
        duration_seconds: clock.elapsed().as_secs_f64(),
        compression: request.compression.as_str().to_string(),
        data_object: stored.objects[0].clone(),
        manifest_object: MANIFEST_OBJECT.to_string(),
        bundles: match method {
            BackupMethod::Files => stored.objects,
            BackupMethod::Stream => Vec::new(),
        },
        method,
        verified: true,
        backup_type: request.backup_type,
        parent: match &request.method {
            Method::Files {
                parent: Some(parent),
                ..
            } => Some(parent.entry.id.clone()),
            _ => None,
        },
        maps: stored.maps,
        manifest_checksum: stored.checksum,
    }
}

/// Waits until every segment the backup needs is archived. A backup from a
/// standby asks the primary to switch segments first, so the last one is closed.
async fn wait_for_wal(
    store: &Store,
    request: &BackupRequest,
    start: &str,
    stop: &str,
    switch_wal: impl std::future::Future<Output = ()>,
) -> Result<(), ArchiveError> {
    let segment_size = request.facts.wal_segment_size;
    let switch_wal = std::sync::Mutex::new(Some(Box::pin(switch_wal)));
    let archived = poll_until(Duration::from_millis(500), request.wal_timeout, || async {
        let archived = catalog::wal_from(store, &request.url, start).await?;
        let missing = missing_segments(&archived, start, stop, segment_size);
        if missing.is_empty() {
            return Ok::<_, ArchiveError>(Polled::Ready(()));
        }
        let switch = switch_wal.lock().unwrap().take();
        if let Some(switch) = switch {
            switch.await;
        }
        Ok(Polled::Waiting(missing))
    })
    .await?;
    archived.map_err(|missing| {
        ArchiveError::Failed(format!(
            "the WAL this backup needs ({start} to {stop}) is not all in {}: {} missing after {}s (first {}); the backup is not usable without it and was not recorded. Is archive_command `pgdr wal-push {}`, and is it succeeding (pg_stat_archiver)?",
            request.url.wal_prefix(),
            missing.len(),
            request.wal_timeout.as_secs(),
            missing[0],
            request.url,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_utc_timestamps() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_515_300);
        assert_eq!(Timestamp(unix(at)).to_string(), "2026-11-24T10:15:00Z");
        assert_eq!(backup_id(at), "20261124T101500Z");
    }
}
