//! Where each object lives under a plan's prefix (the contract in
//! plan-format.md, "Bucket layout"): `wal/<name>[.zst]`,
//! `base/<id>/{data.tar.zst, backup_manifest, backup.json}`, `drills/<ts>.json`,
//! `failovers/<ts>.json`, `locks/<cluster>.<kind>.json`, `leases/<cluster>.json`.
//! One place names keys.

use crate::spec::Compression;
use std::fmt;

/// User metadata every archived WAL object carries, so a later push or fetch can
/// compare contents without downloading: the XXH128 digest and size of the
/// file as PostgreSQL wrote it (before compression); see
/// [`super::codec::content_digest`].
pub const META_DIGEST: &str = "pgdr-xxh128";
pub const META_SIZE: &str = "pgdr-size";

/// A backup folder's catalogue entry, written last: a folder without it is
/// incomplete and never used.
pub const BACKUP_JSON: &str = "backup.json";
/// A backup's data: the tar stream, compressed or not.
pub const DATA_OBJECT: &str = "data.tar.zst";
pub const DATA_OBJECT_PLAIN: &str = "data.tar";
/// A file-level backup's objects: `data-0.tar.zst` (folders, `pg_control`,
/// `backup_label`), then one per job.
pub fn bundle_object(index: usize, compression: Compression) -> String {
    match compression {
        Compression::Zstd => format!("data-{index}.tar.zst"),
        Compression::None => format!("data-{index}.tar"),
    }
}
/// A file-level backup's map of object `index` (always zstd):
/// [`super::blockmap`].
pub fn map_object(index: usize) -> String {
    format!("map-{index}.zst")
}
/// A running backup's progress (written while it runs, removed at its end).
pub const PROGRESS_OBJECT: &str = "progress.json";
/// The server's manifest, kept beside the data (also the stream's last file).
pub const MANIFEST_OBJECT: &str = super::manifest::MANIFEST_ENTRY;

/// `s3://BUCKET/PREFIX` as the archive commands take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveUrl {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl ArchiveUrl {
    /// Reads `s3://BUCKET/PREFIX`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<ArchiveUrl, String> {
        let bad = |why: &str| {
            format!("`{text}` is not an archive URL: {why}; expected s3://BUCKET/PREFIX/ (e.g. s3://orders-wal/orders/)")
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

    /// The drill reports' folder.
    pub fn drills_prefix(&self) -> String {
        format!("{}drills/", self.prefix)
    }

    /// One role change's journal.
    pub fn failover_key(&self, ts: &str) -> String {
        format!("{}failovers/{ts}.json", self.prefix)
    }

    /// The run locks' folder.
    pub fn locks_prefix(&self) -> String {
        format!("{}locks/", self.prefix)
    }

    /// The leases' folder: the watcher's and the guard's, one object a cluster.
    pub fn leases_prefix(&self) -> String {
        format!("{}leases/", self.prefix)
    }

    /// The role-change journals' folder.
    pub fn failovers_prefix(&self) -> String {
        format!("{}failovers/", self.prefix)
    }
}

impl fmt::Display for ArchiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The WAL file name of an object name under `wal/` (without `.zst`).
pub fn wal_name_of(object: &str) -> &str {
    object.strip_suffix(".zst").unwrap_or(object)
}
