//! The `standbys` section: self-managed standbys and RDS read replicas.

use super::{Conninfo, Duration, Name, Region, SlotName};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StandbyRds {
    pub instance: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Standby {
    pub name: Name,
    #[serde(default)]
    pub postgres: Option<Conninfo>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub region: Option<Region>,
    #[serde(default)]
    pub synchronous: bool,
    #[serde(default)]
    pub slot: Option<SlotName>,
    #[serde(default)]
    pub max_lag: Option<Duration>,
    #[serde(default)]
    pub rds: Option<StandbyRds>,
}

impl Standby {
    /// The slot named in the file, or the standby's name with `-` turned into `_`.
    pub fn slot_name(&self) -> String {
        match &self.slot {
            Some(slot) => slot.as_str().to_string(),
            None => self.name.as_str().replace('-', "_"),
        }
    }
}
