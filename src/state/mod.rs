//! What exists: the live model of one cluster, as [`crate::observe`] reads it and
//! the planner and the recovery commands consume it, and the role logic (who
//! accepts writes) derived from it.
//!
//! Depends only on [`crate::spec`]. No I/O here: providers fill these types in.

pub mod archive;
pub mod drill;
pub mod ec2;
pub mod journal;
pub mod logical;
pub mod postgres;
pub mod rds;
pub mod route53;
pub mod s3;
pub mod wal;
pub mod watch;

use crate::spec::sha256_hex;

/// One active-active node as read (its settings, tables, sequences and
/// pglogical's state), or why it could not be read.
pub type ActiveActiveNode = Result<logical::NodeState, String>;
use archive::ArchiveLive;
use ec2::GroupLive;
use postgres::PgLive;
use rds::RdsLive;
use route53::EndpointLive;
use s3::S3Live;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Live {
    pub primary: Option<PgLive>,
    /// Why the primary could not be read, when it could not: a lost primary is
    /// a problem to report, not a reason to stop reading the rest.
    #[serde(skip)]
    pub primary_error: Option<String>,
    /// Self-managed standbys by name.
    pub standbys: BTreeMap<String, StandbyLive>,
    pub archive: Option<S3Live>,
    /// The buckets of the archive's copies (`archive.copies`) that could be
    /// read, each with its settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archive_copies: Vec<S3Live>,
    /// An active-active plan's writable nodes (the primary first): tables,
    /// sequences, pglogical's state, or why a node could not be read. Not
    /// digested.
    #[serde(skip)]
    pub active_active: Option<Vec<(String, ActiveActiveNode)>>,
    /// What the archive holds (backups, WAL since the newest), read when pgdr
    /// archives (`archiver: pgdr`) and the bucket exists; `Err` says why it
    /// could not be read. Not digested: it grows on its own with every segment.
    #[serde(skip)]
    pub archive_content: Option<Result<ArchiveLive, String>>,
    /// The role-change journals (`failovers/`), read when the plan measures
    /// failovers or watches the cluster; not digested.
    #[serde(skip)]
    pub failovers: Option<archive::FailoversLive>,
    /// The watcher's and the guard's leases, read when the plan has a
    /// `failover` section; not digested (they move on their own).
    #[serde(skip)]
    pub leases: Option<watch::Leases>,
    pub endpoint: Option<EndpointLive>,
    pub network: Option<GroupLive>,
    pub rds: Option<RdsLive>,
}

/// A standby as observed. One that cannot be reached is a problem to report, not a
/// reason to stop planning the cluster: a standby being down is what DR is for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StandbyLive {
    pub live: Option<PgLive>,
    /// Why it could not be read; not digested (messages vary between attempts).
    #[serde(skip)]
    pub error: Option<String>,
}

impl Live {
    /// Digest of the state the planner compares (not of counters that move on
    /// their own), so a saved plan can tell whether live state moved since.
    pub fn digest(&self) -> String {
        sha256_hex(&serde_json::to_vec(self).expect("live state serialises"))
    }
}

/// Who accepts writes, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roles {
    /// The plan file's primary is the one writable server.
    AsPlanned,
    /// The primary is in recovery and these standbys are writable.
    FailedOver(Vec<String>),
    /// More than one server accepts writes.
    SplitBrain(Vec<String>),
    /// Nothing observed accepts writes (or the primary was not read).
    NoWritable,
}

pub fn roles(live: &Live) -> Roles {
    let mut writable = Vec::new();
    if live.primary.as_ref().is_some_and(|p| !p.in_recovery) {
        writable.push("primary".to_string());
    }
    for (name, standby) in &live.standbys {
        if standby.live.as_ref().is_some_and(|s| !s.in_recovery) {
            writable.push(format!("standby {name}"));
        }
    }
    match writable.len() {
        0 => Roles::NoWritable,
        1 if writable[0] == "primary" => Roles::AsPlanned,
        1 => Roles::FailedOver(writable),
        _ => Roles::SplitBrain(writable),
    }
}
