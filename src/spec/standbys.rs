//! The `standbys` section: self-managed standbys and RDS read replicas.

use super::{Conninfo, Duration, Name, Region, SlotName};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StandbyRds {
    /// The RDS read replica's instance identifier.
    pub instance: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Standby {
    /// The standby's name: its `application_name` on the primary, and how commands name it (`--to`).
    pub name: Name,
    /// How pgdr reaches this self-managed standby (libpq conninfo, no password).
    #[serde(default)]
    pub postgres: Option<Conninfo>,
    /// The availability zone it runs in; tiers require standbys in another zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The AWS region it runs in, when not the plan's.
    #[serde(default)]
    pub region: Option<Region>,
    /// A synchronous standby: every commit waits for it (`synchronous_standby_names`).
    #[serde(default)]
    pub synchronous: bool,
    /// Its replication slot on the primary; default: its name with `-` as `_`.
    #[serde(default)]
    pub slot: Option<SlotName>,
    /// The replay lag beyond which it is reported, and not promoted without `--force`.
    #[serde(default)]
    pub max_lag: Option<Duration>,
    /// An RDS read replica instead of a self-managed server.
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
