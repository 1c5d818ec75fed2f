//! The `archive` section: the WAL bucket, its protections, WAL retention and base backups.

use super::{BucketName, Duration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    /// The spelling S3 uses.
    pub fn as_s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    /// S3 Object Lock retention mode: `governance` (privileged users may remove it) or `compliance` (nobody can).
    pub mode: LockMode,
    /// Days each object is locked against deletion and overwrite.
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// Encrypt with this KMS key (SSE-KMS): an id, ARN or `alias/...`.
    #[serde(default)]
    pub kms_key: Option<String>,
    /// Server-side encryption without KMS: `AES256`.
    #[serde(default)]
    pub sse: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaseBackups {
    /// A base backup at least this often (`pgdr run-due` takes one when due; `plan` reports an older newest).
    pub every: Duration,
    /// A full backup at least this often; the backups between are
    /// incrementals (`pgdr backup` without `--type`). Without it every
    /// backup is a full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_every: Option<Duration>,
    /// How many base backups `pgdr expire` keeps (and the parents a kept diff or incr needs).
    pub keep: u32,
}

/// Who fills the archive with WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Archiver {
    /// pgdr sets `archive_command` to `pgdr wal-push ...`.
    Pgdr,
    /// Another tool archives; pgdr leaves `archive_command` to `settings`.
    External,
}

/// How WAL and base backups are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    None,
}

impl Compression {
    /// The object-name suffix (`.zst`) and flag spelling.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::None => "",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// The S3 bucket's name.
    pub bucket: BucketName,
    /// The key prefix under which this cluster's WAL, backups, drills and locks are stored (`orders/`).
    #[serde(default)]
    pub prefix: String,
    /// Bucket versioning: a deleted or rewritten object stays recoverable.
    #[serde(default)]
    pub versioning: Option<bool>,
    /// S3 Object Lock: objects cannot be deleted or rewritten for a time, even by an attacker with the keys.
    #[serde(default)]
    pub object_lock: Option<ObjectLock>,
    /// Default encryption of the bucket's objects.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// Block every form of public access to the bucket.
    #[serde(default)]
    pub block_public_access: Option<bool>,
    /// How long WAL is kept: the lifecycle rule apply writes expires it after this.
    #[serde(default)]
    pub wal_retention: Option<Duration>,
    /// Base backups: how often, how often a full, how many kept.
    #[serde(default)]
    pub base_backups: Option<BaseBackups>,
    /// `pgdr` (the default when `settings.archive_command` is absent) or `external`.
    #[serde(default)]
    pub archiver: Option<Archiver>,
    /// How WAL and base backups are stored: `zstd` (the default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// How the database host calls pgdr; `pgdr` on its PATH by default.
    #[serde(default)]
    pub pgdr_path: Option<String>,
    /// Further archives, each a bucket in another region: `wal-push` stores
    /// every WAL file at home first, then in each copy, and `pgdr copy` (run by
    /// `run-due` and `watch`) fills in what a copy lacks, backups included.
    /// `restore` and `drill` take `--from-copy NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<ArchiveCopy>,
}

/// One further archive: a bucket in another region holding the same WAL and
/// base backups as the home bucket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveCopy {
    /// How `--from-copy`, addresses (`archive.copies.<name>`) and reports name
    /// it; the region by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9-]{1,40}$"))]
    pub name: Option<String>,
    /// The copy's S3 bucket.
    pub bucket: BucketName,
    /// The bucket's region.
    pub region: String,
    /// The key prefix in the copy's bucket; the home archive's by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The KMS key of the copy's bucket, when home's `encryption.kms_key` is
    /// set: a KMS key belongs to one region. Defaults to home's when that is
    /// an alias (`alias/pg-wal`, created in both regions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

impl Archive {
    pub fn wal_prefix(&self) -> String {
        format!("{}wal/", self.prefix)
    }

    /// `s3://<bucket>/<prefix>`: how the archive commands name this archive.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket.as_str(), self.prefix)
    }

    /// The archive a copy is: home's settings (protections, retention,
    /// compression) in the copy's bucket and prefix, with no copies of its own.
    pub fn as_copy(&self, copy: &ArchiveCopy) -> Archive {
        let encryption = self.encryption.clone().map(|e| Encryption {
            kms_key: e.kms_key.map(|home| copy.kms_key.clone().unwrap_or(home)),
            ..e
        });
        Archive {
            bucket: copy.bucket.clone(),
            prefix: copy.prefix.clone().unwrap_or_else(|| self.prefix.clone()),
            copies: Vec::new(),
            encryption,
            ..self.clone()
        }
    }

    /// The copy named `name`.
    pub fn copy(&self, name: &str) -> Option<&ArchiveCopy> {
        self.copies.iter().find(|c| c.name() == name)
    }

    /// `s3://<bucket>/<prefix>` of a copy: its own prefix, else home's.
    pub fn copy_url(&self, copy: &ArchiveCopy) -> String {
        format!(
            "s3://{}/{}",
            copy.bucket.as_str(),
            copy.prefix.as_deref().unwrap_or(&self.prefix)
        )
    }
}

impl ArchiveCopy {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.region)
    }
}
