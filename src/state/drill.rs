//! A restore drill's report, `<prefix>drills/<UTC timestamp>.json`: what was
//! restored, how long it took until the restored server passed every check
//! (RTO), how much recent data it lacked (RPO), and each check's outcome.
//! `plan`, `status`, `restore` (its estimate) and `expire` (what it must keep)
//! read it. Plain data.

use crate::spec::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillReport {
    pub format_version: u32,
    pub cluster: String,
    /// Every check passed and both objectives were met.
    pub ok: bool,
    pub backup_id: String,
    /// `latest`, or the RFC 3339 time recovery stopped at.
    pub target: String,
    pub started_at: Timestamp,
    /// When the restored server had passed every check; `None` when it never did.
    pub ready_at: Option<Timestamp>,
    /// Measured: drill start until the restored server passed every check.
    pub rto_seconds: Option<f64>,
    /// Achieved: the target time minus the last replayed commit time. For
    /// `latest` the target is the drill's start, so a quiet database counts
    /// its quiet time too: an upper bound on what a restore would lose.
    pub rpo_seconds: Option<f64>,
    pub objectives: Objectives,
    pub checks: Vec<CheckResult>,
    /// Why the drill did not pass, one line each (empty when `ok`).
    #[serde(default)]
    pub failures: Vec<String>,
    /// The last transaction the restored server replayed.
    #[serde(default)]
    pub last_replayed_commit: Option<Timestamp>,
    /// Where the time went: the restore of the base backup and WAL replay
    /// until promotion; with the sizes, the rates `restore` estimates from.
    #[serde(default)]
    pub restore_seconds: f64,
    #[serde(default)]
    pub restored_bytes: u64,
    #[serde(default)]
    pub recovery_seconds: f64,
    /// WAL bytes replayed (from the backup's start to where recovery ended).
    #[serde(default)]
    pub replayed_wal_bytes: u64,
    #[serde(default)]
    pub pg_version: u32,
    /// `drill --accept-loss`: recovery went only to a gap in the archive, and
    /// this is what it gave up. `None`: nothing archived was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_loss: Option<String>,
    /// The drill's steps as they ran (restore, start, recover, check): its
    /// journal, like a role change's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<crate::state::journal::StepRecord>,
    /// What the drill turned off so the scratch server cannot talk to
    /// production: archiving, logical replication workers, each subscription
    /// of the restored copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolation: Vec<String>,
    /// A region-loss drill: the copy of the archive it restored from (its
    /// name in `archive.copies`); the report is stored in that copy. `None`:
    /// restored from the home archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_copy: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Objectives {
    pub rpo_seconds: u64,
    pub rto_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// How long the check took (the plan's SQL checks; `max_duration` and
    /// `drill.max_slowdown` judge it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
}

impl CheckResult {
    pub fn new(name: &str, ok: bool, detail: impl Into<String>) -> Self {
        CheckResult {
            name: name.to_string(),
            ok,
            detail: detail.into(),
            duration_seconds: None,
        }
    }
}

/// The drills a bucket holds, as `plan`, `status` and `expire` need them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillsLive {
    /// The newest report, passed or not.
    pub newest: Option<DrillReport>,
    /// The newest report that passed (the same as `newest` when it passed).
    pub newest_ok: Option<DrillReport>,
    /// Seconds since `newest` started, when read (the planner has no clock).
    #[serde(default)]
    pub newest_age_seconds: Option<u64>,
}

impl DrillReport {
    /// The report of a drill that starts now: nothing measured or checked yet.
    pub fn started(
        cluster: &str,
        backup_id: String,
        target: String,
        started_at: Timestamp,
        objectives: Objectives,
        pg_version: u32,
    ) -> Self {
        DrillReport {
            format_version: 1,
            cluster: cluster.to_string(),
            ok: false,
            backup_id,
            target,
            started_at,
            ready_at: None,
            rto_seconds: None,
            rpo_seconds: None,
            objectives,
            checks: Vec::new(),
            failures: Vec::new(),
            last_replayed_commit: None,
            restore_seconds: 0.0,
            restored_bytes: 0,
            recovery_seconds: 0.0,
            replayed_wal_bytes: 0,
            pg_version,
            accepted_loss: None,
            steps: Vec::new(),
            isolation: Vec::new(),
            from_copy: None,
        }
    }

    /// Restore throughput (bytes of the base backup per second) and WAL replay
    /// throughput (bytes per second) this drill measured.
    pub fn rates(&self) -> (Option<f64>, Option<f64>) {
        let rate = |bytes: u64, secs: f64| (bytes > 0 && secs > 0.0).then(|| bytes as f64 / secs);
        (
            rate(self.restored_bytes, self.restore_seconds),
            rate(self.replayed_wal_bytes, self.recovery_seconds),
        )
    }
}
