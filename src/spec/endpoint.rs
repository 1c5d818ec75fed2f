//! The `endpoint` section: the DNS record that points clients at the
//! primary, or (`routing: latency`, active-active) at the nearest node.

use super::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The Route53 hosted zone holding the record (`orders.internal.`).
    pub hosted_zone: String,
    /// The record's name (`primary.orders.internal.`): an A or CNAME to the primary.
    pub record: String,
    /// How long resolvers may keep the answer; lint keeps it well under the RTO.
    pub ttl: Duration,
    /// `simple` (default): one record, the primary's. `latency` (with
    /// `active_active`): one latency record per node at the name (set
    /// identifier the node's name, its region), so clients resolve the
    /// nearest node; a node that cannot be read loses its record at the next
    /// apply and gets it back once it answers.
    #[serde(default)]
    pub routing: Routing,
}

/// How the endpoint's name resolves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    #[default]
    Simple,
    Latency,
}
