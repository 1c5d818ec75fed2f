//! The `replication_network` section: the security group standbys stream through.

use super::Cidr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationNetwork {
    pub security_group: String,
    #[serde(default)]
    pub vpc: Option<String>,
    pub allow_cidrs: Vec<Cidr>,
    #[serde(default = "default_pg_port")]
    pub port: u16,
}

fn default_pg_port() -> u16 {
    5432
}
