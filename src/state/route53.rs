//! The DNS endpoint as observed: the simple record at the plan's name, the
//! latency records there (`routing: latency`), or why pgdr cannot manage it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `A` or `CNAME`.
    pub rtype: String,
    pub ttl: i64,
    pub values: Vec<String>,
    /// A latency record's set identifier and region (`None` for a simple record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
}

/// What makes a record one of several latency records at a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub set_identifier: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointLive {
    pub zone_id: String,
    /// The simple record at the name, if there is one.
    pub record: Option<Record>,
    /// The latency records at the name (A and CNAME), by set identifier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<Record>,
    /// Why the record cannot be managed (an alias, or a weighted, failover or
    /// geolocation set), if so.
    pub unmanageable: Option<String>,
}

/// Names compare without the trailing dot and case-insensitively, as DNS does.
pub fn normalize(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}
