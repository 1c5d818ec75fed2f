//! The archive bucket as a store of WAL and base backups: where each object
//! lives under the plan's prefix, and the commands that fill, read and prune it.
//!
//! - [`wal_push`]: `archive_command` — one WAL file in, write-once, verified.
//! - [`wal_fetch`]: `restore_command` — one WAL file out, verified, with prefetch.
//! - [`backup`]: a base backup streamed from `pg_basebackup` into one object.
//! - [`catalog`]: the backups a bucket holds (`backup.json`) and the WAL after them.
//! - [`expire`]: what `base_backups.keep` lets go, decided purely, then deleted.
//!
//! Layout under `<prefix>` (the contract in the README): `wal/<name>[.zst]`,
//! `base/<id>/{data.tar.zst, backup_manifest, backup.json}`.

pub mod backup;
pub mod catalog;
pub mod codec;
pub mod drill;
pub mod drill_rds;
pub mod expire;
pub mod meter;
pub mod restore;
pub mod scratch;
pub mod tar;
pub mod unpack;
pub mod wal_fetch;
pub mod wal_push;

use crate::providers::ProviderError;
use crate::spec::Compression;
use std::fmt;

/// `s3://BUCKET/PREFIX` as the archive commands take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveUrl {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl ArchiveUrl {
    pub fn parse(text: &str) -> Result<ArchiveUrl, ArchiveError> {
        let bad = |why: &str| {
            ArchiveError::Usage(format!("`{text}` is not an archive URL: {why}; expected s3://BUCKET/PREFIX/ (e.g. s3://orders-wal/orders/)"))
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the bucket is missing"));
        }
        if prefix.starts_with('/') || prefix.contains("//") {
            return Err(bad("the prefix has an empty folder name"));
        }
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        Ok(ArchiveUrl {
            bucket: bucket.to_string(),
            prefix,
        })
    }

    pub fn wal_prefix(&self) -> String {
        format!("{}wal/", self.prefix)
    }

    /// The key of an archived WAL file.
    pub fn wal_key(&self, name: &str, compression: Compression) -> String {
        format!("{}wal/{name}{}", self.prefix, compression.suffix())
    }

    pub fn base_prefix(&self) -> String {
        format!("{}base/", self.prefix)
    }

    /// The folder of one base backup.
    pub fn backup_prefix(&self, id: &str) -> String {
        format!("{}base/{id}/", self.prefix)
    }
}

impl fmt::Display for ArchiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// User metadata every archived WAL object carries, so a later push or fetch can
/// compare contents without downloading: the XXH128 digest and size of the
/// file as PostgreSQL wrote it (before compression); see
/// [`codec::content_digest`].
pub const META_DIGEST: &str = "pgdr-xxh128";
pub const META_SIZE: &str = "pgdr-size";

/// What went wrong in an archive command.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A different file is already archived under this name; it is never overwritten.
    #[error("{name} is already archived with different contents (archived XXH128 {archived}, this file {local}); the archived file is kept and this one is not stored")]
    Conflict {
        name: String,
        archived: String,
        local: String,
    },
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Failed(String),
}

impl ArchiveError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
