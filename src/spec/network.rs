//! The `replication_network` section: the security group standbys stream through.

use super::Cidr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationNetwork {
    /// The security group that admits the standbys: its id (`sg-...`), or a
    /// name, which apply creates when missing.
    pub security_group: String,
    /// The VPC a named security group is in (default: the region's default VPC).
    #[serde(default)]
    pub vpc: Option<String>,
    /// The networks the standbys replicate from (`10.0.2.0/24`).
    pub allow_cidrs: Vec<Cidr>,
    /// The PostgreSQL port opened to them (default 5432).
    #[serde(default = "default_pg_port")]
    pub port: u16,
}

fn default_pg_port() -> u16 {
    5432
}
