//! The `active_active` section: further writable nodes beside the primary,
//! each in its own region, replicating both ways by logical replication,
//! with a conflict-resolution rule and what replicates. The primary is the
//! first node (and the seed: its rows are copied to the others when they
//! join).

use super::{Conninfo, Desired, Duration, Name, Region};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which logical replication carries the changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The pglogical extension (PostgreSQL 15 and older): `forward_origins = '{}'`.
    #[default]
    Pglogical,
    /// PostgreSQL 16+'s own publications and subscriptions with `origin =
    /// none`: designed (docs/guides/active-active.md), not built yet; a plan
    /// naming it is refused.
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
    /// `pglogical` (default; PostgreSQL 15 with pglogical 2.4). `native`
    /// (PostgreSQL 16+'s `origin = none`) is designed but refused for now.
    #[serde(default)]
    pub provider: Provider,
    /// The primary's name as a node (default: the cluster's name).
    #[serde(default)]
    pub node_name: Option<Name>,
    /// What happens when two nodes changed the same row.
    #[serde(default)]
    pub conflict_resolution: ConflictResolution,
    /// The tables that replicate, schema-qualified (`public.orders`); empty:
    /// every table with a key of every schema but the system's. One database
    /// replicates: the one each node's conninfo names (`dbname`).
    #[serde(default)]
    pub tables: Vec<String>,
    /// `disjoint` (default): apply gives each node its own share of every
    /// sequence; `unmanaged`.
    #[serde(default)]
    pub sequences: Sequences,
    /// A subscription further behind than this is a problem (default:
    /// objectives.rpo), where the provider reports a time lag (pglogical
    /// 2.4 reports none: see `max_lag_bytes`).
    #[serde(default)]
    pub max_lag: Option<Duration>,
    /// A subscription whose provider holds more WAL it has not confirmed
    /// than this many bytes is a problem (default 16777216: one WAL
    /// segment), like Patroni's `maximum_lag_on_failover`.
    #[serde(default)]
    pub max_lag_bytes: Option<u64>,
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

/// One writable node of an active-active plan.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub name: &'a str,
    pub postgres: &'a Conninfo,
    pub region: Option<&'a str>,
}

/// `max_lag_bytes` when the plan gives none: one WAL segment.
pub const DEFAULT_MAX_LAG_BYTES: u64 = 16 * 1024 * 1024;

/// The library pglogical must be loaded as (`shared_preload_libraries`).
pub const PGLOGICAL_LIBRARY: &str = "pglogical";

impl ActiveActive {
    /// The settings every node needs, whatever else it runs:
    /// `shared_preload_libraries` is not among them (each node's own list
    /// gets `pglogical` added, see [`with_pglogical`]).
    pub fn node_settings(&self) -> Vec<(String, String)> {
        let mut settings = vec![("wal_level".to_string(), "logical".to_string())];
        // pglogical refuses the timestamp rules without commit timestamps, and
        // without them it detects no update conflict at all.
        if !matches!(
            self.conflict_resolution,
            ConflictResolution::ApplyRemote | ConflictResolution::Error
        ) {
            settings.push(("track_commit_timestamp".into(), "on".into()));
        }
        if self.provider == Provider::Pglogical {
            settings.push((
                "pglogical.conflict_resolution".into(),
                self.conflict_resolution.as_pglogical().into(),
            ));
        }
        settings
    }
}

/// A `shared_preload_libraries` entry's library name: `$libdir/pglogical.so`
/// and `pglogical` both name `pglogical`.
pub fn library_name(entry: &str) -> &str {
    let file = entry.rsplit('/').next().unwrap_or(entry);
    file.strip_suffix(".so").unwrap_or(file)
}

/// `list` (a `shared_preload_libraries` value) with pglogical added when
/// it is not there; `None` when it is.
pub fn with_pglogical(list: &str) -> Option<String> {
    let libraries: Vec<&str> = list
        .split(',')
        .map(|l| l.trim().trim_matches('"'))
        .filter(|l| !l.is_empty())
        .collect();
    if libraries
        .iter()
        .any(|l| library_name(l) == PGLOGICAL_LIBRARY)
    {
        return None;
    }
    let mut all = libraries;
    all.push(PGLOGICAL_LIBRARY);
    Some(all.join(", "))
}

impl Desired {
    /// The writable nodes, the primary (the seed) first; empty without
    /// `active_active`.
    pub fn active_nodes(&self) -> Vec<Node<'_>> {
        let plan = &self.plan;
        let (Some(aa), Some(primary)) = (&plan.active_active, &plan.primary.postgres) else {
            return Vec::new();
        };
        let own = Node {
            name: aa.node_name.as_ref().map_or(self.cluster(), |n| n.as_str()),
            postgres: primary,
            region: plan.aws.as_ref().map(|a| a.region.as_str()),
        };
        std::iter::once(own)
            .chain(aa.peers.iter().map(|p| Node {
                name: p.name.as_str(),
                postgres: &p.postgres,
                region: p.region.as_ref().map(|r| r.as_str()),
            }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pglogical_is_added_to_a_preload_list_once() {
        assert_eq!(with_pglogical("").as_deref(), Some("pglogical"));
        assert_eq!(
            with_pglogical("pg_stat_statements").as_deref(),
            Some("pg_stat_statements, pglogical")
        );
        assert_eq!(with_pglogical("pg_stat_statements, pglogical"), None);
        assert_eq!(with_pglogical("\"pglogical\""), None);
        assert_eq!(with_pglogical("$libdir/pglogical.so"), None);
    }
}
