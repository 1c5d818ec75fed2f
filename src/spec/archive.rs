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
    pub mode: LockMode,
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    #[serde(default)]
    pub kms_key: Option<String>,
    #[serde(default)]
    pub sse: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaseBackups {
    pub every: Duration,
    pub keep: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    pub bucket: BucketName,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub versioning: Option<bool>,
    #[serde(default)]
    pub object_lock: Option<ObjectLock>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    #[serde(default)]
    pub block_public_access: Option<bool>,
    #[serde(default)]
    pub wal_retention: Option<Duration>,
    #[serde(default)]
    pub base_backups: Option<BaseBackups>,
}

impl Archive {
    pub fn wal_prefix(&self) -> String {
        format!("{}wal/", self.prefix)
    }
}
