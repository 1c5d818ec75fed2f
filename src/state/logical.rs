//! What a writable node of an active-active plan holds, as far as its
//! replication with the others goes: its settings, its tables' shapes (DDL
//! does not replicate, so the nodes are compared), keys and sequences, and
//! pglogical's node and subscriptions. Plain data; the provider fills it in.

use super::postgres::PgLive;
use serde::{Deserialize, Serialize};

/// One node as read.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// The settings logical replication needs, and the senders to the
    /// other nodes' subscriptions (`health.replication`, by subscription name).
    pub pg: PgLive,
    pub schema: NodeLive,
    pub pglogical: PglogicalLive,
}

/// One node, one database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLive {
    /// The node's name in the plan.
    pub name: String,
    pub tables: Vec<TableLive>,
    pub sequences: Vec<SequenceLive>,
}

/// A table's shape: what must be the same on every node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableLive {
    /// `schema.table`.
    pub name: String,
    /// By name: logical replication matches columns by name, not position.
    pub columns: Vec<ColumnLive>,
    /// A primary key, or a replica identity index: updates and deletes can
    /// replicate.
    pub has_key: bool,
    /// Index definitions with the table's own name left out (`USING btree (id)`).
    pub indexes: Vec<String>,
    /// Constraint definitions (`pg_get_constraintdef`), by constraint name.
    pub constraints: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnLive {
    pub name: String,
    /// `format_type`: `integer`, `character varying(20)`.
    pub data_type: String,
    pub not_null: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceLive {
    /// `schema.sequence`.
    pub name: String,
    pub increment: i64,
    pub start: i64,
    /// The last value handed out, if any.
    pub last_value: Option<i64>,
}

/// One subscription of the connected node, as `show_subscription_status()`
/// says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub name: String,
    /// `replicating`, `initializing`, `down`, `disabled`, `unknown`.
    pub status: String,
    pub provider_node: String,
    pub forward_origins: Vec<String>,
    pub replication_sets: Vec<String>,
    /// Its slot on the provider.
    pub slot: String,
}

/// pglogical on the connected database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PglogicalLive {
    /// The extension's version; `None` when not installed.
    pub version: Option<String>,
    /// The local node's name.
    pub node: Option<String>,
    /// `schema.table` in the `default` replication set.
    pub tables: Vec<String>,
    pub subscriptions: Vec<Subscription>,
    /// As a provider: each logical slot on this server and the WAL its
    /// subscriber has not confirmed yet, in bytes.
    pub slots_behind: Vec<(String, i64)>,
}
