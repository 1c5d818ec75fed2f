//! The DNS endpoint as observed: the simple record at the plan's name, or why
//! pgdr cannot manage it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `A` or `CNAME`.
    pub rtype: String,
    pub ttl: i64,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointLive {
    pub zone_id: String,
    /// The simple record at the name, if there is one.
    pub record: Option<Record>,
    /// Why the record cannot be managed (an alias or a routing-policy set), if so.
    pub unmanageable: Option<String>,
}

/// Names compare without the trailing dot and case-insensitively, as DNS does.
pub fn normalize(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}
