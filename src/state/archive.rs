//! What the archive holds: base backups (their `backup.json` catalogue entries)
//! and the WAL archived after the newest one — the live model `plan` judges the
//! archive's health from and `expire` decides from. Plain data.

use crate::spec::time::Timestamp;
use crate::state::wal::{Lsn, SegmentSize};
use serde::{Deserialize, Serialize};

/// One base backup's catalogue entry, `<prefix>base/<id>/backup.json`. Written
/// last, only once the data, the manifest and the WAL the backup needs are in
/// the archive: a backup without it is incomplete and never used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BackupEntry {
    pub format_version: u32,
    /// UTC start time, `20261124T101500Z`; sorts by age.
    pub id: String,
    pub cluster: String,
    /// `primary` or `standby <name>`.
    pub source: String,
    pub start_time: Timestamp,
    pub stop_time: Timestamp,
    pub start_lsn: Lsn,
    pub stop_lsn: Lsn,
    pub timeline: u32,
    /// The first and last WAL segment the backup needs to be consistent.
    pub start_wal: String,
    pub stop_wal: String,
    pub wal_segment_size: SegmentSize,
    pub system_identifier: String,
    /// `server_version_num`, e.g. 150004.
    pub pg_version: u32,
    /// The data as the server sent it (tar bytes) and as stored (compressed).
    pub size_bytes: u64,
    pub stored_bytes: u64,
    pub duration_seconds: f64,
    pub compression: String,
    /// Object names inside the backup's folder. For a file-level backup,
    /// `data_object` is the first of `bundles`.
    pub data_object: String,
    pub manifest_object: String,
    /// How it was taken: `stream` (pg_basebackup's tar stream, one object) or
    /// `files` (pgdr read the data folder itself, in `bundles`). Entries
    /// written before file-level backups existed are streams.
    #[serde(default)]
    pub method: BackupMethod,
    /// A file-level backup's tar objects, in restore order: the first holds
    /// the folders, links, `pg_control` and `backup_label`; each of the
    /// others only files, so they are restored at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<String>,
    /// Every file of the stream matched the server's manifest (SHA-256).
    pub verified: bool,
    /// `full`, `diff` (blocks changed since the newest full) or `incr`
    /// (blocks changed since the newest backup of any type). Entries written
    /// before incrementals existed are full.
    #[serde(rename = "type", default)]
    pub backup_type: BackupType,
    /// The backup this one stores changes against (diff and incr); restoring
    /// it needs the whole chain down to a full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// A file-level backup's maps ([`crate::format::blockmap`]), one per
    /// bundle and in the same order: what makes it a parent, and where a
    /// restore finds each file's bytes. Empty for a stream and for
    /// file-level backups taken before maps existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<String>,
    /// The manifest's file checksums: `crc32c` for file-level backups with
    /// maps, `sha256` otherwise (and for entries written before the field).
    #[serde(default)]
    pub manifest_checksum: Checksum,
}

/// How a backup's manifest checksums its files (the hashing is
/// `format::manifest`'s).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    /// pg_basebackup's stream (`--manifest-checksums=SHA256`), and
    /// file-level backups taken before CRC-32C.
    #[default]
    Sha256,
    /// File-level backups with maps.
    Crc32c,
}

/// What a base backup holds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackupType {
    /// Every file.
    #[default]
    Full,
    /// What changed since the newest full backup.
    Diff,
    /// What changed since the newest backup of any type.
    Incr,
}

impl BackupType {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Diff => "diff",
            BackupType::Incr => "incr",
        }
    }
}

/// `20261124T101500Z`: the form of a backup id (its folder's name).
pub fn is_backup_id(id: &str) -> bool {
    id.len() == 16
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// A plain object name inside a backup's folder (no `/`, no leading dot).
pub fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        && !name.starts_with('.')
}

/// The backups `backup` needs to be restored, its full first and itself
/// last (its parents, followed through `backups`). An error names the
/// first parent missing, or a loop. Pure.
pub fn chain<'a>(
    backups: &'a [BackupEntry],
    backup: &'a BackupEntry,
) -> Result<Vec<&'a BackupEntry>, String> {
    let mut chain = vec![backup];
    let mut at = backup;
    while let Some(parent) = &at.parent {
        let found = backups
            .iter()
            .find(|b| &b.id == parent && b.id < at.id)
            .ok_or_else(|| {
                format!(
                    "backup {} needs its parent {parent}, which is not in the archive (expired or never complete)",
                    at.id
                )
            })?;
        chain.push(found);
        at = found;
    }
    if at.backup_type != BackupType::Full {
        return Err(format!(
            "backup {}'s chain ends at {}, a {} backup without a parent",
            backup.id,
            at.id,
            at.backup_type.as_str()
        ));
    }
    chain.reverse();
    Ok(chain)
}

/// How a base backup was taken.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackupMethod {
    /// `pg_basebackup`'s tar stream: one server process reading, one object.
    #[default]
    Stream,
    /// pgdr read the data folder between `pg_backup_start` and
    /// `pg_backup_stop`, several files at once, into several objects.
    Files,
}

impl BackupMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMethod::Stream => "stream",
            BackupMethod::Files => "files",
        }
    }
}

/// A backup being taken, as the `progress.json` in its folder says: written
/// by the backup every few seconds while it runs, removed when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BackupProgress {
    pub id: String,
    /// `primary` or `standby <name>`.
    pub source: String,
    pub method: BackupMethod,
    pub host: String,
    pub pid: u32,
    pub started: Timestamp,
    pub updated: Timestamp,
    /// Bytes of the database read so far, of about `total_bytes`.
    pub read_bytes: u64,
    pub total_bytes: u64,
    /// Compressed bytes uploaded so far.
    pub stored_bytes: u64,
}

/// A WAL object that is not as pgdr archived it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalDamage {
    /// The WAL file name (without `.zst`).
    pub name: String,
    pub what: WalDamageKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalDamageKind {
    /// Stored more than once under its key: the current bytes are not (or
    /// not only) what was archived.
    Rewritten { versions: usize },
    /// Its newest version is a delete marker.
    Deleted,
}

impl std::fmt::Display for WalDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.what {
            WalDamageKind::Rewritten { versions } => {
                write!(f, "{} rewritten ({versions} versions)", self.name)
            }
            WalDamageKind::Deleted => write!(f, "{} deleted (a delete marker)", self.name),
        }
    }
}

impl BackupEntry {
    /// When the backup ended (consistent from then on), in seconds since the epoch.
    pub fn stop_secs(&self) -> Option<i64> {
        Some(self.stop_time.secs())
    }

    /// Whether a `backup.json` read from the bucket (untrusted: anyone who can
    /// write the bucket can write it) is one pgdr could have written for the
    /// folder `folder`: every field later used as a name, a position or a
    /// divisor is checked here, so nothing downstream slices or divides by
    /// what a hostile object holds. Times, positions and the segment size
    /// are typed, so reading the file checked them already. Names the first
    /// bad field.
    pub fn check(&self, folder: &str) -> Result<(), String> {
        use crate::state::wal::{WalKind, WalName};
        if !is_backup_id(&self.id) {
            return Err(format!(
                "id `{}` is not a backup id (UTC time as 20261124T101500Z)",
                self.id
            ));
        }
        if self.id != folder {
            return Err(format!("id `{}` is not its folder's ({folder})", self.id));
        }
        for (field, value) in [("start_wal", &self.start_wal), ("stop_wal", &self.stop_wal)] {
            if WalName::parse(value).is_none_or(|w| w.kind != WalKind::Segment) {
                return Err(format!("{field} `{value}` is not a WAL segment name"));
            }
        }
        if self.method == BackupMethod::Files && self.bundles.first() != Some(&self.data_object) {
            return Err(format!(
                "a file-level backup whose data_object `{}` is not its first bundle",
                self.data_object
            ));
        }
        let names = [
            ("data_object", &self.data_object),
            ("manifest_object", &self.manifest_object),
        ];
        let bundles = self.bundles.iter().map(|b| ("bundles", b));
        let maps = self.maps.iter().map(|m| ("maps", m));
        for (field, value) in names.into_iter().chain(bundles).chain(maps) {
            if !is_object_name(value) {
                return Err(format!(
                    "{field} `{value}` is not an object name inside the backup's folder"
                ));
            }
        }
        if !self.maps.is_empty() && self.maps.len() != self.bundles.len() {
            return Err(format!(
                "{} maps for {} bundles (one each)",
                self.maps.len(),
                self.bundles.len()
            ));
        }
        match (&self.parent, self.backup_type) {
            (None, BackupType::Full) => {}
            (Some(parent), BackupType::Diff | BackupType::Incr)
                if is_backup_id(parent) && *parent < self.id && self.method == BackupMethod::Files => {}
            (parent, kind) => {
                return Err(format!(
                    "a {} backup with parent {parent:?} (a full has none; a file-level diff or incr names an older backup)",
                    kind.as_str()
                ))
            }
        }
        Ok(())
    }
}

/// The archive as observed for one cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiveLive {
    /// Complete backups, oldest first.
    pub backups: Vec<BackupEntry>,
    /// Backup folders without a `backup.json` (running, or left by a crash).
    pub incomplete: Vec<String>,
    /// What the running ones (of `incomplete`) last said of themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running: Vec<BackupProgress>,
    /// WAL file names archived from the newest backup's first segment on, sorted.
    pub wal_since_newest: Vec<String>,
    /// WAL objects from the newest backup's first segment on that changed
    /// after they were archived (pgdr writes each key once): seen in a
    /// versioned bucket, sorted by name.
    #[serde(default)]
    pub wal_damaged: Vec<WalDamage>,
    /// Seconds since the newest backup finished, when it was read (the planner
    /// has no clock of its own).
    #[serde(default)]
    pub newest_age_seconds: Option<u64>,
    /// The drill reports: the newest, and the newest that passed.
    #[serde(default)]
    pub drills: crate::state::drill::DrillsLive,

    /// When this was read (seconds since the epoch): ages are measured from it.
    #[serde(default)]
    pub observed_at_unix: Option<i64>,
    /// Each copy of the archive (`archive.copies`), in the plan's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyLive>,
}

/// One copy of the archive as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyLive {
    /// Its name in `archive.copies`.
    pub name: String,
    /// `s3://<bucket>/<prefix>`.
    pub url: String,
    pub region: String,
    /// What it holds, beside home's listing read at the same time; `Err`
    /// says why it could not be read.
    pub content: Result<CopyListing, String>,
}

/// A copy's listings (and home's WAL listed with them), as `plan::recovery::copy::lag` compares them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopyListing {
    /// Home's WAL from its newest backup's first segment on: (name, stored at).
    pub home_wal: Vec<(String, i64)>,
    /// The copy's WAL from the same segment on.
    pub wal: Vec<(String, i64)>,
    /// The copy's complete backups.
    pub backups: Vec<String>,
    /// The region-loss drills stored in the copy.
    pub drills: crate::state::drill::DrillsLive,
}

/// How far a copy is behind home: what home has that it lacks. Plain data,
/// computed by `plan::recovery::copy::lag`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopyLag {
    /// WAL files home holds from its newest backup's first segment on that
    /// the copy lacks, sorted.
    pub wal_missing: Vec<String>,
    /// When home stored the oldest of them (seconds since the epoch): the
    /// copy is missing what home has had since then.
    pub missing_since_unix: Option<i64>,
    /// The newest WAL file in the copy and at home (from home's newest
    /// backup on).
    pub newest_wal: Option<String>,
    pub home_newest_wal: Option<String>,
    /// Complete backups at home the copy has no complete copy of, oldest first.
    pub backups_missing: Vec<String>,
    /// The newest complete backup in the copy.
    pub newest_backup: Option<String>,
}

/// The role changes a bucket records (`failovers/<ts>.json`), as `plan` and
/// `status` need them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailoversLive {
    /// The newest journal, done or not.
    pub newest: Option<crate::state::journal::Journal>,
    /// The newest that finished (`done`): the last measured failover.
    pub newest_done: Option<crate::state::journal::Journal>,
    /// Seconds since `newest_done` started, when read.
    #[serde(default)]
    pub newest_done_age_seconds: Option<u64>,
}

#[cfg(test)]
impl BackupEntry {
    /// A complete, verified backup of timeline 1 whose WAL is the one segment
    /// `start_wal` (16 MiB segments), for unit tests.
    pub fn sample(id: &str, start_wal: &str) -> BackupEntry {
        BackupEntry {
            format_version: 1,
            id: id.into(),
            cluster: "c".into(),
            source: "primary".into(),
            start_time: Timestamp(0),
            stop_time: Timestamp(0),
            start_lsn: Lsn(0),
            stop_lsn: Lsn(0),
            timeline: 1,
            start_wal: start_wal.into(),
            stop_wal: start_wal.into(),
            wal_segment_size: crate::state::wal::DEFAULT_SEGMENT_SIZE,
            system_identifier: String::new(),
            pg_version: 150000,
            size_bytes: 0,
            stored_bytes: 0,
            duration_seconds: 0.0,
            compression: "zstd".into(),
            data_object: "data.tar.zst".into(),
            manifest_object: "backup_manifest".into(),
            method: BackupMethod::Stream,
            bundles: Vec::new(),
            verified: true,
            backup_type: BackupType::Full,
            parent: None,
            maps: Vec::new(),
            manifest_checksum: Checksum::Sha256,
        }
    }
}
