//! What the watcher and the guard know: the lease object they share in the
//! archive bucket (`<prefix>leases/<cluster>.json`, written only with
//! conditional puts), and what one look at a cluster saw — the primary's
//! probe, each standby's testimony about the primary, the guard's lease.
//! Plain data; `plan::watch` decides from it.

use crate::spec::time::Timestamp;
use serde::{Deserialize, Serialize};

/// `<prefix>leases/<cluster>.json`: the watcher's lease (only its holder
/// acts), the guard's (renewed while the primary is in touch with its
/// standbys or the bucket), and what the watcher last concluded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leases {
    pub format_version: u32,
    pub cluster: String,
    #[serde(default)]
    pub watcher: Option<Lease>,
    #[serde(default)]
    pub guard: Option<Lease>,
    /// When the watcher last reached the primary, and since when it has
    /// not: kept here so that `watch --once` from cron counts `after`
    /// across runs.
    #[serde(default)]
    pub primary_seen_at: Option<Timestamp>,
    #[serde(default)]
    pub primary_lost_since: Option<Timestamp>,
    /// The watcher's last conclusion, for `status`.
    #[serde(default)]
    pub last_evaluation: Option<Evaluation>,
    /// Set when a watcher starts failing over (the standby taking over),
    /// cleared when it is done: a watcher that takes over the lease finishes
    /// it (the steps resume; nothing is promoted twice).
    #[serde(default)]
    pub failing_over_to: Option<String>,
    /// The last automatic failover: to which standby, and when (the cooldown
    /// counts from it). The guard keeps the old primary fenced from then on.
    #[serde(default)]
    pub failed_over_to: Option<String>,
    #[serde(default)]
    pub failed_over_at: Option<Timestamp>,
}

/// One holder's lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// `host:pid`, unique per process.
    pub holder: String,
    /// Renewed at (the holder's clock: shown to people; others judge a
    /// lease by how long they saw it unchanged, on their own clock).
    pub renewed_at: Timestamp,
    /// Counts renewals: a lease whose `renewals` does not move is not renewed.
    pub renewals: u64,
    /// How long the lease lasts after a renewal, in seconds.
    pub seconds: u64,
}

/// What the watcher concluded, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub at: Timestamp,
    pub by: String,
    /// `healthy`, `watching`, `refused`, `failed over`.
    pub verdict: String,
    pub detail: String,
}

/// A standby's testimony about the primary: what its own WAL receiver sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Witness {
    pub name: String,
    /// It answered the watcher.
    pub reachable: bool,
    /// Its WAL receiver is streaming from the plan's primary and heard from
    /// it within its `wal_receiver_timeout`.
    pub hears_primary: bool,
    /// What it said, for the log and the journal.
    pub said: String,
}

/// The guard's lease as this watcher saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardSeen {
    /// Seconds this watcher has seen its `renewals` not move (its own clock).
    pub unchanged_for: f64,
    /// The lease's length.
    pub seconds: u64,
}

/// One look at a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSeen {
    /// The primary answered this probe.
    pub primary_answers: bool,
    /// It answered and accepts writes (not in recovery, not fenced).
    pub primary_writable: bool,
    /// Seconds since it last answered, when it does not now (`None`: never
    /// seen by this watcher, so counted from the first failed probe).
    pub primary_down_for: Option<f64>,
    pub witnesses: Vec<Witness>,
    /// A standby already accepts writes (a failover happened).
    pub failed_over: Option<String>,
    /// The standby that would take over and the lag guard's verdict on it:
    /// `Ok(what it measured)` or `Err(why it refuses)`.
    pub candidate: Option<(String, Result<String, String>)>,
    /// This watcher holds the watcher lease (only the holder acts); else who does.
    pub lease: Result<(), String>,
    /// Seconds since the last automatic failover of this cluster, if any.
    pub last_automatic_age: Option<u64>,
    /// The guard's lease, when there is one.
    pub guard: Option<GuardSeen>,
    pub fence_command: bool,
    /// A failover a watcher started and did not finish (to this standby).
    pub unfinished: Option<String>,
}
