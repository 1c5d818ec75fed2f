//! Saved plans (`pgdr plan --out FILE`): the changes with their ops, plus digests
//! of the plan file and of the live state they were computed from, so that
//! `pgdr apply FILE` refuses to act on a world that has moved on.

use super::ClusterPlan;
use serde::{Deserialize, Serialize};

pub const SAVED_PLAN_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    /// Marks the file as a pgdr saved plan and versions its layout.
    pub pgdr_saved_plan: u32,
    pub pgdr_version: String,
    pub clusters: Vec<ClusterPlan>,
}

impl SavedPlan {
    pub fn new(clusters: Vec<ClusterPlan>) -> Self {
        SavedPlan {
            pgdr_saved_plan: SAVED_PLAN_VERSION,
            pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
            clusters,
        }
    }
}
