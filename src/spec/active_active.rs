//! The `active_active` section (issue 31, in progress): further writable
//! nodes beside the primary, each in its own region, replicating both ways
//! by logical replication, with a conflict-resolution rule and what
//! replicates. The primary is the first node (and the seed: its data is
//! copied to the others when they join).

use super::{Conninfo, Duration, Name, Region};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which logical replication carries the changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The pglogical extension (PostgreSQL 15 and older): `forward_origins = '{}'`.
    #[default]
    Pglogical,
    /// PostgreSQL 16+'s own publications and subscriptions with `origin = none`.
    Native,
}

/// What happens when two nodes changed the same row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictResolution {
    /// The change with the later commit time wins (needs `track_commit_timestamp`).
    #[default]
    LastUpdateWins,
    /// The change with the earlier commit time wins.
    FirstUpdateWins,
    /// The incoming change wins.
    ApplyRemote,
    /// The local row stays.
    KeepLocal,
    /// Replication stops at the conflict until a person resolves it.
    Error,
}

impl ConflictResolution {
    /// `pglogical.conflict_resolution`'s spelling.
    pub fn as_pglogical(self) -> &'static str {
        match self {
            ConflictResolution::LastUpdateWins => "last_update_wins",
            ConflictResolution::FirstUpdateWins => "first_update_wins",
            ConflictResolution::ApplyRemote => "apply_remote",
            ConflictResolution::KeepLocal => "keep_local",
            ConflictResolution::Error => "error",
        }
    }
}

/// Sequences across nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sequences {
    /// apply makes them disjoint: `INCREMENT BY <nodes>`, each node its own
    /// remainder, so no two nodes hand out the same value.
    #[default]
    Disjoint,
    /// Left as they are; `plan` still reports sequences that can collide.
    Unmanaged,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveActive {
    /// `pglogical` (default) or `native` (PostgreSQL 16+).
    #[serde(default)]
    pub provider: Provider,
    /// The primary's name as a node (default: the cluster's name).
    #[serde(default)]
    pub node_name: Option<Name>,
    /// What happens when two nodes changed the same row.
    #[serde(default)]
    pub conflict_resolution: ConflictResolution,
    /// The databases that replicate (default: the primary conninfo's `dbname`).
    #[serde(default)]
    pub databases: Vec<String>,
    /// The tables that replicate, schema-qualified (`public.orders`); empty:
    /// every table of every schema but the system's.
    #[serde(default)]
    pub tables: Vec<String>,
    /// `disjoint` (default): apply gives each node its own share of every
    /// sequence; `unmanaged`.
    #[serde(default)]
    pub sequences: Sequences,
    /// A subscription further behind than this is a problem (default: objectives.rpo).
    #[serde(default)]
    pub max_lag: Option<Duration>,
    /// The other writable nodes.
    pub peers: Vec<Peer>,
}

/// A writable node other than the primary.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The node's name (`[a-z0-9-]`), unique among the nodes.
    pub name: Name,
    /// How pgdr reaches it (libpq conninfo, no password).
    pub postgres: Conninfo,
    /// The AWS region it runs in.
    #[serde(default)]
    pub region: Option<Region>,
}
