//! `pgdr backup`: a base backup streamed from `pg_basebackup` (of the server's
//! major version) into one compressed object, with the server's manifest kept
//! beside it and a `backup.json` catalogue entry written last.
//!
//! Why this shape:
//! - **Few requests.** On an object store, requests cost more than bytes: the
//!   whole backup is one tar stream in one multipart object (`data.tar.zst`),
//!   in parts of 16 MiB and up, plus two small objects. A 100 GB database is
//!   a few thousand requests, not one per file.
//! - **Bounded memory and no scratch disk.** The stream is read, hashed,
//!   compressed and cut into parts on the way; at most a handful of parts are
//!   held at once, whatever the database's size.
//! - **Verified end to end.** The server checks page checksums while it reads
//!   (a corrupt page fails the backup); pgdr hashes every file of the stream and
//!   compares it with the server's manifest (SHA-256), and S3 verifies every
//!   part's SHA-256 before storing it.
//! - **Usable alone, or not listed.** The WAL from the backup's start to its
//!   end must be in the archive before `backup.json` is written; a backup
//!   killed at any point has no `backup.json`, so nothing lists or restores it,
//!   and the next backup aborts its upload and removes its objects.

use super::meter::Meter;
use super::ArchiveError;
use crate::format::codec::ZSTD_LEVEL;
use crate::format::layout::{BACKUP_JSON, DATA_OBJECT, DATA_OBJECT_PLAIN, MANIFEST_OBJECT};
use crate::format::manifest::check_manifest;
use crate::format::tar::{self, Scanned};
use crate::format::ArchiveUrl;
use crate::observe::archive as catalog;
use crate::providers::poll::{poll_until, Polled};
use crate::providers::postgres::BackupFacts;
use crate::providers::storage::{Part, Store, Upload};
use crate::spec::time::Timestamp;
use crate::spec::{Compression, Conninfo};
use crate::state::archive::BackupEntry;
use crate::state::wal::{missing_segments, segment_name, Lsn};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The first part size; parts grow as the backup does, so that S3's limit of
/// 10,000 parts allows backups of several terabytes.
const FIRST_PART: usize = 16 << 20;
/// Parts uploaded at once.
const UPLOADS_IN_FLIGHT: usize = 3;

pub struct BackupRequest {
    pub url: ArchiveUrl,
    pub cluster: String,
    /// `primary` or `standby <name>`.
    pub source: String,
    pub conninfo: Conninfo,
    pub facts: BackupFacts,
    /// pg_basebackup of the server's major version.
    pub pg_basebackup: PathBuf,
    pub compression: Compression,
    /// How long to wait for the backup's last WAL segment to be archived.
    pub wal_timeout: Duration,
    /// Draw a progress line on stderr.
    pub progress: bool,
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

/// Takes one base backup. On any failure the upload is aborted and no
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
    let data_name = match request.compression {
        Compression::Zstd => DATA_OBJECT,
        Compression::None => DATA_OBJECT_PLAIN,
    };
    let upload = store
        .start_upload(&format!("{folder}{data_name}"), &HashMap::new())
        .await?;
    let streamed = match stream(request, &upload, &id).await {
        Ok(streamed) => streamed,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    upload.complete(streamed.parts).await?;

    let manifest = streamed
        .scan
        .manifest
        .clone()
        .ok_or_else(|| ArchiveError::Failed("pg_basebackup sent no backup_manifest".into()))?;
    let (timeline, start_lsn, end_lsn) = check_manifest(&manifest, &streamed.scan.files)?;
    store
        .put_new(
            &format!("{folder}{MANIFEST_OBJECT}"),
            manifest,
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

    let entry = BackupEntry {
        format_version: 1,
        id: id.clone(),
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
        size_bytes: streamed.raw_bytes,
        stored_bytes: streamed.stored_bytes,
        duration_seconds: clock.elapsed().as_secs_f64(),
        compression: request.compression.as_str().to_string(),
        data_object: data_name.to_string(),
        manifest_object: MANIFEST_OBJECT.to_string(),
        verified: true,
    };
    let json = serde_json::to_vec_pretty(&entry).expect("entry serialises");
    store
        .put_new(&format!("{folder}{BACKUP_JSON}"), json, &HashMap::new())
        .await?;
    Ok(entry)
}

struct Streamed {
    parts: Vec<Part>,
    scan: Scanned,
    raw_bytes: u64,
    stored_bytes: u64,
}

/// Runs pg_basebackup and uploads its compressed tar stream as parts.
async fn stream(
    request: &BackupRequest,
    upload: &Upload,
    id: &str,
) -> Result<Streamed, ArchiveError> {
    let mut child = Command::new(&request.pg_basebackup)
        .arg("--dbname")
        .arg(request.conninfo.to_libpq())
        .args(["--pgdata=-", "--format=tar", "--wal-method=none"])
        .args(["--checkpoint=fast", "--manifest-checksums=SHA256"])
        .arg(format!("--label=pgdr {id}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ArchiveError::io(&request.pg_basebackup, e))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let child = std::sync::Arc::new(std::sync::Mutex::new(child));
    // With archiving broken, the server waits for the backup's last segment
    // forever, saying so every minute: stop there instead of hanging.
    let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stderr_text = {
        let child = child.clone();
        let stalled = stalled.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
            for line in lines.map_while(Result::ok) {
                if line.contains("still waiting for all required WAL segments to be archived") {
                    stalled.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = child.lock().expect("child lock").kill();
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        })
    };

    let (parts_tx, mut parts_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let compression = request.compression;
    let total = request.facts.total_bytes;
    let progress = request.progress;
    let reader = tokio::task::spawn_blocking(move || {
        read_and_compress(stdout, compression, parts_tx, total, progress)
    });

    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut parts = Vec::new();
    let mut number = 0;
    let mut stored_bytes = 0u64;
    let mut upload_error = None;
    use futures_util::StreamExt;
    loop {
        tokio::select! {
            part = parts_rx.recv(), if in_flight.len() < UPLOADS_IN_FLIGHT && upload_error.is_none() => {
                let Some(part) = part else { break };
                number += 1;
                stored_bytes += part.len() as u64;
                in_flight.push(upload.send_part(number, part));
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => match done {
                Ok(part) => parts.push(part),
                Err(e) => {
                    upload_error = Some(e);
                    break;
                }
            },
        }
    }
    if upload_error.is_none() {
        while let Some(done) = in_flight.next().await {
            match done {
                Ok(part) => parts.push(part),
                Err(e) => {
                    upload_error = Some(e);
                    break;
                }
            }
        }
    }
    if let Some(e) = upload_error {
        let _ = child.lock().expect("child lock").kill();
        drop(parts_rx);
        let _ = reader.await;
        let _ = child.lock().expect("child lock").wait();
        return Err(e.into());
    }
    let read = reader
        .await
        .map_err(|e| ArchiveError::Failed(format!("reading the backup stream: {e}")))?;
    let status = child
        .lock()
        .expect("child lock")
        .wait()
        .map_err(|e| ArchiveError::io(&request.pg_basebackup, e))?;
    let stderr = stderr_text.join().unwrap_or_default();
    if stalled.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ArchiveError::Failed(format!(
            "PostgreSQL has waited over a minute for this backup's WAL to be archived, so archiving is failing; the backup was stopped and not recorded. Check pg_stat_archiver and the server log (archive_command should be `pgdr wal-push {} %p`)",
            request.url
        )));
    }
    if !status.success() {
        return Err(ArchiveError::Failed(format!(
            "pg_basebackup failed ({status}): {}",
            stderr.trim().replace('\n', " | ")
        )));
    }
    let (scan, raw_bytes) = read?;
    Ok(Streamed {
        parts,
        scan,
        raw_bytes,
        stored_bytes,
    })
}

/// The blocking half: read the tar stream, hash its files, compress, and hand
/// full parts to the uploader. Returns the scan and the tar's size.
fn read_and_compress(
    stdout: impl Read,
    compression: Compression,
    parts: tokio::sync::mpsc::Sender<Vec<u8>>,
    total: u64,
    progress: bool,
) -> Result<(Scanned, u64), ArchiveError> {
    let failed =
        |e: std::io::Error| ArchiveError::Failed(format!("reading the backup stream: {e}"));
    let mut tee = Tee {
        stdout,
        encoder: match compression {
            Compression::Zstd => {
                Some(zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).map_err(failed)?)
            }
            Compression::None => None,
        },
        plain: Vec::new(),
        parts,
        raw: 0,
        sent_parts: 0,
        meter: Meter::new("backup", "read", total, progress),
        stopped: false,
    };
    let scanned = tar::scan(&mut tee);
    // What follows the end-of-archive marker is part of the stream too.
    let drained = std::io::copy(&mut tee, &mut std::io::sink());
    if tee.stopped {
        return Err(ArchiveError::Failed("the upload stopped".into()));
    }
    let scanned = scanned?;
    drained.map_err(failed)?;
    let rest = match tee.encoder {
        Some(encoder) => encoder.finish().map_err(failed)?,
        None => tee.plain,
    };
    if (!rest.is_empty() || tee.sent_parts == 0) && tee.parts.blocking_send(rest).is_err() {
        return Err(ArchiveError::Failed("the upload stopped".into()));
    }
    tee.meter.done(tee.raw);
    Ok((scanned, tee.raw))
}

/// pg_basebackup's stdout as the tar reader reads it: every byte read is
/// also compressed and cut into parts for the uploader.
struct Tee<R> {
    stdout: R,
    encoder: Option<zstd::stream::write::Encoder<'static, Vec<u8>>>,
    plain: Vec<u8>,
    parts: tokio::sync::mpsc::Sender<Vec<u8>>,
    raw: u64,
    sent_parts: usize,
    meter: Meter,
    /// The uploader went away (it failed; its error is the one reported).
    stopped: bool,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        self.raw += n as u64;
        let out = match &mut self.encoder {
            Some(encoder) => {
                encoder.write_all(&buf[..n])?;
                encoder.get_mut()
            }
            None => {
                self.plain.extend_from_slice(&buf[..n]);
                &mut self.plain
            }
        };
        let part_size = FIRST_PART << (self.sent_parts / 1000).min(8);
        if out.len() >= part_size {
            let part = std::mem::take(out);
            self.sent_parts += 1;
            if self.parts.blocking_send(part).is_err() {
                self.stopped = true;
                return Err(std::io::Error::other("the upload stopped"));
            }
        }
        self.meter.show(self.raw);
        Ok(n)
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
