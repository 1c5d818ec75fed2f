//! A PostgreSQL server as observed: its role, the settings the plan names, its
//! slots, and the health counters (archiver, replication) that move on their own.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the planner compares against. Everything here is stable between two
/// reads of an unchanged server, so it can be digested for saved plans.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PgLive {
    /// `host:port`, for messages.
    pub server: String,
    pub version_num: i32,
    pub in_recovery: bool,
    /// Only the settings the plan file names.
    pub settings: BTreeMap<String, LiveSetting>,
    /// Slot name → slot type (physical, logical).
    pub slots: BTreeMap<String, String>,
    /// On a standby: the `application_name` in `primary_conninfo`. Only this key is
    /// kept: the rest of primary_conninfo may hold a password.
    pub primary_conninfo_app: Option<String>,
    pub primary_conninfo_readable: bool,
    /// Counters that move on their own; not part of the digest.
    #[serde(skip)]
    pub health: PgHealth,
}

#[derive(Debug, Clone, Default)]
pub struct PgHealth {
    pub archiver: Option<Archiver>,
    pub slots: Vec<SlotHealth>,
    /// Standbys streaming from this server (`pg_stat_replication`).
    pub replication: Vec<Replication>,
    /// This server's WAL receiver status, if it runs one (`pg_stat_wal_receiver`).
    pub receiver: Option<String>,
    /// On a server in recovery: how far it has replayed.
    pub replay: Option<Replay>,
    /// The `user` of this server's primary_conninfo (a standby's login on the primary).
    pub conninfo_user: Option<String>,
    /// max_connections, max_worker_processes, max_wal_senders,
    /// max_prepared_transactions, max_locks_per_transaction: a standby must
    /// have each at least as high as its primary.
    pub limits: BTreeMap<String, i64>,
    /// Login roles whose password expires within 60 days, with the seconds left.
    pub expiring_roles: Vec<(String, f64)>,
}

/// How far a server in recovery has replayed, by its own account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    /// `pg_last_wal_replay_lsn()`.
    pub lsn: Option<crate::state::wal::Lsn>,
    /// The last replayed transaction's commit time (`YYYY-MM-DD HH:MM:SS UTC`).
    pub last_transaction: Option<String>,
    /// Seconds since then.
    pub age_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Replication {
    pub application_name: String,
    pub state: String,
    /// async, sync, quorum, potential.
    pub sync_state: String,
    /// Seconds; 0 when the standby has replayed everything (idle primaries report no lag).
    pub replay_lag_seconds: f64,
    pub replay_lag_bytes: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Archiver {
    pub archive_mode: String,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<String>,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<String>,
    /// The last failure is newer than the last success.
    pub failing: bool,
    /// The segment a primary is writing now (`None` on a server in recovery).
    pub current_wal: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlotHealth {
    pub name: String,
    pub slot_type: String,
    pub active: bool,
    /// WAL the slot keeps from being recycled, in bytes.
    pub retained_bytes: Option<i64>,
    /// A logical slot synchronised to standbys (PostgreSQL 17+ `failover`).
    pub failover: bool,
}

/// One row of `pg_settings`, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSetting {
    pub name: String,
    /// Active value in the base unit (`pg_settings.setting`).
    pub setting: String,
    pub unit: Option<String>,
    /// bool, integer, real, string or enum.
    pub vartype: String,
    /// postmaster, sighup, superuser, user, internal, ...
    pub context: String,
    pub enumvals: Option<Vec<String>>,
    pub min_val: Option<String>,
    pub max_val: Option<String>,
    pub pending_restart: bool,
    /// `current_setting(name)`: the value as people read it (`5min`).
    pub display: String,
    /// The value the configuration files hold, when it differs from the active one.
    pub file_value: Option<String>,
}
