//! RDS as observed: the primary instance, its parameter group and the read
//! replicas; and the one instance modification pgdr makes (a value type shared
//! by the planner, which decides it, and the provider, which sends it).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What RDS holds for a cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RdsLive {
    /// The primary instance; `None` if it does not exist.
    pub primary: Option<InstanceLive>,
    pub parameter_group: Option<ParameterGroupLive>,
    /// Read replicas by standby name; `None` where the instance does not exist.
    pub replicas: BTreeMap<String, Option<InstanceLive>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceLive {
    pub id: String,
    pub arn: String,
    pub engine: String,
    pub engine_version: String,
    pub status: String,
    pub backup_retention_days: i32,
    pub deletion_protection: bool,
    pub multi_az: bool,
    pub availability_zone: Option<String>,
    /// The attached parameter group and its apply status (`in-sync`, `pending-reboot`, ...).
    pub parameter_group: Option<(String, String)>,
    /// Modifications accepted but waiting for the maintenance window.
    pub pending_multi_az: Option<bool>,
    pub pending_backup_retention_days: Option<i32>,
    pub endpoint: Option<String>,
    /// For a read replica: its source (identifier or ARN).
    pub replica_source: Option<String>,
}

impl InstanceLive {
    /// The PostgreSQL major version: `15.4` → 15 (None before PostgreSQL 10).
    pub fn major(&self) -> Option<u32> {
        self.engine_version
            .split('.')
            .next()?
            .parse()
            .ok()
            .filter(|m| *m >= 10)
    }

    /// Major version for the parameter group family: `15.4` → `postgres15`.
    pub fn family(&self) -> String {
        let version = &self.engine_version;
        let major = version.split('.').next().unwrap_or(version);
        // Before PostgreSQL 10 the family carried the minor too (postgres9.6).
        let major = if major.starts_with('9') {
            version.split('.').take(2).collect::<Vec<_>>().join(".")
        } else {
            major.to_string()
        };
        format!("{}{major}", self.engine.trim_start_matches("aurora-"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterLive {
    pub value: Option<String>,
    /// `static` (needs a reboot) or `dynamic`.
    pub apply_type: String,
    pub modifiable: bool,
    pub allowed_values: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterGroupLive {
    pub name: String,
    /// `None` when the group does not exist.
    pub family: Option<String>,
    /// Only the parameters the plan names.
    pub parameters: BTreeMap<String, ParameterLive>,
}

/// One attribute of an instance. Which one is set is given by the `Some` field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceChange {
    pub backup_retention_days: Option<i32>,
    pub deletion_protection: Option<bool>,
    pub multi_az: Option<bool>,
    pub parameter_group: Option<String>,
    pub apply_immediately: bool,
}
