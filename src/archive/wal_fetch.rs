//! `wal-fetch`, PostgreSQL's `restore_command`: bring one WAL file back from
//! the archive, verified against the checksum stored with it, and keep the
//! next segments coming so recovery is not one round trip per segment.
//!
//! PostgreSQL asks for files that do not exist as a normal part of recovery
//! (the next timeline's history, the segment after the last one): that is
//! `Ok(false)`, not an error. Prefetch (WAL-G's model): after a segment is
//! delivered, a detached `pgdr wal-prefetch` downloads the following ones into
//! `pg_wal/pgdr/prefetch/`; each lands under its own name only once verified
//! (written as `.part`, then renamed), and the next `wal-fetch` moves it into
//! place instead of downloading it.

use super::codec;
use super::{ArchiveError, ArchiveUrl};
use crate::providers::s3::objects;
use crate::spec::Compression;
use crate::state::wal::{segment_name, WalKind, WalName};
use aws_sdk_s3::Client;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where prefetched segments wait, beside the destination in `pg_wal`; `None`
/// when the destination is not in a `pg_wal` (a manual fetch).
pub fn prefetch_dir(dest: &Path) -> Option<PathBuf> {
    let wal_dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    wal_dir
        .join("archive_status")
        .is_dir()
        .then(|| wal_dir.join("pgdr").join("prefetch"))
}

/// How the file was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Downloaded,
    Prefetched,
}

/// Fetches `name` into `dest`; `Ok(None)` when the archive does not have it.
/// Also returns the file's size (the segment size, for a segment).
pub async fn fetch<F, Fut>(
    client: F,
    url: &ArchiveUrl,
    name: &str,
    dest: &Path,
) -> Result<Option<(Delivered, u64)>, ArchiveError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Client>,
{
    if WalName::parse(name).is_none() {
        return Err(ArchiveError::Usage(format!(
            "`{name}` is not a WAL file name (a segment, .partial, .backup or .history file)"
        )));
    }
    if let Some(dir) = prefetch_dir(dest) {
        let ready = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&ready) {
            if std::fs::rename(&ready, dest).is_ok() {
                return Ok(Some((Delivered::Prefetched, meta.len())));
            }
        }
    }
    let client = client().await;
    let Some(raw) = download(&client, url, name).await? else {
        return Ok(None);
    };
    let size = raw.len() as u64;
    write_whole(dest, &raw)?;
    Ok(Some((Delivered::Downloaded, size)))
}

/// Downloads and verifies one archived file: `.zst` first (the default), then
/// uncompressed.
pub async fn download(
    client: &Client,
    url: &ArchiveUrl,
    name: &str,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    for compression in [Compression::Zstd, Compression::None] {
        let key = url.wal_key(name, compression);
        if let Some(fetched) = objects::get(client, &url.bucket, &key).await? {
            let raw = codec::decode(fetched.body, compression)
                .map_err(|e| ArchiveError::Corrupt(format!("{key}: {e}")))?;
            codec::verify(&key, &raw, &fetched.metadata)?;
            return Ok(Some(raw));
        }
    }
    Ok(None)
}

/// Writes a file so that it exists only complete: a temp file beside it, then a rename.
fn write_whole(dest: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let tmp = dest.with_file_name(format!(
        ".{}.pgdr-tmp",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("wal")
    ));
    std::fs::write(&tmp, bytes).map_err(|e| ArchiveError::io(&tmp, e))?;
    std::fs::rename(&tmp, dest).map_err(|e| ArchiveError::io(dest, e))
}

/// The segments after `name` worth prefetching: the next `count` on the same
/// timeline. Nothing follows a history, `.partial` or `.backup` file.
pub fn following(name: &str, count: usize, segment_size: u64) -> Vec<String> {
    let Some(wal) = WalName::parse(name).filter(|w| w.kind == WalKind::Segment) else {
        return Vec::new();
    };
    let segno = wal.segno(segment_size);
    (1..=count as u64)
        .map(|i| segment_name(wal.timeline, segno + i, segment_size))
        .collect()
}

/// A `.part` file older than this belongs to a prefetcher that died.
const STALE_PART: Duration = Duration::from_secs(600);

/// Downloads the segments after `name` into `dir` (run detached by
/// `wal-fetch`). Removes what recovery has passed; skips what is there or
/// being downloaded by another prefetcher.
pub async fn prefetch(
    client: &Client,
    url: &ArchiveUrl,
    name: &str,
    dir: &Path,
    count: usize,
    segment_size: u64,
    parallel: usize,
) -> Result<usize, ArchiveError> {
    std::fs::create_dir_all(dir).map_err(|e| ArchiveError::io(dir, e))?;
    tidy(dir, name, segment_size);
    let wanted: Vec<String> = following(name, count, segment_size)
        .into_iter()
        .filter(|n| !dir.join(n).exists())
        .collect();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let results = futures_util::future::join_all(wanted.into_iter().map(|next| {
        let permits = permits.clone();
        async move {
            let part = dir.join(format!("{next}.part"));
            // create_new: another prefetcher holding this segment keeps it.
            if std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&part)
                .is_err()
            {
                return false;
            }
            let _permit = permits.acquire().await.expect("semaphore open");
            let done = match download(client, url, &next).await {
                Ok(Some(raw)) => {
                    std::fs::write(&part, &raw).is_ok()
                        && std::fs::rename(&part, dir.join(&next)).is_ok()
                }
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(target: "pgdr::archive", file = next, error = %e, "prefetch failed");
                    false
                }
            };
            if !done {
                let _ = std::fs::remove_file(&part);
            }
            done
        }
    }))
    .await;
    Ok(results.into_iter().filter(|ok| *ok).count())
}

/// Removes prefetched segments recovery has passed and abandoned `.part` files.
fn tidy(dir: &Path, current: &str, segment_size: u64) {
    let Some(now) = WalName::parse(current) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let file = entry.file_name().to_string_lossy().to_string();
        let stale = if file.ends_with(".part") {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_PART)
        } else {
            WalName::parse(&file).is_none_or(|w| w.segno(segment_size) <= now.segno(segment_size))
        };
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::wal::DEFAULT_SEGMENT_SIZE;

    #[test]
    fn prefetch_follows_the_timeline_across_a_log_boundary() {
        assert_eq!(
            following("0000000200000000000000FE", 3, DEFAULT_SEGMENT_SIZE),
            [
                "0000000200000000000000FF",
                "000000020000000100000000",
                "000000020000000100000001"
            ]
        );
        assert!(following("00000002.history", 3, DEFAULT_SEGMENT_SIZE).is_empty());
        assert!(following("000000010000000000000003.partial", 3, DEFAULT_SEGMENT_SIZE).is_empty());
    }
}
