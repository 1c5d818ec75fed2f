//! The replication network as observed: a security group and its ingress rules.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingress {
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub cidr: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLive {
    /// `None` when the group does not exist.
    pub id: Option<String>,
    /// The VPC it is (or would be created) in.
    pub vpc_id: String,
    pub ingress: Vec<Ingress>,
}

/// The description that marks an ingress rule as this cluster's.
pub fn owned_description(cluster: &str) -> String {
    format!("pgdr:{cluster}")
}
