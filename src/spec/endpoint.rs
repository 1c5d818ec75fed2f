//! The `endpoint` section: the DNS record that points clients at the primary.

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
}
