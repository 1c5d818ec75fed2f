//! The archive bucket as observed: its protection settings and pgdr's own
//! lifecycle rules (rules pgdr does not own are only counted, never modelled).

use crate::spec::ObjectLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A pgdr-owned S3 lifecycle rule, in the terms pgdr reconciles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub prefix: String,
    pub expiration_days: i32,
    pub noncurrent_days: i32,
    pub abort_multipart_days: i32,
}

/// Everything pgdr compares for one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Live {
    pub bucket: String,
    pub exists: bool,
    /// `Enabled`, `Suspended`, or `None` for a bucket never versioned.
    pub versioning: Option<String>,
    pub object_lock_enabled: bool,
    pub object_lock: Option<ObjectLock>,
    pub encryption: Option<LiveEncryption>,
    /// BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets.
    pub public_access_block: Option<[bool; 4]>,
    /// pgdr's own rules, by id.
    pub owned_rules: BTreeMap<String, LiveRule>,
    /// Ids of the rules pgdr does not own (kept, never changed).
    pub other_rules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEncryption {
    pub algorithm: String,
    pub kms_key: Option<String>,
}

/// An owned rule as found: the part pgdr models, and whether it holds more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRule {
    pub rule: LifecycleRule,
    pub enabled: bool,
    /// Transitions, tag filters or other actions pgdr did not put there.
    pub extra: bool,
}

impl S3Live {
    pub fn absent(bucket: &str) -> Self {
        S3Live {
            bucket: bucket.to_string(),
            exists: false,
            versioning: None,
            object_lock_enabled: false,
            object_lock: None,
            encryption: None,
            public_access_block: None,
            owned_rules: BTreeMap::new(),
            other_rules: Vec::new(),
        }
    }
}

/// The pgdr rule ids a cluster owns. Exact ids, not a prefix: cluster `orders`
/// must never claim cluster `orders-eu`'s rules.
pub fn owned_rule_ids(cluster: &str) -> Vec<String> {
    vec![format!("pgdr-{cluster}-wal")]
}
