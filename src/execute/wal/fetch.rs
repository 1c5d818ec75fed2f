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

use crate::execute::ArchiveError;
use crate::format::codec;
use crate::format::layout::wal_name_of;
use crate::format::ArchiveUrl;
use crate::providers::storage::Store;
use crate::spec::Compression;
use crate::state::wal::{segment_name, SegmentSize, WalKind, WalName};
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
    store: F,
    url: &ArchiveUrl,
    name: &str,
    dest: &Path,
) -> Result<Option<(Delivered, u64)>, ArchiveError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Store>,
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
    let store = store().await;
    let Some(raw) = download(&store, url, name).await? else {
        return Ok(None);
    };
    let size = raw.len() as u64;
    write_whole(dest, &raw)?;
    Ok(Some((Delivered::Downloaded, size)))
}

/// Downloads and verifies one archived file: `.zst` first (the default), then
/// uncompressed.
pub async fn download(
    store: &Store,
    url: &ArchiveUrl,
    name: &str,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    for compression in [Compression::Zstd, Compression::None] {
        let key = url.wal_key(name, compression);
        if let Some(fetched) = store.get(&key).await? {
            let raw = codec::decode(fetched.body, compression)
                .map_err(|e| ArchiveError::Corrupt(format!("{key}: {e}")))?;
            codec::verify(&key, &raw, &fetched.metadata)?;
            return Ok(Some(raw));
        }
    }
    Ok(None)
}

/// The guard against recovery ending early: where `wal-fetch` runs and what
/// the restore that wrote its command knew. PostgreSQL treats a failing
/// `restore_command` as "no more WAL": in a standby that is a reason to
/// stream and retry, but in archive recovery (recovery.signal, no
/// standby.signal) it ends recovery and promotes, and a copy promoted at a
/// hole can never replay the rest. There a hole becomes a stop instead
/// (exit above 125, which PostgreSQL takes as fatal).
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// PostgreSQL is in archive recovery (its working folder, the data
    /// folder, holds recovery.signal and not standby.signal).
    pub archive_recovery: bool,
    /// `--until`: the last segment archived without a gap at restore time.
    pub until: Option<WalName>,
    /// `--accept-loss`: a gap after `until` ends recovery.
    pub accept_loss: bool,
}

/// Why `wal-fetch` could not deliver a file.
#[derive(Debug, Clone)]
pub enum Unavailable {
    /// Not in the archive; `later` names a segment of the same timeline
    /// archived after it, when one was looked for and found.
    Missing { later: Option<String> },
    /// In the archive but not delivered: a digest that does not match, or
    /// the archive could not be read.
    Failed(String),
}

/// What to tell PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exit 1: the end of the archived WAL, as PostgreSQL expects.
    End,
    /// Exit 126: stop recovery, do not promote; the reason for the log.
    Stop(String),
}

impl Guard {
    /// Whether a missing `name` needs the "anything archived after it?" look.
    pub fn needs_later(&self, name: &str) -> bool {
        let Some(wal) = WalName::parse(name).filter(|w| w.kind == WalKind::Segment) else {
            return false;
        };
        self.archive_recovery && !self.accept_loss && !self.archived_at_restore(&wal)
    }

    /// Whether `wal` was in the archive when the folder was restored: on
    /// `--until`'s timeline, at or before it. (A later timeline, one a
    /// promoted copy started since, was not; segments are compared by
    /// (log, segment), which orders them whatever the segment size.)
    fn archived_at_restore(&self, wal: &WalName) -> bool {
        self.until
            .as_ref()
            .is_some_and(|u| wal.timeline == u.timeline && (wal.log, wal.seg) <= (u.log, u.seg))
    }

    /// The decision for `name` that could not be delivered. Pure.
    pub fn judge(&self, name: &str, why: &Unavailable) -> Verdict {
        if !self.archive_recovery {
            return Verdict::End;
        }
        let segment = WalName::parse(name).filter(|w| w.kind == WalKind::Segment);
        let Some(wal) = segment else {
            // A timeline history or backup file: missing is normal (PostgreSQL
            // probes for the next timeline), unreadable is not.
            return match why {
                Unavailable::Missing { .. } => Verdict::End,
                Unavailable::Failed(e) => Verdict::Stop(format!(
                    "{name} could not be delivered ({e}); recovery stops here rather than go on without it"
                )),
            };
        };
        let archived_at_restore = self.archived_at_restore(&wal);
        let advice = "start it again once the archive is repaired, or restore again (pgdr restore names the reachable point; --accept-loss recovers to it)";
        match why {
            _ if archived_at_restore => Verdict::Stop(format!(
                "segment {name} was in the archive when this folder was restored (up to {}) and now {}; recovery stops rather than promote without the WAL after it: {advice}",
                self.until.as_ref().map_or("", |u| u.name.as_str()),
                match why {
                    Unavailable::Missing { .. } => "is missing".to_string(),
                    Unavailable::Failed(e) => format!("cannot be delivered: {e}"),
                }
            )),
            _ if self.accept_loss => Verdict::End,
            Unavailable::Missing { later: Some(later) } => Verdict::Stop(format!(
                "segment {name} is missing from the archive but {later} is archived after it: a gap, so recovery stops rather than promote without the rest; {advice}"
            )),
            Unavailable::Missing { later: None } => Verdict::End,
            Unavailable::Failed(e) => Verdict::Stop(format!(
                "segment {name} cannot be delivered ({e}); recovery stops rather than end here and promote: {advice}"
            )),
        }
    }
}

/// The first segment of `name`'s timeline archived after it, if any: one
/// listing of at most a few keys.
pub async fn later_segment(
    store: &Store,
    url: &ArchiveUrl,
    name: &str,
) -> Result<Option<String>, ArchiveError> {
    let prefix = url.wal_prefix();
    let Some(timeline) = name.get(..8) else {
        return Ok(None);
    };
    // `NAME.zst` sorts after NAME, its `.partial` and `.backup` files, and
    // before the next segment.
    let keys = store
        .list_first(
            &format!("{prefix}{timeline}"),
            &format!("{prefix}{name}.zst"),
            10,
        )
        .await?;
    Ok(keys
        .iter()
        .map(|k| wal_name_of(k.get(prefix.len()..).unwrap_or(k)))
        .find(|n| WalName::parse(n).is_some_and(|w| w.kind == WalKind::Segment) && *n > name)
        .map(str::to_string))
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
pub fn following(name: &str, count: usize, segment_size: SegmentSize) -> Vec<String> {
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
    store: &Store,
    url: &ArchiveUrl,
    name: &str,
    dir: &Path,
    count: usize,
    segment_size: SegmentSize,
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
            let done = match download(store, url, &next).await {
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
fn tidy(dir: &Path, current: &str, segment_size: SegmentSize) {
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
    fn in_archive_recovery_a_gap_stops_recovery_and_the_end_ends_it() {
        let size = DEFAULT_SEGMENT_SIZE;
        let seg = |n: u64| segment_name(1, n, size);
        let missing = Unavailable::Missing { later: None };
        let gap = Unavailable::Missing {
            later: Some(seg(9)),
        };
        let bad = Unavailable::Failed("digest mismatch".into());
        let standby = Guard::default();
        for why in [&missing, &gap, &bad] {
            assert_eq!(standby.judge(&seg(5), why), Verdict::End);
        }
        let recovery = Guard {
            archive_recovery: true,
            until: WalName::parse(&seg(6)),
            accept_loss: false,
        };
        let stops =
            |g: &Guard, n: &str, why: &Unavailable| matches!(g.judge(n, why), Verdict::Stop(_));
        // Up to --until: it was archived, so anything short of it is damage.
        assert!(stops(&recovery, &seg(5), &missing));
        assert!(stops(&recovery, &seg(6), &bad));
        // Past it: the natural end, unless something later exists or it is bad.
        assert!(recovery.needs_later(&seg(7)) && !recovery.needs_later(&seg(6)));
        // A later timeline (a copy promoted since) was not there at restore.
        assert!(recovery.needs_later(&segment_name(2, 5, size)));
        assert_eq!(
            recovery.judge(&segment_name(2, 5, size), &missing),
            Verdict::End
        );
        assert_eq!(recovery.judge(&seg(7), &missing), Verdict::End);
        assert!(stops(&recovery, &seg(7), &gap));
        assert!(stops(&recovery, &seg(7), &bad));
        // History files: missing is normal, unreadable stops.
        assert_eq!(recovery.judge("00000002.history", &missing), Verdict::End);
        assert!(stops(&recovery, "00000002.history", &bad));
        // --accept-loss: past --until everything ends recovery.
        let accepted = Guard {
            accept_loss: true,
            ..recovery.clone()
        };
        assert!(!accepted.needs_later(&seg(7)));
        assert_eq!(accepted.judge(&seg(7), &gap), Verdict::End);
        assert_eq!(accepted.judge(&seg(7), &bad), Verdict::End);
        assert!(stops(&accepted, &seg(5), &missing));
    }

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
