//! The top level of the plan file: version, cluster, tier, objectives, `aws`,
//! and the `lint` section.

use super::{
    Archive, Drill, Duration, Endpoint, Failover, Name, Primary, Region, ReplicationNetwork,
    SettingValue, Standby,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Mvp,
    Saas,
    Financial,
    MultiRegion,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// The plan-file format version: `1`.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// The cluster's name, unique in a fleet: `[a-z0-9-]`, 1 to 40 characters. Names its locks, leases and scratch folders.
    pub cluster: Name,
    /// The policy tier the plan claims (`mvp`, `saas`, `financial`, `multi-region`): `pgdr lint` holds it to that tier's requirements (policies/tiers.yaml).
    pub tier: Tier,
    /// What recovery promises: the data that may be lost (RPO) and the time to be back (RTO).
    pub objectives: Objectives,
    /// Where the plan's AWS resources live; needed with an archive, RDS, an endpoint or a replication network.
    #[serde(default)]
    pub aws: Option<Aws>,
    /// The server that takes writes: a self-managed PostgreSQL (`postgres`) or an RDS instance (`rds`).
    pub primary: Primary,
    /// PostgreSQL settings, by name, that apply writes with ALTER SYSTEM on the primary and every self-managed standby.
    #[serde(default, deserialize_with = "super::yaml::unique_map")]
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z_][a-z0-9_]*(\\.[a-z_][a-z0-9_]*)?$" }))]
    pub settings: BTreeMap<String, SettingValue>,
    /// The S3 bucket that keeps the WAL archive and the base backups, and how.
    #[serde(default)]
    pub archive: Option<Archive>,
    /// The standbys: self-managed servers streaming from the primary, or RDS read replicas.
    #[serde(default)]
    pub standbys: Vec<Standby>,
    /// The DNS record clients use for the primary (Route53); switchover and failover move it.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// The EC2 security group rule that lets standbys reach the primary.
    #[serde(default)]
    pub replication_network: Option<ReplicationNetwork>,
    /// Restore drills: how often, to which point, and the checks.
    #[serde(default)]
    pub drill: Option<Drill>,
    /// Automatic failover: `pgdr watch` acts, fenced, when the primary is lost.
    #[serde(default)]
    pub failover: Option<Failover>,
    /// Further writable nodes in other regions, replicating both ways with
    /// the primary (active-active, through pglogical; docs/guides/active-active.md).
    #[serde(default)]
    pub active_active: Option<super::ActiveActive>,
    /// Lint settings for this file: rules silenced, each with its reason.
    #[serde(default)]
    pub lint: Option<LintSection>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintSection {
    /// Rules silenced for this file, each with the reason shown wherever the finding is.
    #[serde(default)]
    pub ignore: Vec<LintIgnore>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintIgnore {
    /// A lint rule's id (`pgdr lint` lists them).
    pub rule: String,
    /// Why the rule does not apply here.
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    /// Recovery point objective: the most data (as time) a loss may cost.
    pub rpo: Duration,
    /// Recovery time objective: the longest recovery may take.
    pub rto: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aws {
    /// The AWS region of the bucket, the RDS primary and the endpoint (`us-east-1`).
    pub region: Region,
}
