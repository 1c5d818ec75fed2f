//! A base backup as `pg_basebackup`'s tar stream: one server process reads
//! the data folder (checking page checksums) and sends one stream with its
//! own manifest last; pgdr hashes every file of it on the way and uploads it,
//! compressed, as one object. For hosts where pgdr cannot read the data
//! folder itself (see [`super::files`] for where it can).

use super::parts::{upload_parts, PartWriter, QUEUED_PARTS};
use super::{BackupRequest, Progress, Stored};
use crate::execute::ArchiveError;
use crate::format::layout::{DATA_OBJECT, DATA_OBJECT_PLAIN};
use crate::format::tar::{self, Scanned};
use crate::providers::storage::Store;
use crate::spec::Compression;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Runs pg_basebackup and stores its stream as `data.tar.zst`.
pub async fn take(
    store: &Store,
    request: &BackupRequest,
    pg_basebackup: &Path,
    (folder, id): (&str, &str),
    progress: &Arc<Progress>,
) -> Result<Stored, ArchiveError> {
    let data_name = match request.compression {
        Compression::Zstd => DATA_OBJECT,
        Compression::None => DATA_OBJECT_PLAIN,
    };
    let upload = store
        .start_upload(&format!("{folder}{data_name}"), &HashMap::new())
        .await?;
    let mut child = match Command::new(pg_basebackup)
        .arg("--dbname")
        .arg(request.conninfo.to_libpq())
        .args(["--pgdata=-", "--format=tar", "--wal-method=none"])
        .args(["--checkpoint=fast", "--manifest-checksums=SHA256"])
        .arg(format!("--label=pgdr {id}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            upload.abort().await;
            return Err(ArchiveError::io(pg_basebackup, e));
        }
    };
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

    let (parts_tx, parts_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUED_PARTS);
    let compression = request.compression;
    let counted = progress.clone();
    let reader = tokio::task::spawn_blocking(move || {
        read_and_compress(stdout, compression, parts_tx, &counted)
    });
    let uploaded = upload_parts(&upload, parts_rx, &progress.stored).await;
    let (parts, stored_bytes) = match uploaded {
        Ok(done) => done,
        Err(e) => {
            let _ = child.lock().expect("child lock").kill();
            let _ = reader.await;
            let _ = child.lock().expect("child lock").wait();
            upload.abort().await;
            return Err(e.into());
        }
    };
    let read = reader
        .await
        .map_err(|e| ArchiveError::Failed(format!("reading the backup stream: {e}")));
    let status = child.lock().expect("child lock").wait();
    let stderr = stderr_text.join().unwrap_or_default();
    let failed = if stalled.load(std::sync::atomic::Ordering::SeqCst) {
        Some(ArchiveError::Failed(format!(
            "PostgreSQL has waited over a minute for this backup's WAL to be archived, so archiving is failing; the backup was stopped and not recorded. Check pg_stat_archiver and the server log (archive_command should be `pgdr wal-push {} %p`)",
            request.url
        )))
    } else {
        match status {
            Err(e) => Some(ArchiveError::io(pg_basebackup, e)),
            Ok(status) if !status.success() => Some(ArchiveError::Failed(format!(
                "pg_basebackup failed ({status}): {}",
                stderr.trim().replace('\n', " | ")
            ))),
            Ok(_) => None,
        }
    };
    let read = match (failed, read.and_then(|r| r)) {
        (None, Ok(read)) => read,
        (Some(e), _) | (None, Err(e)) => {
            upload.abort().await;
            return Err(e);
        }
    };
    upload.complete(parts).await?;
    let (scan, raw_bytes) = read;
    Ok(Stored {
        maps: Vec::new(),
        checksum: crate::state::archive::Checksum::Sha256,
        objects: vec![data_name.to_string()],
        manifest: scan
            .manifest
            .ok_or_else(|| ArchiveError::Failed("pg_basebackup sent no backup_manifest".into()))?,
        files: scan.files,
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
    progress: &Progress,
) -> Result<(Scanned, u64), ArchiveError> {
    let failed =
        |e: std::io::Error| ArchiveError::Failed(format!("reading the backup stream: {e}"));
    let mut tee = Tee {
        stdout,
        out: PartWriter::new(compression, parts).map_err(failed)?,
        raw: 0,
        progress,
    };
    let scanned = tar::scan(&mut tee);
    // What follows the end-of-archive marker is part of the stream too.
    let drained = std::io::copy(&mut tee, &mut std::io::sink());
    if tee.out.stopped {
        return Err(ArchiveError::Failed("the upload stopped".into()));
    }
    let scanned = scanned?;
    drained.map_err(failed)?;
    tee.out.finish().map_err(failed)?;
    Ok((scanned, tee.raw))
}

/// pg_basebackup's stdout as the tar reader reads it: every byte read is
/// also written to the part writer.
struct Tee<'a, R> {
    stdout: R,
    out: PartWriter,
    raw: u64,
    progress: &'a Progress,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        self.raw += n as u64;
        self.out.write_all(&buf[..n])?;
        self.progress.meter.add(n as u64);
        Ok(n)
    }
}
