//! The `primary` section: a self-managed server (conninfo), an RDS instance, or both.

use super::Conninfo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Primary {
    #[serde(default)]
    pub postgres: Option<Conninfo>,
    #[serde(default)]
    pub rds: Option<RdsPrimary>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RdsPrimary {
    pub instance: String,
    #[serde(default)]
    pub backup_retention_days: Option<u32>,
    #[serde(default)]
    pub deletion_protection: Option<bool>,
    #[serde(default)]
    pub multi_az: Option<bool>,
    #[serde(default)]
    pub parameter_group: Option<String>,
    /// Apply instance modifications now rather than in the next maintenance window.
    /// Off by default, as with Terraform's `apply_immediately`: a Multi-AZ conversion
    /// or a backup-retention change from 0 costs I/O or a brief outage.
    #[serde(default)]
    pub apply_immediately: bool,
}
