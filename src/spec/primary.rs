//! The `primary` section: a self-managed server (conninfo), an RDS instance, or both.

use super::Conninfo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Primary {
    /// How pgdr reaches the self-managed primary (libpq conninfo, no password).
    #[serde(default)]
    pub postgres: Option<Conninfo>,
    /// An RDS instance as the primary.
    #[serde(default)]
    pub rds: Option<RdsPrimary>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RdsPrimary {
    /// The RDS instance identifier.
    pub instance: String,
    /// RDS automated backups' retention, days (0 turns them off).
    #[serde(default)]
    pub backup_retention_days: Option<u32>,
    /// RDS deletion protection.
    #[serde(default)]
    pub deletion_protection: Option<bool>,
    /// RDS Multi-AZ: a synchronous standby in another zone.
    #[serde(default)]
    pub multi_az: Option<bool>,
    /// The RDS parameter group that carries `settings`.
    #[serde(default)]
    pub parameter_group: Option<String>,
    /// Apply instance modifications now rather than in the next maintenance window.
    /// Off by default, as with Terraform's `apply_immediately`: a Multi-AZ conversion
    /// or a backup-retention change from 0 costs I/O or a brief outage.
    #[serde(default)]
    pub apply_immediately: bool,
}
