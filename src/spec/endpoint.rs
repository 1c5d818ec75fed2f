//! The `endpoint` section: the DNS record that points clients at the primary.

use super::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub hosted_zone: String,
    pub record: String,
    pub ttl: Duration,
}
