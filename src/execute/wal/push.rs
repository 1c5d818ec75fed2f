//! `wal-push`, PostgreSQL's `archive_command`: store one WAL file in the
//! archive, write-once and verified, and push the files PostgreSQL has queued
//! behind it in parallel when it has fallen behind.
//!
//! The rules (pgBackRest's, whose archive-push is the model):
//! - success only once S3 has stored the object and verified its SHA-256, or
//!   when the identical file (same digest of the original bytes, kept in the
//!   object's metadata) is already archived; a *different* file under the
//!   same name is refused, never overwritten (`If-None-Match: *` makes that
//!   atomic);
//! - pushing ahead: when `pg_wal/archive_status` holds more `.ready` files,
//!   they are pushed now, concurrently, and each one S3 confirmed is noted in
//!   `pg_wal/pgdr/pushed/<name>` with its digest and the archive URL. When
//!   PostgreSQL then asks for that file, the note is checked against the file's
//!   own digest and the same URL before it counts, so a note can never make an
//!   unstored file look archived. Notes live in `pg_wal`, which base backups
//!   leave out, so a copy of the data directory never inherits them.
//! - copies (`archive.copies`, `--copy`): once a file is stored at home, it
//!   is stored in each copy too, within [`COPY_BUDGET`]. A copy that fails
//!   never fails the push (home has the file, PostgreSQL may recycle it):
//!   it is warned about and noted in `pg_wal/pgdr/copy-down/`, and for
//!   [`COPY_PAUSE`] after that pushes leave that copy alone, so an
//!   unreachable region costs archiving one wait a minute, not one a file
//!   (`pg_wal` filling up behind a slow archive is the failure users of
//!   multi-repository archivers report most). `pgdr copy` fills in what a
//!   copy missed.

use super::file;
use crate::execute::ArchiveError;
use crate::format::codec;
use crate::format::layout::META_DIGEST;
use crate::format::ArchiveUrl;
use crate::providers::storage::{PutOutcome, Store};
use crate::spec::Compression;
use crate::state::wal::{WalKind, WalName};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a push was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Uploaded now.
    Stored,
    /// The identical file was already in the archive.
    AlreadyArchived,
    /// An earlier invocation pushed it ahead and S3 confirmed it.
    PushedAhead,
}

pub struct PushOptions {
    pub url: ArchiveUrl,
    pub compression: Compression,
    /// Files uploaded at once when PostgreSQL has a backlog.
    pub parallel: usize,
}

/// A further archive each pushed file is stored in after home.
#[derive(Clone)]
pub struct CopyTarget {
    pub url: ArchiveUrl,
    pub store: Store,
}

/// How long one push waits for a copy before leaving the file to `pgdr copy`.
pub const COPY_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);
/// How long pushes leave a copy alone after it failed.
pub const COPY_PAUSE: std::time::Duration = std::time::Duration::from_secs(60);

/// The most files one invocation pushes ahead, so a huge backlog is worked
/// through in bounded rounds (PostgreSQL calls again for the next file).
const AHEAD_PER_PARALLEL: usize = 4;

/// Pushes `wal_path`; `store` builds the archive's store and the copies'
/// (no request is sent unless the file must be stored).
pub async fn push<F, Fut>(
    store: F,
    options: &PushOptions,
    wal_path: &Path,
) -> Result<(Pushed, usize), ArchiveError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (Store, Vec<CopyTarget>)>,
{
    let name = file_name(wal_path)?;
    let wal_dir = wal_path.parent().unwrap_or(Path::new("."));
    let notes = Notes::in_wal_dir(wal_dir);
    let compression = options.compression;

    // A file noted as pushed ahead is only hashed, to check the note: no S3
    // client, no compression. PostgreSQL works through a backlog one such
    // call at a time.
    if let Some(notes) = notes.as_ref().filter(|n| n.has(&name)) {
        let digest = on_blocking_thread(wal_path, file::read_digest).await?;
        let confirmed = notes.confirms(&name, &digest, &options.url);
        // A stale note (another file, another archive) does not count.
        notes.forget(&name);
        if confirmed {
            return Ok((Pushed::PushedAhead, 0));
        }
    }

    // Read, hash and compress on worker threads while the S3 client is set up:
    // a push is short and PostgreSQL waits for every one of them. Spawned
    // first, because setting up the client keeps this thread busy for
    // milliseconds before it first yields.
    let reading = on_blocking_thread(wal_path, move |p| file::read_encoded(p, compression));
    let (store, copies) = store().await;
    let encoded = reading.await?;
    // Copies that failed within the last COPY_PAUSE are left to `pgdr copy`.
    let copies: Vec<CopyTarget> = copies
        .into_iter()
        .filter(|c| !down_recently(wal_dir, &c.url))
        .collect();
    let copies = &copies;

    let notes = notes.as_ref();
    let ahead = match notes {
        Some(notes) => notes.waiting(wal_dir, &name, options.parallel * AHEAD_PER_PARALLEL),
        None => Vec::new(),
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(options.parallel.max(1)));
    let this_one = push_everywhere(&store, copies, options, &name, encoded, wal_dir);
    let others = futures_util::future::join_all(ahead.into_iter().map(|other| {
        let permits = permits.clone();
        let store = store.clone();
        async move {
            let _permit = permits.acquire().await.expect("semaphore open");
            // PostgreSQL may have archived and recycled it meanwhile.
            let encoded = on_blocking_thread(&wal_dir.join(&other), move |p| {
                file::read_encoded(p, compression)
            })
            .await
            .ok()?;
            let digest = encoded.digest.clone();
            match push_everywhere(&store, copies, options, &other, encoded, wal_dir).await {
                // Noted at once, not at the end of the round: a call killed
                // half way keeps the notes of what S3 already confirmed.
                Ok(_) => Some(notes?.note(&other, &digest, &options.url)),
                Err(e) => {
                    // Not this invocation's file: PostgreSQL will ask for it, and
                    // the error is reported then.
                    tracing::warn!(target: "pgdr::archive", file = other, error = %e, "push ahead failed");
                    None
                }
            }
        }
    }));
    let (result, pushed_ahead) = tokio::join!(this_one, others);
    let noted = pushed_ahead
        .into_iter()
        .filter(|n| *n == Some(true))
        .count();
    Ok((result?, noted))
}

/// `read(path)` (file reading, hashing, compressing) on a blocking thread,
/// started at once rather than when the result is first awaited.
fn on_blocking_thread<T: Send + 'static>(
    path: &Path,
    read: impl FnOnce(&Path) -> Result<T, ArchiveError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, ArchiveError>> {
    let path = path.to_path_buf();
    let name = path.display().to_string();
    let task = tokio::task::spawn_blocking(move || read(&path));
    async move {
        task.await
            .map_err(|e| ArchiveError::Failed(format!("reading {name}: {e}")))?
    }
}

fn file_name(path: &Path) -> Result<String, ArchiveError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if WalName::parse(&name).is_none() {
        return Err(ArchiveError::Usage(format!(
            "{}: not a WAL file name (a segment, .partial, .backup or .history file)",
            path.display()
        )));
    }
    Ok(name)
}

/// Stores one file at home, then in each copy (at once, each within
/// [`COPY_BUDGET`]); only home's outcome is the push's.
async fn push_everywhere(
    store: &Store,
    copies: &[CopyTarget],
    options: &PushOptions,
    name: &str,
    encoded: codec::Encoded,
    wal_dir: &Path,
) -> Result<Pushed, ArchiveError> {
    let for_copies = (!copies.is_empty()).then(|| encoded.clone());
    let pushed = push_one(store, &options.url, options.compression, name, encoded).await?;
    if let Some(encoded) = for_copies {
        futures_util::future::join_all(copies.iter().map(|copy| {
            let encoded = encoded.clone();
            async move {
                let stored = tokio::time::timeout(
                    COPY_BUDGET,
                    push_one(&copy.store, &copy.url, options.compression, name, encoded),
                )
                .await;
                let why = match stored {
                    Ok(Ok(_)) => return,
                    // The copy answered: another file under the name. Not
                    // an outage; `pgdr copy` reports it too.
                    Ok(Err(e @ ArchiveError::Conflict { .. })) => {
                        eprintln!(
                            "warning: {name} is stored at home but the copy {} holds another file under its name: {e}",
                            copy.url
                        );
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {}s", COPY_BUDGET.as_secs()),
                };
                eprintln!(
                    "warning: {name} is stored at home but not in the copy {}: {why}; pushes leave that copy alone for {}s and `pgdr copy` fills it in",
                    copy.url,
                    COPY_PAUSE.as_secs()
                );
                note_down(wal_dir, &copy.url);
            }
        }))
        .await;
    }
    Ok(pushed)
}

/// `pg_wal/pgdr/copy-down/<copy>`: when pushes last failed to reach a copy.
fn down_note(wal_dir: &Path, url: &ArchiveUrl) -> PathBuf {
    let name: String = url
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    wal_dir.join("pgdr").join("copy-down").join(name)
}

fn note_down(wal_dir: &Path, url: &ArchiveUrl) {
    // Only a real pg_wal keeps notes (as for pushed-ahead files).
    if !wal_dir.join("archive_status").is_dir() {
        return;
    }
    let note = down_note(wal_dir, url);
    if let Some(dir) = note.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&note, crate::spec::time::now_unix().to_string());
}

fn down_recently(wal_dir: &Path, url: &ArchiveUrl) -> bool {
    let Ok(text) = std::fs::read_to_string(down_note(wal_dir, url)) else {
        return false;
    };
    let since = text.trim().parse::<i64>().unwrap_or(0);
    let age = crate::spec::time::now_unix() - since;
    (0..COPY_PAUSE.as_secs() as i64).contains(&age)
}

/// Stores one file under `url`; settles an existing object by comparing digests.
pub async fn push_one(
    store: &Store,
    url: &ArchiveUrl,
    compression: Compression,
    name: &str,
    encoded: codec::Encoded,
) -> Result<Pushed, ArchiveError> {
    let key = url.wal_key(name, compression);
    let metadata = codec::content_metadata(&encoded.digest, encoded.size);
    let digest = encoded.digest;
    match store.put_new(&key, encoded.body, &metadata).await? {
        PutOutcome::Stored { .. } => Ok(Pushed::Stored),
        PutOutcome::Exists => {
            let archived = archived_digest(store, &key, compression).await?;
            if archived == digest {
                Ok(Pushed::AlreadyArchived)
            } else {
                Err(ArchiveError::Conflict {
                    name: name.to_string(),
                    archived,
                    local: digest,
                })
            }
        }
    }
}

/// The digest of an archived object's original bytes: from its metadata, or,
/// for an object pgdr did not write, by reading it.
async fn archived_digest(
    store: &Store,
    key: &str,
    compression: Compression,
) -> Result<String, ArchiveError> {
    if let Some(head) = store.head(key).await? {
        if let Some(digest) = head.metadata.get(META_DIGEST) {
            return Ok(digest.clone());
        }
    }
    let fetched = store
        .get(key)
        .await?
        .ok_or_else(|| ArchiveError::Failed(format!("{key} vanished while being compared")))?;
    Ok(codec::content_digest(&codec::decode(
        fetched.body,
        compression,
    )?))
}

/// The notes of files pushed ahead, in `pg_wal/pgdr/pushed/`.
struct Notes {
    dir: PathBuf,
}

impl Notes {
    /// Only a real `pg_wal` (one with `archive_status`) gets notes.
    fn in_wal_dir(wal_dir: &Path) -> Option<Notes> {
        if !wal_dir.join("archive_status").is_dir() {
            return None;
        }
        let dir = wal_dir.join("pgdr").join("pushed");
        std::fs::create_dir_all(&dir).ok()?;
        Some(Notes { dir })
    }

    fn text(digest: &str, url: &ArchiveUrl) -> String {
        format!("{digest} {url}\n")
    }

    fn has(&self, name: &str) -> bool {
        self.dir.join(name).exists()
    }

    fn confirms(&self, name: &str, digest: &str, url: &ArchiveUrl) -> bool {
        std::fs::read_to_string(self.dir.join(name)).is_ok_and(|t| t == Self::text(digest, url))
    }

    /// Written whole or not at all (temp file, then rename).
    fn note(&self, name: &str, digest: &str, url: &ArchiveUrl) -> bool {
        let tmp = self.dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, Self::text(digest, url)).is_ok()
            && std::fs::rename(&tmp, self.dir.join(name)).is_ok()
    }

    fn forget(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.join(name));
    }

    /// The `.ready` files behind `name` that are not yet pushed, in the order
    /// PostgreSQL archives them (timeline history first, then oldest first).
    fn waiting(&self, wal_dir: &Path, name: &str, limit: usize) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(wal_dir.join("archive_status")) else {
            return Vec::new();
        };
        let mut ready: Vec<WalName> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file = e.file_name().to_str()?.strip_suffix(".ready")?.to_string();
                WalName::parse(&file)
            })
            .filter(|w| w.name != name && !self.dir.join(&w.name).exists())
            .collect();
        ready.sort_by(|a, b| {
            (a.kind != WalKind::History, &a.name).cmp(&(b.kind != WalKind::History, &b.name))
        });
        ready.into_iter().take(limit).map(|w| w.name).collect()
    }
}
