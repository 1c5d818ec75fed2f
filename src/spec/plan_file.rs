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
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    pub cluster: Name,
    pub tier: Tier,
    pub objectives: Objectives,
    #[serde(default)]
    pub aws: Option<Aws>,
    pub primary: Primary,
    #[serde(default, deserialize_with = "super::yaml::unique_map")]
    #[schemars(extend("propertyNames" = { "pattern": "^[a-z_][a-z0-9_]*(\\.[a-z_][a-z0-9_]*)?$" }))]
    pub settings: BTreeMap<String, SettingValue>,
    #[serde(default)]
    pub archive: Option<Archive>,
    #[serde(default)]
    pub standbys: Vec<Standby>,
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    #[serde(default)]
    pub replication_network: Option<ReplicationNetwork>,
    /// Restore drills: how often, to which point, and the checks.
    #[serde(default)]
    pub drill: Option<Drill>,
    /// Automatic failover: `pgdr watch` acts, fenced, when the primary is lost.
    #[serde(default)]
    pub failover: Option<Failover>,
    /// Lint settings for this file: rules silenced, each with its reason.
    #[serde(default)]
    pub lint: Option<LintSection>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintSection {
    #[serde(default)]
    pub ignore: Vec<LintIgnore>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintIgnore {
    pub rule: String,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    pub rpo: Duration,
    pub rto: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aws {
    pub region: Region,
}
